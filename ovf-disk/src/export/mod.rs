//! Exporting an OVA: an OVF and its disks (or bare disks, with an envelope made for them),
//! every disk converted to a stream-optimized VMDK in VMware's layout on the way, the other
//! files the envelope names carried as they are, a manifest, optionally a signature, and the
//! members in the order importers expect: descriptor, manifest, certificate, then the files
//! (DSP0243 §5.3). Options ([`Options`]): the manifest's algorithm and spelling, signing,
//! gzip-compressed disk files and chunks (DSP0243 §7.1: `ovf:compression`, `ovf:chunkSize`,
//! members `NAME.000000000`, `NAME.000000001`, ...). Members are plain ustar entries: a name
//! longer than ustar's 100 bytes is refused rather than written as a GNU extension.
//!
//! The archive is written under a temporary name and renamed into place only when complete;
//! the converted disks are staged beside it and removed.

pub(crate) mod fix;

pub use fix::{fix, FixOptions, FixReport};

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::output::convert::ConvertOptions;
use crate::output::{check_target, remove_leftovers, PendingFile};
use crate::package::ova::write_ova;
use crate::package::Package;
use ovf::manifest::{digest, Algorithm, Entry, Manifest};
use ovf::write::{edit_envelope, envelope_for_disks, vmdk_format, EnvelopeEdits, Storage};

/// One member of an exported archive.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Member {
    /// Its name.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
}

/// What [`export`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Report {
    /// The archive.
    pub ova: PathBuf,
    /// Its members in order.
    pub members: Vec<Member>,
}

/// How a manifest's lines are spelled.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ManifestStyle {
    /// `SHA256(name)= hex`, as ovftool and vSphere write it (and the only form ESXi reads).
    #[default]
    Vmware,
    /// `SHA256 (name) = hex`, the BSD tag form of `sha256sum --tag` and VirtualBox.
    Tag,
}

/// Options of [`export`]: how disks are converted, and how the package is stored.
///
/// ```
/// let options = ovf_disk::export::Options::new()
///     .manifest(ovf_disk::ovf::manifest::Algorithm::Sha1)
///     .compress(true)
///     .chunk_size(1 << 30)
///     .unwrap();
/// # let _ = options;
/// ```
#[derive(Clone, Debug, Default)]
pub struct Options {
    convert: ConvertOptions,
    algorithm: Algorithm,
    style: ManifestStyle,
    signing: Option<(PathBuf, Option<PathBuf>)>,
    chunk_size: Option<u64>,
    compress: bool,
    /// The `VirtualSystemType` every system gets (`fix`).
    pub(crate) system_type: Option<String>,
    /// Hardware items `fix` repairs or removes.
    pub(crate) devices: DeviceFixes,
    /// Write an OVF 2.x envelope as 1.x (`fix` for Workstation).
    pub(crate) downgrade: bool,
}

impl Options {
    /// The defaults: a SHA256 manifest spelled as VMware writes it, unsigned, whole and
    /// uncompressed disk files.
    pub fn new() -> Self {
        Self::default()
    }

    /// How disks are converted (threads, compression level) and whether `out` is replaced.
    pub fn convert_options(mut self, convert: ConvertOptions) -> Self {
        self.convert = convert;
        self
    }

