//! VHDX outputs, dynamic and fixed, as Microsoft's "[MS-VHDX]: Virtual Hard Disk v2 (VHDX)
//! File Format" (v1.0) lays them out and qemu's `block/vhdx.c` writes them: what Hyper-V takes.
//!
//! ```text
//!   0      file type identifier ("vhdxfile", creator)
//!   64K    header 1, 128K header 2 ("head", CRC-32C, sequence numbers, no log to replay)
//!   192K   region table 1, 256K region table 2 ("regi": the BAT and the metadata region)
//!   1M     the log (1 MiB, empty: its GUID in the headers is zero)
//!   2M     the BAT: one entry per payload block, a sector bitmap entry after each chunk
//!   ...    the metadata region (1 MiB): file parameters, virtual disk size, page 83 data,
//!          logical and physical sector size
//!   ...    payload blocks, 1 MiB-aligned
//! ```
//!
//! Every field little-endian, every header and table checksummed with CRC-32C. Blocks follow
//! qemu's sizes (8 MiB up to 1 GiB, 16 MiB up to 100 GiB, 32 MiB up to 32 TiB, 64 MiB above);
//! sectors are 512 bytes. Dynamic: written in one pass by the copy engine's workers, each block
//! that holds data appended in disk order (`PAYLOAD_BLOCK_FULLY_PRESENT`), the others marked
//! `PAYLOAD_BLOCK_ZERO` (reads as zeros, as qemu marks them by default). With a checkpoint
//! (`--resume`), the metadata region goes first and each block's BAT entry is written with its
//! data: a write continued after a kill reads them back and goes on after them. Fixed: every block at
//! its own place in disk order, `LeaveBlocksAllocated` set; blocks of zeros written as zeros,
//! reserved (`fallocate`) or left as holes as [`crate::ZeroMode`] says.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use super::options::{WriteOptions, ZeroMode};
use super::ordered::{Turns, Written};
use super::workers::{io, put, set_len, write_at};
use crate::disk::Disk;
use crate::error::{Error, ErrorKind, Result};

/// How errors name the output.
const OUTPUT: &str = "vhdx output";

const MIB: u64 = 1 << 20;
const HEADER_1: u64 = 64 << 10;
const HEADER_2: u64 = 128 << 10;
const REGION_1: u64 = 192 << 10;
const REGION_2: u64 = 256 << 10;
const LOG_AT: u64 = MIB;
const LOG_LEN: u64 = MIB;
const BAT_AT: u64 = 2 * MIB;
const SECTOR: u64 = 512;
/// The largest disk, 64 TiB (the format's limit, and qemu's).
pub(crate) const MAX_CAPACITY: u64 = 64 << 40;

/// BAT entry states.
const PAYLOAD_BLOCK_ZERO: u64 = 2;
const PAYLOAD_BLOCK_FULLY_PRESENT: u64 = 6;

/// Region and metadata item GUIDs, in their on-disk byte order (the first three fields
/// little-endian).
const BAT_GUID: [u8; 16] = guid(
    0x2DC2_7766,
    0xF623,
    0x4200,
    [0x9D, 0x64, 0x11, 0x5E, 0x9B, 0xFD, 0x4A, 0x08],
);
const METADATA_GUID: [u8; 16] = guid(
    0x8B7C_A206,
    0x4790,
    0x4B9A,
    [0xB8, 0xFE, 0x57, 0x5F, 0x05, 0x0F, 0x88, 0x6E],
);
const FILE_PARAMETERS: [u8; 16] = guid(
    0xCAA1_6737,
    0xFA36,
    0x4D43,
    [0xB3, 0xB6, 0x33, 0xF0, 0xAA, 0x44, 0xE7, 0x6B],
);
const VIRTUAL_DISK_SIZE: [u8; 16] = guid(
    0x2FA5_4224,
    0xCD1B,
    0x4876,
    [0xB2, 0x11, 0x5D, 0xBE, 0xD8, 0x3B, 0xF4, 0xB8],
);
const PAGE_83_DATA: [u8; 16] = guid(
    0xBECA_12AB,
    0xB2E6,
    0x4523,
    [0x93, 0xEF, 0xC3, 0x09, 0xE0, 0x00, 0xC7, 0x46],
);
const LOGICAL_SECTOR_SIZE: [u8; 16] = guid(
    0x8141_BF1D,
    0xA96F,
    0x4709,
    [0xBA, 0x47, 0xF2, 0x33, 0xA8, 0xFA, 0xAB, 0x5F],
);
const PHYSICAL_SECTOR_SIZE: [u8; 16] = guid(
    0xCDA3_48C7,
    0x445D,
    0x4471,
    [0x9C, 0xC9, 0xE9, 0x88, 0x52, 0x51, 0xC5, 0x56],
);

