//! What the copies into qcow2, VHD and VHDX outputs share: their workers run side by side until
//! one fails, and each asks the allocation map which units (clusters, blocks) of its window
//! hold data; and the positioned writes into their one file.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use crate::disk::{Allocation, Disk};
use crate::error::{Error, Result};

/// Runs `work` on `workers` threads (at least one) until each returns. The first error sets
/// `stop`, which the others watch, and is returned.
pub(crate) fn run_workers(
    workers: usize,
    stop: &AtomicBool,
    work: impl Fn() -> Result<()> + Sync,
) -> Result<()> {
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..workers.max(1) {
            scope.spawn(|| {
                if let Err(e) = work() {
                    stop.store(true, Ordering::Relaxed);
                    if let Ok(mut slot) = failure.lock() {
                        slot.get_or_insert(e);
                    }
                }
            });
        }
    });
    match failure.into_inner().ok().flatten() {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Which of the `count` units of `unit` bytes from `start` hold data, by the allocation map of
/// the `len` bytes of the disk there (`len` may end before the units do, at the disk's end).
fn units_with_data(disk: &Disk, start: u64, len: u64, unit: u64, count: u64) -> Result<Vec<bool>> {
    let mut holds = vec![false; count as usize];
    if len == 0 {
        return Ok(holds);
    }
    for run in disk.map(start, len)? {
        if run.kind != Allocation::Data {
            continue;
        }
        let a = (run.offset - start) / unit;
        let b = (run.offset + run.len - start).div_ceil(unit);
        for h in holds.iter_mut().take(b as usize).skip(a as usize) {
            *h = true;
        }
    }
    Ok(holds)
}

/// A window of units a worker took: its first unit, its first byte, the bytes of the disk in
/// it (fewer at the disk's end), and which of its units hold data.
pub(crate) struct Window {
    pub(crate) first: u64,
    pub(crate) start: u64,
    pub(crate) len: u64,
    pub(crate) holds: Vec<bool>,
}

/// Takes from `next` the next window of at most `per_window` units of `unit` bytes, of `units`
/// in all, with the map of its data; `None` when every unit is taken.
pub(crate) fn next_window(
    disk: &Disk,
    next: &AtomicU64,
    per_window: u64,
    units: u64,
    unit: u64,
) -> Result<Option<Window>> {
    let first = next.fetch_add(per_window, Ordering::Relaxed);
    if first >= units {
        return Ok(None);
    }
    let count = per_window.min(units - first);
    let start = first * unit;
    let len = (count * unit).min(disk.capacity().saturating_sub(start));
    let holds = units_with_data(disk, start, len, unit, count)?;
    Ok(Some(Window {
        first,
        start,
        len,
        holds,
    }))
}

/// An I/O error of the output `what` (`qcow2 output`, ...) at `offset` of `path`.
pub(crate) fn io<'a>(
    path: &'a Path,
    what: &'static str,
    offset: u64,
) -> impl Fn(std::io::Error) -> Error + 'a {
    move |e| Error::at(path, what, offset, crate::error::ErrorKind::Io(e))
}

/// Writes all of `buf` at `offset` of the output `what` open as `file` at `path`.
pub(crate) fn write_at(
    file: &std::fs::File,
    path: &Path,
    what: &'static str,
    buf: &[u8],
    offset: u64,
) -> Result<()> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(buf, offset)
        .map_err(io(path, what, offset))
}

/// Copies `bytes` into `buf` at `at` (fixed offsets inside fixed-size structures).
pub(crate) fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(slot) = buf.get_mut(at..at + bytes.len()) {
        slot.copy_from_slice(bytes);
    }
}

/// Sets the length of the output `what` (`file` at `path`) to `end` bytes, its blocks reserved
/// when `reserve` where the system can (`fallocate`; elsewhere a sparse file).
pub(crate) fn set_len(
    file: &std::fs::File,
    path: &Path,
    what: &'static str,
    end: u64,
    reserve: bool,
) -> Result<()> {
    #[cfg(all(target_os = "linux", feature = "direct-io"))]
    if reserve && end > 0 {
        return rustix::fs::fallocate(file, rustix::fs::FallocateFlags::empty(), 0, end)
            .map_err(|e| io(path, what, 0)(e.into()));
    }
    let _ = reserve;
    file.set_len(end).map_err(io(path, what, 0))
}
