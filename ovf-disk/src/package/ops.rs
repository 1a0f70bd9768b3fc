//! Operations on a whole package, from an `.ovf` file (with its files beside it) or an `.ova`
//! archive (read in place): open, verify the manifest, import every disk to an eager-zeroed
//! thick disk.
//!
//! Import verifies first and stops at any mismatch; disks are inflated with the copy engine
//! straight from the package (in place for an OVA) and written under temporary names; if any
//! step fails, every output already written is removed, so OUTDIR never holds a partial import.
//! Not supported yet, with a clear error: gzip-compressed and chunked disk files, and checking
//! the signature of a `.cert` (its presence is reported).

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::envelope::Envelope;
use super::envelope::FileRef;
use super::manifest::{digest, Algorithm, Manifest, Outcome};
use super::ova::{OvaFiles, OvaIndex, MAX_MEMBERS};
use super::{is_plain_name, PackageError};
use crate::inflate::{
    inflate, inflate_stream, within_declared, InflateError, InflateOptions, OutputFormat,
};

/// Where a package's files are.
#[derive(Clone, Debug)]
pub enum Source {
    /// An `.ovf` and the files in its folder.
    Folder(PathBuf),
    /// An `.ova` archive.
    Ova(Arc<OvaIndex>),
}

/// An open package.
#[derive(Clone, Debug)]
pub struct Package {
    /// The path the user named.
    pub path: PathBuf,
    /// Where its files are.
    pub source: Source,
    /// The descriptor's file name.
    pub descriptor: String,
    /// The parsed envelope.
    pub envelope: Envelope,
    /// The manifest's file name and contents, if the package has one.
    pub manifest: Option<(String, Manifest)>,
    /// The certificate's file name, if the package is signed.
    pub certificate: Option<String>,
}

/// The outcome of [`Package::verify`].
#[derive(Clone, Debug, Default)]
pub struct VerifyReport {
    /// The manifest's name, if any.
    pub manifest: Option<String>,
    /// Each listed file: name, algorithm, outcome.
    pub files: Vec<(String, Algorithm, Outcome)>,
    /// Files the envelope references that the manifest does not list.
    pub unlisted: Vec<String>,
    /// The certificate's name, when the package is signed.
    pub certificate: Option<String>,
    /// The signature check: `Ok(signer)` when the certificate's signature covers the manifest
    /// (the certificate is not checked against a trust store), `Err(reason)` otherwise.
    pub signature: Option<Result<String, String>>,
}

impl VerifyReport {
    /// Whether there is a manifest, every listed file matches, it covers every reference, and
    /// the signature, if the package is signed, covers the manifest.
    pub fn is_ok(&self) -> bool {
        self.manifest.is_some()
            && self.files.iter().all(|(_, _, o)| *o == Outcome::Ok)
            && self.unlisted.is_empty()
            && !matches!(self.signature, Some(Err(_)))
    }
}

/// Why an import failed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The package could not be read.
    #[error(transparent)]
    Package(#[from] PackageError),
    /// The manifest does not match: nothing was written.
    #[error("{0}: verification failed, nothing was imported")]
    Verification(PathBuf),
    /// A disk could not be read or written.
    #[error("disk {disk}: {source}")]
    Disk {
        /// The disk's id.
        disk: String,
        /// What went wrong.
        #[source]
        source: Box<InflateError>,
    },
    /// A disk file uses a feature not read yet.
    #[error("disk {0}: {1} is not supported yet")]
    Unsupported(String, String),
}