/// A GUID's bytes as VHDX stores them.
const fn guid(a: u32, b: u16, c: u16, d: [u8; 8]) -> [u8; 16] {
    let a = a.to_le_bytes();
    let b = b.to_le_bytes();
    let c = c.to_le_bytes();
    [
        a[0], a[1], a[2], a[3], b[0], b[1], c[0], c[1], d[0], d[1], d[2], d[3], d[4], d[5], d[6],
        d[7],
    ]
}

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as VHDX checksums its structures.
fn crc32c(bytes: &[u8]) -> u32 {
    // Evaluated at compile time: an index out of range fails the build, never a run.
    #[allow(clippy::indexing_slicing)]
    const TABLE: [u32; 256] = {
        let mut t = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    (c >> 1) ^ 0x82F6_3B78
                } else {
                    c >> 1
                };
                k += 1;
            }
            t[i] = c;
            i += 1;
        }
        t
    };
    !bytes.iter().fold(!0u32, |c, &b| {
        TABLE
            .get(((c ^ u32::from(b)) & 0xff) as usize)
            .map_or(0, |t| t ^ (c >> 8))
    })
}

/// Stores the CRC-32C of `buf` (its checksum field zero) at `at`.
fn seal(buf: &mut [u8], at: usize) {
    put(buf, at, &[0; 4]);
    let sum = crc32c(buf);
    put(buf, at, &sum.to_le_bytes());
}

/// The block size qemu chooses for a disk of `capacity` bytes.
fn block_size(capacity: u64) -> u64 {
    match capacity {
        c if c > 32 << 40 => 64 * MIB,
        c if c > 100 << 30 => 32 * MIB,
        c if c > 1 << 30 => 16 * MIB,
        _ => 8 * MIB,
    }
}

/// Where everything goes in a VHDX of `capacity` bytes.
struct Layout {
    block: u64,
    blocks: u64,
    /// Payload blocks per sector bitmap block.
    chunk_ratio: u64,
    bat_len: u64,
    metadata_at: u64,
    data_start: u64,
}

impl Layout {
    fn new(capacity: u64) -> Self {
        let block = block_size(capacity);
        let blocks = capacity.div_ceil(block);
        let chunk_ratio = ((1u64 << 23) * SECTOR) / block;
        let entries = blocks + blocks.saturating_sub(1) / chunk_ratio;
        let bat_len = (entries * 8).div_ceil(MIB).max(1) * MIB;
        let metadata_at = BAT_AT + bat_len;
        Self {
            block,
            blocks,
            chunk_ratio,
            bat_len,
            metadata_at,
            data_start: metadata_at + MIB,
        }
    }

    /// The BAT index of payload block `b`: a sector bitmap entry follows every chunk.
    fn bat_index(&self, b: u64) -> u64 {
        b + b / self.chunk_ratio
    }
}

/// The shared state of the workers.
struct Copy<'a> {
    disk: &'a Disk,
    file: &'a File,
    path: &'a Path,
    layout: &'a Layout,
    /// Fixed: every block at its own place, zeros as `ZeroMode` says.
    fixed: Option<ZeroMode>,
    /// Blocks place themselves in disk order; the state is the blocks allocated.
    turns: Turns<u64>,
    next_window: AtomicU64,
    stop: AtomicBool,
    /// Each payload block's file offset, 0 when it holds no data.
    placed: Mutex<Vec<u64>>,
    data: AtomicU64,
    cancel: Option<&'a AtomicBool>,
    /// With a checkpoint: the blocks written, told to it.
    written: Option<Written<'a>>,
}

/// The BAT entry of a payload block at `host` (0: none, reads as zeros).
fn entry(host: u64) -> u64 {
    match host {
        0 => PAYLOAD_BLOCK_ZERO,
        h => PAYLOAD_BLOCK_FULLY_PRESENT | (h / MIB) << 20,
    }
}

