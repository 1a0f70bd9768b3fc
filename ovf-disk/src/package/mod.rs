//! OVF packages: the envelope (`.ovf`), the manifest (`.mf`), the certificate (`.cert`) and OVA
//! archives, read without unpacking, verified, checked, imported to thick disks and exported.
//!
//! Spec: DMTF DSP0243 "Open Virtualization Format Specification" 1.x and 2.x, and VMware's
//! pre-standard 0.9 envelope (namespace `http://www.vmware.com/schema/ovf/1/envelope`); elements
//! are matched by local name so all three read alike. Refused: XML with a DTD (no entity
//! expansion ever), tar members that are links or not regular files, tar member names that lead
//! outside the archive. An `ovf:href` is a path relative to the descriptor: one inside the
//! package's folder (or the OVA, whose members may sit in one common folder) is read; one that
//! leads outside it, an absolute path or a URL is described by `info` and `check` with the reason,
//! and refused where its bytes must be read ([`Error::Outside`]) unless
//! [`Package::allow_outside_paths`] allows paths.

pub(crate) mod check;
pub(crate) mod info;
pub(crate) mod kind;
pub(crate) mod ova;
pub(crate) mod signature;
pub(crate) mod stream;
pub(crate) mod verify;

pub use check::{check_package, CheckMethod, DiskCheck, PackageCheck};
pub use info::{ConfigurationHardware, Info, ManifestSummary, PackageDisk, PackageFile};
pub use verify::{CapacityDifference, FileDigest, ShortFile, SignatureCheck, VerifyReport};

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use self::ova::{OvaFiles, OvaIndex};
use crate::error::{Error, Result};
use ovf::envelope::{Envelope, VirtualDisk};
use ovf::manifest::Manifest;
use ovf::names::{locate, Outside};

/// Largest descriptor, manifest or certificate read.
pub(crate) const MAX_SMALL: u64 = 16 << 20;

/// Where a package's files are.
#[derive(Clone, Debug)]
enum Source {
    /// An `.ovf` and the files in its folder.
    Folder(PathBuf),
    /// An `.ova` archive.
    Ova(Arc<OvaIndex>),
    /// An `.ovf` at a URL and the files under the same URL folder.
    #[cfg(feature = "remote")]
    Remote {
        files: vmdk::remote::RemoteFiles,
        folder: PathBuf,
        /// The descriptor's bytes, read when the package was opened: digested from here, not
        /// fetched a second time.
        descriptor: Arc<Vec<u8>>,
    },
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
    /// The descriptor's text, for [`Package::schema`].
    text: String,
    manifest: Option<(String, Manifest)>,
    certificate: Option<String>,
    /// The report of the first [`Package::verify`], which later calls (an import after the
    /// caller's own verify, a lint after a check) return instead of digesting every file again.
    verified: Arc<std::sync::Mutex<Option<VerifyReport>>>,
    /// Whether hrefs that lead outside the package folder (or are absolute) are followed.
    allow_outside: bool,
    /// For an OVA at a URL: the remote source and the archive's name, for reading members
    /// forward with every connection.
    #[cfg(feature = "remote")]
    remote_archive: Option<(vmdk::remote::RemoteFiles, PathBuf)>,
}

/// Where a file of the package is.
enum Place<'a> {
    /// A path on the file system.
    Path(PathBuf),
    /// A member of the OVA.
    Member(&'a Arc<OvaIndex>, &'a ova::Member),
    /// A file under the URL of the descriptor.
    #[cfg(feature = "remote")]
    Remote(&'a vmdk::remote::RemoteFiles, PathBuf),
}

impl Place<'_> {
    /// The file's length, when it is there (a regular file, or a member).
    fn len(&self) -> Option<u64> {
        match self {
            Self::Path(p) => std::fs::metadata(p)
                .ok()
                .filter(|m| m.is_file())
                .map(|m| m.len()),
            Self::Member(_, m) => Some(m.size),
            #[cfg(feature = "remote")]
            Self::Remote(files, p) => vmdk::Files::open(*files, p).ok().map(|b| b.len()),
        }
    }
}

/// Whether the `File` `file_id` of `env` holds one of its disks.
pub(crate) fn holds_disk(env: &Envelope, file_id: &str) -> bool {
    env.disks
        .iter()
        .any(|d| d.file_ref.as_deref() == Some(file_id))
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
    read_ova_index(path, OvaIndex::open(path)?)
}

