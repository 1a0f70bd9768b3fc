//! `ovf-disk`: read, check, convert and inflate VMware virtual disks; verify, check, import and
//! export OVF packages.
//!
//! A thin shell over the `vmdk` and `ovf-disk` libraries: it parses arguments, draws progress,
//! and prints what the libraries return (text for people, or JSON with `--json`, both from the
//! same typed reports). One function per subcommand. Exit status: 0 success, 1 failure; `check`
//! 2 when it finds problems. A closed standard output (`ovf-disk info x | head -3`) ends the
//! command quietly.

mod remote;
mod text;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use ovf_disk::import;
use ovf_disk::output::ConvertOptions;
use ovf_disk::package::Package;
use ovf_disk::{Input, InputKind};
use serde::Serialize;
use vmdk::{CreateType, Format, OpenOptions, StreamReader, WriteOptions, WriteReport, ZeroMode};

#[derive(Parser, Debug)]
#[command(
    name = "ovf-disk",
    version,
    about = "Read, check and inflate VMware virtual disks (VMDK) and OVF packages"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Zero {
    /// Write every zero: eager-zeroed thick, no holes.
    Write,
    /// Preallocate with fallocate; zeros are not written.
    Falloc,
    /// Leave zero ranges as holes.
    Sparse,
}

#[derive(clap::Args, Debug)]
struct InputArgs {
    /// Follow extent and parent file names that lead outside the descriptor's folder
    /// (absolute paths, '..', links, devices). Off by default: a disk from a stranger must not
    /// make us read host files.
    #[arg(long)]
    allow_outside_paths: bool,
    /// Accept a parent whose CID does not match the child's parentCID.
    #[arg(long)]
    ignore_parent_cid: bool,
    /// Memory-map input files instead of reading them with positioned reads.
    #[arg(long)]
    mmap: bool,
    #[command(flatten)]
    remote: remote::RemoteArgs,
}

impl InputArgs {
    fn options(&self) -> OpenOptions {
        OpenOptions::new()
            .mmap(self.mmap)
            .allow_outside_paths(self.allow_outside_paths)
            .ignore_parent_cid(self.ignore_parent_cid)
    }

    /// A disk input, local or at a URL, with these options.
    fn open(&self, input: &Path) -> Result<remote::Opened> {
        self.remote.open(input, self.options())
    }

    /// Any input, local or at a URL, opened as what it holds.
    fn input(&self, file: &Path) -> Result<Input> {
        if !remote::is_url(file) {
            return Ok(Input::open(file, &self.vm_options())?);
        }
        if let Some(pkg) = self.package(file)? {
            return Ok(Input::Package(Box::new(pkg)));
        }
        if remote::url_kind(file) == remote::UrlKind::Vmx {
            let (options, name) = self.vm_options_for(file)?;
            return Ok(Input::Vm(Box::new(options.read_vm(&name)?)));
        }
        remote::refuse_package_url(file)?;
        let opened = self.open(file)?;
        Ok(Input::Disk(Box::new(opened.options.open(&opened.name)?)))
    }

    /// The package `file` is, local or at a URL; `None` when it is not one.
    fn package(&self, file: &Path) -> Result<Option<Package>> {
        let pkg = if remote::is_url(file) {
            match remote::url_kind(file) {
                remote::UrlKind::Ova | remote::UrlKind::Ovf => self.remote.package(file)?.0,
                _ => return Ok(None),
            }
        } else if is_package(file)? {
            Package::open(file)?
        } else {
            return Ok(None);
        };
        Ok(Some(pkg.allow_outside_paths(self.allow_outside_paths)))
    }

    /// The options of the VM `vmx` (a path or a URL), and the name to open it by.
    fn vm_options_for(&self, vmx: &Path) -> Result<(ovf_disk::vm::Options, PathBuf)> {
        self.vm_source(vmx)
            .map(|(options, name, _)| (options, name))
    }

    /// [`InputArgs::vm_options_for`], with the remote source the options read from when
    /// `vmx` is a URL (for what it fetched and what it is).
    fn vm_source(
        &self,
        vmx: &Path,
    ) -> Result<(
        ovf_disk::vm::Options,
        PathBuf,
        Option<vmdk::remote::RemoteFiles>,
    )> {
        if !remote::is_url(vmx) {
            return Ok((self.vm_options(), vmx.to_path_buf(), None));
        }
        let (files, name) = self.remote.source(vmx)?;
        Ok((self.vm_options().files(files.clone()), name, Some(files)))
    }

