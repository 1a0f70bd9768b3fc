//! Hosted sparse extents (`KDMV`, versions 1 to 3), plain and stream-optimized.
//!
//! Spec: "Hosted Sparse Extents" (pp. 6-9) and "Stream-Optimized Compressed" (pp. 11-13).
//! Supported: the grain directory and grain tables, unallocated (GTE 0) and zeroed-grain (GTE 1)
//! entries, any power-of-two grain size from 8 to 16384 sectors (4 KiB to 8 MiB), any number of
//! entries per grain table from 1 to 4096, capacities that are not a multiple of the grain,
//! compressed grains (deflate, zlib-wrapped as VMware and qemu write them, or raw) with or
//! without grain markers, and both stream-optimized layouts: the grain directory in the header
//! area (`gdOffset` a real sector, as qemu-img writes it) and `gdOffset = GD_AT_END` with the
//! directory found through the footer at the end of the file (as VMware writes it). When a
//! footer is present it takes precedence over the header, as the spec says.
//!
//! Refused with a clear error: unknown incompatible flags, compression algorithms other than
//! deflate, versions other than 1-3, and every size or offset that does not fit in the file.
//! Only the grain directory is held in memory (4 bytes per 32 MiB of capacity with the default
//! geometry, and never more than the file holds); grain tables are read when needed.

pub mod write;

use flate2::{Decompress, FlushDecompress, Status};
use zerocopy::little_endian::U32;
use zerocopy::FromBytes;

use crate::descriptor::{Descriptor, MAX_DESCRIPTOR_SIZE};
use crate::error::{Error, ErrorKind, Result};
use crate::format::*;
use crate::io::Backing;

/// Smallest grain this library reads, in sectors (the spec asks for more than 8... sectors of 4 KiB).
pub const MIN_GRAIN_SECTORS: u64 = 8;
/// Largest grain this library reads, in sectors (8 MiB): bounds the memory one grain takes.
pub const MAX_GRAIN_SECTORS: u64 = 16_384;
/// Most entries a grain table may have (ESXi's COWD tables have 4096, hosted ones 512).
pub const MAX_GTES_PER_GT: u64 = 4096;
/// Largest capacity, in sectors, whose byte count fits in 64 bits.
pub const MAX_CAPACITY_SECTORS: u64 = u64::MAX / SECTOR_SIZE;

/// What a grain table entry says about one grain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrainEntry {
    /// Not allocated: read the parent link, or zeros.
    Unallocated,
    /// Reads as zeros, whatever the parent holds.
    Zeroed,
    /// Data at this sector of the file (a grain marker for stream-optimized extents).
    Data(u64),
}

/// Where the metadata of the extent was found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetadataSource {
    /// The header at sector 0.
    Header,
    /// The footer before the end-of-stream marker (stream-optimized, VMware layout).
    Footer,
}

/// An open hosted sparse extent.
#[derive(Debug)]
pub struct SparseExtent {
    backing: Backing,
    header: SparseExtentHeader,
    source: MetadataSource,
    capacity: u64,
    grain_sectors: u64,
    gtes_per_gt: u64,
    grain_directory: Vec<u32>,
    descriptor: Option<Descriptor>,
    /// Byte ranges that hold metadata no grain table or grain may overlap: the header, the
    /// embedded descriptor, the grain directory and its redundant copy.
    reserved: Vec<(u64, u64, &'static str)>,
}

const HEADER: &str = "sparse header";
const FOOTER: &str = "footer";

/// The first of the `reserved` ranges that `start..end` overlaps.
fn overlapping<'r>(
    reserved: &'r [(u64, u64, &'static str)],
    start: u64,
    end: u64,
) -> Option<&'r (u64, u64, &'static str)> {
    reserved.iter().find(|&&(s, e, _)| start < e && s < end)
}

/// Whether a buffer starts with the sparse extent magic `KDMV`.
pub fn has_sparse_magic(head: &[u8]) -> bool {
    head.get(..4) == Some(&SPARSE_MAGIC.to_le_bytes()[..])
}