const MAX_SMALL: u64 = 16 << 20;

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PackageError + '_ {
    move |source| PackageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Package {
    /// Opens an `.ovf` or `.ova` (by extension; an `.ova` may also be recognised by content).
    pub fn open(path: &Path) -> Result<Self, PackageError> {
        let is_ova = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("ova"));
        let (source, descriptor, text) = if is_ova {
            let index = Arc::new(OvaIndex::open(path)?);
            let first = index
                .members()
                .first()
                .cloned()
                .ok_or_else(|| PackageError::Missing {
                    path: path.to_path_buf(),
                    name: "an OVF descriptor".into(),
                })?;
            let bytes = index.read_small(&first, MAX_SMALL)?;
            (Source::Ova(index), first.name, bytes)
        } else {
            let folder = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let meta = std::fs::metadata(path).map_err(io(path))?;
            if meta.len() > MAX_SMALL {
                return Err(PackageError::Envelope {
                    path: path.to_path_buf(),
                    line: None,
                    reason: "larger than 16 MiB".into(),
                });
            }
            (
                Source::Folder(folder),
                name,
                std::fs::read(path).map_err(io(path))?,
            )
        };
        let text = String::from_utf8(text).map_err(|_| PackageError::Envelope {
            path: path.to_path_buf(),
            line: None,
            reason: "not UTF-8".into(),
        })?;
        let envelope = Envelope::parse(&text, &path.join(&descriptor))?;
        let mut pkg = Self {
            path: path.to_path_buf(),
            source,
            descriptor: descriptor.clone(),
            envelope,
            manifest: None,
            certificate: None,
        };
        let stem = descriptor
            .rsplit_once('.')
            .map_or(descriptor.as_str(), |(s, _)| s)
            .to_string();
        let mf = format!("{stem}.mf");
        if pkg.size(&mf).is_some() {
            let mut bytes = Vec::new();
            pkg.reader(&mf)?
                .take(MAX_SMALL)
                .read_to_end(&mut bytes)
                .map_err(io(path))?;
            let text = String::from_utf8(bytes).map_err(|_| PackageError::Manifest {
                path: path.join(&mf),
                line: 0,
                reason: "not UTF-8".into(),
            })?;
            pkg.manifest = Some((mf.clone(), Manifest::parse(&text, &path.join(&mf))?));
        }
        let cert = format!("{stem}.cert");
        if pkg.size(&cert).is_some() {
            pkg.certificate = Some(cert);
        }
        Ok(pkg)
    }

    /// The size of a file of the package, if it is there.
    pub fn size(&self, name: &str) -> Option<u64> {
        if !is_plain_name(name) {
            return None;
        }
        match &self.source {
            Source::Folder(dir) => std::fs::metadata(dir.join(name))
                .ok()
                .filter(|m| m.is_file())
                .map(|m| m.len()),
            Source::Ova(index) => index.get(name).map(|m| m.size),
        }
    }

    /// Reads a file of the package.
    pub fn reader(&self, name: &str) -> Result<Box<dyn Read>, PackageError> {
        let missing = || PackageError::Missing {
            path: self.path.clone(),
            name: name.to_string(),
        };
        if !is_plain_name(name) {
            return Err(missing());
        }
        match &self.source {
            Source::Folder(dir) => {
                let p = dir.join(name);
                Ok(Box::new(File::open(&p).map_err(|_| missing())?))
            }
            Source::Ova(index) => Ok(Box::new(index.reader(index.get(name).ok_or_else(missing)?))),
        }
    }

    /// Checks every file the manifest lists, and which references it does not cover.
    pub fn verify(&self, progress: &dyn Fn(&str)) -> Result<VerifyReport, PackageError> {
        let mut report = VerifyReport {
            certificate: self.certificate.clone(),
            ..VerifyReport::default()
        };
        let Some((name, manifest)) = &self.manifest else {
            return Ok(report);
        };
        report.manifest = Some(name.clone());
        if let Some(cert) = &self.certificate {
            let text = String::from_utf8(read_all(self, cert)?).unwrap_or_default();
            report.signature = Some(
                match super::cert::CertificateFile::parse(&text, &self.path.join(cert)) {
                    Err(e) => Err(e.to_string()),
                    Ok(c) if c.signed_file != *name => Err(format!(
                        "the certificate signs {}, not the manifest {name}",
                        c.signed_file
                    )),
                    Ok(c) => c.verify(&read_all(self, name)?).map(|()| c.subject()),
                },
            );
        }
        for e in &manifest.entries {
            progress(&e.name);
            let outcome = match self.reader(&e.name) {
                Err(_) => Outcome::Missing,
                Ok(mut r) => {
                    let found = digest(e.algorithm, &mut r).map_err(io(&self.path))?;
                    Outcome::of(&e.digest, found)
                }
            };
            report.files.push((e.name.clone(), e.algorithm, outcome));
        }
        for f in &self.envelope.files {
            if manifest.get(&f.href).is_none() {
                report.unlisted.push(f.href.clone());
            }
        }
        if manifest.get(&self.descriptor).is_none() {
            report.unlisted.push(self.descriptor.clone());
        }
        Ok(report)
    }

    /// Where the disk file `href` is for the `vmdk` readers: its path and `base` with the files
    /// it names taken from the package (the folder, or the OVA's members in place).
    pub fn disk_location(
        &self,
        href: &str,
        base: &vmdk::OpenOptions,
    ) -> (PathBuf, vmdk::OpenOptions) {
        match &self.source {
            Source::Folder(dir) => (dir.join(href), base.clone()),
            Source::Ova(index) => (
                PathBuf::from(href),
                vmdk::OpenOptions {
                    files: Arc::new(OvaFiles(index.clone())),
                    ..base.clone()
                },
            ),
        }
    }

    /// Opens the disk file `href` in place.
    pub fn open_disk(&self, href: &str) -> Result<vmdk::Disk, vmdk::Error> {
        let (path, options) = self.disk_location(href, &vmdk::OpenOptions::default());
        vmdk::Disk::open_with(path, &options)
    }
}