    /// The options of a VM's disks (and of any input opened through `Input::open`).
    fn vm_options(&self) -> ovf_disk::vm::Options {
        ovf_disk::vm::Options::new()
            .open_options(self.options())
            .allow_outside_paths(self.allow_outside_paths)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ProgressMode {
    /// A progress bar when standard error is a terminal.
    Bar,
    /// One JSON line a second on standard error.
    Json,
    /// Nothing.
    None,
}

#[derive(clap::Args, Debug)]
struct OutputArgs {
    /// How zero ranges of raw and flat outputs are written.
    #[arg(long, value_enum, default_value = "write")]
    zero: Zero,
    /// Replace existing outputs.
    #[arg(long)]
    force: bool,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Disks written at once by an import or a VM folder (default: as many as cores, at most
    /// 4; 1 writes them one by one).
    #[arg(long, value_name = "N")]
    disks_at_once: Option<usize>,
    /// Write raw and flat outputs through the page cache instead of with O_DIRECT (the
    /// default where the file system supports it).
    #[arg(long)]
    buffered: bool,
    /// Write even when the output's file system has less free space than an eager-zeroed or
    /// preallocated output takes (checked before anything is written).
    #[arg(long)]
    no_space_check: bool,
    /// No progress bar and no summary.
    #[arg(long, short)]
    quiet: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// How progress is shown: a bar on a terminal (bar), a JSON line a second on standard
    /// error (json: {"done","total","rate","elapsed","item"}, for job runners), or not at all.
    #[arg(long = "progress", value_enum, default_value = "bar")]
    progress_mode: ProgressMode,
    /// For `inflate` (of a disk or a VM folder), `convert` and `import` from a URL (to raw,
    /// thick, streamOptimized, monolithicSparse, twoGbMaxExtentSparse, qcow2, VHD and VHDX
    /// outputs, or a block device with --checkpoint): continue the run that was killed or failed writing
    /// this output, from its checkpoint, instead of starting over (refused when the source
    /// changed since). Without it, what such a run left is removed.
    #[arg(long)]
    resume: bool,
    /// For a URL input: keep the checkpoint --resume reads at FILE instead of beside the
    /// output; the one place a block device's run keeps one (on a volume that outlives the
    /// run, for a Job that is restarted).
    #[arg(long, value_name = "FILE")]
    checkpoint: Option<PathBuf>,
}

impl OutputArgs {
    fn write_options(&self) -> Result<WriteOptions> {
        let zero = match self.zero {
            Zero::Write => ZeroMode::Write,
            Zero::Falloc => ZeroMode::Falloc,
            Zero::Sparse => ZeroMode::Sparse,
        };
        let mut w = WriteOptions::new().zero(zero).direct(!self.buffered);
        if let Some(t) = self.threads {
            anyhow::ensure!(t > 0, "--threads must be at least 1");
            w = w.threads(t);
        }
        Ok(w)
    }

    fn convert_options(&self, write: WriteOptions) -> ConvertOptions {
        ConvertOptions::new()
            .write_options(write)
            .replace_existing(self.force)
            .space_check(!self.no_space_check)
            .disks_at_once(self.disks_at_once.unwrap_or(0))
            .checkpoint_file(self.checkpoint.clone())
    }

    /// Checks `--resume` and `--checkpoint` for a run (from a URL when `remote`) writing
    /// `format` at `output`, and removes what interrupted runs left beside `output` unless
    /// the run resumes (a block device keeps nothing beside it).
    fn prepare_resumable(&self, remote: bool, format: &Format, output: &Path) -> Result<()> {
        self.check_resumable(remote, format)?;
        if !self.resume && !ovf_disk::output::is_block_device(output) {
            self.remove_leftovers_beside(output)?;
        }
        Ok(())
    }

    /// Checks `--resume` and `--checkpoint` for a run (from a URL when `remote`) writing
    /// `format`.
    fn check_resumable(&self, remote: bool, format: &Format) -> Result<()> {
        anyhow::ensure!(
            !self.resume || remote,
            "--resume continues a run from a URL; a local disk is written again from the start"
        );
        anyhow::ensure!(
            self.checkpoint.is_none() || remote,
            "--checkpoint is for a run from a URL, which --resume can continue"
        );
        anyhow::ensure!(
            !(self.resume || self.checkpoint.is_some()) || ovf_disk::output::resumes(format),
            "--resume and --checkpoint continue raw, thick, streamOptimized, \
             monolithicSparse, twoGbMaxExtentSparse, qcow2, VHD and VHDX outputs; a {format} \
             output is written again from the start (run without them)"
        );

        Ok(())
    }

    /// Refuses `--resume` and `--checkpoint` for `command`, which starts over.
    fn not_resumable(&self, command: &str) -> Result<()> {
        anyhow::ensure!(
            !self.resume && self.checkpoint.is_none(),
            "--resume and --checkpoint continue `inflate`, `convert` and `import` from a URL; {command} \
             starts over"
        );
        Ok(())
    }

    /// Removes what interrupted runs left in the folder of `output` (or the folder itself,
    /// for an import), and says so (even when quiet: files were removed).
    fn remove_leftovers(&self, folder: &Path) -> Result<()> {
        let folder = match folder.as_os_str().is_empty() {
            true => Path::new("."),
            false => folder,
        };
        for removed in ovf_disk::output::remove_leftovers(folder)? {
            eprintln!(
                "ovf-disk: removed {}, left by an interrupted run",
                removed.display()
            );
        }
        Ok(())
    }

    /// [`OutputArgs::remove_leftovers`] in the folder of the file `output`.
    fn remove_leftovers_beside(&self, output: &Path) -> Result<()> {
        self.remove_leftovers(output.parent().unwrap_or(Path::new(".")))
    }

    /// A progress bar of `len` bytes on standard error, hidden when quiet, printing JSON, or
    /// not on a terminal.
    fn progress(&self, len: u64) -> ProgressBar {
        match self.progress_mode {
            ProgressMode::Json => json_progress(len),
            ProgressMode::None => ProgressBar::hidden(),
            ProgressMode::Bar => progress_bar(len, self.quiet || self.json),
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum InputFormat {
    /// VMDK if the file has the sparse magic or a descriptor, raw otherwise.
    Auto,
    /// A VMDK (descriptor, sparse or stream-optimized file).
    Vmdk,
    /// A raw image.
    Raw,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ImportFormat {
    /// Thick VMDKs (monolithicFlat descriptor + flat extent).
    Vmdk,
    /// Raw images.
    Raw,
    /// qcow2 images (version 3, thin: clusters of zeros left out).
    Qcow2,
}

impl ImportFormat {
    /// The output format, `esx` choosing ESXi's thick VMDK type.
    fn format(self, esx: bool) -> vmdk::Format {
        match self {
            Self::Qcow2 => vmdk::Format::Qcow2,
            other => ovf_disk::output::thick_format(matches!(other, Self::Raw), esx),
        }
    }
}

/// `inflate`.
#[derive(clap::Args, Debug)]
struct InflateArgs {
    /// The disk to read (descriptor, sparse or stream-optimized file), `-` for a
    /// stream-optimized disk on standard input (read in one pass, e.g. from `tar xO`), or a
    /// VM's .vmx: every disk's snapshot chain consolidated into the folder OUTPUT.
    input: PathBuf,
    /// The image to write (a folder for a .vmx).
    output: PathBuf,
    /// With a .vmdk output, write ESXi's thick type (createType "vmfs", VMFS extent).
    #[arg(long)]
    esx: bool,
    /// Record what the output holds (the disk's CID, capacity, sampled blocks) beside it, for
    /// `apply` to bring it forward with snapshot deltas later (warm migration).
    #[arg(long)]
    record_state: bool,
    /// For a .vmx: each disk as the snapshot NAME (its name or uid in the folder's .vmsd) froze
    /// it, instead of its current state.
    #[arg(long, value_name = "NAME")]
    snapshot: Option<String>,
    /// Where --record-state writes the state (default: .OUT.ovf-disk-state beside OUT; give
    /// one for a block device, whose folder is /dev).
    #[arg(long, value_name = "FILE", requires = "record_state")]
    state: Option<PathBuf>,
    /// Write each disk as a thick VMDK, a raw image or a qcow2 image (default: a thick VMDK
    /// for a .vmx; for a disk, OUT's extension says: .vmdk, or raw).
    #[arg(long, value_enum)]
    format: Option<ImportFormat>,
    #[command(flatten)]
    out: OutputArgs,
    #[command(flatten)]
    input_args: InputArgs,
}

/// `convert`.
#[derive(clap::Args, Debug)]
struct ConvertArgs {
    /// The disk to read: any VMDK, or a raw image.
    input: PathBuf,
    /// The file to write; `-` writes a stream-optimized VMDK to standard output.
    output: PathBuf,
    /// raw, qcow2 (version 3), vhd (dynamic; `vpc` too), vhd-fixed, vhdx (dynamic), vhdx-fixed,
    /// monolithicSparse, monolithicFlat, twoGbMaxExtentSparse, twoGbMaxExtentFlat,
    /// streamOptimized or vmfs.
    #[arg(long = "to")]
    to: String,
    /// What the input is.
    #[arg(long, value_enum, default_value = "auto")]
    from: InputFormat,
    /// Compression level of stream-optimized output, 0 (store) to 12: libdeflate's levels, with
    /// a shallower search at 6, the default.
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=12))]
    compress_level: Option<u32>,
    /// ddb.adapterType of the output (ide, buslogic, lsilogic, legacyESX, lsisas1068, pvscsi).
    #[arg(long)]
    adapter_type: Option<String>,
    /// ddb.virtualHWVersion of the output.
    #[arg(long)]
    hw_version: Option<u32>,
    /// CID of the output, in hex (default: random), for reproducible output.
    #[arg(long, value_parser = parse_cid)]
    cid: Option<u32>,
    /// qcow2: cluster size, a power of two from 512 to 2M (default 64K).
    #[arg(long, value_parser = parse_size)]
    cluster_size: Option<u64>,
    /// qcow2: compress each cluster, as qemu-img convert -c (deflate at --compress-level).
    #[arg(long)]
    compress: bool,
    /// qcow2: the compression type of --compress (zlib, qemu-img's default, or zstd);
    /// implies --compress.
    #[arg(long, value_enum)]
    compression_type: Option<CompressionType>,
    /// qcow2: preallocation (off, metadata, falloc, full), as qemu-img's option.
    #[arg(long, value_enum)]
    preallocation: Option<PreallocationArg>,
    /// qcow2: a delta disk as a chain of qcow2 images, one per link (each parent named after
    /// its source link, beside OUT; each overlay naming its parent as backing file), instead
    /// of one image holding the whole chain.
    #[arg(long)]
    keep_chain: bool,
    #[command(flatten)]
    out: OutputArgs,
    #[command(flatten)]
    input_args: InputArgs,
}

/// qcow2's compression types.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum CompressionType {
    /// Deflate, qemu-img's default (`deflate` is taken too).
    #[value(alias = "deflate")]
    Zlib,
    /// zstd.
    Zstd,
}

/// qcow2's preallocation modes.
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum PreallocationArg {
    Off,
    Metadata,
    Falloc,
    Full,
}

impl ConvertArgs {
    fn write_options(&self) -> Result<WriteOptions> {
        let mut write = self.out.write_options()?;
        if let Some(level) = self.compress_level {
            write = write.compression_level(level);
        }
        if let Some(bytes) = self.cluster_size {
            write = write
                .cluster_size(bytes)
                .with_context(|| format!("--cluster-size {bytes}"))?;
        }
        let codec = match (self.compress, self.compression_type) {
            (_, Some(CompressionType::Zstd)) => Some(vmdk::Compression::Zstd),
            (true, _) | (_, Some(CompressionType::Zlib)) => Some(vmdk::Compression::Deflate),
            (false, None) => None,
        };
        write = write.compress(codec);
        if let Some(p) = self.preallocation {
            write = write.preallocation(match p {
                PreallocationArg::Off => vmdk::Preallocation::Off,
                PreallocationArg::Metadata => vmdk::Preallocation::Metadata,
                PreallocationArg::Falloc => vmdk::Preallocation::Falloc,
                PreallocationArg::Full => vmdk::Preallocation::Full,
            });
        }
        if let Some(a) = &self.adapter_type {
            write = write
                .adapter_type(a)
                .with_context(|| format!("--adapter-type {a}"))?;
        }
        if let Some(h) = self.hw_version {
            write = write.hw_version(h);
        }
        if let Some(c) = self.cid {
            write = write.cid(c).with_context(|| format!("--cid {c:08x}"))?;
        }
        Ok(write)
    }
}

/// `check`.
#[derive(clap::Args, Debug)]
struct CheckArgs {
    /// The disk or package to check (with --ft, also a VM's .vmx).
    file: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// Check vSphere Fault Tolerance readiness instead: each of VMware's rules, pass, fail or
    /// pass after import. Exit 0 only when the VM would be FT-ready after import.
    #[arg(long)]
    ft: bool,
    /// Which Fault Tolerance: legacy (vSphere 4 to 6.0: one vCPU, eager-zeroed thick disks)
    /// or smp (vSphere 6.0 on).
    #[arg(long, value_enum, default_value = "legacy", requires = "ft")]
    ft_version: FtVersionArg,
    /// Check a package for what a product would refuse or change on import instead: each
    /// finding with its file and element. Exit 2 when the product would refuse it.
    #[arg(long, value_enum, conflicts_with = "ft")]
    target: Option<TargetArg>,
    #[command(flatten)]
    input_args: InputArgs,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum TargetArg {
    Esxi,
    Vcenter,
    Workstation,
    Virtualbox,
    VirtV2v,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FtVersionArg {
    /// vSphere 4 to 6.0's original FT.
    Legacy,
    /// SMP-FT, vSphere 6.0 on.
    Smp,
}

/// `verify`.
#[derive(clap::Args, Debug)]
struct VerifyArgs {
    /// The package.
    package: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    package_args: PackageArgs,
}

#[derive(clap::Args, Debug)]
struct PackageArgs {
    /// Read files the envelope names outside the package folder ('..' or absolute hrefs);
    /// off by default: a package from a stranger must not make us read host files.
    #[arg(long)]
    allow_outside_paths: bool,
    #[command(flatten)]
    remote: remote::RemoteArgs,
}

impl PackageArgs {
    /// Opens the package `path` (or URL) with these options.
    fn open(&self, path: &Path) -> Result<Package> {
        let pkg = match remote::is_url(path) {
            true => self.remote.package(path)?.0,
            false => Package::open(path)?,
        };
        Ok(pkg.allow_outside_paths(self.allow_outside_paths))
    }
}

/// `import`.
#[derive(clap::Args, Debug)]
struct ImportArgs {
    /// The package (.ovf or .ova), or `-` for an OVA on standard input (read in one pass,
    /// each disk digested while it is inflated).
    package: PathBuf,
    /// The folder to write into (created if missing).
    outdir: PathBuf,
    /// The disks written: thick VMDKs (default), raw or qcow2 images.
    #[arg(long, value_enum, default_value = "vmdk")]
    format: ImportFormat,
    /// Also write each virtual system's configuration beside the disks: a libvirt domain XML
    /// or a VMware .vmx (may be given twice).
    #[arg(long, value_enum)]
    emit: Vec<EmitKind>,
    /// The highest virtualHW.version an emitted .vmx may have.
    #[arg(long)]
    hw_version: Option<u32>,
    /// Set an OVF property (KEY=VALUE, the key as `info` lists it); checked against its type
    /// and qualifiers. The values go into ovf-env.xml, the OVF environment document.
    #[arg(long = "prop", value_name = "KEY=VALUE", value_parser = parse_prop)]
    props: Vec<(String, String)>,
    /// The deployment option (`info` lists them) whose hardware the emitted configurations
    /// describe (default: the package's default).
    #[arg(long)]
    deployment_option: Option<String>,
    /// Also write ovf-env.iso: the OVF environment on an ISO 9660 image, the CD-ROM transport
    /// VMware guests and cloud-init read.
    #[arg(long)]
    ovf_env_iso: bool,
    /// Leave out the other files the envelope references (ISOs, NVRAM, text) and remove their
    /// references from the written OVF (by default they are copied beside the disks).
    #[arg(long)]
    no_extra_files: bool,
    #[command(flatten)]
    package_args: PackageArgs,
    #[command(flatten)]
    out: OutputArgs,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum EmitKind {
    /// A libvirt domain XML (NAME.xml).
    Libvirt,
    /// A VMware .vmx (NAME.vmx).
    Vmx,
}

/// `export`.
#[derive(clap::Args, Debug)]
struct ExportArgs {
    /// An .ovf, or one or more disks, then the .ova to write.
    #[arg(required = true, num_args = 2..)]
    paths: Vec<PathBuf>,
    /// Compression level of the disks, 0 (store) to 12: libdeflate's levels, with a shallower
    /// search at 6, the default.
    #[arg(long, value_parser = clap::value_parser!(u32).range(0..=12))]
    compress_level: Option<u32>,
    /// The manifest's digest: sha1 (vSphere 5.5 and older Workstation), sha256 (default) or
    /// sha512.
    #[arg(long, value_enum, default_value = "sha256")]
    manifest: ManifestAlgorithm,
    /// How manifest lines are spelled: vmware (`SHA256(f)= h`, what ESXi reads) or tag
    /// (`SHA256 (f) = h`, sha256sum --tag and VirtualBox).
    #[arg(long, value_enum, default_value = "vmware")]
    manifest_style: ManifestStyleArg,
    /// Sign the manifest with the RSA private key in this PEM file, writing NAME.cert.
    #[arg(long, value_name = "KEY.pem")]
    sign: Option<PathBuf>,
    /// The signer's certificate (PEM); default: the one in the key file.
    #[arg(long, value_name = "CERT.pem", requires = "sign")]
    cert: Option<PathBuf>,
    /// Split each disk file into chunks of this size (NAME.000000000, ...): bytes, or with a
    /// unit (512K, 100mb, 2GB, 1GiB).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    chunk_size: Option<u64>,
    /// Store disk files gzip-compressed (ovf:compression="gzip").
    #[arg(long)]
    compress: bool,
    /// For an s3:// output.
    #[command(flatten)]
    remote: remote::RemoteArgs,
    #[command(flatten)]
    out: OutputArgs,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ManifestAlgorithm {
    Sha1,
    Sha256,
    Sha512,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ManifestStyleArg {
    Vmware,
    Tag,
}

/// `fix`.
#[derive(clap::Args, Debug)]
struct FixArgs {
    /// The package to repair (.ovf or .ova); it is never modified.
    package: PathBuf,
    /// The .ova to write.
    output: PathBuf,
    /// The product the new package is for.
    #[arg(long, value_enum)]
    target: TargetArg,
    /// Remove devices the product does not have (e.g. VirtualBox's sound card for ESXi); each
    /// removal is listed.
    #[arg(long)]
    allow_drop: bool,
    #[command(flatten)]
    out: OutputArgs,
}

/// `info`.
#[derive(clap::Args, Debug)]
struct InfoArgs {
    /// The disk or package to describe.
    file: PathBuf,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    input_args: InputArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write an eager-zeroed thick image of a disk: every byte of the capacity written.
    /// OUT ending in .vmdk gives a thick VMDK (descriptor + OUT-flat.vmdk), anything else raw.
    /// A .vmx input consolidates each of the VM's disks (its snapshot chain) into OUT, a folder.
    Inflate(InflateArgs),
    /// Convert a disk (VMDK or raw) to raw or another VMDK type.
    Convert(ConvertArgs),
    /// Check every structure of a disk, like qemu-img check, or of each disk of an .ovf/.ova
    /// package after its manifest digests. Exit 0 clean, 2 problems found, 1 could not run.
    Check(CheckArgs),
    /// Verify an OVF package (.ovf or .ova) against its manifest. Exit 0 only when every digest
    /// matches and the manifest covers every file.
    Verify(VerifyArgs),
    /// Verify an OVF package, then inflate every disk to an eager-zeroed thick VMDK (or raw) in
    /// OUTDIR and write an OVF that references them. Nothing is left in OUTDIR on failure.
    Import(ImportArgs),
    /// Build an OVA from an OVF and its disks, or from disks (VMDK or raw) with an envelope made
    /// for them: disks converted to stream-optimized, a SHA256 manifest, descriptor first.
    Export(ExportArgs),
    /// Write a new package a product accepts (check --target lists what it refuses): manifest
    /// rewritten, hardware family mapped, members ordered, sizes corrected, disks rewritten as
    /// VMware-layout stream files. Exit 2 when something is left that fix cannot repair.
    Fix(FixArgs),
    /// Describe a disk (type, capacity, extents, grains, allocation, parent chain), an OVF
    /// package (systems, hardware, disks, files, manifest) or a VM's .vmx (its disks' chains
    /// and the folder's other files).
    Info(InfoArgs),
    /// Warm migration: write only what changed onto a target an earlier copy made (a raw
    /// image, a block device or a thick VMDK): the grains of snapshot deltas (DELTA... TARGET,
    /// oldest first, each read alone), or with --changed-areas the areas vSphere's
    /// changed-block tracking lists, copied from SOURCE (SOURCE TARGET). Each applies only onto
    /// the state the previous copy recorded (`inflate --record-state`); a killed run finishes
    /// when started again.
    Apply(ApplyArgs),
    /// Serve disks read-only over NBD (qemu-img, nbdcopy, nbdinfo, virt-v2v read them
    /// decoded): each disk an export named by its file name, each disk of a VM's .vmx by its
    /// device (scsi0:0), each disk of a package by its disk id; the first is also the default
    /// export. Runs until killed.
    Serve(ServeArgs),
}

/// `apply`.
#[derive(clap::Args, Debug)]
struct ApplyArgs {
    /// The deltas, oldest first, then the target; with --changed-areas, SOURCE then TARGET.
    #[arg(required = true, num_args = 2..)]
    paths: Vec<PathBuf>,
    /// A JSON file of changed areas as vSphere's QueryChangedDiskAreas returns them
    /// ({"changedArea": [{"start": N, "length": N}, ...]}), or a list of such areas.
    #[arg(long, value_name = "AREAS.json")]
    changed_areas: Option<PathBuf>,
    /// With VM.vmx OUTDIR: apply, to each disk's copy in OUTDIR, what was written since this
    /// snapshot of the folder's .vmsd (its name or uid).
    #[arg(long, value_name = "NAME", conflicts_with = "changed_areas")]
    from_snapshot: Option<String>,
    /// With --from-snapshot: up to this snapshot instead of the disks' current state.
    #[arg(long, value_name = "NAME", requires = "from_snapshot")]
    to_snapshot: Option<String>,
    /// Apply even when the target's state does not show it as the change's base.
    #[arg(long)]
    force: bool,
    /// The state file (default: .TARGET.ovf-disk-state beside the target).
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
    /// No summary.
    #[arg(long, short)]
    quiet: bool,
    #[command(flatten)]
    input_args: InputArgs,
}

/// `serve`.
#[derive(clap::Args, Debug)]
struct ServeArgs {
    /// Disks (paths or URLs), one VM's .vmx, or one package.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Where to listen: unix:PATH, tcp:HOST:PORT, or tcp:PORT (the loopback only).
    #[arg(long, value_name = "unix:PATH|tcp:[HOST:]PORT")]
    nbd: String,
    /// Clients served at once; more are disconnected.
    #[arg(long, value_name = "N", default_value_t = 64)]
    max_connections: usize,
    /// Requests of one connection answered at once (1: in order).
    #[arg(long, value_name = "N", default_value_t = 4)]
    threads_per_connection: usize,
    /// The server's certificate chain (PEM): clients must then start TLS (NBD's STARTTLS;
    /// nbds:// URIs, qemu's tls-creds).
    #[arg(long, value_name = "CERT.pem", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, value_name = "KEY.pem", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Clients must present a certificate this CA (PEM) signed.
    #[arg(long, value_name = "CA.pem", requires = "tls_cert")]
    tls_client_ca: Option<PathBuf>,
    /// Serve without TLS on a TCP address off the loopback (refused otherwise: the disks'
    /// bytes would cross the network in the clear).
    #[arg(long, conflicts_with = "tls_cert")]
    allow_plaintext: bool,
    #[command(flatten)]
    input_args: InputArgs,
}

fn parse_prop(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err("expected KEY=VALUE".into()),
    }
}

fn parse_size(s: &str) -> Result<u64, String> {
    ovf_disk::ovf::units::parse_size(s)
        .ok_or_else(|| format!("{s:?} is not a size: bytes, or a number with K, M, G or T"))
}

fn parse_cid(s: &str) -> Result<u32, String> {
    // The library says which values are reserved (WriteOptions::cid).
    u32::from_str_radix(s, 16).map_err(|_| "a CID is 1 to 8 hex digits".to_string())
}

/// Whether `path` holds a package (by content; see `ovf_disk::input_kind`).
fn is_package(path: &Path) -> Result<bool> {
    Ok(matches!(
        ovf_disk::input_kind(path)?,
        InputKind::Ovf | InputKind::Ova
    ))
}

fn progress_bar(len: u64, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} {msg} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} eta \
            {eta}",
    ) {
        bar.set_style(style);
    }
    bar
}

/// A hidden bar whose position a thread prints as a JSON line on standard error every second
/// until it is finished: the progress a job runner (a Kubernetes Job's log) parses.
fn json_progress(len: u64) -> ProgressBar {
    let bar = ProgressBar::hidden();
    bar.set_length(len);
    let seen = bar.clone();
    let reporter = std::thread::spawn(move || {
        let started = Instant::now();
        loop {
            for _ in 0..10 {
                if seen.is_finished() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            let (done, elapsed) = (seen.position(), started.elapsed().as_secs_f64());
            let line = serde_json::json!({
                "done": done,
                "total": seen.length().unwrap_or(0),
                "rate": (done as f64 / elapsed.max(1e-3)).round(),
                "elapsed": (elapsed * 1000.0).round() / 1000.0,
                "item": seen.message(),
            });
            eprintln!("{line}");
            if seen.is_finished() {
                break;
            }
        }
    });
    if let Ok(mut all) = JSON_PROGRESS.lock() {
        all.push((bar.clone(), reporter));
    }
    bar
}

/// The JSON progress reporters of this run: ended (their last line printed) before the
/// process exits.
static JSON_PROGRESS: std::sync::Mutex<Vec<(ProgressBar, std::thread::JoinHandle<()>)>> =
    std::sync::Mutex::new(Vec::new());

/// Ends every JSON progress reporter: a bar not finished (the command failed) is abandoned.
fn end_json_progress() {
    let all = JSON_PROGRESS
        .lock()
        .map(|mut v| std::mem::take(&mut *v))
        .unwrap_or_default();
    for (bar, reporter) in all {
        if !bar.is_finished() {
            bar.abandon();
        }
        let _ = reporter.join();
    }
}

/// Writes `value` as pretty JSON and a newline.
fn print_json(out: &mut dyn Write, value: &impl Serialize) -> Result<()> {
    serde_json::to_writer_pretty(&mut *out, value)?;
    writeln!(out)?;
    Ok(())
}

/// Prints the result of an inflate or a convert (`verb`): JSON on standard output, or a line
/// on standard error.
fn print_write(
    out: &mut dyn Write,
    args: &OutputArgs,
    input: &Path,
    verb: &str,
    report: &WriteReport,
    started: Instant,
    fetched: Option<vmdk::remote::FetchStats>,
) -> Result<()> {
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        let mut summary = ovf_disk::output::WriteSummary::new(input, report, seconds);
        summary.fetched = fetched;
        return print_json(out, &summary);
    }
    if !args.quiet {
        if let Some(f) = &fetched {
            let _ = writeln!(std::io::stderr(), "{}", remote::summary(f));
        }
        let _ = writeln!(
            std::io::stderr(),
            "{}",
            text::write_summary(verb, input, report, seconds)
        );
    }
    Ok(())
}

/// The JSON of `inflate VM.vmx`: the report and the time.
#[derive(Serialize)]
struct VmInflateJson<'a> {
    #[serde(flatten)]
    report: &'a ovf_disk::vm::InflateReport,
    seconds: f64,
}

/// `inflate VM.vmx OUTDIR`: every disk's chain consolidated.
fn inflate_vm(out: &mut dyn Write, a: &InflateArgs) -> Result<ExitCode> {
    let (outdir, args) = (a.output.as_path(), &a.out);
    let format = a.format.unwrap_or(ImportFormat::Vmdk).format(a.esx);
    let (mut options, vmx, source) = a.input_args.vm_source(&a.input)?;
    if let Some(name) = &a.snapshot {
        options = options.snapshot(name);
    }
    let vmx = vmx.as_path();
    let mut write = args.write_options()?;
    if source.is_some() && args.threads.is_none() {
        write = write.threads(cores().max(a.input_args.remote.connections()));
    }
    anyhow::ensure!(
        args.checkpoint.is_none(),
        "--checkpoint names one disk's checkpoint; a VM folder's disks keep theirs beside them"
    );
    args.check_resumable(source.is_some(), &format)?;
    let mut convert = args.convert_options(write);
    if let Some(files) = &source {
        // Every descriptor, extent and parent opened first, so the source's identity (each
        // object's length and validator) covers the whole VM.
        ovf_disk::vm::open_disks(vmx, &options)?;
        convert = convert.resumable(remote::identity(files), args.resume);
    }
    let options = options.output_format(format)?.convert_options(convert);
    if outdir.is_dir() && !args.resume {
        args.remove_leftovers(outdir)?;
    }
    let started = Instant::now();
    let bar = args.progress(0);
    let progress = |device: &str, n| {
        bar.set_message(device.to_string());
        bar.inc(n)
    };
    let report = ovf_disk::vm::inflate_vm(vmx, outdir, &options, &progress)
        .with_context(|| format!("inflating the disks of {}", vmx.display()))?;
    if a.record_state {
        // Each copy's state, for `apply VM.vmx OUTDIR --from-snapshot` later.
        for (device, disk) in ovf_disk::vm::open_disks(vmx, &options)? {
            if let Some(d) = report.disks.iter().find(|d| d.device == device) {
                let first = d.files.first().context("an inflated disk without files")?;
                ovf_disk::apply::record(first, &disk, &ovf_disk::apply::Options::new())?;
            }
        }
    }
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        print_json(
            out,
            &VmInflateJson {
                report: &report,
                seconds,
            },
        )?;
    } else if !args.quiet {
        let _ = text::vm_inflate(&mut std::io::stderr(), &report, seconds);
    }
    Ok(ExitCode::SUCCESS)
}

fn inflate(out: &mut dyn Write, a: &InflateArgs) -> Result<ExitCode> {
    let vmx = match remote::is_url(&a.input) {
        true => remote::url_kind(&a.input) == remote::UrlKind::Vmx,
        false => a.input.as_os_str() != "-" && ovf_disk::input_kind(&a.input)? == InputKind::Vmx,
    };
    if vmx {
        return inflate_vm(out, a);
    }
    remote::refuse_package_url(&a.input)?;
    let (input, output, args) = (a.input.as_path(), a.output.as_path(), &a.out);
    let format = match a.format {
        Some(f) => f.format(a.esx),
        // OUT's extension says: .vmdk, or raw.
        None => ovf_disk::output::thick_format_for(output, a.esx),
    };
    let opened = a.input_args.open(input)?;
    let mut write = args.write_options()?;
    if opened.remote.is_some() && args.threads.is_none() {
        // Each worker has one request in flight: as many workers as connections.
        write = write.threads(cores().max(a.input_args.remote.connections()));
    }
    let options = args.convert_options(write);
    args.prepare_resumable(opened.remote.is_some(), &format, output)?;
    let started = Instant::now();
    let shown = remote::shown(&opened);
    anyhow::ensure!(
        !a.record_state || input.as_os_str() != "-",
        "--record-state needs the disk itself, not a stream on standard input"
    );
    let report = if input.as_os_str() == "-" || !remote::serves_ranges(&opened)? {
        // A stream-optimized disk read in one forward pass: standard input, or a server
        // without byte ranges.
        let bar = args.progress(0);
        let (reader, name): (Box<dyn std::io::Read>, &str) = match &opened.remote {
            Some(r) => (r.stream(&opened.name)?, shown.as_str()),
            None => (Box::new(std::io::stdin().lock()), "<stdin>"),
        };
        let r = StreamReader::new(std::io::BufReader::with_capacity(1 << 20, reader), name)
            .map_err(ovf_disk::Error::from)
            .and_then(|s| {
                bar.set_length(s.capacity());
                ovf_disk::output::convert_stream(s, output, &format, &options, &|n| bar.inc(n))
            })
            .with_context(|| match &opened.remote {
                Some(_) => format!(
                    "inflating {name} to {}: the server does not serve byte ranges, so the disk \
                     is read in one pass, as only a stream-optimized disk can be",
                    output.display()
                ),
                None => format!("inflating {name} to {}", output.display()),
            })?;
        bar.finish_and_clear();
        r
    } else {
        let disk = opened.options.open(&opened.name)?;
        let options = match &opened.remote {
            Some(r) => options.resumable(remote::identity(r), args.resume),
            None => options,
        };
        let bar = args.progress(disk.capacity());
        let r = ovf_disk::output::convert(&disk, output, &format, &options, &|n| bar.inc(n))
            .with_context(|| format!("inflating {shown} to {}", output.display()))?;
        bar.finish_and_clear();
        if a.record_state {
            let mut o = ovf_disk::apply::Options::new();
            if let Some(s) = &a.state {
                o = o.state_file(s);
            }
            ovf_disk::apply::record(output, &disk, &o)?;
        }
        r
    };
    let fetched = opened.remote.as_ref().map(|r| r.stats());
    print_write(
        out,
        args,
        Path::new(&shown),
        "inflated",
        &report,
        started,
        fetched,
    )?;
    Ok(ExitCode::SUCCESS)
}

/// The machine's cores.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn convert(out: &mut dyn Write, a: &ConvertArgs) -> Result<ExitCode> {
    let (input, output, args, to) = (a.input.as_path(), a.output.as_path(), &a.out, &a.to);
    let mut write = a.write_options()?;
    let format: Format = to.parse().with_context(|| format!("--to {to}"))?;
    let qcow2_only = a.cluster_size.is_some()
        || a.compress
        || a.compression_type.is_some()
        || a.preallocation.is_some()
        || a.keep_chain;
    if qcow2_only && format != Format::Qcow2 {
        anyhow::bail!(
            "--cluster-size, --compress, --preallocation and --keep-chain apply to --to qcow2 only"
        );
    }
    anyhow::ensure!(
        !(args.resume || args.checkpoint.is_some()) || a.preallocation.is_none(),
        "--resume and --checkpoint continue qcow2 outputs that are not preallocated; a \
         preallocated one is written again from the start (run without them)"
    );
    remote::refuse_package_url(input)?;
    let opened = a.input_args.open(input)?;
    if opened.remote.is_some() && args.threads.is_none() {
        write = write.threads(cores().max(a.input_args.remote.connections()));
    }
    let (open, name) = (&opened.options, &opened.name);
    let disk = match a.from {
        InputFormat::Auto => open.open_vmdk_or_raw(name)?,
        InputFormat::Vmdk => open.open(name)?,
        InputFormat::Raw => open.open_raw(name)?,
    };
    let input = name.as_path();
    let to_stdout = output.as_os_str() == "-";
    let bar = match to_stdout {
        true => progress_bar(disk.capacity(), args.quiet),
        false => args.progress(disk.capacity()),
    };
    let started = Instant::now();
    let report = if to_stdout {
        anyhow::ensure!(
            format == Format::Vmdk(CreateType::StreamOptimized),
            "only --to streamOptimized can be written to standard output"
        );
        anyhow::ensure!(
            !std::io::stdout().is_terminal(),
            "refusing to write a disk image to a terminal"
        );
        let stdout = std::io::stdout();
        let mut w = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
        let r = vmdk::write_stream_optimized(&disk, &mut w, &write, &|n| bar.inc(n))?;
        w.flush().context("writing standard output")?;
        r
    } else if remote::is_url(output) {
        anyhow::ensure!(
            format == Format::Vmdk(CreateType::StreamOptimized),
            "only --to streamOptimized is written to an s3:// URL (in one pass)"
        );
        let (files, name) = a.input_args.remote.source(output)?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, files.upload(&name)?);
        let mut r = vmdk::write_stream_optimized(&disk, &mut w, &write, &|n| bar.inc(n))
            .with_context(|| format!("converting {} to {}", input.display(), name.display()))?;
        let upload = w
            .into_inner()
            .map_err(|e| anyhow::anyhow!("writing {}: {}", name.display(), e.error()))?;
        upload.finish()?;
        r.files = vec![name];
        r
    } else {
        let mut options = args.convert_options(write).keep_chain(a.keep_chain);
        args.prepare_resumable(opened.remote.is_some(), &format, output)?;
        if let Some(r) = &opened.remote {
            options = options.resumable(remote::identity(r), args.resume);
        }
        ovf_disk::output::convert(&disk, output, &format, &options, &|n| bar.inc(n))
            .with_context(|| format!("converting {} to {}", input.display(), output.display()))?
    };
    bar.finish_and_clear();
    // With the disk on standard output, the report goes to standard error only.
    let json = args.json && !to_stdout;
    let shown = OutputArgs {
        json,
        quiet: args.quiet,
        checkpoint: None,
        ..*args
    };
    let fetched = opened.remote.as_ref().map(|r| r.stats());
    print_write(out, &shown, input, "converted", &report, started, fetched)?;
    Ok(ExitCode::SUCCESS)
}

