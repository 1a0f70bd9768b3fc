//! Output files that appear under their final name only when complete, and what a failed,
//! interrupted or killed run leaves behind.
//!
//! A `PendingFile` is written under a hidden temporary name beside its target,
//! `.NAME.ovf-disk-partial`, which it holds an exclusive lock on (`flock`) while it is open. It is
//! flushed to the device, then renamed into place (refusing to replace a file that appeared
//! meanwhile, unless replacing was asked for), and the folder synced. Dropped without a commit,
//! it removes itself: a failed run never leaves a file under the name the user asked for.
//!
//! The lock tells a live run from a dead one. A second run writing the same output finds the
//! temporary file locked and refuses ([`Error::Busy`]); a run killed with `SIGKILL` leaves its
//! temporary file unlocked, and the next run into the folder removes it
//! ([`remove_leftovers`]). A program that handles `SIGINT` or `SIGTERM` calls [`interrupt`],
//! which removes every temporary file and every folder an import of this process created, and
//! makes later commits fail.
//!
//! An import writes into an `OutputFolder`: locked for the import (a second import into it
//! refuses), and removed on failure when the import created it.

// Without the writers (feature `write`) nothing creates output files; the machinery stays for
// `interrupt` and `remove_leftovers`, which a read-only program may still call.
#![cfg_attr(not(feature = "write"), allow(dead_code))]

#[cfg(feature = "write")]
pub(crate) mod convert;
#[cfg(feature = "write")]
mod measure;
#[cfg(feature = "write")]
pub(crate) mod one_pass;
pub(crate) mod parallel;
mod progress;
#[cfg(feature = "write")]
pub(crate) mod resume;

#[cfg(feature = "write")]
pub use convert::{
    convert, convert_stream, is_block_device, resumes, thick_format, thick_format_for,
    ConvertOptions, WriteSummary,
};
#[cfg(feature = "write")]
pub use measure::{measure, Measure};
pub use progress::Progress;

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rustix::fs::{flock, FlockOperation};

use crate::error::{Error, Result};

/// The plain name in the output folder of the package file `href`: its path inside the package
/// with each `/` a `_` (`disks/data.vmdk` is `disks_data.vmdk`), or the last part of an href
/// leading outside it, so nothing an import writes leaves its folder.
pub(crate) fn flat_name(href: &str) -> String {
    let name = match ovf::names::locate(href) {
        Ok(inside) => inside.replace('/', "_"),
        Err(_) => href
            .rsplit(['/', '\\'])
            .find(|p| !p.is_empty() && *p != "." && *p != "..")
            .unwrap_or("disk")
            .to_string(),
    };
    if ovf::names::is_plain_name(&name) {
        name
    } else {
        "disk".to_string()
    }
}

/// What the temporary name of an output ends with: `.NAME.ovf-disk-partial`.
const SUFFIX: &str = ".ovf-disk-partial";

/// What this process is writing, for [`interrupt`].
#[derive(Default)]
struct Registry {
    /// Temporary files not committed yet.
    temps: Vec<PathBuf>,
    /// Folders an import created, innermost last; removed on interrupt when empty.
    folders: Vec<PathBuf>,
    /// Set by [`interrupt`]: no commit happens after it.
    interrupted: bool,
}

static REGISTRY: Mutex<Registry> = Mutex::new(Registry {
    temps: Vec::new(),
    folders: Vec::new(),
    interrupted: false,
});

fn registry() -> MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|p| p.into_inner())
}

/// Removes every temporary output this process is writing and every output folder an import of
/// this process created (when nothing else is in it), and makes every later commit fail: what
/// a program calls when it receives `SIGINT` or `SIGTERM`, before it exits. Returns the paths
/// removed. Files already under their final names are left (a commit is never half done: the
/// files of one disk or one import are renamed together).
pub fn interrupt() -> Vec<PathBuf> {
    let mut r = registry();
    r.interrupted = true;
    let mut removed = Vec::new();
    for t in std::mem::take(&mut r.temps) {
        if std::fs::remove_file(&t).is_ok() {
            removed.push(t);
        }
    }
    for f in std::mem::take(&mut r.folders).into_iter().rev() {
        if std::fs::remove_dir(&f).is_ok() {
            removed.push(f);
        }
    }
    removed
}

