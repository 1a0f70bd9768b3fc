//! Inflate a disk into an eager-zeroed thick image: raw, or a thick VMDK (a `monolithicFlat` or
//! `vmfs` descriptor plus `NAME-flat.vmdk`).
//!
//! Every byte of the capacity is written ([`vmdk::copy::ZeroMode::Write`], the default), so the output has
//! no holes; `Falloc` preallocates without writing zeros, `Sparse` leaves holes. Outputs are
//! written under temporary names and renamed into place only when complete and flushed (the flat
//! extent before the descriptor that names it); an existing output is refused unless `force`,
//! and an output that is one of the input's files is always refused.

use std::path::{Path, PathBuf};

use vmdk::copy::{copy_to_file, CopyOptions, CopyStats};
use vmdk::flat::thick_descriptor;
use vmdk::Disk;

use crate::output::{check_target, OutputError, PendingFile};

/// What `inflate` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    /// The disk's bytes, nothing else.
    Raw,
    /// A `monolithicFlat` descriptor plus its flat extent.
    ThickVmdk,
    /// A `vmfs` descriptor (ESXi's thick type) plus its flat extent.
    EsxVmdk,
}

impl OutputFormat {
    /// The format a path asks for: `.vmdk` gives a thick VMDK (`esx` selects vmfs), else raw.
    pub fn for_path(path: &Path, esx: bool) -> Self {
        let is_vmdk = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("vmdk"));
        match (is_vmdk, esx) {
            (false, _) => Self::Raw,
            (true, false) => Self::ThickVmdk,
            (true, true) => Self::EsxVmdk,
        }
    }
}

/// Options of [`inflate`].
#[derive(Clone, Debug, Default)]
pub struct InflateOptions {
    /// Copy engine options (zero mode, threads).
    pub copy: CopyOptions,
    /// Replace existing outputs.
    pub force: bool,
}

/// Why inflating failed.
#[derive(Debug, thiserror::Error)]
pub enum InflateError {
    /// Reading the disk failed.
    #[error(transparent)]
    Disk(#[from] vmdk::Error),
    /// Creating or finishing an output failed.
    #[error(transparent)]
    Output(#[from] OutputError),
}

/// What [`inflate`] wrote.
#[derive(Clone, Debug)]
pub struct InflateReport {
    /// Files written, the one to open first.
    pub files: Vec<PathBuf>,
    /// Bytes of capacity written.
    pub capacity: u64,
    /// Data and zero bytes.
    pub stats: CopyStats,
}

/// The flat extent's path for a thick VMDK at `out`: `NAME-flat.vmdk` beside it.
pub fn flat_path(out: &Path) -> PathBuf {
    let stem = out
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    out.with_file_name(format!("{stem}-flat.vmdk"))
}

/// Inflates `disk` into `out`. `progress` receives byte counts as windows finish.
pub fn inflate(
    disk: &Disk,
    out: &Path,
    format: OutputFormat,
    options: &InflateOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<InflateReport, InflateError> {
    let inputs = disk.files();
    check_target(out, &inputs, options.force)?;
    let (data_path, descriptor_target) = match format {
        OutputFormat::Raw => (out.to_path_buf(), None),
        OutputFormat::ThickVmdk | OutputFormat::EsxVmdk => {
            let flat = flat_path(out);
            check_target(&flat, &inputs, options.force)?;
            (flat, Some(out.to_path_buf()))
        }
    };
    let data = PendingFile::create(&data_path)?;
    let stats = copy_to_file(disk, data.file(), data.temp_path(), &options.copy, progress)?;
    let descriptor = match &descriptor_target {
        Some(target) => {
            let flat_name = data_path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            let text = thick_descriptor(disk, &flat_name, format == OutputFormat::EsxVmdk).print();
            let pending = PendingFile::create(target)?;
            std::io::Write::write_all(&mut pending.file(), text.as_bytes()).map_err(|source| {
                OutputError::Io {
                    path: pending.temp_path().to_path_buf(),
                    source,
                }
            })?;
            Some(pending)
        }
        None => None,
    };
    // The data first: a descriptor never names a flat file that is not complete.
    data.commit()?;
    let mut files = vec![data_path];
    if let Some(d) = descriptor {
        d.commit()?;
        files.insert(0, out.to_path_buf());
    }
    Ok(InflateReport {
        files,
        capacity: disk.capacity(),
        stats,
    })
}
