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
//! file that no structure uses). Spec sections as in [`crate::sparse`] and [`crate::disk`].

use std::path::{Path, PathBuf};

use crate::descriptor::CID_NO_PARENT;
use crate::disk::{Disk, ExtentData, OpenOptions};
use crate::error::{Error, ErrorKind, Result};
use crate::format::*;
use crate::sparse::{GrainEntry, SparseExtent};

/// One problem found, where it was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The file.
    pub path: PathBuf,
    /// The structure, in the format's words.
    pub structure: String,
    /// Byte offset in the file, when known.
    pub offset: Option<u64>,
    /// What is wrong.
    pub message: String,
}

impl Problem {
    /// The problem an error stands for, where it happened.
    pub fn from_error(e: &Error) -> Self {
        Self {
            path: e.path.clone().unwrap_or_default(),
            structure: e.structure.to_string(),
            offset: e.offset,
            message: e.kind.to_string(),
        }
    }
}

/// What a check found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
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

/// Why a check could not run at all (as opposed to finding problems).
pub fn could_not_run(e: &Error) -> bool {
    match &e.kind {
        ErrorKind::NotVmdk(_)
        | ErrorKind::Unsupported(_)
        | ErrorKind::Usage(_)
        | ErrorKind::PathOutside { .. } => true,
        ErrorKind::Io(io) => {
            e.structure == "file" && io.kind() != std::io::ErrorKind::UnexpectedEof
        }
        _ => false,
    }
}

