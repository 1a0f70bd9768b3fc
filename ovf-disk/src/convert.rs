//! Convert a disk to raw or to any VMDK type this project writes, with safe outputs.
//!
//! Every output file is written under a temporary name and renamed into place only when
//! complete and flushed; extent files are committed before the descriptor that names them, so
//! a descriptor never names an incomplete extent. Existing outputs are refused unless `force`,
//! and outputs that are files of the input always.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use vmdk::copy::{copy_to_targets, CopyOptions, Target};
use vmdk::ddb::DiskSettings;
use vmdk::descriptor::{Access, CreateType, Descriptor, ExtentKind, ExtentLine};
use vmdk::flat::{flat_descriptor, split, TWO_GB_EXTENT_SECTORS};
use vmdk::sparse::write::write_sparse_extent;
use vmdk::stream::{write_stream_optimized, StreamOptions};
use vmdk::Disk;

use crate::output::{check_target, OutputError, PendingFile};

/// What `convert` writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutputType {
    /// The disk's bytes.
    Raw,
    /// A VMDK of this createType: monolithicSparse, monolithicFlat, twoGbMaxExtentSparse,
    /// twoGbMaxExtentFlat, streamOptimized or vmfs.
    Vmdk(CreateType),
}

impl OutputType {
    /// Parses `raw` or a createType name this project writes.
    pub fn parse(name: &str) -> Option<Self> {
        if name.eq_ignore_ascii_case("raw") {
            return Some(Self::Raw);
        }
        let t: CreateType = name.parse().ok()?;
        matches!(
            t,
            CreateType::MonolithicSparse
                | CreateType::MonolithicFlat
                | CreateType::TwoGbMaxExtentSparse
                | CreateType::TwoGbMaxExtentFlat
                | CreateType::StreamOptimized
                | CreateType::Vmfs
        )
        .then_some(Self::Vmdk(t))
    }
}

/// Options of [`convert`].
#[derive(Clone, Debug, Default)]
pub struct ConvertOptions {
    /// Copy engine options (zero mode and threads) for raw and flat outputs; threads for all.
    pub copy: CopyOptions,
    /// zlib level of stream-optimized output.
    pub level: Option<u32>,
    /// `ddb.adapterType` to write instead of the source's.
    pub adapter_type: Option<String>,
    /// `ddb.virtualHWVersion` to write instead of the source's.
    pub hw_version: Option<String>,
    /// `CID` to write instead of a random one, for reproducible output.
    pub cid: Option<u32>,
    /// Replace existing outputs.
    pub force: bool,
}

impl ConvertOptions {
    /// The disk database to write for `disk`.
    pub fn settings(&self, disk: &Disk) -> DiskSettings {
        let mut s = DiskSettings::from_disk(disk);
        if let Some(a) = &self.adapter_type {
            s.set_adapter_type(a);
        }
        if let Some(h) = &self.hw_version {
            s.hw_version = h.clone();
        }
        s.cid = self.cid;
        s
    }

    fn stream(&self, disk: &Disk, extent_name: &str) -> StreamOptions {
        StreamOptions {
            level: self.level.unwrap_or(vmdk::stream::DEFAULT_LEVEL),
            threads: self.copy.threads,
            settings: Some(self.settings(disk)),
            extent_name: extent_name.to_string(),
            ..StreamOptions::default()
        }
    }
}

