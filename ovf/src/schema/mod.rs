//! Envelopes checked against DMTF's published envelope schema: DSP8023 1.1.1 for OVF 1.x and
//! 2.0.1 for OVF 2.x, with the CIM, XML, xmldsig and xenc schemas they import. The schema
//! catches the structural faults no rule of [`crate::faults`] names (an element out of order, a
//! required `Info` missing, an attribute or value the schema does not allow), each with its
//! line.
//!
//! Products accept envelopes the schema refuses (VirtualBox writes its RASD elements out of the
//! schema's order, for one), so a violation is a note about the text, not a reason to refuse
//! the package: `ovf-disk check` lists them apart from its errors.
//!
//! [`validate`] needs the `schema` feature, which links the system's libxml2 (its schema
//! validator, which `xmllint --schema` runs). The schema files are built into the crate
//! (`xsd/`, with their sources and licences in `xsd/README.md`); while it validates, libxml2
//! loads no file and nothing from the network: an envelope that names a DTD or an external
//! entity is refused before libxml2 sees it.

#[cfg(feature = "schema")]
mod libxml;

use std::path::Path;

use crate::error::{Error, Result};

/// Which DMTF envelope schema an envelope is checked against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub enum Schema {
    /// DSP8023 1.1.1, for the OVF 1.x namespace.
    #[cfg_attr(feature = "serde", serde(rename = "DSP8023 1.1.1"))]
    Ovf1,
    /// DSP8023 2.0.1, for the OVF 2.x namespace.
    #[cfg_attr(feature = "serde", serde(rename = "DSP8023 2.0.1"))]
    Ovf2,
}

impl Schema {
    /// The schema for an envelope whose root element is in namespace `ns`: none for VMware's
    /// OVF 0.9 envelopes (DMTF published no schema for them) or another namespace.
    pub fn for_namespace(ns: &str) -> Option<Self> {
        match ns {
            crate::xml::OVF1 => Some(Self::Ovf1),
            crate::xml::OVF2 => Some(Self::Ovf2),
            _ => None,
        }
    }

    /// Its name: `DSP8023 1.1.1` or `DSP8023 2.0.1`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ovf1 => "DSP8023 1.1.1",
            Self::Ovf2 => "DSP8023 2.0.1",
        }
    }
}

impl std::fmt::Display for Schema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One place where an envelope breaks its schema.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Violation {
    /// Its line in the descriptor, when the validator knows it.
    pub line: Option<u32>,
    /// The validator's words, with the namespaces written as the usual prefixes
    /// (`ovf:`, `rasd:`, `vssd:`, ...).
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// What [`validate`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Validation {
    /// The schema the envelope was checked against.
    pub schema: Schema,
    /// The violations, in document order, at most [`MAX_VIOLATIONS`].
    pub violations: Vec<Violation>,
    /// How many more the validator reported past [`MAX_VIOLATIONS`].
    pub omitted: usize,
}

impl Validation {
    /// Whether the envelope is valid by its schema.
    pub fn is_valid(&self) -> bool {
        self.violations.is_empty() && self.omitted == 0
    }
}

/// Most violations kept by [`validate`]; the rest are counted.
pub const MAX_VIOLATIONS: usize = 200;

/// Checks envelope text `text` (read from `path`, for messages) against its DMTF schema:
/// `Ok(None)` when none applies (OVF 0.9, or an envelope in no OVF namespace). `Err` when the
/// text is not an envelope the crate reads at all (not well-formed, a DTD, out of bounds), as
/// [`crate::Envelope::parse`] says.
#[cfg(feature = "schema")]
pub fn validate(text: &str, path: &Path) -> Result<Option<Validation>> {
    let schema = {
        let doc = crate::xml::parse(text).map_err(|(line, reason)| Error::Envelope {
            path: path.to_path_buf(),
            line,
            reason,
        })?;
        let root = doc.root_element();
        match root.tag_name().namespace().and_then(Schema::for_namespace) {
            Some(s) => s,
            None => return Ok(None),
        }
    };
    let (found, omitted) = libxml::validate(schema, text).map_err(|reason| Error::Envelope {
        path: path.to_path_buf(),
        line: None,
        reason: format!("validating against {schema}: {reason}"),
    })?;
    let violations = found
        .into_iter()
        .map(|(line, message)| Violation {
            line,
            message: with_prefixes(message.trim_end()),
        })
        .collect();
    Ok(Some(Validation {
        schema,
        violations,
        omitted,
    }))
}

/// Without the `schema` feature there is no validator: `Ok(None)` always (the parse is
/// still checked, so an unreadable envelope is an error either way).
#[cfg(not(feature = "schema"))]
pub fn validate(text: &str, path: &Path) -> Result<Option<Validation>> {
    crate::xml::parse(text)
        .map(|_| None)
        .map_err(|(line, reason)| Error::Envelope {
            path: path.to_path_buf(),
            line,
            reason,
        })
}

