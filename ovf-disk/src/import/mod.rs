//! Importing a package: verified first, then every disk inflated to an eager-zeroed thick disk
//! straight from the package (in place for an OVA, no temporary copy), and an OVF written whose
//! references name the thick disks.
//!
//! [`import`] reads a package from a file; [`import_stream`] reads an OVA from a pipe in one
//! pass: the descriptor must come first, the manifest before the disks (as ovftool writes
//! them) or after them (as VirtualBox does: digests are kept until it arrives), and each disk
//! is digested while it is inflated straight out of the archive.
//!
//! Every file is written under a temporary name and nothing appears under a final name until
//! the whole import succeeded: then the disks and the OVF naming them are renamed into place
//! together. Any failure, a digest mismatch included, removes every file written, and the
//! output folder when the import created it; a second import into a folder being imported into
//! is refused. Before the first disk, the free space of the folder's file system is compared
//! with what all the disks will take. A disk smaller than the capacity its envelope declares is
//! grown to it (as vSphere does on deploy), so the written OVF agrees with the written disk.

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use vmdk::{CreateType, Format, StreamReader};

use crate::emit::iso::single_file_iso;
use crate::emit::{libvirt_domain, vmx_config, Emit, EmitDisk};
use crate::error::{Error, Result};
use crate::output::convert::{
    check_space, write_pending, write_stream_pending, ConvertOptions, PendingWrite,
};
use crate::output::parallel::{self, disks_at_once};
use crate::output::{OutputFolder, PendingFile};

mod files;
mod in_pass;
mod verified;
use crate::package::ova::{cut_short, MAX_MEMBERS};
use crate::package::stream::{decompressed, disk_stream};
use crate::package::verify::{CapacityDifference, FileDigest, VerifyReport};
use crate::package::{declared, within_declared, Package, MAX_SMALL};
use in_pass::{digested_in_pass, import_disk_in_pass};
use ovf::envelope::{Envelope, FileRef, VirtualDisk};
use ovf::manifest::{digest, Algorithm, Entry, Hasher, Manifest, Outcome};
use ovf::properties::{ovf_environment, property_values};
use ovf::write::{edit_envelope, vmdk_format, EnvelopeEdits, ItemEdit};

/// Options of [`import`] and [`import_stream`]: how disks are written, and as what.
///
/// ```
/// let options = ovf_disk::import::Options::new()
///     .output_format(vmdk::Format::Raw)
///     .unwrap()
///     .convert_options(ovf_disk::output::ConvertOptions::new().replace_existing(true));
/// # let _ = options;
/// ```
#[derive(Clone, Debug)]
pub struct Options {
    convert: ConvertOptions,
    format: Format,
    emit: Vec<Emit>,
    hw_version: Option<u32>,
    properties: Vec<(String, String)>,
    deployment_option: Option<String>,
    environment_iso: bool,
    no_extra_files: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            convert: ConvertOptions::default(),
            format: Format::Vmdk(CreateType::MonolithicFlat),
            emit: Vec::new(),
            hw_version: None,
            properties: Vec::new(),
            deployment_option: None,
            environment_iso: false,
            no_extra_files: false,
        }
    }
}

impl Options {
    /// The defaults: thick VMDKs (a `monolithicFlat` descriptor and its flat extent), every
    /// byte written, existing outputs refused.
    pub fn new() -> Self {
        Self::default()
    }

    /// How disks are written (threads, zeros, replacing outputs).
    pub fn convert_options(mut self, convert: ConvertOptions) -> Self {
        self.convert = convert;
        self
    }

    /// Also write the configuration of each virtual system beside the disks: a libvirt domain
    /// (`NAME.xml`) or a `.vmx` (`NAME.vmx`); may be given for both.
    pub fn emit(mut self, emit: Emit) -> Self {
        if !self.emit.contains(&emit) {
            self.emit.push(emit);
        }
        self
    }

    /// The highest `virtualHW.version` an emitted `.vmx` may have (the package's `vmx-NN` is
    /// lowered to it).
    pub fn hw_version(mut self, version: u32) -> Self {
        self.hw_version = Some(version);
        self
    }

    /// Sets the OVF property `key` (as the package names it, or `class.key.instance`) to
    /// `value` for the deployment; checked against the property's type and qualifiers when the
    /// import starts ([`ovf::properties::property_values`]).
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push((key.into(), value.into()));
        self
    }

    /// The deployment option whose hardware the emitted configurations describe (default: the
    /// package's default one); one the package does not offer is refused.
    pub fn deployment_option(mut self, id: impl Into<String>) -> Self {
        self.deployment_option = Some(id.into());
        self
    }

    /// Also write each OVF environment document into an ISO 9660 image (`ovf-env.iso`), the
    /// CD-ROM transport guests read it from.
    pub fn environment_iso(mut self, iso: bool) -> Self {
        self.environment_iso = iso;
        self
    }

    /// Carries the other files the envelope references (ISOs, NVRAM, text) beside the disks
    /// (the default), or, with `false`, leaves them out and removes their `File`s and the items
    /// naming them from the written OVF, so it points at nothing missing either way.
    pub fn extra_files(mut self, carry: bool) -> Self {
        self.no_extra_files = !carry;
        self
    }

    /// What each disk becomes: raw, or a thick VMDK type (`monolithicFlat`, `vmfs`,
    /// `twoGbMaxExtentFlat`); other formats are refused.
    pub fn output_format(mut self, format: Format) -> Result<Self> {
        if !format.is_thick() && format != Format::Qcow2 {
            return Err(Error::InvalidInput(format!(
                "imports write raw, qcow2 or thick VMDK disks, not {format}"
            )));
        }
        self.format = format;
        Ok(self)
    }
}

