//! A read-only importer on `ovf-disk` built without its writers (`default-features = false`:
//! no `vmdk` writer, no `O_DIRECT`): open what a path holds, and for a package verify it and
//! check every disk in place; for a disk, describe it. It builds and runs the same with the
//! default features.
//!
//! `cargo run -p ovf-disk --no-default-features --example verify -- APPLIANCE.ova`
//!
//! Exit status: 0 verified and clean, 1 damaged or not verified, 2 usage, 3 truncated.

use std::path::Path;
use std::process::ExitCode;

use ovf_disk::package::check_package;
use ovf_disk::vm;
use ovf_disk::{Category, Input};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [path] = args.as_slice() else {
        eprintln!("usage: verify PATH");
        return ExitCode::from(2);
    };
    match run(Path::new(path)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            match e.category() {
                Category::Truncated => ExitCode::from(3),
                _ => ExitCode::from(1),
            }
        }
    }
}

fn run(path: &Path) -> ovf_disk::Result<bool> {
    match Input::open(path, &vm::Options::new())? {
        Input::Package(pkg) => {
            let report = check_package(&pkg, &vmdk::OpenOptions::new(), 2, &|_| {})?;
            for d in &report.disks {
                println!("disk {}: {} problem(s)", d.disk_id, d.report.problems.len());
            }
            let env = pkg.envelope();
            for s in &env.systems {
                for a in s.disks(env, env.default_deployment_option()) {
                    println!(
                        "system {}: drive {} holds {}",
                        s.id,
                        a.drive.instance_id,
                        a.file.map_or("no file", |f| f.href.as_str())
                    );
                }
            }
            let clean = report.is_clean();
            println!(
                "{}",
                if clean {
                    "verified, clean"
                } else {
                    "NOT clean"
                }
            );
            Ok(clean)
        }
        Input::Disk(disk) => {
            println!(
                "disk of {} bytes, {:?}",
                disk.capacity(),
                disk.create_type()
            );
            Ok(true)
        }
        other => {
            println!("{:?}: nothing to verify", other.kind());
            Ok(true)
        }
    }
}
