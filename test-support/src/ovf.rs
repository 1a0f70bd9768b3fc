//! OVA and envelope builders for the tests of the OVF side: raw ustar members (names, types and
//! sizes the tar crate refuses to write), archives, and minimal OVF 1.x envelopes.
#![allow(clippy::indexing_slicing)]

/// One raw ustar member (header and padded data), for names, types and sizes the tar crate's
/// builder refuses to write. `size` overrides the header's size field (octal) when given.
pub fn tar_member(name: &[u8], kind: u8, link: &str, data: &[u8], size: Option<&[u8]>) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name);
    h[100..107].copy_from_slice(b"0000644");
    match size {
        Some(field) => h[124..124 + field.len()].copy_from_slice(field),
        None => h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes()),
    }
    h[136..147].copy_from_slice(b"00000000000");
    h[156] = kind;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

/// A tar archive of regular members, with its end-of-archive blocks.
pub fn tar_of(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in members {
        out.extend(tar_member(name.as_bytes(), b'0', "", data, None));
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

pub const NS: &str = "http://schemas.dmtf.org/ovf/envelope/1";
pub const STREAM_FORMAT: &str =
    "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized";

/// A minimal OVF 1.x envelope: `refs` in References, `disks` in the DiskSection, then `rest`.
pub fn envelope(refs: &str, disks: &str, rest: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Envelope xmlns=\"{NS}\" xmlns:ovf=\"{NS}\">\n  <References>{refs}</References>\n  <DiskSection><Info>Disks</Info>{disks}</DiskSection>\n{rest}</Envelope>\n"
    )
}

/// A `File` reference with id `file1`.
pub fn file_ref(href: &str, size: usize, extra: &str) -> String {
    format!("<File ovf:href=\"{href}\" ovf:id=\"file1\" ovf:size=\"{size}\"{extra}/>")
}

/// A stream-optimized `Disk` of `mib` MiB in `file1`.
pub fn disk_entry(mib: u64) -> String {
    format!("<Disk ovf:capacity=\"{mib}\" ovf:capacityAllocationUnits=\"byte * 2^20\" ovf:diskId=\"vmdisk1\" ovf:fileRef=\"file1\" ovf:format=\"{STREAM_FORMAT}\"/>")
}

/// How a test manifest spells its lines: `SHA256(name)= hex` as ovftool writes them, or the
/// BSD tag form `SHA256 (name) = hex` that `sha256sum --tag` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MfStyle {
    /// `SHA256(name)= hex`.
    Ovftool,
    /// `SHA256 (name) = hex`.
    Tagged,
}

/// A package folder the tests of the OVF side build: files written into it, its envelope (with
/// sizes filled in), a manifest of any of its files, and an OVA of them in any order. The one
/// package builder the tests share; each test still says what goes in.
#[derive(Debug)]
pub struct PackageDir {
    /// The folder (created by [`PackageDir::new`]).
    pub dir: std::path::PathBuf,
}

impl PackageDir {
    /// The folder `dir`, created when missing.
    pub fn new(dir: &std::path::Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        Self {
            dir: dir.to_path_buf(),
        }
    }

    /// The path of `name` in the folder.
    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.join(name)
    }

    /// The length of the file `name`.
    pub fn size(&self, name: &str) -> u64 {
        std::fs::metadata(self.path(name)).unwrap().len()
    }

    /// Writes `bytes` as `name`.
    pub fn file(&self, name: &str, bytes: &[u8]) -> &Self {
        std::fs::write(self.path(name), bytes).unwrap();
        self
    }

    /// Writes the envelope `name`, each `SIZE(file)` in `text` replaced by that file's length.
    pub fn ovf(&self, name: &str, text: &str) -> &Self {
        let mut out = String::new();
        let mut rest = text;
        while let Some(at) = rest.find("SIZE(") {
            out.push_str(&rest[..at]);
            let tail = &rest[at + 5..];
            let end = tail.find(')').unwrap();
            out.push_str(&self.size(&tail[..end]).to_string());
            rest = &tail[end + 1..];
        }
        out.push_str(rest);
        self.file(name, out.as_bytes())
    }

    /// `text` with the `ovf:size` of each `File` whose file is in the folder set to that file's
    /// length (envelopes taken from real packages, whose files the tests replace).
    pub fn fit_sizes(&self, text: &str) -> String {
        let mut out = text.to_string();
        for href in hrefs(text) {
            let Ok(meta) = std::fs::metadata(self.path(&href)) else {
                continue;
            };
            let Some(at) = out.find(&format!("ovf:href=\"{href}\"")) else {
                continue;
            };
            let start = out[..at].rfind('<').unwrap();
            let end = at + out[at..].find('>').unwrap();
            let element = &out[start..end];
            let Some(size_at) = element.find("ovf:size=\"") else {
                continue;
            };
            let value = start + size_at + "ovf:size=\"".len();
            let value_end = value + out[value..].find('"').unwrap();
            out.replace_range(value..value_end, &meta.len().to_string());
        }
        out
    }

    /// Writes the manifest `name` listing `files` with `alg` (`SHA1`, `SHA256` or `SHA512`),
    /// digests computed here (not by the code under test).
    pub fn manifest(&self, name: &str, files: &[&str], alg: &str, style: MfStyle) -> &Self {
        use sha2::Digest;
        let mut mf = String::new();
        for f in files {
            let data = std::fs::read(self.path(f)).unwrap();
            let hex: String = match alg {
                "SHA1" => hex(&sha1::Sha1::digest(&data)),
                "SHA256" => hex(&sha2::Sha256::digest(&data)),
                "SHA512" => hex(&sha2::Sha512::digest(&data)),
                other => panic!("no digest {other}"),
            };
            mf.push_str(&match style {
                MfStyle::Ovftool => format!("{alg}({f})= {hex}\n"),
                MfStyle::Tagged => format!("{alg} ({f}) = {hex}\n"),
            });
        }
        self.file(name, mf.as_bytes())
    }

    /// Writes the OVA `path` (relative to the folder, or absolute) of the folder's `members`,
    /// in that order.
    pub fn ova(&self, path: &str, members: &[&str]) -> &Self {
        let data: Vec<(&str, Vec<u8>)> = members
            .iter()
            .map(|m| (*m, std::fs::read(self.path(m)).unwrap()))
            .collect();
        let entries: Vec<(&str, &[u8])> = data.iter().map(|(n, d)| (*n, d.as_slice())).collect();
        std::fs::write(self.path(path), tar_of(&entries)).unwrap();
        self
    }
}

/// The `ovf:href` values of an envelope's text, in order.
pub fn hrefs(ovf: &str) -> Vec<String> {
    ovf.split("ovf:href=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .map(str::to_string)
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A manifest's `SHA256(name)= hex` lines as `sha256sum -c` reads them (`hex  name`).
pub fn sha256sum_lines(manifest: &str) -> String {
    manifest
        .lines()
        .map(|l| {
            let (name, hex) = l
                .strip_prefix("SHA256(")
                .and_then(|rest| rest.split_once(")= "))
                .unwrap_or_else(|| panic!("not a SHA256 manifest line: {l:?}"));
            format!("{hex}  {name}\n")
        })
        .collect()
}
