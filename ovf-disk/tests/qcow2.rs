//! `convert --to qcow2`: every layout of the corpus written as qcow2 version 3 (and each option:
//! cluster sizes, deflate and zstd compression, preallocation) and read back by
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
    for case in 0..6usize {
        // A disk of up to 24 MiB with random runs of data, zeros and unwritten space.
        random_sparse_raw(&dir.join("r.raw"), &mut seed, 200 << 10);
        let src = format!("r{case}.vmdk");
        ours_stream(dir, "r.raw", &src);
        // Plain, compressed (deflate, zstd) and preallocated, with clusters of 4 KiB to 2 MiB.
        let variants: [&[&str]; 6] = [
            &[],
            &["--compress"],
            &["--compression-type", "zstd", "--cluster-size", "4k"],
            &["--compress", "--cluster-size", "2M"],
            &["--preallocation", "metadata", "--cluster-size", "16k"],
            &["--preallocation", "full"],
        ];
        let mut args = vec!["convert", "-q", "--force", "--to", "qcow2", &src, "r.qcow2"];
        args.extend(variants[case % variants.len()]);
        ovf_disk_ok(dir, &args);
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

#[test]
fn qcow2_options_are_what_qemu_img_reads_back() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    sample_raw(&dir.join("src.raw"), (24 << 20) + 4096);
    qemu_img(
        dir,
        &[
            "convert", "-c", "-f", "raw", "-O", "qcow2", "src.raw", "q.qcow2",
        ],
    );
    let qemu_compressed = std::fs::metadata(dir.join("q.qcow2")).unwrap().len();
    let cases: [(&[&str], u64, &str, &str); 7] = [
        (&["--cluster-size", "512"], 512, "zlib", "off"),
        (&["--cluster-size", "2M"], 2 << 20, "zlib", "off"),
        (&["--compress"], 65536, "zlib", "off"),
        (&["--compression-type", "zstd"], 65536, "zstd", "off"),
        (&["--compress", "--cluster-size", "4k"], 4096, "zlib", "off"),
        (&["--preallocation", "metadata"], 65536, "zlib", "metadata"),
        (
            &["--preallocation", "falloc", "--cluster-size", "1M"],
            1 << 20,
            "zlib",
            "falloc",
        ),
    ];
    for (options, cluster, compression, prealloc) in cases {
        let mut args = vec![
            "convert", "-q", "--force", "--to", "qcow2", "src.raw", "o.qcow2",
        ];
        args.extend(options);
        ovf_disk_ok(dir, &args);
        let check = qemu_img(dir, &["check", "-f", "qcow2", "o.qcow2"]);
        let text = String::from_utf8_lossy(&check.stdout);
        assert!(text.contains("No errors were found"), "{options:?}: {text}");
        qemu_same(dir, "src.raw", "raw", "o.qcow2", "qcow2");
        let info = qemu_img(dir, &["info", "--output=json", "o.qcow2"]);
        let v: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
        assert_eq!(v["cluster-size"], cluster, "{options:?}: {v}");
        let data = &v["format-specific"]["data"];
        assert_eq!(data["compat"], "1.1", "{options:?}: {v}");
        assert_eq!(data["compression-type"], compression, "{options:?}: {v}");
        let len = std::fs::metadata(dir.join("o.qcow2")).unwrap().len();
        let used = allocated(&dir.join("o.qcow2"));
        match prealloc {
            // Every cluster placed: the file spans the whole disk, holes where no data is.
            "metadata" => assert!(len > 24 << 20 && used < len * 3 / 4, "{len} {used}"),
            "falloc" => assert!(used >= 24 << 20, "{options:?}: {used} bytes allocated"),
            _ => {}
        }
        if options == ["--compress"] {
            // No larger than qemu-img -c's (deflate with a 4 KiB window) beyond a few gaps.
            assert!(
                len <= qemu_compressed + qemu_compressed / 50,
                "{len} vs {qemu_compressed}"
            );
        }
        // Our reader reads it back to the same bytes.
        ovf_disk_ok(
            dir,
            &[
                "convert", "-q", "--force", "--to", "raw", "o.qcow2", "back.raw",
            ],
        );
        assert_eq!(
            sha256(&dir.join("back.raw")),
            sha256(&dir.join("src.raw")),
            "{options:?}"
        );
    }
    // Clusters are placed in disk order whatever the threads do: the same bytes every time.
    for (threads, out) in [("1", "t1.qcow2"), ("4", "t4.qcow2")] {
        let args = [
            "convert",
            "-q",
            "--threads",
            threads,
            "--compress",
            "--to",
            "qcow2",
        ];
        ovf_disk_ok(dir, &[&args[..], &["src.raw", out]].concat());
    }
    assert_eq!(sha256(&dir.join("t1.qcow2")), sha256(&dir.join("t4.qcow2")));
    // Options for other outputs, a bad cluster size, compression with preallocation: refused.
    for args in [
        &[
            "convert",
            "-q",
            "--to",
            "raw",
            "--compress",
            "src.raw",
            "x.raw",
        ][..],
        &[
            "convert",
            "-q",
            "--to",
            "qcow2",
            "--cluster-size",
            "3000",
            "src.raw",
            "x.qcow2",
        ],
        &[
            "convert",
            "-q",
            "--to",
            "qcow2",
            "--compress",
            "--preallocation",
            "full",
            "src.raw",
            "x.qcow2",
        ],
    ] {
        let out = ovf_disk(dir, args);
        assert!(!out.status.success(), "{args:?}");
        assert_ne!(out.status.code(), Some(101), "{args:?}");
        assert!(
            !dir.join("x.raw").exists() && !dir.join("x.qcow2").exists(),
            "{args:?}"
        );
    }
}

