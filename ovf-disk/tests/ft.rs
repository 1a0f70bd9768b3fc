//! `check --ft`: vSphere Fault Tolerance readiness. One package per rule that fails it (and
//! passes everything else), one that passes every rule, VM folders for the rules only a `.vmx`
//! can break, and a lone disk.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::path::Path;

use common::*;

/// A package that meets every legacy FT rule: 1 vCPU, 4 GiB, an LSI Logic disk, an e1000 NIC,
/// an empty CD-ROM, hardware version 13. `extra_items` go into its hardware section,
/// `disk_attrs` on its Disk; `replace` edits it further.
fn envelope_with(extra_items: &str, disk_attrs: &str, replace: &[(&str, &str)]) -> String {
    let mut e = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf">
  <References><File ovf:href="d.vmdk" ovf:id="f1"/></References>
  <DiskSection><Info>disks</Info><Disk ovf:capacity="1" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="d1" ovf:fileRef="f1"{disk_attrs}/></DiskSection>
  <VirtualSystem ovf:id="vm"><Info>vm</Info>
    <VirtualHardwareSection><Info>hw</Info>
      <System><vssd:InstanceID>0</vssd:InstanceID><vssd:VirtualSystemType>vmx-13</vssd:VirtualSystemType></System>
      <Item><rasd:ElementName>CPU</rasd:ElementName><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>1</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:ElementName>Memory</rasd:ElementName><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>4096</rasd:VirtualQuantity></Item>
      <Item><rasd:ElementName>SCSI</rasd:ElementName><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceSubType>lsilogic</rasd:ResourceSubType><rasd:ResourceType>6</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:ElementName>Disk</rasd:ElementName><rasd:HostResource>ovf:/disk/d1</rasd:HostResource><rasd:InstanceID>4</rasd:InstanceID><rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
      <Item><rasd:Connection>VM Network</rasd:Connection><rasd:ElementName>NIC</rasd:ElementName><rasd:InstanceID>5</rasd:InstanceID><rasd:ResourceSubType>E1000</rasd:ResourceSubType><rasd:ResourceType>10</rasd:ResourceType></Item>
      <Item><rasd:ElementName>IDE</rasd:ElementName><rasd:InstanceID>6</rasd:InstanceID><rasd:ResourceType>5</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:ElementName>CD</rasd:ElementName><rasd:InstanceID>7</rasd:InstanceID><rasd:Parent>6</rasd:Parent><rasd:ResourceType>15</rasd:ResourceType></Item>
      {extra_items}
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"#
    );
    for (from, to) in replace {
        assert!(e.contains(from), "{from}");
        e = e.replace(from, to);
    }
    e
}

