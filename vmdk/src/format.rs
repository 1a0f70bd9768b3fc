//! Raw on-disk structures of hosted sparse and stream-optimized extents and of the ESXi delta
//! extents (vmfsSparse `COWD`, seSparse), with their constants.
//!
//! Everything here is a `zerocopy` struct with explicit little-endian fields, read in place from
//! the bytes of a file and written back the same way; no parsing logic lives here, only layout
//! (the checks a header must pass are in the readers). Hosted extents: VMware "Virtual Disk
//! Format 5.0", sections "Hosted Sparse Extent Header" (p. 6), "Hosted Sparse Extent Metadata"
//! (p. 8) and "Stream-Optimized Compressed" (pp. 11-13). The ESXi delta formats are not in that
//! technote: [`CowdHeader`] follows VMware's `COWDisk_Header` as qemu's `block/vmdk.c`
//! (`VMDK3Header`, `vmdk_open_vmfs_sparse`) and libvmdk's documentation lay it out;
//! [`SeSparseConstHeader`] and [`SeSparseVolatileHeader`] follow qemu's `block/vmdk.c`
//! (`VMDKSESparseConstHeader`, `vmdk_open_se_sparse`), the only public description of seSparse
//! (VMware KB 2145462 introduces the format, without its layout).
//!
//! ```
//! use vmdk::format::{SparseExtentHeader, MetadataMarker};
//! use zerocopy::FromBytes;
//!
//! let mut sector = [0u8; 512];
//! sector[..4].copy_from_slice(b"KDMV");
//! let header = SparseExtentHeader::read_from_bytes(&sector[..]).unwrap();
//! assert_eq!(header.magic_number.get(), SparseExtentHeader::MAGIC);
//! assert_eq!(size_of::<MetadataMarker>(), 512);
//! ```

use std::mem::offset_of;

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Bytes in a sector: every offset and size in the format is counted in these.
pub const SECTOR_SIZE: u64 = 512;

/// Grain table entry: grain not allocated (read the parent, or zeros).
pub(crate) const GTE_UNALLOCATED: u32 = 0;
/// Grain table entry: grain reads as zeros, even over a parent (needs `FLAG_ZEROED_GRAIN_GTE`).
pub(crate) const GTE_ZEROED: u32 = 1;

/// `SparseExtentHeader`, 512 bytes at sector 0 of a hosted sparse extent (spec p. 6), and again
/// as the footer of a stream-optimized extent (p. 13). Packed: `capacity` sits at byte 12.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct SparseExtentHeader {
    /// [`SparseExtentHeader::MAGIC`].
    pub magic_number: U32,
    /// 1, 2 (zeroed-grain GTEs) or 3 (stream-optimized as written by VMware and qemu).
    pub version: U32,
    /// `FLAG_*` bits.
    pub flags: U32,
    /// Capacity of this extent, in sectors.
    pub capacity: U64,
    /// Grain size in sectors, a power of two.
    pub grain_size: U64,
    /// Sector of the embedded descriptor, 0 when none.
    pub descriptor_offset: U64,
    /// Size of the embedded descriptor in sectors.
    pub descriptor_size: U64,
    /// Entries per grain table, 512 in every hosted product.
    pub num_gtes_per_gt: U32,
    /// Sector of the redundant grain directory.
    pub rgd_offset: U64,
    /// Sector of the grain directory, or [`SparseExtentHeader::GD_AT_END`].
    pub gd_offset: U64,
    /// Sectors occupied by metadata before the first grain.
    pub over_head: U64,
    /// Non-zero while the extent is open for writing.
    pub unclean_shutdown: u8,
    /// `'\n'`.
    pub single_end_line_char: u8,
    /// `' '`.
    pub non_end_line_char: u8,
    /// `'\r'`.
    pub double_end_line_char1: u8,
    /// `'\n'`.
    pub double_end_line_char2: u8,
    /// [`SparseExtentHeader::COMPRESSION_NONE`] or [`SparseExtentHeader::COMPRESSION_DEFLATE`].
    pub compress_algorithm: U16,
    /// Zero.
    pub pad: [u8; 433],
}

/// Byte offset of a field of [`SparseExtentHeader`], for error messages.
macro_rules! at {
    ($field:ident) => {
        offset_of!(SparseExtentHeader, $field) as u64
    };
}

