//! What the resume tests of the stream and sparse writers share: a checkpoint that records
//! what it is told, and a disk whose data leaves grain tables empty between full ones.

use std::sync::Mutex;

use super::options::Checkpoint;
use crate::disk::Disk;
use crate::error::Result;
use crate::{MemoryFiles, OpenOptions};

/// A checkpoint that records every value it is told, and resumes from `from`.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    pub(crate) from: u64,
    pub(crate) told: Mutex<Vec<u64>>,
}

impl Recorder {
    /// A checkpoint that resumes from `from`.
    pub(crate) fn from(from: u64) -> Self {
        Self {
            from,
            ..Self::default()
        }
    }

    /// What it was told, in order.
    pub(crate) fn told(self) -> Vec<u64> {
        self.told.into_inner().unwrap_or_else(|p| p.into_inner())
    }
}

impl Checkpoint for Recorder {
    fn resume_from(&self) -> u64 {
        self.from
    }

    fn reached(&self, done: u64) -> Result<()> {
        self.told
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(done);
        Ok(())
    }
}

/// A raw disk of four grain tables of 32 MiB and a bit, served from memory: data in tables 0,
/// 2 and 4 (tables 1 and 3 empty, so they have no grain table), and in the last, partial grain.
pub(crate) fn tables_apart() -> Disk {
    let capacity = (4u64 << 25) + 3 * 512;
    let mut bytes = vec![0u8; capacity as usize];
    let starts = [
        0u64,
        65_536 * 3,
        2 << 25,
        (2 << 25) + (1 << 20),
        capacity - 700,
    ];
    for (i, at) in starts.into_iter().enumerate() {
        let len = 700.min(capacity - at) as usize;
        if let Some(run) = bytes.get_mut(at as usize..at as usize + len) {
            run.fill(i as u8 + 1);
        }
    }
    let mut files = MemoryFiles::new();
    files.insert("d.raw", bytes);
    match OpenOptions::new().files(files).open_raw("d.raw") {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    }
}
