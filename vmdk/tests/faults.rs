//! Read errors (issue 14): the operating system failing a read at a chosen byte range of a
//! chosen file, on every read path of a disk. Each structure a reader touches (the sparse
//! header, the embedded and the separate descriptor, the grain directory, a grain table, a
//! data grain, a compressed grain and its marker, a flat extent, the footer, a parent's header
//! and grains) is made unreadable in turn; opening, reading the whole capacity, copying to a
//! thick target and `check` must each fail (or report a problem) with an I/O error that names
//! the file and the offset of the structure that failed, in hex, and never panic.
//!
//! Faults are injected with a [`Files`] whose backings fail any positioned read touching the
//! chosen range (as a device returns EIO for a request over a bad sector), so the images are
//! the byte-built ones of `support/builders.rs`, read through the library's own code paths.
//! The expected offsets are taken from the layouts the builders return, never written by hand.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use test_support::builders;

use std::collections::HashMap;
use std::io;
use std::ops::Range;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;

use builders::*;
use vmdk::{Backing, Disk, Error, ErrorKind, Files, OpenOptions, ReadAt, StreamReader};

/// The message of every injected error: it carries no offset, so an offset in hex in an
/// error's text comes from the library.
const INJECTED: &str = "injected read error";

/// Files in memory, by file name, one of which fails reads over a byte range.
#[derive(Clone, Debug, Default)]
struct FailingFiles {
    files: HashMap<String, Arc<[u8]>>,
    /// The failing file's name and the byte range whose reads fail.
    fault: Option<(String, Range<u64>)>,
}

impl FailingFiles {
    fn new(files: &[(&str, &[u8])]) -> Self {
        Self {
            files: files
                .iter()
                .map(|(n, b)| (n.to_string(), Arc::from(*b)))
                .collect(),
            fault: None,
        }
    }

    fn failing(&self, file: &str, range: Range<u64>) -> Self {
        assert!(
            range.end <= self.files[file].len() as u64,
            "{file}: {range:?}"
        );
        Self {
            files: self.files.clone(),
            fault: Some((file.to_string(), range)),
        }
    }
}

/// Bytes whose reads fail when they touch `fail`.
struct FailingStorage {
    bytes: Arc<[u8]>,
    fail: Option<Range<u64>>,
}

impl ReadAt for FailingStorage {
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        let end = pos.saturating_add(buf.len() as u64);
        if let Some(r) = &self.fail {
            if !buf.is_empty() && pos < r.end && r.start < end {
                return Err(io::Error::other(INJECTED));
            }
        }
        let start = (pos as usize).min(self.bytes.len());
        let n = buf.len().min(self.bytes.len() - start);
        buf[..n].copy_from_slice(&self.bytes[start..start + n]);
        Ok(n)
    }
}

impl Files for FailingFiles {
    fn open(&self, path: &Path) -> vmdk::Result<Backing> {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = self.files.get(&name).cloned().ok_or_else(|| {
            Error::io(
                path,
                io::Error::new(io::ErrorKind::NotFound, "no such file"),
            )
        })?;
        let fail = self
            .fault
            .as_ref()
            .filter(|(f, _)| *f == name)
            .map(|(_, r)| r.clone());
        let len = bytes.len() as u64;
        Ok(Backing::new(path, FailingStorage { bytes, fail }, len))
    }
}

/// Where an error must point: the file, the structure and its offset in that file.
#[derive(Clone, Copy, Debug)]
struct At {
    file: &'static str,
    structure: &'static str,
    offset: u64,
}

fn at(file: &'static str, structure: &'static str, offset: usize) -> At {
    At {
        file,
        structure,
        offset: offset as u64,
    }
}

/// Asserts `e` is the injected I/O error at `want`, and that its text names the file and the
/// offset in hex. Returns the text.
fn assert_at(e: &Error, want: At, what: &str) -> String {
    let text = e.to_string();
    assert!(
        matches!(e.kind(), ErrorKind::Io(io) if io.to_string() == INJECTED),
        "{what}: not the injected I/O error: {text}"
    );
    let file = e.path().and_then(Path::file_name).map(|n| n.to_owned());
    assert_eq!(
        file.as_deref(),
        Some(std::ffi::OsStr::new(want.file)),
        "{what}: wrong file: {text}"
    );
    assert_eq!(
        e.offset(),
        Some(want.offset),
        "{what}: wrong offset: {text}"
    );
    assert_eq!(e.structure(), want.structure, "{what}: {text}");
    assert!(text.contains(want.file), "{what}: {text}");
    assert!(
        text.contains(&format!("at offset {:#x}:", want.offset)),
        "{what}: {text}"
    );
    text
}

