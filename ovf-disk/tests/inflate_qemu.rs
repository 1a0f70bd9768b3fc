//! `ovf-disk inflate` against qemu-img on images qemu-img writes: every subformat, with
//! variants, each inflated to raw (sha256 equal to qemu-img's raw reading, no holes) and to thick
//! VMDKs (qemu-img compare finds them identical to the input). Plus VMware-layout
//! stream-optimized files (GD_AT_END, footer, end-of-stream marker) built byte by byte, which
//! qemu-img cannot write.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;
use serde_json::Value;

const SUBFORMATS: [&str; 5] = [
    "monolithicSparse",
    "monolithicFlat",
    "twoGbMaxExtentSparse",
    "twoGbMaxExtentFlat",
    "streamOptimized",
];

fn dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn info(dir: &std::path::Path, file: &str) -> Value {
    let out = ovf_disk_ok(dir, &["info", "--json", file]);
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn every_subformat_with_data_and_a_partial_last_grain() {
    let d = dir();
    // 20 MiB + 3 sectors: not a multiple of the 64 KiB grain.
    let size = (20u64 << 20) + 3 * 512;
    sample_raw(&d.path().join("src.raw"), size);
    let src_sha = sha256(&d.path().join("src.raw"));
    for sub in SUBFORMATS {
        let name = format!("{sub}.vmdk");
        qemu_to_vmdk(d.path(), "src.raw", &name, &format!("subformat={sub}"));
        let sha = assert_inflates_like_qemu(d.path(), &name);
        assert_eq!(
            sha, src_sha,
            "{sub}: qemu-img's reading differs from the source"
        );
        let i = info(d.path(), &name);
        assert_eq!(i["create_type"], sub);
        assert_eq!(i["capacity"], size);
        let a = &i["allocation"];
        assert_eq!(
            a["data"].as_u64().unwrap()
                + a["zero"].as_u64().unwrap()
                + a["unallocated"].as_u64().unwrap(),
            size
        );
    }
}

#[test]
fn every_subformat_empty() {
    let d = dir();
    for sub in SUBFORMATS {
        let name = format!("empty-{sub}.vmdk");
        qemu_img(
            d.path(),
            &[
                "create",
                "-q",
                "-f",
                "vmdk",
                "-o",
                &format!("subformat={sub}"),
                &name,
                "5M",
            ],
        );
        assert_inflates_like_qemu(d.path(), &name);
        let i = info(d.path(), &name);
        if sub.contains("Sparse") || sub == "streamOptimized" {
            assert_eq!(i["allocation"]["data"], 0, "{sub}");
        }
    }
}

#[test]
fn compat6_hwversion_and_adapter_types() {
    let d = dir();
    sample_raw(&d.path().join("src.raw"), 8 << 20);
    for (i, opts) in [
        "compat6=on",
        "adapter_type=ide",
        "adapter_type=buslogic",
        "adapter_type=lsilogic",
        "adapter_type=legacyESX",
        "hwversion=14,adapter_type=lsilogic",
    ]
    .iter()
    .enumerate()
    {
        let name = format!("v{i}.vmdk");
        qemu_to_vmdk(d.path(), "src.raw", &name, opts);
        assert_inflates_like_qemu(d.path(), &name);
        // The thick copy keeps adapter type, geometry and hardware version.
        ovf_disk_ok(d.path(), &["inflate", "-q", &name, "thick.vmdk", "--force"]);
        // Both read from the files' bytes, not through our own parser.
        let src = raw_ddb(d.path(), &name);
        let thick = raw_ddb(d.path(), "thick.vmdk");
        for key in [
            "ddb.adapterType",
            "ddb.geometry.cylinders",
            "ddb.geometry.heads",
            "ddb.geometry.sectors",
            "ddb.virtualHWVersion",
        ] {
            assert!(src.contains_key(key), "{opts}: source lacks {key}: {src:?}");
            assert_eq!(thick.get(key), src.get(key), "{opts}: {key}");
        }
    }
}

#[test]
fn zeroed_grain_ranges_written_through_qemu_io() {
    let d = dir();
    sample_raw(&d.path().join("src.raw"), 16 << 20);
    qemu_to_vmdk(d.path(), "src.raw", "z.vmdk", "zeroed_grain=on");
    qemu_io(
        d.path(),
        "z.vmdk",
        &["write -z 0 2M", "write -z 5M 1M", "write -P 0x33 8M 64k"],
    );
    let i = info(d.path(), "z.vmdk");
    assert!(
        i["allocation"]["zero"].as_u64().unwrap() >= 3 << 20,
        "no zeroed grains: {i}"
    );
    assert_inflates_like_qemu(d.path(), "z.vmdk");
}

#[test]
fn delta_disks_on_parents() {
    let d = dir();
    sample_raw(&d.path().join("src.raw"), 12 << 20);
    qemu_to_vmdk(d.path(), "src.raw", "base.vmdk", "");
    qemu_img(
        d.path(),
        &[
            "create",
            "-q",
            "-f",
            "vmdk",
            "-o",
            "zeroed_grain=on",
            "-b",
            "base.vmdk",
            "-F",
            "vmdk",
            "child.vmdk",
        ],
    );
    qemu_io(
        d.path(),
        "child.vmdk",
        &[
            "write -P 0x77 64k 200k",
            "write -z 1M 1M",
            "write -P 0x78 11M 1000k",
        ],
    );
    qemu_delta(d.path(), "child.vmdk", "grandchild.vmdk");
    qemu_io(d.path(), "grandchild.vmdk", &["write -P 0x79 3M 64k"]);
    assert_inflates_like_qemu(d.path(), "child.vmdk");
    assert_inflates_like_qemu(d.path(), "grandchild.vmdk");
    let i = info(d.path(), "grandchild.vmdk");
    assert_eq!(i["chain"].as_array().unwrap().len(), 2);
    assert_eq!(i["chain"][1]["file"], "./base.vmdk");
}

#[test]
fn disk_over_2_gib_in_several_extents() {
    let d = dir();
    let size: u64 = 5 << 30;
    let name = "big.vmdk";
    qemu_img(
        d.path(),
        &[
            "create",
            "-q",
            "-f",
            "vmdk",
            "-o",
            "subformat=twoGbMaxExtentSparse",
            name,
            "5G",
        ],
    );
    qemu_io(
        d.path(),
        name,
        &[
            "write -P 0x11 0 1M",
            "write -P 0x22 2047M 2M",
            "write -P 0x33 4095M 2M",
            "write -P 0x44 5119M 1M",
        ],
    );
    let i = info(d.path(), name);
    assert!(i["extents"].as_array().unwrap().len() >= 3, "{i}");
    assert_eq!(i["capacity"], size);
    let expected = qemu_raw_sha(d.path(), name);
    ovf_disk_ok(d.path(), &["inflate", "-q", name, "big.raw"]);
    assert_eq!(sha256(&d.path().join("big.raw")), expected);
    assert_no_holes(&d.path().join("big.raw"));
}

#[test]
fn vmware_layout_stream_optimized_gd_at_end() {
    let d = dir();
    for (i, zlib) in [true, false].into_iter().enumerate() {
        // 1100 grains and 3 sectors: three grain tables, a partial last grain.
        let mut b = common::builders::StreamBuilder::new(1100 * 128 + 3);
        b.zlib = zlib;
        b.grains.insert(0, noise(1, 65536));
        b.grains
            .insert(2, b"text-like grain data ".repeat(4000)[..65536].to_vec());
        b.grains.insert(600, noise(2, 65536));
        b.grains.insert(1100, noise(3, 1536));
        let (bytes, _) = b.build();
        let name = format!("vmware-{i}.vmdk");
        std::fs::write(d.path().join(&name), bytes).unwrap();
        let expected = sha256_bytes(&b.expected());
        if zlib {
            // qemu-img reads zlib-wrapped grains only, as VMware writes them.
            assert_eq!(assert_inflates_like_qemu(d.path(), &name), expected);
        }
        let raw = format!("{name}.raw");
        ovf_disk_ok(d.path(), &["inflate", "-q", &name, &raw]);
        assert_eq!(sha256(&d.path().join(&raw)), expected);
        let info = info(d.path(), &name);
        assert_eq!(info["extents"][0]["sparse"]["metadata_from"], "footer");
    }
}

/// `ovf-disk inflate - OUT`: a stream-optimized disk read from standard input in one pass
/// (qemu-img's layout, VMware's GD_AT_END layout, our writer's), also straight out of a tar
/// archive through a pipe, into raw (sha256 equal to qemu-img's reading, no holes) and thick
/// VMDKs (qemu-img compare identical, database kept).
#[test]
fn streaming_inflate_from_standard_input() {
    use std::process::{Command, Stdio};
    let d = dir();
    sample_raw(&d.path().join("src.raw"), (12 << 20) + 1536);
    qemu_img(
        d.path(),
        &[
            "convert",
            "-f",
            "raw",
            "-O",
            "vmdk",
            "-o",
            "subformat=streamOptimized,adapter_type=lsilogic",
            "src.raw",
            "qemu.vmdk",
        ],
    );
    ovf_disk_ok(
        d.path(),
        &[
            "convert",
            "-q",
            "src.raw",
            "ours.vmdk",
            "--to",
            "streamOptimized",
            "--adapter-type",
            "ide",
        ],
    );
    let mut b = common::builders::StreamBuilder::new(700 * 128 + 3);
    b.grains.insert(3, noise(9, 65536));
    b.grains.insert(699, noise(8, 65536));
    b.grains.insert(700, noise(7, 1536));
    std::fs::write(d.path().join("vmware.vmdk"), b.build().0).unwrap();
    for name in ["qemu.vmdk", "ours.vmdk", "vmware.vmdk"] {
        let expected = qemu_raw_sha(d.path(), name);
        let run = |out: &str| {
            let input = std::fs::File::open(d.path().join(name)).unwrap();
            let o = Command::new(env!("CARGO_BIN_EXE_ovf-disk"))
                .args(["inflate", "-q", "-", out])
                .current_dir(d.path())
                .stdin(Stdio::from(input))
                .output()
                .unwrap();
            assert!(
                o.status.success(),
                "{name} -> {out}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        };
        let raw = format!("{name}.stdin.raw");
        run(&raw);
        assert_eq!(
            sha256(&d.path().join(&raw)),
            expected,
            "{name} from standard input"
        );
        assert_no_holes(&d.path().join(&raw));
        let thick = format!("{name}.stdin.vmdk");
        run(&thick);
        qemu_same(d.path(), name, "vmdk", &thick, "vmdk");
        let src = raw_ddb(d.path(), name);
        let out = raw_ddb(d.path(), &thick);
        assert!(src.contains_key("ddb.adapterType"), "{name}: {src:?}");
        assert_eq!(
            out.get("ddb.adapterType"),
            src.get("ddb.adapterType"),
            "{name}"
        );
    }
    // Straight out of a tar archive, through a pipe.
    qemu_img(d.path(), &["info", "ours.vmdk"]);
    let tar = Command::new("tar")
        .args(["cf", "pkg.ova", "ours.vmdk", "src.raw"])
        .current_dir(d.path())
        .status()
        .unwrap();
    assert!(tar.success());
    let bin = env!("CARGO_BIN_EXE_ovf-disk");
    let sh = Command::new("sh")
        .args([
            "-c",
            &format!("set -e; tar xOf pkg.ova ours.vmdk | {bin} inflate -q - piped.raw"),
        ])
        .current_dir(d.path())
        .output()
        .unwrap();
    assert!(
        sh.status.success(),
        "{}",
        String::from_utf8_lossy(&sh.stderr)
    );
    assert_eq!(
        sha256(&d.path().join("piped.raw")),
        sha256(&d.path().join("src.raw"))
    );
    // A stream cut short fails and leaves nothing.
    let sh = Command::new("sh")
        .args([
            "-c",
            &format!("head -c 300000 ours.vmdk | {bin} inflate -q - cut.raw"),
        ])
        .current_dir(d.path())
        .output()
        .unwrap();
    assert!(!sh.status.success());
    assert!(
        String::from_utf8_lossy(&sh.stderr).contains("<stdin>"),
        "{}",
        String::from_utf8_lossy(&sh.stderr)
    );
    assert!(!d.path().join("cut.raw").exists());
    assert!(std::fs::read_dir(d.path()).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains("partial")));
}
