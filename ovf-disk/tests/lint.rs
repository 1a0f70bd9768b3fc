//! `check --target` and `fix`: packages that each have one problem a product refuses or
//! changes; `check --target` flags it, `fix` repairs what it can, and the fixed package passes
//! `check --target`, our `verify`, and qemu-img's reading of its disks (tar extracts it).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// A one-system envelope with the disk `d.vmdk`: `system_type`, `items` in the hardware
/// section, `extra` before the VirtualSystem's end.
fn ovf(system_type: &str, items: &str, extra: &str, size: usize) -> String {
    envelope(
        &file_ref("d.vmdk", size, ""),
        &disk_entry(1),
        &format!(
            "<VirtualSystem ovf:id=\"vm\"><Info>vm</Info><VirtualHardwareSection xmlns:rasd=\"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData\"><Info>hw</Info><System xmlns:vssd=\"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData\"><vssd:ElementName>Virtual Hardware Family</vssd:ElementName><vssd:InstanceID>0</vssd:InstanceID><vssd:VirtualSystemType>{system_type}</vssd:VirtualSystemType></System>{items}</VirtualHardwareSection>{extra}</VirtualSystem>\n"
        ),
    )
}

/// `check --target T --json` of `pkg`: exit code and the findings' (rule, severity).
fn lint(dir: &Path, pkg: &str, target: &str) -> (i32, Vec<(String, String)>) {
    let out = ovf_disk(dir, &["check", "--target", target, "--json", pkg]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    let findings = v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap().to_string(),
                f["severity"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(v["refused"], out.status.code() == Some(2), "{v}");
    (out.status.code().unwrap(), findings)
}

/// A package folder `name/` with `ovf` and a disk written by `writer`: `qemu` (stream-optimized
/// as qemu-img writes it, no end-of-stream marker), `sparse` (qemu-img's monolithicSparse),
/// else our VMware-layout writer; a manifest spelled `tag` or not.
fn package(dir: &Path, name: &str, ovf_text: &str, writer: &str, tag: bool) -> String {
    let pkg = PackageDir::new(&dir.join(name));
    let p = &pkg.dir;
    if writer == "qemu" || writer == "sparse" {
        let sub = if writer == "qemu" {
            "subformat=streamOptimized"
        } else {
            "subformat=monolithicSparse"
        };
        let args = [
            "convert",
            "-q",
            "-f",
            "raw",
            "-O",
            "vmdk",
            "-o",
            sub,
            "../src.raw",
            "d.vmdk",
        ];
        qemu_img(p, &args);
    } else {
        ovf_disk_ok(
            p,
            &[
                "convert",
                "-q",
                "--from",
                "raw",
                "--to",
                "streamOptimized",
                "../src.raw",
                "d.vmdk",
            ],
        );
    }
    let style = if tag {
        MfStyle::Tagged
    } else {
        MfStyle::Ovftool
    };
    pkg.ovf("p.ovf", ovf_text)
        .manifest("p.mf", &["p.ovf", "d.vmdk"], "SHA256", style);
    format!("{name}/p.ovf")
}

/// `fix` of `pkg` for `target` into `out`: the exit code; when 0, the output verifies and its
/// disk reads (qemu-img, after tar extracts it) as `src.raw`.
fn fixed(dir: &Path, pkg: &str, target: &str, out: &str) -> i32 {
    fixed_with(dir, pkg, target, out, &[])
}

/// The envelope of an extracted package (`*.ovf` in `x`) is valid by DMTF's envelope schema
/// (DSP8023 1.1.1 or 2.0.1 with the CIM schemas it imports, `ovf/xsd/`), checked by
/// xmllint offline.
fn valid_by_schema(x: &Path) {
    let ovf = std::fs::read_dir(x)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "ovf"))
        .unwrap();
    let text = std::fs::read_to_string(&ovf).unwrap();
    let schema = match text.contains("http://schemas.dmtf.org/ovf/envelope/2") {
        true => "ovf/xsd/ovf2/dsp8023_2.0.1.xsd",
        false => "ovf/xsd/ovf1/dsp8023_1.1.1.xsd",
    };
    let out = Command::new(tool("xmllint"))
        .args(["--noout", "--nonet", "--schema"])
        .arg(repo().join(schema))
        .arg(&ovf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}\n{text}",
        ovf.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// [`fixed`] with more arguments to `fix`.
fn fixed_with(dir: &Path, pkg: &str, target: &str, out: &str, extra: &[&str]) -> i32 {
    let mut args = vec!["fix", "--target", target, pkg, out];
    args.extend(extra);
    let run = ovf_disk(dir, &args);
    let code = run.status.code().unwrap();
    assert!(
        code == 0 || code == 2,
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let v = ovf_disk_ok(dir, &["verify", out]);
    assert!(String::from_utf8_lossy(&v.stdout).ends_with("verified\n"));
    let x = dir.join(format!("{out}.x"));
    std::fs::create_dir_all(&x).unwrap();
    let tar = Command::new(tool("tar"))
        .args(["-xf", out, "-C"])
        .arg(&x)
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(tar.success());
    valid_by_schema(&x);
    let raw = format!("{out}.raw");
    qemu_img(
        dir,
        &[
            "convert",
            "-f",
            "vmdk",
            "-O",
            "raw",
            &format!("{out}.x/d.vmdk"),
            &raw,
        ],
    );
    assert_eq!(
        sha256_prefix(&dir.join(&raw), 1 << 20),
        sha256(&dir.join("src.raw"))
    );
    code
}

/// The raw image `testdata/peers/vmdk-convert-1m.vmdk` holds (see testdata/peers/README.md).
fn vmdk_convert_source() -> Vec<u8> {
    let mut b = vec![0u8; 1 << 20];
    b[..65536].fill(0xab);
    let text = b"open-vmdk vmdk-convert fixture for ovf-disk\n".repeat(100);
    b[300000..300000 + text.len()].copy_from_slice(&text);
    let tail: Vec<u8> = (0..=255u8).cycle().take(4096).collect();
    b[(1 << 20) - 4096..].copy_from_slice(&tail);
    b
}

#[test]
fn the_esxi_stream_rule_follows_what_each_writer_writes() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let fixture = repo().join("testdata/peers/vmdk-convert-1m.vmdk");
    std::fs::write(dir.join("src.raw"), vmdk_convert_source()).unwrap();
    // The fixture is what its README says: qemu-img and we read the same bytes from it.
    assert_eq!(
        qemu_raw_sha(dir, fixture.to_str().unwrap()),
        sha256(&dir.join("src.raw"))
    );
    let text = ovf("vmx-13", "", "", 0).replace("ovf:size=\"0\"", "ovf:size=\"SIZE(d.vmdk)\"");
    // Each writer: (name, what ESXi's host client and vCenter say of its stream layout: none,
    // a note, a refusal). qemu-img's files with data hold a marker after the last grain and the
    // rest of its cluster after that (ESXi's host client imports them; vCenter's content
    // library and ovftool do not); its empty files have no marker at all.
    for (writer, esxi, vcenter) in [
        ("ours", None, None),
        ("vmdk-convert", None, None),
        ("qemu", Some("note"), Some("refuse")),
        ("qemu-empty", Some("refuse"), Some("refuse")),
    ] {
        let pkg = PackageDir::new(&dir.join(writer));
        match writer {
            "ours" => {
                ours_stream(dir, "src.raw", "ours/d.vmdk");
            }
            "vmdk-convert" => {
                std::fs::copy(&fixture, pkg.path("d.vmdk")).unwrap();
            }
            "qemu" => qemu_to_vmdk(dir, "src.raw", "qemu/d.vmdk", "subformat=streamOptimized"),
            _ => qemu_create(&pkg.dir, "d.vmdk", "streamOptimized", "1M"),
        }
        pkg.ovf("p.ovf", &text);
        for (target, want) in [("esxi", esxi), ("vcenter", vcenter)] {
            let (code, findings) = lint(dir, &format!("{writer}/p.ovf"), target);
            let layout: Vec<&str> = findings
                .iter()
                .filter(|(r, _)| r == "stream-layout")
                .map(|(_, s)| s.as_str())
                .collect();
            assert_eq!(
                layout,
                Vec::from_iter(want),
                "{writer} {target}: {findings:?}"
            );
            assert_eq!(
                code == 2,
                want == Some("refuse"),
                "{writer} {target}: {findings:?}"
            );
        }
        // Every writer's file reads as the source.
        if writer != "qemu-empty" {
            ovf_disk_ok(
                dir,
                &[
                    "convert",
                    "-q",
                    "--to",
                    "raw",
                    &format!("{writer}/d.vmdk"),
                    &format!("{writer}.raw"),
                ],
            );
            assert_eq!(
                sha256(&dir.join(format!("{writer}.raw"))),
                sha256(&dir.join("src.raw")),
                "{writer}"
            );
        }
    }
}

#[test]
fn each_problem_is_flagged_and_fixed() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    sample_raw(&dir.join("src.raw"), 1 << 20);
    let sata = "<Item><rasd:ElementName>item</rasd:ElementName><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceSubType>vmware.sata.ahci</rasd:ResourceSubType><rasd:ResourceType>20</rasd:ResourceType></Item>";
    let clean = ovf("vmx-13", "", "", 0).replace("ovf:size=\"0\"", "ovf:size=\"SIZE(d.vmdk)\"");
    let cases: Vec<(&str, String, &str, bool, &str)> = vec![
        ("clean", clean.clone(), "ours", false, ""),
        (
            "tag manifest",
            clean.clone(),
            "ours",
            true,
            "manifest-spelling",
        ),
        (
            "wrong size",
            clean.replace("ovf:size=\"SIZE(d.vmdk)\"", "ovf:size=\"12345\""),
            "ours",
            false,
            "file-size",
        ),
        (
            "virtualbox family",
            clean.replace("vmx-13", "virtualbox-2.2"),
            "ours",
            false,
            "system-type",
        ),
        (
            "future family",
            clean.replace("vmx-13", "vmx-99"),
            "ours",
            false,
            "system-type",
        ),
        (
            "SATA on vmx-08",
            clean
                .replace("vmx-13", "vmx-08")
                .replace("</System>", &format!("</System>{sata}")),
            "ours",
            false,
            "device-version",
        ),
        ("qemu stream", clean.clone(), "qemu", false, "stream-layout"),
        (
            "format not stream",
            clean.clone(),
            "sparse",
            false,
            "disk-format",
        ),
    ];
    // vCenter: every case is one of its refusals (ESXi takes qemu-img's stream files).
    for (i, (case, text, writer, tag, rule)) in cases.iter().enumerate() {
        let pkg = package(dir, &format!("c{i}"), text, writer, *tag);
        let (code, findings) = lint(dir, &pkg, "vcenter");
        let refused: Vec<&str> = findings
            .iter()
            .filter(|(_, s)| s == "refuse")
            .map(|(r, _)| r.as_str())
            .collect();
        if rule.is_empty() {
            assert_eq!(code, 0, "{case}: {findings:?}");
            assert!(refused.is_empty(), "{case}: {findings:?}");
        } else {
            assert_eq!(code, 2, "{case}: {findings:?}");
            assert_eq!(refused, [*rule], "{case}: {findings:?}");
        }
        // fix repairs it: the output passes the same check.
        let out = format!("fixed{i}.ova");
        assert_eq!(fixed(dir, &pkg, "vcenter", &out), 0, "{case}");
        let (code, findings) = lint(dir, &out, "vcenter");
        assert_eq!(code, 0, "{case}: after fix {findings:?}");
    }
    // What each fix wrote for the hardware family.
    let fixed_ovf = |i: usize| {
        let x = dir.join(format!("fixed{i}.ova.x/p.ovf"));
        std::fs::read_to_string(x).unwrap()
    };
    assert!(fixed_ovf(3).contains(">vmx-10<"));
    assert!(fixed_ovf(4).contains(">vmx-21<"));
    assert!(fixed_ovf(5).contains(">vmx-10<"));
    // The input is never modified.
    let text = std::fs::read_to_string(dir.join("c3/p.ovf")).unwrap();
    assert!(text.contains("virtualbox-2.2"));
}

