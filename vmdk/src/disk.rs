//! One virtual disk: the extents of a link joined end to end, over its parent links.
//!
//! Spec: "Layout Basics" (links and extents, p. 2), "Accessing a Sector in a Flat Extent" (p. 5)
//! and "Accessing a Sector in a Hosted Sparse Extent" (p. 8). [`Disk::open`] takes any file a
//! user would name: a text descriptor (monolithicFlat, twoGbMaxExtent*, vmfs*, custom, and the
//! ESXi deltas vmfsSparse and seSparse), or a sparse extent with an embedded descriptor
//! (monolithicSparse, streamOptimized), or a lone sparse extent. Delta links are followed
//! through `parentFileNameHint`, their `parentCID` checked against the parent's `CID`, and
//! loops refused; the ESXi delta extents (`VMFSSPARSE`, `SESPARSE`) read their unallocated
//! grains through to the parent as hosted ones do. An ESXi delta extent file opened on its own
//! is refused: only its descriptor names its parent.
//!
//! A [`Disk`] gives its capacity, positioned reads of any byte range ([`Disk::read_exact_at`],
//! and [`ReadAt`] from many threads at once) and an allocation map ([`Disk::map`]) that tells
//! data, zeroed and unallocated ranges apart from metadata alone.
//!
//! Not read ([`ErrorKind::Unsupported`]): raw device maps and device-backed disks. Files named by a descriptor must stay in its folder unless
//! [`OpenOptions::allow_outside_paths`] is set.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use positioned_io::ReadAt;

use crate::descriptor::{
    Access, CreateType, Descriptor, ExtentKind, ExtentLine, CID_NO_PARENT, MAX_DESCRIPTOR_SIZE,
};
use crate::error::{Error, ErrorKind, Feature, Result};
use crate::format::SECTOR_SIZE;
use crate::io::{folder_of, resolve_name, Backing, Files, HostFiles};
use crate::read::esx::{EsxExtent, COWD_HEADER, SESPARSE_HEADER};
use crate::read::grains::{GrainEntry, Grains};
use crate::read::header::has_sparse_magic;
use crate::read::qcow2::Qcow2Extent;
use crate::read::sparse::SparseExtent;
use crate::read::{cowd, qcow2, sesparse};

mod placement;
pub use placement::Placement;

/// How a disk is opened: where its files come from and how far to trust what they name.
///
/// ```
/// let mut files = vmdk::MemoryFiles::new();
/// files.insert("d.vmdk", b"createType=\"custom\"\nRW 8 ZERO\n".to_vec());
/// let disk = vmdk::OpenOptions::new()
///     .files(files)
///     .ignore_parent_cid(true)
///     .open("d.vmdk")?;
/// assert_eq!(disk.capacity(), 8 * 512);
/// # Ok::<(), vmdk::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct OpenOptions {
    allow_outside_paths: bool,
    ignore_parent_cid: bool,
    max_chain_length: usize,
    link_only: bool,
    files: Arc<dyn Files>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            allow_outside_paths: false,
            ignore_parent_cid: false,
            max_chain_length: 64,
            link_only: false,
            files: Arc::new(HostFiles::default()),
        }
    }
}

impl OpenOptions {
    /// The defaults: the host's files, read with positioned reads; names outside the
    /// descriptor's folder refused; `parentCID` checked; chains of at most 64 links.
    pub fn new() -> Self {
        Self::default()
    }

    /// Follow extent and parent names that lead outside the descriptor's folder (absolute
    /// paths, `..`, links, device files). Off by default: importers must not read host files.
    pub fn allow_outside_paths(mut self, allow: bool) -> Self {
        self.allow_outside_paths = allow;
        self
    }

    /// Accept a parent whose `CID` differs from the child's `parentCID`.
    pub fn ignore_parent_cid(mut self, ignore: bool) -> Self {
        self.ignore_parent_cid = ignore;
        self
    }

    /// The longest parent chain followed, in links, the disk itself included (default 64).
    pub fn max_chain_length(mut self, links: usize) -> Self {
        self.max_chain_length = links;
        self
    }

    /// Opens the link alone: its parent is neither opened nor read, and what the link does not
    /// hold maps as [`Allocation::Unallocated`] and reads as zeros. What a snapshot delta
    /// itself holds, for writing only the change onto a copy of its parent.
    pub fn link_only(mut self, alone: bool) -> Self {
        self.link_only = alone;
        self
    }

    /// Memory-map the host's files instead of reading them with positioned reads: reads need
    /// no system call, but mapped pages count in the resident size, which then grows with the
    /// input. Replaces files given with [`OpenOptions::files`].
    pub fn mmap(mut self, map: bool) -> Self {
        self.files = Arc::new(HostFiles { map });
        self
    }

    /// Where files come from: [`crate::MemoryFiles`], or an importer's own [`Files`].
    pub fn files(mut self, files: impl Files + 'static) -> Self {
        self.files = Arc::new(files);
        self
    }

    /// Opens the disk `path` names (see [`Disk::open`]). The file itself is the caller's choice
    /// and may be anywhere; the files it names are held to these options.
    pub fn open(&self, path: impl AsRef<Path>) -> Result<Disk> {
        let path = path.as_ref();
        let backing = self.files.open(path)?;
        let mut seen = Vec::new();
        Disk::open_link(backing, self, &mut seen).map_err(|e| self.name_other_format(path, e))
    }

    /// Opens a raw image as a disk: one flat extent over the whole file, whose length must be
    /// a whole number of sectors.
    pub fn open_raw(&self, path: impl AsRef<Path>) -> Result<Disk> {
        Disk::open_raw(path.as_ref(), self)
    }

