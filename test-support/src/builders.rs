//! Test builders that lay out VMDK files byte by byte, independent of any writer in the
//! library: a stream-optimized extent in VMware's layout (grain markers, GT markers, GD marker,
//! footer marker and footer, end-of-stream marker, `gdOffset = GD_AT_END` in the header), which
//! qemu-img cannot write, and a hosted monolithicSparse extent (redundant and primary
//! directories). Offsets of every structure are returned so tests can damage them on purpose.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::collections::BTreeMap;
use std::io::Write;

pub const SECTOR: usize = 512;

fn pad(out: &mut Vec<u8>) {
    let rem = out.len() % SECTOR;
    if rem != 0 {
        out.resize(out.len() + SECTOR - rem, 0);
    }
}

fn sectors(bytes: usize) -> u64 {
    bytes.div_ceil(SECTOR) as u64
}

/// Fields of a `SparseExtentHeader`, written little-endian at their spec offsets.
#[derive(Clone, Debug)]
pub struct Header {
    pub version: u32,
    pub flags: u32,
    pub capacity: u64,
    pub grain_size: u64,
    pub descriptor_offset: u64,
    pub descriptor_size: u64,
    pub num_gtes_per_gt: u32,
    pub rgd_offset: u64,
    pub gd_offset: u64,
    pub over_head: u64,
    pub compress_algorithm: u16,
}

impl Header {
    pub fn bytes(&self) -> [u8; 512] {
        let mut b = [0u8; 512];
        b[0..4].copy_from_slice(b"KDMV");
        b[4..8].copy_from_slice(&self.version.to_le_bytes());
        b[8..12].copy_from_slice(&self.flags.to_le_bytes());
        b[12..20].copy_from_slice(&self.capacity.to_le_bytes());
        b[20..28].copy_from_slice(&self.grain_size.to_le_bytes());
        b[28..36].copy_from_slice(&self.descriptor_offset.to_le_bytes());
        b[36..44].copy_from_slice(&self.descriptor_size.to_le_bytes());
        b[44..48].copy_from_slice(&self.num_gtes_per_gt.to_le_bytes());
        b[48..56].copy_from_slice(&self.rgd_offset.to_le_bytes());
        b[56..64].copy_from_slice(&self.gd_offset.to_le_bytes());
        b[64..72].copy_from_slice(&self.over_head.to_le_bytes());
        b[73] = b'\n';
        b[74] = b' ';
        b[75] = b'\r';
        b[76] = b'\n';
        b[77..79].copy_from_slice(&self.compress_algorithm.to_le_bytes());
        b
    }
}

fn metadata_marker(num_sectors: u64, kind: u32) -> [u8; 512] {
    let mut m = [0u8; 512];
    m[0..8].copy_from_slice(&num_sectors.to_le_bytes());
    m[12..16].copy_from_slice(&kind.to_le_bytes());
    m
}

pub fn descriptor_text(create_type: &str, capacity_sectors: u64, file: &str, kind: &str) -> String {
    format!(
        "# Disk DescriptorFile\nversion=1\nCID=2a2a2a2a\nparentCID=ffffffff\ncreateType=\"{create_type}\"\n\n# Extent description\nRW {capacity_sectors} {kind} \"{file}\"\n\n# The Disk Data Base\n#DDB\n\nddb.adapterType = \"lsilogic\"\nddb.geometry.cylinders = \"100\"\nddb.geometry.heads = \"64\"\nddb.geometry.sectors = \"32\"\nddb.virtualHWVersion = \"14\"\n"
    )
}

/// Where the builder put each structure (byte offsets).
#[derive(Clone, Debug, Default)]
pub struct Layout {
    pub grain_markers: BTreeMap<u64, usize>,
    pub grain_tables: Vec<usize>,
    pub grain_directory: usize,
    pub footer_marker: usize,
    pub footer: usize,
    pub eos: usize,
}

