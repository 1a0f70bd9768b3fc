//! The streaming reader: stream-optimized extents read in one forward pass from a `Read`
//! (VMware's GD_AT_END layout from the test builder, and our writer's output), inflated into a
//! file. Damaged streams are in `malformed.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use test_support::builders;

use std::io::Cursor;

use builders::*;
use vmdk::{
    write_stream_optimized, MemoryFiles, OpenOptions, StreamReader, Target, WriteOptions, ZeroMode,
};

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
    let reader = StreamReader::new(Cursor::new(bytes), "s.vmdk")?;
    let options = WriteOptions::new().zero(zero).threads(threads);
    let stats = reader.copy_to(&targets, &options, &|_| {})?;
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
    let src = OpenOptions::new().files(files).open_raw("src.raw").unwrap();
    let mut out = Vec::new();
    write_stream_optimized(&src, &mut out, &WriteOptions::new(), &|_| {}).unwrap();
    assert_eq!(
        read_into_file(&out, raw.len() as u64, ZeroMode::Write, 2).unwrap(),
        raw
    );
}

/// The outputs must be made for the stream's capacity (damaged streams are in `malformed.rs`).
#[test]
fn outputs_must_match_the_stream_capacity() {
    let mut b = StreamBuilder::new(64 * 128);
    b.grains.insert(3, noise(1, 65536));
    let (good, _) = b.build();
    let cap = b.expected().len() as u64;
    assert_eq!(
        read_into_file(&good, cap, ZeroMode::Write, 1).unwrap(),
        b.expected()
    );
    assert!(read_into_file(&good, cap - 512, ZeroMode::Write, 1).is_err());
}
