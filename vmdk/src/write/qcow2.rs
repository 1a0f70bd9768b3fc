//! qcow2 outputs, version 3 (compat 1.1), as qemu's `docs/interop/qcow2.txt` lays them out:
//! the header in cluster 0, the L1 table and the refcount table after it, then the data
//! clusters, then the L2 tables and refcount blocks. Clusters of 512 bytes to 2 MiB (64 KiB by
//! default), refcounts of 16 bits, no backing file, no snapshots.
//!
//! Written in one pass by the copy engine's workers: each takes an 8 MiB window of the disk,
//! reads what the allocation map says holds data and skips clusters that are all zeros (they
//! stay unallocated, which reads as zeros). Then, by [`WriteOptions`]:
//! - plain: the window's data clusters are appended as one contiguous run;
//! - compressed ([`Compression`]): each cluster is compressed on the worker's thread (raw
//!   deflate with libdeflate, as `qemu-img convert -c` writes clusters, or zstd) and the
//!   window's compressed clusters are appended byte after byte, as qemu packs them; a cluster
//!   that does not shrink is stored whole, cluster-aligned;
//! - preallocated ([`Preallocation`]): every cluster has its place in disk order, data written
//!   there, the rest left as holes (`metadata`), reserved (`falloc`) or written with zeros
//!   (`full`).
//!
//! The L2 entries of data clusters are kept in memory (8 bytes per cluster of each table
//! touched; none with preallocation, where they follow from the cluster's number) and written
//! after the data with the refcounts of every cluster in the file (a host cluster holding
//! compressed clusters counts each one whose sectors overlap it, as `qemu-img check` counts
//! them), so `qemu-img check` finds no leak and no corruption.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use super::options::{Compression, Preallocation, WriteOptions};
use super::qcow2_resume::{resume_state, Geometry, Resumable, Resumed};
use super::workers::{io, put, set_len, write_at};
use crate::disk::Disk;
use crate::error::{Error, ErrorKind, Result};
use crate::read::qcow2::{Qcow2Header, INCOMPAT_COMPRESSION};

/// How errors name the output.
const OUTPUT: &str = "qcow2 output";

/// "Refcount is exactly one": set in L1 and L2 entries of clusters used once.
const COPIED: u64 = 1 << 63;
/// L2 entry bit 62: a compressed cluster.
const COMPRESSED: u64 = 1 << 62;
/// L2 entry bit 0: the cluster reads as zeros (whatever the backing file holds).
const ZERO: u64 = 1;
/// Bits 9..55 of an L2 entry: the host offset.
const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
/// Bytes of the disk a worker takes at once.
const WINDOW_BYTES: u64 = 8 << 20;

/// Writes `pieces` (consecutive in the file) at `at` with `pwritev`: no copy into one buffer.
fn write_vectored_at(file: &File, path: &Path, pieces: &[(u64, &[u8])], mut at: u64) -> Result<()> {
    use std::io::IoSlice;
    let mut slices: Vec<IoSlice<'_>> = pieces.iter().map(|(_, b)| IoSlice::new(b)).collect();
    let mut bufs = slices.as_mut_slice();
    while !bufs.is_empty() {
        let n = rustix::io::pwritev(file, bufs, at).map_err(|e| io(path, OUTPUT, at)(e.into()))?;
        if n == 0 {
            let e = std::io::Error::from(std::io::ErrorKind::WriteZero);
            return Err(io(path, OUTPUT, at)(e));
        }
        at += n as u64;
        IoSlice::advance_slices(&mut bufs, n);
    }
    Ok(())
}

/// How the workers place clusters.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Data clusters appended, window after window.
    Packed,
    /// Compressed clusters appended byte after byte.
    Compressed(Compression, u32),
    /// Every cluster at its own place, in disk order.
    Fixed(Preallocation),
}

