//! Writing and editing OVF envelopes as XML, through quick-xml, so every value written is
//! escaped: [`envelope_for_disks`] writes a whole envelope for bare disks, [`edit_envelope`]
//! changes an existing one in place.
//!
//! The editor reads the envelope with quick-xml's `Reader` and changes only what it is asked
//! to: the `href` and `size` of `References/File` elements and the `format` of
//! `DiskSection/Disk` elements (DSP0243 §7.1, §9.1; the 0.9 `Section xsi:type=
//! "ovf:DiskSection_Type"` too). Elements and attributes are matched by local name whatever
//! their namespace prefix, and values are compared unescaped, the way
//! [`super::envelope::Envelope::parse`] reads them. Every byte it does not change is copied from
//! the input as it was: the XML declaration, comments, processing instructions, CDATA, entity
//! references, namespace declarations and prefixes, unknown sections, attribute order and
//! quotes, whitespace and line ends; so an envelope with no edits comes back byte for byte.
//! A changed element is written back through quick-xml's `Writer` with its other attributes
//! as they were and the new value escaped inside the attribute's own quotes; a value edited to
//! what it already says keeps its bytes. A `size` is rewritten only where the `File` had one
//! (adding one would mean choosing a namespace prefix for it, and an absent size is not a stale
//! one).
//!
//! Refused: what quick-xml cannot read (unterminated markup, mismatched end tags, malformed or
//! duplicate attributes in the elements it edits or classifies), text that ends inside an
//! element or has no root, a DTD (no entity is ever expanded), a root element other than
//! `Envelope`, an envelope larger than 16 MiB, a `File` edit that matches no `File`, and values
//! holding characters XML 1.0 cannot carry (controls other than tab, line feed and carriage
//! return, U+FFFE, U+FFFF). It is not a full well-formedness check: callers have parsed the
//! envelope with `Envelope::parse` first.

use std::borrow::Cow;
use std::io::Write;

use quick_xml::events::attributes::Attribute;
use quick_xml::events::{BytesDecl, BytesStart, BytesText, Event};
use quick_xml::name::QName;
use quick_xml::{Reader, Writer, XmlVersion};

use super::envelope::MAX_ENVELOPE_SIZE;
use super::envelope::STREAM_OPTIMIZED_FORMAT;

/// The namespaces of an envelope we write: OVF 1.x, its `ovf:` prefix, `rasd:` and `vssd:`.
const NAMESPACES: [(&str, &str); 4] = [
    ("xmlns", "http://schemas.dmtf.org/ovf/envelope/1"),
    ("xmlns:ovf", "http://schemas.dmtf.org/ovf/envelope/1"),
    (
        "xmlns:rasd",
        "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData",
    ),
    (
        "xmlns:vssd",
        "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData",
    ),
];

/// Why an envelope could not be written or edited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct XmlError {
    /// Byte offset in the envelope where the problem is, when there is one.
    pub offset: Option<u64>,
    /// What is wrong.
    pub reason: String,
}

impl XmlError {
    /// An error at `offset` (or about the whole text, for `None`).
    fn new(offset: Option<u64>, reason: impl Into<String>) -> Self {
        Self {
            offset,
            reason: reason.into(),
        }
    }
}

impl std::fmt::Display for XmlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.offset {
            Some(offset) => write!(f, "at byte {offset}: {}", self.reason),
            None => f.write_str(&self.reason),
        }
    }
}

impl std::error::Error for XmlError {}

impl XmlError {
    /// This error as an envelope error of `path`, whose text is `text` (the line is counted
    /// from the offset).
    pub(crate) fn in_envelope(self, path: &std::path::Path, text: &str) -> crate::Error {
        let line = self.offset.and_then(|o| {
            let at = usize::try_from(o).ok()?;
            let lines = text.get(..at)?.bytes().filter(|&b| b == b'\n').count();
            u32::try_from(lines + 1).ok()
        });
        crate::Error::Envelope {
            path: path.to_path_buf(),
            line,
            reason: self.reason,
        }
    }
}

/// Whether XML 1.0 can carry `c` at all (its `Char` production; the surrogates are not `char`s).
fn is_xml_char(c: char) -> bool {
    !matches!(c, '\u{0}'..='\u{8}' | '\u{b}' | '\u{c}' | '\u{e}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}')
}

/// `value` escaped for an attribute value in either quotes: the five predefined entities, and
/// tab, line feed and carriage return as character references, which attribute-value
/// normalisation would otherwise turn into spaces. Refused: characters XML 1.0 cannot carry.
pub(crate) fn escape_attribute(value: &str) -> Result<String, XmlError> {
    escape_with(value, |c| match c {
        '\t' => Some("&#9;"),
        '\n' => Some("&#10;"),
        '\r' => Some("&#13;"),
        '"' => Some("&quot;"),
        '\'' => Some("&apos;"),
        _ => None,
    })
}

/// `value` escaped for character data: `&`, `<`, `>`, and carriage return as a character
/// reference (a parser turns a literal one into a line feed). Refused: characters XML 1.0
/// cannot carry.
pub(crate) fn escape_text(value: &str) -> Result<String, XmlError> {
    escape_with(value, |c| (c == '\r').then_some("&#13;"))
}

/// `value` with `&`, `<` and `>` escaped (by quick-xml) and the characters `more` names
/// replaced; an error if it holds a character XML 1.0 cannot carry.
fn escape_with(
    value: &str,
    more: impl Fn(char) -> Option<&'static str>,
) -> Result<String, XmlError> {
    if let Some(bad) = value.chars().find(|&c| !is_xml_char(c)) {
        return Err(XmlError::new(
            None,
            format!("{value:?} holds {bad:?}, which XML 1.0 cannot carry"),
        ));
    }
    let mut out = String::with_capacity(value.len());
    for c in quick_xml::escape::partial_escape(value).chars() {
        match more(c) {
            Some(replacement) => out.push_str(replacement),
            None => out.push(c),
        }
    }
    Ok(out)
}

/// An attribute whose value is already escaped.
pub(crate) fn escaped_attribute<'a>(key: &'a str, escaped: &'a str) -> Attribute<'a> {
    Attribute {
        key: QName(key.as_bytes()),
        value: Cow::Borrowed(escaped.as_bytes()),
    }
}

/// An envelope for bare disks: one virtual system named `name` with the disks on an lsilogic
/// SCSI controller. Each disk is `(href, file size, capacity in bytes)`, stored
/// stream-optimized. Written through quick-xml's indenting `Writer`: every attribute value and
/// text is escaped, and `ovf:id` and `Name` carry `name` as it is. Refused: a name or href with
/// a character XML 1.0 cannot carry.
pub(crate) fn envelope_for_disks(
    name: &str,
    disks: &[(String, u64, u64)],
) -> Result<String, XmlError> {
    let id = escape_attribute(name)?;
    let name = escape_text(name)?;
    let hrefs = disks
        .iter()
        .map(|(href, _, _)| escape_attribute(href))
        .collect::<Result<Vec<_>, _>>()?;
    let io = |e: std::io::Error| XmlError::new(None, e.to_string());
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))
        .map_err(io)?;
    w.create_element("Envelope")
        .with_attributes(NAMESPACES)
        .write_inner_content(|w| {
            w.create_element("References").write_inner_content(|w| {
                for (i, ((_, size, _), href)) in disks.iter().zip(&hrefs).enumerate() {
                    w.create_element("File")
                        .with_attribute(escaped_attribute("ovf:href", href))
                        .with_attribute(("ovf:id", format!("file{i}").as_str()))
                        .with_attribute(("ovf:size", size.to_string().as_str()))
                        .write_empty()?;
                }
                Ok(())
            })?;
            w.create_element("DiskSection").write_inner_content(|w| {
                w.create_element("Info")
                    .write_text_content(BytesText::new("Virtual disk information"))?;
                for (i, (_, _, capacity)) in disks.iter().enumerate() {
                    w.create_element("Disk")
                        .with_attribute(("ovf:capacity", capacity.to_string().as_str()))
                        .with_attribute(("ovf:capacityAllocationUnits", "byte"))
                        .with_attribute(("ovf:diskId", format!("vmdisk{i}").as_str()))
                        .with_attribute(("ovf:fileRef", format!("file{i}").as_str()))
                        .with_attribute(("ovf:format", STREAM_OPTIMIZED_FORMAT))
                        .write_empty()?;
                }
                Ok(())
            })?;
            w.create_element("VirtualSystem")
                .with_attribute(escaped_attribute("ovf:id", &id))
                .write_inner_content(|w| {
                    w.create_element("Info").write_text_content(BytesText::new(
                        "A virtual machine made of the exported disks",
                    ))?;
                    w.create_element("Name")
                        .write_text_content(BytesText::from_escaped(name.as_str()))?;
                    w.create_element("VirtualHardwareSection")
                        .write_inner_content(|w| {
                            w.create_element("Info").write_text_content(BytesText::new(
                                "Virtual hardware requirements",
                            ))?;
                            item(
                                w,
                                &[
                                    ("ElementName", "SCSI controller 0"),
                                    ("InstanceID", "1"),
                                    ("ResourceSubType", "lsilogic"),
                                    ("ResourceType", "6"),
                                ],
                            )?;
                            for i in 0..disks.len() {
                                item(
                                    w,
                                    &[
                                        ("AddressOnParent", &i.to_string()),
                                        ("ElementName", &format!("Hard disk {}", i + 1)),
                                        ("HostResource", &format!("ovf:/disk/vmdisk{i}")),
                                        ("InstanceID", &(i + 2).to_string()),
                                        ("Parent", "1"),
                                        ("ResourceType", "17"),
                                    ],
                                )?;
                            }
                            Ok(())
                        })?;
                    Ok(())
                })?;
            Ok(())
        })
        .map_err(io)?;
    let mut out = w.into_inner();
    out.push(b'\n');
    String::from_utf8(out).map_err(|e| XmlError::new(None, e.to_string()))
}

