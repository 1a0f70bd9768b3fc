//! Dynamic VHD outputs, as Microsoft's "Virtual Hard Disk Image Format Specification" (v1.0,
//! 2006) lays them out and qemu's `block/vpc.c` reads them: a copy of the footer, the dynamic
//! disk header, the block allocation table (BAT), the data blocks (each a sector bitmap and
//! 2 MiB of data), the footer. Every field big-endian; the footer and the header carry the
//! one's complement of their byte sum. What Hyper-V takes, and Azure and XCP-ng import
//! Fixed VHDs (what Azure takes) are the disk's bytes, written by the copy engine as a raw
//! image, and the same footer after them ([`write_fixed_footer`]).
//!
//! Written in one pass by the copy engine's workers, like qcow2: each takes four blocks (8 MiB)
//! of the disk, reads what the allocation map says holds data, leaves blocks that are all
//! zeros unallocated (BAT entry `0xffffffff`, which reads as zeros) and appends the others,
//! windows in disk order (so the layout does not depend on the threads). With a checkpoint
//! (`--resume`), the dynamic header goes first and each window's BAT entries are written with
//! its data: a write continued after a kill reads them back and goes on after them.
//! The footer names the creator `win ` (Hyper-V), which tells readers to take the size from
//! the footer's current size, not from the CHS geometry (qemu rounds a Virtual PC disk's size
//! down to its geometry).

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use super::options::WriteOptions;
use super::ordered::{Turns, Written};
use super::workers::{io, put, write_at};
use crate::disk::Disk;
use crate::error::{Error, ErrorKind, Result};

/// How errors name the output.
const OUTPUT: &str = "vhd output";

/// Bytes of data per block (the spec's default, and qemu's).
const BLOCK: u64 = 2 << 20;
/// The sector bitmap before each block's data: one bit per sector, padded to a sector.
const BITMAP: u64 = 512;
/// Blocks a worker takes at once (8 MiB).
const WINDOW_BLOCKS: u64 = 4;
/// Where the dynamic disk header and the BAT start.
const HEADER_AT: u64 = 512;
const BAT_AT: u64 = 1536;
/// The largest disk (2040 GiB): BAT entries are 32-bit sector offsets; qemu refuses more.
pub(crate) const MAX_CAPACITY: u64 = 0xff00_0000 * 512;
/// Seconds from the Unix epoch to VHD's, 2000-01-01 00:00:00 UTC.
const VHD_EPOCH: u64 = 946_684_800;

/// The one's complement of the byte sum: the checksum of the footer and the dynamic header.
fn checksum(bytes: &[u8]) -> u32 {
    !bytes
        .iter()
        .fold(0u32, |s, &b| s.wrapping_add(u32::from(b)))
}

/// The CHS geometry of `capacity` bytes, by the spec's algorithm (Appendix: CHS calculation).
fn geometry(capacity: u64) -> (u16, u8, u8) {
    let total = (capacity / 512).min(65535 * 16 * 255);
    let (mut spt, mut heads, mut cth);
    if total >= 65535 * 16 * 63 {
        spt = 255;
        heads = 16;
        cth = total / spt;
    } else {
        spt = 17;
        cth = total / spt;
        heads = cth.div_ceil(1024).max(4);
        if cth >= heads * 1024 || heads > 16 {
            spt = 31;
            heads = 16;
            cth = total / spt;
        }
        if cth >= heads * 1024 {
            spt = 63;
            heads = 16;
            cth = total / spt;
        }
    }
    let cylinders = (cth / heads).min(u64::from(u16::MAX));
    (cylinders as u16, heads as u8, spt as u8)
}

