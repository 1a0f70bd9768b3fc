//! The OVF envelope parser on arbitrary text: parses or fails, never panics, never expands an
//! entity; a parsed envelope's computed sizes are consistent.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use ovf_disk::package::envelope::Envelope;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(env) = Envelope::parse(text, Path::new("fuzz.ovf")) {
        for d in &env.disks {
            let _ = env.file_of(d);
        }
        for f in &env.files {
            assert!(
                ovf_disk::package::is_plain_name(&f.href),
                "an unsafe href was accepted"
            );
        }
    }
});