/// One `Item` of a `VirtualHardwareSection`: its `rasd:` elements in order, each with its text.
fn item<W: Write>(w: &mut Writer<W>, fields: &[(&str, &str)]) -> std::io::Result<()> {
    w.create_element("Item").write_inner_content(|w| {
        for (field, text) in fields {
            w.create_element(format!("rasd:{field}"))
                .write_text_content(BytesText::new(text))?;
        }
        Ok(())
    })?;
    Ok(())
}

/// A `References/File` to repoint.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FileEdit {
    /// Its `href` now, unescaped.
    href: String,
    /// The new `href`, unescaped.
    new_href: String,
    /// The new `size`, written where the element has a `size`.
    new_size: u64,
    /// How the file is stored now, when that changes: its `compression` and `chunkSize`
    /// attributes set (added where absent) or removed.
    storage: Option<Storage>,
}

/// How a file is stored in a package (DSP0243 §7.1): compressed (`gzip`) and split in chunks.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Storage {
    /// `ovf:compression`, or none: stored uncompressed.
    pub compression: Option<String>,
    /// `ovf:chunkSize`, or none: stored whole.
    pub chunk_size: Option<u64>,
}

/// Given a `Disk`'s `format` (unescaped), the value to write instead, or `None` to keep it.
type FormatMap<'a> = Box<dyn Fn(&str) -> Option<String> + 'a>;

/// What a hardware item is, as its children say: read before the item is copied, so an edit
/// can remove it or its `ResourceSubType`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ItemFacts {
    /// The element's local name: `Item`, `StorageItem`, `EthernetPortItem`, or `ExtraConfig`.
    pub element: String,
    /// `ResourceType`.
    pub resource_type: Option<u32>,
    /// `ResourceSubType`, trimmed.
    pub subtype: Option<String>,
    /// `InstanceID`, trimmed.
    pub instance_id: Option<String>,
}

/// What happens to a hardware item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ItemEdit {
    /// Copied as it is.
    Keep,
    /// Removed whole.
    Remove,
    /// Copied without its `ResourceSubType` element.
    RemoveSubtype,
}

type ItemMap<'a> = Box<dyn Fn(&ItemFacts) -> ItemEdit + 'a>;

/// What [`edit_envelope`] changes: `References/File` elements by their current `href`, every
/// `DiskSection/Disk` `format` through a mapping, the text of `VirtualSystemType` elements
/// through another, the hardware items of one deployment configuration kept (the others and
/// the `DeploymentOptionSection` removed), and `Property` values. Nothing else.
#[derive(Default)]
pub(crate) struct EnvelopeEdits<'a> {
    /// The files to repoint.
    files: Vec<FileEdit>,
    /// How `Disk` formats change, if they do.
    format: Option<FormatMap<'a>>,
    /// How `VirtualSystemType` texts change, if they do.
    system_type: Option<FormatMap<'a>>,
    /// The deployment configuration whose hardware items are kept, if one was chosen.
    configuration: Option<String>,
    /// New `ovf:value`s of properties, by full key (`class.key.instance`).
    properties: Vec<(String, String)>,
    /// What happens to each hardware item, if items are edited.
    items: Option<ItemMap<'a>>,
}

impl std::fmt::Debug for EnvelopeEdits<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvelopeEdits")
            .field("files", &self.files)
            .field("format", &self.format.as_ref().map(|_| "fn"))
            .field("system_type", &self.system_type.as_ref().map(|_| "fn"))
            .field("configuration", &self.configuration)
            .field("properties", &self.properties.len())
            .field("items", &self.items.as_ref().map(|_| "fn"))
            .finish()
    }
}

impl<'a> EnvelopeEdits<'a> {
    /// No edits yet.
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Points every `File` whose `href` is `href` (unescaped) at `new_href`, and its `size`, if
    /// it has one, at `new_size`. An edit that matches no `File` fails the whole edit.
    pub(crate) fn file(&mut self, href: &str, new_href: &str, new_size: u64) -> &mut Self {
        self.files.push(FileEdit {
            href: href.to_string(),
            new_href: new_href.to_string(),
            new_size,
            storage: None,
        });
        self
    }

    /// Like [`EnvelopeEdits::file`], for a file now stored as `storage` says: its `compression`
    /// and `chunkSize` attributes set (added with the `href`'s namespace prefix where absent)
    /// or removed.
    pub(crate) fn stored_file(
        &mut self,
        href: &str,
        new_href: &str,
        new_size: u64,
        storage: Storage,
    ) -> &mut Self {
        self.file(href, new_href, new_size);
        if let Some(last) = self.files.last_mut() {
            last.storage = Some(storage);
        }
        self
    }

    /// Like [`EnvelopeEdits::file`], for a file now stored whole and uncompressed (an imported
    /// disk): its `compression` and `chunkSize` attributes are removed too.
    pub(crate) fn plain_file(&mut self, href: &str, new_href: &str, new_size: u64) -> &mut Self {
        self.stored_file(href, new_href, new_size, Storage::default())
    }

    /// Rewrites each `Disk`'s `format` for which `map` returns a value.
    pub(crate) fn format(&mut self, map: impl Fn(&str) -> Option<String> + 'a) -> &mut Self {
        self.format = Some(Box::new(map));
        self
    }

    /// Rewrites the text of each `VirtualSystemType` element (unescaped, trimmed) for which
    /// `map` returns a value.
    pub(crate) fn system_type(&mut self, map: impl Fn(&str) -> Option<String> + 'a) -> &mut Self {
        self.system_type = Some(Box::new(map));
        self
    }

    /// Keeps the hardware items of the deployment configuration `id` only (those whose
    /// `ovf:configuration` does not list it are removed, the attribute of the others too) and
    /// removes the `DeploymentOptionSection`: the envelope then describes the VM as deployed.
    pub(crate) fn deployment(&mut self, id: &str) -> &mut Self {
        self.configuration = Some(id.to_string());
        self
    }

    /// Removes hardware items, or their `ResourceSubType`, as `map` says of each.
    pub(crate) fn items(&mut self, map: impl Fn(&ItemFacts) -> ItemEdit + 'a) -> &mut Self {
        self.items = Some(Box::new(map));
        self
    }

    /// Sets the `ovf:value` of the property whose full key (`class.key.instance`) is `key`.
    pub(crate) fn property_value(&mut self, key: &str, value: &str) -> &mut Self {
        self.properties.push((key.to_string(), value.to_string()));
        self
    }
}

/// A mapping for [`EnvelopeEdits::format`]: any VMDK format URI (`...vmdk.html#TYPE`, whatever
/// its host and path) becomes the same URI with `#create_type`; other formats are kept.
pub(crate) fn vmdk_format(create_type: &str) -> impl Fn(&str) -> Option<String> + '_ {
    move |format| {
        let (base, current) = format.rsplit_once("vmdk.html#")?;
        (current != create_type).then(|| format!("{base}vmdk.html#{create_type}"))
    }
}

