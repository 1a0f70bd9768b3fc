//! Writing a disk to files that never look complete when they are not: the safe-output policy
//! around `vmdk`'s writers, for `inflate`, `convert`, imports and exports alike.
//!
//! `vmdk`'s [`Plan`] says which files a format is written as; here each is written under a
//! hidden temporary name in its folder (`.NAME.ovf-disk-partial`, locked while written), flushed,
//! and renamed into place only when every file is complete, extent files before the descriptor
//! that names them, so a descriptor never names an incomplete extent. Before an eager-zeroed
//! output is started, the free space of its file system is compared with what it will take.
//! Existing outputs are refused unless replacing is asked for, and an output that is one of
//! the input's files always. On any failure every temporary file is removed; see
//! [`crate::output`] for killed and interrupted runs.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use vmdk::{Disk, Format, Plan, StreamReader, WriteOptions, WriteReport};

use crate::error::{Error, Result};
use crate::output::{check_target, commit_all, remove_leftovers, resume, PendingFile};

/// Options of [`convert`] and [`convert_stream`]: `vmdk`'s write options, and whether existing
/// outputs may be replaced.
///
/// ```
/// let options = ovf_disk::output::ConvertOptions::new()
///     .write_options(vmdk::WriteOptions::new().threads(2))
///     .replace_existing(true);
/// # let _ = options;
/// ```
#[derive(Clone, Debug)]
pub struct ConvertOptions {
    pub(crate) write: WriteOptions,
    pub(crate) replace: bool,
    pub(crate) space_check: bool,
    pub(crate) disks_at_once: usize,
    /// What the source is (lines of the caller's), and whether to resume an interrupted run.
    pub(crate) resumable: Option<(Vec<String>, bool)>,
    /// Where a resumable copy keeps its checkpoint, instead of beside its output.
    pub(crate) checkpoint: Option<PathBuf>,
    pub(crate) keep_chain: bool,
}

impl Default for ConvertOptions {
    fn default() -> Self {
        Self {
            write: WriteOptions::default(),
            replace: false,
            space_check: true,
            disks_at_once: 0,
            resumable: None,
            checkpoint: None,
            keep_chain: false,
        }
    }
}

impl ConvertOptions {
    /// The defaults: `vmdk`'s default write options (all cores, eager-zeroed), existing outputs
    /// refused, free space checked first.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps a checkpoint beside the temporary output of a copy to raw or thick outputs, and
    /// keeps the temporary output when the copy fails, so a later run with `resume` continues
    /// where this one stopped instead of starting over. `source` describes the input (each
    /// object's name, length and validator: `vmdk::remote::RemoteFiles::identity`); a later
    /// run whose source or output differs refuses to resume. Without `resume` a checkpoint
    /// is started afresh. Raw, thick, stream-optimized, sparse, qcow2, VHD and VHDX outputs
    /// resume ([`resumes`]); a preallocated qcow2 output starts over.
    ///
    /// A block device is written in place and has no folder of its own for a checkpoint: its
    /// copy keeps one only at a [`ConvertOptions::checkpoint_file`] (a volume that outlives the
    /// run, for a Kubernetes Job), and resuming onto it without one is refused.
    pub fn resumable(mut self, source: Vec<String>, resume: bool) -> Self {
        self.resumable = Some((source, resume));
        self
    }

    /// Whether this run continues interrupted ones ([`ConvertOptions::resumable`] with
    /// `resume`).
    pub(crate) fn resuming(&self) -> bool {
        self.resumable.as_ref().is_some_and(|(_, resume)| *resume)
    }

    /// Keeps a [`ConvertOptions::resumable`] copy's checkpoint at `path` rather than beside
    /// its output (`.NAME.ovf-disk-checkpoint`); the one place a block device's copy keeps one.
    pub fn checkpoint_file(mut self, path: Option<PathBuf>) -> Self {
        self.checkpoint = path;
        self
    }