    /// The manifest's algorithm (SHA1 for vSphere 5.5 and older Workstation).
    pub fn manifest(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// The manifest's spelling.
    pub fn manifest_style(mut self, style: ManifestStyle) -> Self {
        self.style = style;
        self
    }

    /// Signs the manifest with the RSA private key in the PEM file `key` and carries the
    /// certificate from `cert` (or from `key`, when it holds both, as ovftool's
    /// `--privateKey` file does) in `NAME.cert`, with the manifest's algorithm.
    pub fn sign(mut self, key: impl Into<PathBuf>, cert: Option<PathBuf>) -> Self {
        self.signing = Some((key.into(), cert));
        self
    }

    /// Splits each disk file into chunks of `bytes` (a multiple of 512, at least 512).
    pub fn chunk_size(mut self, bytes: u64) -> Result<Self> {
        if bytes < 512 || bytes % 512 != 0 {
            return Err(Error::InvalidInput(format!(
                "a chunk size of {bytes} bytes: it must be a multiple of 512"
            )));
        }
        self.chunk_size = Some(bytes);
        Ok(self)
    }

    /// Stores each disk file gzip-compressed (`ovf:compression="gzip"`).
    pub fn compress(mut self, compress: bool) -> Self {
        self.compress = compress;
        self
    }
}

/// `e`, labelled with the input disk it is about unless it already names that file.
fn about(e: Error, input: &Path) -> Error {
    match e {
        Error::Disk { disk: None, error } if error.path() != Some(input) => Error::Disk {
            disk: Some(input.display().to_string()),
            error,
        },
        other => other,
    }
}

/// A staged disk file: a temporary file (`.NAME.export.ovf-disk-partial`, locked while the
/// export runs, so a killed export's leftovers are recognised), removed when dropped.
struct Staged(PendingFile);

impl Staged {
    fn path(&self) -> &Path {
        self.0.temp_path()
    }
}

/// A file of the package: its name in the envelope, and where its bytes come from.
enum Source {
    /// A disk converted and staged.
    Staged(Staged),
    /// A file of the source package carried as it is (an ISO, an NVRAM file).
    Carried(PathBuf),
}

impl Source {
    fn path(&self) -> &Path {
        match self {
            Self::Staged(s) => s.path(),
            Self::Carried(p) => p,
        }
    }
}

/// Exports `inputs` to `out` (an `.ova`): either one `.ovf` (its disks converted, its other
/// files carried), or disks (any VMDK or raw image), for which an envelope is made. `progress`
/// is called with bytes of the disks as they are converted.
///
/// ```no_run
/// # fn main() -> ovf_disk::Result<()> {
/// let inputs = [std::path::PathBuf::from("disk.raw")];
/// let report = ovf_disk::export::export(&inputs, "appliance.ova".as_ref(), &ovf_disk::export::Options::new(), &|_| {})?;
/// for m in &report.members {
///     println!("{} ({} bytes)", m.name, m.size);
/// }
/// # Ok(())
/// # }
/// ```
pub fn export(
    inputs: &[PathBuf],
    out: &Path,
    options: &Options,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Report> {
    let folder = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    check_target(out, inputs, options.convert.replace)?;
    export_into(inputs, out, &folder, None, options, progress)
}

/// [`export`] to a writer instead of a file (an upload, a pipe): the archive is written to
/// `writer` in one pass, named `out` in the report and in errors; the disks are staged in
/// `staging` (a local folder with room for them, stream-optimized) first. The caller makes
/// the writer's result final (an upload's finish) only when this succeeds.
pub fn export_to_writer(
    inputs: &[PathBuf],
    out: &Path,
    staging: &Path,
    writer: &mut dyn Write,
    options: &Options,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Report> {
    export_into(inputs, out, staging, Some(writer), options, progress)
}

/// [`export`] and [`export_to_writer`]: staged in `folder`, written to `writer` or `out`.
fn export_into(
    inputs: &[PathBuf],
    out: &Path,
    folder: &Path,
    writer: Option<&mut dyn Write>,
    options: &Options,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Report> {
    let convert = &options.convert;
    let folder = folder.to_path_buf();
    remove_leftovers(&folder)?;
    // The signing key and certificate are read first: a bad one fails before any work.
    let signing = match &options.signing {
        None => None,
        Some((key, cert)) => {
            let key_pem = std::fs::read_to_string(key).map_err(Error::io(key))?;
            let cert_pem = match cert {
                Some(c) => std::fs::read_to_string(c).map_err(Error::io(c))?,
                None => key_pem.clone(),
            };
            Some((key_pem, cert_pem))
        }
    };
    // Each disk becomes a stream-optimized file beside the archive (gzip-compressed when
    // asked), its embedded descriptor naming it as the archive's member does.
    let stage = |disk: &vmdk::Disk, name: &str, src: &Path| -> Result<(Staged, u64)> {
        let staged = Staged(PendingFile::create(
            &folder.join(format!("{name}.export")),
            true,
        )?);
        let tmp = staged.path().to_path_buf();
        let file = staged.0.file();
        let write = convert.write.clone().extent_name(name);
        let w = write_behind::WriteBehind::new(file);
        if options.compress {
            let mut gz = flate2::write::GzEncoder::new(w, flate2::Compression::default());
            vmdk::write_stream_optimized(disk, &mut gz, &write, progress)
                .map_err(|e| about(e.into(), src))?;
            gz.finish()
                .and_then(|mut w| w.flush())
                .map_err(Error::io(&tmp))?;
        } else {
            let mut w = w;
            vmdk::write_stream_optimized(disk, &mut w, &write, progress)
                .map_err(|e| about(e.into(), src))?;
            w.flush().map_err(Error::io(&tmp))?;
        }
        let size = file.metadata().map_err(Error::io(&tmp))?.len();
        Ok((staged, size))
    };
    let storage = Storage {
        compression: options.compress.then(|| "gzip".to_string()),
        chunk_size: options.chunk_size,
    };
    let is_package = inputs.len() == 1
        && inputs.first().is_some_and(|p| {
            p.extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("ovf") || e.eq_ignore_ascii_case("ova"))
        });
    let (descriptor_name, text, files) = if is_package {
        let ovf = inputs.first().cloned().unwrap_or_default();
        stage_package(&ovf, &stage, &storage, options, &folder)?
    } else {
        stage_disks(inputs, out, &stage, &storage)?
    };
    write_archive(
        out,
        writer,
        &descriptor_name,
        text,
        &files,
        options,
        signing.as_ref(),
    )
}

/// The files of a package staged: (name, source, stored chunked).
type Staged3 = Vec<(String, Source, bool)>;

/// Stages a disk (read from the input file named last) as the member named: its staged file
/// and size.
type StageFn<'a> = dyn Fn(&vmdk::Disk, &str, &Path) -> Result<(Staged, u64)> + 'a;

/// The disks of the package at `ovf` (an `.ovf` or an `.ova`) staged as stream-optimized files,
/// its other files carried (copied beside the output, for an OVA), and its envelope pointing
/// at them.
fn stage_package(
    ovf: &Path,
    stage: &StageFn<'_>,
    storage: &Storage,
    options: &Options,
    folder: &Path,
) -> Result<(String, String, Staged3)> {
    let pkg = Package::open(ovf)?;
    let text = String::from_utf8(pkg.read_small(pkg.descriptor())?).map_err(|_| {
        Error::Ovf(ovf::Error::Envelope {
            path: ovf.to_path_buf(),
            line: None,
            reason: "not UTF-8".into(),
        })
    })?;
    let mut files = Vec::new();
    // The hrefs already carried.
    let mut done: Vec<String> = Vec::new();
    let mut edits = EnvelopeEdits::new();
    let env = pkg.envelope();
    for disk in &env.disks {
        let Some(file) = env.file_of(disk) else {
            continue;
        };
        let vdisk = pkg.open_disk(&file.href).map_err(|e| about(e, ovf))?;
        // Members are plain names: `disks/data.vmdk` becomes `disks_data.vmdk`.
        let name = crate::output::flat_name(&file.href);
        let (s, size) = stage(&vdisk, &name, ovf)?;
        edits.stored_file(&file.href, &name, size, storage.clone());
        files.push((name, Source::Staged(s), storage.chunk_size.is_some()));
        done.push(file.href.clone());
    }
    // The other files the envelope names (ISOs, NVRAM), as they are; a chunked or compressed
    // one is read whole and stored plainly.
    for f in &env.files {
        if done.contains(&f.href) {
            continue;
        }
        pkg.not_followed(&f.href).map_or(Ok(()), |reason| {
            Err(Error::Outside {
                path: ovf.to_path_buf(),
                href: f.href.clone(),
                reason,
            })
        })?;
        let name = crate::output::flat_name(&f.href);
        let Some(size) = pkg
            .size(&f.href)
            .filter(|_| !f.is_compressed() && f.chunk_size.is_none())
        else {
            return Err(Error::Unsupported {
                disk: f.href.clone(),
                what: "carrying a file that is compressed, chunked or missing".into(),
            });
        };
        edits.file(&f.href, &name, size);
        let path = pkg.member_path(&f.href);
        if path.is_file() {
            files.push((name, Source::Carried(path), false));
        } else {
            // A member of an OVA: copied beside the output while the archive is written.
            let staged = Staged(PendingFile::create(
                &folder.join(format!("{name}.export")),
                true,
            )?);
            let mut r = pkg.reader(&f.href)?;
            std::io::copy(&mut r, &mut staged.0.file()).map_err(Error::io(staged.path()))?;
            files.push((name, Source::Staged(staged), false));
        }
        done.push(f.href.clone());
    }
    if let Some(t) = &options.system_type {
        edits.system_type(move |old| (old != t).then(|| t.clone()));
    }
    let devices = options.devices;
    if devices != DeviceFixes::default() {
        edits.items(move |item| devices.edit(item));
    }
    // Every disk is stream-optimized now, whatever the source said.
    edits.format(vmdk_format("streamOptimized"));
    let mut text = edit_envelope(&text, &edits).map_err(|e| e.in_envelope(ovf, &text))?;
    if options.downgrade {
        text = ovf::write::downgrade_envelope(&text).map_err(|reason| {
            Error::Ovf(ovf::Error::Envelope {
                path: ovf.to_path_buf(),
                line: None,
                reason: format!("cannot be written as OVF 1.x: {reason}"),
            })
        })?;
    }
    Ok((pkg.descriptor().to_string(), text, files))
}

/// Bare disks staged as stream-optimized files named after `out`, and an envelope for them.
fn stage_disks(
    inputs: &[PathBuf],
    out: &Path,
    stage: &StageFn<'_>,
    storage: &Storage,
) -> Result<(String, String, Staged3)> {
    let base = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "export".into());
    let mut disks = Vec::new();
    let mut files = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        let vdisk = vmdk::OpenOptions::new()
            .open_vmdk_or_raw(input)
            .map_err(|e| about(e.into(), input))?;
        let name = format!("{base}-disk{}.vmdk", i + 1);
        let (s, size) = stage(&vdisk, &name, input)?;
        disks.push((name.clone(), size, vdisk.capacity()));
        files.push((name, Source::Staged(s), storage.chunk_size.is_some()));
    }
    let path = out.with_extension("ovf");
    let bad = |reason: String| {
        Error::Ovf(ovf::Error::Envelope {
            path: path.clone(),
            line: None,
            reason,
        })
    };
    let mut envelope = envelope_for_disks(&base, &disks).map_err(|e| bad(e.reason))?;
    if *storage != Storage::default() {
        let mut edits = EnvelopeEdits::new();
        for (name, size, _) in &disks {
            edits.stored_file(name, name, *size, storage.clone());
        }
        envelope = edit_envelope(&envelope, &edits).map_err(|e| bad(e.reason))?;
    }
    Ok((format!("{base}.ovf"), envelope, files))
}

/// A part of a file: `len` bytes from `offset`.
struct Part {
    file: File,
    left: u64,
}

impl Read for Part {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let k = self.file.read(buf.split_at_mut(n.min(buf.len())).0)?;
        self.left -= k as u64;
        Ok(k)
    }
}

