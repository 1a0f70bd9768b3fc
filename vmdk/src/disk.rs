//! One virtual disk: the extents of a link joined end to end, over its parent links.
//!
//! Spec: "Layout Basics" (links and extents, p. 2), "Accessing a Sector in a Flat Extent" (p. 5)
//! and "Accessing a Sector in a Hosted Sparse Extent" (p. 8). [`Disk::open`] takes any file a
//! user would name: a text descriptor (monolithicFlat, twoGbMaxExtent*, vmfs*, custom), or a
//! sparse extent with an embedded descriptor (monolithicSparse, streamOptimized), or a lone
//! sparse extent. Delta links are followed through `parentFileNameHint`, their `parentCID`
//! checked against the parent's `CID`, and loops refused.
//!
//! A [`Disk`] gives its capacity, positioned reads of any byte range through
//! `positioned_io::ReadAt` (usable from many threads at once) and an allocation map
//! ([`Disk::map`]) that tells data, zeroed and unallocated ranges apart from metadata alone.
//!
//! Not read yet (clear "not supported yet" errors): vmfsSparse (`COWD`), seSparse and raw
//! device maps. Files named by a descriptor must stay in its folder unless
//! [`OpenOptions::allow_outside_paths`] is set (see [`crate::io`]).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use positioned_io::ReadAt;

use crate::descriptor::{
    Access, CreateType, Descriptor, ExtentKind, ExtentLine, MAX_DESCRIPTOR_SIZE,
};
use crate::error::{Error, ErrorKind, Result};
use crate::format::{COWD_MAGIC, SECTOR_SIZE};
use crate::io::{folder_of, resolve_name, Backing, Files, HostFiles};
use crate::sparse::{has_sparse_magic, GrainEntry, SparseExtent};

/// How a disk is opened.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// Follow extent and parent names that lead outside the descriptor's folder (absolute paths,
    /// `..`, links, device files). Off by default: importers must not read host files.
    pub allow_outside_paths: bool,
    /// Accept a parent whose `CID` differs from the child's `parentCID`.
    pub ignore_parent_cid: bool,
    /// Longest parent chain followed (links, the disk itself included).
    pub max_chain_length: usize,
    /// Where files come from.
    pub files: Arc<dyn Files>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            allow_outside_paths: false,
            ignore_parent_cid: false,
            max_chain_length: 64,
            files: Arc::new(HostFiles::default()),
        }
    }
}

/// Where an extent's data comes from.
#[derive(Debug)]
pub enum ExtentData {
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
}

/// One extent of a link, placed in the disk.
#[derive(Debug)]
pub struct Extent {
    /// The descriptor's line.
    pub line: ExtentLine,
    /// Byte offset of the extent in the disk.
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
    /// Its data.
    pub data: ExtentData,
}

/// What a range of the disk holds, known from metadata alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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

/// A run of the allocation map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
pub struct AllocationSummary {
    /// Bytes of stored data.
    pub data: u64,
    /// Bytes explicitly zero.
    pub zero: u64,
    /// Bytes stored nowhere.
    pub unallocated: u64,
}

/// An open virtual disk: one link, its extents, and its parent links.
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

