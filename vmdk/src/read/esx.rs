//! The seekable reader of the ESXi delta extents: vmfsSparse (`COWD`, extent lines
//! `VMFSSPARSE`) and seSparse (extent lines `SESPARSE`). Both are a grain directory of grain
//! tables of grain entries, with uncompressed grains; they differ in their headers (checked by
//! [`super::cowd`] and [`super::sesparse`]) and in how an entry names a table or a grain.
//!
//! Neither format is in VMware's "Virtual Disk Format 5.0" technote; the facts come from qemu's
//! `block/vmdk.c` (`vmdk_open_vmfs_sparse`, `vmdk_open_se_sparse`, and the seSparse branches
//! of `get_cluster_offset`), checked against dissect.hypervisor's reader.
//!
//! - COWD: `u32` entries, every grain table 4096 of them. A directory entry is the sector of a
//!   grain table, a table entry the sector of a grain, 0 where none (the grain reads through to
//!   the parent). Grains are usually one sector.
//! - seSparse: `u64` entries. A directory entry is 0 or `0x10000000` in its top 32 bits over
//!   the number of a grain table in the grain table area; a table entry is unallocated (0: read
//!   the parent), unmapped or zero (read as zeros), or allocated with the number of a grain in
//!   the grain area (`sesparse_table_at`, `sesparse_grain`). Unmapped grains read as zeros, as
//!   qemu reads them; dissect.hypervisor reads them through to the parent.
//!
//! Refused with an error naming the file, the structure and the offset: grain tables and grains
//! outside the file or over the headers or the grain directory; seSparse tables outside the
//! grain table area and grains outside the grain area (which may not overlap each other or any
//! other structure); entries of an unknown kind. Only the grain directory entries the capacity
//! needs are held in memory (read after their range is checked against the file); grain tables
//! are read when needed.

use super::grains::{overlapping, refuse_reserved, GrainEntry, Grains, Reserved};
use super::header::Geometry;
use crate::error::{Error, ErrorKind, Result};
use crate::format::{CowdHeader, SeSparseConstHeader, SeSparseVolatileHeader, SECTOR_SIZE};
use crate::io::Backing;

/// A byte range of an extent file that one kind of structure must stay inside (its end may lie
/// past the end of the file: the areas of a seSparse extent grow as grains are written).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Area {
    /// First byte.
    pub start: u64,
    /// End (exclusive).
    pub end: u64,
}

/// The format of an ESXi delta extent, with its headers.
#[derive(Debug)]
pub(crate) enum EsxFormat {
    /// vmfsSparse.
    Cowd(Box<CowdHeader>),
    /// seSparse.
    SeSparse {
        /// The constant header.
        header: Box<SeSparseConstHeader>,
        /// The volatile header.
        volatile: Box<SeSparseVolatileHeader>,
        /// Where grain tables may lie.
        tables: Area,
        /// Where grains may lie.
        grains: Area,
    },
}

/// An open ESXi delta extent.
#[derive(Debug)]
pub(crate) struct EsxExtent {
    backing: Backing,
    format: EsxFormat,
    geometry: Geometry,
    /// The grain directory entries the capacity needs, as written (COWD's widened to `u64`).
    directory: Vec<u64>,
    /// Byte offset of the grain directory.
    directory_at: u64,
    /// The headers, the grain directory and (seSparse) the other metadata areas.
    reserved: Vec<Reserved>,
}

/// The structure name of the header of each format, for errors.
pub(crate) const COWD_HEADER: &str = "COWD header";
/// The structure name of a seSparse constant header, for errors.
pub(crate) const SESPARSE_HEADER: &str = "seSparse header";

impl EsxExtent {
    /// The extent whose header was checked: reads the `geometry.directory_entries()` entries of
    /// the grain directory at byte `directory_at` (inside the file, checked before anything is
    /// allocated, and clear of `reserved`).
    pub(crate) fn new(
        backing: Backing,
        format: EsxFormat,
        geometry: Geometry,
        directory_at: u64,
        mut reserved: Vec<Reserved>,
    ) -> Result<Self> {
        let width = entry_width(&format);
        let len = geometry.directory_entries().saturating_mul(width);
        let bytes = backing.read_vec("grain directory", directory_at, len)?;
        let end = directory_at + len;
        if let Some(r) = overlapping(&reserved, directory_at, end).filter(|_| len > 0) {
            return Err(Error::at(
                backing.path(),
                "grain directory",
                directory_at,
                ErrorKind::Inconsistent(format!(
                    "overlaps the {}, which ends at {:#x}",
                    r.what, r.end
                )),
            ));
        }
        reserved.push(Reserved {
            start: directory_at,
            end,
            what: "grain directory",
        });
        Ok(Self {
            directory: decode_entries(&bytes, width),
            backing,
            format,
            geometry,
            directory_at,
            reserved,
        })
    }

