//! Positioned I/O over the files of a disk, and the policy that decides which files a
//! descriptor may name.
//!
//! A [`Backing`] is one file (or byte buffer) read through [`ReadAt`], so one image can be read
//! from many threads at once. Every read is checked against the backing's length first and fails
//! with the file, the structure and the offset: nothing reads outside an image.
//!
//! A [`Files`] opens the files a descriptor names. The host's files (the default) are opened
//! with a policy that, unless told otherwise, refuses names that lead outside the descriptor's
//! folder (absolute paths, `..`, symlinks that resolve elsewhere, device files): importers have
//! been hit by descriptors naming host files (CVE-2022-47951). [`MemoryFiles`] serves disks from
//! memory (tests, fuzz targets, images an importer already holds), and an importer can serve
//! them from anywhere else (the members of an archive) with its own [`Files`].

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use positioned_io::ReadAt;

use crate::error::{Error, ErrorKind, Result};

/// Anything a disk can be read from: positioned reads from any thread.
trait Storage: ReadAt + Send + Sync {}
impl<T: ReadAt + Send + Sync> Storage for T {}

/// Bytes held in memory, shared.
#[derive(Clone, Debug)]
struct MemoryStorage(Arc<[u8]>);

impl MemoryStorage {
    fn copy_out(data: &[u8], pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        let start = usize::try_from(pos).unwrap_or(usize::MAX).min(data.len());
        let avail = data.split_at(start.min(data.len())).1;
        let n = avail.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), avail.get(..n)) {
            dst.copy_from_slice(src);
        }
        Ok(n)
    }
}

impl ReadAt for MemoryStorage {
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        Self::copy_out(&self.0, pos, buf)
    }
}

/// A host file shared with the hole queries.
#[derive(Debug)]
struct SharedFile(Arc<File>);

impl ReadAt for SharedFile {
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read_at(pos, buf)
    }
}

/// A read-only memory map of a whole file.
#[derive(Debug)]
struct MappedStorage(memmap2::Mmap);

impl ReadAt for MappedStorage {
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        MemoryStorage::copy_out(&self.0, pos, buf)
    }
}

/// One file of a disk (a descriptor, an extent, a parent), opened for positioned reads: what a
/// [`Files`] gives back.
#[derive(Clone)]
pub struct Backing {
    path: PathBuf,
    storage: Arc<dyn Storage>,
    len: u64,
    /// The whole file, when it is memory-mapped or held in memory: reads then borrow from it.
    bytes: Option<Arc<dyn AsBytes>>,
    /// The host file, when it is one: where its holes are (`SEEK_DATA`, `SEEK_HOLE`).
    file: Option<Arc<File>>,
}

/// Storage whose bytes can be borrowed.
trait AsBytes: Send + Sync {
    /// All the bytes.
    fn bytes(&self) -> &[u8];
}

impl AsBytes for MappedStorage {
    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl AsBytes for MemoryStorage {
    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Backing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backing")
            .field("path", &self.path)
            .field("len", &self.len)
            .field("mapped", &self.bytes.is_some())
            .finish()
    }
}

impl Backing {
    /// Wraps any storage of `len` bytes read with positioned reads (a member of an archive, a
    /// block device, a network object), named `path` in errors.
    pub fn new(
        path: impl Into<PathBuf>,
        storage: impl ReadAt + Send + Sync + 'static,
        len: u64,
    ) -> Self {
        Self {
            path: path.into(),
            storage: Arc::new(storage),
            len,
            bytes: None,
            file: None,
        }
    }

    /// Wraps an open file for positioned reads; its length is taken now (a file that grows
    /// later is read only up to this length).
    pub fn from_file(path: impl Into<PathBuf>, file: File) -> Result<Self> {
        Self::from_file_with(path, file, false)
    }

