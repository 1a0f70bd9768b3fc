//! What `qemu-img info`, `map`, `check` and `compare` report of a disk, in qemu-img's shapes, field names
//! and exit codes (qemu 10), from this crate's readers: `vmdk-img` prints them for raw files and
//! VMDK disks made of hosted sparse (monolithic, split, stream-optimized) and flat extents and
//! their chains, so a pipeline that parses qemu-img's output reads ours without qemu-img.
//! [`describable`] says which disks these reports describe; ESXi's delta formats and qcow2
//! images are left to qemu-img. ZERO extents are described as what they are, zeros with no
//! file, where qemu-img takes them for the previous extent's file (and reads its bytes).
//!
//! Where ours differs, on purpose: `check` reports every problem of a damaged VMDK as a
//! corruption (exit 2) where qemu-img stops at the first with "Check failed" (exit 1), finds
//! damage qemu-img's VMDK check does not look for (grain tables out of the file, grains over
//! metadata, a redundant directory that disagrees, compressed grains that do not inflate); like
//! qemu-img's VMDK check it counts no leaks (`ovf-disk check` reports leaked grains).
//! The reports are typed values (serialised with serde, feature `serde`); `vmdk-img` prints them
//! in qemu-img's own layout (empty containers on two lines, a map entry's `{ "start": ...}`).

mod check;
mod compare;
mod info;
mod map;

pub use check::{check, Check};
pub use compare::{compare, Comparison};
pub use info::{
    info, FileData, FileInfo, FormatSpecific, ImageInfo, NodeInfo, VmdkData, VmdkExtent,
};
pub use map::{map, map_human, MapEntry};

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use vmdk::Disk;

/// Whether these reports describe `disk`: a raw file, or a VMDK whose every link is made of
/// hosted sparse (`SPARSE`, the embedded extent of a monolithic or stream-optimized file), flat
/// (`FLAT`, `VMFS`) and `ZERO` extents.
pub fn describable(disk: &Disk) -> bool {
    if !disk.is_vmdk() {
        return disk.create_type().as_str() != "qcow2";
    }
    disk.chain().all(|link| {
        link.is_vmdk()
            && link
                .link_info()
                .extents
                .iter()
                .all(|e| match e.kind.as_str() {
                    "SPARSE" => e.sparse.is_some(),
                    "FLAT" | "VMFS" | "ZERO" => true,
                    _ => false,
                })
    })
}

/// A file named `name` relative to the file `base`, as qemu names it (`path_combine`): `name`
/// itself when absolute or when `base` has no folder, else `base`'s folder and `name`.
pub(crate) fn combine(base: &str, name: &str) -> String {
    if name.starts_with('/') {
        return name.to_string();
    }
    match base.rfind('/') {
        Some(i) => format!("{}{name}", base.get(..=i).unwrap_or_default()),
        None => name.to_string(),
    }
}

/// Each link's name as qemu-img names it (the name given, then each parent's hint combined with
/// the name of its child) with its header and descriptor fields, and the name of every file of
/// every link, by the path this crate opened it from.
pub(crate) struct Names {
    pub(crate) links: Vec<(String, vmdk::LinkInfo)>,
    pub(crate) files: HashMap<PathBuf, String>,
}

impl Names {
    pub(crate) fn of(disk: &Disk, name: &str) -> Self {
        let mut links = Vec::new();
        let mut files = HashMap::new();
        let mut current = name.to_string();
        for link in disk.chain() {
            let info = link.link_info();
            files.insert(link.path().to_path_buf(), current.clone());
            for e in &info.extents {
                if let (Some(path), Some(file)) = (&e.path, &e.file) {
                    files
                        .entry(path.clone())
                        .or_insert_with(|| combine(&current, file));
                }
            }
            let next = link
                .descriptor()
                .parent_file_name_hint()
                .map(|hint| combine(&current, hint));
            links.push((
                std::mem::replace(&mut current, next.unwrap_or_default()),
                info,
            ));
        }
        Self { links, files }
    }
}

/// Bytes a file takes on its file system (512-byte blocks), as qemu-img's `actual-size`.
pub(crate) fn allocated(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).map_or(0, |m| m.blocks() * 512)
}

/// A size as qemu-img prints one (`size_to_str`): three significant digits and a binary unit,
/// switching unit at 1000 (`464 KiB`, `1.5 GiB`, `16 MiB`).
pub fn size_to_str(value: u64) -> String {
    const SUFFIXES: [&str; 7] = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];
    // qemu: frexp(val / (1000 / 1024)) gives floor(log2(val * 1024 / 1000)) + 1.
    let scaled = value as f64 * 1024.0 / 1000.0;
    let exponent = if scaled < 1.0 {
        0
    } else {
        scaled.log2().floor() as usize + 1
    };
    let i = (exponent.saturating_sub(1) / 10).min(SUFFIXES.len() - 1);
    let v = value as f64 / (1u64 << (i * 10)) as f64;
    format!("{} {}B", g3(v), SUFFIXES.get(i).copied().unwrap_or(""))
}

/// `printf("%0.3g", v)` for `v >= 0`: three significant digits, trailing zeros dropped, and the
/// exponent form once rounding reaches 1000 (`999.5` is `1e+03`, as qemu-img prints it).
fn g3(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    // The exponent after rounding to three digits decides the form, as printf's %g does.
    let sci = format!("{v:.2e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let trim = |t: String| match t.contains('.') {
        true => t.trim_end_matches('0').trim_end_matches('.').to_string(),
        false => t,
    };
    if !(-4..3).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        return format!("{}e{sign}{:02}", trim(mantissa.to_string()), exponent.abs());
    }
    let decimals = (2 - exponent).max(0) as usize;
    trim(format!("{v:.decimals$}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_as_qemu_prints_them() {
        for (v, s) in [
            (0, "0 B"),
            (512, "512 B"),
            (4096, "4 KiB"),
            (475_136, "464 KiB"),
            (134_144, "131 KiB"),
            (16 << 20, "16 MiB"),
            (1000, "0.977 KiB"),
            (999, "999 B"),
            (1536 << 20, "1.5 GiB"),
            (1_073_741_824, "1 GiB"),
            (1_022_976, "999 KiB"),
            // 999.5 KiB: printf's %0.3g rounds to 1000 and switches to the exponent form.
            (1_023_488, "1e+03 KiB"),
            (1_024_000, "0.977 MiB"),
            (9_995, "9.76 KiB"),
            (10_234, "9.99 KiB"),
        ] {
            assert_eq!(size_to_str(v), s, "{v}");
        }
    }

    #[test]
    fn names_combine_as_qemu_combines_them() {
        assert_eq!(combine("a.vmdk", "b.vmdk"), "b.vmdk");
        assert_eq!(combine("d/a.vmdk", "b.vmdk"), "d/b.vmdk");
        assert_eq!(combine("/x/a.vmdk", "b.vmdk"), "/x/b.vmdk");
        assert_eq!(combine("d/a.vmdk", "/abs.vmdk"), "/abs.vmdk");
    }
}
