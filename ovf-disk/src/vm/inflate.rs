//! Consolidating a VM's disks: every chain written as one eager-zeroed thick disk
//! ([`inflate_vm`], feature `write`).

use std::path::{Path, PathBuf};

use vmdk::{Disk, Format};

use super::{open_disk, Options, VmDisk};
use crate::error::Result;
use crate::output::convert::{check_space, write_pending, PendingWrite};
use crate::output::parallel::{self, disks_at_once};
use crate::output::OutputFolder;

/// One disk [`inflate_vm`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct InflatedDisk {
    /// Controller and unit.
    pub device: String,
    /// The leaf it was read from.
    pub from: PathBuf,
    /// Links consolidated (the leaf and every parent).
    pub links: usize,
    /// The files written, the one to open first.
    pub files: Vec<PathBuf>,
}

/// What [`inflate_vm`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct InflateReport {
    /// The configuration read.
    pub vmx: PathBuf,
    /// Each disk written.
    pub disks: Vec<InflatedDisk>,
}

/// The output name of a disk: its base link's name (snapshot suffixes such as `-000002` and
/// the `-flat` of a flat base dropped), made unique with the device when two disks share it.
pub(crate) fn output_stem(disk: &Disk, device: &str, taken: &[String]) -> String {
    let base = disk.chain().last().unwrap_or(disk);
    let stem = base
        .path()
        .file_stem()
        .map_or_else(|| "disk".to_string(), |s| s.to_string_lossy().into_owned());
    let stem = stem.strip_suffix("-flat").unwrap_or(&stem).to_string();
    if taken.contains(&stem) {
        format!("{stem}-{}", device.replace(':', "-"))
    } else {
        stem
    }
}

/// Consolidates every disk of the VM at `vmx` into `outdir` (created if missing): each disk's
/// chain, leaf to base, written as one eager-zeroed thick disk in the options' format, named
/// after its base link. The same safety as [`crate::import`]: the free space checked for all
/// disks first, every file under a temporary name until all are complete, nothing left on
/// failure, the folder locked while written. `progress` is called with a device and bytes done.
///
/// ```no_run
/// # fn main() -> ovf_disk::Result<()> {
/// let report = ovf_disk::vm::inflate_vm(
///     "web/web.vmx".as_ref(),
///     "thick".as_ref(),
///     &ovf_disk::vm::Options::new(),
///     &|_, _| {},
/// )?;
/// for d in &report.disks {
///     println!("{}: {} links -> {:?}", d.device, d.links, d.files[0]);
/// }
/// # Ok(())
/// # }
/// ```
pub fn inflate_vm(
    vmx: &Path,
    outdir: &Path,
    options: &Options,
    progress: &(dyn Fn(&str, u64) + Sync),
) -> Result<InflateReport> {
    let (format, convert) = (&options.format, &options.convert);
    let vm = options.read_vm(vmx)?;
    let disks: Vec<(&VmDisk, Disk)> = vm
        .disks
        .iter()
        .map(|d| open_disk(&vm, d, options).map(|disk| (d, disk)))
        .collect::<Result<_>>()?;
    let folder = OutputFolder::open_keeping(outdir, convert.resuming())?;
    if convert.space_check {
        let needed = disks.iter().fold(0u64, |sum, (_, d)| {
            sum.saturating_add(format.space_needed(d.capacity(), &convert.write))
        });
        check_space(outdir, needed, outdir)?;
    }
    let extension = match format {
        Format::Raw => "raw",
        Format::Qcow2 => "qcow2",
        _ => "vmdk",
    };
    let mut taken = Vec::new();
    let mut jobs: Vec<(&VmDisk, &Disk, PathBuf)> = Vec::new();
    for (d, disk) in &disks {
        let stem = output_stem(disk, &d.device, &taken);
        jobs.push((d, disk, outdir.join(format!("{stem}.{extension}"))));
        taken.push(stem);
    }
    let workers = disks_at_once(convert.disks_at_once, jobs.len());
    let written = parallel::each(&jobs, workers, |(d, disk, out)| {
        let device = d.device.as_str();
        write_pending(disk, out, format, disk.capacity(), convert, &|n| {
            progress(device, n)
        })
        .map_err(|e| e.for_disk(device))
    })?;
    let report = InflateReport {
        vmx: vmx.to_path_buf(),
        disks: jobs
            .iter()
            .zip(&written)
            .map(|((d, disk, _), w)| InflatedDisk {
                device: d.device.clone(),
                from: disk.path().to_path_buf(),
                links: disk.chain().count(),
                files: w.report.files.clone(),
            })
            .collect(),
    };
    PendingWrite::commit_together(written)?;
    folder.keep();
    Ok(report)
}
