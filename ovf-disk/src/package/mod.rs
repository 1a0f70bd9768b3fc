//! OVF packages: the envelope (`.ovf`), the manifest (`.mf`) and OVA archives, read without
//! unpacking, verified, and imported to thick disks.
//!
//! Spec: DMTF DSP0243 "Open Virtualization Format Specification" 1.x and 2.x, and VMware's
//! pre-standard 0.9 envelope (namespace `http://www.vmware.com/schema/ovf/1/envelope`); elements
//! are matched by local name so all three read alike. Refused: XML with a DTD (no entity
//! expansion ever), file names in a package that are absolute, contain `..` or a path
//! separator, tar members that are links or not regular files.

pub mod cert;
pub mod check;
pub mod envelope;
pub mod export;
pub mod manifest;
pub mod ops;
pub mod ova;

use std::path::PathBuf;

/// Why a package could not be read or verified.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// The operating system refused.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The envelope is not well-formed XML, has a DTD, or misses what it must have.
    #[error("{path}: OVF envelope{}: {reason}", line.map_or_else(String::new, |l| format!(" line {l}")))]
    Envelope {
        /// The descriptor.
        path: PathBuf,
        /// Line of the problem, when known.
        line: Option<u32>,
        /// What is wrong.
        reason: String,
    },
    /// A manifest or certificate line could not be understood (line 0: the whole file).
    #[error("{path}: line {line}: {reason}")]
    Manifest {
        /// The manifest.
        path: PathBuf,
        /// One-based line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A tar member or a referenced file name is unsafe or unusable.
    #[error("{path}: {what} at offset {offset:#x}: {reason}")]
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
    /// A file the package needs is not there.
    #[error("{path}: {name} is not in the package")]
    Missing {
        /// The package.
        path: PathBuf,
        /// The file name.
        name: String,
    },
}

/// Whether `name` is a plain file name a package may use: not empty, no path separator, no
/// `..`, not absolute, no NUL.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && !(name.len() >= 2 && name.as_bytes().get(1) == Some(&b':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_only() {
        for ok in ["disk1.vmdk", "a b.ovf", "x..y.mf"] {
            assert!(is_plain_name(ok), "{ok}");
        }
        for bad in [
            "",
            "..",
            "../x",
            "/etc/passwd",
            "a/b",
            "a\\b",
            "C:x",
            "a\0b",
        ] {
            assert!(!is_plain_name(bad), "{bad:?}");
        }
    }
}
