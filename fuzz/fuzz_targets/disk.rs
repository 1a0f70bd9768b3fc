//! A whole disk opened from one untrusted file, `disk.vmdk`, through the same code as real
//! files (a text descriptor, a sparse extent with or without an embedded descriptor, a
//! stream-optimized extent). Extents or parents it names are absent, or the file itself.
//! Opening, mapping and reading may fail, never panic.
//!
//! Seeds: python3 fuzz/small_seeds.py (testdata/fuzz-seeds/disk/), and fuzz/seeds.sh for
//! qemu-img images and descriptors of every subformat (fuzz/corpus/disk/).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmdk::{MemoryFiles, OpenOptions};

#[path = "oracle.rs"]
mod oracle;

fuzz_target!(|data: &[u8]| {
    let mut files = MemoryFiles::new();
    files.insert("disk.vmdk", data.to_vec());
    let options = OpenOptions::new().files(files);
    let Ok(disk) = options.open("disk.vmdk") else {
        return;
    };
    let _ = (
        disk.create_type(),
        disk.files(),
        disk.ddb("ddb.adapterType"),
    );
    // No parent can open here (the only file is the disk): what the map calls zero or
    // unallocated reads as zeros.
    oracle::check_disk(&disk, |d| d.allocation_summary().ok());
});
