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

/// A walk over a range of a disk in grains, for [`walk_grains`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct GrainWalk<'a> {
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
    /// Set by the caller to stop the walk ([`crate::WriteOptions::cancel`]).
    pub(crate) cancel: Option<&'a std::sync::atomic::AtomicBool>,
}

/// Grains a worker takes at most at once (512 KiB of 64 KiB grains): one hand-back per job
/// rather than per grain, so the writing thread is woken an eighth as often. Jobs are shorter at
/// the end of a run of data, and when the bound on grains in flight is small.
const JOB_GRAINS: u64 = 8;

/// [`ErrorKind::Cancelled`] once `cancel` is set.
pub(crate) fn cancelled(cancel: Option<&std::sync::atomic::AtomicBool>) -> Result<()> {
    match cancel {
        Some(c) if c.load(std::sync::atomic::Ordering::Relaxed) => Err(Error::new(
            None,
            "copy",
            None,
            crate::error::ErrorKind::Cancelled,
        )),
        _ => Ok(()),
    }
}

/// A job for a worker: its sequence number, its first grain and how many grains follow.
type Job = (u64, u64, u64);

/// A job's results: for each grain, its index and what `work` made of it (`None` for an
/// all-zero grain), up to the first error (a failed read or `work`), which ends them.
type Results<T> = Vec<(u64, Result<Option<T>>)>;

/// A job's results from a worker, behind its sequence number and its count of grains.
type Done<T> = (u64, u64, Results<T>);

/// The grains in flight, handed to the sink in sequence order as their jobs finish.
struct Ordered<'s, T> {
    done: mpsc::Receiver<Done<T>>,
    sink: &'s mut dyn FnMut(u64, T) -> Result<()>,
    /// Jobs sent to the workers.
    sent: u64,
    /// Jobs handed to the sink (or dropped after an error).
    consumed: u64,
    /// Grains in jobs sent and not yet consumed.
    grains: u64,
    /// Finished jobs waiting for their turn, by sequence number, with their count of grains.
    waiting: BTreeMap<u64, (u64, Results<T>)>,
    first_error: Option<Error>,
}

impl<T> Ordered<'_, T> {
    /// Records a job of `n` grains as sent, and gives its sequence number.
    fn send(&mut self, n: u64) -> u64 {
        let seq = self.sent;
        self.sent += 1;
        self.grains += n;
        seq
    }

    /// Takes one finished job and hands every grain whose turn has come to the sink;
    /// `false` when no worker is left.
    fn settle(&mut self) -> bool {
        let Ok((seq, n, results)) = self.done.recv() else {
            return false;
        };
        self.waiting.insert(seq, (n, results));
        while let Some((n, results)) = self.waiting.remove(&self.consumed) {
            self.grains -= n;
            self.consumed += 1;
            for (g, r) in results {
                if self.first_error.is_none() {
                    if let Err(e) = r.and_then(|t| t.map_or(Ok(()), |t| (self.sink)(g, t))) {
                        self.first_error = Some(e);
                    }
                }
            }
        }
        true
    }

    /// Waits until at most `limit` grains are in flight; `false` when the walk must stop.
    fn make_room(&mut self, limit: u64) -> bool {
        while self.grains > limit {
            if !self.settle() || self.first_error.is_some() {
                return false;
            }
        }
        self.first_error.is_none()
    }

    /// Waits for every job sent, and gives the walk's outcome.
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

/// Sends an error for a job whose worker panicked, so that the walk stops (and the scope then
/// re-raises the panic) rather than waits for that job forever.
struct PanicGuard<'a, T> {
    done: &'a mpsc::Sender<Done<T>>,
    job: Option<Job>,
}

impl<T> Drop for PanicGuard<'_, T> {
    fn drop(&mut self) {
        if let (true, Some((seq, g, n))) = (std::thread::panicking(), self.job) {
            let e = Error::new(
                None,
                "copy",
                None,
                ErrorKind::InvalidInput("a worker thread panicked".into()),
            );
            let _ = self.done.send((seq, n, vec![(g, Err(e))]));
        }
    }
}

