//! A seSparse extent from untrusted bytes, read as the one extent of a delta link over a flat
//! parent, through the same code as real files: opening, `info`, `check`, mapping and reads may
//! fail, never panic, and stay bounded by the input's size.
//!
//! The input is the extent file `x.vmdk`; the descriptor `d.vmdk` gives it the capacity its
//! constant header claims (so the header, not the descriptor, is what is fuzzed) and names
//! `base.vmdk`, a 64 KiB flat disk, as its parent: unallocated grains read through to it, and
//! past its end as zeros.
//!
//! Seeds: python3 fuzz/small_seeds.py (testdata/fuzz-seeds/sesparse/).
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "esx_common.rs"]
mod esx_common;

fuzz_target!(|data: &[u8]| {
    // capacity, a u64 at byte 16.
    let sectors = data
        .get(16..24)
        .and_then(|b| b.try_into().ok())
        .map_or(0, u64::from_le_bytes);
    esx_common::run(data, "seSparse", "SESPARSE", sectors);
});
