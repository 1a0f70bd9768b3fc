//! A whole disk opened from one untrusted file, `disk.vmdk`, through the same code as real
//! files (a text descriptor, a sparse extent with or without an embedded descriptor, a
//! stream-optimized extent). Extents or parents it names are absent, or the file itself.
//! Opening, mapping and reading may fail, never panic; `OpenOptions::inspect` (what an image
//! service asks before trusting the file) answers or fails the same way, and calls a file
//! that opens a VMDK.
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
    let inspected = options.inspect("disk.vmdk");
    let Ok(disk) = options.open("disk.vmdk") else {
        return;
    };
    // What opens as a VMDK (not as raw) is one to inspect too.
    if let Ok(found) = inspected {
        assert_eq!(found.format, "vmdk", "inspect named an openable disk {}", found.format);
    }
    let _ = (
        disk.create_type(),
        disk.files(),
        disk.ddb("ddb.adapterType"),
    );
    // No parent can open here (the only file is the disk): what the map calls zero or
    // unallocated reads as zeros.
    oracle::check_disk(&disk, |d| d.allocation_summary().ok());
});