impl SparseExtentHeader {
    /// `magicNumber` of a hosted sparse extent: `'K' 'D' 'M' 'V'` on disk.
    pub const MAGIC: u32 = 0x564d_444b;
    /// Flag bit 0: the newline detection characters are valid.
    pub const FLAG_VALID_NEWLINE_DETECTOR: u32 = 1 << 0;
    /// Flag bit 1: the redundant grain directory (`rgdOffset`) is used.
    pub const FLAG_USE_REDUNDANT: u32 = 1 << 1;
    /// Flag bit 2: grain table entries of value 1 mean "zeroed grain".
    pub const FLAG_ZEROED_GRAIN_GTE: u32 = 1 << 2;
    /// Flag bit 16: grains are compressed with `compressAlgorithm`.
    pub const FLAG_COMPRESSED: u32 = 1 << 16;
    /// Flag bit 17: every block is preceded by a marker (grain markers carry their LBA).
    pub const FLAG_MARKERS: u32 = 1 << 17;
    /// Incompatible flag bits: a reader must understand every one that is set.
    pub const FLAG_INCOMPAT_MASK: u32 = 0xffff_0000;
    /// `compressAlgorithm`: none.
    pub const COMPRESSION_NONE: u16 = 0;
    /// `compressAlgorithm`: deflate (written by VMware and qemu as a zlib stream).
    pub const COMPRESSION_DEFLATE: u16 = 1;
    /// `gdOffset` of the header of a stream-optimized extent whose directory is found through
    /// the footer at the end of the file.
    pub const GD_AT_END: u64 = u64::MAX;

    /// Incompatible flags this library understands.
    pub(crate) const FLAG_INCOMPAT_KNOWN: u32 = Self::FLAG_COMPRESSED | Self::FLAG_MARKERS;
    pub(crate) const AT_VERSION: u64 = at!(version);
    pub(crate) const AT_FLAGS: u64 = at!(flags);
    pub(crate) const AT_CAPACITY: u64 = at!(capacity);
    pub(crate) const AT_GRAIN_SIZE: u64 = at!(grain_size);
    pub(crate) const AT_DESCRIPTOR_OFFSET: u64 = at!(descriptor_offset);
    pub(crate) const AT_DESCRIPTOR_SIZE: u64 = at!(descriptor_size);
    pub(crate) const AT_NUM_GTES_PER_GT: u64 = at!(num_gtes_per_gt);
    pub(crate) const AT_RGD_OFFSET: u64 = at!(rgd_offset);
    pub(crate) const AT_GD_OFFSET: u64 = at!(gd_offset);
    pub(crate) const AT_OVER_HEAD: u64 = at!(over_head);
    pub(crate) const AT_NEWLINE_CHARS: u64 = at!(single_end_line_char);
    pub(crate) const AT_COMPRESS_ALGORITHM: u64 = at!(compress_algorithm);
}

/// The 12 bytes that start every marker (spec p. 12): for a grain marker `val` is the grain's
/// LBA in sectors and `size` the compressed length; for a metadata marker `size` is 0 and a
/// `type` word follows (see [`MetadataMarker`]).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct GrainMarker {
    /// LBA of the grain, in sectors.
    pub lba: U64,
    /// Bytes of compressed data that follow.
    pub size: U32,
}

impl GrainMarker {
    /// Size of a grain marker on disk.
    pub const SIZE: u64 = 12;
}

/// A metadata marker, one full sector (spec p. 13): grain table, grain directory, footer or
/// end-of-stream.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct MetadataMarker {
    /// Sectors of metadata that follow the marker (0 for end-of-stream).
    pub num_sectors: U64,
    /// Always 0: this is how a metadata marker differs from a grain marker.
    pub size: U32,
    /// One of the `MetadataMarker` type constants.
    pub marker_type: U32,
    /// Zero, ignored on read.
    pub pad: [u8; 496],
}

impl MetadataMarker {
    /// Marker type: end of stream.
    pub const EOS: u32 = 0;
    /// Marker type: a grain table follows.
    pub const GT: u32 = 1;
    /// Marker type: the grain directory follows.
    pub const GD: u32 = 2;
    /// Marker type: the footer (a copy of the header) follows.
    pub const FOOTER: u32 = 3;

    /// A marker of `marker_type` announcing `num_sectors` sectors of metadata.
    pub fn new(num_sectors: u64, marker_type: u32) -> Self {
        Self {
            num_sectors: U64::new(num_sectors),
            size: U32::new(0),
            marker_type: U32::new(marker_type),
            pad: [0; 496],
        }
    }
}

