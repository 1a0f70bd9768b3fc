//! The disk database (`ddb.*`) of disks this library writes: adapter type, geometry, hardware
//! and tools versions, content IDs.
//!
//! Spec: "The Disk Database" (p. 5). Values are taken from the source disk (searched up its
//! parent chain, as the spec says), overridden by the caller, and otherwise computed the way
//! VMware does (geometry from the adapter type and capacity).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};

use super::options::WriteOptions;
use crate::descriptor::{CreateType, Descriptor, ExtentLine, CID_NO_PARENT};
use crate::disk::Disk;
use crate::format::SECTOR_SIZE;

/// A random 32-bit value, different at each call.
fn random_u32() -> u32 {
    let mut h = RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish() as u32
}

/// A fresh content ID: random, never `ffffffff` or `fffffffe` (which VMware reserves).
pub(crate) fn new_cid() -> u32 {
    loop {
        let cid = random_u32();
        if cid < CID_NO_PARENT - 1 {
            return cid;
        }
    }
}

/// A fresh `ddb.longContentID`: 32 hex digits, its last 8 the `CID` (as VMware writes it).
pub(crate) fn long_content_id(cid: u32) -> String {
    format!(
        "{:08x}{:08x}{:08x}{cid:08x}",
        random_u32(),
        random_u32(),
        random_u32()
    )
}

/// Cylinders, heads and sectors per track for a disk of `capacity` bytes on `adapter`, as
/// VMware computes them: IDE 16 heads × 63 sectors; SCSI 64 × 32 up to 1 GiB, else 255 × 63.
pub(crate) fn geometry(capacity: u64, adapter: &str) -> (u64, u64, u64) {
    let sectors = capacity / SECTOR_SIZE;
    let ide = adapter.eq_ignore_ascii_case("ide");
    let (heads, per_track) = if ide {
        (16, 63)
    } else if capacity <= 1 << 30 {
        (64, 32)
    } else {
        (255, 63)
    };
    let cylinders =
        (sectors / (heads * per_track)).clamp(1, if ide { 16383 } else { u64::from(u32::MAX) });
    (cylinders, heads, per_track)
}

/// What goes in the disk database of a disk we write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DiskSettings {
    /// `ddb.adapterType`.
    pub adapter_type: String,
    /// `ddb.virtualHWVersion`.
    pub hw_version: String,
    /// `ddb.toolsVersion`, if known.
    pub tools_version: Option<String>,
    /// `ddb.geometry.cylinders`, `.heads`, `.sectors`.
    pub geometry: (u64, u64, u64),
    /// Capacity in bytes (for geometry when the adapter changes).
    pub capacity: u64,
    /// `CID` to write instead of a random one (reproducible output); the long content ID is
    /// then derived from it.
    pub cid: Option<u32>,
}

impl DiskSettings {
    /// Defaults for a disk of `capacity` bytes with no source database: lsilogic, hardware 4.
    pub fn new(capacity: u64) -> Self {
        Self {
            adapter_type: "lsilogic".into(),
            hw_version: "4".into(),
            tools_version: None,
            geometry: geometry(capacity, "lsilogic"),
            capacity,
            cid: None,
        }
    }

    /// The source disk's settings, defaults where it has none.
    pub fn from_disk(disk: &Disk) -> Self {
        Self::from_lookup(disk.capacity(), |k| disk.ddb(k))
    }

    /// The settings a descriptor gives (a stream's embedded descriptor), defaults elsewhere.
    pub fn from_descriptor(d: &Descriptor, capacity: u64) -> Self {
        Self::from_lookup(capacity, |k| d.get(k))
    }

    /// These settings for the disk grown to `capacity` bytes (a thick output larger than its
    /// source): the geometry follows the new capacity.
    pub fn grown_to(mut self, capacity: u64) -> Self {
        if capacity != self.capacity {
            self.capacity = capacity;
            self.geometry = geometry(capacity, &self.adapter_type);
        }
        self
    }

