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

use std::io::Write;

use zerocopy::little_endian::{U32, U64};
use zerocopy::IntoBytes;

use super::geometry::{
    check_write_capacity, written_header, DESCRIPTOR_SECTORS, GRAIN_SECTORS, GTES_PER_GT,
};
use super::options::WriteOptions;
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

/// The output, with the count of bytes written so far, and the tables being filled.
struct StreamWriter<'a, W: Write> {
    out: &'a mut W,
    pos: u64,
    directory: Vec<u32>,
    table: Vec<u32>,
    current: Option<u64>,
    grains: u64,
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
pub(crate) fn write_stream<W: Write>(
    disk: &Disk,
    descriptor: &Descriptor,
    out: &mut W,
    options: &WriteOptions,
    progress: &(dyn Fn(u64) + Sync),
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
    };
    w.put(stream_header(capacity, H::GD_AT_END).as_bytes())?;
    w.put(text.as_bytes())?;
    w.put(&vec![0u8; (reserved - text.len() as u64) as usize])?;
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
        start: 0,
        len: capacity_bytes,
        grain_bytes,
        threads: options.threads,
        batch: options.batch,
        cancel: options.cancel.as_deref(),
    };
    walk_grains(
        disk,
        &walk,
        &work,
        &mut |g, packed| w.grain(g, &packed),
        progress,
    )?;
    w.finish(capacity)
}
