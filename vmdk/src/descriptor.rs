//! The text descriptor: parse, query, edit and print.
//!
//! Spec: "The Descriptor File" (pp. 3-5). A descriptor is a header (`version`, `encoding`, `CID`,
//! `parentCID`, `createType`, `parentFileNameHint`, ...), extent lines (`RW 2048 SPARSE "x.vmdk"`,
//! `RW 2048 FLAT "x-flat.vmdk" 0`, `RW 2048 ZERO`) and the disk database (`ddb.* = "..."`).
//! Keys are matched without regard to case, values may be quoted or not, lines end in LF or
//! CRLF, and comments (`#`) and blank lines may stand anywhere.
//!
//! Every line is kept as it was read, so `print(parse(text)) == text` byte for byte; unknown
//! keys stay where they were. Edits ([`Descriptor::set`], [`Descriptor::push_extent`]) render
//! only the lines they touch. Text that is not UTF-8 is refused with a clear error (legacy
//! `encoding="windows-1252"` descriptors with non-ASCII names are not read yet).

use std::fmt;
use std::str::FromStr;

use crate::error::ErrorKind;

/// Largest descriptor this library reads. Real ones are a few KiB (a 2 TiB twoGbMaxExtent disk
/// lists about 1000 extents, some 50 KiB).
pub(crate) const MAX_DESCRIPTOR_SIZE: u64 = 4 << 20;

/// Most extents a descriptor may list (bounds memory and time for hostile input).
pub(crate) const MAX_EXTENTS: usize = 65_536;

/// `parentCID` of a disk that has no parent.
pub(crate) const CID_NO_PARENT: u32 = 0xffff_ffff;

/// The `createType` of a disk (spec p. 3-4).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum CreateType {
    /// Single sparse extent with embedded descriptor.
    MonolithicSparse,
    /// Single flat extent with separate descriptor.
    MonolithicFlat,
    /// Sparse extents of at most 2 GiB.
    TwoGbMaxExtentSparse,
    /// Flat extents of at most 2 GiB.
    TwoGbMaxExtentFlat,
    /// Compressed sparse extent with markers, for OVF.
    StreamOptimized,
    /// Flat disk on VMFS (thick).
    Vmfs,
    /// Thin-provisioned flat disk on VMFS.
    VmfsThin,
    /// Thick, lazily zeroed, on VMFS.
    VmfsPreallocated,
    /// Thick, eagerly zeroed, on VMFS.
    VmfsEagerZeroedThick,
    /// Deprecated thick VMFS type.
    VmfsThick,
    /// Arbitrary extents.
    Custom,
    /// ESXi sparse (COWD) delta disk.
    VmfsSparse,
    /// Space-efficient sparse delta disk (written `seSparse`).
    VmfsSeSparse,
    /// Raw device maps and device-backed disks: recognised, never read (they name host devices).
    VmfsRdm,
    /// Physical-compatibility raw device map.
    VmfsRdmp,
    /// Raw passthrough device.
    VmfsRaw,
    /// A whole host device.
    FullDevice,
    /// Partitions of a host device.
    PartitionedDevice,
    /// Anything else, as written.
    Other(String),
}

const CREATE_TYPES: &[(&str, CreateType)] = &[
    ("monolithicSparse", CreateType::MonolithicSparse),
    ("monolithicFlat", CreateType::MonolithicFlat),
    ("twoGbMaxExtentSparse", CreateType::TwoGbMaxExtentSparse),
    ("twoGbMaxExtentFlat", CreateType::TwoGbMaxExtentFlat),
    ("streamOptimized", CreateType::StreamOptimized),
    ("vmfs", CreateType::Vmfs),
    ("vmfsThin", CreateType::VmfsThin),
    ("vmfsPreallocated", CreateType::VmfsPreallocated),
    ("vmfsEagerZeroedThick", CreateType::VmfsEagerZeroedThick),
    ("vmfsThick", CreateType::VmfsThick),
    ("custom", CreateType::Custom),
    ("vmfsSparse", CreateType::VmfsSparse),
    ("seSparse", CreateType::VmfsSeSparse),
    ("vmfsSeSparse", CreateType::VmfsSeSparse),
    ("vmfsRDM", CreateType::VmfsRdm),
    ("vmfsRawDeviceMap", CreateType::VmfsRdm),
    ("vmfsRDMP", CreateType::VmfsRdmp),
    ("vmfsPassthroughRawDeviceMap", CreateType::VmfsRdmp),
    ("vmfsRaw", CreateType::VmfsRaw),
    ("fullDevice", CreateType::FullDevice),
    ("partitionedDevice", CreateType::PartitionedDevice),
    // The spec's own spelling of the 2 GiB types.
    ("2GbMaxExtentSparse", CreateType::TwoGbMaxExtentSparse),
    ("2GbMaxExtentFlat", CreateType::TwoGbMaxExtentFlat),
];

