//! The streaming reader: stream-optimized extents read in one forward pass from a `Read`
//! (VMware's GD_AT_END layout from the test builder, and our writer's output), inflated into a
//! file; damaged streams fail with the offset.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

#[path = "support/builders.rs"]
mod builders;

use std::io::Cursor;
use std::sync::Arc;

use builders::*;
use vmdk::copy::{CopyOptions, Target, TargetSink, ZeroMode};
use vmdk::io::MemoryFiles;
use vmdk::stream::read::read_stream_optimized;
use vmdk::stream::{write_stream_optimized, StreamOptions};
use vmdk::{Disk, ErrorKind, OpenOptions};

fn read_into_file(
    bytes: &[u8],
    capacity: u64,
    zero: ZeroMode,
    threads: usize,
) -> Result<Vec<u8>, vmdk::Error> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("out.raw");
    let f = std::fs::File::create(&p).unwrap();
    let targets = [Target {
        file: &f,
        path: &p,
        start: 0,
        len: capacity,
    }];
    let sink = TargetSink::new(
        &targets,
        &CopyOptions {
            zero,
            ..CopyOptions::default()
        },
    )?;
    let stats = read_stream_optimized(&mut Cursor::new(bytes), "s.vmdk", &sink, threads)?;
    assert_eq!(stats.capacity, capacity);
    assert_eq!(stats.bytes_read, bytes.len() as u64);
    Ok(std::fs::read(&p).unwrap())
}

#[test]
fn vmware_layout_streams_into_a_file() {
    let mut b = StreamBuilder::new(1100 * 128 + 3);
    for g in [0u64, 1, 511, 512, 700, 1100] {
        b.grains.insert(g, noise(g + 1, 65536));
    }
    let (bytes, _) = b.build();
    for (zero, threads) in [
        (ZeroMode::Write, 1),
        (ZeroMode::Write, 3),
        (ZeroMode::Sparse, 2),
        (ZeroMode::Falloc, 2),
    ] {
        assert_eq!(
            read_into_file(&bytes, b.expected().len() as u64, zero, threads).unwrap(),
            b.expected()
        );
    }
}

#[test]
fn our_writer_streams_back() {
    let mut raw = noise(5, 3 << 20);
    raw[1 << 20..2 << 20].fill(0);
    let mut files = MemoryFiles::new();
    files.insert("src.raw", raw.clone());
    let src = Disk::open_raw(
        "src.raw",
        &OpenOptions {
            files: Arc::new(files),
            ..OpenOptions::default()
        },
    )
    .unwrap();
    let mut out = Vec::new();
    write_stream_optimized(&src, &mut out, &StreamOptions::default(), &|_| {}).unwrap();
    assert_eq!(
        read_into_file(&out, raw.len() as u64, ZeroMode::Write, 2).unwrap(),
        raw
    );
}

#[test]
fn damaged_streams_fail_with_the_offset() {
    let mut b = StreamBuilder::new(64 * 128);
    for g in 0..8 {
        b.grains.insert(g * 4, noise(g + 1, 65536));
    }
    let (good, layout) = b.build();
    let cap = b.expected().len() as u64;
    // Grains out of order: the second grain claims an LBA before the first.
    let mut bytes = good.clone();
    let second = layout.grain_markers[&4];
    bytes[second..second + 8].copy_from_slice(&0u64.to_le_bytes());
    let e = read_into_file(&bytes, cap, ZeroMode::Write, 2).unwrap_err();
    assert!(
        matches!(e.kind, ErrorKind::Unsupported(_)) && e.offset == Some(second as u64),
        "{e}"
    );
    // A grain past the capacity.
    let mut bytes = good.clone();
    bytes[second..second + 8].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let e = read_into_file(&bytes, cap, ZeroMode::Write, 2).unwrap_err();
    assert!(
        matches!(e.kind, ErrorKind::InvalidField { field: "lba", .. }),
        "{e}"
    );
    // Damaged compressed data.
    let mut bytes = good.clone();
    bytes[second + 20..second + 30].copy_from_slice(b"0123456789");
    let e = read_into_file(&bytes, cap, ZeroMode::Write, 2).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Decompress(_)), "{e}");
    // Cut short in the middle of a grain.
    let e = read_into_file(&good[..second + 100], cap, ZeroMode::Write, 2).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Truncated { .. }), "{e}");
    // A compressed size no grain can have.
    let mut bytes = good.clone();
    bytes[second + 8..second + 12].copy_from_slice(&u32::MAX.to_le_bytes());
    let e = read_into_file(&bytes, cap, ZeroMode::Write, 2).unwrap_err();
    assert!(
        matches!(e.kind, ErrorKind::InvalidField { field: "size", .. }),
        "{e}"
    );
    // Not a stream-optimized header.
    let (sparse, _) = SparseBuilder::new(256).build("x.vmdk");
    let e = read_into_file(&sparse, 256 * 512, ZeroMode::Write, 1).unwrap_err();
    assert!(matches!(e.kind, ErrorKind::Unsupported(_)), "{e}");
    // The outputs must be made for the stream's capacity.
    assert!(read_into_file(&good, cap - 512, ZeroMode::Write, 1).is_err());
}
