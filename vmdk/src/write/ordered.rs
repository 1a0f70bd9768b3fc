//! Windows placed in disk order, and checkpoints of how far the writes got, for the writers
//! that append the blocks holding data (VHD and VHDX; qcow2 has its own, with its tables).
//!
//! Workers take windows of the disk in order and read them side by side; each then waits for
//! its window's turn to take its blocks' places in the file ([`Turns`]), so the layout is the
//! same whatever the threads do, and a write continued after a kill lays out the rest as an
//! uninterrupted one would. With a checkpoint, each window's table entries are written in
//! place as soon as its data is, and [`Written`] tells the checkpoint, after a flush and at
//! most twice a second, the disk's bytes below the first window not yet written.

use std::collections::BTreeSet;
use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::Instant;

use super::options::Checkpoint;
use super::qcow2_resume::CHECKPOINT_EVERY;
use crate::error::{Error, ErrorKind, Result};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whose turn it is to place its blocks, and the placement state `T` the turns share (how
/// many blocks are allocated).
pub(crate) struct Turns<T> {
    state: Mutex<(u64, T)>,
    placed: Condvar,
}

impl<T> Turns<T> {
    /// Turns from window `first` on, with `state`.
    pub(crate) fn new(first: u64, state: T) -> Self {
        Self {
            state: Mutex::new((first, state)),
            placed: Condvar::new(),
        }
    }

    /// Waits for the turn of window `index`, runs `place` on the shared state and passes the
    /// turn on; an error when another worker failed meanwhile (`stop`).
    pub(crate) fn take<R>(
        &self,
        index: u64,
        stop: &AtomicBool,
        place: impl FnOnce(&mut T) -> R,
    ) -> Result<R> {
        let mut s = lock(&self.state);
        while s.0 != index {
            if stop.load(Ordering::Relaxed) {
                // Another worker failed: its error is the one returned.
                return Err(Error::new(None, "copy", None, ErrorKind::Cancelled));
            }
            let wait = std::time::Duration::from_millis(50);
            s = match self.placed.wait_timeout(s, wait) {
                Ok((s, _)) => s,
                Err(p) => p.into_inner().0,
            };
        }
        let r = place(&mut s.1);
        s.0 += 1;
        self.placed.notify_all();
        Ok(r)
    }

    /// The shared state, once every worker is done.
    pub(crate) fn into_inner(self) -> T {
        self.state.into_inner().unwrap_or_else(|p| p.into_inner()).1
    }
}

/// Which windows are written, for the checkpoint.
pub(crate) struct Written<'a> {
    checkpoint: &'a dyn Checkpoint,
    /// The first window not written, the windows written after it, when last told.
    progress: Mutex<(u64, BTreeSet<u64>, Instant)>,
    /// The windows below which the checkpoint was told everything is written.
    told: Mutex<u64>,
    window_bytes: u64,
    windows: u64,
    capacity: u64,
    what: &'static str,
}

impl<'a> Written<'a> {
    /// The progress of a write of `capacity` bytes in `windows` windows of `window_bytes`,
    /// from window `first`, told to `checkpoint` (errors name the output `what`).
    pub(crate) fn new(
        checkpoint: &'a dyn Checkpoint,
        first: u64,
        (window_bytes, windows, capacity): (u64, u64, u64),
        what: &'static str,
    ) -> Self {
        Self {
            checkpoint,
            progress: Mutex::new((first, BTreeSet::new(), Instant::now())),
            told: Mutex::new(first),
            window_bytes,
            windows,
            capacity,
            what,
        }
    }

    /// Window `index` is written, data and table entries: when the windows written in order
    /// moved, and half a second passed (or all are written), flushes `file` and tells the
    /// checkpoint (outside the lock the other workers take, in order).
    pub(crate) fn window(&self, index: u64, file: &File, path: &Path) -> Result<()> {
        let mut p = lock(&self.progress);
        p.1.insert(index);
        let mut next = p.0;
        while p.1.remove(&next) {
            next += 1;
        }
        p.0 = next;
        let last = next >= self.windows;
        if !last && p.2.elapsed() < CHECKPOINT_EVERY {
            return Ok(());
        }
        p.2 = Instant::now();
        drop(p);
        let mut told = lock(&self.told);
        if next > *told {
            file.sync_data()
                .map_err(|e| Error::at(path, self.what, 0, ErrorKind::Io(e)))?;
            let bytes = next.saturating_mul(self.window_bytes).min(self.capacity);
            self.checkpoint.reached(bytes)?;
            *told = next;
        }
        Ok(())
    }
}
