//! Disks written side by side: an import or a VM folder with several disks runs a few of them
//! at once, so a core is not idle while one disk waits on its output (a disk's own grains are
//! already spread over the write threads; its reads and writes are not).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;

use crate::error::Result;

/// How many disks run at once when the caller says 0 (automatic): as many as cores, at most 4
/// (past that, concurrent writers only compete for the same device).
pub(crate) fn disks_at_once(requested: usize, disks: usize) -> usize {
    let auto = thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4);
    let n = if requested == 0 { auto } else { requested };
    n.clamp(1, disks.max(1))
}

/// Calls `job` on every item with at most `workers` running at once, and returns the results
/// in the items' order. After a failure no new item starts (those running finish, and what
/// they wrote is dropped with them); the first failure in the items' order is returned.
pub(crate) fn each<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    job: impl Fn(&T) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    if workers <= 1 || items.len() <= 1 {
        return items.iter().map(job).collect();
    }
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let mut done: Vec<(usize, Result<R>)> = thread::scope(|s| {
        let handles: Vec<_> = (0..workers.min(items.len()))
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    while !failed.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        let r = job(item);
                        if r.is_err() {
                            failed.store(true, Ordering::Relaxed);
                        }
                        mine.push((i, r));
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| match h.join() {
                Ok(mine) => mine,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    #[test]
    fn results_keep_the_items_order_and_run_side_by_side() {
        let running = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let items: Vec<u32> = (0..8).collect();
        let out = each(&items, 3, |&i| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            thread::sleep(Duration::from_millis(20 + u64::from(i % 3) * 10));
            running.fetch_sub(1, Ordering::SeqCst);
            Ok(i * 10)
        })
        .unwrap();
        assert_eq!(out, (0..8).map(|i| i * 10).collect::<Vec<_>>());
        assert_eq!(most.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn a_failure_stops_new_items_and_the_first_failure_is_returned() {
        let started = AtomicUsize::new(0);
        let items: Vec<u32> = (0..20).collect();
        let err = each(&items, 2, |&i| {
            started.fetch_add(1, Ordering::SeqCst);
            thread::sleep(Duration::from_millis(10));
            match i {
                1 | 2 => Err(Error::InvalidInput(format!("item {i}"))),
                _ => Ok(i),
            }
        })
        .unwrap_err();
        assert!(err.to_string().contains("item 1"), "{err}");
        assert!(started.load(Ordering::SeqCst) < 20);
    }

    #[test]
    fn automatic_count_is_bounded_by_the_disks_and_four() {
        assert_eq!(disks_at_once(0, 1), 1);
        assert!(disks_at_once(0, 10) <= 4);
        assert_eq!(disks_at_once(3, 10), 3);
        assert_eq!(disks_at_once(8, 2), 2);
        assert_eq!(disks_at_once(1, 0), 1);
    }
}
