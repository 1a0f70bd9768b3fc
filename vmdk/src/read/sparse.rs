//! The seekable reader of hosted sparse extents (`KDMV`, versions 1 to 3), plain and
//! stream-optimized.
//!
//! Spec: "Hosted Sparse Extents" (pp. 6-9) and "Stream-Optimized Compressed" (pp. 11-13).
//! Supported: the grain directory and grain tables, unallocated (GTE 0) and zeroed-grain (GTE 1)
//! entries, any power-of-two grain size from 8 to 16384 sectors (4 KiB to 8 MiB), any number of
//! entries per grain table from 1 to 4096, capacities that are not a multiple of the grain,
//! compressed grains (deflate, zlib-wrapped as VMware and qemu write them, or raw) with or
//! without grain markers, and both stream-optimized layouts: the grain directory in the header
//! area (`gdOffset` a real sector, as qemu-img writes it) and `gdOffset = GD_AT_END` with the
//! directory found through the footer at the end of the file (as VMware writes it). When a
//! footer is present it takes precedence over the header, as the spec says.
//!
//! Refused with a clear error: what the header check refuses ([`super::header`]), grain
//! directories, grain tables and grains outside the file or over the header, the embedded
//! descriptor or a directory. Only the grain directory is held in memory (4 bytes per 32 MiB of
//! capacity with the default geometry, and never more than the file holds); grain tables are
//! read when needed.

use std::path::Path;

use zerocopy::little_endian::U32;
use zerocopy::FromBytes;

use super::grains::{overlapping, refuse_reserved, GrainEntry, Grains, Reserved};
use super::header::{parse_header, Geometry};
use crate::codec::{inflate, inflate_until_end, max_compressed_grain};
use crate::descriptor::Descriptor;
use crate::error::{Error, ErrorKind, Result};
use crate::format::{
    GrainMarker, MetadataMarker, SparseExtentHeader, GTE_UNALLOCATED, GTE_ZEROED, SECTOR_SIZE,
};
use crate::io::Backing;

/// Where the metadata of a sparse extent was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum MetadataSource {
    /// The header at sector 0.
    Header,
    /// The footer before the end-of-stream marker (stream-optimized, VMware layout).
    Footer,
}

/// An open hosted sparse extent.
#[derive(Debug)]
pub struct SparseExtent {
    backing: Backing,
    header: SparseExtentHeader,
    source: MetadataSource,
    geometry: Geometry,
    grain_directory: Vec<u32>,
    descriptor: Option<Descriptor>,
    /// The header, the embedded descriptor, the grain directory and its redundant copy.
    reserved: Vec<Reserved>,
}

const HEADER: &str = "sparse header";
const FOOTER: &str = "footer";

fn read_header(backing: &Backing, structure: &'static str, at: u64) -> Result<SparseExtentHeader> {
    let mut buf = [0u8; 512];
    backing.read_exact_at(structure, at, &mut buf)?;
    parse_header(&buf, backing.path(), structure, at)
}

fn read_metadata_marker(backing: &Backing, at: u64) -> Result<MetadataMarker> {
    let mut buf = [0u8; 512];
    backing.read_exact_at("metadata marker", at, &mut buf)?;
    MetadataMarker::read_from_bytes(&buf[..]).map_err(|_| {
        Error::at(
            backing.path(),
            "metadata marker",
            at,
            ErrorKind::Inconsistent("short marker".into()),
        )
    })
}

/// A table of little-endian `u32` entries read from `bytes` (a grain directory or table).
fn entries(bytes: &[u8], path: &Path, structure: &'static str, at: u64) -> Result<Vec<u32>> {
    let table = <[U32]>::ref_from_bytes(bytes).map_err(|_| {
        Error::at(
            path,
            structure,
            at,
            ErrorKind::Inconsistent(format!("misaligned {structure}")),
        )
    })?;
    Ok(table.iter().map(|e| e.get()).collect())
}

