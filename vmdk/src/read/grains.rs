//! What every sparse reader shares: the entry a grain table gives a grain ([`GrainEntry`]),
//! the metadata ranges no table or grain may overlap ([`Reserved`]), and what a
//! [`crate::Disk`] reads through, whatever the format ([`Grains`]): a hosted sparse extent and
//! an ESXi delta extent both map each grain to an entry (unallocated, zeroed, or data at a
//! sector).

use crate::error::{Error, ErrorKind, Result};
use crate::io::Backing;

/// What a grain table entry says about one grain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrainEntry {
    /// Not allocated: read the parent link, or zeros.
    Unallocated,
    /// Reads as zeros, whatever the parent holds.
    Zeroed,
    /// Data at this sector of the file (a grain marker for stream-optimized extents).
    Data(u64),
}

/// Calls `f(first_grain, end_grain, table)` for each grain table covering grains `first..
/// first + count` (clipped to `grain_count`), each table loaded once by `load(index)` (`None`:
/// absent); tables hold `per_table` entries.
pub(crate) fn for_each_table<T>(
    (first, count): (u64, u64),
    (grain_count, per_table): (u64, u64),
    load: impl Fn(usize) -> Result<Option<T>>,
    mut f: impl FnMut(u64, u64, Option<&T>) -> Result<()>,
) -> Result<()> {
    let end = first.saturating_add(count).min(grain_count);
    let mut grain = first;
    while grain < end && per_table > 0 {
        let index = grain / per_table;
        let table_end = index.saturating_add(1).saturating_mul(per_table).min(end);
        let table = usize::try_from(index)
            .ok()
            .map(&load)
            .transpose()?
            .flatten();
        f(grain, table_end, table.as_ref())?;
        grain = table_end;
    }
    Ok(())
}

/// Calls `f(first_grain, count, kind)` for the runs of grains of one kind in `from..to` of one
/// loaded table, `entry(g)` giving each grain's entry (every data grain counted as `Data(0)`).
pub(crate) fn runs_in_table(
    (from, to): (u64, u64),
    entry: impl Fn(u64) -> Result<GrainEntry>,
    f: &mut impl FnMut(u64, u64, GrainEntry) -> Result<()>,
) -> Result<()> {
    let kind = |g: u64| {
        entry(g).map(|e| match e {
            GrainEntry::Data(_) => GrainEntry::Data(0),
            other => other,
        })
    };
    let mut grain = from;
    while grain < to {
        let k = kind(grain)?;
        let mut n = 1;
        while grain + n < to && kind(grain + n)? == k {
            n += 1;
        }
        f(grain, n, k)?;
        grain += n;
    }
    Ok(())
}

/// A byte range of a file that holds metadata no grain table or grain may overlap.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Reserved {
    pub start: u64,
    pub end: u64,
    pub what: &'static str,
}

/// The first of the `reserved` ranges that `start..end` overlaps.
pub(crate) fn overlapping(reserved: &[Reserved], start: u64, end: u64) -> Option<&Reserved> {
    reserved.iter().find(|r| start < r.end && r.start < end)
}

/// Refuses a grain table or grain of `backing` at `at..at + len` that overlaps one of the
/// `reserved` ranges: such an entry points into metadata.
pub(crate) fn refuse_reserved(
    backing: &Backing,
    reserved: &[Reserved],
    structure: &'static str,
    at: u64,
    len: u64,
) -> Result<()> {
    match overlapping(reserved, at, at.saturating_add(len)) {
        None => Ok(()),
        Some(r) => Err(Error::at(
            backing.path(),
            structure,
            at,
            ErrorKind::Inconsistent(format!(
                "lies inside the {} ({:#x}..{:#x})",
                r.what, r.start, r.end
            )),
        )),
    }
}

/// What [`crate::Disk`] reads, maps and copies through: a sparse extent of any format, seen as
/// grains of one size, each with its [`GrainEntry`].
pub(crate) trait Grains {
    /// The file.
    fn backing(&self) -> &Backing;
    /// Capacity in sectors, as the extent's header gives it.
    fn capacity_sectors(&self) -> u64;
    /// Where the header keeps the capacity: the structure and the field's byte offset.
    fn capacity_field(&self) -> (&'static str, u64);
    /// Grain size in bytes.
    fn grain_bytes(&self) -> u64;
    /// Calls `f(grain, entry)` for `count` grains from `first`, reading each grain table once.
    fn for_each_grain(
        &self,
        first: u64,
        count: u64,
        f: impl FnMut(u64, GrainEntry) -> Result<()>,
    ) -> Result<()>;
    /// Calls `f(first_grain, count, kind)` for the runs of grains of one kind from `first`,
    /// with `Data(0)` for any data grain; an absent grain table is one call.
    fn for_each_run(
        &self,
        first: u64,
        count: u64,
        f: impl FnMut(u64, u64, GrainEntry) -> Result<()>,
    ) -> Result<()>;
    /// Whether grains are compressed (then read with [`Grains::read_grain_part`]).
    fn is_compressed(&self) -> bool;
    /// Whether the grain whose entry is `Data(value)` is compressed: every grain of a
    /// compressed extent, some clusters of a qcow2 image.
    fn is_compressed_grain(&self, value: u64) -> bool {
        let _ = value;
        self.is_compressed()
    }
    /// Byte offset of grain `grain` stored at `sector`.
    fn grain_offset(&self, grain: u64, sector: u64) -> Result<u64>;
    /// Refuses a grain table or grain at `at..at + len` that overlaps metadata.
    fn refuse_metadata(&self, structure: &'static str, at: u64, len: u64) -> Result<()>;
    /// Reads `out.len()` bytes from `within` bytes into grain `grain`, stored at `sector`.
    fn read_grain_part(
        &self,
        grain: u64,
        sector: u64,
        within: u64,
        out: &mut [u8],
        scratch: &mut Vec<u8>,
    ) -> Result<()>;
}