/// The shared state of the workers.
struct Copy<'a> {
    disk: &'a Disk,
    file: &'a File,
    path: &'a Path,
    bits: u32,
    clusters: u64,
    /// The first data cluster.
    data_start: u64,
    /// The next free byte of the data area (cluster-aligned but when compressed), and the
    /// window whose turn it is to take space there: windows are placed in disk order, so the
    /// same disk gives the same file however the threads ran.
    cursor: Mutex<(u64, u64)>,
    placed: std::sync::Condvar,
    next_window: AtomicU64,
    stop: AtomicBool,
    /// The L2 tables, by L1 index: the entries of the data clusters.
    l2: Mutex<Vec<Option<Vec<u64>>>>,
    data: AtomicU64,
    mode: Mode,
    /// An overlay of a backing file: the clusters the link itself holds, zeros as zero
    /// clusters.
    overlay: bool,
    /// Set by the caller to stop the copy.
    cancel: Option<&'a AtomicBool>,
    /// With a checkpoint: where each table goes in the data area, how far the copy got, and
    /// the L1 table's byte.
    resumable: Option<(Resumable<'a>, u64)>,
}

impl Copy<'_> {
    fn cluster(&self) -> u64 {
        1 << self.bits
    }

    fn work(&self, progress: &(dyn Fn(u64) + Sync)) -> Result<()> {
        let cluster = self.cluster();
        let per_window = (WINDOW_BYTES >> self.bits).max(1);
        let mut buf = vec![0u8; (per_window * cluster) as usize];
        while !self.stop.load(Ordering::Relaxed) {
            super::walk::cancelled(self.cancel)?;
            let window = super::workers::next_window(
                self.disk,
                &self.next_window,
                per_window,
                self.clusters,
                cluster,
            )?;
            let Some(mut w) = window else { break };
            if self.overlay {
                w.holds = self.own_holds(&w)?;
            }
            let keep = self.read_window(&w, &mut buf)?;
            // What the link holds as zeros masks its backing file: zero clusters.
            let zeros: Vec<u64> = match self.overlay {
                true => (0..w.holds.len())
                    .filter(|i| w.holds.get(*i).copied().unwrap_or(false) && !keep.contains(i))
                    .map(|i| w.first + i as u64)
                    .collect(),
                false => Vec::new(),
            };
            let mut entries = match self.mode {
                Mode::Fixed(fill) => self.write_fixed(&w, &keep, fill, &buf)?,
                _ => self.write_appended(&w, &keep, &buf, &zeros)?,
            };
            entries.extend(zeros.iter().map(|&c| (c, ZERO)));
            self.data
                .fetch_add(keep.len() as u64 * cluster, Ordering::Relaxed);
            self.record(entries);
            if let Some((r, l1_at)) = &self.resumable {
                r.window_written(w.first / per_window, self.file, self.path, *l1_at, |t| {
                    self.table(t)
                })?;
            }
            progress(w.len);
        }
        Ok(())
    }

    /// Continues where an interrupted write stood (`r`): its tables, its cursor, the windows
    /// after it.
    fn resume(&self, r: Resumed, progress: &(dyn Fn(u64) + Sync)) {
        let per_window = (WINDOW_BYTES >> self.bits).max(1);
        let mut data = 0;
        {
            let mut l2 = self.l2.lock().unwrap_or_else(|p| p.into_inner());
            for (t, _, entries) in r.tables {
                data += entries.iter().filter(|&&e| e > ZERO).count() as u64;
                if let Some(slot) = l2.get_mut(t) {
                    *slot = Some(entries);
                }
            }
        }
        self.data.store(data * self.cluster(), Ordering::Relaxed);
        *self.cursor.lock().unwrap_or_else(|p| p.into_inner()) = (r.cursor, r.cluster / per_window);
        self.next_window.store(r.cluster, Ordering::Relaxed);
        let skipped = (r.cluster << self.bits).min(self.disk.capacity());
        if skipped > 0 {
            progress(skipped);
        }
    }

    /// The entries of L2 table `t` recorded so far.
    fn table(&self, t: usize) -> Vec<u64> {
        let l2 = self.l2.lock().unwrap_or_else(|p| p.into_inner());
        let per_table = (self.cluster() / 8) as usize;
        l2.get(t)
            .and_then(Option::as_ref)
            .map_or_else(|| vec![0; per_table], Clone::clone)
    }

    /// Which clusters of window `w` the disk's own link holds (data or zeros), whatever its
    /// parents hold.
    fn own_holds(&self, w: &super::workers::Window) -> Result<Vec<bool>> {
        let cluster = self.cluster();
        let mut holds = vec![false; w.holds.len()];
        if w.len == 0 {
            return Ok(holds);
        }
        for run in self.disk.map_own(w.start, w.len)? {
            if run.kind == crate::Allocation::Unallocated {
                continue;
            }
            let a = (run.offset - w.start) / cluster;
            let b = (run.offset + run.len - w.start).div_ceil(cluster);
            for h in holds.iter_mut().take(b as usize).skip(a as usize) {
                *h = true;
            }
        }
        Ok(holds)
    }

    /// Reads the clusters of window `w` that hold data into `buf` (the others zeroed) and
    /// returns those that are not all zeros.
    fn read_window(&self, w: &super::workers::Window, buf: &mut [u8]) -> Result<Vec<usize>> {
        let cluster = self.cluster() as usize;
        let capacity = self.disk.capacity();
        let held = |i: usize| w.holds.get(i).copied().unwrap_or(false);
        // From the first cluster holding data to the last, in one call: what lies between
        // reads as zeros, and one read is one request to a remote source instead of one per
        // run of data. An overlay reads its own runs only (the clusters between are its
        // backing file's, not to be read).
        let last = (0..w.holds.len()).rev().find(|&i| held(i));
        let mut i = 0;
        while i < w.holds.len() {
            if !held(i) {
                if let Some(c) = buf.get_mut(i * cluster..(i + 1) * cluster) {
                    c.fill(0);
                }
                i += 1;
                continue;
            }
            let mut j = i + 1;
            while held(j) || (!self.overlay && last.is_some_and(|l| j <= l)) {
                j += 1;
            }
            let at = w.start + (i * cluster) as u64;
            let n = (((j - i) * cluster) as u64).min(capacity - at) as usize;
            let run = buf.get_mut(i * cluster..j * cluster).unwrap_or_default();
            let (data, tail) = run.split_at_mut(n.min(run.len()));
            self.disk.read_exact_at(at, data)?;
            tail.fill(0);
            i = j;
        }
        let keep = (0..w.holds.len())
            .filter(|&i| held(i))
            .filter(|&i| {
                let data = buf.get(i * cluster..(i + 1) * cluster).unwrap_or_default();
                !crate::codec::is_zero(data)
            })
            .collect();
        Ok(keep)
    }

    /// Appends the clusters `keep` of window `w` (from `buf`): whole clusters first,
    /// cluster-aligned, then compressed ones byte after byte, one write. Returns their L2
    /// entries by disk cluster. `zeros` are the disk clusters the window marks as zeros.
    fn write_appended(
        &self,
        w: &super::workers::Window,
        keep: &[usize],
        buf: &[u8],
        zeros: &[u64],
    ) -> Result<Vec<(u64, u64)>> {
        let cluster = self.cluster() as usize;
        let data_of = |i: usize| buf.get(i * cluster..(i + 1) * cluster).unwrap_or_default();
        let mut whole = Vec::new();
        let mut packed = Vec::new();
        for &i in keep {
            let squeezed = match self.mode {
                Mode::Compressed(codec, level) => compress(codec, level, data_of(i), cluster),
                _ => None,
            };
            match squeezed {
                Some(bytes) => packed.push((i, bytes)),
                None => whole.push(i),
            }
        }
        let sizes: Vec<u64> = packed.iter().map(|(_, b)| b.len() as u64).collect();
        let held = keep
            .iter()
            .map(|&i| w.first + i as u64)
            .chain(zeros.iter().copied());
        let count = w.holds.len() as u64;
        let (at, offsets) = self.place((w.first, count), whole.len() as u64, &sizes, held)?;
        let mut entries = Vec::with_capacity(keep.len());
        // Every piece with its place, then written in runs of consecutive pieces.
        let mut pieces: Vec<(u64, &[u8])> = Vec::with_capacity(keep.len());
        for (k, &i) in whole.iter().enumerate() {
            let host = at + k as u64 * self.cluster();
            entries.push((w.first + i as u64, host | COPIED));
            pieces.push((host, data_of(i)));
        }
        for ((i, bytes), &offset) in packed.iter().zip(&offsets) {
            let entry = self.compressed_entry(offset, bytes.len());
            entries.push((w.first + *i as u64, entry));
            pieces.push((offset, bytes));
        }
        pieces.sort_by_key(|p| p.0);
        let mut rest = pieces.as_slice();
        while let Some(&(start, _)) = rest.first() {
            // A run of pieces that follow each other in the file (at most IOV_MAX).
            let mut end = start;
            let n = rest
                .iter()
                .take(1024)
                .take_while(|(at, bytes)| {
                    let next = *at == end;
                    end += bytes.len() as u64;
                    next
                })
                .count();
            let (run, after) = rest.split_at(n);
            write_vectored_at(self.file, self.path, run, start)?;
            rest = after;
        }
        Ok(entries)
    }

    /// Takes, in its turn (windows in disk order), the space of the window of `count` clusters
    /// starting at cluster `first`: `whole` clusters, cluster-aligned, and compressed clusters
    /// of `packed` bytes each, byte after byte, those that fit first filling the gap before the
    /// aligned whole clusters. Returns where the whole clusters start and where each
    /// compressed one goes. With a checkpoint, the tables the window completes are placed
    /// after its data (`held`: the disk clusters it puts entries in).
    fn place(
        &self,
        (first, count): (u64, u64),
        whole: u64,
        packed: &[u64],
        held: impl Iterator<Item = u64>,
    ) -> Result<(u64, Vec<u64>)> {
        let turn = first / (WINDOW_BYTES >> self.bits).max(1);
        let mut cursor = self.cursor.lock().unwrap_or_else(|p| p.into_inner());
        while cursor.1 != turn {
            if self.stop.load(Ordering::Relaxed) {
                // Another worker failed: its error is the one returned.
                return Err(Error::new(None, "copy", None, ErrorKind::Cancelled));
            }
            let wait = std::time::Duration::from_millis(50);
            cursor = match self.placed.wait_timeout(cursor, wait) {
                Ok((c, _)) => c,
                Err(p) => p.into_inner().0,
            };
        }
        let mut offsets = vec![0u64; packed.len()];
        let mut at = cursor.0;
        let mut rest: Vec<usize> = (0..packed.len()).collect();
        let whole_at = if whole > 0 {
            let aligned = at.div_ceil(self.cluster()) * self.cluster();
            rest.clear();
            for (i, (&len, slot)) in packed.iter().zip(offsets.iter_mut()).enumerate() {
                if at + len <= aligned {
                    *slot = at;
                    at += len;
                } else {
                    rest.push(i);
                }
            }
            at = aligned + whole * self.cluster();
            aligned
        } else {
            at
        };
        for i in rest {
            if let (Some(slot), Some(&len)) = (offsets.get_mut(i), packed.get(i)) {
                *slot = at;
                at += len;
            }
        }
        if let Some((r, _)) = &self.resumable {
            at = r.after_placing(first, count, held, at);
        }
        cursor.0 = at;
        cursor.1 += 1;
        self.placed.notify_all();
        Ok((whole_at, offsets))
    }

    /// The L2 entry of a compressed cluster of `len` bytes at byte `offset` (qemu's layout:
    /// the offset in the low bits, the sectors it spans past its first above them).
    fn compressed_entry(&self, offset: u64, len: usize) -> u64 {
        let shift = 62 - (self.bits - 8);
        let extra = (offset + len as u64 - 1) / 512 - offset / 512;
        COMPRESSED | (extra << shift) | offset
    }

    /// Writes window `w` at its own place: its data clusters `keep`, and with `Full` its
    /// zeros too. Preallocated entries follow from the cluster numbers: none returned.
    fn write_fixed(
        &self,
        w: &super::workers::Window,
        keep: &[usize],
        fill: Preallocation,
        buf: &[u8],
    ) -> Result<Vec<(u64, u64)>> {
        let cluster = self.cluster();
        let base = (self.data_start + w.first) * cluster;
        let count = w.holds.len();
        if fill == Preallocation::Full {
            let all = buf.get(..count * cluster as usize).unwrap_or_default();
            write_at(self.file, self.path, OUTPUT, all, base)?;
            return Ok(Vec::new());
        }
        // Runs of consecutive data clusters, one write each.
        let mut run: Option<(usize, usize)> = None;
        for &i in keep.iter().chain(std::iter::once(&usize::MAX)) {
            match run {
                Some((a, b)) if b == i => run = Some((a, i + 1)),
                _ => {
                    if let Some((a, b)) = run.take() {
                        let c = cluster as usize;
                        let bytes = buf.get(a * c..b * c).unwrap_or_default();
                        write_at(
                            self.file,
                            self.path,
                            OUTPUT,
                            bytes,
                            base + a as u64 * cluster,
                        )?;
                    }
                    run = (i != usize::MAX).then(|| (i, i + 1));
                }
            }
        }
        Ok(Vec::new())
    }

    /// Records the L2 entries `(disk cluster, entry)` of a window.
    fn record(&self, entries: Vec<(u64, u64)>) {
        if entries.is_empty() {
            return;
        }
        let per_table = self.cluster() / 8;
        let mut l2 = self.l2.lock().unwrap_or_else(|p| p.into_inner());
        for (v, entry) in entries {
            let (t, e) = ((v / per_table) as usize, (v % per_table) as usize);
            if let Some(slot) = l2.get_mut(t) {
                let table = slot.get_or_insert_with(|| vec![0; per_table as usize]);
                if let Some(x) = table.get_mut(e) {
                    *x = entry;
                }
            }
        }
    }
}