/// A stream-optimized extent as VMware writes it.
#[derive(Clone, Debug)]
pub struct StreamBuilder {
    pub capacity_sectors: u64,
    pub grain_sectors: u64,
    pub gtes_per_gt: u32,
    /// Grain index to its bytes (at most one grain; shorter is zero-padded).
    pub grains: BTreeMap<u64, Vec<u8>>,
    /// zlib-wrapped deflate (what VMware writes) or raw deflate (what the spec text says).
    pub zlib: bool,
    /// Write a grain table even for groups with no grain (VMware does).
    pub all_grain_tables: bool,
}

impl StreamBuilder {
    pub fn new(capacity_sectors: u64) -> Self {
        Self {
            capacity_sectors,
            grain_sectors: 128,
            gtes_per_gt: 512,
            grains: BTreeMap::new(),
            zlib: true,
            all_grain_tables: true,
        }
    }

    pub fn grain_bytes(&self) -> usize {
        self.grain_sectors as usize * SECTOR
    }

    /// The bytes a reader must return for the whole capacity.
    pub fn expected(&self) -> Vec<u8> {
        let cap = self.capacity_sectors as usize * SECTOR;
        let mut out = vec![0u8; cap];
        for (g, data) in &self.grains {
            let start = *g as usize * self.grain_bytes();
            let n = data.len().min(cap - start);
            out[start..start + n].copy_from_slice(&data[..n]);
        }
        out
    }

    fn compress(&self, data: &[u8]) -> Vec<u8> {
        let mut grain = data.to_vec();
        grain.resize(self.grain_bytes(), 0);
        if self.zlib {
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            z.write_all(&grain).unwrap();
            z.finish().unwrap()
        } else {
            let mut z = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
            z.write_all(&grain).unwrap();
            z.finish().unwrap()
        }
    }

    pub fn header(&self, gd_offset: u64, descriptor_sectors: u64) -> Header {
        Header {
            version: 3,
            flags: 0x0003_0001,
            capacity: self.capacity_sectors,
            grain_size: self.grain_sectors,
            descriptor_offset: 1,
            descriptor_size: descriptor_sectors,
            num_gtes_per_gt: self.gtes_per_gt,
            rgd_offset: 0,
            gd_offset,
            over_head: 1 + descriptor_sectors,
            compress_algorithm: 1,
        }
    }

    pub fn build(&self) -> (Vec<u8>, Layout) {
        let desc = descriptor_text(
            "streamOptimized",
            self.capacity_sectors,
            "stream.vmdk",
            "SPARSE",
        );
        let desc_sectors = sectors(desc.len()).max(1);
        let mut out = Vec::new();
        out.extend_from_slice(&self.header(u64::MAX, desc_sectors).bytes());
        out.extend_from_slice(desc.as_bytes());
        pad(&mut out);
        let mut layout = Layout::default();
        let grains = self.capacity_sectors.div_ceil(self.grain_sectors);
        let per_gt = u64::from(self.gtes_per_gt);
        let tables = grains.div_ceil(per_gt);
        let mut gd = vec![0u32; tables as usize];
        for t in 0..tables {
            let mut gt = vec![0u32; per_gt as usize];
            let mut any = false;
            for (g, data) in self.grains.range(t * per_gt..(t + 1) * per_gt) {
                any = true;
                let at = out.len();
                layout.grain_markers.insert(*g, at);
                gt[(g - t * per_gt) as usize] = (at / SECTOR) as u32;
                let packed = self.compress(data);
                out.extend_from_slice(&(g * self.grain_sectors).to_le_bytes());
                out.extend_from_slice(&(packed.len() as u32).to_le_bytes());
                out.extend_from_slice(&packed);
                pad(&mut out);
            }
            if any || self.all_grain_tables {
                let gt_bytes: Vec<u8> = gt.iter().flat_map(|e| e.to_le_bytes()).collect();
                out.extend_from_slice(&metadata_marker(sectors(gt_bytes.len()), 1));
                layout.grain_tables.push(out.len());
                gd[t as usize] = (out.len() / SECTOR) as u32;
                out.extend_from_slice(&gt_bytes);
                pad(&mut out);
            }
        }
        let gd_bytes: Vec<u8> = gd.iter().flat_map(|e| e.to_le_bytes()).collect();
        out.extend_from_slice(&metadata_marker(sectors(gd_bytes.len()).max(1), 2));
        layout.grain_directory = out.len();
        let gd_sector = (out.len() / SECTOR) as u64;
        out.extend_from_slice(&gd_bytes);
        pad(&mut out);
        layout.footer_marker = out.len();
        out.extend_from_slice(&metadata_marker(1, 3));
        layout.footer = out.len();
        out.extend_from_slice(&self.header(gd_sector, desc_sectors).bytes());
        layout.eos = out.len();
        out.extend_from_slice(&metadata_marker(0, 0));
        (out, layout)
    }
}

