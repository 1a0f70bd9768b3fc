//! Holes of raw images and flat extents: the host file system says where they are
//! (`SEEK_DATA`/`SEEK_HOLE`), the allocation map reports them as zero, and reads and copies
//! skip reading them (as qemu-img does) while returning the same bytes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::os::unix::fs::FileExt;

use vmdk::{Allocation, OpenOptions};

#[test]
fn holes_of_a_raw_image_are_zero_runs() {
    let d = tempfile::tempdir().unwrap();
    let path = d.path().join("sparse.raw");
    let f = std::fs::File::create(&path).unwrap();
    f.set_len(64 << 20).unwrap();
    f.write_all_at(&[0xab; 1 << 20], 8 << 20).unwrap();
    f.write_all_at(&[0xcd; 4096], (64 << 20) - 4096).unwrap();
    drop(f);
    let disk = OpenOptions::new().open_raw(&path).unwrap();
    let runs = disk.map(0, 64 << 20).unwrap();
    let data: u64 = runs
        .iter()
        .filter(|r| r.kind == Allocation::Data)
        .map(|r| r.len)
        .sum();
    let zero: u64 = runs
        .iter()
        .filter(|r| r.kind == Allocation::Zero)
        .map(|r| r.len)
        .sum();
    // The file system may round data up to its blocks; it reports no less than was written.
    assert!(
        ((1 << 20) + 4096..(2 << 20) + 8192).contains(&data),
        "{runs:?}"
    );
    assert_eq!(data + zero, 64 << 20);
    assert!(runs
        .iter()
        .any(|r| r.kind == Allocation::Data && r.offset <= 8 << 20 && r.offset + r.len >= 9 << 20));
    let sum = disk.allocation_summary().unwrap();
    assert_eq!((sum.data, sum.zero), (data, zero));
    // Reads across the runs give the file's bytes.
    let mut buf = vec![1u8; 64 << 20];
    disk.read_exact_at(0, &mut buf).unwrap();
    assert!(buf[..8 << 20].iter().all(|&b| b == 0));
    assert!(buf[8 << 20..9 << 20].iter().all(|&b| b == 0xab));
    assert!(buf[(64 << 20) - 4096..].iter().all(|&b| b == 0xcd));
    // A file with no hole is all data.
    let full = d.path().join("full.raw");
    std::fs::write(&full, vec![1u8; 1 << 20]).unwrap();
    let disk = OpenOptions::new().open_raw(&full).unwrap();
    assert_eq!(disk.allocation_summary().unwrap().data, 1 << 20);
}