/// `data` compressed with `codec`, when that makes it at least a sector shorter than a
/// cluster of `cluster` bytes.
fn compress(codec: Compression, level: u32, data: &[u8], cluster: usize) -> Option<Vec<u8>> {
    let limit = cluster - 512;
    match codec {
        Compression::Deflate => crate::codec::compress_cluster(level, data, limit),
        Compression::Zstd => {
            let bytes = ruzstd::encoding::compress_to_vec(
                data,
                ruzstd::encoding::CompressionLevel::Fastest,
            );
            (bytes.len() <= limit).then_some(bytes)
        }
    }
}

/// Where the metadata of an image goes, in clusters: the L1 table after the header, the
/// refcount table after it, the data after that.
struct Layout {
    bits: u32,
    l1_size: u64,
    l1_clusters: u64,
    rt_clusters: u64,
}

impl Layout {
    /// The layout of a disk of `capacity` bytes in clusters of `1 << bits`; `tables_inside`
    /// when the L2 tables go in the data area (a write with a checkpoint), each after a gap.
    fn new(capacity: u64, bits: u32, tables_inside: bool) -> Self {
        let cluster = 1u64 << bits;
        let clusters = capacity.div_ceil(cluster);
        let l1_size = clusters.div_ceil(cluster / 8);
        let l1_clusters = (l1_size * 8).div_ceil(cluster).max(1);
        // The refcount table is sized for the largest file this disk can make: every cluster
        // of the disk, an alignment gap per window, every L2 table, the header, L1 and the
        // refcount blocks themselves.
        let windows = clusters / (WINDOW_BYTES >> bits).max(1) + 1;
        let gaps = if tables_inside { l1_size } else { 0 };
        let most = 1 + l1_clusters + clusters + windows + l1_size + gaps + 64;
        let per_block = cluster / 2;
        let blocks_most = (most + most / per_block + 2).div_ceil(per_block);
        let rt_clusters = (blocks_most * 8).div_ceil(cluster).max(1);
        Self {
            bits,
            l1_size,
            l1_clusters,
            rt_clusters,
        }
    }

