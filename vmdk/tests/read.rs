//! Reading hand-built images through the library, from memory: stream-optimized extents in
//! VMware's GD_AT_END layout, hosted sparse extents with every grain geometry, parent chains.
//! Damaged inputs, each asserting the error's kind, structure and offset, are in `malformed.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use test_support::builders;

use builders::*;
use proptest::prelude::*;
use vmdk::{Allocation, Disk, Error, MemoryFiles, MetadataSource, OpenOptions};

fn open(files: MemoryFiles, name: &str) -> Result<Disk, Error> {
    OpenOptions::new().files(files).open(name)
}

fn open_one(name: &str, bytes: Vec<u8>) -> Result<Disk, Error> {
    let mut files = MemoryFiles::new();
    files.insert(name, bytes);
    open(files, name)
}

fn read_all(disk: &Disk) -> Vec<u8> {
    let mut buf = vec![0u8; disk.capacity() as usize];
    disk.read_exact_at(0, &mut buf).unwrap();
    buf
}

#[test]
fn stream_gd_at_end_reads_every_byte() {
    for zlib in [true, false] {
        for all_tables in [true, false] {
            let mut b = stream_sample();
            b.zlib = zlib;
            b.all_grain_tables = all_tables;
            let (bytes, _) = b.build();
            let disk = open_one("stream.vmdk", bytes).unwrap();
            assert_eq!(disk.capacity(), (1100 * 128 + 3) * 512);
            let expected = b.expected();
            assert_eq!(
                read_all(&disk),
                expected,
                "zlib={zlib} all_tables={all_tables}"
            );
            let info = disk.info().unwrap();
            let sparse = info.link.extents[0].sparse.as_ref().unwrap();
            assert_eq!(sparse.metadata_from, MetadataSource::Footer);
            // Unaligned reads across grain boundaries.
            for (off, len) in [
                (65530u64, 20usize),
                (1, 131072),
                (511 * 65536 + 7, 70000),
                (1100 * 65536, 1536),
            ] {
                let mut buf = vec![0u8; len];
                disk.read_exact_at(off, &mut buf).unwrap();
                assert_eq!(buf, expected[off as usize..off as usize + len]);
            }
        }
    }
}

#[test]
fn stream_map_tells_data_from_unallocated() {
    let (bytes, _) = stream_sample().build();
    let disk = open_one("stream.vmdk", bytes).unwrap();
    let runs = disk.map(0, 4 * 65536).unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(
        (runs[0].offset, runs[0].len, runs[0].kind),
        (0, 2 * 65536, Allocation::Data)
    );
    assert_eq!(
        (runs[1].len, runs[1].kind),
        (2 * 65536, Allocation::Unallocated)
    );
    let sum = disk.allocation_summary().unwrap();
    assert_eq!(sum.data, 4 * 65536 + 3 * 512);
    assert_eq!(sum.data + sum.unallocated, disk.capacity());
}

#[test]
fn sparse_every_geometry() {
    for (grain, per_gt, cap) in [
        (128u64, 512u32, 4096u64),
        (8, 512, 10_000),
        (16, 4, 1000),
        (1024, 512, 8 * 1024 + 5),
        (16384, 2, 16384 * 3),
    ] {
        let mut b = SparseBuilder::new(cap);
        b.grain_sectors = grain;
        b.gtes_per_gt = per_gt;
        let grains = cap.div_ceil(grain);
        for g in (0..grains).step_by(3) {
            b.grains.insert(g, noise(g + 7, b.grain_bytes()));
        }
        let (bytes, _) = b.build("d.vmdk");
        let disk = open_one("d.vmdk", bytes).unwrap();
        assert_eq!(
            read_all(&disk),
            b.expected(),
            "grain {grain} per_gt {per_gt}"
        );
    }
}

