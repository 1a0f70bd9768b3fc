//! The headers of a space-efficient sparse extent (seSparse), checked before the shared ESXi
//! reader ([`super::esx`]) walks its grain directory and decodes its entries.
//!
//! Layout: [`SeSparseConstHeader`] at sector 0 and [`SeSparseVolatileHeader`] where it says,
//! as qemu's `block/vmdk.c` reads them (`vmdk_open_se_sparse`, `check_se_sparse_const_header`,
//! `check_se_sparse_volatile_header`); dissect.hypervisor reads the same
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

use zerocopy::{FromBytes, IntoBytes};

use super::esx::{Area, EsxExtent, EsxFormat, SESPARSE_HEADER};
use super::grains::Reserved;
use super::header::{Geometry, MAX_CAPACITY_SECTORS, MAX_GRAIN_SECTORS};
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
    // Each area's `*_offset` field, followed by its `*_size` field.
    let fields = [
        ("volatile header", H::AT_VOLATILE_HEADER_OFFSET),
        ("journal header", H::AT_JOURNAL_HEADER_OFFSET),
        ("journal", H::AT_JOURNAL_OFFSET),
        ("grain directory", H::AT_GRAIN_DIR_OFFSET),
        ("grain table area", H::AT_GRAIN_TABLES_OFFSET),
        ("free bitmap", H::AT_FREE_BITMAP_OFFSET),
        ("back map", H::AT_BACKMAP_OFFSET),
        ("grain area", H::AT_GRAINS_OFFSET),
    ];
    let bytes = h.as_bytes();
    let word = |at: u64| {
        let at = at as usize;
        bytes
            .get(at..at + 8)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u64::from_le_bytes)
    };
    let mut out = vec![Region {
        what: SESPARSE_HEADER,
        area: Area {
            start: 0,
            end: SECTOR_SIZE,
        },
    }];
    for (what, field_at) in fields {
        let (offset, size) = (word(field_at), word(field_at + 8));
        let bad = |at: u64, field: &'static str, value: u64, reason: &'static str| {
            Error::field(path, SESPARSE_HEADER, at, field, value, reason)
        };
        let area = offset
            .checked_add(size)
            .and_then(|end| end.checked_mul(SECTOR_SIZE))
            .map(|end| Area {
                start: offset * SECTOR_SIZE,
                end,
            })
            .ok_or_else(|| {
                let reason = "the area's end (offset + size sectors) is past any file";
                bad(field_at, what, offset, reason)
            })?;
        if what == "volatile header" && size == 0 {
            let reason = "the volatile header needs a sector";
            return Err(bad(field_at + 8, "volatile_header_size", 0, reason));
        }
        let overlapped = out
            .iter()
            .find(|r| area.start < r.area.end && r.area.start < area.end);
        if let Some(other) = overlapped.filter(|_| area.end > area.start) {
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
