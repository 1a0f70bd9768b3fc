//! `ovf-disk`: read, check and inflate VMware virtual disks.
//!
//! A thin shell over the `vmdk` and `ovf-disk` libraries: it parses arguments, draws progress and
//! prints results (text, or JSON with `--json`). Exit status: 0 success, 1 failure.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Map, Value};

use std::io::Write;

use ovf_disk::convert::{
    convert, convert_to_stream, open_input, ConvertOptions, OutputType, Report,
};
use ovf_disk::inflate::{inflate, inflate_stream, InflateOptions, OutputFormat};
use ovf_disk::package::export::export;
use ovf_disk::package::manifest::Outcome;
use ovf_disk::package::ops::{import, import_stream, ImportReport, Package, VerifyReport};
use vmdk::copy::{CopyOptions, ZeroMode};
use vmdk::ddb::ADAPTER_TYPES;
use vmdk::descriptor::CreateType;
use vmdk::disk::ExtentData;
use vmdk::sparse::MetadataSource;
use vmdk::{Disk, OpenOptions};

#[derive(Parser, Debug)]
#[command(
    name = "ovf-disk",
    version,
    about = "Read, check and inflate VMware virtual disks (VMDK)"
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
}

impl InputArgs {
    fn options(&self) -> OpenOptions {
        OpenOptions {
            allow_outside_paths: self.allow_outside_paths,
            ignore_parent_cid: self.ignore_parent_cid,
            files: std::sync::Arc::new(vmdk::io::HostFiles { map: self.mmap }),
            ..OpenOptions::default()
        }
    }

    fn open(&self, path: &PathBuf) -> Result<Disk> {
        Ok(Disk::open_with(path, &self.options())?)
    }
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
    /// Write raw and flat outputs through the page cache instead of with O_DIRECT (the
    /// default where the file system supports it).
    #[arg(long)]
    buffered: bool,
    /// No progress bar and no summary.
    #[arg(long, short)]
    quiet: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

impl OutputArgs {
    /// Options for inflating and importing: the copy options and `--force`.
    fn inflate_options(&self) -> Result<InflateOptions> {
        Ok(InflateOptions {
            copy: self.copy_options()?,
            force: self.force,
            ..InflateOptions::default()
        })
    }