/// A monolithicSparse extent: header, embedded descriptor, redundant directory and tables,
/// directory and tables, grains (uncompressed).
#[derive(Clone, Debug)]
pub struct SparseBuilder {
    pub capacity_sectors: u64,
    pub grain_sectors: u64,
    pub gtes_per_gt: u32,
    pub version: u32,
    pub grains: BTreeMap<u64, Vec<u8>>,
    /// Grains whose entry is the zeroed-grain value 1 (sets flag bit 2).
    pub zeroed: Vec<u64>,
    /// Extra descriptor lines (parent hints and the like) and the CIDs.
    pub cid: u32,
    pub parent: Option<(u32, String)>,
}

/// Offsets of a sparse builder's structures.
#[derive(Clone, Debug, Default)]
pub struct SparseLayout {
    pub descriptor: usize,
    pub redundant_directory: usize,
    pub grain_directory: usize,
    pub grain_tables: Vec<usize>,
    pub grains: BTreeMap<u64, usize>,
}

impl SparseBuilder {
    pub fn new(capacity_sectors: u64) -> Self {
        Self {
            capacity_sectors,
            grain_sectors: 128,
            gtes_per_gt: 512,
            version: 1,
            grains: BTreeMap::new(),
            zeroed: Vec::new(),
            cid: 0x2a2a_2a2a,
            parent: None,
        }
    }

    pub fn grain_bytes(&self) -> usize {
        self.grain_sectors as usize * SECTOR
    }

    pub fn expected(&self) -> Vec<u8> {
        let cap = self.capacity_sectors as usize * SECTOR;
        let mut out = vec![0u8; cap];
        for (g, data) in &self.grains {
            let start = *g as usize * self.grain_bytes();
            let n = data.len().min(cap - start);
            out[start..start + n].copy_from_slice(&data[..n]);
        }
        out
    }

    pub fn descriptor(&self, file: &str) -> String {
        let mut d = descriptor_text("monolithicSparse", self.capacity_sectors, file, "SPARSE");
        d = d.replace("CID=2a2a2a2a", &format!("CID={:08x}", self.cid));
        if let Some((pcid, hint)) = &self.parent {
            d = d.replace(
                "parentCID=ffffffff",
                &format!("parentCID={pcid:08x}\nparentFileNameHint=\"{hint}\""),
            );
        }
        d
    }

