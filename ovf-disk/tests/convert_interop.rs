//! Images written by `ovf-disk convert`, read back by every peer: `qemu-img check` finds no
//! errors, `qemu-img compare` finds them identical to the source, and libvmdk-python and
//! dissect.hypervisor (installed in .venv by scripts/setup.sh; missing is a failure) read the
//! source's sha256, as does our own reader.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::process::{Command, Stdio};

use common::*;

const TYPES: [&str; 6] = [
    "monolithicSparse",
    "monolithicFlat",
    "twoGbMaxExtentSparse",
    "twoGbMaxExtentFlat",
    "streamOptimized",
    "vmfs",
];

/// Converts `src` (raw, in `dir`) to every type and checks each output with every reader.
/// `aligned` is the prefix dissect can read (PEERS.md: it fails on a last partial grain).
fn check_all_types(dir: &std::path::Path, src: &str, extra: &[&str]) {
    let size = std::fs::metadata(dir.join(src)).unwrap().len();
    let src_sha = sha256(&dir.join(src));
    let aligned = size / 65536 * 65536;
    let aligned_sha = sha256_prefix(&dir.join(src), aligned);
    for t in TYPES {
        let out = format!("{src}.{t}.vmdk");
        let mut args = vec!["convert", "-q", src, &out, "--to", t];
        args.extend_from_slice(extra);
        ovf_disk_ok(dir, &args);
        let check = Command::new(tool("qemu-img"))
            .args(["check", "-f", "vmdk", &out])
            .current_dir(dir)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&check.stdout);
        assert!(
            check.status.success() && text.contains("No errors were found"),
            "{t}: qemu-img check: {text}{}",
            String::from_utf8_lossy(&check.stderr)
        );
        qemu_same(dir, src, "raw", &out, "vmdk");
        assert_eq!(
            qemu_raw_sha(dir, &out),
            src_sha,
            "{t}: qemu-img reads other bytes"
        );
        // Our own reader.
        let back = format!("{out}.raw");
        ovf_disk_ok(dir, &["inflate", "-q", &out, &back]);
        assert_eq!(
            sha256(&dir.join(&back)),
            src_sha,
            "{t}: we read other bytes"
        );
        std::fs::remove_file(dir.join(&back)).unwrap();
        // libvmdk reads everything; dissect the grain-aligned prefix.
        let libvmdk = peer_shas_of(dir, &out, None, Some("libvmdk"));
        let dissect = peer_shas_of(dir, &out, Some(aligned), Some("dissect"));
        assert_eq!((libvmdk.len(), dissect.len()), (1, 1));
        for (reader, reported, sha) in libvmdk.into_iter().chain(dissect) {
            assert_eq!(reported, size, "{t}: {reader} reports another capacity");
            if reader == "dissect" && aligned == 0 {
                // A disk smaller than one grain: dissect cannot read its only (partial) grain
                // (PEERS.md), so only its capacity is compared, not its bytes.
                continue;
            }
            let want = if reader == "dissect" {
                &aligned_sha
            } else {
                &src_sha
            };
            assert_eq!(&sha, want, "{t}: {reader} reads other bytes");
        }
    }
}

#[test]
fn every_writer_is_read_by_every_peer() {
    let d = tempfile::tempdir().unwrap();
    // Data, zero grains, text, a partial last grain: 24 MiB + 3 sectors.
    sample_raw(&d.path().join("mix.raw"), (24 << 20) + 1536);
    check_all_types(d.path(), "mix.raw", &[]);
    // Options change the database, not the data.
    sample_raw(&d.path().join("opt.raw"), 4 << 20);
    check_all_types(
        d.path(),
        "opt.raw",
        &[
            "--adapter-type",
            "ide",
            "--hw-version",
            "14",
            "--compress-level",
            "9",
            "--threads",
            "1",
        ],
    );
    let desc = std::fs::read_to_string(d.path().join("opt.raw.monolithicFlat.vmdk")).unwrap();
    for want in [
        "ddb.adapterType = \"ide\"",
        "ddb.virtualHWVersion = \"14\"",
        "ddb.geometry.heads = \"16\"",
    ] {
        assert!(desc.contains(want), "{want} missing:\n{desc}");
    }
}

#[test]
fn empty_and_tiny_disks() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("empty.raw"), vec![0u8; 1 << 20]).unwrap();
    check_all_types(d.path(), "empty.raw", &[]);
    let mut one = vec![0u8; 512];
    one[100] = 1;
    std::fs::write(d.path().join("one.raw"), one).unwrap();
    check_all_types(d.path(), "one.raw", &[]);
    let out = ovf_disk_ok(
        d.path(),
        &["info", "--json", "empty.raw.streamOptimized.vmdk"],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["allocation"]["data"], 0, "all-zero grains are left out");
}

