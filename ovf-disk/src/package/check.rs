//! Checking a package (`ovf-disk check PKG.ova|PKG.ovf`): the manifest's digests (and the
//! signature, when signed) as `verify` does them, then every disk the envelope references,
//! walked as [`vmdk::check`] walks a lone disk (in place, inside an OVA too), or, for files
//! stored gzip-compressed or in chunks (DSP0243 §5.3), read through in one pass by the
//! streaming reader, which checks every marker and grain on the way. A disk larger than the
//! capacity its envelope declares is a problem too.

use std::path::{Path, PathBuf};

use vmdk::{CheckReport, Problem, StreamReader};

use super::stream::disk_stream;
use super::verify::VerifyReport;
use super::Package;
use crate::error::Result;

/// How a disk was checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub enum CheckMethod {
    /// Every structure walked in place.
    #[cfg_attr(feature = "serde", serde(rename = "in place"))]
    InPlace,
    /// Read through once (gzip-compressed or chunked files): markers and grains checked.
    #[cfg_attr(feature = "serde", serde(rename = "streamed"))]
    Streamed,
    /// A raw image whose `ovf:format` does not say VMDK (as `import --format raw` writes
    /// them, naming it as oVirt does): no structure, its length is its capacity.
    #[cfg_attr(feature = "serde", serde(rename = "raw"))]
    Raw,
}

impl CheckMethod {
    /// The method's name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InPlace => "in place",
            Self::Streamed => "streamed",
            Self::Raw => "raw",
        }
    }
}

/// One disk's check.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct DiskCheck {
    /// The envelope's `ovf:diskId`.
    #[cfg_attr(feature = "serde", serde(rename = "disk"))]
    pub disk_id: String,
    /// The package file holding it.
    #[cfg_attr(feature = "serde", serde(rename = "file"))]
    pub href: String,
    /// How it was checked.
    pub method: CheckMethod,
    /// The capacity the envelope declares, in bytes, when it can be computed.
    #[cfg_attr(feature = "serde", serde(rename = "declared_capacity"))]
    pub declared: Option<u64>,
    /// The disk's own capacity, in bytes, when it could be read. Smaller than `declared`: an
    /// import grows it (not a problem); larger: a problem, an import refuses it.
    pub capacity: Option<u64>,
    /// What was found: problems by file, structure and offset (offsets inside the member for an
    /// OVA, inside the decompressed stream for a gzip-compressed file), and space counts.
    #[cfg_attr(feature = "serde", serde(flatten))]
    pub report: CheckReport,
}

/// What [`check_package`] found.
#[derive(Clone, Debug)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct PackageCheck {
    /// The package, as opened.
    pub package: PathBuf,
    /// Whether nothing is damaged ([`PackageCheck::is_clean`]).
    pub clean: bool,
    /// The digests and the signature.
    pub verify: VerifyReport,
    /// Each disk of the envelope that names a file.
    pub disks: Vec<DiskCheck>,
    /// What the envelope names that the package lacks, with or without a manifest: a
    /// referenced file that is not there (or not followed).
    pub missing: Vec<String>,
    /// Faults of the envelope itself (duplicate ids, capacities that are no size, items naming
    /// nothing, ...: [`ovf::Envelope::faults`]), each with its element and line.
    pub faults: Vec<ovf::faults::Fault>,
    /// The envelope checked against DMTF's envelope schema, when one applies and the `schema`
    /// feature is on. Notes, not problems: products read envelopes the schema refuses
    /// (VirtualBox's RASD order, for one), so violations leave the package clean.
    pub schema: Option<ovf::schema::Validation>,
}

impl PackageCheck {
    /// Whether nothing is damaged: every listed digest matches, the signature (if any) covers
    /// the manifest, and every disk is clean. A package without a manifest, or with files the
    /// manifest does not list, can still be clean (there is nothing to compare).
    pub fn is_clean(&self) -> bool {
        self.verify.nothing_damaged()
            && self.missing.is_empty()
            && self.faults.is_empty()
            && self.disks.iter().all(|d| d.report.is_clean())
    }

    /// Problems found: damaged digests, an invalid signature, and every disk's problems.
    pub fn problem_count(&self) -> usize {
        let digests = self
            .verify
            .files
            .iter()
            .filter(|f| f.outcome != ovf::manifest::Outcome::Ok)
            .count();
        let signature = self.verify.signature.as_ref().is_some_and(|s| !s.valid);
        let disks: u64 = self.disks.iter().map(|d| d.report.problem_count()).sum();
        disks as usize + digests + usize::from(signature) + self.missing.len() + self.faults.len()
    }
}

