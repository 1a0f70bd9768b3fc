//! An existing qcow2 image written in place ([`Qcow2Update`]): what a warm migration writes
//! each snapshot delta or changed area into when its copy of the disk is a qcow2 image (a
//! Proxmox, OpenStack or KVM host's disk).
//!
//! A write to a cluster the image holds once (its L2 entry's `COPIED` bit set) goes where the
//! cluster is. Any other cluster (unallocated, zero, compressed, or shared with a snapshot) is
//! copied on write: its current contents and the new bytes go to a new cluster appended to the
//! file, then the refcount of the new cluster is set, then the L2 entry points at it, then the
//! old cluster's refcount drops. A missing L2 table or refcount block is appended the same way
//! (zeroed, counted, then named by the L1 table or the refcount table). Whole clusters of zeros
//! become zero clusters (version 3; version 2 images get zeros written). `qemu-img check` finds
//! no leak and no corruption after any sequence of writes.
//!
//! Refused: images with a backing file (a copy of a disk is whole), internal snapshots,
//! refcounts other than 16 bits, the dirty bit (refcounts not to be trusted), encryption and
//! what the reader refuses. A refcount table too small for the clusters appended moves to the
//! end of the file, twice as large, as qemu grows it. Writes are ordered as above
//! but not flushed one by one: a process killed mid-write leaves a consistent image (the page
//! cache keeps the order); [`Qcow2Update::flush`] makes them durable, which is what a
//! checkpoint must call before it records progress.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind, Feature, Result};
use crate::io::Backing;
use crate::read::grains::GrainEntry;
use crate::read::qcow2::{Qcow2Extent, INCOMPAT_DIRTY};

/// "Refcount is exactly one".
const COPIED: u64 = 1 << 63;
/// Bits 9..55 of an L1 or L2 entry: a host offset.
const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
/// L2 entry bit 0: reads as zeros.
const ZERO: u64 = 1;
/// L2 entry bit 62: compressed.
const COMPRESSED: u64 = 1 << 62;

/// A qcow2 image (version 2 or 3, no backing file) opened for writing in place. See the module
/// documentation for what it writes and refuses.
///
/// ```no_run
/// # fn main() -> vmdk::Result<()> {
/// let mut image = vmdk::Qcow2Update::open("disk.qcow2")?;
/// image.write_at(1 << 20, &[0x55; 4096])?;
/// image.write_zeroes(8 << 20, 4 << 20)?;
/// image.flush()?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Qcow2Update {
    path: PathBuf,
    file: File,
    /// The image as it was opened: header, compressed clusters.
    image: Qcow2Extent,
    bits: u32,
    version: u32,
    l1_at: u64,
    l1: Vec<u64>,
    rt_at: u64,
    rt: Vec<u64>,
    /// L2 tables read or written, by L1 index: their offset and entries.
    l2: HashMap<usize, (u64, Vec<u64>)>,
    /// Where the next appended cluster goes.
    end: u64,
}

