//! Resuming a qcow2 write (`ovf-disk convert --to qcow2 URL OUT --resume`).
//!
//! A qcow2 write keeps its L2 tables in memory and writes them after the data, so a run killed
//! midway leaves data clusters nothing points at. With a checkpoint the write places each L2
//! table in the data area instead, right after the data of the last window its clusters cover
//! (the windows are placed in disk order), and once every window of the table is written,
//! writes the table there and its entry in the L1 table. The header goes first, as it will end.
//! After a flush the checkpoint is told the bytes of the disk whose tables are all written (at
//! most twice a second). A later write given those bytes back checks the header, reads the L1
//! entries and tables below them, cuts the file after the last of those tables, and continues
//! with the next window: its file is byte for byte what an uninterrupted write with a
//! checkpoint makes. Preallocated outputs start over.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::options::Checkpoint;
use crate::error::{Error, ErrorKind, Result};

/// How often a qcow2 write records a checkpoint at most.
#[cfg(not(test))]
pub(crate) const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
/// In unit tests, after every table, so resumes from each one are tested.
#[cfg(test)]
pub(crate) const CHECKPOINT_EVERY: Duration = Duration::ZERO;

/// "Refcount is exactly one" (as in the writer).
const COPIED: u64 = 1 << 63;
/// An L2 entry's compressed bit.
const COMPRESSED: u64 = 1 << 62;
/// Bits 9..55 of an L2 or L1 entry: the host offset.
const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;

/// The geometry a resumable write counts in: clusters of `1 << bits` bytes, windows of
/// `per_window` clusters, tables of `per_table`, `clusters` in the disk, `tables` in the L1.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geometry {
    pub(crate) bits: u32,
    pub(crate) per_window: u64,
    pub(crate) per_table: u64,
    pub(crate) clusters: u64,
    pub(crate) tables: u64,
    pub(crate) capacity: u64,
}

impl Geometry {
    /// The tables every cluster of which is below cluster `end` (a window's end).
    fn tables_below(&self, end: u64) -> u64 {
        match end >= self.clusters {
            true => self.tables,
            false => end / self.per_table,
        }
    }

    /// The disk's bytes the first `tables` tables cover.
    fn bytes_of(&self, tables: u64) -> u64 {
        (tables.saturating_mul(self.per_table) << self.bits).min(self.capacity)
    }
}

/// Where the copy's in-order progress stands.
struct Progress {
    /// The first window not written yet.
    next: u64,
    /// Windows written after it.
    ahead: std::collections::BTreeSet<u64>,
    /// The tables written in place (every one below this index).
    written: u64,
    /// When the checkpoint was last told.
    told: Instant,
}

/// What a write with a checkpoint adds to the copy: where each table goes, and how far the
/// writes got in disk order.
pub(crate) struct Resumable<'a> {
    pub(crate) checkpoint: &'a dyn Checkpoint,
    geometry: Geometry,
    /// By L1 index: the host offset of the table's cluster in the data area (0: none yet, or
    /// the table is empty).
    hosts: Mutex<Vec<u64>>,
    /// Which tables have entries and which have their cluster, taken in the placement turn.
    placing: Mutex<Placing>,
    progress: Mutex<Progress>,
    /// The tables the checkpoint was last told are written (taken while flushing).
    told: Mutex<u64>,
}

/// What the placement turn keeps: by L1 index, whether a window put an entry in the table,
/// and the tables whose cluster is placed (every one below `reserved`).
struct Placing {
    touched: Vec<bool>,
    reserved: u64,
}

/// Where an interrupted write stood, read back from its file.
pub(crate) struct Resumed {
    /// The first cluster of the disk to write.
    pub(crate) cluster: u64,
    /// The next free byte of the file.
    pub(crate) cursor: u64,
    /// The tables below the first cluster: by L1 index, their host offset and entries.
    pub(crate) tables: Vec<(usize, u64, Vec<u64>)>,
}