    /// Opens `path` as a VMDK, or as a raw image when it is not one (neither the sparse magic
    /// nor a descriptor): what a converter does with a file of unknown kind. A file whose magic
    /// names another image format (qcow2, VHDX, VHD, VDI, QED, LUKS) is refused by name
    /// ([`ErrorKind::OtherFormat`], as [`OpenOptions::open`] refuses it), never taken for raw
    /// bytes; [`OpenOptions::open_raw`] still reads any file as raw.
    pub fn open_vmdk_or_raw(&self, path: impl AsRef<Path>) -> Result<Disk> {
        match self.open(&path) {
            Err(e) if matches!(e.kind(), ErrorKind::NotVmdk) => self.open_raw(path),
            other => other,
        }
    }

    /// The files this opens through: the host's, memory, or an importer's own.
    pub(crate) fn files_in_use(&self) -> &dyn Files {
        &*self.files
    }

    /// `error`, or, when it says `path` is no VMDK and the file's magic names another image
    /// format, that format.
    fn name_other_format(&self, path: &Path, error: Error) -> Error {
        if !matches!(error.kind(), ErrorKind::NotVmdk) {
            return error;
        }
        let Ok(backing) = self.files.open(path) else {
            return error;
        };
        let len = backing.len();
        let tail_at = len.saturating_sub(SECTOR_SIZE);
        let head = backing.read_vec("image header", 0, len.min(SECTOR_SIZE));
        let tail = backing.read_vec("image footer", tail_at, len - tail_at);
        match (head, tail) {
            (Ok(head), Ok(tail)) => match other_format(&head, &tail) {
                Some(name) => Error::file(path, ErrorKind::OtherFormat(name)),
                None => error,
            },
            _ => error,
        }
    }

    /// Opens a file a descriptor at `descriptor` names (`name`, as written there), held to the
    /// folder policy.
    fn open_named(&self, descriptor: &Path, name: &str) -> Result<Backing> {
        let path = resolve_name(descriptor, name, self.allow_outside_paths)?;
        if !self.allow_outside_paths {
            if let Some(why) = self.files.leads_outside(&path, &folder_of(descriptor))? {
                let name = name.to_string();
                return Err(Error::file(&path, ErrorKind::PathOutside { name, why }));
            }
        }
        self.files.open(&path)
    }
}

/// Where an extent's data comes from.
#[derive(Debug)]
pub(crate) enum ExtentData {
    /// Bytes of a file from an offset (FLAT, VMFS).
    Flat {
        /// The file.
        backing: Backing,
        /// Byte offset of the extent's first sector in the file.
        offset: u64,
    },
    /// Reads as zeros (ZERO).
    Zero,
    /// A hosted sparse or stream-optimized extent (SPARSE).
    Sparse(Box<SparseExtent>),
    /// An ESXi delta extent: vmfsSparse (VMFSSPARSE, `COWD`) or seSparse (SESPARSE).
    Esx(Box<EsxExtent>),
    /// A qcow2 image, the whole of its link.
    Qcow2(Box<Qcow2Extent>),
}

/// One extent of a link, placed in the disk.
#[derive(Debug)]
pub(crate) struct Extent {
    /// The descriptor's line.
    pub line: ExtentLine,
    /// Byte offset of the extent in the disk.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
    /// Its data.
    pub data: ExtentData,
}

impl Extent {
    /// The file holding the extent's data, none for a ZERO extent.
    pub(crate) fn backing(&self) -> Option<&Backing> {
        match &self.data {
            ExtentData::Flat { backing, .. } => Some(backing),
            ExtentData::Sparse(s) => Some(s.backing()),
            ExtentData::Esx(s) => Some(Grains::backing(&**s)),
            ExtentData::Qcow2(s) => Some(Grains::backing(&**s)),
            ExtentData::Zero => None,
        }
    }
}

/// What a range of the disk holds, known from metadata alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Allocation {
    /// Stored data (flat extents, allocated grains) in this link or a parent.
    Data,
    /// Explicitly zero: zeroed-grain entries and ZERO extents.
    Zero,
    /// Stored nowhere in the chain: reads as zeros.
    Unallocated,
}

impl Allocation {
    /// Whether the range reads as zeros without looking at data.
    pub fn is_zero(self) -> bool {
        !matches!(self, Self::Data)
    }
}

/// A run of the allocation map: `len` bytes from `offset` that hold one [`Allocation`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct Run {
    /// Byte offset in the disk.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// What it holds.
    pub kind: Allocation,
}

/// Bytes of each allocation kind over a whole disk.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct AllocationSummary {
    /// Bytes of stored data.
    pub data: u64,
    /// Bytes explicitly zero.
    pub zero: u64,
    /// Bytes stored nowhere.
    pub unallocated: u64,
}

/// An open virtual disk: one link, its extents, and its parent links.
///
/// ```
/// # fn main() -> vmdk::Result<()> {
/// let disk = vmdk::Disk::open("../testdata/fuzz-seeds/disk/stream-vmware.vmdk")?;
/// let mut first = vec![0u8; 512];
/// disk.read_exact_at(0, &mut first)?;
/// let summary = disk.allocation_summary()?;
/// assert_eq!(summary.data + summary.zero + summary.unallocated, disk.capacity());
/// for run in disk.map(0, disk.capacity())? {
///     println!("{:#x}+{:#x}: {:?}", run.offset, run.len, run.kind);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Disk {
    path: PathBuf,
    descriptor: Descriptor,
    create_type: CreateType,
    capacity: u64,
    extents: Vec<Extent>,
    parent: Option<Box<Disk>>,
}

fn push_run(runs: &mut Vec<Run>, offset: u64, len: u64, kind: Allocation) {
    if len == 0 {
        return;
    }
    if let Some(last) = runs.last_mut() {
        if last.kind == kind && last.offset + last.len == offset {
            last.len += len;
            return;
        }
    }
    runs.push(Run { offset, len, kind });
}

