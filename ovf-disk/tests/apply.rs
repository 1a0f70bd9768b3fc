//! `apply`: a copy brought forward with only what changed. Chains of qemu-img's deltas and
//! ESXi's (COWD, seSparse) applied one by one onto a copy of their base give, after each step,
//! the bytes qemu-img reads from that step's leaf; changed areas copied from a source give the
//! source; the wrong delta, a delta twice, a target that moved on, or a new change over an
//! unfinished one are refused with the target unchanged; a run killed (SIGKILL) at 10, 50 and
//! 90% finishes when started again, to the same bytes. Block devices (loop devices, losetup as
//! root; without them the test fails) as outputs of `inflate` and targets of `apply`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::path::Path;

use common::*;

/// `ovf-disk apply ARGS` in `dir`: its output.
fn apply(dir: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["apply"];
    all.extend(args);
    ovf_disk(dir, &all)
}

/// The keys of an object, sorted.
fn keys(v: &serde_json::Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    k.sort();
    k
}

/// `apply --json`'s output has the shape JSON.md documents.
fn documented_shape(v: &serde_json::Value) {
    let doc = include_str!("../JSON.md");
    let at = doc.find("<!-- json: apply -->").unwrap();
    let block = &doc[at..];
    let start = block.find("```json\n").unwrap() + 8;
    let end = block[start..].find("```").unwrap();
    let d: serde_json::Value = serde_json::from_str(&block[start..start + end]).unwrap();
    assert_eq!(keys(v), keys(&d));
    assert_eq!(keys(&v["applied"][0]), keys(&d["applied"][0]));
    assert_eq!(keys(&v["state"]), keys(&d["state"]));
}

/// Asserts `apply ARGS` is refused saying `says`, and `target` is unchanged.
fn refused(dir: &Path, args: &[&str], target: &str, says: &str) {
    let before = sha256(&dir.join(target));
    let out = apply(dir, args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
    assert!(err.contains(says), "{args:?}: {err}");
    assert_eq!(
        sha256(&dir.join(target)),
        before,
        "{args:?} changed the target"
    );
}

#[test]
fn qemu_img_deltas_apply_one_by_one_to_the_bytes_of_each_leaf() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    sample_raw(&dir.join("base.raw"), 40 << 20);
    qemu_to_vmdk(dir, "base.raw", "base.vmdk", "subformat=monolithicSparse");
    qemu_delta(dir, "base.vmdk", "d1.vmdk");
    qemu_io(
        dir,
        "d1.vmdk",
        &[
            "write -P 0x11 1M 3M",
            "write -P 0 20M 1M",
            "write -P 0x12 39M 1M",
        ],
    );
    qemu_delta(dir, "d1.vmdk", "d2.vmdk");
    qemu_io(
        dir,
        "d2.vmdk",
        &["write -P 0x22 2M 2M", "write -P 0x23 30M 64k"],
    );
    for (target, thick) in [("t.raw", false), ("t.vmdk", true)] {
        ovf_disk_ok(
            dir,
            &["inflate", "-q", "--record-state", "base.vmdk", target],
        );
        let bytes = |t: &str| match thick {
            true => sha256(&dir.join("t-flat.vmdk")),
            false => sha256(&dir.join(t)),
        };
        assert_eq!(bytes(target), qemu_raw_sha(dir, "base.vmdk"));
        // d2 before d1: its parent is not what the target holds.
        refused(
            dir,
            &["d2.vmdk", target],
            if thick { "t-flat.vmdk" } else { target },
            "its parentCID is",
        );
        let out = ovf_disk_ok(dir, &["apply", "--json", "d1.vmdk", target]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        documented_shape(&v);
        // Only the delta's grains: 5 MiB of data, none of the base's.
        assert_eq!(v["applied"][0]["data_bytes"], 5 << 20, "{v}");
        assert_eq!(
            bytes(target),
            qemu_raw_sha(dir, "d1.vmdk"),
            "{target} after d1"
        );
        // Twice: refused.
        refused(
            dir,
            &["d1.vmdk", target],
            if thick { "t-flat.vmdk" } else { target },
            "already holds it",
        );
        ovf_disk_ok(dir, &["apply", "-q", "d2.vmdk", target]);
        assert_eq!(
            bytes(target),
            qemu_raw_sha(dir, "d2.vmdk"),
            "{target} after d2"
        );
    }
    // A target that moved on since its state was recorded: refused, unless forced.
    ovf_disk_ok(
        dir,
        &["inflate", "-q", "--record-state", "base.vmdk", "moved.raw"],
    );
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("moved.raw"))
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[0xee; 4096], 0).unwrap();
    refused(
        dir,
        &["d1.vmdk", "moved.raw"],
        "moved.raw",
        "the target changed",
    );
    // No state: refused, unless forced.
    std::fs::copy(dir.join("base.raw"), dir.join("bare.raw")).unwrap();
    refused(
        dir,
        &["d1.vmdk", "bare.raw"],
        "bare.raw",
        "no record of what the target holds",
    );
    ovf_disk_ok(
        dir,
        &["apply", "-q", "--force", "d1.vmdk", "d2.vmdk", "bare.raw"],
    );
    assert_eq!(sha256(&dir.join("bare.raw")), qemu_raw_sha(dir, "d2.vmdk"));
}