/// 0 when clean, 2 when problems were found.
fn check_exit(clean: bool) -> ExitCode {
    if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}

/// The JSON of `check` on a disk: the file, then the report.
#[derive(Serialize)]
struct DiskCheckJson<'a> {
    file: &'a Path,
    #[serde(flatten)]
    report: &'a vmdk::CheckReport,
}

/// `check --ft`: Fault Tolerance readiness of a package, a VM or a disk.
fn check_ft(out: &mut dyn Write, a: &CheckArgs) -> Result<ExitCode> {
    let (file, input_args) = (a.file.as_path(), &a.input_args);
    let version = match a.ft_version {
        FtVersionArg::Legacy => ovf_disk::rules::FtVersion::Legacy,
        FtVersionArg::Smp => ovf_disk::rules::FtVersion::Smp,
    };
    let (options, _) = input_args.vm_options_for(file)?;
    let report = match input_args.input(file)? {
        Input::Vm(vm) => ovf_disk::rules::ft_check_vm(&vm.path, &options, version)?,
        Input::Package(pkg) => ovf_disk::rules::ft_check_package(&pkg, version)?,
        Input::Disk(disk) => {
            let shown = disk.path().to_path_buf();
            ovf_disk::rules::ft_check_disk(&shown, *disk, version)
        }
        other => anyhow::bail!(
            "{}: {:?} inputs have no FT check",
            file.display(),
            other.kind()
        ),
    };
    if a.json {
        print_json(out, &report)?;
    } else {
        text::ft(out, &report)?;
    }
    Ok(check_exit(report.ready))
}