    fn copy_options(&self) -> Result<CopyOptions> {
        let mut copy = CopyOptions {
            zero: match self.zero {
                Zero::Write => ZeroMode::Write,
                Zero::Falloc => ZeroMode::Falloc,
                Zero::Sparse => ZeroMode::Sparse,
            },
            direct: !self.buffered,
            ..CopyOptions::default()
        };
        if let Some(t) = self.threads {
            anyhow::ensure!(t > 0, "--threads must be at least 1");
            copy.threads = t;
        }
        Ok(copy)
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
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write an eager-zeroed thick image of a disk: every byte of the capacity written.
    /// OUT ending in .vmdk gives a thick VMDK (descriptor + OUT-flat.vmdk), anything else raw.
    Inflate {
        /// The disk to read (descriptor, sparse or stream-optimized file), or `-` for a
        /// stream-optimized disk on standard input (read in one pass, e.g. from `tar xO`).
        input: PathBuf,
        /// The image to write.
        output: PathBuf,
        /// With a .vmdk output, write ESXi's thick type (createType "vmfs", VMFS extent).
        #[arg(long)]
        esx: bool,
        #[command(flatten)]
        out: OutputArgs,
        #[command(flatten)]
        input_args: InputArgs,
    },
    /// Convert a disk (VMDK or raw) to raw or another VMDK type.
    Convert {
        /// The disk to read: any VMDK, or a raw image.
        input: PathBuf,
        /// The file to write; `-` writes a stream-optimized VMDK to standard output.
        output: PathBuf,
        /// raw, monolithicSparse, monolithicFlat, twoGbMaxExtentSparse, twoGbMaxExtentFlat,
        /// streamOptimized or vmfs.
        #[arg(long = "to")]
        to: String,
        /// What the input is.
        #[arg(long, value_enum, default_value = "auto")]
        from: InputFormat,
        /// Compression level of stream-optimized output, 0 (store) to 9 (default 1).
        #[arg(long, value_parser = clap::value_parser!(u32).range(0..=9))]
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
        #[command(flatten)]
        out: OutputArgs,
        #[command(flatten)]
        input_args: InputArgs,
    },
    /// Check every structure of a disk, like qemu-img check, or of each disk of an .ovf/.ova
    /// package after its manifest digests. Exit 0 clean, 2 problems found, 1 could not run.
    Check {
        /// The disk or package to check.
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        input_args: InputArgs,
    },
    /// Verify an OVF package (.ovf or .ova) against its manifest. Exit 0 only when every digest
    /// matches and the manifest covers every file.
    Verify {
        /// The package.
        package: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Verify an OVF package, then inflate every disk to an eager-zeroed thick VMDK (or raw) in
    /// OUTDIR and write an OVF that references them. Nothing is left in OUTDIR on failure.
    Import {
        /// The package (.ovf or .ova), or `-` for an OVA on standard input (read in one pass,
        /// each disk digested while it is inflated).
        package: PathBuf,
        /// The folder to write into (created if missing).
        outdir: PathBuf,
        /// Write raw disks instead of thick VMDKs.
        #[arg(long, value_enum, default_value = "vmdk")]
        format: ImportFormat,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Build an OVA from an OVF and its disks, or from disks (VMDK or raw) with an envelope made
    /// for them: disks converted to stream-optimized, a SHA256 manifest, descriptor first.
    Export {
        /// An .ovf, or one or more disks, then the .ova to write.
        #[arg(required = true, num_args = 2..)]
        paths: Vec<PathBuf>,
        /// Compression level of the disks, 0 (store) to 9 (default 1).
        #[arg(long, value_parser = clap::value_parser!(u32).range(0..=9))]
        compress_level: Option<u32>,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Describe a disk (type, capacity, extents, grains, allocation, parent chain) or an OVF
    /// package (systems, hardware, disks, files, manifest).
    Info {
        /// The disk to describe.
        file: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        input_args: InputArgs,
    },
}

fn report_import(
    package: &std::path::Path,
    r: &ImportReport,
    started: Instant,
    json: bool,
    quiet: bool,
) -> Result<()> {
    if json {
        let disks: Vec<Value> = r
            .disks
            .iter()
            .map(|(id, from, files)| json!({ "disk": id, "from": from, "files": files }))
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({ "package": package, "descriptor": r.descriptor, "disks": disks, "verified": r.verify.manifest.is_some(), "seconds": started.elapsed().as_secs_f64() })
            )?
        );
    } else if !quiet {
        if r.verify.manifest.is_none() {
            eprintln!(
                "warning: {} has no manifest: nothing was verified",
                package.display()
            );
        }
        for (id, from, files) in &r.disks {
            let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
            eprintln!("disk {id}: {from} -> {}", names.join(" + "));
        }
        eprintln!(
            "imported {} to {} in {:.2} s",
            package.display(),
            r.descriptor.display(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

fn is_package(path: &std::path::Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("ovf") || e.eq_ignore_ascii_case("ova"))
}

fn describe_package(pkg: &Package) -> Value {
    let e = &pkg.envelope;
    let files: Vec<Value> = e.files.iter().map(|f| json!({ "id": f.id, "href": f.href, "size": f.size, "present_size": pkg.size(&f.href), "compression": f.compression, "chunk_size": f.chunk_size })).collect();
    let disks: Vec<Value> = e.disks.iter().map(|d| json!({ "disk_id": d.disk_id, "file": e.file_of(d).map(|f| f.href.clone()), "capacity": d.capacity_bytes, "capacity_as_written": format!("{} {}", d.capacity, d.capacity_units.as_deref().unwrap_or("byte")), "populated_size": d.populated_size, "format": d.format, "parent_ref": d.parent_ref })).collect();
    let systems: Vec<Value> = e.systems.iter().map(|s| json!({ "id": s.id, "name": s.name, "os": s.os.as_ref().map(|(id, d)| json!({"id": id, "description": d})), "cpus": s.cpus, "memory": s.memory_bytes, "disks": s.disks.iter().zip(&s.disk_controllers).map(|(d, c)| json!({ "host_resource": d, "controller": c })).collect::<Vec<_>>(), "controllers": s.controllers, "nics": s.nics })).collect();
    json!({
        "package": pkg.path, "descriptor": pkg.descriptor, "ovf_version": e.version, "systems": systems, "disks": disks, "files": files,
        "manifest": pkg.manifest.as_ref().map(|(n, m)| json!({ "file": n, "entries": m.entries.len() })),
        "signed": pkg.certificate.is_some(), "certificate": pkg.certificate, "other_sections": e.other_sections,
    })
}

fn print_package(v: &Value) {
    let s = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_string);
    println!(
        "package:      {} (OVF {})",
        s(&v["package"]),
        s(&v["ovf_version"])
    );
    for sys in v["systems"].as_array().into_iter().flatten() {
        println!(
            "system {}:  {} CPUs, {} memory, OS {}",
            s(&sys["id"]),
            s(&sys["cpus"]),
            sys["memory"].as_u64().map_or_else(|| "?".into(), human),
            sys.pointer("/os/description")
                .and_then(Value::as_str)
                .unwrap_or("?")
        );
        println!(
            "  controllers: {}; networks: {}",
            s(&sys["controllers"]),
            s(&sys["nics"])
        );
        for d in sys["disks"].as_array().into_iter().flatten() {
            println!(
                "  disk drive {} on {}",
                s(&d["host_resource"]),
                d["controller"].as_str().unwrap_or("an unnamed controller")
            );
        }
    }
    for d in v["disks"].as_array().into_iter().flatten() {
        println!(
            "disk {}:  {} in {} ({})",
            s(&d["disk_id"]),
            d["capacity"]
                .as_u64()
                .map_or_else(|| s(&d["capacity_as_written"]), human),
            s(&d["file"]),
            s(&d["format"])
        );
    }
    for f in v["files"].as_array().into_iter().flatten() {
        println!(
            "file {}:  {} bytes declared, {} present",
            s(&f["href"]),
            s(&f["size"]),
            s(&f["present_size"])
        );
    }
    match v.pointer("/manifest/file").and_then(Value::as_str) {
        Some(m) => println!(
            "manifest:     {m} ({} entries)",
            v.pointer("/manifest/entries").map_or_else(String::new, s)
        ),
        None => println!("manifest:     none"),
    }
    println!(
        "signed:       {}",
        if v["signed"].as_bool() == Some(true) {
            "yes (ovf-disk verify checks the signature)"
        } else {
            "no"
        }
    );
}

/// `ovf-disk verify`: 0 when every digest matches and the manifest covers every file, else 1.
/// A digest outcome in words.
fn outcome(o: &Outcome) -> String {
    match o {
        Outcome::Ok => "ok".to_string(),
        Outcome::Missing => "missing".to_string(),
        Outcome::Mismatch { expected, found } => {
            format!("mismatch (manifest {expected}, file {found})")
        }
    }
}

fn verify_json(report: &VerifyReport) -> Value {
    let files: Vec<Value> = report
        .files
        .iter()
        .map(|(n, a, o)| json!({ "file": n, "algorithm": a.as_str(), "result": outcome(o) }))
        .collect();
    json!({ "ok": report.is_ok(), "manifest": report.manifest, "files": files, "unlisted": report.unlisted, "signed": report.certificate.is_some(), "signature": report.signature.as_ref().map(|r| match r { Ok(s) => json!({ "valid": true, "signer": s }), Err(e) => json!({ "valid": false, "reason": e }) }) })
}

/// Prints each digest's outcome, the unlisted files and the signature.
fn print_verify(package: &std::path::Path, report: &VerifyReport) {
    match &report.manifest {
        None => println!(
            "{}: no manifest: nothing can be verified",
            package.display()
        ),
        Some(m) => println!("{}: manifest {m}", package.display()),
    }
    for (n, a, o) in &report.files {
        println!("  {n}: {} {}", a.as_str(), outcome(o));
    }
    for n in &report.unlisted {
        println!("  {n}: not listed in the manifest");
    }
    match &report.signature {
        None => println!("  signed: no"),
        Some(Ok(signer)) => println!("  signed: by {signer}: the signature covers the manifest (the certificate is not checked against a trust store)"),
        Some(Err(reason)) => println!("  signed: signature INVALID: {reason}"),
    }
}

fn verify(package: &std::path::Path, json: bool) -> ExitCode {
    let run = || -> Result<(VerifyReport, Package)> {
        let pkg = Package::open(package)?;
        let report = pkg.verify(&|_| {})?;
        Ok((report, pkg))
    };
    let (report, pkg) = match run() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ovf-disk: error: {}", error_text(&e));
            return ExitCode::FAILURE;
        }
    };
    if json {
        let mut v = verify_json(&report);
        if let Value::Object(m) = &mut v {
            m.insert("package".into(), json!(package));
        }
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        print_verify(&pkg.path, &report);
        println!(
            "{}",
            if report.is_ok() {
                "verified"
            } else {
                "NOT verified"
            }
        );
    }
    if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// An error and its causes, "a: b: c", leaving out a cause whose text a layer above already
/// includes (the libraries' errors print their source themselves).
fn error_text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    let mut said = String::new();
    for cause in e.chain() {
        let msg = cause.to_string();
        if said.contains(&msg) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&msg);
        said = msg;
    }
    out
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Verify { package, json } = &cli.command {
        return verify(package, *json);
    }
    if let Command::Check {
        file,
        json,
        input_args,
    } = &cli.command
    {
        return check(file, *json, input_args);
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ovf-disk: error: {}", error_text(&e));
            ExitCode::FAILURE
        }
    }
}

/// The report of an inflate, with the bytes its files hold.
fn inflate_report(r: ovf_disk::inflate::InflateReport) -> Report {
    let written = r
        .files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    Report {
        files: r.files,
        capacity: r.capacity,
        data: r.data,
        written,
    }
}

fn parse_cid(s: &str) -> Result<u32, String> {
    match u32::from_str_radix(s, 16) {
        Ok(c) if c < 0xffff_fffe => Ok(c),
        _ => Err("a CID is 1 to 8 hex digits, not ffffffff or fffffffe".into()),
    }
}

fn print_report(
    input: &std::path::Path,
    verb: &str,
    report: &Report,
    secs: f64,
    json: bool,
    quiet: bool,
) -> Result<()> {
    if quiet && !json {
        return Ok(());
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "input": input, "files": report.files, "capacity": report.capacity,
                "data_bytes": report.data, "zero_bytes": report.capacity.saturating_sub(report.data),
                "written_bytes": report.written, "seconds": secs,
            }))?
        );
    } else {
        let files: Vec<String> = report
            .files
            .iter()
            .map(|f| f.display().to_string())
            .collect();
        let target = if files.is_empty() {
            "standard output".to_string()
        } else {
            files.join(" + ")
        };
        eprintln!(
            "{verb} {} ({}) to {target}: {} data, {} written, {:.2} s ({:.0} MiB/s)",
            input.display(),
            human(report.capacity),
            human(report.data),
            human(report.written),
            secs,
            report.capacity as f64 / (1u64 << 20) as f64 / secs.max(1e-9)
        );
    }
    Ok(())
}

