//! Reading a stream-optimized extent from a stream (a pipe, a tar member) in one forward pass,
//! with no seeking and no temporary copy.
//!
//! Spec: "Stream-Optimized Compressed" (pp. 11-13). The header comes first (checked as every
//! reader checks it, [`super::header`]), then the embedded descriptor; grains follow, each
//! behind its grain marker, in increasing LBA order (as VMware writes them); grain table, grain
//! directory and footer blocks are skipped by their marker's sector count; the end-of-stream
//! marker (or, for qemu-img's files, the end of the input) ends the disk. Grains are inflated on
//! worker threads and handed to a sink with their offsets; the ranges between grains are
//! zero-filled through the sink in order, so the output is complete (eager-zeroed) when the
//! stream ends. At most a bounded number of compressed grains are in flight.
//!
//! Refused: extents that are not stream-optimized, grains out of LBA order or overlapping (a
//! seekable reader handles those files), grains past the capacity, compressed sizes larger than
//! a grain can compress to, an embedded descriptor after the first grain.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Condvar, Mutex};

use zerocopy::FromBytes;

use super::header::{parse_header, Geometry};
use crate::codec::{inflate, max_compressed_grain};
use crate::descriptor::Descriptor;
use crate::error::{Error, ErrorKind, Feature, Result};
use crate::format::{GrainMarker, MetadataMarker, SparseExtentHeader as H, SECTOR_SIZE};
use crate::sink::{Discard, Sink, StreamPoint};

/// What a one-pass read found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StreamStats {
    /// Capacity in bytes.
    pub capacity: u64,
    /// Grains inflated.
    pub grains: u64,
    /// Bytes of the disk those grains hold (inside the capacity).
    pub data: u64,
    /// Bytes consumed from the input.
    pub bytes_read: u64,
}

/// The input, with the count of bytes consumed for error offsets.
struct Input<R> {
    inner: R,
    pos: u64,
    name: PathBuf,
}

impl<R: Read> Input<R> {
    fn err(&self, structure: &'static str, kind: ErrorKind) -> Error {
        Error::at(&self.name, structure, self.pos, kind)
    }

    /// Reads exactly `buf.len()` bytes; `Ok(false)` at a clean end of input before any byte.
    fn fill(&mut self, structure: &'static str, buf: &mut [u8]) -> Result<bool> {
        let mut got = 0;
        while got < buf.len() {
            let dst = buf.split_at_mut(got.min(buf.len())).1;
            match self.inner.read(dst) {
                Ok(0) if got == 0 => return Ok(false),
                Ok(0) => {
                    return Err(self.err(
                        structure,
                        ErrorKind::Truncated {
                            end: self.pos + buf.len() as u64,
                            file_len: self.pos + got as u64,
                        },
                    ))
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.err(structure, ErrorKind::Io(e))),
            }
        }
        self.pos += buf.len() as u64;
        Ok(true)
    }

    /// Reads exactly `buf.len()` bytes; the end of input is an error.
    fn fill_all(&mut self, structure: &'static str, buf: &mut [u8]) -> Result<()> {
        if self.fill(structure, buf)? || buf.is_empty() {
            return Ok(());
        }
        Err(self.err(
            structure,
            ErrorKind::Truncated {
                end: self.pos + buf.len() as u64,
                file_len: self.pos,
            },
        ))
    }

    fn skip(&mut self, structure: &'static str, mut n: u64) -> Result<()> {
        let mut scratch = [0u8; 4096];
        while n > 0 {
            let k = n.min(scratch.len() as u64) as usize;
            self.fill_all(structure, crate::io::head_mut(&mut scratch, k))?;
            n -= k as u64;
        }
        Ok(())
    }
}

/// A stream-optimized extent being read in one forward pass: the header and embedded
/// descriptor are read by [`StreamReader::new`], so the capacity is known before any output is
/// made; the grains are read by [`StreamReader::check`] or `copy_to` (with the `write` feature).
///
/// ```
/// # fn main() -> vmdk::Result<()> {
/// // A stream-optimized disk in VMware's layout, as an OVA carries it.
/// let image = std::fs::read("../testdata/fuzz-seeds/stream/stream-vmware.vmdk").unwrap();
/// let reader = vmdk::StreamReader::new(&image[..], "disk.vmdk")?;
/// assert!(reader.capacity() > 0);
/// let stats = reader.check(2)?;
/// assert!(stats.grains > 0);
/// # Ok(())
/// # }
/// ```
pub struct StreamReader<R> {
    input: Input<R>,
    geometry: Geometry,
    descriptor: Option<Descriptor>,
    /// Bytes of the disk written before this read (a read continued at a [`StreamPoint`]).
    covered: u64,
}