/// Why converting failed.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// Reading the disk or writing a structure failed.
    #[error(transparent)]
    Disk(#[from] vmdk::Error),
    /// Creating or finishing an output failed.
    #[error(transparent)]
    Output(#[from] OutputError),
}

/// What [`convert`] wrote.
#[derive(Clone, Debug)]
pub struct Report {
    /// Files written, the one to open first.
    pub files: Vec<PathBuf>,
    /// Capacity of the disk.
    pub capacity: u64,
    /// Bytes of data read from the source (allocated, non-zero ranges).
    pub data: u64,
    /// Total bytes written to all files.
    pub written: u64,
}

/// Bytes of a grain of the sparse and stream-optimized outputs.
const GRAIN_BYTES: u64 = vmdk::stream::GRAIN_SECTORS * 512;

fn name_of(path: &Path) -> String {
    path.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

/// `OUT` with `-SUFFIX.vmdk` in place of `.vmdk`: `disk.vmdk` → `disk-flat.vmdk`, `disk-s001.vmdk`.
pub fn sibling(out: &Path, suffix: &str) -> PathBuf {
    let stem = out
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    out.with_file_name(format!("{stem}-{suffix}.vmdk"))
}

fn io_error(path: &Path, source: std::io::Error) -> ConvertError {
    ConvertError::Output(OutputError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn write_descriptor(target: &Path, d: &Descriptor) -> Result<PendingFile, ConvertError> {
    let p = PendingFile::create(target)?;
    p.file()
        .write_all(d.print().as_bytes())
        .map_err(|e| io_error(p.temp_path(), e))?;
    Ok(p)
}

fn file_len(p: &PendingFile) -> u64 {
    p.file().metadata().map_or(0, |m| m.len())
}

/// Converts `disk` into `out` as `output`. `progress` receives byte counts of the disk.
pub fn convert(
    disk: &Disk,
    out: &Path,
    output: &OutputType,
    options: &ConvertOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Report, ConvertError> {
    let inputs = disk.files();
    let capacity = disk.capacity();
    let check = |p: &Path| check_target(p, &inputs, options.force);
    check(out)?;
    let mut extents: Vec<PendingFile> = Vec::new();
    let mut descriptor: Option<PendingFile> = None;
    let mut data = 0u64;
    match output {
        OutputType::Raw => {
            let p = PendingFile::create(out)?;
            let t = Target {
                file: p.file(),
                path: p.temp_path(),
                start: 0,
                len: capacity,
            };
            data = copy_to_targets(disk, &[t], &options.copy, progress)?.data;
            extents.push(p);
        }
        OutputType::Vmdk(
            t @ (CreateType::MonolithicFlat | CreateType::Vmfs | CreateType::TwoGbMaxExtentFlat),
        ) => {
            let pieces = if *t == CreateType::TwoGbMaxExtentFlat {
                split(capacity, TWO_GB_EXTENT_SECTORS)
                    .into_iter()
                    .enumerate()
                    .map(|(i, r)| (sibling(out, &format!("f{:03}", i + 1)), r))
                    .collect()
            } else {
                vec![(sibling(out, "flat"), (0, capacity))]
            };
            let mut files = Vec::new();
            for (path, (_, len)) in &pieces {
                check(path)?;
                extents.push(PendingFile::create(path)?);
                files.push((name_of(path), *len));
            }
            let targets: Vec<Target<'_>> = extents
                .iter()
                .zip(&pieces)
                .map(|(p, (_, (start, len)))| Target {
                    file: p.file(),
                    path: p.temp_path(),
                    start: *start,
                    len: *len,
                })
                .collect();
            data = copy_to_targets(disk, &targets, &options.copy, progress)?.data;
            descriptor = Some(write_descriptor(
                out,
                &flat_descriptor(t, &files, &options.settings(disk)),
            )?);
        }
        OutputType::Vmdk(CreateType::MonolithicSparse) => {
            let p = PendingFile::create(out)?;
            let line = ExtentLine {
                access: Access::ReadWrite,
                sectors: capacity / 512,
                kind: ExtentKind::Sparse,
                file_name: Some(name_of(out)),
                offset: 0,
            };
            let d = options
                .settings(disk)
                .descriptor(&CreateType::MonolithicSparse, vec![line]);
            let t = Target {
                file: p.file(),
                path: p.temp_path(),
                start: 0,
                len: capacity,
            };
            let stats = write_sparse_extent(disk, &t, Some(&d), options.copy.threads, progress)?;
            data = (stats.grains * GRAIN_BYTES).min(capacity);
            extents.push(p);
        }
        OutputType::Vmdk(CreateType::TwoGbMaxExtentSparse) => {
            let mut lines = Vec::new();
            for (i, (start, len)) in split(capacity, TWO_GB_EXTENT_SECTORS)
                .into_iter()
                .enumerate()
            {
                let path = sibling(out, &format!("s{:03}", i + 1));
                check(&path)?;
                let p = PendingFile::create(&path)?;
                let t = Target {
                    file: p.file(),
                    path: p.temp_path(),
                    start,
                    len,
                };
                let stats = write_sparse_extent(disk, &t, None, options.copy.threads, progress)?;
                data += (stats.grains * GRAIN_BYTES).min(len);
                lines.push(ExtentLine {
                    access: Access::ReadWrite,
                    sectors: len / 512,
                    kind: ExtentKind::Sparse,
                    file_name: Some(name_of(&path)),
                    offset: 0,
                });
                extents.push(p);
            }
            descriptor = Some(write_descriptor(
                out,
                &options
                    .settings(disk)
                    .descriptor(&CreateType::TwoGbMaxExtentSparse, lines),
            )?);
        }
        OutputType::Vmdk(CreateType::StreamOptimized) => {
            let p = PendingFile::create(out)?;
            let mut w = BufWriter::with_capacity(1 << 20, p.file());
            let stats = write_stream_optimized(
                disk,
                &mut w,
                &options.stream(disk, &name_of(out)),
                progress,
            )?;
            w.flush().map_err(|e| io_error(p.temp_path(), e))?;
            drop(w);
            data = (stats.grains * GRAIN_BYTES).min(capacity);
            extents.push(p);
        }
        OutputType::Vmdk(other) => {
            return Err(ConvertError::Disk(vmdk::Error::new(
                None,
                "output",
                None,
                vmdk::ErrorKind::Unsupported(format!("writing {other}")),
            )));
        }
    }
    let mut written = extents.iter().map(file_len).sum::<u64>();
    let mut files = Vec::new();
    for p in extents {
        files.push(p.target().to_path_buf());
        p.commit()?;
    }
    if let Some(d) = descriptor {
        written += file_len(&d);
        files.insert(0, d.target().to_path_buf());
        d.commit()?;
    }
    Ok(Report {
        files,
        capacity,
        data,
        written,
    })
}

/// Writes `disk` as a stream-optimized VMDK to `out` (a pipe, standard output, a tar member).
pub fn convert_to_stream<W: Write>(
    disk: &Disk,
    out: &mut W,
    extent_name: &str,
    options: &ConvertOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Report, ConvertError> {
    let stats = write_stream_optimized(disk, out, &options.stream(disk, extent_name), progress)?;
    Ok(Report {
        files: Vec::new(),
        capacity: disk.capacity(),
        data: (stats.grains * GRAIN_BYTES).min(disk.capacity()),
        written: stats.bytes,
    })
}

/// Opens `path` as a VMDK, or as a raw image when `raw` is `Some(true)`, or when `raw` is `None`
/// and the file has neither the sparse magic nor a descriptor.
pub fn open_input(
    path: &Path,
    raw: Option<bool>,
    options: &vmdk::OpenOptions,
) -> Result<Disk, vmdk::Error> {
    match raw {
        Some(true) => Disk::open_raw(path, options),
        Some(false) => Disk::open_with(path, options),
        None => match Disk::open_with(path, options) {
            Err(e) if matches!(e.kind, vmdk::ErrorKind::NotVmdk(_)) => {
                Disk::open_raw(path, options)
            }
            other => other,
        },
    }
}