    /// The format and its headers.
    pub(crate) fn format(&self) -> &EsxFormat {
        &self.format
    }

    /// Capacity in bytes.
    pub(crate) fn capacity_bytes(&self) -> u64 {
        self.geometry.capacity_bytes()
    }

    /// Number of grains (the last may be partial).
    pub(crate) fn grain_count(&self) -> u64 {
        self.geometry.grain_count()
    }

    /// Entries per grain table.
    pub(crate) fn gtes_per_gt(&self) -> u64 {
        self.geometry.gtes_per_gt
    }

    /// Bytes of one directory or table entry: 4 (COWD) or 8 (seSparse).
    pub(crate) fn entry_bytes(&self) -> u64 {
        entry_width(&self.format)
    }

    /// Bytes of one grain table.
    pub(crate) fn table_bytes(&self) -> u64 {
        self.geometry.gtes_per_gt * self.entry_bytes()
    }

    /// The grain directory entries the capacity needs, as written.
    pub(crate) fn directory(&self) -> &[u64] {
        &self.directory
    }

    /// Byte offset of the grain directory.
    pub(crate) fn directory_at(&self) -> u64 {
        self.directory_at
    }

    /// Bytes of grain `grain` that lie inside the capacity.
    pub(crate) fn grain_len(&self, grain: u64) -> u64 {
        let start = grain.saturating_mul(self.geometry.grain_bytes());
        self.capacity_bytes()
            .saturating_sub(start)
            .min(self.geometry.grain_bytes())
    }

    /// Byte offset of the grain table that directory entry `index` names, `None` when it names
    /// none. A seSparse entry must name a table inside the grain table area.
    pub(crate) fn table_at(&self, index: usize) -> Result<Option<u64>> {
        let raw = match self.directory.get(index) {
            Some(0) | None => return Ok(None),
            Some(&raw) => raw,
        };
        match &self.format {
            // A u32 sector: fits.
            EsxFormat::Cowd(_) => Ok(Some(raw * SECTOR_SIZE)),
            EsxFormat::SeSparse { tables, .. } => {
                sesparse_table_at(raw, *tables, self.table_bytes())
                    .map(Some)
                    .map_err(|reason| {
                        let at = self.directory_at + index as u64 * self.entry_bytes();
                        let path = self.backing.path();
                        Error::field(path, "grain directory", at, "entry", raw, reason)
                    })
            }
        }
    }

    /// Reads the grain table behind directory entry `index` (its raw entries, with its byte
    /// offset), `None` when the entry names none.
    pub(crate) fn grain_table(&self, index: usize) -> Result<Option<(u64, Vec<u64>)>> {
        let Some(at) = self.table_at(index)? else {
            return Ok(None);
        };
        let len = self.table_bytes();
        self.refuse_metadata_at("grain table", at, len)?;
        let bytes = self.backing.read_vec("grain table", at, len)?;
        Ok(Some((at, decode_entries(&bytes, self.entry_bytes()))))
    }

    /// What entry `i` of the grain table at byte `table_at`, `raw`, says about its grain.
    pub(crate) fn decode(&self, table_at: u64, i: u64, raw: u64) -> Result<GrainEntry> {
        match &self.format {
            EsxFormat::Cowd(_) if raw == 0 => Ok(GrainEntry::Unallocated),
            EsxFormat::Cowd(_) => Ok(GrainEntry::Data(raw)),
            EsxFormat::SeSparse { grains, .. } => {
                sesparse_grain(raw, *grains, self.geometry.grain_bytes()).map_err(|reason| {
                    let at = table_at + i * self.entry_bytes();
                    Error::field(self.backing.path(), "grain table", at, "entry", raw, reason)
                })
            }
        }
    }

    fn refuse_metadata_at(&self, structure: &'static str, at: u64, len: u64) -> Result<()> {
        refuse_reserved(&self.backing, &self.reserved, structure, at, len)
    }