impl CreateType {
    /// The name as VMware writes it.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Other(s) => s,
            known => CREATE_TYPES
                .iter()
                .find(|(_, t)| t == known)
                .map_or("custom", |(name, _)| name),
        }
    }

    /// Whether this library reads disks of this type.
    pub fn is_supported(&self) -> bool {
        matches!(
            self,
            Self::MonolithicSparse
                | Self::MonolithicFlat
                | Self::TwoGbMaxExtentSparse
                | Self::TwoGbMaxExtentFlat
                | Self::StreamOptimized
                | Self::Vmfs
                | Self::VmfsThin
                | Self::VmfsPreallocated
                | Self::VmfsEagerZeroedThick
                | Self::VmfsThick
                | Self::Custom
                | Self::VmfsSparse
                | Self::VmfsSeSparse
        )
    }
}

impl FromStr for CreateType {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(CREATE_TYPES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(s))
            .map_or_else(|| Self::Other(s.to_string()), |(_, t)| t.clone()))
    }
}

impl fmt::Display for CreateType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Access of an extent line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Access {
    /// `RW`
    ReadWrite,
    /// `RDONLY`
    ReadOnly,
    /// `NOACCESS`: the extent may not be read.
    NoAccess,
}

impl Access {
    /// The keyword as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReadWrite => "RW",
            Self::ReadOnly => "RDONLY",
            Self::NoAccess => "NOACCESS",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [Self::ReadWrite, Self::ReadOnly, Self::NoAccess]
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s))
    }
}

/// Kind of an extent line (spec p. 4).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ExtentKind {
    /// Preallocated data in a file, at an offset.
    Flat,
    /// Hosted sparse (or stream-optimized) extent.
    Sparse,
    /// Reads as zeros, no file.
    Zero,
    /// Flat extent on VMFS.
    Vmfs,
    /// ESXi sparse (COWD) extent.
    VmfsSparse,
    /// Raw device map.
    VmfsRdm,
    /// Raw device.
    VmfsRaw,
    /// Space-efficient sparse.
    SeSparse,
    /// Anything else, as written.
    Other(String),
}

const EXTENT_KINDS: &[(&str, ExtentKind)] = &[
    ("FLAT", ExtentKind::Flat),
    ("SPARSE", ExtentKind::Sparse),
    ("ZERO", ExtentKind::Zero),
    ("VMFS", ExtentKind::Vmfs),
    ("VMFSSPARSE", ExtentKind::VmfsSparse),
    ("VMFSRDM", ExtentKind::VmfsRdm),
    ("VMFSRAW", ExtentKind::VmfsRaw),
    ("SESPARSE", ExtentKind::SeSparse),
];

impl ExtentKind {
    /// The keyword as written.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Other(s) => s,
            known => EXTENT_KINDS
                .iter()
                .find(|(_, k)| k == known)
                .map_or("FLAT", |(name, _)| name),
        }
    }

    fn parse(s: &str) -> Self {
        EXTENT_KINDS
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(s))
            .map_or_else(|| Self::Other(s.to_string()), |(_, k)| k.clone())
    }
}

/// One extent line: `ACCESS SECTORS KIND ["FILE" [OFFSET]]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ExtentLine {
    /// Access.
    pub access: Access,
    /// Size in sectors.
    pub sectors: u64,
    /// Kind.
    pub kind: ExtentKind,
    /// File name relative to the descriptor (none for `ZERO`).
    pub file_name: Option<String>,
    /// Offset in sectors into the file (flat extents).
    pub offset: u64,
}

