//! Options of every write: the copy to thick targets, the writers of each createType and the
//! one-pass stream into thick outputs.

use crate::descriptor::CID_NO_PARENT;
use crate::error::{Error, ErrorKind, Result};

/// Adapter types VMware products accept in `ddb.adapterType` (spec "The Disk Database", p. 5).
pub(crate) const ADAPTER_TYPES: &[&str] = &[
    "ide",
    "buslogic",
    "lsilogic",
    "legacyESX",
    "lsisas1068",
    "pvscsi",
];

/// Default compression level of stream-optimized output: 6, libdeflate's lazy matcher with a
/// search of 20 positions (libdeflate's own level 6 searches 35). On file-system images of real
/// contents it writes output no larger than qemu-img's (zlib 6) and within 1% of vmdk-convert's
/// smallest (zlib 9), with 11-18% less CPU than libdeflate's level 6; figures in
/// `benches/README.md`.
pub(crate) const DEFAULT_LEVEL: u32 = 6;

/// How zero ranges reach a raw or flat output.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ZeroMode {
    /// Write zeros: every block of the output is allocated and written (eager-zeroed thick).
    #[default]
    Write,
    /// Preallocate the whole output (`fallocate` on Linux); zero ranges are allocated but not
    /// written. Where preallocation is not available (other systems, or without the
    /// `direct-io` feature), zeros are written as with [`ZeroMode::Write`].
    Falloc,
    /// Leave zero ranges as holes (a sparse output file).
    Sparse,
}

/// Where a copy to thick outputs starts, and where it records how far it got, so a copy that
/// was killed or failed can continue instead of starting over (`ovf-disk inflate --resume`).
///
/// The copy engine ([`crate::Disk::copy_to`], and [`crate::Plan::write`] to raw and flat
/// outputs) starts at [`Checkpoint::resume_from`] (rounded down to its window), and at most
/// twice a second, after flushing the outputs to the device, calls [`Checkpoint::reached`] with
/// the offset below which every byte is written; once more at the end.
///
/// A stream-optimized output ([`crate::Plan::write`]) counts in bytes of the output instead:
/// at most twice a second, right after a grain table, the output is flushed and its length
/// given to [`Checkpoint::reached`]; a later write given that length back reads the output up
/// to it (checking every marker), cuts off what follows, and continues with the next table.
///
/// Sparse extents (monolithicSparse, and each extent of twoGbMaxExtentSparse, written one after
/// the other) and qcow2 outputs count in bytes of the disk whose grain or L2 tables are
/// written: a later write reads those tables back (checking each entry) and continues with the
/// next. A qcow2 write with a checkpoint places each L2 table in the data area, after the data
/// it maps, rather than after all the data. The output's bytes are an uninterrupted write's
/// with the same options ([`WriteOptions::shape`]).
///
/// A stream-optimized disk read in one pass into raw or thick outputs
/// ([`crate::StreamReader::copy_to`]) tells [`Checkpoint::reached_stream`] instead, at most
/// twice a second, right after a metadata block with every grain before it written and the
/// outputs flushed: where the stream was and how much of the disk is written; a later read
/// continues there ([`crate::StreamReader::continue_at`]) and its [`Checkpoint::resume_from`]
/// is not used.
pub trait Checkpoint: Send + Sync + std::fmt::Debug {
    /// Bytes from the start of the disk an earlier run wrote and flushed (0: none).
    fn resume_from(&self) -> u64;
    /// Every byte below `done` is written and on the device.
    fn reached(&self, done: u64) -> Result<()>;
    /// A one-pass read of a stream reached `at`, every byte of the disk below `at.covered`
    /// written and on the device; by default, [`Checkpoint::reached`] with `at.covered`.
    fn reached_stream(&self, at: crate::StreamPoint) -> Result<()> {
        self.reached(at.covered)
    }
    /// How long a one-pass read waits between two [`Checkpoint::reached_stream`] (each
    /// flushes the outputs and waits for the grains in flight): half a second by default.
    fn stream_interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(500)
    }
}

