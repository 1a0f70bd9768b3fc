//! OVA archives on arbitrary bytes: the seekable index (from a file on tmpfs) and the package
//! check over it (digests, disks walked in place or streamed), and the streaming
//! import (into a scratch folder) either work or fail, never panic, and never write outside the
//! scratch folder.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ovf_disk::inflate::InflateOptions;
use ovf_disk::package::check::check_package;
use ovf_disk::package::ops::{import_stream, Package};

fuzz_target!(|data: &[u8]| {
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        "/dev/shm"
    } else {
        "/tmp"
    };
    let dir = std::path::PathBuf::from(format!("{base}/ovf-disk-fuzz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch folder");
    let ova = dir.join("fuzz.ova");
    std::fs::write(&ova, data).expect("scratch file");
    if let Ok(pkg) = Package::open(&ova) {
        // Digests, then every disk walked in place or streamed (what `ovf-disk check` does).
        let _ = check_package(&pkg, &vmdk::OpenOptions::default(), 1, &|_| {});
    }
    // Holes, not zeros: a hostile envelope may declare a large capacity.
    let copy = vmdk::copy::CopyOptions {
        zero: vmdk::copy::ZeroMode::Sparse,
        threads: 1,
        ..vmdk::copy::CopyOptions::default()
    };
    let options = InflateOptions {
        copy,
        force: true,
        max_capacity: None,
    };
    let out = dir.join("out");
    let _ = import_stream(
        std::io::Cursor::new(data),
        "fuzz.ova",
        &out,
        true,
        &options,
        &|_, _| {},
    );
    // Nothing may be written outside the scratch folder: only fuzz.ova and out/ are there.
    for e in std::fs::read_dir(&dir).expect("scratch folder").flatten() {
        let n = e.file_name();
        assert!(n == "fuzz.ova" || n == "out", "unexpected file {n:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
});
