//! `imago-copy SRC OUT.qcow2 [THREADS]`: SRC (any disk the vmdk crate reads, or a raw image)
//! written as a qcow2 image by the imago crate, on the same copy path as ours: 8 MiB windows
//! taken by THREADS workers (default 2), the allocation map read, clusters of zeros skipped,
//! the rest written through imago's `FormatAccess::write`; flushed and synced at the end.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};

use imago::file::File;
use imago::qcow2::Qcow2;
use imago::{
    DenyImplicitOpenGate, FormatAccess, FormatCreateBuilder, FormatDriverBuilder, Storage,
    StorageCreateOptions,
};

const WINDOW: u64 = 8 << 20;
const CLUSTER: usize = 64 << 10;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (src, dst) = (&args[1], &args[2]);
    let threads: usize = args.get(3).map_or(Ok(2), |t| t.parse())?;
    let disk = vmdk::OpenOptions::new().open_vmdk_or_raw(src)?;
    let capacity = disk.capacity();
    let storage = File::create_open(StorageCreateOptions::new().filename(dst))?;
    let qcow2 = Qcow2::<File>::create_builder(storage)
        .size(capacity)
        .create_open(DenyImplicitOpenGate::default(), |image| {
            Ok(Qcow2::<File>::builder(image).backing(None).write(true))
        })?;
    let image = FormatAccess::new(qcow2);
    let next = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut buf = vec![0u8; WINDOW as usize];
                loop {
                    let at = next.fetch_add(WINDOW, Ordering::Relaxed);
                    if at >= capacity {
                        break;
                    }
                    let len = WINDOW.min(capacity - at);
                    for run in disk.map(at, len).unwrap() {
                        if run.kind != vmdk::Allocation::Data {
                            continue;
                        }
                        let part = &mut buf[..run.len as usize];
                        disk.read_exact_at(run.offset, part).unwrap();
                        // Runs of clusters holding data, one write each.
                        let mut from: Option<usize> = None;
                        let chunks = part.len().div_ceil(CLUSTER);
                        for i in 0..=chunks {
                            let data = i < chunks
                                && part[i * CLUSTER..((i + 1) * CLUSTER).min(part.len())]
                                    .iter()
                                    .any(|&b| b != 0);
                            match (data, from) {
                                (true, None) => from = Some(i),
                                (false, Some(a)) => {
                                    let bytes = &part[a * CLUSTER..(i * CLUSTER).min(part.len())];
                                    let off = run.offset + (a * CLUSTER) as u64;
                                    image.write(bytes, off).unwrap();
                                    from = None;
                                }
                                _ => {}
                            }
                        }
                    }
                }
            });
        }
    });
    image.flush()?;
    image.sync()?;
    Ok(())
}