#[test]
fn what_each_target_refuses_and_what_fix_cannot_repair() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    sample_raw(&dir.join("src.raw"), 1 << 20);
    let base = ovf("vmx-13", "", "", 0).replace("ovf:size=\"0\"", "ovf:size=\"SIZE(d.vmdk)\"");
    // OVF 2.x: Workstation refuses it; fix writes it as 1.x where nothing 2.x-only is in it
    // (a StorageItem becomes an Item), and keeps it, saying why, where something is.
    let storage = "<StorageItem xmlns:sasd=\"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_StorageAllocationSettingData\"><sasd:AddressOnParent>0</sasd:AddressOnParent><sasd:ElementName>item</sasd:ElementName><sasd:HostResource>ovf:/disk/vmdisk1</sasd:HostResource><sasd:InstanceID>9</sasd:InstanceID><sasd:ResourceType>17</sasd:ResourceType></StorageItem>";
    let v2 = base.replace("ovf/envelope/1", "ovf/envelope/2").replace(
        "</VirtualHardwareSection>",
        &format!("{storage}</VirtualHardwareSection>"),
    );
    let pkg = package(dir, "v2", &v2, "ours", false);
    let (code, findings) = lint(dir, &pkg, "workstation");
    assert_eq!(code, 2);
    assert!(
        findings.contains(&("ovf-version".into(), "refuse".into())),
        "{findings:?}"
    );
    assert_eq!(lint(dir, &pkg, "esxi").0, 0);
    assert_eq!(fixed(dir, &pkg, "workstation", "v2.ova"), 0);
    let written = std::fs::read_to_string(dir.join("v2.ova.x/p.ovf")).unwrap();
    assert!(
        !written.contains("envelope/2") && !written.contains("StorageItem"),
        "{written}"
    );
    assert!(written.contains("<Item xmlns:sasd="), "{written}");
    run_ok(dir, "xmllint", &["--noout", "v2.ova.x/p.ovf"]);
    let info: serde_json::Value =
        serde_json::from_slice(&ovf_disk_ok(dir, &["info", "--json", "v2.ova"]).stdout).unwrap();
    assert_eq!(info["ovf_version"], "1.x", "{info}");
    let shared = v2.replace(
        "</VirtualSystem>",
        "</VirtualSystem><SharedDiskSection><Info>s</Info></SharedDiskSection>",
    );
    let pkg = package(dir, "v2shared", &shared, "ours", false);
    let run = ovf_disk(
        dir,
        &["fix", "--target", "workstation", &pkg, "v2shared.ova"],
    );
    assert_eq!(run.status.code(), Some(2));
    let said = String::from_utf8_lossy(&run.stdout);
    assert!(
        said.contains("SharedDiskSection has no OVF 1.x form"),
        "{said}"
    );
    // A section marked required that no product knows.
    let req = base.replace(
        "</VirtualSystem>",
        "<CustomSection ovf:required=\"true\"><Info>x</Info></CustomSection></VirtualSystem>",
    );
    // VMware's products refuse it; VirtualBox and virt-v2v skip sections they do not know.
    let pkg = package(dir, "req", &req, "ours", false);
    for (t, severity) in [
        ("esxi", "refuse"),
        ("vcenter", "refuse"),
        ("workstation", "refuse"),
        ("virtualbox", "note"),
        ("virt-v2v", "note"),
    ] {
        let (code, findings) = lint(dir, &pkg, t);
        assert_eq!(code == 2, severity == "refuse", "{t}");
        assert!(
            findings.contains(&("required-section".into(), severity.into())),
            "{t}: {findings:?}"
        );
    }
    // VirtualBox changes PVSCSI and vmxnet3; VMware's products take them.
    let vmw = base.replace("</System>", "</System><Item><rasd:ElementName>item</rasd:ElementName><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceSubType>VirtualSCSI</rasd:ResourceSubType><rasd:ResourceType>6</rasd:ResourceType></Item><Item><rasd:ElementName>item</rasd:ElementName><rasd:InstanceID>4</rasd:InstanceID><rasd:ResourceSubType>VmxNet3</rasd:ResourceSubType><rasd:ResourceType>10</rasd:ResourceType></Item>");
    let pkg = package(dir, "vmw", &vmw, "ours", false);
    let (code, findings) = lint(dir, &pkg, "virtualbox");
    assert_eq!(code, 0);
    assert_eq!(
        findings
            .iter()
            .filter(|(r, s)| r == "device-type" && s == "change")
            .count(),
        2,
        "{findings:?}"
    );
    assert_eq!(lint(dir, &pkg, "esxi").0, 0);
    // A tag-spelled manifest: VirtualBox reads it.
    let pkg = package(dir, "tag", &base, "ours", true);
    let (code, findings) = lint(dir, &pkg, "virtualbox");
    assert_eq!(code, 0);
    assert!(
        findings.contains(&("manifest-spelling".into(), "note".into())),
        "{findings:?}"
    );
    // Text: one finding a line, with the file and element.
    let out = ovf_disk(dir, &["check", "--target", "workstation", "v2/p.ovf"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("REFUSE ovf-version: p.ovf Envelope: an OVF 2.x envelope"),
        "{text}"
    );
}