impl ExtentLine {
    fn render(&self) -> String {
        let mut s = format!(
            "{} {} {}",
            self.access.as_str(),
            self.sectors,
            self.kind.as_str()
        );
        if let Some(name) = &self.file_name {
            s.push_str(&format!(" \"{name}\""));
            // FLAT lines always carry the offset; ESXi writes VMFS lines without one (and
            // qemu-img refuses a VMFS line that has one).
            if self.kind == ExtentKind::Flat || self.offset != 0 {
                s.push_str(&format!(" {}", self.offset));
            }
        }
        s
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Entry {
    /// Blank line or comment.
    Other,
    /// `key = value`: the key as written and the value unquoted.
    Pair(String, String),
    /// An extent line.
    Extent(ExtentLine),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Line {
    /// The line exactly as read, terminator included.
    raw: String,
    entry: Entry,
}

/// A parsed descriptor that prints back exactly as it was read.
///
/// ```
/// use vmdk::{CreateType, Descriptor};
///
/// let text = "# Disk DescriptorFile\nversion=1\nCID=12345678\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\nRW 2048 FLAT \"d-flat.vmdk\" 0\n\nddb.adapterType = \"lsilogic\"\n";
/// let mut d = Descriptor::parse(text)?;
/// assert_eq!(d.create_type(), Some(CreateType::MonolithicFlat));
/// assert_eq!(d.extents().next().unwrap().file_name.as_deref(), Some("d-flat.vmdk"));
/// assert_eq!(d.print(), text);
/// d.set("ddb.adapterType", "pvscsi");
/// assert_eq!(Descriptor::parse(&d.print())?.get("DDB.ADAPTERTYPE"), Some("pvscsi"));
/// # Ok::<(), vmdk::ErrorKind>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Descriptor {
    lines: Vec<Line>,
    newline: &'static str,
}

/// A descriptor parse error: [`ErrorKind::Descriptor`], the line and what is wrong with it.
/// [`crate::Error`] adds the file and the offset where a file is read.
type ParseError = ErrorKind;

fn err(line: usize, reason: impl Into<String>) -> ParseError {
    ErrorKind::Descriptor {
        line,
        reason: reason.into(),
    }
}

fn unquote(v: &str) -> &str {
    let v = v.trim();
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
}

fn parse_extent(text: &str, line_no: usize) -> Result<ExtentLine, ParseError> {
    let mut rest = text.trim();
    let mut word = || -> Option<&str> {
        let t = rest.trim_start();
        if t.is_empty() {
            return None;
        }
        let end = t.find(char::is_whitespace).unwrap_or(t.len());
        let (w, r) = t.split_at(end);
        rest = r;
        Some(w)
    };
    let access = word()
        .and_then(Access::parse)
        .ok_or_else(|| err(line_no, "extent line without RW, RDONLY or NOACCESS"))?;
    let sectors = word()
        .and_then(|w| w.parse::<u64>().ok())
        .ok_or_else(|| err(line_no, "extent size is not a whole number of sectors"))?;
    let kind = ExtentKind::parse(word().ok_or_else(|| err(line_no, "extent line without a type"))?);
    let rest = rest.trim();
    let (file_name, tail) = if rest.is_empty() {
        (None, "")
    } else if let Some(q) = rest.strip_prefix('"') {
        let close = q
            .find('"')
            .ok_or_else(|| err(line_no, "extent file name has no closing quote"))?;
        let (name, tail) = q.split_at(close);
        (Some(name.to_string()), tail.get(1..).unwrap_or(""))
    } else {
        // Unquoted names appear in hand-written descriptors; they cannot contain spaces.
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (name, tail) = rest.split_at(end);
        (Some(name.to_string()), tail)
    };
    let tail = tail.trim();
    let offset = if tail.is_empty() {
        0
    } else {
        tail.parse::<u64>().map_err(|_| {
            err(
                line_no,
                format!("extent offset {tail:?} is not a whole number"),
            )
        })?
    };
    if kind == ExtentKind::Zero && file_name.is_some() {
        return Err(err(line_no, "a ZERO extent names no file"));
    }
    if kind != ExtentKind::Zero && file_name.is_none() {
        return Err(err(line_no, "extent line without a file name"));
    }
    Ok(ExtentLine {
        access,
        sectors,
        kind,
        file_name,
        offset,
    })
}

fn is_extent_line(t: &str) -> bool {
    let first = t.split_whitespace().next().unwrap_or("");
    Access::parse(first).is_some() && t.len() > first.len()
}

impl Descriptor {
    /// Parses descriptor text. Embedded descriptors end at the first NUL; pass the text before
    /// it. Errors are [`ErrorKind::Descriptor`], with the line.
    pub fn parse(text: &str) -> Result<Self, ErrorKind> {
        let mut lines = Vec::new();
        let mut newline = "\n";
        let mut extents = 0usize;
        for (i, raw) in text.split_inclusive('\n').enumerate() {
            let line_no = i + 1;
            if i == 0 && raw.ends_with("\r\n") {
                newline = "\r\n";
            }
            let t = raw.trim();
            let entry = if t.is_empty() || t.starts_with('#') {
                Entry::Other
            } else if is_extent_line(t) {
                extents += 1;
                if extents > MAX_EXTENTS {
                    return Err(err(line_no, format!("more than {MAX_EXTENTS} extents")));
                }
                Entry::Extent(parse_extent(t, line_no)?)
            } else if let Some((k, v)) = t.split_once('=') {
                let k = k.trim();
                if k.is_empty() || k.contains(char::is_whitespace) {
                    return Err(err(line_no, format!("bad key {k:?}")));
                }
                Entry::Pair(k.to_string(), unquote(v).to_string())
            } else {
                return Err(err(
                    line_no,
                    format!(
                        "not a key = value, extent or comment line: {:?}",
                        truncate(t)
                    ),
                ));
            };
            lines.push(Line {
                raw: raw.to_string(),
                entry,
            });
        }
        Ok(Self { lines, newline })
    }

    /// Parses raw bytes: stops at the first NUL (embedded descriptors are padded with NULs) and
    /// requires UTF-8.
    pub fn parse_bytes(bytes: &[u8]) -> Result<Self, ErrorKind> {
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        let bytes = bytes.get(..end).unwrap_or(bytes);
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let line = bytes
                .get(..e.valid_up_to())
                .map_or(0, |b| b.iter().filter(|&&c| c == b'\n').count())
                + 1;
            err(line, "descriptor text is not UTF-8")
        })?;
        Self::parse(text)
    }

