//! `import --emit libvirt|vmx`: a VM configuration per virtual system beside the thick disks.
//! Every libvirt domain passes libvirt's own schema check (`virt-xml-validate`, libvirt-clients)
//! and is defined by `virsh -c test:///default` (libvirt's test driver, no hypervisor needed);
//! every `.vmx` is read back by our VMX reader and names disks that open. Packages: a
//! vSphere-style two-VM VirtualSystemCollection (PVSCSI and NVMe, EFI with secure boot,
//! vmxnet3, cores per socket; LSI SAS, SATA CD-ROM, e1000e), and the envelopes of COT's test
//! suite (VirtualBox's OVF 2.0 with SATA, IDE CD-ROM, USB and sound; Cisco appliances with
//! deployment options; VMware's 0.9).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

/// Runs `tool args`, which must succeed (the tools come from scripts/setup.sh).
fn must(tool_name: &str, args: &[&str]) {
    let out = Command::new(tool(tool_name)).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{tool_name} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// libvirt's schema check and its test driver accept the domain at `xml`.
fn libvirt_accepts(xml: &Path) {
    let path = xml.to_str().unwrap();
    must("virt-xml-validate", &[path, "domain"]);
    must("virsh", &["-c", "test:///default", "define", path]);
}

/// What dissect.hypervisor's VMX parser reads of `vmx`: `{"attr": {key: value}, "disks": [..]}`
/// (keys lower-cased, values as written).
fn dissect_vmx(vmx: &Path) -> serde_json::Value {
    let script = "import json,sys\nfrom dissect.hypervisor.descriptor.vmx import VMX\nv=VMX.parse(open(sys.argv[1]).read())\nprint(json.dumps({'attr': v.attr, 'disks': v.disks()}))";
    let out = Command::new(python())
        .args(["-c", script])
        .arg(vmx)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A `.vmx` value with its `|XX` escapes (a byte in hex) decoded, as VMware reads it.
fn vmx_unescape(value: &str) -> String {
    let mut out = Vec::new();
    let b = value.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'|' && i + 3 <= b.len() {
            if let Ok(byte) = u8::from_str_radix(&value[i + 1..i + 3], 16) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

const VSPHERE_PAIR: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf">
  <References>
    <File ovf:href="web-1.vmdk" ovf:id="f1"/>
    <File ovf:href="web-2.vmdk" ovf:id="f2"/>
    <File ovf:href="db-1.vmdk" ovf:id="f3"/>
  </References>
  <DiskSection><Info>disks</Info>
    <Disk ovf:capacity="1" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="web1" ovf:fileRef="f1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
    <Disk ovf:capacity="1" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="web2" ovf:fileRef="f2" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
    <Disk ovf:capacity="1" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="db1" ovf:fileRef="f3" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <NetworkSection><Info>nets</Info><Network ovf:name="VM Network"/><Network ovf:name="Back &amp; end"/></NetworkSection>
  <VirtualSystemCollection ovf:id="pair"><Info>two</Info>
  <VirtualSystem ovf:id="web"><Info>web</Info><Name>web &lt;front&gt;</Name>
    <OperatingSystemSection ovf:id="96" vmw:osType="debian12_64Guest"><Info>os</Info></OperatingSystemSection>
    <VirtualHardwareSection><Info>hw</Info>
      <System><vssd:ElementName>Virtual Hardware Family</vssd:ElementName><vssd:InstanceID>0</vssd:InstanceID><vssd:VirtualSystemType>vmx-19</vssd:VirtualSystemType></System>
      <Item><rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits><rasd:ElementName>4 virtual CPU(s)</rasd:ElementName><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>4</rasd:VirtualQuantity><vmw:CoresPerSocket ovf:required="false">2</vmw:CoresPerSocket></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:ElementName>4096MB of memory</rasd:ElementName><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>4096</rasd:VirtualQuantity></Item>
      <Item><rasd:Address>0</rasd:Address><rasd:ElementName>SCSI controller 0</rasd:ElementName><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceSubType>VirtualSCSI</rasd:ResourceSubType><rasd:ResourceType>6</rasd:ResourceType></Item>
      <Item><rasd:Address>0</rasd:Address><rasd:ElementName>NVMe controller 0</rasd:ElementName><rasd:InstanceID>4</rasd:InstanceID><rasd:ResourceSubType>vmware.nvme.controller</rasd:ResourceSubType><rasd:ResourceType>20</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:ElementName>Hard disk 1</rasd:ElementName><rasd:HostResource>ovf:/disk/web1</rasd:HostResource><rasd:InstanceID>5</rasd:InstanceID><rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:ElementName>Hard disk 2</rasd:ElementName><rasd:HostResource>ovf:/disk/web2</rasd:HostResource><rasd:InstanceID>6</rasd:InstanceID><rasd:Parent>4</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>7</rasd:AddressOnParent><rasd:AutomaticAllocation>true</rasd:AutomaticAllocation><rasd:Connection>VM Network</rasd:Connection><rasd:ElementName>Network adapter 1</rasd:ElementName><rasd:InstanceID>7</rasd:InstanceID><rasd:ResourceSubType>VmxNet3</rasd:ResourceSubType><rasd:ResourceType>10</rasd:ResourceType></Item>
      <Item ovf:required="false"><rasd:ElementName>Video card</rasd:ElementName><rasd:InstanceID>8</rasd:InstanceID><rasd:ResourceType>24</rasd:ResourceType></Item>
      <vmw:Config ovf:required="false" vmw:key="firmware" vmw:value="efi"/>
      <vmw:Config ovf:required="false" vmw:key="bootOptions.efiSecureBootEnabled" vmw:value="true"/>
    </VirtualHardwareSection>
  </VirtualSystem>
  <VirtualSystem ovf:id="db"><Info>db</Info><Name>db</Name>
    <OperatingSystemSection ovf:id="80" vmw:osType="rhel9_64Guest"><Info>os</Info></OperatingSystemSection>
    <VirtualHardwareSection><Info>hw</Info>
      <System><vssd:ElementName>Virtual Hardware Family</vssd:ElementName><vssd:InstanceID>0</vssd:InstanceID><vssd:VirtualSystemType>vmx-13</vssd:VirtualSystemType></System>
      <Item><rasd:ElementName>2 virtual CPU(s)</rasd:ElementName><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>2</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^30</rasd:AllocationUnits><rasd:ElementName>8GB of memory</rasd:ElementName><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>8</rasd:VirtualQuantity></Item>
      <Item><rasd:Address>0</rasd:Address><rasd:ElementName>SCSI controller 0</rasd:ElementName><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceSubType>lsilogicsas</rasd:ResourceSubType><rasd:ResourceType>6</rasd:ResourceType></Item>
      <Item><rasd:Address>0</rasd:Address><rasd:ElementName>SATA controller 0</rasd:ElementName><rasd:InstanceID>4</rasd:InstanceID><rasd:ResourceSubType>vmware.sata.ahci</rasd:ResourceSubType><rasd:ResourceType>20</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:ElementName>Hard disk 1</rasd:ElementName><rasd:HostResource>ovf:/disk/db1</rasd:HostResource><rasd:InstanceID>5</rasd:InstanceID><rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
      <Item ovf:required="false"><rasd:AddressOnParent>1</rasd:AddressOnParent><rasd:AutomaticAllocation>false</rasd:AutomaticAllocation><rasd:ElementName>CD/DVD drive 1</rasd:ElementName><rasd:InstanceID>6</rasd:InstanceID><rasd:Parent>4</rasd:Parent><rasd:ResourceSubType>vmware.cdrom.atapi</rasd:ResourceSubType><rasd:ResourceType>15</rasd:ResourceType></Item>
      <Item><rasd:Connection>Back &amp; end</rasd:Connection><rasd:ElementName>Network adapter 1</rasd:ElementName><rasd:InstanceID>7</rasd:InstanceID><rasd:ResourceSubType>E1000e</rasd:ResourceSubType><rasd:ResourceType>10</rasd:ResourceType></Item>
      <Item ovf:required="false"><rasd:ElementName>Sound card</rasd:ElementName><rasd:InstanceID>8</rasd:InstanceID><rasd:ResourceSubType>vmware.soundcard.hdaudio</rasd:ResourceSubType><rasd:ResourceType>1</rasd:ResourceType></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
  </VirtualSystemCollection>
</Envelope>
"#;

/// A package folder `dir/name` holding `ovf` (its `ovf:size`s fitted) and a small
/// stream-optimized disk (or a few bytes for an ISO) for every file it references; returns the
/// descriptor's path.
fn package(dir: &Path, name: &str, ovf: &str) -> String {
    let pkg = PackageDir::new(&dir.join(name));
    for href in hrefs(ovf) {
        if href.ends_with(".vmdk") {
            qemu_create(&pkg.dir, &href, "streamOptimized", "1M");
        } else {
            pkg.file(&href, &[0u8; 2048]);
        }
    }
    // The envelopes' own sizes are those of the real files, which these stand in for.
    pkg.file(&format!("{name}.ovf"), pkg.fit_sizes(ovf).as_bytes());
    format!("{name}/{name}.ovf")
}

#[test]
fn a_vsphere_collection_becomes_two_domains_and_two_vmx() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let ovf = package(dir, "pair", VSPHERE_PAIR);
    let out = ovf_disk_ok(
        dir,
        &[
            "import", "--json", "--zero", "sparse", "--emit", "libvirt", "--emit", "vmx", &ovf,
            "out",
        ],
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let configs = report["configurations"].as_array().unwrap();
    assert_eq!(configs.len(), 4, "{report}");
    let web_xml = dir.join("out/web__front_.xml");
    let db_xml = dir.join("out/db.xml");
    libvirt_accepts(&web_xml);
    libvirt_accepts(&db_xml);
    let web = std::fs::read_to_string(&web_xml).unwrap();
    for want in [
        "<name>web &lt;front&gt;</name>",
        "<libosinfo:os id=\"http://debian.org/debian/12\"/>",
        "<memory unit=\"GiB\">4</memory>",
        "<vcpu>4</vcpu>",
        "<os firmware=\"efi\">",
        "<feature enabled=\"yes\" name=\"secure-boot\"/>",
        "<smm state=\"on\"/>",
        "<topology sockets=\"2\" dies=\"1\" cores=\"2\" threads=\"1\"/>",
        "<controller type=\"scsi\" index=\"0\" model=\"vmpvscsi\"/>",
        "<target dev=\"sda\" bus=\"scsi\"/>",
        "<target dev=\"vda\" bus=\"virtio\"/>",
        "<model type=\"vmxnet3\"/>",
        "machine=\"q35\"",
    ] {
        assert!(web.contains(want), "{want} missing:\n{web}");
    }
    let flat = std::fs::canonicalize(dir.join("out/web-1-thick.vmdk")).unwrap();
    assert!(
        web.contains(&format!("<source file=\"{}\"/>", flat.display())),
        "{web}"
    );
    let db = std::fs::read_to_string(&db_xml).unwrap();
    for want in [
        "<memory unit=\"GiB\">8</memory>",
        "model=\"lsisas1068\"",
        "<controller type=\"sata\" index=\"0\"/>",
        "device=\"cdrom\"",
        "<source network=\"Back &amp; end\"/>",
        "<model type=\"e1000e\"/>",
        "http://redhat.com/rhel/9.0",
    ] {
        assert!(db.contains(want), "{want} missing:\n{db}");
    }
    // What could not be expressed is listed, not dropped.
    let unmapped = |system: &str, kind: &str| -> Vec<String> {
        configs
            .iter()
            .find(|c| c["system"] == system && c["kind"] == kind)
            .unwrap()["unmapped"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u.as_str().unwrap().to_string())
            .collect()
    };
    let web_notes = unmapped("web", "libvirt");
    assert!(
        web_notes.iter().any(|u| u.contains("NVMe")),
        "{web_notes:?}"
    );
    // Its boot disk is on VMware's paravirtual SCSI, which OVMF cannot boot from: said.
    assert!(
        web_notes.iter().any(|u| u.starts_with(
            "SCSI controller 0 (item 3): OVMF (the EFI firmware) has no driver for VMware's paravirtual SCSI"
        )),
        "{web_notes:?}"
    );
    assert!(
        !unmapped("db", "libvirt").iter().any(|u| u.contains("OVMF")),
        "BIOS, LSI Logic SAS: nothing to say"
    );
    let db_notes = unmapped("db", "libvirt");
    assert!(
        db_notes
            .iter()
            .any(|u| u.starts_with("Sound card (item 8): ResourceType 1")),
        "{db_notes:?}"
    );
    // The .vmx files read back and name disks that open.
    let info = ovf_disk_ok(dir, &["info", "out/web__front_.vmx"]);
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(text.contains("name:         web <front>"), "{text}");
    assert!(
        text.contains("disk scsi0:0 (pvscsi): 1.00 MiB, 1 link"),
        "{text}"
    );
    assert!(
        text.contains("disk nvme0:0 (nvme): 1.00 MiB, 1 link"),
        "{text}"
    );
    assert!(
        text.contains("CPUs 4, memory 4.00 GiB, guest OS debian12-64, firmware efi"),
        "{text}"
    );
    let vmx = std::fs::read_to_string(dir.join("out/web__front_.vmx")).unwrap();
    assert!(vmx.contains("virtualHW.version = \"19\""), "{vmx}");
    assert!(vmx.contains("displayName = \"web <front>\""), "{vmx}");
    assert!(vmx.contains("uefi.secureBoot.enabled = \"TRUE\""), "{vmx}");
    // A reader no one here wrote (dissect.hypervisor's VMX parser) reads what the envelope
    // says: name (its `|22`-style escapes decoded), vCPUs, memory, hardware version, firmware,
    // and the thick disks in order.
    for (vmx, name, cpus, mem, hw, firmware, disks) in [
        (
            "web__front_.vmx",
            "web <front>",
            "4",
            "4096",
            "19",
            Some("efi"),
            vec!["web-1-thick.vmdk", "web-2-thick.vmdk"],
        ),
        (
            "db.vmx",
            "db",
            "2",
            "8192",
            "13",
            None,
            vec!["db-1-thick.vmdk"],
        ),
    ] {
        let v = dissect_vmx(&dir.join("out").join(vmx));
        let attr = &v["attr"];
        assert_eq!(
            vmx_unescape(attr["displayname"].as_str().unwrap()),
            name,
            "{v}"
        );
        assert_eq!(attr["numvcpus"], cpus, "{v}");
        assert_eq!(attr["memsize"], mem, "{v}");
        assert_eq!(attr["virtualhw.version"], hw, "{v}");
        assert_eq!(attr["firmware"].as_str(), firmware, "{v}");
        assert_eq!(v["disks"], serde_json::json!(disks), "{v}");
    }
    let info = ovf_disk_ok(dir, &["info", "out/db.vmx"]);
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(text.contains("disk scsi0:0 (lsisas1068)"), "{text}");
    // --hw-version caps virtualHW.version.
    ovf_disk_ok(
        dir,
        &[
            "import",
            "-q",
            "--zero",
            "sparse",
            "--emit",
            "vmx",
            "--hw-version",
            "13",
            &ovf,
            "capped",
        ],
    );
    let vmx = std::fs::read_to_string(dir.join("capped/web__front_.vmx")).unwrap();
    assert!(vmx.contains("virtualHW.version = \"13\""), "{vmx}");
}

#[test]
fn every_cot_envelope_becomes_a_domain_libvirt_accepts() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let cot = repo().join("testdata/envelopes/cot");
    for (name, expect) in [
        (
            "ubuntu.2.0",
            &[
                "<controller type=\"sata\"",
                "bus=\"ide\"",
                "<sound model=\"es1370\"/>",
                "model=\"qemu-xhci\"",
                "machine=\"pc\"",
            ][..],
        ),
        (
            "csr1000v",
            &["model=\"virtio-scsi\"", "<model type=\"vmxnet3\"/>"],
        ),
        ("iosv", &["<model type=\"e1000\"/>"]),
        (
            "v0.9",
            &["model=\"lsilogic\"", "<memory unit=\"GiB\">8</memory>"],
        ),
        (
            "vmware",
            &["<model type=\"e1000\"/>", "http://redhat.com/rhel/6.0"],
        ),
    ] {
        let text = std::fs::read_to_string(cot.join(format!("{name}.ovf"))).unwrap();
        let ovf = package(dir, name, &text);
        let outdir = format!("{name}-out");
        ovf_disk_ok(
            dir,
            &[
                "import", "-q", "--zero", "sparse", "--emit", "libvirt", "--emit", "vmx", &ovf,
                &outdir,
            ],
        );
        let xmls: Vec<_> = std::fs::read_dir(dir.join(&outdir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "xml"))
            // Packages with properties also get their OVF environment.
            .filter(|p| !p.ends_with("ovf-env.xml"))
            .collect();
        assert_eq!(xmls.len(), 1, "{name}: {xmls:?}");
        libvirt_accepts(&xmls[0]);
        let xml = std::fs::read_to_string(&xmls[0]).unwrap();
        for want in expect {
            assert!(xml.contains(want), "{name}: {want} missing:\n{xml}");
        }
        let vmx = xmls[0].with_extension("vmx");
        ovf_disk_ok(dir, &["info", vmx.to_str().unwrap()]);
        // dissect.hypervisor's VMX parser reads what the envelope says (as `info` reads the
        // envelope): vCPUs, memory in MiB, and as many disks as the system has drives with one.
        let info: serde_json::Value =
            serde_json::from_slice(&ovf_disk_ok(dir, &["info", "--json", &ovf]).stdout).unwrap();
        let system = &info["systems"][0];
        let v = dissect_vmx(&vmx);
        let attr = &v["attr"];
        if let Some(cpus) = system["cpus"].as_u64() {
            assert_eq!(attr["numvcpus"], cpus.to_string(), "{name}: {v}");
        }
        if let Some(memory) = system["memory"].as_u64() {
            assert_eq!(attr["memsize"], (memory >> 20).to_string(), "{name}: {v}");
        }
        // Drives whose disk has a file (a blank disk is not written: the import lists it as
        // left out).
        let written: Vec<String> = info["disks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| !d["file"].is_null())
            .map(|d| format!("/disk/{}", d["disk_id"].as_str().unwrap()))
            .collect();
        let with_disk = system["disks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| {
                d["host_resource"]
                    .as_str()
                    .is_some_and(|h| written.iter().any(|w| h.ends_with(w.as_str())))
            })
            .count();
        assert_eq!(
            v["disks"].as_array().unwrap().len(),
            with_disk,
            "{name}: {v}"
        );
    }
}

#[test]
fn efi_without_secure_boot_says_so_to_libvirt_and_vmware() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    // The web system alone, Secure Boot unstated: off.
    let start = VSPHERE_PAIR.find("  <VirtualSystem ovf:id=\"db\"").unwrap();
    let end = VSPHERE_PAIR.find("  </VirtualSystemCollection>").unwrap();
    let text = format!("{}{}", &VSPHERE_PAIR[..start], &VSPHERE_PAIR[end..])
        .replace(
            "      <vmw:Config ovf:required=\"false\" vmw:key=\"bootOptions.efiSecureBootEnabled\" vmw:value=\"true\"/>\n",
            "",
        )
        .replace("    <File ovf:href=\"db-1.vmdk\" ovf:id=\"f3\"/>\n", "")
        .replace(
            "    <Disk ovf:capacity=\"1\" ovf:capacityAllocationUnits=\"byte * 2^20\" ovf:diskId=\"db1\" ovf:fileRef=\"f3\" ovf:format=\"http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized\"/>\n",
            "",
        );
    assert!(
        !text.contains("efiSecureBootEnabled") && !text.contains("db1"),
        "{text}"
    );
    // A name the .vmx must escape (a quote, a bar).
    let text = text.replace(
        "<Name>web &lt;front&gt;</Name>",
        "<Name>web \"q\" |p</Name>",
    );
    let ovf = package(dir, "efi", &text);
    ovf_disk_ok(
        dir,
        &[
            "import", "-q", "--zero", "sparse", "--emit", "libvirt", "--emit", "vmx", &ovf, "out",
        ],
    );
    let xml = dir.join("out/web__q___p.xml");
    let domain = std::fs::read_to_string(&xml).unwrap();
    for want in [
        "<os firmware=\"efi\">",
        "<feature enabled=\"no\" name=\"enrolled-keys\"/>",
        "<feature enabled=\"no\" name=\"secure-boot\"/>",
    ] {
        assert!(domain.contains(want), "{want} missing:\n{domain}");
    }
    assert!(!domain.contains("<smm"), "{domain}");
    libvirt_accepts(&xml);
    let vmx = std::fs::read_to_string(dir.join("out/web__q___p.vmx")).unwrap();
    assert!(vmx.contains("firmware = \"efi\""), "{vmx}");
    assert!(vmx.contains("uefi.secureBoot.enabled = \"FALSE\""), "{vmx}");
    // dissect reads the escaped name back, and Secure Boot off.
    let v = dissect_vmx(&dir.join("out/web__q___p.vmx"));
    let shown = v["attr"]["displayname"].as_str().unwrap();
    assert!(shown.contains("|22"), "{v}");
    assert_eq!(vmx_unescape(shown), "web \"q\" |p", "{v}");
    assert_eq!(v["attr"]["uefi.secureboot.enabled"], "FALSE", "{v}");
}
