//! qcow2 images, versions 2 and 3, read as the one extent of a [`crate::Disk`] link: what a
//! migration reads when its source is a qcow2 file (an image builder's output, a Proxmox or
//! OpenStack disk) and what `export disk.qcow2 app.ova` packages.
//!
//! Spec: qemu's `docs/interop/qcow2.txt`. The header (big-endian, [`Qcow2Header`]) gives the
//! cluster size, the virtual size and the L1 table; each L1 entry names an L2 table of one
//! cluster, each L2 entry one cluster of the disk: unallocated (read the backing file, or
//! zeros), zero (version 3's bit 0: zeros whatever the backing file holds), data at a
//! cluster-aligned host offset, or compressed (deflate without a zlib wrapper, or zstd when
//! the header's compression type says so) at a byte offset with a count of 512-byte sectors.
//! A backing file (`backing_file_offset`) is the parent link, opened by [`crate::Disk`] under
//! the same folder policy as a VMDK's parent; its format comes from the backing-format header
//! extension, or is probed.
//!
//! Refused with [`ErrorKind::Unsupported`]: encryption (AES or LUKS), external data files and
//! extended L2 entries (subclusters), and incompatible features this reader does not know.
//! Refused as damage, naming the file, the structure and the offset: a cluster size outside
//! 512 B..2 MiB, an L1 table too small for the size or larger than qemu's 32 MiB limit, tables
//! and clusters that are not cluster-aligned, lie past the end of the file or over the header,
//! the L1 table or the refcount table, and compressed clusters that do not inflate to exactly
//! one cluster. Only the L1 entries the virtual size needs are held in memory (read after
//! their range is checked against the file); L2 tables are read when needed, the last few
//! kept. Refcounts and internal snapshots are not read: the active L1 table is the disk.

use std::path::Path;
use std::sync::{Arc, Mutex};

use zerocopy::big_endian::{U32, U64};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

use super::grains::{refuse_reserved, GrainEntry, Grains, Reserved};
use crate::error::{Error, ErrorKind, Feature, Result};
use crate::format::SECTOR_SIZE;
use crate::io::Backing;

/// The structure name of the header, for errors.
pub(crate) const QCOW2_HEADER: &str = "qcow2 header";

/// The qcow2 header (version 3's 104 bytes; version 2 ends at `incompatible_features`).
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub(crate) struct Qcow2Header {
    /// `QFI\xfb`.
    pub magic: U32,
    /// 2 or 3.
    pub version: U32,
    /// Byte offset of the backing file's name, 0 when none.
    pub backing_file_offset: U64,
    /// Length of the backing file's name (at most 1023).
    pub backing_file_size: U32,
    /// Bits of the cluster size (9 to 21).
    pub cluster_bits: U32,
    /// Virtual size in bytes.
    pub size: U64,
    /// 0: none, 1: AES, 2: LUKS.
    pub crypt_method: U32,
    /// Entries of the L1 table.
    pub l1_size: U32,
    /// Byte offset of the L1 table (cluster-aligned).
    pub l1_table_offset: U64,
    /// Byte offset of the refcount table (cluster-aligned).
    pub refcount_table_offset: U64,
    /// Clusters of the refcount table.
    pub refcount_table_clusters: U32,
    /// Internal snapshots.
    pub nb_snapshots: U32,
    /// Byte offset of the snapshot table.
    pub snapshots_offset: U64,
    /// Version 3: incompatible feature bits (`INCOMPAT_*`).
    pub incompatible_features: U64,
    /// Version 3: compatible feature bits (bit 0: lazy refcounts).
    pub compatible_features: U64,
    /// Version 3: auto-clear feature bits.
    pub autoclear_features: U64,
    /// Version 3: refcount width is `1 << refcount_order` bits.
    pub refcount_order: U32,
    /// Version 3: length of the header, where the header extensions start.
    pub header_length: U32,
}

impl Qcow2Header {
    /// `QFI\xfb`, big-endian.
    pub(crate) const MAGIC: u32 = 0x5146_49fb;
    /// Bytes of a version 2 header.
    pub(crate) const V2_LENGTH: u64 = 72;
    /// Bytes of a version 3 header without the compression type.
    pub(crate) const V3_LENGTH: u64 = 104;
    /// Byte offset of `size`, for errors.
    pub(crate) const AT_SIZE: u64 = 24;
}

