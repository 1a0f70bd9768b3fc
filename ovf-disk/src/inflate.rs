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

use crate::convert::{convert, sibling, ConvertError, ConvertOptions, OutputType};
use crate::output::{check_target, PendingFile};

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
    /// For [`inflate_stream`]: the largest capacity a stream may announce (an OVF's declared
    /// capacity); a larger one is refused before any output is made.
    pub max_capacity: Option<u64>,
}

/// Refuses a disk (`name`, its capacity read from `structure` at `offset`) whose capacity is
/// larger than `max`, the capacity its package declares: an envelope's `ovf:capacity` bounds
/// what an import writes (DSP0243 section 9.1, DiskSection).
pub fn within_declared(
    name: &str,
    structure: &'static str,
    offset: Option<u64>,
    capacity: u64,
    max: Option<u64>,
) -> Result<(), vmdk::Error> {
    match max {
        Some(max) if capacity > max => Err(vmdk::Error::new(
            Some(Path::new(name)),
            structure,
            offset,
            vmdk::ErrorKind::Inconsistent(format!(
                "the disk announces {capacity} bytes, more than the {max} its package declares"
            )),
        )),
        _ => Ok(()),
    }
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

/// Inflates a stream-optimized disk read from `input` (standard input, a pipe, a tar member)
/// in one forward pass into `out`, with no temporary copy: raw, or a thick VMDK whose database
/// comes from the stream's embedded descriptor. Outputs appear only when complete.
pub fn inflate_stream<R: std::io::Read>(
    input: &mut R,
    name: &str,
    out: &Path,
    format: OutputFormat,
    options: &InflateOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<InflateReport, InflateError> {
    use std::io::Read as _;
    use vmdk::copy::{Target, TargetSink};
    use vmdk::ddb::DiskSettings;
    use vmdk::flat::flat_descriptor;
    use vmdk::stream::read::{read_stream_optimized, stream_capacity};

    let mut head = [0u8; 512];
    input.read_exact(&mut head).map_err(|e| {
        vmdk::Error::new(
            Some(Path::new(name)),
            "sparse header",
            Some(0),
            vmdk::ErrorKind::Io(e),
        )
    })?;
    let capacity = stream_capacity(&head, name)?;
    within_declared(
        name,
        "sparse header",
        Some(12),
        capacity,
        options.max_capacity,
    )?;
    check_target(out, &[], options.force)?;
    let data_path = match format {
        OutputFormat::Raw => out.to_path_buf(),
        OutputFormat::ThickVmdk | OutputFormat::EsxVmdk => {
            let flat = sibling(out, "flat");
            check_target(&flat, &[], options.force)?;
            flat
        }
    };
    let data = PendingFile::create(&data_path)?;
    let targets = [Target {
        file: data.file(),
        path: data.temp_path(),
        start: 0,
        len: capacity,
    }];
    let sink = ProgressSink {
        inner: TargetSink::new(&targets, &options.copy)?,
        progress,
    };
    let mut chained = std::io::Cursor::new(head).chain(input);
    let stats = read_stream_optimized(&mut chained, name, &sink, options.copy.threads)?;
    let mut files = vec![data_path.clone()];
    let descriptor = match format {
        OutputFormat::Raw => None,
        OutputFormat::ThickVmdk | OutputFormat::EsxVmdk => {
            let settings = stats.descriptor.as_ref().map_or_else(
                || DiskSettings::new(capacity),
                |d| DiskSettings::from_descriptor(d, capacity),
            );
            let t = if format == OutputFormat::EsxVmdk {
                CreateType::Vmfs
            } else {
                CreateType::MonolithicFlat
            };
            let name = data_path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            let d = flat_descriptor(&t, &[(name, capacity)], &settings);
            let p = PendingFile::create(out)?;
            std::io::Write::write_all(&mut p.file(), d.print().as_bytes()).map_err(|source| {
                crate::output::OutputError::Io {
                    path: p.temp_path().to_path_buf(),
                    source,
                }
            })?;
            files.insert(0, out.to_path_buf());
            Some(p)
        }
    };
    data.commit()?;
    if let Some(d) = descriptor {
        d.commit()?;
    }
    Ok(InflateReport {
        files,
        capacity,
        data: (stats.grains * vmdk::stream::GRAIN_SECTORS * 512).min(capacity),
    })
}

/// Passes a streaming read to its sink and reports progress as bytes are placed.
struct ProgressSink<'a> {
    inner: vmdk::copy::TargetSink<'a>,
    progress: &'a (dyn Fn(u64) + Sync),
}

impl vmdk::stream::read::StreamSink for ProgressSink<'_> {
    fn begin(&self, capacity: u64) -> vmdk::Result<()> {
        self.inner.begin(capacity)
    }

    fn write(&self, offset: u64, data: &[u8]) -> vmdk::Result<()> {
        self.inner.write(offset, data)?;
        (self.progress)(data.len() as u64);
        Ok(())
    }

    fn zero(&self, offset: u64, len: u64) -> vmdk::Result<()> {
        self.inner.zero(offset, len)?;
        (self.progress)(len);
        Ok(())
    }
}
