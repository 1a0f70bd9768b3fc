//! The header of an ESXi sparse extent (vmfsSparse, magic `COWD`), checked before the shared
//! ESXi reader ([`super::esx`]) walks its grain directory.
//!
//! Layout: [`CowdHeader`] (qemu's `block/vmdk.c`, `VMDK3Header` and `vmdk_open_vmfs_sparse`;
//! the same fields in dissect.hypervisor's `c_vmdk.py`). The header takes the first 2048 bytes;
//! the grain directory follows at `gdOffset` (`numGDEntries` `u32` sectors of grain tables),
//! each grain table holds 4096 `u32` sectors of grains of `grainSize` sectors.
//!
//! Refused, each at its field's offset: a magic other than `COWD`; versions other than 1
//! ([`Feature::CowdVersion`]); grain sizes that are not a power of two from 1 to 16384 sectors
//! (ESXi writes 1; qemu takes up to 2^21, but no grain larger than 8 MiB is read here, as for
//! hosted extents); a directory with fewer entries than the capacity needs, or outside the
//! file, or over the header. `flags`, `freeSector` and the rest of the header are shown by
//! `info`, not used.

use zerocopy::FromBytes;

use super::esx::{EsxExtent, EsxFormat, COWD_HEADER};
use super::grains::Reserved;
use super::header::{Geometry, MAX_GRAIN_SECTORS};
use crate::error::{Error, ErrorKind, Feature, Result};
use crate::format::{CowdHeader, SECTOR_SIZE};
use crate::io::Backing;

/// Whether a buffer starts with the COWD magic.
pub(crate) fn has_magic(head: &[u8]) -> bool {
    head.get(..4) == Some(&CowdHeader::MAGIC.to_le_bytes()[..])
}

/// Reads and checks the header of the COWD extent in `backing`, then opens it.
pub(crate) fn open(backing: Backing) -> Result<EsxExtent> {
    let path = backing.path().to_path_buf();
    let mut buf = [0u8; CowdHeader::SIZE as usize];
    backing.read_exact_at(COWD_HEADER, 0, &mut buf)?;
    let h = CowdHeader::read_from_bytes(&buf[..]).map_err(|_| {
        Error::at(
            &path,
            COWD_HEADER,
            0,
            ErrorKind::Inconsistent("short header".into()),
        )
    })?;
    let bad = |at: u64, field: &'static str, value: u32, reason: &'static str| {
        Error::field(&path, COWD_HEADER, at, field, value.into(), reason)
    };
    let magic = h.magic_number.get();
    if magic != CowdHeader::MAGIC {
        return Err(bad(
            0,
            "magicNumber",
            magic,
            "not the ESXi sparse extent magic COWD",
        ));
    }
    let version = h.version.get();
    if version != CowdHeader::VERSION {
        return Err(Error::at(
            &path,
            COWD_HEADER,
            CowdHeader::AT_VERSION,
            ErrorKind::Unsupported(Feature::CowdVersion(version)),
        ));
    }
    let grain = h.grain_size.get();
    if !grain.is_power_of_two() || u64::from(grain) > MAX_GRAIN_SECTORS {
        return Err(bad(
            CowdHeader::AT_GRAIN_SIZE,
            "grainSize",
            grain,
            "not a power of two from 1 to 16384 sectors",
        ));
    }
    let geometry = Geometry {
        capacity: h.num_sectors.get().into(),
        grain_sectors: grain.into(),
        gtes_per_gt: CowdHeader::GTES_PER_GT,
        flags: 0,
    };
    let entries = h.num_gd_entries.get();
    if u64::from(entries) < geometry.directory_entries() {
        return Err(bad(
            CowdHeader::AT_NUM_GD_ENTRIES,
            "numGDEntries",
            entries,
            "fewer grain tables than the capacity needs",
        ));
    }
    let reserved = vec![Reserved {
        start: 0,
        end: CowdHeader::SIZE,
        what: COWD_HEADER,
    }];
    let directory_at = u64::from(h.gd_offset.get()) * SECTOR_SIZE;
    EsxExtent::new(
        backing,
        EsxFormat::Cowd(Box::new(h)),
        geometry,
        directory_at,
        reserved,
    )
}