/// One disk an import wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct ImportedDisk {
    /// The envelope's `ovf:diskId`.
    #[cfg_attr(feature = "serde", serde(rename = "disk"))]
    pub disk_id: String,
    /// The package file it came from.
    pub from: String,
    /// The files written, the one to open first.
    pub files: Vec<PathBuf>,
}

/// What [`import`] wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Report {
    /// The verification done first (for [`import_stream`], while reading).
    pub verify: VerifyReport,
    /// Each disk written.
    pub disks: Vec<ImportedDisk>,
    /// The new descriptor, referencing the thick disks.
    pub descriptor: PathBuf,
    /// The VM configurations written ([`Options::emit`]).
    pub configurations: Vec<EmittedConfig>,
    /// The OVF environment documents written (`ovf-env.xml`, and `ovf-env.iso` when asked).
    pub environment: Vec<PathBuf>,
    /// The other files the envelope references (ISOs, NVRAM, text), carried beside the disks.
    pub carried: Vec<PathBuf>,
    /// The manifest of the written package (the OVF and every file it references).
    pub manifest: Option<PathBuf>,
}

/// The deployment option chosen (if the package offers any) and every property's value.
type Deployment = (Option<String>, Vec<(String, String)>);

/// Checks what `options` ask of `env` before anything is written: the deployment option
/// exists, every property value is allowed. Returns the configuration to use and the values.
fn check_deployment(env: &Envelope, options: &Options) -> Result<Deployment> {
    let chosen = match &options.deployment_option {
        Some(id) if !env.deployment_options.iter().any(|d| d.id == *id) => {
            let offered: Vec<&str> = env
                .deployment_options
                .iter()
                .map(|d| d.id.as_str())
                .collect();
            return Err(Error::InvalidInput(format!(
                "--deployment-option {id}: the package offers {}",
                if offered.is_empty() {
                    "none".to_string()
                } else {
                    offered.join(", ")
                }
            )));
        }
        Some(id) => Some(id.clone()),
        None => env.default_deployment_option().map(str::to_string),
    };
    let values = property_values(&env.properties, &options.properties)?;
    Ok((chosen, values))
}

/// The OVF environment of each system that has properties (or of every system when values
/// were given or an ISO asked for), under temporary names: `ovf-env.xml` (and `ovf-env.iso`)
/// for a package of one system, `NAME-ovf-env.xml` otherwise.
fn environment_files(
    env: &Envelope,
    outdir: &Path,
    values: &[(String, String)],
    options: &Options,
) -> Result<(Vec<PendingFile>, Vec<PathBuf>)> {
    let (mut pending, mut written) = (Vec::new(), Vec::new());
    let systems: Vec<&str> = env.systems.iter().map(|s| s.id.as_str()).collect();
    for system in &env.systems {
        // A system's own properties, and those of the envelope and its collections.
        let mine: Vec<(String, String)> = env
            .properties
            .iter()
            .zip(values)
            .filter(|(p, _)| match p.system.as_deref() {
                Some(s) => s == system.id || !systems.contains(&s),
                None => true,
            })
            .map(|(_, v)| v.clone())
            .collect();
        let wanted = !mine.is_empty() || !options.properties.is_empty() || options.environment_iso;
        if !wanted {
            continue;
        }
        let text = ovf_environment(&system.id, &mine)?;
        let prefix = if env.systems.len() == 1 {
            String::new()
        } else {
            format!("{}-", config_stem(system))
        };
        let xml = outdir.join(format!("{prefix}ovf-env.xml"));
        let p = PendingFile::create(&xml, options.convert.replace)?;
        std::io::Write::write_all(&mut p.file(), text.as_bytes()).map_err(Error::io(&xml))?;
        pending.push(p);
        written.push(xml);
        if options.environment_iso {
            let image = single_file_iso("OVF_ENV.XML", text.as_bytes(), "OVF_ENV")
                .map_err(|e| Error::InvalidInput(e.0))?;
            let iso = outdir.join(format!("{prefix}ovf-env.iso"));
            let p = PendingFile::create(&iso, options.convert.replace)?;
            std::io::Write::write_all(&mut p.file(), &image).map_err(Error::io(&iso))?;
            pending.push(p);
            written.push(iso);
        }
    }
    Ok((pending, written))
}

/// A VM configuration an import wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct EmittedConfig {
    /// The virtual system's `ovf:id`.
    pub system: String,
    /// What it is.
    pub kind: Emit,
    /// The file written.
    pub file: PathBuf,
    /// What of the package it could not express.
    pub unmapped: Vec<String>,
}

/// A file name for a virtual system's configuration: its name (or id) with every character
/// other than letters, digits, `.`, `_` and `-` replaced by `_`.
fn config_stem(system: &ovf::envelope::System) -> String {
    let name = system.name.as_deref().unwrap_or(&system.id);
    let stem: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    match stem.trim_start_matches('.') {
        "" => "vm".to_string(),
        s => s.to_string(),
    }
}

