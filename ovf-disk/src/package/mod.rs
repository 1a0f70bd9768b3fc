//! OVF packages: the envelope (`.ovf`), the manifest (`.mf`), the certificate (`.cert`) and OVA
//! archives, read without unpacking, verified, checked, imported to thick disks and exported.
//!
//! Spec: DMTF DSP0243 "Open Virtualization Format Specification" 1.x and 2.x, and VMware's
//! pre-standard 0.9 envelope (namespace `http://www.vmware.com/schema/ovf/1/envelope`); elements
//! are matched by local name so all three read alike. Refused: XML with a DTD (no entity
//! expansion ever), file names in a package that are absolute, contain `..` or a path
//! separator, tar members that are links or not regular files.

pub(crate) mod check;
pub(crate) mod info;
pub(crate) mod kind;
pub(crate) mod ova;
pub(crate) mod signature;
pub(crate) mod stream;
pub(crate) mod verify;

pub use check::{check_package, CheckMethod, DiskCheck, PackageCheck};
pub use info::{Info, ManifestSummary, PackageDisk, PackageFile};
pub use verify::{CapacityDifference, FileDigest, SignatureCheck, VerifyReport};

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use self::ova::{OvaFiles, OvaIndex};
use crate::error::{Error, Result};
use ovf::envelope::{Envelope, VirtualDisk};
use ovf::manifest::Manifest;
use ovf::names::is_plain_name;

/// Largest descriptor, manifest or certificate read.
pub(crate) const MAX_SMALL: u64 = 16 << 20;

/// Where a package's files are.
#[derive(Clone, Debug)]
enum Source {
    /// An `.ovf` and the files in its folder.
    Folder(PathBuf),
    /// An `.ova` archive.
    Ova(Arc<OvaIndex>),
}

/// An open package: an `.ovf` with the files beside it, or an `.ova` read in place.
///
/// ```no_run
/// # fn main() -> ovf_disk::Result<()> {
/// let pkg = ovf_disk::package::Package::open("appliance.ova".as_ref())?;
/// for disk in &pkg.envelope().disks {
///     println!("{}: {:?} bytes", disk.disk_id, disk.capacity_bytes);
/// }
/// let report = pkg.verify(&|_| {})?;
/// assert!(report.is_ok());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct Package {
    path: PathBuf,
    source: Source,
    descriptor: String,
    envelope: Envelope,
    manifest: Option<(String, Manifest)>,
    certificate: Option<String>,
    /// The report of the first [`Package::verify`], which later calls (an import after the
    /// caller's own verify, a lint after a check) return instead of digesting every file again.
    verified: Arc<std::sync::Mutex<Option<VerifyReport>>>,
}

/// Reads the envelope of a folder package: the `.ovf` itself, at most [`MAX_SMALL`].
fn read_folder_descriptor(path: &Path) -> Result<(Source, String, Vec<u8>)> {
    let folder = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let meta = std::fs::metadata(path).map_err(Error::io(path))?;
    if meta.len() > MAX_SMALL {
        return Err(Error::Ovf(ovf::Error::Envelope {
            path: path.to_path_buf(),
            line: None,
            reason: "larger than 16 MiB".into(),
        }));
    }
    let bytes = std::fs::read(path).map_err(Error::io(path))?;
    Ok((Source::Folder(folder), name, bytes))
}

/// Reads the envelope of an OVA: its first member (or its only `.ovf` member).
fn read_ova_descriptor(path: &Path) -> Result<(Source, String, Vec<u8>)> {
    let index = Arc::new(OvaIndex::open(path)?);
    let first = index.descriptor().cloned().ok_or_else(|| Error::Missing {
        path: path.to_path_buf(),
        name: "an OVF descriptor".into(),
    })?;
    let bytes = index.read_small(&first, MAX_SMALL)?;
    Ok((Source::Ova(index), first.name, bytes))
}

