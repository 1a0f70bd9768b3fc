//! The envelopes other products wrote (testdata/envelopes, see CORPUS.md) through the tool, as
//! a user opens them: `info` reads every one its project reads (files absent here are shown as
//! missing, hrefs leading out as not followed), and `check --target` answers for each (a
//! verdict, never a crash), naming the faults `ovf`'s corpus test expects.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use common::*;

/// The envelopes whose projects read them (the templates with placeholders and the broken
/// ones are `ovf`'s corpus test's).
const READ: &[&str] = &[
    "virt-v2v/test-i-ova.ovf",
    "virt-v2v/test-i-ova-gz.ovf",
    "virt-v2v/test-i-ova-chunked-gap.ovf",
    "govmomi/ubuntu24.10.ovf",
    "govmomi/nsx-unified-appliance-9.1.0.0.25262063.ovf",
    "govmomi/Vcf-License-Server-9.1.0.0.25262073.ovf",
    "govmomi/virtualsystemcollection.ovf",
    "govmomi/vbox5.ovf",
    "govmomi/vbox1_0.9.ovf",
    "govmomi/vCD_vApp_OVF.ovf",
    "govmomi/complete_vs.ovf",
    "govmomi/ovftool-pos-http_uri_in_file.ovf",
    "ganeti/virtualbox.ovf",
    "ganeti/ganeti.ovf",
    "pve-storage/Win_2008_R2_two-disks.ovf",
    "pve-storage/Win10-Liz_no_default_ns.ovf",
];

#[test]
fn info_and_check_target_read_every_envelope_other_products_read() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let root = repo().join("testdata/envelopes");
    for (i, file) in READ.iter().enumerate() {
        let pkg = dir.join(format!("p{i}"));
        std::fs::create_dir_all(&pkg).unwrap();
        std::fs::copy(root.join(file), pkg.join("x.ovf")).unwrap();
        let path = format!("p{i}/x.ovf");
        let out = ovf_disk_ok(dir, &["info", "--json", &path]);
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(!v["systems"].as_array().unwrap().is_empty(), "{file}: {v}");
        for f in v["files"].as_array().unwrap() {
            // The disks are not here: each file is missing or, leading out, not followed.
            assert!(f["present_size"].is_null(), "{file}: {f}");
        }
        ovf_disk_ok(dir, &["info", &path]);
        for target in ["esxi", "virtualbox", "virt-v2v"] {
            let out = ovf_disk(dir, &["check", "--target", target, "--json", &path]);
            assert!(
                matches!(out.status.code(), Some(0 | 2)),
                "{file} {target}: {out:?}"
            );
            let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
            // Product rules may refuse (a VirtualBox package on ESXi); the package's own
            // faults are only those `ovf`'s corpus test names (Ganeti's), and the disks that
            // are not here.
            for f in v["findings"].as_array().unwrap() {
                let rule = f["rule"].as_str().unwrap();
                let own = [
                    "duplicate-file-id",
                    "duplicate-href",
                    "duplicate-disk-id",
                    "disk-file-ref",
                    "disk-capacity",
                    "populated-size",
                    "host-resource",
                    "parent",
                    "ovf-0.9-body",
                    "disk-not-vmdk",
                    "file-size",
                ];
                let expected = !own.contains(&rule)
                    || (file.starts_with("ganeti/") && matches!(rule, "disk-capacity" | "parent"));
                assert!(expected, "{file} {target}: {f}");
            }
        }
    }
}

/// What `info` and `check --target` compute, through the library as the command calls it,
/// over a thousand descriptors (the corpus over and over): every one that opens gives its
/// summary, its JSON and a verdict per product, without a panic. (The time is
/// `benches/info-corpus.sh`'s to show, through the binary.)
#[test]
fn info_and_lint_over_a_thousand_descriptors() {
    let tmp = tempfile::tempdir().unwrap();
    let root = repo().join("testdata/envelopes");
    let mut paths = Vec::new();
    for dir in std::fs::read_dir(&root).unwrap() {
        let dir = dir.unwrap().path();
        if dir.is_dir() {
            for f in std::fs::read_dir(&dir).unwrap() {
                let p = f.unwrap().path();
                if p.extension().is_some_and(|e| e == "ovf") {
                    // Each alone in a folder, as a package is.
                    let pkg = tmp.path().join(paths.len().to_string());
                    std::fs::create_dir_all(&pkg).unwrap();
                    std::fs::copy(&p, pkg.join("x.ovf")).unwrap();
                    paths.push(pkg.join("x.ovf"));
                }
            }
        }
    }
    assert!(paths.len() >= 30, "{}", paths.len());
    let (mut opened, mut refused) = (0, 0);
    for _ in 0..1000_usize.div_ceil(paths.len()) {
        for p in &paths {
            let Ok(pkg) = ovf_disk::package::Package::open(p) else {
                refused += 1;
                continue;
            };
            opened += 1;
            let json = serde_json::to_string(&pkg.info()).unwrap();
            assert!(json.contains("\"systems\""), "{json}");
            for target in [
                ovf_disk::rules::Target::Esxi,
                ovf_disk::rules::Target::Virtualbox,
                ovf_disk::rules::Target::VirtV2v,
            ] {
                ovf_disk::rules::lint(&pkg, target).unwrap();
            }
        }
    }
    assert!(
        opened + refused >= 1000 && opened >= 800,
        "{opened} {refused}"
    );
}
