//! The copy engine: writes every byte of a [`Disk`] into a thick image.
//!
//! It walks the allocation map, not the bytes: unallocated and zeroed ranges are known from
//! metadata and never read. The disk is cut into windows (8 MiB, or one grain if grains are
//! larger) that worker threads take in turn; each reads its window (decompressing
//! stream-optimized grains on its own core) into a buffer it reuses and writes it with positioned
//! writes, so order does not matter and memory is `threads × window` whatever the disk size.
//!
//! Zero ranges are written according to [`ZeroMode`]: as zeros from one shared zero buffer
//! (eager-zeroed thick, the default), preallocated with `fallocate` and not written, or left as
//! holes. Nothing here knows the formats: it needs only `map` and `read_exact`.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use crate::disk::{Allocation, Disk};
use crate::error::{Error, ErrorKind, Result};
use crate::format::SECTOR_SIZE as SECTOR;

/// How zero ranges reach the output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ZeroMode {
    /// Write zeros: every block of the output is allocated and written (eager-zeroed thick).
    #[default]
    Write,
    /// Preallocate the whole output with `fallocate`; zero ranges are allocated but not written.
    Falloc,
    /// Leave zero ranges as holes (a sparse output file).
    Sparse,
}

/// Options of [`copy_to_file`].
#[derive(Clone, Debug)]
pub struct CopyOptions {
    /// How zero ranges are written.
    pub zero: ZeroMode,
    /// Worker threads (at least 1).
    pub threads: usize,
    /// Bytes each worker handles at once (rounded up to a whole number of grains).
    pub window: u64,
    /// Write with `O_DIRECT` (bypassing the page cache) where offsets and lengths are aligned
    /// to 4 KiB; unaligned pieces (a capacity that is not a 4 KiB multiple) go through the
    /// page cache, and so does everything on a file system that refuses `O_DIRECT` (tmpfs).
    /// On by default: measured on a 2 GiB sparse disk on this machine's ext4, inflating to raw
    /// took 1.09-1.40 s direct against 2.4-6.1 s through the page cache (whose writeback
    /// stalls vary from run to run), to a thick VMDK 1.06 s against about 6 s.
    pub direct: bool,
}

impl Default for CopyOptions {
    fn default() -> Self {
        Self {
            zero: ZeroMode::Write,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            window: 8 << 20,
            direct: true,
        }
    }
}

/// What a copy did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CopyStats {
    /// Bytes read from data ranges and written.
    pub data: u64,
    /// Bytes of zero ranges (written as zeros with [`ZeroMode::Write`], otherwise not).
    pub zero: u64,
}

/// Largest grain in any link of the disk.
fn largest_grain(disk: &Disk) -> u64 {
    disk.chain()
        .flat_map(|d| d.extents())
        .filter_map(|e| match &e.data {
            crate::disk::ExtentData::Sparse(s) => Some(s.grain_bytes()),
            _ => None,
        })
        .max()
        .unwrap_or(512)
}

/// One output file holding `len` bytes of the disk from `start`.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// The open file (written with positioned writes from several threads).
    pub file: &'a File,
    /// Its path, for error messages.
    pub path: &'a Path,
    /// First byte of the disk it holds.
    pub start: u64,
    /// Bytes it holds.
    pub len: u64,
}

/// Alignment of `O_DIRECT` writes.
pub const DIRECT_ALIGN: usize = 4096;

struct Targets<'a> {
    targets: &'a [Target<'a>],
    /// `O_DIRECT` handles of the targets, when writing direct.
    direct: Vec<File>,
}

