//! Writing disks: raw images and every VMDK createType this library writes, as a library call.
//!
//! A [`Plan`] says which files a disk of a [`Format`] is written as, named after the output the
//! caller asked for (the spec's "Layout Basics", p. 2, and VMware's own naming):
//!
//! | format | files |
//! |---|---|
//! | raw | `OUT` |
//! | `monolithicSparse`, `streamOptimized` | `OUT` (descriptor embedded) |
//! | `monolithicFlat`, `vmfs` | `OUT-flat.vmdk`, then the descriptor `OUT` |
//! | `twoGbMaxExtentFlat` | `OUT-f001.vmdk`, `OUT-f002.vmdk`, ... (2047 MiB each), then `OUT` |
//! | `twoGbMaxExtentSparse` | `OUT-s001.vmdk`, `OUT-s002.vmdk`, ... (2047 MiB each), then `OUT` |
//! | qcow2 (version 3), VHD, VHDX (dynamic and fixed) | `OUT` |
//!
//! The caller opens each planned file (under a temporary name, so that nothing incomplete ever
//! carries the final name), [`Plan::write`] fills them from a [`Disk`] (or
//! [`Plan::write_stream`] from a disk read in one pass), and the caller then moves them into
//! place in the plan's order: extents before the descriptor that names them. The writers
//! themselves: [`copy`] (raw and flat data, eager-zeroed), [`sparse`] (hosted sparse extents),
//! [`stream`] (stream-optimized, VMware's layout), [`flat`] (thick descriptors), [`ddb`] (the
//! disk database), [`qcow2`], [`vhd`] and [`vhdx`]. Disks larger than 64 TiB are refused.

pub(crate) mod copy;
pub(crate) mod ddb;
pub(crate) mod flat;
pub(crate) mod geometry;
pub(crate) mod options;
mod ordered;
pub(crate) mod qcow2;
mod qcow2_resume;
pub(crate) mod qcow2_update;
#[cfg(test)]
mod resume_tests;
pub(crate) mod sparse;
pub(crate) mod stream;
pub(crate) mod vhd;
pub(crate) mod vhdx;
pub(crate) mod walk;
pub(crate) mod workers;

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use self::copy::Target;
use self::ddb::DiskSettings;
use self::flat::{flat_descriptor, split, TWO_GB_EXTENT_SECTORS};
use self::geometry::{check_write_capacity, GRAIN_SECTORS};
use self::options::WriteOptions;
use crate::descriptor::{Access, CreateType, Descriptor, ExtentKind, ExtentLine};
use crate::disk::Disk;
use crate::error::{Error, ErrorKind, Feature, Result};
use crate::format::SECTOR_SIZE;
use crate::read::stream::StreamReader;
use write_behind::WriteBehind;

/// What a disk is written as: its bytes, or a VMDK of a createType.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// The disk's bytes, nothing else.
    Raw,
    /// A VMDK: `monolithicSparse`, `monolithicFlat`, `twoGbMaxExtentSparse`,
    /// `twoGbMaxExtentFlat`, `streamOptimized` or `vmfs`.
    Vmdk(CreateType),
    /// A qcow2 image, version 3 (compat 1.1), 64 KiB clusters: what KVM hosts, Proxmox and
    /// OpenStack keep.
    Qcow2,
    /// A dynamic VHD (2 MiB blocks, at most 2040 GiB): what Hyper-V takes and XCP-ng imports
    /// (`vpc` to qemu-img).
    Vhd,
    /// A fixed VHD: the disk's bytes and a footer, its size rounded up to a whole MiB as Azure
    /// requires (`vhd-fixed`).
    VhdFixed,
    /// A dynamic VHDX (blocks of 8 to 64 MiB by size, as qemu-img chooses; at most 64 TiB):
    /// what Hyper-V takes.
    Vhdx,
    /// A fixed VHDX: every block in place, in disk order (`vhdx-fixed`).
    VhdxFixed,
}

