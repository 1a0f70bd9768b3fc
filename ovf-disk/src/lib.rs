//! OVF packages and the disks inside them: open an `.ovf` or `.ova` (read in place, never
//! unpacked), verify it against its manifest and certificate, check every disk, import it to
//! eager-zeroed thick disks (from a file or from a pipe, in one pass), and export disks or a
//! package to an OVA; plus writing any disk to files that never look complete when they are
//! not ([`output::convert`]). The disks themselves are read and written by the [`vmdk`] crate,
//! the envelope, manifest and certificate are the [`ovf`] crate's (both re-exported here).
//!
//! The API is grouped by what it is for, one module a question: [`package`] (a package on
//! disk: open, read in place, verify, check, describe), [`import`], [`export`] (and `fix`),
//! [`apply`] (warm migration: only a delta's grains, or changed areas, onto a copy),
//! [`rules`] (reports that write nothing: per-product lint, Fault Tolerance), [`emit`] (libvirt
//! and `.vmx` configurations), [`vm`] (VM folders and their `.vmx`), [`output`] (writing any
//! disk to files that never look complete when they are not), [`nbd`] (a read-only NBD server
//! of any disk); at the root, the front door
//! ([`Input::open`], by content) and the one error ([`Error`], with its [`Category`]).
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
//! use ovf_disk::import::{self, import};
//! use ovf_disk::package::Package;
//!
//! let pkg = Package::open("appliance.ova".as_ref())?;
//! let verified = pkg.verify(&|_| {})?;
//! assert!(verified.is_ok(), "{:?}", verified.files);
//! for system in &pkg.envelope().systems {
//!     println!("{}: {:?} CPUs, {:?} bytes", system.id, system.cpus, system.memory_bytes);
//! }
//! let report = import(&pkg, "imported".as_ref(), &import::Options::new(), &|_, _| {})?;
//! println!("{}", report.descriptor.display());
//! # Ok(())
//! # }
//! ```
//!
//! # Features
//!
//! - `write` (default): everything that writes disks (`import`, `export`, `output::convert`,
//!   `vm::inflate_vm`), with `vmdk`'s writers. Without it (`default-features = false`), an
//!   importer that only opens, verifies, checks and reads packages and VMs links no writer.
//! - `direct-io` (default): `vmdk`'s `O_DIRECT` outputs and `fallocate` preallocation.
//! - `serde`: `Serialize` for the reports and the envelope summary.
//! - `cli` (default): the `ovf-disk` command-line tool (clap, indicatif, JSON output).

#![deny(missing_docs)]

#[cfg(feature = "write")]
pub mod apply;
pub mod emit;
mod error;
#[cfg(feature = "write")]
pub mod export;
#[cfg(feature = "write")]
pub mod import;
mod input;
pub mod nbd;
pub mod output;
pub mod package;
pub mod qemu_img;
pub mod rules;
pub mod vm;

pub use error::{Category, Error, Result};
pub use input::Input;
pub use ovf;
pub use package::kind::{input_kind, InputKind};
pub use vmdk;
