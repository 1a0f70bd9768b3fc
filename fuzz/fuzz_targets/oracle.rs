//! The checks the `disk`, `cowd` and `sesparse` targets make on a disk they opened (not a
//! target itself): the allocation summary adds up to the capacity (or, where mapping the whole
//! disk would cost more than `MAX_MAP_STEPS`, the first window's runs are contiguous), what
//! the map calls zero or unallocated reads as zeros at both ends, and one byte past the end is
//! refused.

use vmdk::internals::extent_layout;
use vmdk::{AllocationSummary, Disk};

/// Bytes read at each end of the disk.
const READ_LEN: u64 = 64 << 10;
/// Grains and windows `allocation_summary` may visit. Its cost grows with the capacity, which
/// a ZERO extent line makes as large as 2^64 bytes from a few bytes of input: past this
/// budget only the first window is mapped.
const MAX_MAP_STEPS: u64 = 1 << 22;
/// `allocation_summary` maps the disk in windows of this size.
const WINDOW: u64 = 1 << 30;

/// Roughly how many steps mapping the whole disk takes: one per window and one per grain of
/// every sparse extent.
fn map_cost(disk: &Disk) -> u64 {
    let windows = disk.capacity().div_ceil(WINDOW);
    extent_layout(disk)
        .into_iter()
        .fold(windows, |cost, (len, grain)| {
            cost.saturating_add(grain.map_or(1, |g| len.div_ceil(g)))
        })
}

/// Runs the checks on `disk`; `summary` makes its allocation summary (directly, or through
/// what reports it, such as `info`), `None` when that fails.
pub fn check_disk(disk: &Disk, summary: impl FnOnce(&Disk) -> Option<AllocationSummary>) {
    let capacity = disk.capacity();
    if map_cost(disk) <= MAX_MAP_STEPS {
        if let Some(sum) = summary(disk) {
            assert_eq!(
                sum.data + sum.zero + sum.unallocated,
                capacity,
                "the allocation summary does not add up to the capacity"
            );
        }
    } else if let Ok(runs) = disk.map(0, capacity.min(WINDOW)) {
        let mut at = 0;
        for r in runs {
            assert_eq!(r.offset, at, "allocation map runs are not contiguous");
            at += r.len;
        }
    }

    // At most 128 KiB read per input: the first and the last 64 KiB.
    let n = capacity.min(READ_LEN);
    let mut buf = vec![0u8; n as usize];
    for offset in [0, capacity - n] {
        buf.fill(0xee);
        if disk.read_exact_at(offset, &mut buf).is_err() {
            continue;
        }
        let Ok(runs) = disk.map(offset, n) else {
            continue;
        };
        for r in runs.iter().filter(|r| r.kind.is_zero()) {
            let from = (r.offset - offset) as usize;
            let bytes = &buf[from..from + r.len as usize];
            assert!(
                bytes.iter().all(|&b| b == 0),
                "{:?} run at {:#x}+{:#x} does not read as zeros",
                r.kind,
                r.offset,
                r.len
            );
        }
    }
    // One byte past the end must be refused, not read.
    assert!(disk.read_exact_at(capacity, &mut [0u8; 1]).is_err());
}
