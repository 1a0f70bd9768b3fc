//! What a disk is, as data: [`Disk::info`] gives the createType, capacity, content IDs, disk
//! database and extents of each link of the chain, with the sparse extents' header fields (the
//! hosted header, or the ESXi delta headers: COWD, seSparse), and the allocation summary. With the `serde` feature these serialise to the JSON that
//! `ovf-disk info --json` prints (the shape is documented in the README).

use std::path::PathBuf;

use crate::disk::{AllocationSummary, Disk, Extent, ExtentData};
use crate::error::Result;
use crate::read::esx::{EsxExtent, EsxFormat};
use crate::read::grains::Grains;
use crate::read::qcow2::Qcow2Extent;
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
    /// `FLAT`, `SPARSE`, `ZERO`, `VMFS`, `VMFSSPARSE`, `SESPARSE`.
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
    /// The header of a hosted sparse extent.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub sparse: Option<SparseInfo>,
    /// The header of an ESXi sparse (vmfsSparse, `COWD`) extent.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub cowd: Option<CowdInfo>,
    /// The headers of a seSparse extent.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub sesparse: Option<SeSparseInfo>,
    /// The header of a qcow2 image.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub qcow2: Option<Qcow2Info>,
}

/// The header fields of a qcow2 image (qemu's `docs/interop/qcow2.txt`), as `qemu-img info`
/// shows them.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Qcow2Info {
    /// `version`: 2 (compat 0.10) or 3 (compat 1.1).
    pub version: u32,
    /// Cluster size in bytes.
    pub cluster_size: u64,
    /// Compression type of compressed clusters: `zlib` or `zstd`.
    pub compression_type: String,
    /// Refcount width in bits.
    pub refcount_bits: u32,
    /// Incompatible feature bits (dirty, corrupt, compression type).
    #[cfg_attr(feature = "serde", serde(serialize_with = "hex::u64"))]
    pub incompatible_features: u64,
    /// Compatible feature bits (bit 0: lazy refcounts).
    #[cfg_attr(feature = "serde", serde(serialize_with = "hex::u64"))]
    pub compatible_features: u64,
    /// Internal snapshots (not read: the active state is the disk).
    pub snapshots: u32,
    /// Entries of the L1 table, as written.
    pub l1_size: u32,
    /// L1 entries that name an L2 table.
    pub l2_tables: u64,
    /// The backing file's name as written.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub backing_file: Option<String>,
    /// The backing file's format, from the header extension.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub backing_format: Option<String>,
}

impl Qcow2Info {
    fn of(q: &Qcow2Extent) -> Self {
        let h = q.header();
        Self {
            version: h.version.get(),
            cluster_size: q.grain_bytes(),
            compression_type: q.compression().as_str().to_string(),
            refcount_bits: 1u32.checked_shl(h.refcount_order.get()).unwrap_or(0),
            incompatible_features: h.incompatible_features.get(),
            compatible_features: h.compatible_features.get(),
            snapshots: h.nb_snapshots.get(),
            l1_size: h.l1_size.get(),
            l2_tables: q
                .l1()
                .iter()
                .filter(|&&e| e & 0x00ff_ffff_ffff_fe00 != 0)
                .count() as u64,
            backing_file: q.backing_file().map(str::to_string),
            backing_format: q.backing_format().map(str::to_string),
        }
    }
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

/// The header fields of an ESXi sparse extent (vmfsSparse, `COWD`; [`crate::format::CowdHeader`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct CowdInfo {
    /// `version`: 1.
    pub version: u32,
    /// `flags`.
    #[cfg_attr(feature = "serde", serde(serialize_with = "hex::flags"))]
    pub flags: u32,
    /// Grain size in bytes.
    pub grain_size: u64,
    /// The extent's own capacity in bytes.
    pub capacity: u64,
    /// Entries per grain table (4096).
    pub num_gtes_per_gt: u64,
    /// `gdOffset`, in sectors.
    pub gd_offset: u64,
    /// `numGDEntries`, as written.
    pub num_gd_entries: u32,
    /// Entries of the grain directory the capacity needs (those read).
    pub grain_tables: u64,
    /// `freeSector`: where the next grain or table goes.
    pub free_sector: u32,
}

