//! What an import writes besides the disks and the OVF: the other files the envelope references
//! (an ISO for the CD-ROM, an NVRAM file, a text file), carried beside the disks under plain
//! names, and the manifest of the written package, so that `verify` and `check` of the output
//! pass.

use std::fs::File;
use std::path::Path;

use ovf::manifest::{digest, Algorithm, Entry, Manifest};

use super::ReferenceEdit;
use crate::error::{Error, Result};
use crate::output::{flat_name, PendingFile};
use crate::package::{holds_disk, Package};

/// Copies every non-disk file `pkg`'s envelope references into `outdir` under temporary names,
/// with the edits that point the written OVF at them. A file that is missing, leads outside the
/// package or is stored compressed or in chunks stops the import, naming it.
pub(super) fn carry_files(
    pkg: &Package,
    outdir: &Path,
    replace: bool,
) -> Result<(Vec<PendingFile>, Vec<ReferenceEdit>)> {
    let env = pkg.envelope();
    let (mut pending, mut edits) = (Vec::new(), Vec::new());
    // A disk's file is written by the import itself.
    for f in env.files.iter().filter(|f| !holds_disk(env, &f.id)) {
        if f.is_compressed() || f.chunk_size.is_some() {
            return Err(Error::Unsupported {
                disk: f.href.clone(),
                what: "carrying a compressed or chunked file other than a disk".into(),
            });
        }
        let mut reader = pkg.reader(&f.href)?;
        let (p, edit) = carry_member(&mut reader, &f.href, outdir, replace)?;
        edits.push(edit);
        pending.push(p);
    }
    Ok((pending, edits))
}

/// The manifest of the written package, `STEM.mf` beside its OVF `descriptor`: the OVF and each
/// file it references (`files`: the name the OVF gives it and its temporary file), digested
/// with the algorithm of the `source` package's manifest (SHA256 when it had none).
pub(super) fn write_manifest(
    source: Option<&Manifest>,
    descriptor: &PendingFile,
    files: &[(String, &Path)],
    replace: bool,
) -> Result<PendingFile> {
    let algorithm = source
        .and_then(|m| m.entries.first())
        .map_or(Algorithm::Sha256, |e| e.algorithm);
    let name = descriptor
        .target()
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = name.as_str();
    let mut manifest = Manifest::default();
    let mut add = |name: &str, path: &Path| -> Result<()> {
        let mut file = File::open(path).map_err(Error::io(path))?;
        let d = digest(algorithm, &mut file).map_err(Error::io(path))?;
        manifest.entries.push(Entry::new(algorithm, name, d));
        Ok(())
    };
    add(name, descriptor.temp_path())?;
    for (href, path) in files {
        add(href, path)?;
    }
    let stem = name.rsplit_once('.').map_or(name, |(s, _)| s);
    let target = descriptor
        .target()
        .parent()
        .unwrap_or(Path::new("."))
        .join(format!("{stem}.mf"));
    let p = PendingFile::create(&target, replace)?;
    std::io::Write::write_all(&mut p.file(), manifest.print().as_bytes())
        .map_err(Error::io(&target))?;
    Ok(p)
}

/// The temporary files of `edits`' new hrefs in `outdir`, found among `pending`: what the
/// written OVF references, for its manifest.
pub(super) fn listed<'a>(
    outdir: &Path,
    edits: &[ReferenceEdit],
    pending: impl Iterator<Item = &'a PendingFile> + Clone,
) -> Vec<(String, &'a Path)> {
    edits
        .iter()
        .filter_map(|e| {
            let target = outdir.join(&e.new_href);
            let p = pending.clone().find(|p| p.target() == target)?;
            Some((e.new_href.clone(), p.temp_path()))
        })
        .collect()
}

/// Writes the member `href` of a package read as a stream, a non-disk file its envelope
/// references, into `outdir` under a temporary name: the pending file and the edit of its
/// reference.
pub(super) fn carry_member(
    reader: &mut dyn std::io::Read,
    href: &str,
    outdir: &Path,
    replace: bool,
) -> Result<(PendingFile, ReferenceEdit)> {
    let name = flat_name(href);
    let target = outdir.join(&name);
    let p = PendingFile::create(&target, replace)?;
    std::io::copy(reader, &mut p.file()).map_err(Error::io(&target))?;
    let size = p.file().metadata().map_err(Error::io(&target))?.len();
    let edit = ReferenceEdit {
        href: href.to_string(),
        new_href: name,
        new_size: size,
    };
    Ok((p, edit))
}