/// Parses the 512 bytes of a sparse extent header (or footer) found at `offset` of `path`,
/// checking its magic.
pub fn parse_header(
    buf: &[u8; 512],
    path: &std::path::Path,
    structure: &'static str,
    offset: u64,
) -> Result<SparseExtentHeader> {
    let header = SparseExtentHeader::read_from_bytes(&buf[..]).map_err(|_| {
        Error::new(
            Some(path),
            structure,
            Some(offset),
            ErrorKind::Inconsistent("short header".into()),
        )
    })?;
    if header.magic_number.get() != SPARSE_MAGIC {
        return Err(Error::field(
            path,
            structure,
            offset,
            "magicNumber",
            header.magic_number.get().into(),
            "not the sparse extent magic KDMV",
        ));
    }
    Ok(header)
}

/// Largest compressed size a grain of `grain_bytes` may have: deflate expands incompressible
/// data by a few bytes per 16 KiB block, so anything much larger than a grain is damage.
pub fn max_compressed_grain(grain_bytes: u64) -> u64 {
    grain_bytes + grain_bytes / 8 + 4096
}

fn read_header(
    backing: &Backing,
    structure: &'static str,
    offset: u64,
) -> Result<SparseExtentHeader> {
    let mut buf = [0u8; 512];
    backing.read_exact_at(structure, offset, &mut buf)?;
    parse_header(&buf, backing.path(), structure, offset)
}

fn read_metadata_marker(backing: &Backing, offset: u64) -> Result<MetadataMarker> {
    let mut buf = [0u8; 512];
    backing.read_exact_at("metadata marker", offset, &mut buf)?;
    MetadataMarker::read_from_bytes(&buf[..]).map_err(|_| {
        Error::new(
            Some(backing.path()),
            "metadata marker",
            Some(offset),
            ErrorKind::Inconsistent("short marker".into()),
        )
    })
}

