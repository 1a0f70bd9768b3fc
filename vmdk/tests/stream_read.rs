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

/// `file` at `path` as the one target of a disk of `len` bytes.
fn whole<'a>(file: &'a std::fs::File, path: &'a std::path::Path, len: u64) -> [Target<'a>; 1] {
    [Target {
        file,
        path,
        start: 0,
        len,
    }]
}

fn read_into_file(
    bytes: &[u8],
    capacity: u64,
    zero: ZeroMode,
    threads: usize,
) -> Result<Vec<u8>, vmdk::Error> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("out.raw");
    let f = std::fs::File::create(&p).unwrap();
    let targets = whole(&f, &p, capacity);
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

/// A checkpoint that keeps every point it is told, told at every metadata block.
#[derive(Debug, Default)]
struct Points(std::sync::Mutex<Vec<vmdk::StreamPoint>>);

impl vmdk::Checkpoint for Points {
    fn resume_from(&self) -> u64 {
        0
    }
    fn reached(&self, _: u64) -> vmdk::Result<()> {
        unreachable!("a stream read tells points")
    }
    fn reached_stream(&self, at: vmdk::StreamPoint) -> vmdk::Result<()> {
        self.0.lock().unwrap().push(at);
        Ok(())
    }
    fn stream_interval(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

/// A one-pass read into a file tells the points it passes (after each grain table, the
/// directory and the footer); continued from each of them by another reader, over a file whose
/// bytes past the point are garbage (what a killed run leaves), it ends with the bytes of an
/// uninterrupted read, reading only the stream past the point.
#[test]
fn a_read_continues_from_every_point_it_tells_to_the_same_bytes() {
    let mut b = StreamBuilder::new(1100 * 128 + 3);
    for g in [0u64, 1, 511, 512, 700, 1100] {
        b.grains.insert(g, noise(g + 1, 65536));
    }
    let (bytes, _) = b.build();
    let want = b.expected();
    let capacity = want.len() as u64;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("out.raw");
    let f = std::fs::File::create(&p).unwrap();
    let targets = whole(&f, &p, capacity);
    let points = std::sync::Arc::new(Points::default());
    let options = WriteOptions::new()
        .threads(3)
        .checkpoint(points.clone() as std::sync::Arc<dyn vmdk::Checkpoint>);
    let reader = StreamReader::new(Cursor::new(&bytes), "s.vmdk").unwrap();
    reader.copy_to(&targets, &options, &|_| {}).unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), want);
    let points = points.0.lock().unwrap().clone();
    // Three grain tables (the third maps the last grain), the directory, the footer.
    assert!(points.len() >= 4, "{points:?}");
    assert!(
        points.windows(2).all(|w| w[0].input < w[1].input),
        "{points:?}"
    );
    for at in points {
        let mut partial = want.clone();
        partial[at.covered as usize..].fill(0xa5);
        std::fs::write(&p, &partial).unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        let targets = whole(&f, &p, capacity);
        let done = std::sync::atomic::AtomicU64::new(0);
        let progress = |n| {
            done.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        };
        let reader = StreamReader::new(Cursor::new(&bytes), "s.vmdk").unwrap();
        let rest = Cursor::new(&bytes[at.input as usize..]);
        let reader = reader.continue_at(rest, at).unwrap();
        let stats = reader
            .copy_to(&targets, &WriteOptions::new().threads(2), &progress)
            .unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), want, "from {at:?}");
        assert_eq!(stats.bytes_read, bytes.len() as u64);
        assert_eq!(done.into_inner(), capacity, "progress from {at:?}");
    }
    // Before the first grain, or inside a grain, is no point to continue from.
    for at in [
        vmdk::StreamPoint {
            input: 512,
            covered: 0,
        },
        vmdk::StreamPoint {
            input: bytes.len() as u64,
            covered: 4096,
        },
        vmdk::StreamPoint {
            input: bytes.len() as u64,
            covered: capacity + 65536,
        },
    ] {
        let reader = StreamReader::new(Cursor::new(&bytes), "s.vmdk").unwrap();
        let e = reader.continue_at(Cursor::new(&[][..]), at).unwrap_err();
        assert!(e.to_string().contains("cannot continue"), "{e}");
    }
}
