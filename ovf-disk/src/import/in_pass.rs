//! The disks of a package at a URL that an import reads once: a stream-optimized disk the
//! manifest lists, written to raw or thick outputs, digested while it is written rather than
//! fetched twice. With a checkpoint ([`crate::output::ConvertOptions::resumable`]), such a
//! write keeps where the stream was and the digest's state at that point
//! ([`ovf::resumable::ResumableHasher`]), so `import --resume` continues the disk from there:
//! the header read again from the file's start, the rest fetched from the point on, and the
//! digest checked over every byte as an uninterrupted run checks it.

use std::io::Read;
use std::path::Path;
use std::sync::{Arc, Mutex};

use ovf::envelope::{FileRef, VirtualDisk};
use ovf::manifest::{Entry, Outcome};
use ovf::resumable::ResumableHasher;
use vmdk::{StreamPoint, StreamReader};

use super::{grown, Options};
use crate::error::{Error, Result};
use crate::output::convert::PendingWrite;
use crate::output::one_pass::{self, Resume, StateAt};
use crate::package::verify::FileDigest;
use crate::package::{within_declared, Package};

/// The disk files of `pkg` an import reads once and digests on the way, with their manifest
/// entries: at a URL (an `.ovf` and its files, or an OVA read in place), a stream-optimized
/// disk stored plainly that the manifest lists, written to a thick or raw output (a one-pass
/// write), unless the package was verified before.
pub(super) fn digested_in_pass<'a>(
    pkg: &'a Package,
    options: &Options,
) -> Vec<(&'a FileRef, &'a Entry)> {
    let Some((_, manifest)) = pkg.manifest() else {
        return Vec::new();
    };
    if !pkg.is_remote() || !options.format.is_thick() || pkg.verified_before() {
        return Vec::new();
    }
    let env = pkg.envelope();
    env.disks
        .iter()
        .filter(|d| {
            d.format
                .as_deref()
                .is_some_and(|f| f.ends_with("#streamOptimized"))
        })
        .filter_map(|d| env.file_of(d))
        .filter(|f| !f.is_compressed() && f.chunk_size.is_none())
        .filter_map(|f| Some((f, manifest.get(&f.href)?)))
        .collect()
}

/// A reader that digests what passes through it, into a digest a checkpoint reads too.
struct Digesting {
    inner: Box<dyn Read>,
    digest: Arc<Mutex<ResumableHasher>>,
}

impl Read for Digesting {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut d = self.digest.lock().unwrap_or_else(|p| p.into_inner());
        d.update(buf.split_at(n.min(buf.len())).0);
        Ok(n)
    }
}

/// Positioned reads of a package's file as a reader from its start: the header and embedded
/// descriptor of a disk whose read continues further on.
struct FromStart<'a> {
    pkg: &'a Package,
    name: &'a str,
    pos: u64,
    len: u64,
}

impl Read for FromStart<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.len.saturating_sub(self.pos).min(buf.len() as u64) as usize;
        let dst = buf.split_at_mut(n.min(buf.len())).0;
        self.pkg
            .read_at(self.name, self.pos, dst)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// [`super::import_disk`] of a stream-optimized disk read once, forward, while its bytes are
/// digested with the manifest's `entry` ([`digested_in_pass`]): the write and the digest's
/// outcome.
pub(super) fn import_disk_in_pass(
    pkg: &Package,
    disk: &VirtualDisk,
    file: &FileRef,
    out: &Path,
    options: &Options,
    entry: &Entry,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<(PendingWrite, FileDigest)> {
    let declared = pkg.declared(disk)?;
    let href = Path::new(&file.href);
    let name = file.href.as_str();
    let digest = Arc::new(Mutex::new(ResumableHasher::new(entry.algorithm)));
    let mut reader = Digesting {
        inner: Box::new(std::io::empty()),
        digest: digest.clone(),
    };
    let r = &mut reader;
    let open = move |from: Option<&Resume>| -> Result<StreamReader<Box<dyn Read + '_>>> {
        let Some(from) = from else {
            r.inner = pkg.reader(name)?;
            let stream = StreamReader::new(Box::new(r) as Box<dyn Read>, href)?;
            within_declared(href, stream.capacity(), declared)?;
            return Ok(stream);
        };
        let cannot = || {
            Error::InvalidInput(format!(
                "cannot resume {name}: the checkpoint's digest state is damaged; run again \
                 without --resume"
            ))
        };
        let saved = from
            .state
            .first()
            .and_then(|l| l.strip_prefix("digest "))
            .and_then(|l| ResumableHasher::restore(entry.algorithm, l))
            .filter(|h| h.len() == from.point.input)
            .ok_or_else(cannot)?;
        let len = pkg.size(name).ok_or_else(cannot)?;
        let head = FromStart {
            pkg,
            name,
            pos: 0,
            len,
        };
        let head = std::io::BufReader::with_capacity(1 << 20, head);
        let stream = StreamReader::new(Box::new(head) as Box<dyn Read>, href)?;
        within_declared(href, stream.capacity(), declared)?;
        *r.digest.lock().unwrap_or_else(|p| p.into_inner()) = saved;
        r.inner = pkg.reader_from(name, from.point.input)?;
        Ok(stream.continue_at(Box::new(r) as Box<dyn Read>, from.point)?)
    };
    let state: StateAt = {
        let digest = digest.clone();
        Arc::new(move |at: StreamPoint| {
            let d = digest.lock().unwrap_or_else(|p| p.into_inner());
            (d.len() == at.input).then(|| vec![format!("digest {}", d.save())])
        })
    };
    let identity = pkg
        .identity_of(name)
        .map(|object| vec![format!("disk {object} digest {}", entry.algorithm.as_str())]);
    let target = (out, &options.format, grown(declared));
    let w = one_pass::write(open, target, &options.convert, identity, state, progress)?;
    // The digest covers every byte, past the end-of-stream marker too.
    std::io::copy(&mut reader, &mut std::io::sink())
        .map_err(Error::io(&pkg.member_path(&file.href)))?;
    let found = std::mem::replace(
        &mut *digest.lock().unwrap_or_else(|p| p.into_inner()),
        ResumableHasher::new(entry.algorithm),
    )
    .finish();
    let outcome = Outcome::of(&entry.digest, found);
    Ok((w, FileDigest::new(&file.href, entry.algorithm, outcome)))
}
