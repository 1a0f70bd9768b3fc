//! Checking a disk: every structure walked and every problem reported by offset, like
//! `qemu-img check`, where the reader stops at the first one.
//!
//! For each link of the chain and each hosted sparse extent: the header, embedded descriptor,
//! grain directories and grain tables, and every grain must lie inside the file and not overlap
//! each other; the primary and redundant grain tables must agree; compressed grains must inflate
//! to a whole grain behind a marker with the right LBA; a stream-optimized extent's markers are
//! walked in file order (grain LBAs increasing, known metadata types, end-of-stream marker).
//! The ESXi delta extents (vmfsSparse `COWD`, seSparse) are walked the same way: grain tables
//! and grains inside the file, clear of the headers and the grain directory and of each other;
//! seSparse tables inside the grain table area, grains inside the grain area, and every entry
//! of a known kind (a journal that needs replaying stops the extent from opening, and is
//! reported). Flat extents must be as long as their descriptor says, and a delta link's
//! `parentCID` must match its parent's `CID`. Space is counted: allocated, zeroed, and leaked (bytes of a sparse
//! file that no structure uses). Spec sections as in the sparse reader and [`crate::Disk`].
//!
//! Its time and memory follow the files it reads, whatever their headers claim: grain tables
//! that are absent cost nothing, a grain table over another one is reported and not walked
//! (so the entries walked fit in the file), uncompressed grains are range-checked, not read,
//! and compressed data is inflated once, up to what deflate can make of the file's bytes.
//! Problems of one kind (one structure of one file) beyond [`LISTED_PER_KIND`] are counted,
//! not listed.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use crate::descriptor::CID_NO_PARENT;
use crate::disk::{Disk, ExtentData, OpenOptions};
use crate::error::{Error, ErrorKind, Result};
use crate::format::{GrainMarker, MetadataMarker, SparseExtentHeader, SECTOR_SIZE};
use crate::read::esx::{EsxExtent, EsxFormat, COWD_HEADER, SESPARSE_HEADER};
use crate::read::grains::{GrainEntry, Grains};
use crate::read::qcow2::Qcow2Extent;
use crate::read::sparse::{MetadataSource, SparseExtent};
use crate::read::stream::StreamReader;

/// One problem found, where it was found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Problem {
    /// The file.
    #[cfg_attr(feature = "serde", serde(rename = "file"))]
    pub path: PathBuf,
    /// The structure, in the format's words.
    pub structure: String,
    /// Byte offset in the file, when known.
    pub offset: Option<u64>,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    /// A problem in `path`, at `structure` and `offset`.
    pub fn new(
        path: impl Into<PathBuf>,
        structure: impl Into<String>,
        offset: Option<u64>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            path: path.into(),
            structure: structure.into(),
            offset,
            message: message.into(),
        }
    }

    /// The problem an error stands for, where it happened.
    pub fn from_error(e: &Error) -> Self {
        Self::new(
            e.path().map(Path::to_path_buf).unwrap_or_default(),
            e.structure(),
            e.offset(),
            e.kind().to_string(),
        )
    }
}

/// Problems listed for one kind (one structure of one file) before the rest are only counted.
pub const LISTED_PER_KIND: usize = 32;

/// Problems of one kind beyond [`LISTED_PER_KIND`]: counted, not listed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Omitted {
    /// The file.
    #[cfg_attr(feature = "serde", serde(rename = "file"))]
    pub path: PathBuf,
    /// The structure, in the format's words.
    pub structure: String,
    /// Problems not listed.
    pub count: u64,
}

/// What a check found. Serialised (with the `serde` feature) with a `clean` field first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckReport {
    /// The problems, in the order found: at most [`LISTED_PER_KIND`] of each kind.
    pub problems: Vec<Problem>,
    /// The problems of each kind beyond those listed, counted.
    pub omitted: Vec<Omitted>,
    /// Files examined.
    pub files: Vec<PathBuf>,
    /// Grains allocated (holding data) in all sparse extents.
    pub allocated_grains: u64,
    /// Bytes of disk those grains cover.
    pub allocated_bytes: u64,
    /// Bytes of disk marked zeroed (zeroed-grain entries).
    pub zeroed_bytes: u64,
    /// Bytes of sparse extent files that no structure uses.
    pub leaked_bytes: u64,
    /// Problems listed per kind, to cap the list.
    listed: HashMap<(PathBuf, String), usize>,
}