impl Copy<'_> {
    fn work(&self, progress: &(dyn Fn(u64) + Sync)) -> Result<()> {
        let block = self.layout.block;
        let capacity = self.disk.capacity();
        let mut buf = vec![0u8; block as usize];
        while !self.stop.load(Ordering::Relaxed) {
            super::walk::cancelled(self.cancel)?;
            let window = super::workers::next_window(
                self.disk,
                &self.next_window,
                1,
                self.layout.blocks,
                block,
            )?;
            let Some(w) = window else { break };
            let held = w.holds.first().copied().unwrap_or(false);
            let n = block.min(capacity - w.start) as usize;
            buf.fill(0);
            if held {
                self.disk
                    .read_exact_at(w.start, buf.get_mut(..n).unwrap_or_default())?;
            }
            let data = held && !crate::codec::is_zero(&buf);
            let k = self.turns.take(w.first, &self.stop, |allocated| {
                let k = *allocated;
                *allocated += u64::from(data);
                k
            })?;
            let host = match (self.fixed, data) {
                (Some(_), _) => self.layout.data_start + w.first * block,
                (None, true) => self.layout.data_start + k * block,
                (None, false) => 0,
            };
            if data || self.fixed == Some(ZeroMode::Write) {
                write_at(self.file, self.path, OUTPUT, &buf, host)?;
            }
            if data {
                self.data.fetch_add(n as u64, Ordering::Relaxed);
            }
            if host != 0 {
                let mut placed = self.placed.lock().unwrap_or_else(|p| p.into_inner());
                if let Some(e) = placed.get_mut(w.first as usize) {
                    *e = host;
                }
            }
            if let Some(written) = &self.written {
                // The block's entry in place, so a resume finds it.
                let at = BAT_AT + self.layout.bat_index(w.first) * 8;
                write_at(self.file, self.path, OUTPUT, &entry(host).to_le_bytes(), at)?;
                written.window(w.first, self.file, self.path)?;
            }
            progress(w.len);
        }
        Ok(())
    }
}

/// Where the interrupted write into `file` got to: the blocks below the checkpoint's `done`
/// bytes and their BAT entries, read back (the metadata region must be this disk's, every
/// entry a block where this writer puts the next one), and a dynamic file cut after them.
/// Returns the first block to write, the blocks allocated, each block's place so far and the
/// disk's id.
fn resume_state(
    file: &File,
    path: &Path,
    done: u64,
    layout: &Layout,
    (capacity, fixed): (u64, bool),
) -> Result<(u64, u64, Vec<u64>, [u8; 16])> {
    use std::os::unix::fs::FileExt;
    let refuse = |at: u64, why: &str| Error::cannot_resume(Some(path), OUTPUT, at, why);
    let mut have = vec![0u8; MIB as usize];
    file.read_exact_at(&mut have, layout.metadata_at)
        .map_err(|_| refuse(layout.metadata_at, "the metadata region is missing"))?;
    // The disk's id is the interrupted write's; everything else as this write's.
    let mut id = [0u8; 16];
    if let Some(b) = have.get(PAGE_83_AT..PAGE_83_AT + 16) {
        id.copy_from_slice(b);
    }
    if have != metadata(capacity, layout.block, fixed, id) {
        return Err(refuse(
            layout.metadata_at,
            "the metadata region is not this disk's",
        ));
    }
    let first = (done / layout.block).min(layout.blocks);
    // The BAT up to the last entry below the checkpoint, in one read.
    let len = match first {
        0 => 0,
        n => (layout.bat_index(n - 1) + 1) * 8,
    };
    let mut table = vec![0u8; usize::try_from(len).unwrap_or(0)];
    file.read_exact_at(&mut table, BAT_AT)
        .map_err(|_| refuse(BAT_AT, "the BAT is cut short"))?;
    let mut placed = vec![0u64; layout.blocks as usize];
    let mut allocated = 0u64;
    for (b, slot) in (0..first).zip(placed.iter_mut()) {
        let i = layout.bat_index(b) as usize * 8;
        let at = BAT_AT + i as u64;
        let e: [u8; 8] = table
            .get(i..i + 8)
            .and_then(|e| e.try_into().ok())
            .ok_or_else(|| refuse(at, "the BAT is cut short"))?;
        let host = match fixed {
            true => layout.data_start + b * layout.block,
            false if u64::from_le_bytes(e) == PAYLOAD_BLOCK_ZERO => 0,
            false => layout.data_start + allocated * layout.block,
        };
        if u64::from_le_bytes(e) != entry(host) {
            return Err(refuse(
                at,
                "a BAT entry is not where this writer puts the block",
            ));
        }
        allocated += u64::from(host != 0 && !fixed);
        *slot = host;
    }
    if !fixed {
        let end = layout.data_start + allocated * layout.block;
        let len = file.metadata().map_err(io(path, OUTPUT, 0))?.len();
        if len < end {
            return Err(refuse(len, "the file ends before the blocks its BAT names"));
        }
        file.set_len(end.max(layout.data_start))
            .map_err(io(path, OUTPUT, end))?;
    }
    Ok((first, allocated, placed, id))
}