/// The 512-byte footer of a disk of `capacity` bytes, dynamic (its header at 512) or fixed.
fn footer(capacity: u64, seed: u64, fixed: bool) -> [u8; 512] {
    let mut f = [0u8; 512];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (c, h, s) = geometry(capacity);
    put(&mut f, 0, b"conectix");
    put(&mut f, 8, &2u32.to_be_bytes()); // features: reserved bit, always set
    put(&mut f, 12, &0x0001_0000u32.to_be_bytes()); // file format version 1.0
    let data_offset = if fixed { u64::MAX } else { HEADER_AT };
    put(&mut f, 16, &data_offset.to_be_bytes()); // data offset: the dynamic header
    put(
        &mut f,
        24,
        &(now.saturating_sub(VHD_EPOCH) as u32).to_be_bytes(),
    );
    put(&mut f, 28, b"win ");
    put(&mut f, 32, &0x000a_0000u32.to_be_bytes());
    put(&mut f, 36, b"Wi2k");
    put(&mut f, 40, &capacity.to_be_bytes()); // original size
    put(&mut f, 48, &capacity.to_be_bytes()); // current size
    put(&mut f, 56, &c.to_be_bytes());
    put(&mut f, 58, &[h, s]);
    let disk_type: u32 = if fixed { 2 } else { 3 };
    put(&mut f, 60, &disk_type.to_be_bytes());
    // A unique id: the seed (the time and this process's randomness) spread over 16 bytes.
    let id: Vec<u8> = [seed, seed.rotate_left(29) ^ now]
        .iter()
        .flat_map(|x| x.to_be_bytes())
        .collect();
    put(&mut f, 68, &id);
    let sum = checksum(&f);
    put(&mut f, 64, &sum.to_be_bytes());
    f
}

/// Randomness for the footer's unique id.
fn seed() -> u64 {
    u64::from(super::ddb::new_cid()) | (u64::from(super::ddb::new_cid()) << 32)
}

/// Writes the footer of a fixed VHD whose `len` bytes of data precede it in `file` (written by
/// the copy engine, as a raw image).
pub(crate) fn write_fixed_footer(file: &File, path: &Path, len: u64) -> Result<()> {
    write_at(file, path, OUTPUT, &footer(len, seed(), true), len)?;
    file.set_len(len + 512).map_err(io(path, OUTPUT, len))
}

/// The 1024-byte dynamic disk header for `entries` BAT entries.
fn dynamic_header(entries: u32) -> [u8; 1024] {
    let mut d = [0u8; 1024];
    put(&mut d, 0, b"cxsparse");
    put(&mut d, 8, &u64::MAX.to_be_bytes()); // data offset: unused
    put(&mut d, 16, &BAT_AT.to_be_bytes());
    put(&mut d, 24, &0x0001_0000u32.to_be_bytes());
    put(&mut d, 28, &entries.to_be_bytes());
    put(&mut d, 32, &(BLOCK as u32).to_be_bytes());
    let sum = checksum(&d);
    put(&mut d, 36, &sum.to_be_bytes());
    d
}

/// The shared state of the workers.
struct Copy<'a> {
    disk: &'a Disk,
    file: &'a File,
    path: &'a Path,
    blocks: u64,
    /// Where the first block (its bitmap) starts in the file.
    data_start: u64,
    /// Windows place their blocks in disk order; the state is the blocks allocated.
    turns: Turns<u64>,
    next_window: AtomicU64,
    stop: AtomicBool,
    /// The BAT: each block's sector in the file, or `u32::MAX` (unallocated).
    bat: Mutex<Vec<u32>>,
    data: AtomicU64,
    cancel: Option<&'a AtomicBool>,
    /// With a checkpoint: the windows written, told to it.
    written: Option<Written<'a>>,
}

