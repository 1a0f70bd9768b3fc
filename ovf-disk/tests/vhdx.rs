//! `convert --to vhdx` and `--to vhdx-fixed`: every layout written as a VHDX and read back by
//! qemu-img (`qemu-img check -f vhdx` clean, `compare` identical to the source, `info` showing
//! vhdx, the block size qemu-img would choose and the exact capacity) and by
//! dissect.hypervisor's VHDX reader (the same sha256); blocks of zeros left out of a dynamic
//! VHDX; random sparse contents round trip. qemu-img and dissect are required
//! (scripts/setup.sh installs them).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::path::Path;

use common::*;

/// Converts `src` (in `dir`, format `fmt`) to `to` (vhdx or vhdx-fixed) and checks it as the
/// module says; returns the output's length.
fn converts(dir: &Path, src: &str, fmt: &str, to: &str) -> u64 {
    let ours = format!("{src}.{to}");
    ovf_disk_ok(dir, &["convert", "-q", "--force", "--to", to, src, &ours]);
    let check = qemu_img(dir, &["check", "-f", "vhdx", &ours]);
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(text.contains("No errors were found"), "{src}: {text}");
    qemu_same(dir, src, fmt, &ours, "vhdx");
    let info = qemu_img(dir, &["info", "-f", "vhdx", "--output=json", &ours]);
    let v: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    let capacity = qemu_virtual_size(dir, src, fmt);
    assert_eq!(v["virtual-size"], capacity, "{src}: {v}");
    assert_eq!(v["cluster-size"], 8 << 20, "{src}: {v}");
    let (size, sha) = dissect_read(dir, &ours, "vhdx.VHDX");
    assert_eq!(size, capacity, "{src}");
    let want = match fmt {
        "raw" => sha256(&dir.join(src)),
        _ => qemu_raw_sha(dir, src),
    };
    assert_eq!(sha, want, "{src}: dissect read other bytes");
    std::fs::metadata(dir.join(&ours)).unwrap().len()
}

#[test]
fn every_layout_converts_to_a_vhdx_qemu_img_and_dissect_read_alike() {
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
    // Not a whole number of blocks; and a disk with a block of zeros in the middle.
    sample_raw(&dir.join("odd.raw"), (5 << 20) + 4096 + 512);
    let gap = dir.join("gap.raw");
    sample_raw(&gap, 32 << 20);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&gap)
        .and_then(|f| std::os::unix::fs::FileExt::write_all_at(&f, &vec![0; 8 << 20], 8 << 20))
        .unwrap();
    for to in ["vhdx", "vhdx-fixed"] {
        for (src, fmt) in [
            ("src.raw", "raw"),
            ("odd.raw", "raw"),
            ("gap.raw", "raw"),
            ("sparse.vmdk", "vmdk"),
            ("stream.vmdk", "vmdk"),
            ("delta.vmdk", "vmdk"),
        ] {
            converts(dir, src, fmt, to);
        }
    }
    // The dynamic VHDX leaves the block of zeros out; the fixed one holds every block.
    let dynamic = std::fs::metadata(dir.join("gap.raw.vhdx")).unwrap().len();
    let fixed = std::fs::metadata(dir.join("gap.raw.vhdx-fixed"))
        .unwrap()
        .len();
    assert_eq!(fixed - dynamic, 8 << 20);
    // Every block written (the zeros too: --zero write, the default); only the empty log and
    // the unused parts of the header area are holes.
    let used = allocated(&dir.join("gap.raw.vhdx-fixed"));
    assert!(
        used + (3 << 20) >= fixed,
        "{used} of {fixed} bytes allocated"
    );
    // A disk of zeros: headers, log, BAT and metadata only.
    std::fs::File::create(dir.join("zeros.raw"))
        .unwrap()
        .set_len(64 << 20)
        .unwrap();
    let len = converts(dir, "zeros.raw", "raw", "vhdx");
    assert!(len <= 4 << 20, "an empty 64 MiB disk took {len} bytes");
}

#[test]
fn random_sparse_contents_round_trip_through_qemu_img() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let mut seed = 29u64;
    for case in 0..4 {
        random_sparse_raw(&dir.join("r.raw"), &mut seed, 12 << 20);
        let to = if case % 2 == 0 { "vhdx" } else { "vhdx-fixed" };
        ovf_disk_ok(
            dir,
            &["convert", "-q", "--force", "--to", to, "r.raw", "r.vhdx"],
        );
        qemu_img(dir, &["check", "-q", "-f", "vhdx", "r.vhdx"]);
        qemu_img(
            dir,
            &["convert", "-f", "vhdx", "-O", "raw", "r.vhdx", "back.raw"],
        );
        assert_eq!(
            sha256(&dir.join("back.raw")),
            sha256(&dir.join("r.raw")),
            "case {case}"
        );
    }
}