/// What an element is to the editor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// The root `Envelope`.
    Envelope,
    /// `Envelope/References`.
    References,
    /// `Envelope/DiskSection` (or a 0.9 `Section` of type `DiskSection_Type`).
    DiskSection,
    /// A `VirtualHardwareSection`, whose children are the hardware items.
    Hardware,
    /// A `ProductSection`, whose `Property` children may be edited.
    Product,
    /// The `DeploymentOptionSection`.
    Deployment,
    /// Anything else.
    Other,
}

/// One attribute of a start tag: where its name and its value (between the quotes) lie in the
/// tag's content (the bytes between `<` and `>` or `/>`).
#[derive(Clone, Debug)]
struct Span {
    /// The qualified name's bytes.
    key: std::ops::Range<usize>,
    /// The raw value's bytes, quotes excluded.
    value: std::ops::Range<usize>,
}

/// Where each attribute of a tag's `content` lies, scanning from `from` (the end of the name):
/// `S? Name S? '=' S? quote value quote`, repeated. `None` if the content does not have that
/// shape (quick-xml has checked it before this is called, so it does).
fn attribute_spans(content: &[u8], from: usize) -> Option<Vec<Span>> {
    let is_space = |c: &u8| matches!(c, b' ' | b'\t' | b'\r' | b'\n');
    let skip = |i: usize| {
        i + content
            .get(i..)
            .map_or(0, |r| r.iter().take_while(|c| is_space(c)).count())
    };
    let mut spans = Vec::new();
    let mut i = skip(from);
    while i < content.len() {
        let key_len = content
            .get(i..)?
            .iter()
            .take_while(|c| !is_space(c) && **c != b'=')
            .count();
        let key = i..i + key_len;
        i = skip(key.end);
        if content.get(i) != Some(&b'=') {
            return None;
        }
        i = skip(i + 1);
        let quote = *content.get(i).filter(|q| matches!(q, b'"' | b'\''))?;
        let start = i + 1;
        let len = content.get(start..)?.iter().position(|c| *c == quote)?;
        spans.push(Span {
            key,
            value: start..start + len,
        });
        i = skip(start + len + 1);
    }
    Some(spans)
}

/// A start tag's attributes: qualified name, unescaped (normalised) value, and where each lies.
/// Namespace declarations are left out, as the envelope parser leaves them out.
fn attributes<'t>(
    tag: &'t BytesStart<'_>,
    at: u64,
) -> Result<Vec<(QName<'t>, String, Span)>, XmlError> {
    let err = |reason: String| XmlError::new(Some(at), reason);
    // quick-xml reads them (and refuses malformed and duplicate ones), then their places are
    // found, each checked against quick-xml's reading.
    let parsed = tag
        .attributes()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    let spans = attribute_spans(tag, tag.name().as_ref().len())
        .filter(|spans| spans.len() == parsed.len())
        .ok_or_else(|| err("attributes quick-xml read could not be located".into()))?;
    let mut out = Vec::new();
    for (attribute, span) in parsed.into_iter().zip(spans) {
        let key = attribute.key;
        if tag.get(span.key.clone()) != Some(key.as_ref()) {
            return Err(err("attributes quick-xml read could not be located".into()));
        }
        if key.as_ref() == b"xmlns" || key.prefix().is_some_and(|p| p.as_ref() == b"xmlns") {
            continue;
        }
        let value = attribute
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| {
                err(format!(
                    "attribute {}: {e}",
                    String::from_utf8_lossy(key.as_ref())
                ))
            })?
            .into_owned();
        out.push((key, value, span));
    }
    Ok(out)
}

/// The first attribute named `local` (whatever its prefix): its value and span.
fn find<'v>(attrs: &'v [(QName<'_>, String, Span)], local: &str) -> Option<(&'v str, &'v Span)> {
    attrs
        .iter()
        .find(|(k, _, _)| k.local_name().as_ref() == local.as_bytes())
        .map(|(_, v, s)| (v.as_str(), s))
}

/// The element `tag` is, given its parent's kind (`None` for the root).
fn kind_of(parent: Option<Kind>, tag: &BytesStart<'_>, at: u64) -> Result<Kind, XmlError> {
    let local = tag.local_name();
    let local = local.as_ref();
    Ok(match parent {
        None if local == b"Envelope" => Kind::Envelope,
        None => {
            return Err(XmlError::new(
                Some(at),
                format!(
                    "the root element is {}, not Envelope",
                    String::from_utf8_lossy(local)
                ),
            ))
        }
        Some(Kind::Envelope) if local == b"References" => Kind::References,
        Some(Kind::Envelope) if local == b"DiskSection" => Kind::DiskSection,
        Some(_) if local == b"VirtualHardwareSection" => Kind::Hardware,
        Some(_) if local == b"ProductSection" => Kind::Product,
        Some(_) if local == b"DeploymentOptionSection" => Kind::Deployment,
        Some(parent) if local == b"Section" => {
            let attrs = attributes(tag, at)?;
            let section = find(&attrs, "type").map_or("", |(t, _)| t);
            match section.rsplit(':').next().unwrap_or_default() {
                "DiskSection_Type" if parent == Kind::Envelope => Kind::DiskSection,
                "VirtualHardwareSection_Type" => Kind::Hardware,
                "ProductSection_Type" => Kind::Product,
                "DeploymentOptionSection_Type" => Kind::Deployment,
                _ => Kind::Other,
            }
        }
        Some(_) => Kind::Other,
    })
}

/// The new content of `tag` (between `<` and `>` or `/>`) with `changes` (a value's span, and
/// the new value unescaped, or `None` to remove the attribute with the space before it)
/// applied, each value escaped inside its own quotes, and `added` attributes (an insertion
/// point, a qualified name, a value unescaped) inserted; `None` when there is nothing to
/// change.
fn rewritten(
    tag: &BytesStart<'_>,
    changes: Vec<(&Span, Option<String>)>,
    added: Vec<(usize, String, String)>,
) -> Result<Option<String>, XmlError> {
    if changes.is_empty() && added.is_empty() {
        return Ok(None);
    }
    let content = std::str::from_utf8(tag).map_err(|e| XmlError::new(None, e.to_string()))?;
    let bytes = content.as_bytes();
    // Each change as the byte range it replaces and what goes there.
    let mut ranges: Vec<(usize, usize, String)> = Vec::new();
    for (span, value) in changes {
        match value {
            Some(v) => ranges.push((span.value.start, span.value.end, escape_attribute(&v)?)),
            None => {
                let mut from = span.key.start;
                while from > 0 && bytes.get(from - 1).is_some_and(u8::is_ascii_whitespace) {
                    from -= 1;
                }
                // The closing quote goes with the attribute.
                ranges.push((from, span.value.end + 1, String::new()));
            }
        }
    }
    for (at, name, value) in added {
        ranges.push((at, at, format!(" {name}=\"{}\"", escape_attribute(&value)?)));
    }
    ranges.sort_by_key(|r| (r.0, r.1));
    let mut out = String::with_capacity(content.len() + 64);
    let mut done = 0;
    for (from, to, value) in ranges {
        let kept = content
            .get(done..from)
            .ok_or_else(|| XmlError::new(None, "overlapping attribute edits"))?;
        out.push_str(kept);
        out.push_str(&value);
        done = to;
    }
    out.push_str(content.get(done..).unwrap_or_default());
    Ok(Some(out))
}

/// What [`tag_changes`] finds: attributes changed or removed (the value's span, its value now,
/// its new value or `None`), and attributes added (where, the qualified name, the value).
type TagChanges<'v> = (
    Vec<(&'v Span, &'v str, Option<String>)>,
    Vec<(usize, String, String)>,
);

