//! The stream-optimized readers on arbitrary bytes: the one-pass streaming reader (as an OVA
//! import feeds it from a tar member) into a sink that checks every write lies inside the
//! capacity, and `check`, which walks every structure of the same bytes as a seekable file.
//! Neither may panic, hang or allocate by an untrusted size.
#![no_main]

use std::io::Cursor;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use vmdk::io::MemoryFiles;
use vmdk::stream::read::{read_stream_optimized, StreamSink};

struct Bounded {
    capacity: AtomicU64,
}

impl StreamSink for Bounded {
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
    let _ = read_stream_optimized(&mut Cursor::new(data), "fuzz.vmdk", &sink, 2);
    let mut files = MemoryFiles::new();
    files.insert("disk.vmdk", data.to_vec());
    let options = vmdk::OpenOptions {
        files: Arc::new(files),
        ..vmdk::OpenOptions::default()
    };
    let _ = vmdk::check::check(std::path::Path::new("disk.vmdk"), &options);
});
