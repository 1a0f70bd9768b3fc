//! The ESXi delta disks (issue 12): vmfsSparse (`COWD`) and seSparse extents laid out byte by
//! byte (`support/builders.rs`), in chains over a flat base, read by us, by qemu-img
//! (`convert -O raw`) and by dissect.hypervisor, and compared by sha256 with the bytes the
//! builders put there. Every peer must be installed: a missing one fails the test.
//!
//! Where the peers disagree it is asserted, with each one's actual reading: an "unmapped"
//! seSparse grain reads as zeros in qemu-img (and here), and through to the parent in dissect.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use test_support::builders;
use test_support::peers;

use std::path::Path;

use builders::*;
use peers::*;
use vmdk::{Disk, ErrorKind, Feature, OpenOptions};

const BASE_CID: u32 = 0x1111_1111;

fn write(dir: &Path, name: &str, bytes: impl AsRef<[u8]>) {
    std::fs::write(dir.join(name), bytes).unwrap();
}

/// A flat base of `sectors` (noise): `base.vmdk` (createType vmfs) over `base-flat.vmdk`.
/// Returns its bytes.
fn flat_base(dir: &Path, sectors: u64) -> Vec<u8> {
    let bytes = noise(77, sectors as usize * 512);
    write(dir, "base-flat.vmdk", &bytes);
    let line = format!("RW {sectors} VMFS \"base-flat.vmdk\"");
    write(
        dir,
        "base.vmdk",
        esx_descriptor("vmfs", BASE_CID, None, &[line]),
    );
    bytes
}

/// A delta link `name.vmdk` over `parent` (its CID and descriptor), whose one extent is
/// `extent` of kind `kind` (`VMFSSPARSE`, `SESPARSE`).
#[allow(clippy::too_many_arguments)]
fn delta(
    dir: &Path,
    name: &str,
    create_type: &str,
    cid: u32,
    parent: (u32, &str),
    sectors: u64,
    kind: &str,
    extent: &[u8],
) {
    let file = format!("{name}-{}.vmdk", kind.to_ascii_lowercase());
    write(dir, &file, extent);
    let line = format!("RW {sectors} {kind} \"{file}\"");
    write(
        dir,
        &format!("{name}.vmdk"),
        esx_descriptor(create_type, cid, Some(parent), &[line]),
    );
}

/// Our reading of the whole disk.
fn ours(dir: &Path, file: &str) -> Vec<u8> {
    let disk = Disk::open(dir.join(file)).unwrap();
    let mut buf = vec![0u8; disk.capacity() as usize];
    disk.read_exact_at(0, &mut buf).unwrap();
    buf
}

/// The part of a disk of `len` bytes dissect.hypervisor can read: it raises IndexError when a
/// read reaches past the last whole 64 KiB block of a disk whose capacity is not a multiple of
/// it (PEERS.md), so such disks are compared on that prefix.
fn dissect_limit(len: usize) -> Option<u64> {
    (len % 65536 != 0).then_some((len / 65536 * 65536) as u64)
}

/// What dissect.hypervisor reads of `file`: its size and the sha256 of its readable prefix.
fn dissect(dir: &Path, file: &str, len: usize) -> (u64, String) {
    let mut r = peer_results_of(dir, file, dissect_limit(len), Some("dissect"));
    assert_eq!(r.len(), 1);
    r.remove(0)
        .1
        .unwrap_or_else(|e| panic!("{file}: dissect: {e}"))
}

fn prefix_sha(bytes: &[u8], limit: Option<u64>) -> String {
    let n = limit.map_or(bytes.len(), |l| l as usize);
    sha256_bytes(&bytes[..n])
}

