//! The file names a package may use (DSP0243 §5.1: file references are relative to the
//! package): plain names only, so nothing a package names can lead outside it.

/// Whether `name` is a plain file name a package may use: not empty, no path separator, no
/// `..`, not absolute, no NUL.
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
}