/// A worker of the walk: reads the grains of each job it is sent, skips all-zero ones, puts the
/// others through `work`, and hands the job's results back at once.
fn worker<T>(
    disk: &Disk,
    walk: &GrainWalk,
    jobs: &Mutex<mpsc::Receiver<Job>>,
    done: mpsc::Sender<Done<T>>,
    work: &(dyn Fn(u64, &[u8]) -> Result<T> + Sync),
) {
    let mut buf = Vec::new();
    loop {
        let job = match jobs.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok((seq, g0, n)) = job else { return };
        let mut guard = PanicGuard {
            done: &done,
            job: Some((seq, g0, n)),
        };
        let mut results = Vec::with_capacity(n as usize);
        // Grain by grain, so the buffer stays in the cache between the read and the work.
        for g in g0..g0 + n {
            let from = walk.start + g * walk.grain_bytes;
            let len = walk.grain_bytes.min(walk.start + walk.len - from) as usize;
            buf.resize(len, 0);
            let r = disk
                .read_exact_at(from, &mut buf)
                .and_then(|()| (!is_zero(&buf)).then(|| work(g, &buf)).transpose());
            let failed = r.is_err();
            results.push((g, r));
            if failed {
                break;
            }
        }
        guard.job = None;
        if done.send((seq, n, results)).is_err() {
            return;
        }
    }
}

