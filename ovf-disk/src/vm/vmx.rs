//! The `.vmx` file, read and written: [`Vm::parse`] reads `key = "value"` lines (keys
//! case-insensitive, `#` comments, values escaped as `|XX`), and [`VmxWriter`] writes them,
//! every key checked and every value escaped the way VMware escapes (`|` and two hex digits for
//! `"`, `|`, `#` and control characters).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ovf::names::is_plain_name;

use crate::error::{Error, Result};

/// Largest `.vmx` read: configurations are a few KiB.
pub(crate) const MAX_VMX: u64 = 1 << 20;

/// A VM's configuration, from its `.vmx`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Vm {
    /// The `.vmx` file.
    pub path: PathBuf,
    /// `displayName`.
    pub name: Option<String>,
    /// `numvcpus` (1 when absent, as VMware reads it).
    pub cpus: u32,
    /// `memsize`, in bytes.
    pub memory_bytes: Option<u64>,
    /// `guestOS`.
    pub guest_os: Option<String>,
    /// `firmware`: `bios` (the default) or `efi`.
    pub firmware: String,
    /// The virtual disks, by controller and unit.
    pub disks: Vec<VmDisk>,
    /// Every setting, by lower-cased key.
    #[cfg_attr(feature = "serde", serde(skip))]
    settings: BTreeMap<String, String>,
}

/// One virtual disk of a [`Vm`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct VmDisk {
    /// Controller and unit: `scsi0:1`, `sata0:0`, `nvme0:0`, `ide0:0`.
    pub device: String,
    /// The controller's model (`scsi0.virtualDev`: `lsilogic`, `pvscsi`, ...; `ahci`,
    /// `nvme`, `ide` for the others).
    pub controller: String,
    /// `fileName` as written: the current leaf of the disk's chain.
    pub file: String,
}

/// What the `.vmx` says, key by lower-cased key.
pub(super) struct Settings(BTreeMap<String, String>);

impl Settings {
    pub(super) fn get(&self, key: &str) -> Option<&str> {
        self.0.get(&key.to_ascii_lowercase()).map(String::as_str)
    }

    /// Whether `key` is `TRUE` (`default` when absent).
    fn flag(&self, key: &str, default: bool) -> bool {
        self.get(key)
            .map_or(default, |v| v.eq_ignore_ascii_case("true"))
    }
}

/// Decodes a value's `|XX` escapes (`|22` is `"`, `|7C` is `|`); a `|` not followed by two hex
/// digits stays as it is.
pub(super) fn unescape(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'|', Some(c)) => {
                out.push(c);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `.vmx` text (`path` for errors): `key = "value"` lines, `#` comments, blank lines.
pub(super) fn parse_settings(text: &str, path: &Path) -> Result<Settings> {
    let mut map = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = |reason: &str| Error::Config {
            path: path.to_path_buf(),
            line: n + 1,
            reason: reason.to_string(),
        };
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| bad("not a `key = \"value\"` line"))?;
        let key = key.trim();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(bad(
                "the key is empty or holds spaces or control characters",
            ));
        }
        let value = value.trim();
        let value = match value.strip_prefix('"') {
            Some(rest) => rest
                .strip_suffix('"')
                .ok_or_else(|| bad("the value's quote is not closed"))?,
            None => value,
        };
        map.insert(key.to_ascii_lowercase(), unescape(value));
    }
    Ok(Settings(map))
}

/// The kinds of disk controller, in the order disks are listed.
const BUSES: [&str; 4] = ["scsi", "sata", "nvme", "ide"];

/// A disk device key: `scsi0:1.filename` → (index of `scsi` in [`BUSES`], 0, 1).
fn device_of(key: &str) -> Option<(usize, u32, u32)> {
    let device = key.strip_suffix(".filename")?;
    let (bus, unit) = device.split_once(':')?;
    let kind = BUSES.iter().position(|k| bus.starts_with(k))?;
    let name = BUSES.get(kind)?;
    let number: u32 = bus.get(name.len()..)?.parse().ok()?;
    Some((kind, number, unit.parse().ok()?))
}

