//! What a file claims to be, read from its head and its descriptor alone: what an image
//! service checks before it trusts an upload (OpenStack Glance's format inspector exists because
//! a VMDK descriptor can name any file of the host). Nothing the descriptor names is opened:
//! extent and parent names are only resolved and checked against the descriptor's folder.

use std::path::{Path, PathBuf};

use crate::descriptor::{CreateType, ExtentKind};
use crate::disk::{descriptor_of, is_encrypted, other_format, OpenOptions};
use crate::error::{Error, ErrorKind, Result};
use crate::format::SECTOR_SIZE;
use crate::io::{folder_of, resolve_name, Backing, Files};
use crate::read::qcow2::{self, Qcow2Extent};
use crate::read::{cowd, sesparse};

/// What [`crate::OpenOptions::inspect`] found in a file.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Inspection {
    /// The file inspected.
    pub file: PathBuf,
    /// What the file is: `vmdk` (a text descriptor, or a sparse or stream-optimized file with
    /// its descriptor inside), `vmfsSparse-extent` or `seSparse-extent` (an ESXi delta's data
    /// file, which has no descriptor), another image format by name (`qcow2`, `vhdx`, `vhd`,
    /// `vdi`, `qed`, `luks`), or `raw` (none of these).
    pub format: String,
    /// The descriptor's `createType`, as written.
    pub create_type: Option<String>,
    /// Whether this library reads disks of that `createType`.
    pub supported: bool,
    /// The virtual size in bytes: the descriptor's extents added up (a lone sparse file's
    /// header capacity); for raw files, the file's length.
    pub capacity: Option<u64>,
    /// Whether the disk is a delta over a parent (`parentCID` other than `ffffffff`).
    pub has_parent: bool,
    /// Whether the descriptor lists encryption keys or VMware's encryption filter.
    pub encrypted: bool,
    /// Every file the descriptor names: its extents' files, then the parent's.
    pub files: Vec<NamedFile>,
}

/// A file a descriptor names.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct NamedFile {
    /// `extent`, `parent`, or `backing` (a qcow2 image's backing file).
    pub role: &'static str,
    /// The name as the descriptor writes it.
    pub name: String,
    /// The path it resolves to beside the descriptor (absent when it cannot be resolved).
    pub path: Option<PathBuf>,
    /// Why the name leads outside the descriptor's folder (an absolute path, `..`, a link
    /// resolving elsewhere, a device), or `None` when it stays inside.
    pub outside: Option<String>,
    /// Whether this is the inspected file itself (the extent of a file with an embedded
    /// descriptor).
    pub is_self: bool,
}

impl Inspection {
    /// Whether any file the descriptor names leads outside its folder.
    pub fn names_outside(&self) -> bool {
        self.files.iter().any(|f| f.outside.is_some())
    }
}

impl OpenOptions {
    /// What `path` claims to be, read from its head and its descriptor alone, without opening
    /// any file the descriptor names (extent and parent names are resolved and checked against
    /// the descriptor's folder, never opened): what an image service checks before it trusts
    /// a file. Errors only when `path` itself cannot be read or its descriptor is damaged.
    ///
    /// ```no_run
    /// let found = vmdk::OpenOptions::new().inspect("upload.vmdk")?;
    /// let allowed = ["monolithicSparse", "streamOptimized"];
    /// let trusted = found.format == "vmdk"
    ///     && found.create_type.as_deref().is_some_and(|t| allowed.contains(&t))
    ///     && !found.names_outside();
    /// # let _ = trusted;
    /// # Ok::<(), vmdk::Error>(())
    /// ```
    pub fn inspect(&self, path: impl AsRef<Path>) -> Result<Inspection> {
        inspect(self.files_in_use(), path.as_ref())
    }
}

/// Inspects `path` through `files`: its head, and its descriptor when it has one.
pub(crate) fn inspect(files: &dyn Files, path: &Path) -> Result<Inspection> {
    let backing = files.open(path)?;
    let len = backing.len();
    let head = backing.read_vec("image header", 0, len.min(SECTOR_SIZE))?;
    let mut found = Inspection {
        file: path.to_path_buf(),
        format: "raw".into(),
        create_type: None,
        supported: false,
        capacity: None,
        has_parent: false,
        encrypted: false,
        files: Vec::new(),
    };
    let lone = if cowd::has_magic(&head) {
        Some("vmfsSparse-extent")
    } else if sesparse::has_magic(&head) {
        Some("seSparse-extent")
    } else {
        None
    };
    if let Some(format) = lone {
        found.format = format.into();
        return Ok(found);
    }
    if qcow2::has_magic(&head) {
        inspect_qcow2(files, path, backing, &head, &mut found)?;
        return Ok(found);
    }
    let descriptor = match descriptor_of(&backing) {
        Ok((d, _)) => d,
        Err(e) if matches!(e.kind(), ErrorKind::NotVmdk) => {
            let tail_at = len.saturating_sub(SECTOR_SIZE);
            let tail = backing.read_vec("image footer", tail_at, len - tail_at)?;
            // Named by the first word of the format's name, lower case: qcow2, vhdx, luks.
            found.format = other_format(&head, &tail)
                .and_then(|n| n.split([' ', '-']).next())
                .unwrap_or("raw")
                .to_ascii_lowercase();
            if found.format == "raw" {
                found.capacity = Some(len);
            }
            return Ok(found);
        }
        Err(e) => return Err(e),
    };
    found.format = "vmdk".into();
    let create_type = descriptor.create_type();
    found.supported = create_type.as_ref().is_some_and(CreateType::is_supported);
    found.create_type = create_type.map(|t| t.as_str().to_string());
    found.has_parent = descriptor.has_parent();
    found.encrypted = is_encrypted(&descriptor);
    let mut capacity = Some(0u64);
    let embedded = head.get(..4) == Some(b"KDMV".as_slice());
    for (index, line) in descriptor.extents().enumerate() {
        capacity = line
            .sectors
            .checked_mul(SECTOR_SIZE)
            .and_then(|l| capacity?.checked_add(l));
        if let Some(name) = &line.file_name {
            let is_self = embedded && index == 0 && line.kind == ExtentKind::Sparse;
            found
                .files
                .push(named(files, path, "extent", name, is_self)?);
        }
    }
    found.capacity = capacity;
    if found.has_parent {
        if let Some(hint) = descriptor.parent_file_name_hint() {
            found.files.push(named(files, path, "parent", hint, false)?);
        }
    }
    Ok(found)
}

