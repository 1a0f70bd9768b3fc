//! The manifest parser on arbitrary text: parses or fails, never panics; what it accepts prints
//! and parses back equal, and names only plain file names.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use ovf_disk::package::manifest::Manifest;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(m) = Manifest::parse(text, Path::new("fuzz.mf")) {
        for e in &m.entries {
            assert!(
                ovf_disk::package::is_plain_name(&e.name),
                "an unsafe name was accepted"
            );
        }
        let again =
            Manifest::parse(&m.print(), Path::new("fuzz.mf")).expect("printed manifest parses");
        assert_eq!(again, m);
    }
});
