//! Images of other formats are never taken for raw bytes: VHDX, VHD (dynamic and fixed), VDI,
//! QED and qcow (version 1) files made by qemu-img are refused by name by `info`, `convert`,
//! `inflate` and `export`, writing nothing; `--from raw` still copies a file's bytes as they
//! are. (qcow2 is read: tests/qcow2_read.rs.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;

#[test]
fn other_image_formats_are_refused_by_name_not_read_as_raw() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    sample_raw(&dir.join("src.raw"), 4 << 20);
    for (file, args, name) in [
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
    // qcow version 1 shares qcow2's magic: refused by its version.
    qemu_img(
        dir,
        &["convert", "-f", "raw", "-O", "qcow", "src.raw", "v1.qcow"],
    );
    for cmd in [
        vec!["info", "v1.qcow"],
        vec!["convert", "-q", "--to", "raw", "v1.qcow", "out.raw"],
    ] {
        let out = ovf_disk(dir, &cmd);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{cmd:?}");
        assert!(
            err.contains("v1.qcow") && err.contains("version 1"),
            "{err}"
        );
        assert!(!dir.join("out.raw").exists());
    }
    // A raw image is still a raw image.
    ovf_disk_ok(
        dir,
        &["convert", "-q", "--to", "raw", "src.raw", "copy.raw"],
    );
    assert_eq!(sha256(&dir.join("copy.raw")), sha256(&dir.join("src.raw")));
}
