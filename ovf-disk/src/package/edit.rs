//! Edits of an existing envelope: the references of imported or exported disks, and their
//! `ovf:format`.

use std::path::Path;

use crate::error::Result;

/// A `References/File` element to point at another file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ReferenceEdit {
    /// The `ovf:href` it has.
    pub href: String,
    /// The `ovf:href` it gets.
    pub new_href: String,
    /// The `ovf:size` it gets (written only where it had one).
    pub new_size: u64,
    /// The `ovf:size` it has.
    pub old_size: Option<u64>,
}

/// `text` with `edits` applied and every `DiskSection/Disk`'s `ovf:format` mapped through
/// `format` (`None`: kept). `path` names the envelope in errors.
pub(crate) fn rewrite_envelope(
    text: &str,
    edits: &[ReferenceEdit],
    format: &dyn Fn(&str) -> Option<String>,
    path: &Path,
) -> Result<String> {
    let _ = path;
    let mut text = text.to_string();
    for e in edits {
        text = rewrite_file_reference(&text, &e.href, &e.new_href, e.old_size, e.new_size);
    }
    for old in [
        "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized",
        "http://www.vmware.com/interfaces/specifications/vmdk.html#monolithicFlat",
        "http://www.vmware.com/interfaces/specifications/vmdk.html#monolithicSparse",
        "http://www.vmware.com/interfaces/specifications/vmdk.html#sparse",
        "http://www.vmware.com/interfaces/specifications/vmdk.html#compressed",
    ] {
        if let Some(new) = format(old) {
            text = text.replace(old, &new);
        }
    }
    Ok(text)
}

/// Points a `File` element's `href` at `new` and its `size` at `new_size`.
fn rewrite_file_reference(
    text: &str,
    old: &str,
    new: &str,
    old_size: Option<u64>,
    new_size: u64,
) -> String {
    let needle = format!("href=\"{old}\"");
    let Some(at) = text.find(&needle) else {
        return text.to_string();
    };
    let start = text.get(..at).and_then(|t| t.rfind('<')).unwrap_or(at);
    let end = text
        .get(at..)
        .and_then(|t| t.find('>'))
        .map_or(text.len(), |e| at + e + 1);
    let (Some(head), Some(elem), Some(tail)) =
        (text.get(..start), text.get(start..end), text.get(end..))
    else {
        return text.to_string();
    };
    let mut elem = elem.replace(&needle, &format!("href=\"{new}\""));
    if let Some(size) = old_size {
        elem = elem.replace(&format!("size=\"{size}\""), &format!("size=\"{new_size}\""));
    }
    format!("{head}{elem}{tail}")
}
