//! One error category for every error of `vmdk` and `ovf-disk` (`Category`): what an importer
//! branches on. Truncation is `Truncated` wherever a file is shorter than its structures say
//! (an OVA, a sparse header, a stream's grains, a flat extent, a sparse extent's grains);
//! operating-system failures are `Io`, damage `Damaged`, what is not read `Unsupported`, and
//! what policy or the caller refuses `Refused`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::path::Path;

use common::{disk_entry, envelope, file_ref, qemu_to_vmdk, sample_raw, tar_of};
use ovf_disk::package::Package;
use ovf_disk::Category;
use vmdk::{Disk, ErrorKind};

/// Every byte of `disk`, read in 1 MiB pieces: the first error.
fn read_all(disk: &Disk) -> vmdk::Result<()> {
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < disk.capacity() {
        let n = buf.len().min((disk.capacity() - at) as usize);
        disk.read_exact_at(at, &mut buf[..n])?;
        at += n as u64;
    }
    Ok(())
}

/// The first `len` bytes of `dir/from` as `dir/to`.
fn cut(dir: &Path, from: &str, to: &str, len: usize) {
    let bytes = std::fs::read(dir.join(from)).unwrap();
    std::fs::write(dir.join(to), &bytes[..len]).unwrap();
}

#[test]
fn a_file_shorter_than_its_structures_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    sample_raw(&d.join("a.raw"), 16 << 20);
    qemu_to_vmdk(d, "a.raw", "s.vmdk", "subformat=streamOptimized");
    qemu_to_vmdk(d, "a.raw", "m.vmdk", "");
    qemu_to_vmdk(d, "a.raw", "f.vmdk", "subformat=monolithicFlat");

    // A sparse header cut: refused at open.
    cut(d, "s.vmdk", "s300.vmdk", 300);
    let e = Disk::open(d.join("s300.vmdk")).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Truncated { .. }), "{e}");
    assert_eq!(e.category(), Category::Truncated, "{e}");

    // A stream cut after its first grains: the grain that runs past the end.
    cut(d, "s.vmdk", "s100k.vmdk", 100 << 10);
    let e = read_all(&Disk::open(d.join("s100k.vmdk")).unwrap()).unwrap_err();
    assert_eq!(e.category(), Category::Truncated, "{e}");

    // A sparse extent cut: its grains lie past the end (only its tables say where).
    cut(d, "m.vmdk", "m1m.vmdk", 1 << 20);
    let e = read_all(&Disk::open(d.join("m1m.vmdk")).unwrap()).unwrap_err();
    assert_eq!(e.category(), Category::Truncated, "{e}");

    // A flat extent shorter than its descriptor says: refused at open, as truncated.
    cut(d, "f-flat.vmdk", "short-flat.vmdk", 1 << 20);
    let text = std::fs::read_to_string(d.join("f.vmdk")).unwrap();
    std::fs::write(
        d.join("short.vmdk"),
        text.replace("f-flat.vmdk", "short-flat.vmdk"),
    )
    .unwrap();
    let e = Disk::open(d.join("short.vmdk")).unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Truncated { .. }), "{e}");
    assert_eq!(e.category(), Category::Truncated, "{e}");
    assert!(e.to_string().contains("flat extent"), "{e}");

    // An OVA cut inside its disk member.
    let disk = std::fs::read(d.join("s.vmdk")).unwrap();
    let ovf = envelope(&file_ref("disk1.vmdk", disk.len(), ""), &disk_entry(16), "");
    let ova = tar_of(&[("x.ovf", ovf.as_bytes()), ("disk1.vmdk", &disk)]);
    std::fs::write(d.join("cut.ova"), &ova[..ova.len() / 2]).unwrap();
    let e = Package::open(&d.join("cut.ova")).unwrap_err();
    assert!(matches!(e, ovf_disk::Error::Truncated { .. }), "{e}");
    assert_eq!(e.category(), Category::Truncated, "{e}");
}

