//! Checking a disk: every structure walked and every problem reported by offset, like
//! `qemu-img check`, where the reader stops at the first one.
//!
//! For each link of the chain and each hosted sparse extent: the header, embedded descriptor,
//! grain directories and grain tables, and every grain must lie inside the file and not overlap
//! each other; the primary and redundant grain tables must agree; compressed grains must inflate
//! to a whole grain behind a marker with the right LBA; a stream-optimized extent's markers are
//! walked in file order (grain LBAs increasing, known metadata types, end-of-stream marker).
//! Flat extents must be as long as their descriptor says, and a delta link's `parentCID` must
//! match its parent's `CID`. Space is counted: allocated, zeroed, and leaked (bytes of a sparse
//! file that no structure uses). Spec sections as in the sparse reader and [`crate::Disk`].

use std::path::{Path, PathBuf};

use crate::descriptor::CID_NO_PARENT;
use crate::disk::{ExtentData, OpenOptions};
use crate::error::{Error, ErrorKind, Result};
use crate::format::{GrainMarker, MetadataMarker, SparseExtentHeader, SECTOR_SIZE};
use crate::read::sparse::{GrainEntry, MetadataSource, SparseExtent};
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

/// What a check found. Serialised (with the `serde` feature) with a `clean` field first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CheckReport {
    /// Every problem, in the order found.
    pub problems: Vec<Problem>,
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
}

impl CheckReport {
    /// Whether nothing is wrong.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for CheckReport {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut m = s.serialize_struct("CheckReport", 7)?;
        m.serialize_field("clean", &self.is_clean())?;
        m.serialize_field("problems", &self.problems)?;
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
            report.problems.push(Problem::from_error(&e));
            return Ok(report);
        }
    };
    report.files = disk.files();
    for link in disk.chain() {
        if let Some(parent) = link.parent() {
            let expected = link.descriptor().parent_cid().unwrap_or(CID_NO_PARENT);
            let found = parent.descriptor().cid().unwrap_or(CID_NO_PARENT);
            if expected != found {
                let e = Error::new(
                    Some(link.path()),
                    "descriptor",
                    None,
                    ErrorKind::ParentCidMismatch { expected, found },
                );
                report.problems.push(Problem::from_error(&e));
            }
        }
        for e in link.extents() {
            if let ExtentData::Sparse(s) = &e.data {
                check_sparse(s, &mut report);
            }
        }
    }
    Ok(report)
}

/// A used byte range of a sparse file, for the overlap and leak checks.
struct Used {
    start: u64,
    end: u64,
    what: String,
}

/// The check of one sparse extent: what it found so far, and the byte ranges its structures use.
struct SparseCheck<'a> {
    s: &'a SparseExtent,
    report: &'a mut CheckReport,
    used: Vec<Used>,
}

fn check_sparse(s: &SparseExtent, report: &mut CheckReport) {
    let mut c = SparseCheck {
        s,
        report,
        used: Vec::new(),
    };
    let rgd = c.metadata();
    c.tables(&rgd);
    c.grains();
    c.overlaps();
    if s.has_markers() {
        // The streaming walk checks the order of what is there.
        if let Err(e) = walk_markers(s) {
            c.report.problems.push(Problem::from_error(&e));
        }
    }
}