    /// Like [`Backing::from_file`]; with `map`, a regular file is memory-mapped, so reads need
    /// no system call and compressed grains are inflated straight from the map. Where a map is
    /// not possible (a pipe, a device, an empty file, a failed mmap) reads are positioned reads.
    /// Mapped pages count in the process's resident size, which then grows with the input.
    pub(crate) fn from_file_with(path: impl Into<PathBuf>, file: File, map: bool) -> Result<Self> {
        let path = path.into();
        let meta = file
            .metadata()
            .map_err(|e| Error::file(&path, ErrorKind::Io(e)))?;
        let len = meta.len();
        if map && meta.is_file() && len > 0 && usize::try_from(len).is_ok() {
            // SAFETY: the map is read-only and private to this process. Another process that
            // truncates the file while we read it would make an access fault (SIGBUS), as with
            // any mmap reader; images are not expected to change while they are read, and the
            // length checks below keep every access inside the length the file had when mapped.
            if let Ok(map) = unsafe { memmap2::Mmap::map(&file) } {
                if map.len() as u64 == len {
                    let _ = map.advise(memmap2::Advice::Sequential);
                    let mapped = Arc::new(MappedStorage(map));
                    return Ok(Self {
                        path,
                        storage: mapped.clone(),
                        len,
                        bytes: Some(mapped),
                        file: Some(Arc::new(file)),
                    });
                }
            }
        }
        let shared = Arc::new(file);
        let mut b = Self::new(path, SharedFile(shared.clone()), len);
        b.file = meta.is_file().then_some(shared);
        Ok(b)
    }

    /// The ranges of `from..to` (clamped to the file) that hold data and those that are holes,
    /// in order, as `(start, len, is_data)`, for a host file whose file system reports holes
    /// (`SEEK_DATA`/`SEEK_HOLE`); `None` when that is not known (not a host file, another
    /// system, an error): then every byte is data. At most 65536 runs are reported; a file more
    /// fragmented than that has its tail reported as data.
    pub(crate) fn data_runs(&self, from: u64, to: u64) -> Option<Vec<(u64, u64, bool)>> {
        #[cfg(target_os = "linux")]
        {
            use rustix::fs::{seek, SeekFrom};
            let file = self.file.as_ref()?;
            let to = to.min(self.len);
            let mut runs = Vec::new();
            let mut pos = from;
            while pos < to {
                if runs.len() >= 1 << 16 {
                    runs.push((pos, to - pos, true));
                    break;
                }
                let data = match seek(&**file, SeekFrom::Data(pos)) {
                    Ok(d) => d.min(to),
                    // No data after `pos`: a hole to the end.
                    Err(rustix::io::Errno::NXIO) => to,
                    Err(_) => return None,
                };
                if data > pos {
                    runs.push((pos, data - pos, false));
                }
                if data >= to {
                    break;
                }
                let hole = match seek(&**file, SeekFrom::Hole(data)) {
                    Ok(h) => h.min(to),
                    Err(_) => return None,
                };
                runs.push((data, hole.max(data + 1).min(to) - data, true));
                pos = hole.max(data + 1);
            }
            Some(runs)
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (from, to);
            None
        }
    }

    /// Wraps bytes held in memory under a made-up name.
    pub fn from_bytes(path: impl Into<PathBuf>, bytes: impl Into<Arc<[u8]>>) -> Self {
        let bytes: Arc<[u8]> = bytes.into();
        let len = bytes.len() as u64;
        let memory = Arc::new(MemoryStorage(bytes));
        Self {
            path: path.into(),
            storage: memory.clone(),
            len,
            bytes: Some(memory),
            file: None,
        }
    }

    /// Whether reads borrow from a map (or memory) rather than make system calls.
    #[cfg(test)]
    pub(crate) fn is_mapped(&self) -> bool {
        self.bytes.is_some()
    }

