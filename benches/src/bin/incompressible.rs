//! How well a byte-histogram test finds the grains deflate cannot shrink, on real images: for
//! each raw image given, every non-zero 64 KiB grain is compressed at the library's level 6 and
//! `vmdk`'s incompressibility test run with several chi-square bounds; for each, the grains it
//! flags would be stored instead, and the table shows what that costs in stream bytes and saves
//! in compression time.
//!
//! ```text
//! cargo run --release -p vmdk-benches --bin incompressible -- target/corpus/*.img
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Instant;

use vmdk::internals::{compressor, incompressible, INCOMPRESSIBLE_CHI_SQUARE};
use vmdk_benches::for_each_nonzero_grain;

const GRAIN: usize = 64 << 10;

fn stream_bytes(len: usize) -> u64 {
    (12 + len as u64).div_ceil(512) * 512
}

fn main() {
    let images: Vec<String> = std::env::args().skip(1).collect();
    let bounds = [300u64, 350, 400, 500, 700, 1000, 2000];
    println!("| image | grains | chi-square bound | grains stored | of which deflate shrank by a sector or more | stream bytes | vs level 6 | level-6 time of those grains |");
    println!("|---|---|---|---|---|---|---|---|");
    for image in images {
        // What the test itself costs, at the library's bound, on every non-zero grain.
        let mut test_secs = 0f64;
        let mut c6 = compressor(6).unwrap();
        let mut c0 = compressor(0).unwrap();
        let mut out = vec![0u8; c6.zlib_compress_bound(GRAIN)];
        // (flags per bound, level-6 bytes, stored bytes, seconds)
        let mut rows = Vec::new();
        for_each_nonzero_grain(image.as_ref(), |d| {
            let e: Vec<bool> = bounds.iter().map(|&b| incompressible(d, b)).collect();
            let t = Instant::now();
            let l6 = c6.zlib_compress(d, &mut out).unwrap();
            let secs = t.elapsed().as_secs_f64();
            let t = Instant::now();
            std::hint::black_box(incompressible(d, INCOMPRESSIBLE_CHI_SQUARE));
            test_secs += t.elapsed().as_secs_f64();
            let l0 = c0.zlib_compress(d, &mut out).unwrap();
            rows.push((e, stream_bytes(l6), stream_bytes(l0), secs));
        });
        let name = std::path::Path::new(&image)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let base: u64 = rows.iter().map(|r| r.1).sum();
        let total_secs: f64 = rows.iter().map(|r| r.3).sum();
        println!(
            "| {name} | {} | level 6 only | 0 | 0 | {base} | 0 | {total_secs:.2} s in all |",
            rows.len()
        );
        for (i, t) in bounds.iter().enumerate() {
            let flagged: Vec<_> = rows.iter().filter(|r| r.0[i]).collect();
            let shrank = flagged.iter().filter(|r| r.1 < r.2).count();
            let bytes: u64 = rows.iter().map(|r| if r.0[i] { r.2 } else { r.1 }).sum();
            let secs: f64 = flagged.iter().map(|r| r.3).sum();
            println!(
                "| {name} | {} | {t} | {} | {shrank} | {bytes} | {:+.4}% | {secs:.2} s |",
                rows.len(),
                flagged.len(),
                (bytes as f64 - base as f64) * 100.0 / base as f64
            );
        }
        println!("| {name} | | the test at {INCOMPRESSIBLE_CHI_SQUARE}, every grain | | | | | {test_secs:.2} s |");
    }
}
