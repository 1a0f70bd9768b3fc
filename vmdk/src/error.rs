//! Errors of the `vmdk` library.
//!
//! Two levels, after cloud-hypervisor's `block` crate: [`ErrorKind`] says what went wrong in the
//! words of the format, [`Error`] adds where: the file, the structure being read and its byte
//! offset (printed in hex). Every error raised while reading untrusted input carries all three
//! where they are known, so a user can open the file in a hex editor and look.
//!
//! One convention: `Display` carries everything, the inner error included, so printing an error
//! once prints it whole; [`std::error::Error::source`] also returns the operating system's
//! error of an [`ErrorKind::Io`], for callers that walk the chain (a printer that walks it
//! skips a cause whose text is already shown).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error with its location: file, structure and byte offset.
///
/// ```
/// let e = vmdk::Disk::open("/no/such/disk.vmdk").unwrap_err();
/// assert!(matches!(e.kind(), vmdk::ErrorKind::Io(_)));
/// assert_eq!(e.path(), Some(std::path::Path::new("/no/such/disk.vmdk")));
/// ```
pub struct Error {
    /// Boxed, so a `Result` carrying this error (or an error that wraps it) stays small.
    inner: Box<Inner>,
}

/// What an [`Error`] holds.
struct Inner {
    path: Option<PathBuf>,
    structure: &'static str,
    offset: Option<u64>,
    kind: ErrorKind,
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("path", &self.inner.path)
            .field("structure", &self.inner.structure)
            .field("offset", &self.inner.offset)
            .field("kind", &self.inner.kind)
            .finish()
    }
}

