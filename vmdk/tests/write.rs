//! proptest round-trips: random disk contents through every writer (stream-optimized, sparse,
//! flat) and back through our reader give the same bytes; random descriptors print and parse
//! back equal.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use vmdk::copy::{copy_to_targets, CopyOptions, Target};
use vmdk::ddb::DiskSettings;
use vmdk::descriptor::{Access, CreateType, Descriptor, ExtentKind, ExtentLine};
use vmdk::flat::flat_descriptor;
use vmdk::io::MemoryFiles;
use vmdk::sparse::write::write_sparse_extent;
use vmdk::stream::{write_stream_optimized, StreamOptions};
use vmdk::{Disk, OpenOptions};

fn memory_disk(name: &str, bytes: Vec<u8>, raw: bool) -> Disk {
    let mut files = MemoryFiles::new();
    files.insert(name, bytes);
    let options = OpenOptions {
        files: Arc::new(files),
        ..OpenOptions::default()
    };
    if raw {
        Disk::open_raw(name, &options).unwrap()
    } else {
        Disk::open_with(name, &options).unwrap()
    }
}

fn read_all(disk: &Disk) -> Vec<u8> {
    let mut buf = vec![0u8; disk.capacity() as usize];
    disk.read_exact(0, &mut buf).unwrap();
    buf
}

/// Raw contents: `sectors` sectors with runs of patterned, random and zero data.
fn contents() -> impl Strategy<Value = Vec<u8>> {
    (
        1u64..2500,
        prop::collection::vec((0u64..2500, 1u64..300, any::<u8>(), any::<bool>()), 0..12),
    )
        .prop_map(|(sectors, runs)| {
            let mut raw = vec![0u8; sectors as usize * 512];
            for (at, len, fill, random) in runs {
                let start = (at % sectors) as usize * 512;
                let end = (start + len as usize * 512).min(raw.len());
                let mut x = u64::from(fill) | 1;
                for b in &mut raw[start..end] {
                    *b = if random {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    } else {
                        fill
                    };
                }
            }
            raw
        })
}