/// `check --ft --json` of `file` in `dir` with `args`: the exit code and the rules by name.
fn ft(dir: &Path, file: &str, args: &[&str]) -> (i32, Vec<(String, String, String)>) {
    let mut all = vec!["check", "--ft", "--json"];
    all.extend_from_slice(args);
    all.push(file);
    let out = ovf_disk(dir, &all);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(v["ready"], out.status.code() == Some(0), "{v}");
    let rules = v["machines"][0]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["rule"].as_str().unwrap().to_string(),
                r["outcome"].as_str().unwrap().to_string(),
                r["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    (out.status.code().unwrap(), rules)
}

/// Asserts that exactly the rules in `failing` fail, the others pass (or pass after import).
fn only_failing(rules: &[(String, String, String)], failing: &[&str], case: &str) {
    for (rule, outcome, detail) in rules {
        let expect_fail = failing.contains(&rule.as_str());
        assert_eq!(
            outcome == "fail",
            expect_fail,
            "{case}: {rule} is {outcome} ({detail})"
        );
    }
    for f in failing {
        assert!(rules.iter().any(|(r, _, _)| r == f), "{case}: no rule {f}");
    }
}

#[test]
fn each_package_rule_fails_alone_and_a_clean_package_passes() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    qemu_create(dir, "d.vmdk", "streamOptimized", "1M");
    let cases: Vec<(&str, String, &str)> = vec![
        ("clean", envelope_with("", "", &[]), ""),
        (
            "two vCPUs",
            envelope_with("", "", &[("<rasd:VirtualQuantity>1</", "<rasd:VirtualQuantity>2</")]),
            "vcpus",
        ),
        (
            "128 GiB of memory",
            envelope_with("", "", &[("<rasd:VirtualQuantity>4096</", "<rasd:VirtualQuantity>131072</")]),
            "memory",
        ),
        (
            "a 3 TiB disk",
            envelope_with("", "", &[("ovf:capacity=\"1\" ovf:capacityAllocationUnits=\"byte * 2^20\"", "ovf:capacity=\"3\" ovf:capacityAllocationUnits=\"byte * 2^40\"")]),
            "disk-size",
        ),
        ("a delta disk", envelope_with("", " ovf:parentRef=\"base\"", &[]), "snapshots"),
        (
            "a USB controller",
            envelope_with("<Item><rasd:ElementName>USB</rasd:ElementName><rasd:InstanceID>9</rasd:InstanceID><rasd:ResourceType>23</rasd:ResourceType></Item>", "", &[]),
            "usb",
        ),
        (
            "a sound card",
            envelope_with("<Item><rasd:ElementName>Sound</rasd:ElementName><rasd:InstanceID>9</rasd:InstanceID><rasd:ResourceType>35</rasd:ResourceType></Item>", "", &[]),
            "sound",
        ),
        (
            "a serial port",
            envelope_with("<Item><rasd:ElementName>Serial</rasd:ElementName><rasd:InstanceID>9</rasd:InstanceID><rasd:ResourceType>21</rasd:ResourceType></Item>", "", &[]),
            "serial-parallel",
        ),
        (
            "3D video",
            envelope_with("<vmw:ExtraConfig ovf:required=\"false\" vmw:key=\"mks.enable3d\" vmw:value=\"TRUE\"/>", "", &[]),
            "3d-video",
        ),
        (
            "hardware version 4",
            envelope_with("", "", &[("vmx-13", "vmx-04")]),
            "hardware-version",
        ),
        (
            "a vlance NIC",
            envelope_with("", "", &[("E1000", "PCNet32")]),
            "nic-vlance",
        ),
    ];
    for (case, ovf, failing) in &cases {
        std::fs::write(dir.join("p.ovf"), ovf).unwrap();
        let (code, rules) = ft(dir, "p.ovf", &[]);
        let failing: Vec<&str> = failing.split_whitespace().collect();
        only_failing(&rules, &failing, case);
        assert_eq!(code, if failing.is_empty() { 0 } else { 2 }, "{case}");
        // A package's disks become eager-zeroed thick on import.
        assert!(
            rules
                .iter()
                .any(|(r, o, _)| r == "thick-disks" && o == "pass_after_import"),
            "{case}: {rules:?}"
        );
    }
    // SMP-FT: two vCPUs and 128 GiB pass; 16 vCPUs do not; disks need not be thick.
    std::fs::write(dir.join("p.ovf"), &cases[1].1).unwrap();
    let (code, rules) = ft(dir, "p.ovf", &["--ft-version", "smp"]);
    assert_eq!(code, 0, "{rules:?}");
    assert!(rules
        .iter()
        .any(|(r, o, _)| r == "thick-disks" && o == "pass"));
    let many = envelope_with(
        "",
        "",
        &[("<rasd:VirtualQuantity>1</", "<rasd:VirtualQuantity>16</")],
    );
    std::fs::write(dir.join("p.ovf"), many).unwrap();
    let (code, rules) = ft(dir, "p.ovf", &["--ft-version", "smp"]);
    assert_eq!(code, 2);
    only_failing(&rules, &["vcpus"], "16 vCPUs, SMP-FT");
    // The text names every rule and the verdict.
    std::fs::write(dir.join("p.ovf"), &cases[0].1).unwrap();
    let text = ovf_disk_ok(dir, &["check", "--ft", "p.ovf"]);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("thick-disks       pass after import"),
        "{text}"
    );
    assert!(text.ends_with("FT-ready after import.\n"), "{text}");
    // What only the cluster can show is listed, to check there.
    assert!(
        text.contains("check on the cluster (no package shows these):\n  - the hosts in a vSphere HA cluster, with HA enabled\n"),
        "{text}"
    );
    let out = ovf_disk(
        dir,
        &["check", "--ft", "--json", "--ft-version", "smp", "p.ovf"],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let cluster: Vec<&str> = v["on_the_cluster"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["requirement"].as_str().unwrap())
        .collect();
    assert!(
        cluster.contains(&"a 10 Gbit/s Fault Tolerance logging network, dedicated"),
        "{cluster:?}"
    );
    assert!(
        cluster
            .iter()
            .any(|c| c.contains("hardware-assisted virtualisation")),
        "{cluster:?}"
    );
}

