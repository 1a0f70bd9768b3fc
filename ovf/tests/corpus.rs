//! Envelopes other products wrote (testdata/envelopes; CORPUS.md says where each comes from and
//! what its project expects): each one its project reads is read here with no fault of its own,
//! and each one its project's test calls broken fails, or gets the fault naming what that test
//! says is wrong. Where we choose differently from a project, the expectation below says why.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::Path;

use ovf::Envelope;

/// What we make of one envelope: `Ok` with the rules of its faults (empty for none), or the
/// envelope error's text.
fn outcome(path: &Path) -> Result<Vec<&'static str>, String> {
    let bytes = std::fs::read(path).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    let env =
        Envelope::parse(text.trim_start_matches('\u{feff}'), path).map_err(|e| e.to_string())?;
    Ok(env.faults().into_iter().map(|f| f.rule).collect())
}

/// The expected outcome of each file: `Ok(faults)`, or `Err(text the error must hold)`.
type Expected = Result<&'static [&'static str], &'static str>;

const CORPUS: &[(&str, Expected)] = &[
    // VMware ovftool exports virt-v2v converts.
    ("virt-v2v/test-i-ova.ovf", Ok(&[])),
    ("virt-v2v/test-i-ova-gz.ovf", Ok(&[])),
    // The descriptor is sound; the package's fault is a missing chunk (the package's check).
    ("virt-v2v/test-i-ova-chunked-gap.ovf", Ok(&[])),
    // A test expectation with `#SIZE#` placeholders, not a package: refused, naming the line.
    (
        "virt-v2v/test-o-ovirt.ovf",
        Err("line 5: ovf:size \"#SIZE#\" is not a number"),
    ),
    ("govmomi/ubuntu24.10.ovf", Ok(&[])),
    (
        "govmomi/nsx-unified-appliance-9.1.0.0.25262063.ovf",
        Ok(&[]),
    ),
    // A blank disk written with an empty fileRef: a blank disk, no fault.
    ("govmomi/Vcf-License-Server-9.1.0.0.25262073.ovf", Ok(&[])),
    ("govmomi/virtualsystemcollection.ovf", Ok(&[])),
    ("govmomi/vbox5.ovf", Ok(&[])),
    ("govmomi/vbox1_0.9.ovf", Ok(&[])),
    ("govmomi/vCD_vApp_OVF.ovf", Ok(&[])),
    // Hrefs leading out and URLs are described, not faults of the envelope.
    ("govmomi/complete_vs.ovf", Ok(&[])),
    ("govmomi/ovftool-pos-http_uri_in_file.ovf", Ok(&[])),
    // ovftool's own negative set: each gets the fault its name says.
    (
        "govmomi/ovftool-neg-dup_diskid.ovf",
        Ok(&["duplicate-disk-id"]),
    ),
    (
        "govmomi/ovftool-neg-popsize_gt_capacity.ovf",
        Ok(&["populated-size"]),
    ),
    (
        "govmomi/ovftool-neg-invalid_ref_dup_id.ovf",
        Ok(&["duplicate-file-id"]),
    ),
    (
        "govmomi/ovftool-neg-fileelements_samefile.ovf",
        Ok(&["duplicate-href"]),
    ),
    // Ganeti's fixtures drop what DSP8023 requires (`ovf:capacity`) and, in ganeti.ovf, the
    // controller its disk hangs on; Ganeti reads them anyway, we name both (the disk's own
    // capacity still imports it).
    (
        "ganeti/virtualbox.ovf",
        Ok(&["disk-capacity", "disk-capacity"]),
    ),
    ("ganeti/ganeti.ovf", Ok(&["disk-capacity", "parent"])),
    (
        "ganeti/no_disk_in_ref.ovf",
        Ok(&["disk-file-ref", "disk-capacity", "disk-capacity"]),
    ),
    ("ganeti/wrong_xml.ovf", Err("line 71: invalid name token")),
    ("pve-storage/Win_2008_R2_two-disks.ovf", Ok(&[])),
    ("pve-storage/Win10-Liz_no_default_ns.ovf", Ok(&[])),
    ("pve-storage/XEE.ovf", Err("XML with DTD detected")),
    // A template with `@@...@@` placeholders, not a package: refused, naming the line.
    (
        "open-vmdk/template-hw20.ovf",
        Err("line 18: ovf:size \"@@VMDK_FILE_SIZE@@\" is not a number"),
    ),
    ("cot/csr1000v.ovf", Ok(&[])),
    ("cot/iosv.ovf", Ok(&[])),
    ("cot/ubuntu.2.0.ovf", Ok(&[])),
    ("cot/v0.9.ovf", Ok(&[])),
    ("cot/vmware.ovf", Ok(&[])),
];

#[test]
fn every_envelope_of_the_corpus_is_read_as_its_project_expects() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/envelopes");
    for (file, expected) in CORPUS {
        let got = outcome(&root.join(file));
        match (expected, &got) {
            (Ok(rules), Ok(found)) => assert_eq!(found, rules, "{file}"),
            (Err(text), Err(error)) => assert!(error.contains(text), "{file}: {error}"),
            _ => panic!("{file}: expected {expected:?}, got {got:?}"),
        }
    }
    // Every .ovf of the corpus is listed above.
    let mut listed = 0;
    for dir in std::fs::read_dir(&root).unwrap() {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(dir).unwrap() {
            let path = f.unwrap().path();
            if path.extension().is_some_and(|e| e == "ovf") {
                let name = path
                    .strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                assert!(
                    CORPUS.iter().any(|(f, _)| *f == name),
                    "{name} is not listed"
                );
                listed += 1;
            }
        }
    }
    assert_eq!(listed, CORPUS.len());
}

#[test]
fn a_thousand_descriptors_read_without_a_panic() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/envelopes");
    let texts: Vec<(std::path::PathBuf, String)> = CORPUS
        .iter()
        .map(|(f, _)| {
            let p = root.join(f);
            let t = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
            (p, t)
        })
        .collect();
    // A thousand descriptors: the corpus 34 times over, parsed and checked for faults (the
    // test's own time, printed by the runner, is the measure; it is not asserted).
    let mut read = 0;
    for _ in 0..34 {
        for (p, t) in &texts {
            if let Ok(env) = Envelope::parse(t.trim_start_matches('\u{feff}'), p) {
                read += env.faults().len() + 1;
            }
        }
    }
    assert!(read >= 34 * 25, "{read}");
}

/// OVF 0.9 envelopes (`Section xsi:type=...`, `InstanceId`) summarise like 1.x ones: their
/// drives and the controllers they hang on are in the system's summary, not only in its
/// typed hardware.
#[test]
fn ovf_0_9_systems_summarise_their_drives() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/envelopes");
    for (file, controller) in [
        ("cot/v0.9.ovf", "SCSI (lsilogic)"),
        ("govmomi/vbox1_0.9.ovf", "IDE (PIIX4)"),
    ] {
        let path = root.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let env = Envelope::parse(&text, &path).unwrap();
        assert_eq!(env.version, "0.9", "{file}");
        let s = &env.systems[0];
        assert_eq!(s.drives.len(), 1, "{file}: {:?}", s.drives);
        assert_eq!(
            s.drives[0].controller.as_deref(),
            Some(controller),
            "{file}: {:?}",
            s.drives
        );
        assert_eq!(
            s.hardware.of(ovf::hardware::DeviceKind::Disk).count(),
            1,
            "{file}"
        );
    }
}
