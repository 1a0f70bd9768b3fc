//! `Envelope::faults`: each class of broken envelope is one fault naming its rule, element and
//! line; the real envelopes other products wrote (testdata) have none.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::Path;

use ovf::Envelope;

const HEAD: &str = "<?xml version=\"1.0\"?>\n<Envelope xmlns=\"http://schemas.dmtf.org/ovf/envelope/1\" xmlns:ovf=\"http://schemas.dmtf.org/ovf/envelope/1\" xmlns:rasd=\"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n";

/// An envelope of `refs`, `disks` and one system with `items`.
fn envelope(refs: &str, disks: &str, items: &str) -> String {
    format!(
        "{HEAD}<References>\n{refs}</References>\n<DiskSection><Info>d</Info>\n{disks}</DiskSection>\n<VirtualSystem ovf:id=\"vm\"><Info>vm</Info><VirtualHardwareSection><Info>hw</Info>\n{items}</VirtualHardwareSection></VirtualSystem>\n</Envelope>\n"
    )
}

const FILE1: &str = "<File ovf:href=\"d1.vmdk\" ovf:id=\"file1\"/>\n";
const DISK1: &str =
    "<Disk ovf:capacity=\"1\" ovf:capacityAllocationUnits=\"byte * 2^20\" ovf:diskId=\"vmdisk1\" ovf:fileRef=\"file1\"/>\n";
const SCSI: &str =
    "<Item><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>6</rasd:ResourceType></Item>\n";
const NIC: &str = "<Item><rasd:ElementName>Network adapter 1</rasd:ElementName><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>10</rasd:ResourceType></Item>\n";

fn drive(id: u32, kind: u32, host: &str, parent: u32) -> String {
    format!("<Item><rasd:HostResource>{host}</rasd:HostResource><rasd:InstanceID>{id}</rasd:InstanceID><rasd:Parent>{parent}</rasd:Parent><rasd:ResourceType>{kind}</rasd:ResourceType></Item>\n")
}

/// The faults of `text` as (rule, line, message).
fn faults(text: &str) -> Vec<(&'static str, Option<u32>, String)> {
    Envelope::parse(text, Path::new("x.ovf"))
        .unwrap()
        .faults()
        .into_iter()
        .map(|f| (f.rule, f.line, f.message))
        .collect()
}

#[test]
fn each_class_of_fault_is_named_with_its_line() {
    let good = envelope(
        FILE1,
        DISK1,
        &format!("{SCSI}{}", drive(3, 17, "ovf:/disk/vmdisk1", 1)),
    );
    assert_eq!(faults(&good), []);

    let cases: Vec<(String, &str, u32, &str)> = vec![
        (
            envelope(&format!("{FILE1}{}", FILE1.replace("d1", "d2")), DISK1, SCSI),
            "duplicate-file-id",
            5,
            "the same id as the element at line 4",
        ),
        (
            envelope(&format!("{FILE1}{}", FILE1.replace("file1", "file2")), DISK1, SCSI),
            "duplicate-href",
            5,
            "ovf:href \"d1.vmdk\" names the file a File at line 4 names already",
        ),
        (
            envelope(FILE1, &format!("{DISK1}{DISK1}"), SCSI),
            "duplicate-disk-id",
            8,
            "the same id as the element at line 7",
        ),
        (
            envelope(FILE1, &DISK1.replace("ovf:capacity=\"1\"", "ovf:capacity=\"0\""), SCSI),
            "disk-capacity-zero",
            7,
            "ovf:capacity is zero",
        ),
        (
            envelope(FILE1, &DISK1.replace("ovf:capacity=\"1\" ", ""), SCSI),
            "disk-capacity",
            7,
            "no ovf:capacity",
        ),
        (
            envelope(FILE1, &DISK1.replace("ovf:capacity=\"1\"", "ovf:capacity=\"big\""), SCSI),
            "disk-capacity",
            7,
            "ovf:capacity \"big\" in units \"byte * 2^20\" is not a size",
        ),
        (
            envelope(FILE1, &DISK1.replace("/>", " ovf:populatedSize=\"2097152\"/>"), SCSI),
            "populated-size",
            7,
            "ovf:populatedSize 2097152 is more than the capacity, 1048576 bytes",
        ),
        (
            envelope(FILE1, DISK1, &format!("{SCSI}{}", drive(3, 17, "ovf:/disk/vmdisk9", 1))),
            "host-resource",
            11,
            "HostResource \"ovf:/disk/vmdisk9\" names no Disk of the DiskSection",
        ),
        (
            envelope(FILE1, DISK1, &format!("{SCSI}{}", drive(3, 15, "ovf:/file/file9", 1))),
            "host-resource",
            11,
            "HostResource \"ovf:/file/file9\" names no File of the References",
        ),
        (
            envelope(FILE1, DISK1, &format!("{SCSI}{}", drive(3, 17, "vmdisk1", 1))),
            "host-resource",
            11,
            "HostResource \"vmdisk1\" is neither ovf:/disk/ID nor ovf:/file/ID",
        ),
        (
            envelope(FILE1, DISK1, &format!("{SCSI}{NIC}{}", drive(3, 15, "", 2))),
            "parent",
            12,
            "its Parent 2 is Network adapter 1, not a controller",
        ),
        (
            envelope(FILE1, DISK1, &format!("{SCSI}{}", drive(3, 17, "ovf:/disk/vmdisk1", 7))),
            "parent",
            11,
            "its Parent 7 is no item of the system",
        ),
        (
            envelope(FILE1, DISK1, SCSI).replace(
                "<VirtualSystem",
                "<Section xsi:type=\"ovf:NetworkSection_Type\"><Info>n</Info></Section>\n<VirtualSystem",
            ),
            "ovf-0.9-body",
            2,
            "sections written as OVF 0.9 writes them (`Section xsi:type=...`) under the OVF 1.x namespace",
        ),
    ];
    for (text, rule, line, message) in cases {
        assert_eq!(
            faults(&text),
            [(rule, Some(line), message.to_string())],
            "{text}"
        );
    }
    // Other exporters' spellings of a disk's resource are read, not faults.
    for host in ["/disk/vmdisk1", "ovf://disk/vmdisk1"] {
        let text = envelope(FILE1, DISK1, &format!("{SCSI}{}", drive(3, 17, host, 1)));
        assert_eq!(faults(&text), [], "{host}");
    }
}

#[test]
fn real_envelopes_have_no_faults() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata");
    let mut read = 0;
    for dir in ["envelopes/cot", "fuzz-seeds/envelope"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_none_or(|e| e != "ovf") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let env = Envelope::parse(text.trim_start_matches('\u{feff}'), &path).unwrap();
            assert_eq!(env.faults(), [], "{}", path.display());
            read += 1;
        }
    }
    assert_eq!(read, 7);
}