/// Walks the range of `disk` in grains (the last may be short), in order. Grains the
/// allocation map shows as zero, and data grains whose bytes are all zero, are skipped; each
/// other grain is read, scanned and put through `work` by one of the walk's worker threads while
/// the calling thread hands the results to `sink` in grain order (grain indexes count from the
/// range's start), so compression and writing overlap. At most `batch` grains (and at least
/// two per thread) are in flight (queued, being worked on, or waiting for their turn), which
/// bounds memory whatever the disk size. A panic in `work` stops the walk and is re-raised.
pub(crate) fn walk_grains<T: Send>(
    disk: &Disk,
    walk: &GrainWalk<'_>,
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
    let in_flight = walk.batch.max(walk.threads.saturating_mul(2)) as u64;
    // Jobs small enough that every worker has two at once.
    let job_grains = JOB_GRAINS
        .min(in_flight / (walk.threads as u64).saturating_mul(2))
        .max(1);
    let window = grain_bytes * 256;
    let (job_tx, job_rx) = mpsc::sync_channel::<Job>(in_flight as usize);
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
            grains: 0,
            waiting: BTreeMap::new(),
            first_error: None,
        };
        let mut offset = start;
        // Windows grow while they find no data, so a huge empty range costs a few map calls.
        let mut w_size = window;
        'walk: while offset < start + len && ordered.first_error.is_none() {
            if let Err(e) = cancelled(walk.cancel) {
                ordered.first_error = Some(e);
                break;
            }
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
                let g1 = (run.offset + run.len - start).div_ceil(grain_bytes);
                // A grain that two runs share was sent with the first.
                let mut g = ((run.offset - start) / grain_bytes).max(last.map_or(0, |l| l + 1));
                while g < g1 {
                    let n = job_grains.min(g1 - g);
                    if !ordered.make_room(in_flight - n) {
                        break 'walk;
                    }
                    let seq = ordered.send(n);
                    if job_tx.send((seq, g, n)).is_err() {
                        break 'walk;
                    }
                    g += n;
                    last = Some(g - 1);
                }
            }
            progress(w_len);
            offset += w_len;
        }
        drop(job_tx);
        ordered.finish()
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use std::sync::atomic::Ordering::SeqCst;

    use super::*;
    use crate::{MemoryFiles, OpenOptions};

    /// A disk of three extents, flat `a`, a ZERO extent of `gap` sectors, and flat `b`, served
    /// from memory, with the bytes a reader sees.
    fn three_extents(a: Vec<u8>, gap: u64, b: Vec<u8>) -> (Disk, Vec<u8>) {
        let text = format!(
            "createType=\"custom\"\nRW {} FLAT \"a.bin\" 0\nRW {gap} ZERO\nRW {} FLAT \"b.bin\" 0\n",
            a.len() / 512,
            b.len() / 512
        );
        let mut whole = a.clone();
        whole.resize(whole.len() + gap as usize * 512, 0);
        whole.extend_from_slice(&b);
        let mut files = MemoryFiles::new();
        files.insert("d.vmdk", text.into_bytes());
        files.insert("a.bin", a);
        files.insert("b.bin", b);
        let disk = OpenOptions::new().files(files).open("d.vmdk").unwrap();
        (disk, whole)
    }

    /// A walk over all of `disk` in 1 KiB grains.
    fn whole(disk: &Disk, threads: usize, batch: usize) -> GrainWalk<'static> {
        GrainWalk {
            cancel: None,
            start: 0,
            len: disk.capacity(),
            grain_bytes: 1024,
            threads,
            batch,
        }
    }

    /// Sectors of `fill` bytes, every third one zero.
    fn sectors(n: u64, fill: u8) -> Vec<u8> {
        (0..n)
            .flat_map(|s| [if s % 3 == 0 { 0 } else { fill }; 512])
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Every grain of the range with a non-zero byte reaches the sink once, in order, with
        /// its bytes, whatever the grain size, the threads, the bound on grains in flight, and
        /// extents that end inside a grain (two map runs sharing it).
        #[test]
        fn walk_hands_every_data_grain_in_order(
            a in 0u64..700, gap in 0u64..1500, b in 1u64..700,
            grain_shift in 0u32..5, threads in 1usize..4, batch in 1usize..40,
            from in 0u64..3000, len in 1u64..3000,
        ) {
            let (disk, whole) = three_extents(sectors(a, 7), gap, sectors(b, 9));
            let cap = disk.capacity() / 512;
            let start = (from % cap) * 512;
            let len = (len * 512).min(disk.capacity() - start);
            let grain_bytes = 512u64 << grain_shift;
            let walk = GrainWalk { start, len, grain_bytes, threads, batch, cancel: None };
            // Grains whose work began and that the sink has not had yet: never more than the
            // bound on grains in flight.
            let begun = std::sync::atomic::AtomicU64::new(0);
            let most = std::sync::atomic::AtomicU64::new(0);
            let sunk = std::sync::atomic::AtomicU64::new(0);
            let mut got = Vec::new();
            let work = |_, data: &[u8]| {
                let b = begun.fetch_add(1, SeqCst) + 1;
                most.fetch_max(b - sunk.load(SeqCst), SeqCst);
                Ok(data.to_vec())
            };
            walk_grains(&disk, &walk, &work, &mut |g, d| {
                got.push((g, d));
                sunk.fetch_add(1, SeqCst);
                Ok(())
            }, &|_| {}).unwrap();
            prop_assert!(most.load(SeqCst) <= batch.max(2 * threads) as u64);
            let want: Vec<(u64, Vec<u8>)> = whole[start as usize..(start + len) as usize]
                .chunks(grain_bytes as usize)
                .enumerate()
                .filter(|(_, c)| c.iter().any(|&x| x != 0))
                .map(|(g, c)| (g as u64, c.to_vec()))
                .collect();
            prop_assert_eq!(got, want);
        }
    }

    /// The first error of `work` ends the walk with that error; the grains before it were
    /// handed to the sink, none after it.
    #[test]
    fn walk_stops_at_the_first_error() {
        let (disk, _) = three_extents(sectors(64, 5), 0, sectors(64, 6));
        let walk = whole(&disk, 3, 16);
        let mut got = Vec::new();
        let r = walk_grains(
            &disk,
            &walk,
            &|g, _| {
                if g == 37 {
                    Err(Error::new(
                        None,
                        "grain",
                        Some(g),
                        ErrorKind::InvalidInput("bad".into()),
                    ))
                } else {
                    Ok(g)
                }
            },
            &mut |g, _| {
                got.push(g);
                Ok(())
            },
            &|_| {},
        );
        assert_eq!(r.unwrap_err().offset(), Some(37));
        assert_eq!(got, (0..37).collect::<Vec<_>>());
    }

    /// A panic in `work` stops the walk and reaches the caller, rather than leaving the walk
    /// waiting for the lost job.
    #[test]
    fn walk_raises_a_panic_in_work() {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let (disk, _) = three_extents(sectors(256, 5), 0, sectors(64, 6));
            let walk = whole(&disk, 2, 64);
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                walk_grains(
                    &disk,
                    &walk,
                    &|g, _| if g == 40 { panic!("grain 40") } else { Ok(g) },
                    &mut |_, _| Ok(()),
                    &|_| {},
                )
            }));
            let _ = tx.send(r.is_err());
        });
        let panicked = rx.recv_timeout(std::time::Duration::from_secs(60));
        assert_eq!(panicked, Ok(true));
    }
}
