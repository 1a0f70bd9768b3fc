//! Packages broken by their own fault: `check` reports each class (with the element and line
//! where the envelope is at fault) and is not clean, and `check --target` names its rule for
//! every product: a refusal for the products whose code or error texts refuse it, a note for
//! the others (a product known to accept it, or no refusal on record); a package whose disk is
//! missing or cut short is never "would import". A disk file cut short fails `verify` even when
//! its digest matches.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::path::Path;

use common::*;

const TARGETS: [&str; 3] = ["esxi", "virtualbox", "virt-v2v"];

/// A package folder `name/` of the envelope `text` (each `SIZE(f)` filled in) with the disk
/// `d.vmdk` as `disk` gives it (the bytes of a good one otherwise), no manifest.
fn package(dir: &Path, name: &str, text: &str, disk: Option<&[u8]>) -> String {
    let pkg = PackageDir::new(&dir.join(name));
    match disk {
        Some(bytes) => {
            pkg.file("d.vmdk", bytes);
        }
        None => {
            std::fs::copy(dir.join("good.vmdk"), pkg.path("d.vmdk")).unwrap();
        }
    }
    pkg.ovf("p.ovf", text);
    format!("{name}/p.ovf")
}

/// A one-disk envelope with `disk_attrs` on the Disk, `refs_extra` after the File, `items` in
/// the hardware.
fn ovf(disk_attrs: &str, refs_extra: &str, items: &str) -> String {
    envelope(
        &format!("{}{refs_extra}", file_ref("d.vmdk", 0, "").replace("ovf:size=\"0\"", "ovf:size=\"SIZE(d.vmdk)\"")),
        &format!("<Disk {disk_attrs} ovf:diskId=\"vmdisk1\" ovf:fileRef=\"file1\" ovf:format=\"{STREAM_FORMAT}\"/>"),
        &format!(
            "<VirtualSystem ovf:id=\"vm\"><Info>vm</Info><VirtualHardwareSection xmlns:rasd=\"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData\"><Info>hw</Info><System><vssd:VirtualSystemType xmlns:vssd=\"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData\">vmx-13</vssd:VirtualSystemType></System>\
             <Item><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceSubType>lsilogic</rasd:ResourceSubType><rasd:ResourceType>6</rasd:ResourceType></Item>\
             <Item><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource><rasd:InstanceID>2</rasd:InstanceID><rasd:Parent>1</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>{items}</VirtualHardwareSection></VirtualSystem>\n"
        ),
    )
}

/// `src.raw` of `mib` MiB of sample bytes, and `good.vmdk`, our stream-optimized copy of it.
fn good_disk(dir: &Path, mib: u64) {
    sample_raw(&dir.join("src.raw"), mib << 20);
    ours_stream(dir, "src.raw", "good.vmdk");
}

const CAPACITY: &str = "ovf:capacity=\"1\" ovf:capacityAllocationUnits=\"byte * 2^20\"";

/// `check --target T --json`: whether refused, and the findings' (rule, severity, where).
fn lint(dir: &Path, pkg: &str, target: &str) -> (bool, Vec<(String, String, String)>) {
    let out = ovf_disk(dir, &["check", "--target", target, "--json", pkg]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let findings = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let s = |k: &str| f[k].as_str().unwrap().to_string();
            (s("rule"), s("severity"), s("where"))
        })
        .collect();
    (v["refused"].as_bool().unwrap(), findings)
}

/// `check` of `pkg`: not clean (exit 2, as for a damaged disk), and its text.
fn check_fails(dir: &Path, pkg: &str) -> String {
    let out = ovf_disk(dir, &["check", pkg]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(2), "{pkg}: {text}");
    text
}

