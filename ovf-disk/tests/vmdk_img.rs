//! `vmdk-img`: qemu-img's command line. `convert` of VMDK, qcow2 and raw sources is ours (the bytes
//! qemu-img reads, the progress line CDI parses), and so are `measure`, `info`, `map` and
//! `check` of VMDK and raw sources (qemu-img's output byte for byte, with no qemu-img behind
//! ours); everything else runs the real qemu-img with the same arguments and gives its output;
//! first on `PATH` as `qemu-img`, it finds the real one and never itself.
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
    // Other subcommands and formats: qemu-img's own output, byte for byte.
    for args in [
        &["info", "--output=json", "src.qcow2"][..],
        &["map", "--output=json", "src.qcow2"],
        &["check", "--output=json", "src.qcow2"],
        &["snapshot", "-l", "src.qcow2"],
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

/// vmdk-img (with no qemu-img behind it) and qemu-img run with `args` in `dir`: their
/// standard outputs and exit codes.
fn both(dir: &Path, args: &[&str]) -> ((String, Option<i32>), (String, Option<i32>)) {
    let run = |program: &Path, env: Option<&str>| {
        let mut c = Command::new(program);
        c.args(args).current_dir(dir);
        if let Some(v) = env {
            c.env("QEMU_IMG", v);
        }
        let out = c.output().unwrap();
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            out.status.code(),
        )
    };
    (
        run(
            Path::new(env!("CARGO_BIN_EXE_vmdk-img")),
            Some("/nonexistent/qemu-img"),
        ),
        run(&tool("qemu-img"), None),
    )
}

