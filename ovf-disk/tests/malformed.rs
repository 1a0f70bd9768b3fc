//! The malformed-input catalogue of the OVF side (issue 7): OVA archives with unsafe or damaged
//! tar members (opened in place, and imported from a stream), envelopes that are not well-formed,
//! carry DTDs or unsafe references, manifests and certificates that do not parse, and packages
//! whose contents do not match. Every case asserts the specific error (the variant, the file,
//! the member or line, the offset where there is one), no panic, a heap budget of 16 MiB, and,
//! for imports, that the output folder is left empty.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use test_support::catalogue;
mod common;

use std::alloc::System;
use std::io::{Cursor, Write};
use std::path::{Path, PathBuf};

use cap::Cap;
use catalogue::{run_catalogue, Case};
use common::builders::*;
use common::{disk_entry, envelope, file_ref, sha256_bytes, tar_member, tar_of, NS};
use ovf_disk::import::{self, import, import_stream};
use ovf_disk::ovf;
use ovf_disk::ovf::cert::CertificateFile;
use ovf_disk::ovf::manifest::Manifest;
use ovf_disk::ovf::names::Outside;
use ovf_disk::ovf::Envelope;
use ovf_disk::package::Package;
use ovf_disk::Error;

#[global_allocator]
static ALLOC: Cap<System> = Cap::new(System, usize::MAX);

const BUDGET: usize = 16 << 20;
/// Seekable imports copy through (threads + 1) windows of 8 MiB whatever the disk size.
const COPY_BUDGET: usize = 64 << 20;
/// A valid package: its envelope, manifest and one 1 MiB stream-optimized disk.
struct Sample {
    ovf: String,
    mf: String,
    disk: Vec<u8>,
}

impl Sample {
    fn new() -> Self {
        let mut b = StreamBuilder::new(2048);
        b.grains.insert(0, noise(1, 65536));
        b.grains.insert(9, noise(2, 65536));
        let disk = b.build().0;
        let ovf = envelope(&file_ref("disk1.vmdk", disk.len(), ""), &disk_entry(1), "");
        let mf = format!(
            "SHA256(pkg.ovf)= {}\nSHA256(disk1.vmdk)= {}\n",
            sha256_bytes(ovf.as_bytes()),
            sha256_bytes(&disk)
        );
        Self { ovf, mf, disk }
    }

    fn members(&self) -> Vec<(&'static str, Vec<u8>)> {
        vec![
            ("pkg.ovf", self.ovf.clone().into_bytes()),
            ("pkg.mf", self.mf.clone().into_bytes()),
            ("disk1.vmdk", self.disk.clone()),
        ]
    }
}

/// The three members, then `extra` raw bytes, then the end-of-archive blocks.
fn ova_with(sample: &Sample, extra: &[u8]) -> Vec<u8> {
    let members = sample.members();
    let mut out = tar_of(
        &members
            .iter()
            .map(|(n, d)| (*n, d.as_slice()))
            .collect::<Vec<_>>(),
    );
    out.truncate(out.len() - 1024);
    out.extend_from_slice(extra);
    out.extend_from_slice(&[0u8; 1024]);
    out
}

/// Raw outputs, as `import --format raw`.
fn raw() -> import::Options {
    import::Options::new()
        .output_format(vmdk::Format::Raw)
        .unwrap()
}

/// A tar member error naming `member`, at `offset`, for `reason`.
fn archive(member: &'static str, offset: u64, reason: &'static str) -> impl Fn(&Error) -> bool {
    move |e| {
        matches!(Some(e), Some(Error::Archive { path, what, offset: o, reason: r })
            if path.ends_with("x.ova") && what.contains(member) && *o == offset && r.contains(reason))
    }
}

/// The archive ends inside `member` (whose header is at `offset`): at least `missing` bytes
/// are missing.
fn truncated(member: &'static str, offset: u64, missing: u64) -> impl Fn(&Error) -> bool {
    move |e| {
        matches!(Some(e), Some(Error::Truncated { path, what, offset: o, missing: m })
            if path.ends_with("x.ova") && what.contains(member) && *o == offset && *m == missing)
    }
}

