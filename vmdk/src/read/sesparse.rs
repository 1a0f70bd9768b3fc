//! The headers and entries of a space-efficient sparse extent (seSparse), checked before the
//! shared ESXi reader ([`super::esx`]) walks its grain directory.
//!
//! Layout: [`SeSparseConstHeader`] at sector 0 and [`SeSparseVolatileHeader`] where it says,
//! as qemu's `block/vmdk.c` reads them (`vmdk_open_se_sparse`, `check_se_sparse_const_header`,
//! `check_se_sparse_volatile_header`, `get_cluster_offset`); dissect.hypervisor reads the same
//! fields. The journal is not replayed: a volatile header whose `replay_journal` is set is
//! refused ([`Feature::SeSparseJournalReplay`]) rather than read from tables the journal may
//! be about to change, as qemu refuses it.
//!
//! Refused, each at its field's offset: a magic other than `0xcafebabe` (constant header) or
//! `0xcafecafe` (volatile header); versions other than `0x200000001`; any flag; non-zero
//! reserved words; grain sizes that are not a power of two from 1 to 16384 sectors (ESXi writes
//! 8, the only size qemu reads); grain tables of other than 1 to 64 sectors (64 to 4096
//! entries; ESXi writes 64, the only size qemu reads); capacities whose byte count does not fit
//! 64 bits; an area (`*_offset`, `*_size`) whose end does not fit 64 bits, or that overlaps
//! another (the constant header, volatile header, journal header, journal, grain directory,
//! grain table area, free bitmap, back map and grain area each keep to their own sectors); a
//! grain directory too small for the capacity. Unlike qemu, the padding is not required to be
//! zero.

use zerocopy::FromBytes;

use super::esx::{Area, EsxExtent, EsxFormat, SESPARSE_HEADER};
use super::header::{Geometry, MAX_CAPACITY_SECTORS, MAX_GRAIN_SECTORS};
use super::sparse::GrainEntry;
use super::Reserved;
use crate::error::{Error, ErrorKind, Feature, Result};
use crate::format::{SeSparseConstHeader as H, SeSparseVolatileHeader as V, SECTOR_SIZE};
use crate::io::Backing;

const VOLATILE: &str = "seSparse volatile header";

/// Whether a buffer starts with the seSparse constant header's magic (8 bytes).
pub(crate) fn has_magic(head: &[u8]) -> bool {
    head.get(..8) == Some(&H::MAGIC.to_le_bytes()[..])
}

/// One area of the file the constant header lays out: its name and its bytes.
struct Region {
    what: &'static str,
    area: Area,
}

/// Reads and checks the headers of the seSparse extent in `backing`, then opens it.
pub(crate) fn open(backing: Backing) -> Result<EsxExtent> {
    let path = backing.path().to_path_buf();
    let mut buf = [0u8; 512];
    backing.read_exact_at(SESPARSE_HEADER, 0, &mut buf)?;
    let h = H::read_from_bytes(&buf[..]).map_err(|_| short(&path, SESPARSE_HEADER, 0))?;
    let geometry = check_constant(&h, &backing)?;
    let regions = regions(&h, &backing)?;
    let needed = geometry.directory_entries();
    let directory_entries = h.grain_dir_size.get().saturating_mul(SECTOR_SIZE / 8);
    if directory_entries < needed {
        return Err(Error::field(
            &path,
            SESPARSE_HEADER,
            H::AT_GRAIN_DIR_SIZE,
            "grain_dir_size",
            h.grain_dir_size.get(),
            "fewer grain tables than the capacity needs",
        ));
    }
    let volatile_at = h.volatile_header_offset.get() * SECTOR_SIZE; // checked by regions()
    let volatile = read_volatile(&backing, volatile_at)?;
    let area = |what: &str| {
        regions
            .iter()
            .find(|r| r.what == what)
            .map_or(Area { start: 0, end: 0 }, |r| r.area)
    };
    let format = EsxFormat::SeSparse {
        tables: area("grain table area"),
        grains: area("grain area"),
        header: Box::new(h),
        volatile: Box::new(volatile),
    };
    // The grain directory is reserved by the reader itself; the two areas hold what the
    // entries name, so only the other regions are reserved.
    let reserved = regions
        .iter()
        .filter(|r| {
            !matches!(
                r.what,
                "grain directory" | "grain table area" | "grain area"
            )
        })
        .map(|r| Reserved {
            start: r.area.start,
            end: r.area.end,
            what: r.what,
        })
        .collect();
    let directory_at = area("grain directory").start;
    EsxExtent::new(backing, format, geometry, directory_at, reserved)
}

fn short(path: &std::path::Path, structure: &'static str, at: u64) -> Error {
    Error::at(
        path,
        structure,
        at,
        ErrorKind::Inconsistent("short header".into()),
    )
}

