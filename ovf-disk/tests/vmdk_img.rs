//! `vmdk-img`: qemu-img's command line. `convert` of VMDK, qcow2 and raw sources is ours (the bytes
//! qemu-img reads, the progress line CDI parses); everything else runs the real qemu-img with
//! the same arguments and gives its output; first on `PATH` as `qemu-img`, it finds the real
//! one and never itself.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::*;

fn vmdk_img(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_vmdk-img"))
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir)
        .output()
        .unwrap();
    succeeded(out, &format!("vmdk-img {}", args.join(" ")))
}

/// The percentages of qemu-img's progress lines, as CDI's regular expression
/// `\(([\d.]+)/100%\)` finds them.
fn percentages(stdout: &[u8]) -> Vec<f64> {
    let text = String::from_utf8_lossy(stdout);
    text.split('(')
        .skip(1)
        .filter_map(|p| p.split_once("/100%)"))
        .map(|(n, _)| n.parse().unwrap())
        .collect()
}

#[test]
fn convert_of_vmdk_sources_is_ours_and_reads_as_qemu_img_reads() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    sample_raw(&dir.join("src.raw"), 24 << 20);
    qemu_to_vmdk(dir, "src.raw", "sparse.vmdk", "subformat=monolithicSparse");
    ours_stream(dir, "src.raw", "stream.vmdk");
    qemu_delta(dir, "sparse.vmdk", "delta.vmdk");
    qemu_io(dir, "delta.vmdk", &["write -P 0x5a 1M 3M"]);
    // A qemu-img that does not exist: whatever succeeds below was done by vmdk-img itself.
    let ours_only = [("QEMU_IMG", "/nonexistent/qemu-img")];
    for src in ["sparse.vmdk", "stream.vmdk", "delta.vmdk"] {
        let out = vmdk_img(
            dir,
            &["convert", "-p", "-f", "vmdk", "-O", "raw", src, "out.raw"],
            &ours_only,
        );
        assert_eq!(
            sha256(&dir.join("out.raw")),
            qemu_raw_sha(dir, src),
            "{src}"
        );
        let p = percentages(&out.stdout);
        assert!(
            p.len() >= 2 && p.windows(2).all(|w| w[0] <= w[1]),
            "{src}: {p:?}"
        );
        assert_eq!(p.last(), Some(&100.0), "{src}: {p:?}");
    }
    // VMDK and qcow2 outputs with qemu-img's options.
    vmdk_img(
        dir,
        &[
            "convert",
            "-O",
            "vmdk",
            "-o",
            "subformat=streamOptimized,adapter_type=lsilogic",
            "delta.vmdk",
            "s.vmdk",
        ],
        &ours_only,
    );
    qemu_same(dir, "delta.vmdk", "vmdk", "s.vmdk", "vmdk");
    vmdk_img(
        dir,
        &["convert", "-O", "qcow2", "delta.vmdk", "d.qcow2"],
        &ours_only,
    );
    qemu_img(dir, &["check", "-q", "-f", "qcow2", "d.qcow2"]);
    qemu_same(dir, "delta.vmdk", "vmdk", "d.qcow2", "qcow2");
    // A dynamic VHD (qemu's vpc), as qemu-img is asked for one.
    vmdk_img(
        dir,
        &[
            "convert",
            "-O",
            "vpc",
            "-o",
            "subformat=dynamic",
            "delta.vmdk",
            "d.vhd",
        ],
        &ours_only,
    );
    qemu_same(dir, "delta.vmdk", "vmdk", "d.vhd", "vpc");
    for sub in ["subformat=dynamic", "subformat=fixed"] {
        vmdk_img(
            dir,
            &["convert", "-O", "vhdx", "-o", sub, "delta.vmdk", "d.vhdx"],
            &ours_only,
        );
        qemu_img(dir, &["check", "-q", "-f", "vhdx", "d.vhdx"]);
        qemu_same(dir, "delta.vmdk", "vmdk", "d.vhdx", "vhdx");
    }
    // -S 0: every zero written, no hole.
    vmdk_img(
        dir,
        &["convert", "-S", "0", "-O", "raw", "sparse.vmdk", "full.raw"],
        &ours_only,
    );
    assert_no_holes(&dir.join("full.raw"));
}

