//! qcow2 as a source: images qemu-img makes (versions 2 and 3, clusters from 512 bytes to
//! 2 MiB, deflate- and zstd-compressed clusters, zero clusters, backing chains over qcow2, raw
//! and VMDK) read to the same bytes qemu-img reads (sha256 of both raw readings); an OVA
//! exported from a compressed qcow2 passes `verify` and `check --target esxi` and imports back
//! to the same bytes; encryption, external data files and subclusters refused by name; a
//! backing file outside the image's folder refused; damaged images refused without a panic.
//! qemu-img and qemu-io are required (scripts/setup.sh installs them).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// The sha256 of qemu-img's raw reading of `file` (format `fmt`, in `dir`).
fn qemu_sha(dir: &Path, file: &str, fmt: &str) -> String {
    let raw = format!("{file}.qemu.raw");
    qemu_img(dir, &["convert", "-f", fmt, "-O", "raw", file, &raw]);
    let sha = sha256(&dir.join(&raw));
    std::fs::remove_file(dir.join(&raw)).unwrap();
    sha
}

/// The sha256 of our raw reading of `file` (`convert --to raw`).
fn our_sha(dir: &Path, file: &str) -> String {
    let raw = format!("{file}.ours.raw");
    ovf_disk_ok(dir, &["convert", "-q", "--to", "raw", file, &raw]);
    let sha = sha256(&dir.join(&raw));
    std::fs::remove_file(dir.join(&raw)).unwrap();
    sha
}

/// Runs qemu-io with `commands` on the qcow2 `file`, which must succeed.
fn qemu_io_qcow2(dir: &Path, file: &str, commands: &[&str]) {
    let mut cmd = Command::new(tool("qemu-io"));
    cmd.args(["-f", "qcow2"]).current_dir(dir);
    for c in commands {
        cmd.args(["-c", c]);
    }
    let out = succeeded(cmd.arg(file).output().unwrap(), "qemu-io");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("failed"), "qemu-io {commands:?}: {text}");
}

/// The images of the module's first test, made by qemu-img from `src.raw` in `dir`.
fn qemu_images(dir: &Path) -> Vec<&'static str> {
    let convert = |options: &[&str], out: &str| {
        let mut args = vec!["convert", "-f", "raw", "-O", "qcow2"];
        args.extend(options);
        args.extend(["src.raw", out]);
        qemu_img(dir, &args);
    };
    convert(&[], "v3.qcow2");
    convert(&["-o", "compat=0.10"], "v2.qcow2");
    convert(&["-c"], "deflate.qcow2");
    convert(&["-c", "-o", "compat=0.10"], "deflate-v2.qcow2");
    convert(&["-c", "-o", "compression_type=zstd"], "zstd.qcow2");
    convert(&["-o", "cluster_size=512"], "c512.qcow2");
    convert(&["-c", "-o", "cluster_size=2M"], "c2m.qcow2");
    convert(&["-o", "preallocation=metadata"], "prealloc.qcow2");
    // Zero clusters over a backing file, data written into the overlay, and a second level.
    let overlay = ["create", "-q", "-f", "qcow2", "-F", "qcow2", "-b"];
    qemu_img(dir, &[&overlay[..], &["v3.qcow2", "top.qcow2"]].concat());
    qemu_io_qcow2(
        dir,
        "top.qcow2",
        &[
            "write -P 0x55 1M 3M",
            "write -z 6M 5M",
            "write -z 20M 64k",
            "write -P 9 23M 1M",
        ],
    );
    qemu_img(dir, &[&overlay[..], &["top.qcow2", "top2.qcow2"]].concat());
    qemu_io_qcow2(
        dir,
        "top2.qcow2",
        &["write -P 0x77 2M 100k", "discard 8M 2M"],
    );
    // Backing files of other formats: raw (named) and a VMDK (probed), and a larger overlay.
    let raw_overlay = ["create", "-q", "-f", "qcow2", "-F", "raw", "-b", "src.raw"];
    qemu_img(
        dir,
        &[&raw_overlay[..], &["over-raw.qcow2", "30M"]].concat(),
    );
    qemu_io_qcow2(dir, "over-raw.qcow2", &["write -P 3 25M 2M"]);
    qemu_to_vmdk(dir, "src.raw", "base.vmdk", "subformat=streamOptimized");
    let vmdk_overlay = [
        "create",
        "-q",
        "-f",
        "qcow2",
        "-F",
        "vmdk",
        "-b",
        "base.vmdk",
    ];
    qemu_img(dir, &[&vmdk_overlay[..], &["over-vmdk.qcow2"]].concat());
    qemu_io_qcow2(
        dir,
        "over-vmdk.qcow2",
        &["write -P 4 0 1M", "write -z 5M 1M"],
    );
    vec![
        "v3.qcow2",
        "v2.qcow2",
        "deflate.qcow2",
        "deflate-v2.qcow2",
        "zstd.qcow2",
        "c512.qcow2",
        "c2m.qcow2",
        "prealloc.qcow2",
        "top.qcow2",
        "top2.qcow2",
        "over-raw.qcow2",
        "over-vmdk.qcow2",
    ]
}