fn target_of(t: TargetArg) -> ovf_disk::rules::Target {
    match t {
        TargetArg::Esxi => ovf_disk::rules::Target::Esxi,
        TargetArg::Vcenter => ovf_disk::rules::Target::Vcenter,
        TargetArg::Workstation => ovf_disk::rules::Target::Workstation,
        TargetArg::Virtualbox => ovf_disk::rules::Target::Virtualbox,
        TargetArg::VirtV2v => ovf_disk::rules::Target::VirtV2v,
    }
}

/// `fix PKG OUT --target T`.
fn fix(out: &mut dyn Write, a: &FixArgs) -> Result<ExitCode> {
    let args = &a.out;
    args.not_resumable("fix")?;
    anyhow::ensure!(
        a.output
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("ova")),
        "the output, {}, must end in .ova",
        a.output.display()
    );
    let options = ovf_disk::export::FixOptions::new()
        .convert_options(args.convert_options(args.write_options()?))
        .allow_drop(a.allow_drop);
    args.remove_leftovers_beside(&a.output)?;
    let bar = args.progress(0);
    let report =
        ovf_disk::export::fix(&a.package, &a.output, target_of(a.target), &options, &|n| {
            bar.inc(n)
        })
        .with_context(|| format!("fixing {}", a.package.display()))?;
    bar.finish_and_clear();
    if args.json {
        print_json(out, &report)?;
    } else if !args.quiet {
        for c in &report.changes {
            writeln!(out, "changed: {c}")?;
        }
        text::lint(out, &report.after)?;
    }
    Ok(check_exit(!report.after.refused))
}

