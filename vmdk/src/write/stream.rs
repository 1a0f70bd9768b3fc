//! Writing stream-optimized extents, the way VMware products write them for OVF.
//!
//! Spec: "Stream-Optimized Compressed" (pp. 11-13). The layout, in one forward pass with no
//! seeking (so it can go to a pipe or a tar member):
//!
//! ```text
//! header (version 3, flags 0x30001, gdOffset = GD_AT_END) | embedded descriptor (20 sectors)
//! | padding to sector 128 | grain marker + zlib grain ... | GT marker + grain table
//! | ... | GD marker + grain directory | footer marker + footer (header with gdOffset) | EOS
//! ```
//!
//! Grains are compressed as zlib streams (RFC 1950 wrapping around deflate, which VMware, qemu
//! and libvmdk read) on the grain walk's worker threads, a bounded number in flight, and
//! written in order. All-zero grains are left out; grain tables with no grain are left out too
//! (their directory entry is 0). qemu-img's own stream writer leaves out the footer and the
//! end-of-stream marker, which ESXi requires; this one writes both.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::time::{Duration, Instant};

use zerocopy::little_endian::{U32, U64};
use zerocopy::IntoBytes;

use super::geometry::{
    check_write_capacity, written_header, DESCRIPTOR_SECTORS, GRAIN_SECTORS, GTES_PER_GT,
};
use super::options::{Checkpoint, WriteOptions};
use super::walk::{walk_grains, GrainWalk};
use crate::codec::compress_grain;
use crate::descriptor::Descriptor;
use crate::disk::Disk;
use crate::error::{Error, ErrorKind, Feature, Result};
use crate::format::{GrainMarker, MetadataMarker, SparseExtentHeader as H, SECTOR_SIZE};

/// Sector of the first grain (VMware's exports start their grains here).
const FIRST_GRAIN_SECTOR: u64 = 128;

/// What a stream write produced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct StreamWritten {
    /// Grains written (not all-zero).
    pub grains: u64,
    /// Bytes of output.
    pub bytes: u64,
}

/// The header of a stream-optimized extent of `capacity` sectors.
fn stream_header(capacity: u64, gd_offset: u64) -> H {
    let mut h = written_header(capacity);
    h.version.set(3);
    h.flags
        .set(H::FLAG_VALID_NEWLINE_DETECTOR | H::FLAG_COMPRESSED | H::FLAG_MARKERS);
    h.descriptor_offset.set(1);
    h.descriptor_size.set(DESCRIPTOR_SECTORS);
    h.gd_offset.set(gd_offset);
    h.over_head.set(FIRST_GRAIN_SECTOR);
    h.compress_algorithm.set(H::COMPRESSION_DEFLATE);
    h
}

/// A stream write that records how far it got and may continue an earlier one: after a grain
/// table is written (at most twice a second), the output is flushed to its device with `sync`
/// and the checkpoint told the output's length. For a stream output that length, not a byte of
/// the disk, is what [`Checkpoint::resume_from`] gives back: [`resume_point`] reads the
/// output up to it to find where the disk continues.
pub(crate) struct Resumable<'a> {
    pub(crate) checkpoint: &'a dyn Checkpoint,
    pub(crate) sync: &'a dyn Fn() -> std::io::Result<()>,
    /// The least time between two checkpoints ([`CHECKPOINT_EVERY`]).
    pub(crate) every: Duration,
    /// Where the earlier run got to (`None`: the write starts at the beginning).
    pub(crate) from: Option<StreamResume>,
}

/// How often a stream write records a checkpoint at most.
pub(crate) const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// Where an interrupted stream write got to, read back from its output by [`resume_point`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct StreamResume {
    /// The output's length at the checkpoint: right after a grain table.
    pub(crate) pos: u64,
    /// The directory entries written so far: (table, sector of the table).
    pub(crate) directory: Vec<(u64, u32)>,
    /// The first byte of the disk whose grains are not written (a grain table's start).
    pub(crate) next: u64,
}

