//! OVF properties (`ProductSection/Property`, DSP0243 §9.5) and the OVF environment document
//! a deployment hands to the guest (`ovf-env.xml`, DSP0243 §11): each property's key, type,
//! qualifiers, default, label and description; values given at import checked against them;
//! the environment written through quick-xml (escaped).
//!
//! Types are DSP0243's CIM types (`uint8` to `uint64`, `sint8` to `sint64`, `real32`, `real64`,
//! `boolean`, `string`), qualifiers DSP0004's `MinLen(n)`, `MaxLen(n)`, `MinValue(n)`,
//! `MaxValue(n)` and `ValueMap{"a", "b", "1..10"}`.

use quick_xml::events::{BytesDecl, Event};
use quick_xml::Writer;

use crate::error::{Error, Result};
use crate::write::escape::{escape_attribute, escaped_attribute};
use crate::xml::{attr, child_text};

/// A `ProductSection/Property`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Property {
    /// The virtual system whose `ProductSection` holds it (`None`: the envelope's own).
    pub system: Option<String>,
    /// `ovf:key`.
    pub key: String,
    /// The `ProductSection`'s `ovf:class` and `ovf:instance`, which prefix and suffix the key
    /// in the environment (`class.key.instance`).
    pub class: Option<String>,
    /// See `class`.
    pub instance: Option<String>,
    /// `ovf:type`.
    #[cfg_attr(feature = "serde", serde(rename = "type"))]
    pub kind: String,
    /// `ovf:qualifiers`, as written.
    pub qualifiers: Option<String>,
    /// `ovf:value`: the default.
    pub default: Option<String>,
    /// `ovf:userConfigurable="true"`.
    pub user_configurable: bool,
    /// `ovf:password="true"`: its value is not shown.
    pub password: bool,
    /// `Label`.
    pub label: Option<String>,
    /// `Description`.
    pub description: Option<String>,
}

impl Property {
    /// The key as the environment names it: `class.key.instance`, without the absent parts.
    pub fn full_key(&self) -> String {
        let mut k = String::new();
        if let Some(c) = self.class.as_deref().filter(|c| !c.is_empty()) {
            k.push_str(c);
            k.push('.');
        }
        k.push_str(&self.key);
        if let Some(i) = self.instance.as_deref().filter(|i| !i.is_empty()) {
            k.push('.');
            k.push_str(i);
        }
        k
    }

    /// Checks `value` against the property's type and qualifiers; `Err` says why not.
    pub fn check(&self, value: &str) -> std::result::Result<(), String> {
        check_type(&self.kind, value)?;
        let Some(q) = self.qualifiers.as_deref() else {
            return Ok(());
        };
        for qualifier in split_qualifiers(q) {
            check_qualifier(&self.kind, &qualifier, value)?;
        }
        Ok(())
    }
}

/// Checks `value` against the CIM type `kind` (unknown types accept any text).
fn check_type(kind: &str, value: &str) -> std::result::Result<(), String> {
    let bits = |k: &str, prefix: &str| k.strip_prefix(prefix).and_then(|b| b.parse::<u32>().ok());
    let k = kind.to_ascii_lowercase();
    if let Some(b) = bits(&k, "uint") {
        let v: u64 = value
            .trim()
            .parse()
            .map_err(|_| format!("{value:?} is not an unsigned integer ({kind})"))?;
        if b < 64 && v >> b != 0 {
            return Err(format!("{value} does not fit in {kind}"));
        }
    } else if let Some(b) = bits(&k, "sint") {
        let v: i64 = value
            .trim()
            .parse()
            .map_err(|_| format!("{value:?} is not an integer ({kind})"))?;
        if b < 64 {
            let limit = 1i64 << (b - 1).min(62);
            if v < -limit || v >= limit {
                return Err(format!("{value} does not fit in {kind}"));
            }
        }
    } else if k.starts_with("real") {
        value
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("{value:?} is not a number ({kind})"))?;
    } else if k == "boolean"
        && !matches!(
            value,
            "true" | "false" | "True" | "False" | "TRUE" | "FALSE"
        )
    {
        return Err(format!("{value:?} is not true or false"));
    }
    Ok(())
}

/// The qualifiers in `text`, split at the spaces and commas between them (not inside
/// parentheses, braces or quotes).
fn split_qualifiers(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let (mut depth, mut quoted) = (0i32, false);
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            '(' | '{' if !quoted => depth += 1,
            ')' | '}' if !quoted => depth -= 1,
            ' ' | ',' if !quoted && depth <= 0 => {
                if !current.trim().is_empty() {
                    out.push(current.trim().to_string());
                }
                current.clear();
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    if !current.trim().is_empty() {
        out.push(current.trim().to_string());
    }
    out
}

/// The argument of `Name(arg)` in `q`, if `q` is that qualifier.
fn argument<'a>(q: &'a str, name: &str) -> Option<&'a str> {
    q.strip_prefix(name)?
        .trim()
        .strip_prefix('(')?
        .strip_suffix(')')
}