/// The header of an ESXi sparse extent (createType `vmfsSparse`, extent lines `VMFSSPARSE`):
/// VMware's `COWDisk_Header`, 2048 bytes at the start of the file, magic `COWD`, version 1.
///
/// Layout as qemu's `block/vmdk.c` reads it (`VMDK3Header`: the eight words from `magicNumber`
/// to `freeSector`, which is all a reader needs) and libvmdk's documentation gives the rest.
/// The grain directory (`numGDEntries` little-endian `u32` sectors of grain tables, 0 where
/// none) lies at `gdOffset`; every grain table has [`CowdHeader::GTES_PER_GT`] `u32` entries,
/// each the sector of a grain of `grainSize` sectors (1 in every file ESXi writes), 0 where the
/// grain is not allocated (read the parent). There is no zeroed-grain entry.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct CowdHeader {
    /// [`CowdHeader::MAGIC`].
    pub magic_number: U32,
    /// [`CowdHeader::VERSION`].
    pub version: U32,
    /// Flags (not interpreted by readers).
    pub flags: U32,
    /// Capacity of this extent, in sectors.
    pub num_sectors: U32,
    /// Grain size in sectors.
    pub grain_size: U32,
    /// Sector of the grain directory.
    pub gd_offset: U32,
    /// Entries of the grain directory.
    pub num_gd_entries: U32,
    /// The next free sector of the file (where the next grain or table goes).
    pub free_sector: U32,
    /// A union: cylinders, heads and sectors (three `u32`) for a root disk; the parent's file
    /// name (1024 bytes) and generation (`u32`) for a child of ESX 2 (descriptors name parents
    /// since).
    pub geometry_or_parent: [u8; 1028],
    /// Generation.
    pub generation: U32,
    /// Name.
    pub name: [u8; 60],
    /// Description.
    pub description: [u8; 512],
    /// Saved generation.
    pub saved_generation: U32,
    /// Reserved.
    pub reserved: [u8; 8],
    /// Non-zero while the extent is open for writing.
    pub unclean_shutdown: U32,
    /// Zero.
    pub pad: [u8; 396],
}

/// Byte offset of a field of a header struct, for error messages.
macro_rules! at_of {
    ($ty:ty, $field:ident) => {
        offset_of!($ty, $field) as u64
    };
}

impl CowdHeader {
    /// `magicNumber`: `'C' 'O' 'W' 'D'` on disk.
    pub const MAGIC: u32 = 0x4457_4f43;
    /// The only version written and read.
    pub const VERSION: u32 = 1;
    /// Bytes of the header, before anything else may lie in the file.
    pub const SIZE: u64 = 2048;
    /// Entries of every grain table (fixed by the format; qemu's `vmdk_open_vmfs_sparse`).
    pub const GTES_PER_GT: u64 = 4096;

    pub(crate) const AT_VERSION: u64 = at_of!(Self, version);
    pub(crate) const AT_NUM_SECTORS: u64 = at_of!(Self, num_sectors);
    pub(crate) const AT_GRAIN_SIZE: u64 = at_of!(Self, grain_size);
    pub(crate) const AT_NUM_GD_ENTRIES: u64 = at_of!(Self, num_gd_entries);
}

/// The constant header of a space-efficient sparse extent (createType `seSparse`, extent lines
/// `SESPARSE`): 512 bytes at sector 0, every field a little-endian `u64`, offsets and sizes in
/// sectors. Layout and field names as qemu's `block/vmdk.c` (`VMDKSESparseConstHeader`).
///
/// The file holds, each at its `*_offset` for `*_size` sectors: this header, the
/// [`SeSparseVolatileHeader`], the journal header and journal, the grain directory, the grain
/// tables, the free bitmap, the back map and the grains. Directory and table entries are
/// `u64`: see the `GDE_*` and `GTE_*` constants.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct SeSparseConstHeader {
    /// [`SeSparseConstHeader::MAGIC`].
    pub magic: U64,
    /// [`SeSparseConstHeader::VERSION`].
    pub version: U64,
    /// Capacity of this extent, in sectors.
    pub capacity: U64,
    /// Grain size in sectors (8 in every file ESXi writes).
    pub grain_size: U64,
    /// Size of one grain table, in sectors (64: 4096 entries).
    pub grain_table_size: U64,
    /// Flags: none are defined.
    pub flags: U64,
    /// Zero.
    pub reserved1: U64,
    /// Zero.
    pub reserved2: U64,
    /// Zero.
    pub reserved3: U64,
    /// Zero.
    pub reserved4: U64,
    /// Sector of the volatile header.
    pub volatile_header_offset: U64,
    /// Sectors of the volatile header.
    pub volatile_header_size: U64,
    /// Sector of the journal header.
    pub journal_header_offset: U64,
    /// Sectors of the journal header.
    pub journal_header_size: U64,
    /// Sector of the journal.
    pub journal_offset: U64,
    /// Sectors of the journal.
    pub journal_size: U64,
    /// Sector of the grain directory.
    pub grain_dir_offset: U64,
    /// Sectors of the grain directory.
    pub grain_dir_size: U64,
    /// Sector of the first grain table.
    pub grain_tables_offset: U64,
    /// Sectors of the grain table area.
    pub grain_tables_size: U64,
    /// Sector of the free bitmap.
    pub free_bitmap_offset: U64,
    /// Sectors of the free bitmap.
    pub free_bitmap_size: U64,
    /// Sector of the back map.
    pub backmap_offset: U64,
    /// Sectors of the back map.
    pub backmap_size: U64,
    /// Sector of the first grain.
    pub grains_offset: U64,
    /// Sectors of the grain area.
    pub grains_size: U64,
    /// Zero.
    pub pad: [u8; 304],
}

