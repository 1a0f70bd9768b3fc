//! `vmdk-img`: `qemu-img`'s command line for what pipelines ask of VMDK sources.
//!
//! Migration pipelines (Forklift, CDI, Proxmox and Harvester recipes) call `qemu-img convert
//! -p -f vmdk -O raw SRC DST` and parse its `(NN.NN/100%)` progress. Put first on `PATH` as
//! `qemu-img` (or called as `vmdk-img`), this answers `convert` for VMDK, qcow2 and raw sources
//! with `ovf-disk`'s copy engine, taking `qemu-img`'s arguments and printing its progress line,
//! and `measure` of those sources for raw and qcow2 outputs with qemu's own arithmetic
//! (`ovf_disk::output::measure`: the same output, byte for byte), `info`, `map`, `check` and
//! `compare` of VMDK and raw sources (`ovf_disk::qemu_img`: qemu-img's output and exit codes),
//! and runs the real `qemu-img` with the same arguments for everything else: other subcommands,
//! other source formats, options it does not handle. The real one is `$QEMU_IMG`, or the
//! first `qemu-img` on `PATH` that is not this program. Exit status: as `qemu-img`'s (0 done,
//! 1 failed).

mod report;

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use ovf_disk::output::ConvertOptions;
use vmdk::{CreateType, Format, WriteOptions, ZeroMode};

/// What `convert` was asked, when this program handles it.
#[derive(Debug, Default)]
struct Convert {
    progress: bool,
    quiet: bool,
    from: Option<String>,
    to: Option<String>,
    options: Vec<(String, String)>,
    /// `-c`: compressed clusters (qcow2 outputs).
    compress: bool,
    /// `-S 0`: every zero written (qemu-img's default leaves holes of 4 KiB or more).
    sparse_size: Option<u64>,
    src: PathBuf,
    dst: PathBuf,
}

/// Parses `convert`'s arguments; `None` when an option is one this program leaves to qemu-img.
fn parse_convert(args: &[OsString]) -> Option<Convert> {
    let mut c = Convert::default();
    let mut positional = Vec::new();
    let mut it = args.iter().map(|a| a.to_str()).peekable();
    while let Some(arg) = it.next() {
        let arg = arg?;
        let mut value = || it.next().flatten().map(str::to_string);
        match arg {
            "-p" => c.progress = true,
            "-c" => c.compress = true,
            "-q" => c.quiet = true,
            "-f" => c.from = Some(value()?),
            "-O" => c.to = Some(value()?),
            "-o" => {
                for kv in value()?.split(',') {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, "on"));
                    c.options.push((k.to_string(), v.to_string()));
                }
            }
            "-S" => c.sparse_size = Some(parse_size(&value()?)?),
            // Out-of-order writes, coroutines, cache modes: the copy engine's own choices.
            "-W" | "-U" => {}
            "-m" | "-t" | "-T" => {
                value()?;
            }
            a if a.starts_with('-') => return None,
            a => positional.push(PathBuf::from(a)),
        }
    }
    let [src, dst] = <[PathBuf; 2]>::try_from(positional).ok()?;
    c.src = src;
    c.dst = dst;
    Some(c)
}

/// `512`, `4k`, `1M`, ... as qemu-img takes sizes (bytes, or 1024-based units).
fn parse_size(text: &str) -> Option<u64> {
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = digits.parse().ok()?;
    let shift = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return None,
    };
    n.checked_mul(1 << shift)
}

/// The output format and write options `c` asks for, when this program writes them.
fn output_of(c: &Convert) -> Option<(Format, WriteOptions)> {
    let mut write = WriteOptions::new().zero(match c.sparse_size {
        Some(0) => ZeroMode::Write,
        _ => ZeroMode::Sparse,
    });
    if c.compress && c.to.as_deref() != Some("qcow2") {
        return None;
    }
    let format = match c.to.as_deref().unwrap_or("raw") {
        "raw" => Format::Raw,
        "qcow2" => return qcow2_options(c, write).map(|w| (Format::Qcow2, w)),
        // qemu's VHD: dynamic (its default) is ours; fixed, and force_size (which only says
        // how qemu sizes it: ours always takes the exact size), are left to qemu-img.
        "vpc" => {
            let dynamic = c
                .options
                .iter()
                .all(|(k, v)| k == "subformat" && v == "dynamic");
            return dynamic.then_some((Format::Vhd, write));
        }
        // qemu's VHDX: dynamic (its default) and fixed are ours; block and log sizes left.
        "vhdx" => {
            let mut format = Format::Vhdx;
            for (k, v) in &c.options {
                format = match (k.as_str(), v.as_str()) {
                    ("subformat", "dynamic") => Format::Vhdx,
                    ("subformat", "fixed") => Format::VhdxFixed,
                    _ => return None,
                };
            }
            return Some((format, write));
        }
        "vmdk" => {
            let mut format = Format::Vmdk(CreateType::MonolithicSparse);
            for (k, v) in &c.options {
                match k.as_str() {
                    "subformat" => format = v.parse().ok()?,
                    "adapter_type" => write = write.adapter_type(v).ok()?,
                    "compat6" if v == "on" => write = write.hw_version(6),
                    "hwversion" => write = write.hw_version(v.parse().ok()?),
                    _ => return None,
                }
            }
            format
        }
        _ => return None,
    };
    Some((format, write))
}