/// Reads a gzip-compressed or chunked disk file through once; its capacity when it reads.
fn check_streamed(
    pkg: &Package,
    file: &ovf::envelope::FileRef,
    disk: &str,
    threads: usize,
    report: &mut CheckReport,
) -> Option<u64> {
    let stats = disk_stream(pkg, file, disk)
        .map_err(|e| Problem::new(&file.href, "file", None, e.to_string()))
        .and_then(|r| {
            StreamReader::new(r, &file.href)
                .and_then(|s| s.check(threads))
                .map_err(|e| Problem::from_error(&e))
        });
    match stats {
        Ok(stats) => {
            report.allocated_grains = stats.grains;
            report.allocated_bytes = stats.data;
            report.files.push(PathBuf::from(&file.href));
            Some(stats.capacity)
        }
        Err(p) => {
            report.add(p);
            None
        }
    }
}

/// Checks the disk `disk` (stored plainly as `file`) where it lies: walks a VMDK's structures
/// into `check`, or takes a raw image whole where the envelope does not say VMDK. Its
/// capacity, when it opens.
fn check_in_place(
    pkg: &Package,
    disk: &ovf::envelope::VirtualDisk,
    file: &ovf::envelope::FileRef,
    base: &vmdk::OpenOptions,
    check: &mut DiskCheck,
) -> Option<u64> {
    let (path, options) = match pkg.disk_location(&file.href, base) {
        Ok(location) => location,
        Err(e) => {
            let problem = Problem::new(&file.href, "file", None, e.to_string());
            check.report.add(problem);
            return None;
        }
    };
    let says_vmdk = disk
        .format
        .as_deref()
        .is_some_and(|f| f.contains("vmdk.html"));
    match vmdk::check(&path, &options) {
        Ok(r) => {
            check.report = r;
            options.open(&path).ok().map(|d| d.capacity())
        }
        // No VMDK and no other format's magic, where the envelope does not say VMDK: a raw
        // image, whole if it opens.
        Err(e) if matches!(e.kind(), vmdk::ErrorKind::NotVmdk) && !says_vmdk => {
            check.method = CheckMethod::Raw;
            match options.open_raw(&path) {
                Ok(d) => Some(d.capacity()),
                Err(e) => {
                    check.report.add(Problem::from_error(&e));
                    None
                }
            }
        }
        Err(e) => {
            check.report.add(Problem::from_error(&e));
            options.open(&path).ok().map(|d| d.capacity())
        }
    }
}

/// Checks `pkg`: its digests, then each disk with `base` options (outside paths, parent CIDs;
/// files come from the package), streamed disks on `threads` workers. `Err` only when the
/// package cannot be read at all. `progress` is called with each file's name.
pub fn check_package(
    pkg: &Package,
    base: &vmdk::OpenOptions,
    threads: usize,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<PackageCheck> {
    let verify = pkg.verify(progress)?;
    let env = pkg.envelope();
    let missing: Vec<String> = env
        .files
        .iter()
        // A disk's own file is checked with the disk, which reports it missing.
        .filter(|f| !super::holds_disk(env, &f.id))
        .filter(|f| f.chunk_size.is_none() && pkg.size(&f.href).is_none())
        .map(|f| match pkg.not_followed(&f.href) {
            Some(why) => format!("File {} ({:?}) {why}: not followed", f.id, f.href),
            None => format!("File {} ({:?}) is not in the package", f.id, f.href),
        })
        .collect();
    let mut disks = Vec::new();
    for disk in &pkg.envelope().disks {
        let Some(file) = pkg.envelope().file_of(disk) else {
            continue;
        };
        progress(&file.href);
        let mut check = DiskCheck {
            disk_id: disk.disk_id.clone(),
            href: file.href.clone(),
            method: CheckMethod::InPlace,
            declared: disk.capacity_bytes,
            capacity: None,
            report: CheckReport::default(),
        };
        let capacity = if file.is_compressed() || file.chunk_size.is_some() {
            check.method = CheckMethod::Streamed;
            check_streamed(pkg, file, &disk.disk_id, threads, &mut check.report)
        } else {
            check_in_place(pkg, disk, file, base, &mut check)
        };
        check.capacity = capacity;
        let href = Path::new(&file.href);
        match pkg.declared(disk) {
            Err(e) => check
                .report
                .add(Problem::new(href, "envelope", None, e.to_string())),
            Ok(declared) if capacity.unwrap_or(0) > declared => check.report.add(Problem::new(
                href,
                "disk",
                None,
                format!(
                    "the disk announces {} bytes, more than the {declared} its package declares",
                    capacity.unwrap_or(0)
                ),
            )),
            Ok(_) => {}
        }
        disks.push(check);
    }
    let mut c = PackageCheck {
        package: pkg.path().to_path_buf(),
        clean: false,
        verify,
        disks,
        missing,
        faults: env.faults(),
        schema: pkg.schema()?,
    };
    c.clean = c.is_clean();
    Ok(c)
}
