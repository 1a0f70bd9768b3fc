//! Sizes and times of grain compression on real images: for each raw image given, every
//! non-zero 64 KiB grain compressed by each backend and level, one thread; the size counted as
//! a stream-optimized file stores it (a 12-byte marker and the data, padded to 512 bytes).
//!
//! ```text
//! cargo run --release -p vmdk-benches --bin levels -- target/corpus/*.img
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::time::Instant;

use vmdk_benches::for_each_nonzero_grain;

const GRAIN: usize = 64 << 10;

/// Compresses one grain and returns the compressed length.
type Compress = Box<dyn FnMut(&[u8]) -> usize>;

/// A compressor under test: its name and how it compresses one grain.
struct Candidate {
    name: String,
    run: Compress,
}

fn candidates() -> Vec<Candidate> {
    let mut v = Vec::new();
    for level in [1u32, 3, 6] {
        v.push(Candidate {
            name: format!("miniz_oxide {level}"),
            run: Box::new(move |g: &[u8]| {
                let mut z = flate2::write::ZlibEncoder::new(
                    Vec::with_capacity(GRAIN),
                    flate2::Compression::new(level),
                );
                std::io::Write::write_all(&mut z, g).unwrap();
                z.finish().unwrap().len()
            }),
        });
    }
    let mut push = |name: String, mut c: vmdk_libdeflate::Compressor| {
        let mut out = vec![0u8; c.zlib_compress_bound(GRAIN)];
        v.push(Candidate {
            name,
            run: Box::new(move |g: &[u8]| c.zlib_compress(g, &mut out).unwrap()),
        });
    };
    for level in [1, 2, 3, 4, 5, 6, 7, 9] {
        push(
            format!("libdeflate {level}"),
            vmdk_libdeflate::Compressor::new(level).unwrap(),
        );
    }
    // libdeflate's lazy matcher between its levels 5 (16, 30) and 6 (35, 65); the library's
    // level 6 is one of these (LEVEL_6_SEARCH in vmdk/src/codec.rs).
    for (depth, nice) in [(16, 65), (20, 48), (20, 65), (20, 130), (24, 65), (28, 65)] {
        push(
            format!("libdeflate lazy {depth}/{nice}"),
            vmdk_libdeflate::Compressor::lazy(depth, nice).unwrap(),
        );
    }
    v
}

fn main() {
    let images: Vec<String> = std::env::args().skip(1).collect();
    println!("| image | grains | backend and level | stream bytes | seconds (1 thread) |");
    println!("|---|---|---|---|---|");
    for image in images {
        let mut grains = Vec::new();
        for_each_nonzero_grain(image.as_ref(), |g| grains.push(g.to_vec()));
        let name = std::path::Path::new(&image)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        for mut c in candidates() {
            let started = Instant::now();
            let mut bytes = 0u64;
            for g in &grains {
                let len = (c.run)(g);
                bytes += (12 + len as u64).div_ceil(512) * 512;
            }
            let secs = started.elapsed().as_secs_f64();
            println!(
                "| {name} | {} | {} | {bytes} | {secs:.2} |",
                grains.len(),
                c.name
            );
        }
    }
}