impl Format {
    /// Every format the writers produce.
    pub fn all() -> [Format; 12] {
        [
            Self::Raw,
            Self::Qcow2,
            Self::Vhd,
            Self::VhdFixed,
            Self::Vhdx,
            Self::VhdxFixed,
            Self::Vmdk(CreateType::MonolithicSparse),
            Self::Vmdk(CreateType::MonolithicFlat),
            Self::Vmdk(CreateType::TwoGbMaxExtentSparse),
            Self::Vmdk(CreateType::TwoGbMaxExtentFlat),
            Self::Vmdk(CreateType::StreamOptimized),
            Self::Vmdk(CreateType::Vmfs),
        ]
    }

    /// `raw`, or the createType's name.
    pub fn name(&self) -> &str {
        match self {
            Self::Raw => "raw",
            Self::Qcow2 => "qcow2",
            Self::Vhd => "vhd",
            Self::VhdFixed => "vhd-fixed",
            Self::Vhdx => "vhdx",
            Self::VhdxFixed => "vhdx-fixed",
            Self::Vmdk(t) => t.as_str(),
        }
    }

    /// Whether this is no VMDK: raw, qcow2, VHD or VHDX, one file without a descriptor.
    fn is_other_image(&self) -> bool {
        !matches!(self, Self::Vmdk(_))
    }

    /// Whether every byte of the capacity is stored (raw and flat types): what a disk read in
    /// one pass can be written as, and what eager-zeroed thick needs.
    pub fn is_thick(&self) -> bool {
        matches!(
            self,
            Self::Raw
                | Self::VhdFixed
                | Self::Vmdk(
                    CreateType::MonolithicFlat | CreateType::TwoGbMaxExtentFlat | CreateType::Vmfs
                )
        )
    }
}

impl Format {
    /// Bytes a disk of `capacity` bytes written as this format takes on its file system
    /// whatever the disk holds: the whole capacity for raw and flat outputs written
    /// eager-zeroed or preallocated ([`ZeroMode::Write`](crate::ZeroMode::Write),
    /// [`ZeroMode::Falloc`](crate::ZeroMode::Falloc)), nothing for outputs whose size follows
    /// the data (sparse and stream-optimized formats, [`ZeroMode::Sparse`](crate::ZeroMode::Sparse));
    /// for qcow2, the capacity when preallocated `full` or `falloc`, and for a fixed VHDX the
    /// capacity unless its zeros are left as holes.
    /// What to compare with the free space of the target before a write that may take hours.
    pub fn space_needed(&self, capacity: u64, options: &WriteOptions) -> u64 {
        let preallocated = match self {
            // A qcow2 image written or reserved whole, a fixed VHDX with its zeros.
            Self::Qcow2 => matches!(
                options.preallocation,
                options::Preallocation::Full | options::Preallocation::Falloc
            ),
            Self::VhdxFixed => options.zero != options::ZeroMode::Sparse,
            _ => self.is_thick() && options.zero != options::ZeroMode::Sparse,
        };
        if preallocated {
            capacity
        } else {
            0
        }
    }
}

impl FromStr for Format {
    type Err = Error;