impl Disk {
    /// Opens the disk `path` names, with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(path, &OpenOptions::default())
    }

    /// Opens the disk `path` names. The file itself is the user's choice and may be anywhere;
    /// the files it names are held to `options`.
    pub fn open_with(path: impl AsRef<Path>, options: &OpenOptions) -> Result<Self> {
        let path = path.as_ref();
        let backing = options
            .files
            .open(path, &path.to_string_lossy(), &folder_of(path), true)?;
        let mut seen = Vec::new();
        Self::open_link(backing, options, &mut seen)
    }

    fn open_link(backing: Backing, options: &OpenOptions, seen: &mut Vec<PathBuf>) -> Result<Self> {
        let path = backing.path().to_path_buf();
        let identity = options.files.identity(&path);
        if seen.contains(&identity) {
            return Err(Error::file(
                &path,
                ErrorKind::Chain(format!("{} is its own ancestor", path.display())),
            ));
        }
        seen.push(identity);
        if seen.len() > options.max_chain_length {
            return Err(Error::file(
                &path,
                ErrorKind::Chain(format!("longer than {} links", options.max_chain_length)),
            ));
        }

        let mut head = [0u8; 4];
        let head_len = backing.len().min(4) as usize;
        backing.read_exact_at("file", 0, head.get_mut(..head_len).unwrap_or(&mut []))?;
        let (descriptor, first) = if has_sparse_magic(&head) {
            let sparse = SparseExtent::open(backing.clone())?;
            let descriptor = match sparse.descriptor() {
                Some(d) => d.clone(),
                None => lone_sparse_descriptor(&sparse),
            };
            (descriptor, Some(sparse))
        } else if head == COWD_MAGIC.to_le_bytes() {
            return Err(Error::new(
                Some(&path),
                "sparse header",
                Some(0),
                ErrorKind::Unsupported("ESXi sparse extents (COWD, vmfsSparse)".into()),
            ));
        } else {
            (read_text_descriptor(&backing)?, None)
        };

        let create_type = descriptor.create_type().ok_or_else(|| {
            Error::new(
                Some(&path),
                "descriptor",
                None,
                ErrorKind::Inconsistent("no createType".into()),
            )
        })?;
        if !create_type.is_supported() {
            return Err(Error::new(
                Some(&path),
                "descriptor",
                None,
                ErrorKind::Unsupported(format!("createType {create_type}")),
            ));
        }
        let lines: Vec<ExtentLine> = descriptor.extents().cloned().collect();
        if lines.is_empty() {
            return Err(Error::new(
                Some(&path),
                "descriptor",
                None,
                ErrorKind::Inconsistent("no extent lines".into()),
            ));
        }
        let mut first = first;
        let mut extents = Vec::with_capacity(lines.len());
        let mut start = 0u64;
        for (index, line) in lines.into_iter().enumerate() {
            let len = line
                .sectors
                .checked_mul(SECTOR_SIZE)
                .filter(|l| start.checked_add(*l).is_some())
                .ok_or_else(|| {
                    Error::new(
                        Some(&path),
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
                _ => open_extent(&path, &line, options)?,
            };
            if let ExtentData::Sparse(s) = &data {
                if s.capacity_sectors() < line.sectors {
                    return Err(Error::new(Some(s.backing().path()), "sparse header", Some(12), ErrorKind::Inconsistent(format!("capacity {} sectors is less than the {} sectors the descriptor gives the extent", s.capacity_sectors(), line.sectors))));
                }
            }
            extents.push(Extent {
                line,
                start,
                len,
                data,
            });
            start += len;
        }

        let parent = if descriptor.has_parent() {
            let hint = descriptor.parent_file_name_hint().unwrap_or_default();
            let parent_path = resolve_name(&path, hint, options.allow_outside_paths)?;
            let parent_backing = options.files.open(
                &parent_path,
                hint,
                &folder_of(&path),
                options.allow_outside_paths,
            )?;
            let parent = Self::open_link(parent_backing, options, seen)?;
            let expected = descriptor.parent_cid().unwrap_or_default();
            let found = parent.descriptor.cid().unwrap_or_default();
            if !options.ignore_parent_cid && expected != found {
                return Err(Error::new(
                    Some(&path),
                    "descriptor",
                    None,
                    ErrorKind::ParentCidMismatch { expected, found },
                ));
            }
            Some(Box::new(parent))
        } else {
            None
        };
        Ok(Self {
            path,
            descriptor,
            create_type,
            capacity: start,
            extents,
            parent,
        })
    }

    /// Opens a raw image as a disk: one flat extent over the whole file, whose length must be
    /// a whole number of sectors.
    pub fn open_raw(path: impl AsRef<Path>, options: &OpenOptions) -> Result<Self> {
        let path = path.as_ref();
        let backing = options
            .files
            .open(path, &path.to_string_lossy(), &folder_of(path), true)?;
        let len = backing.len();
        if len % SECTOR_SIZE != 0 {
            return Err(Error::file(path, ErrorKind::Usage(format!("a raw image must be a whole number of 512-byte sectors; this one is {len} bytes"))));
        }
        let create_type = CreateType::Other("raw".into());
        let line = ExtentLine {
            access: Access::ReadWrite,
            sectors: len / SECTOR_SIZE,
            kind: ExtentKind::Flat,
            file_name: Some(
                path.file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            ),
            offset: 0,
        };
        let mut descriptor = Descriptor::new(&create_type, crate::descriptor::CID_NO_PARENT - 1);
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

    /// This link's `createType`.
    pub fn create_type(&self) -> &CreateType {
        &self.create_type
    }

    /// Virtual capacity in bytes.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// This link's extents in disk order.
    pub fn extents(&self) -> &[Extent] {
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
            for e in &link.extents {
                let p = match &e.data {
                    ExtentData::Flat { backing, .. } => backing.path(),
                    ExtentData::Sparse(s) => s.backing().path(),
                    ExtentData::Zero => continue,
                };
                if !out.iter().any(|o| o == p) {
                    out.push(p.to_path_buf());
                }
            }
        }
        out
    }

    fn range_error(&self, offset: u64, len: u64) -> Error {
        Error::new(
            Some(&self.path),
            "disk",
            Some(offset),
            ErrorKind::Usage(format!(
                "range of {len:#x} bytes ends past the capacity {:#x}",
                self.capacity
            )),
        )
    }

    fn check(&self, offset: u64, len: u64) -> Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.capacity => Ok(()),
            _ => Err(self.range_error(offset, len)),
        }
    }

    /// The allocation map of `len` bytes from `offset`, merged into runs, resolved through the
    /// parent links. Callers walk large disks in windows: the result has at most one run per
    /// grain of the window.
    pub fn map(&self, offset: u64, len: u64) -> Result<Vec<Run>> {
        self.check(offset, len)?;
        let mut runs = Vec::new();
        self.map_into(offset, len, &mut runs)?;
        Ok(runs)
    }

    fn map_into(&self, offset: u64, len: u64, runs: &mut Vec<Run>) -> Result<()> {
        let end = offset + len;
        for e in self.overlapping(offset, end) {
            let from = offset.max(e.start);
            let to = end.min(e.start + e.len);
            match &e.data {
                ExtentData::Flat { .. } => push_run(runs, from, to - from, Allocation::Data),
                ExtentData::Zero => push_run(runs, from, to - from, Allocation::Zero),
                ExtentData::Sparse(s) => {
                    let gb = s.grain_bytes();
                    let first = (from - e.start) / gb;
                    let last = (to - e.start).div_ceil(gb);
                    s.for_each_run(first, last - first, |g, n, entry| {
                        let g_from = (e.start + g * gb).max(from);
                        let g_to = (e.start + (g + n) * gb).min(to);
                        match entry {
                            GrainEntry::Data(_) => {
                                push_run(runs, g_from, g_to - g_from, Allocation::Data)
                            }
                            GrainEntry::Zeroed => {
                                push_run(runs, g_from, g_to - g_from, Allocation::Zero)
                            }
                            GrainEntry::Unallocated => self.map_parent(g_from, g_to, runs)?,
                        }
                        Ok(())
                    })?;
                }
            }
        }
        Ok(())
    }

    fn map_parent(&self, from: u64, to: u64, runs: &mut Vec<Run>) -> Result<()> {
        match &self.parent {
            Some(p) if from < p.capacity => {
                let mid = to.min(p.capacity);
                p.map_into(from, mid - from, runs)?;
                push_run(runs, mid, to - mid, Allocation::Unallocated);
            }
            _ => push_run(runs, from, to - from, Allocation::Unallocated),
        }
        Ok(())
    }

    fn overlapping(&self, from: u64, to: u64) -> impl Iterator<Item = &Extent> {
        let first = self.extents.partition_point(|e| e.start + e.len <= from);
        self.extents
            .get(first..)
            .unwrap_or(&[])
            .iter()
            .take_while(move |e| e.start < to)
    }

    /// Bytes of data, zeroed and unallocated space over the whole disk. Flat and zero extents
    /// count whole; sparse extents are mapped in windows, so the work follows the grain tables
    /// present, not the capacity a descriptor claims.
    pub fn allocation_summary(&self) -> Result<AllocationSummary> {
        let mut sum = AllocationSummary::default();
        let mut add = |kind: Allocation, len: u64| match kind {
            Allocation::Data => sum.data += len,
            Allocation::Zero => sum.zero += len,
            Allocation::Unallocated => sum.unallocated += len,
        };
        for e in &self.extents {
            match &e.data {
                ExtentData::Flat { .. } => add(Allocation::Data, e.len),
                ExtentData::Zero => add(Allocation::Zero, e.len),
                ExtentData::Sparse(_) => {
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

    /// Reads exactly `buf.len()` bytes at `offset`, which must lie inside the capacity.
    pub fn read_exact(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.check(offset, buf.len() as u64)?;
        self.read_link(offset, buf, &mut Vec::new())
    }

    fn read_link(&self, offset: u64, buf: &mut [u8], scratch: &mut Vec<u8>) -> Result<()> {
        let end = offset + buf.len() as u64;
        for e in self.overlapping(offset, end) {
            let from = offset.max(e.start);
            let to = end.min(e.start + e.len);
            let dst = slice_mut(buf, from - offset, to - from);
            if e.line.access == Access::NoAccess {
                return Err(Error::new(
                    Some(&self.path),
                    "extent",
                    Some(from),
                    ErrorKind::Inconsistent("the extent covering this range is NOACCESS".into()),
                ));
            }
            match &e.data {
                ExtentData::Flat {
                    backing,
                    offset: base,
                } => backing.read_exact_at("flat extent", base + (from - e.start), dst)?,
                ExtentData::Zero => dst.fill(0),
                ExtentData::Sparse(s) => self.read_sparse(s, e.start, from, dst, scratch)?,
            }
        }
        Ok(())
    }

    fn read_sparse(
        &self,
        s: &SparseExtent,
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
        let mut pending: Option<(u64, u64, u64)> = None; // (file offset, dst start, len)
        let flush = |p: &mut Option<(u64, u64, u64)>, dst: &mut [u8]| -> Result<()> {
            if let Some((at, start, len)) = p.take() {
                s.backing()
                    .read_exact_at("grain", at, slice_mut(dst, start, len))?;
            }
            Ok(())
        };
        s.for_each_grain(first, last - first, |g, entry| {
            let g_from = (g * gb).max(rel);
            let g_to = ((g + 1) * gb).min(rel_end);
            let within = g_from - g * gb;
            let d_start = g_from - rel;
            let n = g_to - g_from;
            match entry {
                GrainEntry::Data(sector) if !s.is_compressed() => {
                    let at = sector
                        .checked_mul(SECTOR_SIZE)
                        .and_then(|a| a.checked_add(within))
                        .ok_or_else(|| {
                            Error::new(
                                Some(s.backing().path()),
                                "grain table",
                                None,
                                ErrorKind::Inconsistent(format!(
                                    "grain {g} at sector {sector:#x} is past any file"
                                )),
                            )
                        })?;
                    s.refuse_metadata("grain", at - within, gb)?;
                    match &mut pending {
                        Some((p_at, _, p_len)) if *p_at + *p_len == at => *p_len += n,
                        _ => {
                            flush(&mut pending, dst)?;
                            pending = Some((at, d_start, n));
                        }
                    }
                }
                GrainEntry::Data(sector) => {
                    flush(&mut pending, dst)?;
                    s.read_grain_part(g, sector, within, slice_mut(dst, d_start, n), scratch)?;
                }
                GrainEntry::Zeroed => {
                    flush(&mut pending, dst)?;
                    slice_mut(dst, d_start, n).fill(0);
                }
                GrainEntry::Unallocated => {
                    flush(&mut pending, dst)?;
                    let abs = base + g_from;
                    let part = slice_mut(dst, d_start, n);
                    match &self.parent {
                        Some(p) if abs < p.capacity => {
                            let in_parent = (p.capacity - abs).min(n);
                            let (a, b) = part.split_at_mut(in_parent as usize);
                            p.read_link(abs, a, scratch)?;
                            b.fill(0);
                        }
                        _ => part.fill(0),
                    }
                }
            }
            Ok(())
        })?;
        flush(&mut pending, dst)
    }
}

/// `&mut buf[start..start + len]`, for ranges the callers computed inside `buf`.
fn slice_mut(buf: &mut [u8], start: u64, len: u64) -> &mut [u8] {
    let start = start as usize;
    let end = start + len as usize;
    // The ranges come from arithmetic on the caller's own buffer, bounded above; an empty slice
    // here would show as a short read, never as a panic.
    let total = buf.len();
    buf.get_mut(start.min(total)..end.min(total))
        .unwrap_or(&mut [])
}

/// A descriptor for a sparse extent opened on its own (no embedded descriptor): one extent, the
/// file itself.
fn lone_sparse_descriptor(s: &SparseExtent) -> Descriptor {
    let mut d = Descriptor::new(
        &CreateType::MonolithicSparse,
        crate::descriptor::CID_NO_PARENT - 1,
    );
    d.push_extent(ExtentLine {
        access: Access::ReadWrite,
        sectors: s.capacity_sectors(),
        kind: ExtentKind::Sparse,
        file_name: Some(
            s.backing()
                .path()
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        ),
        offset: 0,
    });
    d
}

fn read_text_descriptor(backing: &Backing) -> Result<Descriptor> {
    let path = backing.path();
    let not_vmdk = || {
        Error::file(
            path,
            ErrorKind::NotVmdk("no sparse extent magic (KDMV) and not a text descriptor".into()),
        )
    };
    if backing.len() > MAX_DESCRIPTOR_SIZE {
        return Err(not_vmdk());
    }
    let bytes = backing.read_vec("descriptor", 0, backing.len())?;
    let looks_like = {
        let head = String::from_utf8_lossy(bytes.get(..bytes.len().min(4096)).unwrap_or(&[]))
            .to_ascii_lowercase();
        head.contains("# disk descriptorfile") || head.contains("createtype")
    };
    match Descriptor::parse_bytes(&bytes) {
        Ok(d) if d.create_type().is_some() || d.extents().next().is_some() => Ok(d),
        Ok(_) => Err(not_vmdk()),
        Err(kind) if looks_like => Err(Error::new(Some(path), "descriptor", None, kind)),
        Err(_) => Err(not_vmdk()),
    }
}

fn open_extent(descriptor: &Path, line: &ExtentLine, options: &OpenOptions) -> Result<ExtentData> {
    let structure = "extent";
    match line.kind {
        ExtentKind::Zero => return Ok(ExtentData::Zero),
        ExtentKind::Flat | ExtentKind::Vmfs | ExtentKind::Sparse => {}
        ref other => {
            return Err(Error::new(
                Some(descriptor),
                "descriptor",
                None,
                ErrorKind::Unsupported(format!("{} extents", other.as_str())),
            ));
        }
    }
    let name = line.file_name.as_deref().unwrap_or_default();
    let path = resolve_name(descriptor, name, options.allow_outside_paths)?;
    let backing = options.files.open(
        &path,
        name,
        &folder_of(descriptor),
        options.allow_outside_paths,
    )?;
    if line.kind == ExtentKind::Sparse {
        return Ok(ExtentData::Sparse(Box::new(SparseExtent::open(backing)?)));
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
    backing
        .check_range(structure, offset, len)
        .map_err(|e| Error {
            kind: ErrorKind::Inconsistent(format!(
                "the flat extent is shorter than its descriptor says: {}",
                e.kind
            )),
            ..e
        })?;
    Ok(ExtentData::Flat { backing, offset })
}

impl ReadAt for Disk {
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        if pos >= self.capacity {
            return Ok(0);
        }
        let n = (self.capacity - pos).min(buf.len() as u64) as usize;
        let part = buf.get_mut(..n).unwrap_or(&mut []);
        self.read_link(pos, part, &mut Vec::new())?;
        Ok(n)
    }
}
