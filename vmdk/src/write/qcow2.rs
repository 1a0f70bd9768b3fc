//! qcow2 outputs, version 3 (compat 1.1), as qemu's `docs/interop/qcow2.txt` lays them out:
//! the header in cluster 0, the L1 table and the refcount table after it, then the data
//! clusters, then the L2 tables and refcount blocks. Clusters of 64 KiB, refcounts of 16 bits,
//! no backing file, no compression, no snapshots.
//!
//! Written in one pass by the copy engine's workers: each takes an 8 MiB window of the disk,
//! reads what the allocation map says holds data, skips clusters that are all zeros (they stay
//! unallocated, which reads as zeros), and appends the rest as one contiguous run of data
//! clusters. The L2 entries are kept in memory (8 bytes per cluster of each 512 MiB table
//! touched) and written after the data with the refcounts of every cluster in the file, so
//! `qemu-img check` finds no leak and no corruption.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use super::options::WriteOptions;
use crate::disk::Disk;
use crate::error::{Error, ErrorKind, Result};
use crate::read::qcow2::Qcow2Header;

const CLUSTER_BITS: u32 = 16;
const CLUSTER: u64 = 1 << CLUSTER_BITS;
/// Entries of an L2 table (a cluster of u64).
const L2_ENTRIES: u64 = CLUSTER / 8;
/// Refcounts in a refcount block (16-bit refcounts).
const REFCOUNTS_PER_BLOCK: u64 = CLUSTER / 2;
/// "Refcount is exactly one": set in L1 and L2 entries of clusters used once.
const COPIED: u64 = 1 << 63;
/// Clusters a worker takes at once (8 MiB).
const WINDOW_CLUSTERS: u64 = 128;
const HEADER_LENGTH: u32 = 104;

fn io(path: &Path, offset: u64) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::at(path, "qcow2 output", offset, ErrorKind::Io(e))
}

fn write_at(file: &File, path: &Path, buf: &[u8], offset: u64) -> Result<()> {
    use std::os::unix::fs::FileExt;
    file.write_all_at(buf, offset).map_err(io(path, offset))
}

/// The shared state of the workers.
struct Copy<'a> {
    disk: &'a Disk,
    file: &'a File,
    path: &'a Path,
    clusters: u64,
    /// The first data cluster.
    data_start: u64,
    /// Data clusters handed out so far.
    allocated: AtomicU64,
    next_window: AtomicU64,
    stop: AtomicBool,
    /// The L2 tables, by L1 index: host offsets of the data clusters.
    l2: Mutex<Vec<Option<Vec<u64>>>>,
    data: AtomicU64,
    /// Set by the caller to stop the copy.
    cancel: Option<&'a AtomicBool>,
}

impl Copy<'_> {
    fn work(&self, progress: &(dyn Fn(u64) + Sync)) -> Result<()> {
        let capacity = self.disk.capacity();
        let mut buf = vec![0u8; (WINDOW_CLUSTERS * CLUSTER) as usize];
        while !self.stop.load(Ordering::Relaxed) {
            super::walk::cancelled(self.cancel)?;
            let window = super::workers::next_window(
                self.disk,
                &self.next_window,
                WINDOW_CLUSTERS,
                self.clusters,
                CLUSTER,
            )?;
            // Which clusters of the window hold data, read whole.
            let Some(super::workers::Window {
                first,
                start,
                len,
                holds,
            }) = window
            else {
                break;
            };
            let mut keep = Vec::new();
            for (i, h) in holds.iter().enumerate() {
                if !h {
                    continue;
                }
                let at = start + i as u64 * CLUSTER;
                let n = CLUSTER.min(capacity - at) as usize;
                let from = i * CLUSTER as usize;
                let cluster = buf
                    .get_mut(from..from + CLUSTER as usize)
                    .unwrap_or_default();
                cluster.fill(0);
                self.disk
                    .read_exact_at(at, cluster.get_mut(..n).unwrap_or_default())?;
                if cluster.iter().any(|&b| b != 0) {
                    keep.push(i);
                }
            }
            // The window's data clusters, one contiguous run in the file.
            let base = self.data_start
                + self
                    .allocated
                    .fetch_add(keep.len() as u64, Ordering::Relaxed);
            let mut hosts = Vec::with_capacity(keep.len());
            for (k, &i) in keep.iter().enumerate() {
                let host = (base + k as u64) * CLUSTER;
                let from = i * CLUSTER as usize;
                let cluster = buf.get(from..from + CLUSTER as usize).unwrap_or_default();
                write_at(self.file, self.path, cluster, host)?;
                hosts.push((first + i as u64, host));
            }
            self.data
                .fetch_add(keep.len() as u64 * CLUSTER, Ordering::Relaxed);
            if !hosts.is_empty() {
                let mut l2 = self.l2.lock().unwrap_or_else(|p| p.into_inner());
                for (v, host) in hosts {
                    let (t, e) = ((v / L2_ENTRIES) as usize, (v % L2_ENTRIES) as usize);
                    if let Some(slot) = l2.get_mut(t) {
                        let table = slot.get_or_insert_with(|| vec![0; L2_ENTRIES as usize]);
                        if let Some(entry) = table.get_mut(e) {
                            *entry = host | COPIED;
                        }
                    }
                }
            }
            progress(len);
        }
        Ok(())
    }
}