/// What a qcow2 image says of itself: its size, its backing file (checked like a VMDK's
/// parent, without opening it) and its encryption; `supported` when this library reads it
/// (not for a feature it does not read, nor for a damaged header or L1 table).
fn inspect_qcow2(
    files: &dyn Files,
    path: &Path,
    backing: Backing,
    head: &[u8],
    found: &mut Inspection,
) -> Result<()> {
    found.format = "qcow2".into();
    found.encrypted = head.get(32..36).is_some_and(|m| m != [0; 4]);
    match Qcow2Extent::open(backing) {
        Ok(q) => {
            found.supported = true;
            found.capacity = Some(q.capacity_bytes());
            if let Some(name) = q.backing_file() {
                found.has_parent = true;
                found
                    .files
                    .push(named(files, path, "backing", name, false)?);
            }
            Ok(())
        }
        // A feature not read, or damage: not supported, which is the verdict.
        Err(_) => Ok(()),
    }
}

/// A name the descriptor at `descriptor` writes, resolved and checked without opening it.
fn named(
    files: &dyn Files,
    descriptor: &Path,
    role: &'static str,
    name: &str,
    is_self: bool,
) -> Result<NamedFile> {
    let mut named = NamedFile {
        role,
        name: name.to_string(),
        path: None,
        outside: None,
        is_self,
    };
    if is_self {
        named.path = Some(descriptor.to_path_buf());
        return Ok(named);
    }
    match resolve_name(descriptor, name, false) {
        Ok(path) => {
            named.outside = match files.leads_outside(&path, &folder_of(descriptor)) {
                Ok(why) => why.map(str::to_string),
                // A file that does not exist leads nowhere: it is missing, not outside.
                Err(e) if is_not_found(&e) => None,
                Err(e) => return Err(e),
            };
            named.path = Some(path);
        }
        Err(e) => match e.kind() {
            ErrorKind::PathOutside { why, .. } => named.outside = Some((*why).to_string()),
            _ => named.outside = Some(e.to_string()),
        },
    }
    Ok(named)
}

fn is_not_found(e: &Error) -> bool {
    matches!(e.kind(), ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::NotFound)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use crate::{MemoryFiles, OpenOptions};

    fn inspect_text(text: &str) -> super::Inspection {
        let mut files = MemoryFiles::new();
        files.insert("d.vmdk", text.as_bytes().to_vec());
        OpenOptions::new().files(files).inspect("d.vmdk").unwrap()
    }

    #[test]
    fn names_leading_outside_are_reported_not_opened() {
        let i = inspect_text(
            "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=12345678\n\
             createType=\"monolithicFlat\"\nparentFileNameHint=\"../base.vmdk\"\n\
             RW 2048 FLAT \"/etc/shadow\" 0\nRW 2048 FLAT \"inside-flat.vmdk\" 0\n",
        );
        assert_eq!(i.format, "vmdk");
        assert_eq!(i.create_type.as_deref(), Some("monolithicFlat"));
        assert_eq!(i.capacity, Some(2 * 2048 * 512));
        assert!(i.has_parent && i.supported && !i.encrypted);
        let outside: Vec<_> = i.files.iter().map(|f| f.outside.is_some()).collect();
        assert_eq!(outside, [true, false, true]);
        assert_eq!(i.files[2].role, "parent");
        assert!(i.names_outside());
    }

    #[test]
    fn raw_and_other_formats_are_named() {
        let mut files = MemoryFiles::new();
        files.insert("r.img", vec![7u8; 4096]);
        let mut q = b"QFI\xfb\0\0\0\x03".to_vec();
        q.resize(4096, 0);
        files.insert("q.img", q);
        let o = OpenOptions::new().files(files);
        let r = o.inspect("r.img").unwrap();
        assert_eq!((r.format.as_str(), r.capacity), ("raw", Some(4096)));
        assert_eq!(o.inspect("q.img").unwrap().format, "qcow2");
    }

    #[test]
    fn a_capacity_past_2_64_is_none() {
        let i = inspect_text(&format!(
            "createType=\"monolithicFlat\"\nRW {} FLAT \"a\" 0\nRW 8 FLAT \"b\" 0\n",
            u64::MAX / 512
        ));
        assert_eq!(i.capacity, None);
    }
}