/// The descriptor of a link and, for a sparse file, the extent it opened.
pub(crate) fn descriptor_of(backing: &Backing) -> Result<(Descriptor, Option<SparseExtent>)> {
    let head = head_of(backing)?;
    if has_sparse_magic(&head) {
        let sparse = SparseExtent::open(backing.clone())?;
        let descriptor = match sparse.descriptor() {
            Some(d) => d.clone(),
            None => lone_sparse_descriptor(&sparse),
        };
        return Ok((descriptor, Some(sparse)));
    }
    let lone_delta = if cowd::has_magic(&head) {
        Some((COWD_HEADER, "vmfsSparse (COWD)"))
    } else if sesparse::has_magic(&head) {
        Some((SESPARSE_HEADER, "seSparse"))
    } else {
        None
    };
    if let Some((structure, what)) = lone_delta {
        return Err(Error::at(
            backing.path(),
            structure,
            0,
            ErrorKind::InvalidInput(format!(
                "this is the extent file of an ESXi {what} delta disk: open the descriptor \
                    that names it, which also names its parent"
            )),
        ));
    }
    Ok((read_text_descriptor(backing)?, None))
}

/// The first 8 bytes of the file (fewer, zero-padded, when it is shorter).
fn head_of(backing: &Backing) -> Result<[u8; 8]> {
    let mut head = [0u8; 8];
    let head_len = backing.len().min(8) as usize;
    backing.read_exact_at("file", 0, crate::io::head_mut(&mut head, head_len))?;
    Ok(head)
}

/// The `createType` of `descriptor` at `path`, refused unless this library reads it.
fn supported_create_type(path: &Path, descriptor: &Descriptor) -> Result<CreateType> {
    let inconsistent = |what: &str| {
        Error::new(
            Some(path),
            "descriptor",
            None,
            ErrorKind::Inconsistent(what.into()),
        )
    };
    let create_type = descriptor
        .create_type()
        .ok_or_else(|| inconsistent("no createType"))?;
    let unsupported = match &create_type {
        t if t.is_supported() => None,
        CreateType::VmfsRdm | CreateType::VmfsRdmp => Some(Feature::RawDeviceMap),
        CreateType::VmfsRaw | CreateType::FullDevice | CreateType::PartitionedDevice => {
            Some(Feature::HostDevice)
        }
        other => Some(Feature::CreateType(other.as_str().to_string())),
    };
    if let Some(feature) = unsupported {
        return Err(Error::new(
            Some(path),
            "descriptor",
            None,
            ErrorKind::Unsupported(feature),
        ));
    }
    if descriptor.extents().next().is_none() {
        return Err(inconsistent("no extent lines"));
    }
    Ok(create_type)
}