/// The capacity `disk` declares in bytes, which bounds what an import writes; an envelope
/// whose `ovf:capacity` and units do not give one is refused.
pub(crate) fn declared(disk: &super::envelope::Disk, path: &Path) -> Result<u64, PackageError> {
    disk.capacity_bytes.ok_or_else(|| PackageError::Envelope {
        path: path.to_path_buf(),
        line: None,
        reason: format!(
            "disk {}: ovf:capacity {:?} in units {:?} is not a number of bytes",
            disk.disk_id,
            disk.capacity,
            disk.capacity_units.as_deref().unwrap_or("byte")
        ),
    })
}

/// What [`import`] wrote.
#[derive(Clone, Debug, Default)]
pub struct ImportReport {
    /// The verification done first.
    pub verify: VerifyReport,
    /// Per disk: its id, the package file it came from, and the files written.
    pub disks: Vec<(String, String, Vec<PathBuf>)>,
    /// The new descriptor, referencing the thick disks.
    pub descriptor: PathBuf,
}

/// Imports `pkg` into `outdir`: verifies it (a mismatch stops the import before anything is
/// written), inflates every disk to an eager-zeroed thick VMDK (or raw), and writes an OVF whose
/// references name the thick disks. On any failure, what was written is removed.
pub fn import(
    pkg: &Package,
    outdir: &Path,
    raw: bool,
    options: &InflateOptions,
    progress: &(dyn Fn(&str, u64) + Sync),
) -> Result<ImportReport, ImportError> {
    let verify = pkg.verify(&|name| progress(name, 0))?;
    let failed = verify.files.iter().any(|(_, _, o)| *o != Outcome::Ok)
        || matches!(verify.signature, Some(Err(_)));
    if failed {
        return Err(ImportError::Verification(pkg.path.clone()));
    }
    std::fs::create_dir_all(outdir).map_err(|e| PackageError::Io {
        path: outdir.to_path_buf(),
        source: e,
    })?;
    let mut written: Vec<PathBuf> = Vec::new();
    let result = (|| -> Result<ImportReport, ImportError> {
        let mut report = ImportReport {
            verify: verify.clone(),
            ..ImportReport::default()
        };
        let mut text = String::from_utf8(read_all(pkg, &pkg.descriptor)?).map_err(|_| {
            PackageError::Envelope {
                path: pkg.path.clone(),
                line: None,
                reason: "not UTF-8".into(),
            }
        })?;
        for disk in &pkg.envelope.disks {
            let Some(file) = pkg.envelope.file_of(disk) else {
                continue;
            };
            let (out, format) = output_for(outdir, &file.href, raw);
            let id = disk.disk_id.clone();
            let to_err = |source: InflateError| ImportError::Disk {
                disk: disk.disk_id.clone(),
                source: Box::new(source),
            };
            let r = if file.is_compressed() || file.chunk_size.is_some() {
                // Stored compressed or in chunks: read as a stream, the output bounded by the
                // capacity the envelope declares.
                let mut reader = disk_stream(pkg, file, &disk.disk_id)?;
                let opts = InflateOptions {
                    max_capacity: Some(declared(disk, &pkg.path)?),
                    ..options.clone()
                };
                inflate_stream(&mut reader, &file.href, &out, format, &opts, &|n| {
                    progress(&id, n)
                })
                .map_err(to_err)?
            } else {
                let vdisk = pkg.open_disk(&file.href).map_err(|e| to_err(e.into()))?;
                within_declared(
                    &file.href,
                    "disk",
                    None,
                    vdisk.capacity(),
                    Some(declared(disk, &pkg.path)?),
                )
                .map_err(|e| to_err(e.into()))?;
                inflate(&vdisk, &out, format, options, &|n| progress(&id, n)).map_err(to_err)?
            };
            written.extend(r.files.iter().cloned());
            let new_name = out
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let new_size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
            text = rewrite_file_reference(&text, &file.href, &new_name, file.size, new_size);
            report
                .disks
                .push((disk.disk_id.clone(), file.href.clone(), r.files));
        }
        report.descriptor = write_descriptor(outdir, &pkg.descriptor, text, raw)?;
        Ok(report)
    })();
    if result.is_err() {
        for f in &written {
            let _ = std::fs::remove_file(f);
        }
    }
    result
}

