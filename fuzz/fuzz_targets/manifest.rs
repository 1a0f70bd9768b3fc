//! The manifest parser on arbitrary text: parses or fails, never panics; what it accepts prints
//! and parses back equal, and names only paths inside the package.
//!
//! Seeds: python3 fuzz/small_seeds.py (testdata/fuzz-seeds/manifest/).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use ovf::manifest::Manifest;

/// A path inside a package, as `ovf::names::locate` must give one: relative, `/`-separated,
/// no empty, `.` or `..` component, no backslash or NUL, no drive letter (restated here as the
/// oracle).
fn is_inside(name: &str) -> bool {
    !name.is_empty()
        && !name.contains(['\\', '\0'])
        && !(name.len() >= 2 && name.as_bytes().get(1) == Some(&b':'))
        && name.split('/').all(|p| !p.is_empty() && p != "." && p != "..")
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(m) = Manifest::parse(text, Path::new("fuzz.mf")) {
        for e in &m.entries {
            assert!(is_inside(&e.name), "an unsafe name was accepted");
        }
        let again =
            Manifest::parse(&m.print(), Path::new("fuzz.mf")).expect("printed manifest parses");
        assert_eq!(again, m);
    }
});