impl<R> std::fmt::Debug for StreamReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamReader")
            .field("name", &self.input.name)
            .field("pos", &self.input.pos)
            .field("geometry", &self.geometry)
            .finish()
    }
}

/// One block of the stream after the header.
enum Block {
    /// A grain: its disk offset, the offset of its data in the input, the compressed bytes.
    Grain(u64, u64, Vec<u8>),
    /// Metadata skipped, or an end of input.
    Skipped,
    /// The end-of-stream marker, or (qemu-img's files) the end of the input.
    End,
}

impl<R: Read> StreamReader<R> {
    /// Reads and checks the header of a stream-optimized extent from `input` (named `name` in
    /// errors), and its embedded descriptor, up to the first grain.
    pub fn new(input: R, name: impl AsRef<Path>) -> Result<Self> {
        let name = name.as_ref().to_path_buf();
        let mut input = Input {
            inner: input,
            pos: 0,
            name,
        };
        let path = input.name.clone();
        let mut head = [0u8; 512];
        input.fill_all("sparse header", &mut head)?;
        let header = parse_header(&head, &path, "sparse header", 0)?;
        let geometry = header.validate(&path, "sparse header", 0)?;
        let stream_flags = H::FLAG_COMPRESSED | H::FLAG_MARKERS;
        if geometry.flags & stream_flags != stream_flags {
            return Err(Error::at(
                &path,
                "sparse header",
                H::AT_FLAGS,
                ErrorKind::Unsupported(Feature::NotStreamOptimized),
            ));
        }
        // Grains start at overHead (VMware and qemu); everything before it is header, descriptor
        // and (qemu) the grain directory and tables, which a streaming reader does not need.
        let over_head = header.over_head.get();
        let first = over_head
            .checked_mul(SECTOR_SIZE)
            .filter(|&b| (SECTOR_SIZE..=64 << 20).contains(&b))
            .ok_or_else(|| {
                Error::field(
                    &path,
                    "sparse header",
                    H::AT_OVER_HEAD,
                    "overHead",
                    over_head,
                    "the first grain must start within 64 MiB",
                )
            })?;
        let descriptor = match header.embedded_descriptor(&path, "sparse header", 0)? {
            None => None,
            Some((at, len)) if at < SECTOR_SIZE || at + len > first => {
                return Err(Error::at(
                    &path,
                    "embedded descriptor",
                    at,
                    ErrorKind::Inconsistent(format!(
                        "lies outside the metadata before the first grain (at {first:#x})"
                    )),
                ))
            }
            Some((at, len)) => {
                input.skip("embedded descriptor", at - input.pos)?;
                // Bounded by the header check: at most 4 MiB.
                let mut text = vec![0u8; usize::try_from(len).unwrap_or(0)];
                input.fill_all("embedded descriptor", &mut text)?;
                let d = Descriptor::parse_bytes(&text)
                    .map_err(|kind| Error::at(&path, "embedded descriptor", at, kind))?;
                Some(d)
            }
        };
        input.skip("embedded descriptor", first - input.pos)?;
        Ok(Self {
            input,
            geometry,
            descriptor,
            covered: 0,
        })
    }

    /// This stream continued at `at` (a point an earlier read of the same stream was told),
    /// reading from `input`, which must give the stream's bytes from `at.input` on: the
    /// header and descriptor are this reader's (read from the stream's start), the grains
    /// before `at` are not read again, and the disk below `at.covered` is neither written nor
    /// zero-filled again. A point before the first grain, or past the disk, is refused.
    ///
    /// ```
    /// # fn main() -> vmdk::Result<()> {
    /// let image = std::fs::read("../testdata/fuzz-seeds/stream/stream-vmware.vmdk").unwrap();
    /// // The first grain's place (overHead, in sectors, at byte 64 of the header): a point
    /// // where nothing of the disk is written yet.
    /// let first = u64::from_le_bytes(image[64..72].try_into().unwrap()) * 512;
    /// let whole = vmdk::StreamReader::new(&image[..], "disk.vmdk")?.check(1)?;
    /// let at = vmdk::StreamPoint { input: first, covered: 0 };
    /// let rest = vmdk::StreamReader::new(&image[..], "disk.vmdk")?
    ///     .continue_at(&image[first as usize..], at)?
    ///     .check(1)?;
    /// assert_eq!(rest.grains, whole.grains);
    /// # Ok(())
    /// # }
    /// ```
    pub fn continue_at<S: Read>(self, input: S, at: StreamPoint) -> Result<StreamReader<S>> {
        let capacity = self.capacity();
        let grain = self.geometry.grain_bytes();
        if at.input < self.input.pos
            || at.covered > capacity
            || (at.covered % grain != 0 && at.covered != capacity)
        {
            return Err(Error::at(
                &self.input.name,
                "stream point",
                at.input,
                ErrorKind::Inconsistent(format!(
                    "cannot continue the stream here (input {:#x}, disk {:#x}): before the \
                     first grain or not at a grain's end",
                    at.input, at.covered
                )),
            ));
        }
        Ok(StreamReader {
            input: Input {
                inner: input,
                pos: at.input,
                name: self.input.name,
            },
            geometry: self.geometry,
            descriptor: self.descriptor,
            covered: at.covered,
        })
    }

