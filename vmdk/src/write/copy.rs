//! The copy engine: writes every byte of a disk into thick outputs.
//!
//! It walks the allocation map, not the bytes: unallocated and zeroed ranges are known from
//! metadata and never read. The disk is cut into windows (8 MiB, or one grain if grains are
//! larger) that worker threads take in turn; each reads its window (decompressing
//! stream-optimized grains on its own core) into a buffer it reuses and writes it with positioned
//! writes, so order does not matter and memory is `threads × window` whatever the disk size.
//! A disk read in one pass ([`StreamReader`]) is written through the same outputs.
//!
//! Zero ranges are written according to [`ZeroMode`]: as zeros from one shared zero buffer
//! (eager-zeroed thick, the default), preallocated and not written, or left as holes. The engine
//! knows no format: it needs only [`Disk::map`] and [`Disk::read_exact_at`], or a stream's sink.
//! `O_DIRECT` and `fallocate` are Linux calls behind the `direct-io` feature; elsewhere outputs
//! go through the page cache and preallocation writes zeros.

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use super::options::{Checkpoint, WriteOptions, ZeroMode};
use crate::disk::{Allocation, Disk, Run};
use crate::error::{Error, ErrorKind, Result};
use crate::read::stream::{StreamReader, StreamStats};
use crate::sink::Sink;

/// One output file holding `len` bytes of the disk from `start`: the disk's bytes land in it
/// at `offset - start`.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    /// The open file, written with positioned writes from several threads.
    pub file: &'a File,
    /// Its path: named in errors, and reopened for `O_DIRECT` writes.
    pub path: &'a Path,
    /// First byte of the disk it holds.
    pub start: u64,
    /// Bytes it holds.
    pub len: u64,
}

/// What a copy did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CopyStats {
    /// Bytes read from data ranges and written.
    pub data: u64,
    /// Bytes of zero ranges (written as zeros with [`ZeroMode::Write`], otherwise not).
    pub zero: u64,
}

/// Alignment of `O_DIRECT` writes.
const DIRECT_ALIGN: usize = 4096;

/// Whether outputs can be preallocated without writing zeros (`fallocate`).
const PREALLOCATES: bool = cfg!(all(target_os = "linux", feature = "direct-io"));

/// Whether zero ranges are written as zeros in `mode`.
fn writes_zeros(mode: ZeroMode) -> bool {
    mode == ZeroMode::Write || (mode == ZeroMode::Falloc && !PREALLOCATES)
}

/// Writes all of `buf` at `offset` of `file`.
pub(crate) fn write_all_at(file: &File, buf: &[u8], offset: u64) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
    }
    #[cfg(windows)]
    {
        let (mut buf, mut offset) = (buf, offset);
        while !buf.is_empty() {
            let n = std::os::windows::fs::FileExt::seek_write(file, buf, offset)?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            buf = buf.split_at(n.min(buf.len())).1;
            offset += n as u64;
        }
        Ok(())
    }
}

/// An `O_DIRECT` handle of the output at `path`.
#[cfg(all(target_os = "linux", feature = "direct-io"))]
fn open_direct(path: &Path) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .map_err(|e| Error::new(Some(path), "output", None, ErrorKind::Io(e)))
}

/// The targets, each with its `O_DIRECT` handle when writing direct.
struct Targets<'a> {
    targets: &'a [Target<'a>],
    direct: Vec<File>,
}