#[test]
fn archives_with_the_descriptor_late_pax_headers_or_resource_forks() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    sample_raw(&dir.join("src.raw"), 1 << 20);
    let clean = ovf("vmx-13", "", "", 0).replace("ovf:size=\"0\"", "ovf:size=\"SIZE(d.vmdk)\"");
    package(dir, "ar", &clean, "ours", false);
    std::fs::write(dir.join("ar/._d.vmdk"), b"\0\x05\x16\x07AppleDouble").unwrap();
    // GNU tar writes each archive: plain ustar with the disk first; POSIX pax (an extended
    // header before each member); ustar with a macOS resource fork.
    for (name, format, members, rule, severity) in [
        (
            "late.ova",
            "ustar",
            "d.vmdk p.ovf p.mf",
            "descriptor-position",
            "refuse",
        ),
        (
            "pax.ova",
            "posix",
            "p.ovf p.mf d.vmdk",
            "tar-extensions",
            "note",
        ),
        (
            "fork.ova",
            "ustar",
            "p.ovf p.mf d.vmdk ._d.vmdk",
            "resource-fork",
            "note",
        ),
    ] {
        let mut args = vec!["--format", format, "-cf"];
        let out = format!("../{name}");
        args.push(&out);
        args.extend(members.split(' '));
        let status = Command::new(tool("tar"))
            .args(&args)
            .current_dir(dir.join("ar"))
            .status()
            .unwrap();
        assert!(status.success(), "{name}");
        // Read like any package (integrity intact)...
        let v = ovf_disk_ok(dir, &["verify", name]);
        assert!(
            String::from_utf8_lossy(&v.stdout).ends_with("verified\n"),
            "{name}"
        );
        // ...flagged for ESXi (a note for pax headers: no VMware refusal on record), a note
        // for virt-v2v (which reads any order and pax)...
        let (code, findings) = lint(dir, name, "esxi");
        assert!(
            findings.contains(&(rule.to_string(), severity.to_string())),
            "{name}: {findings:?}"
        );
        assert_eq!(code, if severity == "refuse" { 2 } else { 0 }, "{name}");
        let (code, findings) = lint(dir, name, "virt-v2v");
        assert_eq!(code, 0, "{name}: {findings:?}");
        assert!(
            findings.contains(&(rule.to_string(), "note".to_string())),
            "{name}: {findings:?}"
        );
        // ...and fixed: descriptor first, plain ustar, no resource fork.
        let fixed_name = format!("fixed-{name}");
        assert_eq!(fixed(dir, name, "esxi", &fixed_name), 0, "{name}");
        let (code, findings) = lint(dir, &fixed_name, "esxi");
        assert_eq!(code, 0, "{name}: {findings:?}");
        assert!(
            !findings.iter().any(|(r, _)| r == rule),
            "{name}: {findings:?}"
        );
        let list = Command::new(tool("tar"))
            .args(["-tf", &fixed_name])
            .current_dir(dir)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&list.stdout),
            "p.ovf\np.mf\nd.vmdk\n",
            "{name}"
        );
    }
}