fn envelope_err(line: Option<u32>, reason: &'static str) -> impl Fn(&Error) -> bool {
    move |e| {
        matches!(Some(e), Some(Error::Ovf(ovf::Error::Envelope { path, line: l, reason: r }))
            if path.ends_with("x.ovf") && (line.is_none() || *l == line) && r.contains(reason))
    }
}

fn manifest_err(file: &'static str, line: usize, reason: &'static str) -> impl Fn(&Error) -> bool {
    move |e| {
        matches!(Some(e), Some(Error::Ovf(ovf::Error::Manifest { path, line: l, reason: r }))
            if path.ends_with(file) && *l == line && r.contains(reason))
    }
}

/// A disk error from the `vmdk` library, in the member or file `file`.
fn disk_err(kind: fn(&vmdk::ErrorKind) -> bool) -> impl Fn(&Error) -> bool {
    move |e| match e {
        Error::Disk { error, .. } => error.path().is_some() && kind(error.kind()),
        _ => false,
    }
}

/// A disk larger than the 1 MiB its envelope declares.
fn larger_than_declared(e: &Error) -> bool {
    matches!(e, Error::LargerThanDeclared { capacity, declared: 1048576, .. } if *capacity > 1048576)
}

/// Scratch folders that outlive the catalogue's construction.
struct Dirs(tempfile::TempDir, std::cell::Cell<usize>);

impl Dirs {
    fn new() -> Self {
        Self(tempfile::tempdir().unwrap(), std::cell::Cell::new(0))
    }
    fn fresh(&self) -> PathBuf {
        self.1.set(self.1.get() + 1);
        let p = self.0.path().join(format!("case{}", self.1.get()));
        std::fs::create_dir(&p).unwrap();
        p
    }
}

/// `Package::open` on `bytes` written as `x.ova`.
fn open_ova(dirs: &Dirs, bytes: &[u8]) -> impl Fn() -> Result<(), Error> {
    let path = dirs.fresh().join("x.ova");
    std::fs::write(&path, bytes).unwrap();
    move || Package::open(&path).map(drop)
}

fn is_empty(dir: &Path) -> bool {
    std::fs::read_dir(dir).unwrap().next().is_none()
}

/// `import_stream` of `bytes` (as `x.ova` read from a pipe); the output folder must stay empty.
fn stream_import(
    dirs: &Dirs,
    bytes: Vec<u8>,
    expect: impl Fn(&Error) -> bool + 'static,
) -> (impl Fn() -> Result<(), Error>, impl Fn(&Error) -> bool) {
    let out = dirs.fresh();
    let out2 = out.clone();
    (
        move || import_stream(Cursor::new(&bytes), "x.ova", &out, &raw(), &|_, _| {}).map(drop),
        move |e: &Error| expect(e) && is_empty(&out2),
    )
}