/// `check --target`: what a product would refuse or change in a package.
fn check_target(out: &mut dyn Write, a: &CheckArgs, target: TargetArg) -> Result<ExitCode> {
    let target = target_of(target);
    let pkg = a
        .input_args
        .package(&a.file)?
        .context("--target checks a package (.ovf or .ova)")?;
    let report = ovf_disk::rules::lint(&pkg, target)?;
    if a.json {
        print_json(out, &report)?;
    } else {
        text::lint(out, &report)?;
    }
    Ok(check_exit(!report.refused))
}

fn check(out: &mut dyn Write, a: &CheckArgs) -> Result<ExitCode> {
    if a.ft {
        return check_ft(out, a);
    }
    if let Some(t) = a.target {
        return check_target(out, a, t);
    }
    let (json, input_args) = (a.json, &a.input_args);
    let opened = input_args.open(&a.file)?;
    let file = opened.name.as_path();
    let package = input_args
        .package(&a.file)
        .with_context(|| format!("cannot check {}", file.display()))?;
    if let Some(pkg) = package {
        let threads = cores();
        let c = ovf_disk::package::check_package(&pkg, &input_args.options(), threads, &|_| {})
            .with_context(|| format!("cannot check {}", file.display()))?;
        if json {
            print_json(out, &c)?;
        } else {
            text::package_check(out, &c)?;
        }
        return Ok(check_exit(c.is_clean()));
    }
    remote::refuse_package_url(&a.file)?;
    let report = vmdk::check(file, &opened.options)
        .with_context(|| format!("cannot check {}", file.display()))?;
    if json {
        print_json(
            out,
            &DiskCheckJson {
                file,
                report: &report,
            },
        )?;
    } else {
        text::disk_check(out, &report)?;
    }
    Ok(check_exit(report.is_clean()))
}

