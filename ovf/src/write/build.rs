//! Writing a whole envelope for bare disks.

use std::io::Write;

use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::Writer;

use super::escape::{escape_attribute, escape_text, escaped_attribute, XmlError};
use crate::xml::STREAM_OPTIMIZED_FORMAT;

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

/// An envelope for bare disks: one virtual system named `name` with the disks on an lsilogic
/// SCSI controller. Each disk is `(href, file size, capacity in bytes)`, stored
/// stream-optimized. Written through quick-xml's indenting `Writer`: every attribute value and
/// text is escaped, and `ovf:id` and `Name` carry `name` as it is. Refused: a name or href with
/// a character XML 1.0 cannot carry.
pub fn envelope_for_disks(name: &str, disks: &[(String, u64, u64)]) -> Result<String, XmlError> {
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