fn tar_cases(cases: &mut Vec<Case<Error>>, dirs: &Dirs, s: &Sample) {
    let ovf_len = s.ovf.len().div_ceil(512) * 512;
    let mf_len = s.mf.len().div_ceil(512) * 512;
    let disk_len = s.disk.len().div_ceil(512) * 512;
    // Offset of a member appended after the three valid ones.
    let fourth = (3 * 512 + ovf_len + mf_len + disk_len) as u64;
    let second = (512 + ovf_len) as u64;
    let extra = |name: &[u8], kind: u8, link: &str| tar_member(name, kind, link, b"x", None);
    let t = |cases: &mut Vec<Case<Error>>,
             name: &str,
             bytes: Vec<u8>,
             expect: Box<dyn Fn(&Error) -> bool>| {
        cases.push(Case::new(
            "tar members",
            name,
            open_ova(dirs, &bytes),
            expect,
        ));
    };
    // Imports of the archive read from a pipe.
    let st = |cases: &mut Vec<Case<Error>>,
              name: &str,
              bytes: Vec<u8>,
              expect: Box<dyn Fn(&Error) -> bool>| {
        let (run, expect) = stream_import(dirs, bytes, expect);
        cases.push(Case::new(
            "tar members",
            format!("{name} (from a pipe)"),
            run,
            expect,
        ));
    };
    t(
        cases,
        "member named ../evil.vmdk",
        ova_with(s, &extra(b"../evil.vmdk", b'0', "")),
        Box::new(archive("../evil.vmdk", fourth, "'..'")),
    );
    t(
        cases,
        "member named /etc/cron.d/evil",
        ova_with(s, &extra(b"/etc/cron.d/evil", b'0', "")),
        Box::new(archive("/etc/cron.d/evil", fourth, "absolute")),
    );
    t(
        cases,
        "member climbing out of a subfolder (sub/../../evil.vmdk)",
        ova_with(s, &extra(b"sub/../../evil.vmdk", b'0', "")),
        Box::new(archive("sub/../../evil.vmdk", fourth, "'..'")),
    );
    t(
        cases,
        "symbolic link to /etc/passwd",
        ova_with(s, &extra(b"link.vmdk", b'2', "/etc/passwd")),
        Box::new(archive("link.vmdk", fourth, "a link")),
    );
    t(
        cases,
        "hard link",
        ova_with(s, &extra(b"hard.vmdk", b'1', "pkg.ovf")),
        Box::new(archive("hard.vmdk", fourth, "a link")),
    );
    t(
        cases,
        "character device",
        ova_with(s, &extra(b"dev.vmdk", b'3', "")),
        Box::new(archive("dev.vmdk", fourth, "not a regular file")),
    );
    t(
        cases,
        "FIFO",
        ova_with(s, &extra(b"fifo.vmdk", b'6', "")),
        Box::new(archive("fifo.vmdk", fourth, "not a regular file")),
    );
    t(
        cases,
        "directory",
        ova_with(s, &extra(b"dir", b'5', "")),
        Box::new(archive("dir", fourth, "not a regular file")),
    );
    t(
        cases,
        "a second member named disk1.vmdk",
        ova_with(s, &extra(b"disk1.vmdk", b'0', "")),
        Box::new(archive("disk1.vmdk", fourth, "a second member")),
    );
    t(
        cases,
        "member name that is not UTF-8",
        ova_with(s, &extra(b"disk\xff.vmdk", b'0', "")),
        Box::new(archive("disk", fourth, "not UTF-8")),
    );
    t(
        cases,
        "member size 8 GiB in a small archive",
        ova_with(
            s,
            &tar_member(b"big.vmdk", b'0', "", b"x", Some(b"77777777777")),
        ),
        Box::new(truncated("big.vmdk", fourth, 0o77777777777 - 1536)),
    );
    // GNU base-256 size: 0x80 marks binary, then 2^63 big-endian.
    let mut size256 = [0u8; 12];
    size256[0] = 0x80;
    size256[4] = 0x80;
    t(
        cases,
        "member size 2^63 (base-256)",
        ova_with(s, &tar_member(b"huge.vmdk", b'0', "", b"x", Some(&size256))),
        Box::new(truncated("huge.vmdk", fourth, (1 << 63) - 1536)),
    );
    let mut bad_sum = ova_with(s, &[]);
    put(&mut bad_sum, second as usize + 148, b"0000001\0");
    t(
        cases,
        "header checksum damaged",
        bad_sum.clone(),
        Box::new(archive("tar header", second, "checksum")),
    );
    st(
        cases,
        "header checksum damaged",
        bad_sum,
        Box::new(archive("tar header", second, "checksum")),
    );
    // A descriptor after other members is read when it is the only one (as govc and virt-v2v
    // do; `check --target` flags it); with two `.ovf` members, only the first can be it.
    let late = tar_of(&[
        ("pkg.mf", s.mf.as_bytes()),
        ("pkg.ovf", s.ovf.as_bytes()),
        ("other.ovf", s.ovf.as_bytes()),
    ]);
    t(
        cases,
        "descriptor not the first member, two .ovf members",
        late,
        Box::new(archive("pkg.mf", 0, "must be the first member")),
    );
    t(
        cases,
        "empty archive",
        vec![0u8; 1024],
        Box::new(
            |e| matches!(Some(e), Some(Error::Missing { name, .. }) if name.contains("OVF descriptor")),
        ),
    );
    let mut many = ova_with(s, &[]);
    many.truncate(many.len() - 1024);
    for i in 0..10_000 {
        many.extend(tar_member(format!("f{i}").as_bytes(), b'0', "", b"", None));
    }
    many.extend_from_slice(&[0u8; 1024]);
    let too_many = |e: &Error| matches!(Some(e), Some(Error::Archive { reason, .. }) if reason.contains("more than 10000 members"));
    t(cases, "10003 members", many.clone(), Box::new(too_many));
    st(cases, "10003 members", many, Box::new(too_many));
    let cut = ova_with(s, &[])[..second as usize + 512 + 100].to_vec();
    t(
        cases,
        "archive cut inside the manifest",
        cut,
        Box::new(truncated("pkg.mf", second, s.mf.len() as u64 - 100)),
    );
    // A descriptor member of 17 MiB (a sparse file: its data is a hole).
    let path = dirs.fresh().join("x.ova");
    let size = format!("{:011o}", 17u64 << 20);
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(&tar_member(
        b"pkg.ovf",
        b'0',
        "",
        b"",
        Some(size.as_bytes()),
    ))
    .unwrap();
    f.set_len(512 + (17 << 20) + 1024).unwrap();
    drop(f);
    cases.push(Case::new(
        "tar members",
        "a 17 MiB descriptor",
        move || Package::open(&path).map(drop),
        archive("pkg.ovf", 0, "larger than"),
    ));

    // The same hazards when the archive is read from a pipe.
    st(
        cases,
        "member named ../evil.vmdk",
        ova_with(s, &extra(b"../evil.vmdk", b'0', "")),
        Box::new(archive("../evil.vmdk", fourth, "'..'")),
    );
    st(
        cases,
        "symbolic link",
        ova_with(s, &extra(b"link.vmdk", b'2', "/etc/passwd")),
        Box::new(archive("link.vmdk", fourth, "a link")),
    );
    st(
        cases,
        "a second member named disk1.vmdk",
        ova_with(s, &tar_member(b"disk1.vmdk", b'0', "", &s.disk, None)),
        Box::new(archive("disk1.vmdk", fourth, "a second member")),
    );
    let late = tar_of(&[("pkg.mf", s.mf.as_bytes()), ("pkg.ovf", s.ovf.as_bytes())]);
    st(
        cases,
        "descriptor not the first member",
        late,
        Box::new(archive("pkg.mf", 0, "must be the first member")),
    );
    let disk_at = 3 * 512 + ovf_len + mf_len;
    let cut = ova_with(s, &[])[..disk_at + 4096].to_vec();
    st(
        cases,
        "archive cut inside the disk",
        cut,
        Box::new(truncated(
            "disk1.vmdk",
            disk_at as u64 - 512,
            s.disk.len() as u64 - 4096,
        )),
    );
}

