//! OVA archives on arbitrary bytes: the seekable index (from a file on tmpfs) and the package
//! check over it (digests, disks walked in place or streamed), and the streaming
//! import (into a scratch folder) either work or fail, never panic, and never write outside the
//! scratch folder.
//!
//! Seeds: python3 fuzz/small_seeds.py (testdata/fuzz-seeds/ova/), and fuzz/seeds.sh for an OVA
//! of two qemu-img images made by `ovf-disk export` (fuzz/corpus/ova/).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ovf_disk::import::{self, import_stream};
use ovf_disk::output::ConvertOptions;
use ovf_disk::package::{Package, check_package};

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
    let write = vmdk::WriteOptions::new()
        .zero(vmdk::ZeroMode::Sparse)
        .threads(1);
    let options = import::Options::new()
        .output_format(vmdk::Format::Raw)
        .expect("raw is a thick format")
        .convert_options(
            ConvertOptions::new()
                .write_options(write)
                .replace_existing(true),
        );
    let out = dir.join("out");
    let _ = import_stream(
        std::io::Cursor::new(data),
        "fuzz.ova",
        &out,
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