/// `ovf-disk check`: 0 clean, 2 problems found, 1 could not run.
/// A check's findings as JSON, with `extra` fields first (what was checked).
fn check_json(extra: Value, report: &vmdk::check::CheckReport) -> Value {
    let problems: Vec<Value> = report
        .problems
        .iter()
        .map(|p| json!({ "file": p.path, "structure": p.structure, "offset": p.offset, "message": p.message }))
        .collect();
    let mut v = extra;
    if let Value::Object(m) = &mut v {
        for (k, x) in [
            ("clean", json!(report.is_clean())),
            ("problems", json!(problems)),
            ("files", json!(report.files)),
            ("allocated_grains", json!(report.allocated_grains)),
            ("allocated_bytes", json!(report.allocated_bytes)),
            ("zeroed_bytes", json!(report.zeroed_bytes)),
            ("leaked_bytes", json!(report.leaked_bytes)),
        ] {
            m.insert(k.into(), x);
        }
    }
    v
}

/// 0 when clean, 2 when problems were found.
fn check_exit(clean: bool) -> ExitCode {
    if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}

/// Prints a check's problems, one line each, and its space counts.
fn print_check(report: &vmdk::check::CheckReport) {
    for p in &report.problems {
        let at = p
            .offset
            .map_or_else(String::new, |o| format!(" at offset {o:#x}"));
        println!(
            "ERROR {}: {}{at}: {}",
            p.path.display(),
            p.structure,
            p.message
        );
    }
    println!(
        "{} allocated grains ({}), {} zeroed, {} leaked, {} files",
        report.allocated_grains,
        human(report.allocated_bytes),
        human(report.zeroed_bytes),
        human(report.leaked_bytes),
        report.files.len()
    );
}