/// Asserts that we, qemu-img, dissect and libvmdk read `file` as `expected` (dissect as
/// `for_dissect`, where it disagrees; libvmdk only COWD chains), and that `check` finds it
/// clean.
fn all_read(dir: &Path, file: &str, expected: &[u8], for_dissect: &[u8]) {
    let got = ours(dir, file);
    assert_eq!(got.len(), expected.len(), "{file}: our capacity");
    assert!(got == expected, "{file}: we read other bytes");
    let want = sha256_bytes(expected);
    assert_eq!(
        qemu_reading(dir, file).unwrap_or_else(|e| panic!("{file}: qemu-img: {e}")),
        want,
        "{file}: qemu-img reads other bytes"
    );
    let (size, sha) = dissect(dir, file, for_dissect.len());
    assert_eq!(size, for_dissect.len() as u64, "{file}: dissect's capacity");
    assert_eq!(
        sha,
        prefix_sha(for_dissect, dissect_limit(for_dissect.len())),
        "{file}: dissect reads other bytes"
    );
    // libvmdk-python (20260714) reads COWD chains (readers.py opens the parents for it) and
    // refuses seSparse extent lines ("unsupported extent type"): asserted both ways, so a
    // libvmdk that learns seSparse shows up here.
    let libvmdk = peer_results_of(dir, file, None, Some("libvmdk"))
        .remove(0)
        .1;
    let sesparse = std::fs::read_to_string(dir.join(file))
        .unwrap()
        .contains("SESPARSE");
    match libvmdk {
        Ok((size, sha)) if !sesparse => {
            assert_eq!(
                (size, sha),
                (expected.len() as u64, want),
                "{file}: libvmdk"
            )
        }
        Err(e) if sesparse => assert!(e.contains("unsupported extent type"), "{file}: {e}"),
        other => panic!("{file}: libvmdk: {other:?}"),
    }
    let report = vmdk::check(dir.join(file), &OpenOptions::new()).unwrap();
    assert!(report.is_clean(), "{file}: {:?}", report.problems);
    let disk = Disk::open(dir.join(file)).unwrap();
    let sum = disk.allocation_summary().unwrap();
    assert_eq!(sum.data + sum.zero + sum.unallocated, disk.capacity());
}

/// Grains of noise and short grains at the ends of each grain table and of the disk.
fn fill(
    grains: &mut std::collections::BTreeMap<u64, Vec<u8>>,
    count: u64,
    gtes: u64,
    grain: usize,
) {
    for g in [0, 1, gtes - 1, gtes, gtes + 7, count - 1] {
        if g < count {
            grains.insert(g, noise(g + 5, grain));
        }
    }
    if count > 3 {
        grains.insert(2, vec![0x5a; 100]);
    }
}

#[test]
fn sesparse_over_a_flat_base() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    // Two grain tables' worth and 3 sectors: a third table, whose one grain is partial.
    let sectors = 2 * 4096 * 8 + 3;
    let base = flat_base(dir, sectors);
    let mut b = SeSparseBuilder::new(sectors);
    let count = sectors.div_ceil(8);
    fill(&mut b.grains, count, 4096, 4096);
    b.zeroed = vec![3, 4097];
    b.unmapped = vec![5, 4100];
    // Grain numbers on both sides of the entry encoding's 12-bit split.
    b.first_grain_number = 4093;
    delta(
        dir,
        "se",
        "seSparse",
        0x2222_2222,
        (BASE_CID, "base.vmdk"),
        sectors,
        "SESPARSE",
        &b.build().0,
    );
    let qemu_view = b.expected_over(&base, false);
    let dissect_view = b.expected_over(&base, true);
    assert_ne!(qemu_view, dissect_view);
    all_read(dir, "se.vmdk", &qemu_view, &dissect_view);

    let info = Disk::open(dir.join("se.vmdk")).unwrap().info().unwrap();
    let s = info.link.extents[0].sesparse.as_ref().unwrap();
    assert_eq!(
        (s.version, s.grain_size, s.num_gtes_per_gt, s.grain_tables),
        (0x2_0000_0001, 4096, 4096, 3)
    );
    assert_eq!(info.chain.len(), 1);
    assert_eq!(info.chain[0].create_type, "vmfs");
}

#[test]
fn cowd_over_a_flat_base_and_over_cowd() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    // Grains of one sector, as ESXi writes them: three grain tables' worth and 5 sectors.
    let sectors = 3 * 4096 + 5;
    let base = flat_base(dir, sectors.into());
    let mut first = CowdBuilder::new(sectors);
    fill(&mut first.grains, sectors.into(), 4096, 512);
    delta(
        dir,
        "c1",
        "vmfsSparse",
        0x2222_2222,
        (BASE_CID, "base.vmdk"),
        sectors.into(),
        "VMFSSPARSE",
        &first.build().0,
    );
    let over_base = first.expected_over(&base);
    all_read(dir, "c1.vmdk", &over_base, &over_base);

    // A second COWD over the first, with 8-sector grains (the last one partial) and a grain
    // table for every directory entry.
    let mut second = CowdBuilder::new(sectors);
    second.grain_sectors = 8;
    second.all_grain_tables = true;
    let count = u64::from(sectors).div_ceil(8);
    second.grains.insert(0, vec![0xc2; 512]);
    second.grains.insert(count / 2, noise(41, 4096));
    second.grains.insert(count - 1, noise(42, 4096));
    delta(
        dir,
        "c2",
        "vmfsSparse",
        0x3333_3333,
        (0x2222_2222, "c1.vmdk"),
        sectors.into(),
        "VMFSSPARSE",
        &second.build().0,
    );
    let over_first = second.expected_over(&over_base);
    all_read(dir, "c2.vmdk", &over_first, &over_first);

    let info = Disk::open(dir.join("c2.vmdk")).unwrap().info().unwrap();
    let c = info.link.extents[0].cowd.as_ref().unwrap();
    assert_eq!(
        (c.version, c.grain_size, c.num_gtes_per_gt, c.grain_tables),
        (1, 4096, 4096, 1)
    );
    assert_eq!(info.chain.len(), 2);
}

