//! What a resumable import from a URL verified before it wrote, kept in its output folder
//! (`.DESCRIPTOR.verified.ovf-disk-partial`, a temporary file like a disk's, locked while the
//! run lives) so that `import --resume` does not fetch those files again to digest them: the
//! identity of every object they are read from (name, length, validator), then the names
//! whose digest matched. A resume whose package changed since finds another identity and
//! digests everything again; a run without `--resume` removes the record with the other
//! leftovers; a complete import removes it.

use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use ovf::manifest::Outcome;

use crate::error::{Error, Result};
use crate::output::PendingFile;
use crate::package::verify::{FileDigest, VerifyReport};
use crate::package::Package;

/// The last line of a complete record.
const END: &str = "end";

/// The record of the files a resumable import verified.
pub(super) struct Verified {
    /// The record's final name (never committed: only its temporary name is used).
    target: PathBuf,
    /// What the package is.
    identity: Vec<String>,
    file: Option<PendingFile>,
}

impl Verified {
    /// The record for importing `pkg` into `outdir` with `source` (the caller's identity
    /// lines): `None` unless every file the manifest lists but `skip` (digested while written)
    /// has an identity ([`Package::identity_of`]).
    pub(super) fn new(
        pkg: &Package,
        outdir: &Path,
        source: &[String],
        skip: &[&str],
    ) -> Option<Self> {
        let (_, manifest) = pkg.manifest()?;
        let mut identity = vec!["ovf-disk verified 1".to_string()];
        identity.extend(source.iter().map(|l| format!("source {l:?}")));
        for e in &manifest.entries {
            if !skip.contains(&e.name.as_str()) {
                let id = pkg.identity_of(&e.name)?;
                identity.push(format!("file {:?} {id:?}", e.name));
            }
        }
        Some(Self {
            target: outdir.join(format!("{}.verified", pkg.descriptor())),
            identity,
            file: None,
        })
    }

    /// The names an interrupted run of this import verified (none when it left no record,
    /// or one of another package, or an incomplete one); the record is kept for this run.
    pub(super) fn load(&mut self) -> Result<Vec<String>> {
        let Some(mut file) = PendingFile::reopen(&self.target, true)? else {
            return Ok(Vec::new());
        };
        file.keep_on_failure();
        let mut text = String::new();
        let read = file
            .file()
            .take(16 << 20)
            .read_to_string(&mut text)
            .map_err(Error::io(file.temp_path()));
        self.file = Some(file);
        if read.is_err() {
            return Ok(Vec::new());
        }
        let lines: Vec<&str> = text.lines().collect();
        match lines.split_last() {
            Some((&END, rest)) if rest.starts_with(&self.identity_refs()) => Ok(rest
                .get(self.identity.len()..)
                .unwrap_or_default()
                .iter()
                .filter_map(|l| l.strip_prefix("ok "))
                .map(String::from)
                .collect()),
            _ => Ok(Vec::new()),
        }
    }

    fn identity_refs(&self) -> Vec<&str> {
        self.identity.iter().map(String::as_str).collect()
    }

    /// Keeps the names of `report`'s files whose digest matched, flushed to the device.
    pub(super) fn store(&mut self, report: &VerifyReport) -> Result<()> {
        let file = match self.file.take() {
            Some(f) => f,
            None => {
                let mut f = PendingFile::create(&self.target, true)?;
                f.keep_on_failure();
                f
            }
        };
        let mut text = self.identity.join("\n");
        for f in &report.files {
            if f.outcome == Outcome::Ok && !f.name.contains('\n') {
                text.push_str(&format!("\nok {}", f.name));
            }
        }
        text.push_str(&format!("\n{END}\n"));
        let path = file.temp_path().to_path_buf();
        let mut out = file.file();
        let mut write = || -> std::io::Result<()> {
            out.set_len(0)?;
            out.rewind()?;
            out.write_all(text.as_bytes())?;
            out.sync_data()
        };
        write().map_err(Error::io(&path))?;
        self.file = Some(file);
        Ok(())
    }

    /// The import is complete: the record goes.
    pub(super) fn finish(self) {
        if let Some(f) = self.file {
            f.discard();
        }
    }

    /// The report's entries for `names`, verified by the interrupted run: a match each.
    pub(super) fn digests(pkg: &Package, names: &[String]) -> Vec<FileDigest> {
        let Some((_, manifest)) = pkg.manifest() else {
            return Vec::new();
        };
        names
            .iter()
            .filter_map(|n| manifest.get(n))
            .map(|e| FileDigest::new(&e.name, e.algorithm, Outcome::Ok))
            .collect()
    }
}