/// Checks `value` against one qualifier (unknown qualifiers accept everything).
fn check_qualifier(kind: &str, q: &str, value: &str) -> std::result::Result<(), String> {
    let number = |s: &str| s.trim().parse::<f64>().ok();
    if let Some(n) = argument(q, "MinLen").and_then(|a| a.trim().parse::<usize>().ok()) {
        if value.chars().count() < n {
            return Err(format!("shorter than {q}"));
        }
    } else if let Some(n) = argument(q, "MaxLen").and_then(|a| a.trim().parse::<usize>().ok()) {
        if value.chars().count() > n {
            return Err(format!("longer than {q}"));
        }
    } else if let Some(n) = argument(q, "MinValue").and_then(number) {
        if number(value).is_some_and(|v| v < n) {
            return Err(format!("below {q}"));
        }
    } else if let Some(n) = argument(q, "MaxValue").and_then(number) {
        if number(value).is_some_and(|v| v > n) {
            return Err(format!("above {q}"));
        }
    } else if let Some(map) = q.strip_prefix("ValueMap") {
        let inner = map.trim().trim_start_matches('{').trim_end_matches('}');
        let allowed: Vec<String> = inner
            .split(',')
            .map(|v| v.trim().trim_matches('"').to_string())
            .filter(|v| !v.is_empty())
            .collect();
        let numeric = kind.to_ascii_lowercase().contains("int");
        let ok = allowed.iter().any(|a| match a.split_once("..") {
            Some((lo, hi)) if numeric => match number(value) {
                Some(v) => number(lo).is_none_or(|l| v >= l) && number(hi).is_none_or(|h| v <= h),
                None => false,
            },
            _ => a == value,
        });
        if !ok {
            return Err(format!("not one of {}", allowed.join(", ")));
        }
    }
    Ok(())
}

/// The properties of the `ProductSection`s in the element `n` (not in nested systems), for
/// `system`.
pub(crate) fn read(n: roxmltree::Node<'_, '_>, system: Option<&str>) -> Vec<Property> {
    let mut out = Vec::new();
    let sections = n.children().filter(|c| {
        c.is_element()
            && (c.tag_name().name() == "ProductSection"
                || attr(*c, "type").is_some_and(|t| t.ends_with("ProductSection_Type")))
    });
    for sec in sections {
        let class = attr(sec, "class").map(str::to_string);
        let instance = attr(sec, "instance").map(str::to_string);
        // Properties may be grouped under Category elements: all descendants, in order.
        for p in sec
            .descendants()
            .filter(|d| d.is_element() && d.tag_name().name() == "Property")
        {
            out.push(Property {
                system: system.map(str::to_string),
                key: attr(p, "key").unwrap_or_default().to_string(),
                class: class.clone(),
                instance: instance.clone(),
                kind: attr(p, "type").unwrap_or("string").to_string(),
                qualifiers: attr(p, "qualifiers").map(str::to_string),
                default: attr(p, "value").map(str::to_string),
                user_configurable: attr(p, "userConfigurable") == Some("true"),
                password: attr(p, "password") == Some("true"),
                label: child_text(p, "Label"),
                description: child_text(p, "Description"),
            });
        }
    }
    out
}

/// The values of `properties` for a deployment: each given value (`KEY=VALUE`, the key full
/// or bare) checked, the defaults for the rest. Refused: a key no property has, a property not
/// user-configurable, a value its type or qualifiers refuse.
pub fn property_values(
    properties: &[Property],
    given: &[(String, String)],
) -> Result<Vec<(String, String)>> {
    for (key, value) in given {
        let p = properties
            .iter()
            .find(|p| p.full_key() == *key || p.key == *key)
            .ok_or_else(|| {
                Error::InvalidInput(format!("--prop {key}: the package has no such property"))
            })?;
        if !p.user_configurable {
            return Err(Error::InvalidInput(format!(
                "--prop {key}: the property is not user-configurable"
            )));
        }
        let carried = escape_attribute(value)
            .map(drop)
            .map_err(|_| "holds a character XML 1.0 cannot carry".to_string());
        carried.and_then(|()| p.check(value)).map_err(|why| {
            let shown = if p.password { "(a password)" } else { value };
            Error::InvalidInput(format!("--prop {key}={shown}: {why}"))
        })?;
    }
    Ok(properties
        .iter()
        .map(|p| {
            let value = given
                .iter()
                .rev()
                .find(|(k, _)| *k == p.full_key() || *k == p.key)
                .map(|(_, v)| v.clone())
                .or_else(|| p.default.clone())
                .unwrap_or_default();
            (p.full_key(), value)
        })
        .collect())
}

