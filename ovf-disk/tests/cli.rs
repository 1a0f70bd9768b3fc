//! The `ovf-disk` command line: output safety (no overwrite without --force, never over an
//! input, nothing left behind by a failure), zero modes, the extent path policy, and messages.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::path::Path;

use common::*;

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn sparse_disk(dir: &Path) {
    sample_raw(&dir.join("src.raw"), 4 << 20);
    qemu_to_vmdk(dir, "src.raw", "a.vmdk", "");
    std::fs::remove_file(dir.join("src.raw")).unwrap();
}

#[test]
fn existing_outputs_need_force_and_inputs_are_never_overwritten() {
    let d = tempfile::tempdir().unwrap();
    sparse_disk(d.path());
    std::fs::write(d.path().join("out.raw"), b"keep me").unwrap();
    let out = ovf_disk(d.path(), &["inflate", "a.vmdk", "out.raw"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("out.raw exists (use --force"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read(d.path().join("out.raw")).unwrap(), b"keep me");
    ovf_disk_ok(d.path(), &["inflate", "-q", "a.vmdk", "out.raw", "--force"]);
    assert_eq!(
        std::fs::metadata(d.path().join("out.raw")).unwrap().len(),
        4 << 20
    );

    let before = sha256(&d.path().join("a.vmdk"));
    let out = ovf_disk(d.path(), &["inflate", "a.vmdk", "a.vmdk", "--force"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is a file of the input disk"),
        "{}",
        stderr(&out)
    );
    assert_eq!(sha256(&d.path().join("a.vmdk")), before);
    // The flat extent of a thick output may not be an input either.
    qemu_img(
        d.path(),
        &[
            "create",
            "-q",
            "-f",
            "vmdk",
            "-o",
            "subformat=monolithicFlat",
            "f.vmdk",
            "1M",
        ],
    );
    std::fs::copy(d.path().join("f.vmdk"), d.path().join("h.vmdk")).unwrap();
    // h.vmdk names f-flat.vmdk, which a thick output f.vmdk would write.
    let out = ovf_disk(d.path(), &["inflate", "h.vmdk", "f.vmdk", "--force"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is a file of the input disk"),
        "{}",
        stderr(&out)
    );
    assert!(listing(d.path()).iter().all(|n| !n.contains("partial")));
}

/// `--force` replaces files, never a device node, FIFO or socket: renaming the output over
/// `/dev/null` once turned it into a regular file. A FIFO stands in for the device (mkfifo
/// needs no privilege).
#[test]
fn force_never_replaces_a_fifo_or_device() {
    use std::os::unix::fs::FileTypeExt;
    let d = tempfile::tempdir().unwrap();
    sparse_disk(d.path());
    let status = std::process::Command::new("mkfifo")
        .arg(d.path().join("pipe"))
        .status()
        .unwrap();
    assert!(status.success());
    for args in [
        &["inflate", "a.vmdk", "pipe", "--force"][..],
        &["convert", "a.vmdk", "pipe", "--to", "raw", "--force"][..],
    ] {
        let out = ovf_disk(d.path(), args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&out).contains("pipe is a device, FIFO or socket, not a file"),
            "{}",
            stderr(&out)
        );
        let meta = std::fs::symlink_metadata(d.path().join("pipe")).unwrap();
        assert!(meta.file_type().is_fifo(), "{args:?}");
    }
    assert!(listing(d.path()).iter().all(|n| !n.contains("partial")));
}

#[test]
fn a_failure_leaves_no_output_behind() {
    let d = tempfile::tempdir().unwrap();
    let mut b = common::builders::StreamBuilder::new(64 * 128);
    for g in 0..64 {
        b.grains.insert(g, noise(g + 1, 65536));
    }
    let (mut bytes, layout) = b.build();
    let at = layout.grain_markers[&40] + 20;
    bytes[at..at + 16].copy_from_slice(b"damaged damaged!");
    std::fs::write(d.path().join("bad.vmdk"), bytes).unwrap();
    for out_name in ["out.raw", "out.vmdk"] {
        let out = ovf_disk(
            d.path(),
            &["inflate", "bad.vmdk", out_name, "--threads", "1"],
        );
        assert_eq!(out.status.code(), Some(1));
        let msg = stderr(&out);
        assert!(
            msg.contains("bad.vmdk: compressed grain at offset 0x"),
            "{msg}"
        );
        assert!(!msg.contains("panicked"), "{msg}");
        assert_eq!(listing(d.path()), vec!["bad.vmdk"], "{out_name}");
    }
}

#[test]
fn zero_modes() {
    let d = tempfile::tempdir().unwrap();
    qemu_img(d.path(), &["create", "-q", "-f", "vmdk", "e.vmdk", "64M"]);
    qemu_io(d.path(), "e.vmdk", &["write -P 0x5 1M 64k"]);
    let mut shas = Vec::new();
    for mode in ["write", "falloc", "sparse"] {
        let out = format!("{mode}.raw");
        ovf_disk_ok(d.path(), &["inflate", "-q", "e.vmdk", &out, "--zero", mode]);
        let p = d.path().join(&out);
        shas.push(sha256(&p));
        match mode {
            "sparse" => assert!(
                allocated(&p) < 1 << 20,
                "sparse output allocated {}",
                allocated(&p)
            ),
            "falloc" => {
                // Every block allocated, the zeros not written: what tells eager-zeroed
                // outputs (preallocated too, then written) from this one.
                assert!(allocated(&p) >= 64 << 20);
                assert!(
                    unwritten_extents(&p),
                    "falloc output has no unwritten extent"
                );
            }
            _ => assert_no_holes(&p),
        }
    }
    assert!(shas.iter().all(|s| *s == shas[0]));
    assert_eq!(shas[0], qemu_raw_sha(d.path(), "e.vmdk"));
    ovf_disk_ok(
        d.path(),
        &["inflate", "-q", "e.vmdk", "t1.raw", "--threads", "1"],
    );
    assert_eq!(sha256(&d.path().join("t1.raw")), shas[0]);
}

#[test]
fn extents_outside_the_folder_are_refused_unless_allowed() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("sub")).unwrap();
    std::fs::write(d.path().join("data.bin"), vec![7u8; 4096]).unwrap();
    let desc = |name: &str| {
        format!("# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\nRW 8 FLAT \"{name}\" 0\n")
    };
    std::fs::write(d.path().join("sub/up.vmdk"), desc("../data.bin")).unwrap();
    let abs = d.path().join("data.bin");
    std::fs::write(d.path().join("sub/abs.vmdk"), desc(abs.to_str().unwrap())).unwrap();
    std::os::unix::fs::symlink(&abs, d.path().join("sub/link.bin")).unwrap();
    std::fs::write(d.path().join("sub/link.vmdk"), desc("link.bin")).unwrap();
    std::fs::write(d.path().join("sub/dev.vmdk"), desc("/dev/zero")).unwrap();
    for (file, why) in [
        ("up.vmdk", "'..'"),
        ("abs.vmdk", "absolute path"),
        ("link.vmdk", "a link resolves outside it"),
        ("dev.vmdk", "absolute path"),
    ] {
        let out = ovf_disk(&d.path().join("sub"), &["info", file]);
        assert_eq!(out.status.code(), Some(1), "{file}");
        let msg = stderr(&out);
        assert!(
            msg.contains("leads outside the folder") && msg.contains(why),
            "{file}: {msg}"
        );
        assert!(listing(&d.path().join("sub"))
            .iter()
            .all(|n| !n.ends_with(".raw")));
    }
    for file in ["up.vmdk", "abs.vmdk", "link.vmdk"] {
        let raw = format!("{file}.raw");
        ovf_disk_ok(
            &d.path().join("sub"),
            &["inflate", "-q", "--allow-outside-paths", file, &raw],
        );
        assert_eq!(
            std::fs::read(d.path().join("sub").join(&raw)).unwrap(),
            vec![7u8; 4096]
        );
    }
}

#[test]
fn info_and_clear_errors() {
    let d = tempfile::tempdir().unwrap();
    sparse_disk(d.path());
    let out = ovf_disk_ok(d.path(), &["info", "a.vmdk"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "create type:  monolithicSparse",
        "capacity:     4.00 MiB (4194304 bytes)",
        "grain 64.00 KiB",
        "allocation:",
        "ddb.adapterType: ide",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    std::fs::write(d.path().join("junk.vmdk"), vec![0x42u8; 10000]).unwrap();
    let out = ovf_disk(d.path(), &["info", "junk.vmdk"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("junk.vmdk: file: not a VMDK"),
        "{}",
        stderr(&out)
    );
    let out = ovf_disk(d.path(), &["inflate", "missing.vmdk", "x.raw"]);
    assert!(
        stderr(&out).contains("missing.vmdk") && stderr(&out).contains("No such file"),
        "{}",
        stderr(&out)
    );
    let out = ovf_disk(d.path(), &["inflate", "a.vmdk", "x.raw", "--threads", "0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("--threads must be at least 1"),
        "{}",
        stderr(&out)
    );
    // Each cause once: the file, the structure, the reason.
    std::fs::write(d.path().join("odd.raw"), vec![1u8; 1000]).unwrap();
    let out = ovf_disk(d.path(), &["export", "odd.raw", "odd.ova"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out).matches("odd.raw").count(),
        1,
        "{}",
        stderr(&out)
    );
    // JSON output of inflate.
    let out = ovf_disk_ok(d.path(), &["inflate", "--json", "a.vmdk", "j.raw"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["capacity"], 4 << 20);
    assert_eq!(
        v["data_bytes"].as_u64().unwrap() + v["zero_bytes"].as_u64().unwrap(),
        4 << 20
    );
}

/// A closed standard output (`ovf-disk info disk.vmdk | head -3`) ends the command quietly,
/// as `ls | head` does: no panic, no message, exit 0. The reading end is closed before the
/// command writes (it still has to start and open the disk), and again through a shell
/// pipeline into `head`.
#[test]
fn a_closed_stdout_ends_quietly() {
    let d = tempfile::tempdir().unwrap();
    sparse_disk(d.path());
    ovf_disk_ok(d.path(), &["export", "-q", "a.vmdk", "p.ova"]);
    for args in [
        &["info", "a.vmdk"][..],
        &["info", "--json", "a.vmdk"],
        &["info", "p.ova"],
        &["verify", "p.ova"],
        &["verify", "--json", "p.ova"],
        &["check", "a.vmdk"],
        &["check", "--json", "p.ova"],
    ] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ovf-disk"))
            .args(args)
            .current_dir(d.path())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        assert!(out.stderr.is_empty(), "{args:?}: {}", stderr(&out));
    }
    let bin = env!("CARGO_BIN_EXE_ovf-disk");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("'{bin}' info a.vmdk | head -3 >/dev/null"))
        .current_dir(d.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(out.stderr.is_empty(), "{}", stderr(&out));
}

/// `info` on real-world envelopes (COT's test suite: CSR 1000V, IOSv, an Ubuntu OVF 2.0 export,
/// a vSphere export, a 0.9 envelope) describes them in words: no JSON in the text view, `not
/// stated` where the envelope says nothing, and the JSON view has the numbers.
#[test]
fn info_describes_real_world_envelopes_in_words() {
    let cot = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/envelopes/cot");
    for (ovf, cpus, memory, want) in [
        (
            // The default configuration's (1CPU-4GB), as an import deploys it; the last
            // configuration's items (4 CPUs, 8 GiB) were shown before (issue 26).
            "csr1000v.ovf",
            Some(1),
            Some(4u64 << 30),
            "controllers: SCSI (virtio lsilogic), IDE, IDE",
        ),
        (
            // The default configuration, 1CPU-384MB-2NIC (3 GiB was the last one's).
            "iosv.ovf",
            Some(1),
            Some(384u64 << 20),
            "disk flash2:  128.00 MiB in no file (a blank disk)",
        ),
        ("ubuntu.2.0.ovf", Some(1), Some(512u64 << 20), "(OVF 2.x)"),
        (
            "vmware.ovf",
            Some(2),
            Some(1536u64 << 20),
            "OS Red Hat Enterprise Linux 6 (64-bit) (id 80)",
        ),
        (
            // OVF 0.9 (`Section xsi:type=...`): summarised like 1.x (the emitters read the same
            // 1 CPU and 8 GiB).
            "v0.9.ovf",
            Some(1),
            Some(8u64 << 30),
            "system v0.9:  CPUs 1, memory 8.00 GiB, OS id 107\n  controllers: SCSI (lsilogic), IDE; networks: bridged\n  disk drive /disk/vmdisk1 on SCSI (lsilogic)",
        ),
    ] {
        let out = ovf_disk_ok(&cot, &["info", ovf]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(want), "{ovf}: missing {want:?} in\n{text}");
        for json in ["null", "[\"", "\"]", "{"] {
            assert!(
                !text.contains(json),
                "{ovf}: {json:?} in the text view:\n{text}"
            );
        }
        let out = ovf_disk_ok(&cot, &["info", "--json", ovf]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["systems"][0]["cpus"].as_u64(), cpus, "{ovf}");
        assert_eq!(v["systems"][0]["memory"].as_u64(), memory, "{ovf}");
    }
}
