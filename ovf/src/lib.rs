//! The OVF descriptor model and its text (DMTF DSP0243 1.x and 2.x, and VMware's 0.9 envelope):
//! an envelope read into a typed model (references, disks, virtual systems, their hardware
//! and properties, deployment options), the manifest (`.mf`) and the certificate (`.cert`)
//! read, and envelopes written, edited in place byte-preserving, or rewritten from 2.x to 1.x.
//!
//! No disks, no archives, no file I/O and no RSA: an importer that only reads or edits an OVF
//! links this crate alone. `ovf-disk` builds packages, imports and exports on top of it.
//!
//! Every input is untrusted: envelope text is bounded before it is parsed (size, markup and
//! nesting, no DTD so no entity is ever expanded; [`xml`]), manifests are bounded too, file
//! names are located before anything follows them (inside the package, or why not:
//! [`names::locate`]), and errors ([`Error`]) name the file and the line.
//!
//! # Reading an envelope
//!
//! ```
//! use std::path::Path;
//!
//! let text = r#"<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1"
//!     xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
//!   <References><File ovf:id="f1" ovf:href="disk1.vmdk"/></References>
//!   <DiskSection><Info/><Disk ovf:diskId="d1" ovf:fileRef="f1" ovf:capacity="1"
//!     ovf:capacityAllocationUnits="byte * 2^30"/></DiskSection>
//!   <VirtualSystem ovf:id="vm"><Info/></VirtualSystem>
//! </Envelope>"#;
//! let env = ovf::Envelope::parse(text, Path::new("vm.ovf"))?;
//! assert_eq!(env.disks[0].capacity_bytes, Some(1 << 30));
//! assert_eq!(env.file_of(&env.disks[0]).map(|f| f.href.as_str()), Some("disk1.vmdk"));
//! # Ok::<(), ovf::Error>(())
//! ```
//!
//! # Features
//!
//! - `serde`: `Serialize` for the envelope model and the manifest's outcomes.
//! - `schema`: [`schema::validate`], envelopes checked against DMTF's envelope schema by
//!   libxml2 (linked from the system).

#![deny(missing_docs)]

pub mod cert;
pub mod envelope;
mod error;
pub mod faults;
pub mod hardware;
pub mod manifest;
pub mod names;
pub mod properties;
pub mod resumable;
pub mod schema;
pub mod units;
pub mod write;
pub mod xml;

pub use envelope::{
    AttachedDisk, DeploymentOption, DiskDrive, Envelope, FileRef, OperatingSystem, RequiredSection,
    System, VirtualDisk,
};
pub use error::{Error, Result};