/// `ovf-disk check`: 0 clean, 2 problems found, 1 could not run.
fn check(file: &std::path::Path, json: bool, input_args: &InputArgs) -> ExitCode {
    if is_package(file) {
        return check_package(file, json, input_args);
    }
    let report = match vmdk::check::check(file, &input_args.options()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ovf-disk: error: cannot check {}: {e}", file.display());
            return ExitCode::from(1);
        }
    };
    if json {
        let v = check_json(json!({ "file": file }), &report);
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        print_check(&report);
        if report.is_clean() {
            println!("No errors were found on the image.");
        } else {
            println!("{} errors were found on the image.", report.problems.len());
        }
    }
    check_exit(report.is_clean())
}

/// `ovf-disk check PKG`: the manifest's digests and every disk (exit codes as for a disk).
fn check_package(file: &std::path::Path, json: bool, input_args: &InputArgs) -> ExitCode {
    let threads = CopyOptions::default().threads;
    let result = Package::open(file).and_then(|pkg| {
        ovf_disk::package::check::check_package(&pkg, &input_args.options(), threads, &|_| {})
    });
    let c = match result {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ovf-disk: error: cannot check {}: {e}", file.display());
            return ExitCode::from(1);
        }
    };
    let digests = c
        .verify
        .files
        .iter()
        .filter(|(_, _, o)| *o != Outcome::Ok)
        .count();
    if json {
        let disks: Vec<Value> = c
            .disks
            .iter()
            .map(|d| {
                check_json(
                    json!({ "disk": d.disk_id, "file": d.href, "method": d.method.as_str(), "declared_capacity": d.declared }),
                    &d.report,
                )
            })
            .collect();
        let v = json!({
            "package": file, "clean": c.is_clean(),
            "verify": verify_json(&c.verify), "disks": disks,
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        print_verify(file, &c.verify);
        for d in &c.disks {
            println!(
                "disk {} ({}, checked {}):",
                d.disk_id,
                d.href,
                d.method.as_str()
            );
            print_check(&d.report);
        }
        let problems: usize = c
            .disks
            .iter()
            .map(|d| d.report.problems.len())
            .sum::<usize>()
            + digests
            + usize::from(matches!(c.verify.signature, Some(Err(_))));
        if c.is_clean() {
            println!("No errors were found in the package.");
        } else {
            println!("{problems} errors were found in the package.");
        }
    }
    check_exit(c.is_clean())
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Inflate {
            input,
            output,
            esx,
            out,
            ..
        } if input.as_os_str() == "-" => {
            // A stream-optimized disk on standard input, read in one forward pass.
            let options = out.inflate_options()?;
            let bar = progress_bar(0, out.quiet || out.json);
            let started = Instant::now();
            let stdin = std::io::stdin();
            let mut lock = stdin.lock();
            let r = inflate_stream(
                &mut lock,
                "<stdin>",
                &output,
                OutputFormat::for_path(&output, esx),
                &options,
                &|n| bar.inc(n),
            )
            .with_context(|| format!("inflating standard input to {}", output.display()))?;
            bar.finish_and_clear();
            print_report(
                &input,
                "inflated",
                &inflate_report(r),
                started.elapsed().as_secs_f64(),
                out.json,
                out.quiet,
            )
        }
        Command::Inflate {
            input,
            output,
            esx,
            out,
            input_args,
        } => {
            let disk = input_args.open(&input)?;
            let options = out.inflate_options()?;
            let bar = progress_bar(disk.capacity(), out.quiet || out.json);
            let started = Instant::now();
            let r = inflate(
                &disk,
                &output,
                OutputFormat::for_path(&output, esx),
                &options,
                &|n| bar.inc(n),
            )
            .with_context(|| format!("inflating {} to {}", input.display(), output.display()))?;
            bar.finish_and_clear();
            print_report(
                &input,
                "inflated",
                &inflate_report(r),
                started.elapsed().as_secs_f64(),
                out.json,
                out.quiet,
            )
        }
        Command::Convert {
            input,
            output,
            to,
            from,
            compress_level,
            adapter_type,
            hw_version,
            cid,
            out,
            input_args,
        } => {
            let output_type = OutputType::parse(&to).with_context(|| format!("--to {to}: expected raw, monolithicSparse, monolithicFlat, twoGbMaxExtentSparse, twoGbMaxExtentFlat, streamOptimized or vmfs"))?;
            if let Some(a) = &adapter_type {
                anyhow::ensure!(
                    ADAPTER_TYPES.iter().any(|k| k.eq_ignore_ascii_case(a)),
                    "--adapter-type {a}: expected one of {}",
                    ADAPTER_TYPES.join(", ")
                );
            }
            let raw = match from {
                InputFormat::Auto => None,
                InputFormat::Vmdk => Some(false),
                InputFormat::Raw => Some(true),
            };
            let disk = open_input(&input, raw, &input_args.options())?;
            let options = ConvertOptions {
                copy: out.copy_options()?,
                level: compress_level,
                adapter_type,
                hw_version: hw_version.map(|h| h.to_string()),
                cid,
                force: out.force,
            };
            let to_stdout = output.as_os_str() == "-";
            let bar = progress_bar(disk.capacity(), out.quiet || (out.json && !to_stdout));
            let started = Instant::now();
            let report = if to_stdout {
                anyhow::ensure!(
                    output_type == OutputType::Vmdk(CreateType::StreamOptimized),
                    "only --to streamOptimized can be written to standard output"
                );
                anyhow::ensure!(
                    !std::io::stdout().is_terminal(),
                    "refusing to write a disk image to a terminal"
                );
                let stdout = std::io::stdout();
                let mut w = std::io::BufWriter::with_capacity(1 << 20, stdout.lock());
                let r = convert_to_stream(&disk, &mut w, "disk.vmdk", &options, &|n| bar.inc(n))?;
                w.flush().context("writing standard output")?;
                r
            } else {
                convert(&disk, &output, &output_type, &options, &|n| bar.inc(n)).with_context(
                    || format!("converting {} to {}", input.display(), output.display()),
                )?
            };
            bar.finish_and_clear();
            print_report(
                &input,
                "converted",
                &report,
                started.elapsed().as_secs_f64(),
                out.json && !to_stdout,
                out.quiet,
            )
        }
        Command::Check { .. } => Ok(()),
        Command::Verify { .. } => Ok(()),
        Command::Export {
            mut paths,
            compress_level,
            out,
        } => {
            let target = paths.pop().context("export needs an output .ova")?;
            anyhow::ensure!(
                target
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("ova")),
                "the last path, {}, must end in .ova",
                target.display()
            );
            let options = ConvertOptions {
                copy: out.copy_options()?,
                level: compress_level,
                force: out.force,
                ..ConvertOptions::default()
            };
            let bar = progress_bar(0, out.quiet || out.json);
            let started = Instant::now();
            let r = export(&paths, &target, &options, &|n| bar.inc(n))
                .with_context(|| format!("exporting to {}", target.display()))?;
            bar.finish_and_clear();
            if out.json {
                let members: Vec<Value> = r
                    .members
                    .iter()
                    .map(|(n, s)| json!({ "name": n, "size": s }))
                    .collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &json!({ "ova": r.ova, "members": members, "seconds": started.elapsed().as_secs_f64() })
                    )?
                );
            } else if !out.quiet {
                for (n, size) in &r.members {
                    eprintln!("  {n}: {}", human(*size));
                }
                eprintln!(
                    "exported {} in {:.2} s",
                    r.ova.display(),
                    started.elapsed().as_secs_f64()
                );
            }
            Ok(())
        }
        Command::Import {
            package,
            outdir,
            format,
            out,
        } if package.as_os_str() == "-" => {
            let options = out.inflate_options()?;
            let bar = progress_bar(0, out.quiet || out.json);
            let started = Instant::now();
            let stdin = std::io::stdin();
            let r = import_stream(
                stdin.lock(),
                "<stdin>",
                &outdir,
                matches!(format, ImportFormat::Raw),
                &options,
                &|id, n| {
                    bar.set_message(format!("disk {id}"));
                    bar.inc(n)
                },
            )
            .context("importing the OVA on standard input")?;
            bar.finish_and_clear();
            report_import(&package, &r, started, out.json, out.quiet)
        }
        Command::Import {
            package,
            outdir,
            format,
            out,
        } => {
            let pkg = Package::open(&package)?;
            let options = out.inflate_options()?;
            let total: u64 = pkg
                .envelope
                .disks
                .iter()
                .filter_map(|d| d.capacity_bytes)
                .sum();
            let bar = progress_bar(total, out.quiet || out.json);
            let started = Instant::now();
            let r = import(
                &pkg,
                &outdir,
                matches!(format, ImportFormat::Raw),
                &options,
                &|id, n| {
                    bar.set_message(format!("disk {id}"));
                    bar.inc(n)
                },
            )
            .with_context(|| format!("importing {}", package.display()))?;
            bar.finish_and_clear();
            report_import(&package, &r, started, out.json, out.quiet)
        }
        Command::Info { file, json, .. } if is_package(&file) => {
            let pkg = Package::open(&file)?;
            let v = describe_package(&pkg);
            if json {
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                print_package(&v);
            }
            Ok(())
        }
        Command::Info {
            file,
            json,
            input_args,
        } => {
            let disk = input_args.open(&file)?;
            let info = describe(&disk)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                print_info(&info);
            }
            Ok(())
        }
    }
}

