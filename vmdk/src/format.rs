//! Raw on-disk structures of hosted sparse and stream-optimized extents, with their constants.
//!
//! Everything here is a `zerocopy` struct with explicit little-endian fields, read in place from
//! the bytes of a file and written back the same way; no parsing logic lives here, only layout.
//! Spec: VMware "Virtual Disk Format 5.0", sections "Hosted Sparse Extent Header" (p. 6),
//! "Hosted Sparse Extent Metadata" (p. 8) and "Stream-Optimized Compressed" (pp. 11-13).
//! The ESXi `COWD` header (vmfsSparse, p. 10) is only recognised by its magic, not read.

use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Bytes in a sector: every offset and size in the format is counted in these.
pub const SECTOR_SIZE: u64 = 512;

/// `magicNumber` of a hosted sparse extent: `'K' 'D' 'M' 'V'` on disk.
pub const SPARSE_MAGIC: u32 = 0x564d_444b;
/// `magicNumber` of an ESXi sparse (vmfsSparse, `COWD`) extent.
pub const COWD_MAGIC: u32 = 0x4457_4f43;

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
/// Incompatible flags this library understands.
pub const FLAG_INCOMPAT_KNOWN: u32 = FLAG_COMPRESSED | FLAG_MARKERS;

/// `compressAlgorithm`: none.
pub const COMPRESSION_NONE: u16 = 0;
/// `compressAlgorithm`: deflate (written by VMware and qemu as a zlib stream).
pub const COMPRESSION_DEFLATE: u16 = 1;

/// `gdOffset` of the header of a stream-optimized extent whose directory is found through the
/// footer at the end of the file.
pub const GD_AT_END: u64 = u64::MAX;

/// Grain table entry: grain not allocated (read the parent, or zeros).
pub const GTE_UNALLOCATED: u32 = 0;
/// Grain table entry: grain reads as zeros, even over a parent (needs `FLAG_ZEROED_GRAIN_GTE`).
pub const GTE_ZEROED: u32 = 1;

/// Metadata marker type: end of stream.
pub const MARKER_EOS: u32 = 0;
/// Metadata marker type: a grain table follows.
pub const MARKER_GT: u32 = 1;
/// Metadata marker type: the grain directory follows.
pub const MARKER_GD: u32 = 2;
/// Metadata marker type: the footer (a copy of the header) follows.
pub const MARKER_FOOTER: u32 = 3;

/// `SparseExtentHeader`, 512 bytes at sector 0 of a hosted sparse extent (spec p. 6), and again
/// as the footer of a stream-optimized extent (p. 13). Packed: `capacity` sits at byte 12.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct SparseExtentHeader {
    /// [`SPARSE_MAGIC`].
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
    /// Sector of the grain directory, or [`GD_AT_END`].
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
    /// [`COMPRESSION_NONE`] or [`COMPRESSION_DEFLATE`].
    pub compress_algorithm: U16,
    /// Zero.
    pub pad: [u8; 433],
}

/// Byte offset of `gdOffset` inside [`SparseExtentHeader`], for error messages.
pub const HEADER_GD_OFFSET_AT: u64 = 56;

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

/// Size of [`GrainMarker`] on disk.
pub const GRAIN_MARKER_SIZE: u64 = 12;

/// A metadata marker, one full sector (spec p. 13): grain table, grain directory, footer or
/// end-of-stream.
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct MetadataMarker {
    /// Sectors of metadata that follow the marker (0 for end-of-stream).
    pub num_sectors: U64,
    /// Always 0: this is how a metadata marker differs from a grain marker.
    pub size: U32,
    /// `MARKER_*`.
    pub marker_type: U32,
    /// Zero, ignored on read.
    pub pad: [u8; 496],
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_match_the_spec() {
        assert_eq!(size_of::<SparseExtentHeader>(), 512);
        assert_eq!(size_of::<MetadataMarker>(), 512);
        assert_eq!(size_of::<GrainMarker>() as u64, GRAIN_MARKER_SIZE);
        assert_eq!(std::mem::offset_of!(SparseExtentHeader, capacity), 12);
        assert_eq!(
            std::mem::offset_of!(SparseExtentHeader, gd_offset) as u64,
            HEADER_GD_OFFSET_AT
        );
        assert_eq!(
            std::mem::offset_of!(SparseExtentHeader, compress_algorithm),
            77
        );
    }

    #[test]
    fn magic_reads_as_kdmv() {
        assert_eq!(&SPARSE_MAGIC.to_le_bytes(), b"KDMV");
        assert_eq!(&COWD_MAGIC.to_le_bytes(), b"COWD");
    }
}