impl<'a> Resumable<'a> {
    /// The state of a write from `resumed` (or from the start).
    pub(crate) fn new(
        checkpoint: &'a dyn Checkpoint,
        geometry: Geometry,
        resumed: Option<&Resumed>,
    ) -> Self {
        let n = geometry.tables as usize;
        let (mut hosts, mut touched) = (vec![0u64; n], vec![false; n]);
        let mut tables = 0;
        let mut window = 0;
        if let Some(r) = resumed {
            for (t, host, _) in &r.tables {
                if let (Some(h), Some(x)) = (hosts.get_mut(*t), touched.get_mut(*t)) {
                    (*h, *x) = (*host, true);
                }
            }
            tables = geometry.tables_below(r.cluster);
            window = r.cluster.div_ceil(geometry.per_window.max(1));
        }
        Self {
            checkpoint,
            geometry,
            hosts: Mutex::new(hosts),
            placing: Mutex::new(Placing {
                touched,
                reserved: tables,
            }),
            progress: Mutex::new(Progress {
                next: window,
                ahead: Default::default(),
                written: tables,
                told: Instant::now(),
            }),
            told: Mutex::new(tables),
        }
    }

    /// Called in the turn of the window of `count` clusters from cluster `first`, once its data
    /// is placed and the file's next free byte is `cursor`: notes the tables it put entries in
    /// (`entries`, disk clusters), and places the cluster of every table it completes that has
    /// entries (cluster-aligned at the cursor). Returns the new cursor.
    pub(crate) fn after_placing(
        &self,
        first: u64,
        count: u64,
        entries: impl Iterator<Item = u64>,
        mut cursor: u64,
    ) -> u64 {
        let g = self.geometry;
        let mut guard = lock(&self.placing);
        let Placing { touched, reserved } = &mut *guard;
        for c in entries {
            if let Some(t) = touched.get_mut((c / g.per_table) as usize) {
                *t = true;
            }
        }
        let complete = g.tables_below(first.saturating_add(count));
        let mut hosts = lock(&self.hosts);
        let cluster = 1u64 << g.bits;
        for t in *reserved..complete {
            if touched.get(t as usize).copied().unwrap_or(false) {
                let host = cursor.div_ceil(cluster) * cluster;
                if let Some(h) = hosts.get_mut(t as usize) {
                    *h = host;
                }
                cursor = host + cluster;
            }
        }
        *reserved = (*reserved).max(complete);
        cursor
    }

    /// Called once window `index` is written and its entries recorded: writes the tables that
    /// every window before the first unwritten one completes (`table_of` gives a table's
    /// entries) and their L1 entries (at byte `l1_at`), and, at most once per `every`, flushes
    /// the file and tells the checkpoint.
    pub(crate) fn window_written(
        &self,
        index: u64,
        file: &File,
        path: &Path,
        l1_at: u64,
        table_of: impl Fn(usize) -> Vec<u64>,
    ) -> Result<()> {
        let g = self.geometry;
        let mut guard = lock(&self.progress);
        let p = &mut *guard;
        p.ahead.insert(index);
        while p.ahead.remove(&p.next) {
            p.next += 1;
        }
        let complete = g.tables_below(p.next.saturating_mul(g.per_window));
        if complete <= p.written {
            return Ok(());
        }
        for t in p.written..complete {
            let host = lock(&self.hosts).get(t as usize).copied().unwrap_or(0);
            if host == 0 {
                continue;
            }
            let bytes: Vec<u8> = table_of(t as usize)
                .iter()
                .flat_map(|e| e.to_be_bytes())
                .collect();
            write(file, path, &bytes, host)?;
            write(file, path, &(host | COPIED).to_be_bytes(), l1_at + t * 8)?;
        }
        p.written = complete;
        let last = complete == g.tables;
        if !last && p.told.elapsed() < CHECKPOINT_EVERY {
            return Ok(());
        }
        p.told = Instant::now();
        // The flush runs outside the lock, so the other workers go on meanwhile; the
        // checkpoints are told in order, each only past the one before.
        drop(guard);
        let mut told = lock(&self.told);
        if complete > *told {
            file.sync_data()
                .map_err(|e| Error::at(path, "qcow2 output", 0, ErrorKind::Io(e)))?;
            self.checkpoint.reached(g.bytes_of(complete))?;
            *told = complete;
        }
        Ok(())
    }

    /// The host offset of table `t` when it was written in place.
    pub(crate) fn host_of(&self, t: usize) -> u64 {
        lock(&self.hosts).get(t).copied().unwrap_or(0)
    }