fn verify(out: &mut dyn Write, a: &VerifyArgs) -> Result<ExitCode> {
    let (package, json) = (a.package.as_path(), a.json);
    let pkg = a.package_args.open(package)?;
    let report = pkg.verify(&|_| {})?;
    if json {
        print_json(out, &report)?;
    } else {
        text::verify(out, &report)?;
        writeln!(
            out,
            "{}",
            if report.is_ok() {
                "verified"
            } else {
                "NOT verified"
            }
        )?;
    }
    Ok(if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The JSON of `import`: the package, the report, whether a manifest was checked, the time.
#[derive(Serialize)]
struct ImportJson<'a> {
    package: &'a Path,
    descriptor: &'a Path,
    disks: &'a [ovf_disk::import::ImportedDisk],
    verified: bool,
    verify: &'a ovf_disk::package::VerifyReport,
    configurations: &'a [ovf_disk::import::EmittedConfig],
    environment: &'a [PathBuf],
    carried: &'a [PathBuf],
    manifest: Option<&'a Path>,
    seconds: f64,
    /// What a URL input cost (absent for local inputs).
    #[serde(skip_serializing_if = "Option::is_none")]
    fetched: Option<vmdk::remote::FetchStats>,
}

/// The OVA `import` reads in one pass: from its URL (with the source, for what it fetched), or
/// standard input.
/// `import` of an OVA read forward in one pass, each disk digested while it is inflated:
/// standard input, or a URL (fetched ahead over every connection when the server has
/// ranges); such a run starts over (`--resume` is refused). The progress bar, the report and
/// the remote source.
fn import_one_pass(
    a: &ImportArgs,
    options: &import::Options,
) -> Result<(
    ProgressBar,
    import::Report,
    Option<vmdk::remote::RemoteFiles>,
)> {
    let (package, outdir, args) = (a.package.as_path(), a.outdir.as_path(), &a.out);
    anyhow::ensure!(
        !args.resume,
        "cannot resume: this OVA is read in one pass (the server serves no byte ranges, or \
         its disks are compressed), which starts over; run again without --resume"
    );
    let bar = args.progress(0);
    let progress = |id: &str, n| {
        bar.set_message(format!("disk {id}"));
        bar.inc(n)
    };
    let (reader, name, files) = ova_reader(a, package, remote::is_url(package))?;
    let reader = std::io::BufReader::with_capacity(1 << 20, reader);
    let r = ovf_disk::import::import_stream(reader, &name, outdir, options, &progress)
        .with_context(|| format!("importing the OVA {name}"))?;
    Ok((bar, r, files))
}

/// The package at the URL `package` opened in place, with its remote source: `None` for an
/// OVA to read forward in one pass instead (no byte ranges, or compressed or chunked disks).
fn remote_package(
    a: &ImportArgs,
    package: &Path,
) -> Result<Option<(ovf_disk::package::Package, vmdk::remote::RemoteFiles)>> {
    if remote::url_kind(package) != remote::UrlKind::Ova {
        return Ok(Some(a.package_args.remote.package(package)?));
    }
    let (files, name) = a.package_args.remote.source(package)?;
    if !files.probe(&name)?.0 {
        return Ok(None);
    }
    let pkg = ovf_disk::package::Package::open_remote(files.clone(), &name)?;
    let packed = pkg
        .envelope()
        .files
        .iter()
        .any(|f| f.is_compressed() || f.chunk_size.is_some());
    Ok((!packed).then_some((pkg, files)))
}

fn ova_reader(
    a: &ImportArgs,
    package: &Path,
    url: bool,
) -> Result<(
    Box<dyn std::io::Read>,
    String,
    Option<vmdk::remote::RemoteFiles>,
)> {
    if !url {
        return Ok((Box::new(std::io::stdin().lock()), "<stdin>".into(), None));
    }
    let (files, name) = a.package_args.remote.source(package)?;
    let reader = files.reader(&name)?;
    Ok((reader, name.display().to_string(), Some(files)))
}

/// The library's options for `import` as its arguments give them, resumable for a package
/// read from `source` (a remote source's identity).
fn import_options(a: &ImportArgs, source: Option<Vec<String>>) -> Result<import::Options> {
    let args = &a.out;
    let mut convert = args.convert_options(args.write_options()?);
    if let Some(source) = source {
        convert = convert.resumable(source, args.resume);
    }
    let mut options = import::Options::new()
        .output_format(a.format.format(false))?
        .convert_options(convert);
    for e in &a.emit {
        options = options.emit(match e {
            EmitKind::Libvirt => ovf_disk::emit::Emit::Libvirt,
            EmitKind::Vmx => ovf_disk::emit::Emit::Vmx,
        });
    }
    if let Some(v) = a.hw_version {
        options = options.hw_version(v);
    }
    for (k, v) in &a.props {
        options = options.property(k, v);
    }
    if let Some(d) = &a.deployment_option {
        options = options.deployment_option(d);
    }
    Ok(options
        .environment_iso(a.ovf_env_iso)
        .extra_files(!a.no_extra_files))
}

fn import(out: &mut dyn Write, a: &ImportArgs) -> Result<ExitCode> {
    let (package, outdir, args) = (a.package.as_path(), a.outdir.as_path(), &a.out);
    let url = remote::is_url(package);
    anyhow::ensure!(
        args.checkpoint.is_none(),
        "--checkpoint names one disk's checkpoint; an import's disks keep theirs beside them"
    );
    anyhow::ensure!(
        !args.resume || url,
        "--resume continues an import from a URL; a local package is imported again from the start"
    );
    let started = Instant::now();
    // A package at a URL is opened in place (an OVA too, when the server serves ranges), its
    // disks read once and resumable; an OVA without ranges, or whose disks are compressed, is
    // read forward in one pass.
    let mut fetched = None;
    let opened = match url {
        true => remote_package(a, package)?,
        false => None,
    };
    // Every run of a package opened at a URL keeps checkpoints `--resume` continues from.
    let options = import_options(a, opened.as_ref().map(|(_, f)| remote::identity(f)))?;
    if outdir.is_dir() && !args.resume {
        args.remove_leftovers(outdir)?;
    }
    let (bar, report) = if package.as_os_str() == "-" || (url && opened.is_none()) {
        let (bar, report, files) = import_one_pass(a, &options)?;
        fetched = files;
        (bar, report)
    } else {
        let pkg = match opened {
            Some((pkg, files)) => {
                fetched = Some(files);
                pkg.allow_outside_paths(a.package_args.allow_outside_paths)
            }
            None => a.package_args.open(package)?,
        };
        let total = pkg
            .envelope()
            .disks
            .iter()
            .filter_map(|d| d.capacity_bytes)
            .sum();
        let bar = args.progress(total);
        let progress = |id: &str, n| {
            bar.set_message(format!("disk {id}"));
            bar.inc(n)
        };
        let r = ovf_disk::import::import(&pkg, outdir, &options, &progress)
            .with_context(|| format!("importing {}", pkg.path().display()))?;
        (bar, r)
    };
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    if let (Some(f), false) = (&fetched, args.quiet || args.json) {
        eprintln!("{}", remote::summary(&f.stats()));
    }
    if args.json {
        print_json(
            out,
            &ImportJson {
                package: &remote::redacted(package),
                descriptor: &report.descriptor,
                disks: &report.disks,
                verified: report.verify.manifest.is_some(),
                verify: &report.verify,
                configurations: &report.configurations,
                environment: &report.environment,
                carried: &report.carried,
                manifest: report.manifest.as_deref(),
                seconds,
                fetched: fetched.as_ref().map(|f| f.stats()),
            },
        )?;
    } else if !args.quiet {
        let _ = text::import(
            &mut std::io::stderr(),
            &remote::redacted(package),
            &report,
            seconds,
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// The JSON of `export`: the report and the time.
#[derive(Serialize)]
struct ExportJson<'a> {
    #[serde(flatten)]
    report: &'a ovf_disk::export::Report,
    seconds: f64,
}

fn export(out: &mut dyn Write, a: &ExportArgs) -> Result<ExitCode> {
    let args = &a.out;
    args.not_resumable("export")?;
    let mut write = args.write_options()?;
    if let Some(level) = a.compress_level {
        write = write.compression_level(level);
    }
    let (target, inputs) = a
        .paths
        .split_last()
        .context("export needs an output .ova")?;
    anyhow::ensure!(
        target
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("ova")),
        "the last path, {}, must end in .ova",
        target.display()
    );
    let mut options = ovf_disk::export::Options::new()
        .convert_options(args.convert_options(write))
        .manifest(match a.manifest {
            ManifestAlgorithm::Sha1 => ovf_disk::ovf::manifest::Algorithm::Sha1,
            ManifestAlgorithm::Sha256 => ovf_disk::ovf::manifest::Algorithm::Sha256,
            ManifestAlgorithm::Sha512 => ovf_disk::ovf::manifest::Algorithm::Sha512,
        })
        .manifest_style(match a.manifest_style {
            ManifestStyleArg::Vmware => ovf_disk::export::ManifestStyle::Vmware,
            ManifestStyleArg::Tag => ovf_disk::export::ManifestStyle::Tag,
        })
        .compress(a.compress);
    if let Some(key) = &a.sign {
        options = options.sign(key, a.cert.clone());
    }
    if let Some(c) = a.chunk_size {
        options = options.chunk_size(c)?;
    }
    let bar = args.progress(0);
    let started = Instant::now();
    let report = if remote::is_url(target) {
        // An OVA uploaded in one pass; its disks staged in the temporary folder first.
        let (files, name) = a.remote.source(target)?;
        let staging = std::env::temp_dir();
        let mut w = std::io::BufWriter::with_capacity(1 << 20, files.upload(&name)?);
        let report =
            ovf_disk::export::export_to_writer(inputs, &name, &staging, &mut w, &options, &|n| {
                bar.inc(n)
            })
            .with_context(|| format!("exporting to {}", name.display()))?;
        let upload = w
            .into_inner()
            .map_err(|e| anyhow::anyhow!("writing {}: {}", name.display(), e.error()))?;
        upload.finish()?;
        report
    } else {
        args.remove_leftovers_beside(target)?;
        ovf_disk::export::export(inputs, target, &options, &|n| bar.inc(n))
            .with_context(|| format!("exporting to {}", target.display()))?
    };
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        print_json(
            out,
            &ExportJson {
                report: &report,
                seconds,
            },
        )?;
    } else if !args.quiet {
        let _ = text::export(&mut std::io::stderr(), &report, seconds);
    }
    Ok(ExitCode::SUCCESS)
}

fn info(out: &mut dyn Write, a: &InfoArgs) -> Result<ExitCode> {
    let (file, json) = (a.file.as_path(), a.json);
    let (options, _) = a.input_args.vm_options_for(file)?;
    match a.input_args.input(file)? {
        Input::Vm(vm) => {
            let info = ovf_disk::vm::vm_info(&vm.path, &options)?;
            if json {
                print_json(out, &info)?;
            } else {
                text::vm_info(out, &info)?;
            }
        }
        Input::Package(pkg) => {
            let info = pkg.info();
            if json {
                print_json(out, &info)?;
            } else {
                text::package_info(out, &info)?;
            }
        }
        Input::Disk(disk) => {
            let info = disk.info()?;
            if json {
                print_json(out, &info)?;
            } else {
                text::disk_info(out, &info)?;
            }
        }
        other => anyhow::bail!("{}: nothing to show for {:?}", file.display(), other.kind()),
    }
    Ok(ExitCode::SUCCESS)
}

/// The exports of `serve`: (name, disk) for each input.
fn exports(a: &ServeArgs) -> Result<Vec<(String, vmdk::Disk)>> {
    let mut exports = Vec::new();
    for input in &a.inputs {
        let named = |name: &str| format!("{}: {name}", input.display());
        match a.input_args.input(input)? {
            Input::Disk(disk) => {
                let name = disk
                    .path()
                    .file_name()
                    .map_or_else(|| "disk".into(), |n| n.to_string_lossy().into_owned());
                exports.push((name, *disk));
            }
            Input::Vm(vm) => {
                let (options, _) = a.input_args.vm_options_for(input)?;
                for (device, disk) in ovf_disk::vm::open_disks(&vm.path, &options)? {
                    exports.push((device, disk));
                }
            }
            Input::Package(pkg) => {
                let env = pkg.envelope();
                for d in &env.disks {
                    let Some(file) = env.file_of(d) else { continue };
                    let disk = pkg
                        .open_disk(&file.href)
                        .with_context(|| named(&d.disk_id))?;
                    exports.push((d.disk_id.clone(), disk));
                }
            }
            other => anyhow::bail!(
                "{}: nothing to serve in a {:?}",
                input.display(),
                other.kind()
            ),
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (name, _) in &exports {
        anyhow::ensure!(
            seen.insert(name.clone()),
            "two exports would be named {name:?}"
        );
    }
    Ok(exports)
}

/// `apply`.
fn apply(out: &mut dyn Write, a: &ApplyArgs) -> Result<ExitCode> {
    let (target, sources) = a.paths.split_last().context("apply needs a target")?;
    let mut options = ovf_disk::apply::Options::new().force(a.force);
    if let Some(s) = &a.state {
        options = options.state_file(s);
    }
    let started = Instant::now();
    if let Some(from) = &a.from_snapshot {
        let [vmx] = sources else {
            anyhow::bail!("with --from-snapshot: VM.vmx, then the folder of its disks' copies");
        };
        let (vm, vmx) = a.input_args.vm_options_for(vmx)?;
        let reports = ovf_disk::apply::apply_vm(
            &vmx,
            target,
            from,
            a.to_snapshot.as_deref(),
            &vm,
            &options,
            &|_| {},
        )?;
        for r in &reports {
            print_applied(out, a, r, started)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let report = match &a.changed_areas {
        Some(json) => {
            let [source] = sources else {
                anyhow::bail!("with --changed-areas: one SOURCE, then TARGET");
            };
            let opened = a.input_args.open(source)?;
            let disk = opened.options.open_vmdk_or_raw(&opened.name)?;
            let areas = ovf_disk::apply::ChangedAreas::read(json, disk.capacity())?;
            ovf_disk::apply::apply_areas(&disk, &areas, target, &options, &|_| {})?
        }
        None => {
            // Each delta at a URL reads through its own source; local ones through the host.
            let mut report: Option<ovf_disk::apply::Report> = None;
            for delta in sources {
                let opened = a.input_args.open(delta)?;
                let r = ovf_disk::apply::apply(
                    std::slice::from_ref(&opened.name),
                    target,
                    &opened.options,
                    &options,
                    &|_| {},
                )?;
                report = Some(match report {
                    None => r,
                    Some(mut all) => {
                        all.applied.extend(r.applied);
                        all.state = r.state;
                        all
                    }
                });
            }
            report.context("apply needs a delta")?
        }
    };
    print_applied(out, a, &report, started)?;
    Ok(ExitCode::SUCCESS)
}

/// Prints what `apply` did to one target: JSON, or a line a change on standard error.
fn print_applied(
    out: &mut dyn Write,
    a: &ApplyArgs,
    report: &ovf_disk::apply::Report,
    started: Instant,
) -> Result<()> {
    let seconds = started.elapsed().as_secs_f64();
    if a.json {
        #[derive(Serialize)]
        struct ApplyJson<'a> {
            #[serde(flatten)]
            report: &'a ovf_disk::apply::Report,
            seconds: f64,
        }
        return print_json(out, &ApplyJson { report, seconds });
    }
    if !a.quiet {
        for d in &report.applied {
            eprintln!(
                "applied {} (CID {:08x}) to {}: {} data, {} zeros in {} ranges{}",
                d.from.display(),
                d.cid,
                report.target.display(),
                text::human(d.data_bytes),
                text::human(d.zero_bytes),
                d.ranges,
                match d.resumed_from {
                    0 => String::new(),
                    at => format!(", resumed at {}", text::human(at)),
                }
            );
        }
    }
    Ok(())
}

/// `serve`: until killed.
fn serve(a: &ServeArgs) -> Result<ExitCode> {
    let listen: ovf_disk::nbd::Listen = a.nbd.parse()?;
    let mut server = ovf_disk::nbd::Server::new(exports(a)?)
        .max_connections(a.max_connections)
        .threads_per_connection(a.threads_per_connection)
        .allow_plaintext(a.allow_plaintext);
    if let (Some(cert), Some(key)) = (&a.tls_cert, &a.tls_key) {
        let tls = ovf_disk::nbd::Tls::from_pem_files(cert, key, a.tls_client_ca.as_deref())?;
        server = server.tls(tls);
    }
    eprintln!(
        "ovf-disk: serving {} over NBD{} on {}",
        server.names().join(", "),
        match (&a.tls_cert, &a.tls_client_ca) {
            (None, _) => "",
            (Some(_), None) => " with TLS",
            (Some(_), Some(_)) => " with TLS and client certificates",
        },
        a.nbd
    );
    server.run(&listen, &std::sync::atomic::AtomicBool::new(false))?;
    Ok(ExitCode::SUCCESS)
}

fn run(cli: Cli, out: &mut dyn Write) -> Result<ExitCode> {
    match &cli.command {
        Command::Inflate(a) => inflate(out, a),
        Command::Convert(a) => convert(out, a),
        Command::Check(a) => check(out, a),
        Command::Verify(a) => verify(out, a),
        Command::Import(a) => import(out, a),
        Command::Export(a) => export(out, a),
        Command::Fix(a) => fix(out, a),
        Command::Info(a) => info(out, a),
        Command::Serve(a) => serve(a),
        Command::Apply(a) => apply(out, a),
    }
}

/// Whether the error is a write to a closed standard output.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .is_some_and(|j| j.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe))
    })
}

/// The error for people: its context and the library's message, with the flag that changes
/// the outcome where there is one.
fn message(e: &anyhow::Error) -> String {
    // The library's errors carry their causes in their text and chain to them too: a cause
    // already shown is not repeated.
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    for cause in e.chain() {
        let hint = match cause.downcast_ref::<ovf_disk::Error>() {
            Some(ovf_disk::Error::Exists(_)) => Some(" (use --force to replace it)"),
            Some(ovf_disk::Error::NoSpace { .. }) => Some(" (--no-space-check writes anyway)"),
            Some(ovf_disk::Error::Disk { error, .. }) => vmdk_hint(error),
            _ => cause.downcast_ref::<vmdk::Error>().and_then(vmdk_hint),
        };
        if let Some(hint) = hint {
            text.push_str(hint);
            break;
        }
    }
    remote::scrub(&text)
}

fn vmdk_hint(e: &vmdk::Error) -> Option<&'static str> {
    match e.kind() {
        vmdk::ErrorKind::PathOutside { .. } => Some("; --allow-outside-paths follows it"),
        vmdk::ErrorKind::ParentCidMismatch { .. } => Some("; --ignore-parent-cid accepts it"),
        _ => None,
    }
}

/// Handles SIGINT, SIGTERM and SIGHUP on a thread of their own: the temporary outputs (and an
/// import's new folder) are removed before the process exits with 128 + the signal's number.
fn handle_signals() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        return;
    };
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            let removed = ovf_disk::output::interrupt();
            eprintln!(
                "\novf-disk: interrupted by signal {signal}; removed {} temporary file(s) and folder(s)",
                removed.len()
            );
            std::process::exit(128 + signal);
        }
    });
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    handle_signals();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = run(cli, &mut out).and_then(|code| {
        out.flush()?;
        Ok(code)
    });
    end_json_progress();
    match result {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let _ = writeln!(std::io::stderr(), "ovf-disk: error: {}", message(&e));
            ExitCode::FAILURE
        }
    }
}