#[test]
fn sesparse_of_zeroed_and_unmapped_grains_where_qemu_and_dissect_disagree() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let sectors = 4096 * 8 + 11;
    let base = flat_base(dir, sectors);
    let mut b = SeSparseBuilder::new(sectors);
    let count = sectors.div_ceil(8);
    b.zeroed = (0..count).step_by(2).collect();
    b.unmapped = (1..count).step_by(2).collect();
    delta(
        dir,
        "z",
        "seSparse",
        0x2222_2222,
        (BASE_CID, "base.vmdk"),
        sectors,
        "SESPARSE",
        &b.build().0,
    );
    // qemu-img (and we) read every grain as zeros; dissect reads the unmapped ones, every
    // other grain, from the base.
    let zeros = vec![0u8; sectors as usize * 512];
    assert_eq!(b.expected_over(&base, false), zeros);
    let dissect_view = b.expected_over(&base, true);
    all_read(dir, "z.vmdk", &zeros, &dissect_view);
    let disk = Disk::open(dir.join("z.vmdk")).unwrap();
    let sum = disk.allocation_summary().unwrap();
    assert_eq!(
        (sum.data, sum.zero, sum.unallocated),
        (0, disk.capacity(), 0)
    );
}

#[test]
fn a_sesparse_journal_that_needs_replaying_is_refused() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    flat_base(dir, 64);
    let mut b = SeSparseBuilder::new(64);
    b.grains.insert(1, noise(3, 4096));
    b.dirty = true;
    let (bytes, layout) = b.build();
    delta(
        dir,
        "dirty",
        "seSparse",
        0x2222_2222,
        (BASE_CID, "base.vmdk"),
        64,
        "SESPARSE",
        &bytes,
    );
    let e = Disk::open(dir.join("dirty.vmdk")).unwrap_err();
    assert!(
        matches!(
            e.kind(),
            ErrorKind::Unsupported(Feature::SeSparseJournalReplay)
        ),
        "{e}"
    );
    assert_eq!(e.structure(), "seSparse volatile header");
    assert_eq!(e.offset(), Some(layout.volatile_header as u64 + 24));
    assert_eq!(e.path(), Some(dir.join("dirty-sesparse.vmdk").as_path()));
    // check reports it, in the extent file.
    let report = vmdk::check(dir.join("dirty.vmdk"), &OpenOptions::new()).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(
        report.problems[0].message.contains("journal"),
        "{:?}",
        report.problems
    );
    // qemu-img refuses it too ("Replaying journal not supported").
    let q = qemu_reading(dir, "dirty.vmdk").unwrap_err();
    assert!(q.contains("journal"), "{q}");
}

/// A flat base in `dir` and, over it, a COWD delta of 4 grain tables of one-sector grains
/// (grains at the ends of the tables and of the disk, as `fill` places them), not yet saved:
/// its bytes and layout.
fn cowd_over_a_base(dir: &std::path::Path) -> (Vec<u8>, EsxLayout) {
    flat_base(dir, 3 * 4096 + 5);
    let mut c = CowdBuilder::new(3 * 4096 + 5);
    fill(&mut c.grains, 3 * 4096 + 5, 4096, 512);
    c.build()
}

