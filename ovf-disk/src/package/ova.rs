//! OVA archives: a tar of the OVF package, read in place without unpacking (DSP0243 §5.3).
//!
//! [`OvaIndex`] walks the tar headers once and records each member's name, data offset and
//! size; a member is then read with positioned reads straight from the archive, so a disk in
//! an OVA opens as a [`vmdk::Disk`] through [`OvaFiles`] with no temporary copy. Refused, with
//! the member's name and header offset: names that are absolute, contain `..` or a path,
//! links, and anything that is not a regular file. The descriptor should be the first member
//! (DSP0243 §5.3, and VMware's importers insist); like govc and virt-v2v, an archive whose only
//! `.ovf` member comes later is still read (`check --target` reports it, `fix` reorders it),
//! but with several `.ovf` members only the first member can be the descriptor.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use positioned_io::ReadAt;

use crate::error::{Error, Result};

/// One member of the archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Member {
    /// Its name inside the package: a relative path, without the folder of the descriptor
    /// when every member sits in that folder.
    pub name: String,
    /// Byte offset of its header in the archive.
    pub header_offset: u64,
    /// Byte offset of its data.
    pub offset: u64,
    /// Its size in bytes.
    pub size: u64,
    /// Extension headers (pax, GNU long names) precede its header: some importers read them
    /// as members of their own (`@PaxHeader`, `././@LongLink`).
    pub extended: bool,
}

/// The bytes of an archive: a local file, or any positioned storage (an object at a URL).
pub(crate) type Storage = Arc<dyn ReadAt + Send + Sync>;

/// The members of an OVA, in archive order.
#[derive(Clone)]
pub(crate) struct OvaIndex {
    path: PathBuf,
    file: Storage,
    members: Vec<Member>,
    /// Which member is the descriptor.
    descriptor: usize,
}

impl std::fmt::Debug for OvaIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OvaIndex")
            .field("path", &self.path)
            .field("members", &self.members)
            .field("descriptor", &self.descriptor)
            .finish()
    }
}

/// Sequential reads and seeks over positioned storage, for the tar reader.
struct SeekCursor {
    data: Storage,
    pos: u64,
    len: u64,
}

impl Read for SeekCursor {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.len.saturating_sub(self.pos).min(buf.len() as u64) as usize;
        if n == 0 {
            return Ok(0);
        }
        let got = self.data.read_at(self.pos, buf.split_at_mut(n).0)?;
        self.pos += got as u64;
        Ok(got)
    }
}

impl std::io::Seek for SeekCursor {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        let bad = || std::io::Error::new(std::io::ErrorKind::InvalidInput, "seek out of range");
        self.pos = match to {
            std::io::SeekFrom::Start(p) => p,
            std::io::SeekFrom::End(d) => self.len.checked_add_signed(d).ok_or_else(bad)?,
            std::io::SeekFrom::Current(d) => self.pos.checked_add_signed(d).ok_or_else(bad)?,
        };
        Ok(self.pos)
    }
}

/// Most members an OVA may have (a package has a handful of files).
pub(crate) const MAX_MEMBERS: usize = 10_000;

/// The archive `path` ends before the structure at `offset` (a header, or the end-of-archive
/// marker) that follows the member `last`.
pub(crate) fn cut_short(path: &Path, last: &Option<String>, offset: u64, missing: u64) -> Error {
    Error::Truncated {
        path: path.to_path_buf(),
        what: match last {
            Some(name) => {
                format!("what follows tar member {name:?} (a header, or the end-of-archive marker)")
            }
            None => "the first tar header".into(),
        },
        offset,
        missing,
    }
}

/// The name of the tar member `raw` inside the package (`./` and inner `.` dropped), or why it
/// is refused: it leads outside the archive, is absolute, or is no file name.
pub(crate) fn member_name(raw: &str) -> std::result::Result<String, String> {
    ovf::names::locate(raw).map_err(|why| format!("its name {why}"))
}

/// The folder the descriptor `name` sits in inside the archive, with its `/` (`sub/`), or
/// nothing for the archive's root.
pub(crate) fn root_of(descriptor: &str) -> &str {
    descriptor
        .rfind('/')
        .map_or("", |i| descriptor.get(..=i).unwrap_or(""))
}

/// Names every member relative to the descriptor's folder when every member sits in it (as
/// some exporters and virt-v2v's tests write OVAs: `sub/x.ovf`, `sub/disk1.vmdk`).
fn strip_root(members: &mut [Member], descriptor: usize) {
    let root = members
        .get(descriptor)
        .map(|m| root_of(&m.name).to_string())
        .unwrap_or_default();
    if root.is_empty() || !members.iter().all(|m| m.name.starts_with(&root)) {
        return;
    }
    for m in members.iter_mut() {
        m.name = m.name.get(root.len()..).unwrap_or_default().to_string();
    }
}