#[test]
fn each_class_of_broken_package_is_found_for_its_own_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    good_disk(dir, 1);

    let good = package(dir, "good", &ovf(CAPACITY, "", ""), None);
    ovf_disk_ok(dir, &["check", &good]);
    for t in TARGETS {
        let (refused, findings) = lint(dir, &good, t);
        assert!(!refused, "{t}: {findings:?}");
        assert!(
            findings.iter().all(|(_, s, _)| s == "note"),
            "{t}: {findings:?}"
        );
    }

    // Envelope faults: (package, rule, the line and element check names).
    let cd = |parent: u32, host: &str| {
        format!("<Item><rasd:ElementName>CD-ROM 1</rasd:ElementName><rasd:HostResource>{host}</rasd:HostResource><rasd:InstanceID>4</rasd:InstanceID><rasd:Parent>{parent}</rasd:Parent><rasd:ResourceType>15</rasd:ResourceType></Item>")
    };
    let nic = "<Item><rasd:ElementName>Network adapter 1</rasd:ElementName><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceType>10</rasd:ResourceType></Item>";
    let duplicate_disk = ovf(CAPACITY, "", "").replace(
        "</DiskSection>",
        &format!("<Disk {CAPACITY} ovf:diskId=\"vmdisk1\"/></DiskSection>"),
    );
    let disk_item = "<rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>";
    let disk_parent = "<rasd:Parent>1</rasd:Parent><rasd:ResourceType>17";
    // (package, rule, the line and element check names, its message, the targets that refuse).
    type Case<'a> = (&'a str, String, &'a str, &'a str, &'a str, &'a [&'a str]);
    let cases: [Case<'_>; 10] = [
        ("dup-disk", duplicate_disk, "duplicate-disk-id", "line 4: DiskSection/Disk ovf:diskId=\"vmdisk1\"", "the same id as the element at line 4", &[]),
        ("dup-file", ovf(CAPACITY, "<File ovf:href=\"d.vmdk\" ovf:id=\"file2\"/>", ""), "duplicate-href", "line 3: References/File ovf:id=\"file2\"", "names the file a File at line 3 names already", &[]),
        ("zero", ovf("ovf:capacity=\"0\"", "", ""), "disk-capacity-zero", "line 4: DiskSection/Disk ovf:diskId=\"vmdisk1\"", "ovf:capacity is zero", &[]),
        ("no-capacity", ovf("", "", ""), "disk-capacity", "line 4: DiskSection/Disk ovf:diskId=\"vmdisk1\"", "ovf:capacity", &["virtualbox"]),
        ("file-ref", ovf(CAPACITY, "", "").replace("ovf:fileRef=\"file1\"", "ovf:fileRef=\"file9\""), "disk-file-ref", "line 4: DiskSection/Disk ovf:diskId=\"vmdisk1\"", "file9", &["virtualbox", "virt-v2v"]),
        ("host", ovf(CAPACITY, "", &cd(1, "vmdisk1")), "host-resource", "line 5: VirtualSystem ovf:id=\"vm\"/Item InstanceID 4", "HostResource \"vmdisk1\" is neither ovf:/disk/ID nor ovf:/file/ID", &[]),
        ("disk-host", ovf(CAPACITY, "", "").replace(disk_item, "<rasd:HostResource>vmdisk1</rasd:HostResource>"), "host-resource", "line 5: VirtualSystem ovf:id=\"vm\"/Item InstanceID 2", "HostResource \"vmdisk1\" is neither ovf:/disk/ID nor ovf:/file/ID", &["virtualbox", "virt-v2v"]),
        ("parent", ovf(CAPACITY, "", &format!("{nic}{}", cd(3, ""))), "parent", "line 5: VirtualSystem ovf:id=\"vm\"/Item InstanceID 4", "its Parent 3 is Network adapter 1, not a controller", &[]),
        ("disk-parent", ovf(CAPACITY, "", nic).replace(disk_parent, "<rasd:Parent>3</rasd:Parent><rasd:ResourceType>17"), "parent", "line 5: VirtualSystem ovf:id=\"vm\"/Item InstanceID 2", "its Parent 3 is Network adapter 1, not a controller", &["virtualbox"]),
        ("old-body", ovf(CAPACITY, "", "").replace("<VirtualSystem", "<Section xsi:type=\"ovf:NetworkSection_Type\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><Info>n</Info></Section><VirtualSystem"), "ovf-0.9-body", "line 2: Envelope", "under the OVF 1.x namespace", &["esxi"]),
    ];
    for (name, text, rule, at, message, refusing) in cases {
        let pkg = package(dir, name, &text, None);
        let report = check_fails(dir, &pkg);
        assert!(
            report.contains(&format!("ERROR {pkg}: {at}: ")) && report.contains(message),
            "{name}: {report}"
        );
        for t in TARGETS {
            let (refused, findings) = lint(dir, &pkg, t);
            let severity = match refusing.contains(&t) {
                true => "refuse",
                false => "note",
            };
            assert!(
                !refusing.contains(&t) || refused,
                "{name} {t}: {findings:?}"
            );
            assert!(
                findings.contains(&(rule.to_string(), severity.to_string(), at.to_string())),
                "{name} {t}: {findings:?}"
            );
        }
    }

    // A populated size over the capacity: a fault check reports, a note for the products.
    let pkg = package(
        dir,
        "populated",
        &ovf(&format!("{CAPACITY} ovf:populatedSize=\"9999999\""), "", ""),
        None,
    );
    assert!(check_fails(dir, &pkg)
        .contains("ovf:populatedSize 9999999 is more than the capacity, 1048576 bytes"));
    let (refused, findings) = lint(dir, &pkg, "esxi");
    assert!(!refused, "{findings:?}");
    assert!(
        findings
            .iter()
            .any(|(r, s, _)| r == "populated-size" && s == "note"),
        "{findings:?}"
    );
}

