//! Editing an envelope in place: [`edit_envelope`].
//!
//! The editor reads the envelope with quick-xml's `Reader` and changes only what it is asked
//! to: the `href` and `size` of `References/File` elements and the `format` of
//! `DiskSection/Disk` elements (DSP0243 §7.1, §9.1; the 0.9 `Section xsi:type=
//! "ovf:DiskSection_Type"` too). Elements and attributes are matched by local name whatever
//! their namespace prefix, and values are compared unescaped, the way
//! [`crate::Envelope::parse`] reads them. Every byte it does not change is copied from
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

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::QName;
use quick_xml::{Reader, Writer, XmlVersion};

use super::escape::{escape_attribute, escape_text, XmlError};
use crate::xml::MAX_ENVELOPE_SIZE;

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
pub struct Storage {
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
pub struct ItemFacts {
    /// The element's local name: `Item`, `StorageItem`, `EthernetPortItem`, or `ExtraConfig`.
    pub element: String,
    /// `ResourceType`.
    pub resource_type: Option<u32>,
    /// `ResourceSubType`, trimmed.
    pub subtype: Option<String>,
    /// `InstanceID`, trimmed.
    pub instance_id: Option<String>,
    /// Each `HostResource`, trimmed (`ovf:/disk/vmdisk1`, `ovf:/file/file2`).
    pub host_resources: Vec<String>,
}

/// What happens to a hardware item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ItemEdit {
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
pub struct EnvelopeEdits<'a> {
    /// The files to repoint.
    files: Vec<FileEdit>,
    /// The `href`s of the `File`s to remove.
    removed_files: Vec<String>,
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
            .field("removed_files", &self.removed_files)
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
    pub fn new() -> Self {
        Self::default()
    }

