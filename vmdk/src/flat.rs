//! Flat (thick) disks: the descriptor of a monolithicFlat or vmfs disk whose data lies in one
//! flat extent file, as `inflate` writes them.
//!
//! Spec: "Simple Extents" (p. 5) and "The Disk Database" (p. 5). The disk database keeps the
//! source's adapter type, geometry and hardware version (searched up its parent chain, as the
//! spec says); a geometry is computed the way VMware does when the source has none.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use crate::descriptor::{Access, CreateType, Descriptor, ExtentKind, ExtentLine, CID_NO_PARENT};
use crate::disk::Disk;
use crate::format::SECTOR_SIZE;

/// Disk database keys copied from a source disk to a thick copy of it.
pub const KEPT_DDB_KEYS: &[&str] = &[
    "ddb.adapterType",
    "ddb.geometry.cylinders",
    "ddb.geometry.heads",
    "ddb.geometry.sectors",
    "ddb.geometry.biosCylinders",
    "ddb.geometry.biosHeads",
    "ddb.geometry.biosSectors",
    "ddb.virtualHWVersion",
    "ddb.toolsVersion",
];

/// A fresh content ID: random, never `ffffffff` or `fffffffe` (which VMware reserves).
pub fn new_cid() -> u32 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    let cid = h.finish() as u32;
    if cid >= CID_NO_PARENT - 1 {
        0x1234_5678
    } else {
        cid
    }
}

/// Cylinders, heads and sectors per track for a disk of `capacity` bytes on `adapter`, as
/// VMware computes them: IDE 16 heads × 63 sectors; SCSI 64 × 32 up to 1 GiB, else 255 × 63.
pub fn geometry(capacity: u64, adapter: &str) -> (u64, u64, u64) {
    let sectors = capacity / SECTOR_SIZE;
    let (heads, per_track) = if adapter.eq_ignore_ascii_case("ide") {
        (16, 63)
    } else if capacity <= 1 << 30 {
        (64, 32)
    } else {
        (255, 63)
    };
    let cylinders = (sectors / (heads * per_track)).clamp(
        1,
        if adapter.eq_ignore_ascii_case("ide") {
            16383
        } else {
            u64::from(u32::MAX)
        },
    );
    (cylinders, heads, per_track)
}

/// The descriptor of a thick copy of `source` whose data is in `flat_name`: `monolithicFlat`
/// with a FLAT extent, or (`esx`) `vmfs` with a VMFS extent.
pub fn thick_descriptor(source: &Disk, flat_name: &str, esx: bool) -> Descriptor {
    let create_type = if esx {
        CreateType::Vmfs
    } else {
        CreateType::MonolithicFlat
    };
    let mut d = Descriptor::new(&create_type, new_cid());
    d.push_extent(ExtentLine {
        access: Access::ReadWrite,
        sectors: source.capacity() / SECTOR_SIZE,
        kind: if esx {
            ExtentKind::Vmfs
        } else {
            ExtentKind::Flat
        },
        file_name: Some(flat_name.to_string()),
        offset: 0,
    });
    for key in KEPT_DDB_KEYS {
        if let Some(v) = source.ddb(key) {
            d.set(key, v);
        }
    }
    let adapter = source
        .ddb("ddb.adapterType")
        .unwrap_or("lsilogic")
        .to_string();
    if d.get("ddb.adapterType").is_none() {
        d.set("ddb.adapterType", &adapter);
    }
    if d.get("ddb.geometry.cylinders").is_none() {
        let (c, h, s) = geometry(source.capacity(), &adapter);
        d.set("ddb.geometry.cylinders", &c.to_string());
        d.set("ddb.geometry.heads", &h.to_string());
        d.set("ddb.geometry.sectors", &s.to_string());
    }
    if d.get("ddb.virtualHWVersion").is_none() {
        d.set("ddb.virtualHWVersion", "4");
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geometry_follows_the_adapter() {
        assert_eq!(geometry(1 << 30, "ide"), (2080, 16, 63));
        assert_eq!(geometry(1 << 30, "lsilogic"), (1024, 64, 32));
        assert_eq!(geometry(10 << 30, "buslogic"), (1305, 255, 63));
        assert_eq!(geometry(512, "ide"), (1, 16, 63));
    }

    #[test]
    fn cids_are_not_reserved() {
        for _ in 0..100 {
            assert!(new_cid() < CID_NO_PARENT - 1);
        }
    }
}