impl Qcow2Update {
    /// Opens the qcow2 image at `path` for writing, checking it can be written in place.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let io = |e| Error::file(&path, ErrorKind::Io(e));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io)?;
        let reader = file.try_clone().map_err(io)?;
        let image = Qcow2Extent::open(Backing::from_file(&path, reader)?)?;
        let h = *image.header();
        let refuse = |what: &str| {
            Err(Error::file(
                &path,
                ErrorKind::Unsupported(Feature::Qcow2(format!("{what}, written in place"))),
            ))
        };
        if image.backing_file().is_some() {
            return refuse("a backing file");
        }
        if h.nb_snapshots.get() > 0 {
            return refuse("internal snapshots");
        }
        if h.refcount_order.get() != 4 {
            return refuse("refcounts other than 16 bits");
        }
        if h.incompatible_features.get() & INCOMPAT_DIRTY != 0 {
            return refuse("the dirty bit set (refcounts to repair first: qemu-img check -r all)");
        }
        let bits = h.cluster_bits.get();
        let cluster = 1u64 << bits;
        let rt_at = h.refcount_table_offset.get();
        let rt_len = u64::from(h.refcount_table_clusters.get()) << bits;
        let rt_bytes = image.read_metadata("refcount table", rt_at, rt_len)?;
        let rt = rt_bytes
            .chunks_exact(8)
            .map(|c| c.try_into().map_or(0, u64::from_be_bytes))
            .collect();
        let len = file.metadata().map_err(io)?.len();
        Ok(Self {
            l1: image.l1().to_vec(),
            l1_at: h.l1_table_offset.get(),
            version: h.version.get(),
            end: len.div_ceil(cluster) * cluster,
            path,
            file,
            image,
            bits,
            rt_at,
            rt,
            l2: HashMap::new(),
        })
    }

    /// The disk's size in bytes.
    pub fn capacity(&self) -> u64 {
        self.image.capacity_bytes()
    }

    fn cluster(&self) -> u64 {
        1 << self.bits
    }

    fn io(&self, at: u64) -> impl Fn(std::io::Error) -> Error + '_ {
        move |e| Error::at(&self.path, "qcow2 image", at, ErrorKind::Io(e))
    }

    fn pwrite(&self, buf: &[u8], at: u64) -> Result<()> {
        self.file.write_all_at(buf, at).map_err(self.io(at))
    }

    fn check_range(&self, offset: u64, len: u64) -> Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.capacity() => Ok(()),
            _ => Err(Error::at(
                &self.path,
                "qcow2 image",
                offset,
                ErrorKind::InvalidInput(format!(
                    "a write of {len} bytes ends past the capacity {}",
                    self.capacity()
                )),
            )),
        }
    }

    /// Writes `data` at byte `offset` of the disk.
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        self.check_range(offset, data.len() as u64)?;
        let cluster = self.cluster();
        let mut done = 0usize;
        while done < data.len() {
            let at = offset + done as u64;
            let within = at % cluster;
            let n = ((cluster - within) as usize).min(data.len() - done);
            let piece = data.get(done..done + n).unwrap_or_default();
            self.write_cluster(at / cluster, within, piece)?;
            done += n;
        }
        Ok(())
    }

    /// Makes `len` bytes from `offset` read as zeros: whole clusters become zero clusters
    /// (their space kept when the image holds them once), the rest gets zeros written.
    pub fn write_zeroes(&mut self, offset: u64, len: u64) -> Result<()> {
        self.check_range(offset, len)?;
        let cluster = self.cluster();
        let zeros = vec![0u8; cluster as usize];
        let end = offset + len;
        let mut at = offset;
        while at < end {
            let within = at % cluster;
            let n = (cluster - within).min(end - at);
            let c = at / cluster;
            let whole = within == 0 && (n == cluster || at + n == self.capacity());
            if whole && self.version >= 3 {
                let (slot, old) = self.entry(c)?;
                let new = match old {
                    o if o & COPIED != 0 && o & COMPRESSED == 0 && o & OFFSET_MASK != 0 => o | ZERO,
                    _ => ZERO,
                };
                self.set_entry(c, slot, new)?;
                if new == ZERO {
                    self.release(old)?;
                }
            } else {
                self.write_cluster(c, within, zeros.get(..n as usize).unwrap_or_default())?;
            }
            at += n;
        }
        Ok(())
    }

    /// Reads `buf.len()` bytes at byte `offset` of the disk as it now is.
    pub fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.check_range(offset, buf.len() as u64)?;
        let cluster = self.cluster();
        let mut whole = vec![0u8; cluster as usize];
        let mut done = 0usize;
        while done < buf.len() {
            let at = offset + done as u64;
            let within = (at % cluster) as usize;
            let n = (cluster as usize - within).min(buf.len() - done);
            let (_, entry) = self.entry(at / cluster)?;
            self.contents(at / cluster, entry, &mut whole)?;
            if let (Some(dst), Some(src)) =
                (buf.get_mut(done..done + n), whole.get(within..within + n))
            {
                dst.copy_from_slice(src);
            }
            done += n;
        }
        Ok(())
    }

    /// Makes every write so far durable (`fdatasync`).
    pub fn flush(&mut self) -> Result<()> {
        self.file.sync_data().map_err(self.io(0))
    }

    /// Writes `piece` at `within` bytes into cluster `c`: in place when the image holds the
    /// cluster once, else copied on write to a new cluster.
    fn write_cluster(&mut self, c: u64, within: u64, piece: &[u8]) -> Result<()> {
        let (slot, old) = self.entry(c)?;
        let host = old & OFFSET_MASK;
        if old & COPIED != 0 && old & COMPRESSED == 0 && old & ZERO == 0 && host != 0 {
            return self.pwrite(piece, host + within);
        }
        let mut content = vec![0u8; self.cluster() as usize];
        if piece.len() as u64 != self.cluster() {
            self.contents(c, old, &mut content)?;
        }
        let from = within as usize;
        if let Some(dst) = content.get_mut(from..from + piece.len()) {
            dst.copy_from_slice(piece);
        }
        let new = self.allocate()?;
        self.pwrite(&content, new)?;
        self.set_entry(c, slot, new | COPIED)?;
        self.release(old)
    }

    /// The contents of cluster `c`, whose L2 entry is `entry`, into `out` (one cluster).
    fn contents(&self, c: u64, entry: u64, out: &mut [u8]) -> Result<()> {
        out.fill(0);
        if entry & COMPRESSED != 0 {
            let value = match self.image.decode(0, 0, entry)? {
                GrainEntry::Data(v) => v,
                _ => return Ok(()),
            };
            return self.image.inflate_cluster(c, value, out);
        }
        let host = entry & OFFSET_MASK;
        if entry & ZERO != 0 || host == 0 {
            return Ok(());
        }
        // The last cluster of the file may be short: what is missing reads as zeros.
        let mut n = 0;
        while n < out.len() {
            let rest = out.get_mut(n..).unwrap_or_default();
            match self.file.read_at(rest, host + n as u64) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) => return Err(self.io(host)(e)),
            }
        }
        Ok(())
    }

    /// The byte offset of the L2 entry of cluster `c` and the entry, its table read (or made:
    /// a zeroed table appended, counted, then named by the L1 table) when needed.
    fn entry(&mut self, c: u64) -> Result<(u64, u64)> {
        let per_table = self.cluster() / 8;
        let t = (c / per_table) as usize;
        let i = (c % per_table) as usize;
        if !self.l2.contains_key(&t) {
            let raw = self.l1.get(t).copied().unwrap_or(0);
            let at = raw & OFFSET_MASK;
            let table = if at == 0 {
                let at = self.allocate()?;
                self.pwrite(&vec![0u8; self.cluster() as usize], at)?;
                if let Some(slot) = self.l1.get_mut(t) {
                    *slot = at | COPIED;
                }
                self.pwrite(&(at | COPIED).to_be_bytes(), self.l1_at + t as u64 * 8)?;
                (at, vec![0u64; per_table as usize])
            } else {
                let bytes = self.image.read_metadata("L2 table", at, self.cluster())?;
                let entries = bytes
                    .chunks_exact(8)
                    .map(|b| b.try_into().map_or(0, u64::from_be_bytes))
                    .collect();
                (at, entries)
            };
            self.l2.insert(t, table);
        }
        let (at, entries) = self.l2.get(&t).ok_or_else(|| self.io(0)(lost()))?;
        Ok((at + i as u64 * 8, entries.get(i).copied().unwrap_or(0)))
    }

    /// Sets the L2 entry of cluster `c`, at byte `slot`, to `value`.
    fn set_entry(&mut self, c: u64, slot: u64, value: u64) -> Result<()> {
        let per_table = self.cluster() / 8;
        let t = (c / per_table) as usize;
        if let Some(e) = self
            .l2
            .get_mut(&t)
            .and_then(|(_, entries)| entries.get_mut((c % per_table) as usize))
        {
            *e = value;
        }
        self.pwrite(&value.to_be_bytes(), slot)
    }

    /// Appends a cluster, counted once; returns its offset.
    fn allocate(&mut self) -> Result<u64> {
        let at = self.end;
        self.end += self.cluster();
        self.add_refcount(at, 1)?;
        Ok(at)
    }

    /// Drops a reference to what the L2 entry `old` names (a cluster, or the host clusters a
    /// compressed cluster's sectors span).
    fn release(&mut self, old: u64) -> Result<()> {
        if old & COMPRESSED != 0 {
            let (start, len) = self.image.compressed_span(old);
            let first = start >> self.bits;
            let last = (start + len.max(1) - 1) >> self.bits;
            for c in first..=last {
                self.add_refcount(c << self.bits, -1)?;
            }
        } else if old & OFFSET_MASK != 0 && old & COPIED != 0 {
            self.add_refcount(old & OFFSET_MASK, -1)?;
        } else if old & OFFSET_MASK != 0 {
            // Shared (no COPIED bit): one of its references goes.
            self.add_refcount(old & OFFSET_MASK, -1)?;
        }
        Ok(())
    }

    /// Adds `delta` to the refcount of the cluster at byte `at`, its refcount block appended
    /// first when missing.
    fn add_refcount(&mut self, at: u64, delta: i32) -> Result<()> {
        let per_block = self.cluster() / 2;
        let index = at >> self.bits;
        let b = (index / per_block) as usize;
        if b >= self.rt.len() {
            self.grow_refcount_table(b)?;
        }
        let block = match self.rt.get(b).copied() {
            None => return Err(self.io(self.rt_at)(lost())),
            Some(0) => {
                let block = self.end;
                self.end += self.cluster();
                self.pwrite(&vec![0u8; self.cluster() as usize], block)?;
                if let Some(slot) = self.rt.get_mut(b) {
                    *slot = block;
                }
                self.pwrite(&block.to_be_bytes(), self.rt_at + b as u64 * 8)?;
                self.add_refcount(block, 1)?;
                block
            }
            Some(block) => block & OFFSET_MASK,
        };
        let slot = block + (index % per_block) * 2;
        let mut count = [0u8; 2];
        self.file
            .read_exact_at(&mut count, slot)
            .map_err(self.io(slot))?;
        let now = i32::from(u16::from_be_bytes(count)) + delta;
        let now = u16::try_from(now).map_err(|_| {
            Error::at(
                &self.path,
                "refcount block",
                slot,
                ErrorKind::Inconsistent(format!(
                    "the refcount of the cluster at {at:#x} would be {now}"
                )),
            )
        })?;
        self.pwrite(&now.to_be_bytes(), slot)
    }
}

