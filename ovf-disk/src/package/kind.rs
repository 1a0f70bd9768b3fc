//! What a path holds, read from its first bytes: a disk, an OVF descriptor, an OVA archive or a
//! VM's `.vmx`. The extension decides only where the content cannot (an envelope whose root is
//! past a long comment, a `.vmx` of unknown keys).

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// What a path holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
#[non_exhaustive]
pub enum InputKind {
    /// A disk: a VMDK (descriptor, sparse or stream-optimized file, ESXi delta) or a raw image.
    Disk,
    /// An OVF descriptor, its files beside it.
    Ovf,
    /// An OVA archive (tar).
    Ova,
    /// A VMware VM's configuration, its disks in its folder.
    Vmx,
}

/// Bytes read to decide.
const HEAD: usize = 4096;

/// Keys every `.vmx` VMware writes has one of, lower-cased.
const VMX_KEYS: [&str; 6] = [
    ".encoding",
    "config.version",
    "virtualhw.version",
    "displayname",
    "guestos",
    "memsize",
];

/// What `path` holds, from its first 4 KiB (then its extension).
///
/// ```no_run
/// assert_eq!(ovf_disk::input_kind("appliance.ova".as_ref())?, ovf_disk::InputKind::Ova);
/// # Ok::<(), ovf_disk::Error>(())
/// ```
pub fn input_kind(path: &Path) -> Result<InputKind> {
    let mut head = Vec::with_capacity(HEAD);
    std::fs::File::open(path)
        .and_then(|f| f.take(HEAD as u64).read_to_end(&mut head))
        .map_err(Error::io(path))?;
    Ok(kind_of(&head).unwrap_or_else(|| by_extension(path)))
}

#[cfg(feature = "remote")]
/// What a file named `path` whose first bytes are `head` is: by content, else by extension.
pub(crate) fn kind_of_head(head: &[u8], path: &Path) -> InputKind {
    kind_of(head).unwrap_or_else(|| by_extension(path))
}

/// What `head` (a file's first bytes) says the file is, when it says.
fn kind_of(head: &[u8]) -> Option<InputKind> {
    if head.get(257..262) == Some(b"ustar".as_slice()) {
        return Some(InputKind::Ova);
    }
    // Sparse extents (KDMV), ESXi's COWD and seSparse (0xcafebabe, little-endian).
    let magic = head.get(..4)?;
    if [b"KDMV".as_slice(), b"COWD", &[0xbe, 0xba, 0xfe, 0xca]].contains(&magic) {
        return Some(InputKind::Disk);
    }
    // Text: the valid UTF-8 start of the head (a multi-byte character may be cut at its end).
    let text = match std::str::from_utf8(head) {
        Ok(t) => t,
        Err(e) if head.len() == HEAD && e.valid_up_to() + 4 > HEAD => {
            std::str::from_utf8(head.get(..e.valid_up_to())?).ok()?
        }
        Err(_) => return None,
    };
    let text = text.trim_start_matches('\u{feff}').trim_start();
    if text.starts_with('<') {
        return Some(InputKind::Ovf);
    }
    let mut keys = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            l.split_once('=')
                .map(|(k, _)| k.trim().to_ascii_lowercase())
        });
    if text.to_ascii_lowercase().contains("# disk descriptorfile") {
        return Some(InputKind::Disk);
    }
    keys.find_map(|k| match k.as_str() {
        "createtype" | "cid" | "parentcid" => Some(InputKind::Disk),
        k if VMX_KEYS.contains(&k) => Some(InputKind::Vmx),
        _ => None,
    })
}

/// The extension's word, for a file whose content does not say: `.ovf`, `.ova`, `.vmx`, else
/// a disk.
fn by_extension(path: &Path) -> InputKind {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    match ext.as_deref() {
        Some("ovf") => InputKind::Ovf,
        Some("ova") => InputKind::Ova,
        Some("vmx") => InputKind::Vmx,
        _ => InputKind::Disk,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_decides_before_the_extension() {
        let mut tar = vec![0u8; 1024];
        tar[257..262].copy_from_slice(b"ustar");
        assert_eq!(kind_of(&tar), Some(InputKind::Ova));
        assert_eq!(kind_of(b"KDMV\x01\0\0\0"), Some(InputKind::Disk));
        assert_eq!(kind_of(b"COWD\x01\0\0\0"), Some(InputKind::Disk));
        assert_eq!(kind_of(&[0xbe, 0xba, 0xfe, 0xca, 1]), Some(InputKind::Disk));
        assert_eq!(
            kind_of("\u{feff}\n  <?xml version=\"1.0\"?><Envelope/>".as_bytes()),
            Some(InputKind::Ovf)
        );
        let descriptor = "# Disk DescriptorFile\nversion=1\nCID=fffffffe\ncreateType=\"monolithicFlat\"\nddb.adapterType = \"ide\"\n";
        assert_eq!(kind_of(descriptor.as_bytes()), Some(InputKind::Disk));
        let no_comment = "version=1\nCID=12345678\ncreateType=\"vmfs\"\n";
        assert_eq!(kind_of(no_comment.as_bytes()), Some(InputKind::Disk));
        let vmx = ".encoding = \"UTF-8\"\ndisplayName = \"web\"\nscsi0:0.fileName = \"web.vmdk\"\n";
        assert_eq!(kind_of(vmx.as_bytes()), Some(InputKind::Vmx));
        assert_eq!(kind_of(b"\0\0\0\0 raw"), None);
        assert_eq!(kind_of(b"<\xff\xfe not text"), None);
        assert_eq!(by_extension(Path::new("a.OVA")), InputKind::Ova);
        assert_eq!(by_extension(Path::new("a.vmx")), InputKind::Vmx);
        assert_eq!(by_extension(Path::new("a.img")), InputKind::Disk);
    }

    #[test]
    fn a_character_cut_at_the_end_of_the_head_is_still_text() {
        let mut head = b"<Envelope>".to_vec();
        head.resize(HEAD - 1, b' ');
        head.push(0xc3); // the first byte of a two-byte character
        assert_eq!(kind_of(&head), Some(InputKind::Ovf));
    }
}