/// Reads the partial stream-optimized output `file` (a disk of `capacity` bytes) up to `pos`,
/// the length its checkpoint recorded: the header, then every grain and grain table marker,
/// which must end exactly at `pos` with a grain table. Each marker is checked against the
/// capacity and the order this writer writes them in; anything else is an error (the output
/// is not one this writer was writing).
pub(crate) fn resume_point(mut file: &File, pos: u64, capacity: u64) -> Result<StreamResume> {
    let table_bytes = GTES_PER_GT * GRAIN_SECTORS * SECTOR_SIZE;
    let bad = |at: u64, why: &str| Error::cannot_resume(None, "partial stream output", at, why);
    let io = |at: u64| {
        move |e: std::io::Error| {
            Error::new(None, "partial stream output", Some(at), ErrorKind::Io(e))
        }
    };
    let mut head = [0u8; 512];
    file.seek(SeekFrom::Start(0)).map_err(io(0))?;
    file.read_exact(&mut head).map_err(io(0))?;
    let expected = stream_header(capacity.div_ceil(SECTOR_SIZE), H::GD_AT_END);
    if head != *expected.as_bytes() {
        return Err(bad(
            0,
            "its header is not the one this disk's stream output starts with",
        ));
    }
    let mut at = FIRST_GRAIN_SECTOR * SECTOR_SIZE;
    let (mut table, mut directory, mut after_table) = (None::<u64>, Vec::new(), false);
    while at < pos {
        let mut marker = [0u8; 16];
        file.seek(SeekFrom::Start(at)).map_err(io(at))?;
        file.read_exact(&mut marker).map_err(io(at))?;
        let (lba, rest) = marker.split_at(8);
        let (size, kind) = rest.split_at(4);
        let lba = u64::from_le_bytes(lba.try_into().unwrap_or_default());
        let size = u64::from(u32::from_le_bytes(size.try_into().unwrap_or_default()));
        let kind = u32::from_le_bytes(kind.try_into().unwrap_or_default());
        if size > 0 {
            let offset = lba.checked_mul(SECTOR_SIZE).filter(|&o| o < capacity);
            let t = offset.map(|o| o / table_bytes);
            if t.is_none() || t < table || (t == table && after_table) {
                return Err(bad(at, "a grain out of this writer's order"));
            }
            table = t;
            after_table = false;
            at = at
                .checked_add((GrainMarker::SIZE + size).div_ceil(SECTOR_SIZE) * SECTOR_SIZE)
                .ok_or_else(|| bad(at, "a grain past the end"))?;
        } else {
            let t = table.filter(|_| kind == MetadataMarker::GT && !after_table);
            let Some(t) = t.filter(|_| lba == GTES_PER_GT * 4 / SECTOR_SIZE) else {
                return Err(bad(
                    at,
                    "metadata that is not the grain table of the grains before it",
                ));
            };
            let sector = u32::try_from(at / SECTOR_SIZE + 1).map_err(|_| bad(at, "too far"))?;
            directory.push((t, sector));
            after_table = true;
            at += SECTOR_SIZE * (1 + lba);
        }
    }
    if at != pos || !after_table {
        return Err(bad(
            at,
            "its checkpoint does not fall right after a grain table",
        ));
    }
    let next = table.map_or(0, |t| (t + 1) * table_bytes).min(capacity);
    Ok(StreamResume {
        pos,
        directory,
        next,
    })
}

/// The output, with the count of bytes written so far, and the tables being filled.
struct StreamWriter<'a, W: Write> {
    out: &'a mut W,
    pos: u64,
    directory: Vec<u32>,
    table: Vec<u32>,
    current: Option<u64>,
    grains: u64,
    /// Where the write records how far it got, and when it last did.
    resumable: Option<(&'a Resumable<'a>, Instant)>,
}