    /// `raw` or a createType name the writers produce (any case).
    fn from_str(name: &str) -> Result<Self> {
        let wanted = if name.eq_ignore_ascii_case("raw") {
            Self::Raw
        } else if name.eq_ignore_ascii_case("qcow2") {
            Self::Qcow2
        } else if name.eq_ignore_ascii_case("vhd") || name.eq_ignore_ascii_case("vpc") {
            Self::Vhd
        } else if name.eq_ignore_ascii_case("vhd-fixed") {
            Self::VhdFixed
        } else if name.eq_ignore_ascii_case("vhdx") {
            Self::Vhdx
        } else if name.eq_ignore_ascii_case("vhdx-fixed") {
            Self::VhdxFixed
        } else {
            Self::Vmdk(name.parse().unwrap_or(CreateType::Other(name.to_string())))
        };
        if Self::all().contains(&wanted) {
            return Ok(wanted);
        }
        Err(Error::new(
            None,
            "options",
            None,
            ErrorKind::Unsupported(Feature::WriteCreateType(name.to_string())),
        ))
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a planned file holds.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    /// A text descriptor naming the other files.
    Descriptor,
    /// `len` bytes of the disk from `start`, as they are (raw image or flat extent).
    Data { start: u64, len: u64 },
    /// `len` bytes of the disk from `start` as a hosted sparse extent, the descriptor embedded
    /// when `embedded`.
    Sparse {
        start: u64,
        len: u64,
        embedded: bool,
    },
    /// The whole disk as a stream-optimized extent.
    Stream,
    /// The whole disk as a qcow2 image.
    Qcow2,
    /// The whole disk as a dynamic VHD.
    Vhd,
    /// The first `len` bytes of the disk as they are, then a fixed VHD's footer.
    VhdFixed { len: u64 },
    /// The whole disk as a VHDX, fixed or dynamic.
    Vhdx { fixed: bool },
}

/// One file of a [`Plan`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedFile {
    path: PathBuf,
    part: Part,
}

impl PlannedFile {
    /// The file's final path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this is the disk's text descriptor (the file that names the others).
    pub fn is_descriptor(&self) -> bool {
        self.part == Part::Descriptor
    }
}

/// What a write produced.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriteReport {
    /// The files written (final paths), the one to open first.
    pub files: Vec<PathBuf>,
    /// Capacity of the disk, in bytes.
    pub capacity: u64,
    /// Bytes of data read from the source and written (allocated, non-zero ranges; whole
    /// grains for sparse and stream-optimized outputs).
    pub data: u64,
    /// Bytes the output files hold.
    pub written: u64,
}

/// The files a disk of a [`Format`] is written as (see the module's table), and the write.
///
/// ```
/// use vmdk::{Format, Plan};
///
/// let plan = Plan::new("twoGbMaxExtentFlat".parse()?, 5 << 30, "out/disk.vmdk")?;
/// let names: Vec<_> = plan.files().iter().map(|f| f.path().to_str().unwrap()).collect();
/// assert_eq!(names, ["out/disk-f001.vmdk", "out/disk-f002.vmdk", "out/disk-f003.vmdk", "out/disk.vmdk"]);
/// assert!(plan.files()[3].is_descriptor());
/// assert_eq!(Plan::new(Format::Raw, 1 << 20, "disk.raw")?.files().len(), 1);
/// # Ok::<(), vmdk::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Plan {
    format: Format,
    capacity: u64,
    files: Vec<PlannedFile>,
}

/// `OUT` with `-SUFFIX.vmdk` in place of its extension: `disk.vmdk` → `disk-flat.vmdk`.
fn sibling(out: &Path, suffix: &str) -> PathBuf {
    let stem = out
        .file_stem()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    out.with_file_name(format!("{stem}-{suffix}.vmdk"))
}

