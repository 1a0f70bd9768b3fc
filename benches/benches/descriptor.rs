//! Parsing and printing a large, realistic descriptor: a `twoGbMaxExtentSparse` disk of 500
//! extents (about 2 TiB) with a full disk database, as VMware Workstation writes it.

// Benches are not fed untrusted input: they run on data they build themselves, and a panic
// there is a bug in the bench, so unwrap/expect/indexing are fine.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vmdk::Descriptor;
use vmdk_benches::two_gb_max_extent_sparse_descriptor;

fn descriptor(c: &mut Criterion) {
    let text = two_gb_max_extent_sparse_descriptor(500);
    let parsed = Descriptor::parse(&text).unwrap();
    assert_eq!(parsed.extents().count(), 500);

    let mut group = c.benchmark_group("descriptor/twoGbMaxExtentSparse-500");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("parse", |b| {
        b.iter(|| Descriptor::parse(black_box(&text)).unwrap())
    });
    group.bench_function("parse_bytes", |b| {
        b.iter(|| Descriptor::parse_bytes(black_box(text.as_bytes())).unwrap())
    });
    group.bench_function("print", |b| b.iter(|| black_box(&parsed).print()));
    group.bench_function("total_sectors", |b| {
        b.iter(|| black_box(&parsed).total_sectors())
    });
    group.finish();
}

criterion_group!(benches, descriptor);
criterion_main!(benches);