/// Incompatible feature bit: the image was not closed cleanly (refcounts may be stale).
pub(crate) const INCOMPAT_DIRTY: u64 = 1;
/// Incompatible feature bit: the image was found corrupt by qemu.
pub(crate) const INCOMPAT_CORRUPT: u64 = 1 << 1;
/// Incompatible feature bit: the data clusters live in an external data file.
pub(crate) const INCOMPAT_DATA_FILE: u64 = 1 << 2;
/// Incompatible feature bit: the compression type field is in use.
pub(crate) const INCOMPAT_COMPRESSION: u64 = 1 << 3;
/// Incompatible feature bit: extended L2 entries (subclusters).
pub(crate) const INCOMPAT_EXTL2: u64 = 1 << 4;

/// Header extension: the backing file's format name.
const EXT_BACKING_FORMAT: u32 = 0xe279_2aca;
/// Header extension: end of the extensions.
const EXT_END: u32 = 0;

/// Bits 9..55 of an L1 or L2 entry: a cluster-aligned host offset.
const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;
/// L2 entry bit 62: the cluster is compressed.
const COMPRESSED: u64 = 1 << 62;
/// L2 entry bit 0 (version 3): the cluster reads as zeros.
const ZERO: u64 = 1;
/// qemu's largest L1 table, in bytes.
const MAX_L1_BYTES: u64 = 32 << 20;
/// Marks a compressed cluster's descriptor in the value a [`GrainEntry::Data`] carries (an
/// uncompressed cluster's value is its host sector, far below this bit).
const COMPRESSED_MARK: u64 = 1 << 63;
/// L2 tables kept after a read.
const CACHED_TABLES: usize = 8;

/// How compressed clusters are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Compression {
    /// Raw deflate (no zlib wrapper), as qemu writes it.
    Deflate,
    /// A zstd frame.
    Zstd,
}

impl Compression {
    /// The header's name for it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Deflate => "zlib",
            Self::Zstd => "zstd",
        }
    }
}

/// An open qcow2 image.
#[derive(Debug)]
pub(crate) struct Qcow2Extent {
    backing: Backing,
    header: Qcow2Header,
    cluster_bits: u32,
    /// Virtual size, whole sectors (qemu drops a partial last sector too).
    capacity: u64,
    compression: Compression,
    /// The L1 entries the size needs.
    l1: Vec<u64>,
    backing_file: Option<String>,
    backing_format: Option<String>,
    /// The header cluster, the L1 table and the refcount table.
    reserved: Vec<Reserved>,
    /// The last L2 tables read, by L1 index.
    cache: Mutex<Vec<(usize, Arc<Vec<u64>>)>>,
}

/// Whether `head` starts with the qcow2 magic.
pub(crate) fn has_magic(head: &[u8]) -> bool {
    head.get(..4) == Some(&Qcow2Header::MAGIC.to_be_bytes()[..])
}