/// A VM folder: `vm.vmx` with `settings`, and its disk `d.vmdk` (with a snapshot over it when
/// `snapshot`).
fn vm_folder(dir: &Path, settings: &str, snapshot: bool) {
    if !dir.join("d.vmdk").exists() {
        qemu_create(dir, "d.vmdk", "monolithicFlat", "1M");
        qemu_delta(dir, "d.vmdk", "d-000001.vmdk");
    }
    let leaf = if snapshot { "d-000001.vmdk" } else { "d.vmdk" };
    std::fs::write(
        dir.join("vm.vmx"),
        format!("virtualHW.version = \"13\"\nnumvcpus = \"1\"\nmemsize = \"2048\"\nscsi0.present = \"TRUE\"\nscsi0:0.fileName = \"{leaf}\"\n{settings}"),
    )
    .unwrap();
}

#[test]
fn vm_folder_rules_and_a_lone_disk() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    vm_folder(dir, "", false);
    let (code, rules) = ft(dir, "vm.vmx", &[]);
    only_failing(&rules, &[], "a clean VM");
    assert_eq!(code, 0);
    // A snapshot chain: consolidated by inflate.
    vm_folder(dir, "", true);
    let (code, rules) = ft(dir, "vm.vmx", &[]);
    assert_eq!(code, 0, "{rules:?}");
    assert!(
        rules
            .iter()
            .any(|(r, o, _)| r == "snapshots" && o == "pass_after_import"),
        "{rules:?}"
    );
    for (settings, failing) in [
        ("ide1:0.present = \"TRUE\"\nide1:0.deviceType = \"cdrom-raw\"\nide1:0.fileName = \"/dev/sr0\"\nide1:0.startConnected = \"TRUE\"\n", "cdrom-floppy"),
        ("wwn.node = \"28230000000000a1\"\nwwn.port = \"28230000000000a2\"\n", "npiv"),
        ("vmci0.present = \"TRUE\"\nvmci0.unrestricted = \"TRUE\"\n", "vmci"),
        ("usb.present = \"TRUE\"\n", "usb"),
        ("sound.present = \"TRUE\"\n", "sound"),
        ("serial0.present = \"TRUE\"\n", "serial-parallel"),
        ("mks.enable3d = \"TRUE\"\n", "3d-video"),
        ("ethernet0.present = \"TRUE\"\nethernet0.virtualDev = \"vlance\"\n", "nic-vlance"),
        ("numvcpus = \"2\"\n", "vcpus"),
    ] {
        vm_folder(dir, settings, false);
        let (code, rules) = ft(dir, "vm.vmx", &[]);
        only_failing(&rules, &[failing], settings);
        assert_eq!(code, 2, "{settings}");
    }
    // A physical-mode raw device map (its device is not here: the descriptor says what it is).
    std::fs::write(
        dir.join("rdm.vmdk"),
        "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"vmfsPassthroughRawDeviceMap\"\n\nRW 2048 VMFSRDM \"rdm-rdmp.vmdk\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("vm.vmx"),
        "virtualHW.version = \"13\"\nscsi0:0.fileName = \"d.vmdk\"\nscsi0:1.fileName = \"rdm.vmdk\"\n",
    )
    .unwrap();
    let (code, rules) = ft(dir, "vm.vmx", &[]);
    only_failing(&rules, &["physical-rdm"], "a physical RDM");
    assert_eq!(code, 2);
    // A lone disk: its own rules only.
    let (code, rules) = ft(dir, "d-000001.vmdk", &[]);
    assert_eq!(code, 0);
    let names: Vec<&str> = rules.iter().map(|(r, _, _)| r.as_str()).collect();
    assert_eq!(
        names,
        ["thick-disks", "disk-size", "snapshots", "physical-rdm"]
    );
}

