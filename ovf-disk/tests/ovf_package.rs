//! OVF packages end to end: packages laid out the way vSphere and VirtualBox ship them (an
//! envelope with a hardware section, a manifest with SHA1 or SHA256, stream-optimized disks),
//! as a folder and as an OVA; `info`, `verify` (a tampered disk fails, naming it), and `import`
//! (thick disks whose sha256 equals qemu-img's raw reading of the source disks; nothing left in
//! OUTDIR after a failure); unsafe OVA members and DTDs refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::path::Path;

use common::*;
use ovf_disk::ovf::manifest::Algorithm;

fn envelope(ns: &str, disks: &[(&str, u64, u64)]) -> String {
    let mut refs = String::new();
    let mut section = String::new();
    let mut items = String::new();
    for (i, (href, size, capacity)) in disks.iter().enumerate() {
        refs.push_str(&format!(
            "    <File ovf:href=\"{href}\" ovf:id=\"file{i}\" ovf:size=\"{size}\"/>\n"
        ));
        section.push_str(&format!("    <Disk ovf:capacity=\"{}\" ovf:capacityAllocationUnits=\"byte * 2^20\" ovf:diskId=\"vmdisk{i}\" ovf:fileRef=\"file{i}\" ovf:format=\"http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized\"/>\n", capacity >> 20));
        items.push_str(&format!("      <Item><rasd:AddressOnParent>{i}</rasd:AddressOnParent><rasd:ElementName>Hard disk {i}</rasd:ElementName><rasd:HostResource>ovf:/disk/vmdisk{i}</rasd:HostResource><rasd:InstanceID>{}</rasd:InstanceID><rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>\n", 10 + i));
    }
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope vmw:buildId="build-1" xmlns="{ns}" xmlns:ovf="{ns}" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
  <References>
{refs}  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
{section}  </DiskSection>
  <NetworkSection><Info>The list of logical networks</Info><Network ovf:name="VM Network"><Description>The VM Network network</Description></Network></NetworkSection>
  <VirtualSystem ovf:id="appliance">
    <Info>A virtual machine</Info>
    <Name>appliance</Name>
    <OperatingSystemSection ovf:id="101" vmw:osType="otherLinux64Guest"><Info>The kind of installed guest operating system</Info><Description>Other Linux (64-bit)</Description></OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <System><vssd:ElementName>Virtual Hardware Family</vssd:ElementName><vssd:InstanceID>0</vssd:InstanceID><vssd:VirtualSystemType>vmx-14</vssd:VirtualSystemType></System>
      <Item><rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits><rasd:ElementName>2 virtual CPU(s)</rasd:ElementName><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>2</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:ElementName>2048MB of memory</rasd:ElementName><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>2048</rasd:VirtualQuantity></Item>
      <Item><rasd:Address>0</rasd:Address><rasd:ElementName>SCSI controller 0</rasd:ElementName><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceSubType>lsilogic</rasd:ResourceSubType><rasd:ResourceType>6</rasd:ResourceType></Item>
{items}      <Item><rasd:AutomaticAllocation>true</rasd:AutomaticAllocation><rasd:Connection>VM Network</rasd:Connection><rasd:ElementName>Network adapter 1</rasd:ElementName><rasd:InstanceID>20</rasd:InstanceID><rasd:ResourceSubType>VmxNet3</rasd:ResourceSubType><rasd:ResourceType>10</rasd:ResourceType></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"#
    )
}

/// Builds a package in `dir`: two stream-optimized disks (one from qemu-img's raw source, one
/// written by us), an envelope and a manifest with `alg`. Returns the raw sources' sha256.
fn build_package(dir: &Path, ns: &str, alg: Algorithm) -> Vec<String> {
    sample_raw(&dir.join("src1.raw"), 6 << 20);
    sample_raw(&dir.join("src2.raw"), 3 << 20);
    ovf_disk_ok(
        dir,
        &[
            "convert",
            "-q",
            "src1.raw",
            "appliance-disk1.vmdk",
            "--to",
            "streamOptimized",
        ],
    );
    qemu_to_vmdk(
        dir,
        "src2.raw",
        "appliance-disk2.vmdk",
        "subformat=streamOptimized",
    );
    let pkg = PackageDir::new(dir);
    let ovf = envelope(
        ns,
        &[
            (
                "appliance-disk1.vmdk",
                pkg.size("appliance-disk1.vmdk"),
                6 << 20,
            ),
            (
                "appliance-disk2.vmdk",
                pkg.size("appliance-disk2.vmdk"),
                3 << 20,
            ),
        ],
    );
    pkg.file("appliance.ovf", ovf.as_bytes()).manifest(
        "appliance.mf",
        &[
            "appliance.ovf",
            "appliance-disk1.vmdk",
            "appliance-disk2.vmdk",
        ],
        alg.as_str(),
        MfStyle::Ovftool,
    );
    vec![sha256(&dir.join("src1.raw")), sha256(&dir.join("src2.raw"))]
}

/// The package of [`build_package`] (OVF 1.x, SHA256) as the OVA `name` in `dir`, its members in
/// VMware's order; the raw sources' sha256.
fn appliance_ova(dir: &Path, name: &str) -> Vec<String> {
    let shas = build_package(
        dir,
        "http://schemas.dmtf.org/ovf/envelope/1",
        Algorithm::Sha256,
    );
    make_ova(
        dir,
        name,
        &[
            "appliance.ovf",
            "appliance.mf",
            "appliance-disk1.vmdk",
            "appliance-disk2.vmdk",
        ],
    );
    shas
}

fn make_ova(dir: &Path, name: &str, members: &[&str]) {
    PackageDir::new(dir).ova(name, members);
}