    pub fn build(&self, file: &str) -> (Vec<u8>, SparseLayout) {
        let desc = self.descriptor(file);
        let desc_sectors = 20u64.max(sectors(desc.len()));
        let grains = self.capacity_sectors.div_ceil(self.grain_sectors);
        let per_gt = u64::from(self.gtes_per_gt);
        let tables = grains.div_ceil(per_gt) as usize;
        let gd_sectors = sectors(tables * 4);
        let gt_sectors = sectors(per_gt as usize * 4);
        let rgd = 1 + desc_sectors;
        let rgt0 = rgd + gd_sectors;
        let gd = rgt0 + tables as u64 * gt_sectors;
        let gt0 = gd + gd_sectors;
        let meta_end = gt0 + tables as u64 * gt_sectors;
        let over_head = meta_end.div_ceil(self.grain_sectors) * self.grain_sectors;
        let mut flags = 0x3;
        if !self.zeroed.is_empty() {
            flags |= 0x4;
        }
        let header = Header {
            version: self.version,
            flags,
            capacity: self.capacity_sectors,
            grain_size: self.grain_sectors,
            descriptor_offset: 1,
            descriptor_size: desc_sectors,
            num_gtes_per_gt: self.gtes_per_gt,
            rgd_offset: rgd,
            gd_offset: gd,
            over_head,
            compress_algorithm: 0,
        };
        let mut out = vec![0u8; over_head as usize * SECTOR];
        out[..512].copy_from_slice(&header.bytes());
        out[512..512 + desc.len()].copy_from_slice(desc.as_bytes());
        let mut layout = SparseLayout {
            descriptor: 512,
            redundant_directory: rgd as usize * SECTOR,
            grain_directory: gd as usize * SECTOR,
            ..Default::default()
        };
        let mut entries = vec![0u32; tables * per_gt as usize];
        for g in &self.zeroed {
            entries[*g as usize] = 1;
        }
        for (g, data) in &self.grains {
            let at = out.len();
            layout.grains.insert(*g, at);
            entries[*g as usize] = (at / SECTOR) as u32;
            let mut grain = data.clone();
            grain.resize(self.grain_bytes(), 0);
            out.extend_from_slice(&grain);
        }
        for (dir, first_gt) in [(rgd, rgt0), (gd, gt0)] {
            for t in 0..tables {
                let gt_at = (first_gt + t as u64 * gt_sectors) as usize * SECTOR;
                let entry_at = dir as usize * SECTOR + t * 4;
                out[entry_at..entry_at + 4]
                    .copy_from_slice(&((gt_at / SECTOR) as u32).to_le_bytes());
                for i in 0..per_gt as usize {
                    let at = gt_at + i * 4;
                    out[at..at + 4]
                        .copy_from_slice(&entries[t * per_gt as usize + i].to_le_bytes());
                }
                if first_gt == gt0 {
                    layout.grain_tables.push(gt_at);
                }
            }
        }
        (out, layout)
    }
}

