//! `ovf::schema::validate` against `xmllint --schema` (libxml2's own command, reading the same
//! schema files from `ovf/xsd/` on disk): over every envelope of the corpus, the same
//! violations at the same lines, so the built-in files, their imports and the line numbers
//! come through the binding as they are.

#![cfg(feature = "schema")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::process::Command;

use ovf::schema::{validate, Schema};

/// xmllint's violations of `path` against `schema`: (line, message) of each "Schemas validity
/// error", and whether it called the file valid.
fn xmllint(path: &Path, schema: Schema) -> (Vec<(u32, String)>, bool) {
    let xsd = Path::new(env!("CARGO_MANIFEST_DIR")).join(match schema {
        Schema::Ovf1 => "xsd/ovf1/dsp8023_1.1.1.xsd",
        _ => "xsd/ovf2/dsp8023_2.0.1.xsd",
    });
    let out = Command::new("xmllint")
        .args(["--noout", "--nonet", "--schema"])
        .arg(&xsd)
        .arg(path)
        .output()
        .expect("xmllint (Debian's libxml2-utils, which scripts/setup.sh installs)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let prefix = format!("{}:", path.display());
    let found = stderr
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(&prefix)?;
            let (line, rest) = rest.split_once(':')?;
            let (_, message) = rest.split_once("Schemas validity error : ")?;
            Some((line.parse().ok()?, message.to_string()))
        })
        .collect();
    (found, out.status.success())
}

/// `message` without libxml2's `{namespace}` qualifiers.
fn unqualified(message: &str) -> String {
    let mut out = String::new();
    let mut rest = message;
    while let Some((before, after)) = rest.split_once('{') {
        out.push_str(before);
        rest = after.split_once('}').map_or("", |(_, a)| a);
    }
    out + rest
}

/// `message` without the prefixes `validate` writes for namespaces.
fn unprefixed(message: &str) -> String {
    ["ovf", "rasd", "vssd", "epasd", "sasd", "cim", "vmw", "xsi"]
        .iter()
        .fold(message.to_string(), |m, p| m.replace(&format!("{p}:"), ""))
}

fn corpus() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/envelopes");
    let mut files = Vec::new();
    for dir in std::fs::read_dir(&root).unwrap() {
        let dir = dir.unwrap().path();
        if dir.is_dir() {
            for f in std::fs::read_dir(dir).unwrap() {
                let p = f.unwrap().path();
                if p.extension().is_some_and(|e| e == "ovf") {
                    files.push(p);
                }
            }
        }
    }
    files.sort();
    files
}

#[test]
fn violations_are_xmllints_over_the_corpus() {
    let (mut valid, mut invalid, mut none) = (Vec::new(), Vec::new(), 0);
    for path in corpus() {
        let text = String::from_utf8(std::fs::read(&path).unwrap()).unwrap();
        let v = match validate(text.trim_start_matches('\u{feff}'), &path) {
            Ok(Some(v)) => v,
            // OVF 0.9 or no envelope namespace: no schema.
            Ok(None) => {
                none += 1;
                continue;
            }
            // Not an envelope the crate reads (a DTD, broken XML): the corpus test says why.
            Err(e) => {
                assert!(
                    ["wrong_xml.ovf", "XEE.ovf"]
                        .iter()
                        .any(|n| path.ends_with(n)),
                    "{e}"
                );
                continue;
            }
        };
        let (theirs, their_valid) = xmllint(&path, v.schema);
        assert_eq!(v.is_valid(), their_valid, "{}", path.display());
        let ours: Vec<u32> = v.violations.iter().map(|x| x.line.unwrap()).collect();
        let lines: Vec<u32> = theirs.iter().map(|(l, _)| *l).collect();
        assert_eq!(ours, lines, "{}", path.display());
        // The same words, but for the namespace prefixes ours writes for `{namespace}`.
        for (x, (_, m)) in v.violations.iter().zip(&theirs) {
            assert_eq!(
                unprefixed(&unqualified(&x.message)),
                unqualified(m),
                "{}",
                path.display()
            );
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if v.is_valid() {
            valid.push(name);
        } else {
            invalid.push(name);
        }
    }
    // Both kinds are in the corpus, so the comparison above compared something.
    assert!(
        valid.len() >= 3 && invalid.len() >= 10,
        "{valid:?} {invalid:?}"
    );
    assert!(none >= 2, "{none}");
    // VirtualBox writes its RASD elements out of the schema's order.
    assert!(invalid.contains(&"vbox5.ovf".to_string()), "{invalid:?}");
    eprintln!("valid by the schema: {valid:?}\ninvalid: {invalid:?}");
}