/// The configurations `options` asks for, of every system of `env`, naming the disks in
/// `disks` (written under `outdir`): each under a temporary name, to be committed with the
/// import.
fn emit_configs(
    env: &Envelope,
    outdir: &Path,
    disks: &[ImportedDisk],
    configuration: Option<&str>,
    options: &Options,
) -> Result<(Vec<PendingFile>, Vec<EmittedConfig>)> {
    let mut pending = Vec::new();
    let mut emitted = Vec::new();
    if options.emit.is_empty() {
        return Ok((pending, emitted));
    }
    let absolute = std::fs::canonicalize(outdir).map_err(Error::io(outdir))?;
    let driver = match options.format {
        Format::Raw => "raw",
        Format::Qcow2 => "qcow2",
        _ => "vmdk",
    };
    let mut stems: Vec<String> = Vec::new();
    for system in &env.systems {
        let hardware = system.hardware.select(configuration);
        let mut stem = config_stem(system);
        if stems.contains(&stem) {
            stem = format!("{stem}-{}", stems.len() + 1);
        }
        stems.push(stem.clone());
        for kind in &options.emit {
            let (file, result) = match kind {
                Emit::Libvirt => {
                    let named: Vec<EmitDisk> = disks
                        .iter()
                        .filter_map(|d| {
                            let name = d.files.first()?.file_name()?;
                            Some(EmitDisk::new(&d.disk_id, absolute.join(name), driver))
                        })
                        .collect();
                    (
                        outdir.join(format!("{stem}.xml")),
                        libvirt_domain(system, &hardware, &named),
                    )
                }
                Emit::Vmx => {
                    let named: Vec<EmitDisk> = disks
                        .iter()
                        .filter_map(|d| {
                            let name = d.files.first()?.file_name()?;
                            Some(EmitDisk::new(&d.disk_id, name, driver))
                        })
                        .collect();
                    (
                        outdir.join(format!("{stem}.vmx")),
                        vmx_config(system, &hardware, &named, options.hw_version),
                    )
                }
            };
            let e = result?;
            let p = PendingFile::create(&file, options.convert.replace)?;
            std::io::Write::write_all(&mut p.file(), e.text.as_bytes())
                .map_err(Error::io(&file))?;
            pending.push(p);
            emitted.push(EmittedConfig {
                system: system.id.clone(),
                kind: *kind,
                file,
                unmapped: e.unmapped,
            });
        }
    }
    Ok((pending, emitted))
}

/// The output for a disk file of the package: `STEM.raw`, `STEM.qcow2`, or `STEM-thick.vmdk`.
fn output_for(outdir: &Path, href: &str, format: &Format) -> PathBuf {
    let name = crate::output::flat_name(href);
    let stem = name.rsplit_once('.').map_or(name.as_str(), |(s, _)| s);
    match format {
        Format::Raw => outdir.join(format!("{stem}.raw")),
        Format::Qcow2 => outdir.join(format!("{stem}.qcow2")),
        _ => outdir.join(format!("{stem}-thick.vmdk")),
    }
}

/// The reference to a disk file once its disk is written: a new name and size, stored whole
/// and uncompressed.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ReferenceEdit {
    href: String,
    new_href: String,
    new_size: u64,
}

/// Writes the imported package's descriptor into `outdir` under a temporary name, its
/// references pointing at the thick disks (whole and uncompressed: their `ovf:compression` and
/// `ovf:chunkSize` go) and their `ovf:format` the output's VMDK type (for raw outputs, the raw
/// format oVirt names, [`ovf::envelope::RAW_FORMAT`]).
fn write_descriptor(
    outdir: &Path,
    name: &str,
    (text, env): (&str, &Envelope),
    edits: &[ReferenceEdit],
    (chosen, values): (Option<&str>, &[(String, String)]),
    (format, drop_extras): (&Format, bool),
) -> Result<PendingFile> {
    let out = outdir.join(name);
    let mut e = EnvelopeEdits::new();
    for r in edits {
        e.plain_file(&r.href, &r.new_href, r.new_size);
    }
    // Without the other files: their references go, and the items (a CD-ROM's ISO) naming them.
    let extras: Vec<&FileRef> = env
        .files
        .iter()
        .filter(|f| drop_extras && !crate::package::holds_disk(env, &f.id))
        .collect();
    let named: Vec<String> = extras
        .iter()
        .map(|f| format!("ovf:/file/{}", f.id))
        .collect();
    for f in &extras {
        e.remove_file(&f.href);
    }
    if !named.is_empty() {
        e.items(move |item| {
            if item.host_resources.iter().any(|h| named.contains(h)) {
                ItemEdit::Remove
            } else {
                ItemEdit::Keep
            }
        });
    }
    // The VM as deployed: the chosen configuration's hardware, the properties' values (a
    // password's only in the OVF environment, never in the descriptor).
    if let Some(id) = chosen.filter(|_| !env.deployment_options.is_empty()) {
        e.deployment(id);
    }
    for (key, value) in values {
        if env
            .properties
            .iter()
            .any(|p| p.full_key() == *key && !p.password)
        {
            e.property_value(key, value);
        }
    }
    match format {
        Format::Vmdk(t) => {
            e.format(vmdk_format(t.as_str()));
        }
        // A qcow2 disk as oVirt names one (its `COW` volumes).
        Format::Qcow2 => {
            e.format(|f| {
                (f != ovf::envelope::QCOW2_FORMAT).then(|| ovf::envelope::QCOW2_FORMAT.into())
            });
        }
        // A raw disk named as oVirt names one, so no reader takes it for a VMDK.
        _ => {
            e.format(|f| {
                (f != ovf::envelope::RAW_FORMAT).then(|| ovf::envelope::RAW_FORMAT.into())
            });
        }
    }
    let text = edit_envelope(text, &e).map_err(|x| x.in_envelope(&out, text))?;
    let pending = PendingFile::create(&out, false)?;
    std::io::Write::write_all(&mut pending.file(), text.as_bytes()).map_err(Error::io(&out))?;
    Ok(pending)
}

/// The edit of the reference to `file` once its disk is written at `out`.
fn edit_for(file: &FileRef, out: &Path, written: &PendingWrite) -> ReferenceEdit {
    ReferenceEdit {
        href: file.href.clone(),
        new_href: out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        new_size: written.size_of(out),
    }
}

/// The capacity a disk is written at: the one its envelope declares (a whole number of
/// sectors), after the disk's own capacity was checked to be no larger.
pub(super) fn grown(declared: u64) -> u64 {
    declared / 512 * 512
}