/// Options of a write: threads, how zeros are written, compression, and the disk database of
/// VMDK outputs. Built with setters from [`WriteOptions::new`].
///
/// ```
/// use vmdk::{WriteOptions, ZeroMode};
///
/// let options = WriteOptions::new()
///     .threads(4)
///     .zero(ZeroMode::Falloc)
///     .compression_level(6)
///     .adapter_type("pvscsi")?
///     .cid(0x1234_5678)?;
/// # Ok::<(), vmdk::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct WriteOptions {
    pub(crate) zero: ZeroMode,
    pub(crate) threads: usize,
    pub(crate) window: u64,
    pub(crate) direct: bool,
    pub(crate) level: u32,
    pub(crate) batch: usize,
    pub(crate) adapter_type: Option<String>,
    pub(crate) hw_version: Option<String>,
    pub(crate) cid: Option<u32>,
    pub(crate) extent_name: String,
    pub(crate) checkpoint: Option<std::sync::Arc<dyn Checkpoint>>,
    pub(crate) cancel: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
    pub(crate) cluster_bits: u32,
    pub(crate) compress: Option<Compression>,
    pub(crate) preallocation: Preallocation,
    pub(crate) backing: Option<String>,
}

/// How the clusters of a qcow2 output are compressed ([`WriteOptions::compress`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Compression {
    /// Raw deflate, as `qemu-img convert -c` writes it (compression type `zlib`), at
    /// [`WriteOptions::compression_level`].
    Deflate,
    /// zstd (compression type `zstd`, qcow2's incompatible bit 3), at the encoder's fastest
    /// level.
    Zstd,
}

/// What a qcow2 output holds for clusters the disk does not fill, as qemu-img's
/// `preallocation` option says ([`WriteOptions::preallocation`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Preallocation {
    /// Only clusters holding data are allocated (the default).
    #[default]
    Off,
    /// Every cluster is allocated in the tables, in disk order; those without data are holes
    /// of the file.
    Metadata,
    /// As `Metadata`, and the file's blocks are reserved (`fallocate`).
    Falloc,
    /// As `Metadata`, and every byte is written, zeros included.
    Full,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            zero: ZeroMode::Write,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            window: 8 << 20,
            direct: true,
            level: DEFAULT_LEVEL,
            batch: 256,
            adapter_type: None,
            hw_version: None,
            cid: None,
            extent_name: "disk.vmdk".into(),
            checkpoint: None,
            cancel: None,
            cluster_bits: 16,
            compress: None,
            preallocation: Preallocation::Off,
            backing: None,
        }
    }
}

impl WriteOptions {
    /// The defaults: all cores, zeros written, `O_DIRECT` where the file system allows it,
    /// compression level 6, the source's disk database.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records the progress of a write, and starts it where an earlier run stopped
    /// ([`Checkpoint`]): raw, flat, sparse, stream-optimized and qcow2 outputs. Other outputs
    /// (VHD, VHDX, preallocated qcow2) are written from the start whatever it says.
    pub fn checkpoint(mut self, checkpoint: std::sync::Arc<dyn Checkpoint>) -> Self {
        self.checkpoint = Some(checkpoint);
        self
    }

    /// Stops the write soon after `flag` is set (within a window of each worker): the write
    /// then fails with [`crate::ErrorKind::Cancelled`], and the caller removes what it had
    /// written. What a program embedding the library sets when its user interrupts a copy
    /// (the Python package's `KeyboardInterrupt`), without ending the process.
    ///
    /// ```
    /// use std::sync::{atomic::AtomicBool, Arc};
    ///
    /// let stop = Arc::new(AtomicBool::new(false));
    /// let options = vmdk::WriteOptions::new().cancel(stop.clone());
    /// # let _ = options;
    /// ```
    pub fn cancel(mut self, flag: std::sync::Arc<std::sync::atomic::AtomicBool>) -> Self {
        self.cancel = Some(flag);
        self
    }

