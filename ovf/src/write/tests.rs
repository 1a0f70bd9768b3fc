//! Tests of the writers: escaping, building, editing byte-preserving, the 1.x rewrite.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::Path;

use super::build::*;
use super::downgrade::*;
use super::edit::*;
use crate::envelope::tests::V1;
use crate::envelope::Envelope;
use crate::xml::MAX_ENVELOPE_SIZE;

/// An envelope with what a text edit gets wrong: a comment before the root, a processing
/// instruction, the OVF namespace under the prefix `o:`, single-quoted and entity-escaped
/// values, a CDATA section and the format URI in text, a `vmw:` section with a `File` and a
/// format of its own, an end tag with a space, a value spread over lines, non-ASCII text.
const RICH: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<!-- exported by hand; <File o:href=\"a&amp;b.vmdk\"/> in a comment is not a reference -->\n\
<?vendor keep-me?>\n\
<Envelope xmlns=\"http://schemas.dmtf.org/ovf/envelope/1\" xmlns:o='http://schemas.dmtf.org/ovf/envelope/1' xmlns:vmw=\"http://www.vmware.com/schema/ovf\" vmw:buildId='build-1'>\r\n\
  <References>\n\
    <File o:href='a&amp;b.vmdk' o:id=\"file1\"   o:size='100' />\n\
    <File o:id=\"file2\" o:href=\"disk-é€.vmdk\" o:size=\"200\"/>\n\
    <File o:id=\"file3\"\n      o:href=\"x&lt;y &#233;.vmdk\"></File>\n\
  </References>\n\
  <!-- the disks -->\n\
  <DiskSection>\n\
    <Info>Virtual disk information, <![CDATA[<raw> & vmdk.html#streamOptimized]]> and vmdk.html#streamOptimized</Info >\n\
    <Disk o:capacity=\"1\" o:capacityAllocationUnits=\"byte * 2^20\" o:diskId=\"d1\" o:fileRef=\"file1\" o:format='http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized'/>\n\
    <Disk o:capacity=\"2\" o:capacityAllocationUnits=\"byte * 2^20\" o:diskId=\"d2\" o:fileRef=\"file2\"\n          o:format=\"http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized\"/>\n\
    <Disk o:capacity=\"3\" o:capacityAllocationUnits=\"byte * 2^20\" o:diskId=\"d3\" o:fileRef=\"file3\" o:format=\"http://example.com/qcow2\"/>\n\
  </DiskSection>\n\
  <vmw:StorageGroupSection o:required=\"false\"><Info>vmdk.html#streamOptimized &amp; more</Info><vmw:File o:href=\"a&amp;b.vmdk\" o:size=\"100\"/><vmw:Disk o:format=\"vmdk.html#streamOptimized\"/></vmw:StorageGroupSection>\n\
  <VirtualSystem o:id=\"vm &amp; co\">\n\
    <Info>A VM</Info>\n\
    <Name>vm &amp; co — ünïcödé</Name>\n\
  </VirtualSystem>\n\
</Envelope>\n";

/// The names a text edit breaks on, each a plain file name a package may use.
const NAMES: [&str; 8] = [
    "a&b.vmdk",
    "x<y.vmdk",
    "q\"uote.vmdk",
    "q'uote.vmdk",
    "with space.vmdk",
    "disk-é€.vmdk",
    "tab\there.vmdk",
    "all &<>\"' é.vmdk",
];