/// Which member is the OVF descriptor: the first, or else the only `.ovf` member.
fn descriptor_index(path: &Path, members: &[Member]) -> Result<usize> {
    let is_ovf = |m: &Member| m.name.to_ascii_lowercase().ends_with(".ovf");
    let descriptor = if members.first().is_some_and(is_ovf) {
        0
    } else {
        let mut ovfs = members.iter().enumerate().filter(|(_, m)| is_ovf(m));
        match (ovfs.next(), ovfs.next(), members.first()) {
            (Some((i, _)), None, _) => i,
            (Some(_), Some(_), Some(m)) => {
                return Err(Error::Archive {
                    path: path.to_path_buf(),
                    what: format!("tar member {:?}", m.name),
                    offset: m.header_offset,
                    reason: "the OVF descriptor must be the first member (there are \
                        several .ovf members)"
                        .into(),
                })
            }
            _ => {
                return Err(Error::Missing {
                    path: path.to_path_buf(),
                    name: "an OVF descriptor".into(),
                })
            }
        }
    };
    Ok(descriptor)
}

impl OvaIndex {
    /// Reads the tar headers of `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let file = File::open(path).map_err(Error::io(path))?;
        let archive_len = file.metadata().map_err(Error::io(path))?.len();
        Self::from_storage(path, Arc::new(file), archive_len)
    }

    /// Reads the tar headers of an archive of `archive_len` bytes held in `file`, named `path`.
    pub fn from_storage(path: &Path, file: Storage, archive_len: u64) -> Result<Self> {
        let mut archive = tar::Archive::new(SeekCursor {
            data: file.clone(),
            pos: 0,
            len: archive_len,
        });
        let mut members = Vec::new();
        // Where the next header should be, for errors the tar reader reports without one.
        let mut next_header = 0u64;
        // The last member, for errors about what follows it.
        let mut last = None;
        for entry in archive.entries_with_seek().map_err(Error::io(path))? {
            let entry = entry.map_err(|e| {
                if next_header + 512 > archive_len {
                    return cut_short(path, &last, next_header, next_header + 512 - archive_len);
                }
                Error::Archive {
                    path: path.to_path_buf(),
                    what: "tar header".into(),
                    offset: next_header,
                    reason: e.to_string(),
                }
            })?;
            let header_offset = entry.raw_header_position();
            let bad = |reason: String| Error::Archive {
                path: path.to_path_buf(),
                what: format!(
                    "tar member {:?}",
                    String::from_utf8_lossy(&entry.path_bytes())
                ),
                offset: header_offset,
                reason,
            };
            let raw = String::from_utf8(entry.path_bytes().into_owned())
                .map_err(|_| bad("its name is not UTF-8".into()))?;
            let folder = entry.header().entry_type() == tar::EntryType::Directory;
            let name = member_name(raw.strip_suffix('/').filter(|_| folder).unwrap_or(&raw))
                .map_err(bad)?;
            match entry.header().entry_type() {
                tar::EntryType::Regular | tar::EntryType::Continuous => {}
                // A folder the members sit in: nothing to read.
                tar::EntryType::Directory if entry.size() == 0 => {
                    next_header = entry.raw_file_position();
                    continue;
                }
                t if t.is_symlink() || t.is_hard_link() => return Err(bad("it is a link".into())),
                t => return Err(bad(format!("it is not a regular file ({t:?})"))),
            }
            if members.len() >= MAX_MEMBERS {
                return Err(bad(format!("more than {MAX_MEMBERS} members")));
            }
            if members.iter().any(|m: &Member| m.name == name) {
                return Err(bad("a second member with this name".into()));
            }
            let (offset, size) = (entry.raw_file_position(), entry.size());
            match offset.checked_add(size) {
                None => return Err(bad(format!("its size, {size} bytes, is impossible"))),
                Some(end) if end > archive_len => {
                    return Err(Error::Truncated {
                        path: path.to_path_buf(),
                        what: format!("tar member {name:?} ({size} bytes)"),
                        offset: header_offset,
                        missing: end - archive_len,
                    })
                }
                Some(_) => {}
            }
            let extended = header_offset != next_header;
            next_header = (offset + size).div_ceil(512) * 512;
            last = Some(name.clone());
            members.push(Member {
                name,
                header_offset,
                offset,
                size,
                extended,
            });
        }
        // The end-of-archive marker, two zero blocks, must follow the last member (the padding
        // after it comes first): an archive cut there lost nothing a reader would see, but it
        // is not the archive that was written.
        let end = next_header + 1024;
        if archive_len < end {
            return Err(cut_short(path, &last, next_header, end - archive_len));
        }
        let descriptor = descriptor_index(path, &members)?;
        strip_root(&mut members, descriptor);
        Ok(Self {
            path: path.to_path_buf(),
            file,
            members,
            descriptor,
        })
    }

    /// Members in archive order.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The descriptor: the first member, or the only `.ovf` member when it comes later.
    pub fn descriptor(&self) -> Option<&Member> {
        self.members.get(self.descriptor)
    }

    /// The member called `name`.
    pub fn get(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }

    /// Reads a member's data.
    pub fn reader(&self, m: &Member) -> MemberReader {
        MemberReader {
            file: self.file.clone(),
            offset: m.offset,
            end: m.offset + m.size,
        }
    }

    /// Reads a member's data from `offset` (past its end: nothing).
    pub fn reader_from(&self, m: &Member, offset: u64) -> MemberReader {
        MemberReader {
            file: self.file.clone(),
            offset: m.offset.saturating_add(offset.min(m.size)),
            end: m.offset + m.size,
        }
    }

    /// Reads `buf.len()` bytes of the member `name` from `offset` (inside it: the caller
    /// checked).
    pub fn read_member_at(&self, name: &str, offset: u64, buf: &mut [u8]) -> Result<()> {
        let m = self.get(name).ok_or_else(|| Error::Missing {
            path: self.path.clone(),
            name: name.to_string(),
        })?;
        self.file
            .read_exact_at(m.offset + offset, buf)
            .map_err(Error::io(&self.path))
    }

    /// Reads a small member (a descriptor or manifest) whole, at most `max` bytes.
    pub fn read_small(&self, m: &Member, max: u64) -> Result<Vec<u8>> {
        if m.size > max {
            return Err(Error::Archive {
                path: self.path.clone(),
                what: format!("tar member {:?}", m.name),
                offset: m.header_offset,
                reason: format!("larger than {max} bytes"),
            });
        }
        let mut out = Vec::new();
        self.reader(m)
            .read_to_end(&mut out)
            .map_err(Error::io(&self.path))?;
        Ok(out)
    }
}