#[test]
fn qcow2_images_read_as_qemu_img_reads_them() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    // Not a whole number of 64 KiB clusters: the last cluster is partial.
    sample_raw(&dir.join("src.raw"), (24 << 20) + 8192 + 512);
    for image in qemu_images(dir) {
        assert_eq!(
            our_sha(dir, image),
            qemu_sha(dir, image, "qcow2"),
            "{image}"
        );
        let check = ovf_disk(dir, &["check", image]);
        assert!(check.status.success(), "{image}: {check:?}");
    }
    // What info says of an overlay: the format, the header, the chain.
    let out = ovf_disk_ok(dir, &["info", "--json", "top2.qcow2"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["create_type"], "qcow2", "{v}");
    let q = &v["extents"][0]["qcow2"];
    assert_eq!(q["version"], 3, "{v}");
    assert_eq!(q["cluster_size"], 65536, "{v}");
    assert_eq!(q["backing_file"], "top.qcow2", "{v}");
    assert_eq!(q["backing_format"], "qcow2", "{v}");
    let chain: Vec<&str> = v["chain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["create_type"].as_str().unwrap())
        .collect();
    assert_eq!(chain, ["qcow2", "qcow2"], "{v}");
    let out = ovf_disk_ok(dir, &["info", "--json", "zstd.qcow2"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["extents"][0]["qcow2"]["compression_type"], "zstd");
}

#[test]
fn a_compressed_qcow2_exports_to_an_ova_that_verifies_and_imports_back() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    sample_raw(&dir.join("src.raw"), 20 << 20);
    let args = [
        "convert",
        "-c",
        "-f",
        "raw",
        "-O",
        "qcow2",
        "src.raw",
        "disk.qcow2",
    ];
    qemu_img(dir, &args);
    ovf_disk_ok(dir, &["export", "-q", "disk.qcow2", "app.ova"]);
    let verify = ovf_disk_ok(dir, &["verify", "app.ova"]);
    assert!(String::from_utf8_lossy(&verify.stdout).contains("verified"));
    let check = ovf_disk_ok(dir, &["check", "--target", "esxi", "app.ova"]);
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(text.contains("would import"), "{text}");
    ovf_disk_ok(dir, &["import", "-q", "app.ova", "out", "--format", "raw"]);
    let imported = dir.join("out").join("app-disk1.raw");
    assert_eq!(sha256(&imported), sha256(&dir.join("src.raw")));
}

#[test]
fn encryption_external_data_and_subclusters_are_refused_by_name() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let luks = [
        "create",
        "-q",
        "-f",
        "qcow2",
        "--object",
        "secret,id=s0,data=secret123",
        "-o",
        "encrypt.format=luks,encrypt.key-secret=s0",
        "luks.qcow2",
        "4M",
    ];
    qemu_img(dir, &luks);
    qemu_img(dir, &["create", "-q", "-f", "raw", "data.raw", "4M"]);
    let data = ["create", "-q", "-f", "qcow2", "-o", "data_file=data.raw"];
    qemu_img(dir, &[&data[..], &["ext.qcow2", "4M"]].concat());
    let extl2 = ["create", "-q", "-f", "qcow2", "-o", "extended_l2=on"];
    qemu_img(dir, &[&extl2[..], &["sub.qcow2", "4M"]].concat());
    for (file, says) in [
        ("luks.qcow2", "LUKS encryption"),
        ("ext.qcow2", "external data file"),
        ("sub.qcow2", "extended L2 entries"),
    ] {
        let out = ovf_disk(dir, &["info", file]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{file}");
        assert!(err.contains(says) && err.contains(file), "{file}: {err}");
        assert_ne!(out.status.code(), Some(101), "{file}: {err}");
    }
}

#[test]
fn a_backing_file_outside_the_folder_is_refused_unless_allowed() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    std::fs::create_dir(root.join("in")).unwrap();
    sample_raw(&root.join("host.raw"), 2 << 20);
    let overlay = [
        "create",
        "-q",
        "-f",
        "qcow2",
        "-F",
        "raw",
        "-b",
        "../host.raw",
    ];
    qemu_img(&root.join("in"), &[&overlay[..], &["o.qcow2"]].concat());
    let dir = root.join("in");
    let out = ovf_disk(&dir, &["convert", "-q", "--to", "raw", "o.qcow2", "o.raw"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("../host.raw"), "{err}");
    assert!(!dir.join("o.raw").exists());
    let allowed = [
        "convert",
        "-q",
        "--allow-outside-paths",
        "--to",
        "raw",
        "o.qcow2",
        "o.raw",
    ];
    ovf_disk_ok(&dir, &allowed);
    assert_eq!(sha256(&dir.join("o.raw")), sha256(&root.join("host.raw")));
}

#[test]
fn damaged_qcow2_images_are_refused_without_a_panic() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    sample_raw(&dir.join("src.raw"), 3 << 20);
    let args = [
        "convert",
        "-c",
        "-o",
        "cluster_size=4k",
        "-f",
        "raw",
        "-O",
        "qcow2",
    ];
    qemu_img(dir, &[&args[..], &["src.raw", "good.qcow2"]].concat());
    let good = std::fs::read(dir.join("good.qcow2")).unwrap();
    // Cut short at every 1/16 of its length, and bytes of the header and tables changed.
    let mut cases: Vec<Vec<u8>> = (1..16)
        .map(|i| good[..good.len() * i / 16].to_vec())
        .collect();
    let mut seed = 7u64;
    for _ in 0..120 {
        let mut bad = good.clone();
        for _ in 0..4 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            // The first 16 KiB: header, L1 table, refcount table, the first L2 tables.
            let at = (seed >> 33) as usize % 16384.min(bad.len());
            bad[at] = (seed >> 13) as u8;
        }
        cases.push(bad);
    }
    let mut refused = 0;
    for (i, bytes) in cases.iter().enumerate() {
        std::fs::write(dir.join("bad.qcow2"), bytes).unwrap();
        let out = ovf_disk(
            dir,
            &["convert", "-q", "--to", "raw", "bad.qcow2", "bad.raw"],
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(101), "case {i}: {err}");
        if !out.status.success() {
            refused += 1;
            assert!(err.contains("bad.qcow2"), "case {i}: {err}");
            assert!(!dir.join("bad.raw").exists(), "case {i}");
        }
        let _ = std::fs::remove_file(dir.join("bad.raw"));
    }
    assert!(refused >= 15, "only {refused} of {} refused", cases.len());
}