/// Opens `len` bytes of `path` from `offset`.
fn part(path: &Path, offset: u64, len: u64) -> Result<Part> {
    let mut file = File::open(path).map_err(Error::io(path))?;
    file.seek(SeekFrom::Start(offset))
        .map_err(Error::io(path))?;
    Ok(Part { file, left: len })
}

/// The members a file is stored as: itself, or its chunks `NAME.000000000`, ... of
/// `chunk_size` bytes (the last one shorter): (member name, offset, length).
fn members_of(name: &str, size: u64, chunk_size: Option<u64>) -> Vec<(String, u64, u64)> {
    match chunk_size {
        None => vec![(name.to_string(), 0, size)],
        Some(c) => {
            let count = size.div_ceil(c).max(1);
            (0..count)
                .map(|i| {
                    let offset = i * c;
                    (format!("{name}.{i:09}"), offset, c.min(size - offset))
                })
                .collect()
        }
    }
}

/// Writes the archive: the descriptor, the manifest of it and every member, the certificate
/// when signing, the files.
fn write_archive(
    out: &Path,
    writer: Option<&mut dyn Write>,
    descriptor_name: &str,
    text: String,
    files: &[(String, Source, bool)],
    options: &Options,
    signing: Option<&(String, String)>,
) -> Result<Report> {
    let algorithm = options.algorithm;
    let mut manifest = Manifest::default();
    manifest.entries.push(Entry::new(
        algorithm,
        descriptor_name.to_string(),
        digest(algorithm, &mut text.as_bytes()).map_err(Error::io(out))?,
    ));
    // Each file's members, digested.
    let mut stored = Vec::new();
    for (name, source, chunked) in files {
        let path = source.path();
        let size = std::fs::metadata(path).map_err(Error::io(path))?.len();
        let chunk = if *chunked { options.chunk_size } else { None };
        for (member, offset, len) in members_of(name, size, chunk) {
            let d = digest(algorithm, &mut part(path, offset, len)?).map_err(Error::io(path))?;
            manifest
                .entries
                .push(Entry::new(algorithm, member.clone(), d));
            stored.push((member, path.to_path_buf(), offset, len));
        }
    }
    let base = descriptor_name
        .rsplit_once('.')
        .map_or(descriptor_name, |(s, _)| s);
    let mf_name = format!("{base}.mf");
    let mf = match options.style {
        ManifestStyle::Vmware => manifest.print(),
        ManifestStyle::Tag => manifest
            .entries
            .iter()
            .map(|e| format!("{} ({}) = {}\n", e.algorithm.as_str(), e.name, e.digest))
            .collect(),
    };
    let cert = match signing {
        None => None,
        Some((key, cert)) => Some(
            crate::package::signature::sign(mf.as_bytes(), &mf_name, algorithm, key, cert)
                .map_err(|why| {
                    let key = options
                        .signing
                        .as_ref()
                        .map_or_else(PathBuf::new, |(k, _)| k.clone());
                    Error::InvalidInput(format!("signing with {}: {why}", key.display()))
                })?,
        ),
    };
    let mut members: Vec<(String, u64, Box<dyn Read>)> = vec![
        (
            descriptor_name.to_string(),
            text.len() as u64,
            Box::new(std::io::Cursor::new(text.into_bytes())),
        ),
        (
            mf_name,
            mf.len() as u64,
            Box::new(std::io::Cursor::new(mf.into_bytes())),
        ),
    ];
    if let Some(c) = cert {
        members.push((
            format!("{base}.cert"),
            c.len() as u64,
            Box::new(std::io::Cursor::new(c.into_bytes())),
        ));
    }
    for (member, path, offset, len) in stored {
        members.push((member, len, Box::new(part(&path, offset, len)?)));
    }
    let listed = members
        .iter()
        .map(|(name, size, _)| Member {
            name: name.clone(),
            size: *size,
        })
        .collect();
    write_members(out, writer, members, options.convert.replace)?;
    Ok(Report {
        ova: out.to_path_buf(),
        members: listed,
    })
}