#[test]
fn zeroed_grains_mask_the_parent() {
    let mut parent = SparseBuilder::new(2048);
    parent.cid = 0x1111_1111;
    for g in 0..12 {
        parent.grains.insert(g, vec![0xaa; 65536]);
    }
    let mut child = SparseBuilder::new(2048);
    child.cid = 0x2222_2222;
    child.parent = Some((0x1111_1111, "base.vmdk".into()));
    child.grains.insert(1, vec![0xbb; 65536]);
    child.zeroed = vec![2];
    child.version = 2;
    let mut files = MemoryFiles::new();
    files.insert("base.vmdk", parent.build("base.vmdk").0);
    files.insert("child.vmdk", child.build("child.vmdk").0);
    let disk = open(files, "child.vmdk").unwrap();
    assert_eq!(disk.chain().count(), 2);
    let data = read_all(&disk);
    assert!(data[..65536].iter().all(|&b| b == 0xaa));
    assert!(data[65536..131072].iter().all(|&b| b == 0xbb));
    assert!(data[131072..196608].iter().all(|&b| b == 0));
    assert!(data[196608..12 * 65536].iter().all(|&b| b == 0xaa));
    assert!(data[12 * 65536..].iter().all(|&b| b == 0));
    let runs = disk.map(0, disk.capacity()).unwrap();
    let kinds: Vec<_> = runs.iter().map(|r| (r.offset / 65536, r.kind)).collect();
    assert_eq!(
        kinds,
        vec![
            (0, Allocation::Data),
            (2, Allocation::Zero),
            (3, Allocation::Data),
            (12, Allocation::Unallocated)
        ]
    );
}

/// A `parentCID` that differs from the parent's `CID` is refused (see `malformed.rs`) unless the
/// caller asks to ignore it.
#[test]
fn parent_cid_mismatch_can_be_ignored() {
    let mut files = MemoryFiles::new();
    for (name, bytes) in parent_chain(0x1234_5678, "base.vmdk", None) {
        files.insert(name, bytes);
    }
    let options = OpenOptions::new().files(files).ignore_parent_cid(true);
    let disk = options.open("child.vmdk").unwrap();
    assert!(disk.parent().is_some());
}

fn descriptor_disk(text: &str, extra: &[(&str, Vec<u8>)]) -> Result<Disk, Error> {
    let mut files = MemoryFiles::new();
    files.insert("d.vmdk", text.as_bytes().to_vec());
    for (n, b) in extra {
        files.insert(*n, b.clone());
    }
    open(files, "d.vmdk")
}

const HEAD: &str = "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n";

#[test]
fn custom_mix_of_flat_sparse_and_zero_extents() {
    let mut sparse = SparseBuilder::new(256);
    sparse.grains.insert(1, vec![3; 65536]);
    let flat: Vec<u8> = noise(9, 4 * 512 + 100 * 512);
    let text = format!("{HEAD}createType=\"custom\"\nRW 100 FLAT \"f.bin\" 4\nRDONLY 50 ZERO\nRW 256 SPARSE \"s.vmdk\"\nRW 8 VMFS \"f.bin\"\n");
    let disk = descriptor_disk(
        &text,
        &[
            ("f.bin", flat.clone()),
            ("s.vmdk", sparse.build("s.vmdk").0),
        ],
    )
    .unwrap();
    assert_eq!(disk.capacity(), (100 + 50 + 256 + 8) * 512);
    let data = read_all(&disk);
    assert_eq!(&data[..51200], &flat[2048..2048 + 51200]);
    assert!(data[51200..76800].iter().all(|&b| b == 0));
    assert_eq!(&data[76800..76800 + 131072], &sparse.expected()[..]);
    assert_eq!(&data[76800 + 131072..], &flat[..4096]);
    let kinds: Vec<_> = disk
        .map(0, disk.capacity())
        .unwrap()
        .iter()
        .map(|r| r.kind)
        .collect();
    // The sparse extent's allocated grain and the VMFS extent after it merge into one run.
    assert_eq!(
        kinds,
        vec![
            Allocation::Data,
            Allocation::Zero,
            Allocation::Unallocated,
            Allocation::Data
        ]
    );
}

/// Found by fuzzing: a 46-byte descriptor claiming a ~2^64-byte ZERO extent once made the
/// summary walk 2^34 windows. Summaries and maps follow the extents and grain tables present.
#[test]
fn huge_claimed_capacities_are_summarized_without_walking_them() {
    let text = format!("{HEAD}createType=\"custom\"\nRW 36028797018963967 ZERO\n");
    let disk = descriptor_disk(&text, &[]).unwrap();
    let sum = disk.allocation_summary().unwrap();
    assert_eq!(
        (sum.zero, sum.data, sum.unallocated),
        (disk.capacity(), 0, 0)
    );
    assert_eq!(disk.map(0, disk.capacity()).unwrap().len(), 1);
    // A sparse extent whose grain tables are absent: one run per missing table, not per grain.
    let mut b = SparseBuilder::new(1 << 24);
    b.grains.insert(5, vec![1; 65536]);
    let (mut bytes, layout) = b.build("d.vmdk");
    for t in 1..layout.grain_tables.len() {
        let at = layout.grain_directory + 4 * t;
        bytes[at..at + 4].copy_from_slice(&[0; 4]);
    }
    let disk = open_one("d.vmdk", bytes).unwrap();
    let runs = disk.map(0, disk.capacity()).unwrap();
    assert_eq!(runs.len(), 3, "{runs:?}");
    let sum = disk.allocation_summary().unwrap();
    assert_eq!(
        (sum.data, sum.unallocated),
        (65536, disk.capacity() - 65536)
    );
}

