//! Inflate a disk into an eager-zeroed thick image: raw, or a thick VMDK (a `monolithicFlat` or
//! `vmfs` descriptor plus `NAME-flat.vmdk`).
//!
//! Every byte of the capacity is written ([`vmdk::copy::ZeroMode::Write`], the default), so the
//! output has no holes; `Falloc` preallocates without writing zeros, `Sparse` leaves holes.
//! Output safety is [`crate::convert`]'s: temporary names, renamed into place when complete.

use std::path::{Path, PathBuf};

use vmdk::copy::CopyOptions;
use vmdk::descriptor::CreateType;
use vmdk::Disk;

use crate::convert::{convert, ConvertError, ConvertOptions, OutputType};

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

    fn output_type(self) -> OutputType {
        match self {
            Self::Raw => OutputType::Raw,
            Self::ThickVmdk => OutputType::Vmdk(CreateType::MonolithicFlat),
            Self::EsxVmdk => OutputType::Vmdk(CreateType::Vmfs),
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
pub type InflateError = ConvertError;

/// What [`inflate`] wrote.
#[derive(Clone, Debug)]
pub struct InflateReport {
    /// Files written, the one to open first.
    pub files: Vec<PathBuf>,
    /// Bytes of capacity written.
    pub capacity: u64,
    /// Bytes of data read and written.
    pub data: u64,
}

/// Inflates `disk` into `out`. `progress` receives byte counts as windows finish.
pub fn inflate(
    disk: &Disk,
    out: &Path,
    format: OutputFormat,
    options: &InflateOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<InflateReport, InflateError> {
    let convert_options = ConvertOptions {
        copy: options.copy.clone(),
        force: options.force,
        ..ConvertOptions::default()
    };
    let r = convert(disk, out, &format.output_type(), &convert_options, progress)?;
    Ok(InflateReport {
        files: r.files,
        capacity: r.capacity,
        data: r.data,
    })
}