impl Qcow2Extent {
    /// Opens the qcow2 image in `backing`, checking its header and reading its L1 table.
    pub(crate) fn open(backing: Backing) -> Result<Self> {
        let path = backing.path().to_path_buf();
        let field = |at: u64, name: &'static str, value: u64, why: &'static str| {
            Error::field(&path, QCOW2_HEADER, at, name, value, why)
        };
        let head_len = backing.len().min(Qcow2Header::V3_LENGTH);
        let mut bytes = [0u8; Qcow2Header::V3_LENGTH as usize];
        backing.read_exact_at(
            QCOW2_HEADER,
            0,
            crate::io::head_mut(&mut bytes, head_len as usize),
        )?;
        if head_len < Qcow2Header::V2_LENGTH {
            return Err(Error::at(
                &path,
                QCOW2_HEADER,
                0,
                ErrorKind::Inconsistent(format!("the file ends after {head_len} bytes")),
            ));
        }
        let mut header = Qcow2Header::read_from_bytes(&bytes[..])
            .map_err(|_| Error::at(&path, QCOW2_HEADER, 0, ErrorKind::NotVmdk))?;
        let version = header.version.get();
        if version == 2 {
            header.incompatible_features = U64::new(0);
            header.compatible_features = U64::new(0);
            header.autoclear_features = U64::new(0);
            header.refcount_order = U32::new(4);
            header.header_length = U32::new(Qcow2Header::V2_LENGTH as u32);
        } else if version != 3 {
            return Err(Error::at(
                &path,
                QCOW2_HEADER,
                4,
                ErrorKind::Unsupported(Feature::Qcow2(format!(
                    "version {version} (versions 2 and 3 are read; version 1 is qcow)"
                ))),
            ));
        }
        let cluster_bits = header.cluster_bits.get();
        if !(9..=21).contains(&cluster_bits) {
            let why = "a cluster size from 512 bytes to 2 MiB (9 to 21 bits)";
            return Err(field(20, "cluster_bits", cluster_bits.into(), why));
        }
        refuse_features(&path, &header)?;
        let cluster = 1u64 << cluster_bits;
        let header_length = u64::from(header.header_length.get());
        if version == 3 && !(Qcow2Header::V3_LENGTH..=cluster).contains(&header_length) {
            let why = "from 104 bytes to one cluster";
            return Err(field(100, "header_length", header_length, why));
        }
        let compression = compression_of(&backing, &header)?;
        let capacity = header.size.get() / SECTOR_SIZE * SECTOR_SIZE;
        let (backing_file, backing_format) = backing_names(&backing, &header, cluster)?;
        let mut reserved = vec![Reserved {
            start: 0,
            end: cluster,
            what: "qcow2 header cluster",
        }];
        let refcount_table = u64::from(header.refcount_table_clusters.get()) << cluster_bits;
        let at = aligned(&path, &header, 48, "refcount_table_offset")?;
        reserved.push(Reserved {
            start: at,
            end: at.saturating_add(refcount_table),
            what: "refcount table",
        });
        let l1 = read_l1(&backing, &header, capacity, &mut reserved)?;
        Ok(Self {
            backing,
            header,
            cluster_bits,
            capacity,
            compression,
            l1,
            backing_file,
            backing_format,
            reserved,
            cache: Mutex::new(Vec::new()),
        })
    }

    /// The header as read (a version 2 header with version 3's defaults).
    pub(crate) fn header(&self) -> &Qcow2Header {
        &self.header
    }

    /// Virtual size in bytes.
    pub(crate) fn capacity_bytes(&self) -> u64 {
        self.capacity
    }

    /// How compressed clusters are compressed.
    pub(crate) fn compression(&self) -> Compression {
        self.compression
    }

    /// The backing file's name as written, if any.
    pub(crate) fn backing_file(&self) -> Option<&str> {
        self.backing_file.as_deref()
    }

    /// The backing file's format from the header extension (`raw`, `qcow2`, `vmdk`...).
    pub(crate) fn backing_format(&self) -> Option<&str> {
        self.backing_format.as_deref()
    }

    /// The L1 entries the size needs, as written.
    pub(crate) fn l1(&self) -> &[u64] {
        &self.l1
    }

    fn cluster(&self) -> u64 {
        1 << self.cluster_bits
    }

    fn l2_entries(&self) -> u64 {
        self.cluster() / 8
    }

    /// Number of clusters of the disk (the last may be partial).
    pub(crate) fn cluster_count(&self) -> u64 {
        self.capacity.div_ceil(self.cluster())
    }

    /// Byte offset of the L2 table L1 entry `index` names, `None` when it names none.
    pub(crate) fn l2_at(&self, index: usize) -> Result<Option<u64>> {
        let raw = self.l1.get(index).copied().unwrap_or(0);
        let at = raw & OFFSET_MASK;
        if at == 0 {
            return Ok(None);
        }
        let l1_at = self.header.l1_table_offset.get() + index as u64 * 8;
        let path = self.backing.path();
        if at % self.cluster() != 0 {
            let why = "an L2 table offset that is not cluster-aligned";
            return Err(Error::field(path, "L1 table", l1_at, "entry", raw, why));
        }
        self.refuse_metadata_at("L2 table", at, self.cluster())?;
        self.backing.check_range("L2 table", at, self.cluster())?;
        Ok(Some(at))
    }

