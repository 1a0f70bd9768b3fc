//! OVF manifests (`.mf`): one line per file, `SHA1(name)= hex`, `SHA256(name)= hex` or
//! `SHA512(name)= hex` (DSP0243 §5.1), parsed, written and verified by streaming each file
//! through the digest with a fixed buffer. Other algorithms, unsafe names and malformed lines
//! are refused with the line number.

use std::io::Read;
use std::path::Path;

use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};

use crate::error::{Error, Result};
use crate::names::{is_plain_name, locate};

/// A digest algorithm of a manifest line.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// SHA-1 (OVF 1.x, VMware's default before 6.5).
    Sha1,
    /// SHA-256 (the default of what this crate writes).
    #[default]
    Sha256,
    /// SHA-512.
    Sha512,
}

impl Algorithm {
    /// The name as written in a manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sha1 => "SHA1",
            Self::Sha256 => "SHA256",
            Self::Sha512 => "SHA512",
        }
    }

    /// Digests everything `reader` gives, as lower-case hex, through a fixed 1 MiB buffer.
    pub fn digest(self, reader: &mut impl Read) -> std::io::Result<String> {
        digest(self, reader)
    }

    fn hex_len(self) -> usize {
        match self {
            Self::Sha1 => 40,
            Self::Sha256 => 64,
            Self::Sha512 => 128,
        }
    }
}

/// One manifest entry.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Entry {
    /// Algorithm.
    pub algorithm: Algorithm,
    /// File name, relative to the package.
    pub name: String,
    /// Expected digest, lower-case hex.
    pub digest: String,
}

impl Entry {
    /// An entry: `name`'s digest `digest` (lower-case hex) with `algorithm`.
    pub fn new(algorithm: Algorithm, name: impl Into<String>, digest: impl Into<String>) -> Self {
        Self {
            algorithm,
            name: name.into(),
            digest: digest.into(),
        }
    }
}

/// A parsed manifest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    /// Entries in order (a file listed twice keeps both lines; both are checked).
    pub entries: Vec<Entry>,
    /// Index of each name's first entry, so lookups cost the same whatever the manifest's size.
    first: std::collections::HashMap<String, usize>,
}

/// Largest manifest read (a package lists a handful of files).
pub const MAX_MANIFEST_SIZE: usize = 1 << 20;

impl Manifest {
    /// Parses manifest text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let err = |line: usize, reason: String| Error::Manifest {
            path: path.to_path_buf(),
            line,
            reason,
        };
        if text.len() > MAX_MANIFEST_SIZE {
            return Err(err(0, "larger than 1 MiB".into()));
        }
        let mut entries = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() {
                continue;
            }
            let open = line.find('(').ok_or_else(|| {
                err(
                    i + 1,
                    format!("expected ALGORITHM(name)= digest, found {line:?}"),
                )
            })?;
            let close = line
                .rfind(")=")
                .or_else(|| line.rfind(") ="))
                .ok_or_else(|| err(i + 1, "no \")=\" after the file name".into()))?;
            let (alg, name) = (
                line.get(..open).unwrap_or(""),
                line.get(open + 1..close).unwrap_or(""),
            );
            let digest = line
                .get(close + 1..)
                .unwrap_or("")
                .trim_start_matches([' ', '='])
                .trim()
                .to_ascii_lowercase();
            let algorithm = match alg.trim() {
                "SHA1" => Algorithm::Sha1,
                "SHA256" => Algorithm::Sha256,
                "SHA512" => Algorithm::Sha512,
                other => {
                    return Err(err(
                        i + 1,
                        format!("digest algorithm {other:?} is not SHA1, SHA256 or SHA512"),
                    ))
                }
            };
            let name = &match locate(name) {
                Ok(inside) => inside,
                Err(why) => return Err(err(i + 1, format!("file name {name:?} {why}"))),
            };
            if digest.len() != algorithm.hex_len() || !digest.bytes().all(|b| b.is_ascii_hexdigit())
            {
                return Err(err(
                    i + 1,
                    format!(
                        "{} digest of {name} is not {} hex digits",
                        algorithm.as_str(),
                        algorithm.hex_len()
                    ),
                ));
            }
            entries.push(Entry {
                algorithm,
                name: name.to_string(),
                digest,
            });
        }
        let mut first = std::collections::HashMap::new();
        for (i, e) in entries.iter().enumerate() {
            first.entry(e.name.clone()).or_insert(i);
        }
        Ok(Self { entries, first })
    }

    /// Parses one `ALG(name)= hex` line whose hex may be of any even length (a certificate's
    /// signature line): (algorithm, name, hex).
    pub(crate) fn parse_lenient_digest(
        line: &str,
        path: &Path,
        line_no: usize,
    ) -> Result<(Algorithm, String, String)> {
        let err = |reason: String| Error::Manifest {
            path: path.to_path_buf(),
            line: line_no,
            reason,
        };
        let open = line.find('(').ok_or_else(|| {
            err(format!(
                "expected ALGORITHM(name)= signature, found {line:?}"
            ))
        })?;
        let close = line
            .rfind(")=")
            .or_else(|| line.rfind(") ="))
            .ok_or_else(|| err("no \")=\" after the file name".into()))?;
        let algorithm = match line.get(..open).unwrap_or("").trim() {
            "SHA1" => Algorithm::Sha1,
            "SHA256" => Algorithm::Sha256,
            "SHA512" => Algorithm::Sha512,
            other => {
                return Err(err(format!(
                    "signature algorithm {other:?} is not SHA1, SHA256 or SHA512"
                )))
            }
        };
        let name = line.get(open + 1..close).unwrap_or("").trim().to_string();
        let hex = line
            .get(close + 1..)
            .unwrap_or("")
            .trim_start_matches([' ', '='])
            .trim()
            .to_ascii_lowercase();
        if !is_plain_name(&name)
            || hex.is_empty()
            || hex.len() % 2 != 0
            || !hex.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return Err(err(format!("not a signature line: {line:?}")));
        }
        Ok((algorithm, name, hex))
    }

    /// The manifest as text, one `ALG(name)= hex` line per entry (the form ovftool writes).
    pub fn print(&self) -> String {
        self.entries
            .iter()
            .map(|e| format!("{}({})= {}\n", e.algorithm.as_str(), e.name, e.digest))
            .collect()
    }

    /// The entry for `name`, if listed.
    pub fn get(&self, name: &str) -> Option<&Entry> {
        let name = locate(name).ok()?;
        self.first.get(&name).and_then(|&i| self.entries.get(i))
    }
}