    fn l1_at(&self) -> u64 {
        1
    }

    fn rt_at(&self) -> u64 {
        self.l1_at() + self.l1_clusters
    }

    fn data_start(&self) -> u64 {
        self.rt_at() + self.rt_clusters
    }
}

/// Writes `disk` as a qcow2 image of `capacity` bytes (at least the disk's) into `file`.
/// Returns the bytes of data clusters written.
pub(crate) fn write_qcow2(
    disk: &Disk,
    file: &File,
    path: &Path,
    capacity: u64,
    options: &WriteOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<u64> {
    let bits = options.cluster_bits;
    let cluster = 1u64 << bits;
    let mode = mode_of(options, path)?;
    // A preallocated image has its tables' places from the start: written again whole.
    let checkpoint = options
        .checkpoint
        .as_deref()
        .filter(|_| !matches!(mode, Mode::Fixed(_)));
    let layout = Layout::new(capacity, bits, checkpoint.is_some());
    let overlay = options.backing.as_deref();
    let head = checked_header(path, capacity, &layout, options)?;
    let clusters = capacity.div_ceil(cluster);
    let geometry = Geometry {
        bits,
        per_window: (WINDOW_BYTES >> bits).max(1),
        per_table: cluster / 8,
        clusters,
        tables: layout.l1_size,
        capacity,
    };
    let resumed = match checkpoint {
        Some(c) => start_or_resume(file, path, &geometry, c.resume_from(), &head, &layout)?,
        None => None,
    };
    let copy = Copy {
        disk,
        file,
        path,
        bits,
        clusters,
        data_start: layout.data_start(),
        cursor: Mutex::new((layout.data_start() * cluster, 0)),
        placed: std::sync::Condvar::new(),
        next_window: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        l2: Mutex::new(vec![None; layout.l1_size as usize]),
        data: AtomicU64::new(0),
        mode,
        overlay: overlay.is_some(),
        cancel: options.cancel.as_deref(),
        resumable: checkpoint.map(|c| {
            let r = Resumable::new(c, geometry, resumed.as_ref());
            (r, layout.l1_at() * cluster)
        }),
    };
    if let Some(r) = resumed {
        copy.resume(r, progress);
    }
    if checkpoint.is_none() && options.checkpoint.is_some() {
        // Started over: what an interrupted run left goes.
        file.set_len(0).map_err(io(path, OUTPUT, 0))?;
    }
    if let Mode::Fixed(fill) = mode {
        let end = (layout.data_start() + clusters) * cluster;
        set_len(file, path, OUTPUT, end, fill == Preallocation::Falloc)?;
        copy.cursor.lock().unwrap_or_else(|p| p.into_inner()).0 = end;
    }
    super::workers::run_workers(options.copy_workers(), &copy.stop, || copy.work(progress))?;
    copy.finish(&layout, &head)
}

/// The header of an image laid out as `layout` for `options`, refused when it does not fit
/// its cluster or the L1 table would pass qemu's limit.
fn checked_header(
    path: &Path,
    capacity: u64,
    layout: &Layout,
    options: &WriteOptions,
) -> Result<Vec<u8>> {
    let cluster = 1u64 << layout.bits;
    let zstd = options.compress == Some(Compression::Zstd);
    let head = header(capacity, layout, zstd, options.backing.as_deref());
    if head.len() as u64 > cluster {
        return Err(Error::file(
            path,
            ErrorKind::InvalidInput(format!(
                "the header and the backing file's name take {} bytes, more than a cluster",
                head.len()
            )),
        ));
    }
    if layout.l1_size * 8 > 32 << 20 {
        return Err(Error::file(
            path,
            ErrorKind::InvalidInput(format!(
                "clusters of {cluster} bytes need an L1 table over qemu's 32 MiB limit for a \
                    disk of {capacity} bytes: choose larger clusters"
            )),
        ));
    }
    Ok(head)
}

impl Copy<'_> {
    /// After the data: the L2 tables not written in place, the L1 table, the refcounts and
    /// the header `head`. Returns the bytes of data clusters written.
    fn finish(self, layout: &Layout, head: &[u8]) -> Result<u64> {
        let (file, path, mode, clusters) = (self.file, self.path, self.mode, self.clusters);
        let cluster = self.cluster();
        let mut tables = self.l2.into_inner().unwrap_or_else(|p| p.into_inner());
        let data_end = self
            .cursor
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .0;
        let first_meta = data_end.div_ceil(cluster);
        let compressed = matches!(mode, Mode::Compressed(..));
        let in_place = |t: usize| self.resumable.as_ref().map_or(0, |(r, _)| r.host_of(t));
        let counts = compressed.then(|| {
            let mut counts = data_refcounts(&tables, layout, first_meta);
            for c in self.resumable.iter().flat_map(|(r, _)| r.table_clusters()) {
                let i = c.saturating_sub(layout.data_start()) as usize;
                if let Some(n) = counts.get_mut(i) {
                    *n = n.saturating_add(1);
                }
            }
            counts
        });
        // Preallocated tables follow from the cluster numbers: made one at a time.
        let per_table = cluster / 8;
        let table_of = |t: usize| match mode {
            Mode::Fixed(_) => {
                let first = t as u64 * per_table;
                let n = per_table.min(clusters.saturating_sub(first));
                let mut table = vec![0u64; per_table as usize];
                for (e, entry) in table.iter_mut().take(n as usize).enumerate() {
                    *entry = ((layout.data_start() + first + e as u64) * cluster) | COPIED;
                }
                Some(table)
            }
            _ => tables.get_mut(t).and_then(Option::take),
        };
        let next = write_tables(file, path, (table_of, &in_place), layout, first_meta)?;
        let total = write_refcounts(file, path, layout, next, counts.as_deref())?;
        write_at(file, path, OUTPUT, head, 0)?;
        file.set_len(total * cluster).map_err(io(path, OUTPUT, 0))?;
        Ok(self.data.into_inner())
    }
}