fn no_progress(_: u64) {}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn stream_optimized_round_trip(raw in contents(), threads in 1usize..4, level in 0u32..10, batch in 1usize..8) {
        let src = memory_disk("src.raw", raw.clone(), true);
        let mut out = Vec::new();
        let options = StreamOptions { level, threads, batch, ..StreamOptions::default() };
        write_stream_optimized(&src, &mut out, &options, &no_progress).unwrap();
        let back = memory_disk("out.vmdk", out, false);
        prop_assert_eq!(back.create_type(), &CreateType::StreamOptimized);
        prop_assert_eq!(read_all(&back), raw);
    }

    #[test]
    fn sparse_round_trip(raw in contents(), threads in 1usize..4, split_at in 0u64..2500) {
        let src = memory_disk("src.raw", raw.clone(), true);
        let dir = tempfile::tempdir().unwrap();
        // One monolithic extent with an embedded descriptor.
        let path = dir.path().join("m.vmdk");
        let file = std::fs::File::create_new(&path).unwrap();
        let line = ExtentLine { access: Access::ReadWrite, sectors: raw.len() as u64 / 512, kind: ExtentKind::Sparse, file_name: Some("m.vmdk".into()), offset: 0 };
        let d = DiskSettings::new(raw.len() as u64).descriptor(&CreateType::MonolithicSparse, vec![line]);
        write_sparse_extent(&src, &Target { file: &file, path: &path, start: 0, len: raw.len() as u64 }, Some(&d), threads, &no_progress).unwrap();
        drop(file);
        prop_assert_eq!(read_all(&Disk::open(&path).unwrap()), raw.clone());
        // Two extents without descriptors, and a descriptor naming them.
        let cut = (split_at % (raw.len() as u64 / 512)) * 512;
        let mut lines = Vec::new();
        for (i, (start, len)) in [(0, cut), (cut, raw.len() as u64 - cut)].into_iter().enumerate() {
            if len == 0 {
                continue;
            }
            let name = format!("s{i}.vmdk");
            let p = dir.path().join(&name);
            let f = std::fs::File::create_new(&p).unwrap();
            write_sparse_extent(&src, &Target { file: &f, path: &p, start, len }, None, threads, &no_progress).unwrap();
            lines.push(ExtentLine { access: Access::ReadWrite, sectors: len / 512, kind: ExtentKind::Sparse, file_name: Some(name), offset: 0 });
        }
        let desc = DiskSettings::new(raw.len() as u64).descriptor(&CreateType::TwoGbMaxExtentSparse, lines);
        std::fs::write(dir.path().join("split.vmdk"), desc.print()).unwrap();
        prop_assert_eq!(read_all(&Disk::open(dir.path().join("split.vmdk")).unwrap()), raw);
    }

    #[test]
    fn flat_round_trip(raw in contents(), esx in any::<bool>(), threads in 1usize..4) {
        let src = memory_disk("src.raw", raw.clone(), true);
        let dir = tempfile::tempdir().unwrap();
        let flat = dir.path().join("t-flat.vmdk");
        let file = std::fs::File::create_new(&flat).unwrap();
        let options = CopyOptions { threads, window: 4096, ..CopyOptions::default() };
        copy_to_targets(&src, &[Target { file: &file, path: &flat, start: 0, len: raw.len() as u64 }], &options, &no_progress).unwrap();
        let t = if esx { CreateType::Vmfs } else { CreateType::MonolithicFlat };
        let d = flat_descriptor(&t, &[("t-flat.vmdk".into(), raw.len() as u64)], &DiskSettings::new(raw.len() as u64));
        std::fs::write(dir.path().join("t.vmdk"), d.print()).unwrap();
        let back = Disk::open(dir.path().join("t.vmdk")).unwrap();
        prop_assert_eq!(back.create_type(), &t);
        prop_assert_eq!(read_all(&back), raw);
    }

    #[test]
    fn random_descriptors_print_and_parse_back(
        create in prop::sample::select(vec!["monolithicSparse", "custom", "vmfs", "streamOptimized", "someFutureType"]),
        cid in 0u32..0xffff_fffe,
        pairs in prop::collection::vec(("[a-zA-Z][a-zA-Z0-9.]{0,12}", "[ -~&&[^\"]]{0,20}"), 0..8),
        extents in prop::collection::vec((0usize..3, 0u64..1 << 40, 0usize..5, "[a-zA-Z0-9 _.-]{1,20}", 0u64..100_000), 1..6),
        crlf in any::<bool>(),
    ) {
        let mut d = Descriptor::new(&create.parse().unwrap(), cid);
        for (k, v) in &pairs {
            d.set(&format!("ddb.{k}"), v);
        }
        for (access, sectors, kind, name, offset) in extents {
            let kind = [ExtentKind::Flat, ExtentKind::Sparse, ExtentKind::Zero, ExtentKind::Vmfs, ExtentKind::VmfsSparse][kind].clone();
            let zero = kind == ExtentKind::Zero;
            d.push_extent(ExtentLine {
                access: [Access::ReadWrite, Access::ReadOnly, Access::NoAccess][access],
                sectors,
                offset: if kind == ExtentKind::Flat { offset } else { 0 },
                file_name: (!zero).then_some(name),
                kind,
            });
        }
        let text = d.print();
        let parsed = Descriptor::parse(&text).unwrap();
        prop_assert_eq!(&parsed, &d);
        prop_assert_eq!(parsed.cid(), Some(cid));
        for (k, v) in &pairs {
            // The last value set for a key wins (keys match without regard to case); quoted
            // values keep their spaces.
            let last = pairs.iter().rev().find(|(k2, _)| k2.eq_ignore_ascii_case(k)).map(|(_, v2)| v2.as_str()).unwrap();
            prop_assert_eq!(parsed.get(&format!("DDB.{k}")), Some(last), "{} = {}", k, v);
        }
        let text = if crlf { text.replace('\n', "\r\n") } else { text };
        prop_assert_eq!(Descriptor::parse(&text).unwrap().print(), text);
    }
}

#[test]
fn writers_refuse_disks_over_64_tib() {
    let mut files = MemoryFiles::new();
    files.insert(
        "d.vmdk",
        b"createType=\"custom\"\nRW 36028797018963967 ZERO\n".to_vec(),
    );
    let options = OpenOptions {
        files: Arc::new(files),
        ..OpenOptions::default()
    };
    let disk = Disk::open_with("d.vmdk", &options).unwrap();
    let e = write_stream_optimized(
        &disk,
        &mut Vec::new(),
        &StreamOptions::default(),
        &no_progress,
    )
    .unwrap_err();
    assert!(e.to_string().contains("64 TiB"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.vmdk");
    let f = std::fs::File::create(&p).unwrap();
    let t = Target {
        file: &f,
        path: &p,
        start: 0,
        len: disk.capacity(),
    };
    assert!(write_sparse_extent(&disk, &t, None, 1, &no_progress).is_err());
}

#[test]
fn memory_disk_helper_works() {
    let d = memory_disk("x.raw", vec![5u8; 1024], true);
    assert_eq!(read_all(&d), vec![5u8; 1024]);
    assert!(Path::new("x.raw").file_name().is_some());
}