    /// What of these options shapes the bytes of an output, as one line: zeros, compression
    /// and its level, the qcow2 cluster size, preallocation and backing file, the disk
    /// database's overrides. A write that continues an interrupted one ([`Checkpoint`]) must be
    /// given options with the same line, or its output mixes two shapes: a caller keeps it
    /// with its checkpoint (`ovf-disk` does) and refuses to resume when it differs.
    ///
    /// ```
    /// let a = vmdk::WriteOptions::new();
    /// let b = vmdk::WriteOptions::new().threads(1);
    /// assert_eq!(a.shape(), b.shape());
    /// assert_ne!(a.shape(), a.clone().cluster_size(4096)?.shape());
    /// # Ok::<(), vmdk::Error>(())
    /// ```
    pub fn shape(&self) -> String {
        format!(
            "zero {:?} level {} cluster {} compress {:?} preallocation {:?} backing {:?} \
             adapter {:?} hw {:?} cid {:?} extent {:?}",
            self.zero,
            self.level,
            1u64 << self.cluster_bits,
            self.compress,
            self.preallocation,
            self.backing,
            self.adapter_type,
            self.hw_version,
            self.cid,
            self.extent_name
        )
    }

    /// How zero ranges of raw and flat outputs are written (default [`ZeroMode::Write`]).
    pub fn zero(mut self, zero: ZeroMode) -> Self {
        self.zero = zero;
        self
    }

    /// Worker threads that read, inflate, compress and write (at least 1; default: all cores).
    /// Copies into outputs written with `O_DIRECT` run two workers per thread, so that one
    /// inflates while the other waits for its write (see [`WriteOptions::direct`]).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// Bytes each copy worker handles at once, rounded up to a whole number of grains
    /// (default 8 MiB). Memory is about threads × window (twice that with `O_DIRECT`).
    pub fn window(mut self, bytes: u64) -> Self {
        self.window = bytes.max(512);
        self
    }

    /// Write raw and flat outputs with `O_DIRECT`, bypassing the page cache, where offsets and
    /// lengths are 4 KiB-aligned and the file system allows it (default on; Linux with the
    /// `direct-io` feature); elsewhere, and for unaligned pieces, through the page cache. Why
    /// it is the default: `benches/README.md`. A direct write waits for the device, so copies
    /// then run two workers per thread.
    pub fn direct(mut self, direct: bool) -> Self {
        self.direct = direct;
        self
    }

    /// Workers of a copy into raw or flat outputs: two per thread when writes wait for the
    /// device (`O_DIRECT`), so a core inflates while another worker's write is in flight.
    pub(crate) fn copy_workers(&self) -> usize {
        if self.direct && cfg!(all(target_os = "linux", feature = "direct-io")) {
            self.threads.saturating_mul(2)
        } else {
            self.threads
        }
    }

    /// Compression level of stream-optimized output, 0 (stored) to 12 (levels above 12 are 12;
    /// default 6): libdeflate's levels, except 6, which searches 20 earlier positions per match
    /// where libdeflate's searches 35 (11-18% less CPU on the benchmark corpus for 0.1-0.5% more
    /// bytes; `benches/README.md`).
    pub fn compression_level(mut self, level: u32) -> Self {
        self.level = level.min(12);
        self
    }

    /// Cluster size of qcow2 outputs in bytes: a power of two from 512 bytes to 2 MiB
    /// (default 64 KiB, qemu-img's).
    pub fn cluster_size(mut self, bytes: u64) -> Result<Self> {
        if !bytes.is_power_of_two() || !(512..=2 << 20).contains(&bytes) {
            return Err(Error::new(
                None,
                "options",
                None,
                ErrorKind::InvalidInput(format!(
                    "a qcow2 cluster size is a power of two from 512 bytes to 2 MiB, not {bytes}"
                )),
            ));
        }
        self.cluster_bits = bytes.trailing_zeros();
        Ok(self)
    }