/// The header in effect and where it lies: the footer of a stream-optimized extent whose footer
/// marker and footer sit in front of the end-of-stream marker, else the header at sector 0.
fn header_in_effect(
    backing: &Backing,
    primary: SparseExtentHeader,
) -> Result<(SparseExtentHeader, MetadataSource, u64)> {
    let path = backing.path();
    let markers = primary.flags.get() & SparseExtentHeader::FLAG_MARKERS != 0;
    // A footer sits in the second-to-last sector, behind a footer marker and followed by the
    // end-of-stream marker.
    let footer_at = backing.len().checked_sub(1024).filter(|&at| at >= 1024);
    let Some(at) = footer_at.filter(|_| markers) else {
        return Ok((primary, MetadataSource::Header, 0));
    };
    let marker = read_metadata_marker(backing, at - 512)?;
    if marker.size.get() != 0 || marker.marker_type.get() != MetadataMarker::FOOTER {
        return Ok((primary, MetadataSource::Header, 0));
    }
    let footer = read_header(backing, FOOTER, at)?;
    if footer.gd_offset.get() == SparseExtentHeader::GD_AT_END {
        return Err(Error::field(
            path,
            FOOTER,
            at + SparseExtentHeader::AT_GD_OFFSET,
            "gdOffset",
            SparseExtentHeader::GD_AT_END,
            "the footer must give the grain directory's sector",
        ));
    }
    for (name, a, b) in [
        ("capacity", primary.capacity.get(), footer.capacity.get()),
        (
            "grainSize",
            primary.grain_size.get(),
            footer.grain_size.get(),
        ),
        (
            "numGTEsPerGT",
            primary.num_gtes_per_gt.get().into(),
            footer.num_gtes_per_gt.get().into(),
        ),
    ] {
        if a != b {
            return Err(Error::at(
                path,
                FOOTER,
                at,
                ErrorKind::Inconsistent(format!(
                    "{name} is {b:#x} in the footer but {a:#x} in the header"
                )),
            ));
        }
    }
    Ok((footer, MetadataSource::Footer, at))
}

impl SparseExtent {
    /// Opens the sparse extent in `backing`: reads and checks the header (and footer), the
    /// embedded descriptor if any, and the grain directory.
    pub fn open(backing: Backing) -> Result<Self> {
        let primary = read_header(&backing, HEADER, 0)?;
        let (header, source, header_at) = header_in_effect(&backing, primary)?;
        let structure = match source {
            MetadataSource::Header => HEADER,
            MetadataSource::Footer => FOOTER,
        };
        let geometry = header.validate(backing.path(), structure, header_at)?;
        let mut reserved = vec![Reserved {
            start: 0,
            end: SECTOR_SIZE,
            what: HEADER,
        }];
        // The embedded descriptor is always taken from the header at sector 0.
        let descriptor = match primary.embedded_descriptor(backing.path(), HEADER, 0)? {
            None => None,
            Some((at, len)) => {
                let bytes = backing.read_vec("embedded descriptor", at, len)?;
                reserved.push(Reserved {
                    start: at,
                    end: at + len,
                    what: "embedded descriptor",
                });
                let d = Descriptor::parse_bytes(&bytes)
                    .map_err(|kind| Error::at(backing.path(), "embedded descriptor", at, kind))?;
                Some(d)
            }
        };
        let grain_directory = Self::read_directory(
            &backing,
            &header,
            &geometry,
            structure,
            header_at,
            &mut reserved,
        )?;
        if geometry.flags & SparseExtentHeader::FLAG_USE_REDUNDANT != 0
            && source == MetadataSource::Header
        {
            let rgd = header.rgd_offset.get();
            let rgd_at = rgd.checked_mul(SECTOR_SIZE).ok_or_else(|| {
                Error::field(
                    backing.path(),
                    structure,
                    header_at + SparseExtentHeader::AT_RGD_OFFSET,
                    "rgdOffset",
                    rgd,
                    "past any file",
                )
            })?;
            let len = geometry.directory_entries() * 4;
            backing.check_range("redundant grain directory", rgd_at, len)?;
            reserved.push(Reserved {
                start: rgd_at,
                end: rgd_at + len,
                what: "redundant grain directory",
            });
        }
        Ok(Self {
            backing,
            header,
            source,
            geometry,
            grain_directory,
            descriptor,
            reserved,
        })
    }

