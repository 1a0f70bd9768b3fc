//! Verifying a package against its manifest (DSP0243 §5.1) and certificate (§5.2): every file
//! the manifest lists digested with its algorithm, the references it does not cover listed, and
//! the certificate's RSA signature checked over the manifest's bytes (the certificate itself is
//! shown, not checked against a trust store).

use std::path::PathBuf;

use super::Package;
use crate::error::{Error, Result};
use ovf::cert::CertificateFile;
use ovf::manifest::{digest, Algorithm, Entry, Outcome};

/// How one file the manifest lists fared.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct FileDigest {
    /// The file's name in the package.
    #[cfg_attr(feature = "serde", serde(rename = "file"))]
    pub name: String,
    /// The manifest's algorithm for it.
    pub algorithm: Algorithm,
    /// Whether its digest matches.
    #[cfg_attr(feature = "serde", serde(rename = "result"))]
    pub outcome: Outcome,
}

impl FileDigest {
    pub(crate) fn new(name: &str, algorithm: Algorithm, outcome: Outcome) -> Self {
        Self {
            name: name.to_string(),
            algorithm,
            outcome,
        }
    }
}

/// The check of a signed package's certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct SignatureCheck {
    /// Whether the certificate's signature covers the manifest.
    pub valid: bool,
    /// The signer's subject, when the signature is valid.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub signer: Option<String>,
    /// Why the signature is not valid.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub reason: Option<String>,
}

impl SignatureCheck {
    fn of(result: std::result::Result<String, String>) -> Self {
        match result {
            Ok(signer) => Self {
                valid: true,
                signer: Some(signer),
                reason: None,
            },
            Err(reason) => Self {
                valid: false,
                signer: None,
                reason: Some(reason),
            },
        }
    }
}

/// A disk whose capacity differs from the one its envelope declares (`ovf:capacity`): an
/// import grows a smaller disk to the declared capacity and refuses a larger one.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct CapacityDifference {
    /// The envelope's `ovf:diskId`.
    #[cfg_attr(feature = "serde", serde(rename = "disk"))]
    pub disk_id: String,
    /// The package file holding it.
    pub file: String,
    /// The capacity the envelope declares, in bytes.
    pub declared: u64,
    /// The disk's own capacity, in bytes.
    pub capacity: u64,
}

impl CapacityDifference {
    /// The difference between `capacity` and `declared` for `disk_id` in `file`, if any.
    pub(crate) fn of(disk_id: &str, file: &str, declared: u64, capacity: u64) -> Option<Self> {
        (capacity != declared).then(|| Self {
            disk_id: disk_id.to_string(),
            file: file.to_string(),
            declared,
            capacity,
        })
    }
}

/// What [`Package::verify`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct VerifyReport {
    /// The package, as opened.
    pub package: PathBuf,
    /// Whether everything checks ([`VerifyReport::is_ok`]).
    pub ok: bool,
    /// The manifest's name, if any.
    pub manifest: Option<String>,
    /// Each listed file with its outcome.
    pub files: Vec<FileDigest>,
    /// Files the envelope references (and the descriptor) that the manifest does not list.
    pub unlisted: Vec<String>,
    /// Whether the package has a certificate.
    pub signed: bool,
    /// The certificate's name, when the package is signed.
    #[cfg_attr(feature = "serde", serde(skip))]
    pub certificate: Option<String>,
    /// The signature check, when the package is signed.
    pub signature: Option<SignatureCheck>,
    /// Disks whose capacity differs from the declared one (disks stored gzip-compressed or in
    /// chunks are not opened by `verify`, and not listed). Not damage: see
    /// [`CapacityDifference`].
    pub capacities: Vec<CapacityDifference>,
    /// Files shorter than their `ovf:size` (not chunked or compressed): cut short, damaged even when the
    /// manifest's digest matches what is there.
    pub short: Vec<ShortFile>,
}

/// A file of the package shorter than the `ovf:size` its `File` declares.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct ShortFile {
    /// Its href.
    pub file: String,
    /// The `ovf:size`.
    pub declared: u64,
    /// The bytes there.
    pub present: u64,
}

impl ShortFile {
    /// The file `file` if `present` is less than `declared`.
    pub(crate) fn of(file: &str, declared: Option<u64>, present: u64) -> Option<Self> {
        declared.filter(|&d| present < d).map(|declared| Self {
            file: file.to_string(),
            declared,
            present,
        })
    }
}

impl VerifyReport {
    /// Whether there is a manifest, every listed file matches, it covers every reference, and
    /// the signature, if the package is signed, covers the manifest.
    pub fn is_ok(&self) -> bool {
        self.manifest.is_some() && self.unlisted.is_empty() && self.nothing_damaged()
    }

    /// Whether every listed digest matches, the signature (if any) is valid and no file is
    /// shorter than its `ovf:size`: nothing is damaged, though a package without a manifest or with unlisted files is not verified.
    pub fn nothing_damaged(&self) -> bool {
        self.files.iter().all(|f| f.outcome == Outcome::Ok)
            && self.signature.as_ref().is_none_or(|s| s.valid)
            && self.short.is_empty()
    }

