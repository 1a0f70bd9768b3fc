//! Checking a package (`ovf-disk check PKG.ova|PKG.ovf`): the manifest's digests (and the
//! signature, when signed) as `verify` does them, then every disk the envelope references,
//! walked as `vmdk::check` walks a lone disk (in place, inside an OVA too), or, for files stored
//! gzip-compressed or in chunks (DSP0243 §5.3), read through in one pass by the streaming reader,
//! which checks every marker and grain on the way. A disk larger than the capacity its
//! envelope declares is a problem too.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use vmdk::check::{CheckReport, Problem};
use vmdk::stream::read::{read_stream_optimized, StreamSink};

use super::manifest::Outcome;
use super::ops::{declared, disk_stream, ImportError, Package, VerifyReport};
use super::PackageError;
use crate::inflate::within_declared;

/// How a disk was checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Every structure walked in place.
    InPlace,
    /// Read through once (gzip-compressed or chunked files): markers and grains checked.
    Streamed,
}

impl Method {
    /// The method's name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InPlace => "in place",
            Self::Streamed => "streamed",
        }
    }
}

/// One disk's check.
#[derive(Clone, Debug)]
pub struct DiskCheck {
    /// The envelope's `ovf:diskId`.
    pub disk_id: String,
    /// The package file holding it.
    pub href: String,
    /// How it was checked.
    pub method: Method,
    /// The capacity the envelope declares, in bytes, when it can be computed.
    pub declared: Option<u64>,
    /// What was found: problems by file, structure and offset (offsets inside the member for an
    /// OVA, inside the decompressed stream for a gzip-compressed file), and space counts.
    pub report: CheckReport,
}

/// What [`check_package`] found.
#[derive(Clone, Debug)]
pub struct PackageCheck {
    /// The digests and the signature.
    pub verify: VerifyReport,
    /// Each disk of the envelope that names a file.
    pub disks: Vec<DiskCheck>,
}

impl PackageCheck {
    /// Whether nothing is damaged: every listed digest matches, the signature (if any) covers
    /// the manifest, and every disk is clean. A package without a manifest, or with files the
    /// manifest does not list, can still be clean (there is nothing to compare).
    pub fn is_clean(&self) -> bool {
        self.verify.files.iter().all(|(_, _, o)| *o == Outcome::Ok)
            && !matches!(self.verify.signature, Some(Err(_)))
            && self.disks.iter().all(|d| d.report.is_clean())
    }
}

/// Counts what a streaming read writes.
#[derive(Default)]
struct Count {
    data: AtomicU64,
}

impl StreamSink for Count {
    fn begin(&self, _: u64) -> vmdk::Result<()> {
        Ok(())
    }
    fn write(&self, _: u64, data: &[u8]) -> vmdk::Result<()> {
        self.data.fetch_add(data.len() as u64, Ordering::Relaxed);
        Ok(())
    }
    fn zero(&self, _: u64, _: u64) -> vmdk::Result<()> {
        Ok(())
    }
}

fn problem(path: &str, structure: &str, message: String) -> Problem {
    Problem {
        path: PathBuf::from(path),
        structure: structure.to_string(),
        offset: None,
        message,
    }
}

/// Checks `pkg`: its digests, then each disk with `base` options (outside paths, parent CIDs;
/// files come from the package). `Err` only when the package cannot be read at all.
pub fn check_package(
    pkg: &Package,
    base: &vmdk::OpenOptions,
    threads: usize,
    progress: &dyn Fn(&str),
) -> Result<PackageCheck, PackageError> {
    let verify = pkg.verify(progress)?;
    let mut disks = Vec::new();
    for disk in &pkg.envelope.disks {
        let Some(file) = pkg.envelope.file_of(disk) else {
            continue;
        };
        progress(&file.href);
        let mut check = DiskCheck {
            disk_id: disk.disk_id.clone(),
            href: file.href.clone(),
            method: Method::InPlace,
            declared: disk.capacity_bytes,
            report: CheckReport::default(),
        };
        let capacity = if file.is_compressed() || file.chunk_size.is_some() {
            check.method = Method::Streamed;
            let count = Count::default();
            let read = disk_stream(pkg, file, &disk.disk_id)
                .map_err(|e| match e {
                    ImportError::Package(p) => problem(&file.href, "file", p.to_string()),
                    other => problem(&file.href, "file", other.to_string()),
                })
                .and_then(|mut r| {
                    read_stream_optimized(&mut r, &file.href, &count, threads)
                        .map_err(|e| Problem::from_error(&e))
                });
            match read {
                Ok(stats) => {
                    check.report.allocated_grains = stats.grains;
                    check.report.allocated_bytes = count.data.load(Ordering::Relaxed);
                    check.report.files.push(PathBuf::from(&file.href));
                    Some(stats.capacity)
                }
                Err(p) => {
                    check.report.problems.push(p);
                    None
                }
            }
        } else {
            let (path, options) = pkg.disk_location(&file.href, base);
            match vmdk::check::check(&path, &options) {
                Ok(r) => check.report = r,
                Err(e) => check.report.problems.push(Problem::from_error(&e)),
            }
            vmdk::Disk::open_with(&path, &options)
                .ok()
                .map(|d| d.capacity())
        };
        let bound = declared(disk, &pkg.path)
            .map_err(|e| problem(&file.href, "envelope", e.to_string()))
            .and_then(|d| {
                within_declared(&file.href, "disk", None, capacity.unwrap_or(0), Some(d))
                    .map_err(|e| Problem::from_error(&e))
            });
        if let Err(p) = bound {
            check.report.problems.push(p);
        }
        disks.push(check);
    }
    Ok(PackageCheck { verify, disks })
}