/// Writes `disk` as a VHDX of `capacity` bytes (at least the disk's) into `file`: dynamic, or
/// fixed when `fixed`. Returns the bytes of data written. With a checkpoint, the metadata
/// region goes first and each block's BAT entry is written with its data, so that a later
/// write given the checkpoint back continues after the blocks written ([`resume_state`]).
pub(crate) fn write_vhdx(
    disk: &Disk,
    file: &File,
    path: &Path,
    (capacity, fixed): (u64, bool),
    options: &WriteOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<u64> {
    if capacity > MAX_CAPACITY {
        return Err(Error::at(
            path,
            "vhdx output",
            0,
            ErrorKind::InvalidInput(format!(
                "a VHDX holds at most 64 TiB; this disk has {capacity} bytes"
            )),
        ));
    }
    let layout = Layout::new(capacity);
    let checkpoint = options.checkpoint.as_deref();
    let (first, allocated, placed, id) = match checkpoint.map_or(0, |c| c.resume_from()) {
        0 => (0, 0, vec![0; layout.blocks as usize], page83()),
        done => resume_state(file, path, done, &layout, (capacity, fixed))?,
    };
    let end = match fixed {
        true => layout.data_start + layout.blocks * layout.block,
        false => 0,
    };
    if fixed && first == 0 {
        set_len(file, path, OUTPUT, end, options.zero == ZeroMode::Falloc)?;
    }
    if checkpoint.is_some() && first == 0 {
        let meta = metadata(capacity, layout.block, fixed, id);
        write_at(file, path, OUTPUT, &meta, layout.metadata_at)?;
    }
    let from = (first * layout.block).min(capacity);
    if from > 0 {
        progress(from);
    }
    let copy = Copy {
        disk,
        file,
        path,
        layout: &layout,
        fixed: fixed.then_some(options.zero),
        turns: Turns::new(first, allocated),
        next_window: AtomicU64::new(first),
        stop: AtomicBool::new(false),
        placed: Mutex::new(placed),
        data: AtomicU64::new(0),
        cancel: options.cancel.as_deref(),
        written: checkpoint.map(|c| {
            let sizes = (layout.block, layout.blocks, capacity);
            Written::new(c, first, sizes, OUTPUT)
        }),
    };
    super::workers::run_workers(options.copy_workers(), &copy.stop, || copy.work(progress))?;
    let placed = copy.placed.into_inner().unwrap_or_else(|p| p.into_inner());
    let end = end.max(layout.data_start + copy.turns.into_inner() * layout.block);
    let mut bat = vec![0u8; layout.bat_len as usize];
    for (b, &host) in (0u64..).zip(&placed) {
        put(
            &mut bat,
            layout.bat_index(b) as usize * 8,
            &entry(host).to_le_bytes(),
        );
    }
    write_at(file, path, OUTPUT, &bat, BAT_AT)?;
    write_at(
        file,
        path,
        OUTPUT,
        &metadata(capacity, layout.block, fixed, id),
        layout.metadata_at,
    )?;
    let regions = region_table(&layout);
    write_at(file, path, OUTPUT, &regions, REGION_1)?;
    write_at(file, path, OUTPUT, &regions, REGION_2)?;
    let seed = u64::from(super::ddb::new_cid()) << 32 | u64::from(super::ddb::new_cid());
    write_at(file, path, OUTPUT, &header(seed, 1), HEADER_1)?;
    write_at(file, path, OUTPUT, &header(seed, 2), HEADER_2)?;
    write_at(file, path, OUTPUT, &identifier(), 0)?;
    file.set_len(end.max(layout.data_start))
        .map_err(io(path, OUTPUT, 0))?;
    Ok(copy.data.into_inner())
}

/// A new disk's unique id (its page 83 data).
fn page83() -> [u8; 16] {
    let x = u64::from(super::ddb::new_cid()) << 32 | u64::from(super::ddb::new_cid());
    let mut id = [0u8; 16];
    put(&mut id, 0, &x.to_le_bytes());
    put(&mut id, 8, &x.rotate_left(23).to_le_bytes());
    id
}

/// Where the page 83 data lies in the metadata region: the third item, after the file
/// parameters and the virtual disk size (8 bytes each) at 64 KiB.
const PAGE_83_AT: usize = (64 << 10) + 16;

/// The file type identifier: the signature and the creator, in UTF-16.
fn identifier() -> Vec<u8> {
    let mut b = vec![0u8; 64 << 10];
    put(&mut b, 0, b"vhdxfile");
    let creator: Vec<u8> = concat!("ovf-disk ", env!("CARGO_PKG_VERSION"))
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    put(&mut b, 8, &creator);
    b
}

/// Header `n` (1 or 2; the second's sequence number is one higher, so it is current): fresh
/// write GUIDs from `seed`, no log to replay (its GUID zero), the 1 MiB log after the headers.
fn header(seed: u64, n: u64) -> Vec<u8> {
    let mut h = vec![0u8; 4096];
    put(&mut h, 0, b"head");
    put(&mut h, 8, &n.to_le_bytes()); // sequence number
    let write_guid = |x: u64| -> Vec<u8> {
        [x, x.rotate_left(17) ^ 0x5bd1_e995]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect()
    };
    put(&mut h, 16, &write_guid(seed)); // file write GUID
    put(&mut h, 32, &write_guid(seed.rotate_left(31))); // data write GUID
                                                        // 48: log GUID, zero: nothing to replay.
    put(&mut h, 64, &0u16.to_le_bytes()); // log version
    put(&mut h, 66, &1u16.to_le_bytes()); // version
    put(&mut h, 68, &(LOG_LEN as u32).to_le_bytes());
    put(&mut h, 72, &LOG_AT.to_le_bytes());
    seal(&mut h, 4);
    h
}

/// The region table: the BAT and the metadata region, both required.
fn region_table(layout: &Layout) -> Vec<u8> {
    let mut r = vec![0u8; 64 << 10];
    put(&mut r, 0, b"regi");
    put(&mut r, 8, &2u32.to_le_bytes()); // entry count
    for (i, (id, at, len)) in [
        (BAT_GUID, BAT_AT, layout.bat_len),
        (METADATA_GUID, layout.metadata_at, MIB),
    ]
    .into_iter()
    .enumerate()
    {
        let e = 16 + i * 32;
        put(&mut r, e, &id);
        put(&mut r, e + 16, &at.to_le_bytes());
        put(&mut r, e + 24, &(len as u32).to_le_bytes());
        put(&mut r, e + 28, &1u32.to_le_bytes()); // required
    }
    seal(&mut r, 4);
    r
}

/// The metadata region: its table, then the five items qemu and Hyper-V require from 64 KiB.
fn metadata(capacity: u64, block: u64, fixed: bool, page83: [u8; 16]) -> Vec<u8> {
    let mut m = vec![0u8; MIB as usize];
    put(&mut m, 0, b"metadata");
    put(&mut m, 10, &5u16.to_le_bytes()); // entry count
    let page83 = page83.to_vec();
    let mut params = (block as u32).to_le_bytes().to_vec();
    params.extend_from_slice(&u32::from(fixed).to_le_bytes()); // LeaveBlocksAllocated
    let items: [([u8; 16], Vec<u8>, u32); 5] = [
        (FILE_PARAMETERS, params, 4),
        (VIRTUAL_DISK_SIZE, capacity.to_le_bytes().to_vec(), 6),
        (PAGE_83_DATA, page83, 6),
        (
            LOGICAL_SECTOR_SIZE,
            (SECTOR as u32).to_le_bytes().to_vec(),
            6,
        ),
        (
            PHYSICAL_SECTOR_SIZE,
            (SECTOR as u32).to_le_bytes().to_vec(),
            6,
        ),
    ];
    let mut offset = 64 << 10;
    for (i, (id, data, flags)) in items.iter().enumerate() {
        let e = 32 + i * 32;
        put(&mut m, e, id);
        put(&mut m, e + 16, &(offset as u32).to_le_bytes());
        put(&mut m, e + 20, &(data.len() as u32).to_le_bytes());
        // Bit 1: a property of the virtual disk; bit 2: required.
        put(&mut m, e + 24, &flags.to_le_bytes());
        put(&mut m, offset, data);
        offset += data.len();
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_is_castagnoli() {
        // RFC 3720's test vector: 32 bytes of zeros.
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
    }

    #[test]
    fn guids_are_stored_mixed_endian() {
        assert_eq!(
            BAT_GUID,
            [
                0x66, 0x77, 0xC2, 0x2D, 0x23, 0xF6, 0x00, 0x42, 0x9D, 0x64, 0x11, 0x5E, 0x9B, 0xFD,
                0x4A, 0x08
            ]
        );
    }

    #[test]
    fn the_bat_leaves_room_for_sector_bitmaps() {
        let l = Layout::new(200 << 30);
        assert_eq!((l.block, l.chunk_ratio), (32 * MIB, 128));
        assert_eq!(l.bat_index(127), 127);
        assert_eq!(l.bat_index(128), 129);
        assert_eq!(l.data_start % MIB, 0);
    }
}