impl Qcow2Update {
    /// Moves the refcount table to the end of the file, large enough for block `b` and twice
    /// the blocks it had: the new table counted (its blocks made as needed), written, named by
    /// the header (offset and size in one write), then the old table's clusters released.
    fn grow_refcount_table(&mut self, b: usize) -> Result<()> {
        let cluster = self.cluster();
        let entries = (b + 1).max(self.rt.len() * 2);
        // Room for the entries and for the blocks counting the table itself.
        let clusters = ((entries as u64 + 8) * 8).div_ceil(cluster) + 1;
        let old = (self.rt_at, (self.rt.len() as u64 * 8).div_ceil(cluster));
        let at = self.end;
        self.end += clusters * cluster;
        self.rt.resize((clusters * cluster / 8) as usize, 0);
        // Blocks made while the table is counted are named in the new table, not the old.
        self.rt_at = at;
        for k in 0..clusters {
            self.add_refcount(at + k * cluster, 1)?;
        }
        let bytes: Vec<u8> = self.rt.iter().flat_map(|e| e.to_be_bytes()).collect();
        self.pwrite(&bytes, at)?;
        self.file.sync_data().map_err(self.io(at))?;
        let mut header = at.to_be_bytes().to_vec();
        header.extend_from_slice(&(clusters as u32).to_be_bytes());
        self.pwrite(&header, 48)?;
        self.file.sync_data().map_err(self.io(48))?;
        for k in 0..old.1 {
            self.add_refcount(old.0 + k * cluster, -1)?;
        }
        Ok(())
    }
}

fn lost() -> std::io::Error {
    std::io::Error::other("an L2 table read a moment ago is gone")
}