fn parse(text: &str) -> Envelope {
    Envelope::parse(text, Path::new("t.ovf")).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[test]
fn no_edits_give_back_the_same_bytes() {
    for text in [V1, RICH] {
        assert_eq!(edit_envelope(text, &EnvelopeEdits::new()).unwrap(), text);
        // A mapping that changes nothing, and files repointed at themselves.
        let mut edits = EnvelopeEdits::new();
        edits.format(vmdk_format("streamOptimized"));
        for f in parse(text).files {
            edits.file(&f.href, &f.href, f.size.unwrap_or(0));
        }
        assert_eq!(edit_envelope(text, &edits).unwrap(), text);
    }
    // A byte-order mark and a document without a declaration.
    let bom = format!("\u{feff}{V1}");
    assert_eq!(edit_envelope(&bom, &EnvelopeEdits::new()).unwrap(), bom);
    // With a byte-order mark, edits land where they belong.
    let mut edits = EnvelopeEdits::new();
    edits.file("vm-disk1.vmdk", "other.vmdk", 7);
    let plain = edit_envelope(V1, &edits).unwrap();
    assert_eq!(
        edit_envelope(&bom, &edits).unwrap(),
        format!("\u{feff}{plain}")
    );
    let v2 = bom.replace("envelope/1", "envelope/2");
    assert_eq!(
        downgrade_envelope(&v2).unwrap(),
        format!(
            "\u{feff}{}",
            downgrade_envelope(&V1.replace("envelope/1", "envelope/2")).unwrap()
        )
    );
    let bare = "<Envelope xmlns='urn:x'/>";
    assert_eq!(edit_envelope(bare, &EnvelopeEdits::new()).unwrap(), bare);
}

#[test]
fn the_rich_envelope_parses_as_written() {
    let env = parse(RICH);
    let hrefs: Vec<_> = env.files.iter().map(|f| f.href.as_str()).collect();
    assert_eq!(hrefs, ["a&b.vmdk", "disk-é€.vmdk", "x<y é.vmdk"]);
    assert_eq!(env.disks.len(), 3);
    assert_eq!(env.systems[0].id, "vm & co");
}

#[test]
fn edits_change_only_the_values_they_name() {
    let mut edits = EnvelopeEdits::new();
    edits
        .file("a&b.vmdk", "q\"uote's.vmdk", 4096)
        .file("x<y é.vmdk", "plain.vmdk", 7)
        .format(vmdk_format("monolithicFlat"));
    let out = edit_envelope(RICH, &edits).unwrap();
    let flat = "http://www.vmware.com/interfaces/specifications/vmdk.html#monolithicFlat";
    let stream = "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized";
    let expected = RICH
        .replacen(
            "<File o:href='a&amp;b.vmdk' o:id=\"file1\"   o:size='100' />",
            "<File o:href='q&quot;uote&apos;s.vmdk' o:id=\"file1\"   o:size='4096' />",
            1,
        )
        // No size to rewrite on file3: none is added.
        .replacen("o:href=\"x&lt;y &#233;.vmdk\"", "o:href=\"plain.vmdk\"", 1)
        .replacen(
            &format!("o:format='{stream}'"),
            &format!("o:format='{flat}'"),
            1,
        )
        .replacen(
            &format!("o:format=\"{stream}\""),
            &format!("o:format=\"{flat}\""),
            1,
        );
    assert_ne!(expected, RICH);
    assert_eq!(out, expected);
    let env = parse(&out);
    let files: Vec<_> = env
        .files
        .iter()
        .map(|f| (f.href.as_str(), f.size))
        .collect();
    assert_eq!(
        files,
        [
            ("q\"uote's.vmdk", Some(4096)),
            ("disk-é€.vmdk", Some(200)),
            ("plain.vmdk", None)
        ]
    );
    let formats: Vec<_> = env
        .disks
        .iter()
        .map(|d| d.format.as_deref().unwrap())
        .collect();
    assert_eq!(formats, [flat, flat, "http://example.com/qcow2"]);
}

#[test]
fn hostile_names_round_trip_through_edits() {
    let size = 68608;
    for name in NAMES {
        let mut edits = EnvelopeEdits::new();
        edits.file("vm-disk1.vmdk", name, 4242);
        let out = edit_envelope(V1, &edits).unwrap();
        let env = parse(&out);
        assert_eq!(env.files[0].href, name, "{out}");
        assert_eq!(env.files[0].size, Some(4242));
        assert!(!out.contains(&format!("ovf:size=\"{size}\"")));
        // And back, matched by the unescaped value.
        let mut back = EnvelopeEdits::new();
        back.file(name, "vm-disk1.vmdk", size);
        assert_eq!(edit_envelope(&out, &back).unwrap(), V1, "{name}");
    }
}

#[test]
fn edits_refuse_what_they_cannot_do() {
    let edit = |text: &str, href: &str| {
        let mut edits = EnvelopeEdits::new();
        edits.file(href, "new.vmdk", 1);
        edit_envelope(text, &edits).map_err(|e| e.to_string())
    };
    let err = edit(V1, "other.vmdk").unwrap_err();
    assert!(
        err.contains("no References/File has href \"other.vmdk\""),
        "{err}"
    );
    // The File in the vmw: section and the one in the comment are not references.
    let no_ref = RICH.replace("<File o:href='a&amp;b.vmdk'", "<File o:href='z.vmdk'");
    assert!(edit(&no_ref, "a&b.vmdk").is_err());
    let dtd = format!("<!DOCTYPE Envelope [<!ENTITY a \"x\">]>{}", &V1[38..]);
    assert!(edit(&dtd, "vm-disk1.vmdk").unwrap_err().contains("DTD"));
    let mismatched = V1.replace("</References>", "</Reference>");
    assert!(edit(&mismatched, "vm-disk1.vmdk").is_err());
    let unclosed = V1.replace("</Envelope>", "");
    assert!(edit(&unclosed, "vm-disk1.vmdk")
        .unwrap_err()
        .contains("ends inside an element"));
    assert!(edit("<!-- nothing -->", "a")
        .unwrap_err()
        .contains("no Envelope"));
    let duplicate = V1.replace("ovf:id=\"file1\"", "ovf:id=\"file1\" ovf:id=\"file2\"");
    assert!(edit(&duplicate, "vm-disk1.vmdk").is_err());
    let unquoted = V1.replace("ovf:id=\"file1\"", "ovf:id=file1");
    assert!(edit(&unquoted, "vm-disk1.vmdk").is_err());
    let root = "<Other><References><File href='a'/></References></Other>";
    assert!(edit(root, "a").unwrap_err().contains("not Envelope"));
    let mut control = EnvelopeEdits::new();
    control.file("vm-disk1.vmdk", "bell\u{7}.vmdk", 1);
    assert!(edit_envelope(V1, &control)
        .unwrap_err()
        .to_string()
        .contains("XML 1.0 cannot carry"));
    let huge = format!("{V1}{}", " ".repeat(MAX_ENVELOPE_SIZE));
    assert!(edit(&huge, "vm-disk1.vmdk").is_err());
}

#[test]
fn a_0_9_disk_section_is_edited_too() {
    let v09 = "<Envelope xmlns='http://www.vmware.com/schema/ovf/1/envelope' xmlns:xsi='http://www.w3.org/2001/XMLSchema-instance'><References><File ovf:href='d.vmdk' ovf:size='1' xmlns:ovf='http://www.vmware.com/schema/ovf/1/envelope'/></References><Section xsi:type='ovf:DiskSection_Type'><Disk format='http://www.vmware.com/specifications/vmdk.html#sparse'/></Section><Section xsi:type='ovf:NetworkSection_Type'><Disk format='vmdk.html#sparse'/></Section></Envelope>";
    let mut edits = EnvelopeEdits::new();
    edits.format(vmdk_format("streamOptimized"));
    assert_eq!(
        edit_envelope(v09, &edits).unwrap(),
        v09.replacen("vmdk.html#sparse", "vmdk.html#streamOptimized", 1)
    );
}

#[test]
fn a_deployment_keeps_its_items_and_sets_property_values() {
    let text = r#"<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <DeploymentOptionSection><Info>x</Info><Configuration ovf:id="a"/><Configuration ovf:id="b"/></DeploymentOptionSection>
  <VirtualSystem ovf:id="vm">
    <ProductSection><Info>p</Info><Property ovf:key="k" ovf:type="string"/><Property ovf:key="v" ovf:type="string" ovf:value="old"/></ProductSection>
    <ProductSection ovf:class="c"><Info>p</Info><Property ovf:key="k" ovf:type="string"/></ProductSection>
    <VirtualHardwareSection><Info>hw</Info>
      <Item ovf:configuration="a"><x>1</x></Item>
      <Item ovf:configuration="b  a"><x>2</x></Item>
      <Item ovf:configuration="b"/>
      <Item><x>3</x></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>"#;
    let mut edits = EnvelopeEdits::new();
    edits
        .deployment("b")
        .property_value("k", "new & <1>")
        .property_value("v", "two")
        .property_value("c.k", "three");
    let out = edit_envelope(text, &edits).unwrap();
    assert_eq!(
        out,
        r#"<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  
  <VirtualSystem ovf:id="vm">
    <ProductSection><Info>p</Info><Property ovf:key="k" ovf:value="new &amp; &lt;1&gt;" ovf:type="string"/><Property ovf:key="v" ovf:type="string" ovf:value="two"/></ProductSection>
    <ProductSection ovf:class="c"><Info>p</Info><Property ovf:key="k" ovf:value="three" ovf:type="string"/></ProductSection>
    <VirtualHardwareSection><Info>hw</Info>
      
      <Item><x>2</x></Item>
      <Item/>
      <Item><x>3</x></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>"#
    );
    // Without a deployment, items stay; an unknown key changes nothing.
    let mut edits = EnvelopeEdits::new();
    edits.property_value("nosuch", "x");
    assert_eq!(edit_envelope(text, &edits).unwrap(), text);
}

#[test]
fn items_are_removed_or_lose_their_subtype_as_the_map_says() {
    let text = r#"<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="r">
  <VirtualSystem><VirtualHardwareSection><Info>hw</Info>
    <Item><rasd:Address>0</rasd:Address><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceSubType>PIIX4</rasd:ResourceSubType><rasd:ResourceType>5</rasd:ResourceType></Item>
    <Item><rasd:InstanceID> 5 </rasd:InstanceID><rasd:ResourceSubType>ensoniq1371</rasd:ResourceSubType><rasd:ResourceType>35</rasd:ResourceType></Item>
    <Item><rasd:InstanceID>6</rasd:InstanceID><rasd:ResourceSubType>lsilogic</rasd:ResourceSubType><rasd:ResourceType>6</rasd:ResourceType></Item>
  </VirtualHardwareSection></VirtualSystem>
</Envelope>"#;
    let seen = std::cell::RefCell::new(Vec::new());
    let mut edits = EnvelopeEdits::new();
    edits.items(|f| {
        seen.borrow_mut().push(f.clone());
        match f.resource_type {
            Some(5) => ItemEdit::RemoveSubtype,
            Some(35) => ItemEdit::Remove,
            _ => ItemEdit::Keep,
        }
    });
    let out = edit_envelope(text, &edits).unwrap();
    assert_eq!(
        out,
        r#"<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="r">
  <VirtualSystem><VirtualHardwareSection><Info>hw</Info>
    <Item><rasd:Address>0</rasd:Address><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceType>5</rasd:ResourceType></Item>
    
    <Item><rasd:InstanceID>6</rasd:InstanceID><rasd:ResourceSubType>lsilogic</rasd:ResourceSubType><rasd:ResourceType>6</rasd:ResourceType></Item>
  </VirtualHardwareSection></VirtualSystem>
</Envelope>"#
    );
    let seen = seen.borrow();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(
        seen[1],
        ItemFacts {
            element: "Item".into(),
            resource_type: Some(35),
            subtype: Some("ensoniq1371".into()),
            instance_id: Some("5".into()),
            host_resources: Vec::new(),
        }
    );
}

#[test]
fn an_ovf_2_envelope_is_written_as_1_x_where_it_can_be() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/envelopes/cot/ubuntu.2.0.ovf"),
    )
    .unwrap();
    let before = parse(&text);
    assert_eq!(before.version, "2.x");
    let out = downgrade_envelope(&text).unwrap();
    for gone in [
        "envelope/2",
        "StorageItem",
        "EthernetPortItem",
        "sasd:",
        "epasd:Caption",
    ] {
        assert!(
            !out.replace("xmlns:sasd", "")
                .replace("xmlns:epasd", "")
                .contains(gone),
            "{gone}: {out}"
        );
    }
    assert!(out.contains("ovf:version=\"1.0\""));
    assert!(out.contains("<Item>\n        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>\n        <rasd:Caption>Ethernet adapter on 'NAT'</rasd:Caption>"), "{out}");
    // The same VM, as our parser reads it: only the version differs.
    let after = parse(&out);
    assert_eq!(after.version, "1.x");
    let (b, a) = (&before.systems[0].hardware, &after.systems[0].hardware);
    assert_eq!(a.devices.len(), b.devices.len());
    for (x, y) in a.devices.iter().zip(&b.devices) {
        assert_eq!(
            (x.kind, &x.instance_id, &x.host_resource, &x.connection),
            (y.kind, &y.instance_id, &y.host_resource, &y.connection)
        );
    }
    // Byte for byte the input but for the names and the namespace values.
    let mut expected = text
        .replace("envelope/2", "envelope/1")
        .replace("ovf:version=\"2.0\"", "ovf:version=\"1.0\"");
    for (from, to) in [
        ("<sasd:", "<rasd:"),
        ("</sasd:", "</rasd:"),
        ("<epasd:", "<rasd:"),
        ("</epasd:", "</rasd:"),
        ("StorageItem>", "Item>"),
        ("EthernetPortItem>", "Item>"),
    ] {
        expected = expected.replace(from, to);
    }
    assert_eq!(out, expected);
    // What 1.x cannot say.
    for (edit, why) in [
        ("</DiskSection>", "has no OVF 1.x form"),
        ("<sasd:Caption>disk1", "has no RASD form"),
    ] {
        let bad = match why {
            "has no OVF 1.x form" => text.replace(
                edit,
                "</DiskSection><SharedDiskSection><Info>s</Info></SharedDiskSection>",
            ),
            _ => text.replace(edit, "<sasd:Access>1</sasd:Access><sasd:Caption>disk1"),
        };
        let err = downgrade_envelope(&bad).unwrap_err();
        assert!(err.contains(why), "{err}");
    }
    let no_rasd = text.replace("CIM_ResourceAllocationSettingData\"", "CIM_Other\"");
    assert!(downgrade_envelope(&no_rasd).unwrap_err().contains("RASD"));
}