impl CheckReport {
    /// Whether nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty() && self.omitted.is_empty()
    }

    /// Problems found, listed and counted.
    pub fn problem_count(&self) -> u64 {
        self.problems.len() as u64 + self.omitted.iter().map(|o| o.count).sum::<u64>()
    }

    /// Records a problem: listed while its kind (its file and structure) has fewer than
    /// [`LISTED_PER_KIND`], counted in [`CheckReport::omitted`] after that.
    pub fn add(&mut self, p: Problem) {
        let key = (p.path.clone(), p.structure.clone());
        let listed = self.listed.entry(key).or_insert(0);
        if *listed < LISTED_PER_KIND {
            *listed += 1;
            self.problems.push(p);
            return;
        }
        match self
            .omitted
            .iter_mut()
            .find(|o| o.path == p.path && o.structure == p.structure)
        {
            Some(o) => o.count += 1,
            None => self.omitted.push(Omitted {
                path: p.path,
                structure: p.structure,
                count: 1,
            }),
        }
    }

    fn add_error(&mut self, e: &Error) {
        self.add(Problem::from_error(e));
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for CheckReport {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut m = s.serialize_struct("CheckReport", 8)?;
        m.serialize_field("clean", &self.is_clean())?;
        m.serialize_field("problems", &self.problems)?;
        m.serialize_field("omitted", &self.omitted)?;
        m.serialize_field("files", &self.files)?;
        m.serialize_field("allocated_grains", &self.allocated_grains)?;
        m.serialize_field("allocated_bytes", &self.allocated_bytes)?;
        m.serialize_field("zeroed_bytes", &self.zeroed_bytes)?;
        m.serialize_field("leaked_bytes", &self.leaked_bytes)?;
        m.end()
    }
}

/// Checks the disk at `path`, opened with `options`: every structure of every link walked and
/// each problem reported by file, structure and offset, like `qemu-img check`. `Err` only when
/// the check could not run (no such file, not a VMDK, a type not read yet); damage that stops
/// the disk from opening is a problem in the report.
///
/// ```
/// let report = vmdk::check("../testdata/fuzz-seeds/disk/sparse-tiny.vmdk", &vmdk::OpenOptions::new())?;
/// assert!(report.is_clean(), "{:?}", report.problems);
/// # Ok::<(), vmdk::Error>(())
/// ```
pub fn check(path: impl AsRef<Path>, options: &OpenOptions) -> Result<CheckReport> {
    let path = path.as_ref();
    let mut report = CheckReport::default();
    let relaxed = options.clone().ignore_parent_cid(true);
    let disk = match relaxed.open(path) {
        Ok(d) => d,
        Err(e) if e.is_about_the_input() && e.path() == Some(path) => return Err(e),
        Err(e) => {
            report.add_error(&e);
            return Ok(report);
        }
    };
    check_into(&disk, &mut report);
    Ok(report)
}

/// Checks a disk already open: every structure of every link walked, each problem reported
/// by file, structure and offset, as [`check`] does after opening. A disk that opened has
/// passed the checks of opening (a damaged one would not have), so [`check`] is the call for a
/// file that may not open at all; this one is for an importer that holds the `Disk` already.
///
/// ```
/// let disk = vmdk::Disk::open("../testdata/fuzz-seeds/disk/sparse-tiny.vmdk")?;
/// assert!(vmdk::check_disk(&disk).is_clean());
/// # Ok::<(), vmdk::Error>(())
/// ```
pub fn check_disk(disk: &Disk) -> CheckReport {
    let mut report = CheckReport::default();
    check_into(disk, &mut report);
    report
}

/// The walk of [`check`] and [`check_disk`] over an open disk, into `report`.
fn check_into(disk: &Disk, report: &mut CheckReport) {
    report.files = disk.files();
    for link in disk.chain() {
        if let Some(parent) = link.parent().filter(|_| link.is_vmdk()) {
            let expected = link.descriptor().parent_cid().unwrap_or(CID_NO_PARENT);
            let found = parent.descriptor().cid().unwrap_or(CID_NO_PARENT);
            if expected != found {
                let e = Error::new(
                    Some(link.path()),
                    "descriptor",
                    None,
                    ErrorKind::ParentCidMismatch { expected, found },
                );
                report.add_error(&e);
            }
        }
        for e in link.extents() {
            match &e.data {
                ExtentData::Sparse(s) => check_sparse(s, report),
                ExtentData::Esx(s) => check_esx(s, report),
                ExtentData::Qcow2(q) => check_qcow2(q, report),
                _ => {}
            }
        }
    }
}