/// Writes `disk` as a qcow2 image of `capacity` bytes (at least the disk's) into `file`.
/// Returns the bytes of data clusters written.
pub(crate) fn write_qcow2(
    disk: &Disk,
    file: &File,
    path: &Path,
    capacity: u64,
    options: &WriteOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<u64> {
    let clusters = capacity.div_ceil(CLUSTER);
    let l1_size = clusters.div_ceil(L2_ENTRIES);
    let l1_clusters = (l1_size * 8).div_ceil(CLUSTER).max(1);
    // The refcount table is sized for the largest file this disk can make: every cluster of
    // the disk, every L2 table, the header, L1 and the refcount blocks themselves.
    let most = 1 + l1_clusters + clusters + l1_size + 64;
    let blocks_most = (most + most / REFCOUNTS_PER_BLOCK + 2).div_ceil(REFCOUNTS_PER_BLOCK);
    let rt_clusters = (blocks_most * 8).div_ceil(CLUSTER).max(1);
    let l1_at = 1;
    let rt_at = l1_at + l1_clusters;
    let copy = Copy {
        disk,
        file,
        path,
        clusters,
        data_start: rt_at + rt_clusters,
        allocated: AtomicU64::new(0),
        next_window: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        l2: Mutex::new(vec![None; l1_size as usize]),
        data: AtomicU64::new(0),
        cancel: options.cancel.as_deref(),
    };
    super::workers::run_workers(options.copy_workers(), &copy.stop, || copy.work(progress))?;
    let tables = copy.l2.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut next = copy.data_start + copy.allocated.load(Ordering::Relaxed);
    // The L2 tables after the data, and the L1 table pointing at them.
    let mut l1 = vec![0u8; (l1_clusters * CLUSTER) as usize];
    for (i, table) in tables.iter().enumerate() {
        let Some(table) = table else { continue };
        let host = next * CLUSTER;
        let bytes: Vec<u8> = table.iter().flat_map(|e| e.to_be_bytes()).collect();
        write_at(file, path, &bytes, host)?;
        if let Some(slot) = l1.get_mut(i * 8..i * 8 + 8) {
            slot.copy_from_slice(&(host | COPIED).to_be_bytes());
        }
        next += 1;
    }
    write_at(file, path, &l1, l1_at * CLUSTER)?;
    // Refcount blocks for every cluster so far and for themselves.
    let mut blocks = 1;
    while (next + blocks).div_ceil(REFCOUNTS_PER_BLOCK) > blocks {
        blocks += 1;
    }
    let total = next + blocks;
    let mut table = vec![0u8; (rt_clusters * CLUSTER) as usize];
    for b in 0..blocks {
        let host = (next + b) * CLUSTER;
        let mut block = vec![0u8; CLUSTER as usize];
        let first = b * REFCOUNTS_PER_BLOCK;
        let used = total.saturating_sub(first).min(REFCOUNTS_PER_BLOCK);
        for r in 0..used as usize {
            if let Some(slot) = block.get_mut(r * 2..r * 2 + 2) {
                slot.copy_from_slice(&1u16.to_be_bytes());
            }
        }
        write_at(file, path, &block, host)?;
        let i = b as usize;
        if let Some(slot) = table.get_mut(i * 8..i * 8 + 8) {
            slot.copy_from_slice(&host.to_be_bytes());
        }
    }
    write_at(file, path, &table, rt_at * CLUSTER)?;
    write_at(
        file,
        path,
        &header(capacity, l1_size, l1_at, rt_at, rt_clusters),
        0,
    )?;
    file.set_len(total * CLUSTER).map_err(io(path, 0))?;
    Ok(copy.data.into_inner())
}

/// The version 3 header, then the end of the header extensions.
fn header(capacity: u64, l1_size: u64, l1_at: u64, rt_at: u64, rt_clusters: u64) -> Vec<u8> {
    use zerocopy::big_endian::{U32, U64};
    use zerocopy::IntoBytes;
    let h = Qcow2Header {
        magic: U32::new(Qcow2Header::MAGIC),
        version: U32::new(3),
        backing_file_offset: U64::new(0),
        backing_file_size: U32::new(0),
        cluster_bits: U32::new(CLUSTER_BITS),
        size: U64::new(capacity),
        crypt_method: U32::new(0),
        l1_size: U32::new(l1_size as u32),
        l1_table_offset: U64::new(l1_at * CLUSTER),
        refcount_table_offset: U64::new(rt_at * CLUSTER),
        refcount_table_clusters: U32::new(rt_clusters as u32),
        nb_snapshots: U32::new(0),
        snapshots_offset: U64::new(0),
        incompatible_features: U64::new(0),
        compatible_features: U64::new(0),
        autoclear_features: U64::new(0),
        refcount_order: U32::new(4), // 16-bit refcounts
        header_length: U32::new(HEADER_LENGTH),
    };
    let mut bytes = h.as_bytes().to_vec();
    bytes.extend_from_slice(&[0u8; 8]); // end of header extensions
    bytes
}