/// Refuses to start an import whose thick disks, at their declared capacities, do not fit in
/// the free space of `outdir`'s file system.
fn check_import_space(env: &Envelope, path: &Path, outdir: &Path, options: &Options) -> Result<()> {
    if !options.convert.space_check {
        return Ok(());
    }
    let mut needed = 0u64;
    for disk in env.disks.iter().filter(|d| env.file_of(d).is_some()) {
        let capacity = grown(declared(disk, path)?);
        let bytes = options
            .format
            .space_needed(capacity, &options.convert.write);
        needed = needed.saturating_add(bytes);
    }
    check_space(outdir, needed, outdir)
}

/// Commits an import: every disk's files, the configurations naming them, then the OVF,
/// renamed together.
fn commit_import(
    disks: Vec<PendingWrite>,
    mut configs: Vec<PendingFile>,
    descriptor: PendingFile,
) -> Result<()> {
    configs.push(descriptor);
    PendingWrite::commit_with(disks, configs)
}

/// Imports `pkg` into `outdir` (created if missing): verifies it (a mismatch stops the import
/// before anything is written; but for a package at a URL, whose stream-optimized disks are
/// digested while they are written rather than fetched twice, where a mismatch fails the
/// import and leaves nothing), checks that the disks fit in the free space, inflates every
/// disk to an eager-zeroed thick VMDK (or raw) at the capacity the envelope declares, and
/// writes an OVF whose references name the thick disks; see the module's description for
/// what a failure leaves (nothing). `progress` is called with a disk id and the bytes of that
/// disk written since the previous call (a delta: add them up for a running total; disks are
/// written side by side, so calls for different disks interleave). Unless the package was
/// verified before (its report is kept and reused), it is first called once per file the
/// manifest lists, with the file's name and 0, as each is digested.
///
/// ```no_run
/// # fn main() -> ovf_disk::Result<()> {
/// let pkg = ovf_disk::package::Package::open("appliance.ova".as_ref())?;
/// let report = ovf_disk::import::import(&pkg, "imported".as_ref(), &ovf_disk::import::Options::new(), &|_, _| {})?;
/// for d in &report.disks {
///     println!("{} -> {:?}", d.from, d.files);
/// }
/// # Ok(())
/// # }
/// ```
pub fn import(
    pkg: &Package,
    outdir: &Path,
    options: &Options,
    progress: &(dyn Fn(&str, u64) + Sync),
) -> Result<Report> {
    let (chosen, values) = check_deployment(pkg.envelope(), options)?;
    let resuming = options.convert.resuming();
    let folder = OutputFolder::open_keeping(outdir, resuming)?;
    let (verify, in_pass, record) = verify_first(pkg, outdir, options, progress)?;
    // A run that resumes has its disks' space taken already (the first run checked it).
    if !resuming {
        check_import_space(pkg.envelope(), pkg.path(), outdir, options)?;
    }
    let mut report = Report {
        verify,
        ..Report::default()
    };
    let text = String::from_utf8(pkg.read_small(pkg.descriptor())?).map_err(|_| {
        Error::Ovf(ovf::Error::Envelope {
            path: pkg.path().to_path_buf(),
            line: None,
            reason: "not UTF-8".into(),
        })
    })?;
    let jobs: Vec<(&VirtualDisk, &FileRef, PathBuf)> = pkg
        .envelope()
        .disks
        .iter()
        .filter_map(|disk| {
            let file = pkg.envelope().file_of(disk)?;
            Some((disk, file, output_for(outdir, &file.href, &options.format)))
        })
        .collect();
    // The other files first: one missing stops the import before the disks are written.
    let (carried, carried_edits) = if options.no_extra_files {
        (Vec::new(), Vec::new())
    } else {
        files::carry_files(pkg, outdir, options.convert.replace)?
    };
    let written = match write_disks(pkg, &jobs, &in_pass, options, progress, &mut report.verify) {
        Ok(w) => w,
        Err(e) => {
            // A package that does not match its manifest leaves nothing to resume.
            if let (Error::Verification(_), Some(r)) = (&e, record) {
                r.finish();
            }
            return Err(e);
        }
    };
    let mut edits = Vec::new();
    for ((disk, file, out), w) in jobs.iter().zip(&written) {
        edits.push(edit_for(file, out, w));
        report.disks.push(ImportedDisk {
            disk_id: disk.disk_id.clone(),
            from: file.href.clone(),
            files: w.report.files.clone(),
        });
    }
    report.carried = carried.iter().map(|p| p.target().to_path_buf()).collect();
    edits.extend(carried_edits);
    let (mut configs, emitted) = emit_configs(
        pkg.envelope(),
        outdir,
        &report.disks,
        chosen.as_deref(),
        options,
    )?;
    report.configurations = emitted;
    let (environment, files) = environment_files(pkg.envelope(), outdir, &values, options)?;
    configs.extend(environment);
    report.environment = files;
    let descriptor = write_descriptor(
        outdir,
        pkg.descriptor(),
        (&text, pkg.envelope()),
        &edits,
        (chosen.as_deref(), &values),
        (&options.format, options.no_extra_files),
    )?;
    report.descriptor = descriptor.target().to_path_buf();
    let pending = written.iter().flat_map(|w| &w.files).chain(&carried);
    let listed = files::listed(outdir, &edits, pending);
    let source = pkg.manifest().map(|(_, m)| m);
    let manifest = files::write_manifest(source, &descriptor, &listed, options.convert.replace)?;
    report.manifest = Some(manifest.target().to_path_buf());
    drop(listed);
    configs.extend(carried);
    configs.push(manifest);
    commit_import(written, configs, descriptor)?;
    if let Some(r) = record {
        r.finish();
    }
    folder.keep();
    Ok(report)
}