/// What a used byte range of a sparse file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum What {
    Header,
    MetadataArea,
    Descriptor,
    Directory,
    DirectoryMarker,
    RedundantDirectory,
    Footer,
    /// A header of an ESXi delta extent, by name.
    Named(&'static str),
    Table(usize),
    TableMarker(usize),
    RedundantTable(usize),
    Grain(u64),
}

impl fmt::Display for What {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Header => f.write_str("sparse header"),
            Self::MetadataArea => f.write_str("metadata area (overHead)"),
            Self::Descriptor => f.write_str("embedded descriptor"),
            Self::Directory => f.write_str("grain directory"),
            Self::DirectoryMarker => f.write_str("grain directory marker"),
            Self::RedundantDirectory => f.write_str("redundant grain directory"),
            Self::Footer => f.write_str("footer marker, footer and end-of-stream marker"),
            Self::Named(name) => f.write_str(name),
            Self::Table(t) => write!(f, "grain table {t}"),
            Self::TableMarker(t) => write!(f, "grain table {t} marker"),
            Self::RedundantTable(t) => write!(f, "redundant grain table {t}"),
            Self::Grain(g) => write!(f, "grain {g}"),
        }
    }
}

/// A used byte range of a sparse file, for the overlap and leak checks.
struct Used {
    start: u64,
    end: u64,
    what: What,
}

/// Byte ranges already taken, to find in `O(log n)` the first that overlaps a new one.
#[derive(Default)]
struct Ranges(BTreeMap<u64, (u64, What)>);

impl Ranges {
    /// The range taken that overlaps `start..end`, if any; else takes it.
    fn take(&mut self, start: u64, end: u64, what: What) -> Option<What> {
        let before = self.0.range(..=start).next_back();
        if let Some((_, &(_, w))) = before.filter(|(_, (e, _))| *e > start) {
            return Some(w);
        }
        if let Some((_, &(_, w))) = self.0.range(start..end).next() {
            return Some(w);
        }
        self.0.insert(start, (end, what));
        None
    }
}

/// The check of one sparse extent: what it found so far, and the byte ranges its structures use.
struct SparseCheck<'a> {
    s: &'a SparseExtent,
    report: &'a mut CheckReport,
    used: Vec<Used>,
    /// The grain tables to walk (in range, readable, over no other table, not all empty).
    walkable: Vec<bool>,
}

fn check_sparse(s: &SparseExtent, report: &mut CheckReport) {
    let mut c = SparseCheck {
        s,
        report,
        used: Vec::new(),
        walkable: vec![false; s.grain_directory().len()],
    };
    let rgd = c.metadata();
    c.tables(&rgd);
    c.grains();
    c.overlaps();
    if s.has_markers() {
        // The streaming walk checks the order of what is there.
        if let Err(e) = walk_markers(s) {
            c.report.add_error(&e);
        }
    }
}