    /// Reads the grain directory the header names: inside the file (checked before anything is
    /// allocated, so its size follows the file, not the header) and clear of `reserved`.
    fn read_directory(
        backing: &Backing,
        header: &SparseExtentHeader,
        geometry: &Geometry,
        structure: &'static str,
        header_at: u64,
        reserved: &mut Vec<Reserved>,
    ) -> Result<Vec<u32>> {
        let path = backing.path();
        let gd_sector = header.gd_offset.get();
        let field_at = header_at + SparseExtentHeader::AT_GD_OFFSET;
        if gd_sector == SparseExtentHeader::GD_AT_END {
            return Err(Error::at(
                path,
                HEADER,
                SparseExtentHeader::AT_GD_OFFSET,
                ErrorKind::CutShort(format!(
                    "a stream-optimized extent of {} bytes (capacity {} bytes) whose gdOffset is \
                     GD_AT_END, but the file does not end with the footer and end-of-stream \
                     marker such an extent ends with",
                    backing.len(),
                    header.capacity.get().saturating_mul(SECTOR_SIZE)
                )),
            ));
        }
        let bad = |reason| Error::field(path, structure, field_at, "gdOffset", gd_sector, reason);
        let gd_at = gd_sector
            .checked_mul(SECTOR_SIZE)
            .ok_or_else(|| bad("past any file"))?;
        let entries_count = geometry.directory_entries();
        if gd_sector == 0 && entries_count > 0 {
            return Err(bad("the grain directory cannot be at sector 0"));
        }
        let gd_bytes = backing.read_vec("grain directory", gd_at, entries_count * 4)?;
        let gd_end = gd_at + entries_count * 4;
        if let Some(r) = overlapping(reserved, gd_at, gd_end) {
            return Err(Error::at(
                path,
                "grain directory",
                gd_at,
                ErrorKind::Inconsistent(format!(
                    "overlaps the {}, which ends at {:#x}",
                    r.what, r.end
                )),
            ));
        }
        reserved.push(Reserved {
            start: gd_at,
            end: gd_end,
            what: "grain directory",
        });
        entries(&gd_bytes, path, "grain directory", gd_at)
    }

    /// The header in effect (the footer's copy when there is one).
    pub fn header(&self) -> &SparseExtentHeader {
        &self.header
    }

    /// Where the metadata in effect was found.
    pub fn metadata_source(&self) -> MetadataSource {
        self.source
    }

    /// The file this extent lives in.
    pub fn backing(&self) -> &Backing {
        &self.backing
    }

    /// The embedded descriptor, if the header has one.
    pub fn descriptor(&self) -> Option<&Descriptor> {
        self.descriptor.as_ref()
    }

    /// Capacity in sectors.
    pub fn capacity_sectors(&self) -> u64 {
        self.geometry.capacity
    }

    /// Capacity in bytes.
    pub fn capacity_bytes(&self) -> u64 {
        self.geometry.capacity_bytes()
    }

    /// Grain size in bytes.
    pub fn grain_bytes(&self) -> u64 {
        self.geometry.grain_bytes()
    }

    /// Header version.
    pub fn version(&self) -> u32 {
        self.header.version.get()
    }

    /// Header flags.
    pub fn flags(&self) -> u32 {
        self.geometry.flags
    }

    /// Whether grains are compressed.
    pub fn is_compressed(&self) -> bool {
        self.geometry.is_compressed()
    }

    /// Whether blocks carry markers.
    pub fn has_markers(&self) -> bool {
        self.geometry.has_markers()
    }

    /// Number of grains (the last may be partial).
    pub fn grain_count(&self) -> u64 {
        self.geometry.grain_count()
    }

    /// The grain directory entries (sectors of grain tables, 0 where none).
    pub fn grain_directory(&self) -> &[u32] {
        &self.grain_directory
    }

    /// Reads the grain table behind directory entry `index`: `None` when the entry is 0.
    pub fn grain_table(&self, index: usize) -> Result<Option<Vec<u32>>> {
        let sector = match self.grain_directory.get(index) {
            Some(0) | None => return Ok(None),
            Some(&s) => u64::from(s),
        };
        let at = sector * SECTOR_SIZE;
        let len = self.geometry.gtes_per_gt * 4;
        self.refuse_metadata("grain table", at, len)?;
        let bytes = self.backing.read_vec("grain table", at, len)?;
        entries(&bytes, self.backing.path(), "grain table", at).map(Some)
    }

    /// Refuses a grain table or grain at `at..at + len` that overlaps the header, the embedded
    /// descriptor or a grain directory: such an entry points into metadata (spec section
    /// "Hosted Sparse Extent": grain tables and grains lie apart from these structures).
    pub(crate) fn refuse_metadata(&self, structure: &'static str, at: u64, len: u64) -> Result<()> {
        refuse_reserved(&self.backing, &self.reserved, structure, at, len)
    }

    /// The entry for grain `g` of `table` (the grain table that holds it, `None` when absent).
    fn entry(&self, table: Option<&[u32]>, g: u64) -> GrainEntry {
        let Some(t) = table else {
            return GrainEntry::Unallocated;
        };
        let i = usize::try_from(g % self.geometry.gtes_per_gt).unwrap_or(usize::MAX);
        match t.get(i).copied().unwrap_or(GTE_UNALLOCATED) {
            GTE_UNALLOCATED => GrainEntry::Unallocated,
            GTE_ZEROED => GrainEntry::Zeroed,
            s => GrainEntry::Data(u64::from(s)),
        }
    }

