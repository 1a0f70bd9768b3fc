//! Hostile input: random bytes and random mutations of valid images (sparse, stream-optimized in
//! VMware's layout, descriptors with flat and zero extents, ESXi COWD and seSparse extents under
//! their descriptors) never panic any parser: opening,
//! mapping, summarizing, reading, streaming and checking either work or fail with an error.
//! Reads are bounded (1 MiB per case), so memory and time stay bounded too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use test_support::builders;

use std::io::Cursor;

use builders::*;
use proptest::prelude::*;
use vmdk::{MemoryFiles, OpenOptions, StreamReader};

fn bases() -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut sparse = SparseBuilder::new(2048);
    sparse.grains.insert(1, noise(1, 65536));
    sparse.zeroed = vec![3];
    let mut stream = StreamBuilder::new(600 * 128 + 3);
    stream.grains.insert(0, noise(2, 65536));
    stream.grains.insert(599, noise(3, 65536));
    let desc = b"# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType=\"custom\"\nRW 8 FLAT \"flat.bin\" 0\nRW 100 ZERO\nRW 2048 SPARSE \"sparse.vmdk\"\n\nddb.adapterType = \"ide\"\n".to_vec();
    let sparse_bytes = sparse.build("sparse.vmdk").0;
    vec![
        (sparse_bytes.clone(), Vec::new()),
        (stream.build().0, Vec::new()),
        (desc, sparse_bytes),
    ]
}

/// ESXi delta extents, each with the descriptor that names it `sparse.vmdk`: (descriptor,
/// extent).
fn esx_bases() -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut cowd = CowdBuilder::new(2 * 4096 + 5);
    for g in [0, 1, 4096, 8196] {
        cowd.grains.insert(g, noise(g + 1, 512));
    }
    let mut se = SeSparseBuilder::new(2 * 4096 * 8 + 3);
    for g in [0, 1, 4096, 8192] {
        se.grains.insert(g, noise(g + 9, 4096));
    }
    se.zeroed = vec![2];
    se.unmapped = vec![3];
    let line = |sectors: u64, kind: &str| vec![format!("RW {sectors} {kind} \"sparse.vmdk\"")];
    vec![
        (
            esx_descriptor("vmfsSparse", 1, None, &line(2 * 4096 + 5, "VMFSSPARSE")).into_bytes(),
            cowd.build().0,
        ),
        (
            esx_descriptor("seSparse", 1, None, &line(2 * 4096 * 8 + 3, "SESPARSE")).into_bytes(),
            se.build().0,
        ),
    ]
}

/// Opens `bytes` as `disk.vmdk` (with `extra` as `sparse.vmdk` and 4 KiB of `flat.bin`) and
/// exercises every reader on it.
fn exercise(bytes: Vec<u8>, extra: Vec<u8>) {
    let mut files = MemoryFiles::new();
    files.insert("disk.vmdk", bytes.clone());
    files.insert("sparse.vmdk", extra);
    files.insert("flat.bin", vec![7u8; 4096]);
    let options = OpenOptions::new().files(files);
    if let Ok(disk) = options.open("disk.vmdk") {
        let cap = disk.capacity();
        let _ = disk.map(0, cap.min(1 << 30));
        if cap < 1 << 40 {
            let _ = disk.allocation_summary();
        }
        let n = cap.min(1 << 20) as usize;
        let mut buf = vec![0u8; n];
        let _ = disk.read_exact_at(0, &mut buf);
        let _ = disk.read_exact_at(cap - n as u64, &mut buf);
        let _ = vmdk::check("disk.vmdk", &options);
    }
    let _ = StreamReader::new(Cursor::new(&bytes), "disk.vmdk").and_then(|r| r.check(2));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn mutated_images_never_panic(
        which in 0usize..3,
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..24),
        header_flips in prop::collection::vec((0usize..600, any::<u8>()), 0..8),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let (mut bytes, extra) = bases().swap_remove(which);
        for (i, v) in flips {
            let at = i.index(bytes.len());
            bytes[at] = v;
        }
        // Headers and descriptors are where sizes live: mutate them more often.
        for (at, v) in header_flips {
            if at < bytes.len() {
                bytes[at] = v;
            }
        }
        if let Some(c) = cut {
            let at = c.index(bytes.len());
            bytes.truncate(at);
        }
        exercise(bytes, extra);
    }

    #[test]
    fn mutated_esx_extents_never_panic(
        which in 0usize..2,
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..24),
        header_flips in prop::collection::vec((0usize..2048, any::<u8>()), 0..8),
        cut in prop::option::of(any::<prop::sample::Index>()),
    ) {
        let (descriptor, mut extent) = esx_bases().swap_remove(which);
        for (i, v) in flips {
            let at = i.index(extent.len());
            extent[at] = v;
        }
        for (at, v) in header_flips {
            if at < extent.len() {
                extent[at] = v;
            }
        }
        if let Some(c) = cut {
            let at = c.index(extent.len());
            extent.truncate(at);
        }
        exercise(descriptor, extent);
    }

    #[test]
    fn random_bytes_never_panic(mut bytes in prop::collection::vec(any::<u8>(), 0..3000), magic in any::<bool>()) {
        if magic && bytes.len() >= 4 {
            bytes[..4].copy_from_slice(b"KDMV");
        }
        exercise(bytes, Vec::new());
    }
}
