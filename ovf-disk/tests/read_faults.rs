//! Read errors in packages (issue 14): an OVA read from a stream ([`import_stream`], what
//! `ovf-disk import - OUTDIR` does with a pipe) whose reads fail once they reach a chosen
//! offset: inside the descriptor, inside the manifest, inside a tar header, inside the disk
//! member's sparse header, a grain marker and its compressed data. Each import must fail with
//! the injected I/O error naming the package (and the member and its offset where the error
//! carries them), never panic, and leave no file in the output folder.
//!
//! The package is a real one: a byte-built sparse disk exported by `ovf-disk export`; the
//! offsets of its members and of the structures inside the disk member are read from the
//! archive's tar headers and the disk's own header, not written by hand.
//!
//! [`ovf_disk::package::Package::open`] takes a path and reads the archive with its own `File`: it
//! cannot be given another source, so the in-place reads of `import`, `verify` and `check` are
//! not covered here (see the vmdk crate's `tests/faults.rs` for the disk reads they share).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::io::{self, Read};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use common::builders::{noise, SparseBuilder};
use common::ovf_disk_ok;
use ovf_disk::import::{self, import_stream};
use ovf_disk::Error;

/// The message of every injected error: no offset or name in it, so those in an error's text
/// come from the library.
const INJECTED: &str = "injected read error";

/// The package's name in errors.
const PACKAGE: &str = "pkg.ova";

/// A stream that fails once it reaches `fail_at`, as a pipe from a failing device does: the
/// bytes before it are delivered, then every read fails.
struct FailingRead<'a> {
    bytes: &'a [u8],
    pos: usize,
    fail_at: usize,
}

