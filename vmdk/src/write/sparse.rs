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
use std::time::{Duration, Instant};

use zerocopy::IntoBytes;

use super::copy::{write_all_at, Target};
use super::geometry::{
    check_write_capacity, written_header, DESCRIPTOR_SECTORS, GRAIN_SECTORS, GTES_PER_GT,
};
use super::options::Checkpoint;
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
    // Emptied first: what an interrupted run left in a split disk's next extent goes.
    file.set_len(0).map_err(|e| err(0, e))?;
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

/// A sparse extent write that records how far it got and may continue an earlier one: after
/// a grain table is written (at most once per `every`), the file is flushed to its device and
/// the checkpoint told the bytes of the extent whose grains are all written (a grain table's
/// end); [`Checkpoint::resume_from`] gives that back to a later write, which reads the tables
/// written so far ([`resume_state`]) and continues with the next.
pub(crate) struct SparseResumable<'a> {
    pub(crate) checkpoint: &'a dyn Checkpoint,
    pub(crate) every: Duration,
}

/// The checkpoint of one extent of a split disk (twoGbMaxExtentSparse), the bytes
/// `start..start + len` of the disk: the disk's checkpoint, told and read in the extent's bytes.
/// The extents are written one after the other, so the disk's bytes below a checkpoint are
/// every earlier extent whole and this one up to there: a later run finds the earlier extents
/// complete (read back whole), continues this one, and starts the next ones afresh.
#[derive(Debug)]
pub(crate) struct ExtentCheckpoint<'a> {
    pub(crate) disk: &'a dyn Checkpoint,
    pub(crate) start: u64,
    pub(crate) len: u64,
}

impl Checkpoint for ExtentCheckpoint<'_> {
    fn resume_from(&self) -> u64 {
        self.disk
            .resume_from()
            .saturating_sub(self.start)
            .min(self.len)
    }

    fn reached(&self, done: u64) -> Result<()> {
        self.disk.reached(self.start.saturating_add(done))
    }
}

/// How often a sparse extent write records a checkpoint at most.
#[cfg(not(test))]
pub(crate) const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);
/// In unit tests, after every table, so resumes from each one are tested.
#[cfg(test)]
pub(crate) const CHECKPOINT_EVERY: Duration = Duration::ZERO;

/// Where an interrupted write of the extent laid out as `l` in `file` got to, given the bytes
/// of the extent its checkpoint says are written (`done`): the first table not written, the
/// next free sector and the grains allocated. The header must be the one this layout writes
/// and every entry of the tables written must point at a whole grain of the file, where this
/// writer puts grains; anything else is an error (the file is not the one being written).
fn resume_state(file: &File, path: &Path, l: &Layout, done: u64) -> Result<(u64, u64, u64)> {
    use std::os::unix::fs::FileExt;
    let bad =
        |at: u64, why: &str| Error::cannot_resume(Some(path), "partial sparse output", at, why);
    let io = |at: u64| move |e| Error::at(path, "partial sparse output", at, ErrorKind::Io(e));
    let table_bytes = GTES_PER_GT * GRAIN_SECTORS * SECTOR_SIZE;
    let tables = match done >= l.capacity * SECTOR_SIZE {
        true => l.tables,
        false if done % table_bytes == 0 => done / table_bytes,
        false => return Err(bad(0, "its checkpoint is not at a grain table's end")),
    };
    let mut head = [0u8; 512];
    file.read_exact_at(&mut head, 0).map_err(io(0))?;
    if head != *l.header().as_bytes() {
        return Err(bad(
            0,
            "its header is not the one this disk's output starts with",
        ));
    }
    let file_sectors = file.metadata().map_err(io(0))?.len() / SECTOR_SIZE;
    let (mut next, mut allocated) = (l.over_head, 0);
    let mut table = vec![0u32; GTES_PER_GT as usize];
    for t in 0..tables {
        let at = (l.gt0 + t * l.gt_sectors) * SECTOR_SIZE;
        file.read_exact_at(table.as_mut_bytes(), at)
            .map_err(io(at))?;
        for &e in table.iter().filter(|&&e| e != 0) {
            let e = u64::from(e);
            let placed = e >= l.over_head && (e - l.over_head) % GRAIN_SECTORS == 0;
            if !placed || e + GRAIN_SECTORS > file_sectors {
                return Err(bad(
                    at,
                    "a grain table entry where this writer puts no grain",
                ));
            }
            next = next.max(e + GRAIN_SECTORS);
            allocated += 1;
        }
    }
    Ok((tables, next, allocated))
}

/// The start of a sparse extent write: the metadata before the grains when nothing is
/// `done`, else where the interrupted write got to ([`resume_state`]), the file cut after its
/// last grain (grains of the table under way when it stopped are written again). The first
/// table to write, the next free sector, and the grains allocated.
fn start_or_resume(
    file: &File,
    path: &Path,
    l: &Layout,
    descriptor: Option<&Descriptor>,
    done: u64,
) -> Result<(u64, u64, u64)> {
    if done == 0 {
        write_head(file, path, l, descriptor)?;
        return Ok((0, l.over_head, 0));
    }
    let state = resume_state(file, path, l, done)?;
    file.set_len(state.1 * SECTOR_SIZE)
        .map_err(|e| Error::at(path, "output", 0, ErrorKind::Io(e)))?;
    Ok(state)
}