/// The header fields of a seSparse extent ([`crate::format::SeSparseConstHeader`] and
/// [`crate::format::SeSparseVolatileHeader`]); offsets and sizes in sectors, as written. A
/// journal that needs replaying is refused when the disk is opened, so an extent shown here has
/// a clean one.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct SeSparseInfo {
    /// `version`: `0x200000001`.
    #[cfg_attr(feature = "serde", serde(serialize_with = "hex::u64"))]
    pub version: u64,
    /// Grain size in bytes.
    pub grain_size: u64,
    /// The extent's own capacity in bytes.
    pub capacity: u64,
    /// Entries per grain table.
    pub num_gtes_per_gt: u64,
    /// Entries of the grain directory the capacity needs (those read).
    pub grain_tables: u64,
    /// `journal_offset`.
    pub journal_offset: u64,
    /// `journal_size`.
    pub journal_size: u64,
    /// `grain_dir_offset`.
    pub grain_dir_offset: u64,
    /// `grain_dir_size`.
    pub grain_dir_size: u64,
    /// `grain_tables_offset`.
    pub grain_tables_offset: u64,
    /// `grain_tables_size`.
    pub grain_tables_size: u64,
    /// `grains_offset`.
    pub grains_offset: u64,
    /// `grains_size`.
    pub grains_size: u64,
    /// The volatile header's `free_gt_number`: grain tables in use.
    pub free_gt_number: u64,
    /// The volatile header's `next_txn_seq_number`.
    pub next_txn_seq_number: u64,
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

    pub(super) fn u64<S: serde::Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
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

impl CowdInfo {
    fn of(s: &EsxExtent) -> Option<Self> {
        let EsxFormat::Cowd(h) = s.format() else {
            return None;
        };
        Some(Self {
            version: h.version.get(),
            flags: h.flags.get(),
            grain_size: s.grain_bytes(),
            capacity: s.capacity_bytes(),
            num_gtes_per_gt: s.gtes_per_gt(),
            gd_offset: h.gd_offset.get().into(),
            num_gd_entries: h.num_gd_entries.get(),
            grain_tables: s.directory().len() as u64,
            free_sector: h.free_sector.get(),
        })
    }
}

impl SeSparseInfo {
    fn of(s: &EsxExtent) -> Option<Self> {
        let EsxFormat::SeSparse {
            header: h,
            volatile: v,
            ..
        } = s.format()
        else {
            return None;
        };
        Some(Self {
            version: h.version.get(),
            grain_size: s.grain_bytes(),
            capacity: s.capacity_bytes(),
            num_gtes_per_gt: s.gtes_per_gt(),
            grain_tables: s.directory().len() as u64,
            journal_offset: h.journal_offset.get(),
            journal_size: h.journal_size.get(),
            grain_dir_offset: h.grain_dir_offset.get(),
            grain_dir_size: h.grain_dir_size.get(),
            grain_tables_offset: h.grain_tables_offset.get(),
            grain_tables_size: h.grain_tables_size.get(),
            grains_offset: h.grains_offset.get(),
            grains_size: h.grains_size.get(),
            free_gt_number: v.free_gt_number.get(),
            next_txn_seq_number: v.next_txn_seq_number.get(),
        })
    }
}

impl ExtentInfo {
    fn of(e: &Extent) -> Self {
        let (cowd, sesparse) = match &e.data {
            ExtentData::Esx(s) => (CowdInfo::of(s), SeSparseInfo::of(s)),
            _ => (None, None),
        };
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
            ExtentData::Esx(s) => (Some(s.backing().path().to_path_buf()), None, None),
            ExtentData::Qcow2(q) => (Some(q.backing().path().to_path_buf()), None, None),
        };
        let qcow2 = match &e.data {
            ExtentData::Qcow2(q) => Some(Qcow2Info::of(q)),
            _ => None,
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
            cowd,
            sesparse,
            qcow2,
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
            cid: d.cid().filter(|_| disk.is_vmdk()),
            parent_cid: d.parent_cid().filter(|_| disk.is_vmdk()),
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

    /// This link's header and descriptor fields alone: what [`Disk::info`] gives without the
    /// allocation walk or the parents.
    pub fn link_info(&self) -> LinkInfo {
        LinkInfo::of(self)
    }
}
