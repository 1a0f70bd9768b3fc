//! What a disk is, as data: [`Disk::info`] gives the createType, capacity, content IDs, disk
//! database and extents of each link of the chain, with the sparse extents' header fields, and
//! the allocation summary. With the `serde` feature these serialise to the JSON that
//! `ovf-disk info --json` prints (the shape is documented in the README).

use std::path::PathBuf;

use crate::disk::{AllocationSummary, Disk, Extent, ExtentData};
use crate::error::Result;
use crate::read::sparse::MetadataSource;

/// A disk: its first link, the allocation over the whole chain, and the parent links.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct DiskInfo {
    /// The link that was opened.
    #[cfg_attr(feature = "serde", serde(flatten))]
    pub link: LinkInfo,
    /// Bytes of data, zeroed and unallocated space, resolved through the parents.
    pub allocation: AllocationSummary,
    /// The parent links, nearest first.
    pub chain: Vec<LinkInfo>,
}

/// One link of a disk's chain.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct LinkInfo {
    /// The file the link was opened from.
    pub file: PathBuf,
    /// Its `createType`, as written.
    pub create_type: String,
    /// Its capacity in bytes.
    pub capacity: u64,
    /// `CID`, when the descriptor gives one.
    #[cfg_attr(feature = "serde", serde(serialize_with = "hex::option"))]
    pub cid: Option<u32>,
    /// `parentCID`, when the descriptor gives one (`ffffffff`: no parent).
    #[cfg_attr(feature = "serde", serde(serialize_with = "hex::option"))]
    pub parent_cid: Option<u32>,
    /// `parentFileNameHint`, for a delta link.
    pub parent_file_name_hint: Option<String>,
    /// Its extents in disk order.
    pub extents: Vec<ExtentInfo>,
    /// Its disk database (`ddb.*` keys as written, in order).
    #[cfg_attr(feature = "serde", serde(serialize_with = "pairs::as_map"))]
    pub ddb: Vec<(String, String)>,
}

/// One extent of a link.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct ExtentInfo {
    /// `RW`, `RDONLY` or `NOACCESS`.
    pub access: String,
    /// `FLAT`, `SPARSE`, `ZERO`, `VMFS`.
    pub kind: String,
    /// Size in sectors.
    pub sectors: u64,
    /// The file name as the descriptor writes it (none for ZERO).
    pub file: Option<String>,
    /// Byte offset of the extent in the disk.
    pub start: u64,
    /// Size in bytes.
    pub size: u64,
    /// The file opened (none for ZERO).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub path: Option<PathBuf>,
    /// Byte offset of the data in a flat extent's file.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub offset: Option<u64>,
    /// The header of a sparse extent.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub sparse: Option<SparseInfo>,
}

/// The header fields of a hosted sparse or stream-optimized extent (spec p. 6).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct SparseInfo {
    /// `version`: 1, 2 or 3.
    pub version: u32,
    /// `flags`.
    #[cfg_attr(feature = "serde", serde(serialize_with = "hex::flags"))]
    pub flags: u32,
    /// Grain size in bytes.
    pub grain_size: u64,
    /// The extent's own capacity in bytes.
    pub capacity: u64,
    /// Whether grains are compressed.
    pub compressed: bool,
    /// Whether blocks carry markers.
    pub markers: bool,
    /// `numGTEsPerGT`.
    pub num_gtes_per_gt: u32,
    /// `gdOffset`, in sectors.
    pub gd_offset: u64,
    /// `rgdOffset`, in sectors.
    pub rgd_offset: u64,
    /// Entries of the grain directory.
    pub grain_tables: u64,
    /// Whether the metadata in effect is the header's or the footer's.
    pub metadata_from: MetadataSource,
}

#[cfg(feature = "serde")]
mod hex {
    pub(super) fn option<S: serde::Serializer>(v: &Option<u32>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(c) => s.serialize_str(&format!("{c:08x}")),
            None => s.serialize_none(),
        }
    }

    pub(super) fn flags<S: serde::Serializer>(v: &u32, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{v:#x}"))
    }
}

#[cfg(feature = "serde")]
mod pairs {
    use serde::ser::SerializeMap;

    pub(super) fn as_map<S: serde::Serializer>(
        v: &[(String, String)],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(v.len()))?;
        for (k, x) in v {
            m.serialize_entry(k, x)?;
        }
        m.end()
    }
}

impl ExtentInfo {
    fn of(e: &Extent) -> Self {
        let (path, offset, sparse) = match &e.data {
            ExtentData::Flat { backing, offset } => {
                (Some(backing.path().to_path_buf()), Some(*offset), None)
            }
            ExtentData::Zero => (None, None, None),
            ExtentData::Sparse(s) => {
                let h = s.header();
                let info = SparseInfo {
                    version: s.version(),
                    flags: s.flags(),
                    grain_size: s.grain_bytes(),
                    capacity: s.capacity_bytes(),
                    compressed: s.is_compressed(),
                    markers: s.has_markers(),
                    num_gtes_per_gt: h.num_gtes_per_gt.get(),
                    gd_offset: h.gd_offset.get(),
                    rgd_offset: h.rgd_offset.get(),
                    grain_tables: s.grain_directory().len() as u64,
                    metadata_from: s.metadata_source(),
                };
                (Some(s.backing().path().to_path_buf()), None, Some(info))
            }
        };
        Self {
            access: e.line.access.as_str().to_string(),
            kind: e.line.kind.as_str().to_string(),
            sectors: e.line.sectors,
            file: e.line.file_name.clone(),
            start: e.start,
            size: e.len,
            path,
            offset,
            sparse,
        }
    }
}

impl LinkInfo {
    fn of(disk: &Disk) -> Self {
        let d = disk.descriptor();
        Self {
            file: disk.path().to_path_buf(),
            create_type: disk.create_type().as_str().to_string(),
            capacity: disk.capacity(),
            cid: d.cid(),
            parent_cid: d.parent_cid(),
            parent_file_name_hint: d.parent_file_name_hint().map(str::to_string),
            extents: disk.extents().iter().map(ExtentInfo::of).collect(),
            ddb: d
                .pairs()
                .filter(|(k, _)| k.to_ascii_lowercase().starts_with("ddb."))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }
}

impl Disk {
    /// What the disk is: each link's type, capacity, IDs, database and extents (with their
    /// sparse headers), and the allocation summary over the whole disk. The work follows the
    /// grain tables present, as [`Disk::allocation_summary`]'s does.
    ///
    /// ```
    /// let disk = vmdk::Disk::open("../testdata/fuzz-seeds/disk/stream-vmware.vmdk")?;
    /// let info = disk.info()?;
    /// assert_eq!(info.link.create_type, "streamOptimized");
    /// let sparse = info.link.extents[0].sparse.as_ref().unwrap();
    /// assert!(sparse.compressed && sparse.markers);
    /// # Ok::<(), vmdk::Error>(())
    /// ```
    pub fn info(&self) -> Result<DiskInfo> {
        Ok(DiskInfo {
            link: LinkInfo::of(self),
            allocation: self.allocation_summary()?,
            chain: self.chain().skip(1).map(LinkInfo::of).collect(),
        })
    }
}
