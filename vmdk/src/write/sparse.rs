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

use std::fs::File;
use std::path::Path;

use zerocopy::IntoBytes;

use super::copy::{write_all_at, Target};
use super::geometry::{
    check_write_capacity, written_header, DESCRIPTOR_SECTORS, GRAIN_SECTORS, GTES_PER_GT,
};
use super::walk::{walk_grains, GrainWalk};
use crate::descriptor::Descriptor;
use crate::disk::Disk;
use crate::error::{Error, ErrorKind, Feature, Result};
use crate::format::{SparseExtentHeader as H, SECTOR_SIZE};

/// What a sparse extent write produced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct SparseStats {
    /// Grains allocated.
    pub grains: u64,
    /// Bytes of the file.
    pub bytes: u64,
}

/// Where the metadata of a sparse extent we write lies, in sectors.
struct Layout {
    capacity: u64,
    tables: u64,
    gt_sectors: u64,
    descriptor_sectors: u64,
    rgd: u64,
    rgt0: u64,
    gd: u64,
    gt0: u64,
    over_head: u64,
}

impl Layout {
    fn new(len: u64, with_descriptor: bool) -> Self {
        let capacity = len.div_ceil(SECTOR_SIZE);
        let tables = capacity.div_ceil(GRAIN_SECTORS).div_ceil(GTES_PER_GT);
        let gd_sectors = (tables * 4).div_ceil(SECTOR_SIZE).max(1);
        let gt_sectors = GTES_PER_GT * 4 / SECTOR_SIZE;
        let descriptor_sectors = if with_descriptor {
            DESCRIPTOR_SECTORS
        } else {
            0
        };
        let rgd = 1 + descriptor_sectors;
        let rgt0 = rgd + gd_sectors;
        let gd = rgt0 + tables * gt_sectors;
        let gt0 = gd + gd_sectors;
        let meta_end = gt0 + tables * gt_sectors;
        Self {
            capacity,
            tables,
            gt_sectors,
            descriptor_sectors,
            rgd,
            rgt0,
            gd,
            gt0,
            over_head: meta_end.div_ceil(GRAIN_SECTORS) * GRAIN_SECTORS,
        }
    }

    fn header(&self) -> H {
        let mut h = written_header(self.capacity);
        h.version.set(1);
        h.flags
            .set(H::FLAG_VALID_NEWLINE_DETECTOR | H::FLAG_USE_REDUNDANT);
        if self.descriptor_sectors > 0 {
            h.descriptor_offset.set(1);
            h.descriptor_size.set(self.descriptor_sectors);
        }
        h.rgd_offset.set(self.rgd);
        h.gd_offset.set(self.gd);
        h.over_head.set(self.over_head);
        h.compress_algorithm.set(H::COMPRESSION_NONE);
        h
    }
}

/// Sector `s` as a grain directory or table entry, which holds 32 bits.
fn sector_u32(path: &Path, s: u64) -> Result<u32> {
    u32::try_from(s).map_err(|_| {
        Error::at(
            path,
            "output",
            s * SECTOR_SIZE,
            ErrorKind::Unsupported(Feature::SectorsBeyond2TiB),
        )
    })
}

/// The metadata before the grains: the file sized to it, the header, the embedded descriptor
/// when there is one, and both grain directories (pointing at tables written later).
fn write_head(file: &File, path: &Path, l: &Layout, descriptor: Option<&Descriptor>) -> Result<()> {
    let err = |offset: u64, e: std::io::Error| Error::at(path, "output", offset, ErrorKind::Io(e));
    file.set_len(l.over_head * SECTOR_SIZE)
        .map_err(|e| err(0, e))?;
    write_all_at(file, l.header().as_bytes(), 0).map_err(|e| err(0, e))?;
    if let Some(d) = descriptor {
        let text = d.print();
        if text.len() as u64 > l.descriptor_sectors * SECTOR_SIZE {
            return Err(Error::at(
                path,
                "embedded descriptor",
                SECTOR_SIZE,
                ErrorKind::InvalidInput("descriptor longer than 20 sectors".into()),
            ));
        }
        write_all_at(file, text.as_bytes(), SECTOR_SIZE).map_err(|e| err(SECTOR_SIZE, e))?;
    }
    for (dir, first) in [(l.rgd, l.rgt0), (l.gd, l.gt0)] {
        let entries = (0..l.tables)
            .map(|t| sector_u32(path, first + t * l.gt_sectors))
            .collect::<Result<Vec<u32>>>()?;
        write_all_at(file, entries.as_bytes(), dir * SECTOR_SIZE)
            .map_err(|e| err(dir * SECTOR_SIZE, e))?;
    }
    Ok(())
}

