//! What a package is, as data: its systems and their hardware, its disks with the capacity
//! each declares, its files with their declared and present sizes, its manifest and signature.
//! With the `serde` feature it serialises to the JSON `ovf-disk info --json` prints (the shape
//! is documented in the README).

use std::path::PathBuf;

use super::Package;
use ovf::envelope::System;

/// A disk of the package's `DiskSection`, with the file holding it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct PackageDisk {
    /// `ovf:diskId`.
    pub disk_id: String,
    /// The `ovf:href` of its file (none for a blank disk, or when `file_ref` names no file).
    pub file: Option<String>,
    /// `ovf:fileRef` as written: none for a blank disk (DSP0243 section 9.1).
    pub file_ref: Option<String>,
    /// The capacity in bytes, when `ovf:capacity` and its units give one.
    pub capacity: Option<u64>,
    /// `ovf:capacity` and its units as written (`16 byte * 2^30`).
    pub capacity_as_written: String,
    /// `ovf:populatedSize` in bytes.
    pub populated_size: Option<u64>,
    /// `ovf:format`.
    pub format: Option<String>,
    /// `ovf:parentRef`.
    pub parent_ref: Option<String>,
}

/// A file of the package's `References`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct PackageFile {
    /// `ovf:id`.
    pub id: String,
    /// `ovf:href`.
    pub href: String,
    /// `ovf:size` as declared.
    pub size: Option<u64>,
    /// The size of the file present in the package (none when it is missing or not followed).
    pub present_size: Option<u64>,
    /// Why the href is not read, when it is not: it leads outside the package, is absolute, or
    /// is a URL (see [`super::Package::allow_outside_paths`]).
    pub not_followed: Option<String>,
    /// `ovf:compression`.
    pub compression: Option<String>,
    /// `ovf:chunkSize`.
    pub chunk_size: Option<u64>,
}

/// The package's manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct ManifestSummary {
    /// Its file name.
    pub file: String,
    /// Lines it holds.
    pub entries: usize,
}

/// A package described: what [`Package::info`] gives.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Info {
    /// The package, as opened.
    pub package: PathBuf,
    /// The descriptor's file name.
    pub descriptor: String,
    /// `1.x`, `2.x` or `0.9`.
    pub ovf_version: String,
    /// Its virtual systems, also those inside collections.
    pub systems: Vec<System>,
    /// Its disks.
    pub disks: Vec<PackageDisk>,
    /// Its files.
    pub files: Vec<PackageFile>,
    /// Its manifest, if any.
    pub manifest: Option<ManifestSummary>,
    /// Whether it has a certificate.
    pub signed: bool,
    /// The certificate's file name.
    pub certificate: Option<String>,
    /// Sections of the envelope this summary does not read.
    pub other_sections: Vec<String>,
    /// Its OVF properties (`ProductSection`), with the system each belongs to.
    pub properties: Vec<ovf::properties::Property>,
    /// Its deployment options (`DeploymentOptionSection`).
    pub deployment_options: Vec<ovf::envelope::DeploymentOption>,
    /// The hardware each deployment option gives each system (CPUs, memory, NICs), so the
    /// options can be told apart; empty without a `DeploymentOptionSection`. The systems'
    /// summaries above are the default option's, as an import deploys it.
    pub configurations: Vec<ConfigurationHardware>,
}

/// The hardware one deployment option gives one system.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct ConfigurationHardware {
    /// The deployment option's `ovf:id`.
    pub option: String,
    /// The system's `ovf:id`.
    pub system: String,
    /// Virtual CPUs.
    pub cpus: Option<u64>,
    /// Memory in bytes.
    pub memory_bytes: Option<u64>,
    /// Network cards.
    pub nics: usize,
}

/// The hardware every deployment option of `env` gives each of its systems.
fn configurations(env: &ovf::Envelope) -> Vec<ConfigurationHardware> {
    let mut out = Vec::new();
    for option in &env.deployment_options {
        for system in &env.systems {
            let h = system.hardware.select(Some(&option.id));
            out.push(ConfigurationHardware {
                option: option.id.clone(),
                system: system.id.clone(),
                cpus: h.cpus(),
                memory_bytes: h.memory_bytes(),
                nics: h.of(ovf::hardware::DeviceKind::Nic).count(),
            });
        }
    }
    out
}

impl Package {
    /// What the package is: systems, disks, files, manifest and signature, from the envelope and
    /// the files present (nothing is digested: see [`Package::verify`]).
    pub fn info(&self) -> Info {
        let e = self.envelope();
        Info {
            package: self.path().to_path_buf(),
            descriptor: self.descriptor().to_string(),
            ovf_version: e.version.clone(),
            systems: e.systems.clone(),
            disks: e
                .disks
                .iter()
                .map(|d| PackageDisk {
                    disk_id: d.disk_id.clone(),
                    file: e.file_of(d).map(|f| f.href.clone()),
                    file_ref: d.file_ref.clone(),
                    capacity: d.capacity_bytes,
                    capacity_as_written: format!(
                        "{} {}",
                        d.capacity,
                        d.capacity_units.as_deref().unwrap_or("byte")
                    ),
                    populated_size: d.populated_size,
                    format: d.format.clone(),
                    parent_ref: d.parent_ref.clone(),
                })
                .collect(),
            files: e
                .files
                .iter()
                .map(|f| PackageFile {
                    id: f.id.clone(),
                    href: f.href.clone(),
                    size: f.size,
                    present_size: self.size(&f.href),
                    not_followed: self.not_followed(&f.href).map(|w| w.to_string()),
                    compression: f.compression.clone(),
                    chunk_size: f.chunk_size,
                })
                .collect(),
            manifest: self.manifest().map(|(n, m)| ManifestSummary {
                file: n.to_string(),
                entries: m.entries.len(),
            }),
            signed: self.certificate().is_some(),
            certificate: self.certificate().map(str::to_string),
            other_sections: e.other_sections.clone(),
            properties: e.properties.clone(),
            deployment_options: e.deployment_options.clone(),
            configurations: configurations(e),
        }
    }
}