/// What `check` makes of a fault.
#[derive(Clone, Copy, Debug)]
enum CheckSees {
    /// The same error (as `Err`, or as the problem it reports).
    Same,
    /// The fault, at another structure or offset.
    At(At),
    /// Nothing: `check` does not read this structure (uncompressed grains and flat extents
    /// are range-checked, not read).
    Clean,
}

/// One unreadable range and what each reader must say about it.
struct Case {
    name: &'static str,
    /// The disk's files, the one opened first, and the fault.
    files: FailingFiles,
    open: &'static str,
    /// Where opening fails, or `None` when the structure is read later.
    open_fails: Option<At>,
    /// Where reading the whole capacity (and copying it) fails, or `None` when no read
    /// touches the structure.
    read_fails: Option<At>,
    check: CheckSees,
}

fn options(files: &FailingFiles) -> OpenOptions {
    OpenOptions::new().files(files.clone())
}

/// Runs one case: open, read everything, copy to a thick target, check. Returns the messages.
fn run(case: &Case) -> Vec<String> {
    let name = case.name;
    let mut messages = Vec::new();
    let opened = options(&case.files).open(case.open);
    let want = match (opened, case.open_fails) {
        (Err(e), Some(want)) => {
            messages.push(format!("open: {}", assert_at(&e, want, name)));
            want
        }
        (Err(e), None) => panic!("{name}: open failed: {e}"),
        (Ok(_), Some(want)) => panic!("{name}: opened, expected a failure at {want:?}"),
        (Ok(disk), None) => {
            let mut buf = vec![0u8; disk.capacity() as usize];
            let read = disk.read_exact_at(0, &mut buf);
            let copied = copy(&disk);
            match case.read_fails {
                Some(want) => {
                    let e = read.expect_err(name);
                    messages.push(format!("read: {}", assert_at(&e, want, name)));
                    if let Some(copied) = copied {
                        let e = copied.expect_err(name);
                        messages.push(format!("copy: {}", assert_at(&e, want, name)));
                    }
                    // The Read/ReadAt view gives the library's error inside an io::Error.
                    let e = ReadAt::read_exact_at(&disk, 0, &mut buf).expect_err(name);
                    assert!(e.to_string().contains(&format!("{:#x}", want.offset)));
                    want
                }
                None => {
                    read.unwrap_or_else(|e| panic!("{name}: read failed: {e}"));
                    if let Some(copied) = copied {
                        copied.unwrap_or_else(|e| panic!("{name}: copy failed: {e}"));
                    }
                    messages.push("read, copy: succeed (no read touches it)".into());
                    match case.check {
                        CheckSees::At(w) => w,
                        CheckSees::Clean => {
                            let report = vmdk::check(case.open, &options(&case.files)).unwrap();
                            assert!(report.is_clean(), "{name}: {:?}", report.problems);
                            messages.push("check: clean (nothing reads it)".into());
                            return messages;
                        }
                        CheckSees::Same => {
                            panic!("{name}: nothing failed, check cannot see the same")
                        }
                    }
                }
            }
        }
    };
    messages.push(format!("check: {}", run_check(case, want)));
    messages
}

/// Copies the disk to a thick raw file, with the default options: `None` without the `write`
/// feature.
#[cfg(feature = "write")]
fn copy(disk: &Disk) -> Option<vmdk::Result<vmdk::CopyStats>> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("thick.raw");
    let file = std::fs::File::create(&path).unwrap();
    let target = vmdk::Target {
        file: &file,
        path: &path,
        start: 0,
        len: disk.capacity(),
    };
    Some(disk.copy_to(&[target], &vmdk::WriteOptions::new(), &|_| {}))
}

#[cfg(not(feature = "write"))]
fn copy(_: &Disk) -> Option<vmdk::Result<()>> {
    None
}