impl SparseCheck<'_> {
    fn use_range(&mut self, start: u64, len: u64, what: What) {
        self.used.push(Used {
            start,
            end: start.saturating_add(len),
            what,
        });
    }

    fn problem(&mut self, structure: &str, offset: Option<u64>, message: String) {
        let path = self.s.backing().path();
        self.report
            .add(Problem::new(path, structure, offset, message));
    }

    /// Records the header, descriptor and directories (and their markers); returns the
    /// redundant grain directory, when the extent uses one.
    fn metadata(&mut self) -> Vec<u32> {
        let (s, h) = (self.s, self.s.header());
        let file_len = s.backing().len();
        self.use_range(0, SECTOR_SIZE, What::Header);
        let over_head = h.over_head.get().saturating_mul(SECTOR_SIZE);
        if !s.has_markers() && over_head > 0 && over_head <= file_len {
            // Everything before overHead is metadata and its padding.
            self.use_range(0, over_head, What::MetadataArea);
        }
        let d_at = h.descriptor_offset.get().saturating_mul(SECTOR_SIZE);
        if d_at > 0 {
            let len = h.descriptor_size.get().saturating_mul(SECTOR_SIZE);
            self.use_range(d_at, len, What::Descriptor);
        }
        let gd_at = h.gd_offset.get().saturating_mul(SECTOR_SIZE);
        let gd_len = s.grain_directory().len() as u64 * 4;
        self.use_range(gd_at, gd_len, What::Directory);
        if s.has_markers() && marker_before(s, gd_at, MetadataMarker::GD) {
            self.use_range(gd_at - SECTOR_SIZE, SECTOR_SIZE, What::DirectoryMarker);
        }
        if s.has_markers() && s.metadata_source() == MetadataSource::Footer {
            let start = file_len.saturating_sub(3 * SECTOR_SIZE);
            self.use_range(start, file_len - start, What::Footer);
        }
        let redundant = s.flags() & SparseExtentHeader::FLAG_USE_REDUNDANT != 0 && !s.has_markers();
        if !redundant {
            return Vec::new();
        }
        let at = h.rgd_offset.get().saturating_mul(SECTOR_SIZE);
        self.use_range(at, gd_len, What::RedundantDirectory);
        match s
            .backing()
            .read_vec("redundant grain directory", at, gd_len)
        {
            Ok(b) => b.chunks_exact(4).map(le_u32).collect(),
            Err(e) => {
                self.report.add_error(&e);
                Vec::new()
            }
        }
    }

    /// Records every grain table (and its marker, and its redundant copy, which must agree);
    /// a table that cannot be read, or lies over another, is reported and not walked.
    fn tables(&mut self, rgd: &[u32]) {
        let s = self.s;
        let gt_bytes = u64::from(s.header().num_gtes_per_gt.get()) * 4;
        let mut taken = Ranges::default();
        for (t, &gde) in s.grain_directory().iter().enumerate() {
            if gde == 0 {
                continue;
            }
            let at = u64::from(gde) * SECTOR_SIZE;
            if let Some(other) = taken.take(at, at.saturating_add(gt_bytes), What::Table(t)) {
                self.problem(
                    "grain table",
                    Some(at),
                    format!("grain table {t} lies over {other}: not walked"),
                );
                continue;
            }
            self.use_range(at, gt_bytes, What::Table(t));
            if s.has_markers() && marker_before(s, at, MetadataMarker::GT) {
                self.use_range(at - SECTOR_SIZE, SECTOR_SIZE, What::TableMarker(t));
            }
            let table = match s.grain_table(t) {
                Ok(Some(table)) => table,
                Ok(None) => continue,
                Err(e) => {
                    self.report.add_error(&e);
                    continue;
                }
            };
            // A table of unallocated entries only has no grain to walk (a disk that qemu-img
            // made has every table of its capacity, most of them empty).
            if let Some(w) = self.walkable.get_mut(t) {
                *w = table.iter().any(|&e| e != 0);
            }
            if let Some(&r) = rgd.get(t) {
                self.redundant_table(t, &table, u64::from(r) * SECTOR_SIZE, gt_bytes);
            }
        }
    }

    /// The redundant copy of grain table `t`, at `r_at`: it must agree with `table`.
    fn redundant_table(&mut self, t: usize, table: &[u32], r_at: u64, gt_bytes: u64) {
        self.use_range(r_at, gt_bytes, What::RedundantTable(t));
        let read = self
            .s
            .backing()
            .read_vec("redundant grain table", r_at, gt_bytes);
        match read {
            Ok(b) => {
                let other: Vec<u32> = b.chunks_exact(4).map(le_u32).collect();
                if let Some(i) = table.iter().zip(&other).position(|(a, b)| a != b) {
                    self.problem(
                        "redundant grain table",
                        Some(r_at.saturating_add(i as u64 * 4)),
                        format!(
                            "disagrees with grain table {t} at entry {i}: {:#x} against {:#x}",
                            other.get(i).copied().unwrap_or(0),
                            table.get(i).copied().unwrap_or(0)
                        ),
                    );
                }
            }
            Err(e) => self.report.add_error(&e),
        }
    }

    /// Every grain of the tables walked: inside the file, clear of metadata, and for
    /// compressed grains, inflating to a whole grain. Uncompressed grains are range-checked;
    /// compressed data is inflated once (a grain whose bytes another grain already uses is
    /// left to the overlap check), and at most as much as deflate can make of the file.
    fn grains(&mut self) {
        let s = self.s;
        let grain_bytes = s.grain_bytes();
        let gtes = u64::from(s.header().num_gtes_per_gt.get());
        let file_len = s.backing().len();
        // Deflate makes at most 1032 bytes of each byte it reads.
        let mut budget = file_len.saturating_mul(1032).saturating_add(grain_bytes);
        let mut inflated = Ranges::default();
        let mut scratch = vec![0u8; usize::try_from(grain_bytes).unwrap_or(0)];
        let (report, used) = (&mut *self.report, &mut self.used);
        let mut visit = |g: u64, entry: GrainEntry| -> Result<()> {
            let sector = match entry {
                GrainEntry::Data(sector) => sector,
                GrainEntry::Zeroed => {
                    report.zeroed_bytes += s.grain_len(g);
                    return Ok(());
                }
                GrainEntry::Unallocated => return Ok(()),
            };
            report.allocated_grains += 1;
            report.allocated_bytes += s.grain_len(g);
            let at = sector.saturating_mul(SECTOR_SIZE);
            let len = if s.is_compressed() {
                compressed_len(s, at)
            } else {
                grain_bytes
            };
            used.push(Used {
                start: at,
                end: at.saturating_add(len),
                what: What::Grain(g),
            });
            let result = if !s.is_compressed() {
                s.grain_offset(g, sector).and_then(|at| {
                    s.refuse_metadata("grain", at, grain_bytes)?;
                    s.backing().check_range("grain", at, s.grain_len(g))
                })
            } else if inflated
                .take(at, at.saturating_add(len), What::Grain(g))
                .is_some()
            {
                Ok(()) // the overlap check reports it
            } else if budget < grain_bytes {
                Err(Error::at(
                    s.backing().path(),
                    "compressed grain",
                    at,
                    ErrorKind::Inconsistent(format!(
                        "grain {g}: more compressed data than the file holds; grains from here on are not inflated"
                    )),
                ))
            } else {
                budget -= grain_bytes;
                let n = usize::try_from(s.grain_len(g)).unwrap_or(0);
                s.read_grain(g, sector, crate::io::head_mut(&mut scratch, n))
            };
            if let Err(e) = result {
                report.add_error(&e);
            }
            Ok(())
        };
        // Table by table, so one table that cannot be read again does not hide the others.
        let mut failed = Vec::new();
        for (t, _) in self.walkable.iter().enumerate().filter(|(_, w)| **w) {
            if let Err(e) = s.for_each_grain(t as u64 * gtes, gtes, &mut visit) {
                failed.push(e);
            }
        }
        for e in &failed {
            self.report.add_error(e);
        }
    }

    /// Every structure inside the file, and no two overlapping; counts what no structure uses
    /// as leaked (not for stream-optimized files, whose blocks are padded to sectors).
    fn overlaps(&mut self) {
        let file_len = self.s.backing().len();
        let used = std::mem::take(&mut self.used);
        let covered = report_overlaps(self.s.backing().path(), file_len, used, self.report);
        if !self.s.has_markers() {
            self.report.leaked_bytes += file_len.saturating_sub(covered.min(file_len));
        }
    }
}