#[test]
fn imports_and_inflates_write_qcow2_disks_when_asked() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    sample_raw(&dir.join("src.raw"), 12 << 20);
    ovf_disk_ok(dir, &["export", "-q", "src.raw", "app.ova"]);
    let args = [
        "import", "-q", "app.ova", "out", "--format", "qcow2", "--emit", "libvirt",
    ];
    ovf_disk_ok(dir, &args);
    let disk = dir.join("out/app-disk1.qcow2");
    qemu_img(dir, &["check", "-q", "out/app-disk1.qcow2"]);
    qemu_same(dir, "src.raw", "raw", "out/app-disk1.qcow2", "qcow2");
    assert!(disk.exists());
    // The written package names the disk as oVirt names qcow2 and verifies; the domain's
    // driver is qcow2.
    let ovf = std::fs::read_to_string(dir.join("out/app.ovf")).unwrap();
    assert!(ovf.contains("ovf:format=\"http://www.gnome.org/~markmc/qcow-image-format.html\""));
    ovf_disk_ok(dir, &["verify", "out/app.ovf"]);
    let xml = std::fs::read_to_string(dir.join("out/app.xml")).unwrap();
    assert!(
        xml.contains("<driver name=\"qemu\" type=\"qcow2\"/>"),
        "{xml}"
    );
    // One disk, and a VM folder's chains (COWD and seSparse over vmfs), to qcow2.
    ours_stream(dir, "src.raw", "stream.vmdk");
    ovf_disk_ok(
        dir,
        &[
            "inflate",
            "-q",
            "--format",
            "qcow2",
            "stream.vmdk",
            "one.qcow2",
        ],
    );
    qemu_same(dir, "src.raw", "raw", "one.qcow2", "qcow2");
    let vm = tempfile::tempdir().unwrap();
    esxi_vm_folder(vm.path());
    ovf_disk_ok(
        vm.path(),
        &["inflate", "-q", "--format", "qcow2", "web.vmx", "q"],
    );
    qemu_img(vm.path(), &["check", "-q", "q/web.qcow2"]);
    qemu_same(vm.path(), "web-000002.vmdk", "vmdk", "q/web.qcow2", "qcow2");
    qemu_same(vm.path(), "data.vmdk", "vmdk", "q/data.qcow2", "qcow2");
}

/// `--keep-chain`: each link of a chain its own qcow2 image, each overlay naming its parent as
/// its backing file: every image `qemu-img check` clean and equal to the link it mirrors (as
/// qemu-img reads both), the chain as `qemu-img info --backing-chain` lists it, and our reader
/// reads the leaf's chain to the same bytes. The ESXi chain has grains of 512 bytes (COWD) and
/// 4 KiB (seSparse): clusters the link holds only in part take the rest from its parents.
/// In `dir`: `base.vmdk`, a monolithicSparse disk of `size` bytes of sample data, and
/// `d1.vmdk`, a delta over it with data and zeros written.
fn base_and_delta(dir: &Path, size: u64) {
    sample_raw(&dir.join("src.raw"), size);
    qemu_to_vmdk(dir, "src.raw", "base.vmdk", "subformat=monolithicSparse");
    qemu_delta(dir, "base.vmdk", "d1.vmdk");
    qemu_io(
        dir,
        "d1.vmdk",
        &["write -P 7 1M 2M", "write -z 9M 3M", "write -P 1 23M 4k"],
    );
}