#[test]
fn folder_and_ova_packages_verify_and_import() {
    for (ns, alg) in [
        ("http://schemas.dmtf.org/ovf/envelope/1", Algorithm::Sha256),
        ("http://schemas.dmtf.org/ovf/envelope/1", Algorithm::Sha1),
        ("http://schemas.dmtf.org/ovf/envelope/2", Algorithm::Sha512),
    ] {
        let d = tempfile::tempdir().unwrap();
        let shas = build_package(d.path(), ns, alg);
        make_ova(
            d.path(),
            "appliance.ova",
            &[
                "appliance.ovf",
                "appliance.mf",
                "appliance-disk1.vmdk",
                "appliance-disk2.vmdk",
            ],
        );
        // `tar` reads our OVA (a peer's check of the archive), members in order.
        let list = std::process::Command::new("tar")
            .args(["tf", "appliance.ova"])
            .current_dir(d.path())
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&list.stdout),
            "appliance.ovf\nappliance.mf\nappliance-disk1.vmdk\nappliance-disk2.vmdk\n"
        );
        for pkg in ["appliance.ovf", "appliance.ova"] {
            let v = ovf_disk_ok(d.path(), &["verify", "--json", pkg]);
            let v: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
            assert_eq!(v["ok"], true, "{pkg}: {v}");
            let info: serde_json::Value =
                serde_json::from_slice(&ovf_disk_ok(d.path(), &["info", "--json", pkg]).stdout)
                    .unwrap();
            assert_eq!(info["systems"][0]["cpus"], 2);
            assert_eq!(info["systems"][0]["memory"], 2u64 << 30);
            assert_eq!(info["disks"][1]["capacity"], 3u64 << 20);
            assert_eq!(info["systems"][0]["controllers"][0], "SCSI (lsilogic)");
            // Raw disks one by one, thick VMDKs side by side: the same bytes either way.
            for raw in [false, true] {
                let out = format!("out-{pkg}-{raw}");
                let at_once = if raw { "1" } else { "2" };
                let mut args = vec!["import", "-q", pkg, &out, "--disks-at-once", at_once];
                if raw {
                    args.extend(["--format", "raw"]);
                }
                ovf_disk_ok(d.path(), &args);
                let od = d.path().join(&out);
                for (i, sha) in shas.iter().enumerate() {
                    let disk = if raw {
                        format!("appliance-disk{}.raw", i + 1)
                    } else {
                        format!("appliance-disk{}-thick.vmdk", i + 1)
                    };
                    let got = if raw {
                        sha256(&od.join(&disk))
                    } else {
                        qemu_raw_sha(&od, &disk)
                    };
                    assert_eq!(&got, sha, "{pkg} disk {} raw={raw}", i + 1);
                    if raw {
                        assert_no_holes(&od.join(&disk));
                    } else {
                        assert_no_holes(
                            &od.join(format!("appliance-disk{}-thick-flat.vmdk", i + 1)),
                        );
                    }
                }
                // The output is a package of its own: its manifest verifies, and check reads
                // every disk clean.
                let written = format!("{out}/appliance.ovf");
                let verified = ovf_disk_ok(d.path(), &["verify", &written]);
                assert!(String::from_utf8_lossy(&verified.stdout).ends_with("verified\n"));
                ovf_disk_ok(d.path(), &["check", &written]);
                // The new envelope references the thick disks and parses.
                let text = std::fs::read_to_string(od.join("appliance.ovf")).unwrap();
                let want = if raw {
                    "appliance-disk1.raw"
                } else {
                    "appliance-disk1-thick.vmdk"
                };
                assert!(text.contains(&format!("href=\"{want}\"")), "{text}");
                // A raw disk is named raw (as oVirt names one), a thick one by its type.
                let format = if raw {
                    "ovf:format=\"http://en.wikipedia.org/wiki/Byte\""
                } else {
                    "vmdk.html#monolithicFlat\""
                };
                assert!(text.contains(format), "{text}");
                let again: serde_json::Value = serde_json::from_slice(
                    &ovf_disk_ok(&od, &["info", "--json", "appliance.ovf"]).stdout,
                )
                .unwrap();
                assert_eq!(again["files"][0]["present_size"], again["files"][0]["size"]);
            }
        }
    }
}

#[test]
fn tampered_packages_fail_and_import_nothing() {
    let d = tempfile::tempdir().unwrap();
    build_package(
        d.path(),
        "http://schemas.dmtf.org/ovf/envelope/1",
        Algorithm::Sha256,
    );
    // Flip one byte inside a compressed grain of disk 2.
    let p = d.path().join("appliance-disk2.vmdk");
    let mut bytes = std::fs::read(&p).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x40;
    std::fs::write(&p, bytes).unwrap();
    make_ova(
        d.path(),
        "bad.ova",
        &[
            "appliance.ovf",
            "appliance.mf",
            "appliance-disk1.vmdk",
            "appliance-disk2.vmdk",
        ],
    );
    for pkg in ["appliance.ovf", "bad.ova"] {
        let out = ovf_disk(d.path(), &["verify", pkg]);
        assert_eq!(out.status.code(), Some(1), "{pkg}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("appliance-disk2.vmdk: SHA256 mismatch")
                && text.contains("appliance-disk1.vmdk: SHA256 ok"),
            "{text}"
        );
        let out = ovf_disk(d.path(), &["import", "-q", pkg, "outdir"]);
        assert_eq!(out.status.code(), Some(1), "{pkg}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("verification failed"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !d.path().join("outdir").exists()
                || std::fs::read_dir(d.path().join("outdir")).unwrap().count() == 0
        );
    }
    // A missing file and an unlisted one.
    std::fs::write(d.path().join("appliance.mf"), "SHA256(appliance.ovf)= 0000000000000000000000000000000000000000000000000000000000000000\nSHA256(gone.vmdk)= 0000000000000000000000000000000000000000000000000000000000000000\n").unwrap();
    let text = String::from_utf8_lossy(&ovf_disk(d.path(), &["verify", "appliance.ovf"]).stdout)
        .into_owned();
    assert!(
        text.contains("gone.vmdk: SHA256 missing")
            && text.contains("appliance-disk1.vmdk: not listed in the manifest"),
        "{text}"
    );
}