/// A feature of the format (or a size) this library does not read or write, as opposed to
/// damage: a caller can fall back to another tool.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Feature {
    /// A `COWD` header version other than 1.
    CowdVersion(u32),
    /// A seSparse constant header version other than `0x200000001`.
    SeSparseVersion(u64),
    /// seSparse constant header flags (none are defined).
    SeSparseFlags(u64),
    /// A seSparse extent whose volatile header says its journal must be replayed (it was not
    /// closed cleanly): its grain directory and tables may be stale until ESXi replays the
    /// journal, which this library does not do.
    SeSparseJournalReplay,
    /// Raw device maps (createTypes `vmfsRDM`, `vmfsRDMP`).
    RawDeviceMap,
    /// Disks backed by host devices (`fullDevice`, `partitionedDevice`, `vmfsRaw`).
    HostDevice,
    /// Another createType, as written.
    CreateType(String),
    /// An extent type, as written.
    ExtentKind(String),
    /// A sparse extent header version other than 1 to 3.
    Version(u32),
    /// Incompatible header flags this library does not know (the unknown bits).
    IncompatibleFlags(u32),
    /// A `compressAlgorithm` other than deflate.
    CompressAlgorithm(u16),
    /// A streaming (one-pass) read of an extent that is not stream-optimized.
    NotStreamOptimized,
    /// A stream whose grains are not in increasing LBA order: a seekable reader reads it.
    GrainsOutOfOrder,
    /// Writing a disk of this many bytes (the writers stop at 64 TiB).
    WriteCapacity(u64),
    /// Writing a file whose grains lie past 2 TiB (grain table entries are 32-bit sectors).
    SectorsBeyond2TiB,
    /// A disk encrypted by vSphere VM encryption (the descriptor's `encryptionKeys`, or the
    /// `vmwarevmcrypt` I/O filter in `ddb.iofilters`): its grains are ciphertext.
    Encrypted,
    /// Writing a disk of this createType.
    WriteCreateType(String),
    /// Reading a stream into a disk of this createType (only raw and flat types can be).
    StreamInto(String),
    /// A qcow2 feature this library does not read (encryption, an external data file,
    /// extended L2 entries, a version or compression type), as named.
    Qcow2(String),
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CowdVersion(v) => write!(f, "COWD version {v} (version 1 is read)"),
            Self::SeSparseVersion(v) => {
                write!(f, "seSparse version {v:#x} (version 0x200000001 is read)")
            }
            Self::SeSparseFlags(bits) => write!(f, "seSparse flags {bits:#x}"),
            Self::SeSparseJournalReplay => f.write_str(
                "replaying a seSparse journal: the extent was not closed cleanly and its tables \
                    may be stale until ESXi opens it again",
            ),
            Self::RawDeviceMap => f.write_str("raw device maps"),
            Self::HostDevice => f.write_str("disks backed by host devices"),
            Self::CreateType(t) => write!(f, "createType {t}"),
            Self::ExtentKind(k) => write!(f, "{k} extents"),
            Self::Version(v) => write!(f, "sparse extent version {v} (versions 1 to 3 are read)"),
            Self::IncompatibleFlags(bits) => write!(f, "incompatible flags {bits:#x}"),
            Self::CompressAlgorithm(a) => write!(f, "compressAlgorithm {a}"),
            Self::NotStreamOptimized => f.write_str(
                "streaming reads need a stream-optimized extent (compressed grains with markers)",
            ),
            Self::GrainsOutOfOrder => f.write_str(
                "grains out of LBA order in a one-pass read: this file must be read with a \
                    seekable reader",
            ),
            Self::WriteCapacity(bytes) => write!(
                f,
                "writing a disk of {bytes} bytes: VMDK writers here stop at 64 TiB"
            ),
            Self::SectorsBeyond2TiB => f.write_str(
                "an extent file larger than 2 TiB: grain table entries are 32-bit sectors",
            ),
            Self::Encrypted => f.write_str(
                "a disk encrypted by vSphere VM encryption (encryptionKeys, the vmwarevmcrypt \
                    I/O filter): its data is ciphertext here; decrypt the VM in vSphere, or \
                    export it through the host, and read that copy",
            ),
            Self::WriteCreateType(t) => write!(
                f,
                "writing createType {t} (the writers write raw, qcow2, vhd, vhd-fixed, vhdx, \
                    vhdx-fixed, monolithicSparse, monolithicFlat, twoGbMaxExtentSparse, twoGbMaxExtentFlat, \
                    streamOptimized and vmfs)"
            ),
            Self::StreamInto(t) => write!(f, "reading a stream into a {t} disk"),
            Self::Qcow2(what) => write!(f, "qcow2 with {what}"),
        }
    }
}

/// What kind of failure an error is, for a caller that branches on it rather than on every
/// kind: `vmdk` and `ovf-disk` sort each of their errors into these five.
///
/// ```
/// let e = vmdk::Disk::open("/no/such/disk.vmdk").unwrap_err();
/// assert_eq!(e.category(), vmdk::Category::Io);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Category {
    /// The operating system failed or refused (not found, permission, a failing device).
    Io,
    /// The input is damaged: a structure holds what the format forbids, or two disagree.
    Damaged,
    /// A file is shorter than its structures say: typically an incomplete copy or download.
    Truncated,
    /// The input uses a feature (or is a format) this library does not read or write.
    Unsupported,
    /// Refused by policy or by the caller: a name leading outside its folder, a limit, an
    /// option out of range, an output that exists.
    Refused,
}

