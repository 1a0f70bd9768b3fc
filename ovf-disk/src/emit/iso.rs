//! A minimal ISO 9660 image (ECMA-119) holding one file in its root directory: the ISO
//! transport of the OVF environment (DSP0243 §11.1), which VMware guests and cloud-init's OVF
//! datasource read from a CD-ROM (cloud-init looks for `ovf-env.xml`, `ovf_env.xml`,
//! `OVF_ENV.XML` or `OVF-ENV.XML`; Linux shows the ISO name `OVF_ENV.XML;1` as `ovf_env.xml`).
//!
//! Written here rather than through a crate: one file in one directory is a few fixed
//! structures (no Rust crate that writes ISO 9660 is widely used), and the images are checked by
//! a reader no one here wrote (xorriso) in the tests. Layout, in 2048-byte sectors: 16 of system
//! area, the primary volume descriptor, the terminator, the little- and big-endian path tables,
//! the root directory, then the file. Dates are "not specified" (all digits zero), so an image
//! depends only on its inputs.

// Every index below is a constant offset into buffers sized here, not into input.
#![allow(clippy::indexing_slicing)]

/// Bytes per logical sector.
const SECTOR: usize = 2048;
/// Where the root directory's extent is.
const ROOT_SECTOR: u32 = 20;
/// Where the file's data starts.
const DATA_SECTOR: u32 = 21;

/// `v` as ISO 9660's both-byte-order 32-bit field (little-endian, then big-endian).
fn both32(v: u32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&v.to_le_bytes());
    b[4..].copy_from_slice(&v.to_be_bytes());
    b
}

/// `v` as a both-byte-order 16-bit field.
fn both16(v: u16) -> [u8; 4] {
    let mut b = [0u8; 4];
    b[..2].copy_from_slice(&v.to_le_bytes());
    b[2..].copy_from_slice(&v.to_be_bytes());
    b
}

/// `text` padded with spaces to `len` bytes (cut if longer).
fn padded(text: &str, len: usize) -> Vec<u8> {
    let mut b: Vec<u8> = text.bytes().take(len).collect();
    b.resize(len, b' ');
    b
}

/// A directory record (ECMA-119 §9.1) for the extent at `sector` of `len` bytes.
fn record(name: &[u8], sector: u32, len: u32, directory: bool) -> Vec<u8> {
    let size = 33 + name.len() + usize::from(name.len() % 2 == 0);
    let mut r = vec![0u8; size];
    r[0] = size as u8;
    r[2..10].copy_from_slice(&both32(sector));
    r[10..18].copy_from_slice(&both32(len));
    // Recording date: 1970-01-01 00:00:00 UTC.
    r[18] = 70;
    r[19] = 1;
    r[20] = 1;
    r[25] = if directory { 2 } else { 0 };
    r[28..32].copy_from_slice(&both16(1));
    r[32] = name.len() as u8;
    r[33..33 + name.len()].copy_from_slice(name);
    r
}

/// Why an ISO image could not be made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IsoError(pub String);