impl Read for FailingRead<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.fail_at && !buf.is_empty() {
            return Err(io::Error::other(INJECTED));
        }
        let n = buf
            .len()
            .min(self.fail_at - self.pos)
            .min(self.bytes.len() - self.pos);
        buf[..n].copy_from_slice(&self.bytes[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// One member of the archive, from its tar header.
#[derive(Clone, Debug)]
struct Member {
    name: String,
    /// Offset of its tar header in the archive.
    header: usize,
    /// Offset of its data.
    data: usize,
    size: usize,
}

/// The members of a ustar archive, in order.
fn members(ova: &[u8]) -> Vec<Member> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 512 <= ova.len() && ova[at] != 0 {
        let h = &ova[at..at + 512];
        let name = String::from_utf8_lossy(&h[..100])
            .trim_end_matches('\0')
            .to_string();
        let size_field = String::from_utf8_lossy(&h[124..136]);
        let size =
            usize::from_str_radix(size_field.trim_matches(|c: char| c == '\0' || c == ' '), 8)
                .unwrap();
        out.push(Member {
            name,
            header: at,
            data: at + 512,
            size,
        });
        at += 512 + size.div_ceil(512) * 512;
    }
    out
}

/// A real package: a 2 MiB sparse disk with data in grains 0, 1, 9 and 31, exported by the
/// tool (descriptor, manifest, then the stream-optimized disk).
struct Sample {
    _dir: tempfile::TempDir,
    ova: Vec<u8>,
    descriptor: Member,
    manifest: Member,
    disk: Member,
}

fn sample() -> Sample {
    let dir = tempfile::tempdir().unwrap();
    let mut b = SparseBuilder::new(4096);
    for g in [0u64, 1, 9, 31] {
        b.grains.insert(g, noise(g + 3, 65536));
    }
    std::fs::write(dir.path().join("disk1.vmdk"), b.build("disk1.vmdk").0).unwrap();
    ovf_disk_ok(dir.path(), &["export", "-q", "disk1.vmdk", PACKAGE]);
    let ova = std::fs::read(dir.path().join(PACKAGE)).unwrap();
    let m = members(&ova);
    let find = |ext: &str| m.iter().find(|m| m.name.ends_with(ext)).cloned();
    let descriptor = find(".ovf").unwrap();
    let manifest = find(".mf").unwrap();
    let disk = find(".vmdk").unwrap();
    assert_eq!(m[0].name, descriptor.name, "{m:?}");
    assert!(manifest.header < disk.header, "{m:?}");
    Sample {
        _dir: dir,
        ova,
        descriptor,
        manifest,
        disk,
    }
}

impl Sample {
    /// The disk member's bytes.
    fn disk_bytes(&self) -> &[u8] {
        &self.ova[self.disk.data..self.disk.data + self.disk.size]
    }

    /// Offsets in the disk member of each grain marker, in file order (from the header's
    /// overHead, marker by marker, until the first metadata marker).
    fn grain_markers(&self) -> Vec<usize> {
        let d = self.disk_bytes();
        let over_head = u64::from_le_bytes(d[64..72].try_into().unwrap()) as usize;
        let mut at = over_head * 512;
        let mut out = Vec::new();
        loop {
            let size = u32::from_le_bytes(d[at + 8..at + 12].try_into().unwrap()) as usize;
            if size == 0 {
                return out;
            }
            out.push(at);
            at = (at + 12 + size).div_ceil(512) * 512;
        }
    }
}

/// Imports the sample with reads failing from `fail_at` on, into a new folder; asserts the
/// import fails without a panic and leaves no file behind. Returns the error.
fn import_failing(s: &Sample, fail_at: usize) -> Error {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let input = FailingRead {
        bytes: &s.ova,
        pos: 0,
        fail_at,
    };
    let result = catch_unwind(AssertUnwindSafe(|| {
        import_stream(input, PACKAGE, &out, &import::Options::new(), &|_, _| {})
    }))
    .unwrap_or_else(|_| panic!("the import panicked (reads failing at {fail_at:#x})"));
    let e = match result {
        Ok(r) => panic!("the import succeeded with reads failing at {fail_at:#x}: {r:?}"),
        Err(e) => e,
    };
    assert_nothing_left(&out, &e);
    e
}

/// Nothing is left: the output folder, which the import created, is gone again.
fn assert_nothing_left(out: &Path, e: &Error) {
    assert!(!out.exists(), "after `{e}`, {} is left", out.display());
}

/// The injected error as a package read error: `Error::Io` on the member `member` of the
/// package (`PACKAGE/member`).
fn assert_package_io(e: &Error, member: &str) -> String {
    let text = e.to_string();
    match e {
        Error::Io { path, error } => {
            assert_eq!(path, &Path::new(PACKAGE).join(member), "{text}");
            assert_eq!(error.to_string(), INJECTED, "{text}");
        }
        other => panic!("not the package's I/O error: {other} ({other:?})"),
    }
    assert!(text.contains(PACKAGE), "{text}");
    text
}

/// The injected error as a disk read error: the `vmdk` error for the disk member, at
/// `structure` and `offset` of the member, its text naming the package, the member and the
/// offset in hex.
fn assert_disk_io(s: &Sample, e: &Error, structure: &str, offset: usize) -> String {
    let text = e.to_string();
    let Error::Disk { disk, error } = e else {
        panic!("not a disk error: {text} ({e:?})");
    };
    assert!(disk.is_some(), "the disk id is missing: {text}");
    assert!(
        matches!(error.kind(), vmdk::ErrorKind::Io(io) if io.to_string() == INJECTED),
        "{text}"
    );
    assert_eq!(error.structure(), structure, "{text}");
    assert_eq!(error.offset(), Some(offset as u64), "{text}");
    let path = error.path().unwrap();
    assert_eq!(
        path.file_name().unwrap().to_string_lossy(),
        s.disk.name,
        "{text}"
    );
    assert!(text.contains(&format!("at offset {offset:#x}:")), "{text}");
    text
}

/// Where the disk member's structures are, in the archive, with what an error must say:
/// (name, archive offset of the fault, structure, its offset in the member).
fn disk_faults(s: &Sample) -> Vec<(&'static str, usize, &'static str, usize)> {
    let markers = s.grain_markers();
    let d = s.disk.data;
    vec![
        ("disk header", d + 20, "sparse header", 0),
        ("grain marker", d + markers[2] + 4, "marker", markers[2]),
        (
            "first compressed grain",
            d + markers[0] + 12 + 100,
            "compressed grain",
            markers[0] + 12,
        ),
        (
            "last compressed grain",
            d + markers[3] + 12 + 100,
            "compressed grain",
            markers[3] + 12,
        ),
    ]
}

/// What is wrong with `e` as the injected error while reading the tar header at `header`: it
/// must name the package and the header's offset and show the operating system's error, which
/// is not a truncated archive (every byte before the fault was there).
fn tar_header_problem(e: &Error, header: usize) -> Option<&'static str> {
    let text = e.to_string();
    if !text.contains(PACKAGE) {
        return Some("the package is not named");
    }
    if !text.contains(&format!("offset {header:#x}:")) {
        return Some("the header's offset is not named");
    }
    if !text.contains(INJECTED) {
        return Some("the read error is not shown");
    }
    match e {
        Error::Archive { what, offset, .. } if what != "tar header" || *offset != header as u64 => {
            Some("the wrong structure")
        }
        _ => None,
    }
}