#[test]
fn vmdk_format_keeps_other_formats() {
    let to = vmdk_format("monolithicFlat");
    assert_eq!(
        to("http://www.vmware.com/interfaces/specifications/vmdk.html#sparse").as_deref(),
        Some("http://www.vmware.com/interfaces/specifications/vmdk.html#monolithicFlat")
    );
    assert_eq!(to("http://x/vmdk.html#monolithicFlat"), None);
    assert_eq!(to("http://example.com/qcow2"), None);
}

/// What `envelope_for_disks` wrote with `format!` before it was written through quick-xml:
/// for plain names the output is the same, byte for byte.
const PLAIN: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData">
  <References>
    <File ovf:href="vm-disk1.vmdk" ovf:id="file0" ovf:size="100"/>
    <File ovf:href="vm-disk2.vmdk" ovf:id="file1" ovf:size="200"/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:capacity="1048576" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk0" ovf:fileRef="file0" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
    <Disk ovf:capacity="2097152" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <VirtualSystem ovf:id="vm">
    <Info>A virtual machine made of the exported disks</Info>
    <Name>vm</Name>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <Item>
        <rasd:ElementName>SCSI controller 0</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceSubType>lsilogic</rasd:ResourceSubType>
        <rasd:ResourceType>6</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:ElementName>Hard disk 1</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/vmdisk0</rasd:HostResource>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:Parent>1</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>1</rasd:AddressOnParent>
        <rasd:ElementName>Hard disk 2</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:Parent>1</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"#;