impl SparseExtent {
    /// Opens the sparse extent in `backing`: reads and checks the header (and footer), the
    /// embedded descriptor if any, and the grain directory.
    pub fn open(backing: Backing) -> Result<Self> {
        let path = backing.path().to_path_buf();
        let primary = read_header(&backing, HEADER, 0)?;
        let markers = primary.flags.get() & FLAG_MARKERS != 0;
        let file_len = backing.len();
        // A footer (stream-optimized) sits in the second-to-last sector, behind a footer marker
        // and followed by the end-of-stream marker.
        let footer_at = file_len.checked_sub(1024).filter(|&at| at >= 1024);
        let mut source = MetadataSource::Header;
        let mut header = primary;
        if markers {
            if let Some(at) = footer_at {
                let marker = read_metadata_marker(&backing, at - 512)?;
                if marker.size.get() == 0 && marker.marker_type.get() == MARKER_FOOTER {
                    header = read_header(&backing, FOOTER, at)?;
                    source = MetadataSource::Footer;
                    if header.gd_offset.get() == GD_AT_END {
                        return Err(Error::field(
                            &path,
                            FOOTER,
                            at + HEADER_GD_OFFSET_AT,
                            "gdOffset",
                            GD_AT_END,
                            "the footer must give the grain directory's sector",
                        ));
                    }
                    for (name, a, b) in [
                        ("capacity", primary.capacity.get(), header.capacity.get()),
                        (
                            "grainSize",
                            primary.grain_size.get(),
                            header.grain_size.get(),
                        ),
                        (
                            "numGTEsPerGT",
                            primary.num_gtes_per_gt.get().into(),
                            header.num_gtes_per_gt.get().into(),
                        ),
                    ] {
                        if a != b {
                            return Err(Error::new(
                                Some(&path),
                                FOOTER,
                                Some(at),
                                ErrorKind::Inconsistent(format!(
                                    "{name} is {b:#x} in the footer but {a:#x} in the header"
                                )),
                            ));
                        }
                    }
                }
            }
        }
        let structure = match source {
            MetadataSource::Header => HEADER,
            MetadataSource::Footer => FOOTER,
        };
        let header_at = if source == MetadataSource::Footer {
            footer_at.unwrap_or(0)
        } else {
            0
        };
        let bad = |field: &'static str, value: u64, reason: &'static str| {
            Error::field(&path, structure, header_at, field, value, reason)
        };

        let version = header.version.get();
        if !(1..=3).contains(&version) {
            return Err(Error::new(
                Some(&path),
                structure,
                Some(header_at + 4),
                ErrorKind::Unsupported(format!(
                    "sparse extent version {version} (versions 1 to 3 are read)"
                )),
            ));
        }
        let flags = header.flags.get();
        let unknown = flags & FLAG_INCOMPAT_MASK & !FLAG_INCOMPAT_KNOWN;
        if unknown != 0 {
            return Err(Error::new(
                Some(&path),
                structure,
                Some(header_at + 8),
                ErrorKind::Unsupported(format!("incompatible flags {unknown:#x}")),
            ));
        }
        if flags & FLAG_COMPRESSED != 0 && header.compress_algorithm.get() != COMPRESSION_DEFLATE {
            return Err(Error::new(
                Some(&path),
                structure,
                Some(header_at + 77),
                ErrorKind::Unsupported(format!(
                    "compressAlgorithm {}",
                    header.compress_algorithm.get()
                )),
            ));
        }
        if flags & FLAG_VALID_NEWLINE_DETECTOR != 0
            && (
                header.single_end_line_char,
                header.non_end_line_char,
                header.double_end_line_char1,
                header.double_end_line_char2,
            ) != (b'\n', b' ', b'\r', b'\n')
        {
            return Err(Error::new(Some(&path), structure, Some(header_at + 73), ErrorKind::Inconsistent("the newline detection characters are damaged (was the file transferred in text mode?)".into())));
        }
        let grain_sectors = header.grain_size.get();
        if !grain_sectors.is_power_of_two()
            || !(MIN_GRAIN_SECTORS..=MAX_GRAIN_SECTORS).contains(&grain_sectors)
        {
            return Err(bad(
                "grainSize",
                grain_sectors,
                "not a power of two from 8 to 16384 sectors",
            ));
        }
        let gtes_per_gt = u64::from(header.num_gtes_per_gt.get());
        if !(1..=MAX_GTES_PER_GT).contains(&gtes_per_gt) {
            return Err(bad("numGTEsPerGT", gtes_per_gt, "not from 1 to 4096"));
        }
        let capacity = header.capacity.get();
        if capacity > MAX_CAPACITY_SECTORS {
            return Err(bad(
                "capacity",
                capacity,
                "too large to be counted in bytes",
            ));
        }
        // Coverage is at most 2^14 * 2^12 sectors: no overflow.
        let coverage = grain_sectors * gtes_per_gt;
        let gd_entries = capacity.div_ceil(coverage);

        // Embedded descriptor (always taken from the header at sector 0).
        let mut reserved = vec![(0, SECTOR_SIZE, HEADER)];
        let descriptor = match primary.descriptor_offset.get() {
            0 => None,
            sector => {
                let size = primary.descriptor_size.get();
                if size == 0 || size > MAX_DESCRIPTOR_SIZE / SECTOR_SIZE {
                    return Err(Error::field(
                        &path,
                        HEADER,
                        36,
                        "descriptorSize",
                        size,
                        "not from 1 sector to 4 MiB",
                    ));
                }
                let at = sector.checked_mul(SECTOR_SIZE).ok_or_else(|| {
                    Error::field(
                        &path,
                        HEADER,
                        28,
                        "descriptorOffset",
                        sector,
                        "past any file",
                    )
                })?;
                let bytes = backing.read_vec("embedded descriptor", at, size * SECTOR_SIZE)?;
                reserved.push((at, at + size * SECTOR_SIZE, "embedded descriptor"));
                let d = Descriptor::parse_bytes(&bytes).map_err(|kind| {
                    Error::new(Some(&path), "embedded descriptor", Some(at), kind)
                })?;
                Some(d)
            }
        };

        let gd_sector = header.gd_offset.get();
        if gd_sector == GD_AT_END {
            return Err(Error::new(Some(&path), HEADER, Some(HEADER_GD_OFFSET_AT), ErrorKind::Inconsistent("gdOffset is GD_AT_END but there is no footer marker and footer before the end-of-stream marker at the end of the file".into())));
        }
        let gd_at = gd_sector
            .checked_mul(SECTOR_SIZE)
            .ok_or_else(|| bad("gdOffset", gd_sector, "past any file"))?;
        if gd_sector == 0 && gd_entries > 0 {
            return Err(bad(
                "gdOffset",
                0,
                "the grain directory cannot be at sector 0",
            ));
        }
        // Bounded by the file length before anything is allocated.
        let gd_bytes = backing.read_vec("grain directory", gd_at, gd_entries * 4)?;
        let gd_end = gd_at + gd_entries * 4;
        if let Some(&(_, end, what)) = overlapping(&reserved, gd_at, gd_end) {
            return Err(Error::new(
                Some(&path),
                "grain directory",
                Some(gd_at),
                ErrorKind::Inconsistent(format!("overlaps the {what}, which ends at {end:#x}")),
            ));
        }
        reserved.push((gd_at, gd_end, "grain directory"));
        let grain_directory = <[U32]>::ref_from_bytes(&gd_bytes[..])
            .map_err(|_| {
                Error::new(
                    Some(&path),
                    "grain directory",
                    Some(gd_at),
                    ErrorKind::Inconsistent("misaligned grain directory".into()),
                )
            })?
            .iter()
            .map(|e| e.get())
            .collect();
        if flags & FLAG_USE_REDUNDANT != 0 && source == MetadataSource::Header {
            let rgd = header.rgd_offset.get();
            let rgd_at = rgd
                .checked_mul(SECTOR_SIZE)
                .ok_or_else(|| bad("rgdOffset", rgd, "past any file"))?;
            backing.check_range("redundant grain directory", rgd_at, gd_entries * 4)?;
            reserved.push((rgd_at, rgd_at + gd_entries * 4, "redundant grain directory"));
        }
        Ok(Self {
            backing,
            header,
            source,
            capacity,
            grain_sectors,
            gtes_per_gt,
            grain_directory,
            descriptor,
            reserved,
        })
    }