/// The harness works: read whole, the sample imports and writes its files.
#[test]
fn the_sample_imports_when_nothing_fails() {
    let s = sample();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let input = FailingRead {
        bytes: &s.ova,
        pos: 0,
        fail_at: usize::MAX,
    };
    let report = import_stream(input, PACKAGE, &out, &import::Options::new(), &|_, _| {}).unwrap();
    assert_eq!(report.disks.len(), 1);
    assert!(std::fs::read_dir(&out).unwrap().count() >= 2);
    assert_eq!(s.grain_markers().len(), 4);
}

#[test]
fn a_fault_in_the_descriptor_names_the_package_and_member() {
    let s = sample();
    let e = import_failing(&s, s.descriptor.data + s.descriptor.size / 2);
    eprintln!("descriptor: {}", assert_package_io(&e, &s.descriptor.name));
}

#[test]
fn a_fault_in_the_manifest_names_the_package_and_member() {
    let s = sample();
    let e = import_failing(&s, s.manifest.data + 10);
    eprintln!("manifest: {}", assert_package_io(&e, &s.manifest.name));
}

#[test]
fn a_fault_in_a_tar_header_names_its_offset() {
    let s = sample();
    let mut failures = Vec::new();
    for header in [s.descriptor.header, s.manifest.header, s.disk.header] {
        let e = import_failing(&s, header + 100);
        match tar_header_problem(&e, header) {
            None => eprintln!("tar header {header:#x}: {e}"),
            Some(why) => failures.push(format!("tar header {header:#x}: {why}: {e} ({e:?})")),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// A fault in the disk member (its header, a grain marker, compressed data): the disk's error
/// names the member, the structure and its offset in the member.
#[test]
fn a_fault_in_the_disk_member_names_the_structure() {
    let s = sample();
    for (name, fail_at, structure, offset) in disk_faults(&s) {
        let e = import_failing(&s, fail_at);
        eprintln!("{name}: {}", assert_disk_io(&s, &e, structure, offset));
    }
}

/// The same faults: the message names the package too, as every other package error does
/// (the envelope's are `pkg.ova/pkg.ovf: ...`), so a user importing several packages knows
/// which one failed.
#[test]
fn a_fault_in_the_disk_member_names_the_package() {
    let s = sample();
    let mut unnamed = Vec::new();
    for (name, fail_at, _, _) in disk_faults(&s) {
        let text = import_failing(&s, fail_at).to_string();
        if !text.contains(PACKAGE) {
            unnamed.push(format!("{name}: {text}"));
        }
    }
    assert!(
        unnamed.is_empty(),
        "the package is not named:\n{}",
        unnamed.join("\n")
    );
}
