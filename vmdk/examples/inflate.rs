//! An importer's first steps with `vmdk`: open any disk a user names (a descriptor, a sparse or
//! stream-optimized file, a delta over its parents), print what it is and its allocation map,
//! and inflate it to an eager-zeroed raw image with progress.
//!
//! `cargo run -p vmdk --example inflate -- DISK OUT.raw`

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use vmdk::{Disk, Target, WriteOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        eprintln!("usage: inflate DISK OUT.raw");
        std::process::exit(2);
    };
    let disk = Disk::open(input)?;
    let capacity = disk.capacity();
    println!("{input}: {} of {capacity} bytes", disk.create_type());
    for link in disk.chain().skip(1) {
        println!("  over {}", link.path().display());
    }

    // The allocation map, a window at a time: data, zeroed and unallocated runs.
    let mut offset = 0;
    while offset < capacity {
        let len = (1u64 << 30).min(capacity - offset);
        for run in disk.map(offset, len)? {
            println!("  {:#014x} +{:#x} {:?}", run.offset, run.len, run.kind);
        }
        offset += len;
    }

    // Every byte of the capacity written, zeros included, on all cores.
    let file = File::create(output)?;
    let target = Target {
        file: &file,
        path: Path::new(output),
        start: 0,
        len: capacity,
    };
    let done = AtomicU64::new(0);
    let progress = |n: u64| {
        let now = done.fetch_add(n, Ordering::Relaxed) + n;
        eprint!("\r{:3}%", now * 100 / capacity.max(1));
    };
    let stats = disk.copy_to(&[target], &WriteOptions::new(), &progress)?;
    file.sync_all()?;
    eprintln!();
    println!(
        "{output}: {} bytes of data, {} of zeros",
        stats.data, stats.zero
    );
    Ok(())
}