    /// The L2 table behind L1 entry `index` (its byte offset and raw entries), `None` when the
    /// entry names none.
    pub(crate) fn l2_table(&self, index: usize) -> Result<Option<(u64, Arc<Vec<u64>>)>> {
        let Some(at) = self.l2_at(index)? else {
            return Ok(None);
        };
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, t)) = cache.iter().find(|(i, _)| *i == index) {
            return Ok(Some((at, t.clone())));
        }
        drop(cache);
        let bytes = self.backing.read_vec("L2 table", at, self.cluster())?;
        let table: Arc<Vec<u64>> = Arc::new(
            bytes
                .chunks_exact(8)
                .map(|c| c.try_into().map_or(0, u64::from_be_bytes))
                .collect(),
        );
        cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHED_TABLES {
            cache.remove(0);
        }
        cache.push((index, table.clone()));
        Ok(Some((at, table)))
    }

    /// What L2 entry `raw` (entry `i` of the table at `table_at`) says about its cluster.
    pub(crate) fn decode(&self, table_at: u64, i: u64, raw: u64) -> Result<GrainEntry> {
        let at = table_at + i * 8;
        let bad = |why| Error::field(self.backing.path(), "L2 table", at, "entry", raw, why);
        if raw & COMPRESSED != 0 {
            let (offset, len) = self.compressed_range(raw);
            if offset == 0 || offset.checked_add(len).is_none() {
                return Err(bad("a compressed cluster at offset 0"));
            }
            return Ok(GrainEntry::Data(
                (raw & !(COMPRESSED | (1 << 63))) | COMPRESSED_MARK,
            ));
        }
        let offset = raw & OFFSET_MASK;
        // As qemu reads it, whatever the version: bit 0 reads as zeros.
        if raw & ZERO != 0 {
            return Ok(GrainEntry::Zeroed);
        }
        if offset == 0 {
            return Ok(GrainEntry::Unallocated);
        }
        if offset % self.cluster() != 0 {
            return Err(bad("a data cluster offset that is not cluster-aligned"));
        }
        Ok(GrainEntry::Data(offset / SECTOR_SIZE))
    }

    /// The host byte offset of a compressed cluster's data, and the bytes its descriptor
    /// gives it (qemu's `qcow2_parse_compressed_l2_entry`).
    fn compressed_range(&self, raw: u64) -> (u64, u64) {
        let shift = 62 - (self.cluster_bits - 8);
        let offset = raw & ((1u64 << shift) - 1);
        let sectors = ((raw >> shift) & ((1u64 << (self.cluster_bits - 8)) - 1)) + 1;
        (offset, sectors * SECTOR_SIZE - (offset % SECTOR_SIZE))
    }

    /// The bytes of the file a compressed cluster's L2 entry `raw` names: from the start of
    /// its first sector, whole sectors (what `qemu-img check` counts as its references).
    #[cfg(feature = "write")]
    pub(crate) fn compressed_span(&self, raw: u64) -> (u64, u64) {
        let (offset, len) = self.compressed_range(raw & !(COMPRESSED | (1 << 63)));
        let start = offset / SECTOR_SIZE * SECTOR_SIZE;
        (
            start,
            (offset + len - start).div_ceil(SECTOR_SIZE) * SECTOR_SIZE,
        )
    }

    /// Reads `len` bytes of metadata at `at` (checked against the file first).
    #[cfg(feature = "write")]
    pub(crate) fn read_metadata(
        &self,
        structure: &'static str,
        at: u64,
        len: u64,
    ) -> Result<Vec<u8>> {
        self.backing.read_vec(structure, at, len)
    }

    /// The host byte offset where the compressed cluster whose value is `value` starts, after
    /// checking it is clear of the metadata.
    pub(crate) fn compressed_start(&self, value: u64) -> Result<u64> {
        let (offset, len) = self.compressed_range(value & !COMPRESSED_MARK);
        self.refuse_metadata_at("compressed cluster", offset, len)?;
        Ok(offset)
    }

    fn refuse_metadata_at(&self, structure: &'static str, at: u64, len: u64) -> Result<()> {
        refuse_reserved(&self.backing, &self.reserved, structure, at, len)
    }

    fn for_each_table(
        &self,
        first: u64,
        count: u64,
        f: impl FnMut(u64, u64, Option<&(u64, Arc<Vec<u64>>)>) -> Result<()>,
    ) -> Result<()> {
        super::grains::for_each_table(
            (first, count),
            (self.cluster_count(), self.l2_entries()),
            |i| self.l2_table(i),
            f,
        )
    }

    fn entry(&self, table: Option<&(u64, Arc<Vec<u64>>)>, c: u64) -> Result<GrainEntry> {
        let Some((at, entries)) = table else {
            return Ok(GrainEntry::Unallocated);
        };
        let i = c % self.l2_entries();
        let raw = usize::try_from(i)
            .ok()
            .and_then(|i| entries.get(i))
            .copied()
            .unwrap_or(0);
        self.decode(*at, i, raw)
    }

    /// Inflates the compressed cluster `c` whose descriptor is `value` (as [`Self::decode`]
    /// gives it) into `out`, one cluster long.
    pub(crate) fn inflate_cluster(&self, c: u64, value: u64, out: &mut [u8]) -> Result<()> {
        let (offset, len) = self.compressed_range(value & !COMPRESSED_MARK);
        if offset >= self.backing.len() {
            return Err(Error::at(
                self.backing.path(),
                "compressed cluster",
                offset,
                ErrorKind::Inconsistent(format!("cluster {c} lies past the end of the file")),
            ));
        }
        self.refuse_metadata_at("compressed cluster", offset, len)?;
        // The last compressed cluster may end before its last sector does: read what exists.
        let len = len.min(self.backing.len().saturating_sub(offset));
        let input = self.backing.read_vec("compressed cluster", offset, len)?;
        let produced = match self.compression {
            Compression::Deflate => crate::codec::inflate_raw(&input, out),
            Compression::Zstd => zstd_into(&input, out),
        };
        match produced {
            Ok(n) if n == out.len() => Ok(()),
            Ok(n) => Err(Error::at(
                self.backing.path(),
                "compressed cluster",
                offset,
                ErrorKind::Inconsistent(format!(
                    "cluster {c} inflates to {n} bytes, not one cluster ({})",
                    out.len()
                )),
            )),
            Err(e) => Err(Error::at(
                self.backing.path(),
                "compressed cluster",
                offset,
                ErrorKind::Inconsistent(format!(
                    "cluster {c} ({}): {e}",
                    self.compression.as_str()
                )),
            )),
        }
    }
}