    /// The header in effect (the footer's copy when there is one).
    pub fn header(&self) -> &SparseExtentHeader {
        &self.header
    }

    /// Where the metadata in effect was found.
    pub fn metadata_source(&self) -> MetadataSource {
        self.source
    }

    /// The file this extent lives in.
    pub fn backing(&self) -> &Backing {
        &self.backing
    }

    /// The embedded descriptor, if the header has one.
    pub fn descriptor(&self) -> Option<&Descriptor> {
        self.descriptor.as_ref()
    }

    /// Capacity in sectors.
    pub fn capacity_sectors(&self) -> u64 {
        self.capacity
    }

    /// Capacity in bytes.
    pub fn capacity_bytes(&self) -> u64 {
        self.capacity * SECTOR_SIZE
    }

    /// Grain size in bytes.
    pub fn grain_bytes(&self) -> u64 {
        self.grain_sectors * SECTOR_SIZE
    }

    /// Grain size in sectors.
    pub fn grain_sectors(&self) -> u64 {
        self.grain_sectors
    }

    /// Header version.
    pub fn version(&self) -> u32 {
        self.header.version.get()
    }

    /// Header flags.
    pub fn flags(&self) -> u32 {
        self.header.flags.get()
    }

    /// Whether grains are compressed.
    pub fn is_compressed(&self) -> bool {
        self.flags() & FLAG_COMPRESSED != 0
    }

    /// Whether blocks carry markers.
    pub fn has_markers(&self) -> bool {
        self.flags() & FLAG_MARKERS != 0
    }

    /// Number of grains (the last may be partial).
    pub fn grain_count(&self) -> u64 {
        self.capacity.div_ceil(self.grain_sectors)
    }

    /// The grain directory entries (sectors of grain tables, 0 where none).
    pub fn grain_directory(&self) -> &[u32] {
        &self.grain_directory
    }

    /// Reads the grain table behind directory entry `index`: `None` when the entry is 0.
    pub fn grain_table(&self, index: usize) -> Result<Option<Vec<u32>>> {
        let sector = match self.grain_directory.get(index) {
            Some(0) | None => return Ok(None),
            Some(&s) => u64::from(s),
        };
        let at = sector * SECTOR_SIZE;
        self.refuse_metadata("grain table", at, self.gtes_per_gt * 4)?;
        let bytes = self
            .backing
            .read_vec("grain table", at, self.gtes_per_gt * 4)?;
        let table = <[U32]>::ref_from_bytes(&bytes[..]).map_err(|_| {
            Error::new(
                Some(self.backing.path()),
                "grain table",
                Some(at),
                ErrorKind::Inconsistent("misaligned grain table".into()),
            )
        })?;
        Ok(Some(table.iter().map(|e| e.get()).collect()))
    }