    /// Compress the clusters of qcow2 outputs (each cluster on its own, as qemu-img's `-c`
    /// does; a cluster that does not shrink is stored as it is). Not with preallocation.
    pub fn compress(mut self, compression: Option<Compression>) -> Self {
        self.compress = compression;
        self
    }

    /// Writes a qcow2 output as an overlay of the qcow2 image `name` (its backing file, named
    /// as written in the header: a file name beside the output): only what the disk's own link
    /// holds is stored (its data, and its zeroed grains as zero clusters), the rest reads
    /// through to the backing file. How a chain is written as a chain of qcow2 images, one per
    /// link, the parent's written first.
    pub fn qcow2_backing(mut self, name: impl Into<String>) -> Self {
        self.backing = Some(name.into());
        self
    }

    /// Preallocation of qcow2 outputs (default [`Preallocation::Off`]).
    pub fn preallocation(mut self, preallocation: Preallocation) -> Self {
        self.preallocation = preallocation;
        self
    }

    /// `ddb.adapterType` of VMDK outputs instead of the source's: one of `ide`, `buslogic`,
    /// `lsilogic`, `legacyESX`, `lsisas1068`, `pvscsi` (any case). The geometry follows it.
    pub fn adapter_type(mut self, adapter: &str) -> Result<Self> {
        let known = ADAPTER_TYPES
            .iter()
            .find(|k| k.eq_ignore_ascii_case(adapter))
            .ok_or_else(|| {
                Error::new(
                    None,
                    "options",
                    None,
                    ErrorKind::InvalidInput(format!(
                        "adapter type {adapter:?}: expected one of {}",
                        ADAPTER_TYPES.join(", ")
                    )),
                )
            })?;
        self.adapter_type = Some((*known).to_string());
        Ok(self)
    }

    /// `ddb.virtualHWVersion` of VMDK outputs instead of the source's.
    pub fn hw_version(mut self, version: u32) -> Self {
        self.hw_version = Some(version.to_string());
        self
    }

    /// The `CID` of VMDK outputs instead of a random one, for reproducible output (the long
    /// content ID is derived from it). `ffffffff` and `fffffffe` are reserved.
    pub fn cid(mut self, cid: u32) -> Result<Self> {
        if cid >= CID_NO_PARENT - 1 {
            return Err(Error::new(
                None,
                "options",
                None,
                ErrorKind::InvalidInput(format!("CID {cid:08x} is reserved")),
            ));
        }
        self.cid = Some(cid);
        Ok(self)
    }

    /// The file name the embedded descriptor of a stream written with
    /// [`crate::write_stream_optimized`] gives its extent (default `disk.vmdk`); written to a
    /// file with a [`crate::Plan`], the file's own name is used.
    pub fn extent_name(mut self, name: impl Into<String>) -> Self {
        self.extent_name = name.into();
        self
    }

    /// Grains in flight in the writers' pipelines (read and compressed by the workers, or
    /// waiting for their turn to be written; default 256): bounds memory to about that many
    /// grains whatever the disk size.
    pub fn batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setters_check_what_they_take() {
        let o = WriteOptions::new().adapter_type("PVSCSI").unwrap();
        assert_eq!(o.adapter_type.as_deref(), Some("pvscsi"));
        assert!(WriteOptions::new().adapter_type("scsi").is_err());
        assert!(WriteOptions::new().cid(0xffff_fffe).is_err());
        assert_eq!(WriteOptions::new().cid(7).unwrap().cid, Some(7));
        assert_eq!(WriteOptions::new().compression_level(15).level, 12);
        assert_eq!(WriteOptions::new().threads(0).threads, 1);
    }
}
