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

use ovf_disk::inflate::{inflate, InflateOptions, OutputFormat};
use vmdk::copy::{CopyOptions, ZeroMode};
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
}

impl InputArgs {
    fn open(&self, path: &PathBuf) -> Result<Disk> {
        let options = OpenOptions {
            allow_outside_paths: self.allow_outside_paths,
            ignore_parent_cid: self.ignore_parent_cid,
            ..OpenOptions::default()
        };
        Ok(Disk::open_with(path, &options)?)
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Write an eager-zeroed thick image of a disk: every byte of the capacity written.
    /// OUT ending in .vmdk gives a thick VMDK (descriptor + OUT-flat.vmdk), anything else raw.
    Inflate {
        /// The disk to read (descriptor, sparse or stream-optimized file).
        input: PathBuf,
        /// The image to write.
        output: PathBuf,
        /// How zero ranges are written.
        #[arg(long, value_enum, default_value = "write")]
        zero: Zero,
        /// With a .vmdk output, write ESXi's thick type (createType "vmfs", VMFS extent).
        #[arg(long)]
        esx: bool,
        /// Replace an existing output.
        #[arg(long)]
        force: bool,
        /// Worker threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// No progress bar.
        #[arg(long, short)]
        quiet: bool,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        input_args: InputArgs,
    },
    /// Describe a disk: type, capacity, extents, grains, allocation, parent chain.
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ovf-disk: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Inflate {
            input,
            output,
            zero,
            esx,
            force,
            threads,
            quiet,
            json,
            input_args,
        } => {
            let disk = input_args.open(&input)?;
            let mut copy = CopyOptions {
                zero: match zero {
                    Zero::Write => ZeroMode::Write,
                    Zero::Falloc => ZeroMode::Falloc,
                    Zero::Sparse => ZeroMode::Sparse,
                },
                ..CopyOptions::default()
            };
            if let Some(t) = threads {
                anyhow::ensure!(t > 0, "--threads must be at least 1");
                copy.threads = t;
            }
            let bar = progress_bar(disk.capacity(), quiet || json);
            let started = Instant::now();
            let report = inflate(
                &disk,
                &output,
                OutputFormat::for_path(&output, esx),
                &InflateOptions { copy, force },
                &|n| bar.inc(n),
            )
            .with_context(|| format!("inflating {} to {}", input.display(), output.display()))?;
            bar.finish_and_clear();
            let secs = started.elapsed().as_secs_f64();
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({
                        "input": input, "files": report.files, "capacity": report.capacity,
                        "data_bytes": report.stats.data, "zero_bytes": report.stats.zero, "seconds": secs,
                    }))?
                );
            } else {
                let files: Vec<String> = report
                    .files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect();
                println!(
                    "inflated {} ({}) to {}: {} data, {} zeros, {:.2} s ({:.0} MiB/s)",
                    input.display(),
                    human(report.capacity),
                    files.join(" + "),
                    human(report.stats.data),
                    human(report.stats.zero),
                    secs,
                    report.capacity as f64 / (1u64 << 20) as f64 / secs.max(1e-9)
                );
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
        "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
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