    /// A new descriptor as VMware writes one: header, empty extent section, empty database.
    pub fn new(create_type: &CreateType, cid: u32) -> Self {
        let text = format!(
            concat!(
                "# Disk DescriptorFile\nversion=1\nencoding=\"UTF-8\"\n",
                "CID={:08x}\nparentCID=ffffffff\ncreateType=\"{}\"\n\n",
                "# Extent description\n\n# The Disk Data Base\n#DDB\n\n",
            ),
            cid,
            create_type.as_str()
        );
        // The text above is well formed by construction; parsing it cannot fail.
        Self::parse(&text).unwrap_or_default()
    }

    /// Prints the descriptor: the lines as read, with edited lines rendered anew.
    pub fn print(&self) -> String {
        self.lines.iter().map(|l| l.raw.as_str()).collect()
    }

    /// The value of `key` (matched without regard to case), unquoted.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.lines.iter().find_map(|l| match &l.entry {
            Entry::Pair(k, v) if k.eq_ignore_ascii_case(key) => Some(v.as_str()),
            _ => None,
        })
    }

    /// All `key = value` pairs in order, keys as written.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.lines.iter().filter_map(|l| match &l.entry {
            Entry::Pair(k, v) => Some((k.as_str(), v.as_str())),
            _ => None,
        })
    }

    /// Sets `key` to `value`: replaces the first line with that key, or adds one (`ddb.*` keys at
    /// the end of the database, other keys after the header's last pair).
    pub fn set(&mut self, key: &str, value: &str) {
        let is_ddb = key.len() > 4 && key.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("ddb."));
        let raw = if is_ddb {
            format!("{key} = \"{value}\"{}", self.newline)
        } else if matches!(
            key.to_ascii_lowercase().as_str(),
            "version" | "cid" | "parentcid"
        ) {
            format!("{key}={value}{}", self.newline)
        } else {
            format!("{key}=\"{value}\"{}", self.newline)
        };
        let line = Line {
            raw,
            entry: Entry::Pair(key.to_string(), value.to_string()),
        };
        if let Some(existing) = self
            .lines
            .iter_mut()
            .find(|l| matches!(&l.entry, Entry::Pair(k, _) if k.eq_ignore_ascii_case(key)))
        {
            *existing = line;
            return;
        }
        let at = if is_ddb {
            self.last_index(
                |e| matches!(e, Entry::Pair(k, _) if k.to_ascii_lowercase().starts_with("ddb.")),
            )
            .or_else(|| self.lines.iter().position(|l| l.raw.trim() == "#DDB"))
            .map_or(self.lines.len(), |i| i + 1)
        } else {
            self.last_index(
                |e| matches!(e, Entry::Pair(k, _) if !k.to_ascii_lowercase().starts_with("ddb.")),
            )
            .map_or(0, |i| i + 1)
        };
        self.lines.insert(at.min(self.lines.len()), line);
    }

    /// Removes every line with `key`.
    pub fn remove(&mut self, key: &str) {
        self.lines
            .retain(|l| !matches!(&l.entry, Entry::Pair(k, _) if k.eq_ignore_ascii_case(key)));
    }

    fn last_index(&self, f: impl Fn(&Entry) -> bool) -> Option<usize> {
        self.lines.iter().rposition(|l| f(&l.entry))
    }

    /// The extent lines in order.
    pub fn extents(&self) -> impl Iterator<Item = &ExtentLine> {
        self.lines.iter().filter_map(|l| match &l.entry {
            Entry::Extent(e) => Some(e),
            _ => None,
        })
    }

    /// Appends an extent line after the last one (or after `# Extent description`).
    pub fn push_extent(&mut self, extent: ExtentLine) {
        let at = self
            .last_index(|e| matches!(e, Entry::Extent(_)))
            .or_else(|| {
                self.lines
                    .iter()
                    .position(|l| l.raw.trim().eq_ignore_ascii_case("# Extent description"))
            })
            .map_or(self.lines.len(), |i| i + 1);
        let line = Line {
            raw: format!("{}{}", extent.render(), self.newline),
            entry: Entry::Extent(extent),
        };
        self.lines.insert(at.min(self.lines.len()), line);
    }

    /// Removes every extent line.
    pub fn clear_extents(&mut self) {
        self.lines.retain(|l| !matches!(l.entry, Entry::Extent(_)));
    }

    /// `createType`, if present.
    pub fn create_type(&self) -> Option<CreateType> {
        self.get("createType").and_then(|v| v.parse().ok())
    }

    /// `CID`, if present and hexadecimal.
    pub fn cid(&self) -> Option<u32> {
        self.get("CID").and_then(parse_cid)
    }

    /// `parentCID`, if present and hexadecimal.
    pub fn parent_cid(&self) -> Option<u32> {
        self.get("parentCID").and_then(parse_cid)
    }

    /// `parentFileNameHint`, if present and not empty.
    pub fn parent_file_name_hint(&self) -> Option<&str> {
        self.get("parentFileNameHint").filter(|s| !s.is_empty())
    }

    /// Whether this link has a parent: a parent hint and a `parentCID` other than `ffffffff`.
    pub fn has_parent(&self) -> bool {
        self.parent_file_name_hint().is_some()
            && self.parent_cid().is_some_and(|c| c != CID_NO_PARENT)
    }

    /// Total size of all extents, in sectors (saturating: a hostile sum is caught by the caller).
    pub fn total_sectors(&self) -> u64 {
        self.extents()
            .fold(0u64, |a, e| a.saturating_add(e.sectors))
    }
}