/// Writes one disk of a package at `out` under temporary names: read in place, or as a stream
/// when it is stored compressed or in chunks, no larger than the capacity the envelope
/// declares and grown to it.
fn import_disk(
    pkg: &Package,
    disk: &VirtualDisk,
    file: &FileRef,
    out: &Path,
    options: &Options,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<PendingWrite> {
    let declared = pkg.declared(disk)?;
    let href = Path::new(&file.href);
    let (format, convert) = (&options.format, &options.convert);
    if file.is_compressed() || file.chunk_size.is_some() {
        if !format.is_thick() {
            return Err(Error::InvalidInput(format!(
                "{}: a compressed or chunked disk is read in one pass, which writes raw or thick \
                    VMDK disks only, not {format}",
                file.href
            )));
        }
        let stream = StreamReader::new(disk_stream(pkg, file, &disk.disk_id)?, href)?;
        within_declared(href, stream.capacity(), declared)?;
        write_stream_pending(stream, out, format, grown(declared), convert, progress)
    } else {
        let vdisk = pkg.open_disk(&file.href)?;
        within_declared(href, vdisk.capacity(), declared)?;
        // A resumable write says which object it reads (its length and validator).
        let mut convert = convert.clone();
        if let (Some((lines, _)), Some(id)) = (&mut convert.resumable, pkg.identity_of(&file.href))
        {
            lines.push(format!("disk {id}"));
        }
        write_pending(&vdisk, out, format, grown(declared), &convert, progress)
    }
}

/// What [`import`] checks before it writes: the manifest's digests (a mismatch stops the
/// import before anything is written), but for the disks [`digested_in_pass`] returns, which
/// [`write_disks`] digests as it writes them (returned with their entries), and for the files
/// an interrupted run of a resumable import verified ([`verified::Verified`]); with the
/// record of what this run verified, to remove once the import is complete.
fn verify_first<'a>(
    pkg: &'a Package,
    outdir: &Path,
    options: &Options,
    progress: &(dyn Fn(&str, u64) + Sync),
) -> Result<(VerifyReport, InPass<'a>, Option<verified::Verified>)> {
    let in_pass = digested_in_pass(pkg, options);
    let mut skip: Vec<&str> = in_pass.iter().map(|(f, _)| f.href.as_str()).collect();
    let mut record = match &options.convert.resumable {
        Some((source, _)) if pkg.is_remote() => verified::Verified::new(pkg, outdir, source, &skip),
        _ => None,
    };
    let recorded = match &mut record {
        Some(r) if options.convert.resuming() => r.load()?,
        _ => Vec::new(),
    };
    skip.extend(recorded.iter().map(String::as_str));
    let mut verify = match skip.is_empty() {
        true => pkg.verify(&|name| progress(name, 0))?,
        false => pkg.verify_except(&skip, &|name| progress(name, 0))?,
    };
    verify
        .files
        .extend(verified::Verified::digests(pkg, &recorded));
    let verify = verify.settle();
    if !verify.nothing_damaged() {
        return Err(Error::Verification(pkg.path().to_path_buf()));
    }
    if let Some(r) = &mut record {
        r.store(&verify)?;
    }
    Ok((verify, in_pass, record))
}

/// The disks [`digested_in_pass`] returns: each file with its manifest entry.
type InPass<'a> = Vec<(&'a FileRef, &'a Entry)>;

/// Writes each disk of `jobs` (disk, its file, the output) under temporary names, side by
/// side, those of `in_pass` digested on the way into `verify`; a digest that does not match
/// drops every write (nothing is left) and fails.
fn write_disks(
    pkg: &Package,
    jobs: &[(&VirtualDisk, &FileRef, PathBuf)],
    in_pass: &[(&FileRef, &Entry)],
    options: &Options,
    progress: &(dyn Fn(&str, u64) + Sync),
    verify: &mut VerifyReport,
) -> Result<Vec<PendingWrite>> {
    let workers = disks_at_once(options.convert.disks_at_once, jobs.len());
    let written = parallel::each(jobs, workers, |(disk, file, out)| {
        let id = disk.disk_id.as_str();
        let entry = in_pass
            .iter()
            .find(|(f, _)| f.id == file.id)
            .map(|(_, e)| *e);
        let progress = |n| progress(id, n);
        match entry {
            Some(e) => import_disk_in_pass(pkg, disk, file, out, options, e, &progress)
                .map(|(w, d)| (w, Some(d))),
            None => import_disk(pkg, disk, file, out, options, &progress).map(|w| (w, None)),
        }
        .map_err(|e| e.for_disk(id))
    })?;
    let (written, digested): (Vec<PendingWrite>, Vec<Option<FileDigest>>) =
        written.into_iter().unzip();
    verify.files.extend(digested.into_iter().flatten());
    *verify = std::mem::take(verify).settle();
    if !verify.nothing_damaged() {
        // Nothing of a package that does not match its manifest is kept to be resumed.
        for w in written {
            w.discard();
        }
        return Err(Error::Verification(pkg.path().to_path_buf()));
    }
    Ok(written)
}

/// A reader that digests what passes through it.
struct Hashing<R> {
    inner: R,
    /// One digest when the manifest is known (its algorithm for this member), all three while
    /// it has not arrived yet (VirtualBox writes it after the disks).
    hashers: Vec<Hasher>,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for h in &mut self.hashers {
            h.update(buf.split_at(n.min(buf.len())).0);
        }
        Ok(n)
    }
}

/// The state of a streaming import between tar members.
struct StreamImport<'a> {
    path: PathBuf,
    outdir: &'a Path,
    options: &'a Options,
    report: Report,
    /// The descriptor's name, its text as read, and the envelope.
    envelope: Option<(String, String, Envelope)>,
    edits: Vec<ReferenceEdit>,
    manifest: Option<Manifest>,
    /// Members whose digest was checked, or that were imported.
    seen: HashSet<String>,
    /// Every member name so far (the descriptor's and the manifest's too).
    names: HashSet<String>,
    /// The folder the descriptor sits in inside the archive (`sub/`, or empty), once read.
    root: Option<String>,
    /// The non-disk files the envelope references, written beside the disks.
    carried: Vec<PendingFile>,
    /// Digests of members read before the manifest, in all three algorithms.
    early: Vec<(String, Vec<(Algorithm, String)>)>,
    /// The disks written, under temporary names until the import is complete.
    written: Vec<PendingWrite>,
}

