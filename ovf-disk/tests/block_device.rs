//! Block devices as outputs (a Kubernetes Job's block-mode volume, an LVM volume): `inflate`
//! writes the disk in place (a device cannot be renamed into place) with every zero written,
//! only with `--force`, never onto a device smaller than the disk; `apply` brings it forward.
//! Loop devices (losetup, as root) stand in for real ones; without them the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};

use common::*;

/// A loop device over a file, detached when dropped.
struct Loop(PathBuf);

impl Loop {
    fn new(file: &Path, size: u64) -> Self {
        let f = std::fs::File::create(file).unwrap();
        f.set_len(size).unwrap();
        // Garbage: what a reused volume holds.
        std::os::unix::fs::FileExt::write_all_at(&f, &vec![0xa5; size as usize], 0).unwrap();
        let dev = run_ok(
            Path::new("."),
            "losetup",
            &["-f", "--show", file.to_str().unwrap()],
        );
        Self(PathBuf::from(dev.trim()))
    }

    fn sha_of_first(&self, len: u64) -> String {
        let mut f = std::fs::File::open(&self.0).unwrap().take(len);
        let mut buf = Vec::new();
        f.read_to_end(&mut buf).unwrap();
        sha256_bytes(&buf)
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("losetup")
            .arg("-d")
            .arg(&self.0)
            .status();
    }
}

#[test]
fn inflate_and_apply_write_a_block_device_in_place() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let size = 24u64 << 20;
    sample_raw(&dir.join("base.raw"), size);
    qemu_to_vmdk(dir, "base.raw", "base.vmdk", "subformat=monolithicSparse");
    qemu_img(
        dir,
        &[
            "create",
            "-q",
            "-f",
            "vmdk",
            "-b",
            "base.vmdk",
            "-F",
            "vmdk",
            "d1.vmdk",
        ],
    );
    qemu_io(dir, "d1.vmdk", &["write -P 0x11 1M 3M"]);
    let dev = Loop::new(&dir.join("volume.img"), size + (4 << 20));
    let name = dev.0.display().to_string();
    // Without --force: refused, nothing written.
    let out = ovf_disk(dir, &["inflate", "base.vmdk", &name]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("is a block device: --force"));
    assert_eq!(dev.sha_of_first(4096), sha256_bytes(&[0xa5; 4096]));
    ovf_disk_ok(
        dir,
        &[
            "inflate",
            "-q",
            "--force",
            "--record-state",
            "--state",
            "vol.state",
            "base.vmdk",
            &name,
        ],
    );
    // Every byte written, zeros included, over the garbage.
    assert_eq!(dev.sha_of_first(size), qemu_raw_sha(dir, "base.vmdk"));
    ovf_disk_ok(
        dir,
        &["apply", "-q", "--state", "vol.state", "d1.vmdk", &name],
    );
    assert_eq!(dev.sha_of_first(size), qemu_raw_sha(dir, "d1.vmdk"));
    // A device smaller than the disk: refused.
    let small = Loop::new(&dir.join("small.img"), size / 2);
    let out = ovf_disk(
        dir,
        &[
            "inflate",
            "--force",
            "base.vmdk",
            &small.0.display().to_string(),
        ],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the device holds"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
