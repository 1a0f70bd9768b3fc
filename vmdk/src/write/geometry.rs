//! The shape of every sparse extent this library writes, stream-optimized or not: 64 KiB grains
//! in grain tables of 512 entries, as every VMware product writes them, with a 20-sector embedded
//! descriptor; and the largest disk the writers take.

use zerocopy::little_endian::{U16, U32, U64};

use crate::error::{Error, ErrorKind, Feature, Result};
use crate::format::SparseExtentHeader as H;

/// Grain size of the extents we write, in sectors (64 KiB).
pub(crate) const GRAIN_SECTORS: u64 = 128;
/// Entries per grain table.
pub(crate) const GTES_PER_GT: u64 = 512;
/// Sectors reserved for an embedded descriptor.
pub(crate) const DESCRIPTOR_SECTORS: u64 = 20;

/// Largest disk the writers accept: 64 TiB (VMware's own limit is 62 TB). Bounds the grain
/// directory they hold in memory (8 MiB at this size).
pub(crate) const MAX_WRITE_CAPACITY: u64 = 64 << 40;

/// Refuses to write a disk larger than [`MAX_WRITE_CAPACITY`].
pub(crate) fn check_write_capacity(capacity: u64) -> Result<()> {
    if capacity > MAX_WRITE_CAPACITY {
        return Err(Error::new(
            None,
            "output",
            None,
            ErrorKind::Unsupported(Feature::WriteCapacity(capacity)),
        ));
    }
    Ok(())
}

/// A header for an extent of `capacity` sectors with our grain geometry and valid newline
/// characters; version, flags, offsets and compression are the writer's to set.
pub(crate) fn written_header(capacity: u64) -> H {
    H {
        magic_number: U32::new(H::MAGIC),
        version: U32::new(1),
        flags: U32::new(H::FLAG_VALID_NEWLINE_DETECTOR),
        capacity: U64::new(capacity),
        grain_size: U64::new(GRAIN_SECTORS),
        descriptor_offset: U64::new(0),
        descriptor_size: U64::new(0),
        num_gtes_per_gt: U32::new(GTES_PER_GT as u32),
        rgd_offset: U64::new(0),
        gd_offset: U64::new(0),
        over_head: U64::new(0),
        unclean_shutdown: 0,
        single_end_line_char: b'\n',
        non_end_line_char: b' ',
        double_end_line_char1: b'\r',
        double_end_line_char2: b'\n',
        compress_algorithm: U16::new(H::COMPRESSION_NONE),
        pad: [0; 433],
    }
}
