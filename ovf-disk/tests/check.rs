//! `ovf-disk check`: clean images (every qemu-img subformat, zeroed grains, delta disks, our own
//! writers, VMware's stream layout) exit 0; images damaged in code exit 2 naming the problem and
//! its offset; inputs that cannot be checked exit 1; OVF packages are checked disk by disk.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::path::Path;

use common::builders::*;
use common::*;

fn check(dir: &Path, file: &str) -> (i32, serde_json::Value) {
    let out = ovf_disk(dir, &["check", "--json", file]);
    let code = out.status.code().unwrap();
    let v = if code == 1 {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&out.stdout).unwrap()
    };
    (code, v)
}

fn problems(v: &serde_json::Value) -> String {
    v["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| format!("{} @{}: {}\n", p["structure"], p["offset"], p["message"]))
        .collect()
}

#[test]
fn clean_images_pass() {
    let d = tempfile::tempdir().unwrap();
    sample_raw(&d.path().join("src.raw"), 8 << 20);
    for sub in [
        "monolithicSparse",
        "monolithicFlat",
        "twoGbMaxExtentSparse",
        "twoGbMaxExtentFlat",
        "streamOptimized",
    ] {
        let q = format!("q-{sub}.vmdk");
        qemu_to_vmdk(d.path(), "src.raw", &q, &format!("subformat={sub}"));
        let o = format!("o-{sub}.vmdk");
        ovf_disk_ok(d.path(), &["convert", "-q", "src.raw", &o, "--to", sub]);
        for f in [&q, &o] {
            let (code, v) = check(d.path(), f);
            assert_eq!(code, 0, "{f}: {}", problems(&v));
            assert_eq!(v["leaked_bytes"], 0, "{f}");
        }
    }
    qemu_to_vmdk(d.path(), "src.raw", "z.vmdk", "zeroed_grain=on");
    qemu_io(d.path(), "z.vmdk", &["write -z 0 1M"]);
    qemu_delta(d.path(), "z.vmdk", "child.vmdk");
    qemu_io(d.path(), "child.vmdk", &["write -P 1 2M 64k"]);
    let (code, v) = check(d.path(), "child.vmdk");
    assert_eq!(code, 0, "{}", problems(&v));
    assert!(v["zeroed_bytes"].as_u64().unwrap() >= 1 << 20);
    let mut b = StreamBuilder::new(1100 * 128);
    b.grains.insert(3, noise(1, 65536));
    b.grains.insert(900, noise(2, 65536));
    std::fs::write(d.path().join("vmware.vmdk"), b.build().0).unwrap();
    let (code, v) = check(d.path(), "vmware.vmdk");
    assert_eq!(code, 0, "{}", problems(&v));
    assert_eq!(v["allocated_grains"], 2);
    let out = ovf_disk(d.path(), &["check", "child.vmdk"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("No errors were found on the image."));
}

fn damaged(dir: &Path, name: &str, bytes: Vec<u8>, want: &str) {
    std::fs::write(dir.join(name), bytes).unwrap();
    let (code, v) = check(dir, name);
    assert_eq!(code, 2, "{name}: expected problems");
    let text = problems(&v);
    assert!(text.contains(want), "{name}: wanted {want:?} in\n{text}");
    // Every problem names its file: the disk's own, or the extent or parent it concerns.
    assert!(
        v["problems"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["file"].as_str().is_some_and(|f| !f.is_empty())),
        "{name}: {v}"
    );
}

#[test]
fn damaged_images_are_reported_by_offset() {
    let d = tempfile::tempdir().unwrap();
    let mut b = SparseBuilder::new(4096);
    for g in 0..8 {
        b.grains.insert(g, noise(g + 1, 65536));
    }
    let (good, layout) = b.build("s.vmdk");
    let gt = layout.grain_tables[0];
    let put = |bytes: &mut Vec<u8>, at: usize, v: u32| {
        bytes[at..at + 4].copy_from_slice(&v.to_le_bytes())
    };
    // A grain past the end of the file.
    let mut x = good.clone();
    put(&mut x, gt + 4, 0x00ff_ffff);
    damaged(d.path(), "past-end.vmdk", x, "past the end of the file");
    // Two grains in one place.
    let mut x = good.clone();
    let first = u32::from_le_bytes(x[gt..gt + 4].try_into().unwrap());
    put(&mut x, gt + 4, first);
    damaged(d.path(), "shared.vmdk", x, "overlaps grain 0");
    // A grain on top of the grain directory.
    let mut x = good.clone();
    put(&mut x, gt + 8, (layout.grain_directory / 512) as u32);
    damaged(d.path(), "on-metadata.vmdk", x, "overlaps");
    // Primary and redundant tables disagree (change the primary only).
    let mut x = good.clone();
    put(&mut x, gt + 20, 0);
    damaged(
        d.path(),
        "disagree.vmdk",
        x,
        "disagrees with grain table 0 at entry 5",
    );
    // A grain table past the end of the file.
    let mut x = good.clone();
    put(&mut x, layout.grain_directory, 0x00ff_ffff);
    damaged(d.path(), "gt-past-end.vmdk", x, "needs bytes up to");

    let mut st = StreamBuilder::new(64 * 128);
    for g in 0..8 {
        st.grains.insert(g * 2, noise(g + 1, 65536));
    }
    let (good, layout) = st.build();
    // A damaged compressed grain.
    let mut x = good.clone();
    let g2 = layout.grain_markers[&2];
    x[g2 + 30..g2 + 40].copy_from_slice(b"0123456789");
    damaged(d.path(), "bad-grain.vmdk", x, "compressed grain");
    // Grain markers out of order (the table still maps each grain to its marker).
    let mut x = good.clone();
    let (a, b2) = (layout.grain_markers[&2], layout.grain_markers[&4]);
    x[a..a + 8].copy_from_slice(&(4u64 * 128).to_le_bytes());
    x[b2..b2 + 8].copy_from_slice(&(2u64 * 128).to_le_bytes());
    damaged(d.path(), "order.vmdk", x, "LBA");

    // A delta link whose parentCID does not match.
    let mut parent = SparseBuilder::new(256);
    parent.cid = 0x1111_1111;
    let mut child = SparseBuilder::new(256);
    child.parent = Some((0x2222_2222, "base.vmdk".into()));
    std::fs::write(d.path().join("base.vmdk"), parent.build("base.vmdk").0).unwrap();
    damaged(
        d.path(),
        "child.vmdk",
        child.build("child.vmdk").0,
        "parentCID 22222222 does not match the parent's CID 11111111",
    );
    // A flat extent shorter than its descriptor says, and a missing one.
    std::fs::write(d.path().join("f.bin"), vec![0u8; 1024]).unwrap();
    let desc = |n: &str| {
        format!("# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\nRW 8 FLAT \"{n}\" 0\n").into_bytes()
    };
    damaged(
        d.path(),
        "short.vmdk",
        desc("f.bin"),
        // A truncated file (ErrorKind::Truncated): how far the descriptor says it goes.
        "\"flat extent\" @0: \"needs bytes up to 0x1000 but the file is only 0x400 bytes long",
    );
    damaged(
        d.path(),
        "missing.vmdk",
        desc("nothere.bin"),
        "No such file",
    );
}

#[test]
fn inputs_that_cannot_be_checked_exit_1() {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(d.path().join("junk.bin"), vec![0x41u8; 5000]).unwrap();
    for f in ["junk.bin", "absent.vmdk"] {
        let out = ovf_disk(d.path(), &["check", f]);
        assert_eq!(out.status.code(), Some(1), "{f}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("cannot check"),
            "{f}"
        );
    }
}

/// Packages: the manifest's digests, then each disk walked in place (inside the OVA) or read
/// through (gzip-compressed files); damage is reported by member and offset, a disk larger than
/// its declared capacity too.
#[test]
fn packages_are_checked_disk_by_disk() {
    let d = tempfile::tempdir().unwrap();
    let mut b = StreamBuilder::new(4096);
    for g in [0u64, 5, 20] {
        b.grains.insert(g, noise(g + 1, 65536));
    }
    let (disk, layout) = b.build();
    let ovf = envelope(&file_ref("disk1.vmdk", disk.len(), ""), &disk_entry(2), "");
    let manifest = |ovf: &str, disk: &[u8]| {
        format!(
            "SHA256(p.ovf)= {}\nSHA256(disk1.vmdk)= {}\n",
            sha256_bytes(ovf.as_bytes()),
            sha256_bytes(disk)
        )
    };
    let mf = manifest(&ovf, &disk);
    let ova = |name: &str, ovf: &str, mf: &str, disk: &[u8]| {
        std::fs::write(
            d.path().join(name),
            tar_of(&[
                ("p.ovf", ovf.as_bytes()),
                ("p.mf", mf.as_bytes()),
                ("disk1.vmdk", disk),
            ]),
        )
        .unwrap();
    };
    ova("good.ova", &ovf, &mf, &disk);
    let (code, v) = check(d.path(), "good.ova");
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["clean"], true);
    assert_eq!(v["verify"]["ok"], true);
    assert_eq!(v["disks"][0]["method"], "in place");
    assert_eq!(v["disks"][0]["allocated_grains"], 3);
    assert_eq!(v["disks"][0]["leaked_bytes"], 0);

    // Grain 5's deflate data damaged inside the member: the digest and the grain both fail.
    let g5 = layout.grain_markers[&5];
    let mut bad = disk.clone();
    bad[g5 + 30..g5 + 40].copy_from_slice(b"0123456789");
    ova("bad.ova", &ovf, &mf, &bad);
    let (code, v) = check(d.path(), "bad.ova");
    assert_eq!(code, 2, "{v}");
    assert!(
        v["verify"]["files"][1]["result"]
            .as_str()
            .unwrap()
            .starts_with("mismatch"),
        "{v}"
    );
    let text = problems(&v["disks"][0]);
    assert!(
        text.contains(&format!("\"compressed grain\" @{}:", g5 + 12)),
        "{text}"
    );
    let out = ovf_disk(d.path(), &["check", "bad.ova"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("disk1.vmdk: SHA256 mismatch")
            && stdout.contains("errors were found in the package"),
        "{stdout}"
    );

    // The same disk stored gzip-compressed in a folder package, without a manifest: streamed.
    let gzip = |data: &[u8]| {
        let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut z, data).unwrap();
        z.finish().unwrap()
    };
    let gz_ovf = |size: usize| {
        envelope(
            &file_ref("disk1.vmdk.gz", size, " ovf:compression=\"gzip\""),
            &disk_entry(2),
            "",
        )
    };
    std::fs::write(d.path().join("disk1.vmdk.gz"), gzip(&disk)).unwrap();
    std::fs::write(d.path().join("gz.ovf"), gz_ovf(disk.len())).unwrap();
    let (code, v) = check(d.path(), "gz.ovf");
    assert_eq!(code, 0, "{v}");
    assert_eq!(v["disks"][0]["method"], "streamed");
    assert_eq!(v["disks"][0]["allocated_grains"], 3);
    assert_eq!(v["verify"]["manifest"], serde_json::Value::Null);
    std::fs::write(d.path().join("disk1.vmdk.gz"), gzip(&bad)).unwrap();
    let (code, v) = check(d.path(), "gz.ovf");
    assert_eq!(code, 2, "{v}");
    assert!(
        problems(&v["disks"][0]).contains(&format!("\"compressed grain\" @{}:", g5 + 12)),
        "{v}"
    );

    // ovf:compression="identity" is no compression: walked in place.
    std::fs::write(d.path().join("disk1.vmdk"), &disk).unwrap();
    let identity = envelope(
        &file_ref("disk1.vmdk", disk.len(), " ovf:compression=\"identity\""),
        &disk_entry(2),
        "",
    );
    std::fs::write(d.path().join("id.ovf"), identity).unwrap();
    let (code, v) = check(d.path(), "id.ovf");
    assert_eq!(
        (code, &v["disks"][0]["method"]),
        (0, &"in place".into()),
        "{v}"
    );

    // A disk larger than the capacity its envelope declares.
    let small = envelope(&file_ref("disk1.vmdk", disk.len(), ""), &disk_entry(1), "");
    ova("small.ova", &small, &manifest(&small, &disk), &disk);
    let (code, v) = check(d.path(), "small.ova");
    assert_eq!(code, 2, "{v}");
    assert!(
        problems(&v["disks"][0]).contains("more than the 1048576 its package declares"),
        "{v}"
    );

    // Not a package at all: the check cannot run.
    std::fs::write(d.path().join("junk.ova"), vec![0x55u8; 4096]).unwrap();
    assert_eq!(
        ovf_disk(d.path(), &["check", "junk.ova"]).status.code(),
        Some(1)
    );
}

/// A grain table that cannot be used is reported once, and the grains of the other tables are
/// still walked and counted.
#[test]
fn one_bad_grain_table_does_not_hide_the_others() {
    let d = tempfile::tempdir().unwrap();
    let mut b = SparseBuilder::new(3 * 512 * 128);
    for g in [3u64, 600, 1100] {
        b.grains.insert(g, noise(g, 65536));
    }
    let (mut bytes, layout) = b.build("t.vmdk");
    let gd = layout.grain_directory;
    bytes[gd..gd + 4].copy_from_slice(&1u32.to_le_bytes());
    std::fs::write(d.path().join("t.vmdk"), bytes).unwrap();
    let (code, v) = check(d.path(), "t.vmdk");
    assert_eq!(code, 2, "{v}");
    let text = problems(&v);
    assert_eq!(
        text.matches("\"grain table\" @512: \"lies inside the embedded descriptor")
            .count(),
        1,
        "{text}"
    );
    assert_eq!(v["allocated_grains"], 2, "{v}");
}

/// The 32-bit little-endian value at `at`.
fn le32(b: &[u8], at: usize) -> usize {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize
}

/// Our `check` against `qemu-img check` on qemu-made images, clean and damaged: where qemu-img
/// finds damage we find it too; where it finds none, either we find none, or the damage is of a
/// kind its VMDK check does not look for (it checks only that data clusters lie before the end
/// of the file: not where grain tables lie, not overlaps with metadata, not the redundant
/// directory), and each such case says so.
#[test]
fn check_agrees_with_qemu_img_check() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    sample_raw(&dir.join("src.raw"), 4 << 20);
    qemu_to_vmdk(dir, "src.raw", "sp.vmdk", "");
    let good = std::fs::read(dir.join("sp.vmdk")).unwrap();
    let gd = u64::from_le_bytes(good[56..64].try_into().unwrap()) as usize * 512;
    let rgd = u64::from_le_bytes(good[48..56].try_into().unwrap()) as usize * 512;
    let gt0 = le32(&good, gd) * 512;
    let rgt0 = le32(&good, rgd) * 512;
    let damaged = |name: &str, at: usize, value: u32| {
        let mut b = good.clone();
        b[at..at + 4].copy_from_slice(&value.to_le_bytes());
        std::fs::write(dir.join(name), b).unwrap();
    };
    // (file, qemu-img finds damage, why qemu-img sees less when it does not)
    damaged("eof.vmdk", gt0 + 12, 0x00ff_ffff);
    damaged("meta.vmdk", gt0 + 12, (gd / 512) as u32);
    damaged("rgt.vmdk", rgt0 + 12, 12345);
    damaged("gteof.vmdk", gd, 0x00ff_ffff);
    // A leaked grain: its entry cleared in both grain tables, its bytes left in the file.
    let mut leak = good.clone();
    leak[gt0 + 4..gt0 + 8].fill(0);
    leak[rgt0 + 4..rgt0 + 8].fill(0);
    std::fs::write(dir.join("leak.vmdk"), leak).unwrap();
    // The file cut after two thirds: grains past the end, as a cut copy leaves it.
    std::fs::write(dir.join("cut.vmdk"), &good[..good.len() * 2 / 3]).unwrap();
    // A stream-optimized image with two bytes of a compressed grain flipped.
    qemu_to_vmdk(dir, "src.raw", "st.vmdk", "subformat=streamOptimized");
    let mut st = std::fs::read(dir.join("st.vmdk")).unwrap();
    st[70000] ^= 0xff;
    st[70001] ^= 0xff;
    std::fs::write(dir.join("stbad.vmdk"), st).unwrap();
    for (file, qemu_finds, ours_must_find) in [
        ("sp.vmdk", false, false),
        ("eof.vmdk", true, true),
        // A grain over the grain directory: qemu-img does not check overlaps.
        ("meta.vmdk", false, true),
        // A redundant grain table that disagrees: qemu-img does not read the redundant copy.
        ("rgt.vmdk", false, true),
        // A grain table past the end of the file: qemu-img reads it as absent.
        ("gteof.vmdk", false, true),
        // A leaked grain: no error to either (qemu-img's VMDK check does not count leaks; ours
        // reports the leaked bytes, below).
        ("leak.vmdk", false, false),
        ("cut.vmdk", true, true),
        ("st.vmdk", false, false),
        // A damaged compressed grain: qemu-img's check does not inflate grains.
        ("stbad.vmdk", false, true),
    ] {
        let q = std::process::Command::new(tool("qemu-img"))
            .args(["check", "-f", "vmdk", file])
            .current_dir(dir)
            .output()
            .unwrap();
        let qemu_text = format!(
            "{}{}",
            String::from_utf8_lossy(&q.stdout),
            String::from_utf8_lossy(&q.stderr)
        );
        assert_eq!(
            !q.status.success(),
            qemu_finds,
            "{file}: qemu-img check: {qemu_text}"
        );
        let (code, v) = check(dir, file);
        assert_eq!(code == 2, ours_must_find, "{file}: {}", problems(&v));
        match file {
            "leak.vmdk" => assert_eq!(v["leaked_bytes"], 65536, "{file}: {v}"),
            "sp.vmdk" | "st.vmdk" => assert_eq!(v["leaked_bytes"], 0, "{file}: {v}"),
            _ => {}
        }
        if file == "stbad.vmdk" {
            assert!(
                problems(&v).contains("not a valid zlib stream"),
                "{}",
                problems(&v)
            );
        }
        if qemu_finds {
            assert!(
                qemu_text.contains("points after EOF")
                    && problems(&v).contains("past the end of the file"),
                "{file}: qemu-img: {qemu_text}; ours: {}",
                problems(&v)
            );
        }
    }
}