#[test]
fn esxi_cowd_and_sesparse_snapshots_apply_in_one_run() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    esxi_vm_folder(dir);
    ovf_disk_ok(
        dir,
        &["inflate", "-q", "--record-state", "web.vmdk", "web.raw"],
    );
    ovf_disk_ok(
        dir,
        &[
            "apply",
            "-q",
            "web-000001.vmdk",
            "web-000002.vmdk",
            "web.raw",
        ],
    );
    assert_eq!(
        sha256(&dir.join("web.raw")),
        qemu_raw_sha(dir, "web-000002.vmdk")
    );
}

#[test]
fn changed_areas_copy_only_the_listed_ranges_and_hostile_lists_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let size = 16u64 << 20;
    sample_raw(&dir.join("old.raw"), size);
    std::fs::copy(dir.join("old.raw"), dir.join("new.raw")).unwrap();
    // A known modification: pseudo-random sector-aligned areas of the new image rewritten.
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("new.raw"))
        .unwrap();
    let mut areas = Vec::new();
    let mut seed = 0x1234_5678u64;
    let mut at = 0u64;
    while at < size {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        at += (seed >> 40) % 64 * 8192;
        let len = ((seed >> 20) % 32 + 1) * 512;
        if at + len > size {
            break;
        }
        std::os::unix::fs::FileExt::write_all_at(&f, &noise(seed, len as usize), at).unwrap();
        areas.push(serde_json::json!({"start": at, "length": len}));
        at += len;
    }
    assert!(areas.len() > 20);
    let json = serde_json::json!({"startOffset": 0, "length": size, "changedArea": areas});
    std::fs::write(dir.join("areas.json"), json.to_string()).unwrap();
    std::fs::copy(dir.join("old.raw"), dir.join("target.raw")).unwrap();
    let out = ovf_disk_ok(
        dir,
        &[
            "apply",
            "--json",
            "--force",
            "--changed-areas",
            "areas.json",
            "--",
            "new.raw",
            "target.raw",
        ],
    );
    assert_eq!(
        sha256(&dir.join("target.raw")),
        sha256(&dir.join("new.raw"))
    );
    // Only the areas were read and written.
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let listed: u64 = areas.iter().map(|a| a["length"].as_u64().unwrap()).sum();
    assert_eq!(v["applied"][0]["data_bytes"], listed, "{v}");
    // Hostile lists: each refused naming the fault, the target unchanged.
    std::fs::copy(dir.join("old.raw"), dir.join("t2.raw")).unwrap();
    for (list, says) in [
        (
            r#"{"changedArea":[{"start":4096,"length":512},{"start":0,"length":512}]}"#,
            "unsorted or overlapping",
        ),
        (
            r#"{"changedArea":[{"start":0,"length":1024},{"start":512,"length":512}]}"#,
            "unsorted or overlapping",
        ),
        (
            r#"{"changedArea":[{"start":16777216,"length":512}]}"#,
            "past the disk's end",
        ),
        (
            r#"{"changedArea":[{"start":18446744073709551104,"length":1024}]}"#,
            "past the disk's end",
        ),
        (
            r#"{"changedArea":[{"start":1,"length":512}]}"#,
            "not sector-aligned",
        ),
        (
            r#"{"changedArea":[{"start":0}]}"#,
            "no whole start and length",
        ),
        (r#"{"changedArea":"#, "not JSON"),
    ] {
        std::fs::write(dir.join("bad.json"), list).unwrap();
        refused(
            dir,
            &[
                "--force",
                "--changed-areas",
                "bad.json",
                "new.raw",
                "t2.raw",
            ],
            "t2.raw",
            says,
        );
    }
    // A huge list: bounded by the file's size, refused past 64 MiB before it is parsed.
    let f = std::fs::File::create(dir.join("huge.json")).unwrap();
    f.set_len(65 << 20).unwrap();
    refused(
        dir,
        &[
            "--force",
            "--changed-areas",
            "huge.json",
            "new.raw",
            "t2.raw",
        ],
        "t2.raw",
        "larger than 64 MiB",
    );
}

