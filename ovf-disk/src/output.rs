//! Output files that appear under their final name only when complete.
//!
//! A [`PendingFile`] is written under a hidden temporary name in the target folder
//! (`.NAME.partial-PID-N`), flushed to the device, then renamed into place, and the folder synced.
//! Dropped without [`PendingFile::commit`], it removes itself: a failed or interrupted run never
//! leaves a file under the name the user asked for.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::error::{Error, Result};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A file being written under a temporary name.
#[derive(Debug)]
pub(crate) struct PendingFile {
    target: PathBuf,
    temp: PathBuf,
    file: File,
    committed: bool,
}

/// Refuses `target` if it exists (unless `force`) or is one of `inputs` (always).
pub(crate) fn check_target(target: &Path, inputs: &[PathBuf], force: bool) -> Result<()> {
    let Ok(meta) = std::fs::metadata(target) else {
        return Ok(());
    };
    for input in inputs {
        if let Ok(m) = std::fs::metadata(input) {
            if m.dev() == meta.dev() && m.ino() == meta.ino() {
                return Err(Error::IsInput(target.to_path_buf()));
            }
        }
    }
    if !force {
        return Err(Error::Exists(target.to_path_buf()));
    }
    if meta.is_dir() {
        return Err(Error::Io {
            path: target.to_path_buf(),
            error: io::Error::new(io::ErrorKind::IsADirectory, "is a folder"),
        });
    }
    Ok(())
}

impl PendingFile {
    /// Creates the temporary file beside `target`.
    pub fn create(target: &Path) -> Result<Self> {
        let name = target.file_name().ok_or_else(|| Error::Io {
            path: target.to_path_buf(),
            error: io::Error::new(io::ErrorKind::InvalidInput, "not a file name"),
        })?;
        let folder = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let temp = folder.join(format!(
            ".{}.partial-{}-{n}",
            name.to_string_lossy(),
            std::process::id()
        ));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&temp)
            .map_err(Error::io(&temp))?;
        Ok(Self {
            target: target.to_path_buf(),
            temp,
            file,
            committed: false,
        })
    }

    /// The open temporary file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The temporary file's path (for error messages).
    pub fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// Flushes the data to the device, renames the file into place and syncs the folder.
    pub fn commit(mut self) -> Result<()> {
        self.file.sync_all().map_err(Error::io(&self.temp))?;
        std::fs::rename(&self.temp, &self.target).map_err(Error::io(&self.target))?;
        self.committed = true;
        if let Some(folder) = self.target.parent().filter(|p| !p.as_os_str().is_empty()) {
            if let Ok(dir) = File::open(folder) {
                let _ = dir.sync_all();
            }
        }
        Ok(())
    }
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_file(&self.temp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn appears_only_when_committed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.raw");
        let p = PendingFile::create(&target).unwrap();
        p.file().write_all(b"data").unwrap();
        assert!(!target.exists());
        let temp = p.temp_path().to_path_buf();
        drop(p);
        assert!(!temp.exists() && !target.exists());
        let p = PendingFile::create(&target).unwrap();
        p.file().write_all(b"data").unwrap();
        p.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"data");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn refuses_existing_and_input_targets() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::write(&a, b"x").unwrap();
        assert!(matches!(
            check_target(&a, &[], false),
            Err(Error::Exists(_))
        ));
        assert!(check_target(&a, &[], true).is_ok());
        let link = dir.path().join("b");
        std::fs::hard_link(&a, &link).unwrap();
        assert!(matches!(
            check_target(&link, std::slice::from_ref(&a), true),
            Err(Error::IsInput(_))
        ));
        assert!(check_target(&dir.path().join("new"), &[a], false).is_ok());
    }
}