/// Writes the bytes of `disk` that `target` holds as one hosted sparse extent into its file
/// (empty), with `descriptor` embedded if given. `threads` read and zero-scan grains in parallel.
pub(crate) fn write_sparse_extent(
    disk: &Disk,
    target: &Target<'_>,
    descriptor: Option<&Descriptor>,
    threads: usize,
    cancel: Option<&std::sync::atomic::AtomicBool>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<SparseStats> {
    // Grains are not compressed: 64 in flight (4 MiB) keep the workers busy.
    let batch = 64;
    let Target {
        file,
        path,
        start,
        len,
    } = *target;
    let err = |offset: u64, e: std::io::Error| Error::at(path, "output", offset, ErrorKind::Io(e));
    check_write_capacity(len)?;
    let l = Layout::new(len, descriptor.is_some());
    let sector_u32 = |s: u64| sector_u32(path, s);
    write_head(file, path, &l, descriptor)?;

    let mut table = vec![0u32; GTES_PER_GT as usize];
    let mut current: Option<u64> = None;
    let mut next = l.over_head;
    let mut allocated = 0u64;
    let write_table = |t: u64, table: &mut Vec<u32>| -> Result<()> {
        for first in [l.rgt0, l.gt0] {
            let at = (first + t * l.gt_sectors) * SECTOR_SIZE;
            write_all_at(file, table.as_bytes(), at).map_err(|e| err(at, e))?;
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
        write_all_at(file, &grain, next * SECTOR_SIZE).map_err(|e| err(next * SECTOR_SIZE, e))?;
        next += GRAIN_SECTORS;
        allocated += 1;
        Ok(())
    };
    let walk = GrainWalk {
        start,
        len,
        grain_bytes,
        threads,
        batch,
        cancel,
    };
    walk_grains(disk, &walk, &work, &mut sink, progress)?;
    if let Some(prev) = current {
        write_table(prev, &mut table)?;
    }
    Ok(SparseStats {
        grains: allocated,
        bytes: next * SECTOR_SIZE,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::descriptor::{Access, CreateType, ExtentKind, ExtentLine};
    use crate::write::ddb::DiskSettings;
    use crate::{MemoryFiles, OpenOptions};

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Extents cut anywhere (not only at 2047 MiB) hold their part of the disk: two
        /// extents and a descriptor naming them read back as the source.
        #[test]
        fn extents_cut_anywhere_read_back(
            sectors in 1u64..2500,
            fill in prop::collection::vec((0u64..2500, 1u64..300, 1u8..255), 0..8),
            cut_at in 0u64..2500,
            threads in 1usize..4,
        ) {
            let mut raw = vec![0u8; sectors as usize * 512];
            for (at, len, byte) in fill {
                let start = (at % sectors) as usize * 512;
                let end = (start + len as usize * 512).min(raw.len());
                raw.get_mut(start..end).unwrap().fill(byte);
            }
            let mut files = MemoryFiles::new();
            files.insert("src.raw", raw.clone());
            let src = OpenOptions::new().files(files).open_raw("src.raw").unwrap();
            let dir = tempfile::tempdir().unwrap();
            let cut = (cut_at % sectors) * 512;
            let mut lines = Vec::new();
            for (i, (start, len)) in [(0, cut), (cut, raw.len() as u64 - cut)].into_iter().enumerate() {
                if len == 0 {
                    continue;
                }
                let name = format!("s{i}.vmdk");
                let p = dir.path().join(&name);
                let f = std::fs::File::create_new(&p).unwrap();
                let target = Target { file: &f, path: &p, start, len };
                write_sparse_extent(&src, &target, None, threads, None, &|_| {}).unwrap();
                lines.push(ExtentLine { access: Access::ReadWrite, sectors: len / 512, kind: ExtentKind::Sparse, file_name: Some(name), offset: 0 });
            }
            let desc = DiskSettings::new(raw.len() as u64).descriptor(&CreateType::TwoGbMaxExtentSparse, lines);
            std::fs::write(dir.path().join("split.vmdk"), desc.print()).unwrap();
            let back = crate::Disk::open(dir.path().join("split.vmdk")).unwrap();
            let mut buf = vec![0u8; raw.len()];
            back.read_exact_at(0, &mut buf).unwrap();
            prop_assert_eq!(buf, raw);
        }
    }

    #[test]
    fn refuses_disks_over_64_tib() {
        let mut files = MemoryFiles::new();
        files.insert(
            "d.vmdk",
            b"createType=\"custom\"\nRW 36028797018963967 ZERO\n".to_vec(),
        );
        let disk = OpenOptions::new().files(files).open("d.vmdk").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.vmdk");
        let f = std::fs::File::create(&p).unwrap();
        let t = Target {
            file: &f,
            path: &p,
            start: 0,
            len: disk.capacity(),
        };
        assert!(write_sparse_extent(&disk, &t, None, 1, None, &|_| {}).is_err());
    }
}
