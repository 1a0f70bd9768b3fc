//! `info`, `map` and `check` answered with `ovf_disk::qemu_img`'s reports, for the sources it
//! describes as qemu-img does; `None` (run the real qemu-img) for any other source or option.

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use ovf_disk::qemu_img;

use super::{open_source, parse_size};

/// The arguments the three subcommands share, and their own.
#[derive(Debug, Default)]
pub(crate) struct Args {
    json: bool,
    from: Option<String>,
    backing_chain: bool,
    start: u64,
    length: Option<u64>,
    quiet: bool,
    src: Option<PathBuf>,
}

/// Parses `cmd`'s arguments; `None` for an option left to qemu-img.
pub(crate) fn parse(cmd: &str, args: &[OsString]) -> Option<Args> {
    let mut a = Args::default();
    let mut it = args.iter().map(|a| a.to_str());
    while let Some(arg) = it.next() {
        let arg = arg?;
        let mut value = || it.next().flatten().map(str::to_string);
        let (key, inline) = match arg.split_once('=') {
            Some((k, v)) if k.starts_with("--") => (k, Some(v.to_string())),
            _ => (arg, None),
        };
        let mut value = || inline.clone().or_else(&mut value);
        match (cmd, key) {
            (_, "--output") => a.json = value()? == "json",
            (_, "-f") => a.from = Some(value()?),
            // Shared locks: we only read.
            (_, "-U" | "--force-share") => {}
            ("info", "--backing-chain") => a.backing_chain = true,
            ("map", "--start-offset" | "-s") => a.start = parse_size(&value()?)?,
            ("map", "--max-length" | "-l") => a.length = Some(parse_size(&value()?)?),
            ("check", "-q" | "--quiet") => a.quiet = true,
            (_, k) if k.starts_with('-') => return None,
            (_, file) if a.src.is_none() => a.src = Some(PathBuf::from(file)),
            _ => return None,
        }
    }
    a.src.is_some().then_some(a)
}

/// Runs `cmd` when this program describes the source: the exit code, or an error message.
pub(crate) fn run(cmd: &str, a: &Args) -> Option<Result<u8, String>> {
    let src = a.src.as_ref()?;
    let name = src.to_str()?;
    let disk = match open_source(src, a.from.as_deref())? {
        Ok(d) => d,
        Err(e) => return Some(Err(e)),
    };
    if !qemu_img::describable(&disk) || (cmd == "check" && !disk.is_vmdk()) {
        return None;
    }
    let mut out = std::io::stdout().lock();
    let written = match cmd {
        "info" => info(&mut out, &disk, name, a),
        "map" => map(&mut out, &disk, name, a),
        _ => check(&mut out, &disk, name, a),
    };
    Some(written)
}

/// qemu's JSON layouts (`qobject_to_json_pretty`, and `qemu-img map`'s one line an entry):
/// serde_json writes the values, this only places the spaces and newlines.
enum Layout {
    /// Four spaces an indent, every container on its own lines, empty ones too.
    Pretty { depth: usize },
    /// `{ "start": 0, "length": 65536}`.
    Line,
}

impl Layout {
    fn newline<W: ?Sized + Write>(&self, w: &mut W) -> std::io::Result<()> {
        match self {
            Self::Pretty { depth } => {
                w.write_all(b"\n")?;
                (0..*depth).try_for_each(|_| w.write_all(b"    "))
            }
            Self::Line => Ok(()),
        }
    }

    fn nest(&mut self, by: isize) {
        if let Self::Pretty { depth } = self {
            *depth = depth.saturating_add_signed(by);
        }
    }
}

impl serde_json::ser::Formatter for Layout {
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.nest(1);
        w.write_all(b"[")
    }

    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.nest(-1);
        self.newline(w)?;
        w.write_all(b"]")
    }

    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if !first {
            w.write_all(b",")?;
        }
        self.newline(w)
    }

    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.nest(1);
        match self {
            Self::Line => w.write_all(b"{ "),
            Self::Pretty { .. } => w.write_all(b"{"),
        }
    }

    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        self.nest(-1);
        self.newline(w)?;
        w.write_all(b"}")
    }

    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        match (self, first) {
            (Self::Line, true) => Ok(()),
            (Self::Line, false) => w.write_all(b", "),
            (me, first) => {
                if !first {
                    w.write_all(b",")?;
                }
                me.newline(w)
            }
        }
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> std::io::Result<()> {
        w.write_all(b": ")
    }
}