    /// Points every `File` whose `href` is `href` (unescaped) at `new_href`, and its `size`, if
    /// it has one, at `new_size`. An edit that matches no `File` fails the whole edit.
    pub fn file(&mut self, href: &str, new_href: &str, new_size: u64) -> &mut Self {
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
    pub fn stored_file(
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
    pub fn plain_file(&mut self, href: &str, new_href: &str, new_size: u64) -> &mut Self {
        self.stored_file(href, new_href, new_size, Storage::default())
    }

    /// Removes every `References/File` whose `href` is `href` (unescaped); the items naming it
    /// are the caller's to remove ([`EnvelopeEdits::items`], [`ItemFacts::host_resources`]).
    pub fn remove_file(&mut self, href: &str) -> &mut Self {
        self.removed_files.push(href.to_string());
        self
    }

    /// Rewrites each `Disk`'s `format` for which `map` returns a value.
    pub fn format(&mut self, map: impl Fn(&str) -> Option<String> + 'a) -> &mut Self {
        self.format = Some(Box::new(map));
        self
    }

    /// Rewrites the text of each `VirtualSystemType` element (unescaped, trimmed) for which
    /// `map` returns a value.
    pub fn system_type(&mut self, map: impl Fn(&str) -> Option<String> + 'a) -> &mut Self {
        self.system_type = Some(Box::new(map));
        self
    }

    /// Keeps the hardware items of the deployment configuration `id` only (those whose
    /// `ovf:configuration` does not list it are removed, the attribute of the others too) and
    /// removes the `DeploymentOptionSection`: the envelope then describes the VM as deployed.
    pub fn deployment(&mut self, id: &str) -> &mut Self {
        self.configuration = Some(id.to_string());
        self
    }

    /// Removes hardware items, or their `ResourceSubType`, as `map` says of each.
    pub fn items(&mut self, map: impl Fn(&ItemFacts) -> ItemEdit + 'a) -> &mut Self {
        self.items = Some(Box::new(map));
        self
    }

    /// Sets the `ovf:value` of the property whose full key (`class.key.instance`) is `key`.
    pub fn property_value(&mut self, key: &str, value: &str) -> &mut Self {
        self.properties.push((key.to_string(), value.to_string()));
        self
    }
}

/// A mapping for [`EnvelopeEdits::format`]: any VMDK format URI (`...vmdk.html#TYPE`, whatever
/// its host and path) becomes the same URI with `#create_type`; other formats are kept.
pub fn vmdk_format(create_type: &str) -> impl Fn(&str) -> Option<String> + '_ {
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
pub(crate) struct Span {
    /// The qualified name's bytes.
    pub(crate) key: std::ops::Range<usize>,
    /// The raw value's bytes, quotes excluded.
    pub(crate) value: std::ops::Range<usize>,
}

/// Where each attribute of a tag's `content` lies, scanning from `from` (the end of the name):
/// `S? Name S? '=' S? quote value quote`, repeated. `None` if the content does not have that
/// shape (quick-xml has checked it before this is called, so it does).
pub(crate) fn attribute_spans(content: &[u8], from: usize) -> Option<Vec<Span>> {
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
                        Some(b"HostResource") => facts.host_resources.push(value),
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
    if parent == Some(Kind::References)
        && find(attrs, "href").is_some_and(|(h, _)| edits.removed_files.iter().any(|r| *r == h))
    {
        return true;
    }
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
pub fn edit_envelope(text: &str, edits: &EnvelopeEdits<'_>) -> Result<String, XmlError> {
    if text.len() > MAX_ENVELOPE_SIZE {
        return Err(XmlError::new(None, "larger than 16 MiB"));
    }
    Editor {
        text,
        edits,
        reader: Reader::from_str(text),
        writer: Writer::new(Vec::with_capacity(text.len() + 256)),
        used: vec![false; edits.files.len()],
        open: Vec::new(),
        seen_root: false,
        in_system_type: false,
        products: Vec::new(),
        item: None,
        copied: 0,
        // quick-xml's positions leave out a byte-order mark.
        skew: if text.starts_with('\u{feff}') { 3 } else { 0 },
    }
    .run()
}

/// The state of one [`edit_envelope`] pass over the text.
struct Editor<'t, 'e, 'a> {
    text: &'t str,
    edits: &'e EnvelopeEdits<'a>,
    reader: Reader<&'t [u8]>,
    writer: Writer<Vec<u8>>,
    /// Which file edits matched a `File`.
    used: Vec<bool>,
    /// The kinds of the elements open around the next event.
    open: Vec<Kind>,
    /// Whether the root was read.
    seen_root: bool,
    /// Inside a VirtualSystemType element (its text may be edited).
    in_system_type: bool,
    /// The class and instance of each ProductSection open.
    products: Vec<ProductKey>,
    /// What happens to the hardware item open (its depth in `open`), when items are edited.
    item: Option<(usize, ItemEdit)>,
    /// Input bytes up to here are in the output already.
    copied: usize,
    /// Bytes of a byte-order mark, which quick-xml's positions leave out.
    skew: usize,
}

impl<'t> Editor<'t, '_, '_> {
    /// Where quick-xml's position `p` is in the text.
    fn position(&self, p: u64) -> usize {
        usize::try_from(p).map_or(usize::MAX, |p| p.saturating_add(self.skew))
    }

    /// Copies the input from where copying stopped up to `from` (the start of what quick-xml
    /// read at `start`, a tag when `tag`).
    fn copy_to(&mut self, from: usize, start: u64, tag: bool) -> Result<(), XmlError> {
        let before = self
            .text
            .get(self.copied..from)
            .filter(|_| !tag || self.text.get(from..).is_some_and(|t| t.starts_with('<')))
            .ok_or_else(|| {
                let what = if tag { "a tag" } else { "a text" };
                XmlError::new(
                    Some(start),
                    format!("{what} quick-xml read could not be located"),
                )
            })?;
        self.writer.get_mut().extend_from_slice(before.as_bytes());
        Ok(())
    }

    /// The pass: every event read, the edited ones rewritten, the text between copied.
    fn run(mut self) -> Result<String, XmlError> {
        loop {
            let start = self.reader.buffer_position();
            let event = self
                .reader
                .read_event()
                .map_err(|e| XmlError::new(Some(self.reader.error_position()), e.to_string()))?;
            let (tag, empty) = match event {
                Event::Eof if !self.open.is_empty() => {
                    return Err(XmlError::new(
                        Some(start),
                        "the text ends inside an element",
                    ))
                }
                Event::Eof if !self.seen_root => {
                    return Err(XmlError::new(None, "no Envelope element"))
                }
                Event::Eof => break,
                Event::DocType(_) => {
                    return Err(XmlError::new(
                        Some(start),
                        "a DTD (refused: no entity is ever expanded)",
                    ))
                }
                Event::End(_) => {
                    if self.open.pop() == Some(Kind::Product) {
                        self.products.pop();
                    }
                    if self.item.is_some_and(|(depth, _)| depth > self.open.len()) {
                        self.item = None;
                    }
                    self.in_system_type = false;
                    continue;
                }
                Event::Text(t) if self.in_system_type && self.edits.system_type.is_some() => {
                    // quick-xml hands entity references in separate events: this text holds
                    // none.
                    let old = t
                        .decode()
                        .map_err(|e| XmlError::new(Some(start), e.to_string()))?;
                    self.system_type_text(&old, start)?;
                    continue;
                }
                Event::Start(tag) => (tag, false),
                Event::Empty(tag) => (tag, true),
                _ => continue,
            };
            self.element(&tag, empty, start)?;
        }
        self.finish()
    }

    /// A `VirtualSystemType`'s text `old`, read at `start`: replaced when the mapping says.
    fn system_type_text(&mut self, old: &str, start: u64) -> Result<(), XmlError> {
        let Some(new) = self
            .edits
            .system_type
            .as_ref()
            .and_then(|map| map(old.trim()))
        else {
            return Ok(());
        };
        let (from, to) = (
            self.position(start),
            self.position(self.reader.buffer_position()),
        );
        self.copy_to(from, start, false)?;
        let escaped = escape_text(&new).map_err(|e| XmlError {
            offset: Some(start),
            ..e
        })?;
        self.writer.get_mut().extend_from_slice(escaped.as_bytes());
        self.copied = to;
        Ok(())
    }

    /// A start or empty tag read at `start`: dropped with its content, rewritten, or left to
    /// be copied.
    fn element(&mut self, tag: &BytesStart<'t>, empty: bool, start: u64) -> Result<(), XmlError> {
        let parent = self.open.last().copied();
        let kind = kind_of(parent, tag, start)?;
        self.seen_root = true;
        let edits = self.edits;
        // Only the elements an edit may touch have their attributes read.
        let touched = match (parent, kind, tag.local_name().as_ref()) {
            (Some(Kind::References), _, b"File") => {
                !edits.files.is_empty() || !edits.removed_files.is_empty()
            }
            (Some(Kind::DiskSection), _, b"Disk") => edits.format.is_some(),
            (Some(Kind::Hardware), _, _) => edits.configuration.is_some(),
            (_, Kind::Product, _) => !edits.properties.is_empty(),
            (Some(Kind::Product), _, b"Property") => !edits.properties.is_empty(),
            _ => false,
        };
        let attrs = if touched {
            attributes(tag, start)?
        } else {
            Vec::new()
        };
        let edit = self.item_edit(tag, empty, parent)?;
        // The ResourceSubType of an item whose subtype is removed.
        let subtype_removed = self.item.is_some_and(|(depth, e)| {
            e == ItemEdit::RemoveSubtype
                && depth == self.open.len()
                && tag.local_name().as_ref() == b"ResourceSubType"
        });
        if edit == ItemEdit::Remove || subtype_removed || dropped(parent, kind, &attrs, edits) {
            if edit == ItemEdit::Remove {
                self.item = None;
            }
            return self.skip(tag, empty, start);
        }
        self.in_system_type = !empty && tag.local_name().as_ref() == b"VirtualSystemType";
        if !empty {
            self.open.push(kind);
            if kind == Kind::Product {
                let attr = |name: &str| find(&attrs, name).map(|(v, _)| v.to_string());
                self.products.push((attr("class"), attr("instance")));
            }
        }
        let (mut changes, added) = tag_changes(
            parent,
            tag,
            &attrs,
            edits,
            &mut self.used,
            self.products.last(),
        );
        // A value that stays the same keeps its bytes (its quotes, entities and references).
        changes.retain(|(_, old, new)| new.as_deref() != Some(*old));
        let changes = changes
            .into_iter()
            .map(|(span, _, new)| (span, new))
            .collect();
        let Some(content) = rewritten(tag, changes, added).map_err(|e| XmlError {
            offset: Some(start),
            ..e
        })?
        else {
            return Ok(());
        };
        let (from, to) = (
            self.position(start),
            self.position(self.reader.buffer_position()),
        );
        self.copy_to(from, start, true)?;
        let tag = BytesStart::from_content(content, tag.name().as_ref().len());
        self.writer
            .write_event(if empty {
                Event::Empty(tag)
            } else {
                Event::Start(tag)
            })
            .map_err(|e: std::io::Error| XmlError::new(Some(start), e.to_string()))?;
        self.copied = to;
        Ok(())
    }

    /// What happens to `tag` when it is a hardware item and items are edited: its facts are
    /// read ahead (without moving the reader) and mapped; the edit is kept for its children.
    fn item_edit(
        &mut self,
        tag: &BytesStart<'t>,
        empty: bool,
        parent: Option<Kind>,
    ) -> Result<ItemEdit, XmlError> {
        let local = tag.local_name();
        let is_item = local.as_ref().ends_with(b"Item") || local.as_ref() == b"ExtraConfig";
        let (Some(Kind::Hardware), Some(map), true) = (parent, self.edits.items.as_ref(), is_item)
        else {
            return Ok(ItemEdit::Keep);
        };
        let inner = if empty {
            ""
        } else {
            // The content between `>` of the start tag and `<` of the end tag.
            let mut ahead = self.reader.clone();
            let span = ahead
                .read_to_end(tag.name())
                .map_err(|e| XmlError::new(Some(ahead.error_position()), e.to_string()))?;
            self.text
                .get(self.position(span.start)..self.position(span.end))
                .unwrap_or_default()
        };
        let facts = ItemFacts {
            element: String::from_utf8_lossy(local.as_ref()).into_owned(),
            ..item_facts(inner)
        };
        let edit = map(&facts);
        if !empty {
            self.item = Some((self.open.len() + 1, edit));
        }
        Ok(edit)
    }

    /// Leaves `tag` (read at `start`) and its content out of the output.
    fn skip(&mut self, tag: &BytesStart<'t>, empty: bool, start: u64) -> Result<(), XmlError> {
        let from = self.position(start);
        self.copy_to(from, start, false)
            .map_err(|_| XmlError::new(Some(start), "a tag quick-xml read could not be located"))?;
        if !empty {
            self.reader
                .read_to_end(tag.name())
                .map_err(|e| XmlError::new(Some(self.reader.error_position()), e.to_string()))?;
        }
        self.copied = self.position(self.reader.buffer_position());
        Ok(())
    }

    /// The rest of the input copied; every file edit must have matched a `File`.
    fn finish(mut self) -> Result<String, XmlError> {
        let rest = self.text.get(self.copied..).unwrap_or_default();
        self.writer.get_mut().extend_from_slice(rest.as_bytes());
        if let Some(edit) = self
            .edits
            .files
            .iter()
            .zip(&self.used)
            .find(|(_, u)| !**u)
            .map(|(e, _)| e)
        {
            return Err(XmlError::new(
                None,
                format!("no References/File has href {:?}", edit.href),
            ));
        }
        String::from_utf8(self.writer.into_inner()).map_err(|e| XmlError::new(None, e.to_string()))
    }
}