/// A streaming digest of one algorithm.
#[derive(Clone, Debug)]
pub enum Hasher {
    /// SHA-1.
    Sha1(Sha1),
    /// SHA-256.
    Sha256(Sha256),
    /// SHA-512.
    Sha512(Sha512),
}

impl Hasher {
    /// A fresh digest of `algorithm`.
    pub fn new(algorithm: Algorithm) -> Self {
        match algorithm {
            Algorithm::Sha1 => Self::Sha1(Sha1::new()),
            Algorithm::Sha256 => Self::Sha256(Sha256::new()),
            Algorithm::Sha512 => Self::Sha512(Sha512::new()),
        }
    }

    /// Adds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Self::Sha1(h) => h.update(data),
            Self::Sha256(h) => h.update(data),
            Self::Sha512(h) => h.update(data),
        }
    }

    /// The digest, lower-case hex.
    pub fn finish(self) -> String {
        let bytes: Vec<u8> = match self {
            Self::Sha1(h) => h.finalize().to_vec(),
            Self::Sha256(h) => h.finalize().to_vec(),
            Self::Sha512(h) => h.finalize().to_vec(),
        };
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// Digests everything `reader` gives with `algorithm`, through a fixed 1 MiB buffer.
pub fn digest<R: Read>(algorithm: Algorithm, reader: &mut R) -> std::io::Result<String> {
    let mut h = Hasher::new(algorithm);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(h.finish()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        h.update(buf.split_at(n.min(buf.len())).0);
    }
}

/// How one listed file fared.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The digest matches.
    Ok,
    /// The digest differs.
    Mismatch {
        /// Listed.
        expected: String,
        /// Computed.
        found: String,
    },
    /// The file is not in the package.
    Missing,
}

impl std::fmt::Display for Outcome {
    /// `ok`, `missing`, or `mismatch (manifest HEX, file HEX)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ok => f.write_str("ok"),
            Self::Missing => f.write_str("missing"),
            Self::Mismatch { expected, found } => {
                write!(f, "mismatch (manifest {expected}, file {found})")
            }
        }
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Outcome {
    /// As its `Display` text.
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Algorithm {
    /// As written in a manifest: `SHA1`, `SHA256`, `SHA512`.
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl Outcome {
    /// The outcome of a digest `found` for a file the manifest lists with `expected`.
    pub fn of(expected: &str, found: String) -> Self {
        if found == expected {
            Self::Ok
        } else {
            Self::Mismatch {
                expected: expected.to_string(),
                found,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prints_and_refuses() {
        let p = Path::new("x.mf");
        let text = "SHA1(vm.ovf)= da39a3ee5e6b4b0d3255bfef95601890afd80709\r\nSHA256(vm-disk1.vmdk) = E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855\n\n";
        let m = Manifest::parse(text, p).unwrap();
        assert_eq!(m.entries.len(), 2);
        assert_eq!(m.get("vm-disk1.vmdk").unwrap().algorithm, Algorithm::Sha256);
        assert_eq!(
            m.get("vm-disk1.vmdk").unwrap().digest,
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(Manifest::parse(&m.print(), p).unwrap(), m);
        for (bad, line) in [
            ("MD5(a)= 00\n", 1),
            (
                "SHA1(../etc/passwd)= da39a3ee5e6b4b0d3255bfef95601890afd80709\n",
                1,
            ),
            ("\nSHA1(a)= 12\n", 2),
            ("garbage\n", 1),
            (
                "SHA256(a)= zz39a3ee5e6b4b0d3255bfef95601890afd80709da39a3ee5e6b4b0d3255bfef\n",
                1,
            ),
        ] {
            match Manifest::parse(bad, p) {
                Err(Error::Manifest { line: l, .. }) => assert_eq!(l, line, "{bad:?}"),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }

    #[test]
    fn digests_stream() {
        let mut r = std::io::Cursor::new(b"abc".to_vec());
        assert_eq!(
            digest(Algorithm::Sha256, &mut r).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let mut r = std::io::Cursor::new(b"abc".to_vec());
        assert_eq!(
            digest(Algorithm::Sha1, &mut r).unwrap(),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }
}