/// Sequential reads of one member's data.
pub(crate) struct MemberReader {
    file: Storage,
    offset: u64,
    end: u64,
}

impl Read for MemberReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (self.end.saturating_sub(self.offset)).min(buf.len() as u64) as usize;
        if n == 0 {
            return Ok(0);
        }
        let got = self
            .file
            .read_at(self.offset, buf.split_at_mut(n.min(buf.len())).0)?;
        if got == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the archive ends inside a member",
            ));
        }
        self.offset += got as u64;
        Ok(got)
    }
}

/// Positioned reads of one member, for [`vmdk::Backing`].
struct MemberStorage {
    file: Storage,
    offset: u64,
    len: u64,
}

impl ReadAt for MemberStorage {
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.len.saturating_sub(pos).min(buf.len() as u64) as usize;
        if n == 0 {
            return Ok(0);
        }
        self.file
            .read_at(self.offset + pos, buf.split_at_mut(n.min(buf.len())).0)
    }
}

/// The members of an OVA as the files a disk descriptor names: `vmdk::Disk` opens a disk
/// inside the archive in place.
#[derive(Clone, Debug)]
pub(crate) struct OvaFiles(pub Arc<OvaIndex>);

impl vmdk::Files for OvaFiles {
    fn open(&self, path: &Path) -> vmdk::Result<vmdk::Backing> {
        let name = path.to_str().and_then(|p| ovf::names::locate(p).ok());
        let m = name.and_then(|n| self.0.get(&n)).ok_or_else(|| {
            vmdk::Error::io(
                path,
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!(
                        "{} is not a member of {}",
                        path.display(),
                        self.0.path.display()
                    ),
                ),
            )
        })?;
        let storage = MemberStorage {
            file: self.0.file.clone(),
            offset: m.offset,
            len: m.size,
        };
        Ok(vmdk::Backing::new(path, storage, m.size))
    }
}

/// Writes an OVA: `members` (name, size, data) in the order given, which should be the
/// descriptor, the manifest, the certificate, then the disks. Sizes are checked against the data.
#[cfg(feature = "write")]
pub(crate) fn write_ova<W: std::io::Write>(
    out: W,
    members: Vec<(String, u64, Box<dyn Read + '_>)>,
) -> std::io::Result<W> {
    let mut b = tar::Builder::new(out);
    b.mode(tar::HeaderMode::Deterministic);
    for (name, size, data) in members {
        if !ovf::names::is_plain_name(&name) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("{name:?} is not a plain file name"),
            ));
        }
        // A plain ustar header holds a name of 100 bytes; a longer one would need a GNU or pax
        // extension some importers do not read (a name without '/' cannot use ustar's prefix).
        if name.len() > 100 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "{name:?} is {} bytes long: a plain ustar member name holds at most 100",
                    name.len()
                ),
            ));
        }
        let mut h = tar::Header::new_ustar();
        h.set_size(size);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        let mut counted = Counted { inner: data, n: 0 };
        b.append_data(&mut h, &name, &mut counted)?;
        if counted.n != size {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{name}: {} bytes where {size} were announced", counted.n),
            ));
        }
    }
    b.into_inner()
}

#[cfg(feature = "write")]
struct Counted<R> {
    inner: R,
    n: u64,
}

#[cfg(feature = "write")]
impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n += k as u64;
        Ok(k)
    }
}