/// Reports every structure of `used` that ends past the end of the file (`file_len` bytes) and
/// every two that overlap; returns the bytes they cover.
fn report_overlaps(
    path: &Path,
    file_len: u64,
    mut used: Vec<Used>,
    report: &mut CheckReport,
) -> u64 {
    used.sort_by_key(|u| (u.start, u.end));
    let mut problem = |offset: u64, message: String| {
        report.add(Problem::new(path, "file", Some(offset), message));
    };
    let mut covered = 0u64;
    let mut reach = 0u64;
    let mut last: Option<&Used> = None;
    for u in &used {
        if u.end > file_len {
            problem(
                u.start,
                format!(
                    "{} ends at {:#x}, past the end of the file ({file_len:#x})",
                    u.what, u.end
                ),
            );
        }
        if let Some(l) = last {
            let in_metadata_area = l.what == What::MetadataArea || u.what == What::MetadataArea;
            if u.start < l.end && !in_metadata_area {
                problem(
                    u.start,
                    format!(
                        "{} overlaps {} (which ends at {:#x})",
                        u.what, l.what, l.end
                    ),
                );
            }
        }
        if u.end > reach {
            covered += u.end - u.start.max(reach);
            reach = u.end;
        }
        if last.is_none_or(|l| u.end >= l.end) {
            last = Some(u);
        }
    }
    covered
}