impl<W: Write> StreamWriter<'_, W> {
    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.out
            .write_all(bytes)
            .map_err(|e| Error::new(None, "output", Some(self.pos), ErrorKind::Io(e)))?;
        self.pos += bytes.len() as u64;
        Ok(())
    }

    /// Zeros up to the next sector boundary.
    fn pad(&mut self) -> Result<()> {
        let rem = (self.pos % SECTOR_SIZE) as usize;
        if rem != 0 {
            let zeros = [0u8; SECTOR_SIZE as usize];
            self.put(zeros.split_at(rem.min(zeros.len())).1)?;
        }
        Ok(())
    }

    /// The current sector, as a grain table or directory entry.
    fn sector(&self) -> Result<u32> {
        u32::try_from(self.pos / SECTOR_SIZE).map_err(|_| {
            Error::new(
                None,
                "output",
                Some(self.pos),
                ErrorKind::Unsupported(Feature::SectorsBeyond2TiB),
            )
        })
    }

    /// Writes the grain table being filled (behind its marker) and records it in the
    /// directory.
    fn flush_table(&mut self) -> Result<()> {
        let Some(t) = self.current.take() else {
            return Ok(());
        };
        self.put(
            MetadataMarker::new(GTES_PER_GT * 4 / SECTOR_SIZE, MetadataMarker::GT).as_bytes(),
        )?;
        let at = self.sector()?;
        if let Some(e) = self.directory.get_mut(t as usize) {
            *e = at;
        }
        let table = std::mem::take(&mut self.table);
        self.put(table.as_bytes())?;
        self.table = table;
        self.table.fill(0);
        self.tell()
    }

    /// Flushes the output to its device and tells the checkpoint its length, at most twice a
    /// second (right after a grain table: [`resume_point`] continues from there).
    fn tell(&mut self) -> Result<()> {
        let Some((r, told)) = &mut self.resumable else {
            return Ok(());
        };
        if told.elapsed() < r.every {
            return Ok(());
        }
        let io = |e| Error::new(None, "output", Some(self.pos), ErrorKind::Io(e));
        self.out.flush().map_err(io)?;
        (r.sync)().map_err(io)?;
        r.checkpoint.reached(self.pos)?;
        *told = Instant::now();
        Ok(())
    }

    /// Writes grain `g` (compressed) behind its marker, recording it in its grain table.
    fn grain(&mut self, g: u64, packed: &[u8]) -> Result<()> {
        let t = g / GTES_PER_GT;
        if self.current != Some(t) {
            self.flush_table()?;
            self.current = Some(t);
        }
        let at = self.sector()?;
        if let Some(e) = self.table.get_mut((g % GTES_PER_GT) as usize) {
            *e = at;
        }
        let marker = GrainMarker {
            lba: U64::new(g * GRAIN_SECTORS),
            size: U32::new(packed.len() as u32),
        };
        self.put(marker.as_bytes())?;
        self.put(packed)?;
        self.pad()?;
        self.grains += 1;
        Ok(())
    }

    /// Writes the last grain table, the directory, the footer and the end-of-stream marker.
    fn finish(mut self, capacity: u64) -> Result<StreamWritten> {
        self.flush_table()?;
        let gd_sectors = (self.directory.len() as u64 * 4)
            .div_ceil(SECTOR_SIZE)
            .max(1);
        self.put(MetadataMarker::new(gd_sectors, MetadataMarker::GD).as_bytes())?;
        let gd_at = self.pos / SECTOR_SIZE;
        let directory = std::mem::take(&mut self.directory);
        self.put(directory.as_bytes())?;
        self.pad()?;
        if directory.is_empty() {
            self.put(&[0u8; SECTOR_SIZE as usize])?;
        }
        self.put(MetadataMarker::new(1, MetadataMarker::FOOTER).as_bytes())?;
        self.put(stream_header(capacity, gd_at).as_bytes())?;
        self.put(MetadataMarker::new(0, MetadataMarker::EOS).as_bytes())?;
        self.out
            .flush()
            .map_err(|e| Error::new(None, "output", Some(self.pos), ErrorKind::Io(e)))?;
        Ok(StreamWritten {
            grains: self.grains,
            bytes: self.pos,
        })
    }
}