#[test]
fn check_reports_damaged_delta_tables() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let (mut bytes, layout) = cowd_over_a_base(dir);
    // Grain table 1 over grain table 0, and grain 0 past the end of the file.
    let t0 = layout.grain_tables[&0];
    put(
        &mut bytes,
        layout.grain_directory + 4,
        &((t0 / 512) as u32).to_le_bytes(),
    );
    put(
        &mut bytes,
        layout.entries[&0],
        &0x00ff_ffffu32.to_le_bytes(),
    );
    put(&mut bytes, layout.entries[&1], &2u32.to_le_bytes());
    delta(
        dir,
        "bad",
        "vmfsSparse",
        0x2222_2222,
        (BASE_CID, "base.vmdk"),
        3 * 4096 + 5,
        "VMFSSPARSE",
        &bytes,
    );
    let report = vmdk::check(dir.join("bad.vmdk"), &OpenOptions::new()).unwrap();
    let says = |structure: &str, offset: u64, words: &str| {
        report.problems.iter().any(|p| {
            p.structure == structure && p.offset == Some(offset) && p.message.contains(words)
        })
    };
    assert!(
        says("grain table", t0 as u64, "lies over grain table 0"),
        "{:?}",
        report.problems
    );
    assert!(
        says("grain", 0x00ff_ffff * 512, "file is only"),
        "{:?}",
        report.problems
    );
    assert!(
        says("grain", 1024, "inside the COWD header"),
        "{:?}",
        report.problems
    );
}

/// `check` reports a COWD header whose `numGDEntries` disagrees with its capacity (more entries
/// than it needs: the reader uses what the capacity needs, which is right, and `check` says
/// the header is wrong); an exact count is clean.
#[test]
fn check_reports_a_cowd_directory_count_that_disagrees() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let (mut bytes, _) = cowd_over_a_base(dir);
    for (name, entries, clean) in [("exact", 4u32, true), ("more", 9, false)] {
        put(&mut bytes, 24, &entries.to_le_bytes());
        delta(
            dir,
            name,
            "vmfsSparse",
            0x2222_2222,
            (BASE_CID, "base.vmdk"),
            3 * 4096 + 5,
            "VMFSSPARSE",
            &bytes,
        );
        let report = vmdk::check(dir.join(format!("{name}.vmdk")), &OpenOptions::new()).unwrap();
        assert_eq!(report.is_clean(), clean, "{name}: {:?}", report.problems);
        if !clean {
            let p = &report.problems[0];
            assert_eq!(
                (p.structure.as_str(), p.offset),
                ("COWD header", Some(24)),
                "{p:?}"
            );
            assert!(p.message.contains("numGDEntries is 9"), "{p:?}");
        }
    }
}

/// A seSparse extent no builder of ours made: dissect.hypervisor's test sample (testdata/peers,
/// see its README: 512 MiB, grains of 4 KiB, the first 16 MiB written with `a`), read through a
/// descriptor by us, qemu-img and dissect to the same bytes, and `check` clean.
#[test]
fn a_sesparse_extent_another_writer_made_reads_alike_everywhere() {
    use std::io::Read;
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let gz = std::fs::read(repo().join("testdata/peers/sesparse.vmdk.gz")).unwrap();
    let mut extent = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut extent)
        .unwrap();
    assert_eq!(extent.len(), 23_072_768);
    write(dir, "sample-sesparse.vmdk", &extent);
    let sectors = 1u64 << 20;
    let line = format!("RW {sectors} SESPARSE \"sample-sesparse.vmdk\"");
    write(
        dir,
        "sample.vmdk",
        esx_descriptor("seSparse", 0x1234_5678, None, &[line]),
    );

    let disk = Disk::open(dir.join("sample.vmdk")).unwrap();
    assert_eq!(disk.capacity(), 512 << 20);
    let mut head = vec![0u8; 32 << 20];
    disk.read_exact_at(0, &mut head).unwrap();
    assert!(head[..16 << 20].iter().all(|&b| b == b'a'));
    assert!(head[16 << 20..].iter().all(|&b| b == 0));
    let sum = disk.allocation_summary().unwrap();
    assert_eq!(sum.data, 16 << 20, "{sum:?}");
    // The whole disk as its README gives it, read by qemu-img.
    let whole = "3afa48010241335528fe402f083fc9f3a1013a49485221443a78d9a8604e2f90";
    assert_eq!(qemu_reading(dir, "sample.vmdk").unwrap(), whole);
    // dissect over the first 32 MiB (reading all 512 MiB in Python is slow).
    let mut r = peer_results_of(dir, "sample.vmdk", Some(32 << 20), Some("dissect"));
    let (size, sha) = r.remove(0).1.unwrap_or_else(|e| panic!("dissect: {e}"));
    assert_eq!((size, sha), (512 << 20, sha256_bytes(&head)));
    let report = vmdk::check(dir.join("sample.vmdk"), &OpenOptions::new()).unwrap();
    assert!(report.is_clean(), "{:?}", report.problems);
}