/// `applying` of the state file: the offset reached.
fn applying(state: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(state).ok()?;
    let line = text.lines().find(|l| l.starts_with("applying "))?;
    line.rsplit(' ').next()?.parse().ok()
}

#[test]
fn an_apply_killed_midway_finishes_when_run_again() {
    use test_support::http::{Nginx, NginxOptions};
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    // Ten windows of 8 MiB, each recorded as it is flushed: 10, 50 and 90% are reached.
    let size = 80u64 << 20;
    sample_raw(&dir.join("base.raw"), size);
    qemu_to_vmdk(dir, "base.raw", "base.vmdk", "subformat=monolithicSparse");
    qemu_delta(dir, "base.vmdk", "d1.vmdk");
    qemu_io(dir, "d1.vmdk", &["write -P 0x31 0 80M"]);
    qemu_delta(dir, "d1.vmdk", "d2.vmdk");
    qemu_io(dir, "d2.vmdk", &["write -P 0x32 1M 1M"]);
    let want = qemu_raw_sha(dir, "d1.vmdk");
    // The delta read over HTTP at 12 MiB/s: an apply takes about seven seconds.
    let nginx = Nginx::start(
        dir,
        &NginxOptions {
            limit_rate: Some("12m".into()),
            ..NginxOptions::default()
        },
    );
    let url = nginx.url("d1.vmdk");
    let w = tempfile::tempdir().unwrap();
    let w = w.path();
    let state = w.join(".t.raw.ovf-disk-state");
    for percent in [10u64, 50, 90] {
        ovf_disk_ok(
            w,
            &[
                "inflate",
                "-q",
                "--force",
                "--record-state",
                &dir.join("base.vmdk").display().to_string(),
                "t.raw",
            ],
        );
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ovf-disk"))
            .args(["apply", "-q", "--connections", "1", &url, "t.raw"])
            .current_dir(w)
            .spawn()
            .unwrap();
        kill_when(&mut child, &format!("{percent}%"), || {
            applying(&state).is_some_and(|at| at * 100 >= size * percent)
        });
        // Another change is refused until the interrupted one completes.
        let d2 = dir.join("d2.vmdk").display().to_string();
        refused(w, &[&d2, "t.raw"], "t.raw", "did not finish");
        let out = ovf_disk_ok(w, &["apply", "--json", &url, "t.raw"]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            v["applied"][0]["resumed_from"].as_u64().unwrap() * 100 >= size * percent,
            "{v}"
        );
        assert_eq!(sha256(&w.join("t.raw")), want, "killed at {percent}%");
    }
}

/// A loop device over a file, detached when dropped.
struct Loop(std::path::PathBuf);

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
        Self(std::path::PathBuf::from(dev.trim()))
    }

    fn sha_of_first(&self, len: u64) -> String {
        use std::io::Read;
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
    qemu_delta(dir, "base.vmdk", "d1.vmdk");
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
