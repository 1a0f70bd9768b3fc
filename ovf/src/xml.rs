//! Reading envelope XML: the one parse every reader of an envelope goes through, with one set
//! of limits (`parse`), the node helpers that match by local name, and the namespaces.
//!
//! roxmltree refuses a DTD, so no entity is ever expanded; the text is bounded before the
//! parser sees it (size, markup, nesting), since the parser reserves memory by the markup and
//! recurses by the depth.

/// The `ovf:format` of a stream-optimized VMDK.
pub const STREAM_OPTIMIZED_FORMAT: &str =
    "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized";

/// The `ovf:format` of a raw disk image, as oVirt's OVFs (and virt-v2v writing them) name it:
/// DSP0243 defines none.
pub const RAW_FORMAT: &str = "http://en.wikipedia.org/wiki/Byte";

/// The `ovf:format` of a qcow2 disk image, as oVirt's OVFs name their `COW` volumes (oVirt
/// engine's `OvfWriter`): DSP0243 defines none.
pub const QCOW2_FORMAT: &str = "http://www.gnome.org/~markmc/qcow-image-format.html";

/// The OVF 1.x envelope namespace.
pub const OVF1: &str = "http://schemas.dmtf.org/ovf/envelope/1";
/// The OVF 2.x envelope namespace.
pub const OVF2: &str = "http://schemas.dmtf.org/ovf/envelope/2";
/// CIM's resource allocation settings (`rasd:`).
pub const RASD: &str =
    "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData";
/// CIM's Ethernet port settings, which OVF 2.x `EthernetPortItem`s use (`epasd:`).
pub const EPASD: &str =
    "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_EthernetPortAllocationSettingData";
/// CIM's storage settings, which OVF 2.x `StorageItem`s use (`sasd:`).
pub const SASD: &str =
    "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_StorageAllocationSettingData";

/// Largest envelope read.
pub const MAX_ENVELOPE_SIZE: usize = 16 << 20;

/// Most `<` and most `=` characters in an envelope. The XML parser reserves room for one node
/// per `<` and one attribute per `=` before it parses (70 and 50 bytes each), so these bound its
/// memory (about 12 MiB) whatever the text; a vSphere envelope of one machine has a few hundred
/// of each, a package of a hundred machines tens of thousands.
pub const MAX_ENVELOPE_MARKUP: usize = 100_000;

/// Deepest element nesting parsed. The XML parser recurses per level and overflows a 2 MiB
/// thread stack at a few thousand levels; an OVF envelope nests about ten deep.
pub const MAX_ELEMENT_DEPTH: usize = 256;

/// Where `pattern` ends in `bytes` at or after `from` (the end of `bytes` if it never does).
fn end_of(bytes: &[u8], from: usize, pattern: &[u8]) -> usize {
    bytes
        .get(from..)
        .and_then(|b| b.windows(pattern.len()).position(|w| w == pattern))
        .map_or(bytes.len(), |at| from + at + pattern.len())
}

/// The deepest element nesting in `text`, in one pass: start tags open (their quoted attribute
/// values may hold `>` and `/`), end tags and `/>` close; comments, CDATA sections, processing
/// instructions and declarations are skipped whole. Exact on well-formed XML, whose character
/// data holds no `<`, and linear in the text whatever it holds.
fn element_depth(text: &str) -> usize {
    let b = text.as_bytes();
    let (mut depth, mut deepest, mut i) = (0usize, 0usize, 0usize);
    while i < b.len() {
        let Some(rest) = b.get(i..).filter(|r| r.first() == Some(&b'<')) else {
            i += 1;
            continue;
        };
        i = if rest.starts_with(b"<!--") {
            end_of(b, i + 4, b"-->")
        } else if rest.starts_with(b"<![CDATA[") {
            end_of(b, i + 9, b"]]>")
        } else if rest.starts_with(b"<?") {
            end_of(b, i + 2, b"?>")
        } else if rest.starts_with(b"<!") {
            end_of(b, i + 2, b">")
        } else if rest.starts_with(b"</") {
            depth = depth.saturating_sub(1);
            end_of(b, i + 2, b">")
        } else {
            // A start tag: up to the first '>' outside a quoted attribute value.
            let mut j = i + 1;
            let mut quote = None;
            while let Some(&c) = b.get(j) {
                match quote {
                    Some(q) if c == q => quote = None,
                    Some(_) => {}
                    None if c == b'"' || c == b'\'' => quote = Some(c),
                    None if c == b'>' => break,
                    None => {}
                }
                j += 1;
            }
            if j == 0 || b.get(j - 1) != Some(&b'/') {
                depth += 1;
                deepest = deepest.max(depth);
            }
            j + 1
        };
    }
    deepest
}