/// The start of a write with a checkpoint: the header and an emptied file when nothing is
/// `done`, else where the interrupted write got to (read back, the file cut after it).
fn start_or_resume(
    file: &File,
    path: &Path,
    geometry: &Geometry,
    done: u64,
    head: &[u8],
    layout: &Layout,
) -> Result<Option<Resumed>> {
    let cluster = 1u64 << layout.bits;
    if done == 0 {
        file.set_len(0).map_err(io(path, OUTPUT, 0))?;
        write_at(file, path, OUTPUT, head, 0)?;
        return Ok(None);
    }
    let places = (layout.data_start() * cluster, layout.l1_at() * cluster);
    resume_state(file, path, geometry, done, head, places).map(Some)
}

/// How the workers place clusters for `options`: refused when compressed and preallocated, or
/// an overlay preallocated.
fn mode_of(options: &WriteOptions, path: &Path) -> Result<Mode> {
    let refuse = |why: &str| Err(Error::file(path, ErrorKind::InvalidInput(why.into())));
    let mode = match (options.compress, options.preallocation) {
        (None, Preallocation::Off) => Mode::Packed,
        (Some(codec), Preallocation::Off) => Mode::Compressed(codec, options.level),
        (None, fill) => Mode::Fixed(fill),
        (Some(_), _) => {
            return refuse(
                "a compressed qcow2 image cannot be preallocated (qemu-img refuses it too)",
            )
        }
    };
    if options.backing.is_some() && matches!(mode, Mode::Fixed(_)) {
        return refuse("an overlay of a backing file is not preallocated");
    }
    Ok(mode)
}