#[test]
fn envelope_for_plain_disks_is_unchanged() {
    let disks = [
        ("vm-disk1.vmdk".to_string(), 100, 1 << 20),
        ("vm-disk2.vmdk".to_string(), 200, 2 << 20),
    ];
    assert_eq!(envelope_for_disks("vm", &disks).unwrap(), PLAIN);
}

#[test]
fn envelope_for_disks_escapes_every_name() {
    for name in NAMES.iter().map(|n| n.trim_end_matches(".vmdk")) {
        let disks: Vec<_> = NAMES
            .iter()
            .enumerate()
            .map(|(i, href)| (href.to_string(), 100 + i as u64, (i as u64 + 1) << 20))
            .collect();
        let text = envelope_for_disks(name, &disks).unwrap();
        let env = parse(&text);
        let hrefs: Vec<_> = env.files.iter().map(|f| f.href.as_str()).collect();
        assert_eq!(hrefs, NAMES);
        assert_eq!(env.files[2].size, Some(102));
        assert_eq!(env.disks[3].capacity_bytes, Some(4 << 20));
        assert_eq!(env.file_of(&env.disks[5]).unwrap().href, NAMES[5]);
        let system = &env.systems[0];
        assert_eq!(
            (system.id.as_str(), system.name.as_deref()),
            (name, Some(name))
        );
        assert_eq!(system.controllers, ["SCSI (lsilogic)"]);
        assert_eq!(system.drives.len(), NAMES.len());
        assert!(system
            .drives
            .iter()
            .all(|d| d.controller.as_deref() == Some("SCSI (lsilogic)")));
        // And the editor reads it back unchanged.
        assert_eq!(edit_envelope(&text, &EnvelopeEdits::new()).unwrap(), text);
    }
    // A name with a carriage return keeps it (a character reference), a control character
    // is refused.
    let text = envelope_for_disks("a\rb", &[]).unwrap();
    assert_eq!(parse(&text).systems[0].name.as_deref(), Some("a\rb"));
    assert!(envelope_for_disks("a\u{1}b", &[]).is_err());
    assert!(envelope_for_disks("vm", &[("\u{fffe}".into(), 1, 1)]).is_err());
}