#[test]
fn over_2_gib_mostly_empty() {
    let d = tempfile::tempdir().unwrap();
    let src = d.path().join("big.raw");
    let f = std::fs::File::create(&src).unwrap();
    f.set_len(3 << 30).unwrap();
    use std::os::unix::fs::FileExt;
    for (at, seed) in [
        (0u64, 1u64),
        ((2 << 30) - 70_000, 2),
        ((2047 << 20) + 512, 3),
        ((3 << 30) - 100_000, 4),
    ] {
        f.write_all_at(&noise(seed, 100_000), at).unwrap();
    }
    drop(f);
    let src_sha = sha256(&src);
    for t in [
        "streamOptimized",
        "monolithicSparse",
        "twoGbMaxExtentSparse",
        "twoGbMaxExtentFlat",
    ] {
        let out = format!("big.{t}.vmdk");
        // Flat extents as holes: the data is what is checked here, not the zeroing.
        ovf_disk_ok(
            d.path(),
            &[
                "convert", "-q", "big.raw", &out, "--to", t, "--zero", "sparse",
            ],
        );
        qemu_same(d.path(), "big.raw", "raw", &out, "vmdk");
        for (reader, size, sha) in peer_shas(d.path(), &out, None) {
            assert_eq!(
                (size, sha.as_str()),
                (3 << 30, src_sha.as_str()),
                "{t}: {reader}"
            );
        }
        if t != "twoGbMaxExtentFlat" {
            let written: u64 = std::fs::read_dir(d.path())
                .unwrap()
                .map(|e| e.unwrap())
                .filter(|e| {
                    e.file_name()
                        .to_string_lossy()
                        .starts_with(&format!("big.{t}"))
                })
                .map(|e| e.metadata().unwrap().len())
                .sum();
            assert!(
                written < 16 << 20,
                "{t}: {written} bytes for 400 KB of data"
            );
        }
    }
    let i: serde_json::Value = serde_json::from_slice(
        &ovf_disk_ok(
            d.path(),
            &["info", "--json", "big.twoGbMaxExtentSparse.vmdk"],
        )
        .stdout,
    )
    .unwrap();
    assert_eq!(i["extents"].as_array().unwrap().len(), 2);
}

fn convert_to_stdout(dir: &std::path::Path, input: &str, extra: &[&str]) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_ovf-disk"))
        .args(["convert", "-q", input, "-", "--to", "streamOptimized"])
        .args(extra)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn stream_to_a_pipe_is_byte_identical_to_a_file() {
    let d = tempfile::tempdir().unwrap();
    sample_raw(&d.path().join("s.raw"), 16 << 20);
    qemu_to_vmdk(d.path(), "s.raw", "s.vmdk", "");
    for input in ["s.raw", "s.vmdk"] {
        let piped = convert_to_stdout(d.path(), input, &["--cid", "1234abcd", "--threads", "2"]);
        let file = format!("{input}.stream.vmdk");
        // The extent line names the output; through a pipe it is "disk.vmdk".
        let named = d.path().join("disk.vmdk");
        let _ = std::fs::remove_file(&named);
        ovf_disk_ok(
            d.path(),
            &[
                "convert",
                "-q",
                input,
                "disk.vmdk",
                "--to",
                "streamOptimized",
                "--cid",
                "1234abcd",
                "--threads",
                "1",
            ],
        );
        assert_eq!(
            sha256_bytes(&piped),
            sha256(&named),
            "{input}: pipe and file differ"
        );
        std::fs::rename(&named, d.path().join(&file)).unwrap();
        assert_eq!(
            qemu_raw_sha(d.path(), &file),
            sha256(&d.path().join("s.raw"))
        );
    }
}

#[test]
fn convert_refuses_bad_requests() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("odd.raw"), vec![1u8; 1000]).unwrap();
    std::fs::write(d.path().join("ok.raw"), vec![1u8; 4096]).unwrap();
    for (args, want) in [
        (
            vec!["convert", "ok.raw", "x.vmdk", "--to", "vmfsSparse"],
            "--to vmfsSparse",
        ),
        (
            vec!["convert", "ok.raw", "-", "--to", "monolithicSparse"],
            "only --to streamOptimized",
        ),
        (
            vec!["convert", "odd.raw", "x.vmdk", "--to", "streamOptimized"],
            "whole number of 512-byte sectors",
        ),
        (
            vec![
                "convert",
                "ok.raw",
                "x.vmdk",
                "--to",
                "raw",
                "--adapter-type",
                "scsi",
            ],
            "--adapter-type scsi",
        ),
        (
            vec![
                "convert", "ok.raw", "x.vmdk", "--to", "raw", "--from", "vmdk",
            ],
            "not a VMDK",
        ),
        (
            vec!["convert", "ok.raw", "ok.raw", "--to", "raw", "--force"],
            "is a file of the input disk",
        ),
    ] {
        let out = ovf_disk(d.path(), &args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(want), "{args:?}: {err}");
    }
    let mut names: Vec<_> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["odd.raw", "ok.raw"]);
}
