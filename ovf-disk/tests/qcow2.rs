//! `convert --to qcow2`: every layout of the corpus written as qcow2 version 3 and read back by
//! qemu-img: `qemu-img check` clean (no leak, no corruption), `qemu-img compare` identical to the
//! source, `qemu-img info` showing the format, compat 1.1, 64 KiB clusters and 16-bit
//! refcounts; all-zero clusters left unallocated, so the file is no larger than qemu-img's
//! own qcow2 of the same disk. qemu-img is required (scripts/setup.sh installs it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::path::Path;

use common::*;

/// Converts `src` (in `dir`) to qcow2 with ours and with qemu-img, checks ours as the module
/// says, and returns (our size, qemu-img's size).
fn ours_and_qemus(dir: &Path, src: &str, fmt: &str) -> (u64, u64) {
    let ours = format!("{src}.ours.qcow2");
    let theirs = format!("{src}.qemu.qcow2");
    ovf_disk_ok(dir, &["convert", "-q", "--to", "qcow2", src, &ours]);
    let check = qemu_img(dir, &["check", "-f", "qcow2", &ours]);
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(
        text.contains("No errors were found on the image."),
        "{src}: {text}"
    );
    qemu_same(dir, src, fmt, &ours, "qcow2");
    let info = qemu_img(dir, &["info", "--output=json", &ours]);
    let v: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(v["format"], "qcow2", "{v}");
    assert_eq!(v["cluster-size"], 65536, "{v}");
    assert_eq!(v["format-specific"]["data"]["compat"], "1.1", "{v}");
    assert_eq!(v["format-specific"]["data"]["refcount-bits"], 16, "{v}");
    qemu_img(dir, &["convert", "-f", fmt, "-O", "qcow2", src, &theirs]);
    let size = |f: &str| std::fs::metadata(dir.join(f)).unwrap().len();
    (size(&ours), size(&theirs))
}

#[test]
fn every_layout_converts_to_a_qcow2_qemu_img_finds_identical_and_clean() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    sample_raw(&dir.join("src.raw"), 40 << 20);
    qemu_to_vmdk(dir, "src.raw", "sparse.vmdk", "subformat=monolithicSparse");
    qemu_to_vmdk(dir, "src.raw", "flat.vmdk", "subformat=monolithicFlat");
    ours_stream(dir, "src.raw", "stream.vmdk");
    qemu_delta(dir, "sparse.vmdk", "delta.vmdk");
    qemu_io(
        dir,
        "delta.vmdk",
        &["write -P 0x5a 1M 3M", "write -z 8M 2M", "write -P 7 39M 1M"],
    );
    // A capacity that is not a whole number of clusters.
    sample_raw(&dir.join("odd.raw"), (5 << 20) + 4096 + 512);
    let mut cases = vec![("src.raw", "raw"), ("odd.raw", "raw")];
    cases.extend(["sparse.vmdk", "flat.vmdk", "stream.vmdk", "delta.vmdk"].map(|n| (n, "vmdk")));
    for (src, fmt) in cases {
        let (ours, qemus) = ours_and_qemus(dir, src, fmt);
        assert!(
            ours <= qemus + qemus / 100,
            "{src}: ours {ours} bytes, qemu-img's {qemus}"
        );
    }
    // ESXi's snapshot chain (COWD and seSparse over a vmfs base).
    let vm = tempfile::tempdir().unwrap();
    esxi_vm_folder(vm.path());
    ours_and_qemus(vm.path(), "web-000002.vmdk", "vmdk");
}

#[test]
fn random_sparse_contents_round_trip_through_qemu_img() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let mut seed = 42u64;
    for case in 0..6 {
        // A disk of up to 24 MiB with random runs of data, zeros and unwritten space.
        random_sparse_raw(&dir.join("r.raw"), &mut seed, 200 << 10);
        let src = format!("r{case}.vmdk");
        ours_stream(dir, "r.raw", &src);
        ovf_disk_ok(
            dir,
            &["convert", "-q", "--force", "--to", "qcow2", &src, "r.qcow2"],
        );
        qemu_img(dir, &["check", "-q", "-f", "qcow2", "r.qcow2"]);
        qemu_img(
            dir,
            &["convert", "-f", "qcow2", "-O", "raw", "r.qcow2", "back.raw"],
        );
        assert_eq!(
            sha256(&dir.join("back.raw")),
            sha256(&dir.join("r.raw")),
            "case {case}"
        );
    }
}