#[test]
fn reads_outside_the_capacity_are_refused() {
    let (bytes, _) = SparseBuilder::new(256).build("d.vmdk");
    let disk = open_one("d.vmdk", bytes).unwrap();
    assert!(disk.read_exact_at(256 * 512 - 1, &mut [0u8; 2]).is_err());
    assert!(disk.read_exact_at(u64::MAX, &mut [0u8; 2]).is_err());
    assert!(disk.map(u64::MAX - 1, 4).is_err());
    let mut buf = [9u8; 4];
    assert_eq!(
        positioned_io::ReadAt::read_at(&disk, 256 * 512 - 2, &mut buf).unwrap(),
        2
    );
    assert_eq!(
        positioned_io::ReadAt::read_at(&disk, 256 * 512, &mut buf).unwrap(),
        0
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn random_sparse_contents_read_back(
        cap in 1u64..3000,
        grain_shift in 3u32..9,
        per_gt in prop::sample::select(vec![1u32, 4, 512]),
        picks in prop::collection::vec((0u64..400, any::<u8>(), any::<bool>()), 0..24),
        stream in any::<bool>(),
    ) {
        let grain = 1u64 << grain_shift;
        let grains = cap.div_ceil(grain);
        let expected;
        let bytes;
        if stream {
            let mut b = StreamBuilder::new(cap);
            b.grain_sectors = grain;
            b.gtes_per_gt = per_gt;
            for (g, fill, random) in &picks {
                let data = if *random { noise(u64::from(*fill) + 1, b.grain_bytes()) } else { vec![*fill; b.grain_bytes()] };
                b.grains.insert(g % grains, data);
            }
            expected = b.expected();
            bytes = b.build().0;
        } else {
            let mut b = SparseBuilder::new(cap);
            b.grain_sectors = grain;
            b.gtes_per_gt = per_gt;
            for (g, fill, zero) in &picks {
                if *zero { b.zeroed.push(g % grains); b.grains.remove(&(g % grains)); }
                else { b.grains.insert(g % grains, vec![*fill; b.grain_bytes()]); b.zeroed.retain(|z| *z != g % grains); }
            }
            expected = b.expected();
            bytes = b.build("d.vmdk").0;
        }
        let disk = open_one("d.vmdk", bytes).unwrap();
        prop_assert_eq!(read_all(&disk), expected);
    }
}

/// Every VMFS thick and thin type ESXi writes (`vmfs`, `vmfsThin`, `vmfsPreallocated`,
/// `vmfsEagerZeroedThick`, the deprecated `vmfsThick`) over a VMFS extent, as an ESXi datastore
/// holds them (a descriptor and its `-flat.vmdk`): read byte for byte, every byte data. (qemu-img
/// refuses all but `vmfs`, so the expected bytes are the flat file's own.)
#[test]
fn every_vmfs_type_reads_its_flat_extent() {
    let flat = noise(11, 64 * 512);
    for t in [
        "vmfs",
        "vmfsThin",
        "vmfsPreallocated",
        "vmfsEagerZeroedThick",
        "vmfsThick",
    ] {
        let text = format!(
            "{HEAD}createType=\"{t}\"\n\n# Extent description\nRW 64 VMFS \"d-flat.vmdk\"\n\n# The Disk Data Base\n#DDB\nddb.adapterType = \"lsilogic\"\n"
        );
        let disk = descriptor_disk(&text, &[("d-flat.vmdk", flat.clone())]).unwrap();
        assert_eq!(disk.create_type().as_str(), t);
        assert_eq!(disk.capacity(), 64 * 512, "{t}");
        assert_eq!(read_all(&disk), flat, "{t}");
        let sum = disk.allocation_summary().unwrap();
        assert_eq!(sum.data, 64 * 512, "{t}");
        let info = disk.info().unwrap();
        assert_eq!(info.link.extents[0].kind, "VMFS", "{t}");
    }
}
