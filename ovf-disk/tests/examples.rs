//! The examples run as a user runs them: `examples/import.rs` on an OVA made by `ovf-disk
//! export`, its thick disk read back by qemu-img to the source's sha256. (`cargo test` builds
//! the examples before it runs the tests.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;
use test_support::run;

use std::process::Command;

use common::*;
use run::example;

#[test]
fn import_example_imports_an_ova() {
    let d = tempfile::tempdir().unwrap();
    sample_raw(&d.path().join("src.raw"), 3 << 20);
    ovf_disk_ok(d.path(), &["export", "-q", "src.raw", "app.ova"]);
    let out = Command::new(example("import"))
        .args(["app.ova", "imported"])
        .current_dir(d.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("app-disk1.vmdk: SHA256 ok"), "{stdout}");
    assert!(
        stdout.contains("ovf:/disk/vmdisk0 on SCSI (lsilogic)"),
        "{stdout}"
    );
    // The drive linked to its disk and file, and the running total of bytes written.
    assert!(
        stdout.contains("holds vmdisk0 in app-disk1.vmdk"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("written: {} bytes", 3 << 20)),
        "{stdout}"
    );
    assert_eq!(
        qemu_raw_sha(d.path(), "imported/app-disk1-thick.vmdk"),
        sha256(&d.path().join("src.raw"))
    );
    // Refused when a digest does not match: nothing imported.
    let mut ova = std::fs::read(d.path().join("app.ova")).unwrap();
    let at = ova.len() - 4096;
    ova[at] ^= 0xff;
    std::fs::write(d.path().join("bad.ova"), &ova).unwrap();
    let out = Command::new(example("import"))
        .args(["bad.ova", "bad"])
        .current_dir(d.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.ova: not verified"), "{err}");
    assert!(!d.path().join("bad").exists());
    // An archive cut short is told apart by its category: fetch it again.
    let ova = std::fs::read(d.path().join("app.ova")).unwrap();
    std::fs::write(d.path().join("cut.ova"), &ova[..ova.len() / 2]).unwrap();
    let out = Command::new(example("import"))
        .args(["cut.ova", "cut"])
        .current_dir(d.path())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("fetch it again"));
    assert!(!d.path().join("cut").exists());
}
