//! The one error type of `ovf-disk`: package structures (tar members) with their offset, output
//! files, the `ovf` crate's errors for the envelope, manifest and certificate, and the `vmdk`
//! library's errors for the disks, with the package's disk id when there is one.
//!
//! The convention is `vmdk`'s: `Display` carries everything, the inner error included, and
//! [`std::error::Error::source`] chains to the inner error too (the `vmdk` or `ovf` error, the
//! operating system's), for callers that walk the chain or match the variant.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

pub use vmdk::Category;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why an operation on a disk or a package failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A disk could not be read or written: the `vmdk` library's error, which names the file,
    /// structure and offset; `disk` is the package's disk id when the disk is part of one.
    #[error("{}", DiskMessage(disk.as_deref(), error))]
    Disk {
        /// The envelope's `ovf:diskId`, for a disk of a package.
        disk: Option<String>,
        /// What went wrong.
        #[source]
        error: vmdk::Error,
    },
    /// The operating system refused.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file concerned.
        path: PathBuf,
        /// The error.
        #[source]
        error: io::Error,
    },
    /// An output exists and replacing outputs was not asked for.
    #[error("{} exists", .0.display())]
    Exists(PathBuf),
    /// Another run (this process or another) is writing the output, or importing into the
    /// folder: its temporary file, or the folder, is locked.
    #[error("{}: another run is writing it{}", path.display(), temp.as_ref().map_or_else(String::new, |t| format!(" (its temporary file {} is locked)", t.display())))]
    Busy {
        /// The output file or folder.
        path: PathBuf,
        /// The other run's temporary file, for an output file.
        temp: Option<PathBuf>,
    },
    /// The file system holding an output has less free space than the eager-zeroed output
    /// needs: refused before anything is written.
    #[error("{}: {needed} bytes to write, {available} free on its file system", path.display())]
    NoSpace {
        /// The output (for an import, its folder).
        path: PathBuf,
        /// Bytes the outputs will take.
        needed: u64,
        /// Bytes free for this user on the file system.
        available: u64,
    },
    /// An output is one of the input's files: it is never written over.
    #[error("{} is a file of the input disk: refusing to write over it", .0.display())]
    IsInput(PathBuf),
    /// An envelope, manifest or certificate could not be read or written: the `ovf` crate's
    /// error, which names the file and the line.
    #[error("{0}")]
    Ovf(#[from] ovf::Error),
    /// A VM configuration (`.vmx`) line could not be understood, or names a disk outside the
    /// VM's folder (line 0: the whole file).
    #[error("{}: line {line}: {reason}", path.display())]
    Config {
        /// The `.vmx` file.
        path: PathBuf,
        /// One-based line, 0 for the whole file.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A tar member or a referenced file name is unsafe or unusable.
    #[error("{}: {what} at offset {offset:#x}: {reason}", path.display())]
    Archive {
        /// The archive.
        path: PathBuf,
        /// The member or structure.
        what: String,
        /// Byte offset of its header in the archive.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// An archive ends before what its headers announce: a member's data, the padding after
    /// it, a header, or the end-of-archive marker (two zero blocks) is missing. Typically an
    /// incomplete download: fetching the file again is the fix.
    #[error("{}: {what} at offset {offset:#x}: the archive is cut short, at least {missing} bytes missing (an incomplete download?)", path.display())]
    Truncated {
        /// The archive.
        path: PathBuf,
        /// The member or structure cut.
        what: String,
        /// Byte offset of its header (or of the structure) in the archive.
        offset: u64,
        /// Bytes that are missing at least.
        missing: u64,
    },
    /// A file the package needs is not there.
    #[error("{}: {name} is not in the package", path.display())]
    Missing {
        /// The package.
        path: PathBuf,
        /// The file name.
        name: String,
    },
    /// A file the envelope names outside the package (`..`, an absolute path, a URL), which is
    /// not read: see [`crate::package::Package::allow_outside_paths`].
    #[error("{}: ovf:href {href:?} {reason}: not followed{}", path.display(), hint(reason))]
    Outside {
        /// The package.
        path: PathBuf,
        /// The href as the envelope writes it.
        href: String,
        /// Why it is not a file of the package.
        reason: ovf::names::Outside,
    },
    /// The manifest does not match, or does not cover a file it must: nothing was written.
    #[error("{}: verification failed, nothing was imported", .0.display())]
    Verification(PathBuf),
    /// A disk file of a package uses a feature not read yet.
    #[error("disk {disk}: {what} is not supported yet")]
    Unsupported {
        /// The envelope's `ovf:diskId`.
        disk: String,
        /// What is not supported.
        what: String,
    },
    /// The caller asked for something impossible (an option out of range).
    #[error("{0}")]
    InvalidInput(String),
    /// A disk holds more than the capacity its package declares (DSP0243 section 9.1): the
    /// declared capacity bounds what an import writes.
    #[error("{}: the disk announces {capacity} bytes, more than the {declared} its package declares", file.display())]
    LargerThanDeclared {
        /// The disk file.
        file: PathBuf,
        /// Its capacity in bytes.
        capacity: u64,
        /// The capacity the envelope declares, in bytes.
        declared: u64,
    },
}

/// `disk ID: error`, or the error alone.
struct DiskMessage<'a>(Option<&'a str>, &'a vmdk::Error);

impl fmt::Display for DiskMessage<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(id) => write!(f, "disk {id}: {}", self.1),
            None => write!(f, "{}", self.1),
        }
    }
}

