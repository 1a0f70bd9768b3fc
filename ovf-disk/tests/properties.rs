//! OVF properties and deployment options: `info` lists them, `import --prop KEY=VALUE` checks
//! values against types and qualifiers before anything is written, `--deployment-option`
//! picks the hardware the emitted configurations describe, and the OVF environment document
//! (`ovf-env.xml`) is written, on an ISO 9660 image too with `--ovf-env-iso` (read back by
//! xorriso, a reader no one here wrote).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::path::Path;
use std::process::Command;

use common::*;

const OVF: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData">
  <References><File ovf:href="d.vmdk" ovf:id="f1"/></References>
  <DiskSection><Info>disks</Info><Disk ovf:capacity="1" ovf:capacityAllocationUnits="byte * 2^20" ovf:diskId="d1" ovf:fileRef="f1"/></DiskSection>
  <DeploymentOptionSection><Info>sizes</Info>
    <Configuration ovf:id="small" ovf:default="true"><Label>Small</Label><Description>1 CPU</Description></Configuration>
    <Configuration ovf:id="large"><Label>Large</Label><Description>4 CPUs</Description></Configuration>
  </DeploymentOptionSection>
  <VirtualSystem ovf:id="appliance"><Info>vm</Info><Name>appliance</Name>
    <ProductSection ovf:class="vami" ovf:instance="appliance"><Info>settings</Info><Product>Appliance</Product>
      <Category>Network</Category>
      <Property ovf:key="hostname" ovf:type="string" ovf:qualifiers="MinLen(1) MaxLen(15)" ovf:userConfigurable="true" ovf:value="appliance"><Label>Host name</Label><Description>The host name</Description></Property>
      <Property ovf:key="workers" ovf:type="uint16" ovf:qualifiers="ValueMap{&quot;1..8&quot;}" ovf:userConfigurable="true" ovf:value="2"><Label>Workers</Label></Property>
      <Property ovf:key="role" ovf:type="string" ovf:qualifiers="ValueMap{&quot;web&quot;, &quot;db&quot;}" ovf:userConfigurable="true" ovf:value="web"/>
      <Property ovf:key="secret" ovf:type="string" ovf:password="true" ovf:userConfigurable="true"/>
      <Property ovf:key="build" ovf:type="string" ovf:value="42 &lt;stable&gt;"/>
    </ProductSection>
    <VirtualHardwareSection><Info>hw</Info>
      <System><vssd:InstanceID>0</vssd:InstanceID><vssd:VirtualSystemType>vmx-13</vssd:VirtualSystemType></System>
      <Item ovf:configuration="small"><rasd:ElementName>CPU</rasd:ElementName><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>1</rasd:VirtualQuantity></Item>
      <Item ovf:configuration="large"><rasd:ElementName>CPU</rasd:ElementName><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>4</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:ElementName>Memory</rasd:ElementName><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>1024</rasd:VirtualQuantity></Item>
      <Item><rasd:ElementName>SCSI</rasd:ElementName><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceSubType>lsilogic</rasd:ResourceSubType><rasd:ResourceType>6</rasd:ResourceType></Item>
      <Item><rasd:AddressOnParent>0</rasd:AddressOnParent><rasd:ElementName>Disk</rasd:ElementName><rasd:HostResource>ovf:/disk/d1</rasd:HostResource><rasd:InstanceID>4</rasd:InstanceID><rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"#;

fn package(dir: &Path) {
    PackageDir::new(dir).file("p.ovf", OVF.as_bytes());
    qemu_create(dir, "d.vmdk", "streamOptimized", "1M");
}