#[test]
fn every_error_answers_a_category() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The operating system: no such file.
    let e = Package::open(&d.join("none.ova")).unwrap_err();
    assert_eq!(e.category(), Category::Io, "{e}");
    assert_eq!(
        Disk::open(d.join("none.vmdk")).unwrap_err().category(),
        Category::Io
    );
    // Damage: an envelope that is not XML, a descriptor line that means nothing.
    std::fs::write(d.join("bad.ovf"), "<Envelope").unwrap();
    let e = Package::open(&d.join("bad.ovf")).unwrap_err();
    assert_eq!(e.category(), Category::Damaged, "{e}");
    std::fs::write(
        d.join("bad.vmdk"),
        "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\nRW 10 FLAT\n",
    )
    .unwrap();
    let e = Disk::open(d.join("bad.vmdk")).unwrap_err();
    assert_eq!(e.category(), Category::Damaged, "{e}");
    // Not read: a createType nobody reads.
    std::fs::write(
        d.join("dev.vmdk"),
        "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"fullDevice\"\nRW 10 FLAT \"/dev/sda\" 0\n",
    )
    .unwrap();
    let e = Disk::open(d.join("dev.vmdk")).unwrap_err();
    assert_eq!(e.category(), Category::Unsupported, "{e}");
    // Refused by policy: an extent outside the descriptor's folder.
    std::fs::write(
        d.join("out.vmdk"),
        "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\nRW 10 FLAT \"../x-flat.vmdk\" 0\n",
    )
    .unwrap();
    let e = Disk::open(d.join("out.vmdk")).unwrap_err();
    assert_eq!(e.category(), Category::Refused, "{e}");
    // ... and an option out of range, through ovf-disk.
    let e = ovf_disk::export::Options::new().chunk_size(3).unwrap_err();
    assert_eq!(e.category(), Category::Refused, "{e}");
}

/// `source()` chains from `ovf-disk`'s error to `vmdk`'s to the operating system's, while each
/// `Display` still carries the whole message; the tool prints each cause once.
#[test]
fn errors_chain_to_their_causes() {
    let dir = tempfile::tempdir().unwrap();
    let e: ovf_disk::Error = Disk::open(dir.path().join("none.vmdk")).unwrap_err().into();
    let vmdk = std::error::Error::source(&e).unwrap();
    assert!(vmdk.downcast_ref::<vmdk::Error>().is_some(), "{vmdk:?}");
    let io = vmdk.source().unwrap();
    assert_eq!(
        io.downcast_ref::<std::io::Error>()
            .map(std::io::Error::kind),
        Some(std::io::ErrorKind::NotFound)
    );
    assert!(e.to_string().contains(&io.to_string()), "{e}");
    let pkg = Package::open(&dir.path().join("none.ova")).unwrap_err();
    assert!(std::error::Error::source(&pkg).is_some_and(|s| s.is::<std::io::Error>()));
    let out = common::ovf_disk(dir.path(), &["info", "none.vmdk"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
}

/// Encrypted VMs and disks (vSphere VM encryption) are named as such and refused, never read as
/// plaintext or shown as defaults: one line saying what and what to do, exit 1.
#[test]
fn encrypted_vms_and_disks_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(d.join("data-flat.vmdk"), vec![0u8; 10 * 512]).unwrap();
    let descriptor = |extra: &str| {
        format!("# Disk DescriptorFile\nversion=1\n{extra}CID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\nRW 10 FLAT \"data-flat.vmdk\" 0\n")
    };
    for (name, extra) in [
        (
            "keys.vmdk",
            "encryptionKeys = \"vmware:key/list/(pair/(null/,HMAC-SHA-256,...))\"\n",
        ),
        ("filter.vmdk", "ddb.iofilters = \"vmwarevmcrypt\"\n"),
    ] {
        std::fs::write(d.join(name), descriptor(extra)).unwrap();
        let e = Disk::open(d.join(name)).unwrap_err();
        assert!(
            matches!(e.kind(), ErrorKind::Unsupported(vmdk::Feature::Encrypted)),
            "{e}"
        );
        assert_eq!(e.category(), Category::Unsupported);
        let out = common::ovf_disk(d, &["info", name]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains("encrypted by vSphere VM encryption") && err.lines().count() == 1,
            "{err}"
        );
    }
    // The same disk without encryption reads.
    std::fs::write(d.join("plain.vmdk"), descriptor("")).unwrap();
    assert!(Disk::open(d.join("plain.vmdk")).is_ok());
    // A VM whose configuration is encrypted: named, not shown as 1 vCPU, BIOS, no disks.
    std::fs::write(
        d.join("vm.vmx"),
        ".encoding = \"UTF-8\"\nencryption.keySafe = \"vmware:key/list/...\"\nencryption.data = \"AAAA\"\n",
    )
    .unwrap();
    let out = common::ovf_disk(d, &["info", "vm.vmx"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("the VM is encrypted"), "{err}");
}
