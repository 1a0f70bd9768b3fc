//! An OVF importer on `ovf-disk`: open what a path holds (an `.ova` read in place, or an `.ovf`
//! with its files, whatever their names), verify the package against its manifest, print the
//! hardware it asks for with each drive linked to its disk and file, and import each disk as an
//! eager-zeroed thick VMDK with a running total; errors are told apart by their category.
//!
//! `cargo run -p ovf-disk --example import -- APPLIANCE.ova OUTDIR`
//!
//! Exit status: 0 imported, 1 not verified or damaged, 2 usage or not a package, 3 the input
//! is truncated (fetch it again), 4 anything else.

use std::path::Path;
use std::process::ExitCode;

use ovf_disk::import::{self, import};
use ovf_disk::output::Progress;
use ovf_disk::package::Package;
use ovf_disk::vm;
use ovf_disk::{Category, Input};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [package, outdir] = args.as_slice() else {
        eprintln!("usage: import PACKAGE OUTDIR");
        return ExitCode::from(2);
    };
    let pkg = match Input::open(Path::new(package), &vm::Options::new()) {
        Ok(Input::Package(pkg)) => pkg,
        Ok(other) => {
            eprintln!("{package}: a {:?}, not a package", other.kind());
            return ExitCode::from(2);
        }
        Err(e) => return failed(&e),
    };
    match run(&pkg, package, Path::new(outdir)) {
        Ok(code) => code,
        Err(e) => failed(&e),
    }
}

/// The exit status and advice for an error, by its category.
fn failed(e: &ovf_disk::Error) -> ExitCode {
    eprintln!("error: {e}");
    match e.category() {
        Category::Truncated => {
            eprintln!("the input is cut short: fetch it again");
            ExitCode::from(3)
        }
        Category::Damaged => ExitCode::from(1),
        _ => ExitCode::from(4),
    }
}

fn run(pkg: &Package, package: &str, outdir: &Path) -> ovf_disk::Result<ExitCode> {
    let verified = pkg.verify(&|name| eprintln!("digesting {name}"))?;
    for f in &verified.files {
        println!("{}: {} {}", f.name, f.algorithm.as_str(), f.outcome);
    }
    if !verified.is_ok() {
        eprintln!("{package}: not verified, nothing imported");
        return Ok(ExitCode::from(1));
    }

    let env = pkg.envelope();
    for s in &env.systems {
        println!(
            "system {}: {:?} CPUs, {:?} bytes of memory",
            s.id, s.cpus, s.memory_bytes
        );
        for d in &s.drives {
            println!(
                "  {} on {}",
                d.host_resource,
                d.controller.as_deref().unwrap_or("?")
            );
        }
        // Each drive linked to its disk and the disk's file, no `ovf:/disk/ID` cut by hand.
        for a in s.disks(env, env.default_deployment_option()) {
            println!(
                "  drive {} holds {} in {}",
                a.drive.instance_id,
                a.disk.map_or("no disk", |d| d.disk_id.as_str()),
                a.file.map_or("no file (blank)", |f| f.href.as_str())
            );
        }
        println!("  networks: {}", s.nics.join(", "));
    }

    // Progress comes as bytes written since the last call, per disk: `Progress` sums them. The
    // package keeps its verify report, so the import does not digest the files again.
    let progress = Progress::new();
    let report = import(pkg, outdir, &import::Options::new(), &|disk, n| {
        let done = progress.add(disk, n);
        if n > 0 {
            eprint!("\rdisk {disk}: {done} bytes written in all   ");
        }
    })?;
    eprintln!();
    for d in &report.disks {
        let files: Vec<String> = d.files.iter().map(|f| f.display().to_string()).collect();
        println!("disk {}: {} -> {}", d.disk_id, d.from, files.join(" + "));
    }
    println!("written: {} bytes", progress.total());
    println!("descriptor: {}", report.descriptor.display());
    Ok(ExitCode::SUCCESS)
}