/// The attribute changes `edits` make to the start tag `tag` (whose attributes are `attrs`),
/// given its parent's kind. Marks in `used` the file edits it applies.
fn tag_changes<'v>(
    parent: Option<Kind>,
    tag: &BytesStart<'_>,
    attrs: &'v [(QName<'_>, String, Span)],
    edits: &EnvelopeEdits<'_>,
    used: &mut [bool],
    product: Option<&ProductKey>,
) -> TagChanges<'v> {
    let mut changes = Vec::new();
    let mut added = Vec::new();
    match (parent, tag.local_name().as_ref()) {
        (Some(Kind::References), b"File") => {
            let Some((href, href_span)) = find(attrs, "href") else {
                return (changes, added);
            };
            let Some(edit) = edits.files.iter().find(|e| e.href == href) else {
                return (changes, added);
            };
            for (flag, e) in used.iter_mut().zip(&edits.files) {
                *flag |= e.href == href;
            }
            changes.push((href_span, href, Some(edit.new_href.clone())));
            if let Some((size, size_span)) = find(attrs, "size") {
                changes.push((size_span, size, Some(edit.new_size.to_string())));
            }
            if let Some(storage) = &edit.storage {
                // New attributes take the href's prefix (the OVF namespace's, as the file uses
                // it), right after its value's closing quote.
                let prefix = attrs
                    .iter()
                    .find(|(k, _, _)| k.local_name().as_ref() == b"href")
                    .and_then(|(k, _, _)| k.prefix())
                    .map(|p| format!("{}:", String::from_utf8_lossy(p.as_ref())))
                    .unwrap_or_default();
                let wanted = [
                    ("compression", storage.compression.clone()),
                    ("chunkSize", storage.chunk_size.map(|c| c.to_string())),
                ];
                for (name, value) in wanted {
                    match (find(attrs, name), value) {
                        (Some((old, span)), new) => changes.push((span, old, new)),
                        (None, Some(new)) => {
                            added.push((href_span.value.end + 1, format!("{prefix}{name}"), new));
                        }
                        (None, None) => {}
                    }
                }
            }
        }
        (Some(Kind::DiskSection), b"Disk") => {
            if let Some((map, (format, span))) = edits.format.as_ref().zip(find(attrs, "format")) {
                if let Some(new) = map(format) {
                    changes.push((span, format, Some(new)));
                }
            }
        }
        (Some(Kind::Hardware), _) if edits.configuration.is_some() => {
            if let Some((old, span)) = find(attrs, "configuration") {
                changes.push((span, old, None));
            }
        }
        (Some(Kind::Product), b"Property") => {
            let Some((key, key_span)) = find(attrs, "key") else {
                return (changes, added);
            };
            let (class, instance) = product.cloned().unwrap_or_default();
            let full = [class, Some(key.to_string()), instance]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(".");
            let Some((_, new)) = edits.properties.iter().rev().find(|(k, _)| *k == full) else {
                return (changes, added);
            };
            match find(attrs, "value") {
                Some((old, span)) => changes.push((span, old, Some(new.clone()))),
                None => {
                    let prefix = attrs
                        .iter()
                        .find(|(k, _, _)| k.local_name().as_ref() == b"key")
                        .and_then(|(k, _, _)| k.prefix())
                        .map(|p| format!("{}:", String::from_utf8_lossy(p.as_ref())))
                        .unwrap_or_default();
                    added.push((
                        key_span.value.end + 1,
                        format!("{prefix}value"),
                        new.clone(),
                    ));
                }
            }
        }
        _ => {}
    }
    (changes, added)
}

