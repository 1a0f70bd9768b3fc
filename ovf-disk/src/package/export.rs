//! Exporting an OVA: an OVF and its disks (or bare disks, with an envelope made for them),
//! every disk converted to a stream-optimized VMDK in VMware's layout on the way, a SHA256
//! manifest, and the members in the order importers expect: descriptor, manifest, disks
//! (DSP0243 §5.3). The archive is written under a temporary name and renamed into place only
//! when complete; the converted disks are staged beside it and removed.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::manifest::{digest, Algorithm, Entry, Manifest};
use super::ova::write_ova;
use super::xml::{edit_envelope, envelope_for_disks, vmdk_format, EnvelopeEdits};
use super::Package;
use crate::disk::ConvertOptions;
use crate::error::{Error, Result};
use crate::output::{check_target, remove_leftovers, PendingFile};

/// One member of an exported archive.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct ExportedMember {
    /// Its name.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
}

/// What [`export`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct ExportReport {
    /// The archive.
    pub ova: PathBuf,
    /// Its members in order.
    pub members: Vec<ExportedMember>,
}

/// `e`, labelled with the input disk it is about unless it already names that file.
fn about(e: Error, input: &Path) -> Error {
    match e {
        Error::Disk { disk: None, error } if error.path() != Some(input) => Error::Disk {
            disk: Some(input.display().to_string()),
            error,
        },
        other => other,
    }
}

/// A staged stream-optimized disk: a temporary file (`.NAME.export.ovf-disk-partial`, locked
/// while the export runs, so a killed export's leftovers are recognised), removed when dropped.
struct Staged(PendingFile);

impl Staged {
    fn path(&self) -> &Path {
        self.0.temp_path()
    }
}

/// Exports `inputs` to `out` (an `.ova`): either one `.ovf` (its disks converted), or disks
/// (any VMDK or raw image), for which an envelope is made. `options` say how disks are written
/// (compression level, threads) and whether an existing `out` is replaced. `progress` is called
/// with bytes of the disks as they are converted.
///
/// ```no_run
/// # fn main() -> ovf_disk::Result<()> {
/// let inputs = [std::path::PathBuf::from("disk.raw")];
/// let report = ovf_disk::export(&inputs, "appliance.ova".as_ref(), &ovf_disk::ConvertOptions::new(), &|_| {})?;
/// for m in &report.members {
///     println!("{} ({} bytes)", m.name, m.size);
/// }
/// # Ok(())
/// # }
/// ```
pub fn export(
    inputs: &[PathBuf],
    out: &Path,
    options: &ConvertOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ExportReport> {
    let folder = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    check_target(out, inputs, options.replace)?;
    remove_leftovers(&folder)?;
    // Each disk becomes a stream-optimized file beside the archive, its embedded descriptor
    // naming it as the archive's member does, and is removed once the archive is written.
    let stage = |disk: &vmdk::Disk, name: &str, src: &Path| -> Result<(Staged, u64)> {
        let staged = Staged(PendingFile::create(
            &folder.join(format!("{name}.export")),
            true,
        )?);
        let tmp = staged.path().to_path_buf();
        let file = staged.0.file();
        let write = options.write.clone().extent_name(name);
        let mut w = BufWriter::with_capacity(1 << 20, file);
        vmdk::write_stream_optimized(disk, &mut w, &write, progress)
            .map_err(|e| about(e.into(), src))?;
        w.flush().map_err(Error::io(&tmp))?;
        drop(w);
        let size = file.metadata().map_err(Error::io(&tmp))?.len();
        Ok((staged, size))
    };
    let is_ovf = inputs.len() == 1
        && inputs
            .first()
            .is_some_and(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("ovf")));
    let (descriptor_name, text, staged) = if is_ovf {
        let ovf = inputs.first().cloned().unwrap_or_default();
        stage_package(&ovf, &stage)?
    } else {
        stage_disks(inputs, out, &stage)?
    };
    write_archive(out, &descriptor_name, text, &staged, options.replace)
}