/// Writes `disk` as a stream-optimized extent whose embedded descriptor is `descriptor` to
/// `out`, in one forward pass. `progress` receives byte counts of the disk as batches finish.
/// With `resumable`, checkpoints are recorded, and with its `from` the write continues an
/// earlier one whose output `out` extends (positioned at its `pos`).
pub(crate) fn write_stream<W: Write>(
    disk: &Disk,
    descriptor: &Descriptor,
    out: &mut W,
    options: &WriteOptions,
    progress: &(dyn Fn(u64) + Sync),
    resumable: Option<&Resumable<'_>>,
) -> Result<StreamWritten> {
    let capacity_bytes = disk.capacity();
    check_write_capacity(capacity_bytes)?;
    let capacity = capacity_bytes.div_ceil(SECTOR_SIZE);
    let text = descriptor.print();
    let reserved = (FIRST_GRAIN_SECTOR - 1) * SECTOR_SIZE;
    if text.len() as u64 > DESCRIPTOR_SECTORS * SECTOR_SIZE {
        return Err(Error::new(
            None,
            "embedded descriptor",
            Some(SECTOR_SIZE),
            ErrorKind::InvalidInput("descriptor longer than 20 sectors".into()),
        ));
    }
    let tables = capacity.div_ceil(GRAIN_SECTORS).div_ceil(GTES_PER_GT);
    let mut w = StreamWriter {
        out,
        pos: 0,
        // At most 2^21 entries (8 MiB): the capacity was checked against 64 TiB.
        directory: vec![0u32; usize::try_from(tables).unwrap_or(0)],
        table: vec![0u32; GTES_PER_GT as usize],
        current: None,
        grains: 0,
        resumable: resumable.map(|r| (r, Instant::now())),
    };
    let start = match resumable.and_then(|r| r.from.as_ref()) {
        Some(from) => {
            w.pos = from.pos;
            for &(t, sector) in &from.directory {
                if let Some(e) = usize::try_from(t).ok().and_then(|t| w.directory.get_mut(t)) {
                    *e = sector;
                }
            }
            progress(from.next);
            from.next
        }
        None => {
            w.put(stream_header(capacity, H::GD_AT_END).as_bytes())?;
            w.put(text.as_bytes())?;
            w.put(&vec![0u8; (reserved - text.len() as u64) as usize])?;
            0
        }
    };
    let grain_bytes = GRAIN_SECTORS * SECTOR_SIZE;
    let level = options.level;
    let work = move |_g: u64, data: &[u8]| -> Result<Vec<u8>> {
        let packed = if data.len() as u64 == grain_bytes {
            compress_grain(level, data)
        } else {
            // The last grain of a capacity that is not a grain multiple is compressed whole.
            let mut grain = data.to_vec();
            grain.resize(grain_bytes as usize, 0);
            compress_grain(level, &grain)
        };
        packed.map_err(|e| Error::new(None, "compressed grain", None, ErrorKind::Decompress(e)))
    };
    let walk = GrainWalk {
        start,
        len: capacity_bytes - start,
        grain_bytes,
        threads: options.threads,
        batch: options.batch,
        cancel: options.cancel.as_deref(),
    };
    walk_grains(
        disk,
        &walk,
        &work,
        &mut |g, packed| w.grain(g + start / grain_bytes, &packed),
        progress,
    )?;
    w.finish(capacity)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::write::resume_tests::{tables_apart, Recorder};

    /// Writes `disk` as a stream into `file` from where `checkpoint` says (read back by
    /// [`resume_point`]), recording every grain table's end.
    fn write(disk: &Disk, file: &File, checkpoint: &Recorder) -> Result<()> {
        let from = match checkpoint.from {
            0 => None,
            pos => Some(resume_point(file, pos, disk.capacity())?),
        };
        let start = from.as_ref().map_or(0, |f| f.pos);
        file.set_len(start).unwrap();
        let mut out = file;
        out.seek(SeekFrom::Start(start)).unwrap();
        let sync = || Ok(());
        let r = Resumable {
            checkpoint,
            sync: &sync,
            every: Duration::ZERO,
            from,
        };
        let descriptor = Descriptor::parse("createType=\"streamOptimized\"\n").unwrap();
        let options = WriteOptions::new().threads(2);
        write_stream(disk, &descriptor, &mut out, &options, &|_| {}, Some(&r))?;
        Ok(())
    }

    /// A stream write continued from each of its checkpoints (the output cut there, and some
    /// garbage past it) ends with the uninterrupted write's bytes; a checkpoint that falls
    /// inside a grain, or a damaged marker, is refused.
    #[test]
    fn a_stream_write_continues_from_each_checkpoint_to_the_same_bytes() {
        let disk = tables_apart();
        let capacity = disk.capacity();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("whole.vmdk");
        let whole = Recorder::default();
        write(&disk, &File::create(&path).unwrap(), &whole).unwrap();
        let want = std::fs::read(&path).unwrap();
        let told = whole.told();
        // One checkpoint after each grain table written (tables 0, 2 and 4; the last by the
        // finish, before the directory).
        assert_eq!(told.len(), 3, "{told:?}");
        for &pos in &told {
            let part = dir.path().join("part.vmdk");
            let mut cut = want[..pos as usize].to_vec();
            cut.extend_from_slice(b"garbage a killed run left past its checkpoint");
            std::fs::write(&part, &cut).unwrap();
            let file = File::options().read(true).write(true).open(&part).unwrap();
            let point = resume_point(&file, pos, capacity).unwrap();
            assert!(
                point.next % (32 << 20) == 0 || point.next == capacity,
                "{point:?}"
            );
            write(&disk, &file, &Recorder::from(pos)).unwrap();
            assert!(std::fs::read(&part).unwrap() == want, "resumed at {pos}");
        }
        // Not at a grain table's end, or a marker damaged: refused.
        let part = dir.path().join("bad.vmdk");
        std::fs::write(&part, &want).unwrap();
        let file = File::open(&part).unwrap();
        let e = resume_point(&file, told[0] - 512, capacity).unwrap_err();
        assert!(e.to_string().contains("cannot resume"), "{e}");
        let mut bad = want.clone();
        bad[128 * 512..128 * 512 + 8].fill(0xff);
        std::fs::write(&part, &bad).unwrap();
        let e = resume_point(&File::open(&part).unwrap(), told[0], capacity).unwrap_err();
        assert!(e.to_string().contains("out of this writer's order"), "{e}");
        // Another disk's output (another capacity) is refused by its header.
        let e = resume_point(&File::open(&part).unwrap(), told[0], capacity + 512).unwrap_err();
        assert!(e.to_string().contains("its header"), "{e}");
    }
}
