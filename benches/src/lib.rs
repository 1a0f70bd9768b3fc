//! Shared helpers for the benchmarks: realistic descriptors and sparse images built in memory,
//! byte by byte after `vmdk::format`, so a benchmark measures the library and not the disk.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use vmdk::format::{SparseExtentHeader as H, SECTOR_SIZE};
use vmdk::{Backing, Files};
use zerocopy::little_endian::{U16, U32, U64};
use zerocopy::IntoBytes;

/// Sectors of the largest extent VMware Workstation writes for `twoGbMaxExtentSparse` disks.
pub const TWO_GB_EXTENT_SECTORS: u64 = 4_192_256;

/// A `twoGbMaxExtentSparse` descriptor as VMware Workstation writes one: header, `extents`
/// extent lines (file names with spaces, the last extent shorter) and a full disk database.
pub fn two_gb_max_extent_sparse_descriptor(extents: usize) -> String {
    let mut s = String::from(concat!(
        "# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\nCID=5b3f7a2c\n",
        "parentCID=ffffffff\nisNativeSnapshot=\"no\"\ncreateType=\"twoGbMaxExtentSparse\"\n\n",
        "# Extent description\n",
    ));
    let mut total = 0u64;
    for i in 1..=extents {
        let sectors = if i == extents {
            TWO_GB_EXTENT_SECTORS / 3
        } else {
            TWO_GB_EXTENT_SECTORS
        };
        total += sectors;
        // Writing to a String cannot fail.
        let _ = writeln!(
            s,
            "RW {sectors} SPARSE \"Windows Server 2022-s{i:03}.vmdk\""
        );
    }
    let cylinders = total / (255 * 63);
    let _ = write!(
        s,
        "\n# The Disk Data Base \n#DDB\n\n\
         ddb.adapterType = \"lsisas1068\"\n\
         ddb.geometry.cylinders = \"{cylinders}\"\n\
         ddb.geometry.heads = \"255\"\n\
         ddb.geometry.sectors = \"63\"\n\
         ddb.longContentID = \"3d8c1f5e0b7a4c2d9e6f1a2b5b3f7a2c\"\n\
         ddb.toolsInstallType = \"1\"\n\
         ddb.toolsVersion = \"12352\"\n\
         ddb.uuid = \"60 00 C2 9b 69 2f c9 76-74 c4 07 9e 10 87 3b f9\"\n\
         ddb.virtualHWVersion = \"19\"\n"
    );
    s
}

/// The geometry of a hosted sparse (`monolithicSparse`) image built in memory.
#[derive(Clone, Copy, Debug)]
pub struct SparseImage {
    /// Capacity in sectors.
    pub capacity_sectors: u64,
    /// Grain size in sectors.
    pub grain_sectors: u64,
    /// Entries per grain table.
    pub gtes_per_gt: u32,
    /// Every `allocate_every`-th grain is allocated (grains 0, n, 2n, ...); the others are not.
    pub allocate_every: u64,
}

/// Sectors reserved for the embedded descriptor, as qemu-img and VMware reserve them.
const DESCRIPTOR_SECTORS: u64 = 20;

impl SparseImage {
    /// Grains in the capacity.
    pub fn grains(&self) -> u64 {
        self.capacity_sectors.div_ceil(self.grain_sectors)
    }

    /// Grains that hold data.
    pub fn allocated_grains(&self) -> u64 {
        self.grains().div_ceil(self.allocate_every)
    }

    /// Grain size in bytes.
    pub fn grain_bytes(&self) -> u64 {
        self.grain_sectors * SECTOR_SIZE
    }

    /// The bytes an allocated grain starts with: its index, little-endian (the rest is zero).
    pub fn grain_tag(grain: u64) -> [u8; 8] {
        (grain ^ 0xa5a5_a5a5_0000_0000).to_le_bytes()
    }