/// The folder `path` is in (`.` for a bare name).
pub(crate) fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Whether `name` is the temporary name of an output: `.NAME.ovf-disk-partial`, or the
/// `.NAME.partial-PID-N` of earlier versions (returned with its PID).
fn temporary_name(name: &str) -> Option<Option<u32>> {
    let inner = name.strip_prefix('.')?;
    if inner.len() > SUFFIX.len() && inner.ends_with(SUFFIX) {
        return Some(None);
    }
    let (_, tail) = inner.rsplit_once(".partial-")?;
    let (pid, n) = tail.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(pid) || !digits(n) {
        return None;
    }
    Some(Some(pid.parse().ok()?))
}

/// What was found at a temporary name.
enum Found {
    /// Nothing (gone meanwhile).
    Nothing,
    /// A file left by a run that is over: removed.
    Removed,
    /// A file a live run holds.
    Busy,
}

/// Removes the temporary file at `path` if no live run holds it: it takes the file's lock
/// itself first, so a run starting meanwhile cannot lose a file it just made.
fn remove_if_stale(path: &Path) -> Result<Found> {
    let file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Found::Nothing),
        Err(e) => return Err(Error::io(path)(e)),
    };
    if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
        return Ok(Found::Busy);
    }
    if !same_file(&file, path) {
        return Ok(Found::Nothing);
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(Found::Removed),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Found::Nothing),
        Err(e) => Err(Error::io(path)(e)),
    }
}

/// Creates `path` (which must not exist) for reading and writing, holding its lock. Where the
/// file system has `O_TMPFILE`, the file is made unnamed, locked, then linked at `path`, so no
/// other run ever sees it unlocked and takes it for a leftover; elsewhere it is created by name
/// and locked by the caller just after (which checks that it still names the file).
fn create_locked(path: &Path) -> io::Result<File> {
    use rustix::fs::{linkat, openat, AtFlags, Mode, OFlags, CWD};
    let folder = folder_of(path);
    let unnamed = openat(
        CWD,
        &folder,
        OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    );
    match unnamed {
        Ok(fd) => {
            let file = File::from(fd);
            flock(&file, FlockOperation::NonBlockingLockExclusive)?;
            let proc_path = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&file));
            match linkat(CWD, proc_path.as_str(), CWD, path, AtFlags::SYMLINK_FOLLOW) {
                Ok(()) => Ok(file),
                Err(e) if e == rustix::io::Errno::EXIST => Err(e.into()),
                // No /proc, or a file system that cannot link an unnamed file: by name.
                Err(_) => create_by_name(path),
            }
        }
        Err(_) => create_by_name(path),
    }
}

/// Creates `path` (which must not exist) by name; the caller locks it.
fn create_by_name(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
}

/// Whether `path` still names the open `file`.
fn same_file(file: &File, path: &Path) -> bool {
    match (file.metadata(), std::fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Removes the temporary files that runs killed before their end left in `folder` (files
/// named `.NAME.ovf-disk-partial` that no live run holds, and `.NAME.partial-PID-N` files of
/// earlier versions whose process is gone), and returns their paths. Runs into the folder call
/// it; a program calls it first to tell the user what it removed.
pub fn remove_leftovers(folder: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(folder) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io(folder)(e)),
    };
    let mut removed = Vec::new();
    for entry in entries {
        let entry = entry.map_err(Error::io(folder))?;
        let name = entry.file_name();
        let Some(kind) = name.to_str().and_then(temporary_name) else {
            continue;
        };
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let path = entry.path();
        let gone = match kind {
            None => matches!(remove_if_stale(&path)?, Found::Removed),
            Some(pid) => {
                !Path::new(&format!("/proc/{pid}")).exists() && std::fs::remove_file(&path).is_ok()
            }
        };
        if gone {
            removed.push(path);
        }
    }
    removed.extend(remove_stale_checkpoints(folder)?);
    Ok(removed)
}

/// What the checkpoint of an output ends with: `.NAME.ovf-disk-checkpoint`.
pub(crate) const CHECKPOINT_SUFFIX: &str = ".ovf-disk-checkpoint";

/// Removes the checkpoints in `folder` whose temporary file is gone (removed as a leftover, or
/// never made): a live run's temporary file is locked and kept, and so is its checkpoint.
fn remove_stale_checkpoints(folder: &Path) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    let entries = std::fs::read_dir(folder).map_err(Error::io(folder))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(stem) = name
            .to_str()
            .and_then(|n| n.strip_suffix(CHECKPOINT_SUFFIX))
            .filter(|n| n.len() > 1 && n.starts_with('.'))
        else {
            continue;
        };
        if folder.join(format!("{stem}{SUFFIX}")).exists() {
            continue;
        }
        if std::fs::remove_file(entry.path()).is_ok() {
            removed.push(entry.path());
        }
    }
    Ok(removed)
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
    if !meta.is_file() {
        // A rename would put a regular file where a device node (/dev/null), FIFO or socket
        // was: never, whatever `force` says. Block devices are written in place elsewhere.
        return Err(Error::InvalidInput(format!(
            "{} is a device, FIFO or socket, not a file: refusing to replace it",
            target.display()
        )));
    }
    Ok(())
}