/// `info`, `map` and `check` of VMDK and raw sources are ours, and print what qemu-img prints,
/// byte for byte, with its exit codes: qemu-img's and our own writers' layouts (monolithic and
/// split sparse, stream-optimized, flat with holes, thick), zeroed grains, a chain named through
/// a folder and by an absolute path, VMware's vmdk-convert file, raw; human and JSON, with
/// `--backing-chain`, `--start-offset` and `--max-length`. Where ours says more (damage
/// qemu-img's VMDK check stops at or does not count), the difference is asserted.
#[test]
fn info_map_and_check_print_what_qemu_img_prints() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    sample_raw(&dir.join("src.raw"), 6 << 20);
    for (file, sub) in [
        ("sparse.vmdk", "monolithicSparse"),
        ("stream.vmdk", "streamOptimized"),
        ("flat.vmdk", "monolithicFlat"),
        ("split.vmdk", "twoGbMaxExtentSparse"),
        ("zeroed.vmdk", "monolithicSparse"),
    ] {
        let options = match file {
            "zeroed.vmdk" => format!("subformat={sub},zeroed_grain=on"),
            _ => format!("subformat={sub}"),
        };
        qemu_to_vmdk(dir, "src.raw", file, &options);
    }
    qemu_io(dir, "zeroed.vmdk", &["write -z 0 256k", "write -z 2M 64k"]);
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    std::fs::copy(dir.join("zeroed.vmdk"), dir.join("sub/base.vmdk")).unwrap();
    qemu_delta(&dir.join("sub"), "base.vmdk", "delta.vmdk");
    qemu_io(
        &dir.join("sub"),
        "delta.vmdk",
        &["write -P 7 1M 192k", "write -z 3M 64k"],
    );
    ours_stream(dir, "src.raw", "ours-stream.vmdk");
    ovf_disk_ok(
        dir,
        &[
            "convert",
            "-q",
            "--to",
            "monolithicFlat",
            "src.raw",
            "thick.vmdk",
        ],
    );
    std::fs::copy(
        repo().join("testdata/peers/vmdk-convert-1m.vmdk"),
        dir.join("vmdk-convert.vmdk"),
    )
    .unwrap();
    let absolute = dir.join("sub/delta.vmdk").display().to_string();
    let files = [
        "sparse.vmdk",
        "stream.vmdk",
        "flat.vmdk",
        "split.vmdk",
        "zeroed.vmdk",
        "sub/delta.vmdk",
        &absolute,
        "ours-stream.vmdk",
        "thick.vmdk",
        "vmdk-convert.vmdk",
        "split3g.vmdk",
        "flat3g.vmdk",
        "src.raw",
    ];
    let commands: [&[&str]; 9] = [
        &["info"],
        &["info", "--output=json"],
        &["info", "--backing-chain"],
        &["info", "--output=json", "--backing-chain"],
        &["map"],
        &["map", "--output=json"],
        &[
            "map",
            "--output=json",
            "--start-offset",
            "1M",
            "--max-length",
            "3M",
        ],
        &["check"],
        &["check", "--output=json"],
    ];
    let mut compared = 0;
    for file in files {
        for command in commands {
            // qemu-img cannot check raw files (exit 63): vmdk-img hands that to it.
            if file == "src.raw" && command[0] == "check" {
                continue;
            }
            let mut args = command.to_vec();
            args.push(file);
            let (ours, theirs) = both(dir, &args);
            assert_eq!(ours, theirs, "{args:?}");
            compared += 1;
        }
    }
    assert_eq!(compared, 12 * 9 + 7);
    // A ZERO extent: qemu-img takes it for the previous extent's file and reads that file's
    // bytes (its info lists a second FLAT extent on it, its map data at offset 0); ours reads
    // zeros, and says so.
    std::fs::write(dir.join("z-flat.vmdk"), vec![0x5au8; 1 << 20]).unwrap();
    std::fs::write(
        dir.join("z.vmdk"),
        "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\n\
         createType=\"monolithicFlat\"\n\nRW 2048 FLAT \"z-flat.vmdk\" 0\nRW 2048 ZERO\n\n\
         ddb.adapterType = \"lsilogic\"\n",
    )
    .unwrap();
    let (ours, theirs) = both(dir, &["map", "--output=json", "z.vmdk"]);
    let (ours, theirs): (serde_json::Value, serde_json::Value) = (
        serde_json::from_str(&ours.0).unwrap(),
        serde_json::from_str(&theirs.0).unwrap(),
    );
    assert_eq!(ours[0], theirs[0]);
    assert_eq!(
        (&theirs[1]["data"], &theirs[1]["offset"]),
        (&serde_json::json!(true), &serde_json::json!(0))
    );
    assert_eq!(
        ours[1],
        serde_json::json!({"start": 1048576, "length": 1048576, "depth": 0, "present": true,
            "zero": true, "data": false, "compressed": false})
    );
    let (ours, theirs) = both(dir, &["info", "--output=json", "z.vmdk"]);
    let (ours, theirs): (serde_json::Value, serde_json::Value) = (
        serde_json::from_str(&ours.0).unwrap(),
        serde_json::from_str(&theirs.0).unwrap(),
    );
    let extents = |v: &serde_json::Value| v["format-specific"]["data"]["extents"].clone();
    assert_eq!(extents(&theirs)[1]["format"], "FLAT");
    assert_eq!(extents(&ours)[0], extents(&theirs)[0]);
    assert_eq!(
        extents(&ours)[1],
        serde_json::json!({"virtual-size": 1048576, "filename": "", "format": "ZERO"})
    );
    qemu_img(dir, &["convert", "-O", "raw", "z.vmdk", "zq.raw"]);
    vmdk_img(dir, &["convert", "-O", "raw", "z.vmdk", "zo.raw"], &[]);
    let (q, o) = (
        std::fs::read(dir.join("zq.raw")).unwrap(),
        std::fs::read(dir.join("zo.raw")).unwrap(),
    );
    assert!(
        q[1 << 20..].iter().all(|&b| b == 0x5a),
        "qemu-img reads the flat file's bytes"
    );
    assert!(o[1 << 20..].iter().all(|&b| b == 0), "ours reads zeros");
    // compare: identical, a byte changed, sizes that differ (with zeros or data past the
    // smaller), a chain against its base, formats named, quiet, a file that is not there.
    let mut changed = std::fs::read(dir.join("src.raw")).unwrap();
    changed[70000] ^= 0x5a;
    std::fs::write(dir.join("changed.raw"), &changed).unwrap();
    std::fs::copy(dir.join("src.raw"), dir.join("larger.raw")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("larger.raw"))
        .unwrap()
        .set_len(8 << 20)
        .unwrap();
    std::fs::copy(dir.join("larger.raw"), dir.join("tail.raw")).unwrap();
    let tail = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("tail.raw"))
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&tail, b"x", (7 << 20) + 5).unwrap();
    for args in [
        &["compare", "sparse.vmdk", "src.raw"][..],
        &["compare", "stream.vmdk", "changed.raw"],
        &[
            "compare",
            "-f",
            "vmdk",
            "-F",
            "raw",
            "split.vmdk",
            "changed.raw",
        ],
        &["compare", "-q", "flat.vmdk", "changed.raw"],
        &["compare", "sparse.vmdk", "larger.raw"],
        &["compare", "tail.raw", "stream.vmdk"],
        &["compare", "sub/delta.vmdk", "zeroed.vmdk"],
        &["compare", "sub/delta.vmdk", "sub/delta.vmdk"],
        &["compare", "sparse.vmdk", "missing.vmdk"],
    ] {
        let (ours, theirs) = both(dir, args);
        assert_eq!(ours, theirs, "{args:?}");
    }
    // Damage: a grain past the end of the file, and a leaked grain.
    let good = std::fs::read(dir.join("sparse.vmdk")).unwrap();
    let le = |at: usize| u32::from_le_bytes(good[at..at + 4].try_into().unwrap()) as usize;
    let gd = le(56) * 512;
    let rgd = le(48) * 512;
    let (gt0, rgt0) = (le(gd) * 512, le(rgd) * 512);
    let mut eof = good.clone();
    eof[gt0 + 12..gt0 + 16].copy_from_slice(&0x00ff_ffffu32.to_le_bytes());
    eof[rgt0 + 12..rgt0 + 16].copy_from_slice(&0x00ff_ffffu32.to_le_bytes());
    std::fs::write(dir.join("eof.vmdk"), eof).unwrap();
    let mut leak = good;
    leak[gt0 + 4..gt0 + 8].fill(0);
    leak[rgt0 + 4..rgt0 + 8].fill(0);
    std::fs::write(dir.join("leak.vmdk"), leak).unwrap();
    // qemu-img stops at the first grain past the end ("Check failed", exit 1); ours counts
    // each problem as a corruption (exit 2, qemu-img's code for corruptions).
    let (ours, theirs) = both(dir, &["check", "--output=json", "eof.vmdk"]);
    assert_eq!((theirs.0.as_str(), theirs.1), ("", Some(1)));
    let v: serde_json::Value = serde_json::from_str(&ours.0).unwrap();
    assert_eq!(ours.1, Some(2), "{}", ours.0);
    assert!(v["corruptions"].as_u64().unwrap() >= 1, "{v}");
    assert_eq!(
        (v["check-errors"].as_u64(), v["format"].as_str()),
        (Some(0), Some("vmdk"))
    );
    // A leaked grain: neither counts it (qemu-img's VMDK check counts no leaks; `ovf-disk
    // check` reports it).
    let (ours, theirs) = both(dir, &["check", "leak.vmdk"]);
    assert_eq!(ours, theirs);
    assert_eq!(
        theirs,
        ("No errors were found on the image.\n".to_string(), Some(0))
    );
}
