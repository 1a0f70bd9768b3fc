//! A VM folder's configuration files and a changed-area list on arbitrary text: the input up to
//! its first NUL is the `.vmx`, the rest up to the next NUL the `.vmsd` (a small disk `d.vmdk`
//! beside them); `info VM.vmx`, its snapshots, and an inflate's disk lists as of each snapshot
//! parse or fail, never panic; whole, the input is a `QueryChangedDiskAreas` answer, and an
//! accepted one is sorted, sector-aligned and inside the disk.
//!
//! Seeds: python3 fuzz/small_seeds.py (testdata/fuzz-seeds/vm/).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use ovf_disk::apply::ChangedAreas;
use ovf_disk::vm::{vm_info, Options};

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |&b| b == 0);
    let vmx = parts.next().unwrap_or_default();
    let vmsd = parts.next();
    let mut files = vmdk::MemoryFiles::new();
    files.insert("vm/vm.vmx", vmx.to_vec());
    if let Some(v) = vmsd {
        files.insert("vm/vm.vmsd", v.to_vec());
    }
    files.insert(
        "vm/d.vmdk",
        b"# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType=\"custom\"\nRW 2048 ZERO\n"
            .to_vec(),
    );
    let options = Options::new().files(files);
    let path = Path::new("vm/vm.vmx");
    if let Ok(info) = vm_info(path, &options) {
        for s in &info.snapshots {
            let _ = ovf_disk::vm::open_disks(path, &options.clone().snapshot(s.uid.to_string()));
        }
    }
    let _ = options.snapshots(path);

    let capacity = 1 << 30;
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(areas) = ChangedAreas::from_json(text, capacity) {
            let mut end = 0;
            for &(start, len) in areas.areas() {
                assert!(start >= end && start % 512 == 0 && len % 512 == 0);
                end = start + len;
                assert!(end <= capacity);
            }
        }
    }
});
