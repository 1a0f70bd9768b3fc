//! Reading a stream-optimized extent from a stream (a pipe, a tar member) in one forward pass,
//! with no seeking and no temporary copy, inflating it into a thick output as it goes.
//!
//! Spec: "Stream-Optimized Compressed" (pp. 11-13). The header comes first; grains follow, each
//! behind its grain marker, in increasing LBA order (as VMware writes them); grain table, grain
//! directory and footer blocks are skipped by their marker's sector count; the end-of-stream
//! marker (or, for qemu-img's files, the end of the input) ends the disk. Grains are inflated on
//! worker threads and written with positioned writes; the ranges between grains are zero-filled
//! through the sink in order, so the output is complete (eager-zeroed) when the stream ends. At
//! most a bounded number of compressed grains are in flight.
//!
//! Refused: grains out of LBA order or overlapping (a seekable reader handles those files),
//! grains past the capacity, compressed sizes larger than a grain can compress to, and a header
//! that is not a stream-optimized one.

use std::io::Read;
use std::path::Path;
use std::sync::mpsc;
use std::sync::Mutex;

use zerocopy::FromBytes;

use crate::error::{Error, ErrorKind, Result};
use crate::format::*;
use crate::sparse::inflate;

/// What a streaming read found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StreamReadStats {
    /// The embedded descriptor, when the header has one and it parses.
    pub descriptor: Option<crate::descriptor::Descriptor>,
    /// Capacity in bytes.
    pub capacity: u64,
    /// Grains inflated.
    pub grains: u64,
    /// Bytes consumed from the input.
    pub bytes_read: u64,
}

/// Where a streaming read puts the disk's bytes.
pub trait StreamSink: Sync {
    /// Called once with the capacity in bytes, before anything is written.
    fn begin(&self, capacity: u64) -> Result<()>;
    /// Writes inflated data at `offset` (from any worker thread).
    fn write(&self, offset: u64, data: &[u8]) -> Result<()>;
    /// Zero-fills `len` bytes at `offset` (called in order, from the reading thread).
    fn zero(&self, offset: u64, len: u64) -> Result<()>;
}

struct Input<'a, R: Read> {
    inner: &'a mut R,
    pos: u64,
    name: &'a str,
}

impl<R: Read> Input<'_, R> {
    fn err(&self, structure: &'static str, kind: ErrorKind) -> Error {
        Error::new(Some(Path::new(self.name)), structure, Some(self.pos), kind)
    }

    /// Reads exactly `buf.len()` bytes; `Ok(false)` at a clean end of input before any byte.
    fn fill(&mut self, structure: &'static str, buf: &mut [u8]) -> Result<bool> {
        let mut got = 0;
        while got < buf.len() {
            let dst = buf.get_mut(got..).unwrap_or(&mut []);
            match self.inner.read(dst) {
                Ok(0) if got == 0 => return Ok(false),
                Ok(0) => {
                    return Err(self.err(
                        structure,
                        ErrorKind::Truncated {
                            end: self.pos + buf.len() as u64,
                            file_len: self.pos + got as u64,
                        },
                    ))
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.err(structure, ErrorKind::Io(e))),
            }
        }
        self.pos += buf.len() as u64;
        Ok(true)
    }

    fn skip(&mut self, structure: &'static str, mut n: u64) -> Result<()> {
        let mut scratch = [0u8; 4096];
        while n > 0 {
            let k = n.min(scratch.len() as u64) as usize;
            if !self.fill(structure, scratch.get_mut(..k).unwrap_or(&mut []))? {
                return Err(self.err(
                    structure,
                    ErrorKind::Truncated {
                        end: self.pos + n,
                        file_len: self.pos,
                    },
                ));
            }
            n -= k as u64;
        }
        Ok(())
    }
}

/// Reads the capacity (bytes) from the first 512 bytes of a stream-optimized extent, so outputs
/// can be made before the stream is read; the caller passes the same bytes back in front of the
/// rest of the stream (`Cursor::new(head).chain(rest)`).
pub fn stream_capacity(head: &[u8; 512], name: &str) -> Result<u64> {
    let path = Path::new(name);
    let header = crate::sparse::parse_header(head, path, "sparse header", 0)?;
    let capacity = header.capacity.get();
    if capacity > crate::sparse::MAX_CAPACITY_SECTORS {
        return Err(Error::field(
            path,
            "sparse header",
            12,
            "capacity",
            capacity,
            "too large to be counted in bytes",
        ));
    }
    Ok(capacity * SECTOR_SIZE)
}