/// `message` with libxml2's `{namespace}name` written `prefix:name` for the namespaces an
/// envelope uses.
#[cfg(feature = "schema")]
fn with_prefixes(message: &str) -> String {
    const PREFIXES: [(&str, &str); 9] = [
        (crate::xml::OVF1, "ovf"),
        (crate::xml::OVF2, "ovf"),
        (crate::xml::RASD, "rasd"),
        (crate::xml::EPASD, "epasd"),
        (crate::xml::SASD, "sasd"),
        (
            "http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData",
            "vssd",
        ),
        ("http://schemas.dmtf.org/wbem/wscim/1/common", "cim"),
        ("http://www.vmware.com/schema/ovf", "vmw"),
        ("http://www.w3.org/2001/XMLSchema-instance", "xsi"),
    ];
    let mut out = message.to_string();
    for (ns, prefix) in PREFIXES {
        out = out.replace(&format!("{{{ns}}}"), &format!("{prefix}:"));
    }
    out
}

#[cfg(all(test, feature = "schema"))]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const V1: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData">
  <References>
    <File ovf:id="file1" ovf:href="disk1.vmdk"/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:capacity="1" ovf:capacityAllocationUnits="byte * 2^30"/>
  </DiskSection>
  <VirtualSystem ovf:id="vm">
    <Info>A virtual machine</Info>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <Item>
        <rasd:ElementName>1 virtual CPU</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceType>3</rasd:ResourceType>
        <rasd:VirtualQuantity>1</rasd:VirtualQuantity>
      </Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"#;

    fn check(text: &str) -> Validation {
        validate(text, Path::new("t.ovf")).unwrap().unwrap()
    }

    #[test]
    fn a_valid_envelope_is_valid() {
        let v = check(V1);
        assert_eq!(v.schema, Schema::Ovf1);
        assert!(v.is_valid(), "{:?}", v.violations);
        let v2 = V1.replace("ovf/envelope/1", "ovf/envelope/2");
        let v = check(&v2);
        assert_eq!(v.schema, Schema::Ovf2);
        assert!(v.is_valid(), "{:?}", v.violations);
    }

    #[test]
    fn each_violation_has_its_line_and_prefixed_names() {
        // The disk section's Info missing (its Disk, line 7, comes first) and the RASD
        // elements out of the schema's (alphabetical) order (InstanceID before ElementName,
        // line 14).
        let text = V1
            .replace(
                "<rasd:ElementName>1 virtual CPU</rasd:ElementName>\n        <rasd:InstanceID>1</rasd:InstanceID>",
                "<rasd:InstanceID>1</rasd:InstanceID>\n        <rasd:ElementName>1 virtual CPU</rasd:ElementName>",
            )
            .replace("<Info>Virtual disk information</Info>\n    ", "");
        let v = check(&text);
        let lines: Vec<_> = v.violations.iter().map(|x| x.line).collect();
        assert_eq!(lines, [Some(7), Some(14)], "{:?}", v.violations);
        assert!(
            v.violations[0].message.contains("'ovf:Disk'")
                && v.violations[0].message.contains("ovf:Info"),
            "{}",
            v.violations[0]
        );
        assert!(
            v.violations[1].message.contains("'rasd:InstanceID'")
                && v.violations[1].message.contains("rasd:ElementName"),
            "{}",
            v.violations[1]
        );
    }

    #[test]
    fn no_schema_for_0_9_and_errors_for_what_is_no_envelope() {
        let v09 = V1.replace(
            "http://schemas.dmtf.org/ovf/envelope/1",
            "http://www.vmware.com/schema/ovf/1/envelope",
        );
        assert_eq!(validate(&v09, Path::new("t.ovf")).unwrap(), None);
        let dtd = format!("<!DOCTYPE Envelope SYSTEM \"/etc/passwd\">{}", &V1[38..]);
        let e = validate(&dtd, Path::new("t.ovf")).unwrap_err().to_string();
        assert!(e.starts_with("t.ovf: OVF envelope"), "{e}");
        assert!(validate("<Envelope", Path::new("t.ovf")).is_err());
    }

    #[test]
    fn violations_are_bounded() {
        let item = "<Item><rasd:InstanceID>1</rasd:InstanceID><rasd:ElementName>x</rasd:ElementName><rasd:ResourceType>3</rasd:ResourceType></Item>\n";
        let text = V1.replace(
            "<Info>Virtual hardware requirements</Info>",
            &format!(
                "<Info>Virtual hardware requirements</Info>{}",
                item.repeat(MAX_VIOLATIONS + 50)
            ),
        );
        let v = check(&text);
        assert_eq!(v.violations.len(), MAX_VIOLATIONS);
        assert_eq!(v.omitted, 50);
    }

    #[test]
    fn validation_runs_on_many_threads() {
        let handles: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| (0..20).all(|_| check(V1).is_valid())))
            .collect();
        for h in handles {
            assert!(h.join().unwrap());
        }
    }
}
