//! A VM folder's snapshot list (`NAME.vmsd` beside `NAME.vmx`): each snapshot's name,
//! description, creation time, parent, and the disk file each of its disks was frozen as —
//! the link of the chain that holds the disk as it was when the snapshot was taken. The same
//! `key = "value"` syntax as the `.vmx`, read with the same parser and bounds.

use std::path::{Path, PathBuf};

use super::vmx::parse_settings;
use crate::error::{Error, Result};

/// Most snapshots listed, and disks of each.
const MAX_SNAPSHOTS: u32 = 1000;
const MAX_DISKS: u32 = 64;

/// One snapshot of a VM.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Snapshot {
    /// `uid`: what `parent` and `snapshot.current` name.
    pub uid: u32,
    /// The snapshot it was taken after, if any.
    pub parent: Option<u32>,
    /// `displayName`.
    pub name: String,
    /// `description`.
    pub description: String,
    /// When it was taken, seconds since 1970 (UTC), when the list says.
    pub created: Option<u64>,
    /// Each disk as it was frozen: its device (`scsi0:0`) and the disk file then current.
    pub disks: Vec<SnapshotDisk>,
    /// Whether it is the snapshot the VM runs on top of (`snapshot.current`).
    pub current: bool,
}

/// A disk of a [`Snapshot`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct SnapshotDisk {
    /// The device: `scsi0:0`.
    pub device: String,
    /// The disk file (a descriptor) that held the disk when the snapshot was taken.
    pub file: String,
}

/// The `.vmsd` of the VM whose `.vmx` is `vmx`: `NAME.vmsd` beside it.
pub(crate) fn path_of(vmx: &Path) -> PathBuf {
    vmx.with_extension("vmsd")
}

/// The snapshots a `.vmsd` text lists (`path` names it in errors), oldest uid first.
pub(crate) fn parse(text: &str, path: &Path) -> Result<Vec<Snapshot>> {
    let s = parse_settings(text, path)?;
    let current: Option<u32> = s
        .get("snapshot.current")
        .and_then(|v| v.trim().parse().ok());
    let mut out = Vec::new();
    for i in 0..MAX_SNAPSHOTS {
        let key = |k: &str| format!("snapshot{i}.{k}");
        let Some(uid) = s.get(&key("uid")) else {
            continue;
        };
        let uid: u32 = uid.trim().parse().map_err(|_| Error::Config {
            path: path.to_path_buf(),
            line: 0,
            reason: format!("snapshot{i}.uid is not a number"),
        })?;
        let parent = s.get(&key("parent")).and_then(|v| v.trim().parse().ok());
        // Microseconds since 1970, as two signed 32-bit halves.
        let half = |k: &str| s.get(&key(k)).and_then(|v| v.trim().parse::<i64>().ok());
        let created = match (half("createTimeHigh"), half("createTimeLow")) {
            (Some(h), Some(l)) => {
                let micros = ((h as u64 & 0xffff_ffff) << 32) | (l as u64 & 0xffff_ffff);
                Some(micros / 1_000_000)
            }
            _ => None,
        };
        let mut disks = Vec::new();
        for d in 0..MAX_DISKS {
            let file = s.get(&key(&format!("disk{d}.fileName")));
            let node = s.get(&key(&format!("disk{d}.node")));
            if let (Some(file), Some(node)) = (file, node) {
                disks.push(SnapshotDisk {
                    device: node.to_string(),
                    file: file.to_string(),
                });
            }
        }
        out.push(Snapshot {
            uid,
            parent,
            name: s.get(&key("displayName")).unwrap_or_default().to_string(),
            description: s.get(&key("description")).unwrap_or_default().to_string(),
            created,
            disks,
            current: current == Some(uid),
        });
    }
    out.sort_by_key(|s| s.uid);
    Ok(out)
}

/// The snapshot called `wanted` (its display name, or its uid).
pub(crate) fn find<'a>(snapshots: &'a [Snapshot], wanted: &str) -> Option<&'a Snapshot> {
    snapshots
        .iter()
        .find(|s| s.name == wanted)
        .or_else(|| snapshots.iter().find(|s| s.uid.to_string() == wanted))
}

#[cfg(test)]
mod tests {
    use super::*;

    const VMSD: &str = r#".encoding = "UTF-8"
snapshot.lastUID = "2"
snapshot.current = "2"
snapshot0.uid = "1"
snapshot0.filename = "web-Snapshot1.vmsn"
snapshot0.displayName = "before upgrade"
snapshot0.description = "clean |22install|22"
snapshot0.createTimeHigh = "406441"
snapshot0.createTimeLow = "-1851591469"
snapshot0.numDisks = "1"
snapshot0.disk0.fileName = "web.vmdk"
snapshot0.disk0.node = "scsi0:0"
snapshot1.uid = "2"
snapshot1.parent = "1"
snapshot1.displayName = "after upgrade"
snapshot1.disk0.fileName = "web-000001.vmdk"
snapshot1.disk0.node = "scsi0:0"
snapshot.numSnapshots = "2"
"#;

    #[test]
    fn snapshots_with_their_disks_parents_and_times() {
        let s = parse(VMSD, Path::new("web.vmsd")).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].uid, s[0].parent, s[0].current), (1, None, false));
        assert_eq!(s[0].name, "before upgrade");
        assert_eq!(s[0].description, "clean \"install\"");
        // 406441 << 32 | (-1851591469 as u32) microseconds: 2024-03-14.
        let micros = (406_441u64 << 32) | u64::from(-1_851_591_469i32 as u32);
        assert_eq!(s[0].created, Some(micros / 1_000_000));
        assert_eq!(s[0].disks[0].file, "web.vmdk");
        assert_eq!(
            (s[1].parent, s[1].current, s[1].created),
            (Some(1), true, None)
        );
        assert_eq!(find(&s, "after upgrade").unwrap().uid, 2);
        assert_eq!(find(&s, "1").unwrap().name, "before upgrade");
        assert!(find(&s, "none").is_none());
        assert!(parse("snapshot0.uid = \"x\"\n", Path::new("v.vmsd")).is_err());
    }
}