/// Imports an OVA read as a stream (a pipe, standard input) named `name` in errors, into
/// `outdir`, in one pass with no temporary copy: see the module's description. Disks must be
/// stream-optimized (possibly gzip-compressed); chunked files need [`import`].
pub fn import_stream<R: Read>(
    input: R,
    name: &str,
    outdir: &Path,
    options: &Options,
    progress: &(dyn Fn(&str, u64) + Sync),
) -> Result<Report> {
    let path = PathBuf::from(name);
    let folder = OutputFolder::open(outdir)?;
    let mut state = StreamImport {
        path: path.clone(),
        outdir,
        options,
        report: Report::default(),
        envelope: None,
        edits: Vec::new(),
        manifest: None,
        seen: HashSet::new(),
        names: HashSet::new(),
        root: None,
        carried: Vec::new(),
        early: Vec::new(),
        written: Vec::new(),
    };
    let read = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    let mut archive = tar::Archive::new(Counting {
        inner: input,
        read: read.clone(),
        failed: failed.clone(),
    });
    // Where the next header should be, for errors the tar reader reports without one.
    let mut next_header = 0u64;
    let mut last = None;
    for entry in archive.entries().map_err(Error::io(&path))? {
        let entry = entry.map_err(|e| {
            let have = read.load(Ordering::Relaxed);
            if have < next_header + 512 && !failed.load(Ordering::Relaxed) {
                return cut_short(&path, &last, next_header, next_header + 512 - have);
            }
            Error::Archive {
                path: path.clone(),
                what: "tar header".into(),
                offset: next_header,
                reason: e.to_string(),
            }
        })?;
        next_header = entry
            .raw_file_position()
            .saturating_add(entry.size())
            .div_ceil(512)
            .saturating_mul(512);
        last = Some(String::from_utf8_lossy(&entry.path_bytes()).into_owned());
        state.member(entry, progress)?;
    }
    // The end-of-archive marker (two zero blocks after the last member's padding) must be
    // there: the tar reader stops at the first zero block, or quietly at the end of the input.
    let mut rest = archive.into_inner();
    let end = next_header + 1024;
    let have = read.load(Ordering::Relaxed);
    if have < end {
        let mut tail = Vec::new();
        (&mut rest)
            .take(end - have)
            .read_to_end(&mut tail)
            .map_err(Error::io(&path))?;
        let have = read.load(Ordering::Relaxed);
        if have < end {
            return Err(cut_short(&path, &last, next_header, end - have));
        }
    }
    let report = state.finish()?;
    folder.keep();
    Ok(report)
}

/// A reader that counts the bytes read through it, and whether reading failed (a read error
/// is not a truncation).
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
    failed: Arc<AtomicBool>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf).inspect_err(|e| {
            if e.kind() != std::io::ErrorKind::Interrupted {
                self.failed.store(true, Ordering::Relaxed);
            }
        })?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// A tar member's data that fails when the input ends before the member does (the tar
/// reader returns a short member quietly), remembering how much was missing.
struct Member<R> {
    inner: R,
    /// Bytes of the member not read yet.
    left: u64,
    /// Set when the input ended with `left` bytes still to come.
    cut: bool,
}

impl<R: Read> Read for Member<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            self.cut = true;
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the archive ends inside this member",
            ));
        }
        self.left = self.left.saturating_sub(n as u64);
        Ok(n)
    }
}