/// What went wrong, independent of where.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The operating system reported an error.
    #[error("{0}")]
    Io(io::Error),
    /// A structure (or the data it points to) lies partly or wholly past the end of its file.
    #[error("needs bytes up to {end:#x} but the file is only {file_len:#x} bytes long")]
    Truncated {
        /// End offset (exclusive) the structure needs.
        end: u64,
        /// Length of the file.
        file_len: u64,
    },
    /// A file that ends before what its header says must come last (a stream-optimized
    /// extent without its footer and end-of-stream marker): cut short, as an interrupted copy
    /// or download leaves it.
    #[error("{0}: the file looks cut short")]
    CutShort(String),
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
    /// The input is valid but uses a feature this library does not read (or write) yet.
    #[error("not supported yet: {0}")]
    Unsupported(Feature),
    /// The file is not a VMDK at all: no sparse extent magic and not a text descriptor.
    #[error("not a VMDK: no sparse extent magic (KDMV) and not a text descriptor")]
    NotVmdk,
    /// The file is an image of another format (its magic says which): never taken for raw
    /// bytes by [`crate::OpenOptions::open_vmdk_or_raw`].
    #[error(
        "a {0} image, not a VMDK: not read as raw bytes (open it as raw explicitly to copy its \
         bytes as they are; qemu-img converts it)"
    )]
    OtherFormat(&'static str),
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
    /// A parent chain comes back to a link already in it.
    #[error("parent chain: this file is its own ancestor")]
    ParentLoop,
    /// A parent chain is longer than [`crate::OpenOptions::max_chain_length`].
    #[error("parent chain: longer than {max} links")]
    ChainTooLong {
        /// The limit.
        max: usize,
    },
    /// An extent or parent file name leads outside the descriptor's folder.
    #[error("file name {name:?} leads outside the folder of the descriptor ({why})")]
    PathOutside {
        /// The name as written in the descriptor.
        name: String,
        /// Why it is considered outside.
        why: &'static str,
    },
    /// The caller asked for something impossible (a read outside the disk, outputs that do not
    /// hold the disk, a bad option).
    #[error("{0}")]
    InvalidInput(String),
    /// The caller stopped a write (`WriteOptions::cancel`, with the `write` feature).
    #[error("cancelled")]
    Cancelled,
}

impl Error {
    /// Builds an error at `structure`, `offset` of `path`.
    pub(crate) fn new(
        path: Option<&Path>,
        structure: &'static str,
        offset: Option<u64>,
        kind: ErrorKind,
    ) -> Self {
        Self {
            inner: Box::new(Inner {
                path: path.map(Path::to_path_buf),
                structure,
                offset,
                kind,
            }),
        }
    }

    /// An I/O error on the file `path` as a whole: what a [`crate::Files`] implementation
    /// returns when a file cannot be opened or read.
    pub fn io(path: impl AsRef<Path>, error: io::Error) -> Self {
        Self::file(path.as_ref(), ErrorKind::Io(error))
    }

    /// An error about the file as a whole, not one structure in it.
    pub(crate) fn file(path: &Path, kind: ErrorKind) -> Self {
        Self::new(Some(path), "file", None, kind)
    }

    /// An error at `offset` of `structure` in `path`.
    pub(crate) fn at(path: &Path, structure: &'static str, offset: u64, kind: ErrorKind) -> Self {
        Self::new(Some(path), structure, Some(offset), kind)
    }

    /// A partial output (`structure`: `partial qcow2 output`, ...) a write was asked to
    /// continue that is not what its checkpoint says, at `offset`: `why`.
    #[cfg(feature = "write")]
    pub(crate) fn cannot_resume(
        path: Option<&Path>,
        structure: &'static str,
        offset: u64,
        why: &str,
    ) -> Self {
        let kind = ErrorKind::InvalidInput(format!("cannot resume: {why}"));
        Self::new(path, structure, Some(offset), kind)
    }

    /// An invalid field at `offset` of `structure` in `path`.
    pub(crate) fn field(
        path: &Path,
        structure: &'static str,
        offset: u64,
        field: &'static str,
        value: u64,
        reason: &'static str,
    ) -> Self {
        Self::at(
            path,
            structure,
            offset,
            ErrorKind::InvalidField {
                field,
                value,
                reason,
            },
        )
    }

    /// What went wrong, taken out of the error.
    #[cfg(feature = "write")]
    pub(crate) fn into_kind(self) -> ErrorKind {
        self.inner.kind
    }