    /// Records `ok` and `signed` from the rest.
    pub(crate) fn settle(mut self) -> Self {
        self.ok = self.is_ok();
        self.signed = self.certificate.is_some();
        self
    }
}

impl Package {
    /// The disks stored plainly whose capacity differs from the declared one (each opened,
    /// which reads its header; a disk that does not open is `check`'s to report).
    fn capacity_differences(&self) -> Vec<CapacityDifference> {
        let mut found = Vec::new();
        for disk in &self.envelope.disks {
            let (Some(file), Some(declared)) = (self.envelope.file_of(disk), disk.capacity_bytes)
            else {
                continue;
            };
            if file.is_compressed() || file.chunk_size.is_some() {
                continue;
            }
            if let Ok(d) = self.open_disk(&file.href) {
                found.extend(CapacityDifference::of(
                    &disk.disk_id,
                    &file.href,
                    declared,
                    d.capacity(),
                ));
            }
        }
        found
    }

    /// Checks every file the manifest lists, the signature when the package is signed, and
    /// which references the manifest does not cover. Files are digested side by side (as many
    /// as cores, at most 4); `progress` is called with each file's name before it is digested.
    ///
    /// The package remembers the report: a second call (and [`crate::import`], which verifies
    /// first) returns it without reading the files again. Open the package again to verify
    /// files that changed since.
    pub fn verify(&self, progress: &(dyn Fn(&str) + Sync)) -> Result<VerifyReport> {
        let mut cached = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(report) = cached.as_ref() {
            return Ok(report.clone());
        }
        let report = self.verify_files(&[], progress)?;
        *cached = Some(report.clone());
        Ok(report)
    }

    /// Whether [`Package::verify`] ran (its report is kept).
    #[cfg(feature = "write")]
    pub(crate) fn verified_before(&self) -> bool {
        self.verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
    }

    /// [`Package::verify`] but for the files `skip`, which the caller digests itself (an
    /// import reading them once); the report is not kept.
    #[cfg(feature = "write")]
    pub(crate) fn verify_except(
        &self,
        skip: &[&str],
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<VerifyReport> {
        self.verify_files(skip, progress)
    }

    /// [`Package::verify`]'s work, done once per package, for every listed file but `skip`.
    fn verify_files(
        &self,
        skip: &[&str],
        progress: &(dyn Fn(&str) + Sync),
    ) -> Result<VerifyReport> {
        let mut report = VerifyReport {
            package: self.path.clone(),
            certificate: self.certificate.clone(),
            ..VerifyReport::default()
        };
        report.capacities = self.capacity_differences();
        report.short = self
            .envelope
            .files
            .iter()
            // Chunked and compressed files: ovf:size is the whole, or the data's, by writer.
            .filter(|f| f.chunk_size.is_none() && !f.is_compressed())
            .filter_map(|f| ShortFile::of(&f.href, f.size, self.size(&f.href)?))
            .collect();
        let Some((name, manifest)) = &self.manifest else {
            return Ok(report.settle());
        };
        report.manifest = Some(name.clone());
        if let Some(cert) = &self.certificate {
            let text = String::from_utf8(self.read_small(cert)?).unwrap_or_default();
            let result = match CertificateFile::parse(&text, &self.member_path(cert)) {
                Err(e) => Err(e.to_string()),
                Ok(c) if c.signed_file != *name => Err(format!(
                    "the certificate signs {}, not the manifest {name}",
                    c.signed_file
                )),
                Ok(c) => {
                    super::signature::verify(&c, &self.read_small(name)?).map(|()| c.subject())
                }
            };
            report.signature = Some(SignatureCheck::of(result));
        }
        let entries: Vec<&Entry> = manifest
            .entries
            .iter()
            .filter(|e| !skip.contains(&e.name.as_str()))
            .collect();
        let workers = crate::output::parallel::disks_at_once(0, entries.len());
        report.files = crate::output::parallel::each(&entries, workers, |e| {
            progress(&e.name);
            let outcome = match self.reader(&e.name) {
                Err(_) => Outcome::Missing,
                Ok(mut r) => {
                    let found = digest(e.algorithm, &mut r).map_err(Error::io(&self.path))?;
                    Outcome::of(&e.digest, found)
                }
            };
            Ok(FileDigest::new(&e.name, e.algorithm, outcome))
        })?;
        for f in &self.envelope.files {
            // A chunked file is listed when the file is, or every one of its chunks (as
            // ovftool lists them).
            let listed = manifest.get(&f.href).is_some()
                || (f.chunk_size.is_some() && {
                    let chunks = super::stream::chunk_names(self, &f.href);
                    !chunks.is_empty() && chunks.iter().all(|c| manifest.get(c).is_some())
                });
            if !listed {
                report.unlisted.push(f.href.clone());
            }
        }
        if manifest.get(&self.descriptor).is_none() {
            report.unlisted.push(self.descriptor.clone());
        }
        Ok(report.settle())
    }
}