    /// `len` bytes at `offset`, borrowed when the file is mapped, read into a new buffer
    /// otherwise. The range is checked against the file first.
    pub(crate) fn bytes_at(
        &self,
        structure: &'static str,
        offset: u64,
        len: u64,
    ) -> Result<std::borrow::Cow<'_, [u8]>> {
        self.check_range(structure, offset, len)?;
        if let Some(b) = &self.bytes {
            let range = usize::try_from(offset)
                .ok()
                .zip(usize::try_from(offset + len).ok());
            if let Some(slice) = range.and_then(|(a, e)| b.bytes().get(a..e)) {
                return Ok(std::borrow::Cow::Borrowed(slice));
            }
        }
        self.read_vec(structure, offset, len)
            .map(std::borrow::Cow::Owned)
    }

    /// The file's path as opened.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the file is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Checks that `len` bytes at `offset` lie inside the file.
    pub(crate) fn check_range(&self, structure: &'static str, offset: u64, len: u64) -> Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(()),
            end => Err(Error::new(
                Some(&self.path),
                structure,
                Some(offset),
                ErrorKind::Truncated {
                    end: end.unwrap_or(u64::MAX),
                    file_len: self.len,
                },
            )),
        }
    }

    /// Reads exactly `buf.len()` bytes at `offset`, which must lie inside the file; errors name
    /// `structure`.
    pub(crate) fn read_exact_at(
        &self,
        structure: &'static str,
        offset: u64,
        buf: &mut [u8],
    ) -> Result<()> {
        self.check_range(structure, offset, buf.len() as u64)?;
        self.storage
            .read_exact_at(offset, buf)
            .map_err(|e| Error::new(Some(&self.path), structure, Some(offset), ErrorKind::Io(e)))
    }

    /// Reads `len` bytes at `offset` into a new buffer. The caller bounds `len` (it is checked
    /// against the file's length before anything is allocated).
    pub(crate) fn read_vec(
        &self,
        structure: &'static str,
        offset: u64,
        len: u64,
    ) -> Result<Vec<u8>> {
        self.check_range(structure, offset, len)?;
        let len = usize::try_from(len).map_err(|_| {
            Error::at(
                &self.path,
                structure,
                offset,
                ErrorKind::InvalidInput("too large for this machine".into()),
            )
        })?;
        let mut buf = vec![0u8; len];
        self.read_exact_at(structure, offset, &mut buf)?;
        Ok(buf)
    }
}

/// Positioned reads of the file's bytes, as stored: reads past its length return nothing.
/// What a caller reads besides a disk (the members of an archive at a URL, say) goes through
/// the same storage, cache and retries as the disk's own reads.
impl ReadAt for Backing {
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len.saturating_sub(pos);
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        if n == 0 {
            return Ok(0);
        }
        self.storage.read_at(pos, head_mut(buf, n))
    }
}

/// Opens the files a disk is made of: its descriptor, extents and parents.
///
/// [`crate::OpenOptions`] opens the host's files unless given another `Files`. Implement it to
/// read disks from somewhere else: the members of an archive, an object store.
///
/// ```
/// use std::path::{Path, PathBuf};
/// use vmdk::{Backing, Files};
///
/// /// Every file is a disk of zeros, 1 MiB long.
/// #[derive(Debug)]
/// struct Zeros;
///
/// impl Files for Zeros {
///     fn open(&self, path: &Path) -> vmdk::Result<Backing> {
///         Ok(Backing::from_bytes(path, vec![0u8; 1 << 20]))
///     }
/// }
/// # let _ = Zeros.open(Path::new("x"));
/// ```
pub trait Files: Send + Sync + fmt::Debug {
    /// Opens `path` (already joined to the folder of the descriptor that names it) for reading.
    fn open(&self, path: &Path) -> Result<Backing>;

    /// Why `path` leads outside `folder` (a link resolving elsewhere, a device), or `None` when
    /// it stays inside. Called before [`Files::open`] for every file a descriptor names, unless
    /// [`crate::OpenOptions::allow_outside_paths`] is set. The default says `None`: files that
    /// do not come from a file system cannot lead anywhere else.
    fn leads_outside(&self, path: &Path, folder: &Path) -> Result<Option<&'static str>> {
        let _ = (path, folder);
        Ok(None)
    }

    /// A stable identity for `path` (its canonical path), used to detect parent loops and to
    /// refuse writing an output over an input.
    fn identity(&self, path: &Path) -> PathBuf {
        path.to_path_buf()
    }
}

/// Real files of the host.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct HostFiles {
    /// Memory-map regular files instead of reading them with positioned reads.
    pub map: bool,
}

