//! The layering of the library crates, checked from their sources: no module of `ovf` or
//! `ovf-disk` imports (through `crate::`) a module that imports it back, directly or through
//! others, and `ovf-disk`'s folders keep the order the crate docs give (output, then the
//! package, then the reports, emitters and VM folders, then import and export).
//!
//! A module here is a top-level module of the crate (a file or folder under `src/`); `lib.rs`
//! (which re-exports) and the binary are left out. References in comments and in unit tests
//! (`#[cfg(test)]` to the end of the file, or a `tests.rs`) are ignored.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module graph of the crate whose sources are in `src`: each top-level module and the
/// top-level modules its code names through `crate::`.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    sources(src, &mut files);
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "lib" || module == "bin" || f.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let edges = g.entry(module.clone()).or_default();
        let text = std::fs::read_to_string(&f).unwrap();
        // Unit tests (at the end of a file, by this project's convention) may use anything.
        for line in text.lines().take_while(|l| l.trim() != "#[cfg(test)]") {
            let code = line.split("//").next().unwrap();
            // `crate::x::...`, and each name of `crate::{x, y::z}`.
            for (at, _) in code.match_indices("crate::") {
                let rest = &code[at + "crate::".len()..];
                let names: Vec<&str> = match rest.strip_prefix('{') {
                    Some(list) => list
                        .split('}')
                        .next()
                        .unwrap()
                        .split(',')
                        .map(|n| n.trim().split("::").next().unwrap())
                        .collect(),
                    None => vec![rest
                        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .next()
                        .unwrap()],
                };
                for n in names.into_iter().filter(|n| !n.is_empty() && *n != module) {
                    // Items re-exported at the root (`crate::Error`) are not modules.
                    if n.chars().next().unwrap().is_lowercase() {
                        edges.insert(n.to_string());
                    }
                }
            }
        }
    }
    g
}

/// A cycle of `g`, if it has one.
fn cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut c = path[i..].to_vec();
            c.push(n.to_string());
            return Some(c);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, g, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    g.keys()
        .find_map(|n| visit(n, g, &mut Vec::new(), &mut done))
}

/// `cargo tree --offline ARGS` in this workspace, which must succeed: its output.
fn cargo_tree(args: &[&str]) -> String {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = std::process::Command::new(cargo)
        .args(["tree", "--offline"])
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let out = test_support::peers::succeeded(out, &format!("cargo tree {}", args.join(" ")));
    String::from_utf8(out.stdout).unwrap()
}

fn crate_src(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name)
        .join("src")
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    for name in ["ovf", "ovf-disk"] {
        let g = graph(&crate_src(name));
        assert!(g.len() > 5, "{name}: {g:?}");
        assert_eq!(cycle(&g), None, "{name}: a module cycle; the graph: {g:#?}");
    }
}

#[test]
fn ovf_disk_keeps_its_layers() {
    // Lower layers first; a module may name only modules of its own layer or below.
    let layers: [&[&str]; 5] = [
        &["error"],
        &["output", "qemu_img"],
        &["package"],
        &["rules", "emit", "vm", "nbd"],
        &["import", "export", "input", "apply"],
    ];
    let layer = |m: &str| layers.iter().position(|l| l.contains(&m));
    let g = graph(&crate_src("ovf-disk"));
    for (m, uses) in &g {
        let own = layer(m).unwrap_or_else(|| panic!("{m} is in no layer: name it in this test"));
        for u in uses {
            let other = layer(u).unwrap_or_else(|| panic!("{m} names {u}, which is in no layer"));
            assert!(
                other <= own,
                "{m} (layer {own}) names {u} (layer {other}), above it"
            );
        }
    }
}

/// The checker itself: it finds a cycle and a reference in a `use crate::{...}` list.
#[test]
fn the_checker_sees_cycles() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("a")).unwrap();
    std::fs::write(dir.path().join("a/mod.rs"), "use crate::{error, b::X};\n").unwrap();
    std::fs::write(
        dir.path().join("b.rs"),
        "fn f() { crate::a::g() } // crate::c\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("error.rs"), "").unwrap();
    let g = graph(dir.path());
    assert_eq!(g["a"], BTreeSet::from(["error".into(), "b".into()]));
    assert_eq!(g["b"], BTreeSet::from(["a".into()]));
    assert!(cycle(&g).is_some());
}

/// `ovf` reads and edits an OVF without disks, archives or RSA: none of `vmdk`, `tar`, `rsa`
/// (nor `ovf-disk`) is in its dependency tree, as `cargo tree` resolves it.
#[test]
fn ovf_links_neither_disks_nor_archives_nor_rsa() {
    let tree = cargo_tree(&["-p", "ovf", "-e", "normal", "--prefix", "none"]);
    let names: BTreeSet<&str> = tree.lines().filter_map(|l| l.split(' ').next()).collect();
    assert!(
        names.contains("ovf") && names.contains("roxmltree"),
        "{tree}"
    );
    for banned in ["vmdk", "tar", "rsa", "ovf-disk", "flate2"] {
        assert!(!names.contains(banned), "ovf depends on {banned}:\n{tree}");
    }
}

/// `ovf-disk` without its default features links `vmdk` without its writers: `vmdk`'s `write`
/// feature (its whole `write` module) is off, so a read-only importer compiles none of it.
/// (`scripts/test.sh` builds and runs `examples/verify.rs` so.)
#[test]
fn ovf_disk_without_write_links_no_vmdk_writer() {
    let features = |more: &[&str]| {
        let mut args = vec!["-p", "ovf-disk", "-e", "features", "-i", "vmdk"];
        args.extend(more);
        cargo_tree(&args)
    };
    let default = features(&[]);
    assert!(default.contains("vmdk feature \"write\""), "{default}");
    let read_only = features(&["--no-default-features"]);
    assert!(read_only.contains("vmdk v"), "{read_only}");
    for f in ["write", "direct-io"] {
        assert!(
            !read_only.contains(&format!("vmdk feature \"{f}\"")),
            "{f} is on:\n{read_only}"
        );
    }
}
