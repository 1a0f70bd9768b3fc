//! The examples run as a user runs them: `examples/inflate.rs` on a stream-optimized disk
//! written here, its raw output equal to the source byte for byte. (`cargo test` builds the
//! examples before it runs the tests.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use test_support::run;

use std::process::Command;

use run::example;
use vmdk::{write_stream_optimized, MemoryFiles, OpenOptions, WriteOptions};

#[test]
fn inflate_example_writes_the_disk() {
    let mut raw = vec![0u8; 3 << 20];
    for (i, b) in raw[..1 << 20].iter_mut().enumerate() {
        *b = (i * 7 % 251) as u8;
    }
    raw[2 << 20..].fill(0x5a);
    let mut files = MemoryFiles::new();
    files.insert("src.raw", raw.clone());
    let src = OpenOptions::new().files(files).open_raw("src.raw").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut stream = Vec::new();
    write_stream_optimized(&src, &mut stream, &WriteOptions::new(), &|_| {}).unwrap();
    std::fs::write(dir.path().join("disk.vmdk"), &stream).unwrap();

    let out = Command::new(example("inflate"))
        .args(["disk.vmdk", "disk.raw"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("streamOptimized of 3145728 bytes"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Unallocated") && stdout.contains("Data"),
        "{stdout}"
    );
    assert_eq!(std::fs::read(dir.path().join("disk.raw")).unwrap(), raw);
}
