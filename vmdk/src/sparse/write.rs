//! Writing hosted sparse extents (monolithicSparse, and each file of twoGbMaxExtentSparse).
//!
//! Spec: "Hosted Sparse Extents" (pp. 6-9). Layout, as VMware and qemu-img write it:
//!
//! ```text
//! header | embedded descriptor (20 sectors, monolithicSparse only) | redundant grain directory
//! | redundant grain tables | grain directory | grain tables | padding to a grain | grains
//! ```
//!
//! Every grain table is allocated up front (the directories point at all of them); grains are
//! appended in disk order; all-zero grains stay unallocated (entry 0). The file is written with
//! positioned writes; memory is the directory plus one grain table, whatever the size.

use std::os::unix::fs::FileExt;

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::IntoBytes;

use crate::copy::{for_each_grain, GrainWalk, Target};
use crate::descriptor::Descriptor;
use crate::disk::Disk;
use crate::error::{Error, ErrorKind, Result};
use crate::format::*;

/// Grain size of sparse extents we write (64 KiB).
pub const GRAIN_SECTORS: u64 = 128;
/// Entries per grain table.
pub const GTES_PER_GT: u64 = 512;
/// Sectors reserved for an embedded descriptor.
pub const DESCRIPTOR_SECTORS: u64 = 20;

/// What a sparse extent write produced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SparseStats {
    /// Grains allocated.
    pub grains: u64,
    /// Bytes of the file.
    pub bytes: u64,
}

/// Writes the bytes of `disk` that `target` holds as one hosted sparse extent into its file
/// (empty), with `descriptor` embedded if given. `threads` read and zero-scan grains in parallel.
pub fn write_sparse_extent(
    disk: &Disk,
    target: &Target<'_>,
    descriptor: Option<&Descriptor>,
    threads: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<SparseStats> {
    let Target {
        file,
        path,
        start,
        len,
    } = *target;
    let err = |offset: u64, e: std::io::Error| {
        Error::new(Some(path), "output", Some(offset), ErrorKind::Io(e))
    };
    crate::stream::check_write_capacity(len)?;
    let capacity = len.div_ceil(SECTOR_SIZE);
    let grains = capacity.div_ceil(GRAIN_SECTORS);
    let tables = grains.div_ceil(GTES_PER_GT);
    let gd_sectors = (tables * 4).div_ceil(SECTOR_SIZE).max(1);
    let gt_sectors = GTES_PER_GT * 4 / SECTOR_SIZE;
    let (desc_offset, desc_sectors) = match descriptor {
        Some(_) => (1, DESCRIPTOR_SECTORS),
        None => (0, 0),
    };
    let rgd = 1 + desc_sectors;
    let rgt0 = rgd + gd_sectors;
    let gd = rgt0 + tables * gt_sectors;
    let gt0 = gd + gd_sectors;
    let meta_end = gt0 + tables * gt_sectors;
    let over_head = meta_end.div_ceil(GRAIN_SECTORS) * GRAIN_SECTORS;
    let header = SparseExtentHeader {
        magic_number: U32::new(SPARSE_MAGIC),
        version: U32::new(1),
        flags: U32::new(FLAG_VALID_NEWLINE_DETECTOR | FLAG_USE_REDUNDANT),
        capacity: U64::new(capacity),
        grain_size: U64::new(GRAIN_SECTORS),
        descriptor_offset: U64::new(desc_offset),
        descriptor_size: U64::new(desc_sectors),
        num_gtes_per_gt: U32::new(GTES_PER_GT as u32),
        rgd_offset: U64::new(rgd),
        gd_offset: U64::new(gd),
        over_head: U64::new(over_head),
        unclean_shutdown: 0,
        single_end_line_char: b'\n',
        non_end_line_char: b' ',
        double_end_line_char1: b'\r',
        double_end_line_char2: b'\n',
        compress_algorithm: U16::new(COMPRESSION_NONE),
        pad: [0; 433],
    };
    let sector_u32 = |s: u64| {
        u32::try_from(s).map_err(|_| {
            Error::new(
                Some(path),
                "output",
                Some(s * SECTOR_SIZE),
                ErrorKind::Usage(
                    "sparse extent larger than 2 TiB: grain table entries are 32-bit sectors"
                        .into(),
                ),
            )
        })
    };
    file.set_len(over_head * SECTOR_SIZE)
        .map_err(|e| err(0, e))?;
    file.write_all_at(header.as_bytes(), 0)
        .map_err(|e| err(0, e))?;
    if let Some(d) = descriptor {
        let text = d.print();
        if text.len() as u64 > desc_sectors * SECTOR_SIZE {
            return Err(Error::new(
                Some(path),
                "embedded descriptor",
                Some(SECTOR_SIZE),
                ErrorKind::Usage("descriptor longer than 20 sectors".into()),
            ));
        }
        file.write_all_at(text.as_bytes(), SECTOR_SIZE)
            .map_err(|e| err(SECTOR_SIZE, e))?;
    }
    for (dir, first) in [(rgd, rgt0), (gd, gt0)] {
        let entries = (0..tables)
            .map(|t| sector_u32(first + t * gt_sectors))
            .collect::<Result<Vec<u32>>>()?;
        file.write_all_at(entries.as_bytes(), dir * SECTOR_SIZE)
            .map_err(|e| err(dir * SECTOR_SIZE, e))?;
    }

    let mut table = vec![0u32; GTES_PER_GT as usize];
    let mut current: Option<u64> = None;
    let mut next = over_head;
    let mut allocated = 0u64;
    let write_table = |t: u64, table: &mut Vec<u32>| -> Result<()> {
        for first in [rgt0, gt0] {
            let at = (first + t * gt_sectors) * SECTOR_SIZE;
            file.write_all_at(table.as_bytes(), at)
                .map_err(|e| err(at, e))?;
        }
        table.fill(0);
        Ok(())
    };
    let grain_bytes = GRAIN_SECTORS * SECTOR_SIZE;
    let work = |_g: u64, data: &[u8]| -> Result<Vec<u8>> {
        let mut grain = data.to_vec();
        grain.resize(grain_bytes as usize, 0);
        Ok(grain)
    };
    let mut sink = |g: u64, grain: Vec<u8>| -> Result<()> {
        let t = g / GTES_PER_GT;
        if current != Some(t) {
            if let Some(prev) = current {
                write_table(prev, &mut table)?;
            }
            current = Some(t);
        }
        if let Some(e) = table.get_mut((g % GTES_PER_GT) as usize) {
            *e = sector_u32(next)?;
        }
        file.write_all_at(&grain, next * SECTOR_SIZE)
            .map_err(|e| err(next * SECTOR_SIZE, e))?;
        next += GRAIN_SECTORS;
        allocated += 1;
        Ok(())
    };
    let walk = GrainWalk {
        start,
        len,
        grain_bytes,
        threads,
        batch: 64,
    };
    for_each_grain(disk, &walk, &work, &mut sink, progress)?;
    if let Some(prev) = current {
        write_table(prev, &mut table)?;
    }
    Ok(SparseStats {
        grains: allocated,
        bytes: next * SECTOR_SIZE,
    })
}