/// The refcount of each cluster of the data area (from `layout.data_start()` to `end`): one
/// per whole cluster, one per compressed cluster whose sectors overlap it.
fn data_refcounts(tables: &[Option<Vec<u64>>], layout: &Layout, end: u64) -> Vec<u16> {
    let start = layout.data_start();
    let mut counts = vec![0u16; end.saturating_sub(start) as usize];
    let mut add = |c: u64| {
        if let Some(n) = c
            .checked_sub(start)
            .and_then(|i| counts.get_mut(i as usize))
        {
            *n = n.saturating_add(1);
        }
    };
    let shift = 62 - (layout.bits - 8);
    for entry in tables.iter().flatten().flatten().copied() {
        if entry & COMPRESSED != 0 {
            let offset = entry & ((1u64 << shift) - 1);
            let extra = (entry & !COMPRESSED) >> shift;
            let first = offset / 512 * 512;
            let last = first + extra * 512 + 511;
            for c in (first >> layout.bits)..=(last >> layout.bits) {
                add(c);
            }
        } else if entry & OFFSET_MASK != 0 {
            add((entry & OFFSET_MASK) >> layout.bits);
        }
    }
    counts
}

/// Writes the L2 tables `table_of` gives by L1 index from cluster `next` on, and the L1 table
/// pointing at them and at those written in place (`in_place` gives their host offset, 0 for
/// the others); returns the first cluster after them.
fn write_tables(
    file: &File,
    path: &Path,
    (mut table_of, in_place): (impl FnMut(usize) -> Option<Vec<u64>>, &dyn Fn(usize) -> u64),
    layout: &Layout,
    mut next: u64,
) -> Result<u64> {
    let cluster = 1u64 << layout.bits;
    let mut l1 = vec![0u8; (layout.l1_clusters * cluster) as usize];
    for i in 0..layout.l1_size as usize {
        let placed = in_place(i);
        if placed != 0 {
            if let Some(slot) = l1.get_mut(i * 8..i * 8 + 8) {
                slot.copy_from_slice(&(placed | COPIED).to_be_bytes());
            }
            continue;
        }
        let Some(table) = table_of(i) else { continue };
        let host = next * cluster;
        let bytes: Vec<u8> = table.iter().flat_map(|e| e.to_be_bytes()).collect();
        write_at(file, path, OUTPUT, &bytes, host)?;
        if let Some(slot) = l1.get_mut(i * 8..i * 8 + 8) {
            slot.copy_from_slice(&(host | COPIED).to_be_bytes());
        }
        next += 1;
    }
    write_at(file, path, OUTPUT, &l1, layout.l1_at() * cluster)?;
    Ok(next)
}