impl Copy<'_> {
    fn work(&self, progress: &(dyn Fn(u64) + Sync)) -> Result<()> {
        let capacity = self.disk.capacity();
        let slot = (BITMAP + BLOCK) as usize;
        let mut buf = vec![0u8; slot * WINDOW_BLOCKS as usize];
        while !self.stop.load(Ordering::Relaxed) {
            super::walk::cancelled(self.cancel)?;
            let window = super::workers::next_window(
                self.disk,
                &self.next_window,
                WINDOW_BLOCKS,
                self.blocks,
                BLOCK,
            )?;
            let Some(super::workers::Window {
                first,
                start,
                len,
                holds,
            }) = window
            else {
                break;
            };
            // The blocks that hold data, packed one after the other (bitmap and data each)
            // in the order they take in the file.
            let mut kept = Vec::new();
            for (i, _) in holds.iter().enumerate().filter(|(_, h)| **h) {
                let at = start + i as u64 * BLOCK;
                let n = BLOCK.min(capacity - at) as usize;
                let packed = buf
                    .get_mut(kept.len() * slot..(kept.len() + 1) * slot)
                    .unwrap_or_default();
                let (bitmap, block) = packed.split_at_mut(BITMAP as usize);
                block.fill(0);
                self.disk
                    .read_exact_at(at, block.get_mut(..n).unwrap_or_default())?;
                if block.iter().all(|&b| b == 0) {
                    continue;
                }
                bitmap.fill(0xff);
                kept.push((i as u64, n as u64));
            }
            let count = kept.len() as u64;
            let index = first / WINDOW_BLOCKS;
            let k = self.turns.take(index, &self.stop, |allocated| {
                let k = *allocated;
                *allocated += count;
                k
            })?;
            let host = self.data_start + k * (BITMAP + BLOCK);
            let bytes = buf.get(..kept.len() * slot).unwrap_or_default();
            if !bytes.is_empty() {
                write_at(self.file, self.path, OUTPUT, bytes, host)?;
            }
            let mut entries = vec![u32::MAX; holds.len()];
            for (j, &(i, n)) in kept.iter().enumerate() {
                let at = host + j as u64 * (BITMAP + BLOCK);
                let sector = u32::try_from(at / 512).map_err(|_| {
                    Error::at(
                        self.path,
                        OUTPUT,
                        at,
                        ErrorKind::InvalidInput("the VHD would pass 2 TiB".into()),
                    )
                })?;
                if let Some(e) = entries.get_mut(i as usize) {
                    *e = sector;
                }
                self.data.fetch_add(n, Ordering::Relaxed);
            }
            {
                let mut bat = self.bat.lock().unwrap_or_else(|p| p.into_inner());
                for (e, &v) in bat.iter_mut().skip(first as usize).zip(&entries) {
                    *e = v;
                }
            }
            if let Some(w) = &self.written {
                // The window's entries in place, so a resume finds its blocks.
                let table: Vec<u8> = entries.iter().flat_map(|e| e.to_be_bytes()).collect();
                write_at(self.file, self.path, OUTPUT, &table, BAT_AT + first * 4)?;
                w.window(index, self.file, self.path)?;
            }
            progress(len);
        }
        Ok(())
    }
}

/// Where the interrupted write into `file` got to: the blocks below the checkpoint's `done`
/// bytes (whole windows) and their BAT entries, read back (the dynamic header must be this
/// disk's, every entry a block where this writer puts the next one), and the file cut after
/// them. Returns the first window to write, the blocks allocated and the BAT so far.
fn resume_state(
    file: &File,
    path: &Path,
    done: u64,
    (blocks, data_start): (u64, u64),
) -> Result<(u64, u64, Vec<u32>)> {
    use std::os::unix::fs::FileExt;
    let refuse = |at: u64, why: &str| Error::cannot_resume(Some(path), OUTPUT, at, why);
    let entries = u32::try_from(blocks).unwrap_or(u32::MAX);
    let mut head = [0u8; 1024];
    file.read_exact_at(&mut head, HEADER_AT)
        .map_err(|_| refuse(HEADER_AT, "the dynamic disk header is missing"))?;
    if head != dynamic_header(entries) {
        return Err(refuse(
            HEADER_AT,
            "the dynamic disk header is not this disk's",
        ));
    }
    let windows = blocks.div_ceil(WINDOW_BLOCKS);
    let window = (done / (WINDOW_BLOCKS * BLOCK)).min(windows);
    let below = (window * WINDOW_BLOCKS).min(blocks);
    let mut table = vec![0u8; below as usize * 4];
    file.read_exact_at(&mut table, BAT_AT)
        .map_err(|_| refuse(BAT_AT, "the BAT is cut short"))?;
    let mut bat = vec![u32::MAX; blocks as usize];
    let mut allocated = 0u64;
    for (b, (e, slot)) in table.chunks_exact(4).zip(bat.iter_mut()).enumerate() {
        let v = u32::from_be_bytes(e.try_into().unwrap_or([0xff; 4]));
        if v != u32::MAX {
            let want = (data_start + allocated * (BITMAP + BLOCK)) / 512;
            if u64::from(v) != want {
                return Err(refuse(
                    BAT_AT + b as u64 * 4,
                    "a BAT entry is not where this writer puts the block",
                ));
            }
            allocated += 1;
        }
        *slot = v;
    }
    let end = data_start + allocated * (BITMAP + BLOCK);
    let len = file.metadata().map_err(io(path, OUTPUT, 0))?.len();
    if len < end {
        return Err(refuse(len, "the file ends before the blocks its BAT names"));
    }
    file.set_len(end).map_err(io(path, OUTPUT, end))?;
    Ok((window, allocated, bat))
}

