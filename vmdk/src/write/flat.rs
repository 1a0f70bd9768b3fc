//! Flat (thick) disks: descriptors of monolithicFlat, twoGbMaxExtentFlat and vmfs disks whose
//! data lies in flat extent files, written by the copy engine, and how a disk is cut into the
//! pieces of the twoGbMaxExtent types.
//!
//! Spec: "Simple Extents" (p. 5). Flat extent lines carry their offset (0); VMFS lines are
//! written without one, as ESXi writes them.

use super::ddb::DiskSettings;
use crate::descriptor::{Access, CreateType, Descriptor, ExtentKind, ExtentLine};
use crate::format::SECTOR_SIZE;

/// Largest extent of the twoGbMaxExtent types, in sectors (2047 MiB, as VMware splits them;
/// a multiple of the 64 KiB grain).
pub(crate) const TWO_GB_EXTENT_SECTORS: u64 = 4_192_256;

/// How a disk of `capacity` bytes is cut into extents of at most `max_sectors` sectors:
/// (first byte, length) of each.
pub(crate) fn split(capacity: u64, max_sectors: u64) -> Vec<(u64, u64)> {
    let step = max_sectors.max(1) * SECTOR_SIZE;
    let mut out = Vec::new();
    let mut start = 0;
    while start < capacity || (capacity == 0 && out.is_empty()) {
        let len = step.min(capacity - start);
        out.push((start, len));
        start += len;
        if len == 0 {
            break;
        }
    }
    out
}

/// The descriptor of a flat disk whose extents are `files` (name, length in bytes), in order:
/// FLAT extents for monolithicFlat and twoGbMaxExtentFlat, VMFS for vmfs.
pub(crate) fn flat_descriptor(
    create_type: &CreateType,
    files: &[(String, u64)],
    settings: &DiskSettings,
) -> Descriptor {
    let kind = if matches!(
        create_type,
        CreateType::Vmfs
            | CreateType::VmfsThin
            | CreateType::VmfsEagerZeroedThick
            | CreateType::VmfsPreallocated
    ) {
        ExtentKind::Vmfs
    } else {
        ExtentKind::Flat
    };
    let extents = files
        .iter()
        .map(|(name, len)| ExtentLine {
            access: Access::ReadWrite,
            sectors: len / SECTOR_SIZE,
            kind: kind.clone(),
            file_name: Some(name.clone()),
            offset: 0,
        })
        .collect();
    settings.descriptor(create_type, extents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_at_2047_mib() {
        let e = TWO_GB_EXTENT_SECTORS * 512;
        assert_eq!(
            split(5 << 30, TWO_GB_EXTENT_SECTORS),
            vec![(0, e), (e, e), (2 * e, (5 << 30) - 2 * e)]
        );
        assert_eq!(split(1 << 20, TWO_GB_EXTENT_SECTORS), vec![(0, 1 << 20)]);
        assert_eq!(split(2 * e, TWO_GB_EXTENT_SECTORS).len(), 2);
        assert_eq!(split(0, TWO_GB_EXTENT_SECTORS), vec![(0, 0)]);
    }
}