impl Disk {
    /// Opens the disk `path` names with the default [`OpenOptions`]: a text descriptor, a
    /// sparse or stream-optimized file, or a lone sparse extent; its parents are followed.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        OpenOptions::default().open(path)
    }

    fn open_link(backing: Backing, options: &OpenOptions, seen: &mut Vec<PathBuf>) -> Result<Self> {
        let path = backing.path().to_path_buf();
        let identity = options.files.identity(&path);
        if seen.contains(&identity) {
            return Err(Error::file(&path, ErrorKind::ParentLoop));
        }
        seen.push(identity);
        if seen.len() > options.max_chain_length {
            let max = options.max_chain_length;
            return Err(Error::file(&path, ErrorKind::ChainTooLong { max }));
        }
        if qcow2::has_magic(&head_of(&backing)?) {
            return Self::open_qcow2(backing, options, seen);
        }
        let (descriptor, first) = descriptor_of(&backing)?;
        if is_encrypted(&descriptor) {
            return Err(Error::new(
                Some(&path),
                "descriptor",
                None,
                ErrorKind::Unsupported(Feature::Encrypted),
            ));
        }
        let create_type = supported_create_type(&path, &descriptor)?;
        let extents = Self::open_extents(&path, &descriptor, first, options)?;
        let capacity = extents.last().map_or(0, |e| e.start + e.len);
        let parent = if descriptor.has_parent() && !options.link_only {
            Some(Box::new(Self::open_parent(
                &path,
                &descriptor,
                options,
                seen,
            )?))
        } else {
            None
        };
        Ok(Self {
            path,
            descriptor,
            create_type,
            capacity,
            extents,
            parent,
        })
    }

    /// Opens the extents `descriptor` lists, placed end to end; `first` is the sparse extent
    /// already open when the descriptor was embedded in it.
    fn open_extents(
        path: &Path,
        descriptor: &Descriptor,
        mut first: Option<SparseExtent>,
        options: &OpenOptions,
    ) -> Result<Vec<Extent>> {
        let mut extents = Vec::new();
        let mut start = 0u64;
        for (index, line) in descriptor.extents().cloned().enumerate() {
            let len = line
                .sectors
                .checked_mul(SECTOR_SIZE)
                .filter(|l| start.checked_add(*l).is_some())
                .ok_or_else(|| {
                    Error::new(
                        Some(path),
                        "descriptor",
                        None,
                        ErrorKind::Inconsistent(format!(
                            "extent {} is too large: the disk would exceed 2^64 bytes",
                            index + 1
                        )),
                    )
                })?;
            // The first extent of a sparse file with an embedded descriptor is that file.
            let data = match first.take() {
                Some(sparse) if index == 0 => ExtentData::Sparse(Box::new(sparse)),
                _ => open_extent(path, &line, options)?,
            };
            match &data {
                ExtentData::Sparse(s) => check_capacity(&**s, &line)?,
                ExtentData::Esx(s) => check_capacity(&**s, &line)?,
                _ => {}
            }
            extents.push(Extent {
                line,
                start,
                len,
                data,
            });
            start += len;
        }
        Ok(extents)
    }

    /// Opens the parent link `descriptor` (at `path`) names, checking its `CID`.
    fn open_parent(
        path: &Path,
        descriptor: &Descriptor,
        options: &OpenOptions,
        seen: &mut Vec<PathBuf>,
    ) -> Result<Self> {
        let hint = descriptor.parent_file_name_hint().unwrap_or_default();
        let backing = options.open_named(path, hint)?;
        let parent = Self::open_link(backing, options, seen)?;
        let expected = descriptor.parent_cid().unwrap_or_default();
        let found = parent.descriptor.cid().unwrap_or_default();
        if !options.ignore_parent_cid && expected != found {
            return Err(Error::new(
                Some(path),
                "descriptor",
                None,
                ErrorKind::ParentCidMismatch { expected, found },
            ));
        }
        Ok(parent)
    }

    /// Opens the qcow2 image in `backing` as a link: one extent, the image, and its backing
    /// file as the parent (held to the folder policy like a VMDK's parent).
    fn open_qcow2(
        backing: Backing,
        options: &OpenOptions,
        seen: &mut Vec<PathBuf>,
    ) -> Result<Self> {
        let path = backing.path().to_path_buf();
        let image = Qcow2Extent::open(backing)?;
        let capacity = image.capacity_bytes();
        let create_type = CreateType::Other("qcow2".into());
        let line = ExtentLine {
            access: Access::ReadWrite,
            sectors: capacity / SECTOR_SIZE,
            kind: ExtentKind::Other("QCOW2".into()),
            file_name: Some(file_name_of(&path)),
            offset: 0,
        };
        let mut descriptor = Descriptor::new(&create_type, CID_NO_PARENT - 1);
        descriptor.push_extent(line.clone());
        let parent = match image.backing_file() {
            Some(name) if !options.link_only => {
                let format = image.backing_format();
                Some(Box::new(Self::open_backing_file(
                    &path, name, format, options, seen,
                )?))
            }
            _ => None,
        };
        Ok(Self {
            path,
            descriptor,
            create_type,
            capacity,
            extents: vec![Extent {
                line,
                start: 0,
                len: capacity,
                data: ExtentData::Qcow2(Box::new(image)),
            }],
            parent,
        })
    }

    /// Opens the backing file `name` of the qcow2 image at `path`: raw when `format` says so
    /// (or when probing finds no image format, as qemu probes), else any image this library
    /// reads.
    fn open_backing_file(
        path: &Path,
        name: &str,
        format: Option<&str>,
        options: &OpenOptions,
        seen: &mut Vec<PathBuf>,
    ) -> Result<Self> {
        if name.starts_with("json:") || name.contains("://") {
            return Err(Error::new(
                Some(path),
                "backing file name",
                None,
                ErrorKind::Unsupported(Feature::Qcow2(format!(
                    "a backing file given as a protocol or JSON ({name})"
                ))),
            ));
        }
        let backing = options.open_named(path, name)?;
        match format {
            Some("raw") => Self::raw_link(backing),
            None => match Self::open_link(backing.clone(), options, seen) {
                Err(e) if matches!(e.kind(), ErrorKind::NotVmdk) => Self::raw_link(backing),
                other => other,
            },
            Some("qcow2" | "vmdk") => Self::open_link(backing, options, seen),
            Some(other) => Err(Error::file(
                backing.path(),
                ErrorKind::Unsupported(Feature::Qcow2(format!("a backing file of format {other}"))),
            )),
        }
    }

    fn open_raw(path: &Path, options: &OpenOptions) -> Result<Self> {
        Self::raw_link(options.files.open(path)?)
    }

    /// The raw image in `backing` as a link: one flat extent over the whole file.
    fn raw_link(backing: Backing) -> Result<Self> {
        let path = backing.path().to_path_buf();
        let path = path.as_path();
        let len = backing.len();
        if len % SECTOR_SIZE != 0 {
            return Err(Error::file(
                path,
                ErrorKind::InvalidInput(format!(
                    "a raw image must be a whole number of 512-byte sectors; this one is {len} \
                        bytes"
                )),
            ));
        }
        let create_type = CreateType::Other("raw".into());
        let line = ExtentLine {
            access: Access::ReadWrite,
            sectors: len / SECTOR_SIZE,
            kind: ExtentKind::Flat,
            file_name: Some(file_name_of(path)),
            offset: 0,
        };
        let mut descriptor = Descriptor::new(&create_type, CID_NO_PARENT - 1);
        descriptor.push_extent(line.clone());
        Ok(Self {
            path: path.to_path_buf(),
            descriptor,
            create_type,
            capacity: len,
            extents: vec![Extent {
                line,
                start: 0,
                len,
                data: ExtentData::Flat { backing, offset: 0 },
            }],
            parent: None,
        })
    }

    /// The path this link was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// This link's descriptor (embedded or separate).
    pub fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    /// This link's `createType` (`raw` for a raw image opened with
    /// [`OpenOptions::open_raw`]).
    pub fn create_type(&self) -> &CreateType {
        &self.create_type
    }

    /// Whether this link is a VMDK (not a raw image or a qcow2 image, whose descriptors are
    /// made up and carry no content IDs).
    pub fn is_vmdk(&self) -> bool {
        !matches!(&self.create_type, CreateType::Other(t) if t == "raw" || t == "qcow2")
    }

    /// Virtual capacity in bytes.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// This link's extents in disk order.
    pub(crate) fn extents(&self) -> &[Extent] {
        &self.extents
    }

    /// The parent link, for a delta disk.
    pub fn parent(&self) -> Option<&Disk> {
        self.parent.as_deref()
    }

    /// This link, then its parent, then its parent's parent...
    pub fn chain(&self) -> impl Iterator<Item = &Disk> {
        std::iter::successors(Some(self), |d| d.parent())
    }

    /// A disk database value (`ddb.*`), searched from this link up the chain (spec p. 5).
    pub fn ddb(&self, key: &str) -> Option<&str> {
        self.chain().find_map(|d| d.descriptor.get(key))
    }

    /// Every file the disk reads: descriptors and extents of every link.
    pub fn files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for link in self.chain() {
            out.push(link.path.clone());
            for p in link
                .extents
                .iter()
                .filter_map(|e| e.backing().map(Backing::path))
            {
                if !out.iter().any(|o| o == p) {
                    out.push(p.to_path_buf());
                }
            }
        }
        out
    }

    /// The largest grain of any sparse extent in the chain, in bytes (512 when there is none).
    #[cfg(feature = "write")]
    pub(crate) fn largest_grain(&self) -> u64 {
        self.chain()
            .flat_map(|d| d.extents())
            .filter_map(|e| match &e.data {
                ExtentData::Sparse(s) => Some(s.grain_bytes()),
                ExtentData::Esx(s) => Some(s.grain_bytes()),
                ExtentData::Qcow2(s) => Some(s.grain_bytes()),
                _ => None,
            })
            .max()
            .unwrap_or(SECTOR_SIZE)
    }

    fn check_range(&self, offset: u64, len: u64) -> Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.capacity => Ok(()),
            _ => Err(Error::at(
                &self.path,
                "disk",
                offset,
                ErrorKind::InvalidInput(format!(
                    "range of {len:#x} bytes ends past the capacity {:#x}",
                    self.capacity
                )),
            )),
        }
    }

    /// The allocation map of `len` bytes from `offset`, merged into runs, resolved through the
    /// parent links. Callers walk large disks in windows: the result has at most one run per
    /// grain of the window.
    pub fn map(&self, offset: u64, len: u64) -> Result<Vec<Run>> {
        self.check_range(offset, len)?;
        let mut runs = Vec::new();
        self.map_into(offset, len, &mut runs, false)?;
        Ok(runs)
    }

    /// The allocation map of this link alone: what it does not hold is
    /// [`Allocation::Unallocated`], whatever its parents hold (what an overlay of the link
    /// must store).
    #[cfg(feature = "write")]
    pub(crate) fn map_own(&self, offset: u64, len: u64) -> Result<Vec<Run>> {
        self.check_range(offset, len)?;
        let mut runs = Vec::new();
        self.map_into(offset, len, &mut runs, true)?;
        Ok(runs)
    }

    /// The runs of `offset..offset + len` into `runs`; `own`: without descending into the
    /// parent.
    fn map_into(&self, offset: u64, len: u64, runs: &mut Vec<Run>, own: bool) -> Result<()> {
        let end = offset + len;
        for e in self.overlapping(offset, end) {
            let from = offset.max(e.start);
            let to = end.min(e.start + e.len);
            match &e.data {
                ExtentData::Flat { backing, offset } => {
                    // Holes of the host file read as zeros: explicitly zero, like a ZERO extent.
                    let base = offset.saturating_add(from - e.start);
                    match backing.data_runs(base, base.saturating_add(to - from)) {
                        Some(parts) if parts.iter().map(|p| p.1).sum::<u64>() == to - from => {
                            for (at, n, data) in parts {
                                let kind = if data {
                                    Allocation::Data
                                } else {
                                    Allocation::Zero
                                };
                                push_run(runs, from + (at - base), n, kind);
                            }
                        }
                        _ => push_run(runs, from, to - from, Allocation::Data),
                    }
                }
                ExtentData::Zero => push_run(runs, from, to - from, Allocation::Zero),
                ExtentData::Sparse(s) => self.map_sparse(&**s, (e.start, from, to), runs, own)?,
                ExtentData::Esx(s) => self.map_sparse(&**s, (e.start, from, to), runs, own)?,
                ExtentData::Qcow2(s) => self.map_sparse(&**s, (e.start, from, to), runs, own)?,
            }
        }
        Ok(())
    }

    /// The runs of `from..to` (disk offsets) in the sparse extent `s` placed at `base`;
    /// unallocated grains are mapped through the parent, unless `own`.
    fn map_sparse<S: Grains>(
        &self,
        s: &S,
        (base, from, to): (u64, u64, u64),
        runs: &mut Vec<Run>,
        own: bool,
    ) -> Result<()> {
        let gb = s.grain_bytes();
        let first = (from - base) / gb;
        let last = (to - base).div_ceil(gb);
        s.for_each_run(first, last - first, |g, n, entry| {
            let g_from = (base + g * gb).max(from);
            let g_to = (base + (g + n) * gb).min(to);
            match entry {
                GrainEntry::Data(_) => push_run(runs, g_from, g_to - g_from, Allocation::Data),
                GrainEntry::Zeroed => push_run(runs, g_from, g_to - g_from, Allocation::Zero),
                GrainEntry::Unallocated if own => {
                    push_run(runs, g_from, g_to - g_from, Allocation::Unallocated)
                }
                GrainEntry::Unallocated => self.map_parent(g_from, g_to, runs)?,
            }
            Ok(())
        })
    }

    fn map_parent(&self, from: u64, to: u64, runs: &mut Vec<Run>) -> Result<()> {
        match &self.parent {
            Some(p) if from < p.capacity => {
                let mid = to.min(p.capacity);
                p.map_into(from, mid - from, runs, false)?;
                push_run(runs, mid, to - mid, Allocation::Unallocated);
            }
            _ => push_run(runs, from, to - from, Allocation::Unallocated),
        }
        Ok(())
    }

    fn overlapping(&self, from: u64, to: u64) -> impl Iterator<Item = &Extent> {
        let first = self.extents.partition_point(|e| e.start + e.len <= from);
        self.extents
            .iter()
            .skip(first)
            .take_while(move |e| e.start < to)
    }

    /// Bytes of data, zeroed and unallocated space over the whole disk. Zero extents count
    /// whole, flat extents by their file's data and holes (holes are zero); sparse extents are
    /// mapped in windows, so the work follows the grain tables present, not the capacity a
    /// descriptor claims.
    pub fn allocation_summary(&self) -> Result<AllocationSummary> {
        let mut sum = AllocationSummary::default();
        let mut add = |kind: Allocation, len: u64| match kind {
            Allocation::Data => sum.data += len,
            Allocation::Zero => sum.zero += len,
            Allocation::Unallocated => sum.unallocated += len,
        };
        for e in &self.extents {
            match &e.data {
                ExtentData::Flat { backing, offset } => {
                    match backing.data_runs(*offset, offset.saturating_add(e.len)) {
                        Some(parts) if parts.iter().map(|p| p.1).sum::<u64>() == e.len => {
                            for (_, n, data) in parts {
                                add(
                                    if data {
                                        Allocation::Data
                                    } else {
                                        Allocation::Zero
                                    },
                                    n,
                                );
                            }
                        }
                        _ => add(Allocation::Data, e.len),
                    }
                }
                ExtentData::Zero => add(Allocation::Zero, e.len),
                ExtentData::Sparse(_) | ExtentData::Esx(_) | ExtentData::Qcow2(_) => {
                    let window = 4u64 << 30;
                    let mut offset = e.start;
                    while offset < e.start + e.len {
                        let len = window.min(e.start + e.len - offset);
                        for run in self.map(offset, len)? {
                            add(run.kind, run.len);
                        }
                        offset += len;
                    }
                }
            }
        }
        Ok(sum)
    }

    /// Reads exactly `buf.len()` bytes at byte `offset` of the disk, which must lie inside the
    /// capacity. Safe to call from many threads at once.
    pub fn read_exact_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.check_range(offset, buf.len() as u64)?;
        self.read_link(offset, buf, &mut Vec::new())
    }

    fn read_link(&self, offset: u64, buf: &mut [u8], scratch: &mut Vec<u8>) -> Result<()> {
        let end = offset + buf.len() as u64;
        for e in self.overlapping(offset, end) {
            let from = offset.max(e.start);
            let to = end.min(e.start + e.len);
            let dst = slice_mut(buf, from - offset, to - from);
            if e.line.access == Access::NoAccess {
                return Err(Error::at(
                    &self.path,
                    "extent",
                    from,
                    ErrorKind::Inconsistent("the extent covering this range is NOACCESS".into()),
                ));
            }
            match &e.data {
                ExtentData::Flat {
                    backing,
                    offset: base,
                } => read_locating(
                    backing,
                    "flat extent",
                    base + (from - e.start),
                    dst,
                    0,
                    LOCATE_PIECE,
                )?,
                ExtentData::Zero => dst.fill(0),
                ExtentData::Sparse(s) => self.read_sparse(&**s, e.start, from, dst, scratch)?,
                ExtentData::Esx(s) => self.read_sparse(&**s, e.start, from, dst, scratch)?,
                ExtentData::Qcow2(s) => self.read_sparse(&**s, e.start, from, dst, scratch)?,
            }
        }
        Ok(())
    }

    /// Reads `dst.len()` bytes at disk offset `from` from the sparse extent `s` placed at
    /// `base`; unallocated grains read through to the parent.
    fn read_sparse<S: Grains>(
        &self,
        s: &S,
        base: u64,
        from: u64,
        dst: &mut [u8],
        scratch: &mut Vec<u8>,
    ) -> Result<()> {
        let gb = s.grain_bytes();
        let rel = from - base;
        let rel_end = rel + dst.len() as u64;
        let first = rel / gb;
        let last = rel_end.div_ceil(gb);
        // Uncompressed grains that follow each other in the file are read in one call.
        let mut pending = Pending::default();
        s.for_each_grain(first, last - first, |g, entry| {
            let g_from = (g * gb).max(rel);
            let g_to = ((g + 1) * gb).min(rel_end);
            let within = g_from - g * gb;
            let d_start = g_from - rel;
            let n = g_to - g_from;
            let compressed = matches!(entry, GrainEntry::Data(v) if s.is_compressed_grain(v));
            if !matches!(entry, GrainEntry::Data(_)) || compressed {
                pending.flush(s, dst)?;
            }
            match entry {
                GrainEntry::Data(sector) if !compressed => {
                    let at = s.grain_offset(g, sector)?;
                    s.refuse_metadata("grain", at, gb)?;
                    pending.add(s, dst, at, within, d_start, n)?;
                }
                GrainEntry::Data(sector) => {
                    s.read_grain_part(g, sector, within, slice_mut(dst, d_start, n), scratch)?;
                }
                GrainEntry::Zeroed => slice_mut(dst, d_start, n).fill(0),
                GrainEntry::Unallocated => {
                    self.read_parent(base + g_from, slice_mut(dst, d_start, n), scratch)?
                }
            }
            Ok(())
        })?;
        pending.flush(s, dst)
    }

    /// Reads `part` at disk offset `abs` from the parent (zeros past its capacity, or with no
    /// parent).
    fn read_parent(&self, abs: u64, part: &mut [u8], scratch: &mut Vec<u8>) -> Result<()> {
        match &self.parent {
            Some(p) if abs < p.capacity => {
                let in_parent = (p.capacity - abs).min(part.len() as u64);
                let (a, b) = part.split_at_mut(in_parent as usize);
                p.read_link(abs, a, scratch)?;
                b.fill(0);
            }
            _ => part.fill(0),
        }
        Ok(())
    }
}