/// The last component of `path`, as the descriptor names it.
fn name_of(path: &Path) -> String {
    path.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

/// Refuses a file name a descriptor's extent line cannot hold: the spec's extent lines quote
/// the name with `"` and have no escape (spec p. 4), and a line ends at a line break.
fn check_extent_name(name: &str, path: &Path) -> Result<()> {
    if name.is_empty() || name.contains(['"', '\n', '\r', '\0']) {
        return Err(Error::new(
            Some(path),
            "output",
            None,
            ErrorKind::InvalidInput(format!(
                "a VMDK descriptor cannot name the file {name:?}: extent names may not be empty \
                    or hold '\"' or a line break"
            )),
        ));
    }
    Ok(())
}

impl Plan {
    /// Plans a disk of `capacity` bytes (a whole number of sectors, at most 64 TiB) written as
    /// `format` at `out`.
    pub fn new(format: Format, capacity: u64, out: impl AsRef<Path>) -> Result<Self> {
        let out = out.as_ref();
        check_write_capacity(capacity)?;
        if capacity % SECTOR_SIZE != 0 {
            return Err(Error::new(
                Some(out),
                "output",
                None,
                ErrorKind::InvalidInput(format!(
                    "a disk of {capacity} bytes is not a whole number of sectors"
                )),
            ));
        }
        // Azure takes fixed VHDs of whole MiB only: the disk is grown to the next one.
        let capacity = match format {
            Format::VhdFixed => capacity.div_ceil(1 << 20) << 20,
            _ => capacity,
        };
        let file = |path: PathBuf, part| PlannedFile { path, part };
        let pieces = |prefix: char, part: fn(u64, u64) -> Part| -> Vec<PlannedFile> {
            split(capacity, TWO_GB_EXTENT_SECTORS)
                .into_iter()
                .enumerate()
                .map(|(i, (start, len))| {
                    file(
                        sibling(out, &format!("{prefix}{:03}", i + 1)),
                        part(start, len),
                    )
                })
                .collect()
        };
        let whole = Part::Data {
            start: 0,
            len: capacity,
        };
        let mut files = match &format {
            Format::Raw => vec![file(out.to_path_buf(), whole)],
            Format::Qcow2 => vec![file(out.to_path_buf(), Part::Qcow2)],
            Format::Vhd => vec![file(out.to_path_buf(), Part::Vhd)],
            Format::VhdFixed => vec![file(out.to_path_buf(), Part::VhdFixed { len: capacity })],
            Format::Vhdx => vec![file(out.to_path_buf(), Part::Vhdx { fixed: false })],
            Format::VhdxFixed => vec![file(out.to_path_buf(), Part::Vhdx { fixed: true })],
            Format::Vmdk(CreateType::MonolithicFlat | CreateType::Vmfs) => {
                vec![file(sibling(out, "flat"), whole)]
            }
            Format::Vmdk(CreateType::TwoGbMaxExtentFlat) => {
                pieces('f', |start, len| Part::Data { start, len })
            }
            Format::Vmdk(CreateType::TwoGbMaxExtentSparse) => {
                pieces('s', |start, len| Part::Sparse {
                    start,
                    len,
                    embedded: false,
                })
            }
            Format::Vmdk(CreateType::MonolithicSparse) => vec![file(
                out.to_path_buf(),
                Part::Sparse {
                    start: 0,
                    len: capacity,
                    embedded: true,
                },
            )],
            Format::Vmdk(CreateType::StreamOptimized) => {
                vec![file(out.to_path_buf(), Part::Stream)]
            }
            Format::Vmdk(other) => {
                return Err(Error::new(
                    Some(out),
                    "output",
                    None,
                    ErrorKind::Unsupported(Feature::WriteCreateType(other.as_str().to_string())),
                ))
            }
        };
        let embedded = matches!(
            format,
            Format::Vmdk(CreateType::MonolithicSparse | CreateType::StreamOptimized)
        );
        if !format.is_other_image() && !embedded {
            files.push(file(out.to_path_buf(), Part::Descriptor));
        }
        if !format.is_other_image() {
            for f in files.iter().filter(|f| f.part != Part::Descriptor) {
                check_extent_name(&name_of(&f.path), &f.path)?;
            }
        }
        Ok(Self {
            format,
            capacity,
            files,
        })
    }

    /// The format planned.
    pub fn format(&self) -> &Format {
        &self.format
    }

    /// The files, in the order to move them into place: extents first, the descriptor (the
    /// file to open) last.
    pub fn files(&self) -> &[PlannedFile] {
        &self.files
    }

    /// Bytes the outputs take on their file system whatever the disk holds: see
    /// [`Format::space_needed`].
    pub fn space_needed(&self, options: &WriteOptions) -> u64 {
        self.format.space_needed(self.capacity, options)
    }

    /// Writes the stream-optimized file of the plan into `file` through a write-behind buffer;
    /// with a checkpoint in `options`, recording how far it got and continuing from where the
    /// checkpoint says an earlier run left `file` (read back by `stream::resume_point`, the
    /// bytes past it cut off).
    fn write_stream_part(
        &self,
        disk: &Disk,
        descriptor: &Descriptor,
        file: &File,
        options: &WriteOptions,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<stream::StreamWritten> {
        use std::io::Seek;
        let Some(checkpoint) = options.checkpoint.as_deref() else {
            let mut w = WriteBehind::new(file);
            let stats = stream::write_stream(disk, descriptor, &mut w, options, progress, None)?;
            w.flush()
                .map_err(|e| Error::new(None, "output", None, ErrorKind::Io(e)))?;
            return Ok(stats);
        };
        let io = |e| Error::new(None, "output", None, ErrorKind::Io(e));
        let from = match checkpoint.resume_from() {
            0 => None,
            pos => Some(stream::resume_point(file, pos, self.capacity)?),
        };
        let start = from.as_ref().map_or(0, |f| f.pos);
        file.set_len(start).map_err(io)?;
        let mut positioned = file;
        positioned
            .seek(std::io::SeekFrom::Start(start))
            .map_err(io)?;
        let mut w = WriteBehind::new(file);
        let sync = || file.sync_data();
        let resumable = stream::Resumable {
            checkpoint,
            sync: &sync,
            every: stream::CHECKPOINT_EVERY,
            from,
        };
        let stats = stream::write_stream(
            disk,
            descriptor,
            &mut w,
            options,
            progress,
            Some(&resumable),
        )?;
        w.flush().map_err(io)?;
        Ok(stats)
    }

    /// The file to open: the descriptor, or the one file.
    fn main_file(&self) -> &Path {
        self.files
            .last()
            .map_or(Path::new(""), |f| f.path.as_path())
    }

    /// Checks that `outputs` match the plan's files, and that the disk is the planned size (or
    /// smaller, for a thick format: the rest is written as zeros).
    fn check_outputs(&self, outputs: &[(&File, &Path)], capacity: u64) -> Result<()> {
        let fits =
            capacity == self.capacity || (capacity < self.capacity && self.format.is_thick());
        if outputs.len() != self.files.len() || !fits {
            return Err(Error::new(
                Some(self.main_file()),
                "output",
                None,
                ErrorKind::InvalidInput(format!(
                    "{} files for a plan of {}, a disk of {capacity} bytes for a plan of {}",
                    outputs.len(),
                    self.files.len(),
                    self.capacity
                )),
            ));
        }
        Ok(())
    }

    /// The targets of the plan's raw and flat data files.
    fn data_targets<'a>(&self, outputs: &[(&'a File, &'a Path)]) -> Vec<Target<'a>> {
        self.files
            .iter()
            .zip(outputs)
            .filter_map(|(f, &(file, path))| match f.part {
                Part::Data { start, len } => Some(Target {
                    file,
                    path,
                    start,
                    len,
                }),
                Part::VhdFixed { len } => Some(Target {
                    file,
                    path,
                    start: 0,
                    len,
                }),
                _ => None,
            })
            .collect()
    }

    /// The descriptor of the disk written, with `settings`.
    fn descriptor(&self, settings: &DiskSettings) -> Descriptor {
        let (kind, create_type) = match &self.format {
            Format::Vmdk(t @ CreateType::Vmfs) => (ExtentKind::Vmfs, t.clone()),
            Format::Vmdk(t @ CreateType::MonolithicFlat | t @ CreateType::TwoGbMaxExtentFlat) => {
                (ExtentKind::Flat, t.clone())
            }
            Format::Vmdk(t) => (ExtentKind::Sparse, t.clone()),
            // Neither has a descriptor; one is made all the same (unused).
            Format::Raw
            | Format::Qcow2
            | Format::Vhd
            | Format::VhdFixed
            | Format::Vhdx
            | Format::VhdxFixed => (ExtentKind::Flat, CreateType::MonolithicFlat),
        };
        if kind != ExtentKind::Sparse {
            let files: Vec<(String, u64)> = self
                .files
                .iter()
                .filter_map(|f| match f.part {
                    Part::Data { len, .. } => Some((name_of(&f.path), len)),
                    _ => None,
                })
                .collect();
            return flat_descriptor(&create_type, &files, settings);
        }
        let lines = self
            .files
            .iter()
            .filter_map(|f| match f.part {
                Part::Sparse { len, .. } => Some((name_of(&f.path), len / SECTOR_SIZE)),
                Part::Stream => Some((name_of(&f.path), self.capacity / SECTOR_SIZE)),
                _ => None,
            })
            .map(|(name, sectors)| ExtentLine {
                access: Access::ReadWrite,
                sectors,
                kind: ExtentKind::Sparse,
                file_name: Some(name),
                offset: 0,
            })
            .collect();
        settings.descriptor(&create_type, lines)
    }

    /// Writes `disk` into `outputs`: for each of [`Plan::files`], in that order, the open file
    /// (empty) and the path it is open at (named in errors, and reopened for `O_DIRECT`
    /// writes; a temporary name, typically). The disk database comes from the disk, with the
    /// options' overrides. `progress` is called with bytes of the disk as they are done.
    ///
    /// A thick format ([`Format::is_thick`]) may be planned larger than the disk: the disk is
    /// then grown, its bytes followed by zeros up to the planned capacity (written as the
    /// options' [`ZeroMode`](crate::ZeroMode) says) and the geometry following the new size, as
    /// vSphere grows a disk to the capacity its OVF declares on deploy (DSP0243 section 9.1).
    pub fn write(
        &self,
        disk: &Disk,
        outputs: &[(&File, &Path)],
        options: &WriteOptions,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<WriteReport> {
        self.check_outputs(outputs, disk.capacity())?;
        let settings = DiskSettings::from_disk(disk)
            .grown_to(self.capacity)
            .with(options);
        let descriptor = self.descriptor(&settings);
        let grain_bytes = GRAIN_SECTORS * SECTOR_SIZE;
        let mut data = 0;
        let targets = self.data_targets(outputs);
        if !targets.is_empty() {
            data += disk.copy_to(&targets, options, progress)?.data;
        }
        for (f, &(file, path)) in self.files.iter().zip(outputs) {
            match f.part {
                Part::Sparse {
                    start,
                    len,
                    embedded,
                } => {
                    let target = Target {
                        file,
                        path,
                        start,
                        len,
                    };
                    // Each extent records checkpoints and resumes in its own bytes.
                    let shifted = options
                        .checkpoint
                        .as_deref()
                        .map(|disk| sparse::ExtentCheckpoint { disk, start, len });
                    let resumable = shifted.as_ref().map(|checkpoint| sparse::SparseResumable {
                        checkpoint,
                        every: sparse::CHECKPOINT_EVERY,
                    });
                    let embedded = embedded.then_some(&descriptor);
                    let stats = sparse::write_sparse_extent(
                        disk,
                        &target,
                        embedded,
                        options.threads,
                        options.cancel.as_deref(),
                        progress,
                        resumable.as_ref(),
                    )?;
                    data += (stats.grains * grain_bytes).min(len);
                }
                Part::Stream => {
                    let stats = self
                        .write_stream_part(disk, &descriptor, file, options, progress)
                        .map_err(|e| in_file(e, path))?;
                    data += (stats.grains * grain_bytes).min(self.capacity);
                }
                Part::Descriptor => write_descriptor(file, path, &descriptor)?,
                Part::Qcow2 => {
                    data += qcow2::write_qcow2(disk, file, path, self.capacity, options, progress)
                        .map_err(|e| in_file(e, path))?;
                }
                Part::Vhd => {
                    data += vhd::write_vhd(disk, file, path, self.capacity, options, progress)
                        .map_err(|e| in_file(e, path))?;
                }
                Part::Vhdx { fixed } => {
                    let size = (self.capacity, fixed);
                    data += vhdx::write_vhdx(disk, file, path, size, options, progress)
                        .map_err(|e| in_file(e, path))?;
                }
                Part::VhdFixed { len } => vhd::write_fixed_footer(file, path, len)?,
                Part::Data { .. } => {}
            }
        }
        self.report(outputs, data)
    }

    /// Writes a disk read in one pass (a stream-optimized disk from a pipe or a tar member)
    /// into `outputs`, as [`Plan::write`] does (grown to the plan's capacity if the stream's is
    /// smaller); only thick formats ([`Format::is_thick`]) can be written this way. The disk
    /// database comes from the stream's embedded descriptor, with the options' overrides.
    pub fn write_stream<R: Read>(
        &self,
        stream: StreamReader<R>,
        outputs: &[(&File, &Path)],
        options: &WriteOptions,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<WriteReport> {
        if !self.format.is_thick() {
            return Err(Error::new(
                Some(self.main_file()),
                "output",
                None,
                ErrorKind::Unsupported(Feature::StreamInto(self.format.name().to_string())),
            ));
        }
        self.check_outputs(outputs, stream.capacity())?;
        let settings = stream
            .descriptor()
            .map_or_else(
                || DiskSettings::new(stream.capacity()),
                |d| DiskSettings::from_descriptor(d, stream.capacity()),
            )
            .grown_to(self.capacity)
            .with(options);
        let descriptor = self.descriptor(&settings);
        let stats = stream.copy_to(&self.data_targets(outputs), options, progress)?;
        for (f, &(file, path)) in self.files.iter().zip(outputs) {
            match f.part {
                Part::Descriptor => write_descriptor(file, path, &descriptor)?,
                Part::VhdFixed { len } => vhd::write_fixed_footer(file, path, len)?,
                _ => {}
            }
        }
        self.report(outputs, stats.data)
    }

    /// The report of a write into `outputs`: files in the order to open them, sizes.
    fn report(&self, outputs: &[(&File, &Path)], data: u64) -> Result<WriteReport> {
        let mut written = 0;
        for &(file, path) in outputs {
            written += file
                .metadata()
                .map_err(|e| Error::file(path, ErrorKind::Io(e)))?
                .len();
        }
        let mut files: Vec<PathBuf> = self.files.iter().map(|f| f.path.clone()).collect();
        files.rotate_right(1);
        Ok(WriteReport {
            files,
            capacity: self.capacity,
            data,
            written,
        })
    }
}

/// `e`, named after `path` when it names no file (the stream writer writes to any `Write`).
fn in_file(e: Error, path: &Path) -> Error {
    match e.path() {
        Some(_) => e,
        None => Error::new(Some(path), e.structure(), e.offset(), e.into_kind()),
    }
}

fn write_descriptor(mut file: &File, path: &Path, d: &Descriptor) -> Result<()> {
    file.write_all(d.print().as_bytes())
        .map_err(|e| Error::file(path, ErrorKind::Io(e)))
}

/// Writes `disk` as a stream-optimized VMDK in VMware's layout (footer, end-of-stream marker,
/// `GD_AT_END`, which ESXi imports) to `out`, in one forward pass: standard output, a pipe, a
/// tar member. Its embedded descriptor names the extent [`WriteOptions::extent_name`].
///
/// ```
/// # fn main() -> vmdk::Result<()> {
/// let mut files = vmdk::MemoryFiles::new();
/// files.insert("disk.raw", vec![7u8; 1 << 20]);
/// let disk = vmdk::OpenOptions::new().files(files).open_raw("disk.raw")?;
/// let mut out = Vec::new();
/// let report = vmdk::write_stream_optimized(&disk, &mut out, &vmdk::WriteOptions::new(), &|_| {})?;
/// assert_eq!(report.written, out.len() as u64);
/// # Ok(())
/// # }
/// ```
pub fn write_stream_optimized<W: Write>(
    disk: &Disk,
    out: &mut W,
    options: &WriteOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<WriteReport> {
    let capacity = disk.capacity();
    check_extent_name(&options.extent_name, Path::new(&options.extent_name))?;
    let settings = DiskSettings::from_disk(disk).with(options);
    let extent = ExtentLine {
        access: Access::ReadWrite,
        sectors: capacity.div_ceil(SECTOR_SIZE),
        kind: ExtentKind::Sparse,
        file_name: Some(options.extent_name.clone()),
        offset: 0,
    };
    let descriptor = settings.descriptor(&CreateType::StreamOptimized, vec![extent]);
    let stats = stream::write_stream(disk, &descriptor, out, options, progress, None)?;
    Ok(WriteReport {
        files: Vec::new(),
        capacity,
        data: (stats.grains * GRAIN_SECTORS * SECTOR_SIZE).min(capacity),
        written: stats.bytes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preallocated_outputs_need_their_capacity() {
        let full = WriteOptions::new().preallocation(options::Preallocation::Full);
        let plain = WriteOptions::new();
        assert_eq!(Format::Qcow2.space_needed(1 << 30, &full), 1 << 30);
        assert_eq!(Format::Qcow2.space_needed(1 << 30, &plain), 0);
        assert_eq!(Format::VhdxFixed.space_needed(1 << 30, &plain), 1 << 30);
        assert_eq!(Format::Vhdx.space_needed(1 << 30, &plain), 0);
        let holes = WriteOptions::new().zero(options::ZeroMode::Sparse);
        assert_eq!(Format::VhdxFixed.space_needed(1 << 30, &holes), 0);
    }

    #[test]
    fn an_unknown_format_lists_every_format_written() {
        let e = "vdi".parse::<Format>().unwrap_err().to_string();
        let all = Format::all();
        let names: Vec<&str> = all.iter().map(Format::name).collect();
        let listed = e.split_once("write ").map_or("", |(_, l)| l);
        let listed: Vec<&str> = listed
            .trim_end_matches(')')
            .split([',', ' '])
            .filter(|w| !w.is_empty() && *w != "and")
            .collect();
        assert_eq!(listed, names, "{e}");
    }

    #[test]
    fn plans_name_files_as_vmware_does() {
        let names = |f: &str, cap: u64| -> Vec<String> {
            Plan::new(f.parse().unwrap(), cap, "d/x.vmdk")
                .unwrap()
                .files()
                .iter()
                .map(|p| p.path().display().to_string())
                .collect()
        };
        assert_eq!(names("raw", 512), ["d/x.vmdk"]);
        assert_eq!(names("qcow2", 512), ["d/x.vmdk"]);
        assert_eq!(names("monolithicFlat", 512), ["d/x-flat.vmdk", "d/x.vmdk"]);
        assert_eq!(names("vmfs", 512), ["d/x-flat.vmdk", "d/x.vmdk"]);
        assert_eq!(names("streamOptimized", 512), ["d/x.vmdk"]);
        assert_eq!(names("monolithicSparse", 512), ["d/x.vmdk"]);
        assert_eq!(
            names("twoGbMaxExtentSparse", 4 << 30),
            [
                "d/x-s001.vmdk",
                "d/x-s002.vmdk",
                "d/x-s003.vmdk",
                "d/x.vmdk"
            ]
        );
        assert!("vmfsSparse".parse::<Format>().is_err());
        assert!(Plan::new(Format::Raw, 100, "x").is_err());
        // A descriptor cannot name a file with a double quote; a raw image has no descriptor.
        for t in ["monolithicFlat", "streamOptimized", "twoGbMaxExtentSparse"] {
            let e = Plan::new(t.parse().unwrap(), 512, "q\"x.vmdk").unwrap_err();
            assert!(matches!(e.kind(), ErrorKind::InvalidInput(_)), "{t}: {e}");
        }
        assert!(Plan::new(Format::Raw, 512, "q\"x.raw").is_ok());
        assert!(Plan::new(Format::Raw, 65 << 40, "x").is_err());
    }
}