#[test]
fn a_disk_missing_or_cut_short_is_never_would_import_nor_raw_bytes_for_esxi() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    good_disk(dir, 4);
    let good = std::fs::read(dir.join("good.vmdk")).unwrap();
    let text = ovf(CAPACITY.replace("\"1\"", "\"4\"").as_str(), "", "");

    // Missing: the file is gone.
    let missing = package(dir, "missing", &text.replace("SIZE(d.vmdk)", "1000"), None);
    std::fs::remove_file(dir.join("missing/d.vmdk")).unwrap();
    // Cut to a tenth of its ovf:size, with a manifest whose digest matches what is left.
    let cut_pkg = PackageDir::new(&dir.join("cut"));
    cut_pkg
        .file("d.vmdk", &good[..good.len() / 10])
        .ovf(
            "p.ovf",
            &text.replace("SIZE(d.vmdk)", &good.len().to_string()),
        )
        .manifest("p.mf", &["p.ovf", "d.vmdk"], "SHA256", MfStyle::Ovftool);
    // Raw bytes named .vmdk.
    let raw = package(
        dir,
        "raw",
        &text,
        Some(&std::fs::read(dir.join("src.raw")).unwrap()),
    );

    // Raw bytes named .vmdk: ESXi's stream reader refuses them; VirtualBox and virt-v2v read a
    // disk by its contents (a note for them).
    for (pkg, rule, refusing) in [
        (missing.as_str(), "disk-file", &TARGETS[..]),
        ("cut/p.ovf", "file-size", &TARGETS[..]),
        (raw.as_str(), "disk-not-vmdk", &["esxi"][..]),
    ] {
        check_fails(dir, pkg);
        for t in TARGETS {
            let (refused, findings) = lint(dir, pkg, t);
            if !refusing.contains(&t) {
                assert!(
                    findings.iter().any(|(r, s, _)| r == rule && s == "note"),
                    "{pkg} {t}: {findings:?}"
                );
                continue;
            }
            assert!(refused, "{pkg} {t}: {findings:?}");
            assert!(
                findings.iter().any(|(r, s, _)| r == rule && s == "refuse"),
                "{pkg} {t}: {findings:?}"
            );
            // Cut short, not "laid out as qemu-img writes them".
            assert!(
                !findings.iter().any(|(r, _, _)| r == "stream-layout"),
                "{pkg} {t}: {findings:?}"
            );
            let out = ovf_disk(dir, &["check", "--target", t, pkg]);
            let text = String::from_utf8_lossy(&out.stdout);
            assert!(
                text.contains("the target would refuse this package"),
                "{text}"
            );
        }
    }

    // verify: the cut file's digest matches, yet it is cut short: not verified, and no import.
    let out = ovf_disk(dir, &["verify", "cut/p.ovf"]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(report.contains("d.vmdk: SHA256 ok"), "{report}");
    assert!(
        report.contains(&format!(
            "d.vmdk: {} bytes, shorter than the {} its ovf:size declares: cut short",
            good.len() / 10,
            good.len()
        )),
        "{report}"
    );
    let out = ovf_disk(dir, &["import", "-q", "cut/p.ovf", "out"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(!dir.join("out").exists());
    // The same package as an OVA read from a pipe: refused at the member.
    cut_pkg.ova("cut.ova", &["p.ovf", "p.mf", "d.vmdk"]);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ovf-disk"))
        .args(["import", "-q", "-", "piped"])
        .current_dir(dir)
        .stdin(std::fs::File::open(dir.join("cut/cut.ova")).unwrap())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dir.join("piped").exists());

    // The bare disk cut short: info says what it found and that the file looks cut.
    let out = ovf_disk(dir, &["info", "cut/d.vmdk"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "a stream-optimized extent of {} bytes (capacity 4194304 bytes) whose gdOffset is GD_AT_END, but the file does not end with the footer and end-of-stream marker such an extent ends with: the file looks cut short",
            good.len() / 10
        )),
        "{err}"
    );
}

