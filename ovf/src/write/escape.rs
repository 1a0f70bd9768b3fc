//! Escaping values for envelope text: attribute values and character data, refusing what
//! XML 1.0 cannot carry; and [`XmlError`], why an envelope could not be written or edited.

use std::borrow::Cow;

use quick_xml::events::attributes::Attribute;
use quick_xml::name::QName;

/// Why an envelope could not be written or edited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XmlError {
    /// Byte offset in the envelope where the problem is, when there is one.
    pub offset: Option<u64>,
    /// What is wrong.
    pub reason: String,
}

impl XmlError {
    /// An error at `offset` (or about the whole text, for `None`).
    pub(crate) fn new(offset: Option<u64>, reason: impl Into<String>) -> Self {
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
    pub fn in_envelope(self, path: &std::path::Path, text: &str) -> crate::Error {
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
pub fn escape_attribute(value: &str) -> Result<String, XmlError> {
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
pub fn escape_text(value: &str) -> Result<String, XmlError> {
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
pub fn escaped_attribute<'a>(key: &'a str, escaped: &'a str) -> Attribute<'a> {
    Attribute {
        key: QName(key.as_bytes()),
        value: Cow::Borrowed(escaped.as_bytes()),
    }
}
