//! `qemu-img compare A B`: whether two disks read alike, and where they first differ.

use vmdk::{Allocation, Disk};

use crate::error::Result;

/// What `qemu-img compare` (without `-s`) finds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Comparison {
    /// The capacities differ (the larger's excess must read as zeros).
    pub size_mismatch: bool,
    /// The first 512-byte sector whose bytes differ (or, past the smaller disk, are not zero).
    pub mismatch_at: Option<u64>,
}

impl Comparison {
    /// qemu-img's exit code: 0 identical, 1 different.
    pub fn exit_code(&self) -> u8 {
        u8::from(self.mismatch_at.is_some())
    }

    /// qemu-img's message lines.
    pub fn human(&self) -> String {
        let mut o = String::new();
        if self.size_mismatch {
            o.push_str("Warning: Image size mismatch!\n");
        }
        match self.mismatch_at {
            Some(at) => o.push_str(&format!("Content mismatch at offset {at}!\n")),
            None => o.push_str("Images are identical.\n"),
        }
        o
    }
}

/// Bytes compared at a time (each disk's buffer).
const WINDOW: u64 = 32 << 20;

/// The byte ranges that `runs` (one disk's or two disks' over one window) mark as data, sorted
/// and merged.
fn data_ranges(runs: impl Iterator<Item = vmdk::Run>) -> Vec<(u64, u64)> {
    let mut ranges: Vec<(u64, u64)> = runs
        .filter(|r| r.kind == Allocation::Data)
        .map(|r| (r.offset, r.offset + r.len))
        .collect();
    ranges.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::new();
    for (s, e) in ranges {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    merged
}

/// `a` and `b` read side by side: where the bytes differ first. Ranges neither stores as data
/// read as zeros in both and are not read; past the smaller capacity, the larger disk's data
/// must be zeros.
pub fn compare(a: &Disk, b: &Disk) -> Result<Comparison> {
    let common = a.capacity().min(b.capacity());
    let larger = if a.capacity() > b.capacity() { a } else { b };
    let mut first = None;
    let (mut x, mut y) = (Vec::new(), Vec::new());
    let mut at = 0;
    'windows: while at < larger.capacity() {
        let n = (larger.capacity() - at).min(WINDOW);
        let n = match at < common {
            true => n.min(common - at),
            false => n,
        };
        let runs = match at < common {
            true => a
                .map(at, n)?
                .into_iter()
                .chain(b.map(at, n)?)
                .collect::<Vec<_>>(),
            false => larger.map(at, n)?,
        };
        for (s, e) in data_ranges(runs.into_iter()) {
            let len = usize::try_from(e - s).unwrap_or(usize::MAX);
            x.resize(len, 0);
            y.resize(len, 0);
            if at < common {
                a.read_exact_at(s, &mut x)?;
                b.read_exact_at(s, &mut y)?;
            } else {
                larger.read_exact_at(s, &mut x)?;
                y.fill(0);
            }
            if let Some(i) = x.iter().zip(&y).position(|(p, q)| p != q) {
                first = Some((s + i as u64) / 512 * 512);
                break 'windows;
            }
        }
        at += n;
    }
    Ok(Comparison {
        size_mismatch: a.capacity() != b.capacity(),
        mismatch_at: first,
    })
}