/// A read of consecutive uncompressed grains not yet made: (file offset of its first grain's
/// start, file offset of its first byte, start in the destination, length).
#[derive(Default)]
struct Pending(Option<(u64, u64, u64, u64)>);

impl Pending {
    /// Adds `n` bytes from `within` of the grain at file offset `grain_at`, for destination
    /// offset `d_start`: joined to the pending read when they follow it in the file, else the
    /// pending read is made first.
    fn add<S: Grains>(
        &mut self,
        s: &S,
        dst: &mut [u8],
        grain_at: u64,
        within: u64,
        d_start: u64,
        n: u64,
    ) -> Result<()> {
        let at = grain_at + within;
        match &mut self.0 {
            Some((_, p_at, _, p_len)) if *p_at + *p_len == at => *p_len += n,
            _ => {
                self.flush(s, dst)?;
                self.0 = Some((grain_at, at, d_start, n));
            }
        }
        Ok(())
    }

    /// Makes the pending read; an I/O error names the grain that failed, not the first grain
    /// of the joined read.
    fn flush<S: Grains>(&mut self, s: &S, dst: &mut [u8]) -> Result<()> {
        if let Some((origin, at, start, len)) = self.0.take() {
            let part = slice_mut(dst, start, len);
            read_locating(s.backing(), "grain", at, part, origin, s.grain_bytes())?;
        }
        Ok(())
    }
}