fn parse_cid(v: &str) -> Option<u32> {
    u32::from_str_radix(v.trim(), 16).ok()
}

fn truncate(s: &str) -> String {
    s.chars().take(60).collect()
}

impl fmt::Display for Descriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.print())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "# Disk DescriptorFile\r\nversion=1\r\nCID=fffffffe\r\nparentCID=ffffffff\r\ncreateType=\"twoGbMaxExtentSparse\"\r\n\r\n# Extent description\r\nRW 4192256 SPARSE \"test-s001.vmdk\"\r\n  RDONLY 2101248 FLAT \"test f002.vmdk\" 128\r\nNOACCESS 100 ZERO\r\n\r\n# The Disk Data Base\r\n#DDB\r\n\r\nddb.adapterType = \"ide\"\r\nDDB.Geometry.Sectors = 63\r\nddb.unknownKey=\"kept = here\"\r\n";

    #[test]
    fn parses_every_part() {
        let d = Descriptor::parse(SAMPLE).unwrap();
        assert_eq!(d.create_type(), Some(CreateType::TwoGbMaxExtentSparse));
        assert_eq!(d.cid(), Some(0xffff_fffe));
        assert_eq!(d.parent_cid(), Some(CID_NO_PARENT));
        assert!(!d.has_parent());
        assert_eq!(d.get("ddb.geometry.sectors"), Some("63"));
        assert_eq!(d.get("DDB.ADAPTERTYPE"), Some("ide"));
        assert_eq!(d.get("ddb.unknownKey"), Some("kept = here"));
        let e: Vec<_> = d.extents().cloned().collect();
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].kind, ExtentKind::Sparse);
        assert_eq!(e[0].file_name.as_deref(), Some("test-s001.vmdk"));
        assert_eq!(e[1].access, Access::ReadOnly);
        assert_eq!(e[1].file_name.as_deref(), Some("test f002.vmdk"));
        assert_eq!(e[1].offset, 128);
        assert_eq!(
            e[2],
            ExtentLine {
                access: Access::NoAccess,
                sectors: 100,
                kind: ExtentKind::Zero,
                file_name: None,
                offset: 0
            }
        );
        assert_eq!(d.total_sectors(), 4192256 + 2101248 + 100);
    }

    #[test]
    fn round_trips_byte_for_byte() {
        let d = Descriptor::parse(SAMPLE).unwrap();
        assert_eq!(d.print(), SAMPLE);
        let lf = SAMPLE.replace("\r\n", "\n");
        assert_eq!(Descriptor::parse(&lf).unwrap().print(), lf);
    }

    #[test]
    fn edits_render_only_touched_lines() {
        let mut d = Descriptor::parse(SAMPLE).unwrap();
        d.set("cid", "12345678");
        d.set("ddb.virtualHWVersion", "14");
        d.set("parentFileNameHint", "base.vmdk");
        let text = d.print();
        assert!(text.contains("cid=12345678\r\n"), "{text}");
        assert!(
            text.ends_with("ddb.virtualHWVersion = \"14\"\r\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "createType=\"twoGbMaxExtentSparse\"\r\nparentFileNameHint=\"base.vmdk\"\r\n"
            ),
            "{text}"
        );
        let again = Descriptor::parse(&text).unwrap();
        assert_eq!(again.cid(), Some(0x1234_5678));
        assert_eq!(again.parent_file_name_hint(), Some("base.vmdk"));
        assert_eq!(again, d);
    }

    #[test]
    fn new_descriptor_with_extents() {
        let mut d = Descriptor::new(&CreateType::MonolithicFlat, 0xabcd);
        d.push_extent(ExtentLine {
            access: Access::ReadWrite,
            sectors: 2048,
            kind: ExtentKind::Flat,
            file_name: Some("x-flat.vmdk".into()),
            offset: 0,
        });
        d.set("ddb.adapterType", "lsilogic");
        let text = d.print();
        assert!(
            text.contains("# Extent description\nRW 2048 FLAT \"x-flat.vmdk\" 0\n"),
            "{text}"
        );
        assert!(
            text.contains("#DDB\nddb.adapterType = \"lsilogic\"\n"),
            "{text}"
        );
        assert_eq!(Descriptor::parse(&text).unwrap(), d);
        assert_eq!(d.cid(), Some(0xabcd));
    }

    #[test]
    fn errors_name_the_line() {
        for (text, line) in [
            ("version=1\nRW x SPARSE \"a\"\n", 2),
            ("version=1\n\nRW 10 SPARSE \"a\n", 3),
            ("RW 10 SPARSE\n", 1),
            ("RW 10 ZERO \"a\"\n", 1),
            ("RW 10 FLAT \"a\" zz\n", 1),
            ("hello world\n", 1),
            ("= x\n", 1),
        ] {
            match Descriptor::parse(text) {
                Err(ErrorKind::Descriptor { line: l, .. }) => assert_eq!(l, line, "{text:?}"),
                other => panic!("{text:?}: {other:?}"),
            }
        }
        assert!(matches!(
            Descriptor::parse_bytes(b"version=1\n\xff\n"),
            Err(ErrorKind::Descriptor { line: 2, .. })
        ));
    }

    #[test]
    fn embedded_text_stops_at_nul() {
        let d = Descriptor::parse_bytes(b"createType=\"streamOptimized\"\n\0\0garbage").unwrap();
        assert_eq!(d.create_type(), Some(CreateType::StreamOptimized));
    }

    #[test]
    fn create_types_by_name() {
        assert_eq!(
            "MONOLITHICSPARSE".parse::<CreateType>().unwrap(),
            CreateType::MonolithicSparse
        );
        assert_eq!(
            "2GbMaxExtentFlat".parse::<CreateType>().unwrap(),
            CreateType::TwoGbMaxExtentFlat
        );
        assert!("vmfsSparse".parse::<CreateType>().unwrap().is_supported());
        assert_eq!(CreateType::VmfsSeSparse.as_str(), "seSparse");
        assert!(!"vmfsRDM".parse::<CreateType>().unwrap().is_supported());
        assert_eq!("weird".parse::<CreateType>().unwrap().as_str(), "weird");
        assert_eq!(CreateType::VmfsThin.as_str(), "vmfsThin");
    }
}
