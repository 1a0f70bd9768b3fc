//! The OVF envelope parser on arbitrary text: parses or fails, never panics, never expands an
//! entity; a parsed envelope's computed sizes are consistent. The editors on the same text:
//! no edit gives the text back; the edits `fix` and `import` make (items and sections
//! removed, attributes set) and the OVF 1.x rewrite keep a parsed envelope parseable. The
//! schema validator (libxml2, through `ovf::schema`) on the same text: a result or an error,
//! never a crash, and no more violations kept than its bound.
//!
//! Seeds: python3 fuzz/small_seeds.py (testdata/fuzz-seeds/envelope/).
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use ovf::write::{downgrade_envelope, edit_envelope, EnvelopeEdits, ItemEdit};
use ovf::Envelope;

/// `text` with every kind of edit but the file ones, as `import` and `fix` make them: the
/// configuration `a` chosen, properties `k` and `c.k.i` set, IDE subtypes, sound cards and
/// `ExtraConfig` removed, the system type rewritten.
fn edited(text: &str) -> Option<String> {
    let mut edits = EnvelopeEdits::new();
    edits
        .deployment("a")
        .property_value("k", "v & <w>")
        .property_value("c.k.i", "x")
        .items(|item| match item.resource_type {
            _ if item.element == "ExtraConfig" => ItemEdit::Remove,
            Some(5) => ItemEdit::RemoveSubtype,
            Some(35) => ItemEdit::Remove,
            _ => ItemEdit::Keep,
        })
        .system_type(|t| (t != "vmx-10").then(|| "vmx-10".to_string()));
    edit_envelope(text, &edits).ok()
}

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
    let parsed = Envelope::parse(text, Path::new("fuzz.ovf"));
    if let Ok(env) = &parsed {
        for d in &env.disks {
            let _ = env.file_of(d);
        }
        for f in &env.files {
            if let Ok(inside) = f.location() {
                assert!(is_inside(&inside), "an href leading out was taken as inside");
            }
        }
    }
    if let Ok(Some(v)) = ovf::schema::validate(text, Path::new("fuzz.ovf")) {
        assert!(v.violations.len() <= ovf::schema::MAX_VIOLATIONS);
    }
    if let Some(same) = edit_envelope(text, &EnvelopeEdits::new()).ok() {
        assert_eq!(same, text, "no edit changed the text");
    }
    for (what, out) in [
        ("edited", edited(text)),
        ("downgraded", downgrade_envelope(text).ok()),
    ] {
        if let (Ok(_), Some(out)) = (&parsed, out) {
            if let Err(e) = Envelope::parse(&out, Path::new("fuzz.ovf")) {
                panic!("{what}: a parsed envelope no longer parses: {e}\n{out}");
            }
        }
    }
});
