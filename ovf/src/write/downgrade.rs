//! The OVF 2.x -> 1.x rewrite: [`downgrade_envelope`].

use quick_xml::events::Event;
use quick_xml::Reader;

use super::edit::attribute_spans;
use crate::xml::{EPASD, OVF1, OVF2, RASD, SASD};

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

/// Every namespace declaration of `text`, by prefix (`""` for the default namespace); a
/// prefix bound to two namespaces is refused.
fn namespace_prefixes(text: &str) -> Result<Vec<(String, String)>, String> {
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
    Ok(prefixes)
}

/// The attributes of a start tag's `content` (after its `name_len` bytes of name) with OVF 2.x
/// namespace declarations pointed at 1.x and, on the `Envelope`, a 2.x `version` written 1.0;
/// everything else as it was.
fn attributes_as_1x(content: &str, name_len: usize, local: &str) -> Result<String, String> {
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
    Ok(rest)
}

/// An OVF 2.x envelope written as 1.x (DSP0243 1.1 against 2.0), where its content allows:
/// the OVF namespace declarations point at 1.x, and `EthernetPortItem` and `StorageItem`
/// become `Item`s whose `epasd:`/`sasd:` properties take the `rasd:` prefix. Every other byte
/// is copied as it was. `Err` says why it cannot be done: a section only 2.x has, an item
/// property RASD does not have, no `rasd:` prefix declared, a prefix bound to two namespaces,
/// or XML quick-xml cannot read.
pub fn downgrade_envelope(text: &str) -> Result<String, String> {
    let prefixes = namespace_prefixes(text)?;
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
        let rest = attributes_as_1x(content, name_len, local)?;
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