    /// Calls `f(first_grain, table)` for each grain table covering grains `first..first + count`
    /// (clipped to the grain count) with the range of grains it covers there, reading each
    /// table once.
    fn for_each_table(
        &self,
        first: u64,
        count: u64,
        mut f: impl FnMut(u64, u64, Option<&[u32]>) -> Result<()>,
    ) -> Result<()> {
        super::grains::for_each_table(
            (first, count),
            (self.grain_count(), self.geometry.gtes_per_gt),
            |i| self.grain_table(i),
            |from, to, table: Option<&Vec<u32>>| f(from, to, table.map(Vec::as_slice)),
        )
    }

    /// Calls `f(grain_index, entry)` for `count` grains from `first`, reading each grain table once.
    pub fn for_each_grain(
        &self,
        first: u64,
        count: u64,
        mut f: impl FnMut(u64, GrainEntry) -> Result<()>,
    ) -> Result<()> {
        self.for_each_table(first, count, |from, to, table| {
            (from..to).try_for_each(|g| f(g, self.entry(table, g)))
        })
    }

    /// Calls `f(first_grain, count, kind)` for the runs of grains from `first` (`count` of them)
    /// whose entries are of one kind, in order, with `kind` `Data(0)` for any data grain. A
    /// grain table that is absent (directory entry 0) is one call whatever its size, so walking
    /// a range costs the grain tables present in it, not its capacity.
    pub(crate) fn for_each_run(
        &self,
        first: u64,
        count: u64,
        mut f: impl FnMut(u64, u64, GrainEntry) -> Result<()>,
    ) -> Result<()> {
        self.for_each_table(first, count, |from, to, table| {
            if table.is_none() {
                return f(from, to - from, GrainEntry::Unallocated);
            }
            super::grains::runs_in_table((from, to), |g| Ok(self.entry(table, g)), &mut f)
        })
    }

    /// Bytes of grain `grain` that lie inside the capacity (less than a grain for the last one
    /// of a capacity that is not a grain multiple).
    pub fn grain_len(&self, grain: u64) -> u64 {
        let start = grain.saturating_mul(self.grain_bytes());
        self.capacity_bytes()
            .saturating_sub(start)
            .min(self.grain_bytes())
    }

    /// Byte offset of a grain stored at `sector`.
    pub(crate) fn grain_offset(&self, grain: u64, sector: u64) -> Result<u64> {
        sector.checked_mul(SECTOR_SIZE).ok_or_else(|| {
            Error::new(
                Some(self.backing.path()),
                "grain table",
                None,
                ErrorKind::Inconsistent(format!(
                    "grain {grain} at sector {sector:#x} is past any file"
                )),
            )
        })
    }

    /// Reads the part of grain `grain` (stored at `sector`) inside the capacity into `out`,
    /// which must be `grain_len(grain)` bytes: decompresses it when the extent is compressed.
    pub fn read_grain(&self, grain: u64, sector: u64, out: &mut [u8]) -> Result<()> {
        self.read_grain_part(grain, sector, 0, out, &mut Vec::new())
    }

    /// Reads `out.len()` bytes from `within` bytes into grain `grain`, stored at `sector`.
    /// `scratch` is reused for decompression of partial grains.
    pub fn read_grain_part(
        &self,
        grain: u64,
        sector: u64,
        within: u64,
        out: &mut [u8],
        scratch: &mut Vec<u8>,
    ) -> Result<()> {
        let at = self.grain_offset(grain, sector)?;
        if !self.is_compressed() {
            self.refuse_metadata("grain", at, self.grain_bytes())?;
            return self.backing.read_exact_at("grain", at + within, out);
        }
        self.refuse_metadata("grain", at, SECTOR_SIZE)?;
        if within == 0 && out.len() as u64 == self.grain_bytes() {
            return self.inflate_grain(grain, at, out);
        }
        // Writers compress whole grains, the last one zero-padded past the capacity; a part of
        // a grain is inflated whole into scratch and copied.
        scratch.resize(usize::try_from(self.grain_bytes()).unwrap_or(0), 0);
        self.inflate_grain(grain, at, scratch)?;
        let start = usize::try_from(within).unwrap_or(usize::MAX);
        let src = start
            .checked_add(out.len())
            .and_then(|end| scratch.get(start..end))
            .ok_or_else(|| {
                Error::at(
                    self.backing.path(),
                    "grain",
                    at,
                    ErrorKind::InvalidInput("read past the end of a grain".into()),
                )
            })?;
        out.copy_from_slice(src);
        Ok(())
    }

