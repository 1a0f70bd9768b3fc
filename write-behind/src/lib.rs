//! A buffered writer that has the device write what it was given while more is produced: what
//! `vmdk`'s stream writer and `ovf-disk`'s export write their files through.
//!
//! The page cache holds a written file's bytes until the kernel's flusher or an `fsync` sends
//! them to the device; with a few GiB of memory, the whole of a stream-optimized output can wait
//! for the final `fsync`, which then waits for the device alone (0.2 s for a 500 MB output on
//! the benchmark machine, 3% of the conversion). [`WriteBehind`] starts the device write of
//! each few MiB as soon as they are written, usually without waiting for it, so the device works
//! while the grains after them are compressed.

#![deny(missing_docs)]

use std::fs::File;
use std::io::{self, BufWriter, Seek, Write};

/// Bytes written between two starts of the device write.
const CHUNK: u64 = 8 << 20;

/// The advice covers whole pages only: the page the last byte given is in may be written to
/// again.
const PAGE: u64 = 4096;

/// A buffered writer over a file that starts writing each 8 MiB it has been given to the
/// device, so that a final `sync_all` has little left to wait for. The start is
/// `POSIX_FADV_DONTNEED` on the range, which on Linux starts the write-back of its dirty pages
/// (waiting only when the device's queue is full) and drops those of its pages that are already
/// clean from the page cache: the pages just written are dirty or being written, so they stay
/// (after a 489 MiB stream was written, `fincore` found all of it cached). Elsewhere, or on a
/// file whose position cannot be known (a pipe), it is a plain buffered writer.
///
/// ```
/// # fn main() -> std::io::Result<()> {
/// use std::io::Write;
/// let dir = tempfile::tempdir()?;
/// let file = std::fs::File::create(dir.path().join("disk.vmdk"))?;
/// let mut out = write_behind::WriteBehind::new(&file);
/// out.write_all(b"grains")?;
/// out.flush()?;
/// file.sync_all()?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct WriteBehind<'a> {
    inner: BufWriter<&'a File>,
    /// Where the next byte given goes in the file; `None` when that is not known (a pipe).
    pos: Option<u64>,
    /// Bytes before this offset have had their device write started.
    started: u64,
}

impl<'a> WriteBehind<'a> {
    /// Writes to `file` from its current position, through a 1 MiB buffer.
    pub fn new(mut file: &'a File) -> Self {
        let pos = file.stream_position().ok();
        Self {
            inner: BufWriter::with_capacity(1 << 20, file),
            pos,
            started: pos.unwrap_or(0),
        }
    }

    /// Starts the device write of the whole pages given since the last start (best effort: a
    /// file that refuses the advice is written back by the kernel as usual).
    fn start_write_back(&mut self, pos: u64) -> io::Result<()> {
        self.inner.flush()?;
        let end = pos - pos % PAGE;
        #[cfg(target_os = "linux")]
        if let Some(len) = std::num::NonZeroU64::new(end.saturating_sub(self.started)) {
            let _ = rustix::fs::fadvise(
                *self.inner.get_ref(),
                self.started,
                Some(len),
                rustix::fs::Advice::DontNeed,
            );
        }
        self.started = self.started.max(end);
        Ok(())
    }
}

impl Write for WriteBehind<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Before taking more bytes, so that an error here has taken none of `buf`.
        if let Some(pos) = self
            .pos
            .filter(|&p| p.saturating_sub(self.started) >= CHUNK)
        {
            self.start_write_back(pos)?;
        }
        let n = self.inner.write(buf)?;
        self.pos = self.pos.and_then(|p| p.checked_add(n as u64));
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// Every byte arrives, in order, from the file's position on, across many chunks and
    /// writes of every size.
    #[test]
    fn writes_every_byte_from_the_position() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let mut file = File::create(&path).unwrap();
        file.write_all(b"head").unwrap();
        let mut want = b"head".to_vec();
        let mut w = WriteBehind::new(&file);
        let mut x = 1u32;
        for i in 0..3000usize {
            let len = (i * 7919) % 20011;
            let part: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            w.write_all(&part).unwrap();
            want.extend_from_slice(&part);
        }
        assert!(w.started > CHUNK, "write-back was started");
        assert_eq!(w.started % PAGE, 0);
        w.flush().unwrap();
        drop(w);
        let mut got = Vec::new();
        File::open(&path).unwrap().read_to_end(&mut got).unwrap();
        assert_eq!(got.len(), want.len());
        assert!(got == want);
    }

    /// A pipe has no position: the writer stays a plain buffered writer, every byte arrives.
    #[test]
    fn writes_to_a_pipe() {
        let (mut reader, writer) = std::io::pipe().unwrap();
        let file = File::from(std::os::fd::OwnedFd::from(writer));
        let want: Vec<u8> = (0..20u32 << 20).map(|i| (i % 251) as u8).collect();
        let expected = want.clone();
        let read = std::thread::spawn(move || {
            let mut got = Vec::new();
            reader.read_to_end(&mut got).unwrap();
            got
        });
        let mut w = WriteBehind::new(&file);
        assert_eq!(w.pos, None);
        w.write_all(&want).unwrap();
        w.flush().unwrap();
        assert_eq!(w.started, 0);
        drop(w);
        drop(file);
        assert!(read.join().unwrap() == expected);
    }
}