/// Most chunks a chunked disk file may have (`href.000000000` onwards).
pub const MAX_CHUNKS: u32 = 100_000;

/// A package file as a stream of the disk it holds: its chunks (`href.000000000`, ...) in
/// order, gunzipped when `ovf:compression="gzip"` (DSP0243 §5.3).
pub(crate) fn disk_stream(
    pkg: &Package,
    file: &FileRef,
    disk: &str,
) -> Result<Box<dyn Read>, ImportError> {
    let base: Box<dyn Read> = if file.chunk_size.is_some() {
        let names: Vec<String> = (0..MAX_CHUNKS)
            .map(|i| format!("{}.{i:09}", file.href))
            .take_while(|name| pkg.size(name).is_some())
            .collect();
        if names.is_empty() {
            return Err(PackageError::Missing {
                path: pkg.path.clone(),
                name: format!("{}.000000000", file.href),
            }
            .into());
        }
        if pkg
            .size(&format!("{}.{MAX_CHUNKS:09}", file.href))
            .is_some()
        {
            return Err(ImportError::Unsupported(
                disk.to_string(),
                format!("a file in more than {MAX_CHUNKS} chunks"),
            ));
        }
        Box::new(Chunks {
            pkg: pkg.clone(),
            names: names.into_iter(),
            current: None,
        })
    } else {
        pkg.reader(&file.href)?
    };
    decompressed(base, file.compression.as_deref(), disk)
}

/// The chunks of a file read one after the other, each opened when the previous one ends.
struct Chunks {
    pkg: Package,
    names: std::vec::IntoIter<String>,
    current: Option<Box<dyn Read>>,
}

impl Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if let Some(r) = &mut self.current {
                let n = r.read(buf)?;
                if n > 0 || buf.is_empty() {
                    return Ok(n);
                }
            }
            match self.names.next() {
                None => return Ok(0),
                Some(name) => {
                    self.current = Some(self.pkg.reader(&name).map_err(std::io::Error::other)?)
                }
            }
        }
    }
}

/// A stored disk file as the disk's bytes: as is, or gunzipped for `ovf:compression="gzip"`.
fn decompressed<'a>(
    base: Box<dyn Read + 'a>,
    compression: Option<&str>,
    disk: &str,
) -> Result<Box<dyn Read + 'a>, ImportError> {
    match compression {
        None | Some("") | Some("identity") => Ok(base),
        Some("gzip") => Ok(Box::new(flate2::read::MultiGzDecoder::new(base))),
        Some(other) => Err(ImportError::Unsupported(
            disk.to_string(),
            format!("ovf:compression=\"{other}\""),
        )),
    }
}

/// The thick output for a disk file of the package: `STEM-thick.vmdk` or `STEM.raw`.
fn output_for(outdir: &Path, href: &str, raw: bool) -> (PathBuf, OutputFormat) {
    let stem = href.rsplit_once('.').map_or(href, |(s, _)| s);
    if raw {
        (outdir.join(format!("{stem}.raw")), OutputFormat::Raw)
    } else {
        (
            outdir.join(format!("{stem}-thick.vmdk")),
            OutputFormat::ThickVmdk,
        )
    }
}