/// Writes `disk` as a dynamic VHD of `capacity` bytes (at least the disk's) into `file`.
/// Returns the bytes of data written. With a checkpoint, the dynamic header goes first and
/// each window's BAT entries are written with its data, so that a later write given the
/// checkpoint back continues after the windows written ([`resume_state`]).
pub(crate) fn write_vhd(
    disk: &Disk,
    file: &File,
    path: &Path,
    capacity: u64,
    options: &WriteOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<u64> {
    if capacity > MAX_CAPACITY {
        return Err(Error::at(
            path,
            "vhd output",
            0,
            ErrorKind::InvalidInput(format!(
                "a VHD holds at most {MAX_CAPACITY} bytes (2040 GiB); this disk has {capacity}"
            )),
        ));
    }
    let blocks = capacity.div_ceil(BLOCK);
    let bat_bytes = (blocks * 4).div_ceil(512) * 512;
    // Each block's data 4 KiB-aligned after its bitmap sector, for the first block at least.
    let data_start = (BAT_AT + bat_bytes + BITMAP).div_ceil(4096) * 4096 - BITMAP;
    let entries = u32::try_from(blocks).unwrap_or(u32::MAX);
    let checkpoint = options.checkpoint.as_deref();
    let (window, allocated, bat) = match checkpoint.map_or(0, |c| c.resume_from()) {
        0 => (0, 0, vec![u32::MAX; blocks as usize]),
        done => resume_state(file, path, done, (blocks, data_start))?,
    };
    if checkpoint.is_some() && window == 0 {
        write_at(file, path, OUTPUT, &dynamic_header(entries), HEADER_AT)?;
    }
    let from = (window * WINDOW_BLOCKS * BLOCK).min(capacity);
    if from > 0 {
        progress(from);
    }
    let copy = Copy {
        disk,
        file,
        path,
        blocks,
        data_start,
        turns: Turns::new(window, allocated),
        next_window: AtomicU64::new(window * WINDOW_BLOCKS),
        stop: AtomicBool::new(false),
        bat: Mutex::new(bat),
        data: AtomicU64::new(0),
        cancel: options.cancel.as_deref(),
        written: checkpoint.map(|c| {
            let windows = blocks.div_ceil(WINDOW_BLOCKS);
            Written::new(
                c,
                window,
                (WINDOW_BLOCKS * BLOCK, windows, capacity),
                OUTPUT,
            )
        }),
    };
    super::workers::run_workers(options.copy_workers(), &copy.stop, || copy.work(progress))?;
    let bat = copy.bat.into_inner().unwrap_or_else(|p| p.into_inner());
    let mut table = vec![0xffu8; bat_bytes as usize];
    for (slot, e) in table.chunks_exact_mut(4).zip(&bat) {
        slot.copy_from_slice(&e.to_be_bytes());
    }
    write_at(file, path, OUTPUT, &table, BAT_AT)?;
    write_at(file, path, OUTPUT, &dynamic_header(entries), HEADER_AT)?;
    let foot = footer(capacity, seed(), false);
    write_at(file, path, OUTPUT, &foot, 0)?;
    let end = data_start + copy.turns.into_inner() * (BITMAP + BLOCK);
    write_at(file, path, OUTPUT, &foot, end)?;
    file.set_len(end + 512).map_err(io(path, OUTPUT, end))?;
    Ok(copy.data.into_inner())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::indexing_slicing)]

    use super::*;

    #[test]
    fn geometry_follows_the_spec() {
        // 127 GiB and more: the largest geometry.
        assert_eq!(geometry(200 << 30), (65535, 16, 255));
        // 64 MiB: 17 sectors a track; 131072 / 17 = 7710 cylinders times heads, so 8 heads
        // and 963 cylinders (qemu rounds its own up to 964: its size is then the geometry's).
        assert_eq!(geometry(64 << 20), (963, 8, 17));
    }

    #[test]
    fn checksums_make_the_sums_all_ones() {
        let f = footer(64 << 20, 7, false);
        let mut zeroed = f;
        zeroed[64..68].fill(0);
        assert_eq!(
            u32::from_be_bytes([f[64], f[65], f[66], f[67]]),
            checksum(&zeroed)
        );
        let d = dynamic_header(32);
        let mut zeroed = d;
        zeroed[36..40].fill(0);
        assert_eq!(
            u32::from_be_bytes([d[36], d[37], d[38], d[39]]),
            checksum(&zeroed)
        );
    }
}