    /// Calls `f(first_grain, end_grain, table)` for each grain table covering grains `first..
    /// first + count` (clipped to the grain count), reading each table once.
    fn for_each_table(
        &self,
        first: u64,
        count: u64,
        f: impl FnMut(u64, u64, Option<&(u64, Vec<u64>)>) -> Result<()>,
    ) -> Result<()> {
        super::grains::for_each_table(
            (first, count),
            (self.grain_count(), self.geometry.gtes_per_gt),
            |i| self.grain_table(i),
            f,
        )
    }

    /// The entry for grain `g` of `table`.
    fn entry(&self, table: Option<&(u64, Vec<u64>)>, g: u64) -> Result<GrainEntry> {
        let Some((at, entries)) = table else {
            return Ok(GrainEntry::Unallocated);
        };
        let i = g % self.geometry.gtes_per_gt;
        let raw = usize::try_from(i)
            .ok()
            .and_then(|i| entries.get(i))
            .copied()
            .unwrap_or(0);
        self.decode(*at, i, raw)
    }
}

/// 4 bytes per entry for COWD, 8 for seSparse.
fn entry_width(format: &EsxFormat) -> u64 {
    match format {
        EsxFormat::Cowd(_) => 4,
        EsxFormat::SeSparse { .. } => 8,
    }
}

/// Little-endian entries of `width` bytes (4 or 8), widened to `u64`.
fn decode_entries(bytes: &[u8], width: u64) -> Vec<u64> {
    if width == 4 {
        bytes
            .chunks_exact(4)
            .map(|c| c.try_into().map_or(0, |b| u64::from(u32::from_le_bytes(b))))
            .collect()
    } else {
        bytes
            .chunks_exact(8)
            .map(|c| c.try_into().map_or(0, u64::from_le_bytes))
            .collect()
    }
}

impl Grains for EsxExtent {
    fn backing(&self) -> &Backing {
        &self.backing
    }

    fn capacity_sectors(&self) -> u64 {
        self.geometry.capacity
    }

    fn capacity_field(&self) -> (&'static str, u64) {
        match &self.format {
            EsxFormat::Cowd(_) => (COWD_HEADER, CowdHeader::AT_NUM_SECTORS),
            EsxFormat::SeSparse { .. } => (SESPARSE_HEADER, SeSparseConstHeader::AT_CAPACITY),
        }
    }

    fn grain_bytes(&self) -> u64 {
        self.geometry.grain_bytes()
    }

    fn for_each_grain(
        &self,
        first: u64,
        count: u64,
        mut f: impl FnMut(u64, GrainEntry) -> Result<()>,
    ) -> Result<()> {
        self.for_each_table(first, count, |from, to, table| {
            (from..to).try_for_each(|g| f(g, self.entry(table, g)?))
        })
    }

    fn for_each_run(
        &self,
        first: u64,
        count: u64,
        mut f: impl FnMut(u64, u64, GrainEntry) -> Result<()>,
    ) -> Result<()> {
        self.for_each_table(first, count, |from, to, table| {
            if table.is_none() {
                return f(from, to - from, GrainEntry::Unallocated);
            }
            super::grains::runs_in_table((from, to), |g| self.entry(table, g), &mut f)
        })
    }

    fn is_compressed(&self) -> bool {
        false
    }

    fn grain_offset(&self, grain: u64, sector: u64) -> Result<u64> {
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

    fn refuse_metadata(&self, structure: &'static str, at: u64, len: u64) -> Result<()> {
        self.refuse_metadata_at(structure, at, len)
    }

    fn read_grain_part(
        &self,
        grain: u64,
        sector: u64,
        within: u64,
        out: &mut [u8],
        _scratch: &mut Vec<u8>,
    ) -> Result<()> {
        let at = self.grain_offset(grain, sector)?;
        self.refuse_metadata_at("grain", at, self.geometry.grain_bytes())?;
        self.backing.read_exact_at("grain", at + within, out)
    }
}

/// The byte offset of the grain table a non-zero seSparse grain directory entry `raw` names:
/// the top 32 bits must be [`SeSparseConstHeader::GDE_ALLOCATED`], the low 32 bits the table's
/// number in the grain table area `tables`, whose tables are `table_bytes` long; the table must
/// lie inside the area (qemu's `get_cluster_offset`).
fn sesparse_table_at(raw: u64, tables: Area, table_bytes: u64) -> Result<u64, &'static str> {
    if raw >> 32 != SeSparseConstHeader::GDE_ALLOCATED {
        return Err("neither 0 nor a grain table (0x10000000 in the top 32 bits)");
    }
    (raw & 0xffff_ffff)
        .checked_mul(table_bytes)
        .and_then(|o| o.checked_add(tables.start))
        .filter(|at| at.checked_add(table_bytes).is_some_and(|e| e <= tables.end))
        .ok_or("names a grain table past the grain table area")
}