    /// The same error about the file `path`: what a writer that writes under temporary names
    /// uses to name the final output in the message.
    pub fn with_path(mut self, path: impl AsRef<Path>) -> Self {
        self.inner.path = Some(path.as_ref().to_path_buf());
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.inner.kind
    }

    /// The file being read (or written), when known.
    pub fn path(&self) -> Option<&Path> {
        self.inner.path.as_deref()
    }

    /// The on-disk structure being read, in the format's own words ("sparse header", "grain
    /// table", "grain marker", "descriptor", ...), or "file" for the file as a whole.
    pub fn structure(&self) -> &'static str {
        self.inner.structure
    }

    /// Byte offset of the structure (or of the faulty field) in [`Error::path`].
    pub fn offset(&self) -> Option<u64> {
        self.inner.offset
    }

    /// What kind of failure this is: an end of file met inside a structure is
    /// [`Category::Truncated`], like [`ErrorKind::Truncated`].
    pub fn category(&self) -> Category {
        match &self.inner.kind {
            ErrorKind::Io(e) if e.kind() == io::ErrorKind::UnexpectedEof => Category::Truncated,
            ErrorKind::Io(_) => Category::Io,
            ErrorKind::Truncated { .. } | ErrorKind::CutShort(_) => Category::Truncated,
            ErrorKind::Unsupported(_) | ErrorKind::NotVmdk | ErrorKind::OtherFormat(_) => {
                Category::Unsupported
            }
            ErrorKind::PathOutside { .. }
            | ErrorKind::InvalidInput(_)
            | ErrorKind::Cancelled
            | ErrorKind::ChainTooLong { .. } => Category::Refused,
            ErrorKind::InvalidField { .. }
            | ErrorKind::Descriptor { .. }
            | ErrorKind::Decompress(_)
            | ErrorKind::Inconsistent(_)
            | ErrorKind::ParentCidMismatch { .. }
            | ErrorKind::ParentLoop => Category::Damaged,
        }
    }

    /// Whether the error is about what the file is, not damage in it: not found or unreadable,
    /// not a VMDK, a feature not read, a name leading outside the folder, a bad argument.
    pub(crate) fn is_about_the_input(&self) -> bool {
        match &self.inner.kind {
            ErrorKind::NotVmdk
            | ErrorKind::Unsupported(_)
            | ErrorKind::InvalidInput(_)
            | ErrorKind::PathOutside { .. } => true,
            ErrorKind::Io(io) => {
                self.inner.structure == "file" && io.kind() != io::ErrorKind::UnexpectedEof
            }
            _ => false,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(path) = &self.inner.path {
            write!(f, "{}: ", path.display())?;
        }
        f.write_str(self.inner.structure)?;
        if let Some(offset) = self.inner.offset {
            write!(f, " at offset {offset:#x}")?;
        }
        write!(f, ": {}", self.inner.kind)
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.inner.kind {
            ErrorKind::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> Self {
        match e.inner.kind {
            ErrorKind::Io(ref inner) if e.inner.path.is_none() => io::Error::new(inner.kind(), e),
            _ => io::Error::new(io::ErrorKind::InvalidData, e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_carries_the_inner_error_and_source_chains_to_it() {
        let e = Error::at(
            Path::new("d.vmdk"),
            "grain table",
            0x200,
            ErrorKind::Io(io::Error::other("disk on fire")),
        );
        assert_eq!(
            e.to_string(),
            "d.vmdk: grain table at offset 0x200: disk on fire"
        );
        let inner = std::error::Error::source(&e).map(ToString::to_string);
        assert_eq!(inner.as_deref(), Some("disk on fire"));
        let u = Error::file(
            Path::new("x"),
            ErrorKind::Unsupported(Feature::CompressAlgorithm(2)),
        );
        assert_eq!(
            u.to_string(),
            "x: file: not supported yet: compressAlgorithm 2"
        );
    }
}