impl SeSparseConstHeader {
    /// `magic`.
    pub const MAGIC: u64 = 0xcafe_babe;
    /// `version`: the only one written and read.
    pub const VERSION: u64 = 0x0000_0002_0000_0001;
    /// Grain directory entry: the top 32 bits of an entry that names a grain table; the low 32
    /// bits are the table's number in the grain table area. 0 is "no table".
    pub const GDE_ALLOCATED: u64 = 0x1000_0000;
    /// Grain table entry: the top 4 bits give the entry's kind.
    pub const GTE_KIND_MASK: u64 = 0xf000_0000_0000_0000;
    /// Grain table entry kind: not allocated, read the parent (the whole entry is 0).
    pub const GTE_UNALLOCATED: u64 = 0;
    /// Grain table entry kind: unmapped by the guest (SCSI UNMAP).
    pub const GTE_UNMAPPED: u64 = 0x1000_0000_0000_0000;
    /// Grain table entry kind: reads as zeros.
    pub const GTE_ZERO: u64 = 0x2000_0000_0000_0000;
    /// Grain table entry kind: allocated; the other 60 bits hold the grain's number in the
    /// grain area, its low 12 bits in entry bits 48-59 and the rest in bits 0-47.
    pub const GTE_ALLOCATED: u64 = 0x3000_0000_0000_0000;

    pub(crate) const AT_VERSION: u64 = at_of!(Self, version);
    pub(crate) const AT_CAPACITY: u64 = at_of!(Self, capacity);
    pub(crate) const AT_GRAIN_SIZE: u64 = at_of!(Self, grain_size);
    pub(crate) const AT_GRAIN_TABLE_SIZE: u64 = at_of!(Self, grain_table_size);
    pub(crate) const AT_FLAGS: u64 = at_of!(Self, flags);
    pub(crate) const AT_RESERVED1: u64 = at_of!(Self, reserved1);
    pub(crate) const AT_VOLATILE_HEADER_OFFSET: u64 = at_of!(Self, volatile_header_offset);
    pub(crate) const AT_JOURNAL_HEADER_OFFSET: u64 = at_of!(Self, journal_header_offset);
    pub(crate) const AT_JOURNAL_OFFSET: u64 = at_of!(Self, journal_offset);
    pub(crate) const AT_GRAIN_DIR_OFFSET: u64 = at_of!(Self, grain_dir_offset);
    pub(crate) const AT_GRAIN_DIR_SIZE: u64 = at_of!(Self, grain_dir_size);
    pub(crate) const AT_GRAIN_TABLES_OFFSET: u64 = at_of!(Self, grain_tables_offset);
    pub(crate) const AT_FREE_BITMAP_OFFSET: u64 = at_of!(Self, free_bitmap_offset);
    pub(crate) const AT_BACKMAP_OFFSET: u64 = at_of!(Self, backmap_offset);
    pub(crate) const AT_GRAINS_OFFSET: u64 = at_of!(Self, grains_offset);
}

/// The volatile header of a seSparse extent, 512 bytes at `volatile_header_offset`, updated
/// while the disk is open (qemu's `VMDKSESparseVolatileHeader`).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct SeSparseVolatileHeader {
    /// [`SeSparseVolatileHeader::MAGIC`].
    pub magic: U64,
    /// Number of the next free grain table.
    pub free_gt_number: U64,
    /// Sequence number of the next journal transaction.
    pub next_txn_seq_number: U64,
    /// Non-zero when the journal holds changes not yet applied: the metadata may be stale
    /// until ESXi replays it.
    pub replay_journal: U64,
    /// Zero.
    pub pad: [u8; 480],
}

impl SeSparseVolatileHeader {
    /// `magic`.
    pub const MAGIC: u64 = 0xcafe_cafe;