/// `check` reports the fault: as `Err` when the disk's own file cannot be read at all, else
/// as a problem with the file, structure and offset.
fn run_check(case: &Case, fault: At) -> String {
    let name = case.name;
    let want = match case.check {
        CheckSees::Same => fault,
        CheckSees::At(w) => w,
        CheckSees::Clean => {
            let report = vmdk::check(case.open, &options(&case.files)).unwrap();
            assert!(report.is_clean(), "{name}: {:?}", report.problems);
            return "clean (this structure is not read by check)".into();
        }
    };
    match vmdk::check(case.open, &options(&case.files)) {
        Err(e) => assert_at(&e, want, &format!("{name} (check)")),
        Ok(report) => {
            // The walk of a stream's markers meets the fault again: every problem it makes
            // names its place once, in its fields, and not a second time in its message.
            for p in report
                .problems
                .iter()
                .filter(|p| p.message.contains(INJECTED))
            {
                assert_eq!(p.message, INJECTED, "{name} (check): {p:?}");
                assert_eq!(p.path.file_name().unwrap(), want.file, "{name}: {p:?}");
            }
            let p = report
                .problems
                .iter()
                .find(|p| p.message.contains(INJECTED))
                .unwrap_or_else(|| panic!("{name}: check missed it: {:#?}", report.problems));
            assert_eq!(
                p.path.file_name().unwrap(),
                want.file,
                "{name} (check): {p:?}"
            );
            assert_eq!(p.offset, Some(want.offset), "{name} (check): {p:?}");
            assert_eq!(p.structure, want.structure, "{name} (check): {p:?}");
            format!(
                "problem {}: {} at offset {:#x}: {}",
                p.path.display(),
                p.structure,
                want.offset,
                p.message
            )
        }
    }
}

