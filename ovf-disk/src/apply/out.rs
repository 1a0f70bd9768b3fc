//! Where an apply writes: a file at disk offsets (a raw image, a block device, the flat extent
//! of a thick VMDK), or a qcow2 image updated in place (`vmdk::Qcow2Update`).

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::error::{Error, Result};

/// An open target.
pub(crate) enum Out {
    /// Bytes at disk offsets.
    File(File, PathBuf),
    /// A qcow2 image.
    Qcow2(Box<Mutex<vmdk::Qcow2Update>>, PathBuf),
}

impl Out {
    /// Opens `target` for writing: a qcow2 image by its magic, else what
    /// [`super::target_file`] finds. Returns it with its capacity (a block device's size).
    pub(crate) fn open(target: &Path) -> Result<(Self, u64)> {
        let mut magic = [0u8; 4];
        let head = File::open(target).and_then(|f| f.read_at(&mut magic, 0));
        if head.is_ok_and(|n| n == 4) && &magic == b"QFI\xfb" {
            let image = vmdk::Qcow2Update::open(target)?;
            let capacity = image.capacity();
            return Ok((
                Self::Qcow2(Box::new(Mutex::new(image)), target.to_path_buf()),
                capacity,
            ));
        }
        let (file, room) = super::target_file(target)?;
        let out = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&file)
            .map_err(Error::io(&file))?;
        Ok((Self::File(out, file), room))
    }

    /// The file written (the flat extent of a thick VMDK, else the target).
    pub(crate) fn path(&self) -> &Path {
        match self {
            Self::File(_, p) | Self::Qcow2(_, p) => p,
        }
    }

    fn qcow2(m: &Mutex<vmdk::Qcow2Update>) -> std::sync::MutexGuard<'_, vmdk::Qcow2Update> {
        m.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `buf` at disk offset `at`.
    pub(crate) fn write_at(&self, buf: &[u8], at: u64) -> Result<()> {
        match self {
            Self::File(f, p) => f.write_all_at(buf, at).map_err(Error::io(p)),
            Self::Qcow2(m, _) => Ok(Self::qcow2(m).write_at(at, buf)?),
        }
    }

    /// Makes `len` bytes at `at` read as zeros (`zeros`, at least `len` long, for files).
    pub(crate) fn write_zeroes(&self, at: u64, len: u64, zeros: &[u8]) -> Result<()> {
        match self {
            Self::File(..) => self.write_at(zeros.get(..len as usize).unwrap_or_default(), at),
            Self::Qcow2(m, _) => Ok(Self::qcow2(m).write_zeroes(at, len)?),
        }
    }

    /// Makes the writes durable.
    pub(crate) fn sync(&self) -> Result<()> {
        match self {
            Self::File(f, p) => f.sync_data().map_err(Error::io(p)),
            Self::Qcow2(m, _) => Ok(Self::qcow2(m).flush()?),
        }
    }

    /// Reads `buf.len()` bytes at disk offset `at`.
    pub(crate) fn read_exact_at(&self, buf: &mut [u8], at: u64) -> std::io::Result<()> {
        match self {
            Self::File(f, _) => f.read_exact_at(buf, at),
            Self::Qcow2(m, _) => Self::qcow2(m)
                .read_at(at, buf)
                .map_err(std::io::Error::other),
        }
    }
}
