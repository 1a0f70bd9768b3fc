//! `apply` onto qcow2 targets (updated in place: clusters the image holds once written where
//! they are, the others copied on write): a copy our `inflate --format qcow2` wrote and images
//! qemu-img wrote (plain, compressed, 512-byte clusters whose refcount table must grow) brought
//! forward delta by delta, each step `qemu-img check` clean and identical to the step's leaf as
//! qemu-img reads it; changed areas onto a qcow2 copy; a run killed (SIGKILL) at 50% finishes
//! when started again, to the same bytes and a clean image. qemu-img, qemu-io and nginx are
//! required (scripts/setup.sh installs them).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::path::Path;

use common::*;

/// `qemu-img check` finds nothing wrong with the qcow2 `file`, and it reads as `leaf` (a VMDK).
fn clean_and_equal(dir: &Path, file: &str, leaf: &str) {
    let check = qemu_img(dir, &["check", "-f", "qcow2", file]);
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(text.contains("No errors were found"), "{file}: {text}");
    qemu_same(dir, leaf, "vmdk", file, "qcow2");
}

/// A base and two deltas (qemu-img's), 24 MiB.
fn chain(dir: &Path) {
    sample_raw(&dir.join("base.raw"), 24 << 20);
    qemu_to_vmdk(dir, "base.raw", "base.vmdk", "subformat=monolithicSparse");
    qemu_delta(dir, "base.vmdk", "d1.vmdk");
    let d1 = [
        "write -P 0x11 1M 3M",
        "write -P 0 20M 1M",
        "write -P 0x12 23M 700k",
    ];
    qemu_io(dir, "d1.vmdk", &d1);
    qemu_delta(dir, "d1.vmdk", "d2.vmdk");
    qemu_io(
        dir,
        "d2.vmdk",
        &["write -P 0x22 2M 2M", "write -P 0x23 13M 4k"],
    );
}

#[test]
fn deltas_apply_onto_qcow2_copies_ours_and_qemu_imgs() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    chain(dir);
    // Ours, recorded as it is written.
    let args = [
        "inflate",
        "-q",
        "--format",
        "qcow2",
        "--record-state",
        "base.vmdk",
        "t.qcow2",
    ];
    ovf_disk_ok(dir, &args);
    clean_and_equal(dir, "t.qcow2", "base.vmdk");
    ovf_disk_ok(dir, &["apply", "-q", "d1.vmdk", "t.qcow2"]);
    clean_and_equal(dir, "t.qcow2", "d1.vmdk");
    let out = ovf_disk(dir, &["apply", "-q", "d1.vmdk", "t.qcow2"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("already holds it"));
    ovf_disk_ok(dir, &["apply", "-q", "d2.vmdk", "t.qcow2"]);
    clean_and_equal(dir, "t.qcow2", "d2.vmdk");
    // qemu-img's copies (no state: --force for the first delta).
    for (i, options) in [
        &[][..],
        &["-c"],
        &["-o", "cluster_size=512"],
        &["-c", "-o", "cluster_size=512,compat=0.10"],
    ]
    .into_iter()
    .enumerate()
    {
        let target = format!("q{i}.qcow2");
        let mut args = vec!["convert", "-f", "vmdk", "-O", "qcow2"];
        args.extend(options);
        args.extend(["base.vmdk", &target]);
        qemu_img(dir, &args);
        ovf_disk_ok(dir, &["apply", "-q", "--force", "d1.vmdk", &target]);
        clean_and_equal(dir, &target, "d1.vmdk");
        ovf_disk_ok(dir, &["apply", "-q", "d2.vmdk", &target]);
        clean_and_equal(dir, &target, "d2.vmdk");
    }
    // An image with a backing file is no copy: refused, unchanged.
    qemu_img(
        dir,
        &[
            "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", "q0.qcow2", "o.qcow2",
        ],
    );
    let before = sha256(&dir.join("o.qcow2"));
    let out = ovf_disk(dir, &["apply", "-q", "--force", "d1.vmdk", "o.qcow2"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("backing file"),
        "{out:?}"
    );
    assert_eq!(sha256(&dir.join("o.qcow2")), before);
}

#[test]
fn changed_areas_onto_a_qcow2_copy() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let size = 8u64 << 20;
    sample_raw(&dir.join("old.raw"), size);
    std::fs::copy(dir.join("old.raw"), dir.join("new.raw")).unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("new.raw"))
        .unwrap();
    let mut areas = Vec::new();
    for (k, at) in [0u64, 140 * 512, 3 << 20, (8 << 20) - 4096]
        .into_iter()
        .enumerate()
    {
        let len = [512u64, 200 << 10, 64 << 10, 4096][k];
        std::os::unix::fs::FileExt::write_all_at(&f, &noise(k as u64 + 5, len as usize), at)
            .unwrap();
        areas.push(serde_json::json!({"start": at, "length": len}));
    }
    let json = serde_json::json!({"startOffset": 0, "length": size, "changedArea": areas});
    std::fs::write(dir.join("areas.json"), json.to_string()).unwrap();
    qemu_img(
        dir,
        &[
            "convert", "-c", "-f", "raw", "-O", "qcow2", "old.raw", "t.qcow2",
        ],
    );
    let args = [
        "apply",
        "-q",
        "--force",
        "--changed-areas",
        "areas.json",
        "--",
        "new.raw",
        "t.qcow2",
    ];
    ovf_disk_ok(dir, &args);
    qemu_img(dir, &["check", "-q", "t.qcow2"]);
    qemu_same(dir, "new.raw", "raw", "t.qcow2", "qcow2");
}

#[test]
fn an_apply_onto_qcow2_killed_midway_finishes_when_run_again() {
    use test_support::http::{Nginx, NginxOptions};
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let size = 48u64 << 20;
    sample_raw(&dir.join("base.raw"), size);
    qemu_to_vmdk(dir, "base.raw", "base.vmdk", "subformat=monolithicSparse");
    qemu_delta(dir, "base.vmdk", "d1.vmdk");
    qemu_io(dir, "d1.vmdk", &["write -P 0x31 0 48M"]);
    // The delta read over HTTP at 12 MiB/s: the apply takes about four seconds.
    let nginx = Nginx::start(
        dir,
        &NginxOptions {
            limit_rate: Some("12m".into()),
            ..NginxOptions::default()
        },
    );
    let url = nginx.url("d1.vmdk");
    let base = dir.join("base.vmdk").display().to_string();
    let args = [
        "inflate",
        "-q",
        "--format",
        "qcow2",
        "--record-state",
        &base,
        "t.qcow2",
    ];
    ovf_disk_ok(dir, &args);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ovf-disk"))
        .args(["apply", "-q", "--connections", "1", &url, "t.qcow2"])
        .current_dir(dir)
        .spawn()
        .unwrap();
    let state = dir.join(".t.qcow2.ovf-disk-state");
    kill_when(&mut child, "50%", || {
        let text = std::fs::read_to_string(&state).unwrap_or_default();
        let at = text
            .lines()
            .find_map(|l| l.strip_prefix("applying "))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok());
        at.is_some_and(|at| at * 2 >= size)
    });
    // Killed: the image is consistent (what was written is counted), then finished.
    qemu_img(dir, &["check", "-q", "t.qcow2"]);
    ovf_disk_ok(dir, &["apply", "-q", &url, "t.qcow2"]);
    clean_and_equal(dir, "t.qcow2", "d1.vmdk");
}