/// Refuses the header features this reader does not read.
fn refuse_features(path: &Path, header: &Qcow2Header) -> Result<()> {
    let unsupported = |at: u64, what: String| {
        Err(Error::at(
            path,
            QCOW2_HEADER,
            at,
            ErrorKind::Unsupported(Feature::Qcow2(what)),
        ))
    };
    match header.crypt_method.get() {
        0 => {}
        1 => return unsupported(32, "AES encryption".into()),
        2 => return unsupported(32, "LUKS encryption".into()),
        m => return unsupported(32, format!("encryption method {m}")),
    }
    let incompatible = header.incompatible_features.get();
    if incompatible & INCOMPAT_DATA_FILE != 0 {
        return unsupported(72, "an external data file (data_file)".into());
    }
    if incompatible & INCOMPAT_EXTL2 != 0 {
        return unsupported(72, "extended L2 entries (subclusters)".into());
    }
    let known = INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_COMPRESSION;
    if incompatible & !known != 0 {
        let bits = incompatible & !known;
        return unsupported(72, format!("incompatible feature bits {bits:#x}"));
    }
    Ok(())
}

/// The compression type: deflate unless the header says zstd (byte 104, with its
/// incompatible bit set).
fn compression_of(backing: &Backing, header: &Qcow2Header) -> Result<Compression> {
    let path = backing.path();
    let flagged = header.incompatible_features.get() & INCOMPAT_COMPRESSION != 0;
    let kind = if u64::from(header.header_length.get()) > Qcow2Header::V3_LENGTH {
        let mut b = [0u8; 1];
        backing.read_exact_at(QCOW2_HEADER, Qcow2Header::V3_LENGTH, &mut b)?;
        b[0]
    } else {
        0
    };
    match (kind, flagged) {
        (0, _) => Ok(Compression::Deflate),
        (1, true) => Ok(Compression::Zstd),
        (1, false) => Err(Error::field(
            path,
            QCOW2_HEADER,
            104,
            "compression_type",
            1,
            "zstd without the compression-type incompatible bit",
        )),
        (k, _) => Err(Error::at(
            path,
            QCOW2_HEADER,
            104,
            ErrorKind::Unsupported(Feature::Qcow2(format!("compression type {k}"))),
        )),
    }
}

