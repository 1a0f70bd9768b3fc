//! A hosted sparse / stream-optimized extent from untrusted bytes: opening it, walking its
//! grain tables and reading grains may fail, never panic, and must stay bounded in time and
//! memory.
//!
//! Seeds: python3 fuzz/small_seeds.py (testdata/fuzz-seeds/sparse_header/), and fuzz/seeds.sh
//! for qemu-img images of every sparse subformat (fuzz/corpus/sparse_header/).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmdk::internals::{GrainEntry, SparseExtent};
use vmdk::Backing;

/// Grains visited per input. The grain directory is bounded by the file, but one directory
/// entry can stand for 4096 grains, so a small input can describe billions of grains: walking
/// all of them would make each run slow without covering more code.
const MAX_GRAINS_WALKED: u64 = 1 << 20;
/// Grains read (and decompressed) per input.
const MAX_GRAINS_READ: usize = 4;
/// Bytes of grain data read per input (grains are at most 8 MiB each).
const MAX_BYTES_READ: u64 = 16 << 20;

fuzz_target!(|data: &[u8]| {
    let Ok(extent) = SparseExtent::open(Backing::from_bytes("fuzz.vmdk", data.to_vec())) else {
        return;
    };
    let _ = (
        extent.capacity_bytes(),
        extent.grain_bytes(),
        extent.version(),
        extent.metadata_source(),
        extent.descriptor().map(|d| d.print()),
    );

    let mut stored = Vec::new();
    let mut walked = 0u64;
    let _ = extent.for_each_grain(
        0,
        extent.grain_count().min(MAX_GRAINS_WALKED),
        |g, entry| {
            assert!(g < extent.grain_count(), "grain {g} past grain_count");
            walked += 1;
            if let GrainEntry::Data(sector) = entry {
                if stored.len() < MAX_GRAINS_READ {
                    stored.push((g, sector));
                }
            }
            Ok(())
        },
    );
    assert!(walked <= MAX_GRAINS_WALKED);

    let mut budget = MAX_BYTES_READ;
    let mut scratch = Vec::new();
    for (g, sector) in stored {
        let len = extent.grain_len(g);
        assert!(len <= extent.grain_bytes());
        if len > budget {
            break;
        }
        budget -= len;
        let mut buf = vec![0u8; len as usize];
        let _ = extent.read_grain(g, sector, &mut buf);
        // A part of the grain, through the partial-read path (decompresses into `scratch`).
        if len >= 2 {
            let mut part = vec![0u8; (len / 2) as usize];
            let _ = extent.read_grain_part(g, sector, len / 4, &mut part, &mut scratch);
        }
    }
});
