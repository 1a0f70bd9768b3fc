//! Reading a hosted sparse image from memory: a `monolithicSparse` disk of 4 GiB with 64 KiB
//! grains, every 4th grain allocated (1 GiB of data), built in the setup after
//! `vmdk::format`. Measures the allocation map over the whole disk and a 64 MiB read.

// Benches are not fed untrusted input: they run on data they build themselves, and a panic
// there is a bug in the bench, so unwrap/expect/indexing are fine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vmdk::{Allocation, OpenOptions};
use vmdk_benches::{OneFile, SparseImage};

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

fn sparse(c: &mut Criterion) {
    let image = SparseImage {
        capacity_sectors: 4 * GIB / 512,
        grain_sectors: 128,
        gtes_per_gt: 512,
        allocate_every: 4,
    };
    let options = OpenOptions::new().files(OneFile::new(image.build()));
    let disk = options.open("bench.vmdk").unwrap();
    assert_eq!(disk.capacity(), 4 * GIB);
    let sum = disk.allocation_summary().unwrap();
    assert_eq!(sum.data, GIB);

    let mut group = c.benchmark_group("sparse/monolithicSparse-4GiB-64KiB-grains");

    // The allocation map as `ovf-disk info` and the copy engine walk it: 1 GiB windows.
    group.throughput(Throughput::Elements(image.grains()));
    group.bench_function("map 4 GiB in 1 GiB windows", |b| {
        b.iter(|| {
            let mut runs = 0;
            for window in 0..4 {
                runs += disk.map(black_box(window * GIB), GIB).unwrap().len();
            }
            runs
        })
    });

    // 64 MiB from the start: 256 allocated grains of 64 KiB, the rest zero-filled.
    let mut buf = vec![0u8; (64 * MIB) as usize];
    group.throughput(Throughput::Bytes(buf.len() as u64));
    group.bench_function("read_exact_at 64 MiB", |b| {
        b.iter(|| disk.read_exact_at(black_box(0), &mut buf).unwrap())
    });
    assert_eq!(buf[..8], SparseImage::grain_tag(0));
    assert_eq!(buf[4 * 64 * 1024..][..8], SparseImage::grain_tag(4));
    assert_eq!(
        disk.map(0, 256 * 1024).unwrap()[1].kind,
        Allocation::Unallocated
    );
    group.finish();
}

criterion_group!(benches, sparse);
criterion_main!(benches);
