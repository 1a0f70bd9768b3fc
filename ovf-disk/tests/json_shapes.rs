//! Every `--json` output matches the shape documented for it in `ovf-disk/JSON.md`: the same
//! keys at every level (a key marked `?` may be absent), the same types (any value may be
//! `null`), every element of an array shaped like the documented one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

/// The JSON block documented under `<!-- json: NAME -->`.
fn documented(name: &str) -> Value {
    let doc = include_str!("../JSON.md");
    let marker = format!("<!-- json: {name} -->");
    let at = doc
        .find(&marker)
        .unwrap_or_else(|| panic!("JSON.md has no {marker}"));
    let block = &doc[at..];
    let start = block.find("```json\n").unwrap() + "```json\n".len();
    let end = block[start..].find("```").unwrap();
    serde_json::from_str(&block[start..start + end])
        .unwrap_or_else(|e| panic!("JSON.md, {name}: {e}"))
}

/// Where `out` differs from the documented shape `doc`, one line each.
fn differences(doc: &Value, out: &Value, at: &str, found: &mut Vec<String>) {
    match (doc, out) {
        (_, Value::Null) | (Value::Null, _) => {}
        (Value::Object(d), Value::Object(o)) if at.ends_with(".ddb") => {
            // The disk database: any `ddb.*` key, string values.
            for (k, v) in o {
                if !k.starts_with("ddb.") || !v.is_string() {
                    found.push(format!("{at}.{k}: not a ddb.* string"));
                }
            }
            let _ = d;
        }
        (Value::Object(d), Value::Object(o)) => {
            for (k, dv) in d {
                let (name, optional) = match k.strip_suffix('?') {
                    Some(n) => (n, true),
                    None => (k.as_str(), false),
                };
                match o.get(name) {
                    Some(ov) => differences(dv, ov, &format!("{at}.{name}"), found),
                    None if optional => {}
                    None => found.push(format!("{at}.{name}: missing")),
                }
            }
            for k in o.keys() {
                if !d.contains_key(k) && !d.contains_key(&format!("{k}?")) {
                    found.push(format!("{at}.{k}: not documented"));
                }
            }
        }
        (Value::Array(d), Value::Array(o)) => {
            if let Some(d0) = d.first() {
                for (i, ov) in o.iter().enumerate() {
                    differences(d0, ov, &format!("{at}[{i}]"), found);
                }
            }
        }
        (Value::String(_), Value::String(_))
        | (Value::Number(_), Value::Number(_))
        | (Value::Bool(_), Value::Bool(_)) => {}
        (d, o) => found.push(format!("{at}: documented {d}, found {o}")),
    }
}

