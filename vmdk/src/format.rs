//! Raw on-disk structures of hosted sparse and stream-optimized extents, with their constants.
//!
//! Everything here is a `zerocopy` struct with explicit little-endian fields, read in place from
//! the bytes of a file and written back the same way; no parsing logic lives here, only layout
//! (the checks a header must pass are in the readers). Spec: VMware "Virtual Disk Format 5.0",
//! sections "Hosted Sparse Extent Header" (p. 6), "Hosted Sparse Extent Metadata" (p. 8) and
//! "Stream-Optimized Compressed" (pp. 11-13). The ESXi `COWD` header (vmfsSparse, p. 10) is only
//! recognised by its magic, not read.
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

/// `magicNumber` of an ESXi sparse (vmfsSparse, `COWD`) extent.
pub(crate) const COWD_MAGIC: u32 = 0x4457_4f43;

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
        assert_eq!(&COWD_MAGIC.to_le_bytes(), b"COWD");
    }
}
