//! An OVF importer on `ovf-disk`: open a package (an `.ova` read in place, or an `.ovf` with its
//! files), verify it against its manifest, print the hardware it asks for, and import each disk
//! as an eager-zeroed thick VMDK.
//!
//! `cargo run -p ovf-disk --example import -- APPLIANCE.ova OUTDIR`

use std::path::Path;

use ovf_disk::{import, ImportOptions, Package};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [package, outdir] = args.as_slice() else {
        eprintln!("usage: import PACKAGE OUTDIR");
        std::process::exit(2);
    };
    let pkg = Package::open(Path::new(package))?;

    let verified = pkg.verify(&|name| eprintln!("digesting {name}"))?;
    for f in &verified.files {
        println!("{}: {} {}", f.name, f.algorithm.as_str(), f.outcome);
    }
    if !verified.is_ok() {
        eprintln!("{package}: not verified, nothing imported");
        std::process::exit(1);
    }

    for s in &pkg.envelope().systems {
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
        println!("  networks: {}", s.nics.join(", "));
    }

    let report = import(
        &pkg,
        Path::new(outdir),
        &ImportOptions::new(),
        &|disk, n| {
            if n > 0 {
                eprint!("\rdisk {disk}: +{n} bytes   ");
            }
        },
    )?;
    eprintln!();
    for d in &report.disks {
        let files: Vec<String> = d.files.iter().map(|f| f.display().to_string()).collect();
        println!("disk {}: {} -> {}", d.disk_id, d.from, files.join(" + "));
    }
    println!("descriptor: {}", report.descriptor.display());
    Ok(())
}
