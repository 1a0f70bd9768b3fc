//! Hrefs as DSP0243 allows them (§7.1: relative paths or URLs): a path inside the package
//! folder, or inside the OVA (its members possibly in one common folder), is read by every
//! command; one that leads outside the folder, an absolute path or a URL is described by `info`
//! and `check` with the reason and refused only where its bytes must be read, unless
//! `--allow-outside-paths` allows paths. Each disk read is compared with its source by
//! qemu-img.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

/// A one-disk envelope: the disk `vmdisk1` in the File `href` of `size` bytes, plus `extra`
/// Files (an ISO, ...), each `(id, href)` with no size.
fn ovf_text(href: &str, size: u64, extra: &[(&str, &str)]) -> String {
    let mut refs = file_ref(href, size as usize, "");
    for (id, h) in extra {
        refs.push_str(&format!("<File ovf:href=\"{h}\" ovf:id=\"{id}\"/>"));
    }
    envelope(&refs, &disk_entry(1), "")
}

/// A 1 MiB stream-optimized disk `name` in `dir` (made by qemu-img from `src.raw`, which is
/// written when missing).
fn disk(dir: &Path, name: &str) {
    if !dir.join("src.raw").exists() {
        sample_raw(&dir.join("src.raw"), 1 << 20);
    }
    if let Some(parent) = Path::new(name).parent() {
        std::fs::create_dir_all(dir.join(parent)).unwrap();
    }
    qemu_to_vmdk(dir, "src.raw", name, "subformat=streamOptimized");
}

