//! `qemu-img map`: each run of the disk, which link holds it, whether it reads as zeros, and
//! where in which file its bytes lie.

use vmdk::{Allocation, Disk};

use super::Names;
use crate::error::Result;

/// One entry of `qemu-img map --output=json` (and a line of its human form when it maps data).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct MapEntry {
    /// Byte offset in the disk.
    pub start: u64,
    /// Length in bytes.
    pub length: u64,
    /// The link that holds it (0: the image itself); for bytes no link holds, the last link.
    pub depth: u64,
    /// Whether some link holds it (data or zeroes).
    pub present: bool,
    /// Whether it reads as zeros.
    pub zero: bool,
    /// Whether it is stored as data (a flat extent's holes too, as qemu-img says of them).
    pub data: bool,
    /// Whether it is in compressed grains.
    pub compressed: bool,
    /// Where its bytes start in their file, for uncompressed data and flat files.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub offset: Option<u64>,
    /// That file, as qemu-img names it (the human form's last column; not in the JSON).
    #[cfg_attr(feature = "serde", serde(skip))]
    pub filename: Option<String>,
}

impl MapEntry {
    /// Whether `next` continues this entry as qemu-img merges them: the same flags and link,
    /// and the next bytes of the same file (or no file for both).
    fn continued_by(&self, next: &MapEntry) -> bool {
        let offsets = match (self.offset, next.offset) {
            (None, None) => true,
            (Some(a), Some(b)) => a.checked_add(self.length) == Some(b),
            _ => false,
        };
        self.start + self.length == next.start
            && (
                self.depth,
                self.present,
                self.zero,
                self.data,
                self.compressed,
            ) == (
                next.depth,
                next.present,
                next.zero,
                next.data,
                next.compressed,
            )
            && offsets
            && self.filename == next.filename
    }
}

/// Bytes mapped at a time: placements of one window are held, not the whole disk's.
const WINDOW: u64 = 1 << 32;

/// `qemu-img map [--start-offset START] [--max-length LENGTH] NAME` of `disk`, opened from the
/// file `name` names (as the user wrote it: the files' names in the output follow it).
pub fn map(disk: &Disk, name: &str, start: u64, length: Option<u64>) -> Result<Vec<MapEntry>> {
    let capacity = disk.capacity();
    let end = length.map_or(capacity, |l| start.saturating_add(l).min(capacity));
    if start >= end {
        // qemu-img's answer for an empty range: one empty entry, every flag false.
        return Ok(vec![MapEntry {
            start,
            length: 0,
            depth: 0,
            present: false,
            zero: false,
            data: false,
            compressed: false,
            offset: None,
            filename: None,
        }]);
    }
    let names = Names::of(disk, name);
    // A raw file's holes are zeros without data; a flat extent's, zeros qemu-img's VMDK layer
    // still calls data.
    let raw = !disk.is_vmdk();
    let mut entries: Vec<MapEntry> = Vec::new();
    let mut at = start;
    while at < end {
        let n = (end - at).min(WINDOW);
        for p in disk.placements(at, n)? {
            let e = MapEntry {
                start: p.offset,
                length: p.len,
                depth: p.depth as u64,
                present: p.kind != Allocation::Unallocated,
                zero: p.kind != Allocation::Data,
                data: p.kind == Allocation::Data || (p.file.is_some() && !raw),
                compressed: p.compressed,
                offset: p.file.as_ref().map(|f| f.1),
                filename: p.file.as_ref().and_then(|f| names.files.get(&f.0).cloned()),
            };
            match entries.last_mut() {
                Some(last) if last.continued_by(&e) => last.length += e.length,
                _ => entries.push(e),
            }
        }
        at += n;
    }
    Ok(entries)
}

/// `qemu-img map`'s human form of `entries`: the runs of data with their offsets and files; and
/// qemu-img's error when some data has no offset to show (compressed grains).
pub fn map_human(entries: &[MapEntry]) -> (String, Option<&'static str>) {
    let hex = |v: u64| match v {
        0 => "0".to_string(),
        v => format!("{v:#x}"),
    };
    let mut out = String::from("Offset          Length          Mapped to       File\n");
    for e in entries {
        if e.data && e.offset.is_none() {
            return (
                out,
                Some("File contains external, encrypted or compressed clusters."),
            );
        }
        if e.data && !e.zero {
            out.push_str(&format!(
                "{:<16}{:<16}{:<16}{}\n",
                hex(e.start),
                hex(e.length),
                hex(e.offset.unwrap_or(0)),
                e.filename.as_deref().unwrap_or("")
            ));
        }
    }
    (out, None)
}