/// Reads a stream-optimized extent from `input` (named `name` in errors) and writes the whole
/// disk through `sink`: grains inflated on `threads` workers, gaps zero-filled in order.
pub fn read_stream_optimized<R: Read>(
    input: &mut R,
    name: &str,
    sink: &dyn StreamSink,
    threads: usize,
) -> Result<StreamReadStats> {
    let path = Path::new(name);
    let mut inp = Input {
        inner: input,
        pos: 0,
        name,
    };
    let mut head = [0u8; 512];
    if !inp.fill("sparse header", &mut head)? {
        return Err(inp.err(
            "sparse header",
            ErrorKind::Truncated {
                end: 512,
                file_len: 0,
            },
        ));
    }
    let header = crate::sparse::parse_header(&head, path, "sparse header", 0)?;
    let flags = header.flags.get();
    if flags & (FLAG_COMPRESSED | FLAG_MARKERS) != FLAG_COMPRESSED | FLAG_MARKERS
        || header.compress_algorithm.get() != COMPRESSION_DEFLATE
    {
        return Err(Error::new(
            Some(path),
            "sparse header",
            Some(8),
            ErrorKind::Unsupported(
                "streaming reads need a stream-optimized extent (compressed grains with markers)"
                    .into(),
            ),
        ));
    }
    let grain_sectors = header.grain_size.get();
    if !grain_sectors.is_power_of_two()
        || !(crate::sparse::MIN_GRAIN_SECTORS..=crate::sparse::MAX_GRAIN_SECTORS)
            .contains(&grain_sectors)
    {
        return Err(Error::field(
            path,
            "sparse header",
            20,
            "grainSize",
            grain_sectors,
            "not a power of two from 8 to 16384 sectors",
        ));
    }
    let capacity_sectors = header.capacity.get();
    if capacity_sectors > crate::sparse::MAX_CAPACITY_SECTORS {
        return Err(Error::field(
            path,
            "sparse header",
            12,
            "capacity",
            capacity_sectors,
            "too large to be counted in bytes",
        ));
    }
    let capacity = capacity_sectors * SECTOR_SIZE;
    let grain_bytes = grain_sectors * SECTOR_SIZE;
    let max_compressed = crate::sparse::max_compressed_grain(grain_bytes);
    // Grains start at overHead (VMware and qemu); everything before it is header, descriptor
    // and (qemu) the grain directory and tables, which a streaming reader does not need.
    let over_head = header.over_head.get();
    let first = over_head
        .checked_mul(SECTOR_SIZE)
        .filter(|&b| (SECTOR_SIZE..=64 << 20).contains(&b))
        .ok_or_else(|| {
            Error::field(
                path,
                "sparse header",
                64,
                "overHead",
                over_head,
                "the first grain must start within 64 MiB",
            )
        })?;
    sink.begin(capacity)?;
    // The embedded descriptor, when it lies before the first grain; the rest is skipped.
    let mut descriptor = None;
    let (d_at, d_len) = (header.descriptor_offset.get(), header.descriptor_size.get());
    let mut pos = SECTOR_SIZE;
    // Every product here is bounded by `first` (64 MiB at most) before it is used.
    let end = d_at
        .checked_add(d_len)
        .and_then(|e| e.checked_mul(SECTOR_SIZE));
    if let Some(end) = end.filter(|&e| {
        d_at >= 1
            && (1..=crate::descriptor::MAX_DESCRIPTOR_SIZE / SECTOR_SIZE).contains(&d_len)
            && e <= first
    }) {
        inp.skip("embedded descriptor", d_at * SECTOR_SIZE - pos)?;
        let mut text = vec![0u8; (d_len * SECTOR_SIZE) as usize];
        inp.fill("embedded descriptor", &mut text)?;
        descriptor = crate::descriptor::Descriptor::parse_bytes(&text).ok();
        pos = end;
    }
    inp.skip("embedded descriptor", first - pos)?;

    let threads = threads.max(1);
    let (job_tx, job_rx) = mpsc::sync_channel::<(u64, u64, Vec<u8>)>(threads * 8);
    let job_rx = Mutex::new(job_rx);
    let failure: Mutex<Option<Error>> = Mutex::new(None);
    let mut grains = 0u64;
    let mut covered = 0u64; // bytes of the disk zero-filled or handed to a worker so far

    let result = std::thread::scope(|scope| -> Result<()> {
        for _ in 0..threads {
            let job_rx = &job_rx;
            let failure = &failure;
            scope.spawn(move || {
                let mut out = vec![0u8; grain_bytes as usize];
                loop {
                    let job = match job_rx.lock() {
                        Ok(rx) => rx.recv(),
                        Err(_) => return,
                    };
                    let Ok((offset, data_at, packed)) = job else { return };
                    let len = grain_bytes.min(capacity - offset) as usize;
                    let r = inflate(&packed, &mut out)
                        .map_err(|e| Error::new(Some(path), "compressed grain", Some(data_at), ErrorKind::Decompress(format!("grain at disk offset {offset:#x}: {e}"))))
                        .and_then(|n| {
                            if n < len {
                                return Err(Error::new(Some(path), "compressed grain", Some(data_at), ErrorKind::Decompress(format!("grain at disk offset {offset:#x} inflates to {n} bytes, expected {len}"))));
                            }
                            sink.write(offset, out.get(..len).unwrap_or(&[]))
                        });
                    if let Err(e) = r {
                        if let Ok(mut f) = failure.lock() {
                            f.get_or_insert(e);
                        }
                    }
                }
            });
        }
        let outcome = (|| -> Result<()> {
            let mut marker = [0u8; 512];
            loop {
                if failure.lock().map(|f| f.is_some()).unwrap_or(true) {
                    return Ok(());
                }
                let at = inp.pos;
                if !inp.fill("marker", &mut marker[..12])? {
                    return Ok(()); // qemu-img's files end without an end-of-stream marker
                }
                let m = GrainMarker::read_from_bytes(&marker[..12]).map_err(|_| {
                    inp.err("marker", ErrorKind::Inconsistent("short marker".into()))
                })?;
                let (val, size) = (m.lba.get(), u64::from(m.size.get()));
                if size == 0 {
                    // A metadata marker: the rest of its sector, then its blocks.
                    inp.fill("metadata marker", &mut marker[12..])?;
                    let md = MetadataMarker::read_from_bytes(&marker[..]).map_err(|_| {
                        inp.err(
                            "metadata marker",
                            ErrorKind::Inconsistent("short marker".into()),
                        )
                    })?;
                    match md.marker_type.get() {
                        MARKER_EOS => return Ok(()),
                        MARKER_GT | MARKER_GD | MARKER_FOOTER => {
                            let n = val
                                .checked_mul(SECTOR_SIZE)
                                .filter(|&n| n <= 1 << 30)
                                .ok_or_else(|| {
                                    Error::field(
                                        path,
                                        "metadata marker",
                                        at,
                                        "numSectors",
                                        val,
                                        "more metadata than any disk has",
                                    )
                                })?;
                            inp.skip("metadata", n)?;
                        }
                        t => {
                            return Err(Error::field(
                                path,
                                "metadata marker",
                                at + 12,
                                "type",
                                t.into(),
                                "unknown marker type",
                            ))
                        }
                    }
                    continue;
                }
                if size > max_compressed {
                    return Err(Error::field(
                        path,
                        "grain marker",
                        at + 8,
                        "size",
                        size,
                        "not a plausible compressed grain size",
                    ));
                }
                let offset = val
                    .checked_mul(SECTOR_SIZE)
                    .filter(|o| o % grain_bytes == 0 && *o < capacity)
                    .ok_or_else(|| {
                        Error::field(
                            path,
                            "grain marker",
                            at,
                            "lba",
                            val,
                            "not the start of a grain inside the capacity",
                        )
                    })?;
                if offset < covered {
                    return Err(Error::new(Some(path), "grain marker", Some(at), ErrorKind::Unsupported(format!("grain at LBA {val:#x} comes after later grains: this file must be read with a seekable reader"))));
                }
                let mut packed = vec![0u8; size as usize];
                inp.fill("compressed grain", &mut packed)?;
                let pad = (SECTOR_SIZE - (GRAIN_MARKER_SIZE + size) % SECTOR_SIZE) % SECTOR_SIZE;
                // The last block of a file may end without its padding.
                if pad > 0 {
                    let mut p = vec![0u8; pad as usize];
                    let _ = inp.fill("grain padding", &mut p);
                }
                if offset > covered {
                    sink.zero(covered, offset - covered)?;
                }
                covered = offset + grain_bytes.min(capacity - offset);
                grains += 1;
                if job_tx
                    .send((offset, at + GRAIN_MARKER_SIZE, packed))
                    .is_err()
                {
                    return Ok(());
                }
            }
        })();
        drop(job_tx);
        outcome
    });
    if let Some(e) = failure.into_inner().ok().flatten() {
        return Err(e);
    }
    result?;
    if covered < capacity {
        sink.zero(covered, capacity - covered)?;
    }
    Ok(StreamReadStats {
        descriptor,
        capacity,
        grains,
        bytes_read: inp.pos,
    })
}
