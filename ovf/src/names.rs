//! The file names a package may use. DSP0243 §7.1 lets `ovf:href` be a path relative to the
//! descriptor or a URL; a package's own files are the relative paths that stay inside its folder
//! (or inside its OVA). [`locate`] says which an href is: a path inside the package
//! (normalised), or why it is not one (it climbs out with `..`, is absolute, is a URL), so a
//! reader can describe every href and follow only those it is allowed to.

use std::fmt;

/// Why an href does not name a file inside the package.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outside {
    /// Its `..` components climb out of the package folder (`../vmdk/base.vmdk`).
    Parent,
    /// An absolute path (`/vmfs/volumes/ds/x.vmdk`, `C:\x.vmdk`, `file:///x.vmdk`).
    Absolute,
    /// A URL with this scheme (`http`, `https`, `ftp`, ...).
    Url(String),
    /// Not a file name at all: empty, a NUL byte, a backslash, or only `.` components.
    Invalid(&'static str),
}

impl fmt::Display for Outside {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Parent => f.write_str("leads outside the package folder ('..')"),
            Self::Absolute => f.write_str("is an absolute path, outside the package"),
            Self::Url(scheme) => write!(f, "is a URL ({scheme}), not a file of the package"),
            Self::Invalid(why) => write!(f, "is not a file name ({why})"),
        }
    }
}

/// Where `href` leads: `Ok` with the path inside the package, `/`-separated, without `.`
/// components or inner `..` (`./disks/../disk1.vmdk` is `disk1.vmdk`), or why it does not name
/// a file of the package.
pub fn locate(href: &str) -> Result<String, Outside> {
    if href.is_empty() {
        return Err(Outside::Invalid("empty"));
    }
    if href.contains('\0') {
        return Err(Outside::Invalid("a NUL byte"));
    }
    if let Some(scheme) = url_scheme(href) {
        return Err(if scheme.eq_ignore_ascii_case("file") {
            Outside::Absolute
        } else {
            Outside::Url(scheme.to_ascii_lowercase())
        });
    }
    let b = href.as_bytes();
    if href.starts_with('/') || (b.len() >= 2 && b.get(1) == Some(&b':')) {
        return Err(Outside::Absolute);
    }
    if href.contains('\\') {
        return Err(Outside::Invalid("a backslash"));
    }
    let mut parts: Vec<&str> = Vec::new();
    for part in href.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(Outside::Parent);
                }
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() || href.ends_with('/') {
        return Err(Outside::Invalid("no file name"));
    }
    Ok(parts.join("/"))
}

/// The scheme of `href` when it is a URL (`scheme:` then `//`, or `file:`): a letter, then
/// letters, digits, `+`, `-` or `.`, at least two characters (so `C:` is a drive, not a scheme).
fn url_scheme(href: &str) -> Option<&str> {
    let (scheme, rest) = href.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    let ok = scheme.len() >= 2
        && first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (ok && (rest.starts_with("//") || scheme.eq_ignore_ascii_case("file"))).then_some(scheme)
}

/// Whether `name` is a plain file name: not empty, no path separator, no `..`, not absolute,
/// no NUL. What this crate writes (and what an OVA member of ours is called).
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && !(name.len() >= 2 && name.as_bytes().get(1) == Some(&b':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_only() {
        for ok in ["disk1.vmdk", "a b.ovf", "x..y.mf"] {
            assert!(is_plain_name(ok), "{ok}");
        }
        for bad in [
            "",
            "..",
            "../x",
            "/etc/passwd",
            "a/b",
            "a\\b",
            "C:x",
            "a\0b",
        ] {
            assert!(!is_plain_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn hrefs_are_located() {
        for (href, inside) in [
            ("disk1.vmdk", "disk1.vmdk"),
            ("disks/data.vmdk", "disks/data.vmdk"),
            ("./disks//data.vmdk", "disks/data.vmdk"),
            ("disks/../disk1.vmdk", "disk1.vmdk"),
            ("x..y.vmdk", "x..y.vmdk"),
            ("ab:c.vmdk", "ab:c.vmdk"),
        ] {
            assert_eq!(locate(href), Ok(inside.to_string()), "{href}");
        }
        for (href, why) in [
            ("../vmdk/base.vmdk", Outside::Parent),
            ("disks/../../x.vmdk", Outside::Parent),
            ("/vmfs/volumes/ds/x.vmdk", Outside::Absolute),
            ("C:\\x.vmdk", Outside::Absolute),
            ("file:///tmp/x.vmdk", Outside::Absolute),
            ("http://host/disk.vmdk", Outside::Url("http".into())),
            ("HTTPS://host/disk.vmdk", Outside::Url("https".into())),
            ("", Outside::Invalid("empty")),
            ("a\\b.vmdk", Outside::Invalid("a backslash")),
            ("a\0b", Outside::Invalid("a NUL byte")),
            ("disks/", Outside::Invalid("no file name")),
            (".", Outside::Invalid("no file name")),
        ] {
            assert_eq!(locate(href), Err(why), "{href:?}");
        }
        assert_eq!(
            Outside::Parent.to_string(),
            "leads outside the package folder ('..')"
        );
    }
}