/// A file being written under a temporary name.
#[derive(Debug)]
pub(crate) struct PendingFile {
    target: PathBuf,
    temp: PathBuf,
    file: File,
    replace: bool,
    committed: bool,
    /// Left in place when dropped uncommitted, for a later run to resume.
    keep: bool,
}

impl PendingFile {
    /// Creates the temporary file beside `target`, locked. A temporary file of the same target
    /// that a finished run left is removed first; one a live run holds is refused. `replace`:
    /// the commit may replace a file at `target`.
    pub(crate) fn create(target: &Path, replace: bool) -> Result<Self> {
        let temp = Self::temp_of(target)?;
        // Three rounds: a leftover removed, then a race with another run's cleanup lost.
        for _ in 0..3 {
            // Held from the file's creation to its registration, so an `interrupt` (another
            // thread, on a signal) either comes first and no file is made, or finds the file
            // registered and removes it: never a file made and not yet known.
            let mut r = registry();
            if r.interrupted {
                return Err(interrupted(&temp));
            }
            let file = match create_locked(&temp) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    match remove_if_stale(&temp)? {
                        Found::Busy => {
                            return Err(Error::Busy {
                                path: target.to_path_buf(),
                                temp: Some(temp),
                            })
                        }
                        Found::Removed | Found::Nothing => continue,
                    }
                }
                Err(e) => return Err(Error::io(&temp)(e)),
            };
            // Another run's cleanup may have taken the lock between our create and this call,
            // or removed the name: then ours is not the file at `temp`, and we try again.
            if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err()
                || !same_file(&file, &temp)
            {
                continue;
            }
            return Ok(Self::registered(&mut r, target, temp, file, replace));
        }
        Err(Error::Busy {
            path: target.to_path_buf(),
            temp: Some(temp),
        })
    }

    /// The temporary file an earlier run left for `target`, opened again and locked: `None`
    /// when there is none; [`Error::Busy`] when a live run holds it.
    pub(crate) fn reopen(target: &Path, replace: bool) -> Result<Option<Self>> {
        let temp = Self::temp_of(target)?;
        let mut r = registry();
        if r.interrupted {
            return Err(interrupted(&temp));
        }
        let file = match OpenOptions::new().read(true).write(true).open(&temp) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&temp)(e)),
        };
        if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
            return Err(Error::Busy {
                path: target.to_path_buf(),
                temp: Some(temp),
            });
        }
        Ok(Some(Self::registered(&mut r, target, temp, file, replace)))
    }

    /// The locked temporary file `temp` of `target`, registered for `interrupt`.
    fn registered(
        r: &mut Registry,
        target: &Path,
        temp: PathBuf,
        file: File,
        replace: bool,
    ) -> Self {
        r.temps.push(temp.clone());
        Self {
            target: target.to_path_buf(),
            temp,
            file,
            replace,
            committed: false,
            keep: false,
        }
    }

    /// The temporary name of `target`: `.NAME.ovf-disk-partial` beside it.
    pub(crate) fn temp_of(target: &Path) -> Result<PathBuf> {
        let name = target.file_name().ok_or_else(|| Error::Io {
            path: target.to_path_buf(),
            error: io::Error::new(io::ErrorKind::InvalidInput, "not a file name"),
        })?;
        Ok(folder_of(target).join(format!(".{}{SUFFIX}", name.to_string_lossy())))
    }

    /// Leaves the temporary file in place if this is dropped without a commit (a failed
    /// write a later run may resume); an interrupt still removes it.
    pub(crate) fn keep_on_failure(&mut self) {
        self.keep = true;
    }

    /// Removes the temporary file even if it was kept for a resume (what it holds is known
    /// to be wrong: a digest that did not match).
    pub(crate) fn discard(mut self) {
        self.keep = false;
    }

    /// The open temporary file.
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// The temporary file's path.
    pub(crate) fn temp_path(&self) -> &Path {
        &self.temp
    }

    /// The final path.
    pub(crate) fn target(&self) -> &Path {
        &self.target
    }

    /// Flushes the data to the device, renames the file into place and syncs the folder.
    pub(crate) fn commit(self) -> Result<()> {
        commit_all(vec![self])
    }

    /// Renames the file into place; the caller holds the registry.
    fn rename(&mut self, r: &mut Registry) -> Result<()> {
        if self.replace {
            std::fs::rename(&self.temp, &self.target).map_err(Error::io(&self.target))?;
        } else {
            rename_new(&self.temp, &self.target)?;
        }
        self.committed = true;
        r.temps.retain(|t| t != &self.temp);
        Ok(())
    }
}

