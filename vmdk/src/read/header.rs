//! The one check of a sparse extent header that every reader runs: the seekable reader (header
//! and footer), the one-pass streaming reader and `check`, so no path accepts what another
//! refuses.
//!
//! Spec: "Hosted Sparse Extent Header" (p. 6). Refused, each with the field's own offset:
//! a magic other than `KDMV`; versions other than 1 to 3; incompatible flags other than
//! compressed and markers; a `compressAlgorithm` other than deflate on a compressed extent;
//! damaged newline detection characters (a file moved in text mode); grain sizes that are not a
//! power of two from 8 to 16384 sectors (4 KiB to 8 MiB); grain tables of 0 or more than 4096
//! entries; capacities whose byte count does not fit 64 bits; embedded descriptors larger than
//! [`MAX_DESCRIPTOR_SIZE`] or at a sector past any file.

use std::path::Path;

use zerocopy::FromBytes;

use crate::descriptor::MAX_DESCRIPTOR_SIZE;
use crate::error::{Error, ErrorKind, Feature, Result};
use crate::format::{SparseExtentHeader as H, SECTOR_SIZE};

/// Smallest grain this library reads, in sectors (4 KiB).
pub(crate) const MIN_GRAIN_SECTORS: u64 = 8;
/// Largest grain this library reads, in sectors (8 MiB): bounds the memory one grain takes.
pub(crate) const MAX_GRAIN_SECTORS: u64 = 16_384;
/// Most entries a grain table may have (ESXi's COWD tables have 4096, hosted ones 512).
pub(crate) const MAX_GTES_PER_GT: u64 = 4096;
/// Largest capacity, in sectors, whose byte count fits in 64 bits.
pub(crate) const MAX_CAPACITY_SECTORS: u64 = u64::MAX / SECTOR_SIZE;

/// What a checked header says about the extent's shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Geometry {
    /// Capacity in sectors.
    pub capacity: u64,
    /// Grain size in sectors (a power of two from 8 to 16384).
    pub grain_sectors: u64,
    /// Entries per grain table (1 to 4096).
    pub gtes_per_gt: u64,
    /// The header's flags.
    pub flags: u32,
}

impl Geometry {
    /// Grain size in bytes.
    pub fn grain_bytes(&self) -> u64 {
        self.grain_sectors * SECTOR_SIZE
    }

    /// Capacity in bytes (fits: the capacity was checked).
    pub fn capacity_bytes(&self) -> u64 {
        self.capacity * SECTOR_SIZE
    }

    /// Number of grains, the last one possibly partial.
    pub fn grain_count(&self) -> u64 {
        self.capacity.div_ceil(self.grain_sectors)
    }

    /// Entries of the grain directory: one per grain table the capacity needs.
    pub fn directory_entries(&self) -> u64 {
        // Coverage is at most 2^14 * 2^12 sectors: no overflow.
        self.capacity
            .div_ceil(self.grain_sectors * self.gtes_per_gt)
    }

    /// Whether grains are compressed.
    pub fn is_compressed(&self) -> bool {
        self.flags & H::FLAG_COMPRESSED != 0
    }

    /// Whether every block is preceded by a marker.
    pub fn has_markers(&self) -> bool {
        self.flags & H::FLAG_MARKERS != 0
    }
}

/// Whether a buffer starts with the sparse extent magic `KDMV`.
pub(crate) fn has_sparse_magic(head: &[u8]) -> bool {
    head.get(..4) == Some(&H::MAGIC.to_le_bytes()[..])
}

/// The 512 bytes of a sparse extent header (or footer) found at `at` of `path`, its magic
/// checked.
pub(crate) fn parse_header(
    buf: &[u8; 512],
    path: &Path,
    structure: &'static str,
    at: u64,
) -> Result<H> {
    let header = H::read_from_bytes(&buf[..]).map_err(|_| {
        Error::at(
            path,
            structure,
            at,
            ErrorKind::Inconsistent("short header".into()),
        )
    })?;
    if header.magic_number.get() != H::MAGIC {
        return Err(Error::field(
            path,
            structure,
            at,
            "magicNumber",
            header.magic_number.get().into(),
            "not the sparse extent magic KDMV",
        ));
    }
    Ok(header)
}