    /// The host clusters of the tables written in place.
    pub(crate) fn table_clusters(&self) -> Vec<u64> {
        let bits = self.geometry.bits;
        lock(&self.hosts)
            .iter()
            .filter(|&&h| h != 0)
            .map(|h| h >> bits)
            .collect()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn write(file: &File, path: &Path, bytes: &[u8], at: u64) -> Result<()> {
    file.write_all_at(bytes, at)
        .map_err(|e| Error::at(path, "qcow2 output", at, ErrorKind::Io(e)))
}

/// Where the interrupted write into `file` got to, given the bytes of the disk its checkpoint
/// says are done, the header it starts with (`head`), the first data byte (`data_at`) and the
/// L1 table's place (`l1_at`). The header must be this write's, every L1 entry and table below
/// the checkpoint must point inside the data written; anything else is an error naming the
/// offset (the file is not the one being written). The file is cut after the last table read.
pub(crate) fn resume_state(
    file: &File,
    path: &Path,
    g: &Geometry,
    done: u64,
    head: &[u8],
    (data_at, l1_at): (u64, u64),
) -> Result<Resumed> {
    let bad =
        |at: u64, why: &str| Error::cannot_resume(Some(path), "partial qcow2 output", at, why);
    let io = |at: u64| move |e| Error::at(path, "partial qcow2 output", at, ErrorKind::Io(e));
    let span = g.per_table << g.bits;
    let tables = match done >= g.capacity {
        true => g.tables,
        false if done % span == 0 => done / span,
        false => return Err(bad(0, "its checkpoint is not at an L2 table's end")),
    };
    let cluster = (tables.saturating_mul(g.per_table)).min(g.clusters);
    if cluster < g.clusters && cluster % g.per_window.max(1) != 0 {
        return Err(bad(0, "its checkpoint is not at a window's end"));
    }
    let mut first = vec![0u8; head.len()];
    file.read_exact_at(&mut first, 0).map_err(io(0))?;
    if first != head {
        return Err(bad(
            0,
            "its header is not the one this disk's output starts with",
        ));
    }
    let len = file.metadata().map_err(io(0))?.len();
    let size = 1u64 << g.bits;
    let mut l1 = vec![0u8; (tables * 8) as usize];
    file.read_exact_at(&mut l1, l1_at).map_err(io(l1_at))?;
    let inside = |from: u64, to: u64| from >= data_at && to <= len && from < to;
    let mut cursor = data_at;
    let mut read = Vec::new();
    for (t, raw) in l1.chunks_exact(8).enumerate() {
        let at = l1_at + t as u64 * 8;
        let e = u64::from_be_bytes(raw.try_into().unwrap_or_default());
        if e == 0 {
            continue;
        }
        let host = e & OFFSET_MASK;
        if e != host | COPIED || host % size != 0 || !inside(host, host + size) {
            return Err(bad(at, "an L1 entry where this writer puts no table"));
        }
        let mut bytes = vec![0u8; size as usize];
        file.read_exact_at(&mut bytes, host).map_err(io(host))?;
        let entries: Vec<u64> = bytes
            .chunks_exact(8)
            .map(|b| u64::from_be_bytes(b.try_into().unwrap_or_default()))
            .collect();
        let shift = 62 - (g.bits - 8);
        for (i, &x) in entries.iter().enumerate() {
            // Every cluster of a table's windows lies before the table (placed after them).
            let (from, to) = match x {
                0 | 1 => continue,
                x if x & COMPRESSED != 0 => {
                    let offset = x & ((1u64 << shift) - 1);
                    let sectors = ((x & !COMPRESSED) >> shift) + 1;
                    (offset, (offset / 512 + sectors) * 512)
                }
                x if x == (x & OFFSET_MASK) | COPIED && x & (size - 1) == 0 => {
                    (x & OFFSET_MASK, (x & OFFSET_MASK) + size)
                }
                _ => (0, 0),
            };
            if !inside(from, to) || to > host {
                return Err(bad(
                    host + i as u64 * 8,
                    "a table entry outside the data written",
                ));
            }
        }
        cursor = cursor.max(host + size);
        read.push((t, host, entries));
    }
    file.set_len(cursor).map_err(io(0))?;
    Ok(Resumed {
        cluster,
        cursor,
        tables: read,
    })
}