/// An ISO 9660 image holding `data` as the file `name` (ISO 9660 level 1: up to 8 upper-case
/// letters, digits or `_`, a dot, up to 3 more; `;1` is added) in the volume `volume` (up to
/// 32 of the same characters).
pub(crate) fn single_file_iso(name: &str, data: &[u8], volume: &str) -> Result<Vec<u8>, IsoError> {
    let d_chars = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
    };
    let (stem, ext) = name.split_once('.').unwrap_or((name, ""));
    if stem.is_empty() || stem.len() > 8 || ext.len() > 3 || !d_chars(stem) || !d_chars(ext) {
        return Err(IsoError(format!(
            "{name:?} is not an ISO 9660 level 1 file name"
        )));
    }
    if volume.len() > 32 || !d_chars(volume) {
        return Err(IsoError(format!(
            "{volume:?} is not an ISO 9660 volume name"
        )));
    }
    let len = u32::try_from(data.len())
        .ok()
        .filter(|&l| l < u32::MAX - (SECTOR as u32))
        .ok_or_else(|| IsoError("a file of 4 GiB or more".into()))?;
    let data_sectors = len.div_ceil(SECTOR as u32);
    let total = DATA_SECTOR + data_sectors;
    let mut iso = vec![0u8; total as usize * SECTOR];

    // Primary volume descriptor.
    let root = record(&[0], ROOT_SECTOR, SECTOR as u32, true);
    let pvd = &mut iso[16 * SECTOR..17 * SECTOR];
    pvd[0] = 1;
    pvd[1..6].copy_from_slice(b"CD001");
    pvd[6] = 1;
    pvd[8..40].copy_from_slice(&padded("", 32));
    pvd[40..72].copy_from_slice(&padded(volume, 32));
    pvd[80..88].copy_from_slice(&both32(total));
    pvd[120..124].copy_from_slice(&both16(1));
    pvd[124..128].copy_from_slice(&both16(1));
    pvd[128..132].copy_from_slice(&both16(SECTOR as u16));
    pvd[132..140].copy_from_slice(&both32(10));
    pvd[140..144].copy_from_slice(&18u32.to_le_bytes());
    pvd[148..152].copy_from_slice(&19u32.to_be_bytes());
    pvd[156..190].copy_from_slice(&root);
    pvd[190..318].copy_from_slice(&padded("", 128));
    pvd[318..446].copy_from_slice(&padded("", 128));
    pvd[446..574].copy_from_slice(&padded("", 128));
    pvd[574..702].copy_from_slice(&padded("OVF-DISK", 128));
    pvd[702..813].copy_from_slice(&padded("", 111));
    // Four dates "not specified": sixteen '0' digits and a zero offset each.
    for at in [813, 830, 847, 864] {
        pvd[at..at + 16].copy_from_slice(b"0000000000000000");
    }
    pvd[881] = 1;

    // Volume descriptor set terminator.
    let term = &mut iso[17 * SECTOR..18 * SECTOR];
    term[0] = 255;
    term[1..6].copy_from_slice(b"CD001");
    term[6] = 1;

    // Path tables: the root alone, little-endian at 18, big-endian at 19.
    for (sector, big) in [(18usize, false), (19, true)] {
        let t = &mut iso[sector * SECTOR..sector * SECTOR + 10];
        t[0] = 1;
        let at = if big {
            ROOT_SECTOR.to_be_bytes()
        } else {
            ROOT_SECTOR.to_le_bytes()
        };
        t[2..6].copy_from_slice(&at);
        t[6..8].copy_from_slice(&if big {
            1u16.to_be_bytes()
        } else {
            1u16.to_le_bytes()
        });
    }

    // The root directory: ".", "..", the file.
    let mut dir = record(&[0], ROOT_SECTOR, SECTOR as u32, true);
    dir.extend(record(&[1], ROOT_SECTOR, SECTOR as u32, true));
    dir.extend(record(
        format!("{name};1").as_bytes(),
        DATA_SECTOR,
        len,
        false,
    ));
    let start = ROOT_SECTOR as usize * SECTOR;
    iso[start..start + dir.len()].copy_from_slice(&dir);

    let start = DATA_SECTOR as usize * SECTOR;
    iso[start..start + data.len()].copy_from_slice(data);
    Ok(iso)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lays_out_one_file() {
        let iso = single_file_iso("OVF_ENV.XML", b"<Environment/>", "OVFENV").unwrap();
        assert_eq!(iso.len(), 22 * SECTOR);
        assert_eq!(&iso[16 * SECTOR + 1..16 * SECTOR + 6], b"CD001");
        assert_eq!(&iso[21 * SECTOR..21 * SECTOR + 14], b"<Environment/>");
        assert!(single_file_iso("ovf-env.xml", b"", "OVFENV").is_err());
        assert!(single_file_iso("OVF_ENV.XML", b"", "lower").is_err());
    }
}