/// The error of a write stopped by [`interrupt`].
fn interrupted(path: &Path) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        error: io::Error::new(io::ErrorKind::Interrupted, "interrupted"),
    }
}

/// Renames `from` to `to`, refusing if `to` exists (atomically where the file system can).
fn rename_new(from: &Path, to: &Path) -> Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::EXIST) => Err(Error::Exists(to.to_path_buf())),
        // File systems without RENAME_NOREPLACE: a check, then a plain rename.
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
            if std::fs::symlink_metadata(to).is_ok() {
                return Err(Error::Exists(to.to_path_buf()));
            }
            std::fs::rename(from, to).map_err(Error::io(to))
        }
        Err(e) => Err(Error::io(to)(e.into())),
    }
}

/// Commits `pending` together: every file flushed, then all renamed in order (extents before
/// the descriptor naming them, disks before the OVF naming them) with no [`interrupt`] in
/// between. If one rename fails, the files renamed before it are removed again.
pub(crate) fn commit_all(mut pending: Vec<PendingFile>) -> Result<()> {
    for p in &pending {
        p.file.sync_all().map_err(Error::io(&p.temp))?;
    }
    {
        let mut r = registry();
        if r.interrupted {
            return Err(interrupted(
                pending.first().map_or(Path::new(""), |p| &p.temp),
            ));
        }
        for i in 0..pending.len() {
            let result = match pending.get_mut(i) {
                Some(p) => p.rename(&mut r),
                None => Ok(()),
            };
            if let Err(e) = result {
                for done in pending.iter().take(i) {
                    let _ = std::fs::remove_file(&done.target);
                }
                return Err(e);
            }
        }
    }
    let mut folders: Vec<PathBuf> = pending.iter().map(|p| folder_of(&p.target)).collect();
    folders.dedup();
    for folder in folders {
        if let Ok(dir) = File::open(&folder) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

impl Drop for PendingFile {
    fn drop(&mut self) {
        if !self.committed {
            if !self.keep {
                let _ = std::fs::remove_file(&self.temp);
            }
            registry().temps.retain(|t| t != &self.temp);
        }
    }
}

/// The output folder of an import: locked while the import runs, so a second import into it
/// refuses; when the import created it (and its missing parents), removed again on failure if
/// nothing else was put in it.
#[derive(Debug)]
pub(crate) struct OutputFolder {
    /// The folder, open for its lock (released when closed).
    lock: File,
    /// The folders created, outermost first.
    created: Vec<PathBuf>,
    kept: bool,
}

impl OutputFolder {
    /// Opens `path` as an output folder, creating it (and missing parents) if needed, and
    /// removes the leftovers of killed runs in it.
    pub fn open(path: &Path) -> Result<Self> {
        Self::open_keeping(path, false)
    }

    /// [`OutputFolder::open`], leaving the leftovers of killed runs in it when `keep` (a run
    /// that resumes them).
    pub fn open_keeping(path: &Path, keep: bool) -> Result<Self> {
        let mut missing = Vec::new();
        let mut p = path;
        while !p.as_os_str().is_empty() && std::fs::symlink_metadata(p).is_err() {
            missing.push(p.to_path_buf());
            p = p.parent().unwrap_or(Path::new(""));
        }
        let mut created = Vec::new();
        for m in missing.into_iter().rev() {
            // Held from creation to registration, as for temporary files (see `PendingFile`).
            let mut r = registry();
            if r.interrupted {
                drop(r);
                remove_created(&created);
                return Err(interrupted(&m));
            }
            let made = std::fs::create_dir(&m);
            if made.is_ok() {
                r.folders.push(m.clone());
            }
            drop(r);
            match made {
                Ok(()) => created.push(m),
                // Another run created it meanwhile: not ours to remove.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    remove_created(&created);
                    return Err(Error::io(&m)(e));
                }
            }
        }
        let lock = match File::open(path) {
            Ok(f) => f,
            Err(e) => {
                remove_created(&created);
                return Err(Error::io(path)(e));
            }
        };
        let folder = Self {
            lock,
            created,
            kept: false,
        };
        if !folder.lock.metadata().is_ok_and(|m| m.is_dir()) {
            return Err(Error::Io {
                path: path.to_path_buf(),
                error: io::Error::new(io::ErrorKind::NotADirectory, "not a folder"),
            });
        }
        if flock(&folder.lock, FlockOperation::NonBlockingLockExclusive).is_err() {
            return Err(Error::Busy {
                path: path.to_path_buf(),
                temp: None,
            });
        }
        if !keep {
            remove_leftovers(path)?;
        }
        Ok(folder)
    }

    /// The import succeeded: the folder stays.
    pub fn keep(mut self) {
        self.kept = true;
        let mut r = registry();
        r.folders.retain(|f| !self.created.contains(f));
    }
}

/// Removes the folders in `created` (outermost first) that are empty, and forgets them.
fn remove_created(created: &[PathBuf]) {
    let mut r = registry();
    for f in created.iter().rev() {
        let _ = std::fs::remove_dir(f);
        r.folders.retain(|x| x != f);
    }
}

impl Drop for OutputFolder {
    fn drop(&mut self) {
        if !self.kept {
            remove_created(&self.created);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// The files in `dir`, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut n: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        n.sort();
        n
    }

    #[test]
    fn appears_only_when_committed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.raw");
        let p = PendingFile::create(&target, false).unwrap();
        p.file().write_all(b"data").unwrap();
        assert_eq!(names(dir.path()), [".out.raw.ovf-disk-partial"]);
        drop(p);
        assert!(names(dir.path()).is_empty());
        let p = PendingFile::create(&target, false).unwrap();
        p.file().write_all(b"data").unwrap();
        p.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"data");
        assert_eq!(names(dir.path()), ["out.raw"]);
    }

    #[test]
    fn a_second_writer_of_one_output_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.raw");
        let first = PendingFile::create(&target, false).unwrap();
        let second = PendingFile::create(&target, false).unwrap_err();
        assert!(matches!(second, Error::Busy { .. }), "{second}");
        assert!(second.to_string().contains("another run"), "{second}");
        first.commit().unwrap();
        assert_eq!(names(dir.path()), ["out.raw"]);
    }

    #[test]
    fn a_commit_does_not_replace_a_file_that_appeared_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("out.raw");
        let p = PendingFile::create(&target, false).unwrap();
        std::fs::write(&target, b"theirs").unwrap();
        assert!(matches!(p.commit(), Err(Error::Exists(_))));
        assert_eq!(std::fs::read(&target).unwrap(), b"theirs");
        assert_eq!(names(dir.path()), ["out.raw"]);
        let p = PendingFile::create(&target, true).unwrap();
        p.file().write_all(b"ours").unwrap();
        p.commit().unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"ours");
    }

    #[test]
    fn leftovers_of_dead_runs_are_removed_and_live_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        // A killed run's file: no lock held.
        std::fs::write(dir.path().join(".a.raw.ovf-disk-partial"), b"x").unwrap();
        // An earlier version's file, of a process that is gone (PIDs are below 2^22 on Linux).
        std::fs::write(dir.path().join(".b.raw.partial-4294967-0"), b"x").unwrap();
        // A live run's file.
        let live = PendingFile::create(&dir.path().join("c.raw"), false).unwrap();
        // Names that only look alike.
        std::fs::write(dir.path().join("d.ovf-disk-partial"), b"x").unwrap();
        std::fs::write(dir.path().join(".e.partial-12-x"), b"x").unwrap();
        let mut removed = remove_leftovers(dir.path()).unwrap();
        removed.sort();
        assert_eq!(
            removed,
            [
                dir.path().join(".a.raw.ovf-disk-partial"),
                dir.path().join(".b.raw.partial-4294967-0")
            ]
        );
        assert_eq!(
            names(dir.path()),
            [
                ".c.raw.ovf-disk-partial",
                ".e.partial-12-x",
                "d.ovf-disk-partial"
            ]
        );
        drop(live);
        // A new run of the same output takes over a dead run's file.
        std::fs::write(dir.path().join(".f.raw.ovf-disk-partial"), b"x").unwrap();
        PendingFile::create(&dir.path().join("f.raw"), false)
            .unwrap()
            .commit()
            .unwrap();
        assert_eq!(std::fs::read(dir.path().join("f.raw")).unwrap(), b"");
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

    #[test]
    fn an_output_folder_created_is_removed_on_failure_and_locked_meanwhile() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("new/deeper");
        let folder = OutputFolder::open(&out).unwrap();
        assert!(matches!(OutputFolder::open(&out), Err(Error::Busy { .. })));
        drop(folder);
        assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
        let folder = OutputFolder::open(&out).unwrap();
        folder.keep();
        assert!(out.is_dir());
        // An existing folder is left as it was.
        drop(OutputFolder::open(&out).unwrap());
        assert!(out.is_dir());
    }
}