#[test]
fn everything_else_runs_the_real_qemu_img_with_the_same_arguments() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    sample_raw(&dir.join("src.raw"), 8 << 20);
    qemu_to_vmdk(dir, "src.raw", "sparse.vmdk", "subformat=monolithicSparse");
    qemu_img(
        dir,
        &[
            "convert",
            "-f",
            "raw",
            "-O",
            "qcow2",
            "src.raw",
            "src.qcow2",
        ],
    );
    // Other subcommands: qemu-img's own output, byte for byte.
    for args in [
        &["info", "--output=json", "sparse.vmdk"][..],
        &["map", "--output=json", "sparse.vmdk"],
        &["check", "--output=json", "src.qcow2"],
    ] {
        let ours = vmdk_img(dir, args, &[]);
        let theirs = qemu_img(dir, args);
        assert_eq!(ours.stdout, theirs.stdout, "{args:?}");
    }
    // qcow2 sources are ours, even with no qemu-img at all.
    vmdk_img(
        dir,
        &["convert", "-f", "qcow2", "-O", "raw", "src.qcow2", "q.raw"],
        &[("QEMU_IMG", "/nonexistent/qemu-img")],
    );
    assert_eq!(sha256(&dir.join("q.raw")), sha256(&dir.join("src.raw")));
    // Another source format, and an option vmdk-img leaves to qemu-img (lazy refcounts)...
    qemu_img(dir, &["convert", "-O", "vhdx", "src.raw", "src.vhdx"]);
    vmdk_img(
        dir,
        &["convert", "-f", "vhdx", "-O", "raw", "src.vhdx", "x.raw"],
        &[],
    );
    assert_eq!(sha256(&dir.join("x.raw")), sha256(&dir.join("src.raw")));
    vmdk_img(
        dir,
        &[
            "convert",
            "-O",
            "qcow2",
            "-o",
            "lazy_refcounts=on",
            "sparse.vmdk",
            "l.qcow2",
        ],
        &[],
    );
    qemu_same(dir, "sparse.vmdk", "vmdk", "l.qcow2", "qcow2");
    // ... while -c and qcow2's cluster size, compression type and preallocation are ours.
    for options in [
        "cluster_size=4k",
        "compression_type=zstd",
        "preallocation=metadata,cluster_size=1M",
    ] {
        let mut args = vec![
            "convert",
            "-O",
            "qcow2",
            "-o",
            options,
            "sparse.vmdk",
            "c.qcow2",
        ];
        if options.contains("zstd") {
            args.insert(1, "-c");
        }
        vmdk_img(dir, &args, &[("QEMU_IMG", "/nonexistent/qemu-img")]);
        qemu_img(dir, &["check", "-q", "c.qcow2"]);
        qemu_same(dir, "sparse.vmdk", "vmdk", "c.qcow2", "qcow2");
    }
    // First on PATH as `qemu-img`: the real one is found behind it, not itself.
    let bin = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_vmdk-img"), bin.path().join("qemu-img"))
        .unwrap();
    let path = format!(
        "{}:{}",
        bin.path().display(),
        std::env::var("PATH").unwrap()
    );
    let out = Command::new(bin.path().join("qemu-img"))
        .args(["info", "sparse.vmdk"])
        .env("PATH", &path)
        .env_remove("QEMU_IMG")
        .current_dir(dir)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&succeeded(out, "qemu-img (vmdk-img) info").stdout).into_owned();
    assert!(text.contains("file format: vmdk"), "{text}");
}

/// `measure` is ours for VMDK, qcow2 and raw sources and raw and qcow2 outputs (no qemu-img
/// behind it), and prints what qemu-img prints, byte for byte: human and JSON, cluster sizes,
/// preallocation, `--size` alone, chains, compressed and zero clusters, flat extents with holes.
#[test]
fn measure_prints_what_qemu_img_prints() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    sample_raw(&dir.join("src.raw"), 24 << 20);
    qemu_to_vmdk(dir, "src.raw", "sparse.vmdk", "subformat=monolithicSparse");
    qemu_to_vmdk(dir, "src.raw", "flat.vmdk", "subformat=monolithicFlat");
    ours_stream(dir, "src.raw", "stream.vmdk");
    qemu_delta(dir, "sparse.vmdk", "delta.vmdk");
    qemu_io(
        dir,
        "delta.vmdk",
        &["write -P 0x5a 1M 3M", "write -z 8M 2M"],
    );
    qemu_img(
        dir,
        &[
            "convert", "-c", "-f", "raw", "-O", "qcow2", "src.raw", "c.qcow2",
        ],
    );
    qemu_img(
        dir,
        &[
            "convert",
            "-f",
            "raw",
            "-O",
            "qcow2",
            "-o",
            "compat=0.10",
            "src.raw",
            "v2.qcow2",
        ],
    );
    let ours_only = [("QEMU_IMG", "/nonexistent/qemu-img")];
    for src in [
        "src.raw",
        "sparse.vmdk",
        "flat.vmdk",
        "stream.vmdk",
        "delta.vmdk",
        "c.qcow2",
        "v2.qcow2",
    ] {
        for opts in [
            &["-O", "qcow2"][..],
            &["--output=json", "-O", "qcow2"],
            &["--output=json", "-O", "raw"],
            &["--output=json", "-O", "qcow2", "-o", "cluster_size=4k"],
            &["-O", "qcow2", "-o", "cluster_size=2M,preallocation=full"],
        ] {
            let args = [&["measure"][..], opts, &[src]].concat();
            let ours = vmdk_img(dir, &args, &ours_only);
            let theirs = qemu_img(dir, &args);
            assert_eq!(
                String::from_utf8_lossy(&ours.stdout),
                String::from_utf8_lossy(&theirs.stdout),
                "{args:?}"
            );
        }
    }
    for args in [
        &["measure", "--output=json", "--size", "1G", "-O", "qcow2"][..],
        &[
            "measure",
            "--size",
            "100G",
            "-O",
            "qcow2",
            "-o",
            "cluster_size=512",
        ],
    ] {
        let ours = vmdk_img(dir, args, &ours_only);
        assert_eq!(ours.stdout, qemu_img(dir, args).stdout, "{args:?}");
    }
    // ESXi's chain (vmfs, COWD, seSparse).
    let vm = tempfile::tempdir().unwrap();
    esxi_vm_folder(vm.path());
    let args = ["measure", "--output=json", "-O", "qcow2", "web-000002.vmdk"];
    let ours = vmdk_img(vm.path(), &args, &ours_only);
    assert_eq!(ours.stdout, qemu_img(vm.path(), &args).stdout);
}
