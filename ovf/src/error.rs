//! The error of the `ovf` crate: an envelope, manifest or certificate that could not be read,
//! or a value that cannot be written, with the file and line.

use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why an envelope, manifest or certificate could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The envelope is not well-formed XML, has a DTD, is larger than its limits, or misses
    /// what it must have.
    #[error("{}: OVF envelope{}: {reason}", path.display(), line.map_or_else(String::new, |l| format!(" line {l}")))]
    Envelope {
        /// The descriptor.
        path: PathBuf,
        /// Line of the problem, when known.
        line: Option<u32>,
        /// What is wrong.
        reason: String,
    },
    /// A manifest or certificate line could not be understood (line 0: the whole file).
    #[error("{}: line {line}: {reason}", path.display())]
    Manifest {
        /// The manifest or certificate.
        path: PathBuf,
        /// One-based line.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A value given for the envelope (a property value, an environment entry) cannot be
    /// used: the message says which and why.
    #[error("{0}")]
    InvalidInput(String),
}
