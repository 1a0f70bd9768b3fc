//! Reading hand-built images through the library, from memory: stream-optimized extents in
//! VMware's GD_AT_END layout, hosted sparse extents with every grain geometry, parent chains,
//! and one test per error path, each asserting the error's kind, structure and offset.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "support/builders.rs"]
mod builders;

use std::path::Path;
use std::sync::Arc;

use builders::*;
use proptest::prelude::*;
use vmdk::io::MemoryFiles;
use vmdk::sparse::MetadataSource;
use vmdk::{Allocation, Disk, Error, ErrorKind, OpenOptions};

fn open(files: MemoryFiles, name: &str) -> Result<Disk, Error> {
    let options = OpenOptions {
        files: Arc::new(files),
        ..OpenOptions::default()
    };
    Disk::open_with(name, &options)
}

fn open_one(name: &str, bytes: Vec<u8>) -> Result<Disk, Error> {
    let mut files = MemoryFiles::new();
    files.insert(name, bytes);
    open(files, name)
}

fn read_all(disk: &Disk) -> Vec<u8> {
    let mut buf = vec![0u8; disk.capacity() as usize];
    disk.read_exact(0, &mut buf).unwrap();
    buf
}

fn stream_sample() -> StreamBuilder {
    // 3 grain tables' worth and a partial last grain: 1100 grains of 64 KiB plus 3 sectors.
    let mut b = StreamBuilder::new(1100 * 128 + 3);
    b.grains.insert(0, noise(1, 65536));
    b.grains.insert(1, vec![0x5a; 1000]);
    b.grains.insert(511, noise(2, 65536));
    b.grains
        .insert(512, b"text-like data ".repeat(5000)[..65536].to_vec());
    b.grains.insert(1100, noise(3, 3 * 512));
    b
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
            let vmdk::disk::ExtentData::Sparse(s) = &disk.extents()[0].data else {
                panic!()
            };
            assert_eq!(s.metadata_source(), MetadataSource::Footer);
            // Unaligned reads across grain boundaries.
            for (off, len) in [
                (65530u64, 20usize),
                (1, 131072),
                (511 * 65536 + 7, 70000),
                (1100 * 65536, 1536),
            ] {
                let mut buf = vec![0u8; len];
                disk.read_exact(off, &mut buf).unwrap();
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

fn chain_files(
    parent_cid_in_child: u32,
    child_hint: &str,
    parent_hint: Option<&str>,
) -> MemoryFiles {
    let mut parent = SparseBuilder::new(256);
    parent.cid = 0x1111_1111;
    if let Some(h) = parent_hint {
        parent.parent = Some((0x2222_2222, h.into()));
    }
    let mut child = SparseBuilder::new(256);
    child.cid = 0x2222_2222;
    child.parent = Some((parent_cid_in_child, child_hint.into()));
    let mut files = MemoryFiles::new();
    files.insert("base.vmdk", parent.build("base.vmdk").0);
    files.insert("child.vmdk", child.build("child.vmdk").0);
    files
}

fn expect_err(r: Result<Disk, Error>) -> Error {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

#[test]
fn parent_cid_mismatch_is_refused() {
    let e = expect_err(open(
        chain_files(0x1234_5678, "base.vmdk", None),
        "child.vmdk",
    ));
    assert!(
        matches!(
            e.kind,
            ErrorKind::ParentCidMismatch {
                expected: 0x1234_5678,
                found: 0x1111_1111
            }
        ),
        "{e}"
    );
    assert_eq!(e.path.as_deref(), Some(Path::new("child.vmdk")));
    let options = OpenOptions {
        files: Arc::new(chain_files(0x1234_5678, "base.vmdk", None)),
        ignore_parent_cid: true,
        ..OpenOptions::default()
    };
    assert!(Disk::open_with("child.vmdk", &options).is_ok());
}

#[test]
fn parent_loops_are_refused() {
    let e = expect_err(open(
        chain_files(0x1111_1111, "base.vmdk", Some("child.vmdk")),
        "child.vmdk",
    ));
    assert!(matches!(e.kind, ErrorKind::Chain(_)), "{e}");
    let mut files = MemoryFiles::new();
    let mut me = SparseBuilder::new(256);
    me.parent = Some((me.cid, "self.vmdk".into()));
    files.insert("self.vmdk", me.build("self.vmdk").0);
    assert!(matches!(
        expect_err(open(files, "self.vmdk")).kind,
        ErrorKind::Chain(_)
    ));
}

#[test]
fn parent_outside_the_folder_is_refused() {
    for hint in ["../base.vmdk", "/etc/base.vmdk"] {
        let e = expect_err(open(chain_files(0x1111_1111, hint, None), "child.vmdk"));
        assert!(
            matches!(&e.kind, ErrorKind::PathOutside { name, .. } if name == hint),
            "{e}"
        );
    }
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

/// Asserts an open fails with `kind`, at `structure` and (if given) `offset`.
fn assert_fails(
    r: Result<Disk, Error>,
    structure: &str,
    offset: Option<u64>,
    kind: impl Fn(&ErrorKind) -> bool,
) {
    let e = expect_err(r);
    assert_eq!(e.structure, structure, "{e}");
    if offset.is_some() {
        assert_eq!(e.offset, offset, "{e}");
    }
    assert!(kind(&e.kind), "unexpected kind: {e}");
    // Every message names the file.
    assert!(e.path.is_some(), "{e}");
    assert!(!e.to_string().is_empty());
}

fn put(bytes: &mut [u8], at: usize, value: &[u8]) {
    bytes[at..at + value.len()].copy_from_slice(value);
}

#[test]
fn damaged_sparse_headers() {
    let mut b = SparseBuilder::new(4096);
    b.grains.insert(0, vec![1; 65536]);
    let (good, layout) = b.build("d.vmdk");
    let case = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut bytes = good.clone();
        f(&mut bytes);
        open_one("d.vmdk", bytes)
    };
    assert_fails(
        case(&|b| put(b, 4, &4u32.to_le_bytes())),
        "sparse header",
        Some(4),
        |k| matches!(k, ErrorKind::Unsupported(_)),
    );
    assert_fails(
        case(&|b| put(b, 8, &(3u32 | 1 << 20).to_le_bytes())),
        "sparse header",
        Some(8),
        |k| matches!(k, ErrorKind::Unsupported(_)),
    );
    assert_fails(
        case(&|b| put(b, 20, &100u64.to_le_bytes())),
        "sparse header",
        Some(0),
        |k| {
            matches!(
                k,
                ErrorKind::InvalidField {
                    field: "grainSize",
                    value: 100,
                    ..
                }
            )
        },
    );
    assert_fails(
        case(&|b| put(b, 20, &(1u64 << 20).to_le_bytes())),
        "sparse header",
        Some(0),
        |k| {
            matches!(
                k,
                ErrorKind::InvalidField {
                    field: "grainSize",
                    ..
                }
            )
        },
    );
    assert_fails(
        case(&|b| put(b, 44, &0u32.to_le_bytes())),
        "sparse header",
        Some(0),
        |k| {
            matches!(
                k,
                ErrorKind::InvalidField {
                    field: "numGTEsPerGT",
                    ..
                }
            )
        },
    );
    assert_fails(
        case(&|b| put(b, 12, &u64::MAX.to_le_bytes())),
        "sparse header",
        Some(0),
        |k| {
            matches!(
                k,
                ErrorKind::InvalidField {
                    field: "capacity",
                    ..
                }
            )
        },
    );
    // A capacity that makes the directory larger than the file: refused before allocating.
    assert_fails(
        case(&|b| put(b, 12, &(1u64 << 50).to_le_bytes())),
        "grain directory",
        None,
        |k| matches!(k, ErrorKind::Truncated { .. }),
    );
    assert_fails(
        case(&|b| put(b, 56, &0x00ff_ffff_u64.to_le_bytes())),
        "grain directory",
        Some(0x00ff_ffff * 512),
        |k| matches!(k, ErrorKind::Truncated { .. }),
    );
    assert_fails(
        case(&|b| put(b, 36, &100_000u64.to_le_bytes())),
        "sparse header",
        Some(36),
        |k| {
            matches!(
                k,
                ErrorKind::InvalidField {
                    field: "descriptorSize",
                    ..
                }
            )
        },
    );
    assert_fails(
        case(&|b| put(b, 28, &0x0fff_ffff_u64.to_le_bytes())),
        "embedded descriptor",
        None,
        |k| matches!(k, ErrorKind::Truncated { .. }),
    );
    assert_fails(case(&|b| b[75] = b'\n'), "sparse header", Some(73), |k| {
        matches!(k, ErrorKind::Inconsistent(_))
    });
    assert_fails(
        case(&|b| put(b, 48, &0x00ff_ffff_u64.to_le_bytes())),
        "redundant grain directory",
        None,
        |k| matches!(k, ErrorKind::Truncated { .. }),
    );
    assert_fails(
        case(&|b| put(b, 512, b"\xff\xfe")),
        "embedded descriptor",
        Some(512),
        |k| matches!(k, ErrorKind::Descriptor { line: 1, .. }),
    );
    assert_fails(
        case(&|b| put(b, 512, b"createType=\"vmfsSparse\"\n#")),
        "descriptor",
        None,
        |k| matches!(k, ErrorKind::Unsupported(_)),
    );
    assert_fails(case(&|b| b.truncate(300)), "sparse header", Some(0), |k| {
        matches!(
            k,
            ErrorKind::Truncated {
                end: 512,
                file_len: 300
            }
        )
    });
    // Grain tables and grains that point past the end of the file fail at read time.
    let gt = layout.grain_tables[0];
    let disk = case(&|b| put(b, layout.grain_directory, &0x00ff_ffffu32.to_le_bytes())).unwrap();
    let e = disk.read_exact(0, &mut [0u8; 512]).unwrap_err();
    assert_eq!(
        (e.structure, e.offset),
        ("grain table", Some(0x00ff_ffff * 512)),
        "{e}"
    );
    let disk = case(&|b| put(b, gt, &0x00ff_ffffu32.to_le_bytes())).unwrap();
    let e = disk.read_exact(0, &mut [0u8; 512]).unwrap_err();
    assert_eq!(
        (e.structure, e.offset),
        ("grain", Some(0x00ff_ffff * 512)),
        "{e}"
    );
    assert!(disk.map(0, 512).is_ok(), "the map needs no grain data");
}

#[test]
fn damaged_stream_extents() {
    let b = stream_sample();
    let (good, layout) = b.build();
    let case = |f: &dyn Fn(&mut Vec<u8>)| {
        let mut bytes = good.clone();
        f(&mut bytes);
        open_one("s.vmdk", bytes)
    };
    let read_fails = |f: &dyn Fn(&mut Vec<u8>),
                      structure: &str,
                      offset: u64,
                      kind: &dyn Fn(&ErrorKind) -> bool| {
        let disk = case(f).unwrap();
        let mut buf = vec![0u8; 65536];
        let e = disk.read_exact(0, &mut buf).unwrap_err();
        assert_eq!((e.structure, e.offset), (structure, Some(offset)), "{e}");
        assert!(kind(&e.kind), "{e}");
    };
    let g0 = layout.grain_markers[&0];
    read_fails(
        &|b| put(b, g0, &128u64.to_le_bytes()),
        "grain marker",
        g0 as u64,
        &|k| matches!(k, ErrorKind::Inconsistent(m) if m.contains("LBA")),
    );
    read_fails(
        &|b| put(b, g0 + 8, &0u32.to_le_bytes()),
        "grain marker",
        g0 as u64 + 8,
        &|k| matches!(k, ErrorKind::InvalidField { field: "size", .. }),
    );
    read_fails(
        &|b| put(b, g0 + 8, &u32::MAX.to_le_bytes()),
        "grain marker",
        g0 as u64 + 8,
        &|k| matches!(k, ErrorKind::InvalidField { field: "size", .. }),
    );
    read_fails(
        &|b| put(b, g0 + 14, b"garbage!"),
        "compressed grain",
        g0 as u64 + 12,
        &|k| matches!(k, ErrorKind::Decompress(_)),
    );
    // The footer's gdOffset, sizes and markers.
    assert_fails(
        case(&|b| put(b, layout.footer + 56, &u64::MAX.to_le_bytes())),
        "footer",
        Some(layout.footer as u64 + 56),
        |k| {
            matches!(
                k,
                ErrorKind::InvalidField {
                    field: "gdOffset",
                    ..
                }
            )
        },
    );
    assert_fails(
        case(&|b| put(b, layout.footer + 12, &7u64.to_le_bytes())),
        "footer",
        Some(layout.footer as u64),
        |k| matches!(k, ErrorKind::Inconsistent(m) if m.contains("capacity")),
    );
    assert_fails(
        case(&|b| put(b, layout.footer, b"XXXX")),
        "footer",
        Some(layout.footer as u64),
        |k| {
            matches!(
                k,
                ErrorKind::InvalidField {
                    field: "magicNumber",
                    ..
                }
            )
        },
    );
    assert_fails(
        case(&|b| put(b, layout.footer_marker + 12, &9u32.to_le_bytes())),
        "sparse header",
        Some(56),
        |k| matches!(k, ErrorKind::Inconsistent(m) if m.contains("GD_AT_END")),
    );
    assert_fails(
        case(&|b| b.truncate(b.len() - 512)),
        "sparse header",
        Some(56),
        |k| matches!(k, ErrorKind::Inconsistent(_)),
    );
    // The footer takes precedence over the header, so its fields are the ones checked.
    assert_fails(
        case(&|b| put(b, layout.footer + 77, &2u16.to_le_bytes())),
        "footer",
        Some(layout.footer as u64 + 77),
        |k| matches!(k, ErrorKind::Unsupported(_)),
    );
}

type KindCheck = Box<dyn Fn(&ErrorKind) -> bool>;

#[test]
fn damaged_descriptors() {
    let flat = vec![7u8; 4096];
    let ok = format!("{HEAD}createType=\"monolithicFlat\"\nRW 8 FLAT \"f.bin\" 0\n");
    assert!(descriptor_disk(&ok, &[("f.bin", flat.clone())]).is_ok());
    let cases: Vec<(String, KindCheck)> = vec![
        (format!("{HEAD}createType=\"monolithicFlat\"\nRW 9 FLAT \"f.bin\" 0\n"), Box::new(|k| matches!(k, ErrorKind::Inconsistent(m) if m.contains("shorter")))),
        (format!("{HEAD}createType=\"monolithicFlat\"\nRW 8 FLAT \"f.bin\" 99999999999999999\n"), Box::new(|k| matches!(k, ErrorKind::Inconsistent(_)))),
        (format!("{HEAD}createType=\"monolithicFlat\"\nRW 8 FLAT \"missing.bin\" 0\n"), Box::new(|k| matches!(k, ErrorKind::Io(_)))),
        (format!("{HEAD}createType=\"vmfsSparse\"\nRW 8 VMFSSPARSE \"f.bin\"\n"), Box::new(|k| matches!(k, ErrorKind::Unsupported(m) if m.contains("vmfsSparse")))),
        (format!("{HEAD}createType=\"custom\"\nRW 8 VMFSRDM \"f.bin\"\n"), Box::new(|k| matches!(k, ErrorKind::Unsupported(m) if m.contains("VMFSRDM")))),
        (format!("{HEAD}createType=\"fancyNewType\"\nRW 8 FLAT \"f.bin\" 0\n"), Box::new(|k| matches!(k, ErrorKind::Unsupported(_)))),
        (format!("{HEAD}createType=\"custom\"\n"), Box::new(|k| matches!(k, ErrorKind::Inconsistent(m) if m.contains("no extent")))),
        (format!("{HEAD}RW 8 FLAT \"f.bin\" 0\n"), Box::new(|k| matches!(k, ErrorKind::Inconsistent(m) if m.contains("createType")))),
        (format!("{HEAD}createType=\"custom\"\nRW 8 FLAT \"../f.bin\" 0\n"), Box::new(|k| matches!(k, ErrorKind::PathOutside { .. }))),
        (format!("{HEAD}createType=\"custom\"\nRW 8 FLAT \"/dev/zero\" 0\n"), Box::new(|k| matches!(k, ErrorKind::PathOutside { .. }))),
        (format!("{HEAD}createType=\"custom\"\nRW 36028797018963967 ZERO\nRW 36028797018963967 ZERO\n"), Box::new(|k| matches!(k, ErrorKind::Inconsistent(m) if m.contains("2^64")))),
        (format!("{HEAD}createType=\"custom\"\nRW 8 FLAT \"f.bin\" 0\nthis is not a line\n"), Box::new(|k| matches!(k, ErrorKind::Descriptor { line: 7, .. }))),
        (format!("{HEAD}createType=\"custom\"\nRW 8 SPARSE \"f.bin\"\n"), Box::new(|k| matches!(k, ErrorKind::InvalidField { field: "magicNumber", .. }))),
    ];
    for (text, kind) in cases {
        let e = expect_err(descriptor_disk(&text, &[("f.bin", flat.clone())]));
        assert!(kind(&e.kind), "{text}\n=> {e}");
        assert!(e.path.is_some(), "{e}");
    }
    // A NOACCESS extent opens but does not read.
    let disk = descriptor_disk(
        &format!("{HEAD}createType=\"custom\"\nNOACCESS 8 FLAT \"f.bin\" 0\n"),
        &[("f.bin", flat)],
    )
    .unwrap();
    assert!(disk.read_exact(0, &mut [0u8; 16]).is_err());
    // Not a VMDK at all, and an ESXi COWD extent.
    assert!(matches!(
        expect_err(open_one("x", b"\x7fELF binary".to_vec())).kind,
        ErrorKind::NotVmdk(_)
    ));
    assert!(matches!(
        expect_err(open_one("x", vec![0u8; 8 << 20])).kind,
        ErrorKind::NotVmdk(_)
    ));
    let mut cowd = b"COWD".to_vec();
    cowd.resize(2048, 0);
    assert!(
        matches!(expect_err(open_one("x", cowd)).kind, ErrorKind::Unsupported(m) if m.contains("COWD"))
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
    assert!(disk.read_exact(256 * 512 - 1, &mut [0u8; 2]).is_err());
    assert!(disk.read_exact(u64::MAX, &mut [0u8; 2]).is_err());
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