fn xml_cases(cases: &mut Vec<Case<Error>>, s: &Sample) {
    let x = |cases: &mut Vec<Case<Error>>,
             name: &str,
             text: String,
             expect: Box<dyn Fn(&Error) -> bool>| {
        cases.push(Case::new(
            "XML",
            name,
            move || {
                Envelope::parse(&text, Path::new("x.ovf"))
                    .map(drop)
                    .map_err(Error::from)
            },
            expect,
        ));
    };
    let good_ref = file_ref("disk1.vmdk", s.disk.len(), "");
    let with_ref = |r: &str| envelope(r, &disk_entry(1), "");
    x(
        cases,
        "an element left open",
        s.ovf.replace("</DiskSection>", ""),
        Box::new(envelope_err(Some(5), "")),
    );
    x(cases, "billion laughs (a DTD with nested entities)", format!("<?xml version=\"1.0\"?>\n<!DOCTYPE Envelope [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\"><!ENTITY c \"&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;\">]>\n{}", &s.ovf[39..].replace("<Info>Disks</Info>", "<Info>&c;</Info>")), Box::new(envelope_err(None, "DTD")));
    x(cases, "an external entity naming /etc/passwd", format!("<?xml version=\"1.0\"?>\n<!DOCTYPE Envelope [<!ENTITY x SYSTEM \"file:///etc/passwd\">]>\n{}", &s.ovf[39..].replace("<Info>Disks</Info>", "<Info>&x;</Info>")), Box::new(envelope_err(None, "DTD")));
    x(
        cases,
        "root element is not Envelope",
        s.ovf
            .replace("<Envelope", "<Evelope")
            .replace("</Envelope>", "</Evelope>"),
        Box::new(envelope_err(Some(1), "root element")),
    );
    x(
        cases,
        "unknown envelope namespace",
        s.ovf.replace(NS, "urn:example"),
        Box::new(envelope_err(Some(1), "namespace")),
    );
    x(
        cases,
        "File without ovf:href",
        with_ref("<File ovf:id=\"file1\"/>"),
        Box::new(envelope_err(Some(3), "without ovf:href")),
    );
    x(
        cases,
        "ovf:size that is not a number",
        with_ref(&good_ref.replace(
            &format!("ovf:size=\"{}\"", s.disk.len()),
            "ovf:size=\"lots\"",
        )),
        Box::new(envelope_err(Some(3), "not a number")),
    );
    x(
        cases,
        "ovf:size 2^64",
        with_ref(&good_ref.replace(
            &format!("ovf:size=\"{}\"", s.disk.len()),
            "ovf:size=\"18446744073709551616\"",
        )),
        Box::new(envelope_err(Some(3), "not a number")),
    );
    x(
        cases,
        "ovf:chunkSize that is not a number",
        with_ref(&file_ref("disk1.vmdk", 1, " ovf:chunkSize=\"-1\"")),
        Box::new(envelope_err(Some(3), "not a number")),
    );
    x(
        cases,
        "300000 elements",
        envelope(&good_ref, &disk_entry(1), &"<X/>".repeat(300_000)),
        Box::new(envelope_err(None, "more markup than an envelope has")),
    );
    x(
        cases,
        "16 MiB of '<'",
        format!(
            "{}{}",
            s.ovf,
            "<".repeat(16 << 20).get(s.ovf.len()..).unwrap()
        ),
        Box::new(envelope_err(None, "more markup than an envelope has")),
    );
    x(
        cases,
        "an element with 200000 attributes",
        envelope(
            &good_ref,
            &disk_entry(1),
            &format!(
                "<X {}/>",
                (0..200_000)
                    .map(|i| format!("a{i}=\"\""))
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        ),
        Box::new(envelope_err(None, "more markup than an envelope has")),
    );
    let deep = format!(
        "{}{}",
        "<VirtualSystemCollection>".repeat(40_000),
        "</VirtualSystemCollection>".repeat(40_000)
    );
    // Tags a naive scan would miss: '/>' inside a quoted value, '</a>' inside a comment.
    let quoted = format!("{}{}", "<a x=\"/>\">".repeat(49_000), "</a>".repeat(49_000));
    x(
        cases,
        "49000 levels hidden behind quoted '/>'",
        envelope(&good_ref, &disk_entry(1), &quoted),
        Box::new(envelope_err(
            None,
            "elements nested 49001 deep, more than 256",
        )),
    );
    let commented = format!(
        "{}{}",
        "<a><!--</a>-->".repeat(24_000),
        "</a>".repeat(24_000)
    );
    x(
        cases,
        "24000 levels hidden behind comments",
        envelope(&good_ref, &disk_entry(1), &commented),
        Box::new(envelope_err(
            None,
            "elements nested 24001 deep, more than 256",
        )),
    );
    x(
        cases,
        "elements nested 40000 deep",
        envelope(&good_ref, &disk_entry(1), &deep),
        Box::new(envelope_err(
            None,
            "elements nested 40001 deep, more than 256",
        )),
    );
    let deep = format!(
        "{}{}",
        "<VirtualSystemCollection>".repeat(40),
        "</VirtualSystemCollection>".repeat(40)
    );
    x(
        cases,
        "VirtualSystemCollections nested 40 deep",
        envelope(&good_ref, &disk_entry(1), &deep),
        Box::new(envelope_err(Some(5), "nested more than 32 deep")),
    );
    let mut big = s.ovf.clone();
    big.push_str(&"<!-- padding -->".repeat((17 << 20) / 16));
    x(
        cases,
        "a 17 MiB envelope",
        big,
        Box::new(envelope_err(None, "larger than 16 MiB")),
    );
}

fn manifest_cases(cases: &mut Vec<Case<Error>>) {
    let m = |cases: &mut Vec<Case<Error>>,
             name: &str,
             text: String,
             line: usize,
             reason: &'static str| {
        cases.push(Case::new(
            "manifests",
            name,
            move || {
                Manifest::parse(&text, Path::new("x.mf"))
                    .map(drop)
                    .map_err(Error::from)
            },
            manifest_err("x.mf", line, reason),
        ));
    };
    let ok = format!("SHA256(pkg.ovf)= {}\n", "a".repeat(64));
    m(
        cases,
        "a line without a file name",
        format!("{ok}SHA256 = abc\n"),
        2,
        "expected ALGORITHM(name)= digest",
    );
    m(
        cases,
        "a line without )=",
        format!("{ok}SHA256(disk1.vmdk) {}\n", "a".repeat(64)),
        2,
        "no \")=\"",
    );
    m(
        cases,
        "MD5 digests",
        format!("MD5(disk1.vmdk)= {}\n", "a".repeat(32)),
        1,
        "not SHA1, SHA256 or SHA512",
    );
    m(
        cases,
        "a digest one digit short",
        format!("SHA256(disk1.vmdk)= {}\n", "a".repeat(63)),
        1,
        "not 64 hex digits",
    );
    m(
        cases,
        "a digest that is not hex",
        format!("SHA1(disk1.vmdk)= {}\n", "g".repeat(40)),
        1,
        "not 40 hex digits",
    );
    m(
        cases,
        "a file name with ..",
        format!("SHA256(../disk1.vmdk)= {}\n", "a".repeat(64)),
        1,
        "leads outside the package folder",
    );
    m(
        cases,
        "an absolute file name",
        format!("SHA256(/etc/passwd)= {}\n", "a".repeat(64)),
        1,
        "is an absolute path",
    );
    m(
        cases,
        "a 2 MiB manifest",
        ok.repeat((2 << 20) / ok.len() + 1),
        0,
        "larger than 1 MiB",
    );
}