/// A COWD header whose `numGDEntries` disagrees with its capacity: the reader uses the entries
/// the capacity needs (fewer does not open at all), and `check` reports the header.
fn check_cowd_directory_count(s: &EsxExtent, report: &mut CheckReport) {
    let EsxFormat::Cowd(h) = s.format() else {
        return;
    };
    let (written, needed) = (
        u64::from(h.num_gd_entries.get()),
        s.directory().len() as u64,
    );
    if written != needed {
        report.add(Problem::new(
            s.backing().path(),
            COWD_HEADER,
            Some(crate::format::CowdHeader::AT_NUM_GD_ENTRIES),
            format!(
                "numGDEntries is {written}, and the capacity needs {needed} grain tables: \
                 the header disagrees with itself (the entries past {needed} are never read)"
            ),
        ));
    }
}

/// Walks an ESXi delta extent (COWD or seSparse): its headers and grain directory, each grain
/// table (not over another one, clear of the metadata, inside the file; a seSparse table inside
/// the grain table area), each entry (of a known kind; a seSparse grain inside the grain area)
/// and each grain (inside the file, clear of the metadata), then the overlaps. Leaked space is
/// not counted: the seSparse journal, free bitmap and back map are not walked.
fn check_esx(s: &EsxExtent, report: &mut CheckReport) {
    let backing = s.backing();
    let mut used = Vec::new();
    let mut add = |start: u64, len: u64, what: What| {
        used.push(Used {
            start,
            end: start.saturating_add(len),
            what,
        });
    };
    check_cowd_directory_count(s, report);
    match s.format() {
        EsxFormat::Cowd(_) => add(0, crate::format::CowdHeader::SIZE, What::Named(COWD_HEADER)),
        EsxFormat::SeSparse { header, .. } => {
            add(0, SECTOR_SIZE, What::Named(SESPARSE_HEADER));
            let at = header
                .volatile_header_offset
                .get()
                .saturating_mul(SECTOR_SIZE);
            add(at, SECTOR_SIZE, What::Named("seSparse volatile header"));
        }
    }
    add(
        s.directory_at(),
        s.directory().len() as u64 * s.entry_bytes(),
        What::Directory,
    );
    let table_bytes = s.table_bytes();
    let mut taken = Ranges::default();
    for t in 0..s.directory().len() {
        let at = match s.table_at(t) {
            Ok(Some(at)) => at,
            Ok(None) => continue,
            Err(e) => {
                report.add_error(&e);
                continue;
            }
        };
        if let Some(other) = taken.take(at, at.saturating_add(table_bytes), What::Table(t)) {
            let message = format!("grain table {t} lies over {other}: not walked");
            report.add(Problem::new(
                backing.path(),
                "grain table",
                Some(at),
                message,
            ));
            continue;
        }
        let table = match s.grain_table(t) {
            Ok(Some((_, table))) => table,
            Ok(None) => continue,
            Err(e) => {
                report.add_error(&e);
                continue;
            }
        };
        add(at, table_bytes, What::Table(t));
        let first = t as u64 * s.gtes_per_gt();
        for (i, &raw) in (0u64..).zip(&table) {
            let g = first + i;
            if g >= s.grain_count() {
                break;
            }
            let sector = match s.decode(at, i, raw) {
                Ok(GrainEntry::Data(sector)) => sector,
                Ok(GrainEntry::Zeroed) => {
                    report.zeroed_bytes += s.grain_len(g);
                    continue;
                }
                Ok(GrainEntry::Unallocated) => continue,
                Err(e) => {
                    report.add_error(&e);
                    continue;
                }
            };
            report.allocated_grains += 1;
            report.allocated_bytes += s.grain_len(g);
            let grain = s.grain_offset(g, sector).and_then(|g_at| {
                s.refuse_metadata("grain", g_at, s.grain_bytes())?;
                backing.check_range("grain", g_at, s.grain_len(g))?;
                Ok(g_at)
            });
            match grain {
                Ok(g_at) => add(g_at, s.grain_len(g), What::Grain(g)),
                Err(e) => report.add_error(&e),
            }
        }
    }
    report_overlaps(backing.path(), backing.len(), used, report);
}