fn progress_bar(len: u64, quiet: bool) -> ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} {msg} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style);
    }
    bar
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.2} {}", UNITS.get(unit).copied().unwrap_or("B"))
    }
}

fn describe_extent(e: &vmdk::disk::Extent) -> Value {
    let mut v = Map::new();
    v.insert("access".into(), json!(e.line.access.as_str()));
    v.insert("kind".into(), json!(e.line.kind.as_str()));
    v.insert("sectors".into(), json!(e.line.sectors));
    v.insert("file".into(), json!(e.line.file_name));
    v.insert("start".into(), json!(e.start));
    v.insert("size".into(), json!(e.len));
    match &e.data {
        ExtentData::Flat { backing, offset } => {
            v.insert("path".into(), json!(backing.path()));
            v.insert("offset".into(), json!(offset));
        }
        ExtentData::Sparse(s) => {
            let h = s.header();
            v.insert("path".into(), json!(s.backing().path()));
            v.insert(
                "sparse".into(),
                json!({
                    "version": s.version(), "flags": format!("{:#x}", s.flags()),
                    "grain_size": s.grain_bytes(), "capacity": s.capacity_bytes(),
                    "compressed": s.is_compressed(), "markers": s.has_markers(),
                    "num_gtes_per_gt": h.num_gtes_per_gt.get(), "gd_offset": h.gd_offset.get(),
                    "rgd_offset": h.rgd_offset.get(), "grain_tables": s.grain_directory().len(),
                    "metadata_from": match s.metadata_source() { MetadataSource::Header => "header", MetadataSource::Footer => "footer" },
                }),
            );
        }
        ExtentData::Zero => {}
    }
    Value::Object(v)
}

