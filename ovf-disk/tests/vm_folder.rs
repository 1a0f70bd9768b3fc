//! VM folders as copied off an ESXi datastore: a `.vmx` with two disks on two controllers, one
//! of them a chain of two snapshot deltas over a flat base, with change-tracking files and the
//! other files such a folder holds. `info VM.vmx` lists the VM, each chain and the unused files;
//! `inflate VM.vmx OUTDIR` consolidates each chain into one thick disk whose bytes equal
//! qemu-img's reading of the leaf.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::path::Path;

use common::*;

const VMX: &str = r#".encoding = "UTF-8"
config.version = "8"
virtualHW.version = "19"
displayName = "web |22prod|22"
numvcpus = "2"
memSize = "4096"
guestOS = "debian12-64"
firmware = "efi"
scsi0.present = "TRUE"
scsi0.virtualDev = "pvscsi"
scsi0:0.present = "TRUE"
scsi0:0.fileName = "web-000002.vmdk"
scsi0:0.ctkEnabled = "TRUE"
sata0.present = "TRUE"
sata0:0.present = "TRUE"
sata0:0.fileName = "data.vmdk"
sata0:1.present = "TRUE"
sata0:1.deviceType = "cdrom-image"
sata0:1.fileName = "/vmfs/volumes/iso/debian.iso"
ctkEnabled = "TRUE"
"#;