fn certificate_cases(cases: &mut Vec<Case<Error>>) {
    let c = |cases: &mut Vec<Case<Error>>,
             name: &str,
             text: String,
             line: usize,
             reason: &'static str| {
        cases.push(Case::new(
            "certificates",
            name,
            move || {
                CertificateFile::parse(&text, Path::new("x.cert"))
                    .map(drop)
                    .map_err(Error::from)
            },
            manifest_err("x.cert", line, reason),
        ));
    };
    let sig = format!("SHA256(pkg.mf)= {}\n", "ab".repeat(256));
    c(
        cases,
        "an empty certificate file",
        "\n\n".into(),
        1,
        "empty",
    );
    c(
        cases,
        "no PEM block",
        sig.clone(),
        2,
        "no PEM certificate block",
    );
    c(
        cases,
        "a PEM block that does not end",
        format!("{sig}-----BEGIN CERTIFICATE-----\nMIIB\n"),
        2,
        "does not end",
    );
    c(
        cases,
        "a PEM block of garbage",
        format!(
            "{sig}-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n"
        ),
        2,
        "certificate:",
    );
}

fn package_cases(cases: &mut Vec<Case<Error>>, dirs: &Dirs, s: &Sample) {
    // A folder package: import verifies first and writes nothing when a digest differs.
    let folder = |ovf: &str, mf: &str, disk: Option<&[u8]>| {
        let dir = dirs.fresh();
        std::fs::write(dir.join("x.ovf"), ovf).unwrap();
        std::fs::write(
            dir.join("x.mf"),
            mf.replace("pkg.ovf", "x.ovf").replace(
                &sha256_bytes(s.ovf.as_bytes()),
                &sha256_bytes(ovf.as_bytes()),
            ),
        )
        .unwrap();
        if let Some(d) = disk {
            std::fs::write(dir.join("disk1.vmdk"), d).unwrap();
        }
        let out = dir.join("out");
        std::fs::create_dir(&out).unwrap();
        (dir.join("x.ovf"), out)
    };
    let imports = |cases: &mut Vec<Case<Error>>,
                   name: &str,
                   (ovf, out): (PathBuf, PathBuf),
                   expect: Box<dyn Fn(&Error) -> bool>| {
        let out2 = out.clone();
        cases.push(
            Case::new(
                "packages",
                name,
                move || {
                    let pkg = Package::open(&ovf)?;
                    import(&pkg, &out, &raw(), &|_, _| {}).map(drop)
                },
                move |e| expect(e) && is_empty(&out2),
            )
            .with_budget(COPY_BUDGET),
        );
    };
    let mut tampered = s.disk.clone();
    let at = tampered.len() / 2;
    tampered[at] ^= 1;
    imports(
        cases,
        "a disk whose digest differs",
        folder(&s.ovf, &s.mf, Some(&tampered)),
        Box::new(|e| matches!(e, Error::Verification(p) if p.ends_with("x.ovf"))),
    );
    imports(
        cases,
        "a listed disk that is missing",
        folder(&s.ovf, &s.mf, None),
        Box::new(|e| matches!(e, Error::Verification(p) if p.ends_with("x.ovf"))),
    );
    // Hrefs that lead outside the package: the envelope reads (info and check describe them),
    // the import refuses to follow them, naming the rule.
    for (href, reason) in [
        ("../../etc/shadow", Outside::Parent),
        ("/dev/sda", Outside::Absolute),
        ("http://example.com/disk1.vmdk", Outside::Url("http".into())),
    ] {
        let ovf = envelope(&file_ref(href, s.disk.len(), ""), &disk_entry(1), "");
        let (path, out) = folder(&ovf, &s.mf, Some(&s.disk));
        std::fs::remove_file(path.with_extension("mf")).unwrap();
        let expected = href.to_string();
        imports(
            cases,
            &format!("ovf:href {href}"),
            (path, out),
            Box::new(move |e| {
                matches!(e, Error::Outside { href, reason: r, .. } if *href == expected && *r == reason)
                    && e.to_string().contains("not followed")
            }),
        );
    }
    let (ovf, out) = folder(&s.ovf, &s.mf, None);
    std::fs::remove_file(ovf.with_extension("mf")).unwrap();
    imports(
        cases,
        "an unlisted disk that is missing (no manifest)",
        (ovf, out),
        Box::new(disk_err(
            |k| matches!(k, vmdk::ErrorKind::Io(e) if e.kind() == std::io::ErrorKind::NotFound),
        )),
    );
    // The stream inside announces 2 MiB, the envelope 1 MiB: refused before any output.
    let mut b = StreamBuilder::new(4096);
    b.grains.insert(0, noise(1, 65536));
    let larger = b.build().0;
    let ovf = envelope(
        &file_ref("disk1.vmdk", larger.len(), ""),
        &disk_entry(1),
        "",
    );
    let mf = format!(
        "SHA256(x.ovf)= {}\nSHA256(disk1.vmdk)= {}\n",
        sha256_bytes(ovf.as_bytes()),
        sha256_bytes(&larger)
    );
    let dir = dirs.fresh();
    std::fs::write(dir.join("x.ovf"), &ovf).unwrap();
    std::fs::write(dir.join("x.mf"), &mf).unwrap();
    std::fs::write(dir.join("disk1.vmdk"), &larger).unwrap();
    let out = dir.join("out");
    std::fs::create_dir(&out).unwrap();
    imports(
        cases,
        "a disk larger than the envelope's capacity",
        (dir.join("x.ovf"), out),
        Box::new(larger_than_declared),
    );
    // The same through a pipe, with a gzip member whose data is not gzip.
    let ova = tar_of(&[("pkg.ovf", ovf.as_bytes()), ("disk1.vmdk", &larger)]);
    let (run, expect) = stream_import(dirs, ova, larger_than_declared);
    cases.push(Case::new(
        "packages",
        "a disk larger than the envelope's capacity (from a pipe)",
        run,
        expect,
    ));
    // Capacities in units that do not give a number of bytes.
    for units in ["byte * 2^70", "furlongs"] {
        let odd = envelope(
            &file_ref("disk1.vmdk", s.disk.len(), ""),
            &disk_entry(1).replace("byte * 2^20", units),
            "",
        );
        let want = |e: &Error| matches!(Some(e), Some(Error::Ovf(ovf::Error::Envelope { reason, .. })) if reason.contains("is not a number of bytes"));
        let (ovf_path, out) = folder(&odd, "", Some(&s.disk));
        std::fs::remove_file(ovf_path.with_extension("mf")).unwrap();
        imports(
            cases,
            &format!("capacity in units {units:?}"),
            (ovf_path, out),
            Box::new(want),
        );
        let ova = tar_of(&[("pkg.ovf", odd.as_bytes()), ("disk1.vmdk", &s.disk)]);
        let (run, expect) = stream_import(dirs, ova, want);
        cases.push(Case::new(
            "packages",
            format!("capacity in units {units:?} (from a pipe)"),
            run,
            expect,
        ));
    }
    let gz_ovf = envelope(
        &file_ref("disk1.vmdk", s.disk.len(), " ovf:compression=\"gzip\""),
        &disk_entry(1),
        "",
    );
    let ova = tar_of(&[("pkg.ovf", gz_ovf.as_bytes()), ("disk1.vmdk", &s.disk)]);
    let (run, expect) = stream_import(dirs, ova, |e| {
        matches!(e, Error::Disk { .. } | Error::Io { .. })
    });
    cases.push(Case::new(
        "packages",
        "ovf:compression=gzip on data that is not gzip (from a pipe)",
        run,
        expect,
    ));
    // A gzip member that inflates to 64 MiB of zeros: the reader stops at the header.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![0u8; 64 << 20]).unwrap();
    let bomb = gz.finish().unwrap();
    let bomb_ovf = envelope(
        &file_ref("disk1.vmdk", bomb.len(), " ovf:compression=\"gzip\""),
        &disk_entry(1),
        "",
    );
    let ova = tar_of(&[("pkg.ovf", bomb_ovf.as_bytes()), ("disk1.vmdk", &bomb)]);
    let (run, expect) = stream_import(
        dirs,
        ova,
        disk_err(|k| {
            matches!(
                k,
                vmdk::ErrorKind::InvalidField {
                    field: "magicNumber",
                    ..
                }
            )
        }),
    );
    cases.push(Case::new(
        "packages",
        "a gzip member that inflates to 64 MiB of zeros (from a pipe)",
        run,
        expect,
    ));
}

#[test]
fn malformed_packages_fail_precisely_within_a_heap_budget() {
    let dirs = Dirs::new();
    let sample = Sample::new();
    let mut cases = Vec::new();
    tar_cases(&mut cases, &dirs, &sample);
    xml_cases(&mut cases, &sample);
    manifest_cases(&mut cases);
    certificate_cases(&mut cases);
    package_cases(&mut cases, &dirs, &sample);
    run_catalogue(
        &ALLOC,
        cases,
        &[
            "tar members",
            "XML",
            "manifests",
            "certificates",
            "packages",
        ],
        // The real count (README): a case lost fails.
        68,
        BUDGET,
    );
}
