//! proptest round-trips: random disk contents through every writer (stream-optimized, sparse,
//! flat) and back through our reader give the same bytes; random descriptors print and parse
//! back equal.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::fs::File;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use vmdk::{
    write_stream_optimized, Access, CreateType, Descriptor, Disk, ExtentKind, ExtentLine, Format,
    MemoryFiles, OpenOptions, Plan, WriteOptions,
};

fn memory_disk(name: &str, bytes: Vec<u8>, raw: bool) -> Disk {
    let mut files = MemoryFiles::new();
    files.insert(name, bytes);
    let options = OpenOptions::new().files(files);
    if raw {
        options.open_raw(name).unwrap()
    } else {
        options.open(name).unwrap()
    }
}

fn read_all(disk: &Disk) -> Vec<u8> {
    let mut buf = vec![0u8; disk.capacity() as usize];
    disk.read_exact_at(0, &mut buf).unwrap();
    buf
}

/// Runs `plan`'s write of `disk` into its files, each created fresh.
fn run_plan(
    plan: &Plan,
    disk: &Disk,
    options: &WriteOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> vmdk::Result<vmdk::WriteReport> {
    let files: Vec<File> = plan
        .files()
        .iter()
        .map(|f| File::create_new(f.path()).unwrap())
        .collect();
    let outputs: Vec<(&File, &Path)> = files
        .iter()
        .zip(plan.files())
        .map(|(f, p)| (f, p.path()))
        .collect();
    plan.write(disk, &outputs, options, progress)
}

/// Writes `disk` as `format` at `out` through a plan (every planned file created fresh), and
/// returns the file to open.
fn write_plan(disk: &Disk, format: Format, out: &Path, options: &WriteOptions) -> PathBuf {
    let plan = Plan::new(format, disk.capacity(), out).unwrap();
    let report = run_plan(&plan, disk, options, &no_progress).unwrap();
    report.files[0].clone()
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
        let options = WriteOptions::new().compression_level(level).threads(threads).batch(batch);
        write_stream_optimized(&src, &mut out, &options, &no_progress).unwrap();
        let back = memory_disk("out.vmdk", out, false);
        prop_assert_eq!(back.create_type(), &CreateType::StreamOptimized);
        prop_assert_eq!(read_all(&back), raw);
    }

    #[test]
    fn sparse_round_trip(raw in contents(), threads in 1usize..4, split in any::<bool>()) {
        // One monolithic extent with an embedded descriptor, or extents named by a descriptor
        // (extents cut at other places than 2047 MiB: the unit tests of the sparse writer).
        let src = memory_disk("src.raw", raw.clone(), true);
        let dir = tempfile::tempdir().unwrap();
        let t = if split { CreateType::TwoGbMaxExtentSparse } else { CreateType::MonolithicSparse };
        let out = write_plan(&src, Format::Vmdk(t.clone()), &dir.path().join("m.vmdk"), &WriteOptions::new().threads(threads));
        let back = Disk::open(&out).unwrap();
        prop_assert_eq!(back.create_type(), &t);
        prop_assert_eq!(read_all(&back), raw);
    }

    #[test]
    fn qcow2_round_trip(
        raw in contents(),
        threads in 1usize..4,
        bits in 9u32..17,
        mode in 0u8..5,
    ) {
        // Our qcow2 writer, each way it places clusters, and our qcow2 reader.
        let src = memory_disk("src.raw", raw.clone(), true);
        let dir = tempfile::tempdir().unwrap();
        let mut options = WriteOptions::new().threads(threads).cluster_size(1 << bits).unwrap();
        options = match mode {
            1 => options.compress(Some(vmdk::Compression::Deflate)),
            2 => options.compress(Some(vmdk::Compression::Zstd)),
            3 => options.preallocation(vmdk::Preallocation::Metadata),
            4 => options.preallocation(vmdk::Preallocation::Full),
            _ => options,
        };
        let out = write_plan(&src, Format::Qcow2, &dir.path().join("q.qcow2"), &options);
        let back = Disk::open(&out).unwrap();
        prop_assert_eq!(back.create_type().as_str(), "qcow2");
        prop_assert_eq!(read_all(&back), raw);
        prop_assert!(vmdk::check_disk(&back).is_clean());
    }

    #[test]
    fn qcow2_updates_in_place_read_back(
        raw in contents(),
        writes in prop::collection::vec((0u64..2500, 1u64..200, any::<u8>(), any::<bool>()), 1..8),
        compress in any::<bool>(),
    ) {
        // A qcow2 image written, then updated in place (data, and zeros), reads as the raw
        // image updated the same way.
        let src = memory_disk("src.raw", raw.clone(), true);
        let dir = tempfile::tempdir().unwrap();
        let options = WriteOptions::new()
            .cluster_size(4096)
            .unwrap()
            .compress(compress.then_some(vmdk::Compression::Deflate));
        let out = write_plan(&src, Format::Qcow2, &dir.path().join("u.qcow2"), &options);
        let mut image = vmdk::Qcow2Update::open(&out).unwrap();
        let mut want = raw.clone();
        let sectors = raw.len() as u64 / 512;
        for (at, len, fill, zero) in writes {
            let start = at % sectors * 512;
            let len = (len * 512).min(raw.len() as u64 - start);
            let part = &mut want[start as usize..(start + len) as usize];
            if zero {
                part.fill(0);
                image.write_zeroes(start, len).unwrap();
            } else {
                part.fill(fill);
                image.write_at(start, part).unwrap();
            }
        }
        image.flush().unwrap();
        let back = Disk::open(&out).unwrap();
        prop_assert_eq!(read_all(&back), want);
    }

    #[test]
    fn flat_round_trip(raw in contents(), esx in any::<bool>(), threads in 1usize..4) {
        let src = memory_disk("src.raw", raw.clone(), true);
        let dir = tempfile::tempdir().unwrap();
        let t = if esx { CreateType::Vmfs } else { CreateType::MonolithicFlat };
        let options = WriteOptions::new().threads(threads).window(4096);
        let out = write_plan(&src, Format::Vmdk(t.clone()), &dir.path().join("t.vmdk"), &options);
        let back = Disk::open(out).unwrap();
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
    let disk = OpenOptions::new().files(files).open("d.vmdk").unwrap();
    let e = write_stream_optimized(&disk, &mut Vec::new(), &WriteOptions::new(), &no_progress)
        .unwrap_err();
    assert!(e.to_string().contains("64 TiB"), "{e}");
    for format in Format::all() {
        let e = Plan::new(format, disk.capacity(), "x.vmdk").unwrap_err();
        assert!(
            matches!(
                e.kind(),
                vmdk::ErrorKind::Unsupported(vmdk::Feature::WriteCapacity(_))
            ),
            "{e}"
        );
    }
}

#[test]
fn a_raw_image_in_memory_reads_back() {
    let d = memory_disk("x.raw", (0..1024u32).map(|i| i as u8).collect(), true);
    assert_eq!(d.capacity(), 1024);
    assert_eq!(
        read_all(&d),
        (0..1024u32).map(|i| i as u8).collect::<Vec<_>>()
    );
}

/// A write whose cancel flag is set after its first progress stops with `Cancelled`, for every
/// writer: the copy to flat and raw outputs, the sparse and stream-optimized writers, qcow2,
/// VHD.
#[test]
fn every_writer_stops_when_cancelled() {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;
    // 64 MiB of data in every grain, so no writer finishes within one window or batch.
    let raw: Vec<u8> = (0..64u32 << 20).map(|i| (i % 251) as u8 | 1).collect();
    let disk = memory_disk("src.raw", raw, true);
    let formats = [
        Format::Raw,
        Format::Vmdk(CreateType::MonolithicFlat),
        Format::Vmdk(CreateType::MonolithicSparse),
        Format::Vmdk(CreateType::StreamOptimized),
        Format::Qcow2,
        Format::Vhd,
    ];
    for format in formats {
        let dir = tempfile::tempdir().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let options = WriteOptions::new()
            .threads(2)
            .window(1 << 20)
            .cancel(stop.clone());
        let plan = Plan::new(format.clone(), disk.capacity(), dir.path().join("o.vmdk")).unwrap();
        let done = AtomicU64::new(0);
        let progress = |n: u64| {
            done.fetch_add(n, Ordering::Relaxed);
            stop.store(true, Ordering::Relaxed);
        };
        let e = run_plan(&plan, &disk, &options, &progress).unwrap_err();
        assert!(
            matches!(e.kind(), vmdk::ErrorKind::Cancelled),
            "{format:?}: {e}"
        );
        assert_eq!(e.category(), vmdk::Category::Refused);
        let done = done.load(Ordering::Relaxed);
        assert!(
            done < disk.capacity(),
            "{format:?}: wrote {done} bytes, all of it"
        );
    }
}