/// The envelope is checked against DMTF's schema: `check` lists each violation as a note with
/// its line (a package products read stays clean, exit 0), and says when it is valid; `--json`
/// carries them.
#[test]
fn schema_violations_are_notes_with_their_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    good_disk(dir, 1);
    // The items without the ElementName the RASD schema requires (line 5 holds them all).
    let unnamed = package(dir, "unnamed", &ovf(CAPACITY, "", ""), None);
    let out = stdout(ovf_disk_ok(dir, &["check", &unnamed]));
    assert!(
        out.contains("envelope: 3 violations of DSP8023 1.1.1 (notes: products read many such envelopes):\n  NOTE line 5: Element 'vssd:VirtualSystemType': This element is not expected. Expected is one of ( vssd:AutomaticRecoveryAction,")
            && out.contains("\n  NOTE line 5: Element 'rasd:InstanceID': This element is not expected. Expected is one of ( rasd:Address,")
            && out.contains("No errors were found in the package."),
        "{out}"
    );
    let json = stdout(ovf_disk_ok(dir, &["check", "--json", &unnamed]));
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["clean"], true, "{json}");
    assert_eq!(v["schema"]["schema"], "DSP8023 1.1.1", "{json}");
    assert_eq!(
        v["schema"]["violations"].as_array().unwrap().len(),
        3,
        "{json}"
    );
    assert_eq!(v["schema"]["violations"][1]["line"], 5, "{json}");

    // Named, they are valid.
    let named = ovf(CAPACITY, "", "")
        .replace(
            "<vssd:VirtualSystemType",
            "<vssd:ElementName xmlns:vssd=\"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData\">vm</vssd:ElementName><vssd:InstanceID xmlns:vssd=\"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData\">0</vssd:InstanceID><vssd:VirtualSystemType",
        )
        .replace(
            "<rasd:InstanceID>1",
            "<rasd:ElementName>SCSI controller 0</rasd:ElementName><rasd:InstanceID>1",
        )
        .replace(
            "<rasd:HostResource>",
            "<rasd:ElementName>Hard disk 1</rasd:ElementName><rasd:HostResource>",
        );
    let named = package(dir, "named", &named, None);
    let out = stdout(ovf_disk_ok(dir, &["check", &named]));
    assert!(out.contains("envelope: valid by DSP8023 1.1.1\n"), "{out}");

    // A fault of the envelope's own (the schema is not asked to find it) is still an error,
    // with the violations beside it.
    let dup = ovf(CAPACITY, "", "").replace(
        "</DiskSection>",
        &format!("<Disk {CAPACITY} ovf:diskId=\"vmdisk1\"/></DiskSection>"),
    );
    let dup = package(dir, "dup", &dup, None);
    let text = check_fails(dir, &dup);
    assert!(
        text.contains("duplicate-disk-id") || text.contains("the same id"),
        "{text}"
    );
    assert!(text.contains("violations of DSP8023 1.1.1"), "{text}");
}

fn stdout(out: std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}
