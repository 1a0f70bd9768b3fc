//! The `ovf` crate on its own, as an importer that links nothing else uses it: an envelope read
//! once carries what the product rules need (ExtraConfig keys, required sections, the drives'
//! disks), an edit keeps every byte it does not change, and a manifest lists its digests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::Path;

use ovf::hardware::{disk_id_of, DeviceKind};
use ovf::manifest::{Algorithm, Manifest};
use ovf::write::{edit_envelope, EnvelopeEdits};
use ovf::Envelope;

const ENVELOPE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf">
  <References><File ovf:href="web-disk1.vmdk" ovf:id="file1" ovf:size="4096"/></References>
  <DiskSection><Info>Disks</Info><Disk ovf:capacity="8" ovf:capacityAllocationUnits="byte * 2^30" ovf:diskId="vmdisk1" ovf:fileRef="file1"/></DiskSection>
  <vmw:IpAssignmentSection ovf:required="true"><Info>IP</Info></vmw:IpAssignmentSection>
  <VirtualSystem ovf:id="web">
    <Info>A VM</Info>
    <vmw:BootOrderSection ovf:required="false"><Info>Boot</Info></vmw:BootOrderSection>
    <VirtualHardwareSection>
      <Info>Hardware</Info>
      <Item><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>6</rasd:ResourceType><rasd:ResourceSubType>lsilogic</rasd:ResourceSubType></Item>
      <Item><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource><rasd:InstanceID>2</rasd:InstanceID><rasd:Parent>1</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
      <vmw:ExtraConfig vmw:key="disk.EnableUUID" vmw:value="TRUE"/>
      <vmw:ExtraConfig vmw:key="tools.syncTime" vmw:value="FALSE"/>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"#;

#[test]
fn one_parse_carries_what_the_rules_need() {
    let env = Envelope::parse(ENVELOPE, Path::new("web.ovf")).unwrap();
    assert_eq!(env.extra_config_keys, ["disk.EnableUUID", "tools.syncTime"]);
    assert_eq!(
        env.required_sections.len(),
        1,
        "{:?}",
        env.required_sections
    );
    assert_eq!(env.required_sections[0].name, "IpAssignmentSection");
    assert_eq!(env.required_sections[0].line, 5);
    let h = &env.systems[0].hardware;
    let drive = h.of(DeviceKind::Disk).next().unwrap();
    assert_eq!(disk_id_of(drive), Some("vmdisk1"));
    let disk = env
        .disks
        .iter()
        .find(|d| Some(d.disk_id.as_str()) == disk_id_of(drive))
        .unwrap();
    assert_eq!(env.file_of(disk).unwrap().href, "web-disk1.vmdk");
    assert_eq!(disk.capacity_bytes, Some(8 << 30));
}

#[test]
fn an_edit_changes_only_what_it_names() {
    assert_eq!(
        edit_envelope(ENVELOPE, &EnvelopeEdits::new()).unwrap(),
        ENVELOPE
    );
    let mut edits = EnvelopeEdits::new();
    edits.file("web-disk1.vmdk", "web-disk1 & co.vmdk", 8192);
    let out = edit_envelope(ENVELOPE, &edits).unwrap();
    let expected = ENVELOPE
        .replace("web-disk1.vmdk\"", "web-disk1 &amp; co.vmdk\"")
        .replace("ovf:size=\"4096\"", "ovf:size=\"8192\"");
    assert_eq!(out, expected);
    let env = Envelope::parse(&out, Path::new("web.ovf")).unwrap();
    assert_eq!(env.files[0].href, "web-disk1 & co.vmdk");
}

#[test]
fn errors_name_the_file_and_line() {
    let err = Envelope::parse("<Envelope>\n<a></b>", Path::new("bad.ovf")).unwrap_err();
    assert!(
        matches!(err, ovf::Error::Envelope { line: Some(2), .. }),
        "{err}"
    );
    assert!(
        err.to_string().starts_with("bad.ovf: OVF envelope line 2"),
        "{err}"
    );
    let sha = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    let m = Manifest::parse(
        &format!("SHA256(web-disk1.vmdk)= {sha}\n"),
        Path::new("web.mf"),
    )
    .unwrap();
    assert_eq!(
        m.get("web-disk1.vmdk").unwrap().algorithm,
        Algorithm::Sha256
    );
    let err = Manifest::parse("SHA256(../x)= 00\n", Path::new("web.mf")).unwrap_err();
    assert!(matches!(err, ovf::Error::Manifest { line: 1, .. }), "{err}");
}

/// With a DeploymentOptionSection, the summary is the default configuration's (as an import
/// deploys it), not the last configuration's items.
#[test]
fn the_summary_is_the_default_configurations() {
    let item = |rt: u32, q: u64, config: &str| {
        let c = if config.is_empty() {
            String::new()
        } else {
            format!(" ovf:configuration=\"{config}\"")
        };
        format!("<Item{c}><rasd:InstanceID>{rt}{q}</rasd:InstanceID><rasd:ResourceType>{rt}</rasd:ResourceType><rasd:VirtualQuantity>{q}</rasd:VirtualQuantity><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits></Item>")
    };
    let nic = |n: u32, config: &str| {
        format!("<Item ovf:configuration=\"{config}\"><rasd:Connection>VM Network</rasd:Connection><rasd:InstanceID>9{n}</rasd:InstanceID><rasd:ResourceType>10</rasd:ResourceType></Item>")
    };
    let text = format!(
        r#"<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData">
  <References/>
  <VirtualSystem ovf:id="vm"><Info/><VirtualHardwareSection><Info/>{}{}{}{}{}{}</VirtualHardwareSection></VirtualSystem>
  <DeploymentOptionSection><Info/>
    <Configuration ovf:id="small" ovf:default="true"><Label>Small</Label></Configuration>
    <Configuration ovf:id="large"><Label>Large</Label></Configuration>
  </DeploymentOptionSection>
</Envelope>"#,
        item(3, 1, "small"),
        item(4, 4096, "small"),
        nic(1, "small large"),
        item(3, 4, "large"),
        item(4, 8192, "large"),
        nic(2, "large")
    );
    let env = Envelope::parse(&text, Path::new("d.ovf")).unwrap();
    let s = &env.systems[0];
    assert_eq!(env.default_deployment_option(), Some("small"));
    assert_eq!(s.cpus, Some(1));
    assert_eq!(s.memory_bytes, Some(4 << 30));
    assert_eq!(s.nics, ["VM Network"]);
    // The typed hardware keeps every item, by configuration.
    let large = s.hardware.select(Some("large"));
    assert_eq!(large.cpus(), Some(4));
    assert_eq!(large.memory_bytes(), Some(8 << 30));
}