impl StreamImport<'_> {
    /// Takes one tar member: the descriptor, the manifest, a disk, or another file.
    fn member<R: Read>(
        &mut self,
        entry: tar::Entry<'_, R>,
        progress: &(dyn Fn(&str, u64) + Sync),
    ) -> Result<()> {
        let offset = entry.raw_header_position();
        let raw_name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let path = self.path.clone();
        let bad = |reason: &str| Error::Archive {
            path: path.clone(),
            what: format!("tar member {raw_name:?}"),
            offset,
            reason: reason.to_string(),
        };
        let folder = entry.header().entry_type() == tar::EntryType::Directory;
        let name = raw_name.strip_suffix('/').filter(|_| folder);
        let member =
            crate::package::ova::member_name(name.unwrap_or(&raw_name)).map_err(|e| bad(&e))?;
        if folder && entry.size() == 0 {
            return Ok(());
        }
        // Every member in the descriptor's folder (`sub/x.ovf`, `sub/disk1.vmdk`): named
        // inside it, as the seekable reader names them.
        let member = match &self.root {
            None => {
                let root = crate::package::ova::root_of(&member).to_string();
                let name = member.get(root.len()..).unwrap_or_default().to_string();
                self.root = Some(root);
                name
            }
            Some(root) => match member.strip_prefix(root.as_str()) {
                Some(inside) => inside.to_string(),
                None => {
                    return Err(bad(&format!(
                        "it is not in the descriptor's folder {root:?}"
                    )))
                }
            },
        };
        if !matches!(
            entry.header().entry_type(),
            tar::EntryType::Regular | tar::EntryType::Continuous
        ) {
            return Err(bad("it is a link or not a regular file"));
        }
        if !self.names.insert(member.clone()) {
            return Err(bad("a second member with this name"));
        }
        if self.names.len() > MAX_MEMBERS {
            return Err(bad(&format!("more than {MAX_MEMBERS} members")));
        }
        let expected = self.manifest.as_ref().and_then(|m| m.get(&member)).cloned();
        let algorithms = match (&self.manifest, &expected) {
            (_, Some(e)) => vec![e.algorithm],
            (None, None) => vec![Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512],
            (Some(_), None) => Vec::new(),
        };
        let size = entry.size();
        // A member shorter than its File's ovf:size is cut short, whatever its digest says.
        let declared = self.envelope.as_ref().and_then(|(_, _, env)| {
            let f = env
                .files
                .iter()
                .find(|f| f.location().as_deref() == Ok(&member))?;
            (f.chunk_size.is_none() && !f.is_compressed())
                .then_some(f.size)
                .flatten()
        });
        if let Some(short) = crate::package::ShortFile::of(&member, declared, size) {
            self.report.verify.short.push(short);
            return Err(Error::Verification(self.path.clone()));
        }
        let mut reader = Hashing {
            inner: Member {
                inner: entry,
                left: size,
                cut: false,
            },
            hashers: algorithms.into_iter().map(Hasher::new).collect(),
        };
        let result = self.member_data(&member, expected.as_ref(), &mut reader, &bad, progress);
        if reader.inner.cut {
            // Whatever the reader of the member made of its end, the archive is cut short.
            return Err(Error::Truncated {
                path: self.path.clone(),
                what: format!("tar member {raw_name:?} ({size} bytes)"),
                offset,
                missing: reader.inner.left,
            });
        }
        result
    }

    /// Reads the data of the member `member`: the descriptor, the manifest, a disk, or
    /// another file, then checks its digest.
    fn member_data<R: Read>(
        &mut self,
        member: &str,
        expected: Option<&Entry>,
        reader: &mut Hashing<Member<R>>,
        bad: &dyn Fn(&str) -> Error,
        progress: &(dyn Fn(&str, u64) + Sync),
    ) -> Result<()> {
        if self.envelope.is_none() {
            if !member.to_ascii_lowercase().ends_with(".ovf") {
                return Err(bad("the OVF descriptor must be the first member"));
            }
            return self.descriptor_member(member, reader, bad);
        }
        if member.to_ascii_lowercase().ends_with(".mf") && self.manifest.is_none() {
            return self.manifest_member(member, reader);
        }
        // The disk this member holds, if it holds one.
        let target = self.envelope.as_ref().and_then(|(_, _, env)| {
            let f = env
                .files
                .iter()
                .find(|f| f.location().as_deref() == Ok(member))?;
            let d = env
                .disks
                .iter()
                .find(|d| d.file_ref.as_deref() == Some(f.id.as_str()))?;
            Some((f.clone(), d.clone()))
        });
        match target {
            Some((file, disk)) => {
                let id = disk.disk_id.clone();
                self.disk_member(member, &file, &disk, reader, &|n| progress(&id, n))
                    .map_err(|e| e.for_disk(&id))?;
            }
            None => {
                // A file the envelope references (an ISO, NVRAM): carried beside the disks.
                let referenced = self.envelope.as_ref().and_then(|(_, _, env)| {
                    let f = env
                        .files
                        .iter()
                        .find(|f| f.location().as_deref() == Ok(member))?;
                    (!crate::package::holds_disk(env, &f.id)).then(|| f.href.clone())
                });
                if let Some(href) = referenced.filter(|_| !self.options.no_extra_files) {
                    let replace = self.options.convert.replace;
                    let (p, edit) = files::carry_member(reader, &href, self.outdir, replace)?;
                    self.report.carried.push(p.target().to_path_buf());
                    self.carried.push(p);
                    self.edits.push(edit);
                } else if member.to_ascii_lowercase().ends_with(".cert") {
                    // Certificates and other members: digested if listed, not used.
                    self.report.verify.certificate = Some(member.to_string());
                }
            }
        }
        self.check_digest(member, expected, reader)?;
        self.seen.insert(member.to_string());
        Ok(())
    }

    /// The first member: the envelope.
    fn descriptor_member<R: Read>(
        &mut self,
        member: &str,
        reader: &mut Hashing<R>,
        bad: impl Fn(&str) -> Error,
    ) -> Result<()> {
        let mut text = String::new();
        reader
            .take(MAX_SMALL + 1)
            .read_to_string(&mut text)
            .map_err(Error::io(&self.path.join(member)))?;
        if text.len() as u64 > MAX_SMALL {
            return Err(bad("the descriptor is larger than 16 MiB"));
        }
        let env = Envelope::parse(&text, &self.path.join(member))?;
        check_deployment(&env, self.options)?;
        check_import_space(&env, &self.path, self.outdir, self.options)?;
        self.envelope = Some((member.to_string(), text, env));
        Ok(())
    }

    /// The manifest: the descriptor and the members read before it are checked now.
    fn manifest_member<R: Read>(&mut self, member: &str, reader: &mut Hashing<R>) -> Result<()> {
        let mut text = String::new();
        reader
            .take(MAX_SMALL)
            .read_to_string(&mut text)
            .map_err(Error::io(&self.path.join(member)))?;
        let m = Manifest::parse(&text, &self.path.join(member))?;
        if let Some((descriptor, original, _)) = &self.envelope {
            if let Some(e) = m.get(descriptor) {
                let found =
                    digest(e.algorithm, &mut original.as_bytes()).map_err(Error::io(&self.path))?;
                let descriptor = descriptor.clone();
                self.record(&descriptor, e, found)?;
            }
        }
        for (name, digests) in std::mem::take(&mut self.early) {
            if let Some(e) = m.get(&name) {
                let found = digests
                    .iter()
                    .find(|(a, _)| *a == e.algorithm)
                    .map(|(_, d)| d.clone())
                    .unwrap_or_default();
                self.record(&name, e, found)?;
            }
        }
        self.report.verify.manifest = Some(member.to_string());
        self.manifest = Some(m);
        Ok(())
    }

    /// A disk: inflated straight out of the archive, no larger than its declared capacity.
    fn disk_member<R: Read>(
        &mut self,
        member: &str,
        file: &FileRef,
        disk: &VirtualDisk,
        reader: &mut Hashing<R>,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<()> {
        if file.chunk_size.is_some() {
            return Err(Error::Unsupported {
                disk: disk.disk_id.clone(),
                what: "a chunked disk file read from a stream (import the .ova from a file)".into(),
            });
        }
        let out = output_for(self.outdir, &file.href, &self.options.format);
        let declared = declared(disk, &self.path)?;
        let w = {
            let bytes = decompressed(
                Box::new(&mut *reader),
                file.compression.as_deref(),
                &disk.disk_id,
            )?;
            let named = self.path.join(member);
            let stream = StreamReader::new(bytes, &named)?;
            within_declared(&named, stream.capacity(), declared)?;
            self.report.verify.capacities.extend(CapacityDifference::of(
                &disk.disk_id,
                member,
                declared,
                stream.capacity(),
            ));
            write_stream_pending(
                stream,
                &out,
                &self.options.format,
                grown(declared),
                &self.options.convert,
                progress,
            )?
        };
        self.edits.push(edit_for(file, &out, &w));
        self.report.disks.push(ImportedDisk {
            disk_id: disk.disk_id.clone(),
            from: file.href.clone(),
            files: w.report.files.clone(),
        });
        self.written.push(w);
        Ok(())
    }

    /// Records the digest `found` for `name` against its manifest entry; a mismatch stops the
    /// import.
    fn record(&mut self, name: &str, e: &Entry, found: String) -> Result<()> {
        let outcome = Outcome::of(&e.digest, found);
        let ok = outcome == Outcome::Ok;
        self.report
            .verify
            .files
            .push(FileDigest::new(name, e.algorithm, outcome));
        if ok {
            Ok(())
        } else {
            Err(Error::Verification(self.path.clone()))
        }
    }

    /// Reads the rest of a member (its digest covers every byte), then checks the digest
    /// against its manifest entry, or keeps its digests for when the manifest arrives
    /// (`expected` is `None` and several hashers ran).
    fn check_digest<R: Read>(
        &mut self,
        member: &str,
        expected: Option<&Entry>,
        reader: &mut Hashing<R>,
    ) -> Result<()> {
        std::io::copy(reader, &mut std::io::sink()).map_err(Error::io(&self.path.join(member)))?;
        let hashers = std::mem::take(&mut reader.hashers);
        match (expected, hashers.len()) {
            (Some(e), 1) => {
                let found = hashers
                    .into_iter()
                    .next()
                    .map(Hasher::finish)
                    .unwrap_or_default();
                self.record(member, e, found)?;
            }
            (None, n) if n > 1 => {
                let algorithms = [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512];
                self.early.push((
                    member.to_string(),
                    algorithms
                        .into_iter()
                        .zip(hashers.into_iter().map(Hasher::finish))
                        .collect(),
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// After the last member: every listed file passed, every referenced disk was found; the
    /// descriptor is written.
    fn finish(mut self) -> Result<Report> {
        let Some((descriptor, text, env)) = self.envelope.take() else {
            return Err(Error::Missing {
                path: self.path.clone(),
                name: "an OVF descriptor".into(),
            });
        };
        if let Some(m) = &self.manifest {
            for e in &m.entries {
                if e.name != descriptor
                    && !self.seen.contains(&e.name)
                    && self.report.verify.manifest.as_deref() != Some(e.name.as_str())
                {
                    self.report.verify.files.push(FileDigest::new(
                        &e.name,
                        e.algorithm,
                        Outcome::Missing,
                    ));
                    return Err(Error::Verification(self.path.clone()));
                }
            }
            for f in &env.files {
                if m.get(&f.href).is_none() {
                    self.report.verify.unlisted.push(f.href.clone());
                }
            }
        }
        let extras = env
            .files
            .iter()
            .filter(|f| !crate::package::holds_disk(&env, &f.id));
        for f in extras.filter(|_| !self.options.no_extra_files) {
            if !self.edits.iter().any(|e| e.href == f.href) {
                return Err(match f.location() {
                    Err(reason) => Error::Outside {
                        path: self.path.clone(),
                        href: f.href.clone(),
                        reason,
                    },
                    Ok(_) => Error::Missing {
                        path: self.path.clone(),
                        name: f.href.clone(),
                    },
                });
            }
        }
        for d in &env.disks {
            if let Some(f) = env.file_of(d) {
                if !self.report.disks.iter().any(|r| r.from == f.href) {
                    return Err(Error::Missing {
                        path: self.path.clone(),
                        name: f.href.clone(),
                    });
                }
            }
        }
        let (chosen, values) = check_deployment(&env, self.options)?;
        let (mut configs, emitted) = emit_configs(
            &env,
            self.outdir,
            &self.report.disks,
            chosen.as_deref(),
            self.options,
        )?;
        self.report.configurations = emitted;
        let (environment, files) = environment_files(&env, self.outdir, &values, self.options)?;
        configs.extend(environment);
        self.report.environment = files;
        let pending = write_descriptor(
            self.outdir,
            &descriptor,
            (&text, &env),
            &self.edits,
            (chosen.as_deref(), &values),
            (&self.options.format, self.options.no_extra_files),
        )?;
        self.report.descriptor = pending.target().to_path_buf();
        let carried = std::mem::take(&mut self.carried);
        let files = self.written.iter().flat_map(|w| &w.files).chain(&carried);
        let listed = files::listed(self.outdir, &self.edits, files);
        let replace = self.options.convert.replace;
        let manifest = files::write_manifest(self.manifest.as_ref(), &pending, &listed, replace)?;
        self.report.manifest = Some(manifest.target().to_path_buf());
        drop(listed);
        configs.extend(carried);
        configs.push(manifest);
        commit_import(std::mem::take(&mut self.written), configs, pending)?;
        self.report.verify.package = self.path.clone();
        let mut report = std::mem::take(&mut self.report);
        report.verify = report.verify.settle();
        Ok(report)
    }
}
