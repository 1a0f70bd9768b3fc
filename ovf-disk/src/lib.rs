//! OVF packages and the disks inside them: open an `.ovf` or `.ova` (read in place, never
//! unpacked), verify it against its manifest and certificate, check every disk, import it to
//! eager-zeroed thick disks (from a file or from a pipe, in one pass), and export disks or a
//! package to an OVA; plus writing any disk to files that never look complete when they are
//! not ([`convert`]). The disks themselves are read and written by the [`vmdk`] crate, the
//! envelope, manifest and certificate are the [`ovf`] crate's (re-exported here as [`ovf`] and
//! by name).
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

mod emit;
mod error;
mod export;
mod import;
mod input;
mod output;
mod package;
mod rules;

mod vm;

pub use emit::{libvirt_domain, vmx_config, Emit, EmitDisk, Emitted};
pub use error::{Category, Error, Result};
pub use export::fix::{fix, FixOptions, FixReport};
pub use export::{export, ExportOptions, ExportReport, ExportedMember, ManifestStyle};
pub use import::{import, import_stream, EmittedConfig, ImportOptions, ImportReport, ImportedDisk};
pub use input::Input;
pub use output::convert::{
    convert, convert_stream, thick_format, thick_format_for, ConvertOptions,
};
pub use output::{interrupt, remove_leftovers};
pub use ovf;
pub use ovf::cert::CertificateFile;
pub use ovf::envelope::{
    AttachedDisk, DeploymentOption, DiskDrive, Envelope, FileRef, OperatingSystem, System,
    VirtualDisk,
};
pub use ovf::hardware::{Device, DeviceKind, Firmware, Hardware};
pub use ovf::manifest::{Algorithm, Entry as ManifestEntry, Manifest, Outcome};
pub use ovf::properties::{ovf_environment, property_values, Property};
pub use package::check::{check_package, CheckMethod, DiskCheck, PackageCheck};
pub use package::info::{ManifestSummary, PackageDisk, PackageFile, PackageInfo};
pub use package::kind::{input_kind, InputKind};
pub use package::verify::{CapacityDifference, FileDigest, SignatureCheck, VerifyReport};
pub use package::Package;
pub use rules::ft::{
    ft_check_disk, ft_check_package, ft_check_vm, FtReport, FtVersion, MachineFt,
    Outcome as FtOutcome, RuleCheck,
};
pub use rules::lint::{lint, Finding, LintReport, Severity, Target};
pub use vm::{
    inflate_vm, vm_info, InflatedDisk, UnusedFile, Vm, VmDisk, VmDiskInfo, VmInflateReport, VmInfo,
    VmLink, VmOptions, VmxWriter,
};
