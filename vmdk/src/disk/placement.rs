//! Where each byte of a disk is stored: which link of the chain holds it, in which file and at
//! which offset, compressed or not (what `qemu-img map` reports, and what a tool that copies
//! extents by offset needs).

use std::path::PathBuf;

use super::{Allocation, Disk, ExtentData};
use crate::error::Result;
use crate::read::grains::{GrainEntry, Grains};

/// A run of a disk's bytes and where they are stored.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Placement {
    /// Byte offset in the disk.
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    /// What it holds. A hole of a flat extent's file is [`Allocation::Zero`] with its file.
    pub kind: Allocation,
    /// The link of the chain that holds it: 0 the disk itself, 1 its parent, and so on; for
    /// bytes no link holds, the last link looked at.
    pub depth: usize,
    /// The file holding the bytes as they read, and the byte offset of the first: uncompressed
    /// grains and flat extents; `None` for compressed grains, zeroed grains, ZERO extents and
    /// bytes no link holds.
    pub file: Option<(PathBuf, u64)>,
    /// Whether the bytes are in compressed grains.
    pub compressed: bool,
}

impl Placement {
    /// Whether `next` continues this run: the same kind, link and compression, and the next
    /// bytes of the same file.
    fn continued_by(&self, next: &Placement) -> bool {
        let contiguous = match (&self.file, &next.file) {
            (None, None) => true,
            (Some((a, at)), Some((b, bt))) => a == b && at.checked_add(self.len) == Some(*bt),
            _ => false,
        };
        self.kind == next.kind
            && self.depth == next.depth
            && self.compressed == next.compressed
            && self.offset + self.len == next.offset
            && contiguous
    }
}

fn push(out: &mut Vec<Placement>, p: Placement) {
    if p.len == 0 {
        return;
    }
    if let Some(last) = out.last_mut() {
        if last.continued_by(&p) {
            last.len += p.len;
            return;
        }
    }
    out.push(p);
}

impl Disk {
    /// Where the `len` bytes from `offset` are stored, through the parent links, merged into
    /// runs. The walk reads the grain tables present in the range, and looks at single grains
    /// only inside runs of allocated ones: its work follows what is stored, not the capacity.
    pub fn placements(&self, offset: u64, len: u64) -> Result<Vec<Placement>> {
        self.check_range(offset, len)?;
        let mut out = Vec::new();
        self.place_into(offset, offset + len, 0, &mut out)?;
        Ok(out)
    }

    fn place_into(&self, from: u64, to: u64, depth: usize, out: &mut Vec<Placement>) -> Result<()> {
        let at = |offset, len, kind, file| Placement {
            offset,
            len,
            kind,
            depth,
            file,
            compressed: false,
        };
        for e in self.overlapping(from, to) {
            let f = from.max(e.start);
            let t = to.min(e.start + e.len);
            match &e.data {
                ExtentData::Flat { backing, offset } => {
                    let path = backing.path().to_path_buf();
                    let base = offset.saturating_add(f - e.start);
                    match backing.data_runs(base, base.saturating_add(t - f)) {
                        Some(parts) if parts.iter().map(|p| p.1).sum::<u64>() == t - f => {
                            for (pos, n, data) in parts {
                                let kind = match data {
                                    true => Allocation::Data,
                                    false => Allocation::Zero,
                                };
                                let file = Some((path.clone(), pos));
                                push(out, at(f + (pos - base), n, kind, file));
                            }
                        }
                        _ => push(out, at(f, t - f, Allocation::Data, Some((path, base)))),
                    }
                }
                ExtentData::Zero => push(out, at(f, t - f, Allocation::Zero, None)),
                ExtentData::Sparse(s) => self.place_sparse(&**s, (e.start, f, t), depth, out)?,
                ExtentData::Esx(s) => self.place_sparse(&**s, (e.start, f, t), depth, out)?,
                ExtentData::Qcow2(s) => self.place_sparse(&**s, (e.start, f, t), depth, out)?,
            }
        }
        Ok(())
    }

    /// The placements of `from..to` (disk offsets) in the sparse extent `s` placed at `base`.
    fn place_sparse<S: Grains>(
        &self,
        s: &S,
        (base, from, to): (u64, u64, u64),
        depth: usize,
        out: &mut Vec<Placement>,
    ) -> Result<()> {
        let gb = s.grain_bytes();
        let first = (from - base) / gb;
        let last = (to - base).div_ceil(gb);
        let path = s.backing().path().to_path_buf();
        let clip = |g: u64, n: u64| ((base + g * gb).max(from), (base + (g + n) * gb).min(to));
        s.for_each_run(first, last - first, |g, n, entry| {
            let (g_from, g_to) = clip(g, n);
            let run = |kind| Placement {
                offset: g_from,
                len: g_to - g_from,
                kind,
                depth,
                file: None,
                compressed: false,
            };
            match entry {
                GrainEntry::Data(_) => s.for_each_grain(g, n, |grain, e| {
                    let GrainEntry::Data(sector) = e else {
                        return Ok(());
                    };
                    let (p_from, p_to) = clip(grain, 1);
                    let compressed = s.is_compressed_grain(sector);
                    let file = match compressed {
                        true => None,
                        false => {
                            let within = p_from - (base + grain * gb);
                            Some((path.clone(), s.grain_offset(grain, sector)? + within))
                        }
                    };
                    push(
                        out,
                        Placement {
                            offset: p_from,
                            len: p_to - p_from,
                            kind: Allocation::Data,
                            depth,
                            file,
                            compressed,
                        },
                    );
                    Ok(())
                }),
                GrainEntry::Zeroed => {
                    push(out, run(Allocation::Zero));
                    Ok(())
                }
                GrainEntry::Unallocated => match &self.parent {
                    Some(p) if g_from < p.capacity => {
                        let mid = g_to.min(p.capacity);
                        p.place_into(g_from, mid, depth + 1, out)?;
                        let mut rest = run(Allocation::Unallocated);
                        (rest.offset, rest.len, rest.depth) = (mid, g_to - mid, depth + 1);
                        push(out, rest);
                        Ok(())
                    }
                    _ => {
                        push(out, run(Allocation::Unallocated));
                        Ok(())
                    }
                },
            }
        })
    }
}