/// The write options of a qcow2 output from qemu-img's `-c` and `-o` options; `None` for an
/// option left to qemu-img (a backing file, compat 0.10, lazy refcounts, encryption...).
fn qcow2_options(c: &Convert, mut write: WriteOptions) -> Option<WriteOptions> {
    let mut codec = c.compress.then_some(vmdk::Compression::Deflate);
    for (k, v) in &c.options {
        match (k.as_str(), v.as_str()) {
            ("compat", "1.1" | "v3") => {}
            ("cluster_size", size) => write = write.cluster_size(parse_size(size)?).ok()?,
            ("compression_type", "zlib") => {}
            ("compression_type", "zstd") if c.compress => codec = Some(vmdk::Compression::Zstd),
            ("preallocation", p) => {
                write = write.preallocation(match p {
                    "off" => vmdk::Preallocation::Off,
                    "metadata" => vmdk::Preallocation::Metadata,
                    "falloc" => vmdk::Preallocation::Falloc,
                    "full" => vmdk::Preallocation::Full,
                    _ => return None,
                })
            }
            _ => return None,
        }
    }
    Some(write.compress(codec))
}

/// Runs `convert` with the copy engine: `None` when the source is not one this program reads
/// (the caller passes the command to qemu-img).
fn convert(c: &Convert) -> Option<Result<(), String>> {
    if !matches!(c.from.as_deref(), None | Some("vmdk" | "raw" | "qcow2")) {
        return None;
    }
    let (format, write) = output_of(c)?;
    let disk = match open_source(&c.src, c.from.as_deref())? {
        Ok(d) => d,
        Err(e) => return Some(Err(e)),
    };
    let total = disk.capacity().max(1);
    let done = std::sync::atomic::AtomicU64::new(0);
    let shown = std::sync::Mutex::new(-1i64);
    let tick = |n: u64| {
        let d = done.fetch_add(n, std::sync::atomic::Ordering::Relaxed) + n;
        if !c.progress || c.quiet {
            return;
        }
        // qemu-img's line, printed when the hundredth changes.
        let pct = (d as f64 * 100.0 / total as f64).min(100.0);
        let step = (pct * 100.0) as i64 / 100;
        if let Ok(mut last) = shown.lock() {
            if step > *last {
                *last = step;
                let mut out = std::io::stdout().lock();
                let _ = write!(out, "    ({pct:.2}/100%)\r");
                let _ = out.flush();
            }
        }
    };
    if c.progress && !c.quiet {
        print!("    (0.00/100%)\r");
    }
    let options = ConvertOptions::new()
        .write_options(write)
        .replace_existing(true)
        .space_check(false);
    let result = ovf_disk::output::convert(&disk, &c.dst, &format, &options, &tick)
        .map(|_| ())
        .map_err(|e| e.to_string());
    if c.progress && !c.quiet && result.is_ok() {
        println!("    (100.00/100%)");
    }
    Some(result)
}

/// The real qemu-img: `$QEMU_IMG`, or the first `qemu-img` on `PATH` that is not this program.
fn real_qemu_img() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("QEMU_IMG") {
        return Some(PathBuf::from(p));
    }
    let me = std::env::current_exe()
        .ok()
        .and_then(|p| p.canonicalize().ok());
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("qemu-img"))
        .filter(|p| p.is_file())
        .find(|p| p.canonicalize().ok() != me)
}

/// Runs the real qemu-img with `args`: its exit status.
fn pass_through(args: &[OsString]) -> ExitCode {
    let Some(qemu) = real_qemu_img() else {
        eprintln!("vmdk-img: this is not a command vmdk-img handles, and no qemu-img was found (set QEMU_IMG)");
        return ExitCode::FAILURE;
    };
    match std::process::Command::new(&qemu).args(args).status() {
        Ok(s) => ExitCode::from(s.code().map_or(1, |c| u8::try_from(c).unwrap_or(1))),
        Err(e) => {
            eprintln!("vmdk-img: running {}: {e}", qemu.display());
            ExitCode::FAILURE
        }
    }
}

/// What `measure` was asked, when this program handles it.
#[derive(Debug, Default)]
struct MeasureArgs {
    json: bool,
    from: Option<String>,
    to: Option<String>,
    options: Vec<(String, String)>,
    size: Option<u64>,
    src: Option<PathBuf>,
}