#[test]
fn a_chain_converts_to_a_chain_of_qcow2_images() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    base_and_delta(dir, 24 << 20);
    qemu_delta(dir, "d1.vmdk", "d2.vmdk");
    qemu_io(dir, "d2.vmdk", &["write -P 9 1500k 1M", "write -z 2M 64k"]);
    std::fs::create_dir(dir.join("out")).unwrap();
    let args = [
        "convert",
        "-q",
        "--keep-chain",
        "--to",
        "qcow2",
        "d2.vmdk",
        "out/leaf.qcow2",
    ];
    ovf_disk_ok(dir, &args);
    let pairs = [
        ("base.vmdk", "out/base.qcow2"),
        ("d1.vmdk", "out/d1.qcow2"),
        ("d2.vmdk", "out/leaf.qcow2"),
    ];
    for (vmdk, qcow2) in pairs {
        qemu_img(dir, &["check", "-q", qcow2]);
        qemu_same(dir, vmdk, "vmdk", qcow2, "qcow2");
    }
    let info = qemu_img(
        dir,
        &["info", "--backing-chain", "--output=json", "out/leaf.qcow2"],
    );
    let v: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    let backing: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["backing-filename"].as_str())
        .collect();
    assert_eq!(backing, ["d1.qcow2", "base.qcow2"], "{v}");
    // The overlay holds only what its link holds: 1 MiB of data over 17 clusters, 64 KiB of
    // zeros as zero clusters, and its metadata.
    let leaf = std::fs::metadata(dir.join("out/leaf.qcow2")).unwrap().len();
    assert!(leaf <= (17 + 8) << 16, "{leaf}");
    ovf_disk_ok(
        dir,
        &["convert", "-q", "--to", "raw", "out/leaf.qcow2", "back.raw"],
    );
    assert_eq!(sha256(&dir.join("back.raw")), qemu_raw_sha(dir, "d2.vmdk"));
    // ESXi's chain: vmfs base, COWD, seSparse.
    let vm = tempfile::tempdir().unwrap();
    let vm = vm.path();
    esxi_vm_folder(vm);
    let args = [
        "convert",
        "-q",
        "--keep-chain",
        "--to",
        "qcow2",
        "web-000002.vmdk",
        "leaf.qcow2",
    ];
    ovf_disk_ok(vm, &args);
    let pairs = [
        ("web.vmdk", "web.qcow2"),
        ("web-000001.vmdk", "web-000001.qcow2"),
        ("web-000002.vmdk", "leaf.qcow2"),
    ];
    for (vmdk, qcow2) in pairs {
        qemu_img(vm, &["check", "-q", qcow2]);
        qemu_same(vm, vmdk, "vmdk", qcow2, "qcow2");
    }
    // A parent that would take the output's own name is refused, nothing written.
    let args = [
        "convert",
        "-q",
        "--keep-chain",
        "--to",
        "qcow2",
        "web-000002.vmdk",
        "web.qcow2",
    ];
    let out = ovf_disk(
        vm,
        &[
            "convert",
            "-q",
            "--force",
            "--keep-chain",
            "--to",
            "qcow2",
            "web-000002.vmdk",
            "web-000001.qcow2",
        ],
    );
    assert!(!out.status.success(), "{out:?}");
    let _ = args;
}

/// The layout a qcow2 write takes when it keeps a checkpoint (a copy from a URL: each L2 table
/// in the data area after the data it maps, the header first): read by qemu-img as the
/// source and `qemu-img check` clean, for every cluster size, compression and a chain's
/// overlays; the checkpoint gone once the image is in place.
#[test]
fn resumable_qcow2_layouts_are_clean_and_identical_for_qemu_img() {
    use ovf_disk::output::{convert, ConvertOptions};
    use vmdk::{Compression, Format, WriteOptions};
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    base_and_delta(dir, (24 << 20) + 4096);
    let w = WriteOptions::new();
    let cases: [(WriteOptions, bool); 6] = [
        (w.clone().cluster_size(512).unwrap(), false),
        (w.clone().cluster_size(4096).unwrap(), false),
        (
            w.clone()
                .cluster_size(4096)
                .unwrap()
                .compress(Some(Compression::Deflate)),
            false,
        ),
        (w.clone().compress(Some(Compression::Zstd)), false),
        (w.clone().cluster_size(2 << 20).unwrap(), false),
        (w.clone().cluster_size(16384).unwrap(), true),
    ];
    for (i, (write, chain)) in cases.into_iter().enumerate() {
        let out = dir.join(format!("o{i}/leaf.qcow2"));
        std::fs::create_dir(out.parent().unwrap()).unwrap();
        let options = ConvertOptions::new()
            .write_options(write.clone())
            .keep_chain(chain)
            .resumable(vec![format!("case {i}")], false);
        let disk = vmdk::Disk::open(dir.join("d1.vmdk")).unwrap();
        convert(&disk, &out, &Format::Qcow2, &options, &|_| {}).unwrap();
        let leaf = format!("o{i}/leaf.qcow2");
        let mut images = vec![leaf.clone()];
        if chain {
            images.push(format!("o{i}/base.qcow2"));
        }
        for image in &images {
            let check = qemu_img(dir, &["check", "-f", "qcow2", image]);
            let text = String::from_utf8_lossy(&check.stdout);
            assert!(text.contains("No errors were found"), "{write:?}: {text}");
        }
        qemu_same(dir, "d1.vmdk", "vmdk", &leaf, "qcow2");
        let left: Vec<_> = std::fs::read_dir(out.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().starts_with('.'))
            .collect();
        assert!(left.is_empty(), "{left:?}");
        if i == 1 {
            // Not the layout of a write without a checkpoint (tables after all the data).
            let plain = dir.join("plain.qcow2");
            let options = ConvertOptions::new().write_options(write);
            convert(&disk, &plain, &Format::Qcow2, &options, &|_| {}).unwrap();
            assert_ne!(sha256(&plain), sha256(&out));
        }
    }
}