/// The constant header's own fields: magic, version, flags, reserved words, grain and table
/// sizes, capacity.
fn check_constant(h: &H, backing: &Backing) -> Result<Geometry> {
    let path = backing.path();
    let bad = |at: u64, field: &'static str, value: u64, reason: &'static str| {
        Error::field(path, SESPARSE_HEADER, at, field, value, reason)
    };
    let unsupported =
        |at: u64, f: Feature| Error::at(path, SESPARSE_HEADER, at, ErrorKind::Unsupported(f));
    if h.magic.get() != H::MAGIC {
        return Err(bad(
            0,
            "magic",
            h.magic.get(),
            "not the seSparse magic 0xcafebabe",
        ));
    }
    if h.version.get() != H::VERSION {
        let v = h.version.get();
        return Err(unsupported(H::AT_VERSION, Feature::SeSparseVersion(v)));
    }
    if h.flags.get() != 0 {
        let f = h.flags.get();
        return Err(unsupported(H::AT_FLAGS, Feature::SeSparseFlags(f)));
    }
    let reserved = [h.reserved1, h.reserved2, h.reserved3, h.reserved4];
    for (i, (r, name)) in reserved
        .iter()
        .zip(["reserved1", "reserved2", "reserved3", "reserved4"])
        .enumerate()
    {
        if r.get() != 0 {
            let at = H::AT_RESERVED1 + 8 * i as u64;
            return Err(bad(at, name, r.get(), "reserved: must be 0"));
        }
    }
    let grain = h.grain_size.get();
    if !grain.is_power_of_two() || grain > MAX_GRAIN_SECTORS {
        return Err(bad(
            H::AT_GRAIN_SIZE,
            "grain_size",
            grain,
            "not a power of two from 1 to 16384 sectors",
        ));
    }
    let table = h.grain_table_size.get();
    if !(1..=64).contains(&table) {
        return Err(bad(
            H::AT_GRAIN_TABLE_SIZE,
            "grain_table_size",
            table,
            "not from 1 to 64 sectors (64 to 4096 entries)",
        ));
    }
    let capacity = h.capacity.get();
    if capacity > MAX_CAPACITY_SECTORS {
        return Err(bad(
            H::AT_CAPACITY,
            "capacity",
            capacity,
            "too large to be counted in bytes",
        ));
    }
    Ok(Geometry {
        capacity,
        grain_sectors: grain,
        gtes_per_gt: table * (SECTOR_SIZE / 8),
        flags: 0,
    })
}

/// The areas the constant header lays out, in bytes: each end fits 64 bits, the volatile header
/// holds at least one sector, and no two areas of non-zero size overlap.
fn regions(h: &H, backing: &Backing) -> Result<Vec<Region>> {
    let path = backing.path();
    let fields = [
        (
            "volatile header",
            H::AT_VOLATILE_HEADER_OFFSET,
            h.volatile_header_offset,
            h.volatile_header_size,
        ),
        (
            "journal header",
            H::AT_JOURNAL_HEADER_OFFSET,
            h.journal_header_offset,
            h.journal_header_size,
        ),
        (
            "journal",
            H::AT_JOURNAL_OFFSET,
            h.journal_offset,
            h.journal_size,
        ),
        (
            "grain directory",
            H::AT_GRAIN_DIR_OFFSET,
            h.grain_dir_offset,
            h.grain_dir_size,
        ),
        (
            "grain table area",
            H::AT_GRAIN_TABLES_OFFSET,
            h.grain_tables_offset,
            h.grain_tables_size,
        ),
        (
            "free bitmap",
            H::AT_FREE_BITMAP_OFFSET,
            h.free_bitmap_offset,
            h.free_bitmap_size,
        ),
        (
            "back map",
            H::AT_BACKMAP_OFFSET,
            h.backmap_offset,
            h.backmap_size,
        ),
        (
            "grain area",
            H::AT_GRAINS_OFFSET,
            h.grains_offset,
            h.grains_size,
        ),
    ];
    let mut out = vec![Region {
        what: SESPARSE_HEADER,
        area: Area {
            start: 0,
            end: SECTOR_SIZE,
        },
    }];
    for (what, field_at, offset, size) in fields {
        let (offset, size) = (offset.get(), size.get());
        let area = offset
            .checked_add(size)
            .and_then(|end| end.checked_mul(SECTOR_SIZE))
            .map(|end| Area {
                start: offset * SECTOR_SIZE,
                end,
            })
            .ok_or_else(|| {
                Error::field(
                    path,
                    SESPARSE_HEADER,
                    field_at,
                    what,
                    offset,
                    "the area's end (offset + size sectors) is past any file",
                )
            })?;
        if what == "volatile header" && size == 0 {
            return Err(Error::field(
                path,
                SESPARSE_HEADER,
                field_at + 8,
                "volatile_header_size",
                0,
                "the volatile header needs a sector",
            ));
        }
        if area.end > area.start {
            if let Some(other) = out
                .iter()
                .find(|r| area.start < r.area.end && r.area.start < area.end)
            {
                return Err(Error::at(
                    path,
                    SESPARSE_HEADER,
                    field_at,
                    ErrorKind::Inconsistent(format!(
                        "the {what} ({:#x}..{:#x}) overlaps the {} ({:#x}..{:#x})",
                        area.start, area.end, other.what, other.area.start, other.area.end
                    )),
                ));
            }
        }
        out.push(Region { what, area });
    }
    Ok(out)
}