/// `value` as JSON in `layout`.
fn json(value: &impl serde::Serialize, layout: Layout) -> Result<String, String> {
    let mut text = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut text, layout);
    value.serialize(&mut ser).map_err(|e| e.to_string())?;
    String::from_utf8(text).map_err(|e| e.to_string())
}

/// JSON as qemu-img prints a report: four spaces an indent, a newline at the end.
pub(crate) fn pretty(value: &impl serde::Serialize) -> Result<String, String> {
    Ok(format!("{}\n", json(value, Layout::Pretty { depth: 0 })?))
}

fn info(out: &mut dyn Write, disk: &vmdk::Disk, name: &str, a: &Args) -> Result<u8, String> {
    let images = qemu_img::info(disk, name, a.backing_chain).map_err(|e| e.to_string())?;
    let text = match (a.json, a.backing_chain) {
        (true, true) => pretty(&images)?,
        (true, false) => pretty(&images.first())?,
        (false, _) => images
            .iter()
            .map(qemu_img::ImageInfo::human)
            .collect::<Vec<_>>()
            .join("\n"),
    };
    out.write_all(text.as_bytes()).map_err(|e| e.to_string())?;
    Ok(0)
}

fn map(out: &mut dyn Write, disk: &vmdk::Disk, name: &str, a: &Args) -> Result<u8, String> {
    let entries = qemu_img::map(disk, name, a.start, a.length).map_err(|e| e.to_string())?;
    if a.json {
        let lines = entries
            .iter()
            .map(|e| json(e, Layout::Line))
            .collect::<Result<Vec<_>, _>>()?;
        writeln!(out, "[{}]", lines.join(",\n")).map_err(|e| e.to_string())?;
        return Ok(0);
    }
    let (text, error) = qemu_img::map_human(&entries);
    out.write_all(text.as_bytes()).map_err(|e| e.to_string())?;
    match error {
        Some(e) => Err(e.to_string()),
        None => Ok(0),
    }
}

fn check(out: &mut dyn Write, disk: &vmdk::Disk, name: &str, a: &Args) -> Result<u8, String> {
    let c = qemu_img::check(disk, name);
    for e in &c.errors {
        eprintln!("{e}");
    }
    let text = match a.json {
        true => pretty(&c)?,
        false => c.human(),
    };
    if !a.quiet {
        out.write_all(text.as_bytes()).map_err(|e| e.to_string())?;
    }
    Ok(c.exit_code())
}

/// What `compare` was asked, when this program answers it.
#[derive(Debug, Default)]
pub(crate) struct CompareArgs {
    from: [Option<String>; 2],
    quiet: bool,
    files: Vec<PathBuf>,
}

/// Parses `compare`'s arguments; `None` for an option left to qemu-img (`-s`, `-p`, objects).
pub(crate) fn parse_compare(args: &[OsString]) -> Option<CompareArgs> {
    let mut c = CompareArgs::default();
    let mut it = args.iter().map(|a| a.to_str());
    while let Some(arg) = it.next() {
        match arg? {
            "-f" => c.from[0] = Some(it.next()??.to_string()),
            "-F" => c.from[1] = Some(it.next()??.to_string()),
            "-q" => c.quiet = true,
            "-U" | "--force-share" => {}
            a if a.starts_with('-') => return None,
            file => c.files.push(PathBuf::from(file)),
        }
    }
    (c.files.len() == 2).then_some(c)
}

/// Runs `compare` when this program reads both sources as qemu-img does: 0 identical, 1
/// different, 2 an error (as qemu-img's).
pub(crate) fn run_compare(c: &CompareArgs) -> Option<Result<u8, String>> {
    let mut disks = Vec::new();
    for (file, from) in c.files.iter().zip(&c.from) {
        match open_source(file, from.as_deref())? {
            Ok(d) if qemu_img::describable(&d) => disks.push(d),
            Ok(_) => return None,
            Err(e) => {
                eprintln!("qemu-img: {e}");
                return Some(Ok(2));
            }
        }
    }
    let [a, b] = disks.as_slice() else {
        return None;
    };
    let found = match qemu_img::compare(a, b) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("qemu-img: {e}");
            return Some(Ok(2));
        }
    };
    if !c.quiet {
        let written = std::io::stdout().lock().write_all(found.human().as_bytes());
        if let Err(e) = written {
            return Some(Err(e.to_string()));
        }
    }
    Some(Ok(found.exit_code()))
}