/// The folder: `web.vmdk` (monolithicFlat base) under two deltas, `data.vmdk`
/// (monolithicSparse), change-tracking files and the rest. Returns qemu-img's sha256 of each
/// leaf (web-000002.vmdk, data.vmdk).
fn vm_folder(dir: &Path) -> (String, String) {
    let q = |args: &[&str]| qemu_img(dir, args);
    q(&[
        "create",
        "-q",
        "-f",
        "vmdk",
        "-o",
        "subformat=monolithicFlat",
        "web.vmdk",
        "8M",
    ]);
    qemu_io(dir, "web.vmdk", &["write -P 0x11 0 8M"]);
    q(&[
        "create",
        "-q",
        "-f",
        "vmdk",
        "-b",
        "web.vmdk",
        "-F",
        "vmdk",
        "web-000001.vmdk",
    ]);
    qemu_io(dir, "web-000001.vmdk", &["write -P 0x22 1M 2M"]);
    q(&[
        "create",
        "-q",
        "-f",
        "vmdk",
        "-b",
        "web-000001.vmdk",
        "-F",
        "vmdk",
        "web-000002.vmdk",
    ]);
    qemu_io(
        dir,
        "web-000002.vmdk",
        &["write -P 0x33 2M 64k", "write -z 5M 1M"],
    );
    q(&["create", "-q", "-f", "vmdk", "data.vmdk", "4M"]);
    qemu_io(dir, "data.vmdk", &["write -P 0x44 512k 1M"]);
    std::fs::write(dir.join("web.vmx"), VMX).unwrap();
    for (name, bytes) in [
        ("web-ctk.vmdk", &b"# Change Tracking File\nversion=1\n"[..]),
        (
            "web-000002-ctk.vmdk",
            b"# Change Tracking File\nversion=1\n",
        ),
        ("web.nvram", b"NVRAM"),
        ("web.vmsd", b".encoding = \"UTF-8\"\n"),
        ("web-Snapshot1.vmsn", b"state"),
        ("vmware.log", b"log"),
    ] {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    (
        qemu_raw_sha(dir, "web-000002.vmdk"),
        qemu_raw_sha(dir, "data.vmdk"),
    )
}

#[test]
fn info_lists_the_vm_its_chains_and_the_unused_files() {
    let d = tempfile::tempdir().unwrap();
    vm_folder(d.path());
    let out = ovf_disk_ok(d.path(), &["info", "web.vmx"]);
    let text = String::from_utf8_lossy(&out.stdout);
    for want in [
        "name:         web \"prod\"",
        "CPUs 2, memory 4.00 GiB, guest OS debian12-64, firmware efi",
        "disk scsi0:0 (pvscsi): 8.00 MiB, 3 links",
        "  ./web-000002.vmdk (monolithicSparse,",
        "  ./web-000001.vmdk (monolithicSparse,",
        "  ./web.vmdk (monolithicFlat, 8.00 MiB)",
        "disk sata0:0 (ahci): 4.00 MiB, 1 link",
        "unused:       web-000002-ctk.vmdk (change tracking)",
        "unused:       web-ctk.vmdk (change tracking)",
        "unused:       web-Snapshot1.vmsn (snapshot state)",
        "unused:       web.nvram (NVRAM)",
        "unused:       web.vmsd (snapshot list)",
        "unused:       vmware.log (log)",
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
    // Every disk file is used: none is listed as unused.
    assert!(!text.contains("web-flat.vmdk ("), "{text}");
    assert!(!text.contains("(disk not in the configuration)"), "{text}");
    let out = ovf_disk_ok(d.path(), &["info", "--json", "web.vmx"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["disks"][0]["device"], "scsi0:0");
    assert_eq!(v["disk_chains"][0]["chain"].as_array().unwrap().len(), 3);
    assert_eq!(
        v["disk_chains"][0]["chain"][2]["size"],
        (8 << 20) + std::fs::metadata(d.path().join("web.vmdk")).unwrap().len()
    );
}

#[test]
fn inflate_consolidates_every_chain_like_qemu_reads_it() {
    let d = tempfile::tempdir().unwrap();
    let (web, data) = vm_folder(d.path());
    let out = ovf_disk_ok(d.path(), &["inflate", "web.vmx", "thick"]);
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains(
            "disk scsi0:0: ./web-000002.vmdk (3 links) -> thick/web.vmdk + thick/web-flat.vmdk"
        ),
        "{text}"
    );
    let thick = d.path().join("thick");
    assert_eq!(sha256(&thick.join("web-flat.vmdk")), web);
    assert_eq!(sha256(&thick.join("data-flat.vmdk")), data);
    assert_no_holes(&thick.join("web-flat.vmdk"));
    qemu_same(
        d.path(),
        "web-000002.vmdk",
        "vmdk",
        "thick/web.vmdk",
        "vmdk",
    );
    qemu_same(d.path(), "data.vmdk", "vmdk", "thick/data.vmdk", "vmdk");
    // Raw images, JSON, and a second run refused without --force.
    let again = ovf_disk(d.path(), &["inflate", "web.vmx", "thick"]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists (use --force"));
    let out = ovf_disk_ok(
        d.path(),
        &["inflate", "--json", "--format", "raw", "web.vmx", "raw"],
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["disks"][0]["links"], 3, "{v}");
    assert_eq!(sha256(&d.path().join("raw/web.raw")), web);
    assert_eq!(sha256(&d.path().join("raw/data.raw")), data);
    // For one disk, --format says what OUT's extension would (raw, whatever the name).
    ovf_disk_ok(
        d.path(),
        &["inflate", "-q", "--format", "raw", "data.vmdk", "x.img"],
    );
    assert_eq!(sha256(&d.path().join("x.img")), data);
}

#[test]
fn a_vmx_cannot_lead_outside_its_folder_or_leave_outputs_on_failure() {
    let d = tempfile::tempdir().unwrap();
    vm_folder(d.path());
    let vm = d.path().join("vm");
    std::fs::create_dir(&vm).unwrap();
    std::fs::write(vm.join("evil.vmx"), "scsi0:0.fileName = \"../data.vmdk\"\n").unwrap();
    let run = ovf_disk(d.path(), &["inflate", "vm/evil.vmx", "out"]);
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(1), "{err}");
    assert!(
        err.contains("scsi0:0.fileName \"../data.vmdk\" leads outside the VM's folder"),
        "{err}"
    );
    assert!(!d.path().join("out").exists());
    let ok = ovf_disk(
        d.path(),
        &["inflate", "--allow-outside-paths", "vm/evil.vmx", "out"],
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // A disk that does not open: nothing written, the folder not left.
    std::fs::write(
        vm.join("broken.vmx"),
        "scsi0:0.fileName = \"missing.vmdk\"\nsata0:0.fileName = \"x.vmdk\"\n",
    )
    .unwrap();
    std::fs::write(vm.join("x.vmdk"), b"not a disk").unwrap();
    let run = ovf_disk(d.path(), &["inflate", "vm/broken.vmx", "out2"]);
    assert_eq!(run.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&run.stderr).contains("missing.vmdk"));
    assert!(!d.path().join("out2").exists());
    // Not a configuration.
    std::fs::write(vm.join("big.vmx"), vec![b'#'; (1 << 20) + 1]).unwrap();
    let run = ovf_disk(d.path(), &["info", "vm/big.vmx"]);
    assert!(String::from_utf8_lossy(&run.stderr).contains("not a VM configuration"));
}

/// An ESXi datastore folder: `web.vmdk` (createType vmfs over `web-flat.vmdk`) under a COWD
/// snapshot (vmfsSparse) and a seSparse snapshot, with change-tracking files, and `data.vmdk`
/// (vmfs) on a second SCSI controller.
#[test]
fn an_esxi_folder_with_cowd_and_sesparse_snapshots_consolidates_like_qemu_reads_it() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    esxi_vm_folder(dir);
    let web = qemu_raw_sha(dir, "web-000002.vmdk");
    let data = qemu_raw_sha(dir, "data.vmdk");
    let info = ovf_disk_ok(dir, &["info", "web.vmx"]);
    let text = String::from_utf8_lossy(&info.stdout);
    for want in [
        "disk scsi0:0 (pvscsi)",
        "3 links",
        "(seSparse,",
        "(vmfsSparse,",
        "(vmfs,",
        "disk scsi1:0 (lsilogic)",
        "unused:       web-000002-ctk.vmdk (change tracking)",
    ] {
        assert!(text.contains(want), "{want:?} missing:\n{text}");
    }
    let leaf = ovf_disk_ok(dir, &["info", "web-000002.vmdk"]);
    let leaf = String::from_utf8_lossy(&leaf.stdout);
    assert!(
        leaf.contains(
            "(seSparse version 0x200000001, grain 4.00 KiB, 1 grain tables of 4096 entries)"
        ),
        "{leaf}"
    );
    ovf_disk_ok(dir, &["inflate", "-q", "web.vmx", "thick"]);
    assert_eq!(sha256(&dir.join("thick/web-flat.vmdk")), web);
    assert_eq!(sha256(&dir.join("thick/data-flat.vmdk")), data);
    qemu_same(dir, "web-000002.vmdk", "vmdk", "thick/web.vmdk", "vmdk");
}

/// The snapshot list (`web.vmsd`): `info` shows it; `inflate --snapshot NAME` consolidates each
/// disk as that snapshot froze it (the bytes qemu-img reads from the link the list names);
/// an unknown snapshot is an error naming those there are.
#[test]
fn a_snapshot_of_the_vmsd_is_inflated_as_it_was() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    esxi_vm_folder(dir);
    std::fs::write(
        dir.join("web.vmsd"),
        ".encoding = \"UTF-8\"\nsnapshot.lastUID = \"2\"\nsnapshot.current = \"2\"\n\
         snapshot0.uid = \"1\"\nsnapshot0.displayName = \"base\"\n\
         snapshot0.createTimeHigh = \"406441\"\nsnapshot0.createTimeLow = \"-1851591469\"\n\
         snapshot0.disk0.fileName = \"web.vmdk\"\nsnapshot0.disk0.node = \"scsi0:0\"\n\
         snapshot0.disk1.fileName = \"data.vmdk\"\nsnapshot0.disk1.node = \"scsi1:0\"\n\
         snapshot1.uid = \"2\"\nsnapshot1.parent = \"1\"\nsnapshot1.displayName = \"first\"\n\
         snapshot1.disk0.fileName = \"web-000001.vmdk\"\nsnapshot1.disk0.node = \"scsi0:0\"\n\
         snapshot1.disk1.fileName = \"data.vmdk\"\nsnapshot1.disk1.node = \"scsi1:0\"\n",
    )
    .unwrap();
    let info = ovf_disk_ok(dir, &["info", "--json", "web.vmx"]);
    let v: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    let s = &v["snapshots"];
    assert_eq!(s.as_array().unwrap().len(), 2, "{v}");
    assert_eq!(
        (s[0]["name"].as_str(), s[1]["parent"].as_u64()),
        (Some("base"), Some(1))
    );
    assert_eq!(s[1]["current"], true);
    assert_eq!(s[1]["disks"][0]["file"], "web-000001.vmdk");
    let text = ovf_disk_ok(dir, &["info", "web.vmx"]);
    assert!(String::from_utf8_lossy(&text.stdout)
        .contains("snapshot 2 \"first\", after 1, current: scsi0:0 web-000001.vmdk"));
    for (name, leaf) in [
        ("base", "web.vmdk"),
        ("first", "web-000001.vmdk"),
        ("2", "web-000001.vmdk"),
    ] {
        let out = format!("at-{name}");
        ovf_disk_ok(dir, &["inflate", "-q", "--snapshot", name, "web.vmx", &out]);
        assert_eq!(
            sha256(&dir.join(&out).join("web-flat.vmdk")),
            qemu_raw_sha(dir, leaf),
            "{name}"
        );
        assert_eq!(
            sha256(&dir.join(&out).join("data-flat.vmdk")),
            qemu_raw_sha(dir, "data.vmdk")
        );
    }
    // Warm migration of the folder: the copy as of "base", brought to "first", then to now.
    ovf_disk_ok(
        dir,
        &[
            "inflate",
            "-q",
            "--snapshot",
            "base",
            "--record-state",
            "web.vmx",
            "warm",
        ],
    );
    assert_eq!(
        sha256(&dir.join("warm/web-flat.vmdk")),
        qemu_raw_sha(dir, "web.vmdk")
    );
    ovf_disk_ok(
        dir,
        &[
            "apply",
            "-q",
            "--from-snapshot",
            "base",
            "--to-snapshot",
            "first",
            "web.vmx",
            "warm",
        ],
    );
    assert_eq!(
        sha256(&dir.join("warm/web-flat.vmdk")),
        qemu_raw_sha(dir, "web-000001.vmdk")
    );
    ovf_disk_ok(
        dir,
        &["apply", "-q", "--from-snapshot", "first", "web.vmx", "warm"],
    );
    assert_eq!(
        sha256(&dir.join("warm/web-flat.vmdk")),
        qemu_raw_sha(dir, "web-000002.vmdk")
    );
    assert_eq!(
        sha256(&dir.join("warm/data-flat.vmdk")),
        qemu_raw_sha(dir, "data.vmdk")
    );
    // The same step twice: refused (the copy already holds it).
    let again = ovf_disk(
        dir,
        &["apply", "--from-snapshot", "first", "web.vmx", "warm"],
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds it"));
    let out = ovf_disk(dir, &["inflate", "--snapshot", "nope", "web.vmx", "x"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no snapshot \"nope\"") && err.contains("\"base\", \"first\""),
        "{err}"
    );
}

/// Damaged and hostile `.vmsd` files: each refused naming the file and the line, or read with
/// what it holds bounded; a snapshot naming a disk outside the folder is refused like a `.vmx`
/// naming one.
#[test]
fn damaged_and_hostile_vmsd_files_are_refused_clearly() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    esxi_vm_folder(dir);
    let big = format!(
        "snapshot0.uid = \"1\"\n{}",
        "# padding padding padding\n".repeat(50_000)
    );
    for (text, says) in [
        ("snapshot0.uid = \"1\n", "line 1"),
        ("snapshot0.uid \"1\"\n", "line 1"),
        ("snapshot0.uid = \"one\"\n", "snapshot0.uid is not a number"),
        ("bad key = \"1\"\n", "line 1"),
        (big.as_str(), "larger than"),
    ] {
        std::fs::write(dir.join("web.vmsd"), text).unwrap();
        let out = ovf_disk(dir, &["info", "web.vmx"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{text:.40}: {err}");
        assert!(
            err.contains("web.vmsd") && err.contains(says),
            "{text:.40}: {err}"
        );
    }
    // Values that parse but say nonsense: read, bounded.
    std::fs::write(
        dir.join("web.vmsd"),
        "snapshot0.uid = \"1\"\nsnapshot0.createTimeHigh = \"-1\"\nsnapshot0.createTimeLow = \"-1\"\n\
         snapshot0.disk0.fileName = \"../../etc/passwd\"\nsnapshot0.disk0.node = \"scsi0:0\"\n\
         snapshot999999.uid = \"7\"\n",
    )
    .unwrap();
    let info = ovf_disk_ok(dir, &["info", "--json", "web.vmx"]);
    let v: serde_json::Value = serde_json::from_slice(&info.stdout).unwrap();
    assert_eq!(v["snapshots"].as_array().unwrap().len(), 1, "{v}");
    let out = ovf_disk(dir, &["inflate", "--snapshot", "1", "web.vmx", "x"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("leads outside"), "{err}");
    assert!(!dir.join("x").exists());
}
