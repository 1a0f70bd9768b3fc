//! Writing a disk to files that never look complete when they are not: the safe-output policy
//! around `vmdk`'s writers, for `inflate`, `convert`, imports and exports alike.
//!
//! `vmdk`'s [`Plan`] says which files a format is written as; here each is written under a
//! hidden temporary name in its folder (`.NAME.partial-PID-N`), flushed, and renamed into place
//! only when every file is complete, extent files before the descriptor that names them, so a
//! descriptor never names an incomplete extent. Existing outputs are refused unless replacing is
//! asked for, and an output that is one of the input's files always. On any failure every
//! temporary file is removed.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use vmdk::{Disk, Format, Plan, StreamReader, WriteOptions, WriteReport};

use crate::error::Result;
use crate::output::{check_target, PendingFile};

/// Options of [`convert`] and [`convert_stream`]: `vmdk`'s write options, and whether existing
/// outputs may be replaced.
///
/// ```
/// let options = ovf_disk::ConvertOptions::new()
///     .write_options(vmdk::WriteOptions::new().threads(2))
///     .replace_existing(true);
/// # let _ = options;
/// ```
#[derive(Clone, Debug, Default)]
pub struct ConvertOptions {
    pub(crate) write: WriteOptions,
    pub(crate) replace: bool,
}

impl ConvertOptions {
    /// The defaults: `vmdk`'s default write options (all cores, eager-zeroed), existing outputs
    /// refused.
    pub fn new() -> Self {
        Self::default()
    }

    /// How the disk is written: threads, zeros, compression, disk database.
    pub fn write_options(mut self, write: WriteOptions) -> Self {
        self.write = write;
        self
    }

    /// Replace outputs that exist (an output that is one of the input's files is still refused).
    pub fn replace_existing(mut self, replace: bool) -> Self {
        self.replace = replace;
        self
    }
}

/// The plan's files opened under temporary names, after the target checks.
fn create_outputs(plan: &Plan, inputs: &[PathBuf], replace: bool) -> Result<Vec<PendingFile>> {
    plan.files()
        .iter()
        .map(|f| {
            check_target(f.path(), inputs, replace)?;
            PendingFile::create(f.path())
        })
        .collect()
}

/// Moves every file into place, in the plan's order (extents before their descriptor).
fn commit_all(pending: Vec<PendingFile>) -> Result<()> {
    pending.into_iter().try_for_each(PendingFile::commit)
}

/// The open temporary files as `vmdk` takes them: each file with the path it is open at.
fn outputs(pending: &[PendingFile]) -> Vec<(&File, &Path)> {
    pending.iter().map(|p| (p.file(), p.temp_path())).collect()
}

/// Writes `disk` as `format` at `out` (and the files its format adds beside it: see
/// [`vmdk::Plan`]), appearing under their final names only when complete. `progress` is
/// called with bytes of the disk as they are done.
///
/// ```no_run
/// # fn main() -> ovf_disk::Result<()> {
/// let disk = vmdk::Disk::open("appliance-disk1.vmdk")?;
/// let report = ovf_disk::convert(
///     &disk,
///     "thick.vmdk".as_ref(),
///     &vmdk::Format::Vmdk(vmdk::CreateType::MonolithicFlat),
///     &ovf_disk::ConvertOptions::new(),
///     &|_| {},
/// )?;
/// assert_eq!(report.files[0], std::path::Path::new("thick.vmdk"));
/// # Ok(())
/// # }
/// ```
pub fn convert(
    disk: &Disk,
    out: &Path,
    format: &Format,
    options: &ConvertOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<WriteReport> {
    let plan = Plan::new(format.clone(), disk.capacity(), out)?;
    let pending = create_outputs(&plan, &disk.files(), options.replace)?;
    let report = plan.write(disk, &outputs(&pending), &options.write, progress)?;
    commit_all(pending)?;
    Ok(report)
}

/// Writes a stream-optimized disk read in one forward pass (standard input, a pipe, a tar
/// member) as `format` at `out`, with no temporary copy of the input: raw or a thick VMDK
/// whose disk database comes from the stream's embedded descriptor. Outputs appear only when
/// complete.
pub fn convert_stream<R: Read>(
    stream: StreamReader<R>,
    out: &Path,
    format: &Format,
    options: &ConvertOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<WriteReport> {
    let plan = Plan::new(format.clone(), stream.capacity(), out)?;
    let pending = create_outputs(&plan, &[], options.replace)?;
    let report = plan.write_stream(stream, &outputs(&pending), &options.write, progress)?;
    commit_all(pending)?;
    Ok(report)
}