/// Checks the disk at `path`. `Err` only when the check could not run (no such file, not a
/// VMDK, a type not read yet); damage that stops the disk from opening is a problem in the
/// report.
pub fn check(path: &Path, options: &OpenOptions) -> Result<CheckReport> {
    let mut report = CheckReport::default();
    let relaxed = OpenOptions {
        ignore_parent_cid: true,
        ..options.clone()
    };
    let disk = match Disk::open_with(path, &relaxed) {
        Ok(d) => d,
        Err(e) if could_not_run(&e) && e.path.as_deref() == Some(path) => return Err(e),
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

fn check_sparse(s: &SparseExtent, report: &mut CheckReport) {
    let path = s.backing().path().to_path_buf();
    let file_len = s.backing().len();
    let problem =
        |report: &mut CheckReport, structure: &str, offset: Option<u64>, message: String| {
            report.problems.push(Problem {
                path: path.clone(),
                structure: structure.to_string(),
                offset,
                message,
            });
        };
    let h = s.header();
    let gtes = u64::from(h.num_gtes_per_gt.get());
    let gt_bytes = gtes * 4;
    let mut used: Vec<Used> = vec![Used {
        start: 0,
        end: SECTOR_SIZE,
        what: "sparse header".into(),
    }];
    let over_head = h.over_head.get().saturating_mul(SECTOR_SIZE);
    if !s.has_markers() && over_head > 0 && over_head <= file_len {
        // Everything before overHead is metadata and its padding.
        used.push(Used {
            start: 0,
            end: over_head,
            what: "metadata area (overHead)".into(),
        });
    }
    let d_at = h.descriptor_offset.get().saturating_mul(SECTOR_SIZE);
    if d_at > 0 {
        used.push(Used {
            start: d_at,
            end: d_at.saturating_add(h.descriptor_size.get().saturating_mul(SECTOR_SIZE)),
            what: "embedded descriptor".into(),
        });
    }
    let gd_at = h.gd_offset.get().saturating_mul(SECTOR_SIZE);
    let gd_len = s.grain_directory().len() as u64 * 4;
    used.push(Used {
        start: gd_at,
        end: gd_at.saturating_add(gd_len),
        what: "grain directory".into(),
    });
    if s.has_markers() && marker_before(s, gd_at, MARKER_GD) {
        used.push(Used {
            start: gd_at - SECTOR_SIZE,
            end: gd_at,
            what: "grain directory marker".into(),
        });
    }
    let grain_bytes = s.grain_bytes();
    let redundant = s.flags() & FLAG_USE_REDUNDANT != 0 && !s.has_markers();
    let rgd: Vec<u32> = if redundant {
        let at = h.rgd_offset.get().saturating_mul(SECTOR_SIZE);
        used.push(Used {
            start: at,
            end: at.saturating_add(gd_len),
            what: "redundant grain directory".into(),
        });
        match s
            .backing()
            .read_vec("redundant grain directory", at, gd_len)
        {
            Ok(b) => b.chunks_exact(4).map(le_u32).collect(),
            Err(e) => {
                report.problems.push(Problem::from_error(&e));
                Vec::new()
            }
        }
    } else {
        Vec::new()
    };
    let mut scratch = vec![0u8; usize::try_from(grain_bytes).unwrap_or(0)];
    for (t, &gde) in s.grain_directory().iter().enumerate() {
        if gde == 0 {
            continue;
        }
        let at = u64::from(gde) * SECTOR_SIZE;
        used.push(Used {
            start: at,
            end: at.saturating_add(gt_bytes),
            what: format!("grain table {t}"),
        });
        if s.has_markers() && marker_before(s, at, MARKER_GT) {
            used.push(Used {
                start: at - SECTOR_SIZE,
                end: at,
                what: format!("grain table {t} marker"),
            });
        }
        let table = match s.grain_table(t) {
            Ok(Some(table)) => table,
            Ok(None) => continue,
            Err(e) => {
                report.problems.push(Problem::from_error(&e));
                continue;
            }
        };
        if let Some(&r) = rgd.get(t) {
            let r_at = u64::from(r) * SECTOR_SIZE;
            used.push(Used {
                start: r_at,
                end: r_at.saturating_add(gt_bytes),
                what: format!("redundant grain table {t}"),
            });
            match s
                .backing()
                .read_vec("redundant grain table", r_at, gt_bytes)
            {
                Ok(b) => {
                    let other: Vec<u32> = b.chunks_exact(4).map(le_u32).collect();
                    if let Some(i) = table.iter().zip(&other).position(|(a, b)| a != b) {
                        problem(
                            report,
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
                Err(e) => report.problems.push(Problem::from_error(&e)),
            }
        }
    }
    // Every grain: inside the file, and for compressed grains, inflating to a whole grain.
    let grains = s.grain_count();
    let mut visit = |g: u64, entry: GrainEntry| -> Result<()> {
        match entry {
            GrainEntry::Data(sector) => {
                report.allocated_grains += 1;
                report.allocated_bytes += s.grain_len(g);
                let at = sector.saturating_mul(SECTOR_SIZE);
                let len = if s.is_compressed() {
                    match s.backing().read_vec("grain marker", at, GRAIN_MARKER_SIZE) {
                        Ok(m) => {
                            (GRAIN_MARKER_SIZE + u64::from(m.get(8..12).map_or(0, le_u32)))
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
                if let Err(e) = s.read_grain(g, sector, scratch.get_mut(..n).unwrap_or(&mut [])) {
                    report.problems.push(Problem::from_error(&e));
                }
            }
            GrainEntry::Zeroed => report.zeroed_bytes += s.grain_len(g),
            GrainEntry::Unallocated => {}
        }
        Ok(())
    };
    // Table by table, so one table that cannot be read does not hide the grains of the others.
    let mut walk_errors = Vec::new();
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
        if !report.problems.contains(&p) {
            report.problems.push(p);
        }
    }
    if s.has_markers() && s.metadata_source() == crate::sparse::MetadataSource::Footer {
        let end = file_len;
        used.push(Used {
            start: end.saturating_sub(3 * SECTOR_SIZE),
            end,
            what: "footer marker, footer and end-of-stream marker".into(),
        });
    }
    // Inside the file, and no two structures overlapping.
    used.sort_by_key(|u| (u.start, u.end));
    let mut covered = 0u64;
    let mut reach = 0u64;
    let mut last: Option<&Used> = None;
    for u in &used {
        if u.end > file_len {
            problem(
                report,
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
                problem(
                    report,
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
    // Stream-optimized files pad each block to a sector; count what is left as leaked.
    let leaked = file_len.saturating_sub(covered.min(file_len));
    if !s.has_markers() {
        report.leaked_bytes += leaked;
    } else {
        // Marker padding is not leaked; only whole unused sectors beyond it could be, and the
        // streaming walk below checks the order of what is there.
        report.leaked_bytes += 0;
        if let Err(e) = walk_markers(s) {
            report.problems.push(Problem::from_error(&e));
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
    struct Discard;
    impl crate::stream::read::StreamSink for Discard {
        fn begin(&self, _: u64) -> Result<()> {
            Ok(())
        }
        fn write(&self, _: u64, _: &[u8]) -> Result<()> {
            Ok(())
        }
        fn zero(&self, _: u64, _: u64) -> Result<()> {
            Ok(())
        }
    }
    let b = s.backing();
    let mut reader = BackingReader { backing: b, pos: 0 };
    crate::stream::read::read_stream_optimized(
        &mut reader,
        &b.path().to_string_lossy(),
        &Discard,
        1,
    )
    .map(|_| ())
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