/// Writes refcount blocks from cluster `next` on for every cluster of the file and for
/// themselves (1 each, but the data area's `counts` when given) and the refcount table;
/// returns the file's length in clusters.
fn write_refcounts(
    file: &File,
    path: &Path,
    layout: &Layout,
    next: u64,
    counts: Option<&[u16]>,
) -> Result<u64> {
    let cluster = 1u64 << layout.bits;
    let per_block = cluster / 2;
    let mut blocks = 1;
    while (next + blocks).div_ceil(per_block) > blocks {
        blocks += 1;
    }
    let total = next + blocks;
    let start = layout.data_start();
    let refcount = |c: u64| match counts {
        Some(counts) if c >= start => c
            .checked_sub(start)
            .and_then(|i| counts.get(i as usize))
            .copied()
            .unwrap_or(1),
        _ => 1,
    };
    let mut table = vec![0u8; (layout.rt_clusters * cluster) as usize];
    for b in 0..blocks {
        let host = (next + b) * cluster;
        let mut block = vec![0u8; cluster as usize];
        let first = b * per_block;
        let used = total.saturating_sub(first).min(per_block);
        for r in 0..used {
            if let Some(slot) = block.get_mut(r as usize * 2..r as usize * 2 + 2) {
                slot.copy_from_slice(&refcount(first + r).to_be_bytes());
            }
        }
        write_at(file, path, OUTPUT, &block, host)?;
        let i = b as usize;
        if let Some(slot) = table.get_mut(i * 8..i * 8 + 8) {
            slot.copy_from_slice(&host.to_be_bytes());
        }
    }
    write_at(file, path, OUTPUT, &table, layout.rt_at() * cluster)?;
    Ok(total)
}