    /// Whether to compare the free space of the output's file system with what an
    /// eager-zeroed or preallocated output takes before writing (default: yes; a shortfall is
    /// [`Error::NoSpace`]). Off, a write that does not fit fails when the file system is full.
    pub fn space_check(mut self, check: bool) -> Self {
        self.space_check = check;
        self
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

    /// Writes a delta disk converted to qcow2 as a chain of qcow2 images mirroring its chain
    /// (default: one image holding the whole chain): the base, then each link as an overlay
    /// naming the previous image as its backing file, all in the output's folder, each parent
    /// named after its source link (`web-000001.vmdk` as `web-000001.qcow2`), the leaf as the
    /// output. Other formats are one file whatever this says.
    pub fn keep_chain(mut self, keep: bool) -> Self {
        self.keep_chain = keep;
        self
    }

    /// How many disks an import or a VM folder writes at once (default 0: as many as cores, at
    /// most 4; 1 writes them one by one). Each disk still spreads its grains over the write
    /// threads.
    pub fn disks_at_once(mut self, disks: usize) -> Self {
        self.disks_at_once = disks;
        self
    }
}

/// What a write produced, as `ovf-disk inflate|convert --json` prints it and the Python
/// package returns it: the input, the files, the capacity, the bytes of data, of zeros and in
/// the files, the time, and for a URL input what was fetched.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct WriteSummary {
    /// The disk read (a URL without its credentials and query).
    pub input: PathBuf,
    /// The files written, the one to open first.
    pub files: Vec<PathBuf>,
    /// The disk's capacity in bytes.
    pub capacity: u64,
    /// Bytes of data read and written.
    pub data_bytes: u64,
    /// Bytes of the capacity that are zeros.
    pub zero_bytes: u64,
    /// Bytes the files hold.
    pub written_bytes: u64,
    /// Seconds the write took.
    pub seconds: f64,
    /// What a URL input cost (absent for local inputs).
    #[cfg(feature = "remote")]
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub fetched: Option<vmdk::remote::FetchStats>,
}

impl WriteSummary {
    /// The summary of `report`, a write of `input` that took `seconds`.
    pub fn new(input: &Path, report: &WriteReport, seconds: f64) -> Self {
        Self {
            input: input.to_path_buf(),
            files: report.files.clone(),
            capacity: report.capacity,
            data_bytes: report.data,
            zero_bytes: report.capacity.saturating_sub(report.data),
            written_bytes: report.written,
            seconds,
            #[cfg(feature = "remote")]
            fetched: None,
        }
    }
}