/// Pieces a failed flat extent read is retried in, to say which one failed (4 KiB: the
/// physical sector of most devices).
const LOCATE_PIECE: u64 = 4096;

/// Reads `dst.len()` bytes at `at` of `backing`. One read first; when it fails with an I/O
/// error and spans more than one piece (`piece` bytes, on boundaries `origin + k * piece` of the
/// file: grains, or 4 KiB blocks of a flat extent), the range is read again piece by piece, so
/// the error's offset is the start of the piece that failed rather than the start of a read
/// that joined grains or spans a copy window. Pieces that read fine the second time are kept.
fn read_locating(
    backing: &Backing,
    structure: &'static str,
    at: u64,
    dst: &mut [u8],
    origin: u64,
    piece: u64,
) -> Result<()> {
    let Err(first) = backing.read_exact_at(structure, at, dst) else {
        return Ok(());
    };
    let total = dst.len() as u64;
    let retry = matches!(first.kind(), ErrorKind::Io(_)) && total > 0 && at >= origin && piece > 0;
    // A read inside one piece already names it.
    if !retry || (at - origin) / piece == (at + total - 1 - origin) / piece {
        return Err(first);
    }
    let mut done = 0u64;
    while done < total {
        let pos = at + done;
        let n = (piece - (pos - origin) % piece).min(total - done);
        backing.read_exact_at(structure, pos, slice_mut(dst, done, n))?;
        done += n;
    }
    Ok(())
}