    /// Bytes of the disk a continued read starts at (0 for a read from the start).
    #[cfg(feature = "write")]
    pub(crate) fn covered(&self) -> u64 {
        self.covered
    }

    /// Capacity in bytes.
    pub fn capacity(&self) -> u64 {
        self.geometry.capacity_bytes()
    }

    /// The embedded descriptor, when the header has one.
    pub fn descriptor(&self) -> Option<&Descriptor> {
        self.descriptor.as_ref()
    }

    /// Reads every grain and marker to the end of the stream, inflating each grain on
    /// `threads` workers, and keeps nothing: what `check` does with a stream.
    pub fn check(self, threads: usize) -> Result<StreamStats> {
        self.read_into(&Discard, threads)
    }

    /// Reads the next block: a grain, or metadata (skipped), or the end.
    fn next_block(&mut self, covered: u64) -> Result<Block> {
        let path = self.input.name.clone();
        let capacity = self.capacity();
        let grain_bytes = self.geometry.grain_bytes();
        let mut marker = [0u8; 512];
        let at = self.input.pos;
        let (head, rest) = marker.split_at_mut(GrainMarker::SIZE as usize);
        if !self.input.fill("marker", head)? {
            return Ok(Block::End); // qemu-img's files end without an end-of-stream marker
        }
        let m = GrainMarker::read_from_bytes(&*head).map_err(|_| {
            self.input
                .err("marker", ErrorKind::Inconsistent("short marker".into()))
        })?;
        let (val, size) = (m.lba.get(), u64::from(m.size.get()));
        if size == 0 {
            // A metadata marker: the rest of its sector, then its blocks.
            self.input.fill_all("metadata marker", rest)?;
            let md = MetadataMarker::read_from_bytes(&marker[..]).map_err(|_| {
                self.input.err(
                    "metadata marker",
                    ErrorKind::Inconsistent("short marker".into()),
                )
            })?;
            return match md.marker_type.get() {
                MetadataMarker::EOS => Ok(Block::End),
                MetadataMarker::GT | MetadataMarker::GD | MetadataMarker::FOOTER => {
                    let n = val
                        .checked_mul(SECTOR_SIZE)
                        .filter(|&n| n <= 1 << 30)
                        .ok_or_else(|| {
                            Error::field(
                                &path,
                                "metadata marker",
                                at,
                                "numSectors",
                                val,
                                "more metadata than any disk has",
                            )
                        })?;
                    self.input.skip("metadata", n)?;
                    Ok(Block::Skipped)
                }
                t => Err(Error::field(
                    &path,
                    "metadata marker",
                    at + 12,
                    "type",
                    t.into(),
                    "unknown marker type",
                )),
            };
        }
        if size > max_compressed_grain(grain_bytes) {
            return Err(Error::field(
                &path,
                "grain marker",
                at + 8,
                "size",
                size,
                "not a plausible compressed grain size",
            ));
        }
        let offset = val
            .checked_mul(SECTOR_SIZE)
            .filter(|o| o % grain_bytes == 0 && *o < capacity)
            .ok_or_else(|| {
                Error::field(
                    &path,
                    "grain marker",
                    at,
                    "lba",
                    val,
                    "not the start of a grain inside the capacity",
                )
            })?;
        if offset < covered {
            return Err(Error::at(
                &path,
                "grain marker",
                at,
                ErrorKind::Unsupported(Feature::GrainsOutOfOrder),
            ));
        }
        // Bounded above by the plausible compressed size (a grain plus deflate's growth).
        let mut packed = vec![0u8; usize::try_from(size).unwrap_or(0)];
        self.input.fill_all("compressed grain", &mut packed)?;
        let pad = (SECTOR_SIZE - (GrainMarker::SIZE + size) % SECTOR_SIZE) % SECTOR_SIZE;
        // The last block of a file may end without its padding.
        if pad > 0 {
            let mut p = [0u8; SECTOR_SIZE as usize];
            let _ = self
                .input
                .fill("grain padding", crate::io::head_mut(&mut p, pad as usize));
        }
        Ok(Block::Grain(offset, at + GrainMarker::SIZE, packed))
    }