impl<'a> Targets<'a> {
    fn new(targets: &'a [Target<'a>], direct: bool) -> Result<Self> {
        #[cfg(all(target_os = "linux", feature = "direct-io"))]
        let direct = match direct {
            true => targets
                .iter()
                .map(|t| open_direct(t.path))
                .collect::<Result<_>>()?,
            false => Vec::new(),
        };
        #[cfg(not(all(target_os = "linux", feature = "direct-io")))]
        let direct = {
            let _ = direct;
            Vec::new()
        };
        Ok(Self { targets, direct })
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
                        ErrorKind::InvalidInput("no output file holds this offset".into()),
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
            write_all_at(file, now, at)
                .map_err(|e| Error::at(t.path, "output", at, ErrorKind::Io(e)))?;
            offset += n as u64;
            data = rest;
        }
        Ok(())
    }

    /// Sets each target to its length, or preallocates it for [`ZeroMode::Falloc`].
    ///
    /// Eager-zeroed outputs ([`ZeroMode::Write`]) are preallocated too where the file system
    /// can, although every byte is then written: writes into preallocated blocks are
    /// overwrites, which ext4 lets several threads do at once under its shared inode lock,
    /// while writes that fill holes take it one at a time. Measured in `benches/README.md`.
    fn prepare(&self, zero: ZeroMode) -> Result<()> {
        for t in self.targets {
            let err = |e: std::io::Error| Error::at(t.path, "output", 0, ErrorKind::Io(e));
            // A block device has its size: nothing to set or preallocate.
            #[cfg(unix)]
            if std::os::unix::fs::FileTypeExt::is_block_device(
                &t.file.metadata().map_err(err)?.file_type(),
            ) {
                continue;
            }
            #[cfg(all(target_os = "linux", feature = "direct-io"))]
            if matches!(zero, ZeroMode::Falloc | ZeroMode::Write) && t.len > 0 {
                use rustix::io::Errno;
                match rustix::fs::fallocate(t.file, rustix::fs::FallocateFlags::empty(), 0, t.len) {
                    Ok(()) => continue,
                    // Where preallocation is only a speed-up, a file system without it
                    // still takes the writes.
                    Err(Errno::OPNOTSUPP | Errno::NOSYS) if zero == ZeroMode::Write => {}
                    Err(e) => return Err(err(e.into())),
                }
            }
            let _ = zero;
            t.file.set_len(t.len).map_err(err)?;
        }
        Ok(())
    }

    /// Flushes every target to the device.
    fn sync(&self) -> Result<()> {
        for t in self.targets {
            t.file
                .sync_data()
                .map_err(|e| Error::at(t.path, "output", 0, ErrorKind::Io(e)))?;
        }
        Ok(())
    }

    /// Checks that the targets together hold at least `capacity` bytes, and returns how many
    /// they hold (what follows the disk's end is written as zeros).
    fn check_holds(&self, capacity: u64) -> Result<u64> {
        let held = self
            .targets
            .iter()
            .try_fold(0u64, |sum, t| sum.checked_add(t.len));
        match held {
            Some(held) if held >= capacity => Ok(held),
            _ => Err(Error::new(
                None,
                "output",
                None,
                ErrorKind::InvalidInput(format!(
                    "the output files hold {} bytes, the disk {capacity}",
                    held.map_or_else(|| "too many".to_string(), |h| h.to_string())
                )),
            )),
        }
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
        // `start + len` lies within `raw` by construction; clamped all the same.
        let (aligned, _) = self
            .raw
            .split_at((self.start + n.min(self.len)).min(self.raw.len()));
        aligned.split_at(self.start.min(aligned.len())).1
    }

    fn get_mut(&mut self, n: usize) -> &mut [u8] {
        let end = (self.start + n.min(self.len)).min(self.raw.len());
        let (aligned, _) = self.raw.split_at_mut(end);
        let from = self.start.min(aligned.len());
        aligned.split_at_mut(from).1
    }
}

/// The shared state of a copy's workers.
struct Copy<'a> {
    disk: &'a Disk,
    out: Targets<'a>,
    /// Bytes the targets hold: the disk's capacity, or more (zeros after the disk's end).
    held: u64,
    window: u64,
    writes_zeros: bool,
    zeros: AlignedBuf,
    next: AtomicU64,
    stop: AtomicBool,
    data: AtomicU64,
    zero: AtomicU64,
    /// How far the copy got, for the checkpoint.
    done: Mutex<Done>,
    checkpoint: Option<&'a dyn Checkpoint>,
    /// Set by the caller to stop the copy.
    cancel: Option<&'a AtomicBool>,
}

/// Windows finished: every byte below `below` is written; `above` holds the starts of windows
/// finished past it.
struct Done {
    below: u64,
    above: std::collections::BTreeSet<u64>,
    /// When the checkpoint was last told, and what.
    told: (std::time::Instant, u64),
}