/// `&mut buf[start..start + len]`, for ranges the callers computed inside `buf`.
fn slice_mut(buf: &mut [u8], start: u64, len: u64) -> &mut [u8] {
    let start = start as usize;
    let end = start + len as usize;
    // The ranges come from arithmetic on the caller's own buffer, bounded above; clamped to it
    // all the same, so a range past it would show as a short read, never as a panic.
    let total = buf.len();
    let (head, _) = buf.split_at_mut(end.min(total));
    let from = start.min(head.len());
    head.split_at_mut(from).1
}

/// The last component of `path`, as text.
fn file_name_of(path: &Path) -> String {
    path.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

/// A descriptor for a sparse extent opened on its own (no embedded descriptor): one extent, the
/// file itself.
fn lone_sparse_descriptor(s: &SparseExtent) -> Descriptor {
    let mut d = Descriptor::new(&CreateType::MonolithicSparse, CID_NO_PARENT - 1);
    d.push_extent(ExtentLine {
        access: Access::ReadWrite,
        sectors: s.capacity_sectors(),
        kind: ExtentKind::Sparse,
        file_name: Some(file_name_of(s.backing().path())),
        offset: 0,
    });
    d
}

fn read_text_descriptor(backing: &Backing) -> Result<Descriptor> {
    let path = backing.path();
    let not_vmdk = || Error::file(path, ErrorKind::NotVmdk);
    if backing.len() > MAX_DESCRIPTOR_SIZE {
        return Err(not_vmdk());
    }
    let bytes = backing.read_vec("descriptor", 0, backing.len())?;
    let looks_like = {
        let head =
            String::from_utf8_lossy(bytes.split_at(bytes.len().min(4096)).0).to_ascii_lowercase();
        head.contains("# disk descriptorfile") || head.contains("createtype")
    };
    match Descriptor::parse_bytes(&bytes) {
        Ok(d) if d.create_type().is_some() || d.extents().next().is_some() => Ok(d),
        Ok(_) => Err(not_vmdk()),
        Err(kind) if looks_like => Err(Error::new(Some(path), "descriptor", None, kind)),
        Err(_) => Err(not_vmdk()),
    }
}

/// Refuses a sparse extent whose header gives it fewer sectors than its descriptor line.
fn check_capacity<S: Grains>(s: &S, line: &ExtentLine) -> Result<()> {
    if s.capacity_sectors() >= line.sectors {
        return Ok(());
    }
    let (structure, at) = s.capacity_field();
    Err(Error::at(
        s.backing().path(),
        structure,
        at,
        ErrorKind::Inconsistent(format!(
            "capacity {} sectors is less than the {} sectors the descriptor gives the extent",
            s.capacity_sectors(),
            line.sectors
        )),
    ))
}

/// Opens a sparse extent by its magic, as qemu does: `SPARSE` and `VMFSSPARSE` lines both name
/// `KDMV` or `COWD` files (a `SPARSE` line naming neither is refused as `KDMV`, a `VMFSSPARSE`
/// one as `COWD`); `SESPARSE` lines name seSparse files.
fn open_sparse_extent(kind: &ExtentKind, backing: Backing) -> Result<ExtentData> {
    let mut head = [0u8; 4];
    let n = backing.len().min(4) as usize;
    backing.read_exact_at("file", 0, crate::io::head_mut(&mut head, n))?;
    let cowd = match kind {
        ExtentKind::SeSparse => return Ok(ExtentData::Esx(Box::new(sesparse::open(backing)?))),
        ExtentKind::VmfsSparse => !has_sparse_magic(&head),
        _ => cowd::has_magic(&head),
    };
    if cowd {
        return Ok(ExtentData::Esx(Box::new(cowd::open(backing)?)));
    }
    Ok(ExtentData::Sparse(Box::new(SparseExtent::open(backing)?)))
}

fn open_extent(descriptor: &Path, line: &ExtentLine, options: &OpenOptions) -> Result<ExtentData> {
    match &line.kind {
        ExtentKind::Zero => return Ok(ExtentData::Zero),
        ExtentKind::Flat
        | ExtentKind::Vmfs
        | ExtentKind::Sparse
        | ExtentKind::VmfsSparse
        | ExtentKind::SeSparse => {}
        other => {
            let feature = match other {
                ExtentKind::VmfsRdm => Feature::RawDeviceMap,
                ExtentKind::VmfsRaw => Feature::HostDevice,
                k => Feature::ExtentKind(k.as_str().to_string()),
            };
            return Err(Error::new(
                Some(descriptor),
                "descriptor",
                None,
                ErrorKind::Unsupported(feature),
            ));
        }
    }
    let name = line.file_name.as_deref().unwrap_or_default();
    let backing = options.open_named(descriptor, name)?;
    if matches!(
        line.kind,
        ExtentKind::Sparse | ExtentKind::VmfsSparse | ExtentKind::SeSparse
    ) {
        return open_sparse_extent(&line.kind, backing);
    }
    let offset = line.offset.checked_mul(SECTOR_SIZE).ok_or_else(|| {
        Error::new(
            Some(descriptor),
            "descriptor",
            None,
            ErrorKind::Inconsistent(format!("offset of {name:?} is past any file")),
        )
    })?;
    let len = line.sectors * SECTOR_SIZE;
    // A flat extent shorter than its descriptor says is a truncated file (ErrorKind::Truncated),
    // refused at open rather than at the first read past its end.
    backing.check_range("flat extent", offset, len)?;
    Ok(ExtentData::Flat { backing, offset })
}

/// Whether vSphere VM encryption holds the link's data: an `encryptionKeys` line, or the
/// `vmwarevmcrypt` filter among `ddb.iofilters`. Such a disk is refused, never read as plaintext.
pub(crate) fn is_encrypted(descriptor: &Descriptor) -> bool {
    descriptor.get("encryptionKeys").is_some()
        || descriptor
            .get("ddb.iofilters")
            .is_some_and(|f| f.to_ascii_lowercase().contains("vmwarevmcrypt"))
}

impl ReadAt for Disk {
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        if pos >= self.capacity {
            return Ok(0);
        }
        let n = (self.capacity - pos).min(buf.len() as u64) as usize;
        let part = buf.split_at_mut(n.min(buf.len())).0;
        self.read_link(pos, part, &mut Vec::new())?;
        Ok(n)
    }
}