/// The disks of the `.ovf` at `ovf` staged as stream-optimized files, and its envelope
/// pointing at them.
#[allow(clippy::type_complexity)]
fn stage_package(
    ovf: &Path,
    stage: &dyn Fn(&vmdk::Disk, &str, &Path) -> Result<(Staged, u64)>,
) -> Result<(String, String, Vec<(String, Staged)>)> {
    let pkg = Package::open(ovf)?;
    let text = std::fs::read_to_string(ovf).map_err(Error::io(ovf))?;
    let mut staged = Vec::new();
    let mut edits = EnvelopeEdits::new();
    for disk in &pkg.envelope().disks {
        let Some(file) = pkg.envelope().file_of(disk) else {
            continue;
        };
        let vdisk = pkg.open_disk(&file.href).map_err(|e| about(e, ovf))?;
        let (s, size) = stage(&vdisk, &file.href, ovf)?;
        edits.file(&file.href, &file.href, size);
        staged.push((file.href.clone(), s));
    }
    // Every disk is stream-optimized now, whatever the source said.
    edits.format(vmdk_format("streamOptimized"));
    let text = edit_envelope(&text, &edits).map_err(|e| e.in_envelope(ovf, &text))?;
    Ok((pkg.descriptor().to_string(), text, staged))
}

/// Bare disks staged as stream-optimized files named after `out`, and an envelope for them.
#[allow(clippy::type_complexity)]
fn stage_disks(
    inputs: &[PathBuf],
    out: &Path,
    stage: &dyn Fn(&vmdk::Disk, &str, &Path) -> Result<(Staged, u64)>,
) -> Result<(String, String, Vec<(String, Staged)>)> {
    let base = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "export".into());
    let mut disks = Vec::new();
    let mut staged = Vec::new();
    for (i, input) in inputs.iter().enumerate() {
        let vdisk = vmdk::OpenOptions::new()
            .open_vmdk_or_raw(input)
            .map_err(|e| about(e.into(), input))?;
        let name = format!("{base}-disk{}.vmdk", i + 1);
        let (s, size) = stage(&vdisk, &name, input)?;
        disks.push((name.clone(), size, vdisk.capacity()));
        staged.push((name, s));
    }
    let envelope = envelope_for_disks(&base, &disks).map_err(|e| Error::Envelope {
        path: out.with_extension("ovf"),
        line: None,
        reason: e.reason,
    })?;
    Ok((format!("{base}.ovf"), envelope, staged))
}

/// Writes the archive: the descriptor, a SHA256 manifest of it and every disk, the disks.
fn write_archive(
    out: &Path,
    descriptor_name: &str,
    text: String,
    staged: &[(String, Staged)],
    replace: bool,
) -> Result<ExportReport> {
    let mut manifest = Manifest::default();
    manifest.entries.push(Entry {
        algorithm: Algorithm::Sha256,
        name: descriptor_name.to_string(),
        digest: digest(Algorithm::Sha256, &mut text.as_bytes()).map_err(Error::io(out))?,
    });
    for (name, s) in staged {
        let mut f = File::open(s.path()).map_err(Error::io(s.path()))?;
        let d = digest(Algorithm::Sha256, &mut f).map_err(Error::io(s.path()))?;
        manifest.entries.push(Entry {
            algorithm: Algorithm::Sha256,
            name: name.clone(),
            digest: d,
        });
    }
    let mf_name = format!(
        "{}.mf",
        descriptor_name
            .rsplit_once('.')
            .map_or(descriptor_name, |(s, _)| s)
    );
    let mf = manifest.print();
    let mut listed = vec![
        ExportedMember {
            name: descriptor_name.to_string(),
            size: text.len() as u64,
        },
        ExportedMember {
            name: mf_name.clone(),
            size: mf.len() as u64,
        },
    ];
    let mut members: Vec<(String, u64, Box<dyn std::io::Read>)> = vec![
        (
            descriptor_name.to_string(),
            text.len() as u64,
            Box::new(std::io::Cursor::new(text.into_bytes())),
        ),
        (
            mf_name,
            mf.len() as u64,
            Box::new(std::io::Cursor::new(mf.into_bytes())),
        ),
    ];
    for (name, s) in staged {
        let size = std::fs::metadata(s.path())
            .map_err(Error::io(s.path()))?
            .len();
        members.push((
            name.clone(),
            size,
            Box::new(File::open(s.path()).map_err(Error::io(s.path()))?),
        ));
        listed.push(ExportedMember {
            name: name.clone(),
            size,
        });
    }
    let pending = PendingFile::create(out, replace)?;
    let w = BufWriter::with_capacity(1 << 20, pending.file());
    let mut w = write_ova(w, members).map_err(Error::io(out))?;
    w.flush().map_err(Error::io(out))?;
    drop(w);
    pending.commit()?;
    Ok(ExportReport {
        ova: out.to_path_buf(),
        members: listed,
    })
}
