//! Images of other formats are never taken for raw bytes: qcow2 (v2 and v3), VHDX, VHD (dynamic
//! and fixed), VDI and QED files made by qemu-img are refused by name by `info`, `convert`,
//! `inflate` and `export`, writing nothing; `--from raw` still copies a file's bytes as they
//! are.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;

#[test]
fn other_image_formats_are_refused_by_name_not_read_as_raw() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    sample_raw(&dir.join("src.raw"), 4 << 20);
    for (file, args, name) in [
        ("v3.qcow2", vec!["-O", "qcow2"], "qcow2 (or qcow)"),
        (
            "v2.qcow2",
            vec!["-O", "qcow2", "-o", "compat=0.10"],
            "qcow2 (or qcow)",
        ),
        ("x.vhdx", vec!["-O", "vhdx"], "VHDX"),
        ("dynamic.vhd", vec!["-O", "vpc"], "VHD"),
        (
            "fixed.vhd",
            vec!["-O", "vpc", "-o", "subformat=fixed"],
            "VHD",
        ),
        ("x.vdi", vec!["-O", "vdi"], "VDI"),
        ("x.qed", vec!["-O", "qed"], "QED"),
    ] {
        let mut a = vec!["convert", "-f", "raw"];
        a.extend(args);
        a.extend(["src.raw", file]);
        qemu_img(dir, &a);
        let message = format!("{file}: file: a {name} image, not a VMDK: not read as raw bytes");
        for cmd in [
            vec!["info", file],
            vec!["convert", "-q", "--to", "raw", file, "out.raw"],
            vec!["inflate", "-q", file, "out.vmdk"],
            vec!["export", "-q", file, "out.ova"],
        ] {
            let out = ovf_disk(dir, &cmd);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{cmd:?}: {err}");
            assert!(err.contains(&message), "{cmd:?}: {err}");
            for written in ["out.raw", "out.vmdk", "out-flat.vmdk", "out.ova"] {
                assert!(!dir.join(written).exists(), "{cmd:?} wrote {written}");
            }
        }
        // Asked for, the bytes are copied as they are (a raw image of the container).
        let len = std::fs::metadata(dir.join(file)).unwrap().len();
        if len % 512 == 0 {
            ovf_disk_ok(
                dir,
                &[
                    "convert", "-q", "--from", "raw", "--to", "raw", file, "copy.raw",
                ],
            );
            assert_eq!(
                sha256(&dir.join("copy.raw")),
                sha256(&dir.join(file)),
                "{file}"
            );
            std::fs::remove_file(dir.join("copy.raw")).unwrap();
        }
    }
    // A raw image is still a raw image.
    ovf_disk_ok(
        dir,
        &["convert", "-q", "--to", "raw", "src.raw", "copy.raw"],
    );
    assert_eq!(sha256(&dir.join("copy.raw")), sha256(&dir.join("src.raw")));
}