/// The image format other than VMDK whose magic `head` (the first sector) or `tail` (the last)
/// holds, if any.
pub(crate) fn other_format(head: &[u8], tail: &[u8]) -> Option<&'static str> {
    let at = |bytes: &[u8], offset: usize, magic: &[u8]| {
        bytes.get(offset..offset + magic.len()) == Some(magic)
    };
    if at(head, 0, b"QFI\xfb") {
        Some("qcow2 (or qcow)")
    } else if at(head, 0, b"vhdxfile") {
        Some("VHDX")
    } else if at(head, 0, b"conectix") || at(tail, 0, b"conectix") || at(tail, 1, b"conectix") {
        // A VHD's footer ends the file (511 bytes in old writers); a dynamic VHD copies it first.
        Some("VHD")
    } else if at(head, 0x40, &[0x7f, 0x10, 0xda, 0xbe]) {
        Some("VDI")
    } else if at(head, 0, b"QED\0") {
        Some("QED")
    } else if at(head, 0, b"LUKS\xba\xbe") {
        Some("LUKS-encrypted")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::other_format;

    #[test]
    fn other_formats_are_named_by_their_magic() {
        let zeros = [0u8; 512];
        let with = |at: usize, magic: &[u8]| {
            let mut b = [0u8; 512];
            b[at..at + magic.len()].copy_from_slice(magic);
            b
        };
        assert_eq!(other_format(&zeros, &zeros), None);
        assert_eq!(
            other_format(&with(0, b"LUKS\xba\xbe"), &zeros),
            Some("LUKS-encrypted")
        );
        assert_eq!(other_format(&with(0, b"QED\0"), &zeros), Some("QED"));
        // A VHD footer ends the file: 512 bytes, or 511 as old writers left it.
        assert_eq!(other_format(&zeros, &with(0, b"conectix")), Some("VHD"));
        assert_eq!(other_format(&zeros, &with(1, b"conectix")), Some("VHD"));
        // Short files are read whole: no magic past their end.
        assert_eq!(other_format(b"QFI", b"QFI"), None);
    }
}
