//! Whole packages around the envelopes other products wrote (testdata/envelopes, CORPUS.md), put
//! together as those products put theirs: each disk file a stream-optimized VMDK (qemu-img's)
//! of the disk's capacity with data at its start, middle and end, every other file (an ISO) some
//! bytes, each stated `ovf:size` the file's size, a manifest of `SHA256(name)= hex` lines as
//! ovftool writes it, and an OVA of them (the descriptor first). For each, from the folder and
//! from the OVA: `verify` passes, `check` is clean (schema notes aside), `import` writes disks
//! whose bytes are the source disks' as qemu-img reads them, and `verify` and `check` of what
//! it wrote pass (the round trip).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::os::unix::fs::FileExt;
use std::path::Path;

use common::*;

/// The envelopes whose projects read them and whose files all lie in the package folder, plain
/// (the gzip-compressed and chunked ones, the hrefs leading out and the broken ones are the
/// other corpus tests').
const PACKAGES: &[&str] = &[
    "virt-v2v/test-i-ova.ovf",
    "govmomi/ubuntu24.10.ovf",
    "govmomi/nsx-unified-appliance-9.1.0.0.25262063.ovf",
    "govmomi/Vcf-License-Server-9.1.0.0.25262073.ovf",
    "govmomi/vbox5.ovf",
    "govmomi/vCD_vApp_OVF.ovf",
    "pve-storage/Win_2008_R2_two-disks.ovf",
    "pve-storage/Win10-Liz_no_default_ns.ovf",
    "cot/csr1000v.ovf",
    "cot/iosv.ovf",
    "cot/vmware.ovf",
    "cot/ubuntu.2.0.ovf",
];

/// `text` with the `ovf:size` of the `File` naming `href` set to `size` (left out where the
/// envelope states none).
fn with_size(text: &str, href: &str, size: u64) -> String {
    let at = text
        .find(&format!("ovf:href=\"{href}\""))
        .unwrap_or_else(|| panic!("no File names {href}"));
    let start = text[..at].rfind('<').unwrap();
    let end = at + text[at..].find('>').unwrap();
    let element = &text[start..end];
    let Some(s) = element.find("ovf:size=\"") else {
        return text.to_string();
    };
    let value_start = start + s + "ovf:size=\"".len();
    let value_end = value_start + text[value_start..].find('"').unwrap();
    format!("{}{size}{}", &text[..value_start], &text[value_end..])
}

/// Builds the package of `envelope` in `dir/pkg/` (`x.ovf`, `x.mf`, its files) and
/// `dir/pkg.ova`; the source disks' hrefs.
fn build(dir: &Path, envelope: &Path, pkg: &str) -> Vec<String> {
    let folder = dir.join(pkg);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(envelope, folder.join("in.ovf")).unwrap();
    let info = ovf_disk_ok(&folder, &["info", "--json", "in.ovf"]);
    std::fs::remove_file(folder.join("in.ovf")).unwrap();
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    let mut text = std::fs::read_to_string(envelope).unwrap();
    let mut disks = Vec::new();
    let mut files = Vec::new();
    for f in info["files"].as_array().unwrap() {
        let href = f["href"].as_str().unwrap().to_string();
        let disk = info["disks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["file"].as_str() == Some(href.as_str()));
        match disk {
            Some(d) => {
                let capacity = d["capacity"].as_u64().unwrap();
                let raw = folder.join("src.raw");
                let f = std::fs::File::create(&raw).unwrap();
                f.set_len(capacity).unwrap();
                for (i, at) in [0, capacity / 2, capacity - (64 << 10)].iter().enumerate() {
                    f.write_all_at(&noise(i as u64 + 7, 64 << 10), *at).unwrap();
                }
                qemu_to_vmdk(&folder, "src.raw", &href, "subformat=streamOptimized");
                std::fs::remove_file(&raw).unwrap();
                disks.push(href.clone());
            }
            None => std::fs::write(folder.join(&href), noise(3, 360_448)).unwrap(),
        }
        let size = std::fs::metadata(folder.join(&href)).unwrap().len();
        text = with_size(&text, &href, size);
        files.push(href);
    }
    std::fs::write(folder.join("x.ovf"), &text).unwrap();
    let mut mf = format!("SHA256(x.ovf)= {}\n", sha256(&folder.join("x.ovf")));
    for f in &files {
        mf.push_str(&format!("SHA256({f})= {}\n", sha256(&folder.join(f))));
    }
    std::fs::write(folder.join("x.mf"), &mf).unwrap();
    let mut members: Vec<(String, Vec<u8>)> = vec![
        ("x.ovf".into(), text.into_bytes()),
        ("x.mf".into(), mf.into_bytes()),
    ];
    for f in &files {
        members.push((f.clone(), std::fs::read(folder.join(f)).unwrap()));
    }
    let refs: Vec<(&str, &[u8])> = members
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    std::fs::write(dir.join(format!("{pkg}.ova")), tar_of(&refs)).unwrap();
    disks
}

/// `check` of `pkg` is clean (exit 0): schema violations are notes.
fn clean(dir: &Path, pkg: &str) {
    let out = ovf_disk(dir, &["check", pkg]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "check {pkg}: {text}");
    assert!(
        text.contains("No errors were found in the package."),
        "{text}"
    );
}

#[test]
fn packages_put_together_as_their_products_do_import_and_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let root = repo().join("testdata/envelopes");
    for (i, envelope) in PACKAGES.iter().enumerate() {
        let pkg = format!("p{i}");
        let disks = build(dir, &root.join(envelope), &pkg);
        assert!(!disks.is_empty(), "{envelope}");
        for source in [format!("{pkg}/x.ovf"), format!("{pkg}.ova")] {
            ovf_disk_ok(dir, &["verify", &source]);
            clean(dir, &source);
            let out = format!("{pkg}-out-{}", source.len());
            let report = ovf_disk_ok(
                dir,
                &["import", "--json", "--format", "qcow2", &source, &out],
            );
            let report: serde_json::Value = serde_json::from_slice(&report.stdout)
                .unwrap_or_else(|e| panic!("{envelope}: {e}"));
            let imported = report["disks"].as_array().unwrap();
            assert_eq!(imported.len(), disks.len(), "{envelope}: {report}");
            for d in imported {
                let from = d["from"].as_str().unwrap();
                let file = d["files"][0].as_str().unwrap();
                qemu_same(dir, &format!("{pkg}/{from}"), "vmdk", file, "qcow2");
            }
            let ovf = std::fs::read_dir(dir.join(&out))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .find(|n| n.ends_with(".ovf"))
                .unwrap();
            let written = format!("{out}/{ovf}");
            ovf_disk_ok(dir, &["verify", &written]);
            clean(dir, &written);
            std::fs::remove_dir_all(dir.join(&out)).unwrap();
        }
        std::fs::remove_dir_all(dir.join(&pkg)).unwrap();
        std::fs::remove_file(dir.join(format!("{pkg}.ova"))).unwrap();
    }
}
