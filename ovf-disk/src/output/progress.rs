//! Running totals of the progress callbacks: [`Progress`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// Running totals of what a progress callback reports. The callbacks of `import`, `export`,
/// `convert` and `inflate_vm` give the bytes done since their previous call (a delta), for a
/// disk id or a device when there are several, called from the threads that write disks side
/// by side; this adds them up per item and in all.
///
/// ```
/// let progress = ovf_disk::output::Progress::new();
/// let callback = |disk: &str, n: u64| {
///     progress.add(disk, n);
/// };
/// callback("vmdisk1", 4096);
/// callback("vmdisk2", 512);
/// callback("vmdisk1", 4096);
/// assert_eq!(progress.of("vmdisk1"), 8192);
/// assert_eq!(progress.total(), 8704);
/// ```
#[derive(Debug, Default)]
pub struct Progress {
    all: AtomicU64,
    items: Mutex<Vec<(String, u64)>>,
}

impl Progress {
    /// No bytes yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `bytes` done for `item`; returns the total of everything so far.
    pub fn add(&self, item: &str, bytes: u64) -> u64 {
        {
            let mut items = self.items.lock().unwrap_or_else(|p| p.into_inner());
            match items.iter_mut().find(|(name, _)| name == item) {
                Some((_, n)) => *n = n.saturating_add(bytes),
                None => items.push((item.to_string(), bytes)),
            }
        }
        self.all
            .fetch_add(bytes, Ordering::Relaxed)
            .saturating_add(bytes)
    }

    /// Bytes done in all.
    pub fn total(&self) -> u64 {
        self.all.load(Ordering::Relaxed)
    }

    /// Bytes done for `item` (0 when it has reported none).
    pub fn of(&self, item: &str) -> u64 {
        let items = self.items.lock().unwrap_or_else(|p| p.into_inner());
        items
            .iter()
            .find(|(name, _)| name == item)
            .map_or(0, |(_, n)| *n)
    }

    /// Each item with its total, in the order they first reported.
    pub fn items(&self) -> Vec<(String, u64)> {
        self.items.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_add_up_across_threads() {
        let p = Progress::new();
        std::thread::scope(|s| {
            for t in 0..4 {
                let p = &p;
                s.spawn(move || {
                    for _ in 0..1000 {
                        p.add(if t % 2 == 0 { "a" } else { "b" }, 3);
                    }
                });
            }
        });
        assert_eq!(p.total(), 12_000);
        assert_eq!(p.of("a"), 6000);
        assert_eq!(p.of("b"), 6000);
        assert_eq!(p.of("c"), 0);
        assert_eq!(p.items().len(), 2);
    }
}