    /// Refuses a grain table or grain at `at..at + len` that overlaps the header, the embedded
    /// descriptor or a grain directory: such an entry points into metadata (spec section
    /// "Hosted Sparse Extent": grain tables and grains lie apart from these structures).
    pub fn refuse_metadata(&self, structure: &'static str, at: u64, len: u64) -> Result<()> {
        match overlapping(&self.reserved, at, at.saturating_add(len)) {
            None => Ok(()),
            Some(&(start, r_end, what)) => Err(Error::new(
                Some(self.backing.path()),
                structure,
                Some(at),
                ErrorKind::Inconsistent(format!("lies inside the {what} ({start:#x}..{r_end:#x})")),
            )),
        }
    }

    /// Calls `f(grain_index, entry)` for `count` grains from `first`, reading each grain table once.
    pub fn for_each_grain(
        &self,
        first: u64,
        count: u64,
        mut f: impl FnMut(u64, GrainEntry) -> Result<()>,
    ) -> Result<()> {
        let end = first.saturating_add(count).min(self.grain_count());
        let mut grain = first;
        while grain < end {
            let gt_index = grain / self.gtes_per_gt;
            let table = usize::try_from(gt_index)
                .ok()
                .map(|i| self.grain_table(i))
                .transpose()?
                .flatten();
            let gt_end = ((gt_index + 1) * self.gtes_per_gt).min(end);
            for g in grain..gt_end {
                let entry = match &table {
                    None => GrainEntry::Unallocated,
                    Some(t) => {
                        let i = usize::try_from(g % self.gtes_per_gt).unwrap_or(usize::MAX);
                        match t.get(i).copied().unwrap_or(GTE_UNALLOCATED) {
                            GTE_UNALLOCATED => GrainEntry::Unallocated,
                            GTE_ZEROED => GrainEntry::Zeroed,
                            s => GrainEntry::Data(u64::from(s)),
                        }
                    }
                };
                f(g, entry)?;
            }
            grain = gt_end;
        }
        Ok(())
    }

    /// Calls `f(first_grain, count, kind)` for the runs of grains from `first` (`count` of them)
    /// whose entries are of one kind, in order, with `kind` `Data(0)` for any data grain. A
    /// grain table that is absent (directory entry 0) is one call whatever its size, so walking
    /// a range costs the grain tables present in it, not its capacity.
    pub fn for_each_run(
        &self,
        first: u64,
        count: u64,
        mut f: impl FnMut(u64, u64, GrainEntry) -> Result<()>,
    ) -> Result<()> {
        let end = first.saturating_add(count).min(self.grain_count());
        let mut grain = first;
        while grain < end {
            let gt_index = grain / self.gtes_per_gt;
            let gt_end = (gt_index.saturating_add(1))
                .saturating_mul(self.gtes_per_gt)
                .min(end);
            let table = usize::try_from(gt_index)
                .ok()
                .map(|i| self.grain_table(i))
                .transpose()?
                .flatten();
            let Some(table) = table else {
                f(grain, gt_end - grain, GrainEntry::Unallocated)?;
                grain = gt_end;
                continue;
            };
            let kind = |g: u64| match table
                .get(usize::try_from(g % self.gtes_per_gt).unwrap_or(usize::MAX))
                .copied()
                .unwrap_or(GTE_UNALLOCATED)
            {
                GTE_UNALLOCATED => GrainEntry::Unallocated,
                GTE_ZEROED => GrainEntry::Zeroed,
                _ => GrainEntry::Data(0),
            };
            while grain < gt_end {
                let k = kind(grain);
                let mut n = 1;
                while grain + n < gt_end && kind(grain + n) == k {
                    n += 1;
                }
                f(grain, n, k)?;
                grain += n;
            }
        }
        Ok(())
    }

    /// Bytes of grain `grain` that lie inside the capacity (less than a grain for the last one
    /// of a capacity that is not a grain multiple).
    pub fn grain_len(&self, grain: u64) -> u64 {
        let start = grain * self.grain_bytes();
        self.capacity_bytes()
            .saturating_sub(start)
            .min(self.grain_bytes())
    }

    /// Reads the part of grain `grain` (stored at `sector`) inside the capacity into `out`,
    /// which must be `grain_len(grain)` bytes: decompresses it when the extent is compressed.
    pub fn read_grain(&self, grain: u64, sector: u64, out: &mut [u8]) -> Result<()> {
        self.read_grain_part(grain, sector, 0, out, &mut Vec::new())
    }