impl Vm {
    /// Reads the `.vmx` at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path).map_err(Error::io(path))?;
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::Read::take(file, MAX_VMX + 1), &mut text)
            .map_err(Error::io(path))?;
        if text.len() as u64 > MAX_VMX {
            return Err(Error::Config {
                path: path.to_path_buf(),
                line: 0,
                reason: format!("larger than {MAX_VMX} bytes: not a VM configuration"),
            });
        }
        Self::parse(&text, path)
    }

    /// Parses `.vmx` text read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let s = parse_settings(text, path)?;
        if s.get("encryption.keySafe").is_some() || s.get("encryption.data").is_some() {
            return Err(Error::Config {
                path: path.to_path_buf(),
                line: 0,
                reason: "the VM is encrypted (vSphere VM encryption: encryption.keySafe, \
                    encryption.data): its settings and disks are ciphertext here; decrypt it in \
                    vSphere, or export it through the host, and read that copy"
                    .into(),
            });
        }
        let mut disks = Vec::new();
        for (key, value) in &s.0 {
            let Some((index, number, unit)) = device_of(key) else {
                continue;
            };
            let kind = BUSES.get(index).copied().unwrap_or("scsi");
            let bus = format!("{kind}{number}");
            let device = format!("{bus}:{unit}");
            // A disk is what its deviceType says is one (`scsi-hardDisk`, `ata-hardDisk`,
            // `rawDisk`: whatever its file is named), or, with no deviceType, a `.vmdk` file:
            // a disk of the configuration never vanishes for its name (issue 26).
            let device_type = s
                .get(&format!("{device}.deviceType"))
                .unwrap_or("")
                .to_ascii_lowercase();
            let is_disk = if device_type.is_empty() {
                value.to_ascii_lowercase().ends_with(".vmdk")
            } else {
                device_type.contains("disk") && !device_type.contains("cdrom")
            };
            if !is_disk
                || !s.flag(&format!("{device}.present"), true)
                || !s.flag(&format!("{bus}.present"), true)
            {
                continue;
            }
            let controller = match kind {
                "scsi" => s
                    .get(&format!("{bus}.virtualDev"))
                    .unwrap_or("buslogic")
                    .to_string(),
                "sata" => "ahci".into(),
                other => other.to_string(),
            };
            disks.push((
                (index, number, unit),
                VmDisk {
                    device,
                    controller,
                    file: value.clone(),
                },
            ));
        }
        disks.sort_by_key(|d| d.0);
        let memory_bytes = s
            .get("memsize")
            .and_then(|m| m.trim().parse::<u64>().ok())
            .and_then(|m| m.checked_mul(1 << 20));
        Ok(Self {
            path: path.to_path_buf(),
            name: s.get("displayName").map(str::to_string),
            cpus: s
                .get("numvcpus")
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(1),
            memory_bytes,
            guest_os: s.get("guestOS").map(str::to_string),
            firmware: s.get("firmware").unwrap_or("bios").to_ascii_lowercase(),
            disks: disks.into_iter().map(|(_, d)| d).collect(),
            settings: s.0,
        })
    }

    /// A setting of the `.vmx`, by key (any case), escapes decoded.
    pub fn setting(&self, key: &str) -> Option<&str> {
        self.settings
            .get(&key.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The settings whose key starts with `prefix` (any case), in key order.
    pub fn settings_starting_with<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
        let prefix = prefix.to_ascii_lowercase();
        self.settings
            .iter()
            .filter(move |(k, _)| k.starts_with(&prefix))
            .map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The VM's folder.
    pub fn folder(&self) -> &Path {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        }
    }

    /// The path of `disk`'s leaf: a plain name in the VM's folder, unless `allow_outside`.
    pub(crate) fn disk_path(&self, disk: &VmDisk, allow_outside: bool) -> Result<PathBuf> {
        if is_plain_name(&disk.file) || allow_outside {
            return Ok(self.folder().join(&disk.file));
        }
        Err(Error::Config {
            path: self.path.clone(),
            line: 0,
            reason: format!(
                "{}.fileName {:?} leads outside the VM's folder",
                disk.device, disk.file
            ),
        })
    }
}

/// A `.vmx` being written: `key = "value"` lines in order, every key checked and every value
/// escaped.
#[derive(Clone, Debug, Default)]
pub struct VmxWriter {
    lines: Vec<(String, String)>,
}

impl VmxWriter {
    /// An empty configuration (its first line will be `.encoding = "UTF-8"`).
    pub fn new() -> Self {
        let mut w = Self::default();
        w.lines.push((".encoding".into(), "UTF-8".into()));
        w
    }

    /// Sets `key` to `value` (a key set twice keeps its first place and its last value). Keys
    /// are ASCII letters, digits, `.`, `_`, `:` and `-`; anything else is refused.
    pub fn set(&mut self, key: &str, value: impl AsRef<str>) -> Result<&mut Self> {
        let valid = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
        if !valid {
            return Err(Error::InvalidInput(format!("{key:?} is not a .vmx key")));
        }
        let value = value.as_ref().to_string();
        match self
            .lines
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
        {
            Some(line) => line.1 = value,
            None => self.lines.push((key.to_string(), value)),
        }
        Ok(self)
    }

    /// The text: a line per key, values quoted and escaped.
    pub fn finish(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.lines {
            out.push_str(k);
            out.push_str(" = \"");
            for c in v.chars() {
                if matches!(c, '"' | '|' | '#') || c.is_control() {
                    let mut buf = [0u8; 4];
                    for b in c.encode_utf8(&mut buf).bytes() {
                        out.push_str(&format!("|{b:02X}"));
                    }
                } else {
                    out.push(c);
                }
            }
            out.push_str("\"\n");
        }
        out
    }
}