    /// Lays out the whole file as VMware does: header, embedded descriptor, redundant grain
    /// directory and tables, grain directory and tables, then the grains in disk order. Every
    /// allocated grain starts with [`Self::grain_tag`]. The buffer is allocated zeroed in one
    /// go, so only pages written here take memory until they are read.
    pub fn build(&self) -> Vec<u8> {
        let sector = SECTOR_SIZE as usize;
        let tables = self.grains().div_ceil(u64::from(self.gtes_per_gt));
        let gd_sectors = (tables * 4).div_ceil(SECTOR_SIZE);
        let gt_sectors = (u64::from(self.gtes_per_gt) * 4).div_ceil(SECTOR_SIZE);
        let metadata_sectors = gd_sectors + tables * gt_sectors;
        let rgd_offset = 1 + DESCRIPTOR_SECTORS;
        let gd_offset = rgd_offset + metadata_sectors;
        let over_head = (gd_offset + metadata_sectors).next_multiple_of(self.grain_sectors);
        let file_sectors = over_head + self.allocated_grains() * self.grain_sectors;
        let mut file = vec![0u8; usize::try_from(file_sectors * SECTOR_SIZE).unwrap_or(0)];

        let header = H {
            magic_number: U32::new(H::MAGIC),
            version: U32::new(1),
            flags: U32::new(H::FLAG_VALID_NEWLINE_DETECTOR | H::FLAG_USE_REDUNDANT),
            capacity: U64::new(self.capacity_sectors),
            grain_size: U64::new(self.grain_sectors),
            descriptor_offset: U64::new(1),
            descriptor_size: U64::new(DESCRIPTOR_SECTORS),
            num_gtes_per_gt: U32::new(self.gtes_per_gt),
            rgd_offset: U64::new(rgd_offset),
            gd_offset: U64::new(gd_offset),
            over_head: U64::new(over_head),
            unclean_shutdown: 0,
            single_end_line_char: b'\n',
            non_end_line_char: b' ',
            double_end_line_char1: b'\r',
            double_end_line_char2: b'\n',
            compress_algorithm: U16::new(0),
            pad: [0; 433],
        };
        put(&mut file, 0, header.as_bytes());
        let descriptor = format!(
            concat!(
                "# Disk DescriptorFile\nversion=1\nCID=7e57da7a\nparentCID=ffffffff\n",
                "createType=\"monolithicSparse\"\n\n# Extent description\n",
                "RW {} SPARSE \"bench.vmdk\"\n\n# The Disk Data Base\n#DDB\n\n",
                "ddb.adapterType = \"lsilogic\"\nddb.virtualHWVersion = \"19\"\n",
            ),
            self.capacity_sectors
        );
        put(&mut file, sector, descriptor.as_bytes());

        // Grain table entries: allocated grains are stored one after the other from over_head.
        let mut gtes =
            vec![U32::ZERO; usize::try_from(tables).unwrap_or(0) * self.gtes_per_gt as usize];
        let mut next = over_head;
        for (grain, gte) in (0..self.grains()).zip(gtes.iter_mut()) {
            if grain % self.allocate_every == 0 {
                *gte = U32::new(u32::try_from(next).unwrap_or(0));
                put(
                    &mut file,
                    (next * SECTOR_SIZE) as usize,
                    &Self::grain_tag(grain),
                );
                next += self.grain_sectors;
            }
        }
        for directory in [rgd_offset, gd_offset] {
            let first_table = directory + gd_sectors;
            let gd: Vec<U32> = (0..tables)
                .map(|t| U32::new(u32::try_from(first_table + t * gt_sectors).unwrap_or(0)))
                .collect();
            put(&mut file, directory as usize * sector, gd.as_bytes());
            let gt_bytes = gtes.as_bytes();
            put(&mut file, first_table as usize * sector, gt_bytes);
        }
        file
    }
}

/// Copies `bytes` into `file` at `at`. The builder sizes the file for everything it writes.
fn put(file: &mut [u8], at: usize, bytes: &[u8]) {
    let Some(dst) = file.get_mut(at..at + bytes.len()) else {
        panic!(
            "the image builder wrote past its buffer ({} bytes at {at:#x})",
            bytes.len()
        );
    };
    dst.copy_from_slice(bytes);
}

