//! Read and write VMware virtual disks (VMDK): descriptors, hosted sparse and stream-optimized
//! extents, flat and zero extents, the ESXi delta extents (vmfsSparse `COWD` and seSparse), and
//! parent chains, joined into one [`Disk`] with positioned reads and an allocation map; `check`
//! like `qemu-img check`; the copy to eager-zeroed thick images; writers for every hosted
//! createType.
//!
//! The format's reference is VMware's "Virtual Disk Format 5.0" technote; each module cites the
//! section it implements. The ESXi delta formats are not in it: their modules cite qemu's
//! `block/vmdk.c`, the reference implementation they were checked against. Every byte read from a file is treated as untrusted: sizes and offsets
//! are checked against the file before use, and errors name the file, the structure and the
//! offset ([`Error`]), with a [`ErrorKind`] a caller can branch on ([`ErrorKind::Unsupported`]
//! tells a feature not read yet from damage).
//!
//! # Quick start
//!
//! Open a disk (any file a user would name: a descriptor, a sparse or stream-optimized file),
//! look at it, read it, and inflate it to an eager-zeroed thick VMDK:
//!
//! ```no_run
//! # #[cfg(feature = "write")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::fs::File;
//! use vmdk::{Disk, Plan, WriteOptions};
//!
//! let disk = Disk::open("appliance-disk1.vmdk")?;
//! println!("{} ({} bytes)", disk.create_type(), disk.capacity());
//! for run in disk.map(0, disk.capacity())? {
//!     println!("{:#x}+{:#x} {:?}", run.offset, run.len, run.kind);
//! }
//! let mut sector = [0u8; 512];
//! disk.read_exact_at(0, &mut sector)?;
//!
//! // A monolithicFlat descriptor and its -flat.vmdk, every byte written.
//! let plan = Plan::new("monolithicFlat".parse()?, disk.capacity(), "thick.vmdk")?;
//! let files: Vec<File> = plan.files().iter().map(|f| File::create(f.path())).collect::<Result<_, _>>()?;
//! let outputs: Vec<_> = files.iter().zip(plan.files()).map(|(f, p)| (f, p.path())).collect();
//! plan.write(&disk, &outputs, &WriteOptions::new(), &|_done| {})?;
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "write"))]
//! # fn main() {}
//! ```
//!
//! (A real importer writes each planned file under a temporary name and renames it when the
//! write succeeded, as `ovf-disk` does.)
//!
//! # Layout
//!
//! ```text
//!   format (raw structs) ─┬─> read::header ─┬─> read::sparse ──> disk (Disk, map, reads) ──> check
//!   descriptor ───────────┘                 └─> read::stream (one pass) ────┐         │
//!   io (Backing, Files) ──> disk                                            v         v
//!   codec (deflate) ──> read::*, write::stream       write::copy (copy engine, knows no format)
//!                                                    write::{sparse, stream, flat} <── write (Plan)
//!   format ──> read::{cowd, sesparse} (ESXi delta headers) ──> read::esx ──> disk
//!   read::grains (GrainEntry, the Grains trait disk reads through) <── read::{sparse, esx}
//! ```
//!
//! # Features
//!
//! - `write` (default): the copy engine, `Plan` and the writers.
//! - `direct-io` (default): `O_DIRECT` outputs and `fallocate` preallocation on Linux.
//! - `remote`: disks read over HTTP(S) and S3 (`remote::RemoteFiles`), S3 uploads.
//! - `serde`: `Serialize` for the reports ([`DiskInfo`], [`CheckReport`], ...).
//! - `unstable-internals`: the grain codec and the raw sparse extent reader, for this
//!   repository's benchmarks and fuzz targets; not covered by semver.

#![deny(missing_docs)]

mod check;
mod codec;
mod descriptor;
mod disk;
mod error;
pub mod format;
mod info;
mod inspect;
mod io;
mod read;
#[cfg(feature = "remote")]
pub mod remote;
mod sink;
#[cfg(feature = "write")]
mod write;

pub use check::{check, check_disk, CheckReport, Omitted, Problem, LISTED_PER_KIND};
pub use descriptor::{Access, CreateType, Descriptor, ExtentKind, ExtentLine};
pub use disk::{Allocation, AllocationSummary, Disk, OpenOptions, Placement, Run};
pub use error::{Category, Error, ErrorKind, Feature, Result};
pub use info::{CowdInfo, DiskInfo, ExtentInfo, LinkInfo, Qcow2Info, SeSparseInfo, SparseInfo};
pub use inspect::{Inspection, NamedFile};
pub use io::{Backing, Files, MemoryFiles};
pub use positioned_io::ReadAt;
pub use read::sparse::MetadataSource;
pub use read::stream::{StreamReader, StreamStats};
pub use sink::StreamPoint;
#[cfg(feature = "write")]
pub use write::{
    copy::{CopyStats, Target},
    options::{Checkpoint, Compression, Preallocation, WriteOptions, ZeroMode},
    qcow2_update::Qcow2Update,
    write_stream_optimized, Format, Plan, PlannedFile, WriteReport,
};

/// Plumbing exposed for this repository's benchmarks and fuzz targets only: not covered by
/// semver, not for importers.
#[cfg(feature = "unstable-internals")]
#[doc(hidden)]
pub mod internals {
    #[cfg(feature = "write")]
    pub use crate::codec::{
        compress_grain, compressor, incompressible, is_zero, INCOMPRESSIBLE_CHI_SQUARE,
    };
    pub use crate::codec::{inflate, inflate_until_end};
    pub use crate::read::grains::GrainEntry;
    pub use crate::read::sparse::SparseExtent;
    pub use crate::sink::Sink;

    use crate::{Disk, Result, StreamReader, StreamStats};

    /// Reads the rest of a stream into any sink (the fuzz target checks every offset).
    pub fn read_stream_into<R: std::io::Read>(
        reader: StreamReader<R>,
        sink: &dyn Sink,
        threads: usize,
    ) -> Result<StreamStats> {
        reader.read_into(sink, threads)
    }

    /// Each extent of the disk's first link: its length, and its grain size when sparse.
    pub fn extent_layout(disk: &Disk) -> Vec<(u64, Option<u64>)> {
        disk.extents()
            .iter()
            .map(|e| match &e.data {
                crate::disk::ExtentData::Sparse(s) => (e.len, Some(s.grain_bytes())),
                crate::disk::ExtentData::Esx(s) => {
                    (e.len, Some(crate::read::grains::Grains::grain_bytes(&**s)))
                }
                crate::disk::ExtentData::Qcow2(s) => {
                    (e.len, Some(crate::read::grains::Grains::grain_bytes(&**s)))
                }
                _ => (e.len, None),
            })
            .collect()
    }
}
