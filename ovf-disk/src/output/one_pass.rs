//! A disk read in one pass (a stream-optimized disk read forward, digested on the way) written
//! so that a killed or failed run can be continued: the checkpoint beside the output keeps the
//! last [`StreamPoint`] the read passed (every grain before it written and flushed) and the
//! caller's state at that point (a digest's, [`ovf::resumable::ResumableHasher`]); a run that
//! resumes reopens the temporary files, and the caller starts its reader there
//! ([`vmdk::StreamReader::continue_at`]) with its state restored.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use vmdk::{Format, Plan, StreamPoint, StreamReader};

use super::convert::{
    create_outputs, resumable_checkpoint, resumable_outputs, write_into, ConvertOptions,
    PendingWrite,
};
use super::resume::FileCheckpoint;
use crate::error::{Error, Result};

/// Where an interrupted one-pass write stopped: the point its read can continue from, and
/// the caller's state lines at that point.
#[derive(Debug)]
pub(crate) struct Resume {
    pub(crate) point: StreamPoint,
    pub(crate) state: Vec<String>,
}

/// The caller's state lines at a point (`None`: not at this point, no checkpoint then).
pub(crate) type StateAt = Arc<dyn Fn(StreamPoint) -> Option<Vec<String>> + Send + Sync>;

/// The checkpoint of a one-pass write: told stream points, it keeps each with the caller's
/// state.
struct PointCheckpoint {
    file: FileCheckpoint,
    state: StateAt,
}

impl std::fmt::Debug for PointCheckpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PointCheckpoint")
            .field("file", &self.file)
            .finish()
    }
}

impl vmdk::Checkpoint for PointCheckpoint {
    fn resume_from(&self) -> u64 {
        0
    }

    /// Only stream points are kept: a resume needs where the stream was.
    fn reached(&self, _: u64) -> vmdk::Result<()> {
        Ok(())
    }

    fn reached_stream(&self, at: StreamPoint) -> vmdk::Result<()> {
        let Some(state) = (self.state)(at) else {
            return Ok(());
        };
        let mut lines = vec![format!("stream {} {}", at.input, at.covered)];
        lines.extend(state);
        self.file
            .store(at.covered, &lines)
            .map_err(|e| vmdk::Error::io(self.file.path(), e))
    }
}

/// The point and state of a checkpoint's lines (`done` and the state after `stream`).
fn parse_resume(path: &Path, done: u64, lines: Vec<String>) -> Result<Resume> {
    let mut lines = lines.into_iter();
    let point = lines
        .next()
        .and_then(|l| {
            let mut w = l.strip_prefix("stream ")?.split(' ');
            let input = w.next()?.parse().ok()?;
            let covered = w.next()?.parse().ok()?;
            w.next().is_none().then_some(StreamPoint { input, covered })
        })
        .filter(|p| p.covered == done)
        .ok_or_else(|| {
            Error::InvalidInput(format!(
                "cannot resume: {} is damaged (no stream point); run again without --resume",
                path.display()
            ))
        })?;
    Ok(Resume {
        point,
        state: lines.collect(),
    })
}

/// Writes the disk `open` reads in one pass at `out` under temporary names, as
/// [`super::convert::write_stream_pending`] does, resumable when `options` are
/// ([`ConvertOptions::resumable`]) and `identity` (lines saying what the stream is: its
/// object's name, length and validator) is known: `open` is given where an interrupted run
/// stopped, if anything is to be continued, and returns the reader (continued there, with its
/// state restored from the resume's lines); `state` gives the lines to keep at each point.
pub(crate) fn write<'r>(
    open: impl FnOnce(Option<&Resume>) -> Result<StreamReader<Box<dyn Read + 'r>>>,
    (out, format, capacity): (&Path, &Format, u64),
    options: &ConvertOptions,
    identity: Option<Vec<String>>,
    state: StateAt,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<PendingWrite> {
    let plan = Plan::new(format.clone(), capacity, out)?;
    let resumable = options.resumable.as_ref().zip(identity);
    let Some(((source, resume), extra)) = resumable.filter(|_| format.is_thick()) else {
        let stream = open(None)?;
        return write_into(
            &plan,
            stream,
            create_outputs(&plan, &[], options)?,
            options,
            None,
            progress,
        );
    };
    let mut lines = source.clone();
    lines.extend(extra);
    lines.push("one pass".into());
    let (path, identity) = resumable_checkpoint(&plan, (out, format, capacity), options, &lines);
    let checkpoint = FileCheckpoint::new(path.clone(), &identity, 0);
    let loaded = match resume {
        true => checkpoint.load_state()?,
        false => None,
    };
    let files = resumable_outputs(&plan, &[], options, loaded.is_some())?;
    let from = match loaded {
        Some((done, state)) => Some(parse_resume(&path, done, state)?),
        None => None,
    };
    let stream = open(from.as_ref())?;
    let checkpoint: Arc<dyn vmdk::Checkpoint> = Arc::new(PointCheckpoint {
        file: checkpoint,
        state,
    });
    let written = write_into(&plan, stream, files, options, Some(checkpoint), progress)?;
    Ok(PendingWrite {
        checkpoint: Some(path),
        ..written
    })
}