    /// Reads `out.len()` bytes from `within` bytes into grain `grain`, stored at `sector`.
    /// `scratch` is reused for decompression of partial grains.
    pub fn read_grain_part(
        &self,
        grain: u64,
        sector: u64,
        within: u64,
        out: &mut [u8],
        scratch: &mut Vec<u8>,
    ) -> Result<()> {
        let at = sector.checked_mul(SECTOR_SIZE).ok_or_else(|| {
            Error::new(
                Some(self.backing.path()),
                "grain table",
                None,
                ErrorKind::Inconsistent(format!(
                    "grain {grain} at sector {sector:#x} is past any file"
                )),
            )
        })?;
        if !self.is_compressed() {
            self.refuse_metadata("grain", at, self.grain_bytes())?;
            return self.backing.read_exact_at("grain", at + within, out);
        }
        self.refuse_metadata("grain", at, SECTOR_SIZE)?;
        if within == 0 && out.len() as u64 == self.grain_bytes() {
            return self.inflate_grain(grain, at, out);
        }
        // Writers compress whole grains, the last one zero-padded past the capacity; a part of
        // a grain is inflated whole into scratch and copied.
        scratch.resize(usize::try_from(self.grain_bytes()).unwrap_or(0), 0);
        self.inflate_grain(grain, at, scratch)?;
        let start = usize::try_from(within).unwrap_or(usize::MAX);
        let src = start
            .checked_add(out.len())
            .and_then(|end| scratch.get(start..end))
            .ok_or_else(|| {
                Error::new(
                    Some(self.backing.path()),
                    "grain",
                    Some(at),
                    ErrorKind::Usage("read past the end of a grain".into()),
                )
            })?;
        out.copy_from_slice(src);
        Ok(())
    }

    /// Decompresses the grain stored at byte `at` into `out` (one whole grain). The grain must
    /// inflate to a whole grain, or for the last grain of the extent at least to the capacity.
    fn inflate_grain(&self, grain: u64, at: u64, out: &mut [u8]) -> Result<()> {
        let path = self.backing.path();
        let grain_bytes = self.grain_bytes();
        let max_compressed = max_compressed_grain(grain_bytes);
        let (data_at, size) = if self.has_markers() {
            let mut m = [0u8; GRAIN_MARKER_SIZE as usize];
            self.backing.read_exact_at("grain marker", at, &mut m)?;
            let marker = GrainMarker::read_from_bytes(&m[..]).map_err(|_| {
                Error::new(
                    Some(path),
                    "grain marker",
                    Some(at),
                    ErrorKind::Inconsistent("short marker".into()),
                )
            })?;
            let lba = marker.lba.get();
            let expected = grain * self.grain_sectors;
            if lba != expected {
                return Err(Error::new(Some(path), "grain marker", Some(at), ErrorKind::Inconsistent(format!("marker LBA {lba:#x} but the grain table maps grain {grain} (LBA {expected:#x}) here"))));
            }
            let size = u64::from(marker.size.get());
            if size == 0 || size > max_compressed {
                return Err(Error::field(
                    path,
                    "grain marker",
                    at + 8,
                    "size",
                    size,
                    "not a plausible compressed grain size",
                ));
            }
            (at + GRAIN_MARKER_SIZE, size)
        } else {
            // No marker: the stream runs until it ends, within a bounded window.
            (
                at,
                max_compressed.min(self.backing.len().saturating_sub(at)),
            )
        };
        let input = self.backing.bytes_at("compressed grain", data_at, size)?;
        let n = if self.has_markers() {
            inflate(&input, out)
        } else {
            inflate_stream(&input, out)
        }
        .map_err(|e| {
            Error::new(
                Some(path),
                "compressed grain",
                Some(data_at),
                ErrorKind::Decompress(e),
            )
        })?;
        let needed = self.grain_len(grain);
        if (n as u64) < needed || (needed == grain_bytes && n as u64 != grain_bytes) {
            return Err(Error::new(
                Some(path),
                "compressed grain",
                Some(data_at),
                ErrorKind::Decompress(format!("inflates to {n} bytes, expected {needed}")),
            ));
        }
        Ok(())
    }
}

/// Whether `data` starts with a zlib (RFC 1950) header using deflate.
fn is_zlib(data: &[u8]) -> bool {
    match data {
        [cmf, flg, ..] => {
            cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0
        }
        _ => false,
    }
}