#[test]
fn a_disk_that_fails_midway_leaves_no_output() {
    let d = tempfile::tempdir().unwrap();
    build_package(
        d.path(),
        "http://schemas.dmtf.org/ovf/envelope/1",
        Algorithm::Sha256,
    );
    // Damage disk 2 and drop the manifest, so verification cannot catch it: the import fails
    // while inflating disk 2, after disk 1 was written, and disk 1 is removed.
    let p = d.path().join("appliance-disk2.vmdk");
    let mut bytes = std::fs::read(&p).unwrap();
    let len = bytes.len();
    bytes[len / 2..len / 2 + 64].fill(0x55);
    std::fs::write(&p, bytes).unwrap();
    std::fs::remove_file(d.path().join("appliance.mf")).unwrap();
    // One by one, and both disks at once (disk 1 then completes beside the failing one).
    for at_once in ["1", "2"] {
        let out = ovf_disk(
            d.path(),
            &[
                "import",
                "-q",
                "appliance.ovf",
                "outdir",
                "--disks-at-once",
                at_once,
            ],
        );
        assert_eq!(out.status.code(), Some(1));
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("disk vmdisk1"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The folder the import created is gone again.
        assert!(
            !d.path().join("outdir").exists(),
            "--disks-at-once {at_once}"
        );
    }
}

#[test]
fn unsafe_archives_and_envelopes_are_refused() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("a.ovf"),
        envelope("http://schemas.dmtf.org/ovf/envelope/1", &[]),
    )
    .unwrap();
    // Raw tar headers for names the tar crate's builder would refuse to write.
    let tar_with = |name: &str, kind: u8, link: &str| {
        let ovf = std::fs::read(d.path().join("a.ovf")).unwrap();
        let mut out = tar_member(b"a.ovf", b'0', "", &ovf, None);
        out.extend(tar_member(name.as_bytes(), kind, link, b"x", None));
        out.extend_from_slice(&[0u8; 1024]);
        out
    };
    for (name, kind, link, why) in [
        ("../evil.vmdk", b'0', "", "'..'"),
        ("/etc/evil.vmdk", b'0', "", "absolute"),
        ("link.vmdk", b'2', "/etc/passwd", "a link"),
        ("hard.vmdk", b'1', "a.ovf", "a link"),
        ("dev.vmdk", b'3', "", "not a regular file"),
    ] {
        std::fs::write(d.path().join("x.ova"), tar_with(name, kind, link)).unwrap();
        let out = ovf_disk(d.path(), &["verify", "x.ova"]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("x.ova: tar member") && err.contains(why),
            "{name}: {err}"
        );
    }
    // A descriptor that comes late is read when it is the only one; with two, only the first
    // member can be it.
    std::fs::write(d.path().join("z.txt"), b"z").unwrap();
    make_ova(d.path(), "late.ova", &["z.txt", "a.ovf"]);
    ovf_disk_ok(d.path(), &["info", "late.ova"]);
    std::fs::copy(d.path().join("a.ovf"), d.path().join("b.ovf")).unwrap();
    make_ova(d.path(), "late.ova", &["z.txt", "a.ovf", "b.ovf"]);
    let err =
        String::from_utf8_lossy(&ovf_disk(d.path(), &["info", "late.ova"]).stderr).into_owned();
    assert!(err.contains("must be the first member"), "{err}");
    // A DTD with entities: refused, not expanded.
    std::fs::write(d.path().join("dtd.ovf"), "<?xml version=\"1.0\"?>\n<!DOCTYPE Envelope [<!ENTITY a \"aaaa\"><!ENTITY b \"&a;&a;&a;&a;\">]>\n<Envelope xmlns=\"http://schemas.dmtf.org/ovf/envelope/1\"><References/></Envelope>\n").unwrap();
    let out = ovf_disk(d.path(), &["info", "dtd.ovf"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("dtd.ovf"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An OVA exported by us is read by tar, qemu-img (its disks) and `sha256sum -c` (its
/// manifest), and imports back to the same disks; bare disks get an envelope of their own.
#[test]
fn export_then_import_round_trips() {
    let d = tempfile::tempdir().unwrap();
    let shas = build_package(
        d.path(),
        "http://schemas.dmtf.org/ovf/envelope/1",
        Algorithm::Sha1,
    );
    // Make disk 1 a thick VMDK first, so export has a conversion to do.
    ovf_disk_ok(d.path(), &["import", "-q", "appliance.ovf", "thick"]);
    let thick = d.path().join("thick");
    ovf_disk_ok(
        &thick,
        &["export", "-q", "appliance.ovf", "../exported.ova"],
    );
    let list = std::process::Command::new("tar")
        .args(["tf", "exported.ova"])
        .current_dir(d.path())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&list.stdout),
        "appliance.ovf\nappliance.mf\nappliance-disk1-thick.vmdk\nappliance-disk2-thick.vmdk\n"
    );
    let x = d.path().join("x");
    std::fs::create_dir(&x).unwrap();
    assert!(std::process::Command::new("tar")
        .args(["xf", "../exported.ova"])
        .current_dir(&x)
        .status()
        .unwrap()
        .success());
    // The manifest, checked the way sha256sum checks.
    let mf = std::fs::read_to_string(x.join("appliance.mf")).unwrap();
    let sums = sha256sum_lines(&mf);
    std::fs::write(x.join("SHA256SUMS"), sums).unwrap();
    assert!(std::process::Command::new("sha256sum")
        .args(["-c", "--quiet", "SHA256SUMS"])
        .current_dir(&x)
        .status()
        .unwrap()
        .success());
    for (i, sha) in shas.iter().enumerate() {
        let disk = format!("appliance-disk{}-thick.vmdk", i + 1);
        assert_eq!(
            &qemu_raw_sha(&x, &disk),
            sha,
            "qemu-img reads exported disk {}",
            i + 1
        );
        let info: serde_json::Value =
            serde_json::from_slice(&ovf_disk_ok(&x, &["info", "--json", &disk]).stdout).unwrap();
        assert_eq!(info["create_type"], "streamOptimized");
        assert_eq!(info["extents"][0]["sparse"]["metadata_from"], "footer");
    }
    assert!(std::fs::read_to_string(x.join("appliance.ovf"))
        .unwrap()
        .contains("vmdk.html#streamOptimized"));
    // Imported back: the same disks.
    ovf_disk_ok(d.path(), &["verify", "exported.ova"]);
    ovf_disk_ok(
        d.path(),
        &["import", "-q", "exported.ova", "back", "--format", "raw"],
    );
    for (i, sha) in shas.iter().enumerate() {
        assert_eq!(
            &sha256(
                &d.path()
                    .join(format!("back/appliance-disk{}-thick.raw", i + 1))
            ),
            sha
        );
    }
    // Bare disks (a raw image and a VMDK) get an envelope made for them.
    ovf_disk_ok(
        d.path(),
        &[
            "export",
            "-q",
            "src1.raw",
            "appliance-disk2.vmdk",
            "bare.ova",
        ],
    );
    let info: serde_json::Value =
        serde_json::from_slice(&ovf_disk_ok(d.path(), &["info", "--json", "bare.ova"]).stdout)
            .unwrap();
    assert_eq!(info["disks"].as_array().unwrap().len(), 2);
    assert_eq!(info["disks"][0]["capacity"], 6u64 << 20);
    ovf_disk_ok(
        d.path(),
        &["import", "-q", "bare.ova", "bare", "--format", "raw"],
    );
    assert_eq!(sha256(&d.path().join("bare/bare-disk1.raw")), shas[0]);
    assert_eq!(sha256(&d.path().join("bare/bare-disk2.raw")), shas[1]);
    // Each shipped disk's embedded descriptor names it as the archive does (not the name it
    // was staged under), so the member read on its own opens as itself.
    let listing = std::process::Command::new("tar")
        .args(["xf", "bare.ova", "-C", "bare", "bare-disk1.vmdk"])
        .current_dir(d.path())
        .status()
        .unwrap();
    assert!(listing.success());
    let member: serde_json::Value = serde_json::from_slice(
        &ovf_disk_ok(d.path(), &["info", "--json", "bare/bare-disk1.vmdk"]).stdout,
    )
    .unwrap();
    assert_eq!(member["extents"][0]["file"], "bare-disk1.vmdk", "{member}");
    // No staged files left behind, and an existing OVA is not replaced without --force.
    assert!(std::fs::read_dir(d.path()).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .contains(".export-")));
    assert_eq!(
        ovf_disk(d.path(), &["export", "src1.raw", "bare.ova"])
            .status
            .code(),
        Some(1)
    );
}

fn import_from_pipe(dir: &Path, ova: &str, outdir: &str) -> std::process::Output {
    let input = std::fs::File::open(dir.join(ova)).unwrap();
    std::process::Command::new(env!("CARGO_BIN_EXE_ovf-disk"))
        .args(["import", "-q", "-", outdir])
        .current_dir(dir)
        .stdin(std::process::Stdio::from(input))
        .output()
        .unwrap()
}

/// `import -`: the OVA read once from a pipe, each disk digested while inflated.
#[test]
fn streaming_import_from_a_pipe() {
    let d = tempfile::tempdir().unwrap();
    let shas = appliance_ova(d.path(), "a.ova");
    let out = import_from_pipe(d.path(), "a.ova", "piped");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (i, sha) in shas.iter().enumerate() {
        assert_eq!(
            &qemu_raw_sha(
                &d.path().join("piped"),
                &format!("appliance-disk{}-thick.vmdk", i + 1)
            ),
            sha
        );
    }
    // A damaged disk: the digest fails after inflating it, and nothing is left.
    let p = d.path().join("appliance-disk2.vmdk");
    let intact = std::fs::read(&p).unwrap();
    let mut bytes = intact.clone();
    let n = bytes.len();
    bytes[n - 2000] ^= 1; // in the grain directory / footer area: still inflates, digest differs
    std::fs::write(&p, bytes).unwrap();
    make_ova(
        d.path(),
        "bad.ova",
        &[
            "appliance.ovf",
            "appliance.mf",
            "appliance-disk1.vmdk",
            "appliance-disk2.vmdk",
        ],
    );
    let out = import_from_pipe(d.path(), "bad.ova", "bad");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("verification failed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!d.path().join("bad").exists());
    // The manifest after the disks (VirtualBox's order, not ovftool's): the disks' digests
    // are kept until it arrives, so the damaged disk is still caught, and nothing is left...
    let late = [
        "appliance.ovf",
        "appliance-disk1.vmdk",
        "appliance-disk2.vmdk",
        "appliance.mf",
    ];
    make_ova(d.path(), "late.ova", &late);
    let out = import_from_pipe(d.path(), "late.ova", "late");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("verification failed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!d.path().join("late").exists());
    // ... and intact disks import.
    std::fs::write(&p, &intact).unwrap();
    make_ova(d.path(), "late-ok.ova", &late);
    let out = import_from_pipe(d.path(), "late-ok.ova", "late-ok");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        &qemu_raw_sha(&d.path().join("late-ok"), "appliance-disk2-thick.vmdk"),
        &shas[1]
    );
}

/// Disk files stored gzip-compressed and in chunks (DSP0243 §5.3), imported from a folder, an
/// OVA in place and (gzip) from a pipe, bounded by the declared capacity.
#[test]
fn gzip_and_chunked_disk_files() {
    use std::io::Write;
    let d = tempfile::tempdir().unwrap();
    let shas = build_package(
        d.path(),
        "http://schemas.dmtf.org/ovf/envelope/1",
        Algorithm::Sha256,
    );
    // disk1 gzip-compressed under its own name; disk2 in 256 KiB chunks.
    let disk1 = std::fs::read(d.path().join("appliance-disk1.vmdk")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&disk1).unwrap();
    let gz = gz.finish().unwrap();
    let disk2 = std::fs::read(d.path().join("appliance-disk2.vmdk")).unwrap();
    let g = d.path().join("g");
    std::fs::create_dir(&g).unwrap();
    std::fs::write(g.join("appliance-disk1.vmdk"), &gz).unwrap();
    let mut chunks = Vec::new();
    for (i, c) in disk2.chunks(256 << 10).enumerate() {
        let name = format!("appliance-disk2.vmdk.{i:09}");
        std::fs::write(g.join(&name), c).unwrap();
        chunks.push(name);
    }
    assert!(chunks.len() >= 2);
    let ovf = std::fs::read_to_string(d.path().join("appliance.ovf")).unwrap()
        .replace(&format!("ovf:href=\"appliance-disk1.vmdk\" ovf:id=\"file0\" ovf:size=\"{}\"", disk1.len()), &format!("ovf:compression=\"gzip\" ovf:href=\"appliance-disk1.vmdk\" ovf:id=\"file0\" ovf:size=\"{}\"", gz.len()))
        .replace("ovf:href=\"appliance-disk2.vmdk\"", "ovf:chunkSize=\"262144\" ovf:href=\"appliance-disk2.vmdk\"");
    assert!(ovf.contains("gzip") && ovf.contains("chunkSize"));
    std::fs::write(g.join("appliance.ovf"), &ovf).unwrap();
    let mut mf = String::new();
    for n in std::iter::once("appliance.ovf".to_string())
        .chain(std::iter::once("appliance-disk1.vmdk".to_string()))
        .chain(chunks.iter().cloned())
    {
        mf.push_str(&format!("SHA256({n})= {}\n", sha256(&g.join(&n))));
    }
    std::fs::write(g.join("appliance.mf"), mf).unwrap();
    let mut members = vec!["appliance.ovf", "appliance.mf", "appliance-disk1.vmdk"];
    members.extend(chunks.iter().map(String::as_str));
    make_ova(&g, "gc.ova", &members);
    for pkg in ["appliance.ovf", "gc.ova"] {
        let out = format!("out-{pkg}");
        ovf_disk_ok(&g, &["import", "-q", pkg, &out, "--format", "raw"]);
        // The imported files are whole and uncompressed, and the written envelope says so:
        // importing the (thick VMDK) import again works.
        let thick = format!("thick-{pkg}");
        ovf_disk_ok(&g, &["import", "-q", pkg, &thick]);
        let written = std::fs::read_to_string(g.join(&thick).join("appliance.ovf")).unwrap();
        assert!(
            !written.contains("compression") && !written.contains("chunkSize"),
            "{written}"
        );
        let again = format!("again-{pkg}");
        ovf_disk_ok(
            &g,
            &[
                "import",
                "-q",
                &format!("{thick}/appliance.ovf"),
                &again,
                "--format",
                "raw",
            ],
        );
        assert_eq!(
            sha256(&g.join(&again).join("appliance-disk1-thick.raw")),
            shas[0]
        );
        assert_eq!(
            sha256(&g.join(&out).join("appliance-disk1.raw")),
            shas[0],
            "{pkg} gzip"
        );
        assert_eq!(
            sha256(&g.join(&out).join("appliance-disk2.raw")),
            shas[1],
            "{pkg} chunked"
        );
    }
    // A declared capacity smaller than the disk's: refused before anything is written.
    let small = ovf.replace("ovf:capacity=\"6\"", "ovf:capacity=\"1\"");
    assert_ne!(small, ovf);
    std::fs::write(g.join("appliance.ovf"), &small).unwrap();
    std::fs::remove_file(g.join("appliance.mf")).unwrap();
    let out = ovf_disk(&g, &["import", "-q", "appliance.ovf", "small"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("more than the 1048576 its package declares"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!g.join("small").exists());
}

/// A package the way VirtualBox exports it: OVF 1.0 with its `vbox:` extensions (a
/// `vbox:Machine` section kept, not dropped), a SATA controller, a SHA1 manifest, and the OVA
/// members in VirtualBox's order (descriptor, disk, manifest last), imported in place and in one
/// pass from a pipe, where the disk's digests are kept until the manifest arrives.
#[test]
fn virtualbox_style_package() {
    let d = tempfile::tempdir().unwrap();
    sample_raw(&d.path().join("src.raw"), 5 << 20);
    ovf_disk_ok(
        d.path(),
        &[
            "convert",
            "-q",
            "src.raw",
            "vbox-disk001.vmdk",
            "--to",
            "streamOptimized",
        ],
    );
    let size = std::fs::metadata(d.path().join("vbox-disk001.vmdk"))
        .unwrap()
        .len();
    let ovf = format!(
        r#"<?xml version="1.0"?>
<Envelope ovf:version="1.0" xml:lang="en-US" xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:vbox="http://www.virtualbox.org/ovf/machine">
  <References>
    <File ovf:id="file1" ovf:href="vbox-disk001.vmdk" ovf:size="{size}"/>
  </References>
  <DiskSection>
    <Info>List of the virtual disks used in the package</Info>
    <Disk ovf:capacity="5242880" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized" vbox:uuid="0d2a7f6a-5c1e-4a7e-9d0e-2f1f3c4b5a69"/>
  </DiskSection>
  <NetworkSection>
    <Info>Logical networks used in the package</Info>
    <Network ovf:name="NAT"><Description>Logical network used by this appliance.</Description></Network>
  </NetworkSection>
  <VirtualSystem ovf:id="vbox">
    <Info>A virtual machine</Info>
    <ProductSection><Info>Meta-information about the installed software</Info><Product>test</Product></ProductSection>
    <OperatingSystemSection ovf:id="96"><Info>The kind of installed guest operating system</Info><Description>Debian_64</Description><vbox:OSType ovf:required="false">Debian_64</vbox:OSType></OperatingSystemSection>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements for a virtual machine</Info>
      <System><vssd:ElementName>Virtual Hardware Family</vssd:ElementName><vssd:InstanceID>0</vssd:InstanceID><vssd:VirtualSystemIdentifier>vbox</vssd:VirtualSystemIdentifier><vssd:VirtualSystemType>virtualbox-2.2</vssd:VirtualSystemType></System>
      <Item><rasd:Caption>1 virtual CPU</rasd:Caption><rasd:Description>Number of virtual CPUs</rasd:Description><rasd:ElementName>1 virtual CPU</rasd:ElementName><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>1</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>MegaBytes</rasd:AllocationUnits><rasd:Caption>1024 MB of memory</rasd:Caption><rasd:ElementName>1024 MB of memory</rasd:ElementName><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>1024</rasd:VirtualQuantity></Item>
      <Item><rasd:Address>0</rasd:Address><rasd:Caption>ideController0</rasd:Caption><rasd:ElementName>ideController0</rasd:ElementName><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceSubType>PIIX4</rasd:ResourceSubType><rasd:ResourceType>5</rasd:ResourceType></Item>
      <Item><rasd:Address>0</rasd:Address><rasd:Caption>sataController0</rasd:Caption><rasd:ElementName>sataController0</rasd:ElementName><rasd:InstanceID>4</rasd:InstanceID><rasd:ResourceSubType>AHCI</rasd:ResourceSubType><rasd:ResourceType>20</rasd:ResourceType></Item>
      <Item><rasd:AutomaticAllocation>true</rasd:AutomaticAllocation><rasd:Caption>Ethernet adapter on 'NAT'</rasd:Caption><rasd:Connection>NAT</rasd:Connection><rasd:ElementName>Ethernet adapter on 'NAT'</rasd:ElementName><rasd:InstanceID>5</rasd:InstanceID><rasd:ResourceSubType>E1000</rasd:ResourceSubType><rasd:ResourceType>10</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:Caption>disk1</rasd:Caption><rasd:ElementName>disk1</rasd:ElementName><rasd:HostResource>/disk/vmdisk1</rasd:HostResource><rasd:InstanceID>6</rasd:InstanceID><rasd:Parent>4</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
    </VirtualHardwareSection>
    <vbox:Machine ovf:required="false" version="1.16-linux" uuid="{{b4a0f1f2-6a5c-4d9e-8f0a-1c2d3e4f5a6b}}" name="vbox"><ovf:Info>Complete VirtualBox machine configuration in VirtualBox format</ovf:Info></vbox:Machine>
  </VirtualSystem>
</Envelope>
"#
    );
    std::fs::write(d.path().join("vbox.ovf"), &ovf).unwrap();
    let mut mf = String::new();
    for n in ["vbox.ovf", "vbox-disk001.vmdk"] {
        mf.push_str(&format!(
            "SHA1 ({n}) = {}\n",
            Algorithm::Sha1
                .digest(&mut std::fs::File::open(d.path().join(n)).unwrap())
                .unwrap()
        ));
    }
    std::fs::write(d.path().join("vbox.mf"), mf).unwrap();
    make_ova(
        d.path(),
        "vbox.ova",
        &["vbox.ovf", "vbox-disk001.vmdk", "vbox.mf"],
    );
    let info: serde_json::Value =
        serde_json::from_slice(&ovf_disk_ok(d.path(), &["info", "--json", "vbox.ova"]).stdout)
            .unwrap();
    let sys = &info["systems"][0];
    assert_eq!(
        (sys["cpus"].as_u64(), sys["memory"].as_u64()),
        (Some(1), Some(1 << 30))
    );
    assert_eq!(
        sys["controllers"],
        serde_json::json!(["IDE (PIIX4)", "SATA (AHCI)"])
    );
    assert_eq!(info["disks"][0]["capacity"], 5u64 << 20);
    ovf_disk_ok(d.path(), &["verify", "vbox.ova"]);
    let want = sha256(&d.path().join("src.raw"));
    ovf_disk_ok(
        d.path(),
        &["import", "-q", "vbox.ova", "inplace", "--format", "raw"],
    );
    assert_eq!(sha256(&d.path().join("inplace/vbox-disk001.raw")), want);
    // VirtualBox's package imported is a package of its own: verified and clean.
    ovf_disk_ok(d.path(), &["verify", "inplace/vbox.ovf"]);
    ovf_disk_ok(d.path(), &["check", "inplace/vbox.ovf"]);
    let out = import_from_pipe(d.path(), "vbox.ova", "piped");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        qemu_raw_sha(&d.path().join("piped"), "vbox-disk001-thick.vmdk"),
        want
    );
    // The imported descriptor keeps VirtualBox's own section.
    assert!(std::fs::read_to_string(d.path().join("piped/vbox.ovf"))
        .unwrap()
        .contains("<vbox:Machine"));
    // Tampered, with the manifest last: the kept digest fails when the manifest arrives.
    let p = d.path().join("vbox-disk001.vmdk");
    let mut bytes = std::fs::read(&p).unwrap();
    let n = bytes.len();
    bytes[n - 1500] ^= 2;
    std::fs::write(&p, bytes).unwrap();
    make_ova(
        d.path(),
        "bad.ova",
        &["vbox.ovf", "vbox-disk001.vmdk", "vbox.mf"],
    );
    let out = import_from_pipe(d.path(), "bad.ova", "bad");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("verification failed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!d.path().join("bad").exists());
}

/// A signed package: `openssl` makes a key, a self-signed certificate and the manifest's
/// signature as ovftool lays them out in the `.cert`; `verify` checks the signature covers the
/// manifest, and fails when either is changed.
#[test]
fn signed_packages() {
    let d = tempfile::tempdir().unwrap();
    build_package(
        d.path(),
        "http://schemas.dmtf.org/ovf/envelope/1",
        Algorithm::Sha256,
    );
    let openssl = |args: &[&str]| {
        let o = std::process::Command::new(tool("openssl"))
            .args(args)
            .current_dir(d.path())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        o.stdout
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-subj",
        "/CN=ovf-disk test signer",
    ]);
    let sign = |alg: &str| {
        openssl(&[
            "dgst",
            &format!("-{alg}"),
            "-sign",
            "key.pem",
            "-out",
            "sig.bin",
            "appliance.mf",
        ]);
        let sig: String = std::fs::read(d.path().join("sig.bin"))
            .unwrap()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let cert = std::fs::read_to_string(d.path().join("cert.pem")).unwrap();
        std::fs::write(
            d.path().join("appliance.cert"),
            format!("{}(appliance.mf)= {sig}\n{cert}", alg.to_uppercase()),
        )
        .unwrap();
    };
    for alg in ["sha256", "sha1", "sha512"] {
        sign(alg);
        let out = ovf_disk(d.path(), &["verify", "appliance.ovf"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{alg}: {text}");
        assert!(
            text.contains("signed: by CN=ovf-disk test signer: the signature covers the manifest"),
            "{alg}: {text}"
        );
    }
    // Another signature (over other bytes): refused.
    sign("sha256");
    let cert = std::fs::read_to_string(d.path().join("appliance.cert")).unwrap();
    let (head, tail) = cert.split_once('\n').unwrap();
    // Flip the last hex digit of the signature.
    let last = if head.ends_with('0') { '1' } else { '0' };
    std::fs::write(
        d.path().join("appliance.cert"),
        format!("{}{last}\n{tail}", &head[..head.len() - 1]),
    )
    .unwrap();
    let out = ovf_disk(d.path(), &["verify", "--json", "appliance.ovf"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["signature"]["valid"], false, "{v}");
    // A valid signature over a manifest changed afterwards: refused.
    sign("sha256");
    let mf = std::fs::read_to_string(d.path().join("appliance.mf")).unwrap();
    std::fs::write(
        d.path().join("appliance.mf"),
        mf.replace("SHA256(", "SHA256 ("),
    )
    .unwrap();
    let out = ovf_disk(d.path(), &["verify", "appliance.ovf"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains("signature INVALID: the signature does not match the manifest"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // ... and import refuses it before writing anything.
    std::fs::write(d.path().join("appliance.mf"), mf).unwrap();
    sign("sha256");
    let cert = std::fs::read_to_string(d.path().join("appliance.cert")).unwrap();
    std::fs::write(
        d.path().join("appliance.cert"),
        cert.replacen("(appliance.mf)= ", "(appliance.mf)= 0", 1)
            .replacen('\n', "0\n", 1),
    )
    .unwrap();
    let out = ovf_disk(d.path(), &["import", "-q", "appliance.ovf", "signed-out"]);
    assert_eq!(out.status.code(), Some(1));
    // Refused for the signature, not for anything else.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("verification failed"), "{err}");
    let verify = ovf_disk(d.path(), &["verify", "--json", "appliance.ovf"]);
    let v: serde_json::Value = serde_json::from_slice(&verify.stdout).unwrap();
    assert_eq!(v["signature"]["valid"], false, "{v}");
    assert!(
        v["files"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["result"] == "ok"),
        "{v}"
    );
    assert!(!d.path().join("signed-out").exists());
}

/// Names XML must escape, wherever they go: raw disks whose file names hold `&`, `<`, `"`,
/// spaces and non-ASCII exported into an OVA whose name holds `&` and a space (its name flows
/// into the members, the hrefs and the virtual system), and a package whose hrefs hold them
/// (entity-escaped, one in single quotes) exported again. Each OVA passes `verify` and imports,
/// from the file and through a pipe, to the sources' bytes; the imported envelopes parse.
#[test]
fn names_that_need_escaping_export_verify_and_import() {
    let d = tempfile::tempdir().unwrap();
    let sources = ["a&b disk.raw", "x<y \"quoted\".raw", "disk-é€ ü.raw"];
    let mut shas = Vec::new();
    for (i, source) in sources.iter().enumerate() {
        sample_raw(&d.path().join(source), (2 + i as u64) << 20);
        shas.push(sha256(&d.path().join(source)));
    }
    let ova = "R&D export é.ova";
    let mut args = vec!["export", "-q"];
    args.extend(sources);
    args.push(ova);
    ovf_disk_ok(d.path(), &args);
    let list = std::process::Command::new("tar")
        .args(["tf", ova])
        .current_dir(d.path())
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&list.stdout),
        "R&D export é.ovf\nR&D export é.mf\nR&D export é-disk1.vmdk\nR&D export é-disk2.vmdk\nR&D export é-disk3.vmdk\n"
    );
    let v: serde_json::Value =
        serde_json::from_slice(&ovf_disk_ok(d.path(), &["verify", "--json", ova]).stdout).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    let info: serde_json::Value =
        serde_json::from_slice(&ovf_disk_ok(d.path(), &["info", "--json", ova]).stdout).unwrap();
    assert_eq!(info["systems"][0]["name"], "R&D export é");
    assert_eq!(info["systems"][0]["id"], "R&D export é");
    assert_eq!(info["files"][2]["href"], "R&D export é-disk3.vmdk");
    assert_eq!(info["files"][2]["present_size"], info["files"][2]["size"]);
    ovf_disk_ok(d.path(), &["import", "-q", ova, "back", "--format", "raw"]);
    let back = d.path().join("back");
    for (i, sha) in shas.iter().enumerate() {
        let disk = back.join(format!("R&D export é-disk{}.raw", i + 1));
        assert_eq!(&sha256(&disk), sha, "{}", disk.display());
    }
    let text = std::fs::read_to_string(back.join("R&D export é.ovf")).unwrap();
    assert!(
        text.contains("ovf:href=\"R&amp;D export é-disk1.raw\""),
        "{text}"
    );
    let again: serde_json::Value =
        serde_json::from_slice(&ovf_disk_ok(&back, &["info", "--json", "R&D export é.ovf"]).stdout)
            .unwrap();
    assert_eq!(again["files"][0]["href"], "R&D export é-disk1.raw");
    assert_eq!(again["files"][0]["present_size"], again["files"][0]["size"]);
    // Thick VMDKs, the OVA read once through a pipe.
    let out = import_from_pipe(d.path(), ova, "piped");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let piped = d.path().join("piped");
    for (i, sha) in shas.iter().enumerate() {
        let disk = format!("R&D export é-disk{}-thick.vmdk", i + 1);
        assert_eq!(&qemu_raw_sha(&piped, &disk), sha, "{disk}");
    }
    let text = std::fs::read_to_string(piped.join("R&D export é.ovf")).unwrap();
    assert!(text.contains("vmdk.html#monolithicFlat"), "{text}");
    assert!(!text.contains("vmdk.html#streamOptimized"), "{text}");

    // A package whose hrefs need escaping, exported again (sizes and formats rewritten). No
    // `"` here: a VMDK's own descriptor cannot quote it in an extent name.
    let pkg = d.path().join("pkg");
    std::fs::create_dir(&pkg).unwrap();
    let hrefs = ["a&b disk.vmdk", "x<y 'quoted'.vmdk", "disk-é€ ü.vmdk"];
    let mut disks = Vec::new();
    for (source, href) in sources.iter().zip(hrefs) {
        let from = d.path().join(source);
        let to = pkg.join(href);
        ovf_disk_ok(
            d.path(),
            &[
                "convert",
                "-q",
                from.to_str().unwrap(),
                to.to_str().unwrap(),
                "--to",
                "monolithicSparse",
            ],
        );
        let escaped = href
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('\'', "&apos;");
        let size = std::fs::metadata(&to).unwrap().len();
        disks.push((escaped, size, std::fs::metadata(&from).unwrap().len()));
    }
    let refs: Vec<(&str, u64, u64)> = disks.iter().map(|(h, s, c)| (h.as_str(), *s, *c)).collect();
    let ovf = envelope("http://schemas.dmtf.org/ovf/envelope/1", &refs)
        .replace("vmdk.html#streamOptimized", "vmdk.html#monolithicSparse")
        // One href in single quotes, with a character reference.
        .replace(
            "ovf:href=\"disk-é€ ü.vmdk\"",
            "ovf:href='disk-&#233;€ ü.vmdk'",
        );
    assert!(ovf.contains("a&amp;b") && ovf.contains("&lt;y &apos;") && ovf.contains("&#233;"));
    std::fs::write(pkg.join("odd.ovf"), &ovf).unwrap();
    let mut mf = String::new();
    for n in std::iter::once("odd.ovf").chain(hrefs) {
        mf.push_str(&format!("SHA256({n})= {}\n", sha256(&pkg.join(n))));
    }
    std::fs::write(pkg.join("odd.mf"), mf).unwrap();
    ovf_disk_ok(&pkg, &["verify", "odd.ovf"]);
    ovf_disk_ok(&pkg, &["export", "-q", "odd.ovf", "../odd & co.ova"]);
    let odd = "odd & co.ova";
    ovf_disk_ok(d.path(), &["verify", odd]);
    let info: serde_json::Value =
        serde_json::from_slice(&ovf_disk_ok(d.path(), &["info", "--json", odd]).stdout).unwrap();
    for (i, href) in hrefs.iter().enumerate() {
        assert_eq!(info["files"][i]["href"], *href);
        assert_eq!(info["files"][i]["present_size"], info["files"][i]["size"]);
        assert_eq!(
            info["disks"][i]["format"],
            "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"
        );
    }
    ovf_disk_ok(d.path(), &["import", "-q", odd, "odd", "--format", "raw"]);
    for (href, sha) in hrefs.iter().zip(&shas) {
        let raw = format!("{}.raw", href.trim_end_matches(".vmdk"));
        assert_eq!(&sha256(&d.path().join("odd").join(&raw)), sha, "{raw}");
    }
    let out = import_from_pipe(d.path(), odd, "odd-piped");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(d.path().join("odd-piped/odd.ovf")).unwrap();
    assert!(text.contains("ovf:href='disk-é€ ü-thick.vmdk'"), "{text}");
}

/// An importer verifies, then imports: the import takes the package's own verify report
/// (nothing is digested twice: its progress names only disks), and the front door reads an
/// OVA by content, whatever its name.
#[test]
fn an_import_after_verify_reads_each_file_once_and_inputs_open_by_content() {
    let d = tempfile::tempdir().unwrap();
    let shas = appliance_ova(d.path(), "appliance.bin");
    let path = d.path().join("appliance.bin");
    assert_eq!(
        ovf_disk::input_kind(&path).unwrap(),
        ovf_disk::InputKind::Ova
    );
    let ovf_disk::Input::Package(pkg) =
        ovf_disk::Input::open(&path, &ovf_disk::vm::Options::new()).unwrap()
    else {
        panic!("not opened as a package");
    };
    let verified_names = std::sync::Mutex::new(Vec::new());
    let report = pkg
        .verify(&|name| verified_names.lock().unwrap().push(name.to_string()))
        .unwrap();
    assert!(report.is_ok(), "{report:?}");
    assert_eq!(
        verified_names.lock().unwrap().len(),
        3,
        "every listed file digested once"
    );
    let seen = std::sync::Mutex::new(std::collections::BTreeSet::new());
    let out = d.path().join("out");
    let imported =
        ovf_disk::import::import(&pkg, &out, &ovf_disk::import::Options::new(), &|id, _| {
            seen.lock().unwrap().insert(id.to_string());
        })
        .unwrap();
    assert_eq!(imported.verify, report);
    let seen = seen.into_inner().unwrap();
    assert!(
        !seen.is_empty() && seen.iter().all(|id| id.starts_with("vmdisk")),
        "the import digested files again: {seen:?}"
    );
    for (disk, sha) in imported.disks.iter().zip(&shas) {
        let flat = disk.files.last().unwrap();
        assert_eq!(&sha256(flat), sha);
    }
}

/// A manifest named otherwise (`disk1.mf` beside `appliance.ovf`, as virt-v2v accepts) is the
/// package's manifest when it is the only one and lists the descriptor; a manifest of another
/// package in the same folder is not taken.
#[test]
fn a_manifest_named_otherwise_is_read() {
    let d = tempfile::tempdir().unwrap();
    build_package(
        d.path(),
        "http://schemas.dmtf.org/ovf/envelope/1",
        Algorithm::Sha256,
    );
    std::fs::rename(d.path().join("appliance.mf"), d.path().join("disk1.mf")).unwrap();
    let out = ovf_disk_ok(d.path(), &["verify", "--json", "appliance.ovf"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["manifest"], "disk1.mf", "{v}");
    assert_eq!(v["ok"], true, "{v}");
    // Inside an OVA too.
    make_ova(
        d.path(),
        "other-name.ova",
        &[
            "appliance.ovf",
            "disk1.mf",
            "appliance-disk1.vmdk",
            "appliance-disk2.vmdk",
        ],
    );
    let out = ovf_disk_ok(d.path(), &["verify", "--json", "other-name.ova"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["manifest"], "disk1.mf", "{v}");
    // Another package's manifest beside it is not this one's.
    std::fs::write(d.path().join("disk1.mf"), "SHA256(other.ovf)= 00\n").unwrap();
    // (no manifest: nothing verified, exit 1)
    let out = ovf_disk(d.path(), &["verify", "--json", "appliance.ovf"]);
    assert_eq!(out.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["manifest"], serde_json::Value::Null, "{v}");
}