/// Writes the imported package's descriptor (references already pointing at the thick disks)
/// into `outdir`, renamed into place when complete.
fn write_descriptor(
    outdir: &Path,
    name: &str,
    mut text: String,
    raw: bool,
) -> Result<PathBuf, ImportError> {
    if !raw {
        text = text.replace("vmdk.html#streamOptimized", "vmdk.html#monolithicFlat");
    }
    let out = outdir.join(name);
    let err = |e: &dyn std::fmt::Display| PackageError::Io {
        path: out.clone(),
        source: std::io::Error::other(e.to_string()),
    };
    let pending = crate::output::PendingFile::create(&out).map_err(|e| err(&e))?;
    std::io::Write::write_all(&mut pending.file(), text.as_bytes()).map_err(|e| err(&e))?;
    pending.commit().map_err(|e| err(&e))?;
    Ok(out)
}

fn read_all(pkg: &Package, name: &str) -> Result<Vec<u8>, PackageError> {
    let mut out = Vec::new();
    pkg.reader(name)?
        .take(MAX_SMALL)
        .read_to_end(&mut out)
        .map_err(io(&pkg.path))?;
    Ok(out)
}

/// Points a `File` element's `href` at `new` and its `size` at `new_size`.
pub(crate) fn rewrite_file_reference(
    text: &str,
    old: &str,
    new: &str,
    old_size: Option<u64>,
    new_size: u64,
) -> String {
    let needle = format!("href=\"{old}\"");
    let Some(at) = text.find(&needle) else {
        return text.to_string();
    };
    let start = text.get(..at).and_then(|t| t.rfind('<')).unwrap_or(at);
    let end = text
        .get(at..)
        .and_then(|t| t.find('>'))
        .map_or(text.len(), |e| at + e + 1);
    let (Some(head), Some(elem), Some(tail)) =
        (text.get(..start), text.get(start..end), text.get(end..))
    else {
        return text.to_string();
    };
    let mut elem = elem.replace(&needle, &format!("href=\"{new}\""));
    if let Some(size) = old_size {
        elem = elem.replace(&format!("size=\"{size}\""), &format!("size=\"{new_size}\""));
    }
    format!("{head}{elem}{tail}")
}

/// A reader that digests what passes through it.
struct Hashing<R> {
    inner: R,
    /// One digest when the manifest is known (its algorithm for this member), all three while
    /// it has not arrived yet (VirtualBox writes it after the disks).
    hashers: Vec<super::manifest::Hasher>,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for h in &mut self.hashers {
            h.update(buf.get(..n).unwrap_or(&[]));
        }
        Ok(n)
    }
}