/// The version 3 header (with the compression type field, zstd, when `zstd`), the backing
/// format extension when there is a `backing` file, the end of the extensions, and the
/// backing file's name.
fn header(capacity: u64, layout: &Layout, zstd: bool, backing: Option<&str>) -> Vec<u8> {
    use zerocopy::big_endian::{U32, U64};
    use zerocopy::IntoBytes;
    let cluster = 1u64 << layout.bits;
    // The compression type is byte 104; the header's length stays a multiple of 8.
    let length = if zstd { 112 } else { 104 };
    let h = Qcow2Header {
        magic: U32::new(Qcow2Header::MAGIC),
        version: U32::new(3),
        backing_file_offset: U64::new(0),
        backing_file_size: U32::new(0),
        cluster_bits: U32::new(layout.bits),
        size: U64::new(capacity),
        crypt_method: U32::new(0),
        l1_size: U32::new(layout.l1_size as u32),
        l1_table_offset: U64::new(layout.l1_at() * cluster),
        refcount_table_offset: U64::new(layout.rt_at() * cluster),
        refcount_table_clusters: U32::new(layout.rt_clusters as u32),
        nb_snapshots: U32::new(0),
        snapshots_offset: U64::new(0),
        incompatible_features: U64::new(if zstd { INCOMPAT_COMPRESSION } else { 0 }),
        compatible_features: U64::new(0),
        autoclear_features: U64::new(0),
        refcount_order: U32::new(4), // 16-bit refcounts
        header_length: U32::new(length),
    };
    let mut bytes = h.as_bytes().to_vec();
    if zstd {
        bytes.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0]); // compression type 1, padding
    }
    if let Some(name) = backing {
        // The backing format, "qcow2" (5 bytes padded to 8).
        bytes.extend_from_slice(&0xe279_2acau32.to_be_bytes());
        bytes.extend_from_slice(&5u32.to_be_bytes());
        bytes.extend_from_slice(b"qcow2\0\0\0");
        bytes.extend_from_slice(&[0u8; 8]); // end of header extensions
        let at = bytes.len() as u64;
        put(&mut bytes, 8, &at.to_be_bytes()); // backing_file_offset
        put(&mut bytes, 16, &(name.len() as u32).to_be_bytes()); // backing_file_size
        bytes.extend_from_slice(name.as_bytes());
    } else {
        bytes.extend_from_slice(&[0u8; 8]); // end of header extensions
    }
    bytes
}