impl<'a> Targets<'a> {
    fn new(targets: &'a [Target<'a>], direct: bool) -> Result<Self> {
        let mut handles = Vec::new();
        if direct {
            for t in targets {
                use std::os::unix::fs::OpenOptionsExt;
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_DIRECT)
                    .open(t.path)
                    .map_err(|e| Error::new(Some(t.path), "output", None, ErrorKind::Io(e)))?;
                handles.push(f);
            }
        }
        Ok(Self {
            targets,
            direct: handles,
        })
    }

    /// Writes `data` at disk offset `offset`, split across the targets it spans.
    fn write_at(&self, mut offset: u64, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            let (i, t) = self
                .targets
                .iter()
                .enumerate()
                .find(|(_, t)| offset >= t.start && offset < t.start + t.len)
                .ok_or_else(|| {
                    Error::new(
                        None,
                        "output",
                        Some(offset),
                        ErrorKind::Usage("no output file holds this offset".into()),
                    )
                })?;
            let n = (t.start + t.len - offset).min(data.len() as u64) as usize;
            let (now, rest) = data.split_at(n);
            let at = offset - t.start;
            let aligned = at % DIRECT_ALIGN as u64 == 0
                && now.len() % DIRECT_ALIGN == 0
                && now.as_ptr().align_offset(DIRECT_ALIGN) == 0;
            let file = match self.direct.get(i) {
                Some(d) if aligned => d,
                _ => t.file,
            };
            file.write_all_at(now, at)
                .map_err(|e| Error::new(Some(t.path), "output", Some(at), ErrorKind::Io(e)))?;
            offset += n as u64;
            data = rest;
        }
        Ok(())
    }
}

/// A buffer of `len` bytes starting on a [`DIRECT_ALIGN`] boundary, without `unsafe`: a larger
/// vector and the aligned part of it.
struct AlignedBuf {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    fn new(len: usize) -> Self {
        let raw = vec![0u8; len + DIRECT_ALIGN];
        let start = raw.as_ptr().align_offset(DIRECT_ALIGN).min(DIRECT_ALIGN);
        Self { raw, start, len }
    }

    fn get(&self, n: usize) -> &[u8] {
        self.raw
            .get(self.start..self.start + n.min(self.len))
            .unwrap_or(&[])
    }

    fn get_mut(&mut self, n: usize) -> &mut [u8] {
        let end = self.start + n.min(self.len);
        self.raw.get_mut(self.start..end).unwrap_or(&mut [])
    }
}

