//! The stream-optimized readers on arbitrary bytes: the one-pass streaming reader (as an OVA
//! import feeds it from a tar member) into a sink that checks every write lies inside the
//! capacity, and `check`, which walks every structure of the same bytes as a seekable file.
//! Neither may panic, hang or allocate by an untrusted size.
//!
//! Seeds: python3 fuzz/small_seeds.py (testdata/fuzz-seeds/stream/: VMware-layout and raw-deflate
//! stream-optimized extents), and fuzz/seeds.sh for qemu-img's streamOptimized images
//! (fuzz/corpus/stream/).
#![no_main]

use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};

use libfuzzer_sys::fuzz_target;
use vmdk::internals::{read_stream_into, Sink};
use vmdk::{MemoryFiles, OpenOptions, StreamReader};

struct Bounded {
    capacity: AtomicU64,
}

impl Sink for Bounded {
    fn begin(&self, capacity: u64) -> vmdk::Result<()> {
        self.capacity.store(capacity, Ordering::Relaxed);
        Ok(())
    }
    fn write(&self, offset: u64, data: &[u8]) -> vmdk::Result<()> {
        assert!(
            offset + data.len() as u64 <= self.capacity.load(Ordering::Relaxed),
            "write past the capacity"
        );
        Ok(())
    }
    fn zero(&self, offset: u64, len: u64) -> vmdk::Result<()> {
        assert!(
            offset
                .checked_add(len)
                .is_some_and(|e| e <= self.capacity.load(Ordering::Relaxed)),
            "zero past the capacity"
        );
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let sink = Bounded {
        capacity: AtomicU64::new(0),
    };
    if let Ok(reader) = StreamReader::new(Cursor::new(data), "fuzz.vmdk") {
        let _ = read_stream_into(reader, &sink, 2);
    }
    let mut files = MemoryFiles::new();
    files.insert("disk.vmdk", data.to_vec());
    let _ = vmdk::check("disk.vmdk", &OpenOptions::new().files(files));
});