impl Copy<'_> {
    /// Records the window at `start` as written; tells the checkpoint (after a flush) when
    /// half a second has passed since it was last told.
    fn finished(&self, start: u64) -> Result<()> {
        let Some(checkpoint) = self.checkpoint else {
            return Ok(());
        };
        let mut guard = self.done.lock().unwrap_or_else(|p| p.into_inner());
        let done = &mut *guard;
        done.above.insert(start);
        while done.above.remove(&done.below) {
            done.below = (done.below + self.window).min(self.held);
        }
        if done.told.0.elapsed() < std::time::Duration::from_millis(500)
            || done.below == done.told.1
        {
            return Ok(());
        }
        let below = done.below;
        // Held while flushing: the windows counted were written before they were recorded.
        self.out.sync()?;
        checkpoint.reached(below)?;
        done.told = (std::time::Instant::now(), below);
        Ok(())
    }

    /// Takes windows in turn until the disk is done or another worker failed.
    fn work(&self, buf: &mut AlignedBuf, progress: &(dyn Fn(u64) + Sync)) -> Result<()> {
        let capacity = self.disk.capacity();
        while !self.stop.load(Ordering::Relaxed) {
            super::walk::cancelled(self.cancel)?;
            let start = self.next.fetch_add(self.window, Ordering::Relaxed);
            if start >= self.held {
                break;
            }
            let len = self.window.min(self.held - start);
            // The part of the window inside the disk, then zeros up to what the targets hold.
            let inside = len.min(capacity.saturating_sub(start));
            let mut runs = if inside > 0 {
                self.disk.map(start, inside)?
            } else {
                Vec::new()
            };
            if inside < len {
                runs.push(Run {
                    offset: start + inside,
                    len: len - inside,
                    kind: Allocation::Zero,
                });
            }
            for run in runs {
                let n = run.len as usize;
                if run.kind == Allocation::Data {
                    let part = buf.get_mut(n);
                    self.disk.read_exact_at(run.offset, part)?;
                    self.out.write_at(run.offset, part)?;
                    self.data.fetch_add(run.len, Ordering::Relaxed);
                } else {
                    if self.writes_zeros {
                        self.out.write_at(run.offset, self.zeros.get(n))?;
                    }
                    self.zero.fetch_add(run.len, Ordering::Relaxed);
                }
            }
            progress(len);
            self.finished(start)?;
        }
        Ok(())
    }
}

impl Disk {
    /// Copies every byte of the disk into `targets`, which together must hold it (each is set
    /// to its length first, or preallocated with [`ZeroMode::Falloc`]): an eager-zeroed thick
    /// image with the default [`WriteOptions`]. Targets holding more than the disk get zeros
    /// after its end (the disk grown). `progress` is called with the bytes of the disk
    /// just finished, from any worker thread.
    ///
    /// ```no_run
    /// # fn main() -> vmdk::Result<()> {
    /// let disk = vmdk::Disk::open("appliance-disk1.vmdk")?;
    /// let file = std::fs::File::create("appliance-disk1.raw").unwrap();
    /// let target = vmdk::Target { file: &file, path: "appliance-disk1.raw".as_ref(), start: 0, len: disk.capacity() };
    /// let stats = disk.copy_to(&[target], &vmdk::WriteOptions::new(), &|_| {})?;
    /// println!("{} bytes of data, {} of zeros", stats.data, stats.zero);
    /// # Ok(())
    /// # }
    /// ```
    pub fn copy_to(
        &self,
        targets: &[Target<'_>],
        options: &WriteOptions,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<CopyStats> {
        let out = Targets::new(targets, options.direct)?;
        let held = out.check_holds(self.capacity())?;
        out.prepare(options.zero)?;
        let grain = self.largest_grain();
        let window = options.window.max(grain).div_ceil(grain) * grain;
        let window_usize = usize::try_from(window).map_err(|_| {
            Error::new(
                None,
                "copy",
                None,
                ErrorKind::InvalidInput("window too large".into()),
            )
        })?;
        let writes_zeros = writes_zeros(options.zero);
        let checkpoint = options.checkpoint.as_deref();
        // An earlier run's work, to the window (all of it when it finished): skipped, and
        // counted as done.
        let resumed = match checkpoint.map_or(0, |c| c.resume_from()) {
            from if from >= held => held,
            from => from / window * window,
        };
        if resumed > 0 {
            progress(resumed);
        }
        let copy = Copy {
            disk: self,
            out,
            held,
            window,
            writes_zeros,
            zeros: AlignedBuf::new(if writes_zeros { window_usize } else { 0 }),
            next: AtomicU64::new(resumed),
            stop: AtomicBool::new(false),
            data: AtomicU64::new(0),
            zero: AtomicU64::new(0),
            done: Mutex::new(Done {
                below: resumed,
                above: Default::default(),
                told: (std::time::Instant::now(), resumed),
            }),
            checkpoint,
            cancel: options.cancel.as_deref(),
        };
        let failure: Mutex<Option<Error>> = Mutex::new(None);
        std::thread::scope(|scope| {
            for _ in 0..options.copy_workers().max(1) {
                scope.spawn(|| {
                    let mut buf = AlignedBuf::new(window_usize);
                    if let Err(e) = copy.work(&mut buf, progress) {
                        copy.stop.store(true, Ordering::Relaxed);
                        if let Ok(mut slot) = failure.lock() {
                            slot.get_or_insert(e);
                        }
                    }
                });
            }
        });
        if let Some(e) = failure.into_inner().ok().flatten() {
            return Err(e);
        }
        if let Some(c) = checkpoint {
            copy.out.sync()?;
            c.reached(held)?;
        }
        Ok(CopyStats {
            data: copy.data.into_inner(),
            zero: copy.zero.into_inner(),
        })
    }
}

/// A sink that writes a disk read in one pass into targets, zero ranges per [`ZeroMode`], and
/// reports progress as bytes are placed.
struct TargetSink<'a> {
    out: Targets<'a>,
    zero: ZeroMode,
    zeros: AlignedBuf,
    progress: &'a (dyn Fn(u64) + Sync),
    checkpoint: Option<&'a dyn Checkpoint>,
    /// When the checkpoint was last told.
    told: Mutex<std::time::Instant>,
}

impl Sink for TargetSink<'_> {
    fn begin(&self, capacity: u64) -> Result<()> {
        self.out.check_holds(capacity)?;
        self.out.prepare(self.zero)
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.out.write_at(offset, data)?;
        (self.progress)(data.len() as u64);
        Ok(())
    }