    /// Reads the rest of the stream and writes the whole disk through `sink`: grains inflated
    /// on `threads` workers, gaps zero-filled in order.
    pub(crate) fn read_into(mut self, sink: &dyn Sink, threads: usize) -> Result<StreamStats> {
        let capacity = self.capacity();
        let grain_bytes = self.geometry.grain_bytes();
        let path = self.input.name.clone();
        sink.begin(capacity)?;
        let threads = threads.max(1);
        let (job_tx, job_rx) = mpsc::sync_channel::<Job>(threads * 8);
        let job_rx = Mutex::new(job_rx);
        let failure: Mutex<Option<Error>> = Mutex::new(None);
        let mut stats = StreamStats {
            capacity,
            ..StreamStats::default()
        };
        // Bytes of the disk zero-filled or handed to a worker so far.
        let mut covered = self.covered;
        // Grains handed to workers and not yet written: a point is told once none is.
        let in_flight = (Mutex::new(0u64), Condvar::new());
        let result = std::thread::scope(|scope| -> Result<()> {
            for _ in 0..threads {
                let (job_rx, failure, path, in_flight) = (&job_rx, &failure, &path, &in_flight);
                scope.spawn(move || {
                    inflate_jobs(
                        job_rx,
                        (failure, in_flight),
                        sink,
                        (path, capacity, grain_bytes),
                    )
                });
            }
            let outcome = (|| -> Result<()> {
                while failure.lock().map(|f| f.is_none()).unwrap_or(false) {
                    let (offset, data_at, packed) = match self.next_block(covered)? {
                        Block::End => return Ok(()),
                        Block::Skipped if sink.wants_point() => {
                            let at = StreamPoint {
                                input: self.input.pos,
                                covered,
                            };
                            if settled(&in_flight, &failure) {
                                sink.point(at)?;
                            }
                            continue;
                        }
                        Block::Skipped => continue,
                        Block::Grain(o, d, p) => (o, d, p),
                    };
                    if offset > covered {
                        sink.zero(covered, offset - covered)?;
                    }
                    let len = grain_bytes.min(capacity - offset);
                    covered = offset + len;
                    stats.grains += 1;
                    stats.data += len;
                    if let Ok(mut n) = in_flight.0.lock() {
                        *n += 1;
                    }
                    if job_tx.send((offset, data_at, packed)).is_err() {
                        return Ok(());
                    }
                }
                Ok(())
            })();
            drop(job_tx);
            outcome
        });
        if let Some(e) = failure.into_inner().ok().flatten() {
            return Err(e);
        }
        result?;
        if covered < capacity {
            sink.zero(covered, capacity - covered)?;
        }
        stats.bytes_read = self.input.pos;
        Ok(stats)
    }
}

/// A grain for a worker: its disk offset, where its data is in the input, its compressed bytes.
type Job = (u64, u64, Vec<u8>);

/// A worker of a one-pass read: inflates the grains of `jobs` and writes them through `sink`
/// until the jobs end, keeping the first error in `failure` and counting each grain done out
/// of `in_flight`. `path`, `capacity` and `grain_bytes` are the stream's.
fn inflate_jobs(
    jobs: &Mutex<mpsc::Receiver<Job>>,
    (failure, in_flight): (&Mutex<Option<Error>>, &(Mutex<u64>, Condvar)),
    sink: &dyn Sink,
    (path, capacity, grain_bytes): (&Path, u64, u64),
) {
    let mut out = vec![0u8; usize::try_from(grain_bytes).unwrap_or(0)];
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok((offset, data_at, packed)) = job else {
            return;
        };
        let len = grain_bytes.min(capacity - offset) as usize;
        let inflated = inflate(&packed, &mut out).and_then(|n| match n < len {
            true => Err(format!("inflates to {n} bytes, expected {len}")),
            false => Ok(()),
        });
        let r = inflated
            .map_err(|e| {
                Error::at(
                    path,
                    "compressed grain",
                    data_at,
                    ErrorKind::Decompress(format!("grain at disk offset {offset:#x}: {e}")),
                )
            })
            .and_then(|()| sink.write(offset, out.split_at(len.min(out.len())).0));
        if let Err(e) = r {
            if let Ok(mut f) = failure.lock() {
                f.get_or_insert(e);
            }
        }
        if let Ok(mut n) = in_flight.0.lock() {
            *n = n.saturating_sub(1);
            in_flight.1.notify_all();
        }
    }
}

/// Waits until the workers have written every grain handed to them; `false` when one failed
/// (no point is told then).
fn settled(in_flight: &(Mutex<u64>, Condvar), failure: &Mutex<Option<Error>>) -> bool {
    let Ok(mut n) = in_flight.0.lock() else {
        return false;
    };
    while *n > 0 {
        n = match in_flight.1.wait(n) {
            Ok(n) => n,
            Err(_) => return false,
        };
    }
    failure.lock().map(|f| f.is_none()).unwrap_or(false)
}