    pub(crate) const AT_REPLAY_JOURNAL: u64 = at_of!(Self, replay_journal);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_the_spec() {
        assert_eq!(size_of::<SparseExtentHeader>(), 512);
        assert_eq!(size_of::<MetadataMarker>(), 512);
        assert_eq!(size_of::<GrainMarker>() as u64, GrainMarker::SIZE);
        // The field offsets the spec gives (p. 6).
        assert_eq!(SparseExtentHeader::AT_VERSION, 4);
        assert_eq!(SparseExtentHeader::AT_FLAGS, 8);
        assert_eq!(SparseExtentHeader::AT_CAPACITY, 12);
        assert_eq!(SparseExtentHeader::AT_GRAIN_SIZE, 20);
        assert_eq!(SparseExtentHeader::AT_DESCRIPTOR_OFFSET, 28);
        assert_eq!(SparseExtentHeader::AT_DESCRIPTOR_SIZE, 36);
        assert_eq!(SparseExtentHeader::AT_NUM_GTES_PER_GT, 44);
        assert_eq!(SparseExtentHeader::AT_RGD_OFFSET, 48);
        assert_eq!(SparseExtentHeader::AT_GD_OFFSET, 56);
        assert_eq!(SparseExtentHeader::AT_OVER_HEAD, 64);
        assert_eq!(SparseExtentHeader::AT_NEWLINE_CHARS, 73);
        assert_eq!(SparseExtentHeader::AT_COMPRESS_ALGORITHM, 77);
    }

    #[test]
    fn magic_reads_as_kdmv() {
        assert_eq!(&SparseExtentHeader::MAGIC.to_le_bytes(), b"KDMV");
        assert_eq!(&CowdHeader::MAGIC.to_le_bytes(), b"COWD");
        assert_eq!(
            SeSparseConstHeader::MAGIC.to_le_bytes(),
            [0xbe, 0xba, 0xfe, 0xca, 0, 0, 0, 0]
        );
    }

    #[test]
    fn esx_layouts_match_qemu() {
        assert_eq!(size_of::<CowdHeader>() as u64, CowdHeader::SIZE);
        assert_eq!(CowdHeader::AT_VERSION, 4);
        assert_eq!(CowdHeader::AT_NUM_SECTORS, 12);
        assert_eq!(CowdHeader::AT_GRAIN_SIZE, 16);
        assert_eq!(offset_of!(CowdHeader, gd_offset), 20);
        assert_eq!(CowdHeader::AT_NUM_GD_ENTRIES, 24);
        assert_eq!(offset_of!(CowdHeader, generation), 1060);
        assert_eq!(offset_of!(CowdHeader, unclean_shutdown), 1648);
        assert_eq!(size_of::<SeSparseConstHeader>(), 512);
        assert_eq!(size_of::<SeSparseVolatileHeader>(), 512);
        assert_eq!(SeSparseConstHeader::AT_CAPACITY, 16);
        assert_eq!(SeSparseConstHeader::AT_GRAIN_SIZE, 24);
        assert_eq!(SeSparseConstHeader::AT_FLAGS, 40);
        assert_eq!(SeSparseConstHeader::AT_VOLATILE_HEADER_OFFSET, 80);
        assert_eq!(SeSparseConstHeader::AT_GRAIN_DIR_OFFSET, 128);
        assert_eq!(SeSparseConstHeader::AT_GRAINS_OFFSET, 192);
        assert_eq!(offset_of!(SeSparseConstHeader, pad), 208);
        assert_eq!(SeSparseVolatileHeader::AT_REPLAY_JOURNAL, 24);
        // Every area's size field follows its offset field (the reader relies on it).
        type S = SeSparseConstHeader;
        for (offset, size) in [
            (
                S::AT_VOLATILE_HEADER_OFFSET,
                offset_of!(S, volatile_header_size),
            ),
            (
                S::AT_JOURNAL_HEADER_OFFSET,
                offset_of!(S, journal_header_size),
            ),
            (S::AT_JOURNAL_OFFSET, offset_of!(S, journal_size)),
            (S::AT_GRAIN_DIR_OFFSET, offset_of!(S, grain_dir_size)),
            (S::AT_GRAIN_TABLES_OFFSET, offset_of!(S, grain_tables_size)),
            (S::AT_FREE_BITMAP_OFFSET, offset_of!(S, free_bitmap_size)),
            (S::AT_BACKMAP_OFFSET, offset_of!(S, backmap_size)),
            (S::AT_GRAINS_OFFSET, offset_of!(S, grains_size)),
        ] {
            assert_eq!(offset + 8, size as u64);
        }
    }
}