    fn zero(&self, mut offset: u64, mut len: u64) -> Result<()> {
        (self.progress)(len);
        if !writes_zeros(self.zero) {
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

    fn wants_point(&self) -> bool {
        self.checkpoint.is_some_and(|c| {
            self.told
                .lock()
                .is_ok_and(|t| t.elapsed() >= c.stream_interval())
        })
    }

    fn point(&self, at: crate::StreamPoint) -> Result<()> {
        let Some(c) = self.checkpoint else {
            return Ok(());
        };
        self.out.sync()?;
        c.reached_stream(at)?;
        if let Ok(mut t) = self.told.lock() {
            *t = std::time::Instant::now();
        }
        Ok(())
    }
}

impl TargetSink<'_> {
    /// Zeros after the stream's end, when the targets hold more than it (the disk grown).
    fn finish(&self, capacity: u64) -> Result<()> {
        let held = self.out.check_holds(capacity)?;
        if held > capacity {
            Sink::zero(self, capacity, held - capacity)?;
        }
        Ok(())
    }
}

impl<R: Read> StreamReader<R> {
    /// Reads the rest of the stream into `targets`, which together must hold
    /// [`StreamReader::capacity`] bytes (more: zeros follow the disk's end): grains inflated on
    /// the options' threads and written
    /// with positioned writes, the ranges between them zero-filled in order per the options'
    /// [`ZeroMode`], so the outputs are complete when the stream ends. `progress` is called
    /// with bytes of the disk as they are placed (first with the bytes a continued read
    /// starts after). With a [`WriteOptions::checkpoint`], it is told where the read could
    /// be continued ([`Checkpoint::reached_stream`]) as the read passes metadata blocks.
    pub fn copy_to(
        self,
        targets: &[Target<'_>],
        options: &WriteOptions,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<StreamStats> {
        let sink = TargetSink {
            out: Targets::new(targets, options.direct)?,
            zero: options.zero,
            zeros: AlignedBuf::new(if writes_zeros(options.zero) {
                8 << 20
            } else {
                0
            }),
            progress,
            checkpoint: options.checkpoint.as_deref(),
            told: Mutex::new(std::time::Instant::now()),
        };
        let capacity = self.capacity();
        if self.covered() > 0 {
            progress(self.covered());
        }
        let stats = self.read_into(&sink, options.copy_workers())?;
        sink.finish(capacity)?;
        Ok(stats)
    }
}
