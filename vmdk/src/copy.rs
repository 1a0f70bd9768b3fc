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
}

impl Default for CopyOptions {
    fn default() -> Self {
        Self {
            zero: ZeroMode::Write,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            window: 8 << 20,
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

/// Copies the whole disk into `out` (at offset 0), which is set to the disk's capacity.
/// `progress` is called with the number of bytes just finished, from any worker thread.
pub fn copy_to_file(
    disk: &Disk,
    out: &File,
    out_path: &Path,
    options: &CopyOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<CopyStats> {
    let capacity = disk.capacity();
    let out_err = |offset: u64, e: std::io::Error| {
        Error::new(Some(out_path), "output", Some(offset), ErrorKind::Io(e))
    };
    match options.zero {
        ZeroMode::Falloc if capacity > 0 => {
            rustix::fs::fallocate(out, rustix::fs::FallocateFlags::empty(), 0, capacity)
                .map_err(|e| out_err(0, std::io::Error::from(e)))?;
        }
        _ => out.set_len(capacity).map_err(|e| out_err(0, e))?,
    }
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
    let zeros = if options.zero == ZeroMode::Write {
        vec![0u8; window_usize]
    } else {
        Vec::new()
    };
    let next = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    let data_total = AtomicU64::new(0);
    let zero_total = AtomicU64::new(0);
    let threads = options.threads.max(1);

    let worker = || {
        let mut buf = vec![0u8; window_usize];
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
                        let part = buf.get_mut(..n).unwrap_or(&mut []);
                        disk.read_exact(run.offset, part)?;
                        out.write_all_at(part, run.offset)
                            .map_err(|e| out_err(run.offset, e))?;
                        data_total.fetch_add(run.len, Ordering::Relaxed);
                    } else {
                        if options.zero == ZeroMode::Write {
                            let part = zeros.get(..n).unwrap_or(&[]);
                            out.write_all_at(part, run.offset)
                                .map_err(|e| out_err(run.offset, e))?;
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