impl Package {
    /// The names of the package's files that end in `.mf` (any case): the OVA's members, or the
    /// plain files of the descriptor's folder (at most the first 10,000 entries looked at).
    fn manifest_names(&self) -> Vec<String> {
        let is_mf = |n: &str| n.to_ascii_lowercase().ends_with(".mf");
        match &self.source {
            Source::Ova(index) => index
                .members()
                .iter()
                .map(|m| m.name.clone())
                .filter(|n| is_mf(n))
                .collect(),
            Source::Folder(dir) => std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .take(10_000)
                .filter_map(|e| e.ok())
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| is_mf(n))
                .collect(),
        }
    }

    /// Opens an `.ovf` (its files beside it) or an `.ova` (a tar, whatever its name: see
    /// [`crate::input_kind`]), reading its envelope,
    /// its manifest (`STEM.mf`) when there is one, and noting its certificate (`STEM.cert`).
    pub fn open(path: &Path) -> Result<Self> {
        // By content: an OVA named otherwise is read as one, and so is a descriptor.
        let is_ova = kind::input_kind(path)? == kind::InputKind::Ova;
        let (source, descriptor, text) = if is_ova {
            read_ova_descriptor(path)?
        } else {
            read_folder_descriptor(path)?
        };
        let text = String::from_utf8(text).map_err(|_| {
            Error::Ovf(ovf::Error::Envelope {
                path: path.to_path_buf(),
                line: None,
                reason: "not UTF-8".into(),
            })
        })?;
        let envelope_path = match &source {
            Source::Folder(_) => path.to_path_buf(),
            Source::Ova(_) => path.join(&descriptor),
        };
        let envelope = Envelope::parse(&text, &envelope_path)?;
        let mut pkg = Self {
            path: path.to_path_buf(),
            source,
            descriptor: descriptor.clone(),
            envelope,
            manifest: None,
            certificate: None,
            verified: Arc::default(),
        };
        let stem = descriptor
            .rsplit_once('.')
            .map_or(descriptor.as_str(), |(s, _)| s)
            .to_string();
        let mut mf = format!("{stem}.mf");
        if pkg.size(&mf).is_none() {
            // Another name (`disk1.mf` beside `vm.ovf`, which virt-v2v reads): taken when it
            // is the only manifest there and it lists this descriptor (a folder may hold other
            // packages' files).
            if let [only] = pkg.manifest_names().as_slice() {
                let lists_us = pkg.read_small(only).is_ok_and(|t| {
                    String::from_utf8_lossy(&t).contains(&format!("({descriptor})"))
                });
                if lists_us {
                    mf = only.clone();
                }
            }
        }
        if pkg.size(&mf).is_some() {
            let text = String::from_utf8(pkg.read_small(&mf)?).map_err(|_| {
                Error::Ovf(ovf::Error::Manifest {
                    path: pkg.member_path(&mf),
                    line: 0,
                    reason: "not UTF-8".into(),
                })
            })?;
            let manifest = Manifest::parse(&text, &pkg.member_path(&mf))?;
            pkg.manifest = Some((mf.clone(), manifest));
        }
        let cert = format!("{stem}.cert");
        if pkg.size(&cert).is_some() {
            pkg.certificate = Some(cert);
        }
        Ok(pkg)
    }

    /// The path the package was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The descriptor's file name.
    pub fn descriptor(&self) -> &str {
        &self.descriptor
    }

    /// The parsed envelope.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }

    /// The manifest's file name and contents, if the package has one.
    pub fn manifest(&self) -> Option<(&str, &Manifest)> {
        self.manifest.as_ref().map(|(n, m)| (n.as_str(), m))
    }

    /// The certificate's file name, if the package is signed.
    pub fn certificate(&self) -> Option<&str> {
        self.certificate.as_deref()
    }

    /// Where a file of the package is, for messages: beside the `.ovf`, or inside the `.ova`
    /// (`appliance.ova/appliance.mf`).
    pub(crate) fn member_path(&self, name: &str) -> PathBuf {
        match &self.source {
            Source::Folder(dir) => dir.join(name),
            Source::Ova(_) => self.path.join(name),
        }
    }

    /// The archive's members when the package is an OVA.
    pub(crate) fn archive(&self) -> Option<&OvaIndex> {
        match &self.source {
            Source::Ova(index) => Some(index),
            Source::Folder(_) => None,
        }
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
    pub fn reader(&self, name: &str) -> Result<Box<dyn Read>> {
        let missing = || Error::Missing {
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

    /// Reads `buf.len()` bytes of the file `name` from `offset` (which must lie inside it).
    pub(crate) fn read_at(&self, name: &str, offset: u64, buf: &mut [u8]) -> Result<()> {
        let len = self.size(name).ok_or_else(|| Error::Missing {
            path: self.path.clone(),
            name: name.to_string(),
        })?;
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|e| e > len) {
            return Err(Error::InvalidInput(format!(
                "{name}: bytes {offset}+{} lie past its end ({len} bytes)",
                buf.len()
            )));
        }
        match &self.source {
            Source::Folder(dir) => {
                use std::os::unix::fs::FileExt;
                let p = dir.join(name);
                let f = File::open(&p).map_err(Error::io(&p))?;
                f.read_exact_at(buf, offset).map_err(Error::io(&p))
            }
            Source::Ova(index) => index.read_member_at(name, offset, buf),
        }
    }

    /// Reads a small file of the package (a descriptor, manifest or certificate) whole, at most
    /// 16 MiB of it.
    pub(crate) fn read_small(&self, name: &str) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.reader(name)?
            .take(MAX_SMALL)
            .read_to_end(&mut out)
            .map_err(Error::io(&self.path))?;
        Ok(out)
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
                base.clone().files(OvaFiles(index.clone())),
            ),
        }
    }

    /// Opens the disk file `href` in place (inside the OVA, for an archive).
    pub fn open_disk(&self, href: &str) -> Result<vmdk::Disk> {
        let (path, options) = self.disk_location(href, &vmdk::OpenOptions::default());
        Ok(options.open(path)?)
    }

    /// The capacity `disk` declares in bytes, which bounds what an import writes; an envelope
    /// whose `ovf:capacity` and units do not give one is refused.
    pub(crate) fn declared(&self, disk: &VirtualDisk) -> Result<u64> {
        declared(disk, &self.path)
    }
}

/// The capacity `disk` of the envelope of `path` declares in bytes (see
/// [`Package::declared`]).
pub(crate) fn declared(disk: &VirtualDisk, path: &Path) -> Result<u64> {
    disk.capacity_bytes.ok_or_else(|| {
        Error::Ovf(ovf::Error::Envelope {
            path: path.to_path_buf(),
            line: None,
            reason: format!(
                "disk {}: ovf:capacity {:?} in units {:?} is not a number of bytes",
                disk.disk_id,
                disk.capacity,
                disk.capacity_units.as_deref().unwrap_or("byte")
            ),
        })
    })
}

#[cfg(feature = "write")]
/// Refuses a disk (`file`, of `capacity` bytes) larger than `declared`, the capacity its
/// package declares: an envelope's `ovf:capacity` bounds what an import writes (DSP0243
/// section 9.1, DiskSection).
pub(crate) fn within_declared(file: &Path, capacity: u64, declared: u64) -> Result<()> {
    if capacity > declared {
        return Err(Error::LargerThanDeclared {
            file: file.to_path_buf(),
            capacity,
            declared,
        });
    }
    Ok(())
}