/// One in-memory file served under any path, without copying it (unlike
/// [`vmdk::MemoryFiles`], which takes an `Arc<[u8]>`): a multi-GiB image built zeroed stays
/// mostly unbacked by memory.
#[derive(Clone)]
pub struct OneFile {
    bytes: Arc<Vec<u8>>,
}

impl std::fmt::Debug for OneFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OneFile")
            .field("len", &self.bytes.len())
            .finish()
    }
}

impl OneFile {
    /// Serves `bytes`.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self {
            bytes: Arc::new(bytes),
        }
    }
}

/// The shared bytes, read in place.
struct Shared(Arc<Vec<u8>>);

impl vmdk::ReadAt for Shared {
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read_at(pos, buf)
    }
}

impl Files for OneFile {
    fn open(&self, path: &Path) -> vmdk::Result<Backing> {
        let len = self.bytes.len() as u64;
        Ok(Backing::new(
            PathBuf::from(path),
            Shared(self.bytes.clone()),
            len,
        ))
    }
}

/// Calls `f` with each 64 KiB grain of the raw image at `path` that holds a non-zero byte (the
/// last grain may be shorter), in order: what the corpus tools (`levels`, `incompressible`)
/// compress. Panics on a read error, as a benchmark tool may.
pub fn for_each_nonzero_grain(path: &Path, mut f: impl FnMut(&[u8])) {
    use std::io::Read;
    const GRAIN: usize = 64 << 10;
    let mut file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut g = vec![0u8; GRAIN];
    loop {
        let mut n = 0;
        while let Some(rest) = g.get_mut(n..).filter(|r| !r.is_empty()) {
            match file.read(rest) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) => panic!("{}: {e}", path.display()),
            }
        }
        let data = g.get(..n).unwrap_or(&[]);
        if data.iter().any(|&b| b != 0) {
            f(data);
        }
        if n < GRAIN {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmdk::{Allocation, Descriptor, OpenOptions};

    #[test]
    fn descriptor_parses_with_every_extent() {
        let text = two_gb_max_extent_sparse_descriptor(500);
        let d = Descriptor::parse(&text).unwrap();
        assert_eq!(d.extents().count(), 500);
        assert_eq!(d.get("ddb.geometry.heads"), Some("255"));
        assert_eq!(d.print(), text);
    }

    #[test]
    fn sparse_image_opens_maps_and_reads() {
        let image = SparseImage {
            capacity_sectors: 3 * 512 * 8 + 24,
            grain_sectors: 8,
            gtes_per_gt: 512,
            allocate_every: 4,
        };
        let options = OpenOptions::new().files(OneFile::new(image.build()));
        let disk = options.open("bench.vmdk").unwrap();
        assert_eq!(disk.capacity(), image.capacity_sectors * SECTOR_SIZE);
        let gb = image.grain_bytes();
        let runs = disk.map(0, 8 * gb).unwrap();
        assert_eq!(runs.len(), 4);
        assert_eq!((runs[0].len, runs[0].kind), (gb, Allocation::Data));
        assert_eq!(
            (runs[1].len, runs[1].kind),
            (3 * gb, Allocation::Unallocated)
        );
        let sum = disk.allocation_summary().unwrap();
        assert_eq!(sum.data, image.allocated_grains() * gb);
        assert_eq!(sum.data + sum.unallocated, disk.capacity());
        let mut buf = vec![0xffu8; disk.capacity() as usize];
        disk.read_exact_at(0, &mut buf).unwrap();
        for g in 0..image.grains() {
            let grain = &buf[(g * gb) as usize..((g + 1) * gb) as usize];
            if g % 4 == 0 {
                assert_eq!(grain[..8], SparseImage::grain_tag(g), "grain {g}");
                assert!(grain[8..].iter().all(|&b| b == 0));
            } else {
                assert!(grain.iter().all(|&b| b == 0), "grain {g}");
            }
        }
    }
}