/// A parent (`base.vmdk`, CID 1111_1111, itself naming `parent_hint` as its parent if given)
/// and a child (`child.vmdk`, CID 2222_2222) naming it by `hint` with `parent_cid_in_child`:
/// the files' names and bytes.
pub fn parent_chain(
    parent_cid_in_child: u32,
    hint: &str,
    parent_hint: Option<&str>,
) -> [(&'static str, Vec<u8>); 2] {
    let mut parent = SparseBuilder::new(256);
    parent.cid = 0x1111_1111;
    if let Some(h) = parent_hint {
        parent.parent = Some((0x2222_2222, h.into()));
    }
    let mut child = SparseBuilder::new(256);
    child.cid = 0x2222_2222;
    child.parent = Some((parent_cid_in_child, hint.into()));
    [
        ("base.vmdk", parent.build("base.vmdk").0),
        ("child.vmdk", child.build("child.vmdk").0),
    ]
}

/// Overwrites `bytes` at `at` with `value` (to damage an image on purpose).
pub fn put(bytes: &mut [u8], at: usize, value: &[u8]) {
    bytes[at..at + value.len()].copy_from_slice(value);
}

/// Deterministic pseudo-random bytes (xorshift), so tests need no RNG crate.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// A VMware-layout stream of 3 grain tables' worth and a partial last grain (1100 grains of
/// 64 KiB plus 3 sectors): noise, a short grain, the last grain of a table and the first of the
/// next, text-like data, and the partial grain.
pub fn stream_sample() -> StreamBuilder {
    let mut b = StreamBuilder::new(1100 * 128 + 3);
    b.grains.insert(0, noise(1, 65536));
    b.grains.insert(1, vec![0x5a; 1000]);
    b.grains.insert(511, noise(2, 65536));
    b.grains
        .insert(512, b"text-like data ".repeat(5000)[..65536].to_vec());
    b.grains.insert(1100, noise(3, 3 * 512));
    b
}

/// A text descriptor of an ESXi link: `createType`, `CID`, the parent (`parentCID` and
/// `parentFileNameHint`) or none, and its extent lines (`RW 2048 VMFSSPARSE "x-delta.vmdk"`).
pub fn esx_descriptor(
    create_type: &str,
    cid: u32,
    parent: Option<(u32, &str)>,
    lines: &[String],
) -> String {
    let (parent_cid, hint) = match parent {
        Some((pcid, hint)) => (
            format!("{pcid:08x}"),
            format!("parentFileNameHint=\"{hint}\"\n"),
        ),
        None => ("ffffffff".to_string(), String::new()),
    };
    format!(
        "# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\nCID={cid:08x}\nparentCID={parent_cid}\ncreateType=\"{create_type}\"\n{hint}\n# Extent description\n{}\n\n# The Disk Data Base\n#DDB\n\nddb.adapterType = \"lsilogic\"\nddb.geometry.cylinders = \"100\"\nddb.geometry.heads = \"64\"\nddb.geometry.sectors = \"32\"\nddb.virtualHWVersion = \"14\"\n",
        lines.join("\n")
    )
}

/// The bytes `parent` (a whole parent disk, any length) puts under a child of
/// `capacity_sectors`: cut or zero-extended to the child's capacity.
fn under(parent: &[u8], capacity_sectors: u64) -> Vec<u8> {
    let mut out = parent.to_vec();
    out.resize(capacity_sectors as usize * SECTOR, 0);
    out
}

/// Copies `data` (zero-padded to `grain_bytes`) into grain `g` of `out`, cut at its end.
fn put_grain(out: &mut [u8], g: u64, grain_bytes: usize, data: &[u8]) {
    let start = g as usize * grain_bytes;
    let mut grain = data.to_vec();
    grain.resize(grain_bytes, 0);
    let n = grain_bytes.min(out.len() - start);
    out[start..start + n].copy_from_slice(&grain[..n]);
}

/// Where an ESXi delta builder put each structure (byte offsets).
#[derive(Clone, Debug, Default)]
pub struct EsxLayout {
    pub grain_directory: usize,
    /// Directory index to the byte offset of its grain table.
    pub grain_tables: BTreeMap<u64, usize>,
    /// Grain index to the byte offset of its data.
    pub grains: BTreeMap<u64, usize>,
    /// Grain index to the byte offset of its grain table entry.
    pub entries: BTreeMap<u64, usize>,
    /// seSparse: byte offset of the volatile header.
    pub volatile_header: usize,
}

/// An ESXi sparse extent (vmfsSparse, `COWD` version 1), laid out as ESXi does: the 2048-byte
/// header, the grain directory at sector 4, grain tables of 4096 entries, then the grains.
#[derive(Clone, Debug)]
pub struct CowdBuilder {
    pub capacity_sectors: u32,
    /// 1 in every file ESXi writes.
    pub grain_sectors: u32,
    pub grains: BTreeMap<u64, Vec<u8>>,
    /// Write a grain table for every directory entry, even with no grain in it.
    pub all_grain_tables: bool,
}

impl CowdBuilder {
    pub const GTES: u64 = 4096;

    pub fn new(capacity_sectors: u32) -> Self {
        Self {
            capacity_sectors,
            grain_sectors: 1,
            grains: BTreeMap::new(),
            all_grain_tables: false,
        }
    }

    pub fn grain_bytes(&self) -> usize {
        self.grain_sectors as usize * SECTOR
    }

    /// The bytes a reader must return over `parent` (unallocated grains read through).
    pub fn expected_over(&self, parent: &[u8]) -> Vec<u8> {
        let mut out = under(parent, self.capacity_sectors.into());
        for (g, data) in &self.grains {
            put_grain(&mut out, *g, self.grain_bytes(), data);
        }
        out
    }

    pub fn build(&self) -> (Vec<u8>, EsxLayout) {
        let grains = u64::from(self.capacity_sectors).div_ceil(self.grain_sectors.into());
        let tables = grains.div_ceil(Self::GTES);
        let gd_sector = 4u64;
        let mut out =
            vec![0u8; (gd_sector as usize + sectors(tables as usize * 4) as usize) * SECTOR];
        let mut layout = EsxLayout {
            grain_directory: gd_sector as usize * SECTOR,
            ..Default::default()
        };
        for t in 0..tables {
            let any = self
                .grains
                .range(t * Self::GTES..(t + 1) * Self::GTES)
                .next()
                .is_some();
            if !any && !self.all_grain_tables {
                continue;
            }
            let at = out.len();
            layout.grain_tables.insert(t, at);
            put(
                &mut out,
                layout.grain_directory + t as usize * 4,
                &((at / SECTOR) as u32).to_le_bytes(),
            );
            out.resize(at + Self::GTES as usize * 4, 0);
        }
        for (g, data) in &self.grains {
            let at = out.len();
            let table = layout.grain_tables[&(g / Self::GTES)];
            let entry = table + (g % Self::GTES) as usize * 4;
            layout.grains.insert(*g, at);
            layout.entries.insert(*g, entry);
            put(&mut out, entry, &((at / SECTOR) as u32).to_le_bytes());
            let mut grain = data.clone();
            grain.resize(self.grain_bytes(), 0);
            out.extend_from_slice(&grain);
        }
        let mut h = [0u8; 2048];
        h[0..4].copy_from_slice(b"COWD");
        h[4..8].copy_from_slice(&1u32.to_le_bytes());
        h[8..12].copy_from_slice(&3u32.to_le_bytes());
        h[12..16].copy_from_slice(&self.capacity_sectors.to_le_bytes());
        h[16..20].copy_from_slice(&self.grain_sectors.to_le_bytes());
        h[20..24].copy_from_slice(&(gd_sector as u32).to_le_bytes());
        h[24..28].copy_from_slice(&(tables as u32).to_le_bytes());
        h[28..32].copy_from_slice(&((out.len() / SECTOR) as u32).to_le_bytes());
        out[..2048].copy_from_slice(&h);
        (out, layout)
    }
}

/// A seSparse extent (version 0x200000001), laid out in the order of its constant header:
/// header, volatile header, journal header, journal, grain directory, grain table area, free
/// bitmap, back map, grain area. Grain tables are numbered from the last directory entry down
/// and grains from the last grain down (from `first_grain_number`), so neither is where its
/// index would put it.
#[derive(Clone, Debug)]
pub struct SeSparseBuilder {
    pub capacity_sectors: u64,
    /// 8 in every file ESXi writes, the only size qemu reads.
    pub grain_sectors: u64,
    /// 64 (4096 entries) in every file ESXi writes, the only size qemu reads.
    pub table_sectors: u64,
    pub grains: BTreeMap<u64, Vec<u8>>,
    /// Grains whose entry is "zero".
    pub zeroed: Vec<u64>,
    /// Grains whose entry is "unmapped" (SCSI UNMAP).
    pub unmapped: Vec<u64>,
    /// The number of the first grain stored in the grain area (those before are a hole of
    /// zeros): 4095 puts grains on both sides of the 12-bit split of the entry's encoding.
    pub first_grain_number: u64,
    /// The volatile header's `replay_journal`.
    pub dirty: bool,
}

impl SeSparseBuilder {
    pub fn new(capacity_sectors: u64) -> Self {
        Self {
            capacity_sectors,
            grain_sectors: 8,
            table_sectors: 64,
            grains: BTreeMap::new(),
            zeroed: Vec::new(),
            unmapped: Vec::new(),
            first_grain_number: 0,
            dirty: false,
        }
    }

    pub fn grain_bytes(&self) -> usize {
        self.grain_sectors as usize * SECTOR
    }

    pub fn gtes(&self) -> u64 {
        self.table_sectors * 64
    }

    /// The bytes a reader must return over `parent`: unallocated grains read through, zeroed
    /// grains read zeros, and unmapped grains zeros as qemu reads them or the parent as
    /// dissect.hypervisor does (`unmapped_reads_parent`).
    pub fn expected_over(&self, parent: &[u8], unmapped_reads_parent: bool) -> Vec<u8> {
        let mut out = under(parent, self.capacity_sectors);
        let mut zeros: Vec<u64> = self.zeroed.clone();
        if !unmapped_reads_parent {
            zeros.extend(&self.unmapped);
        }
        for g in zeros {
            put_grain(&mut out, g, self.grain_bytes(), &[]);
        }
        for (g, data) in &self.grains {
            put_grain(&mut out, *g, self.grain_bytes(), data);
        }
        out
    }

    /// The grain table entry of an allocated grain numbered `n` in the grain area.
    pub fn allocated(n: u64) -> u64 {
        0x3000_0000_0000_0000 | ((n & 0xfff) << 48) | (n >> 12)
    }

    /// Each grain's table entry (zeroed, unmapped, allocated) and, for the stored ones, their
    /// grain numbers: stored last first, from `first_grain_number`.
    fn grain_entries(&self) -> (BTreeMap<u64, u64>, BTreeMap<u64, u64>) {
        let mut entries: BTreeMap<u64, u64> = BTreeMap::new();
        for g in &self.zeroed {
            entries.insert(*g, 0x2000_0000_0000_0000);
        }
        for g in &self.unmapped {
            entries.insert(*g, 0x1000_0000_0000_0000);
        }
        let stored = self.grains.len() as u64;
        let mut numbers = BTreeMap::new();
        for (i, g) in self.grains.keys().enumerate() {
            let n = self.first_grain_number + stored - 1 - i as u64;
            numbers.insert(*g, n);
            entries.insert(*g, Self::allocated(n));
        }
        (entries, numbers)
    }

    pub fn build(&self) -> (Vec<u8>, EsxLayout) {
        let grain_count = self.capacity_sectors.div_ceil(self.grain_sectors);
        let gtes = self.gtes();
        let tables = grain_count.div_ceil(gtes);
        let gd_sectors = sectors(tables as usize * 8).max(1);
        // Sectors: header 0, volatile 1, journal header 2, journal 3-10.
        let (volatile, journal_header, journal, journal_size) = (1u64, 2u64, 3u64, 8u64);
        let gd = journal + journal_size;
        let gt_area = gd + gd_sectors;
        let gt_area_size = tables * self.table_sectors;
        let bitmap = gt_area + gt_area_size;
        let backmap = bitmap + 1;
        let grain_area = backmap + 1;
        let grain_area_size = (grain_count + self.first_grain_number) * self.grain_sectors;
        let (entries, numbers) = self.grain_entries();
        // Tables that hold any entry, numbered from the last down.
        let used: Vec<u64> = (0..tables)
            .filter(|t| entries.range(t * gtes..(t + 1) * gtes).next().is_some())
            .collect();
        let mut end = grain_area;
        if let Some(max) = numbers.values().max() {
            end = grain_area + (max + 1) * self.grain_sectors;
        }
        let mut out = vec![0u8; end as usize * SECTOR];
        let mut layout = EsxLayout {
            grain_directory: gd as usize * SECTOR,
            volatile_header: volatile as usize * SECTOR,
            ..Default::default()
        };
        for (k, t) in used.iter().rev().enumerate() {
            let number = k as u64;
            let at = (gt_area + number * self.table_sectors) as usize * SECTOR;
            layout.grain_tables.insert(*t, at);
            put(
                &mut out,
                layout.grain_directory + *t as usize * 8,
                &(0x1000_0000_0000_0000u64 | number).to_le_bytes(),
            );
            for (g, e) in entries.range(t * gtes..(t + 1) * gtes) {
                let entry = at + (g % gtes) as usize * 8;
                layout.entries.insert(*g, entry);
                put(&mut out, entry, &e.to_le_bytes());
            }
        }
        for (g, data) in &self.grains {
            let at = (grain_area + numbers[g] * self.grain_sectors) as usize * SECTOR;
            layout.grains.insert(*g, at);
            let mut grain = data.clone();
            grain.resize(self.grain_bytes(), 0);
            put(&mut out, at, &grain);
        }
        let fields: [u64; 26] = [
            0xcafe_babe,
            0x2_0000_0001,
            self.capacity_sectors,
            self.grain_sectors,
            self.table_sectors,
            0,
            0,
            0,
            0,
            0,
            volatile,
            1,
            journal_header,
            1,
            journal,
            journal_size,
            gd,
            gd_sectors,
            gt_area,
            gt_area_size,
            bitmap,
            1,
            backmap,
            1,
            grain_area,
            grain_area_size,
        ];
        for (i, f) in fields.iter().enumerate() {
            put(&mut out, i * 8, &f.to_le_bytes());
        }
        let v = volatile as usize * SECTOR;
        put(&mut out, v, &0xcafe_cafeu64.to_le_bytes());
        put(&mut out, v + 8, &(used.len() as u64).to_le_bytes());
        put(&mut out, v + 16, &1u64.to_le_bytes());
        put(&mut out, v + 24, &u64::from(self.dirty).to_le_bytes());
        (out, layout)
    }
}