fn json(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn a_disk_in_a_subfolder_is_read_and_hrefs_leading_out_are_described() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pkg = PackageDir::new(&dir.join("pkg"));
    disk(&pkg.dir, "disks/data.vmdk");
    std::fs::copy(pkg.path("src.raw"), dir.join("src.raw")).unwrap();
    std::fs::create_dir_all(dir.join("shared")).unwrap();
    std::fs::write(dir.join("shared/tools.iso"), [7u8; 2048]).unwrap();
    let extra = [
        ("f2", "../shared/tools.iso"),
        ("f3", "https://example.com/extra.iso"),
        ("f4", "/etc/hostname"),
    ];
    let text = ovf_text("./disks/data.vmdk", pkg.size("disks/data.vmdk"), &extra);
    pkg.file("vm.ovf", text.as_bytes()).manifest(
        "vm.mf",
        &["vm.ovf", "disks/data.vmdk"],
        "SHA256",
        MfStyle::Ovftool,
    );

    // info: the disk's file present; each href leading out described with its reason.
    let v = json(&ovf_disk_ok(dir, &["info", "--json", "pkg/vm.ovf"]));
    let files = v["files"].as_array().unwrap();
    assert_eq!(files[0]["present_size"], pkg.size("disks/data.vmdk"));
    assert!(files[0]["not_followed"].is_null(), "{v}");
    for (i, why) in [
        (1, "leads outside the package folder ('..')"),
        (2, "is a URL (https), not a file of the package"),
        (3, "is an absolute path, outside the package"),
    ] {
        assert_eq!(files[i]["not_followed"], why, "{v}");
        assert!(files[i]["present_size"].is_null(), "{v}");
    }
    let text_info = String::from_utf8(ovf_disk_ok(dir, &["info", "pkg/vm.ovf"]).stdout).unwrap();
    assert!(
        text_info.contains(
            "file ../shared/tools.iso:  size not stated; leads outside the package folder ('..'): not followed"
        ),
        "{text_info}"
    );

    // verify digests the disk in its folder (the files outside cannot be listed, so the
    // package is not verified); check reads it and names each href not followed.
    let out = ovf_disk(dir, &["verify", "pkg/vm.ovf"]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert!(
        report.contains("  disks/data.vmdk: SHA256 ok\n"),
        "{report}"
    );
    assert!(
        report.contains("  ../shared/tools.iso: not listed in the manifest\n"),
        "{report}"
    );
    let out = ovf_disk(dir, &["check", "pkg/vm.ovf"]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert_ne!(out.status.code(), Some(0), "{report}");
    for line in [
        "File f2 (\"../shared/tools.iso\") leads outside the package folder ('..'): not followed",
        "File f3 (\"https://example.com/extra.iso\") is a URL (https), not a file of the package: not followed",
        "File f4 (\"/etc/hostname\") is an absolute path, outside the package: not followed",
    ] {
        assert!(report.contains(line), "{report}");
    }
    // With --allow-outside-paths the file beside the folder is found; the URL still is not.
    let v = json(&ovf_disk_ok(
        dir,
        &["info", "--json", "--allow-outside-paths", "pkg/vm.ovf"],
    ));
    assert_eq!(v["files"][1]["present_size"], 2048, "{v}");
    assert!(v["files"][2]["not_followed"].is_string(), "{v}");

    // import carries every file the envelope references: one not followed stops it before a
    // disk is written; without the extra files it writes the disk under a plain name, drops
    // their references, and the output verifies.
    let out = ovf_disk(dir, &["import", "-q", "pkg/vm.ovf", "out"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("ovf:href \"../shared/tools.iso\" leads outside"),
        "{}",
        stderr(&out)
    );
    assert!(!dir.join("out").exists());
    ovf_disk_ok(
        dir,
        &["import", "-q", "--no-extra-files", "pkg/vm.ovf", "out"],
    );
    qemu_same(dir, "out/disks_data-thick.vmdk", "vmdk", "src.raw", "raw");
    let written = std::fs::read_to_string(dir.join("out/vm.ovf")).unwrap();
    assert!(
        written.contains("ovf:href=\"disks_data-thick.vmdk\""),
        "{written}"
    );
    for gone in ["tools.iso", "extra.iso", "/etc/hostname"] {
        assert!(!written.contains(gone), "{written}");
    }
    ovf_disk_ok(dir, &["verify", "out/vm.ovf"]);
    ovf_disk_ok(dir, &["check", "out/vm.ovf"]);
}

#[test]
fn import_carries_the_other_files_and_writes_a_manifest_the_output_verifies_with() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pkg = PackageDir::new(&dir.join("pkg"));
    disk(&pkg.dir, "disk1.vmdk");
    std::fs::copy(pkg.path("src.raw"), dir.join("src.raw")).unwrap();
    std::fs::create_dir_all(pkg.path("media")).unwrap();
    pkg.file("media/tools.iso", &[0x5a; 4096])
        .file("notes.txt", b"read me\n");
    let hardware = "<VirtualSystem ovf:id=\"vm\"><Info>vm</Info><VirtualHardwareSection xmlns:rasd=\"http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData\"><Info>hw</Info>\
        <Item><rasd:ElementName>IDE 0</rasd:ElementName><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>5</rasd:ResourceType></Item>\
        <Item><rasd:ElementName>CD-ROM 1</rasd:ElementName><rasd:HostResource>ovf:/file/iso</rasd:HostResource><rasd:InstanceID>2</rasd:InstanceID><rasd:Parent>1</rasd:Parent><rasd:ResourceType>15</rasd:ResourceType></Item>\
        <Item><rasd:ElementName>Disk 1</rasd:ElementName><rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource><rasd:InstanceID>3</rasd:InstanceID><rasd:Parent>1</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>\
        </VirtualHardwareSection></VirtualSystem>\n";
    let refs = format!(
        "{}<File ovf:href=\"media/tools.iso\" ovf:id=\"iso\" ovf:size=\"4096\"/><File ovf:href=\"notes.txt\" ovf:id=\"notes\"/>",
        file_ref("disk1.vmdk", pkg.size("disk1.vmdk") as usize, "")
    );
    let files = [
        "vm.ovf",
        "vm.mf",
        "disk1.vmdk",
        "media/tools.iso",
        "notes.txt",
    ];
    pkg.file(
        "vm.ovf",
        envelope(&refs, &disk_entry(1), hardware).as_bytes(),
    )
    .manifest(
        "vm.mf",
        &[files[0], files[2], files[3], files[4]],
        "SHA1",
        MfStyle::Ovftool,
    );
    std::fs::write(dir.join("vm.ova"), ova_in_folder(&pkg, "", &files)).unwrap();

    for (input, outdir) in [("pkg/vm.ovf", "folder"), ("vm.ova", "ova"), ("-", "pipe")] {
        let out = if input == "-" {
            let mut child = Command::new(env!("CARGO_BIN_EXE_ovf-disk"))
                .args(["import", "--json", "-", outdir])
                .current_dir(dir)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            let ova = std::fs::read(dir.join("vm.ova")).unwrap();
            child.stdin.take().unwrap().write_all(&ova).unwrap();
            child.wait_with_output().unwrap()
        } else {
            ovf_disk(dir, &["import", "--json", input, outdir])
        };
        assert!(out.status.success(), "{input}: {}", stderr(&out));
        let v = json(&out);
        assert_eq!(
            v["carried"],
            serde_json::json!([
                format!("{outdir}/media_tools.iso"),
                format!("{outdir}/notes.txt")
            ]),
            "{input}: {v}"
        );
        assert_eq!(v["manifest"], format!("{outdir}/vm.mf"), "{v}");
        let o = dir.join(outdir);
        assert_eq!(
            std::fs::read(o.join("media_tools.iso")).unwrap(),
            [0x5a; 4096]
        );
        assert_eq!(std::fs::read(o.join("notes.txt")).unwrap(), b"read me\n");
        let mf = std::fs::read_to_string(o.join("vm.mf")).unwrap();
        let names: Vec<&str> = mf
            .lines()
            .map(|l| l.split_once('(').unwrap().1.split_once(')').unwrap().0)
            .collect();
        assert_eq!(
            names,
            ["vm.ovf", "disk1-thick.vmdk", "media_tools.iso", "notes.txt"],
            "{mf}"
        );
        assert!(mf.starts_with("SHA1("), "{mf}");
        let verified = ovf_disk_ok(dir, &["verify", &format!("{outdir}/vm.ovf")]);
        assert!(String::from_utf8_lossy(&verified.stdout).contains("verified"));
        ovf_disk_ok(dir, &["check", &format!("{outdir}/vm.ovf")]);
        qemu_same(
            dir,
            &format!("{outdir}/disk1-thick.vmdk"),
            "vmdk",
            "src.raw",
            "raw",
        );
    }

    // Without the extra files: the CD-ROM's ISO and the text file are gone, with the item.
    ovf_disk_ok(dir, &["import", "-q", "--no-extra-files", "vm.ova", "bare"]);
    let written = std::fs::read_to_string(dir.join("bare/vm.ovf")).unwrap();
    assert!(
        !written.contains("tools.iso") && !written.contains("notes.txt"),
        "{written}"
    );
    assert!(
        !written.contains("CD-ROM 1") && written.contains("Disk 1"),
        "{written}"
    );
    assert!(!dir.join("bare/media_tools.iso").exists());
    ovf_disk_ok(dir, &["verify", "bare/vm.ovf"]);
}

#[test]
fn a_disk_outside_the_folder_is_followed_only_when_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    disk(dir, "vmdk/base.vmdk");
    let pkg = PackageDir::new(&dir.join("pkg"));
    let size = std::fs::metadata(dir.join("vmdk/base.vmdk")).unwrap().len();
    pkg.file(
        "vm.ovf",
        ovf_text("../vmdk/base.vmdk", size, &[]).as_bytes(),
    );

    let out = ovf_disk(dir, &["import", "-q", "pkg/vm.ovf", "out"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(
            "ovf:href \"../vmdk/base.vmdk\" leads outside the package folder ('..'): not followed (--allow-outside-paths follows it in a package folder)"
        ),
        "{}",
        stderr(&out)
    );
    assert!(
        !dir.join("out").exists(),
        "a refused import created its folder"
    );

    ovf_disk_ok(
        dir,
        &["import", "-q", "--allow-outside-paths", "pkg/vm.ovf", "out"],
    );
    qemu_same(dir, "out/base-thick.vmdk", "vmdk", "src.raw", "raw");

    // A URL is never read (remote reading is another issue), with or without the flag.
    pkg.file(
        "url.ovf",
        ovf_text("http://example.com/disk.vmdk", size, &[]).as_bytes(),
    );
    let out = ovf_disk(
        dir,
        &[
            "import",
            "-q",
            "--allow-outside-paths",
            "pkg/url.ovf",
            "out2",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(
            "ovf:href \"http://example.com/disk.vmdk\" is a URL (http), not a file of the package: not followed (download the file beside the descriptor)"
        ),
        "{}",
        stderr(&out)
    );
}

/// An OVA of the package folder's `files`, each member named `prefix` + its name, after a
/// directory member `prefix` when there is one.
fn ova_in_folder(pkg: &PackageDir, prefix: &str, files: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    if !prefix.is_empty() {
        out.extend(tar_member(prefix.as_bytes(), b'5', "", &[], None));
    }
    for f in files {
        let data = std::fs::read(pkg.path(f)).unwrap();
        out.extend(tar_member(
            format!("{prefix}{f}").as_bytes(),
            b'0',
            "",
            &data,
            None,
        ));
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

#[test]
fn ova_members_in_one_folder_and_hrefs_with_folders_import_from_a_file_and_a_pipe() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let pkg = PackageDir::new(&dir.join("pkg"));
    disk(&pkg.dir, "disk1.vmdk");
    disk(&pkg.dir, "disks/disk2.vmdk");
    std::fs::copy(pkg.path("src.raw"), dir.join("src.raw")).unwrap();
    let refs = format!(
        "{}<File ovf:href=\"disks/disk2.vmdk\" ovf:id=\"file2\" ovf:size=\"{}\"/>",
        file_ref("disk1.vmdk", pkg.size("disk1.vmdk") as usize, ""),
        pkg.size("disks/disk2.vmdk")
    );
    let disks = format!(
        "{}{}",
        disk_entry(1),
        disk_entry(1)
            .replace("vmdisk1", "vmdisk2")
            .replace("file1", "file2")
    );
    let files = ["x.ovf", "x.mf", "disk1.vmdk", "disks/disk2.vmdk"];
    pkg.file("x.ovf", envelope(&refs, &disks, "").as_bytes())
        .manifest("x.mf", &files[..1], "SHA256", MfStyle::Ovftool);
    // The manifest lists the disks as the envelope names them.
    pkg.manifest(
        "x.mf",
        &[files[0], files[2], files[3]],
        "SHA256",
        MfStyle::Ovftool,
    );

    for (name, prefix) in [
        ("root.ova", ""),
        ("folder.ova", "sub/"),
        ("dot.ova", "./a/"),
    ] {
        std::fs::write(dir.join(name), ova_in_folder(&pkg, prefix, &files)).unwrap();
        let out = ovf_disk_ok(dir, &["verify", name]);
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("verified"),
            "{name}"
        );
        ovf_disk_ok(dir, &["check", name]);
        let outdir = format!("out-{name}");
        ovf_disk_ok(dir, &["import", "-q", name, &outdir]);
        for f in ["disk1-thick.vmdk", "disks_disk2-thick.vmdk"] {
            qemu_same(dir, &format!("{outdir}/{f}"), "vmdk", "src.raw", "raw");
        }
        // The same archive from a pipe, read in one pass.
        let piped = format!("piped-{name}");
        let mut child = Command::new(env!("CARGO_BIN_EXE_ovf-disk"))
            .args(["import", "-q", "-", &piped])
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(&std::fs::read(dir.join(name)).unwrap())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        for f in ["disk1-thick.vmdk", "disks_disk2-thick.vmdk"] {
            qemu_same(dir, &format!("{piped}/{f}"), "vmdk", "src.raw", "raw");
        }
    }

    // export of the folder package writes plain member names, and the OVA verifies.
    ovf_disk_ok(dir, &["export", "-q", "pkg/x.ovf", "flat.ova"]);
    let members = String::from_utf8(
        Command::new("tar")
            .args(["tf", "flat.ova"])
            .current_dir(dir)
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap();
    assert_eq!(
        members.lines().collect::<Vec<_>>(),
        ["x.ovf", "x.mf", "disk1.vmdk", "disks_disk2.vmdk"]
    );
    ovf_disk_ok(dir, &["verify", "flat.ova"]);
}

#[test]
fn archive_members_leading_out_are_refused_with_their_reason() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for (name, member, why) in [
        (
            "parent.ova",
            "../x.vmdk",
            "its name leads outside the package folder ('..')",
        ),
        (
            "abs.ova",
            "/tmp/x.vmdk",
            "its name is an absolute path, outside the package",
        ),
        (
            "dotdot.ova",
            "sub/../../x.vmdk",
            "its name leads outside the package folder ('..')",
        ),
    ] {
        let ovf = envelope("", "", "");
        let ova = tar_of(&[("x.ovf", ovf.as_bytes()), (member, b"data")]);
        std::fs::write(dir.join(name), ova).unwrap();
        let out = ovf_disk(dir, &["info", name]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        assert!(
            stderr(&out).contains(&format!("tar member {member:?} at offset 0x400: {why}")),
            "{name}: {}",
            stderr(&out)
        );
    }
}