/// Runs of `(start, length, kind)` merged where consecutive runs have one kind.
fn merged(
    runs: impl IntoIterator<Item = (u64, u64, &'static str)>,
) -> Vec<(u64, u64, &'static str)> {
    let mut out: Vec<(u64, u64, &'static str)> = Vec::new();
    for (start, len, kind) in runs {
        match out.last_mut() {
            Some(last) if last.2 == kind && last.0 + last.1 == start => last.1 += len,
            _ => out.push((start, len, kind)),
        }
    }
    out
}

/// Our allocation map against `qemu-img map --output=json` on qemu-made images (holes, zeroed
/// grains written through qemu-io, a delta over them, stream-optimized, split extents): the same
/// data, zero and unallocated runs. (qemu-img's `data` is our Data; `zero` and `present` our
/// Zero; not `present` our Unallocated.)
#[test]
fn allocation_map_agrees_with_qemu_img_map() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    sample_raw(&dir.join("src.raw"), 8 << 20);
    qemu_to_vmdk(dir, "src.raw", "sparse.vmdk", "");
    qemu_to_vmdk(dir, "src.raw", "z.vmdk", "zeroed_grain=on");
    qemu_io(dir, "z.vmdk", &["write -z 0 256k", "write -z 1M 64k"]);
    qemu_delta(dir, "z.vmdk", "child.vmdk");
    qemu_io(
        dir,
        "child.vmdk",
        &["write -P 0x5a 512k 128k", "write -z 4M 64k"],
    );
    qemu_to_vmdk(dir, "src.raw", "so.vmdk", "subformat=streamOptimized");
    qemu_to_vmdk(
        dir,
        "src.raw",
        "split.vmdk",
        "subformat=twoGbMaxExtentSparse",
    );
    for file in [
        "sparse.vmdk",
        "z.vmdk",
        "child.vmdk",
        "so.vmdk",
        "split.vmdk",
    ] {
        let out = qemu_img(dir, &["map", "-f", "vmdk", "--output=json", file]);
        let qemu: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
        let theirs = merged(qemu.iter().map(|r| {
            let kind = if r["data"] == true {
                "data"
            } else if r["present"] == true {
                "zero"
            } else {
                "unallocated"
            };
            (
                r["start"].as_u64().unwrap(),
                r["length"].as_u64().unwrap(),
                kind,
            )
        }));
        let disk = vmdk::Disk::open(dir.join(file)).unwrap();
        let ours = merged(disk.map(0, disk.capacity()).unwrap().into_iter().map(|r| {
            let kind = match r.kind {
                vmdk::Allocation::Data => "data",
                vmdk::Allocation::Zero => "zero",
                vmdk::Allocation::Unallocated => "unallocated",
            };
            (r.offset, r.len, kind)
        }));
        assert_eq!(ours, theirs, "{file}");
        assert!(ours.iter().any(|r| r.2 == "data"), "{file}: {ours:?}");
    }
}

/// What the envelope names and the package lacks is a problem, manifest or not: a referenced
/// ISO that is not there, a disk whose fileRef names no File (not "a blank disk").
#[test]
fn missing_references_are_problems_without_a_manifest() {
    let d = tempfile::tempdir().unwrap();
    let mut b = StreamBuilder::new(4096);
    b.grains.insert(0, noise(1, 65536));
    let (disk, _) = b.build();
    std::fs::write(d.path().join("disk1.vmdk"), &disk).unwrap();
    let refs = format!(
        "{}<File ovf:href=\"boot.iso\" ovf:id=\"iso\"/>",
        file_ref("disk1.vmdk", disk.len(), "")
    );
    let disks = format!(
        "{}<Disk ovf:capacity=\"1\" ovf:capacityAllocationUnits=\"byte * 2^20\" ovf:diskId=\"d2\" ovf:fileRef=\"nowhere\"/>",
        disk_entry(2)
    );
    std::fs::write(d.path().join("p.ovf"), envelope(&refs, &disks, "")).unwrap();
    let out = ovf_disk(d.path(), &["check", "p.ovf"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("File iso (\"boot.iso\") is not in the package"),
        "{text}"
    );
    assert!(
        text.contains("ovf:diskId=\"d2\": ovf:fileRef \"nowhere\" names no File in References"),
        "{text}"
    );
    assert!(
        text.contains("2 errors were found in the package."),
        "{text}"
    );
    // Once both are there (and the second disk blank), the package is clean.
    std::fs::write(d.path().join("boot.iso"), b"iso").unwrap();
    let fixed = envelope(&refs, &disks.replace(" ovf:fileRef=\"nowhere\"", ""), "");
    std::fs::write(d.path().join("p.ovf"), fixed).unwrap();
    let out = ovf_disk(d.path(), &["check", "p.ovf"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