/// Bytes free for this user on the file system holding `path` (a file or a folder).
fn free_space(path: &Path) -> Result<u64> {
    let st = rustix::fs::statvfs(path).map_err(|e| Error::io(path)(e.into()))?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Refuses to start writing `needed` bytes into `folder` when its file system has less free.
pub(crate) fn check_space(folder: &Path, needed: u64, path: &Path) -> Result<()> {
    if needed == 0 {
        return Ok(());
    }
    let available = free_space(folder)?;
    if available < needed {
        return Err(Error::NoSpace {
            path: path.to_path_buf(),
            needed,
            available,
        });
    }
    Ok(())
}

/// The folder a file is written in.
pub(crate) fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// A write in progress: the plan's files open under temporary names, to be committed together
/// (with other writes, for an import) once complete.
pub(crate) struct PendingWrite {
    pub(crate) report: WriteReport,
    pub(crate) files: Vec<PendingFile>,
    /// The checkpoint to remove once committed.
    pub(crate) checkpoint: Option<PathBuf>,
}

impl PendingWrite {
    /// Moves every file into place.
    pub(crate) fn commit(self) -> Result<WriteReport> {
        commit_all(self.files)?;
        if let Some(c) = &self.checkpoint {
            resume::FileCheckpoint::remove(c);
        }
        Ok(self.report)
    }

    /// Removes every file and the checkpoint: nothing of this write is to be resumed.
    pub(crate) fn discard(self) {
        for f in self.files {
            f.discard();
        }
        if let Some(c) = &self.checkpoint {
            resume::FileCheckpoint::remove(c);
        }
    }

    /// Moves every file of every write into place together, then removes their checkpoints.
    pub(crate) fn commit_together(written: Vec<PendingWrite>) -> Result<()> {
        Self::commit_with(written, Vec::new())
    }

    /// [`PendingWrite::commit_together`] with `others` (files naming the disks: an import's
    /// configurations and descriptor, last) renamed in the same commit.
    pub(crate) fn commit_with(written: Vec<PendingWrite>, others: Vec<PendingFile>) -> Result<()> {
        let mut checkpoints = Vec::new();
        let mut files = Vec::new();
        for w in written {
            checkpoints.extend(w.checkpoint);
            files.extend(w.files);
        }
        files.extend(others);
        commit_all(files)?;
        for c in &checkpoints {
            resume::FileCheckpoint::remove(c);
        }
        Ok(())
    }

    /// The size of the written file that will be at `path`.
    pub(crate) fn size_of(&self, path: &Path) -> u64 {
        self.files
            .iter()
            .find(|f| f.target() == path)
            .and_then(|f| f.file().metadata().ok())
            .map_or(0, |m| m.len())
    }
}

/// The plan's files opened under temporary names, after the target and space checks.
pub(super) fn create_outputs(
    plan: &Plan,
    inputs: &[PathBuf],
    options: &ConvertOptions,
) -> Result<Vec<PendingFile>> {
    for f in plan.files() {
        check_target(f.path(), inputs, options.replace)?;
    }
    if let Some(first) = plan.files().first() {
        let folder = folder_of(first.path());
        // A run that resumes leaves what other interrupted copies left beside (a VM's other
        // disks, which it resumes too).
        if !options.resuming() {
            remove_leftovers(folder)?;
        }
        if options.space_check {
            let main = plan.files().last().map_or(first.path(), |f| f.path());
            check_space(folder, plan.space_needed(&options.write), main)?;
        }
    }
    plan.files()
        .iter()
        .map(|f| PendingFile::create(f.path(), options.replace))
        .collect()
}

/// The open temporary files as `vmdk` takes them: each file with the path it is open at.
pub(super) fn outputs(pending: &[PendingFile]) -> Vec<(&File, &Path)> {
    pending.iter().map(|p| (p.file(), p.temp_path())).collect()
}

/// `e`, naming the final output where it names a temporary file (the user never sees those
/// names otherwise).
pub(super) fn name_outputs(e: vmdk::Error, pending: &[PendingFile]) -> Error {
    match pending.iter().find(|p| Some(p.temp_path()) == e.path()) {
        Some(p) => e.with_path(p.target()).into(),
        None => e.into(),
    }
}

/// Whether a copy to `format` can continue after a kill: raw, thick, stream-optimized,
/// monolithicSparse, twoGbMaxExtentSparse, qcow2, VHD and VHDX outputs
/// ([`ConvertOptions::resumable`]; a preallocated qcow2 output starts over).
pub fn resumes(format: &Format) -> bool {
    use vmdk::CreateType::{MonolithicSparse, StreamOptimized, TwoGbMaxExtentSparse};
    format.is_thick()
        || matches!(
            format,
            Format::Qcow2 | Format::Vhd | Format::VhdFixed | Format::Vhdx | Format::VhdxFixed
        )
        || matches!(
            format,
            Format::Vmdk(StreamOptimized | MonolithicSparse | TwoGbMaxExtentSparse)
        )
}

/// [`convert`] up to the commit: a disk written under temporary names, at `capacity` bytes
/// (its own, or larger to grow it).
pub(crate) fn write_pending(
    disk: &Disk,
    out: &Path,
    format: &Format,
    capacity: u64,
    options: &ConvertOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<PendingWrite> {
    let plan = Plan::new(format.clone(), capacity, out)?;
    let Some((source, resume)) = options.resumable.as_ref().filter(|_| resumes(format)) else {
        let files = create_outputs(&plan, &disk.files(), options)?;
        let report = plan
            .write(disk, &outputs(&files), &options.write, progress)
            .map_err(|e| name_outputs(e, &files))?;
        return Ok(PendingWrite {
            report,
            files,
            checkpoint: None,
        });
    };
    let (path, identity) = resumable_checkpoint(&plan, (out, format, capacity), options, source);
    let loaded = match resume {
        true => resume::FileCheckpoint::new(path.clone(), &identity, 0).load()?,
        false => None,
    };
    let files = resumable_outputs(&plan, &disk.files(), options, loaded.is_some())?;
    let from = loaded.unwrap_or(0);
    let write = options
        .write
        .clone()
        .checkpoint(resume::shared(path.clone(), &identity, from));
    let report = plan
        .write(disk, &outputs(&files), &write, progress)
        .map_err(|e| name_outputs(e, &files))?;
    Ok(PendingWrite {
        report,
        files,
        checkpoint: Some(path),
    })
}

/// Where a resumable write of `plan` (to `out`, in `format`, at `capacity` bytes) keeps its
/// checkpoint, beside the last planned file (the one the user named) unless the caller placed
/// it, and the checkpoint's identity: `source` (what is read), then the output's format,
/// capacity and what of the options shapes its bytes.
pub(super) fn resumable_checkpoint(
    plan: &Plan,
    (out, format, capacity): (&Path, &Format, u64),
    options: &ConvertOptions,
    source: &[String],
) -> (PathBuf, Vec<String>) {
    let main = plan.files().last().map_or(out, |f| f.path());
    let path = options
        .checkpoint
        .clone()
        .unwrap_or_else(|| resume::checkpoint_of(main));
    let mut identity = source.to_vec();
    identity.push(format!("format {format} capacity {capacity}"));
    identity.push(options.write.shape());
    (path, identity)
}

/// The plan's files for a resumable write: those an interrupted run left, reopened, when
/// `reopen` (its checkpoint was found), else created; kept when the write fails, for a later
/// run to resume.
pub(super) fn resumable_outputs(
    plan: &Plan,
    inputs: &[PathBuf],
    options: &ConvertOptions,
    reopen: bool,
) -> Result<Vec<PendingFile>> {
    let mut files = match reopen {
        true => {
            let targets: Vec<&Path> = plan.files().iter().map(|f| f.path()).collect();
            resume::reopen_files(&targets, options.replace)?
        }
        false => create_outputs(plan, inputs, options)?,
    };
    for f in &mut files {
        f.keep_on_failure();
    }
    Ok(files)
}

/// [`convert_stream`] up to the commit, at `capacity` bytes (the stream's own, or larger).
pub(crate) fn write_stream_pending<R: Read>(
    stream: StreamReader<R>,
    out: &Path,
    format: &Format,
    capacity: u64,
    options: &ConvertOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<PendingWrite> {
    let plan = Plan::new(format.clone(), capacity, out)?;
    let files = create_outputs(&plan, &[], options)?;
    write_into(&plan, stream, files, options, None, progress)
}

/// `stream` written into the plan's `files`, with `checkpoint` told its points.
pub(super) fn write_into<R: Read>(
    plan: &Plan,
    stream: StreamReader<R>,
    files: Vec<PendingFile>,
    options: &ConvertOptions,
    checkpoint: Option<std::sync::Arc<dyn vmdk::Checkpoint>>,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<PendingWrite> {
    let mut write = options.write.clone();
    if let Some(c) = checkpoint {
        write = write.checkpoint(c);
    }
    let report = plan
        .write_stream(stream, &outputs(&files), &write, progress)
        .map_err(|e| name_outputs(e, &files))?;
    Ok(PendingWrite {
        report,
        files,
        checkpoint: None,
    })
}

/// The format of an eager-zeroed thick output, the one rule `inflate` (a disk or a VM's
/// disks) and `import` share: a raw image when `raw`; else a thick VMDK, ESXi's `vmfs` with
/// `esx`, `monolithicFlat` without.
pub fn thick_format(raw: bool, esx: bool) -> Format {
    match (raw, esx) {
        (true, _) => Format::Raw,
        (false, false) => Format::Vmdk(vmdk::CreateType::MonolithicFlat),
        (false, true) => Format::Vmdk(vmdk::CreateType::Vmfs),
    }
}

/// [`thick_format`] for one disk written to `output`: a thick VMDK when its name ends in
/// `.vmdk`, else a raw image.
///
/// ```
/// use std::path::Path;
/// use vmdk::{CreateType, Format};
///
/// let f = ovf_disk::output::thick_format_for(Path::new("disk.vmdk"), true);
/// assert_eq!(f, Format::Vmdk(CreateType::Vmfs));
/// assert_eq!(ovf_disk::output::thick_format_for(Path::new("disk.img"), true), Format::Raw);
/// ```
pub fn thick_format_for(output: &Path, esx: bool) -> Format {
    let vmdk = output
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("vmdk"));
    thick_format(!vmdk, esx)
}

/// Writes `disk` as `format` at `out` (and the files its format adds beside it: see
/// [`vmdk::Plan`]), appearing under their final names only when complete. `progress` is
/// called with bytes of the disk as they are done. Refused before anything is written when
/// the output exists ([`Error::Exists`]), another run is writing it ([`Error::Busy`]) or an
/// eager-zeroed output does not fit ([`Error::NoSpace`]); temporary files that killed runs
/// left in the output's folder are removed first.
///
/// ```no_run
/// # fn main() -> ovf_disk::Result<()> {
/// let disk = vmdk::Disk::open("appliance-disk1.vmdk")?;
/// let report = ovf_disk::output::convert(
///     &disk,
///     "thick.vmdk".as_ref(),
///     &vmdk::Format::Vmdk(vmdk::CreateType::MonolithicFlat),
///     &ovf_disk::output::ConvertOptions::new(),
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
    if is_block_device(out) {
        return convert_to_device(disk, out, format, options, progress);
    }
    if options.keep_chain && *format == Format::Qcow2 && disk.parent().is_some() {
        return convert_chain(disk, out, options, progress);
    }
    write_pending(disk, out, format, disk.capacity(), options, progress)?.commit()
}

/// [`convert`] of a chain to a chain of qcow2 images ([`ConvertOptions::keep_chain`]): every
/// image written under a temporary name, all renamed together once all are complete. The
/// report names the files leaf first (the one to open) and adds up their bytes.
fn convert_chain(
    disk: &Disk,
    out: &Path,
    options: &ConvertOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<WriteReport> {
    let mut links: Vec<&Disk> = disk.chain().collect();
    links.reverse();
    let folder = folder_of(out);
    let mut names: Vec<PathBuf> = Vec::new();
    for (i, link) in links.iter().enumerate() {
        let path = match i + 1 == links.len() {
            true => out.to_path_buf(),
            false => {
                let stem = link.path().file_stem().unwrap_or_default();
                folder.join(Path::new(stem).with_extension("qcow2"))
            }
        };
        if names.contains(&path) || (i + 1 < links.len() && path == out) {
            return Err(Error::InvalidInput(format!(
                "{}: two links of the chain would be written to this name",
                path.display()
            )));
        }
        names.push(path);
    }
    let mut pending = Vec::new();
    let mut backing: Option<String> = None;
    for (link, path) in links.iter().zip(&names) {
        let mut link_options = options.clone();
        if let Some(name) = &backing {
            link_options.write = link_options.write.qcow2_backing(name.clone());
        }
        let w = write_pending(
            link,
            path,
            &Format::Qcow2,
            link.capacity(),
            &link_options,
            progress,
        )?;
        backing = path.file_name().map(|n| n.to_string_lossy().into_owned());
        pending.push(w);
    }
    let mut report = WriteReport::default();
    for w in pending.iter().rev() {
        report.files.extend(w.report.files.iter().cloned());
        report.capacity = report.capacity.max(w.report.capacity);
        report.data += w.report.data;
        report.written += w.report.written;
    }
    // Every link's checkpoint (a resumable copy from a URL) goes once all are in place.
    PendingWrite::commit_together(pending)?;
    Ok(report)
}

/// Whether `path` is a block device (a volume a Kubernetes Job is given, `/dev/vg/lv`).
pub fn is_block_device(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_block_device())
}

/// [`convert`] onto a block device: written in place (a device cannot be renamed into
/// place), raw only, every zero written whatever the zero mode (a device holds what it held
/// before), only with `replace_existing` (its old contents are lost), and flushed before it
/// returns. A device smaller than the disk is refused before anything is written.
fn convert_to_device(
    disk: &Disk,
    out: &Path,
    format: &Format,
    options: &ConvertOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<WriteReport> {
    use std::io::Seek;
    if *format != Format::Raw {
        return Err(Error::InvalidInput(format!(
            "{}: a block device takes a raw image, not {format}",
            out.display()
        )));
    }
    if !options.replace {
        return Err(Error::InvalidInput(format!(
            "{} is a block device: --force writes the disk over what it holds",
            out.display()
        )));
    }
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(out)
        .map_err(Error::io(out))?;
    let size = file
        .seek(std::io::SeekFrom::End(0))
        .map_err(Error::io(out))?;
    if size < disk.capacity() {
        return Err(Error::InvalidInput(format!(
            "{}: the device holds {size} bytes, the disk {}",
            out.display(),
            disk.capacity()
        )));
    }
    let plan = Plan::new(Format::Raw, disk.capacity(), out)?;
    let mut write = options.write.clone().zero(vmdk::ZeroMode::Write);
    let checkpoint = device_checkpoint(out, disk.capacity(), options)?;
    if let Some((path, identity, from)) = &checkpoint {
        write = write.checkpoint(resume::shared(path.clone(), identity, *from));
    }
    let mut report = plan.write(disk, &[(&file, out)], &write, progress)?;
    file.sync_all().map_err(Error::io(out))?;
    if let Some((path, ..)) = &checkpoint {
        resume::FileCheckpoint::remove(path);
    }
    report.written = disk.capacity();
    Ok(report)
}

/// The checkpoint of a resumable copy onto the block device `out` ([`convert_to_device`]):
/// its path, identity and where the copy starts (where the checkpoint there says an
/// interrupted run got to, when resuming). `None` when the copy keeps none.
fn device_checkpoint(
    out: &Path,
    capacity: u64,
    options: &ConvertOptions,
) -> Result<Option<(PathBuf, Vec<String>, u64)>> {
    let Some((source, resume)) = &options.resumable else {
        return Ok(None);
    };
    let Some(path) = options.checkpoint.clone() else {
        return match resume {
            true => Err(Error::InvalidInput(format!(
                "{} is a block device, written in place with no folder for a checkpoint: \
                 resuming needs the one the interrupted run kept (--checkpoint FILE)",
                out.display()
            ))),
            false => Ok(None),
        };
    };
    let mut identity = source.clone();
    identity.push(format!(
        "device {} format raw capacity {capacity}",
        out.display()
    ));
    let probe = resume::FileCheckpoint::new(path.clone(), &identity, 0);
    let from = match resume {
        true => probe.load()?.ok_or_else(|| {
            Error::InvalidInput(format!(
                "cannot resume: {} holds no checkpoint; run again without --resume",
                path.display()
            ))
        })?,
        false => 0,
    };
    Ok(Some((path, identity, from)))
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
    let capacity = stream.capacity();
    write_stream_pending(stream, out, format, capacity, options, progress)?.commit()
}