/// Parses `measure`'s arguments; `None` for what is left to qemu-img.
fn parse_measure(args: &[OsString]) -> Option<MeasureArgs> {
    let mut m = MeasureArgs::default();
    let mut it = args.iter().map(|a| a.to_str()).peekable();
    while let Some(arg) = it.next() {
        let arg = arg?;
        let mut value = || it.next().flatten().map(str::to_string);
        match arg {
            "--output=json" => m.json = true,
            "--output=human" => m.json = false,
            "--output" => m.json = value()? == "json",
            "-f" => m.from = Some(value()?),
            "-O" => m.to = Some(value()?),
            "-o" => {
                for kv in value()?.split(',') {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, "on"));
                    m.options.push((k.to_string(), v.to_string()));
                }
            }
            "--size" => m.size = Some(parse_size(&value()?)?),
            a if a.starts_with('-') => return None,
            a if m.src.is_none() => m.src = Some(PathBuf::from(a)),
            _ => return None,
        }
    }
    (m.src.is_some() != m.size.is_some()).then_some(m)
}

/// Runs `measure` with `ovf_disk::output::measure`: `None` when the output format, an option
/// or the source is one this program leaves to qemu-img.
fn measure(m: &MeasureArgs) -> Option<Result<(), String>> {
    let format = match m.to.as_deref().unwrap_or("raw") {
        "raw" => Format::Raw,
        "qcow2" => Format::Qcow2,
        _ => return None,
    };
    let mut cluster = 65536;
    let mut prealloc = vmdk::Preallocation::Off;
    for (k, v) in &m.options {
        match (k.as_str(), v.as_str()) {
            ("compat", "1.1" | "v3") => {}
            ("cluster_size", size) if format == Format::Qcow2 => cluster = parse_size(size)?,
            ("preallocation", "off") => {}
            ("preallocation", "metadata") => prealloc = vmdk::Preallocation::Metadata,
            ("preallocation", "falloc") => prealloc = vmdk::Preallocation::Falloc,
            ("preallocation", "full") => prealloc = vmdk::Preallocation::Full,
            _ => return None,
        }
    }
    let disk = match &m.src {
        None => None,
        Some(src) => Some(match open_source(src, m.from.as_deref())? {
            Ok(d) => d,
            Err(e) => return Some(Err(e)),
        }),
    };
    let found = ovf_disk::output::measure(
        disk.as_ref(),
        m.size.unwrap_or(0),
        &format,
        cluster,
        prealloc,
    );
    let found = match found {
        Ok(f) => f,
        Err(e) => return Some(Err(e.to_string())),
    };
    let mut out = std::io::stdout().lock();
    let written = if m.json {
        // qemu-img's layout: four spaces, a newline at the end.
        report::pretty(&found)
            .and_then(|text| out.write_all(text.as_bytes()).map_err(|e| e.to_string()))
    } else {
        let mut text = format!(
            "required size: {}\nfully allocated size: {}\n",
            found.required, found.fully_allocated
        );
        if let Some(b) = found.bitmaps {
            text.push_str(&format!("bitmaps size: {b}\n"));
        }
        out.write_all(text.as_bytes()).map_err(|e| e.to_string())
    };
    Some(written)
}

/// Opens `src` as `-f` says (`None`: a VMDK, a qcow2 image, or raw), `None` when the file is
/// of another format than asked, or of one left to qemu-img.
fn open_source(src: &std::path::Path, from: Option<&str>) -> Option<Result<vmdk::Disk, String>> {
    let open = vmdk::OpenOptions::new();
    let disk = match from {
        None => open.open_vmdk_or_raw(src),
        Some("raw") => open.open_raw(src),
        Some("vmdk" | "qcow2") => open.open(src),
        Some(_) => return None,
    };
    let disk = match disk {
        Ok(d) => d,
        Err(e) if matches!(e.kind(), vmdk::ErrorKind::OtherFormat(_)) => return None,
        Err(e) => return Some(Err(e.to_string())),
    };
    let is_qcow2 = disk.create_type().as_str() == "qcow2";
    match from {
        Some("qcow2") if !is_qcow2 => None,
        Some("vmdk") if is_qcow2 => None,
        _ => Some(Ok(disk)),
    }
}

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let handled = match args.split_first() {
        Some((cmd, rest)) if cmd == "convert" => parse_convert(rest)
            .and_then(|c| convert(&c))
            .map(|r| r.map(|()| 0)),
        Some((cmd, rest)) if cmd == "measure" => parse_measure(rest)
            .and_then(|m| measure(&m))
            .map(|r| r.map(|()| 0)),
        Some((cmd, rest)) if cmd == "compare" => {
            report::parse_compare(rest).and_then(|c| report::run_compare(&c))
        }
        Some((cmd, rest)) if matches!(cmd.to_str(), Some("info" | "map" | "check")) => {
            let cmd = cmd.to_str().unwrap_or_default();
            report::parse(cmd, rest).and_then(|a| report::run(cmd, &a))
        }
        _ => None,
    };
    match handled {
        None => pass_through(&args),
        Some(Ok(code)) => ExitCode::from(code),
        Some(Err(e)) => {
            eprintln!("qemu-img: {e}");
            ExitCode::FAILURE
        }
    }
}