// Deflate backends, measured on our own test-disk grains (4096 grains of 64 KiB, half random,
// half text-like `seq` output: 256 MiB), one thread, this 2-core machine, each backend built
// on its own (cargo unifies flate2's features within one build):
//
// | backend                 | inflate our level-1/3 streams | compress level 1   | level 6           |
// |-------------------------|-------------------------------|--------------------|-------------------|
// | libdeflate (libdeflater)| 0.143 s                       | 1.12 s -> 164 MiB  | 2.62 s -> 149 MiB |
// | flate2 + zlib-rs        | 0.254 s                       | 1.36 s -> 199 MiB  | 2.75 s -> 164 MiB |
// | flate2 + miniz_oxide    | 0.250 s                       | 1.04 s -> 162 MiB  | 5.12 s -> 163 MiB |
// | flate2 + zlib-ng        | 0.265 s                       | 1.27 s -> 199 MiB  | 3.55 s -> 164 MiB |
//
// libdeflate inflates 1.75x faster than any flate2 backend and is used for grains with markers,
// whose compressed size is known. miniz_oxide at level 1 compresses fastest and smaller than
// zlib level 6 (qemu-img's), so the stream writer uses it ([`crate::stream::compress_grain`]):
// end to end on a 2 GiB disk, 3.65 s and 908 MB against libdeflate level 3's 4.9 s and 917 MB.
// flate2 also inflates marker-less compressed grains, whose stream end must be found while
// reading.
thread_local! {
    static INFLATER: std::cell::RefCell<libdeflater::Decompressor> = std::cell::RefCell::new(libdeflater::Decompressor::new());
}

/// Inflates one compressed grain (exactly `input`, zlib-wrapped or raw deflate) into `out`,
/// which bounds the output: a stream that would produce more than `out.len()` bytes is an
/// error. Returns the bytes produced.
pub fn inflate(input: &[u8], out: &mut [u8]) -> std::result::Result<usize, String> {
    let zlib = is_zlib(input);
    let result = INFLATER.with(|d| {
        let mut d = d.borrow_mut();
        if zlib {
            d.zlib_decompress(input, out)
        } else {
            d.deflate_decompress(input, out)
        }
    });
    match result {
        Ok(n) => Ok(n),
        Err(libdeflater::DecompressionError::InsufficientSpace) => {
            Err(format!("inflates to more than {} bytes", out.len()))
        }
        Err(libdeflater::DecompressionError::BadData) => Err(if zlib {
            "not a valid zlib stream (damaged data or checksum)".into()
        } else {
            "not a valid deflate stream".into()
        }),
    }
}

/// Inflates a compressed grain that is followed by other bytes (no marker gives its size),
/// stopping at the end of its stream.
pub fn inflate_stream(input: &[u8], out: &mut [u8]) -> std::result::Result<usize, String> {
    let mut d = Decompress::new(is_zlib(input));
    let status = d
        .decompress(input, out, FlushDecompress::Finish)
        .map_err(|e| e.to_string())?;
    let n = usize::try_from(d.total_out()).unwrap_or(usize::MAX);
    match status {
        Status::StreamEnd => Ok(n),
        _ if n == out.len() => Err(format!("inflates to more than {} bytes", out.len())),
        _ => Err("the compressed stream is cut short".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inflate_bounds_output() {
        let data = vec![7u8; 8192];
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut z, &data).unwrap();
        let packed = z.finish().unwrap();
        let mut out = vec![0u8; 8192];
        assert_eq!(inflate(&packed, &mut out), Ok(8192));
        assert_eq!(out, data);
        let mut small = vec![0u8; 4096];
        assert!(inflate(&packed, &mut small)
            .unwrap_err()
            .contains("more than"));
        let mut big = vec![0u8; 9000];
        assert_eq!(inflate(&packed, &mut big), Ok(8192));
        assert!(inflate(&packed[..packed.len() / 2], &mut out).is_err());
        assert!(inflate(b"\x78\x9cgarbage", &mut out).is_err());
        // The streaming variant stops at the end of the stream, whatever follows.
        let mut trailing = packed.clone();
        trailing.extend_from_slice(b"next grain marker");
        assert_eq!(inflate_stream(&trailing, &mut out), Ok(8192));
        assert!(inflate_stream(&packed, &mut small).is_err());
    }
}