/// The byte offset in the header field at `at` (`name`), which must be cluster-aligned.
fn aligned(path: &Path, header: &Qcow2Header, at: u64, name: &'static str) -> Result<u64> {
    let value = match at {
        40 => header.l1_table_offset.get(),
        _ => header.refcount_table_offset.get(),
    };
    if value % (1u64 << header.cluster_bits.get()) != 0 {
        let why = "not cluster-aligned";
        return Err(Error::field(path, QCOW2_HEADER, at, name, value, why));
    }
    Ok(value)
}

/// The backing file's name and the backing format named in the header extensions.
fn backing_names(
    backing: &Backing,
    header: &Qcow2Header,
    cluster: u64,
) -> Result<(Option<String>, Option<String>)> {
    let path = backing.path();
    let name_at = header.backing_file_offset.get();
    let name_len = u64::from(header.backing_file_size.get());
    let name = if name_at == 0 {
        None
    } else {
        if name_len == 0 || name_len > 1023 || name_at.saturating_add(name_len) > cluster {
            let why = "a backing file name of 1 to 1023 bytes inside the first cluster";
            return Err(Error::field(
                path,
                QCOW2_HEADER,
                16,
                "backing_file_size",
                name_len,
                why,
            ));
        }
        let bytes = backing.read_vec("backing file name", name_at, name_len)?;
        Some(String::from_utf8(bytes).map_err(|_| {
            Error::at(
                path,
                "backing file name",
                name_at,
                ErrorKind::Inconsistent("not UTF-8".into()),
            )
        })?)
    };
    // The extensions run from the end of the header to the backing file name (or the end of
    // the first cluster); each is a type, a length and its data padded to 8 bytes.
    let end = if name_at == 0 {
        cluster
    } else {
        name_at.min(cluster)
    }
    .min(backing.len());
    let mut at = u64::from(header.header_length.get());
    if header.version.get() >= 3 && at > Qcow2Header::V3_LENGTH {
        at = at.div_ceil(8) * 8;
    }
    let mut format = None;
    while at + 8 <= end {
        let head = backing.read_vec("header extension", at, 8)?;
        let kind = head
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u32::from_be_bytes);
        let len = head
            .get(4..)
            .and_then(|b| b.try_into().ok())
            .map_or(0, u32::from_be_bytes);
        if kind == EXT_END {
            break;
        }
        let data_at = at + 8;
        if data_at + u64::from(len) > end {
            return Err(Error::field(
                path,
                "header extension",
                at,
                "length",
                len.into(),
                "runs past the header area",
            ));
        }
        if kind == EXT_BACKING_FORMAT {
            let bytes = backing.read_vec("backing format extension", data_at, len.into())?;
            format = Some(
                String::from_utf8_lossy(&bytes)
                    .trim_end_matches('\0')
                    .to_string(),
            );
        }
        at = data_at + u64::from(len).div_ceil(8) * 8;
    }
    Ok((name, format))
}

/// Reads the L1 entries a disk of `capacity` bytes needs, after checking the table against
/// the file and qemu's limit; the table joins `reserved`.
fn read_l1(
    backing: &Backing,
    header: &Qcow2Header,
    capacity: u64,
    reserved: &mut Vec<Reserved>,
) -> Result<Vec<u64>> {
    let path = backing.path();
    let cluster_bits = header.cluster_bits.get();
    let covers = 1u64 << (2 * cluster_bits - 3);
    let needed = capacity.div_ceil(covers);
    let l1_size = u64::from(header.l1_size.get());
    if l1_size < needed {
        let why = "smaller than the virtual size needs";
        return Err(Error::field(
            path,
            QCOW2_HEADER,
            36,
            "l1_size",
            l1_size,
            why,
        ));
    }
    if l1_size * 8 > MAX_L1_BYTES {
        let why = "over qemu's limit of 32 MiB of L1 table";
        return Err(Error::field(
            path,
            QCOW2_HEADER,
            36,
            "l1_size",
            l1_size,
            why,
        ));
    }
    let at = aligned(path, header, 40, "l1_table_offset")?;
    let len = needed * 8;
    if needed > 0 {
        if at == 0 {
            let why = "the L1 table over the header";
            return Err(Error::field(
                path,
                QCOW2_HEADER,
                40,
                "l1_table_offset",
                0,
                why,
            ));
        }
        refuse_reserved(backing, reserved, "L1 table", at, len)?;
    }
    let bytes = backing.read_vec("L1 table", at, len)?;
    reserved.push(Reserved {
        start: at,
        end: at + l1_size * 8,
        what: "L1 table",
    });
    let l1: Vec<u64> = bytes
        .chunks_exact(8)
        .map(|c| c.try_into().map_or(0, u64::from_be_bytes))
        .collect();
    Ok(l1)
}