    /// Where the compressed data of the grain stored at byte `at` lies, and its size: behind
    /// its grain marker (whose LBA must be the grain's), or, without markers, up to a bounded
    /// window (the stream's end is found while inflating).
    fn compressed_span(&self, grain: u64, at: u64) -> Result<(u64, u64)> {
        let path = self.backing.path();
        let max_compressed = max_compressed_grain(self.grain_bytes());
        if !self.has_markers() {
            return Ok((
                at,
                max_compressed.min(self.backing.len().saturating_sub(at)),
            ));
        }
        let mut m = [0u8; GrainMarker::SIZE as usize];
        self.backing.read_exact_at("grain marker", at, &mut m)?;
        let marker = GrainMarker::read_from_bytes(&m[..]).map_err(|_| {
            Error::at(
                path,
                "grain marker",
                at,
                ErrorKind::Inconsistent("short marker".into()),
            )
        })?;
        let lba = marker.lba.get();
        let expected = grain * self.geometry.grain_sectors;
        if lba != expected {
            return Err(Error::at(
                path,
                "grain marker",
                at,
                ErrorKind::Inconsistent(format!(
                    "marker LBA {lba:#x} but the grain table maps grain {grain} (LBA \
                        {expected:#x}) here"
                )),
            ));
        }
        let size = u64::from(marker.size.get());
        if size == 0 || size > max_compressed {
            return Err(Error::field(
                path,
                "grain marker",
                at + 8,
                "size",
                size,
                "not a plausible compressed grain size",
            ));
        }
        Ok((at + GrainMarker::SIZE, size))
    }

    /// Decompresses the grain stored at byte `at` into `out` (one whole grain). The grain must
    /// inflate to a whole grain, or for the last grain of the extent at least to the capacity.
    fn inflate_grain(&self, grain: u64, at: u64, out: &mut [u8]) -> Result<()> {
        let path = self.backing.path();
        let grain_bytes = self.grain_bytes();
        let (data_at, size) = self.compressed_span(grain, at)?;
        let input = self.backing.bytes_at("compressed grain", data_at, size)?;
        let n = if self.has_markers() {
            inflate(&input, out)
        } else {
            inflate_until_end(&input, out)
        }
        .map_err(|e| Error::at(path, "compressed grain", data_at, ErrorKind::Decompress(e)))?;
        let needed = self.grain_len(grain);
        if (n as u64) < needed || (needed == grain_bytes && n as u64 != grain_bytes) {
            return Err(Error::at(
                path,
                "compressed grain",
                data_at,
                ErrorKind::Decompress(format!("inflates to {n} bytes, expected {needed}")),
            ));
        }
        Ok(())
    }
}

impl Grains for SparseExtent {
    fn backing(&self) -> &Backing {
        &self.backing
    }

    fn capacity_sectors(&self) -> u64 {
        self.geometry.capacity
    }

    fn capacity_field(&self) -> (&'static str, u64) {
        (HEADER, SparseExtentHeader::AT_CAPACITY)
    }

    fn grain_bytes(&self) -> u64 {
        self.geometry.grain_bytes()
    }

    fn for_each_grain(
        &self,
        first: u64,
        count: u64,
        f: impl FnMut(u64, GrainEntry) -> Result<()>,
    ) -> Result<()> {
        SparseExtent::for_each_grain(self, first, count, f)
    }

    fn for_each_run(
        &self,
        first: u64,
        count: u64,
        f: impl FnMut(u64, u64, GrainEntry) -> Result<()>,
    ) -> Result<()> {
        SparseExtent::for_each_run(self, first, count, f)
    }

    fn is_compressed(&self) -> bool {
        self.geometry.is_compressed()
    }

    fn grain_offset(&self, grain: u64, sector: u64) -> Result<u64> {
        SparseExtent::grain_offset(self, grain, sector)
    }

    fn refuse_metadata(&self, structure: &'static str, at: u64, len: u64) -> Result<()> {
        SparseExtent::refuse_metadata(self, structure, at, len)
    }

    fn read_grain_part(
        &self,
        grain: u64,
        sector: u64,
        within: u64,
        out: &mut [u8],
        scratch: &mut Vec<u8>,
    ) -> Result<()> {
        SparseExtent::read_grain_part(self, grain, sector, within, out, scratch)
    }
}