/// Refuses text an envelope never is before the XML parser sees it: larger than 16 MiB, more
/// markup than [`MAX_ENVELOPE_MARKUP`], nested deeper than [`MAX_ELEMENT_DEPTH`] (the parser
/// reserves memory by the markup and recurses by the depth).
fn check_bounds(text: &str) -> std::result::Result<(), String> {
    if text.len() > MAX_ENVELOPE_SIZE {
        return Err("larger than 16 MiB".into());
    }
    let tags = text.bytes().filter(|&c| c == b'<').count();
    let attributes = text.bytes().filter(|&c| c == b'=').count();
    if tags > MAX_ENVELOPE_MARKUP || attributes > MAX_ENVELOPE_MARKUP {
        return Err(format!(
            "{tags} '<' and {attributes} '=': more markup than an envelope has (at most \
            {MAX_ENVELOPE_MARKUP} of each)"
        ));
    }
    let depth = element_depth(text);
    if depth > MAX_ELEMENT_DEPTH {
        return Err(format!(
            "elements nested {depth} deep, more than {MAX_ELEMENT_DEPTH}"
        ));
    }
    Ok(())
}

/// Parses envelope text within the limits above, with no DTD: `Err((line, reason))` when the
/// text is out of bounds (no line) or not well-formed XML.
pub(crate) fn parse(text: &str) -> Result<roxmltree::Document<'_>, (Option<u32>, String)> {
    check_bounds(text).map_err(|reason| (None, reason))?;
    let options = roxmltree::ParsingOptions {
        allow_dtd: false,
        nodes_limit: u32::try_from(MAX_ENVELOPE_MARKUP).unwrap_or(u32::MAX),
    };
    roxmltree::Document::parse_with_options(text, options)
        .map_err(|e| (Some(e.pos().row), e.to_string()))
}

/// The line `n` starts on.
pub(crate) fn line_of(doc: &roxmltree::Document<'_>, n: roxmltree::Node<'_, '_>) -> u32 {
    doc.text_pos_at(n.range().start).row
}

/// The attribute `local` of `n`, by local name (whatever its namespace prefix).
pub(crate) fn attr<'a>(n: roxmltree::Node<'a, '_>, local: &str) -> Option<&'a str> {
    n.attributes()
        .find(|a| a.name() == local)
        .map(|a| a.value())
}

fn child<'a, 'i>(n: roxmltree::Node<'a, 'i>, local: &str) -> Option<roxmltree::Node<'a, 'i>> {
    n.children()
        .find(|c| c.is_element() && c.tag_name().name() == local)
}

/// The trimmed text of `n`'s child element `local`, by local name.
pub(crate) fn child_text(n: roxmltree::Node<'_, '_>, local: &str) -> Option<String> {
    child(n, local)
        .and_then(|c| c.text())
        .map(|t| t.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_depth_reads_tags_not_text() {
        assert_eq!(element_depth("<a><b/><c></c></a>"), 2);
        // '>' and '/' in attribute values, comments, CDATA and processing instructions.
        let siblings = "<X v=\"1>0\" w='/>'/>".repeat(300);
        assert_eq!(element_depth(&format!("<E>{siblings}</E>")), 1);
        assert_eq!(
            element_depth("<a><!-- <b><c> --><![CDATA[<d><e>]]><?pi <f>?></a>"),
            1
        );
        // The ways around a naive scan are counted.
        let quoted = format!(
            "<E>{}{}</E>",
            "<a x=\"/>\">".repeat(500),
            "</a>".repeat(500)
        );
        assert_eq!(element_depth(&quoted), 501);
        let commented = format!("<E>{}</E>", "<a><!--</a>-->".repeat(500));
        assert_eq!(element_depth(&commented), 501);
        // Linear: a megabyte of '<a' with no '>' is one pass.
        assert_eq!(element_depth(&"<a".repeat(500_000)), 1);
    }
}