/// Sets each target to its length, or preallocates it with `fallocate` for [`ZeroMode::Falloc`].
fn prepare_targets(targets: &[Target<'_>], zero: ZeroMode) -> Result<()> {
    for t in targets {
        let err = |e: std::io::Error| Error::new(Some(t.path), "output", Some(0), ErrorKind::Io(e));
        match zero {
            ZeroMode::Falloc if t.len > 0 => {
                rustix::fs::fallocate(t.file, rustix::fs::FallocateFlags::empty(), 0, t.len)
                    .map_err(|e| err(e.into()))?
            }
            _ => t.file.set_len(t.len).map_err(err)?,
        }
    }
    Ok(())
}

/// Copies the whole disk into `out` (at offset 0), which is set to the disk's capacity.
/// `progress` is called with the number of bytes just finished, from any worker thread.
pub fn copy_to_file(
    disk: &Disk,
    out: &File,
    out_path: &Path,
    options: &CopyOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<CopyStats> {
    let target = Target {
        file: out,
        path: out_path,
        start: 0,
        len: disk.capacity(),
    };
    copy_to_targets(disk, &[target], options, progress)
}

/// Copies the whole disk into `targets`, which together must hold every byte of it (each is
/// set to its length first, or preallocated with [`ZeroMode::Falloc`]).
pub fn copy_to_targets(
    disk: &Disk,
    targets: &[Target<'_>],
    options: &CopyOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<CopyStats> {
    let capacity = disk.capacity();
    let held: u64 = targets.iter().map(|t| t.len).sum();
    if held != capacity {
        return Err(Error::new(
            None,
            "output",
            None,
            ErrorKind::Usage(format!(
                "output files hold {held} bytes, the disk {capacity}"
            )),
        ));
    }
    prepare_targets(targets, options.zero)?;
    let out = Targets::new(targets, options.direct)?;
    let grain = largest_grain(disk);
    let window = options.window.max(grain).div_ceil(grain) * grain;
    let window_usize = usize::try_from(window).map_err(|_| {
        Error::new(
            None,
            "copy",
            None,
            ErrorKind::Usage("window too large".into()),
        )
    })?;
    let zeros = AlignedBuf::new(if options.zero == ZeroMode::Write {
        window_usize
    } else {
        0
    });
    let next = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    let data_total = AtomicU64::new(0);
    let zero_total = AtomicU64::new(0);
    let threads = options.threads.max(1);

    let worker = || {
        let mut buf = AlignedBuf::new(window_usize);
        let result = (|| -> Result<()> {
            loop {
                if stop.load(Ordering::Relaxed) {
                    return Ok(());
                }
                let start = next.fetch_add(window, Ordering::Relaxed);
                if start >= capacity {
                    return Ok(());
                }
                let len = window.min(capacity - start);
                for run in disk.map(start, len)? {
                    let n = run.len as usize;
                    if run.kind == Allocation::Data {
                        let part = buf.get_mut(n);
                        disk.read_exact(run.offset, part)?;
                        out.write_at(run.offset, part)?;
                        data_total.fetch_add(run.len, Ordering::Relaxed);
                    } else {
                        if options.zero == ZeroMode::Write {
                            out.write_at(run.offset, zeros.get(n))?;
                        }
                        zero_total.fetch_add(run.len, Ordering::Relaxed);
                    }
                }
                progress(len);
            }
        })();
        if let Err(e) = result {
            stop.store(true, Ordering::Relaxed);
            if let Ok(mut slot) = failure.lock() {
                slot.get_or_insert(e);
            }
        }
    };
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(worker);
        }
    });
    if let Some(e) = failure.into_inner().ok().flatten() {
        return Err(e);
    }
    Ok(CopyStats {
        data: data_total.into_inner(),
        zero: zero_total.into_inner(),
    })
}

/// Whether every byte of `data` is zero (a word-wise scan the compiler vectorizes).
pub fn is_zero(data: &[u8]) -> bool {
    let mut chunks = data.chunks_exact(16);
    let words_zero = chunks.by_ref().fold(0u128, |acc, c| {
        acc | u128::from_ne_bytes(c.try_into().unwrap_or([1; 16]))
    }) == 0;
    words_zero && chunks.remainder().iter().all(|&b| b == 0)
}

/// A walk over a range of a disk in grains, for [`for_each_grain`].
#[derive(Clone, Copy, Debug)]
pub struct GrainWalk {
    /// First byte of the range.
    pub start: u64,
    /// Bytes in the range.
    pub len: u64,
    /// Grain size of the output, in bytes.
    pub grain_bytes: u64,
    /// Threads that read, scan and process grains.
    pub threads: usize,
    /// Grains per batch: bounds the results held at once.
    pub batch: usize,
}

/// Walks the range of `disk` in grains (the last may be short), in order. Grains the
/// allocation map shows as zero, and data grains whose bytes are all zero, are skipped; each
/// other grain is read, scanned and put through `work` by one of the walk's worker threads while
/// the calling thread hands the results to `sink` in grain order (grain indexes count from the
/// range's start), so compression and writing overlap. At most `batch` grains are in flight
/// (queued, being worked on, or waiting for their turn), which bounds memory whatever the disk
/// size.
pub fn for_each_grain<T: Send>(
    disk: &Disk,
    walk: &GrainWalk,
    work: &(dyn Fn(u64, &[u8]) -> Result<T> + Sync),
    sink: &mut dyn FnMut(u64, T) -> Result<()>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    use std::collections::BTreeMap;
    use std::sync::mpsc;

    let GrainWalk {
        start,
        len,
        grain_bytes,
        threads,
        batch,
    } = *walk;
    let grain_bytes = grain_bytes.max(SECTOR);
    let threads = threads.max(1);
    let in_flight = batch.max(threads * 2) as u64;
    let window = grain_bytes * 256;
    type Done<T> = (u64, u64, Result<Option<T>>);
    let (job_tx, job_rx) = mpsc::sync_channel::<(u64, u64)>(in_flight as usize);
    let job_rx = Mutex::new(job_rx);
    let (done_tx, done_rx) = mpsc::channel::<Done<T>>();

    std::thread::scope(|scope| {
        for _ in 0..threads {
            let done_tx = done_tx.clone();
            let job_rx = &job_rx;
            scope.spawn(move || {
                let mut buf = Vec::new();
                loop {
                    let job = match job_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok((seq, g)) = job else { return };
                    let result = (|| -> Result<Option<T>> {
                        let g_start = start + g * grain_bytes;
                        let n = grain_bytes.min(start + len - g_start) as usize;
                        buf.resize(n, 0);
                        disk.read_exact(g_start, &mut buf)?;
                        if is_zero(&buf) {
                            return Ok(None);
                        }
                        work(g, &buf).map(Some)
                    })();
                    if done_tx.send((seq, g, result)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(done_tx);

        let mut sent = 0u64;
        let mut consumed = 0u64;
        let mut waiting: BTreeMap<u64, (u64, Result<Option<T>>)> = BTreeMap::new();
        let mut first_error: Option<Error> = None;
        // Takes one finished grain and hands every grain whose turn has come to the sink.
        let mut settle = |waiting: &mut BTreeMap<u64, (u64, Result<Option<T>>)>,
                          consumed: &mut u64,
                          first_error: &mut Option<Error>|
         -> bool {
            let Ok((seq, g, r)) = done_rx.recv() else {
                return false;
            };
            waiting.insert(seq, (g, r));
            while let Some((g, r)) = waiting.remove(consumed) {
                *consumed += 1;
                if first_error.is_some() {
                    continue;
                }
                match r.and_then(|t| t.map_or(Ok(()), |t| sink(g, t))) {
                    Ok(()) => {}
                    Err(e) => *first_error = Some(e),
                }
            }
            true
        };
        let mut offset = start;
        // Windows grow while they find no data, so a huge empty range costs a few map calls.
        let mut w_size = window;
        'walk: while offset < start + len && first_error.is_none() {
            let w_len = w_size.min(start + len - offset);
            let runs = match disk.map(offset, w_len) {
                Ok(r) => r,
                Err(e) => {
                    first_error = Some(e);
                    break;
                }
            };
            let mut last = None;
            w_size = if runs.iter().any(|r| r.kind == Allocation::Data) {
                window
            } else {
                w_size.saturating_mul(2).min(window << 12)
            };
            for run in runs.iter().filter(|r| r.kind == Allocation::Data) {
                let g0 = (run.offset - start) / grain_bytes;
                let g1 = (run.offset + run.len - start).div_ceil(grain_bytes);
                for g in g0..g1 {
                    if last.is_some_and(|l| l >= g) {
                        continue;
                    }
                    last = Some(g);
                    while sent - consumed >= in_flight {
                        if !settle(&mut waiting, &mut consumed, &mut first_error)
                            || first_error.is_some()
                        {
                            break 'walk;
                        }
                    }
                    if job_tx.send((sent, g)).is_err() {
                        break 'walk;
                    }
                    sent += 1;
                }
            }
            progress(w_len);
            offset += w_len;
        }
        drop(job_tx);
        while consumed < sent {
            if !settle(&mut waiting, &mut consumed, &mut first_error) {
                break;
            }
        }
        match first_error {
            Some(e) => Err(e),
            None if consumed < sent => Err(Error::new(
                None,
                "copy",
                None,
                ErrorKind::Usage("a worker thread stopped early".into()),
            )),
            None => Ok(()),
        }
    })
}

/// A [`crate::stream::read::StreamSink`] that writes into target files, zero ranges per
/// [`ZeroMode`]: what a streaming inflate (from a pipe or a tar member) writes into.
pub struct TargetSink<'a> {
    targets: &'a [Target<'a>],
    out: Targets<'a>,
    zero: ZeroMode,
    zeros: AlignedBuf,
}

impl std::fmt::Debug for TargetSink<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetSink")
            .field("targets", &self.targets)
            .field("zero", &self.zero)
            .finish()
    }
}

impl<'a> TargetSink<'a> {
    /// A sink over `targets` (which must together hold the disk the stream describes).
    pub fn new(targets: &'a [Target<'a>], options: &CopyOptions) -> Result<Self> {
        Ok(Self {
            targets,
            out: Targets::new(targets, options.direct)?,
            zero: options.zero,
            zeros: AlignedBuf::new(if options.zero == ZeroMode::Write {
                8 << 20
            } else {
                0
            }),
        })
    }
}

impl crate::stream::read::StreamSink for TargetSink<'_> {
    fn begin(&self, capacity: u64) -> Result<()> {
        let held: u64 = self.targets.iter().map(|t| t.len).sum();
        if held != capacity {
            return Err(Error::new(
                None,
                "output",
                None,
                ErrorKind::Inconsistent(format!(
                    "the stream holds a disk of {capacity} bytes, the outputs were made for {held}"
                )),
            ));
        }
        prepare_targets(self.targets, self.zero)
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.out.write_at(offset, data)
    }

    fn zero(&self, mut offset: u64, mut len: u64) -> Result<()> {
        if self.zero != ZeroMode::Write {
            return Ok(());
        }
        while len > 0 {
            let n = len.min(8 << 20);
            self.out.write_at(offset, self.zeros.get(n as usize))?;
            offset += n;
            len -= n;
        }
        Ok(())
    }
}
