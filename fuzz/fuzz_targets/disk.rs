//! A whole disk opened from one untrusted file, `disk.vmdk`, through the same code as real
//! files (a text descriptor, a sparse extent with or without an embedded descriptor, a
//! stream-optimized extent, a qcow2 image). Extents or parents it names are absent, or the
//! file itself. Opening, mapping, reading and `check_disk` may fail, never panic;
//! `OpenOptions::inspect` (what an image service asks before trusting the file) answers or
//! fails the same way, and names the format of a file that opens.
//!
//! Seeds: python3 fuzz/small_seeds.py (testdata/fuzz-seeds/disk/), qcow2 images qemu-img made
//! (testdata/fuzz-seeds/disk/qcow2-*: versions 2 and 3, deflate and zstd, zero clusters,
//! 512-byte and 4 KiB clusters), and fuzz/seeds.sh for qemu-img images and descriptors of
//! every subformat (fuzz/corpus/disk/).
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
    // What opens (never as raw here) is a VMDK or a qcow2 image to inspect too.
    if let Ok(found) = inspected {
        let want = match disk.create_type().as_str() {
            "qcow2" => "qcow2",
            _ => "vmdk",
        };
        assert_eq!(found.format, want, "inspect named an openable disk {}", found.format);
    }
    let _ = vmdk::check_disk(&disk);
    let _ = (
        disk.create_type(),
        disk.files(),
        disk.ddb("ddb.adapterType"),
    );
    // No parent can open here (the only file is the disk): what the map calls zero or
    // unallocated reads as zeros.
    oracle::check_disk(&disk, |d| d.allocation_summary().ok());
});