fn describe_link(disk: &Disk) -> Map<String, Value> {
    let d = disk.descriptor();
    let ddb: Map<String, Value> = d
        .pairs()
        .filter(|(k, _)| k.to_ascii_lowercase().starts_with("ddb."))
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let mut m = Map::new();
    m.insert("file".into(), json!(disk.path()));
    m.insert("create_type".into(), json!(disk.create_type().as_str()));
    m.insert("capacity".into(), json!(disk.capacity()));
    m.insert("cid".into(), json!(d.cid().map(|c| format!("{c:08x}"))));
    m.insert(
        "parent_cid".into(),
        json!(d.parent_cid().map(|c| format!("{c:08x}"))),
    );
    m.insert(
        "parent_file_name_hint".into(),
        json!(d.parent_file_name_hint()),
    );
    m.insert(
        "extents".into(),
        disk.extents().iter().map(describe_extent).collect(),
    );
    m.insert("ddb".into(), Value::Object(ddb));
    m
}

fn describe(disk: &Disk) -> Result<Value> {
    let sum = disk.allocation_summary()?;
    let mut m = describe_link(disk);
    m.insert(
        "allocation".into(),
        json!({ "data": sum.data, "zero": sum.zero, "unallocated": sum.unallocated }),
    );
    m.insert(
        "chain".into(),
        disk.chain()
            .skip(1)
            .map(|l| Value::Object(describe_link(l)))
            .collect(),
    );
    Ok(Value::Object(m))
}

