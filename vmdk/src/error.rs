//! Errors of the `vmdk` library.
//!
//! Two levels, after cloud-hypervisor's `block` crate: [`ErrorKind`] says what went wrong in the
//! words of the format, [`Error`] adds where: the file, the structure being read and its byte
//! offset (printed in hex). Every error raised while reading untrusted input carries all three
//! where they are known, so a user can open the file in a hex editor and look.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error with its location: file, structure and byte offset.
#[derive(Debug)]
pub struct Error {
    /// The file being read, when known.
    pub path: Option<PathBuf>,
    /// The on-disk structure being read, in the format's own words ("sparse header",
    /// "grain table", "grain marker", "descriptor", ...).
    pub structure: &'static str,
    /// Byte offset of the structure (or of the faulty field) in `path`.
    pub offset: Option<u64>,
    /// What went wrong.
    pub kind: ErrorKind,
}

/// What went wrong, independent of where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The operating system reported an error.
    #[error("I/O error: {0}")]
    Io(#[source] io::Error),
    /// A structure (or the data it points to) lies partly or wholly past the end of its file.
    #[error("needs bytes up to {end:#x} but the file is only {file_len:#x} bytes long")]
    Truncated {
        /// End offset (exclusive) the structure needs.
        end: u64,
        /// Length of the file.
        file_len: u64,
    },
    /// A field holds a value the format does not allow.
    #[error("field {field} = {value:#x}: {reason}")]
    InvalidField {
        /// Field name as the spec spells it.
        field: &'static str,
        /// The value found.
        value: u64,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A descriptor line could not be understood.
    #[error("line {line}: {reason}")]
    Descriptor {
        /// One-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The input is valid but uses a feature this library does not read yet.
    #[error("not supported yet: {0}")]
    Unsupported(String),
    /// The file is not a VMDK at all.
    #[error("not a VMDK: {0}")]
    NotVmdk(String),
    /// A compressed grain is damaged.
    #[error("{0}")]
    Decompress(String),
    /// Two structures disagree (a marker in the wrong place, sizes that do not add up).
    #[error("{0}")]
    Inconsistent(String),
    /// A delta link's `parentCID` does not match its parent's `CID`.
    #[error("parentCID {expected:08x} does not match the parent's CID {found:08x}")]
    ParentCidMismatch {
        /// The child's `parentCID`.
        expected: u32,
        /// The parent's `CID`.
        found: u32,
    },
    /// A parent chain comes back to a link already in it, or is too long.
    #[error("parent chain: {0}")]
    Chain(String),
    /// An extent or parent file name leads outside the descriptor's folder.
    #[error("file name {name:?} leads outside the folder of the descriptor ({why}); pass allow_outside_paths to follow it")]
    PathOutside {
        /// The name as written in the descriptor.
        name: String,
        /// Why it is considered outside.
        why: &'static str,
    },
    /// The caller asked for something impossible (a read outside the disk, a bad option).
    #[error("{0}")]
    Usage(String),
}

impl Error {
    /// Builds an error at `structure`, `offset` of `path`.
    pub fn new(
        path: Option<&Path>,
        structure: &'static str,
        offset: Option<u64>,
        kind: ErrorKind,
    ) -> Self {
        Self {
            path: path.map(Path::to_path_buf),
            structure,
            offset,
            kind,
        }
    }

    /// An error about the file as a whole, not one structure in it.
    pub fn file(path: &Path, kind: ErrorKind) -> Self {
        Self::new(Some(path), "file", None, kind)
    }

    /// An invalid field at `offset` of `structure` in `path`.
    pub fn field(
        path: &Path,
        structure: &'static str,
        offset: u64,
        field: &'static str,
        value: u64,
        reason: &'static str,
    ) -> Self {
        Self::new(
            Some(path),
            structure,
            Some(offset),
            ErrorKind::InvalidField {
                field,
                value,
                reason,
            },
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(path) = &self.path {
            write!(f, "{}: ", path.display())?;
        }
        f.write_str(self.structure)?;
        if let Some(offset) = self.offset {
            write!(f, " at offset {offset:#x}")?;
        }
        write!(f, ": {}", self.kind)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            ErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        match e.kind {
            ErrorKind::Io(ref inner) if e.path.is_none() => io::Error::new(inner.kind(), e),
            _ => io::Error::new(io::ErrorKind::InvalidData, e),
        }
    }
}