impl From<vmdk::Error> for Error {
    fn from(error: vmdk::Error) -> Self {
        Self::Disk { disk: None, error }
    }
}

impl Error {
    /// What kind of failure this is, in the categories `vmdk` uses too: a disk's error is
    /// its own; an archive, envelope, manifest or configuration that cannot be read is damaged;
    /// an archive cut short (or any end of file met too soon) is truncated; an existing output,
    /// a busy or full target and an option out of range are refused.
    pub fn category(&self) -> Category {
        match self {
            Self::Disk { error, .. } => error.category(),
            Self::Io { error, .. } if error.kind() == io::ErrorKind::UnexpectedEof => {
                Category::Truncated
            }
            Self::Io { .. } => Category::Io,
            Self::Truncated { .. } => Category::Truncated,
            Self::Unsupported { .. } => Category::Unsupported,
            Self::Ovf(ovf::Error::InvalidInput(_)) | Self::InvalidInput(_) => Category::Refused,
            Self::Exists(_) | Self::Busy { .. } | Self::NoSpace { .. } | Self::IsInput(_) => {
                Category::Refused
            }
            Self::Ovf(_)
            | Self::Config { .. }
            | Self::Archive { .. }
            | Self::Missing { .. }
            | Self::Outside { .. }
            | Self::Verification(_)
            | Self::LargerThanDeclared { .. } => Category::Damaged,
        }
    }

    /// An I/O error on `path`.
    pub(crate) fn io(path: &Path) -> impl FnOnce(io::Error) -> Self + '_ {
        move |error| Self::Io {
            path: path.to_path_buf(),
            error,
        }
    }

    /// This error, about the package's disk `id` (a disk error gets the id; others stay).
    pub(crate) fn for_disk(self, id: &str) -> Self {
        match self {
            Self::Disk { disk: None, error } => Self::Disk {
                disk: Some(id.to_string()),
                error,
            },
            other => other,
        }
    }
}

/// What the user can do about an href not followed.
fn hint(reason: &ovf::names::Outside) -> &'static str {
    match reason {
        ovf::names::Outside::Parent | ovf::names::Outside::Absolute => {
            " (--allow-outside-paths follows it in a package folder)"
        }
        ovf::names::Outside::Url(_) => " (download the file beside the descriptor)",
        ovf::names::Outside::Invalid(_) => "",
    }
}
