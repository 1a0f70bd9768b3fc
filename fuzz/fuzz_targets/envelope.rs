//! The OVF envelope parser on arbitrary text: parses or fails, never panics, never expands an
//! entity; a parsed envelope's computed sizes are consistent.
//!
//! Seeds: python3 fuzz/small_seeds.py (testdata/fuzz-seeds/envelope/).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use ovf_disk::Envelope;

/// A plain file name, as a package may use one: not empty, no path separator, no `..`, not
/// absolute, no NUL (the rule `ovf-disk` enforces, restated here as the oracle).
fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && !name.contains(['/', '\\', '\0'])
        && !(name.len() >= 2 && name.as_bytes().get(1) == Some(&b':'))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(env) = Envelope::parse(text, Path::new("fuzz.ovf")) {
        for d in &env.disks {
            let _ = env.file_of(d);
        }
        for f in &env.files {
            assert!(is_plain_name(&f.href), "an unsafe href was accepted");
        }
    }
});