/// The OVF environment document (DSP0243 §11) of the virtual system `id`: the platform, and
/// every property with its value.
pub fn ovf_environment(id: &str, values: &[(String, String)]) -> Result<String> {
    let esc = |v: &str, what: &str| {
        escape_attribute(v).map_err(|e| Error::InvalidInput(format!("{what} {v:?}: {}", e.reason)))
    };
    let id = esc(id, "virtual system id")?;
    let values: Vec<(String, String)> = values
        .iter()
        .map(|(k, v)| Ok((esc(k, "property key")?, esc(v, "property value")?)))
        .collect::<Result<_>>()?;
    let io = |e: std::io::Error| Error::InvalidInput(format!("writing ovf-env.xml: {e}"));
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))
        .map_err(io)?;
    w.create_element("Environment")
        .with_attribute(("xmlns", "http://schemas.dmtf.org/ovf/environment/1"))
        .with_attribute(("xmlns:oe", "http://schemas.dmtf.org/ovf/environment/1"))
        .with_attribute(("xmlns:xsi", "http://www.w3.org/2001/XMLSchema-instance"))
        .with_attribute(escaped_attribute("oe:id", &id))
        .write_inner_content(|w| {
            w.create_element("PlatformSection")
                .write_inner_content(|w| {
                    w.create_element("Kind")
                        .write_text_content(quick_xml::events::BytesText::new("ovf-disk"))?;
                    w.create_element("Version").write_text_content(
                        quick_xml::events::BytesText::new(env!("CARGO_PKG_VERSION")),
                    )?;
                    w.create_element("Locale")
                        .write_text_content(quick_xml::events::BytesText::new("en"))?;
                    Ok(())
                })?;
            w.create_element("PropertySection")
                .write_inner_content(|w| {
                    for (k, v) in &values {
                        w.create_element("Property")
                            .with_attribute(escaped_attribute("oe:key", k))
                            .with_attribute(escaped_attribute("oe:value", v))
                            .write_empty()?;
                    }
                    Ok(())
                })?;
            Ok(())
        })
        .map_err(io)?;
    let mut out = w.into_inner();
    out.push(b'\n');
    String::from_utf8(out).map_err(|e| Error::InvalidInput(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prop(kind: &str, qualifiers: Option<&str>) -> Property {
        Property {
            key: "k".into(),
            kind: kind.into(),
            qualifiers: qualifiers.map(str::to_string),
            user_configurable: true,
            ..Property::default()
        }
    }

    #[test]
    fn values_are_checked_against_types_and_qualifiers() {
        assert!(prop("uint8", None).check("255").is_ok());
        assert!(prop("uint8", None).check("256").is_err());
        assert!(prop("uint16", None).check("-1").is_err());
        assert!(prop("sint8", None).check("-128").is_ok());
        assert!(prop("sint8", None).check("128").is_err());
        assert!(prop("boolean", None).check("maybe").is_err());
        assert!(prop("real64", None).check("1.5").is_ok());
        let len = prop("string", Some("MinLen(2) MaxLen(4)"));
        assert!(len.check("a").is_err() && len.check("abc").is_ok() && len.check("abcde").is_err());
        let map = prop("string", Some("ValueMap{\"small\", \"large\"}"));
        assert!(map.check("large").is_ok());
        assert_eq!(map.check("huge").unwrap_err(), "not one of small, large");
        let range = prop("uint32", Some("ValueMap{\"1..10\", \"20\"}"));
        assert!(
            range.check("5").is_ok() && range.check("20").is_ok() && range.check("11").is_err()
        );
        let minmax = prop("sint32", Some("MinValue(-5),MaxValue(5)"));
        assert!(minmax.check("-5").is_ok() && minmax.check("6").is_err());
    }

    #[test]
    fn given_values_and_defaults() {
        let mut a = prop("string", Some("MaxLen(8)"));
        a.class = Some("vm".into());
        a.key = "hostname".into();
        a.default = Some("box".into());
        let mut b = prop("string", None);
        b.key = "fixed".into();
        b.user_configurable = false;
        b.default = Some("x".into());
        let props = [a, b];
        let v = property_values(&props, &[("hostname".into(), "web1".into())]).unwrap();
        assert_eq!(
            v,
            [
                ("vm.hostname".into(), "web1".into()),
                ("fixed".into(), "x".into())
            ]
        );
        assert!(property_values(&props, &[("nope".into(), "1".into())]).is_err());
        assert!(property_values(&props, &[("fixed".into(), "y".into())]).is_err());
        assert!(
            property_values(&props, &[("vm.hostname".into(), "too-long-name".into())]).is_err()
        );
        let env = ovf_environment("vm", &v).unwrap();
        assert!(
            env.contains("<Property oe:key=\"vm.hostname\" oe:value=\"web1\"/>"),
            "{env}"
        );
        assert!(env.contains("oe:id=\"vm\""), "{env}");
    }
}
