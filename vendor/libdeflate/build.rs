//! Compiles the bundled libdeflate (c/, MIT) into a static library whose symbols all carry a
//! `vmdk_` prefix, so that a program may link this crate beside another copy of libdeflate
//! (the `libdeflate-sys` crate, a system library) without a clash.

use std::collections::BTreeSet;
use std::path::Path;

/// The sources libdeflate's zlib and raw deflate need (its gzip and CRC-32 files are left out).
const FILES: [&str; 8] = [
    "c/lib/arm/cpu_features.c",
    "c/lib/x86/cpu_features.c",
    "c/lib/adler32.c",
    "c/lib/deflate_compress.c",
    "c/lib/deflate_decompress.c",
    "c/lib/utils.c",
    "c/lib/zlib_compress.c",
    "c/lib/zlib_decompress.c",
];

/// Every identifier in the C sources and headers under `dir` that starts with `libdeflate_`.
fn libdeflate_names(dir: &Path, names: &mut BTreeSet<String>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            libdeflate_names(&path, names)?;
        } else if path.extension().is_some_and(|e| e == "c" || e == "h") {
            let text = std::fs::read_to_string(&path)?;
            let mut rest = text.as_str();
            let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
            while let Some(at) = rest.find("libdeflate_") {
                let (before, tail) = rest.split_at(at);
                let end = tail.find(|c: char| !word(c)).unwrap_or(tail.len());
                let (name, after) = tail.split_at(end);
                if !before.chars().next_back().is_some_and(word) {
                    names.insert(name.to_string());
                }
                rest = after;
            }
        }
    }
    Ok(())
}

fn main() {
    println!("cargo:rerun-if-changed=c");
    println!("cargo:rerun-if-changed=build.rs");
    let mut names = BTreeSet::new();
    if let Err(e) = libdeflate_names(Path::new("c"), &mut names) {
        panic!("reading the libdeflate sources in c/: {e}");
    }
    let mut build = cc::Build::new();
    build.files(FILES).include("c").warnings(false);
    // Functions, globals and struct tags alike: a tag renamed everywhere changes nothing.
    for name in &names {
        build.define(name, Some(format!("vmdk_{name}").as_str()));
    }
    build.compile("vmdk_libdeflate");
}