/// Writes the archive of `members` to `writer`, or to `out` under a temporary name moved into
/// place when complete.
fn write_members(
    out: &Path,
    writer: Option<&mut dyn Write>,
    members: Vec<(String, u64, Box<dyn Read + '_>)>,
    replace: bool,
) -> Result<()> {
    if let Some(writer) = writer {
        let w = write_ova(writer, members).map_err(Error::io(out))?;
        return w.flush().map_err(Error::io(out));
    }
    let pending = PendingFile::create(out, replace)?;
    let w = write_behind::WriteBehind::new(pending.file());
    let mut w = write_ova(w, members).map_err(Error::io(out))?;
    w.flush().map_err(Error::io(out))?;
    drop(w);
    pending.commit()
}

/// The hardware items `fix` repairs for VMware's products: IDE controllers' subtypes removed
/// (no meaning is lost: VMware has one IDE controller), and, when allowed, sound cards VMware
/// does not have removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct DeviceFixes {
    /// Remove the `ResourceSubType` of IDE controllers.
    pub ide_subtype: bool,
    /// Remove sound cards whose subtype is not VMware's.
    pub foreign_sound: bool,
    /// Remove `vmw:ExtraConfig` settings.
    pub extra_config: bool,
}

impl DeviceFixes {
    /// What happens to `item`.
    pub(crate) fn edit(&self, item: &ovf::write::ItemFacts) -> ovf::write::ItemEdit {
        use ovf::write::ItemEdit;
        if item.element == "ExtraConfig" {
            return match self.extra_config {
                true => ItemEdit::Remove,
                false => ItemEdit::Keep,
            };
        }
        match item.resource_type {
            Some(5) if self.ide_subtype && item.subtype.is_some() => ItemEdit::RemoveSubtype,
            Some(35)
                if self.foreign_sound
                    && crate::rules::lint::foreign_sound(item.subtype.as_deref()) =>
            {
                ItemEdit::Remove
            }
            _ => ItemEdit::Keep,
        }
    }
}