/// Runs `args` (which may fail with exit code 2, for `check`) and checks its JSON against the
/// documented shape `name`. Returns the output.
fn matches_doc(dir: &Path, name: &str, args: &[&str]) -> Value {
    let out = ovf_disk(dir, args);
    assert!(
        matches!(out.status.code(), Some(0 | 2)),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{args:?}: {e}: {}", String::from_utf8_lossy(&out.stdout)));
    let mut found = Vec::new();
    differences(&documented(name), &v, name, &mut found);
    assert!(
        found.is_empty(),
        "{args:?} against JSON.md:\n{}\n{v:#}",
        found.join("\n")
    );
    v
}

#[test]
fn every_json_output_matches_its_documented_shape() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    sample_raw(&dir.join("src.raw"), 4 << 20);
    qemu_to_vmdk(dir, "src.raw", "base.vmdk", "");
    qemu_img(
        dir,
        &[
            "create",
            "-f",
            "vmdk",
            "-b",
            "base.vmdk",
            "-F",
            "vmdk",
            "child.vmdk",
        ],
    );
    qemu_to_vmdk(dir, "src.raw", "s.vmdk", "subformat=streamOptimized");
    let v = matches_doc(dir, "info-disk", &["info", "--json", "child.vmdk"]);
    assert_eq!(v["chain"].as_array().unwrap().len(), 1, "{v}");
    let v = matches_doc(dir, "info-disk", &["info", "--json", "s.vmdk"]);
    assert_eq!(v["extents"][0]["sparse"]["metadata_from"], "header", "{v}");
    // The ESXi delta extents: their headers under `cowd` and `sesparse`.
    let mut cowd = builders::CowdBuilder::new(8192);
    cowd.grains.insert(3, vec![1; 512]);
    std::fs::write(dir.join("cowd-delta.vmdk"), cowd.build().0).unwrap();
    let line = "RW 8192 VMFSSPARSE \"cowd-delta.vmdk\"".to_string();
    let text = builders::esx_descriptor("vmfsSparse", 1, None, &[line]);
    std::fs::write(dir.join("cowd.vmdk"), text).unwrap();
    let v = matches_doc(dir, "info-disk", &["info", "--json", "cowd.vmdk"]);
    assert_eq!(v["extents"][0]["cowd"]["num_gtes_per_gt"], 4096, "{v}");
    let mut se = builders::SeSparseBuilder::new(8192);
    se.grains.insert(3, vec![1; 4096]);
    std::fs::write(dir.join("se-sesparse.vmdk"), se.build().0).unwrap();
    let line = "RW 8192 SESPARSE \"se-sesparse.vmdk\"".to_string();
    let text = builders::esx_descriptor("seSparse", 1, None, &[line]);
    std::fs::write(dir.join("se.vmdk"), text).unwrap();
    let v = matches_doc(dir, "info-disk", &["info", "--json", "se.vmdk"]);
    assert_eq!(v["extents"][0]["sesparse"]["version"], "0x200000001", "{v}");
    // A damaged disk: its problems are listed.
    let mut bad = std::fs::read(dir.join("base.vmdk")).unwrap();
    let gd = u64::from_le_bytes(bad[56..64].try_into().unwrap()) as usize * 512;
    bad[gd..gd + 4].copy_from_slice(&1u32.to_le_bytes());
    std::fs::write(dir.join("bad.vmdk"), &bad).unwrap();
    let v = matches_doc(dir, "check-disk", &["check", "--json", "bad.vmdk"]);
    assert!(!v["problems"].as_array().unwrap().is_empty(), "{v}");
    matches_doc(dir, "check-disk", &["check", "--json", "base.vmdk"]);
    matches_doc(
        dir,
        "inflate",
        &["inflate", "--json", "s.vmdk", "thick.vmdk"],
    );
    matches_doc(
        dir,
        "inflate",
        &[
            "convert",
            "--json",
            "src.raw",
            "c.vmdk",
            "--to",
            "twoGbMaxExtentSparse",
        ],
    );
    matches_doc(
        dir,
        "export",
        &["export", "--json", "src.raw", "s.vmdk", "p.ova"],
    );
    let v = matches_doc(dir, "info-package", &["info", "--json", "p.ova"]);
    assert_eq!(v["disks"].as_array().unwrap().len(), 2, "{v}");
    matches_doc(dir, "verify", &["verify", "--json", "p.ova"]);
    matches_doc(dir, "check-package", &["check", "--json", "p.ova"]);
    matches_doc(
        dir,
        "check-target",
        &["check", "--target", "esxi", "--json", "p.ova"],
    );
    matches_doc(
        dir,
        "fix",
        &["fix", "--json", "--target", "esxi", "p.ova", "fixed.ova"],
    );
    let v = matches_doc(dir, "check-ft", &["check", "--ft", "--json", "p.ova"]);
    assert!(
        !v["machines"][0]["rules"].as_array().unwrap().is_empty(),
        "{v}"
    );
    let v = matches_doc(dir, "import", &["import", "--json", "p.ova", "out"]);
    assert_eq!(v["disks"].as_array().unwrap().len(), 2, "{v}");
    // A VM folder: the child over its base on one controller.
    std::fs::write(
        dir.join("vm.vmx"),
        "displayName = \"vm\"\nmemsize = \"512\"\nguestOS = \"other\"\nscsi0:0.fileName = \"child.vmdk\"\n",
    )
    .unwrap();
    std::fs::write(dir.join("vm-ctk.vmdk"), b"ctk").unwrap();
    let v = matches_doc(dir, "info-vm", &["info", "--json", "vm.vmx"]);
    assert_eq!(
        v["disk_chains"][0]["chain"].as_array().unwrap().len(),
        2,
        "{v}"
    );
    let v = matches_doc(
        dir,
        "inflate-vm",
        &["inflate", "--json", "vm.vmx", "vm-thick"],
    );
    assert_eq!(v["disks"][0]["links"], 2, "{v}");
}