/// Decodes the zstd frame at the start of `input` into `out` (trailing bytes ignored, as
/// qemu ignores the padding of a cluster's last sector); returns the bytes produced, at most
/// `out.len()`.
fn zstd_into(input: &[u8], out: &mut [u8]) -> std::result::Result<usize, String> {
    use std::io::Read;
    let mut source = input;
    let mut decoder =
        ruzstd::decoding::StreamingDecoder::new(&mut source).map_err(|e| e.to_string())?;
    let mut n = 0;
    while n < out.len() {
        match decoder.read(out.get_mut(n..).unwrap_or_default()) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) => return Err(e.to_string()),
        }
    }
    Ok(n)
}

impl Grains for Qcow2Extent {
    fn backing(&self) -> &Backing {
        &self.backing
    }

    fn capacity_sectors(&self) -> u64 {
        self.capacity / SECTOR_SIZE
    }

    fn capacity_field(&self) -> (&'static str, u64) {
        (QCOW2_HEADER, Qcow2Header::AT_SIZE)
    }

    fn grain_bytes(&self) -> u64 {
        self.cluster()
    }

    fn for_each_grain(
        &self,
        first: u64,
        count: u64,
        mut f: impl FnMut(u64, GrainEntry) -> Result<()>,
    ) -> Result<()> {
        self.for_each_table(first, count, |from, to, table| {
            (from..to).try_for_each(|c| f(c, self.entry(table, c)?))
        })
    }

    fn for_each_run(
        &self,
        first: u64,
        count: u64,
        mut f: impl FnMut(u64, u64, GrainEntry) -> Result<()>,
    ) -> Result<()> {
        self.for_each_table(first, count, |from, to, table| {
            if table.is_none() {
                return f(from, to - from, GrainEntry::Unallocated);
            }
            super::grains::runs_in_table((from, to), |g| self.entry(table, g), &mut f)
        })
    }

    fn is_compressed(&self) -> bool {
        false
    }

    fn is_compressed_grain(&self, value: u64) -> bool {
        value & COMPRESSED_MARK != 0
    }

    fn grain_offset(&self, _grain: u64, sector: u64) -> Result<u64> {
        // An uncompressed cluster's value is its host offset over 512: below 2^47.
        Ok(sector * SECTOR_SIZE)
    }

    fn refuse_metadata(&self, structure: &'static str, at: u64, len: u64) -> Result<()> {
        self.refuse_metadata_at(structure, at, len)
    }

