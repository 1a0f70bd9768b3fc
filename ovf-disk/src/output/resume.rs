//! Resuming an interrupted copy: a checkpoint file beside the temporary output
//! (`.NAME.ovf-disk-checkpoint`) says what the source was (each object's name, length and
//! validator), what was being written, and how far the output is written and flushed. A run
//! asked to resume reopens the temporary files and continues from there when everything but
//! the progress matches; a changed source is refused. The checkpoint is replaced atomically
//! (written beside, flushed, renamed), so a run killed at any point leaves either the previous
//! one or the new one.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::output::{folder_of, PendingFile, CHECKPOINT_SUFFIX};

/// The first line of a checkpoint.
const MAGIC: &str = "ovf-disk checkpoint 1";

/// The checkpoint of `target`: `.NAME.ovf-disk-checkpoint` beside it.
pub(crate) fn checkpoint_of(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    folder_of(target).join(format!(".{name}{CHECKPOINT_SUFFIX}"))
}

/// Hex of `text`: identity lines hold names and validators of any bytes, one per line.
fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

/// A copy's checkpoint file, told by the copy engine how far it got.
#[derive(Debug)]
pub(crate) struct FileCheckpoint {
    path: PathBuf,
    /// Every line but the progress.
    identity: Vec<String>,
    from: u64,
}

impl FileCheckpoint {
    /// The checkpoint at `path` for a copy described by `identity` (lines of the caller's,
    /// hex-encoded here), starting at `from`.
    pub(crate) fn new(path: PathBuf, identity: &[String], from: u64) -> Self {
        let mut lines = vec![MAGIC.to_string()];
        lines.extend(identity.iter().map(|l| format!("id {}", hex(l))));
        Self {
            path,
            identity: lines,
            from,
        }
    }

    /// Where the checkpoint at `path` says a copy described like this one got to: `Ok(None)`
    /// when there is no checkpoint, an error when it describes another copy.
    pub(crate) fn load(&self) -> Result<Option<u64>> {
        match self.load_state()? {
            None => Ok(None),
            Some((done, state)) if state.is_empty() => Ok(Some(done)),
            Some(_) => Err(self.other_copy()),
        }
    }

    /// [`FileCheckpoint::load`] with the lines of state the copy wrote before its progress
    /// ([`FileCheckpoint::store`]).
    pub(crate) fn load_state(&self) -> Result<Option<(u64, Vec<String>)>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(&self.path)(e)),
        };
        let mut lines: Vec<&str> = text.lines().collect();
        let done = lines
            .pop()
            .and_then(|l| l.strip_prefix("done "))
            .and_then(|n| n.parse().ok());
        let ours = lines.len() >= self.identity.len()
            && lines.iter().zip(&self.identity).all(|(a, b)| a == b);
        match (done, lines.get(self.identity.len()..)) {
            (Some(done), Some(state)) if ours => {
                Ok(Some((done, state.iter().map(|l| l.to_string()).collect())))
            }
            _ => Err(self.other_copy()),
        }
    }

    /// The error of a checkpoint that describes another copy.
    fn other_copy(&self) -> Error {
        Error::InvalidInput(format!(
            "cannot resume: the source or the output asked for is not the one the \
             interrupted run was writing ({} says otherwise: changed since?); run again \
             without --resume to start over",
            self.path.display()
        ))
    }

    /// Replaces the checkpoint with one saying `done`, after the copy's `state` lines
    /// (one line each, no line breaks): written beside, flushed and renamed.
    pub(crate) fn store(&self, done: u64, state: &[String]) -> std::io::Result<()> {
        let mut text = self.identity.join("\n");
        for l in state {
            text.push('\n');
            text.push_str(l);
        }
        text.push_str(&format!("\ndone {done}\n"));
        let next = self.path.with_extension("next");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&next)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&next, &self.path)
        };
        write()
    }

    /// Where the checkpoint is.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the checkpoint (the output is complete).
    pub(crate) fn remove(path: &Path) {
        let _ = std::fs::remove_file(path);
    }
}

impl vmdk::Checkpoint for FileCheckpoint {
    fn resume_from(&self) -> u64 {
        self.from
    }

    fn reached(&self, done: u64) -> vmdk::Result<()> {
        self.store(done, &[])
            .map_err(|e| vmdk::Error::io(&self.path, e))
    }
}

/// The temporary files of `targets` an interrupted run left, reopened; an error when one is
/// gone.
pub(crate) fn reopen_files(targets: &[&Path], replace: bool) -> Result<Vec<PendingFile>> {
    let mut files = Vec::new();
    for t in targets {
        match PendingFile::reopen(t, replace)? {
            Some(f) => files.push(f),
            None => {
                return Err(Error::InvalidInput(format!(
                    "cannot resume: the partial output of {} is gone; run again without --resume",
                    t.display()
                )))
            }
        }
    }
    Ok(files)
}

/// A checkpoint for `identity` at `path`, shared with the copy engine.
pub(crate) fn shared(path: PathBuf, identity: &[String], from: u64) -> Arc<FileCheckpoint> {
    Arc::new(FileCheckpoint::new(path, identity, from))
}