/// Writes the bytes of `disk` that `target` holds as one hosted sparse extent into its file
/// (empty), with `descriptor` embedded if given. `threads` read and zero-scan grains in parallel.
/// With `resumable`, checkpoints are recorded, and a write whose checkpoint says an earlier
/// one got somewhere continues it in the file.
pub(crate) fn write_sparse_extent(
    disk: &Disk,
    target: &Target<'_>,
    descriptor: Option<&Descriptor>,
    threads: usize,
    cancel: Option<&std::sync::atomic::AtomicBool>,
    progress: &(dyn Fn(u64) + Sync),
    resumable: Option<&SparseResumable<'_>>,
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
    let table_bytes = GTES_PER_GT * GRAIN_SECTORS * SECTOR_SIZE;
    let done = resumable.map_or(0, |r| r.checkpoint.resume_from());
    let (first_table, mut next, mut allocated) = start_or_resume(file, path, &l, descriptor, done)?;
    // The part of the extent written before: skipped, and counted as done.
    let skipped = (first_table * table_bytes).min(len);
    if skipped > 0 {
        progress(skipped);
    }

    let mut table = vec![0u32; GTES_PER_GT as usize];
    let mut current: Option<u64> = None;
    let mut told = Instant::now();
    let mut write_table = |t: u64, table: &mut Vec<u32>| -> Result<()> {
        for first in [l.rgt0, l.gt0] {
            let at = (first + t * l.gt_sectors) * SECTOR_SIZE;
            write_all_at(file, table.as_bytes(), at).map_err(|e| err(at, e))?;
        }
        table.fill(0);
        match resumable {
            Some(r) if told.elapsed() >= r.every => {
                file.sync_data().map_err(|e| err(0, e))?;
                r.checkpoint.reached(((t + 1) * table_bytes).min(len))?;
                told = Instant::now();
            }
            _ => {}
        }
        Ok(())
    };
    let grain_bytes = GRAIN_SECTORS * SECTOR_SIZE;
    let first_grain = skipped / grain_bytes;
    let work = |_g: u64, data: &[u8]| -> Result<Vec<u8>> {
        let mut grain = data.to_vec();
        grain.resize(grain_bytes as usize, 0);
        Ok(grain)
    };
    let mut sink = |g: u64, grain: Vec<u8>| -> Result<()> {
        let g = g + first_grain;
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
        start: start + skipped,
        len: len - skipped,
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
    use crate::write::resume_tests::{tables_apart, Recorder};
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
                write_sparse_extent(&src, &target, None, threads, None, &|_| {}, None).unwrap();
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
        assert!(write_sparse_extent(&disk, &t, None, 1, None, &|_| {}, None).is_err());
    }

    /// A monolithicSparse write continued from each of its checkpoints (the grains past it
    /// written again) ends with the uninterrupted write's bytes; a table entry where this
    /// writer puts no grain, or a checkpoint inside a table, is refused.
    #[test]
    fn a_sparse_write_continues_from_each_checkpoint_to_the_same_bytes() {
        let disk = tables_apart();
        let capacity = disk.capacity();
        let dir = tempfile::tempdir().unwrap();
        let descriptor = Descriptor::parse("createType=\"monolithicSparse\"\n").unwrap();
        let write = |path: &Path, checkpoint: &Recorder| {
            let file = File::options()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .unwrap();
            let target = Target {
                file: &file,
                path,
                start: 0,
                len: capacity,
            };
            let r = SparseResumable {
                checkpoint,
                every: Duration::ZERO,
            };
            write_sparse_extent(
                &disk,
                &target,
                Some(&descriptor),
                2,
                None,
                &|_| {},
                Some(&r),
            )
        };
        let whole = dir.path().join("whole.vmdk");
        let first = Recorder::default();
        write(&whole, &first).unwrap();
        let want = std::fs::read(&whole).unwrap();
        let told = first.told();
        // Tables 0, 2 and 4 have grains: a checkpoint after each.
        assert_eq!(told, [32 << 20, 96 << 20, capacity], "{told:?}");
        for &done in &told {
            // What a run killed right after this checkpoint may have left: the whole file
            // (every later grain and table too), which the resume cuts and writes again.
            let part = dir.path().join("part.vmdk");
            std::fs::write(&part, &want).unwrap();
            write(&part, &Recorder::from(done)).unwrap();
            assert!(std::fs::read(&part).unwrap() == want, "resumed at {done}");
        }
        let part = dir.path().join("bad.vmdk");
        let l = Layout::new(capacity, true);
        let mut bad = want.clone();
        let entry = (l.gt0 * SECTOR_SIZE) as usize;
        bad[entry..entry + 4].copy_from_slice(&7u32.to_le_bytes());
        std::fs::write(&part, &bad).unwrap();
        let e = write(&part, &Recorder::from(told[0])).unwrap_err();
        assert!(
            e.to_string().contains("where this writer puts no grain"),
            "{e}"
        );
        std::fs::write(&part, &want).unwrap();
        let e = write(&part, &Recorder::from(1 << 20)).unwrap_err();
        assert!(e.to_string().contains("not at a grain table's end"), "{e}");
    }
}