impl SparseCheck<'_> {
    fn use_range(&mut self, start: u64, len: u64, what: impl Into<String>) {
        self.used.push(Used {
            start,
            end: start.saturating_add(len),
            what: what.into(),
        });
    }

    fn problem(&mut self, structure: &str, offset: Option<u64>, message: String) {
        let path = self.s.backing().path();
        self.report
            .problems
            .push(Problem::new(path, structure, offset, message));
    }

    /// Records the header, descriptor and directories (and their markers); returns the
    /// redundant grain directory, when the extent uses one.
    fn metadata(&mut self) -> Vec<u32> {
        let (s, h) = (self.s, self.s.header());
        let file_len = s.backing().len();
        self.use_range(0, SECTOR_SIZE, "sparse header");
        let over_head = h.over_head.get().saturating_mul(SECTOR_SIZE);
        if !s.has_markers() && over_head > 0 && over_head <= file_len {
            // Everything before overHead is metadata and its padding.
            self.use_range(0, over_head, "metadata area (overHead)");
        }
        let d_at = h.descriptor_offset.get().saturating_mul(SECTOR_SIZE);
        if d_at > 0 {
            let len = h.descriptor_size.get().saturating_mul(SECTOR_SIZE);
            self.use_range(d_at, len, "embedded descriptor");
        }
        let gd_at = h.gd_offset.get().saturating_mul(SECTOR_SIZE);
        let gd_len = s.grain_directory().len() as u64 * 4;
        self.use_range(gd_at, gd_len, "grain directory");
        if s.has_markers() && marker_before(s, gd_at, MetadataMarker::GD) {
            self.use_range(gd_at - SECTOR_SIZE, SECTOR_SIZE, "grain directory marker");
        }
        if s.has_markers() && s.metadata_source() == MetadataSource::Footer {
            let start = file_len.saturating_sub(3 * SECTOR_SIZE);
            self.use_range(
                start,
                file_len - start,
                "footer marker, footer and end-of-stream marker",
            );
        }
        let redundant = s.flags() & SparseExtentHeader::FLAG_USE_REDUNDANT != 0 && !s.has_markers();
        if !redundant {
            return Vec::new();
        }
        let at = h.rgd_offset.get().saturating_mul(SECTOR_SIZE);
        self.use_range(at, gd_len, "redundant grain directory");
        match s
            .backing()
            .read_vec("redundant grain directory", at, gd_len)
        {
            Ok(b) => b.chunks_exact(4).map(le_u32).collect(),
            Err(e) => {
                self.report.problems.push(Problem::from_error(&e));
                Vec::new()
            }
        }
    }

    /// Records every grain table (and its marker, and its redundant copy, which must agree).
    fn tables(&mut self, rgd: &[u32]) {
        let s = self.s;
        let gt_bytes = u64::from(s.header().num_gtes_per_gt.get()) * 4;
        for (t, &gde) in s.grain_directory().iter().enumerate() {
            if gde == 0 {
                continue;
            }
            let at = u64::from(gde) * SECTOR_SIZE;
            self.use_range(at, gt_bytes, format!("grain table {t}"));
            if s.has_markers() && marker_before(s, at, MetadataMarker::GT) {
                self.use_range(
                    at - SECTOR_SIZE,
                    SECTOR_SIZE,
                    format!("grain table {t} marker"),
                );
            }
            let table = match s.grain_table(t) {
                Ok(Some(table)) => table,
                Ok(None) => continue,
                Err(e) => {
                    self.report.problems.push(Problem::from_error(&e));
                    continue;
                }
            };
            let Some(&r) = rgd.get(t) else { continue };
            let r_at = u64::from(r) * SECTOR_SIZE;
            self.use_range(r_at, gt_bytes, format!("redundant grain table {t}"));
            match s
                .backing()
                .read_vec("redundant grain table", r_at, gt_bytes)
            {
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
                Err(e) => self.report.problems.push(Problem::from_error(&e)),
            }
        }
    }

    /// Reads every grain: inside the file, and for compressed grains, inflating to a whole
    /// grain. Table by table, so one table that cannot be read does not hide the grains of the
    /// others.
    fn grains(&mut self) {
        let s = self.s;
        let grain_bytes = s.grain_bytes();
        let gtes = u64::from(s.header().num_gtes_per_gt.get());
        let mut scratch = vec![0u8; usize::try_from(grain_bytes).unwrap_or(0)];
        let (report, used) = (&mut *self.report, &mut self.used);
        let mut visit = |g: u64, entry: GrainEntry| -> Result<()> {
            match entry {
                GrainEntry::Data(sector) => {
                    report.allocated_grains += 1;
                    report.allocated_bytes += s.grain_len(g);
                    let at = sector.saturating_mul(SECTOR_SIZE);
                    let len = if s.is_compressed() {
                        match s.backing().read_vec("grain marker", at, GrainMarker::SIZE) {
                            Ok(m) => {
                                (GrainMarker::SIZE + u64::from(m.get(8..12).map_or(0, le_u32)))
                                    .div_ceil(SECTOR_SIZE)
                                    * SECTOR_SIZE
                            }
                            Err(_) => SECTOR_SIZE,
                        }
                    } else {
                        grain_bytes
                    };
                    used.push(Used {
                        start: at,
                        end: at.saturating_add(len),
                        what: format!("grain {g}"),
                    });
                    let n = usize::try_from(s.grain_len(g)).unwrap_or(0);
                    let out = scratch.get_mut(..n).unwrap_or(&mut []);
                    if let Err(e) = s.read_grain(g, sector, out) {
                        report.problems.push(Problem::from_error(&e));
                    }
                }
                GrainEntry::Zeroed => report.zeroed_bytes += s.grain_len(g),
                GrainEntry::Unallocated => {}
            }
            Ok(())
        };
        let mut walk_errors = Vec::new();
        let grains = s.grain_count();
        let mut first = 0u64;
        while first < grains {
            let n = gtes.max(1).min(grains - first);
            if let Err(e) = s.for_each_grain(first, n, &mut visit) {
                walk_errors.push(Problem::from_error(&e));
            }
            first += n;
        }
        for p in walk_errors {
            // A table already reported above is not reported twice.
            if !self.report.problems.contains(&p) {
                self.report.problems.push(p);
            }
        }
    }

    /// Every structure inside the file, and no two overlapping; counts what no structure uses
    /// as leaked (not for stream-optimized files, whose blocks are padded to sectors).
    fn overlaps(&mut self) {
        let file_len = self.s.backing().len();
        let mut used = std::mem::take(&mut self.used);
        used.sort_by_key(|u| (u.start, u.end));
        let mut covered = 0u64;
        let mut reach = 0u64;
        let mut last: Option<&Used> = None;
        for u in &used {
            if u.end > file_len {
                self.problem(
                    "file",
                    Some(u.start),
                    format!(
                        "{} ends at {:#x}, past the end of the file ({file_len:#x})",
                        u.what, u.end
                    ),
                );
            }
            if let Some(l) = last {
                let nested_in_metadata =
                    l.what.starts_with("metadata area") || u.what.starts_with("metadata area");
                if u.start < l.end
                    && !nested_in_metadata
                    && !(l.what == "sparse header" && u.what.starts_with("metadata"))
                {
                    self.problem(
                        "file",
                        Some(u.start),
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
        if !self.s.has_markers() {
            self.report.leaked_bytes += file_len.saturating_sub(covered.min(file_len));
        }
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
        let dst = buf.get_mut(..n).unwrap_or(&mut []);
        self.backing
            .read_exact_at("file", self.pos, dst)
            .map_err(std::io::Error::from)?;
        self.pos += n as u64;
        Ok(n)
    }
}