/// Reads and checks the volatile header at byte `at`: its magic, and a journal that needs no
/// replay.
fn read_volatile(backing: &Backing, at: u64) -> Result<V> {
    let path = backing.path();
    let mut buf = [0u8; 512];
    backing.read_exact_at(VOLATILE, at, &mut buf)?;
    let v = V::read_from_bytes(&buf[..]).map_err(|_| short(path, VOLATILE, at))?;
    if v.magic.get() != V::MAGIC {
        return Err(Error::field(
            path,
            VOLATILE,
            at,
            "magic",
            v.magic.get(),
            "not the seSparse volatile header magic 0xcafecafe",
        ));
    }
    if v.replay_journal.get() != 0 {
        return Err(Error::at(
            path,
            VOLATILE,
            at + V::AT_REPLAY_JOURNAL,
            ErrorKind::Unsupported(Feature::SeSparseJournalReplay),
        ));
    }
    Ok(v)
}

/// The byte offset of the grain table a non-zero grain directory entry `raw` names: the top 32
/// bits must be [`H::GDE_ALLOCATED`], the low 32 bits the table's number in the grain table
/// area `tables`, whose tables are `table_bytes` long; the table must lie inside the area.
pub(crate) fn table_at(raw: u64, tables: Area, table_bytes: u64) -> Result<u64, &'static str> {
    if raw >> 32 != H::GDE_ALLOCATED {
        return Err("neither 0 nor a grain table (0x10000000 in the top 32 bits)");
    }
    (raw & 0xffff_ffff)
        .checked_mul(table_bytes)
        .and_then(|o| o.checked_add(tables.start))
        .filter(|at| at.checked_add(table_bytes).is_some_and(|e| e <= tables.end))
        .ok_or("names a grain table past the grain table area")
}

/// What a grain table entry `raw` says about its grain, as qemu's `get_cluster_offset` reads
/// it: 0 is unallocated (read the parent); [`H::GTE_ZERO`] reads as zeros; an allocated entry
/// gives the grain's number in the grain area `grains`, where the grain (`grain_bytes`) must
/// lie whole.
///
/// An unmapped entry ([`H::GTE_UNMAPPED`], a block the guest released with SCSI UNMAP) reads
/// as zeros too, as qemu reads it. dissect.hypervisor reads it through to the parent instead;
/// zeros are right for an importer: a guest that unmapped a block does not expect its old
/// contents back, and reading the parent there would bring back data the guest discarded.
pub(crate) fn grain_entry(
    raw: u64,
    grains: Area,
    grain_bytes: u64,
) -> Result<GrainEntry, &'static str> {
    match raw & H::GTE_KIND_MASK {
        H::GTE_UNALLOCATED if raw == 0 => Ok(GrainEntry::Unallocated),
        H::GTE_UNALLOCATED => Err("an unallocated entry with other bits set"),
        H::GTE_UNMAPPED | H::GTE_ZERO => Ok(GrainEntry::Zeroed),
        H::GTE_ALLOCATED => {
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
            table_at(0x1000_0000_0000_0002, tables, 32768),
            Ok(0x1000 + 65536)
        );
        assert!(table_at(0x1000_0000_0000_0003, tables, 32768).is_err());
        assert!(table_at(0x2000_0000_0000_0000, tables, 32768).is_err());
        let grains = Area {
            start: 0x10_0000,
            end: 0x10_0000 + 0x2000 * 4096,
        };
        // Grain number 0x1abc: low 12 bits in entry bits 48-59, the rest in bits 0-47.
        let raw = H::GTE_ALLOCATED | (0xabc << 48) | 0x1;
        assert_eq!(
            grain_entry(raw, grains, 4096),
            Ok(GrainEntry::Data((0x10_0000 + 0x1abc * 4096) / 512))
        );
        assert!(grain_entry(H::GTE_ALLOCATED | 0x2, grains, 4096).is_err());
        assert_eq!(grain_entry(0, grains, 4096), Ok(GrainEntry::Unallocated));
        assert!(grain_entry(5, grains, 4096).is_err());
        assert_eq!(
            grain_entry(H::GTE_UNMAPPED, grains, 4096),
            Ok(GrainEntry::Zeroed)
        );
        assert_eq!(
            grain_entry(H::GTE_ZERO | 7, grains, 4096),
            Ok(GrainEntry::Zeroed)
        );
        assert!(grain_entry(0x4000_0000_0000_0000, grains, 4096).is_err());
    }
}