/// The facts of the item whose content (between its start and end tags) is `inner`: the text
/// of its `ResourceType`, `ResourceSubType` and `InstanceID` children, whatever their prefix.
fn item_facts(inner: &str) -> ItemFacts {
    let mut reader = Reader::from_str(inner);
    let mut facts = ItemFacts::default();
    let mut depth = 0usize;
    let mut current: Option<Vec<u8>> = None;
    let mut text = String::new();
    loop {
        match reader.read_event() {
            Ok(Event::Start(t)) => {
                depth += 1;
                if depth == 1 {
                    current = Some(t.local_name().as_ref().to_vec());
                    text.clear();
                }
            }
            Ok(Event::Text(t)) if depth == 1 => {
                text.push_str(&t.decode().unwrap_or_default());
            }
            Ok(Event::End(_)) => {
                if depth == 1 {
                    let value = text.trim().to_string();
                    match current.take().as_deref() {
                        Some(b"ResourceType") => facts.resource_type = value.parse().ok(),
                        Some(b"ResourceSubType") => facts.subtype = Some(value),
                        Some(b"InstanceID") => facts.instance_id = Some(value),
                        _ => {}
                    }
                }
                depth = depth.saturating_sub(1);
            }
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
    }
    facts
}

/// A `ProductSection`'s `ovf:class` and `ovf:instance`, which make a property's full key.
type ProductKey = (Option<String>, Option<String>);

/// Whether the element `tag` (a child of `parent`, attributes `attrs`) is removed whole: with a
/// deployment configuration chosen, the `DeploymentOptionSection`, and hardware items whose
/// `ovf:configuration` does not list it.
fn dropped(
    parent: Option<Kind>,
    kind: Kind,
    attrs: &[(QName<'_>, String, Span)],
    edits: &EnvelopeEdits<'_>,
) -> bool {
    let Some(chosen) = &edits.configuration else {
        return false;
    };
    match (parent, kind) {
        (_, Kind::Deployment) => true,
        (Some(Kind::Hardware), _) => find(attrs, "configuration")
            .is_some_and(|(list, _)| !list.split_whitespace().any(|c| c == chosen)),
        _ => false,
    }
}

/// Applies `edits` to the envelope `text`: the only bytes that change are the values of the
/// attributes edited, and only where the new value differs from the old one; everything else
/// is copied as it was. See the module doc for what is refused.
pub(crate) fn edit_envelope(text: &str, edits: &EnvelopeEdits<'_>) -> Result<String, XmlError> {
    if text.len() > MAX_ENVELOPE_SIZE {
        return Err(XmlError::new(None, "larger than 16 MiB"));
    }
    let mut reader = Reader::from_str(text);
    let mut writer = Writer::new(Vec::with_capacity(text.len() + 256));
    let mut used = vec![false; edits.files.len()];
    // The kinds of the elements open around the next event, and whether the root was read.
    let mut open: Vec<Kind> = Vec::new();
    let mut seen_root = false;
    // Inside a VirtualSystemType element (its text may be edited).
    let mut in_system_type = false;
    // The class and instance of each ProductSection open.
    let mut products: Vec<ProductKey> = Vec::new();
    // What happens to the hardware item open (its depth in `open`), when items are edited.
    let mut item: Option<(usize, ItemEdit)> = None;
    // Input bytes up to here are in the output already.
    let mut copied = 0usize;
    // quick-xml's positions leave out a byte-order mark.
    let skew = if text.starts_with('\u{feff}') { 3 } else { 0 };
    let position = |p: u64| usize::try_from(p).map_or(usize::MAX, |p| p.saturating_add(skew));
    loop {
        let start = reader.buffer_position();
        let event = reader
            .read_event()
            .map_err(|e| XmlError::new(Some(reader.error_position()), e.to_string()))?;
        let (tag, empty) = match event {
            Event::Eof if !open.is_empty() => {
                return Err(XmlError::new(
                    Some(start),
                    "the text ends inside an element",
                ))
            }
            Event::Eof if !seen_root => return Err(XmlError::new(None, "no Envelope element")),
            Event::Eof => break,
            Event::DocType(_) => {
                return Err(XmlError::new(
                    Some(start),
                    "a DTD (refused: no entity is ever expanded)",
                ))
            }
            Event::End(_) => {
                if open.pop() == Some(Kind::Product) {
                    products.pop();
                }
                if item.is_some_and(|(depth, _)| depth > open.len()) {
                    item = None;
                }
                in_system_type = false;
                continue;
            }
            Event::Text(t) if in_system_type => {
                let Some(map) = edits.system_type.as_ref() else {
                    continue;
                };
                // quick-xml hands entity references in separate events: this text holds none.
                let old = t
                    .decode()
                    .map_err(|e| XmlError::new(Some(start), e.to_string()))?;
                let Some(new) = map(old.trim()) else {
                    continue;
                };
                let (from, to) = (position(start), position(reader.buffer_position()));
                let before = text.get(copied..from).ok_or_else(|| {
                    XmlError::new(Some(start), "a text quick-xml read could not be located")
                })?;
                writer.get_mut().extend_from_slice(before.as_bytes());
                writer.get_mut().extend_from_slice(
                    escape_text(&new)
                        .map_err(|e| XmlError {
                            offset: Some(start),
                            ..e
                        })?
                        .as_bytes(),
                );
                copied = to;
                continue;
            }
            Event::Start(tag) => (tag, false),
            Event::Empty(tag) => (tag, true),
            _ => continue,
        };
        let parent = open.last().copied();
        let kind = kind_of(parent, &tag, start)?;
        seen_root = true;
        // Only the elements an edit may touch have their attributes read.
        let touched = match (parent, kind, tag.local_name().as_ref()) {
            (Some(Kind::References), _, b"File") => !edits.files.is_empty(),
            (Some(Kind::DiskSection), _, b"Disk") => edits.format.is_some(),
            (Some(Kind::Hardware), _, _) => edits.configuration.is_some(),
            (_, Kind::Product, _) => !edits.properties.is_empty(),
            (Some(Kind::Product), _, b"Property") => !edits.properties.is_empty(),
            _ => false,
        };
        let attrs = if touched {
            attributes(&tag, start)?
        } else {
            Vec::new()
        };
        // A hardware item: its facts read ahead when items are edited.
        let mut edit = ItemEdit::Keep;
        let local = tag.local_name();
        let is_item = local.as_ref().ends_with(b"Item") || local.as_ref() == b"ExtraConfig";
        if let (Some(Kind::Hardware), Some(map), true) = (parent, edits.items.as_ref(), is_item) {
            let inner = if empty {
                ""
            } else {
                // The content between `>` of the start tag and `<` of the end tag.
                let mut ahead = reader.clone();
                let span = ahead
                    .read_to_end(tag.name())
                    .map_err(|e| XmlError::new(Some(ahead.error_position()), e.to_string()))?;
                text.get(position(span.start)..position(span.end))
                    .unwrap_or_default()
            };
            let facts = ItemFacts {
                element: String::from_utf8_lossy(local.as_ref()).into_owned(),
                ..item_facts(inner)
            };
            edit = map(&facts);
            if !empty {
                item = Some((open.len() + 1, edit));
            }
        }
        // The ResourceSubType of an item whose subtype is removed.
        let subtype_removed = item.is_some_and(|(depth, e)| {
            e == ItemEdit::RemoveSubtype
                && depth == open.len()
                && tag.local_name().as_ref() == b"ResourceSubType"
        });
        if edit == ItemEdit::Remove || subtype_removed || dropped(parent, kind, &attrs, edits) {
            if edit == ItemEdit::Remove {
                item = None;
            }
            let from = position(start);
            let before = text.get(copied..from).ok_or_else(|| {
                XmlError::new(Some(start), "a tag quick-xml read could not be located")
            })?;
            writer.get_mut().extend_from_slice(before.as_bytes());
            if !empty {
                reader
                    .read_to_end(tag.name())
                    .map_err(|e| XmlError::new(Some(reader.error_position()), e.to_string()))?;
            }
            copied = position(reader.buffer_position());
            continue;
        }
        in_system_type = !empty && tag.local_name().as_ref() == b"VirtualSystemType";
        if !empty {
            open.push(kind);
            if kind == Kind::Product {
                let attr = |name: &str| find(&attrs, name).map(|(v, _)| v.to_string());
                products.push((attr("class"), attr("instance")));
            }
        }
        let (mut changes, added) =
            tag_changes(parent, &tag, &attrs, edits, &mut used, products.last());
        // A value that stays the same keeps its bytes (its quotes, entities and references).
        changes.retain(|(_, old, new)| new.as_deref() != Some(*old));
        let name_len = tag.name().as_ref().len();
        let changes = changes
            .into_iter()
            .map(|(span, _, new)| (span, new))
            .collect();
        let Some(content) = rewritten(&tag, changes, added).map_err(|e| XmlError {
            offset: Some(start),
            ..e
        })?
        else {
            continue;
        };
        let (from, to) = (position(start), position(reader.buffer_position()));
        let before = text
            .get(copied..from)
            .filter(|_| text.get(from..).is_some_and(|t| t.starts_with('<')))
            .ok_or_else(|| {
                XmlError::new(Some(start), "a tag quick-xml read could not be located")
            })?;
        let io = |e: std::io::Error| XmlError::new(Some(start), e.to_string());
        writer.get_mut().extend_from_slice(before.as_bytes());
        let tag = BytesStart::from_content(content, name_len);
        writer
            .write_event(if empty {
                Event::Empty(tag)
            } else {
                Event::Start(tag)
            })
            .map_err(io)?;
        copied = to;
    }
    writer
        .get_mut()
        .extend_from_slice(text.get(copied..).unwrap_or_default().as_bytes());
    if let Some(edit) = edits
        .files
        .iter()
        .zip(&used)
        .find(|(_, u)| !**u)
        .map(|(e, _)| e)
    {
        return Err(XmlError::new(
            None,
            format!("no References/File has href {:?}", edit.href),
        ));
    }
    String::from_utf8(writer.into_inner()).map_err(|e| XmlError::new(None, e.to_string()))
}

/// The OVF 1.x and 2.x envelope namespaces.
const OVF1: &str = "http://schemas.dmtf.org/ovf/envelope/1";
const OVF2: &str = "http://schemas.dmtf.org/ovf/envelope/2";
/// CIM's resource allocation settings (`rasd:`), and the Ethernet port and storage settings
/// OVF 2.x items use (`epasd:`, `sasd:`).
const RASD: &str =
    "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData";
const EPASD: &str =
    "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_EthernetPortAllocationSettingData";
const SASD: &str =
    "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_StorageAllocationSettingData";
/// The properties of CIM_ResourceAllocationSettingData, which an OVF 1.x `Item` may hold.
const RASD_PROPERTIES: [&str; 23] = [
    "Address",
    "AddressOnParent",
    "AllocationUnits",
    "AutomaticAllocation",
    "AutomaticDeallocation",
    "Caption",
    "Connection",
    "ConsumerVisibility",
    "Description",
    "ElementName",
    "HostResource",
    "InstanceID",
    "Limit",
    "MappingBehavior",
    "OtherResourceType",
    "Parent",
    "PoolID",
    "Reservation",
    "ResourceSubType",
    "ResourceType",
    "VirtualQuantity",
    "VirtualQuantityUnits",
    "Weight",
];
/// Sections DSP0243 2.x added, which a 1.x reader does not know.
const OVF2_ONLY: [&str; 7] = [
    "SharedDiskSection",
    "ScaleOutSection",
    "PlacementGroupSection",
    "PlacementSection",
    "EncryptionSection",
    "EnvironmentFilesSection",
    "BootDeviceSection",
];

/// An OVF 2.x envelope written as 1.x (DSP0243 1.1 against 2.0), where its content allows:
/// the OVF namespace declarations point at 1.x, and `EthernetPortItem` and `StorageItem`
/// become `Item`s whose `epasd:`/`sasd:` properties take the `rasd:` prefix. Every other byte
/// is copied as it was. `Err` says why it cannot be done: a section only 2.x has, an item
/// property RASD does not have, no `rasd:` prefix declared, a prefix bound to two namespaces,
/// or XML quick-xml cannot read.
pub(crate) fn downgrade_envelope(text: &str) -> Result<String, String> {
    // Every namespace declaration, by prefix ("" for the default namespace).
    let mut prefixes: Vec<(String, String)> = Vec::new();
    let mut reader = Reader::from_str(text);
    loop {
        match reader.read_event() {
            Ok(Event::Start(t) | Event::Empty(t)) => {
                for a in t.attributes() {
                    let a = a.map_err(|e| e.to_string())?;
                    let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
                    let Some(prefix) = key
                        .strip_prefix("xmlns")
                        .map(|p| p.trim_start_matches(':').to_string())
                    else {
                        continue;
                    };
                    let uri = String::from_utf8_lossy(&a.value).into_owned();
                    match prefixes.iter().find(|(p, _)| *p == prefix) {
                        Some((_, u)) if *u != uri => {
                            return Err(format!("the prefix {prefix:?} names two namespaces"))
                        }
                        Some(_) => {}
                        None => prefixes.push((prefix, uri)),
                    }
                }
            }
            Ok(Event::Eof) => break,
            Err(e) => return Err(e.to_string()),
            _ => {}
        }
    }
    let uri_of = |prefix: &str| {
        prefixes
            .iter()
            .find(|(p, _)| p == prefix)
            .map(|(_, u)| u.as_str())
    };
    let rasd = prefixes
        .iter()
        .find(|(p, u)| u == RASD && !p.is_empty())
        .map(|(p, _)| p.clone())
        .ok_or("no prefix is declared for the RASD namespace")?;

    let mut reader = Reader::from_str(text);
    let mut out = String::with_capacity(text.len() + 64);
    let mut copied = 0usize;
    // The new names of the elements open (None: kept), and the depth of the item converted.
    let mut names: Vec<Option<String>> = Vec::new();
    let mut item_depth: Option<usize> = None;
    // quick-xml's positions leave out a byte-order mark.
    let skew = if text.starts_with('\u{feff}') { 3 } else { 0 };
    let position = |p: u64| usize::try_from(p).map_or(usize::MAX, |p| p.saturating_add(skew));
    loop {
        let start = position(reader.buffer_position());
        let event = reader.read_event().map_err(|e| e.to_string())?;
        let end = position(reader.buffer_position());
        let (tag, empty) = match event {
            Event::Start(t) => (t, false),
            Event::Empty(t) => (t, true),
            Event::End(_) => {
                if let Some(Some(new)) = names.pop() {
                    out.push_str(text.get(copied..start).unwrap_or_default());
                    out.push_str(&format!("</{new}>"));
                    copied = end;
                }
                if item_depth.is_some_and(|d| d > names.len()) {
                    item_depth = None;
                }
                continue;
            }
            Event::Eof => break,
            _ => continue,
        };
        let qname = String::from_utf8_lossy(tag.name().as_ref()).into_owned();
        let (prefix, local) = qname.split_once(':').unwrap_or(("", qname.as_str()));
        if OVF2_ONLY.contains(&local) {
            return Err(format!("{local} has no OVF 1.x form"));
        }
        let mut new_name = None;
        if matches!(local, "EthernetPortItem" | "StorageItem") && item_depth.is_none() {
            new_name = Some(match prefix {
                "" => "Item".to_string(),
                p => format!("{p}:Item"),
            });
            if !empty {
                item_depth = Some(names.len() + 1);
            }
        } else if item_depth == Some(names.len()) {
            // VirtualBox names both schemas with an `.xsd` suffix.
            let uri = uri_of(prefix).unwrap_or_default();
            let uri = uri.strip_suffix(".xsd").unwrap_or(uri);
            if uri == EPASD || uri == SASD {
                if !RASD_PROPERTIES.contains(&local) {
                    return Err(format!("{qname} has no RASD form"));
                }
                new_name = Some(format!("{rasd}:{local}"));
            }
        }
        // Namespace declarations of OVF 2.x now name 1.x, and the root's `ovf:version` says 1.0.
        let content = std::str::from_utf8(&tag).map_err(|e| e.to_string())?;
        let name_len = tag.name().as_ref().len();
        let spans = attribute_spans(content.as_bytes(), name_len)
            .ok_or("attributes quick-xml read could not be located")?;
        let mut rest = String::new();
        let mut done = name_len;
        for span in spans {
            let key = content.get(span.key.clone()).unwrap_or_default();
            let value = content.get(span.value.clone()).unwrap_or_default();
            let new = if (key == "xmlns" || key.starts_with("xmlns:")) && value == OVF2 {
                OVF1
            } else if local == "Envelope" && key.ends_with(":version") && value.starts_with('2') {
                "1.0"
            } else {
                continue;
            };
            rest.push_str(content.get(done..span.value.start).unwrap_or_default());
            rest.push_str(new);
            done = span.value.end;
        }
        rest.push_str(content.get(done..).unwrap_or_default());
        if !empty {
            names.push(new_name.clone());
        }
        let unchanged = new_name.is_none() && rest == content.get(name_len..).unwrap_or_default();
        if unchanged {
            continue;
        }
        out.push_str(text.get(copied..start).unwrap_or_default());
        let name = new_name.unwrap_or(qname);
        out.push_str(&format!("<{name}{rest}{}>", if empty { "/" } else { "" }));
        copied = end;
    }
    out.push_str(text.get(copied..).unwrap_or_default());
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

    use std::path::Path;

    use super::*;
    use crate::package::envelope::tests::V1;
    use crate::package::envelope::Envelope;

    /// An envelope with what a text edit gets wrong: a comment before the root, a processing
    /// instruction, the OVF namespace under the prefix `o:`, single-quoted and entity-escaped
    /// values, a CDATA section and the format URI in text, a `vmw:` section with a `File` and a
    /// format of its own, an end tag with a space, a value spread over lines, non-ASCII text.
    const RICH: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<!-- exported by hand; <File o:href=\"a&amp;b.vmdk\"/> in a comment is not a reference -->\n\
<?vendor keep-me?>\n\
<Envelope xmlns=\"http://schemas.dmtf.org/ovf/envelope/1\" xmlns:o='http://schemas.dmtf.org/ovf/envelope/1' xmlns:vmw=\"http://www.vmware.com/schema/ovf\" vmw:buildId='build-1'>\r\n\
  <References>\n\
    <File o:href='a&amp;b.vmdk' o:id=\"file1\"   o:size='100' />\n\
    <File o:id=\"file2\" o:href=\"disk-é€.vmdk\" o:size=\"200\"/>\n\
    <File o:id=\"file3\"\n      o:href=\"x&lt;y &#233;.vmdk\"></File>\n\
  </References>\n\
  <!-- the disks -->\n\
  <DiskSection>\n\
    <Info>Virtual disk information, <![CDATA[<raw> & vmdk.html#streamOptimized]]> and vmdk.html#streamOptimized</Info >\n\
    <Disk o:capacity=\"1\" o:capacityAllocationUnits=\"byte * 2^20\" o:diskId=\"d1\" o:fileRef=\"file1\" o:format='http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized'/>\n\
    <Disk o:capacity=\"2\" o:capacityAllocationUnits=\"byte * 2^20\" o:diskId=\"d2\" o:fileRef=\"file2\"\n          o:format=\"http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized\"/>\n\
    <Disk o:capacity=\"3\" o:capacityAllocationUnits=\"byte * 2^20\" o:diskId=\"d3\" o:fileRef=\"file3\" o:format=\"http://example.com/qcow2\"/>\n\
  </DiskSection>\n\
  <vmw:StorageGroupSection o:required=\"false\"><Info>vmdk.html#streamOptimized &amp; more</Info><vmw:File o:href=\"a&amp;b.vmdk\" o:size=\"100\"/><vmw:Disk o:format=\"vmdk.html#streamOptimized\"/></vmw:StorageGroupSection>\n\
  <VirtualSystem o:id=\"vm &amp; co\">\n\
    <Info>A VM</Info>\n\
    <Name>vm &amp; co — ünïcödé</Name>\n\
  </VirtualSystem>\n\
</Envelope>\n";

    /// The names a text edit breaks on, each a plain file name a package may use.
    const NAMES: [&str; 8] = [
        "a&b.vmdk",
        "x<y.vmdk",
        "q\"uote.vmdk",
        "q'uote.vmdk",
        "with space.vmdk",
        "disk-é€.vmdk",
        "tab\there.vmdk",
        "all &<>\"' é.vmdk",
    ];

    fn parse(text: &str) -> Envelope {
        Envelope::parse(text, Path::new("t.ovf")).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    #[test]
    fn no_edits_give_back_the_same_bytes() {
        for text in [V1, RICH] {
            assert_eq!(edit_envelope(text, &EnvelopeEdits::new()).unwrap(), text);
            // A mapping that changes nothing, and files repointed at themselves.
            let mut edits = EnvelopeEdits::new();
            edits.format(vmdk_format("streamOptimized"));
            for f in parse(text).files {
                edits.file(&f.href, &f.href, f.size.unwrap_or(0));
            }
            assert_eq!(edit_envelope(text, &edits).unwrap(), text);
        }
        // A byte-order mark and a document without a declaration.
        let bom = format!("\u{feff}{V1}");
        assert_eq!(edit_envelope(&bom, &EnvelopeEdits::new()).unwrap(), bom);
        // With a byte-order mark, edits land where they belong.
        let mut edits = EnvelopeEdits::new();
        edits.file("vm-disk1.vmdk", "other.vmdk", 7);
        let plain = edit_envelope(V1, &edits).unwrap();
        assert_eq!(
            edit_envelope(&bom, &edits).unwrap(),
            format!("\u{feff}{plain}")
        );
        let v2 = bom.replace("envelope/1", "envelope/2");
        assert_eq!(
            downgrade_envelope(&v2).unwrap(),
            format!(
                "\u{feff}{}",
                downgrade_envelope(&V1.replace("envelope/1", "envelope/2")).unwrap()
            )
        );
        let bare = "<Envelope xmlns='urn:x'/>";
        assert_eq!(edit_envelope(bare, &EnvelopeEdits::new()).unwrap(), bare);
    }

    #[test]
    fn the_rich_envelope_parses_as_written() {
        let env = parse(RICH);
        let hrefs: Vec<_> = env.files.iter().map(|f| f.href.as_str()).collect();
        assert_eq!(hrefs, ["a&b.vmdk", "disk-é€.vmdk", "x<y é.vmdk"]);
        assert_eq!(env.disks.len(), 3);
        assert_eq!(env.systems[0].id, "vm & co");
    }

    #[test]
    fn edits_change_only_the_values_they_name() {
        let mut edits = EnvelopeEdits::new();
        edits
            .file("a&b.vmdk", "q\"uote's.vmdk", 4096)
            .file("x<y é.vmdk", "plain.vmdk", 7)
            .format(vmdk_format("monolithicFlat"));
        let out = edit_envelope(RICH, &edits).unwrap();
        let flat = "http://www.vmware.com/interfaces/specifications/vmdk.html#monolithicFlat";
        let stream = "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized";
        let expected = RICH
            .replacen(
                "<File o:href='a&amp;b.vmdk' o:id=\"file1\"   o:size='100' />",
                "<File o:href='q&quot;uote&apos;s.vmdk' o:id=\"file1\"   o:size='4096' />",
                1,
            )
            // No size to rewrite on file3: none is added.
            .replacen("o:href=\"x&lt;y &#233;.vmdk\"", "o:href=\"plain.vmdk\"", 1)
            .replacen(
                &format!("o:format='{stream}'"),
                &format!("o:format='{flat}'"),
                1,
            )
            .replacen(
                &format!("o:format=\"{stream}\""),
                &format!("o:format=\"{flat}\""),
                1,
            );
        assert_ne!(expected, RICH);
        assert_eq!(out, expected);
        let env = parse(&out);
        let files: Vec<_> = env
            .files
            .iter()
            .map(|f| (f.href.as_str(), f.size))
            .collect();
        assert_eq!(
            files,
            [
                ("q\"uote's.vmdk", Some(4096)),
                ("disk-é€.vmdk", Some(200)),
                ("plain.vmdk", None)
            ]
        );
        let formats: Vec<_> = env
            .disks
            .iter()
            .map(|d| d.format.as_deref().unwrap())
            .collect();
        assert_eq!(formats, [flat, flat, "http://example.com/qcow2"]);
    }

    #[test]
    fn hostile_names_round_trip_through_edits() {
        let size = 68608;
        for name in NAMES {
            let mut edits = EnvelopeEdits::new();
            edits.file("vm-disk1.vmdk", name, 4242);
            let out = edit_envelope(V1, &edits).unwrap();
            let env = parse(&out);
            assert_eq!(env.files[0].href, name, "{out}");
            assert_eq!(env.files[0].size, Some(4242));
            assert!(!out.contains(&format!("ovf:size=\"{size}\"")));
            // And back, matched by the unescaped value.
            let mut back = EnvelopeEdits::new();
            back.file(name, "vm-disk1.vmdk", size);
            assert_eq!(edit_envelope(&out, &back).unwrap(), V1, "{name}");
        }
    }

    #[test]
    fn edits_refuse_what_they_cannot_do() {
        let edit = |text: &str, href: &str| {
            let mut edits = EnvelopeEdits::new();
            edits.file(href, "new.vmdk", 1);
            edit_envelope(text, &edits).map_err(|e| e.to_string())
        };
        let err = edit(V1, "other.vmdk").unwrap_err();
        assert!(
            err.contains("no References/File has href \"other.vmdk\""),
            "{err}"
        );
        // The File in the vmw: section and the one in the comment are not references.
        let no_ref = RICH.replace("<File o:href='a&amp;b.vmdk'", "<File o:href='z.vmdk'");
        assert!(edit(&no_ref, "a&b.vmdk").is_err());
        let dtd = format!("<!DOCTYPE Envelope [<!ENTITY a \"x\">]>{}", &V1[38..]);
        assert!(edit(&dtd, "vm-disk1.vmdk").unwrap_err().contains("DTD"));
        let mismatched = V1.replace("</References>", "</Reference>");
        assert!(edit(&mismatched, "vm-disk1.vmdk").is_err());
        let unclosed = V1.replace("</Envelope>", "");
        assert!(edit(&unclosed, "vm-disk1.vmdk")
            .unwrap_err()
            .contains("ends inside an element"));
        assert!(edit("<!-- nothing -->", "a")
            .unwrap_err()
            .contains("no Envelope"));
        let duplicate = V1.replace("ovf:id=\"file1\"", "ovf:id=\"file1\" ovf:id=\"file2\"");
        assert!(edit(&duplicate, "vm-disk1.vmdk").is_err());
        let unquoted = V1.replace("ovf:id=\"file1\"", "ovf:id=file1");
        assert!(edit(&unquoted, "vm-disk1.vmdk").is_err());
        let root = "<Other><References><File href='a'/></References></Other>";
        assert!(edit(root, "a").unwrap_err().contains("not Envelope"));
        let mut control = EnvelopeEdits::new();
        control.file("vm-disk1.vmdk", "bell\u{7}.vmdk", 1);
        assert!(edit_envelope(V1, &control)
            .unwrap_err()
            .to_string()
            .contains("XML 1.0 cannot carry"));
        let huge = format!("{V1}{}", " ".repeat(MAX_ENVELOPE_SIZE));
        assert!(edit(&huge, "vm-disk1.vmdk").is_err());
    }

    #[test]
    fn a_0_9_disk_section_is_edited_too() {
        let v09 = "<Envelope xmlns='http://www.vmware.com/schema/ovf/1/envelope' xmlns:xsi='http://www.w3.org/2001/XMLSchema-instance'><References><File ovf:href='d.vmdk' ovf:size='1' xmlns:ovf='http://www.vmware.com/schema/ovf/1/envelope'/></References><Section xsi:type='ovf:DiskSection_Type'><Disk format='http://www.vmware.com/specifications/vmdk.html#sparse'/></Section><Section xsi:type='ovf:NetworkSection_Type'><Disk format='vmdk.html#sparse'/></Section></Envelope>";
        let mut edits = EnvelopeEdits::new();
        edits.format(vmdk_format("streamOptimized"));
        assert_eq!(
            edit_envelope(v09, &edits).unwrap(),
            v09.replacen("vmdk.html#sparse", "vmdk.html#streamOptimized", 1)
        );
    }

    #[test]
    fn a_deployment_keeps_its_items_and_sets_property_values() {
        let text = r#"<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <DeploymentOptionSection><Info>x</Info><Configuration ovf:id="a"/><Configuration ovf:id="b"/></DeploymentOptionSection>
  <VirtualSystem ovf:id="vm">
    <ProductSection><Info>p</Info><Property ovf:key="k" ovf:type="string"/><Property ovf:key="v" ovf:type="string" ovf:value="old"/></ProductSection>
    <ProductSection ovf:class="c"><Info>p</Info><Property ovf:key="k" ovf:type="string"/></ProductSection>
    <VirtualHardwareSection><Info>hw</Info>
      <Item ovf:configuration="a"><x>1</x></Item>
      <Item ovf:configuration="b  a"><x>2</x></Item>
      <Item ovf:configuration="b"/>
      <Item><x>3</x></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>"#;
        let mut edits = EnvelopeEdits::new();
        edits
            .deployment("b")
            .property_value("k", "new & <1>")
            .property_value("v", "two")
            .property_value("c.k", "three");
        let out = edit_envelope(text, &edits).unwrap();
        assert_eq!(
            out,
            r#"<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  
  <VirtualSystem ovf:id="vm">
    <ProductSection><Info>p</Info><Property ovf:key="k" ovf:value="new &amp; &lt;1&gt;" ovf:type="string"/><Property ovf:key="v" ovf:type="string" ovf:value="two"/></ProductSection>
    <ProductSection ovf:class="c"><Info>p</Info><Property ovf:key="k" ovf:value="three" ovf:type="string"/></ProductSection>
    <VirtualHardwareSection><Info>hw</Info>
      
      <Item><x>2</x></Item>
      <Item/>
      <Item><x>3</x></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>"#
        );
        // Without a deployment, items stay; an unknown key changes nothing.
        let mut edits = EnvelopeEdits::new();
        edits.property_value("nosuch", "x");
        assert_eq!(edit_envelope(text, &edits).unwrap(), text);
    }

    #[test]
    fn items_are_removed_or_lose_their_subtype_as_the_map_says() {
        let text = r#"<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="r">
  <VirtualSystem><VirtualHardwareSection><Info>hw</Info>
    <Item><rasd:Address>0</rasd:Address><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceSubType>PIIX4</rasd:ResourceSubType><rasd:ResourceType>5</rasd:ResourceType></Item>
    <Item><rasd:InstanceID> 5 </rasd:InstanceID><rasd:ResourceSubType>ensoniq1371</rasd:ResourceSubType><rasd:ResourceType>35</rasd:ResourceType></Item>
    <Item><rasd:InstanceID>6</rasd:InstanceID><rasd:ResourceSubType>lsilogic</rasd:ResourceSubType><rasd:ResourceType>6</rasd:ResourceType></Item>
  </VirtualHardwareSection></VirtualSystem>
</Envelope>"#;
        let seen = std::cell::RefCell::new(Vec::new());
        let mut edits = EnvelopeEdits::new();
        edits.items(|f| {
            seen.borrow_mut().push(f.clone());
            match f.resource_type {
                Some(5) => ItemEdit::RemoveSubtype,
                Some(35) => ItemEdit::Remove,
                _ => ItemEdit::Keep,
            }
        });
        let out = edit_envelope(text, &edits).unwrap();
        assert_eq!(
            out,
            r#"<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="r">
  <VirtualSystem><VirtualHardwareSection><Info>hw</Info>
    <Item><rasd:Address>0</rasd:Address><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceType>5</rasd:ResourceType></Item>
    
    <Item><rasd:InstanceID>6</rasd:InstanceID><rasd:ResourceSubType>lsilogic</rasd:ResourceSubType><rasd:ResourceType>6</rasd:ResourceType></Item>
  </VirtualHardwareSection></VirtualSystem>
</Envelope>"#
        );
        let seen = seen.borrow();
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert_eq!(
            seen[1],
            ItemFacts {
                element: "Item".into(),
                resource_type: Some(35),
                subtype: Some("ensoniq1371".into()),
                instance_id: Some("5".into()),
            }
        );
    }

    #[test]
    fn an_ovf_2_envelope_is_written_as_1_x_where_it_can_be() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/envelopes/cot/ubuntu.2.0.ovf"),
        )
        .unwrap();
        let before = parse(&text);
        assert_eq!(before.version, "2.x");
        let out = downgrade_envelope(&text).unwrap();
        for gone in [
            "envelope/2",
            "StorageItem",
            "EthernetPortItem",
            "sasd:",
            "epasd:Caption",
        ] {
            assert!(
                !out.replace("xmlns:sasd", "")
                    .replace("xmlns:epasd", "")
                    .contains(gone),
                "{gone}: {out}"
            );
        }
        assert!(out.contains("ovf:version=\"1.0\""));
        assert!(out.contains("<Item>\n        <rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>\n        <rasd:Caption>Ethernet adapter on 'NAT'</rasd:Caption>"), "{out}");
        // The same VM, as our parser reads it: only the version differs.
        let after = parse(&out);
        assert_eq!(after.version, "1.x");
        let (b, a) = (&before.systems[0].hardware, &after.systems[0].hardware);
        assert_eq!(a.devices.len(), b.devices.len());
        for (x, y) in a.devices.iter().zip(&b.devices) {
            assert_eq!(
                (x.kind, &x.instance_id, &x.host_resource, &x.connection),
                (y.kind, &y.instance_id, &y.host_resource, &y.connection)
            );
        }
        // Byte for byte the input but for the names and the namespace values.
        let mut expected = text
            .replace("envelope/2", "envelope/1")
            .replace("ovf:version=\"2.0\"", "ovf:version=\"1.0\"");
        for (from, to) in [
            ("<sasd:", "<rasd:"),
            ("</sasd:", "</rasd:"),
            ("<epasd:", "<rasd:"),
            ("</epasd:", "</rasd:"),
            ("StorageItem>", "Item>"),
            ("EthernetPortItem>", "Item>"),
        ] {
            expected = expected.replace(from, to);
        }
        assert_eq!(out, expected);
        // What 1.x cannot say.
        for (edit, why) in [
            ("</DiskSection>", "has no OVF 1.x form"),
            ("<sasd:Caption>disk1", "has no RASD form"),
        ] {
            let bad = match why {
                "has no OVF 1.x form" => text.replace(
                    edit,
                    "</DiskSection><SharedDiskSection><Info>s</Info></SharedDiskSection>",
                ),
                _ => text.replace(edit, "<sasd:Access>1</sasd:Access><sasd:Caption>disk1"),
            };
            let err = downgrade_envelope(&bad).unwrap_err();
            assert!(err.contains(why), "{err}");
        }
        let no_rasd = text.replace("CIM_ResourceAllocationSettingData\"", "CIM_Other\"");
        assert!(downgrade_envelope(&no_rasd).unwrap_err().contains("RASD"));
    }

    #[test]
    fn vmdk_format_keeps_other_formats() {
        let to = vmdk_format("monolithicFlat");
        assert_eq!(
            to("http://www.vmware.com/interfaces/specifications/vmdk.html#sparse").as_deref(),
            Some("http://www.vmware.com/interfaces/specifications/vmdk.html#monolithicFlat")
        );
        assert_eq!(to("http://x/vmdk.html#monolithicFlat"), None);
        assert_eq!(to("http://example.com/qcow2"), None);
    }

    /// What `envelope_for_disks` wrote with `format!` before it was written through quick-xml:
    /// for plain names the output is the same, byte for byte.
    const PLAIN: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData">
  <References>
    <File ovf:href="vm-disk1.vmdk" ovf:id="file0" ovf:size="100"/>
    <File ovf:href="vm-disk2.vmdk" ovf:id="file1" ovf:size="200"/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:capacity="1048576" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk0" ovf:fileRef="file0" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
    <Disk ovf:capacity="2097152" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <VirtualSystem ovf:id="vm">
    <Info>A virtual machine made of the exported disks</Info>
    <Name>vm</Name>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <Item>
        <rasd:ElementName>SCSI controller 0</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceSubType>lsilogic</rasd:ResourceSubType>
        <rasd:ResourceType>6</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>0</rasd:AddressOnParent>
        <rasd:ElementName>Hard disk 1</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/vmdisk0</rasd:HostResource>
        <rasd:InstanceID>2</rasd:InstanceID>
        <rasd:Parent>1</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
      <Item>
        <rasd:AddressOnParent>1</rasd:AddressOnParent>
        <rasd:ElementName>Hard disk 2</rasd:ElementName>
        <rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource>
        <rasd:InstanceID>3</rasd:InstanceID>
        <rasd:Parent>1</rasd:Parent>
        <rasd:ResourceType>17</rasd:ResourceType>
      </Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"#;

    #[test]
    fn envelope_for_plain_disks_is_unchanged() {
        let disks = [
            ("vm-disk1.vmdk".to_string(), 100, 1 << 20),
            ("vm-disk2.vmdk".to_string(), 200, 2 << 20),
        ];
        assert_eq!(envelope_for_disks("vm", &disks).unwrap(), PLAIN);
    }

    #[test]
    fn envelope_for_disks_escapes_every_name() {
        for name in NAMES.iter().map(|n| n.trim_end_matches(".vmdk")) {
            let disks: Vec<_> = NAMES
                .iter()
                .enumerate()
                .map(|(i, href)| (href.to_string(), 100 + i as u64, (i as u64 + 1) << 20))
                .collect();
            let text = envelope_for_disks(name, &disks).unwrap();
            let env = parse(&text);
            let hrefs: Vec<_> = env.files.iter().map(|f| f.href.as_str()).collect();
            assert_eq!(hrefs, NAMES);
            assert_eq!(env.files[2].size, Some(102));
            assert_eq!(env.disks[3].capacity_bytes, Some(4 << 20));
            assert_eq!(env.file_of(&env.disks[5]).unwrap().href, NAMES[5]);
            let system = &env.systems[0];
            assert_eq!(
                (system.id.as_str(), system.name.as_deref()),
                (name, Some(name))
            );
            assert_eq!(system.controllers, ["SCSI (lsilogic)"]);
            assert_eq!(system.drives.len(), NAMES.len());
            assert!(system
                .drives
                .iter()
                .all(|d| d.controller.as_deref() == Some("SCSI (lsilogic)")));
            // And the editor reads it back unchanged.
            assert_eq!(edit_envelope(&text, &EnvelopeEdits::new()).unwrap(), text);
        }
        // A name with a carriage return keeps it (a character reference), a control character
        // is refused.
        let text = envelope_for_disks("a\rb", &[]).unwrap();
        assert_eq!(parse(&text).systems[0].name.as_deref(), Some("a\rb"));
        assert!(envelope_for_disks("a\u{1}b", &[]).is_err());
        assert!(envelope_for_disks("vm", &[("\u{fffe}".into(), 1, 1)]).is_err());
    }
}
