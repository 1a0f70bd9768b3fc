//! The NBD server on arbitrary client bytes: the handshake and request parser answers or drops
//! the client, never panics, never hangs (the input ends, the connection ends), and never
//! sends more than the requests it read can ask for.
//!
//! Seeds: python3 fuzz/small_seeds.py (testdata/fuzz-seeds/nbd/).
#![no_main]

use std::io::{Read, Write};

use libfuzzer_sys::fuzz_target;

/// The client: what it sends is the input; what the server answers is counted.
struct Client<'a> {
    input: &'a [u8],
    answered: usize,
}

impl Read for Client<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.input.read(buf)
    }
}

impl Write for Client<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.answered += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fuzz_target!(|data: &[u8]| {
    let mut files = vmdk::MemoryFiles::new();
    let disk: Vec<u8> = (0..1u32 << 16).map(|i| (i % 251) as u8).collect();
    files.insert("disk.raw", disk);
    let Ok(disk) = vmdk::OpenOptions::new().files(files).open_raw("disk.raw") else {
        return;
    };
    let server = ovf_disk::nbd::Server::new(vec![("disk".into(), disk)]);
    let mut client = Client {
        input: data,
        answered: 0,
    };
    let _ = server.serve_connection(&mut client);
    // Each 28-byte request is answered with at most the disk (64 KiB) and a header; each
    // option with a handful of short replies.
    assert!(client.answered <= 1024 + data.len() / 28 * (65536 + 64) + data.len() * 8);
});