impl H {
    /// Checks every field a reader relies on (see the module's list); `at` is where the header
    /// lies in `path` (0, or the footer's offset), so errors give each field's own offset.
    pub(crate) fn validate(
        &self,
        path: &Path,
        structure: &'static str,
        at: u64,
    ) -> Result<Geometry> {
        let unsupported = |field_at: u64, f: Feature| {
            Error::at(path, structure, at + field_at, ErrorKind::Unsupported(f))
        };
        let bad = |field_at: u64, field: &'static str, value: u64, reason: &'static str| {
            Error::field(path, structure, at + field_at, field, value, reason)
        };
        let version = self.version.get();
        if !(1..=3).contains(&version) {
            return Err(unsupported(Self::AT_VERSION, Feature::Version(version)));
        }
        let flags = self.flags.get();
        let unknown = flags & Self::FLAG_INCOMPAT_MASK & !Self::FLAG_INCOMPAT_KNOWN;
        if unknown != 0 {
            return Err(unsupported(
                Self::AT_FLAGS,
                Feature::IncompatibleFlags(unknown),
            ));
        }
        let algorithm = self.compress_algorithm.get();
        if flags & Self::FLAG_COMPRESSED != 0 && algorithm != Self::COMPRESSION_DEFLATE {
            return Err(unsupported(
                Self::AT_COMPRESS_ALGORITHM,
                Feature::CompressAlgorithm(algorithm),
            ));
        }
        let newline = (
            self.single_end_line_char,
            self.non_end_line_char,
            self.double_end_line_char1,
            self.double_end_line_char2,
        );
        if flags & Self::FLAG_VALID_NEWLINE_DETECTOR != 0 && newline != (b'\n', b' ', b'\r', b'\n')
        {
            return Err(Error::at(
                path,
                structure,
                at + Self::AT_NEWLINE_CHARS,
                ErrorKind::Inconsistent(
                    "the newline detection characters are damaged (was the file transferred in \
                        text mode?)"
                        .into(),
                ),
            ));
        }
        let grain_sectors = self.grain_size.get();
        if !grain_sectors.is_power_of_two()
            || !(MIN_GRAIN_SECTORS..=MAX_GRAIN_SECTORS).contains(&grain_sectors)
        {
            return Err(bad(
                Self::AT_GRAIN_SIZE,
                "grainSize",
                grain_sectors,
                "not a power of two from 8 to 16384 sectors",
            ));
        }
        let gtes_per_gt = u64::from(self.num_gtes_per_gt.get());
        if !(1..=MAX_GTES_PER_GT).contains(&gtes_per_gt) {
            return Err(bad(
                Self::AT_NUM_GTES_PER_GT,
                "numGTEsPerGT",
                gtes_per_gt,
                "not from 1 to 4096",
            ));
        }
        let capacity = self.capacity.get();
        if capacity > MAX_CAPACITY_SECTORS {
            return Err(bad(
                Self::AT_CAPACITY,
                "capacity",
                capacity,
                "too large to be counted in bytes",
            ));
        }
        Ok(Geometry {
            capacity,
            grain_sectors,
            gtes_per_gt,
            flags,
        })
    }

    /// Where the embedded descriptor lies (byte offset and length), `None` when the header has
    /// none; its size is at most [`MAX_DESCRIPTOR_SIZE`] and its end fits 64 bits.
    pub(crate) fn embedded_descriptor(
        &self,
        path: &Path,
        structure: &'static str,
        at: u64,
    ) -> Result<Option<(u64, u64)>> {
        let sector = self.descriptor_offset.get();
        if sector == 0 {
            return Ok(None);
        }
        let size = self.descriptor_size.get();
        if size == 0 || size > MAX_DESCRIPTOR_SIZE / SECTOR_SIZE {
            return Err(Error::field(
                path,
                structure,
                at + Self::AT_DESCRIPTOR_SIZE,
                "descriptorSize",
                size,
                "not from 1 sector to 4 MiB",
            ));
        }
        let start = sector
            .checked_mul(SECTOR_SIZE)
            .filter(|s| s.checked_add(size * SECTOR_SIZE).is_some())
            .ok_or_else(|| {
                Error::field(
                    path,
                    structure,
                    at + Self::AT_DESCRIPTOR_OFFSET,
                    "descriptorOffset",
                    sector,
                    "past any file",
                )
            })?;
        Ok(Some((start, size * SECTOR_SIZE)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::IntoBytes;

    fn header() -> [u8; 512] {
        let mut b = [0u8; 512];
        b[..4].copy_from_slice(b"KDMV");
        b[4..8].copy_from_slice(&1u32.to_le_bytes());
        b[12..20].copy_from_slice(&2048u64.to_le_bytes());
        b[20..28].copy_from_slice(&128u64.to_le_bytes());
        b[44..48].copy_from_slice(&512u32.to_le_bytes());
        b
    }

    #[test]
    fn each_field_is_refused_at_its_own_offset() {
        let p = Path::new("d.vmdk");
        let good = parse_header(&header(), p, "footer", 0x1000).unwrap();
        let g = good.validate(p, "footer", 0x1000).unwrap();
        assert_eq!((g.grain_bytes(), g.grain_count()), (65536, 16));
        for (at, value, field_at) in [
            (4usize, 7u64, H::AT_VERSION),
            (8, 1 << 20, H::AT_FLAGS),
            (20, 100, H::AT_GRAIN_SIZE),
            (44, 0, H::AT_NUM_GTES_PER_GT),
        ] {
            let mut b = header();
            b[at..at + 4].copy_from_slice(&(value as u32).to_le_bytes());
            let h = parse_header(&b, p, "footer", 0x1000).unwrap();
            let e = h.validate(p, "footer", 0x1000).unwrap_err();
            assert_eq!(e.offset(), Some(0x1000 + field_at), "{e}");
        }
        let mut h = good;
        h.capacity.set(u64::MAX);
        assert_eq!(
            h.validate(p, "x", 0).unwrap_err().offset(),
            Some(H::AT_CAPACITY)
        );
        let mut bytes = header();
        bytes[..4].copy_from_slice(b"COWD");
        assert!(parse_header(&bytes, p, "x", 0).is_err());
        assert_eq!(good.as_bytes().len(), 512);
    }

    #[test]
    fn embedded_descriptor_bounds() {
        let p = Path::new("d.vmdk");
        let mut h = parse_header(&header(), p, "h", 0).unwrap();
        assert_eq!(h.embedded_descriptor(p, "h", 0).unwrap(), None);
        h.descriptor_offset.set(1);
        h.descriptor_size.set(20);
        assert_eq!(
            h.embedded_descriptor(p, "h", 0).unwrap(),
            Some((512, 20 * 512))
        );
        h.descriptor_size.set(100_000);
        assert_eq!(
            h.embedded_descriptor(p, "h", 0).unwrap_err().offset(),
            Some(36)
        );
        h.descriptor_size.set(1);
        h.descriptor_offset.set(1 << 60);
        assert_eq!(
            h.embedded_descriptor(p, "h", 0).unwrap_err().offset(),
            Some(28)
        );
    }
}
