//! The grain walk the VMDK writers share: a range of a disk read in grains on worker threads,
//! all-zero grains left out, each other grain put through the writer's `work` (compression, or
//! none) in parallel and handed to its `sink` in grain order. Like the copy engine it knows no
//! format: it needs only [`Disk::map`] and [`Disk::read_exact_at`].

use std::collections::BTreeMap;
use std::sync::mpsc;
use std::sync::Mutex;

use crate::codec::is_zero;
use crate::disk::{Allocation, Disk};
use crate::error::{Error, ErrorKind, Result};
use crate::format::SECTOR_SIZE;

/// A walk over a range of a disk in grains, for [`for_each_grain`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct GrainWalk {
    /// First byte of the range.
    pub(crate) start: u64,
    /// Bytes in the range.
    pub(crate) len: u64,
    /// Grain size of the output, in bytes.
    pub(crate) grain_bytes: u64,
    /// Threads that read, scan and process grains.
    pub(crate) threads: usize,
    /// Grains per batch: bounds the results held at once.
    pub(crate) batch: usize,
}

/// A grain's result from a worker: its sequence number, its index, and what `work` made of it
/// (`None` for an all-zero grain).
type Done<T> = (u64, u64, Result<Option<T>>);

/// The grains in flight, handed to the sink in sequence order as they finish.
struct Ordered<'s, T> {
    done: mpsc::Receiver<Done<T>>,
    sink: &'s mut dyn FnMut(u64, T) -> Result<()>,
    /// Grains sent to the workers.
    sent: u64,
    /// Grains handed to the sink (or dropped after an error).
    consumed: u64,
    waiting: BTreeMap<u64, (u64, Result<Option<T>>)>,
    first_error: Option<Error>,
}

impl<T> Ordered<'_, T> {
    /// Takes one finished grain and hands every grain whose turn has come to the sink;
    /// `false` when no worker is left.
    fn settle(&mut self) -> bool {
        let Ok((seq, g, r)) = self.done.recv() else {
            return false;
        };
        self.waiting.insert(seq, (g, r));
        while let Some((g, r)) = self.waiting.remove(&self.consumed) {
            self.consumed += 1;
            if self.first_error.is_none() {
                if let Err(e) = r.and_then(|t| t.map_or(Ok(()), |t| (self.sink)(g, t))) {
                    self.first_error = Some(e);
                }
            }
        }
        true
    }

    /// Waits until fewer than `limit` grains are in flight; `false` when the walk must stop.
    fn make_room(&mut self, limit: u64) -> bool {
        while self.sent - self.consumed >= limit {
            if !self.settle() || self.first_error.is_some() {
                return false;
            }
        }
        true
    }

    /// Waits for every grain sent, and gives the walk's outcome.
    fn finish(mut self) -> Result<()> {
        while self.consumed < self.sent {
            if !self.settle() {
                break;
            }
        }
        match self.first_error {
            Some(e) => Err(e),
            None if self.consumed < self.sent => Err(Error::new(
                None,
                "copy",
                None,
                ErrorKind::InvalidInput("a worker thread stopped early".into()),
            )),
            None => Ok(()),
        }
    }
}

/// A worker of the walk: reads each grain it is sent, skips all-zero ones, puts the others
/// through `work`.
fn worker<T>(
    disk: &Disk,
    walk: &GrainWalk,
    jobs: &Mutex<mpsc::Receiver<(u64, u64)>>,
    done: mpsc::Sender<Done<T>>,
    work: &(dyn Fn(u64, &[u8]) -> Result<T> + Sync),
) {
    let mut buf = Vec::new();
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok((seq, g)) = job else { return };
        let result = (|| -> Result<Option<T>> {
            let g_start = walk.start + g * walk.grain_bytes;
            let n = walk.grain_bytes.min(walk.start + walk.len - g_start) as usize;
            buf.resize(n, 0);
            disk.read_exact_at(g_start, &mut buf)?;
            if is_zero(&buf) {
                return Ok(None);
            }
            work(g, &buf).map(Some)
        })();
        if done.send((seq, g, result)).is_err() {
            return;
        }
    }
}

/// Walks the range of `disk` in grains (the last may be short), in order. Grains the
/// allocation map shows as zero, and data grains whose bytes are all zero, are skipped; each
/// other grain is read, scanned and put through `work` by one of the walk's worker threads while
/// the calling thread hands the results to `sink` in grain order (grain indexes count from the
/// range's start), so compression and writing overlap. At most `batch` grains are in flight
/// (queued, being worked on, or waiting for their turn), which bounds memory whatever the disk
/// size.
pub(crate) fn for_each_grain<T: Send>(
    disk: &Disk,
    walk: &GrainWalk,
    work: &(dyn Fn(u64, &[u8]) -> Result<T> + Sync),
    sink: &mut dyn FnMut(u64, T) -> Result<()>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    let walk = GrainWalk {
        grain_bytes: walk.grain_bytes.max(SECTOR_SIZE),
        threads: walk.threads.max(1),
        ..*walk
    };
    let (start, len, grain_bytes) = (walk.start, walk.len, walk.grain_bytes);
    let in_flight = walk.batch.max(walk.threads * 2) as u64;
    let window = grain_bytes * 256;
    let (job_tx, job_rx) = mpsc::sync_channel::<(u64, u64)>(in_flight as usize);
    let job_rx = Mutex::new(job_rx);
    let (done_tx, done_rx) = mpsc::channel::<Done<T>>();

    std::thread::scope(|scope| {
        for _ in 0..walk.threads {
            let (done_tx, job_rx, walk) = (done_tx.clone(), &job_rx, &walk);
            scope.spawn(move || worker(disk, walk, job_rx, done_tx, work));
        }
        drop(done_tx);
        let mut ordered = Ordered {
            done: done_rx,
            sink,
            sent: 0,
            consumed: 0,
            waiting: BTreeMap::new(),
            first_error: None,
        };
        let mut offset = start;
        // Windows grow while they find no data, so a huge empty range costs a few map calls.
        let mut w_size = window;
        'walk: while offset < start + len && ordered.first_error.is_none() {
            let w_len = w_size.min(start + len - offset);
            let runs = match disk.map(offset, w_len) {
                Ok(r) => r,
                Err(e) => {
                    ordered.first_error = Some(e);
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
                    if !ordered.make_room(in_flight) || job_tx.send((ordered.sent, g)).is_err() {
                        break 'walk;
                    }
                    ordered.sent += 1;
                }
            }
            progress(w_len);
            offset += w_len;
        }
        drop(job_tx);
        ordered.finish()
    })
}