#[test]
fn devices_vmware_refuses_are_repaired_or_dropped_when_allowed() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    sample_raw(&dir.join("src.raw"), 1 << 20);
    // As VirtualBox exports them: an IDE controller of subtype PIIX4 and an Ensoniq sound card.
    let ide = "<Item><rasd:Address>0</rasd:Address><rasd:ElementName>item</rasd:ElementName><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceSubType>PIIX4</rasd:ResourceSubType><rasd:ResourceType>5</rasd:ResourceType></Item>";
    let sound = "<Item><rasd:AddressOnParent>3</rasd:AddressOnParent><rasd:ElementName>item</rasd:ElementName><rasd:InstanceID>5</rasd:InstanceID><rasd:ResourceSubType>ensoniq1371</rasd:ResourceSubType><rasd:ResourceType>35</rasd:ResourceType></Item>";
    let extra = "<vmw:ExtraConfig xmlns:vmw=\"http://www.vmware.com/schema/ovf\" vmw:key=\"disk.enableUUID\" vmw:value=\"TRUE\"/>";
    let text = ovf("vmx-13", &format!("{ide}{sound}{extra}"), "", 0)
        .replace("ovf:size=\"0\"", "ovf:size=\"SIZE(d.vmdk)\"");
    let pkg = package(dir, "vbox", &text, "ours", false);
    let (code, findings) = lint(dir, &pkg, "esxi");
    assert_eq!(code, 2);
    for rule in ["device-subtype", "device-unsupported"] {
        assert!(
            findings.contains(&(rule.to_string(), "refuse".to_string())),
            "{rule}: {findings:?}"
        );
    }
    assert!(
        findings.contains(&("extra-config".to_string(), "change".to_string())),
        "{findings:?}"
    );
    // virt-v2v and VirtualBox take both.
    assert_eq!(lint(dir, &pkg, "virt-v2v").0, 0);
    // Without --allow-drop the sound card stays: the subtype is repaired, the package still
    // refused, and the output says what --allow-drop would do.
    let out = ovf_disk(dir, &["fix", "--target", "esxi", &pkg, "kept.ova"]);
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("ResourceSubType removed"), "{said}");
    assert!(
        said.contains("device-unsupported") && said.contains("--allow-drop"),
        "{said}"
    );
    let (_, findings) = lint(dir, "kept.ova", "esxi");
    assert!(
        !findings.iter().any(|(r, _)| r == "device-subtype"),
        "{findings:?}"
    );
    assert!(
        findings.iter().any(|(r, _)| r == "extra-config"),
        "{findings:?}"
    );
    // With it, the card is removed and listed; the package passes, verifies and its disk reads.
    assert_eq!(
        fixed_with(dir, &pkg, "esxi", "dropped.ova", &["--allow-drop"]),
        0
    );
    let (code, findings) = lint(dir, "dropped.ova", "esxi");
    assert_eq!(code, 0, "{findings:?}");
    assert!(
        !findings.iter().any(|(r, _)| r == "extra-config"),
        "{findings:?}"
    );
    let written = std::fs::read_to_string(dir.join("dropped.ova.x/p.ovf")).unwrap();
    assert!(
        !written.contains("ensoniq1371") && !written.contains("PIIX4"),
        "{written}"
    );
    assert!(!written.contains("ExtraConfig"), "{written}");
    assert!(written.contains("<rasd:Address>0</rasd:Address><rasd:ElementName>item</rasd:ElementName><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceType>5</rasd:ResourceType>"), "{written}");
    let json = ovf_disk_ok(
        dir,
        &[
            "fix",
            "--json",
            "--force",
            "--target",
            "esxi",
            "--allow-drop",
            &pkg,
            "dropped.ova",
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let changes: Vec<&str> = v["changes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c.as_str())
        .collect();
    assert!(
        changes
            .iter()
            .any(|c| c.contains("InstanceID 5") && c.contains("removed (--allow-drop)")),
        "{changes:?}"
    );
    assert!(
        changes
            .iter()
            .any(|c| c.contains("ExtraConfig: removed (--allow-drop)")),
        "{changes:?}"
    );
    // The input is never modified.
    assert!(std::fs::read_to_string(dir.join("vbox/p.ovf"))
        .unwrap()
        .contains("ensoniq1371"));
}

/// The rules no other test trips (`manifest-missing`, `manifest-algorithm`, `capacity`,
/// `collection`): each tripped by one package and not by another, for every target, and a clean
/// package with no finding at all anywhere.
#[test]
fn every_rule_is_tripped_and_cleared_for_each_target() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    sample_raw(&dir.join("src.raw"), 2 << 20);
    ours_stream(dir, "src.raw", "d.vmdk");
    let disk = std::fs::read(dir.join("d.vmdk")).unwrap();
    let targets = ["esxi", "vcenter", "workstation", "virtualbox", "virt-v2v"];
    // (name, capacity in MiB, systems, manifest algorithm or none)
    let build = |name: &str, mib: u64, systems: usize, alg: Option<&str>| -> String {
        let pkg = PackageDir::new(&dir.join(name));
        pkg.file("d.vmdk", &disk);
        let system = |id: &str| {
            format!("<VirtualSystem ovf:id=\"{id}\"><Info>vm</Info><VirtualHardwareSection xmlns:rasd=\"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData\"><Info>hw</Info><System xmlns:vssd=\"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData\"><vssd:ElementName>Virtual Hardware Family</vssd:ElementName><vssd:InstanceID>0</vssd:InstanceID><vssd:VirtualSystemType>vmx-13</vssd:VirtualSystemType></System><Item><rasd:ElementName>item</rasd:ElementName><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceSubType>lsilogic</rasd:ResourceSubType><rasd:ResourceType>6</rasd:ResourceType></Item><Item><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:ElementName>item</rasd:ElementName><rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource><rasd:InstanceID>2</rasd:InstanceID><rasd:Parent>1</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item></VirtualHardwareSection></VirtualSystem>\n")
        };
        let body = if systems == 1 {
            system("vm")
        } else {
            format!("<VirtualSystemCollection ovf:id=\"pair\"><Info>two</Info>{}{}</VirtualSystemCollection>\n", system("a"), system("b"))
        };
        let text = envelope(&file_ref("d.vmdk", disk.len(), ""), &disk_entry(mib), &body);
        pkg.file("p.ovf", text.as_bytes());
        if let Some(alg) = alg {
            pkg.manifest("p.mf", &["p.ovf", "d.vmdk"], alg, MfStyle::Ovftool);
        }
        format!("{name}/p.ovf")
    };
    let clean = build("clean", 2, 1, Some("SHA1"));
    for t in targets {
        assert_eq!(lint(dir, &clean, t), (0, Vec::new()), "clean {t}");
    }
    fn vmware(t: &str) -> bool {
        matches!(t, "esxi" | "vcenter" | "workstation")
    }
    // (package, rule, its severity for each target: `None` where it does not apply)
    type Severity<'a> = &'a dyn Fn(&str) -> Option<&'static str>;
    let cases: Vec<(String, &str, Severity<'_>)> = vec![
        (
            build("no-mf", 2, 1, None),
            "manifest-missing",
            &|t: &str| vmware(t).then_some("note"),
        ),
        (
            build("sha256", 2, 1, Some("SHA256")),
            "manifest-algorithm",
            &|t: &str| matches!(t, "esxi" | "workstation").then_some("note"),
        ),
        // ESXi refuses a disk larger than its declared capacity; VirtualBox and virt-v2v size
        // it from the file (a note: only DSP0243 says otherwise).
        (
            build("larger", 1, 1, Some("SHA1")),
            "capacity",
            &|t: &str| Some(if vmware(t) { "refuse" } else { "note" }),
        ),
        (
            build("smaller", 4, 1, Some("SHA1")),
            "capacity",
            &|_: &str| Some("change"),
        ),
        // virt-v2v finds no system in a collection; for a standalone host no refusal is on
        // record (a note); VirtualBox and vCenter deploy them.
        (
            build("pair", 2, 2, Some("SHA1")),
            "collection",
            &|t: &str| match t {
                "esxi" | "workstation" => Some("note"),
                "virt-v2v" => Some("refuse"),
                _ => None,
            },
        ),
    ];
    for (pkg, rule, severity) in &cases {
        for t in targets {
            let (code, findings) = lint(dir, pkg, t);
            match severity(t) {
                Some(severity) => {
                    assert_eq!(
                        findings,
                        [(rule.to_string(), severity.to_string())],
                        "{pkg} {t}"
                    );
                    assert_eq!(code == 2, severity == "refuse", "{pkg} {t}");
                }
                None => assert_eq!((code, findings), (0, Vec::new()), "{pkg} {t}"),
            }
        }
    }
}

/// What `export` writes is valid by DMTF's envelope schema too.
#[test]
fn exported_envelopes_are_valid_by_the_dmtf_schema() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    sample_raw(&dir.join("src.raw"), 1 << 20);
    ovf_disk_ok(dir, &["export", "-q", "src.raw", "app.ova"]);
    let x = dir.join("app.x");
    std::fs::create_dir_all(&x).unwrap();
    let tar = Command::new(tool("tar"))
        .args(["-xf", "app.ova", "-C"])
        .arg(&x)
        .current_dir(dir)
        .status()
        .unwrap();
    assert!(tar.success());
    valid_by_schema(&x);
}