fn print_info(v: &Value) {
    let s = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_string);
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    println!("file:         {}", s(&v["file"]));
    println!("create type:  {}", s(&v["create_type"]));
    println!(
        "capacity:     {} ({} bytes)",
        human(n(&v["capacity"])),
        n(&v["capacity"])
    );
    println!(
        "CID:          {}  parentCID: {}",
        s(&v["cid"]),
        s(&v["parent_cid"])
    );
    for (k, val) in v["ddb"].as_object().into_iter().flatten() {
        println!("{:<13} {}", format!("{k}:"), s(val));
    }
    let a = &v["allocation"];
    println!(
        "allocation:   {} data, {} zeroed, {} unallocated",
        human(n(&a["data"])),
        human(n(&a["zero"])),
        human(n(&a["unallocated"]))
    );
    println!("extents:");
    for e in v["extents"].as_array().into_iter().flatten() {
        print!(
            "  {} {} {} sectors",
            s(&e["access"]),
            s(&e["kind"]),
            n(&e["sectors"])
        );
        if let Some(p) = e["path"].as_str() {
            print!("  {p}");
        }
        if let Some(sp) = e.get("sparse") {
            print!(
                "  (version {}, flags {}, grain {}, {}{}metadata from {})",
                n(&sp["version"]),
                s(&sp["flags"]),
                human(n(&sp["grain_size"])),
                if sp["compressed"].as_bool() == Some(true) {
                    "compressed, "
                } else {
                    ""
                },
                if sp["markers"].as_bool() == Some(true) {
                    "markers, "
                } else {
                    ""
                },
                s(&sp["metadata_from"])
            );
        }
        println!();
    }
    for (i, link) in v["chain"].as_array().into_iter().flatten().enumerate() {
        println!(
            "parent {}:     {} ({}, CID {})",
            i + 1,
            s(&link["file"]),
            s(&link["create_type"]),
            s(&link["cid"])
        );
    }
}
