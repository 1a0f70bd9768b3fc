//! OVF packages and the disks inside them: open an `.ovf` or `.ova` (read in place, never
//! unpacked), verify it against its manifest and certificate, check every disk, import it to
//! eager-zeroed thick disks (from a file or from a pipe, in one pass), and export disks or a
//! package to an OVA; plus writing any disk to files that never look complete when they are
//! not ([`convert`]). The disks themselves are read and written by the [`vmdk`] crate.
//!
//! Spec: DMTF DSP0243 "Open Virtualization Format Specification" 1.x and 2.x (and VMware's 0.9
//! envelope). Every byte read is untrusted: envelopes, manifests and archives are bounded before
//! they are parsed, file names must stay inside the package, and errors ([`Error`]) name the
//! file and the line, member or offset.
//!
//! # Quick start
//!
//! An importer: open a package, verify it, look at its hardware, import each disk thick.
//!
//! ```no_run
//! # fn main() -> ovf_disk::Result<()> {
//! use ovf_disk::{import, ImportOptions, Package};
//!
//! let pkg = Package::open("appliance.ova".as_ref())?;
//! let verified = pkg.verify(&|_| {})?;
//! assert!(verified.is_ok(), "{:?}", verified.files);
//! for system in &pkg.envelope().systems {
//!     println!("{}: {:?} CPUs, {:?} bytes", system.id, system.cpus, system.memory_bytes);
//! }
//! let report = import(&pkg, "imported".as_ref(), &ImportOptions::new(), &|_, _| {})?;
//! println!("{}", report.descriptor.display());
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! - `serde`: `Serialize` for the reports and the envelope summary.
//! - `cli` (default): the `ovf-disk` command-line tool (clap, indicatif, JSON output).

#![deny(missing_docs)]

mod disk;
mod emit;
mod error;
mod ft;
mod iso;
mod output;
mod package;
mod parallel;

/// The envelope editors as the fuzz targets drive them (feature `unstable-internals`): not a
/// stable API.
#[cfg(feature = "unstable-internals")]
#[doc(hidden)]
pub mod fuzzing {
    use crate::package::xml::{downgrade_envelope, edit_envelope, EnvelopeEdits, ItemEdit};

    /// `text` with no edits: `Some(output)` when the editor takes it.
    pub fn unedited(text: &str) -> Option<String> {
        edit_envelope(text, &EnvelopeEdits::new()).ok()
    }

    /// `text` with every kind of edit but the file ones: the configuration `a` chosen,
    /// properties `k` and `c.k.i` set, IDE subtypes and sound cards removed.
    pub fn edited(text: &str) -> Option<String> {
        let mut edits = EnvelopeEdits::new();
        edits
            .deployment("a")
            .property_value("k", "v & <w>")
            .property_value("c.k.i", "x")
            .items(|item| match item.resource_type {
                _ if item.element == "ExtraConfig" => ItemEdit::Remove,
                Some(5) => ItemEdit::RemoveSubtype,
                Some(35) => ItemEdit::Remove,
                _ => ItemEdit::Keep,
            })
            .system_type(|t| (t != "vmx-10").then(|| "vmx-10".to_string()));
        edit_envelope(text, &edits).ok()
    }

    /// `text` written as OVF 1.x, when it can be.
    pub fn downgraded(text: &str) -> Option<String> {
        downgrade_envelope(text).ok()
    }
}
mod vm;

pub use disk::{convert, convert_stream, ConvertOptions};
pub use emit::{libvirt_domain, vmx_config, Emit, EmitDisk, Emitted, VmxWriter};
pub use error::{Error, Result};
pub use ft::{
    ft_check_disk, ft_check_package, ft_check_vm, FtReport, FtVersion, MachineFt,
    Outcome as FtOutcome, RuleCheck,
};
pub use output::{interrupt, remove_leftovers};
pub use package::cert::CertificateFile;
pub use package::check::{check_package, CheckMethod, DiskCheck, PackageCheck};
pub use package::envelope::{
    DeploymentOption, DiskDrive, Envelope, FileRef, OperatingSystem, System, VirtualDisk,
};
pub use package::export::{export, ExportOptions, ExportReport, ExportedMember, ManifestStyle};
pub use package::hardware::{Device, DeviceKind, Firmware, Hardware};
pub use package::import::{
    import, import_stream, EmittedConfig, ImportOptions, ImportReport, ImportedDisk,
};
pub use package::info::{ManifestSummary, PackageDisk, PackageFile, PackageInfo};
pub use package::lint::{fix, lint, Finding, FixOptions, FixReport, LintReport, Severity, Target};
pub use package::manifest::{Algorithm, Entry as ManifestEntry, Manifest, Outcome};
pub use package::properties::{ovf_environment, property_values, Property};
pub use package::verify::{CapacityDifference, FileDigest, SignatureCheck, VerifyReport};
pub use package::Package;
pub use vm::{
    inflate_vm, vm_info, InflatedDisk, UnusedFile, Vm, VmDisk, VmDiskInfo, VmInflateReport, VmInfo,
    VmLink, VmOptions,
};
