//! `convert --to vhd` and `--to vhd-fixed`: every layout written as a dynamic VHD and read back by qemu-img
//! (`qemu-img compare` identical to the source, `qemu-img info` showing vpc, 2 MiB blocks and
//! the exact capacity, not one rounded to a CHS geometry) and by dissect.hypervisor's VHD
//! reader (the same sha256); all-zero blocks left unallocated. qemu-img has no `check` for
//! vpc images. qemu-img and dissect are required (scripts/setup.sh installs them).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::path::Path;

use common::*;

/// Converts `src` (in `dir`, format `fmt`) to a VHD and checks it as the module says; returns
/// the VHD's length.
fn converts(dir: &Path, src: &str, fmt: &str) -> u64 {
    let ours = format!("{src}.vhd");
    ovf_disk_ok(dir, &["convert", "-q", "--to", "vhd", src, &ours]);
    qemu_same(dir, src, fmt, &ours, "vpc");
    let info = qemu_img(dir, &["info", "-f", "vpc", "--output=json", &ours]);
    let v: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(v["format"], "vpc", "{v}");
    assert_eq!(v["cluster-size"], 2 << 20, "{v}");
    let capacity = qemu_virtual_size(dir, src, fmt);
    assert_eq!(v["virtual-size"], capacity, "{src}: {v}");
    let (size, sha) = dissect_read(dir, &ours, "vhd.VHD");
    assert_eq!(size, capacity, "{src}");
    let want = match fmt {
        "raw" => sha256(&dir.join(src)),
        _ => qemu_raw_sha(dir, src),
    };
    assert_eq!(sha, want, "{src}: dissect read other bytes");
    std::fs::metadata(dir.join(&ours)).unwrap().len()
}

#[test]
fn every_layout_converts_to_a_vhd_qemu_img_and_dissect_read_alike() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    sample_raw(&dir.join("src.raw"), 40 << 20);
    qemu_to_vmdk(dir, "src.raw", "sparse.vmdk", "subformat=monolithicSparse");
    ours_stream(dir, "src.raw", "stream.vmdk");
    qemu_delta(dir, "sparse.vmdk", "delta.vmdk");
    qemu_io(
        dir,
        "delta.vmdk",
        &["write -P 0x5a 1M 3M", "write -z 8M 2M"],
    );
    // Not a whole number of blocks, nor of any CHS geometry.
    sample_raw(&dir.join("odd.raw"), (5 << 20) + 4096 + 512);
    for (src, fmt) in [
        ("src.raw", "raw"),
        ("odd.raw", "raw"),
        ("sparse.vmdk", "vmdk"),
        ("stream.vmdk", "vmdk"),
        ("delta.vmdk", "vmdk"),
    ] {
        converts(dir, src, fmt);
    }
    // A disk of zeros: no block allocated (footer copy, header, BAT, footer).
    std::fs::File::create(dir.join("zeros.raw"))
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let len = converts(dir, "zeros.raw", "raw");
    assert!(len <= 8192, "an empty 64 MiB disk took {len} bytes");
}

#[test]
fn random_sparse_contents_round_trip_through_qemu_img() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let mut seed = 7u64;
    for case in 0..6 {
        random_sparse_raw(&dir.join("r.raw"), &mut seed, 3 << 20);
        let src = format!("r{case}.vmdk");
        ours_stream(dir, "r.raw", &src);
        ovf_disk_ok(
            dir,
            &["convert", "-q", "--force", "--to", "vhd", &src, "r.vhd"],
        );
        qemu_img(
            dir,
            &["convert", "-f", "vpc", "-O", "raw", "r.vhd", "back.raw"],
        );
        assert_eq!(
            sha256(&dir.join("back.raw")),
            sha256(&dir.join("r.raw")),
            "case {case}"
        );
    }
}

#[test]
fn a_disk_past_2040_gib_is_refused_before_writing() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    qemu_img(dir, &["create", "-q", "-f", "vmdk", "big.vmdk", "2041G"]);
    let out = ovf_disk(dir, &["convert", "--to", "vhd", "big.vmdk", "big.vhd"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("a VHD holds at most"), "{err}");
    assert!(!dir.join("big.vhd").exists());
    assert!(
        std::fs::read_dir(dir).unwrap().count() == 1,
        "something was left"
    );
}

/// `--to vhd-fixed`: the disk's bytes and a footer, grown to a whole MiB (Azure's rule), read
/// back by qemu-img (`-f vpc`: a fixed VHD has no magic at its start) and dissect; the bytes
/// past the source's end are zeros.
#[test]
fn fixed_vhds_are_the_bytes_a_footer_and_whole_mib() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    sample_raw(&dir.join("src.raw"), 12 << 20);
    ours_stream(dir, "src.raw", "stream.vmdk");
    sample_raw(&dir.join("odd.raw"), (5 << 20) + 4096 + 512);
    for (src, fmt, capacity) in [
        ("stream.vmdk", "vmdk", 12u64 << 20),
        ("odd.raw", "raw", 6 << 20),
    ] {
        let out = format!("{src}.fixed.vhd");
        ovf_disk_ok(dir, &["convert", "-q", "--to", "vhd-fixed", src, &out]);
        assert_eq!(
            std::fs::metadata(dir.join(&out)).unwrap().len(),
            capacity + 512
        );
        assert_eq!(qemu_virtual_size(dir, &out, "vpc"), capacity, "{src}");
        let (size, sha) = dissect_read(dir, &out, "vhd.VHD");
        assert_eq!(size, capacity);
        // What qemu-img reads of the source, zero-extended to the whole MiB.
        qemu_img(dir, &["convert", "-f", fmt, "-O", "raw", src, "want.raw"]);
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.join("want.raw"))
            .unwrap();
        f.set_len(capacity).unwrap();
        drop(f);
        assert_eq!(sha, sha256(&dir.join("want.raw")), "{src}");
        qemu_img(
            dir,
            &["compare", "-q", "-f", "raw", "-F", "vpc", "want.raw", &out],
        );
    }
}