    /// These settings with the overrides `options` gives (adapter type, hardware version, CID).
    pub fn with(mut self, options: &WriteOptions) -> Self {
        if let Some(a) = &options.adapter_type {
            self.set_adapter_type(a);
        }
        if let Some(h) = &options.hw_version {
            self.hw_version = h.clone();
        }
        if options.cid.is_some() {
            self.cid = options.cid;
        }
        self
    }

    /// The settings `lookup` gives for a disk of `capacity` bytes, defaults where it gives none.
    fn from_lookup<'a>(capacity: u64, lookup: impl Fn(&str) -> Option<&'a str>) -> Self {
        let mut s = Self::new(capacity);
        if let Some(a) = lookup("ddb.adapterType") {
            s.adapter_type = a.to_string();
        }
        s.geometry = geometry(capacity, &s.adapter_type);
        let num = |k: &str| lookup(k).and_then(|v| v.trim().parse::<u64>().ok());
        if let (Some(c), Some(h), Some(p)) = (
            num("ddb.geometry.cylinders"),
            num("ddb.geometry.heads"),
            num("ddb.geometry.sectors"),
        ) {
            s.geometry = (c, h, p);
        }
        if let Some(v) = lookup("ddb.virtualHWVersion") {
            s.hw_version = v.to_string();
        }
        s.tools_version = lookup("ddb.toolsVersion").map(str::to_string);
        s
    }

    /// Changes the adapter type; the geometry follows it.
    pub fn set_adapter_type(&mut self, adapter: &str) {
        if !self.adapter_type.eq_ignore_ascii_case(adapter) {
            self.adapter_type = adapter.to_string();
            self.geometry = geometry(self.capacity, adapter);
        }
    }

    /// Writes the settings into a descriptor's database.
    fn apply(&self, d: &mut Descriptor) {
        d.set("ddb.adapterType", &self.adapter_type);
        d.set("ddb.geometry.cylinders", &self.geometry.0.to_string());
        d.set("ddb.geometry.heads", &self.geometry.1.to_string());
        d.set("ddb.geometry.sectors", &self.geometry.2.to_string());
        d.set("ddb.virtualHWVersion", &self.hw_version);
        if let Some(t) = &self.tools_version {
            d.set("ddb.toolsVersion", t);
        }
    }

    /// A new descriptor of `create_type` with `extents`, a fresh CID and long content ID, and
    /// these settings.
    pub fn descriptor(&self, create_type: &CreateType, extents: Vec<ExtentLine>) -> Descriptor {
        let cid = self.cid.unwrap_or_else(new_cid);
        let mut d = Descriptor::new(create_type, cid);
        for e in extents {
            d.push_extent(e);
        }
        self.apply(&mut d);
        let long = match self.cid {
            Some(c) => format!("{c:08x}").repeat(4),
            None => long_content_id(cid),
        };
        d.set("ddb.longContentID", &long);
        d
    }
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
    fn ids_are_fresh_and_not_reserved() {
        let a = new_cid();
        assert!(a < CID_NO_PARENT - 1);
        let l = long_content_id(a);
        assert_eq!(l.len(), 32);
        assert!(l.ends_with(&format!("{a:08x}")));
        assert_ne!(long_content_id(a), l);
    }

    #[test]
    fn settings_land_in_the_descriptor() {
        let mut s = DiskSettings::new(10 << 30);
        s.set_adapter_type("ide");
        let d = s.descriptor(&CreateType::StreamOptimized, vec![]);
        assert_eq!(d.get("ddb.adapterType"), Some("ide"));
        assert_eq!(d.get("ddb.geometry.heads"), Some("16"));
        assert_eq!(d.get("ddb.virtualHWVersion"), Some("4"));
        assert_eq!(Descriptor::parse(&d.print()).unwrap(), d);
    }
}
