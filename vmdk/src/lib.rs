//! Read VMware virtual disks (VMDK): descriptors, hosted sparse and stream-optimized extents,
//! flat and zero extents, and parent chains, joined into one [`Disk`] with positioned reads and
//! an allocation map; plus the [`copy`] engine that inflates a disk into a thick image.
//!
//! The format's reference is VMware's "Virtual Disk Format 5.0" technote; each module cites the
//! section it implements. Every byte read from a file is treated as untrusted: sizes and offsets
//! are checked against the file before use, and errors name the file, the structure and the
//! offset ([`Error`]).
//!
//! ```text
//!   descriptor ──┐
//!   sparse ──────┼──> disk (Disk: extents + parent chain, ReadAt, map) ──> copy (inflate)
//!   format ──────┘        ▲
//!   io (Backing, Files) ──┘
//! ```

pub mod check;
pub mod copy;
pub mod ddb;
pub mod descriptor;
pub mod disk;
pub mod error;
pub mod flat;
pub mod format;
pub mod io;
pub mod sparse;
pub mod stream;

pub use descriptor::{CreateType, Descriptor};
pub use disk::{Allocation, AllocationSummary, Disk, OpenOptions, Run};
pub use error::{Error, ErrorKind, Result};