    fn read_grain_part(
        &self,
        grain: u64,
        value: u64,
        within: u64,
        out: &mut [u8],
        scratch: &mut Vec<u8>,
    ) -> Result<()> {
        if !self.is_compressed_grain(value) {
            let at = self.grain_offset(grain, value)?;
            self.refuse_metadata_at("cluster", at, self.cluster())?;
            return self.backing.read_exact_at("cluster", at + within, out);
        }
        scratch.resize(self.cluster() as usize, 0);
        self.inflate_cluster(grain, value, scratch)?;
        let from = within as usize;
        let part = scratch.get(from..from + out.len()).ok_or_else(|| {
            Error::at(
                self.backing.path(),
                "compressed cluster",
                within,
                ErrorKind::InvalidInput("a read past the end of the cluster".into()),
            )
        })?;
        out.copy_from_slice(part);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(version: u32, cluster_bits: u32, size: u64) -> Vec<u8> {
        let cluster = 1usize << cluster_bits;
        let mut f = vec![0u8; cluster * 3];
        let h = Qcow2Header {
            magic: U32::new(Qcow2Header::MAGIC),
            version: U32::new(version),
            backing_file_offset: U64::new(0),
            backing_file_size: U32::new(0),
            cluster_bits: U32::new(cluster_bits),
            size: U64::new(size),
            crypt_method: U32::new(0),
            l1_size: U32::new(1),
            l1_table_offset: U64::new(cluster as u64),
            refcount_table_offset: U64::new(2 * cluster as u64),
            refcount_table_clusters: U32::new(1),
            nb_snapshots: U32::new(0),
            snapshots_offset: U64::new(0),
            incompatible_features: U64::new(0),
            compatible_features: U64::new(0),
            autoclear_features: U64::new(0),
            refcount_order: U32::new(4),
            header_length: U32::new(104),
        };
        f[..104].copy_from_slice(h.as_bytes());
        f
    }

    fn open(bytes: Vec<u8>) -> Result<Qcow2Extent> {
        Qcow2Extent::open(Backing::from_bytes("q.qcow2", bytes))
    }

    #[test]
    fn header_is_104_bytes() {
        assert_eq!(size_of::<Qcow2Header>(), 104);
    }

    #[test]
    fn opens_an_empty_image() {
        let q = open(image(3, 16, 1 << 20)).unwrap();
        assert_eq!(q.capacity_bytes(), 1 << 20);
        assert_eq!(q.cluster_count(), 16);
        assert_eq!(q.l2_at(0).unwrap(), None);
    }

    #[test]
    fn refuses_bad_headers() {
        let mut f = image(3, 16, 1 << 20);
        f[23] = 30; // cluster_bits
        assert!(open(f).unwrap_err().to_string().contains("cluster_bits"));
        let mut f = image(3, 16, 1 << 40);
        f[39] = 0; // l1_size 0 for 1 TiB
        let e = open(f).unwrap_err().to_string();
        assert!(e.contains("l1_size"), "{e}");
        let mut f = image(3, 16, 1 << 20);
        f[35] = 2; // LUKS
        let e = open(f).unwrap_err();
        assert!(matches!(e.kind(), ErrorKind::Unsupported(_)), "{e}");
        let mut f = image(3, 16, 1 << 20);
        f[79] = 1 << 4; // extended L2
        assert!(matches!(
            open(f).unwrap_err().kind(),
            ErrorKind::Unsupported(_)
        ));
        let mut f = image(4, 16, 1 << 20);
        f[7] = 4;
        assert!(matches!(
            open(f).unwrap_err().kind(),
            ErrorKind::Unsupported(_)
        ));
        // An L1 table that claims far more than the file holds.
        let mut f = image(3, 9, 1 << 50);
        f[36..40].copy_from_slice(&(1u32 << 22).to_be_bytes());
        assert!(open(f).is_err());
    }

    #[test]
    fn decodes_entries() {
        let mut f = image(3, 16, 1 << 20);
        // L1 entry 0 -> L2 at cluster 3; entries: data, zero, compressed, misaligned.
        f[65536..65544].copy_from_slice(&(3u64 << 16 | 1 << 63).to_be_bytes());
        f.resize(5 << 16, 0);
        let l2 = 3usize << 16;
        f[l2..l2 + 8].copy_from_slice(&(4u64 << 16 | 1 << 63).to_be_bytes());
        f[l2 + 8..l2 + 16].copy_from_slice(&1u64.to_be_bytes());
        f[l2 + 16..l2 + 24].copy_from_slice(&(COMPRESSED | 4 << 16).to_be_bytes());
        f[l2 + 24..l2 + 32].copy_from_slice(&(4u64 << 16 | 0x200).to_be_bytes());
        let q = open(f).unwrap();
        let mut seen = Vec::new();
        let r = q.for_each_grain(0, 4, |c, e| {
            seen.push((c, e));
            Ok(())
        });
        assert!(r.unwrap_err().to_string().contains("cluster-aligned"));
        assert_eq!(seen[0], (0, GrainEntry::Data((4 << 16) / 512)));
        assert_eq!(seen[1], (1, GrainEntry::Zeroed));
        assert!(matches!(seen[2].1, GrainEntry::Data(v) if q.is_compressed_grain(v)));
    }
}