/// What a seSparse grain table entry `raw` says about its grain, as qemu's
/// `get_cluster_offset` reads it: 0 is unallocated (read the parent);
/// [`SeSparseConstHeader::GTE_ZERO`] reads as zeros; an allocated entry gives the grain's
/// number in the grain area `grains`, where the grain (`grain_bytes`) must lie whole.
///
/// An unmapped entry ([`SeSparseConstHeader::GTE_UNMAPPED`], a block the guest released with
/// SCSI UNMAP) reads as zeros too, as qemu reads it. dissect.hypervisor reads it through to the parent instead;
/// zeros are right for an importer: a guest that unmapped a block does not expect its old
/// contents back, and reading the parent there would bring back data the guest discarded.
fn sesparse_grain(raw: u64, grains: Area, grain_bytes: u64) -> Result<GrainEntry, &'static str> {
    match raw & SeSparseConstHeader::GTE_KIND_MASK {
        SeSparseConstHeader::GTE_UNALLOCATED if raw == 0 => Ok(GrainEntry::Unallocated),
        SeSparseConstHeader::GTE_UNALLOCATED => Err("an unallocated entry with other bits set"),
        SeSparseConstHeader::GTE_UNMAPPED | SeSparseConstHeader::GTE_ZERO => Ok(GrainEntry::Zeroed),
        SeSparseConstHeader::GTE_ALLOCATED => {
            let number =
                ((raw & 0x0fff_0000_0000_0000) >> 48) | ((raw & 0x0000_ffff_ffff_ffff) << 12);
            number
                .checked_mul(grain_bytes)
                .and_then(|o| o.checked_add(grains.start))
                .filter(|at| at.checked_add(grain_bytes).is_some_and(|e| e <= grains.end))
                .map(|at| GrainEntry::Data(at / SECTOR_SIZE))
                .ok_or("a grain number past the grain area")
        }
        _ => Err("an entry of unknown kind (top 4 bits)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_decode_as_qemu_reads_them() {
        let tables = Area {
            start: 0x1000,
            end: 0x1000 + 3 * 32768,
        };
        assert_eq!(
            sesparse_table_at(0x1000_0000_0000_0002, tables, 32768),
            Ok(0x1000 + 65536)
        );
        assert!(sesparse_table_at(0x1000_0000_0000_0003, tables, 32768).is_err());
        assert!(sesparse_table_at(0x2000_0000_0000_0000, tables, 32768).is_err());
        let grains = Area {
            start: 0x10_0000,
            end: 0x10_0000 + 0x2000 * 4096,
        };
        // Grain number 0x1abc: low 12 bits in entry bits 48-59, the rest in bits 0-47.
        let raw = SeSparseConstHeader::GTE_ALLOCATED | (0xabc << 48) | 0x1;
        assert_eq!(
            sesparse_grain(raw, grains, 4096),
            Ok(GrainEntry::Data((0x10_0000 + 0x1abc * 4096) / 512))
        );
        assert!(sesparse_grain(SeSparseConstHeader::GTE_ALLOCATED | 0x2, grains, 4096).is_err());
        assert_eq!(sesparse_grain(0, grains, 4096), Ok(GrainEntry::Unallocated));
        assert!(sesparse_grain(5, grains, 4096).is_err());
        assert_eq!(
            sesparse_grain(SeSparseConstHeader::GTE_UNMAPPED, grains, 4096),
            Ok(GrainEntry::Zeroed)
        );
        assert_eq!(
            sesparse_grain(SeSparseConstHeader::GTE_ZERO | 7, grains, 4096),
            Ok(GrainEntry::Zeroed)
        );
        assert!(sesparse_grain(0x4000_0000_0000_0000, grains, 4096).is_err());
    }
}