fn run_all(cases: Vec<Case>) {
    let mut failures = Vec::new();
    for case in &cases {
        match catch_unwind(AssertUnwindSafe(|| run(case))) {
            Ok(messages) => {
                for m in messages {
                    eprintln!("[{}] {m}", case.name);
                }
            }
            Err(p) => failures.push(format!(
                "{}: {}",
                case.name,
                p.downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default()
            )),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// `len` bytes from `at`: a fault inside a structure, whose error names the structure's start
/// (or the failing grain's, or 4 KiB block's), not the faulty byte.
fn span(at: usize, len: usize) -> Range<u64> {
    at as u64..(at + len) as u64
}

const SPARSE: &str = "sparse.vmdk";

/// A monolithicSparse disk of 32 grains of 64 KiB in two grain tables of 16, grains 0 to 2
/// (consecutive in the file, read in one call), 5 and 20 allocated.
fn sparse() -> (Vec<u8>, SparseLayout, SparseBuilder) {
    let mut b = SparseBuilder::new(4096);
    b.gtes_per_gt = 16;
    for g in [0u64, 1, 2, 5, 20] {
        b.grains.insert(g, noise(g + 1, 65536));
    }
    let (bytes, layout) = b.build(SPARSE);
    assert_eq!(layout.grain_tables.len(), 2);
    (bytes, layout, b)
}

#[test]
fn monolithic_sparse_read_errors_name_the_structure() {
    let (bytes, l, b) = sparse();
    let files = FailingFiles::new(&[(SPARSE, &bytes)]);
    let grain = |g: u64| l.grains[&g];
    let descriptor_len = b.descriptor(SPARSE).len();
    let case = |name, fault: Range<u64>, open_fails, read_fails, check| Case {
        name,
        files: files.failing(SPARSE, fault),
        open: SPARSE,
        open_fails,
        read_fails,
        check,
    };
    run_all(vec![
        // The first read of any disk: 4 bytes at 0 for the magic, before the header is parsed.
        case(
            "sparse: magic",
            span(0, 4),
            Some(at(SPARSE, "file", 0)),
            None,
            CheckSees::Same,
        ),
        // overHead, at byte 64 of the header.
        case(
            "sparse: header",
            span(64, 8),
            Some(at(SPARSE, "sparse header", 0)),
            None,
            CheckSees::Same,
        ),
        case(
            "sparse: embedded descriptor",
            span(l.descriptor + descriptor_len / 2, 1),
            Some(at(SPARSE, "embedded descriptor", l.descriptor)),
            None,
            CheckSees::Same,
        ),
        case(
            "sparse: grain directory",
            span(l.grain_directory + 4, 1),
            Some(at(SPARSE, "grain directory", l.grain_directory)),
            None,
            CheckSees::Same,
        ),
        // Reads never use the redundant directory; check compares it with the primary.
        case(
            "sparse: redundant grain directory",
            span(l.redundant_directory, 4),
            None,
            None,
            CheckSees::At(at(
                SPARSE,
                "redundant grain directory",
                l.redundant_directory,
            )),
        ),
        case(
            "sparse: grain table 1",
            span(l.grain_tables[1] + 16, 1),
            None,
            Some(at(SPARSE, "grain table", l.grain_tables[1])),
            CheckSees::Same,
        ),
        // Grain 1 is read in one call with grains 0 and 2: the error names grain 1.
        case(
            "sparse: data grain 1 (joined read)",
            span(grain(1) + 1000, 1),
            None,
            Some(at(SPARSE, "grain", grain(1))),
            CheckSees::Clean,
        ),
        case(
            "sparse: data grain 20 (table 1)",
            span(grain(20) + 65535, 1),
            None,
            Some(at(SPARSE, "grain", grain(20))),
            CheckSees::Clean,
        ),
    ]);
}

const STREAM: &str = "stream.vmdk";

/// A stream-optimized disk in VMware's layout (footer, GD_AT_END): 16 grains in four grain
/// tables of 4, grains 0, 1 and 9 allocated.
fn stream() -> (Vec<u8>, Layout) {
    let mut b = StreamBuilder::new(2048);
    b.gtes_per_gt = 4;
    b.grains.insert(0, noise(1, 65536));
    b.grains.insert(1, vec![0x5a; 1000]);
    b.grains.insert(9, noise(9, 65536));
    b.build()
}

#[test]
fn stream_optimized_read_errors_name_the_structure() {
    let (bytes, l) = stream();
    let files = FailingFiles::new(&[(STREAM, &bytes)]);
    let case = |name, fault: Range<u64>, open_fails, read_fails, check| Case {
        name,
        files: files.failing(STREAM, fault),
        open: STREAM,
        open_fails,
        read_fails,
        check,
    };
    let marker = |g: u64| l.grain_markers[&g];
    run_all(vec![
        case(
            "stream: header",
            span(20, 8),
            Some(at(STREAM, "sparse header", 0)),
            None,
            CheckSees::Same,
        ),
        // The header says GD_AT_END: the footer (one sector before the end-of-stream marker)
        // gives the grain directory.
        case(
            "stream: footer",
            span(l.footer + 56, 8),
            Some(at(STREAM, "footer", l.footer)),
            None,
            CheckSees::Same,
        ),
        case(
            "stream: embedded descriptor",
            span(600, 1),
            Some(at(STREAM, "embedded descriptor", 512)),
            None,
            CheckSees::Same,
        ),
        case(
            "stream: grain directory",
            span(l.grain_directory, 4),
            Some(at(STREAM, "grain directory", l.grain_directory)),
            None,
            CheckSees::Same,
        ),
        case(
            "stream: grain table 2",
            span(l.grain_tables[2] + 4, 1),
            None,
            Some(at(STREAM, "grain table", l.grain_tables[2])),
            CheckSees::Same,
        ),
        // The 12-byte grain marker (LBA and size) before the compressed data.
        case(
            "stream: grain marker of grain 1",
            span(marker(1) + 8, 4),
            None,
            Some(at(STREAM, "grain marker", marker(1))),
            CheckSees::Same,
        ),
        // Inside the deflate data of grain 9: the error names where the data starts.
        case(
            "stream: compressed grain 9",
            span(marker(9) + 12 + 700, 1),
            None,
            Some(at(STREAM, "compressed grain", marker(9) + 12)),
            CheckSees::Same,
        ),
    ]);
}

/// A twoGbMaxExtentSparse disk: a text descriptor and two sparse extents of 16 grains, grains
/// 3 and 4 of the second allocated.
fn split() -> (String, [(Vec<u8>, SparseLayout); 2]) {
    let text = format!(
        "# Disk DescriptorFile\nversion=1\nCID=2a2a2a2a\nparentCID=ffffffff\ncreateType=\"twoGbMaxExtentSparse\"\n\n# Extent description\nRW 2048 SPARSE \"split-s001.vmdk\"\nRW 2048 SPARSE \"split-s002.vmdk\"\n\n# The Disk Data Base\n#DDB\nddb.adapterType = \"lsilogic\"\n{}",
        "# padding so the descriptor is more than a sector long\n".repeat(12)
    );
    let extent = |name: &str, grains: &[u64]| {
        let mut b = SparseBuilder::new(2048);
        for &g in grains {
            b.grains.insert(g, noise(g + 40, 65536));
        }
        b.build(name)
    };
    (
        text,
        [
            extent("split-s001.vmdk", &[0]),
            extent("split-s002.vmdk", &[3, 4]),
        ],
    )
}

#[test]
fn split_sparse_read_errors_name_the_file() {
    let (text, [(s1, _), (s2, l2)]) = split();
    let files = FailingFiles::new(&[
        ("split.vmdk", text.as_bytes()),
        ("split-s001.vmdk", &s1),
        ("split-s002.vmdk", &s2),
    ]);
    let case = |name, file: &str, fault, open_fails, read_fails, check| Case {
        name,
        files: files.failing(file, fault),
        open: "split.vmdk",
        open_fails,
        read_fails,
        check,
    };
    run_all(vec![
        // The separate descriptor is read whole, from its first byte.
        case(
            "split: descriptor file",
            "split.vmdk",
            span(text.len() - 100, 1),
            Some(at("split.vmdk", "descriptor", 0)),
            None,
            CheckSees::Same,
        ),
        case(
            "split: second extent's header",
            "split-s002.vmdk",
            span(12, 8),
            Some(at("split-s002.vmdk", "sparse header", 0)),
            None,
            CheckSees::Same,
        ),
        case(
            "split: second extent's grain table",
            "split-s002.vmdk",
            span(l2.grain_tables[0] + 12, 1),
            None,
            Some(at("split-s002.vmdk", "grain table", l2.grain_tables[0])),
            CheckSees::Same,
        ),
        // Grains 3 and 4 follow each other in the file and are read in one call.
        case(
            "split: second extent's grain 4",
            "split-s002.vmdk",
            span(l2.grains[&4] + 7, 1),
            None,
            Some(at("split-s002.vmdk", "grain", l2.grains[&4])),
            CheckSees::Clean,
        ),
    ]);
}

#[test]
fn flat_extent_read_errors_name_the_block() {
    // A monolithicFlat disk of 2 MiB whose extent starts 4 sectors into its file.
    let flat = noise(11, 4 * 512 + (4096 * 512));
    let text = "# Disk DescriptorFile\nversion=1\nCID=2a2a2a2a\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\nRW 4096 FLAT \"flat-flat.vmdk\" 4\n\nddb.adapterType = \"lsilogic\"\n";
    let files = FailingFiles::new(&[("flat.vmdk", text.as_bytes()), ("flat-flat.vmdk", &flat)]);
    // One read covers the whole extent (the copy reads the same run); when it fails, the 4 KiB
    // block of the file holding the bad byte is named.
    let bad = 0x12_3456usize;
    run_all(vec![
        Case {
            name: "flat: extent",
            files: files.failing("flat-flat.vmdk", span(bad, 1)),
            open: "flat.vmdk",
            open_fails: None,
            read_fails: Some(at("flat-flat.vmdk", "flat extent", bad / 4096 * 4096)),
            check: CheckSees::Clean,
        },
        // The first block of the extent is partial (it starts at byte 2048): named at 2048.
        Case {
            name: "flat: extent's first sectors",
            files: files.failing("flat-flat.vmdk", span(3000, 1)),
            open: "flat.vmdk",
            open_fails: None,
            read_fails: Some(at("flat-flat.vmdk", "flat extent", 2048)),
            check: CheckSees::Clean,
        },
        Case {
            name: "flat: descriptor",
            files: files.failing("flat.vmdk", span(40, 1)),
            open: "flat.vmdk",
            open_fails: Some(at("flat.vmdk", "descriptor", 0)),
            read_fails: None,
            check: CheckSees::Same,
        },
    ]);
}

#[test]
fn parent_read_errors_name_the_parent() {
    let mut parent = SparseBuilder::new(2048);
    parent.cid = 0x1111_1111;
    for g in 0..5 {
        parent.grains.insert(g, noise(g + 100, 65536));
    }
    let mut child = SparseBuilder::new(2048);
    child.cid = 0x2222_2222;
    child.parent = Some((0x1111_1111, "base.vmdk".into()));
    child.grains.insert(1, vec![0xbb; 65536]);
    let (p, pl) = parent.build("base.vmdk");
    let (c, cl) = child.build("child.vmdk");
    let files = FailingFiles::new(&[("base.vmdk", &p), ("child.vmdk", &c)]);
    let case = |name, file: &str, fault, open_fails, read_fails, check| Case {
        name,
        files: files.failing(file, fault),
        open: "child.vmdk",
        open_fails,
        read_fails,
        check,
    };
    run_all(vec![
        case(
            "delta: parent's header",
            "base.vmdk",
            span(44, 4),
            Some(at("base.vmdk", "sparse header", 0)),
            None,
            CheckSees::Same,
        ),
        case(
            "delta: parent's embedded descriptor",
            "base.vmdk",
            span(pl.descriptor + 3, 1),
            Some(at("base.vmdk", "embedded descriptor", pl.descriptor)),
            None,
            CheckSees::Same,
        ),
        case(
            "delta: parent's grain directory",
            "base.vmdk",
            span(pl.grain_directory, 1),
            Some(at("base.vmdk", "grain directory", pl.grain_directory)),
            None,
            CheckSees::Same,
        ),
        case(
            "delta: parent's grain table",
            "base.vmdk",
            span(pl.grain_tables[0] + 8, 1),
            None,
            Some(at("base.vmdk", "grain table", pl.grain_tables[0])),
            CheckSees::Same,
        ),
        // Grain 3 is unallocated in the child: read from the parent.
        case(
            "delta: parent's grain 3",
            "base.vmdk",
            span(pl.grains[&3] + 4096, 1),
            None,
            Some(at("base.vmdk", "grain", pl.grains[&3])),
            CheckSees::Clean,
        ),
        // The parent's grain 1 is hidden by the child's: never read.
        case(
            "delta: parent's grain 1 (hidden by the child's)",
            "base.vmdk",
            span(pl.grains[&1], 512),
            None,
            None,
            CheckSees::Clean,
        ),
        case(
            "delta: child's grain 1",
            "child.vmdk",
            span(cl.grains[&1] + 512, 1),
            None,
            Some(at("child.vmdk", "grain", cl.grains[&1])),
            CheckSees::Clean,
        ),
    ]);
}

/// A reader of a stream that fails once it reaches `fail_at`, as a pipe from a failing device
/// does: the bytes before it are delivered, then every read fails.
struct FailingRead<'a> {
    bytes: &'a [u8],
    pos: usize,
    fail_at: usize,
}

impl io::Read for FailingRead<'_> {
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

/// The one-pass reader of a stream-optimized disk (`inflate -`, imports from a pipe): the
/// error names the structure being read when the stream failed, at its offset in the stream.
#[test]
fn stream_reader_errors_name_the_structure() {
    let (bytes, l) = stream();
    let marker = |g: u64| l.grain_markers[&g];
    let gt_marker = l.grain_tables[0] - 512;
    let cases = [
        ("one pass: header", 100, at(STREAM, "sparse header", 0)),
        (
            "one pass: embedded descriptor",
            700,
            at(STREAM, "embedded descriptor", 512),
        ),
        (
            "one pass: grain marker",
            marker(1) + 4,
            at(STREAM, "marker", marker(1)),
        ),
        (
            "one pass: compressed grain",
            marker(9) + 12 + 300,
            at(STREAM, "compressed grain", marker(9) + 12),
        ),
        (
            "one pass: grain table marker",
            gt_marker + 100,
            at(STREAM, "metadata marker", gt_marker + 12),
        ),
        (
            "one pass: grain table",
            l.grain_tables[0] + 8,
            at(STREAM, "metadata", l.grain_tables[0]),
        ),
    ];
    let mut failures = Vec::new();
    for (name, fail_at, want) in cases {
        let outcome = catch_unwind(|| {
            let input = FailingRead {
                bytes: &bytes,
                pos: 0,
                fail_at,
            };
            let e = StreamReader::new(input, STREAM)
                .and_then(|r| r.check(2))
                .expect_err(name);
            assert_at(&e, want, name)
        });
        match outcome {
            Ok(m) => eprintln!("[{name}] {m}"),
            Err(p) => failures.push(format!(
                "{name}: {}",
                p.downcast_ref::<String>().cloned().unwrap_or_default()
            )),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}