/// Imports an OVA read as a stream (a pipe, standard input) in one pass, with no temporary copy:
/// the descriptor must come first and the manifest before the disks (as ovftool writes them);
/// each disk is digested while it is inflated straight out of the archive, and a mismatch, a
/// file the manifest does not list, or any error removes everything written. Disks must be
/// stream-optimized (possibly gzip-compressed); chunked files need the seekable import.
pub fn import_stream<R: Read>(
    input: R,
    name: &str,
    outdir: &Path,
    raw: bool,
    options: &InflateOptions,
    progress: &(dyn Fn(&str, u64) + Sync),
) -> Result<ImportReport, ImportError> {
    let path = PathBuf::from(name);
    let io = |source| PackageError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(outdir).map_err(|e| PackageError::Io {
        path: outdir.to_path_buf(),
        source: e,
    })?;
    let mut written: Vec<PathBuf> = Vec::new();
    let result = (|| -> Result<ImportReport, ImportError> {
        let mut archive = tar::Archive::new(input);
        let mut report = ImportReport::default();
        let mut envelope: Option<(String, String, Envelope)> = None;
        // The descriptor as read: its text is rewritten as disks are imported, its digest is not.
        let mut original = String::new();
        let mut manifest: Option<Manifest> = None;
        let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
        // Every member name so far (the descriptor's and the manifest's too).
        let mut names: std::collections::HashSet<String> = std::collections::HashSet::new();
        let mut early: Vec<(String, Vec<(Algorithm, String)>)> = Vec::new();
        // Where the next header should be, for errors the tar reader reports without one.
        let mut next_header = 0u64;
        for entry in archive.entries().map_err(io)? {
            let entry = entry.map_err(|e| PackageError::Archive {
                path: path.clone(),
                what: "tar header".into(),
                offset: next_header,
                reason: e.to_string(),
            })?;
            let offset = entry.raw_header_position();
            next_header = entry
                .raw_file_position()
                .saturating_add(entry.size())
                .div_ceil(512)
                .saturating_mul(512);
            let raw_name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
            let member = raw_name.strip_prefix("./").unwrap_or(&raw_name).to_string();
            let bad = |reason: &str| PackageError::Archive {
                path: path.clone(),
                what: format!("tar member {raw_name:?}"),
                offset,
                reason: reason.to_string(),
            };
            if !is_plain_name(&member) {
                return Err(bad("its name is absolute, has a path or '..'").into());
            }
            if !matches!(
                entry.header().entry_type(),
                tar::EntryType::Regular | tar::EntryType::Continuous
            ) {
                return Err(bad("it is a link or not a regular file").into());
            }
            if !names.insert(member.clone()) {
                return Err(bad("a second member with this name").into());
            }
            if names.len() > MAX_MEMBERS {
                return Err(bad(&format!("more than {MAX_MEMBERS} members")).into());
            }
            let expected = manifest.as_ref().and_then(|m| m.get(&member)).cloned();
            let algorithms = match (&manifest, &expected) {
                (_, Some(e)) => vec![e.algorithm],
                (None, None) => vec![Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512],
                (Some(_), None) => Vec::new(),
            };
            let mut reader = Hashing {
                inner: entry,
                hashers: algorithms
                    .into_iter()
                    .map(super::manifest::Hasher::new)
                    .collect(),
            };
            if envelope.is_none() {
                if !member.to_ascii_lowercase().ends_with(".ovf") {
                    return Err(bad("the OVF descriptor must be the first member").into());
                }
                let mut text = String::new();
                (&mut reader)
                    .take(MAX_SMALL + 1)
                    .read_to_string(&mut text)
                    .map_err(io)?;
                if text.len() as u64 > MAX_SMALL {
                    return Err(bad("the descriptor is larger than 16 MiB").into());
                }
                let env = Envelope::parse(&text, &path.join(&member))?;
                original = text.clone();
                envelope = Some((member.clone(), text, env));
                continue;
            }
            let Some((descriptor, text, env)) = envelope.as_mut() else {
                continue;
            };
            if member.to_ascii_lowercase().ends_with(".mf") && manifest.is_none() {
                let mut mtext = String::new();
                (&mut reader)
                    .take(MAX_SMALL)
                    .read_to_string(&mut mtext)
                    .map_err(io)?;
                let m = Manifest::parse(&mtext, &path.join(&member))?;
                // The descriptor came before the manifest: check it now.
                if let Some(e) = m.get(descriptor) {
                    let found = digest(e.algorithm, &mut original.as_bytes()).map_err(io)?;
                    record(&mut report, descriptor, e, found, &path)?;
                }
                // Members read before the manifest: their digests were kept.
                for (name, digests) in early.drain(..) {
                    if let Some(e) = m.get(&name) {
                        let found = digests
                            .iter()
                            .find(|(a, _)| *a == e.algorithm)
                            .map(|(_, d)| d.clone())
                            .unwrap_or_default();
                        record(&mut report, &name, e, found, &path)?;
                    }
                }
                report.verify.manifest = Some(member.clone());
                manifest = Some(m);
                continue;
            }
            // The disk this member holds, if it holds one.
            let target = env.files.iter().find(|f| f.href == member).and_then(|f| {
                env.disks
                    .iter()
                    .find(|d| d.file_ref.as_deref() == Some(f.id.as_str()))
                    .map(|d| (f.clone(), d.clone()))
            });
            let Some((file, disk)) = target else {
                // Certificates and other members: digested if listed, not used.
                if member.to_ascii_lowercase().ends_with(".cert") {
                    report.verify.certificate = Some(member.clone());
                }
                check_digest(
                    &member,
                    expected.as_ref(),
                    &mut reader,
                    &mut early,
                    &path,
                    &mut report,
                )?;
                seen.insert(member);
                continue;
            };
            if file.chunk_size.is_some() {
                return Err(ImportError::Unsupported(
                    disk.disk_id.clone(),
                    "a chunked disk file read from a stream (import the .ova from a file)".into(),
                ));
            }
            let (out, format) = output_for(outdir, &file.href, raw);
            let opts = InflateOptions {
                max_capacity: Some(declared(&disk, &path)?),
                ..options.clone()
            };
            let id = disk.disk_id.clone();
            let to_err = |source: InflateError| ImportError::Disk {
                disk: disk.disk_id.clone(),
                source: Box::new(source),
            };
            let r = {
                let mut disk_bytes = decompressed(
                    Box::new(&mut reader),
                    file.compression.as_deref(),
                    &disk.disk_id,
                )?;
                inflate_stream(&mut disk_bytes, &member, &out, format, &opts, &|n| {
                    progress(&id, n)
                })
                .map_err(to_err)?
            };
            written.extend(r.files.iter().cloned());
            // The digest covers the whole member, including bytes after the end-of-stream marker.
            check_digest(
                &member,
                expected.as_ref(),
                &mut reader,
                &mut early,
                &path,
                &mut report,
            )?;
            let new_name = out
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let new_size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
            *text = rewrite_file_reference(text, &file.href, &new_name, file.size, new_size);
            report
                .disks
                .push((disk.disk_id.clone(), file.href.clone(), r.files));
            seen.insert(member);
        }
        let Some((descriptor, text, env)) = envelope else {
            return Err(PackageError::Missing {
                path: path.clone(),
                name: "an OVF descriptor".into(),
            }
            .into());
        };
        // Every listed file must have passed, every referenced disk must have been found.
        if let Some(m) = &manifest {
            for e in &m.entries {
                if e.name != descriptor
                    && !seen.contains(&e.name)
                    && report.verify.manifest.as_deref() != Some(e.name.as_str())
                {
                    report
                        .verify
                        .files
                        .push((e.name.clone(), e.algorithm, Outcome::Missing));
                    return Err(ImportError::Verification(path.clone()));
                }
            }
            for f in &env.files {
                if m.get(&f.href).is_none() {
                    report.verify.unlisted.push(f.href.clone());
                }
            }
        }
        for d in &env.disks {
            if let Some(f) = env.file_of(d) {
                if !report.disks.iter().any(|(_, from, _)| *from == f.href) {
                    return Err(PackageError::Missing {
                        path: path.clone(),
                        name: f.href.clone(),
                    }
                    .into());
                }
            }
        }
        report.descriptor = write_descriptor(outdir, &descriptor, text, raw)?;
        Ok(report)
    })();
    if result.is_err() {
        for f in &written {
            let _ = std::fs::remove_file(f);
        }
    }
    result
}