/// Each size limit on both sides of its boundary, for the FT it applies to: vCPUs (legacy 1,
/// SMP-FT 8), memory (legacy 64 GiB, SMP-FT 128 GiB), a disk (2 TiB, not one sector more),
/// the hardware version (legacy: 7 or later). The limits are VMware's published ones, cited
/// in `ft.rs` and in each rule's source.
#[test]
fn every_limit_passes_on_it_and_fails_one_past_it() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    qemu_create(dir, "d.vmdk", "streamOptimized", "1M");
    let cpus = |n: u32| {
        (
            "<rasd:VirtualQuantity>1</".to_string(),
            format!("<rasd:VirtualQuantity>{n}</"),
        )
    };
    let mib = |n: u64| {
        (
            "<rasd:VirtualQuantity>4096</".to_string(),
            format!("<rasd:VirtualQuantity>{n}</"),
        )
    };
    let disk = |sectors: u64| {
        (
            "ovf:capacity=\"1\" ovf:capacityAllocationUnits=\"byte * 2^20\"".to_string(),
            format!("ovf:capacity=\"{sectors}\" ovf:capacityAllocationUnits=\"byte * 2^9\""),
        )
    };
    let hw = |v: &str| ("vmx-13".to_string(), v.to_string());
    // (FT version, the edit, the rule it bears on, whether it passes)
    let cases = [
        ("legacy", cpus(1), "vcpus", true),
        ("legacy", cpus(2), "vcpus", false),
        ("smp", cpus(8), "vcpus", true),
        ("smp", cpus(9), "vcpus", false),
        ("legacy", mib(64 << 10), "memory", true),
        ("legacy", mib((64 << 10) + 1), "memory", false),
        ("smp", mib(128 << 10), "memory", true),
        ("smp", mib((128 << 10) + 1), "memory", false),
        ("legacy", disk(2 << 31), "disk-size", true),
        ("legacy", disk((2 << 31) + 1), "disk-size", false),
        ("smp", disk(2 << 31), "disk-size", true),
        ("smp", disk((2 << 31) + 1), "disk-size", false),
        ("legacy", hw("vmx-07"), "hardware-version", true),
        ("legacy", hw("vmx-06"), "hardware-version", false),
    ];
    for (version, (from, to), rule, passes) in &cases {
        let text = envelope_with("", "", &[(from.as_str(), to.as_str())]);
        std::fs::write(dir.join("p.ovf"), text).unwrap();
        let (code, rules) = ft(dir, "p.ovf", &["--ft-version", version]);
        let failing: &[&str] = if *passes { &[] } else { &[*rule] };
        let case = format!("{version} {to}");
        only_failing(&rules, failing, &case);
        assert!(rules.iter().any(|(r, _, _)| r == rule), "{case}: {rules:?}");
        assert_eq!(code, if *passes { 0 } else { 2 }, "{case}");
    }
}