/// Checks a qcow2 image: each L2 table the L1 table names (cluster-aligned, inside the file,
/// clear of the header, the L1 table and the refcount table) and each entry (a known kind, a
/// data cluster aligned and inside the file, a compressed cluster starting inside it). Not
/// done here (`qemu-img check` does it): refcounts, leaks and clusters shared by snapshots,
/// which qcow2 allows, so overlaps are not reported either.
fn check_qcow2(q: &Qcow2Extent, report: &mut CheckReport) {
    let backing = Grains::backing(q);
    let per_table = q.grain_bytes() / 8;
    for t in 0..q.l1().len() {
        let (at, table) = match q.l2_table(t) {
            Ok(Some(found)) => found,
            Ok(None) => continue,
            Err(e) => {
                report.add_error(&e);
                continue;
            }
        };
        let first = t as u64 * per_table;
        for (i, &raw) in (0u64..).zip(table.iter()) {
            let c = first + i;
            if c >= q.cluster_count() {
                break;
            }
            let len = q
                .capacity_bytes()
                .saturating_sub(c * q.grain_bytes())
                .min(q.grain_bytes());
            match q.decode(at, i, raw) {
                Ok(GrainEntry::Data(value)) => {
                    report.allocated_grains += 1;
                    report.allocated_bytes += len;
                    let placed = if q.is_compressed_grain(value) {
                        q.compressed_start(value)
                            .and_then(|c_at| backing.check_range("compressed cluster", c_at, 1))
                    } else {
                        let c_at = value * SECTOR_SIZE;
                        q.refuse_metadata("cluster", c_at, q.grain_bytes())
                            .and_then(|()| backing.check_range("cluster", c_at, len))
                    };
                    if let Err(e) = placed {
                        report.add_error(&e);
                    }
                }
                Ok(GrainEntry::Zeroed) => report.zeroed_bytes += len,
                Ok(GrainEntry::Unallocated) => {}
                Err(e) => report.add_error(&e),
            }
        }
    }
}

/// The bytes a compressed grain at `at` takes: its marker and data, padded to a sector (one
/// sector when its marker cannot be read, or without markers).
fn compressed_len(s: &SparseExtent, at: u64) -> u64 {
    if !s.has_markers() {
        return SECTOR_SIZE;
    }
    match s.backing().read_vec("grain marker", at, GrainMarker::SIZE) {
        Ok(m) => {
            (GrainMarker::SIZE + u64::from(m.get(8..12).map_or(0, le_u32))).div_ceil(SECTOR_SIZE)
                * SECTOR_SIZE
        }
        Err(_) => SECTOR_SIZE,
    }
}

/// A little-endian u32 from 4 bytes (0 for a shorter slice).
fn le_u32(c: &[u8]) -> u32 {
    c.try_into().map_or(0, u32::from_le_bytes)
}

/// Whether a metadata marker of `kind` sits in the sector before `at` (VMware's layout has
/// them; qemu-img writes its directory and tables in the header area without).
fn marker_before(s: &SparseExtent, at: u64, kind: u32) -> bool {
    let Some(m_at) = at.checked_sub(SECTOR_SIZE) else {
        return false;
    };
    let mut m = [0u8; 16];
    s.backing()
        .read_exact_at("metadata marker", m_at, &mut m)
        .is_ok()
        && m[8..12] == [0; 4]
        && m[12..16] == kind.to_le_bytes()
}

/// Walks a stream-optimized extent's markers in file order with the streaming reader, which
/// refuses grains out of LBA order, unknown marker types and damaged grains.
fn walk_markers(s: &SparseExtent) -> Result<()> {
    let b = s.backing();
    let reader = BackingReader { backing: b, pos: 0 };
    StreamReader::new(reader, b.path())?.check(1).map(drop)
}

struct BackingReader<'a> {
    backing: &'a crate::io::Backing,
    pos: u64,
}

impl std::io::Read for BackingReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (self.backing.len().saturating_sub(self.pos)).min(buf.len() as u64) as usize;
        if n == 0 {
            return Ok(0);
        }
        let dst = buf.split_at_mut(n.min(buf.len())).0;
        // The stream reader names the file, the structure and the offset itself: an I/O error
        // goes through as the operating system's, not wrapped in a second location.
        self.backing
            .read_exact_at("file", self.pos, dst)
            .map_err(|e| match e.kind() {
                ErrorKind::Io(io) => std::io::Error::new(io.kind(), io.to_string()),
                _ => std::io::Error::from(e),
            })?;
        self.pos += n as u64;
        Ok(n)
    }
}