/// The descriptor of an indexed OVA.
fn read_ova_index(path: &Path, index: OvaIndex) -> Result<(Source, String, Vec<u8>)> {
    let index = Arc::new(index);
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
            // A URL folder is not listed: only `NAME.mf` is looked for.
            #[cfg(feature = "remote")]
            Source::Remote { .. } => Vec::new(),
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
        Self::from_source(path, source, descriptor, text)
    }

    /// Opens the package at `name` under a remote source (`vmdk::remote::RemoteFiles::new`
    /// gives both from a URL): an `.ova` read in place with byte ranges, or an `.ovf` with the
    /// files under the same URL folder (the URL's query kept for each). Errors and
    /// [`Package::path`] show the URL without its credentials and query.
    #[cfg(feature = "remote")]
    pub fn open_remote(files: vmdk::remote::RemoteFiles, name: &Path) -> Result<Self> {
        use vmdk::Files as _;
        let name = name.to_path_buf();
        let backing = files.open(&name)?;
        let len = backing.len();
        let mut head = vec![0u8; usize::try_from(len.min(1024)).unwrap_or(0)];
        positioned_io::ReadAt::read_exact_at(&backing, 0, &mut head).map_err(Error::io(&name))?;
        if kind::kind_of_head(&head, &name) == kind::InputKind::Ova {
            let index = OvaIndex::from_storage(&name, Arc::new(backing), len)?;
            let (source, descriptor, text) = read_ova_index(&name, index)?;
            let mut pkg = Self::from_source(&name, source, descriptor, text)?;
            pkg.remote_archive = Some((files, name));
            return Ok(pkg);
        }
        let (source, descriptor, text) = {
            if len > MAX_SMALL {
                return Err(Error::Ovf(ovf::Error::Envelope {
                    path: name,
                    line: None,
                    reason: "larger than 16 MiB".into(),
                }));
            }
            let mut bytes = vec![0u8; usize::try_from(len).unwrap_or(0)];
            positioned_io::ReadAt::read_exact_at(&backing, 0, &mut bytes)
                .map_err(Error::io(&name))?;
            let file_name = name
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let folder = name.parent().map(Path::to_path_buf).unwrap_or_default();
            let source = Source::Remote {
                files,
                folder,
                descriptor: Arc::new(bytes.clone()),
            };
            (source, file_name, bytes)
        };
        Self::from_source(&name, source, descriptor, text)
    }

    /// The package whose descriptor `descriptor` (its bytes `text`) was read from `source`.
    fn from_source(path: &Path, source: Source, descriptor: String, text: Vec<u8>) -> Result<Self> {
        let text = String::from_utf8(text).map_err(|_| {
            Error::Ovf(ovf::Error::Envelope {
                path: path.to_path_buf(),
                line: None,
                reason: "not UTF-8".into(),
            })
        })?;
        let envelope_path = match &source {
            Source::Ova(_) => path.join(&descriptor),
            _ => path.to_path_buf(),
        };
        let envelope = Envelope::parse(&text, &envelope_path)?;
        let mut pkg = Self {
            path: path.to_path_buf(),
            source,
            descriptor: descriptor.clone(),
            envelope,
            text,
            manifest: None,
            certificate: None,
            verified: Arc::default(),
            allow_outside: false,
            #[cfg(feature = "remote")]
            remote_archive: None,
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

    /// Whether the package is read from a URL (each file read again is fetched again).
    #[cfg(feature = "write")]
    pub(crate) fn is_remote(&self) -> bool {
        #[cfg(feature = "remote")]
        if matches!(self.source, Source::Remote { .. }) || self.remote_archive.is_some() {
            return true;
        }
        false
    }

    /// The envelope checked against DMTF's envelope schema ([`ovf::schema::validate`]):
    /// `None` for an OVF 0.9 envelope, which has none, or without the `schema` feature.
    pub fn schema(&self) -> Result<Option<ovf::schema::Validation>> {
        let path = match &self.source {
            Source::Ova(_) => self.path.join(&self.descriptor),
            _ => self.path.clone(),
        };
        Ok(ovf::schema::validate(&self.text, &path)?)
    }

    /// The manifest's file name and contents, if the package has one.
    pub fn manifest(&self) -> Option<(&str, &Manifest)> {
        self.manifest.as_ref().map(|(n, m)| (n.as_str(), m))
    }

    /// The certificate's file name, if the package is signed.
    pub fn certificate(&self) -> Option<&str> {
        self.certificate.as_deref()
    }

    /// Follows hrefs that lead outside the package folder or are absolute paths (never URLs,
    /// never outside an OVA), as `--allow-outside-paths` does: for packages the user trusts,
    /// such as a VM's own folder exported with `../` paths.
    pub fn allow_outside_paths(mut self, allow: bool) -> Self {
        self.allow_outside = allow;
        self
    }

    /// Why the file `href` is not read, when it is not: it leads outside the package (and that
    /// is not allowed), it is a URL, or it is not a file name: what reading it would refuse.
    pub fn not_followed(&self, href: &str) -> Option<Outside> {
        match self.place(href) {
            Err(Error::Outside { reason, .. }) => Some(reason),
            _ => None,
        }
    }

    /// Where the file `href` is, or the error of a file not followed.
    fn place(&self, href: &str) -> Result<Place<'_>> {
        let refused = |why: Outside| Error::Outside {
            path: self.path.clone(),
            href: href.to_string(),
            reason: why,
        };
        match (locate(href), &self.source) {
            (Ok(inside), Source::Folder(dir)) => {
                let path = dir.join(&inside);
                if inside.contains('/') && !self.allow_outside {
                    // A folder of the package may be a link leading elsewhere.
                    let real = |p: &Path| std::fs::canonicalize(p).ok();
                    let within = match (path.parent().and_then(real), real(dir)) {
                        (Some(parent), Some(root)) => parent.starts_with(root),
                        _ => true,
                    };
                    if !within {
                        return Err(refused(Outside::Parent));
                    }
                }
                Ok(Place::Path(path))
            }
            (Ok(inside), Source::Ova(index)) => index
                .get(&inside)
                .map(|m| Place::Member(index, m))
                .ok_or_else(|| Error::Missing {
                    path: self.path.clone(),
                    name: href.to_string(),
                }),
            (Err(Outside::Parent | Outside::Absolute), Source::Folder(dir))
                if self.allow_outside =>
            {
                Ok(Place::Path(dir.join(href)))
            }
            // Under the URL's folder; `..` only when allowed, and on the same server still.
            #[cfg(feature = "remote")]
            (Ok(inside), Source::Remote { files, folder, .. }) => {
                Ok(Place::Remote(files, folder.join(inside)))
            }
            #[cfg(feature = "remote")]
            (Err(Outside::Parent), Source::Remote { files, folder, .. }) if self.allow_outside => {
                Ok(Place::Remote(files, folder.join(href)))
            }
            (Err(why), _) => Err(refused(why)),
        }
    }

    /// Where a file of the package is, for messages: beside the `.ovf`, or inside the `.ova`
    /// (`appliance.ova/appliance.mf`).
    pub(crate) fn member_path(&self, name: &str) -> PathBuf {
        match self.place(name) {
            Ok(Place::Path(p)) => p,
            _ => self.path.join(name),
        }
    }

    /// The archive's members when the package is an OVA.
    pub(crate) fn archive(&self) -> Option<&OvaIndex> {
        match &self.source {
            Source::Ova(index) => Some(index),
            _ => None,
        }
    }

    /// The size of a file of the package, if it is there (and followed: see
    /// [`Package::not_followed`]).
    pub fn size(&self, name: &str) -> Option<u64> {
        self.place(name).ok()?.len()
    }

    /// Reads a file of the package.
    pub fn reader(&self, name: &str) -> Result<Box<dyn Read>> {
        let missing = || Error::Missing {
            path: self.path.clone(),
            name: name.to_string(),
        };
        #[cfg(feature = "remote")]
        if let Source::Remote { descriptor, .. } = &self.source {
            if name == self.descriptor {
                return Ok(Box::new(std::io::Cursor::new(descriptor.to_vec())));
            }
        }
        self.reader_from(name, 0).map_err(|e| match e {
            Error::Io { .. } => missing(),
            e => e,
        })
    }

    /// Reads a file of the package from `offset` on (inside it): the rest of a disk an
    /// interrupted import had read part of.
    pub(crate) fn reader_from(&self, name: &str, offset: u64) -> Result<Box<dyn Read>> {
        match self.place(name)? {
            Place::Path(p) => {
                use std::io::{Seek, SeekFrom};
                let mut f = File::open(&p).map_err(Error::io(&p))?;
                f.seek(SeekFrom::Start(offset)).map_err(Error::io(&p))?;
                Ok(Box::new(f))
            }
            Place::Member(index, m) => {
                #[cfg(feature = "remote")]
                if let Some((files, archive)) = &self.remote_archive {
                    // Fetched ahead over every connection, as a file under a URL is.
                    let start = m.offset.saturating_add(offset.min(m.size));
                    return Ok(files.reader_range(archive, start, m.offset + m.size)?);
                }
                Ok(Box::new(index.reader_from(m, offset)))
            }
            #[cfg(feature = "remote")]
            // Fetched ahead over every connection while it is digested.
            Place::Remote(files, p) if offset == 0 => Ok(files.reader(&p)?),
            #[cfg(feature = "remote")]
            Place::Remote(files, p) => {
                let len = vmdk::Files::open(files, &p)?.len();
                Ok(files.reader_range(&p, offset.min(len), len)?)
            }
        }
    }

    /// What identifies the bytes of the file `name` across runs, for a checkpoint: for a
    /// file under a URL (or a member of an OVA at a URL), the object's name, length and
    /// validator (`ETag` or `Last-Modified`), and the member's place; `None` for a local
    /// package, and for a server without byte ranges (an import from there starts over).
    #[cfg(feature = "write")]
    pub(crate) fn identity_of(&self, name: &str) -> Option<String> {
        #[cfg(feature = "remote")]
        let identity = {
            let place = self.place(name).ok()?;
            let object = |files: &vmdk::remote::RemoteFiles, p: &Path| {
                vmdk::Files::open(files, p).ok()?;
                let (n, len, validator) = files.identity().into_iter().find(|(n, ..)| n == p)?;
                Some(format!(
                    "{} {len} {}",
                    n.display(),
                    validator.unwrap_or_default()
                ))
            };
            match (&place, &self.remote_archive) {
                (Place::Remote(files, p), _) => object(files, p),
                (Place::Member(_, m), Some((files, archive))) => Some(format!(
                    "{} member {:?} at {} of {}",
                    object(files, archive)?,
                    m.name,
                    m.offset,
                    m.size
                )),
                _ => None,
            }
        };
        #[cfg(not(feature = "remote"))]
        let identity = {
            let _ = name;
            None
        };
        identity
    }

    /// Reads `buf.len()` bytes of the file `name` from `offset` (which must lie inside it).
    pub(crate) fn read_at(&self, name: &str, offset: u64, buf: &mut [u8]) -> Result<()> {
        let missing = || Error::Missing {
            path: self.path.clone(),
            name: name.to_string(),
        };
        let place = self.place(name).map_err(|_| missing())?;
        let len = place.len().ok_or_else(missing)?;
        let end = offset.checked_add(buf.len() as u64);
        if end.is_none_or(|e| e > len) {
            return Err(Error::InvalidInput(format!(
                "{name}: bytes {offset}+{} lie past its end ({len} bytes)",
                buf.len()
            )));
        }
        match place {
            Place::Path(p) => {
                use std::os::unix::fs::FileExt;
                let f = File::open(&p).map_err(Error::io(&p))?;
                f.read_exact_at(buf, offset).map_err(Error::io(&p))
            }
            Place::Member(index, m) => index.read_member_at(&m.name, offset, buf),
            #[cfg(feature = "remote")]
            Place::Remote(files, p) => {
                let backing = vmdk::Files::open(files, &p)?;
                positioned_io::ReadAt::read_exact_at(&backing, offset, buf).map_err(Error::io(&p))
            }
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
    ) -> Result<(PathBuf, vmdk::OpenOptions)> {
        Ok(match self.place(href)? {
            Place::Member(index, m) => (
                PathBuf::from(&m.name),
                base.clone().files(OvaFiles(index.clone())),
            ),
            Place::Path(p) => (p, base.clone()),
            #[cfg(feature = "remote")]
            Place::Remote(files, p) => (p, base.clone().files(files.clone())),
        })
    }

    /// Opens the disk file `href` in place (inside the OVA, for an archive).
    pub fn open_disk(&self, href: &str) -> Result<vmdk::Disk> {
        let (path, options) = self.disk_location(href, &vmdk::OpenOptions::default())?;
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
