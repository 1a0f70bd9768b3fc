//! The copy path: one grain inflated and compressed, the zero scan, and end-to-end inflate of a
//! generated 256 MiB disk (a third random, a third text-like, a third zeros), stream-optimized
//! and monolithic sparse, into memory (a file on tmpfs, /dev/shm) and into a file on disk.

// Benches are not fed untrusted input: they run on data they build themselves, and a panic
// there is a bug in the bench, so unwrap/expect/indexing are fine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::hint::black_box;
use std::path::Path;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vmdk::internals::{compress_grain, is_zero};
use vmdk::{
    write_stream_optimized, Disk, Format, MemoryFiles, OpenOptions, Plan, Target, WriteOptions,
};

const MIB: usize = 1 << 20;

fn noise(seed: u64, len: usize) -> Vec<u8> {
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

fn text(len: usize) -> Vec<u8> {
    (1u64..)
        .flat_map(|i| format!("{i}\n").into_bytes())
        .take(len)
        .collect()
}

/// 256 MiB in 4 MiB chunks: random, text-like, zero in turn.
fn sample() -> Vec<u8> {
    let mut raw = vec![0u8; 256 * MIB];
    let t = text(4 * MIB);
    for (i, chunk) in raw.chunks_mut(4 * MIB).enumerate() {
        match i % 3 {
            0 => chunk.copy_from_slice(&noise(i as u64 + 1, 4 * MIB)),
            1 => chunk.copy_from_slice(&t),
            _ => {}
        }
    }
    raw
}

fn no_progress(_: u64) {}

fn grain(c: &mut Criterion) {
    let g = text(65536);
    let packed = compress_grain(3, &g).unwrap();
    let mut out = vec![0u8; 65536];
    let mut group = c.benchmark_group("grain");
    group.throughput(Throughput::Bytes(65536));
    group.bench_function("inflate 64 KiB text grain", |b| {
        b.iter(|| vmdk::internals::inflate(black_box(&packed), &mut out).unwrap())
    });
    group.bench_function("compress 64 KiB text grain, level 3", |b| {
        b.iter(|| compress_grain(3, black_box(&g)).unwrap())
    });
    let zeros = vec![0u8; 65536];
    group.bench_function("zero scan 64 KiB", |b| {
        b.iter(|| is_zero(black_box(&zeros)))
    });
    group.finish();
}

fn inflate(c: &mut Criterion) {
    let raw = sample();
    let mut files = MemoryFiles::new();
    files.insert("src.raw", raw.clone());
    let src = OpenOptions::new().files(files).open_raw("src.raw").unwrap();
    let mut stream = Vec::new();
    write_stream_optimized(&src, &mut stream, &WriteOptions::new(), &no_progress).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sparse_path = dir.path().join("sparse.vmdk");
    let plan = Plan::new(
        "monolithicSparse".parse::<Format>().unwrap(),
        src.capacity(),
        &sparse_path,
    )
    .unwrap();
    let f = std::fs::File::create(&sparse_path).unwrap();
    plan.write(
        &src,
        &[(&f, sparse_path.as_path())],
        &WriteOptions::new().threads(2),
        &no_progress,
    )
    .unwrap();
    drop(f);
    let stream_path = dir.path().join("stream.vmdk");
    std::fs::write(&stream_path, &stream).unwrap();

    let shm = Path::new("/dev/shm");
    let memory_dir = if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    };
    let mut group = c.benchmark_group("inflate 256 MiB");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(raw.len() as u64));
    for (name, input) in [
        ("stream-optimized", &stream_path),
        ("monolithicSparse", &sparse_path),
    ] {
        let disk = Disk::open(input).unwrap();
        for (place, folder) in [("memory", memory_dir.path()), ("file", dir.path())] {
            let out_path = folder.join("out.raw");
            group.bench_function(format!("{name} -> raw in {place}"), |b| {
                b.iter(|| {
                    let out = std::fs::File::create(&out_path).unwrap();
                    let target = Target {
                        file: &out,
                        path: &out_path,
                        start: 0,
                        len: disk.capacity(),
                    };
                    disk.copy_to(&[target], &WriteOptions::new(), &no_progress)
                        .unwrap()
                })
            });
            let mut back = vec![0u8; raw.len()];
            std::fs::File::open(&out_path)
                .map(|mut f| std::io::Read::read_exact(&mut f, &mut back))
                .unwrap()
                .unwrap();
            assert!(back == raw, "{name} -> {place}: wrong bytes");
            std::fs::remove_file(&out_path).unwrap();
        }
    }
    group.finish();
}

criterion_group!(benches, grain, inflate);
criterion_main!(benches);
