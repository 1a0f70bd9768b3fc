//! Where a one-pass read puts a disk's bytes: the seam between the streaming reader
//! (`read::stream`), which knows the format, and the copy engine's outputs (`write::copy`),
//! which know none.

use crate::error::Result;

/// Receives the bytes of a disk read in one pass.
pub trait Sink: Sync {
    /// Called once with the capacity in bytes, before anything is written.
    fn begin(&self, capacity: u64) -> Result<()>;
    /// Writes data at `offset` (from any worker thread).
    fn write(&self, offset: u64, data: &[u8]) -> Result<()>;
    /// Zero-fills `len` bytes at `offset` (called in order, from the reading thread).
    fn zero(&self, offset: u64, len: u64) -> Result<()>;
    /// Whether the sink wants to be told the next [`StreamPoint`] the read passes (asked
    /// after each metadata block; telling one waits for the grains in flight).
    fn wants_point(&self) -> bool {
        false
    }
    /// Every byte of the disk below `at.covered` has been handed to [`Sink::write`] or
    /// [`Sink::zero`] and written: a point another read may continue from.
    fn point(&self, at: StreamPoint) -> Result<()> {
        let _ = at;
        Ok(())
    }
}

/// A sink that keeps nothing: for reads that only check.
pub(crate) struct Discard;

impl Sink for Discard {
    fn begin(&self, _: u64) -> Result<()> {
        Ok(())
    }
    fn write(&self, _: u64, _: &[u8]) -> Result<()> {
        Ok(())
    }
    fn zero(&self, _: u64, _: u64) -> Result<()> {
        Ok(())
    }
}

/// Where a one-pass read can be continued by another process: right after a metadata
/// block (a grain table, the directory, the footer), `input` bytes into the stream, with every
/// byte of the disk below `covered` written (and, where the sink is a file, on the device).
/// A read into outputs with a checkpoint (`copy_to`, with the `write` feature) tells it such
/// points as the read passes them; a later read starts there with
/// [`crate::StreamReader::continue_at`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamPoint {
    /// Bytes of the stream read.
    pub input: u64,
    /// Bytes of the disk written.
    pub covered: u64,
}