impl Files for HostFiles {
    fn open(&self, path: &Path) -> Result<Backing> {
        let file = File::open(path).map_err(|e| Error::file(path, ErrorKind::Io(e)))?;
        Backing::from_file_with(path, file, self.map)
    }

    fn leads_outside(&self, path: &Path, folder: &Path) -> Result<Option<&'static str>> {
        let io_err = |e: io::Error| Error::file(path, ErrorKind::Io(e));
        let real = path.canonicalize().map_err(io_err)?;
        let real_folder = folder.canonicalize().map_err(io_err)?;
        if !real.starts_with(&real_folder) {
            return Ok(Some("a link resolves outside it"));
        }
        let meta = std::fs::metadata(&real).map_err(io_err)?;
        if !meta.is_file() {
            return Ok(Some("not a regular file"));
        }
        Ok(None)
    }

    fn identity(&self, path: &Path) -> PathBuf {
        path.canonicalize().unwrap_or_else(|_| path.to_path_buf())
    }
}

/// Files held in memory, by path: disks an importer already holds, tests and fuzz targets,
/// which then go through the same code as real files.
///
/// ```
/// let mut files = vmdk::MemoryFiles::new();
/// files.insert("disk.raw", vec![0u8; 4096]);
/// let disk = vmdk::OpenOptions::new().files(files).open_raw("disk.raw")?;
/// assert_eq!(disk.capacity(), 4096);
/// # Ok::<(), vmdk::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct MemoryFiles {
    files: HashMap<PathBuf, Arc<[u8]>>,
}

impl MemoryFiles {
    /// An empty set of files.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a file.
    pub fn insert(&mut self, path: impl Into<PathBuf>, bytes: impl Into<Arc<[u8]>>) {
        self.files.insert(normalize(&path.into()), bytes.into());
    }

    /// Opens a file by path.
    fn backing(&self, path: &Path) -> Result<Backing> {
        let bytes = self.files.get(&normalize(path)).ok_or_else(|| {
            Error::file(
                path,
                ErrorKind::Io(io::Error::new(io::ErrorKind::NotFound, "no such file")),
            )
        })?;
        Ok(Backing::from_bytes(path, bytes.clone()))
    }
}

impl Files for MemoryFiles {
    fn open(&self, path: &Path) -> Result<Backing> {
        self.backing(path)
    }

    fn identity(&self, path: &Path) -> PathBuf {
        normalize(path)
    }
}

/// Drops `.` components and folds `a/../` lexically (no file system access).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Resolves a file name written in a descriptor at `descriptor` (an extent's or a parent's) to
/// a path. Unless `allow_outside`, the name must be relative and free of `..`: the file then
/// lies in the descriptor's folder or below it (links are checked by [`Files::open`]).
pub(crate) fn resolve_name(descriptor: &Path, name: &str, allow_outside: bool) -> Result<PathBuf> {
    let outside = |why| {
        Error::new(
            Some(descriptor),
            "descriptor",
            None,
            ErrorKind::PathOutside {
                name: name.to_string(),
                why,
            },
        )
    };
    if name.is_empty() {
        return Err(Error::new(
            Some(descriptor),
            "descriptor",
            None,
            ErrorKind::Inconsistent("an extent or parent file name is empty".into()),
        ));
    }
    if name.contains('\0') {
        return Err(outside("it contains a NUL byte"));
    }
    let named = Path::new(name);
    if !allow_outside {
        for c in named.components() {
            match c {
                Component::Prefix(_) | Component::RootDir => return Err(outside("absolute path")),
                Component::ParentDir => return Err(outside("it contains '..'")),
                Component::CurDir | Component::Normal(_) => {}
            }
        }
        // Windows-style absolute names ("C:\x", "\\server\x") are not absolute on Unix.
        if name.starts_with('\\') || name.get(1..2) == Some(":") {
            return Err(outside("absolute path"));
        }
    }
    Ok(folder_of(descriptor).join(named))
}

