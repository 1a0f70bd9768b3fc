//! The size a disk takes written as another format, computed as `qemu-img measure` computes it
//! (qemu's `block/qcow2.c`, `qcow2_measure` and `qcow2_calc_prealloc_size`; `block/raw-format.c`,
//! `raw_measure`), so a pipeline that sizes a volume with `qemu-img measure` gets the same
//! numbers from `vmdk-img measure`.
//!
//! qcow2: `fully_allocated` is the virtual size rounded to a cluster plus every table of a
//! fully allocated image (header, L2 and L1 tables, refcount blocks and table, the refcounts
//! counting themselves); `required` keeps only the clusters the disk's allocation map says hold
//! data (zero and unallocated ranges need none), all the metadata still counted. Raw: the
//! virtual size, both.

use vmdk::{Allocation, Disk, Format, Preallocation};

use crate::error::{Error, Result};

/// What [`measure`] found, as `qemu-img measure --output=json` prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
#[non_exhaustive]
pub struct Measure {
    /// Bytes of persistent dirty bitmaps, for a qcow2 output of a qcow2 version 3 source
    /// (which can carry them; this reader copies none): 0. Absent otherwise.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub bitmaps: Option<u64>,
    /// Bytes the output needs for this disk.
    pub required: u64,
    /// Bytes the output needs fully allocated.
    pub fully_allocated: u64,
}

/// The size of `disk` (or of an empty disk of `size` bytes when there is none) written as
/// `format` (raw or qcow2) with clusters of `cluster` bytes and `preallocation`.
pub fn measure(
    disk: Option<&Disk>,
    size: u64,
    format: &Format,
    cluster: u64,
    preallocation: Preallocation,
) -> Result<Measure> {
    let size = disk.map_or(size, Disk::capacity);
    match format {
        Format::Raw => {
            let size = match disk {
                Some(_) => size,
                None => size.div_ceil(512) * 512,
            };
            Ok(Measure {
                bitmaps: None,
                required: size,
                fully_allocated: size,
            })
        }
        Format::Qcow2 => {
            if !cluster.is_power_of_two() || !(512..=2 << 20).contains(&cluster) {
                return Err(Error::InvalidInput(format!(
                    "a qcow2 cluster size is a power of two from 512 bytes to 2 MiB, not {cluster}"
                )));
            }
            let virtual_size = size.div_ceil(cluster) * cluster;
            let l2_tables = (virtual_size / cluster).div_ceil(cluster / 8);
            if l2_tables * 8 > 32 << 20 {
                return Err(Error::InvalidInput(
                    "the image size is too large (try a larger cluster size)".into(),
                ));
            }
            let mut required = match disk {
                Some(d) => data_clusters(d, cluster)?,
                None => 0,
            };
            if matches!(preallocation, Preallocation::Full | Preallocation::Falloc) {
                required = virtual_size;
            }
            let fully_allocated = prealloc_size(virtual_size, cluster);
            // A qcow2 version 3 source can carry bitmaps (its header's version says; `info`
            // reads it, walking the map only for a qcow2 source).
            let bitmaps = disk
                .filter(|d| d.create_type().as_str() == "qcow2")
                .and_then(|d| d.info().ok())
                .and_then(|i| i.link.extents.first().and_then(|e| e.qcow2.clone()))
                .filter(|q| q.version >= 3)
                .map(|_| 0);
            Ok(Measure {
                bitmaps,
                required: fully_allocated - virtual_size + required,
                fully_allocated,
            })
        }
        other => Err(Error::InvalidInput(format!(
            "measure sizes raw and qcow2 outputs, not {other}"
        ))),
    }
}

/// Bytes of the clusters of `cluster` bytes that hold data, by the allocation map (qemu's
/// walk: a data run is counted from the start of its first cluster to the end of its last).
fn data_clusters(disk: &Disk, cluster: u64) -> Result<u64> {
    let capacity = disk.capacity();
    let window = (1u64 << 30).max(cluster);
    let mut required = 0;
    // The end of the last cluster counted: a run inside it adds nothing.
    let mut counted_to = 0u64;
    let mut at = 0;
    while at < capacity {
        let len = window.min(capacity - at);
        for run in disk.map(at, len)? {
            if run.kind != Allocation::Data {
                continue;
            }
            let start = (run.offset / cluster * cluster).max(counted_to);
            let end = (run.offset + run.len).div_ceil(cluster) * cluster;
            if end > start {
                required += end - start;
                counted_to = end;
            }
        }
        at += len;
    }
    Ok(required)
}

/// qemu's `qcow2_calc_prealloc_size`: a fully allocated image of `total` bytes (a whole
/// number of clusters) with 16-bit refcounts.
fn prealloc_size(total: u64, cluster: u64) -> u64 {
    let mut meta = cluster; // the header
    let l2_entries = (total / cluster).div_ceil(cluster / 8) * (cluster / 8);
    meta += l2_entries * 8;
    let l1_entries = (l2_entries * 8 / cluster).div_ceil(cluster / 8) * (cluster / 8);
    meta += l1_entries * 8;
    meta += refcount_metadata((meta + total) / cluster, cluster);
    meta + total
}

/// qemu's `qcow2_refcount_metadata_size`: the refcount blocks and table that count `clusters`
/// clusters and themselves (16-bit refcounts).
fn refcount_metadata(clusters: u64, cluster: u64) -> u64 {
    let per_table_cluster = cluster / 8;
    let per_block = cluster * 8 / 16;
    let (mut table, mut blocks, mut n) = (0u64, 0u64, 0u64);
    loop {
        let last = n;
        blocks = (clusters + table + blocks).div_ceil(per_block);
        table = blocks.div_ceil(per_table_cluster);
        n = clusters + blocks + table;
        if n == last {
            return (blocks + table) * cluster;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_qemu_img() {
        // `qemu-img measure -O qcow2 --size 1G` and a 64 MiB disk fully allocated.
        let m = measure(None, 1 << 30, &Format::Qcow2, 65536, Preallocation::Off).unwrap();
        assert_eq!((m.required, m.fully_allocated), (393_216, 1_074_135_040));
        assert_eq!(prealloc_size(64 << 20, 65536), 67_436_544);
    }
}