#[test]
fn info_lists_properties_and_deployment_options() {
    let d = tempfile::tempdir().unwrap();
    package(d.path());
    let out = ovf_disk_ok(d.path(), &["info", "p.ovf"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        // The summary is the default configuration's: 1 CPU, not the large one's 4.
        "system appliance \"appliance\":  CPUs 1, memory 1.00 GiB",
        "deployment option small (default): Small",
        "deployment option large: Large (4 CPUs instead of 1 CPU)\n",
        "property vami.hostname.appliance (string, MinLen(1) MaxLen(15), user-configurable) default \"appliance\": Host name",
        "property vami.workers.appliance (uint16, ValueMap{\"1..8\"}, user-configurable) default \"2\": Workers",
        "property vami.secret.appliance (string, user-configurable) default hidden (a password)",
        "property vami.build.appliance (string) default \"42 <stable>\"",
    ] {
        assert!(text.contains(want), "{want:?} missing:\n{text}");
    }
    let out = ovf_disk_ok(d.path(), &["info", "--json", "p.ovf"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["properties"].as_array().unwrap().len(), 5);
    assert_eq!(v["properties"][0]["system"], "appliance");
    assert_eq!(v["deployment_options"][0]["default"], true);
    assert_eq!(v["systems"][0]["cpus"], 1);
    assert_eq!(
        v["configurations"],
        serde_json::json!([
            { "option": "small", "system": "appliance", "cpus": 1, "memory_bytes": 1u64 << 30, "nics": 0 },
            { "option": "large", "system": "appliance", "cpus": 4, "memory_bytes": 1u64 << 30, "nics": 0 },
        ])
    );
}

#[test]
fn values_are_checked_before_anything_is_written() {
    let d = tempfile::tempdir().unwrap();
    package(d.path());
    for (args, why) in [
        (
            vec!["--prop", "hostname=a-name-far-too-long"],
            "longer than MaxLen(15)",
        ),
        (vec!["--prop", "hostname="], "shorter than MinLen(1)"),
        (vec!["--prop", "workers=9"], "not one of 1..8"),
        (
            vec!["--prop", "workers=two"],
            "is not an unsigned integer (uint16)",
        ),
        (vec!["--prop", "role=cache"], "not one of web, db"),
        (vec!["--prop", "build=43"], "not user-configurable"),
        (
            vec!["--prop", "nosuch=1"],
            "the package has no such property",
        ),
        (
            vec!["--deployment-option", "huge"],
            "the package offers small, large",
        ),
    ] {
        let mut all = vec!["import"];
        all.extend(args.iter().copied());
        all.extend(["p.ovf", "out"]);
        let run = ovf_disk(d.path(), &all);
        let err = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(why), "{args:?}: {err}");
        assert!(!d.path().join("out").exists(), "{args:?}");
    }
    // A password's value is never shown, even when refused; nothing is written.
    let run = ovf_disk(
        d.path(),
        &[
            "import",
            "--prop",
            "vami.secret.appliance=s3cr3t\u{1}",
            "p.ovf",
            "out",
        ],
    );
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(!err.contains("s3cr3t"), "{err}");
    assert!(
        err.contains(
            "--prop vami.secret.appliance=(a password): holds a character XML 1.0 cannot carry"
        ),
        "{err}"
    );
    assert!(!d.path().join("out").exists());
}

#[test]
fn the_environment_and_the_chosen_configuration_are_written() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    package(dir);
    let out = ovf_disk_ok(
        dir,
        &[
            "import",
            "--json",
            "--zero",
            "sparse",
            "--emit",
            "libvirt",
            "--deployment-option",
            "large",
            "--prop",
            "hostname=web1",
            "--prop",
            "vami.workers.appliance=8",
            "--prop",
            "secret=a\"b<c",
            "--ovf-env-iso",
            "p.ovf",
            "out",
        ],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["environment"].as_array().unwrap().len(), 2, "{v}");
    let env = std::fs::read_to_string(dir.join("out/ovf-env.xml")).unwrap();
    for want in [
        "oe:id=\"appliance\"",
        "<Property oe:key=\"vami.hostname.appliance\" oe:value=\"web1\"/>",
        "<Property oe:key=\"vami.workers.appliance\" oe:value=\"8\"/>",
        "<Property oe:key=\"vami.role.appliance\" oe:value=\"web\"/>",
        "<Property oe:key=\"vami.secret.appliance\" oe:value=\"a&quot;b&lt;c\"/>",
        "<Property oe:key=\"vami.build.appliance\" oe:value=\"42 &lt;stable&gt;\"/>",
    ] {
        assert!(env.contains(want), "{want} missing:\n{env}");
    }
    // The environment is well-formed XML by a parser no one here wrote.
    let lint = Command::new(tool("xmllint"))
        .args(["--noout"])
        .arg(dir.join("out/ovf-env.xml"))
        .output()
        .unwrap();
    assert!(
        lint.status.success(),
        "{}",
        String::from_utf8_lossy(&lint.stderr)
    );
    // The ISO holds it, as xorriso reads it.
    let listing = Command::new(tool("xorriso"))
        .args(["-indev", "out/ovf-env.iso", "-find", "/", "-type", "f"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        listing.status.success(),
        "{}",
        String::from_utf8_lossy(&listing.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&listing.stdout).trim(),
        "'/OVF_ENV.XML'"
    );
    let extract = Command::new(tool("xorriso"))
        .args([
            "-osirrox",
            "on",
            "-indev",
            "out/ovf-env.iso",
            "-extract",
            "/OVF_ENV.XML",
            "extracted.xml",
        ])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        extract.status.success(),
        "{}",
        String::from_utf8_lossy(&extract.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("extracted.xml")).unwrap(),
        env
    );
    // The large configuration's hardware.
    let xml = std::fs::read_to_string(dir.join("out/appliance.xml")).unwrap();
    assert!(xml.contains("<vcpu>4</vcpu>"), "{xml}");
    // The written OVF describes the VM as deployed: the large configuration's items only and
    // no DeploymentOptionSection, the properties' values (not the password), as our reader
    // and xmllint read it; the rest of the text as it was.
    let written = std::fs::read_to_string(dir.join("out/p.ovf")).unwrap();
    run_ok(dir, "xmllint", &["--noout", "out/p.ovf"]);
    assert!(!written.contains("DeploymentOptionSection"), "{written}");
    assert!(!written.contains("ovf:configuration"), "{written}");
    assert_eq!(
        written.matches("<rasd:ResourceType>3<").count(),
        1,
        "{written}"
    );
    assert!(written.contains("<Item><rasd:ElementName>CPU</rasd:ElementName><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>4</rasd:VirtualQuantity></Item>"), "{written}");
    assert!(!written.contains("a&quot;b"), "{written}");
    let info: serde_json::Value =
        serde_json::from_slice(&ovf_disk_ok(dir, &["info", "--json", "out/p.ovf"]).stdout).unwrap();
    assert_eq!(info["systems"][0]["cpus"], 4, "{info}");
    let props = info["properties"].as_array().unwrap();
    let value_of = |key: &str| {
        props
            .iter()
            .find(|p| p["key"] == key)
            .map(|p| p["default"].clone())
            .unwrap()
    };
    assert_eq!(value_of("hostname"), "web1");
    assert_eq!(value_of("workers"), "8");
    assert_eq!(value_of("role"), "web");
    assert_eq!(value_of("build"), "42 <stable>");
    assert!(value_of("secret").is_null(), "{info}");
    assert!(written.contains(
        "<Property ovf:key=\"build\" ovf:type=\"string\" ovf:value=\"42 &lt;stable&gt;\"/>"
    ));
    // The default configuration when none is chosen.
    ovf_disk_ok(
        dir,
        &[
            "import", "-q", "--zero", "sparse", "--emit", "libvirt", "p.ovf", "out2",
        ],
    );
    let xml = std::fs::read_to_string(dir.join("out2/appliance.xml")).unwrap();
    assert!(xml.contains("<vcpu>1</vcpu>"), "{xml}");
    let env2 = std::fs::read_to_string(dir.join("out2/ovf-env.xml")).unwrap();
    assert!(env2.contains("oe:value=\"appliance\""), "{env2}");
}