/// The folder a file lives in (`.` for a bare file name).
pub(crate) fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The first `n` bytes of `buf`, or all of it when it is shorter: a prefix taken without a
/// panic and without a silent empty slice.
pub(crate) fn head_mut(buf: &mut [u8], n: usize) -> &mut [u8] {
    let n = n.min(buf.len());
    buf.split_at_mut(n).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_bounded_by_the_file() {
        let b = Backing::from_bytes("m", vec![1u8, 2, 3, 4]);
        let mut buf = [0u8; 2];
        assert!(b.read_exact_at("x", 2, &mut buf).is_ok());
        assert_eq!(buf, [3, 4]);
        let e = b.read_exact_at("grain table", 3, &mut buf).unwrap_err();
        assert!(matches!(
            e.kind(),
            ErrorKind::Truncated {
                end: 5,
                file_len: 4
            }
        ));
        assert_eq!(e.offset(), Some(3));
        assert!(b.check_range("x", u64::MAX, 2).is_err());
        assert!(b.read_vec("x", 0, u64::MAX).is_err());
    }

    #[test]
    fn names_outside_the_folder_are_refused() {
        let d = Path::new("/images/disk.vmdk");
        assert_eq!(
            resolve_name(d, "disk-flat.vmdk", false).unwrap(),
            Path::new("/images/disk-flat.vmdk")
        );
        assert_eq!(
            resolve_name(d, "sub/x.vmdk", false).unwrap(),
            Path::new("/images/sub/x.vmdk")
        );
        for bad in [
            "/etc/passwd",
            "../x.vmdk",
            "a/../../x",
            "C:\\x.vmdk",
            "\\\\srv\\x",
            "",
        ] {
            assert!(resolve_name(d, bad, false).is_err(), "{bad}");
        }
        assert_eq!(
            resolve_name(d, "/dev/zero", true).unwrap(),
            Path::new("/dev/zero")
        );
        assert_eq!(
            resolve_name(Path::new("disk.vmdk"), "f.vmdk", false).unwrap(),
            Path::new("./f.vmdk")
        );
    }

    #[test]
    fn host_files_say_which_links_lead_outside() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path();
        std::fs::write(dir.join("in.vmdk"), b"x").unwrap();
        std::os::unix::fs::symlink("/etc/hostname", dir.join("link.vmdk")).unwrap();
        std::os::unix::fs::symlink("in.vmdk", dir.join("inner-link.vmdk")).unwrap();
        let f = HostFiles::default();
        assert_eq!(f.leads_outside(&dir.join("in.vmdk"), dir).unwrap(), None);
        assert_eq!(
            f.leads_outside(&dir.join("inner-link.vmdk"), dir).unwrap(),
            None
        );
        assert_eq!(
            f.leads_outside(&dir.join("link.vmdk"), dir).unwrap(),
            Some("a link resolves outside it")
        );
        assert!(f.open(&dir.join("link.vmdk")).is_ok());
        assert!(f.leads_outside(&dir.join("missing.vmdk"), dir).is_err());
    }

    #[test]
    fn files_are_mapped_and_borrowed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"0123456789").unwrap();
        assert!(!Backing::from_file(&p, File::open(&p).unwrap())
            .unwrap()
            .is_mapped());
        let b = Backing::from_file_with(&p, File::open(&p).unwrap(), true).unwrap();
        assert!(b.is_mapped());
        assert!(matches!(
            b.bytes_at("x", 2, 3).unwrap(),
            std::borrow::Cow::Borrowed(b"234")
        ));
        assert!(b.bytes_at("x", 8, 3).is_err());
        let mut buf = [0u8; 4];
        b.read_exact_at("x", 6, &mut buf).unwrap();
        assert_eq!(&buf, b"6789");
        std::fs::write(dir.path().join("empty"), b"").unwrap();
        let e =
            Backing::from_file_with("empty", File::open(dir.path().join("empty")).unwrap(), true)
                .unwrap();
        assert!(!e.is_mapped() && e.is_empty());
    }

    #[test]
    fn memory_files_normalize_paths() {
        let mut m = MemoryFiles::new();
        m.insert("a/b.vmdk", vec![0u8; 3]);
        assert_eq!(m.backing(Path::new("./a/./b.vmdk")).unwrap().len(), 3);
        assert!(m.backing(Path::new("a/c.vmdk")).is_err());
    }
}