/// Records the digest `found` for `name` against its manifest entry; a mismatch stops the import.
fn record(
    report: &mut ImportReport,
    name: &str,
    e: &super::manifest::Entry,
    found: String,
    path: &Path,
) -> Result<(), ImportError> {
    let outcome = Outcome::of(&e.digest, found);
    let ok = outcome == Outcome::Ok;
    report
        .verify
        .files
        .push((name.to_string(), e.algorithm, outcome));
    if ok {
        Ok(())
    } else {
        Err(ImportError::Verification(path.to_path_buf()))
    }
}

/// Reads the rest of a member (its digest covers every byte), then checks the digest against
/// its manifest entry, or keeps its digests for when the manifest arrives (`expected` is
/// `None` and several hashers ran).
fn check_digest<R: Read>(
    member: &str,
    expected: Option<&super::manifest::Entry>,
    reader: &mut Hashing<R>,
    early: &mut Vec<(String, Vec<(Algorithm, String)>)>,
    path: &Path,
    report: &mut ImportReport,
) -> Result<(), ImportError> {
    std::io::copy(reader, &mut std::io::sink()).map_err(|source| PackageError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let hashers = std::mem::take(&mut reader.hashers);
    match (expected, hashers.len()) {
        (Some(e), 1) => {
            let found = hashers
                .into_iter()
                .next()
                .map(super::manifest::Hasher::finish)
                .unwrap_or_default();
            record(report, member, e, found, path)?;
        }
        (None, n) if n > 1 => {
            let algorithms = [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512];
            early.push((
                member.to_string(),
                algorithms
                    .into_iter()
                    .zip(hashers.into_iter().map(super::manifest::Hasher::finish))
                    .collect(),
            ));
        }
        _ => {}
    }
    Ok(())
}
