//! The OVF envelope (`.ovf`): references, disks, virtual systems and a summary of their
//! hardware, for DMTF DSP0243 1.x and 2.x and VMware's pre-standard 0.9 (§7-§9).
//!
//! Parsed with roxmltree, which refuses a DTD (so no entity is ever expanded), from at most
//! 16 MiB. Elements and attributes are matched by local name, so the 0.9, 1.x and 2.x namespaces
//! read alike. Sections this summary does not know are kept by name, not dropped.

use std::path::Path;

use crate::error::{Error, Result};
use crate::units::unit_bytes;
use crate::xml::{attr, child_text, line_of};

pub use crate::xml::{QCOW2_FORMAT, RAW_FORMAT, STREAM_OPTIMIZED_FORMAT};

/// A capacity and its `capacityAllocationUnits` in bytes, when both are numbers that fit.
fn in_bytes(capacity: &str, units: Option<&str>) -> Option<u64> {
    let c = capacity.trim().parse::<u64>().ok()?;
    c.checked_mul(units.map_or(Some(1), unit_bytes)?)
}

/// The property a `${key}` value names.
fn property_key(value: &str) -> Option<&str> {
    value.trim().strip_prefix("${")?.strip_suffix('}')
}

/// Deepest nesting of `VirtualSystemCollection`s followed (DSP0243 allows nesting; real
/// packages use one or two levels). Deeper nesting is refused rather than recursed into.
pub const MAX_COLLECTION_DEPTH: usize = 32;

/// A `References/File`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct FileRef {
    /// `ovf:id`.
    pub id: String,
    /// `ovf:href` as written: a path inside the package, or one leading outside it, or a URL
    /// ([`FileRef::location`] says which).
    pub href: String,
    /// `ovf:size` in bytes.
    pub size: Option<u64>,
    /// `ovf:compression` (`gzip`).
    pub compression: Option<String>,
    /// `ovf:chunkSize`: the file is split into `href.000000000`, `.000000001`, ...
    pub chunk_size: Option<u64>,
    /// The line of its element in the descriptor (for findings).
    pub line: Option<u32>,
}

impl FileRef {
    /// Where the href leads: the normalised path inside the package, or why it names no file
    /// of the package (a reader describes those and follows them only when allowed).
    pub fn location(&self) -> std::result::Result<String, crate::names::Outside> {
        crate::names::locate(&self.href)
    }

    /// Whether the file is stored compressed (`ovf:compression` other than `identity` or empty).
    pub fn is_compressed(&self) -> bool {
        self.compression
            .as_deref()
            .is_some_and(|c| !c.is_empty() && c != "identity")
    }
}

/// A `DiskSection/Disk`: a virtual disk of the package.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct VirtualDisk {
    /// `ovf:diskId`.
    pub disk_id: String,
    /// `ovf:fileRef`: the `File` holding the disk (none for a blank disk).
    pub file_ref: Option<String>,
    /// `ovf:capacity` as written.
    pub capacity: String,
    /// `ovf:capacityAllocationUnits` as written (`byte * 2^30`).
    pub capacity_units: Option<String>,
    /// The capacity in bytes, when it can be computed.
    pub capacity_bytes: Option<u64>,
    /// `ovf:populatedSize` in bytes.
    pub populated_size: Option<u64>,
    /// `ovf:format` URI (stream-optimized VMDK is
    /// `http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized`).
    pub format: Option<String>,
    /// `ovf:parentRef`.
    pub parent_ref: Option<String>,
    /// The line of its element in the descriptor (for findings).
    pub line: Option<u32>,
}

/// An `OperatingSystemSection`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct OperatingSystem {
    /// `ovf:id`: the CIM operating system number (DSP0243 §9.7).
    pub id: String,
    /// `Description`, if any.
    pub description: Option<String>,
}

/// A disk drive of a virtual system (ResourceType 17).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct DiskDrive {
    /// Its `HostResource` (`ovf:/disk/ID`).
    pub host_resource: String,
    /// The controller it hangs on (via `Parent`), when the envelope says: `SCSI (lsilogic)`,
    /// `IDE`, `SATA`.
    pub controller: Option<String>,
}

/// A summary of one `VirtualSystem`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct System {
    /// `ovf:id`.
    pub id: String,
    /// `Name`, if any.
    pub name: Option<String>,
    /// `OperatingSystemSection`.
    pub os: Option<OperatingSystem>,
    /// Virtual CPUs (ResourceType 3). This summary (CPUs, memory, drives, controllers, NICs)
    /// is the default deployment option's, as an import deploys it: items of no
    /// configuration and of the default one.
    pub cpus: Option<u64>,
    /// Memory in bytes (ResourceType 4).
    #[cfg_attr(feature = "serde", serde(rename = "memory"))]
    pub memory_bytes: Option<u64>,
    /// Disk drives (ResourceType 17).
    #[cfg_attr(feature = "serde", serde(rename = "disks"))]
    pub drives: Vec<DiskDrive>,
    /// Controllers: ResourceType 5 (IDE), 6 (SCSI, with ResourceSubType), 20 (SATA)...
    pub controllers: Vec<String>,
    /// Network cards (ResourceType 10): their `Connection`.
    pub nics: Vec<String>,
    /// Every hardware item, typed, with firmware and guest OS type: what the emitters and the
    /// Fault Tolerance check read (not in `info --json`, which shows the summary above).
    #[cfg_attr(feature = "serde", serde(skip))]
    pub hardware: crate::hardware::Hardware,
}

/// A parsed envelope.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Envelope {
    /// `1.x`, `2.x` or `0.9`, from the envelope's namespace.
    pub version: String,
    /// `References`.
    pub files: Vec<FileRef>,
    /// `DiskSection`.
    pub disks: Vec<VirtualDisk>,
    /// Virtual systems, also those inside collections.
    pub systems: Vec<System>,
    /// Names of the sections this summary does not read (kept, not dropped).
    pub other_sections: Vec<String>,
    /// `DeploymentOptionSection`: the configurations a package offers (DSP0243 §9.9).
    pub deployment_options: Vec<DeploymentOption>,
    /// Every `ProductSection/Property`: the envelope's, collections' and systems' (DSP0243
    /// §9.5).
    pub properties: Vec<crate::properties::Property>,
    /// The `key` of every `ExtraConfig` element anywhere in the envelope, in document order
    /// (empty for an element without one).
    pub extra_config_keys: Vec<String>,
    /// Every element marked `ovf:required="true"` directly under the envelope, a virtual
    /// system or a collection, known or not (DSP0243 section 6.4: a consumer that does not
    /// understand a required section must fail).
    pub required_sections: Vec<RequiredSection>,
}

/// An element marked `ovf:required="true"`: its local name and the line it starts on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct RequiredSection {
    /// The element's local name (`NetworkSection`, `vmw:BootOrderSection` reads `BootOrderSection`).
    pub name: String,
    /// The line it starts on (one-based).
    pub line: u32,
}

/// A disk drive of a system and what it holds: [`System::disks`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AttachedDisk<'a> {
    /// The drive item (`ResourceType` 17).
    pub drive: &'a crate::hardware::Device,
    /// The `DiskSection/Disk` its `HostResource` names (`ovf:/disk/ID`), when there is one.
    pub disk: Option<&'a VirtualDisk>,
    /// That disk's `References/File`, when it names one (a disk without one is blank).
    pub file: Option<&'a FileRef>,
}

impl System {
    /// The disk drives of this system in deployment option `configuration` (the items of no
    /// configuration and of this one, as [`crate::hardware::Hardware::select`] keeps them),
    /// each linked to the disk its `HostResource` names and to that disk's file, in item order.
    pub fn disks<'a>(
        &'a self,
        env: &'a Envelope,
        configuration: Option<&str>,
    ) -> Vec<AttachedDisk<'a>> {
        self.hardware
            .devices
            .iter()
            .filter(|d| d.kind == crate::hardware::DeviceKind::Disk)
            .filter(|d| {
                d.configurations.is_empty()
                    || configuration.is_some_and(|c| d.configurations.iter().any(|x| x == c))
            })
            .map(|drive| {
                let disk = crate::hardware::disk_id_of(drive)
                    .and_then(|id| env.disks.iter().find(|d| d.disk_id == id));
                AttachedDisk {
                    drive,
                    disk,
                    file: disk.and_then(|d| env.file_of(d)),
                }
            })
            .collect()
    }
}

/// One `Configuration` of a `DeploymentOptionSection`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct DeploymentOption {
    /// `ovf:id`: what hardware items name in `ovf:configuration`.
    pub id: String,
    /// `Label`.
    pub label: Option<String>,
    /// `Description`.
    pub description: Option<String>,
    /// `ovf:default="true"`.
    pub default: bool,
}

impl Envelope {
    /// The deployment option used when none is chosen: the one marked default, else the first
    /// (DSP0243 §9.9), or `None` when the package offers none.
    pub fn default_deployment_option(&self) -> Option<&str> {
        self.deployment_options
            .iter()
            .find(|d| d.default)
            .or(self.deployment_options.first())
            .map(|d| d.id.as_str())
    }
}

/// The OVF version an envelope's namespace `ns` says: `2.x`, `1.x` or `0.9`.
fn version_of(ns: &str) -> Option<&'static str> {
    if ns.contains("dmtf.org/ovf/envelope/2") {
        Some("2.x")
    } else if ns.contains("dmtf.org/ovf/envelope/1") {
        Some("1.x")
    } else if ns.contains("vmware.com/schema/ovf/1/envelope") {
        Some("0.9")
    } else {
        None
    }
}

/// An error at a line of the envelope; `Err(line, reason)` from the readers of its sections.
type SectionError = (Option<u32>, String);

/// The `File`s of a `References` section.
fn read_references(
    n: roxmltree::Node<'_, '_>,
    line: &dyn Fn(roxmltree::Node<'_, '_>) -> Option<u32>,
    files: &mut Vec<FileRef>,
) -> std::result::Result<(), SectionError> {
    for f in n
        .children()
        .filter(|c| c.is_element() && c.tag_name().name() == "File")
    {
        let href = attr(f, "href").ok_or_else(|| (line(f), "a File without ovf:href".into()))?;
        let num = |name: &str| -> std::result::Result<Option<u64>, SectionError> {
            attr(f, name)
                .map(|v| {
                    v.trim()
                        .parse::<u64>()
                        .map_err(|_| (line(f), format!("ovf:{name} {v:?} is not a number")))
                })
                .transpose()
        };
        files.push(FileRef {
            id: attr(f, "id").unwrap_or_default().to_string(),
            href: href.to_string(),
            size: num("size")?,
            compression: attr(f, "compression").map(str::to_string),
            chunk_size: num("chunkSize")?,
            line: line(f),
        });
    }
    Ok(())
}

/// The `Disk`s of a `DiskSection`.
fn read_disks(n: roxmltree::Node<'_, '_>, disks: &mut Vec<VirtualDisk>) {
    for d in n
        .children()
        .filter(|c| c.is_element() && c.tag_name().name() == "Disk")
    {
        let capacity = attr(d, "capacity").unwrap_or_default().to_string();
        let units = attr(d, "capacityAllocationUnits").map(str::to_string);
        let capacity_bytes = in_bytes(&capacity, units.as_deref());
        disks.push(VirtualDisk {
            disk_id: attr(d, "diskId").unwrap_or_default().to_string(),
            // An empty fileRef (ova-compose writes one for a blank disk) is no fileRef.
            file_ref: attr(d, "fileRef")
                .filter(|r| !r.trim().is_empty())
                .map(str::to_string),
            capacity,
            capacity_units: units,
            capacity_bytes,
            populated_size: attr(d, "populatedSize").and_then(|v| v.trim().parse().ok()),
            format: attr(d, "format").map(str::to_string),
            parent_ref: attr(d, "parentRef").map(str::to_string),
            line: Some(d.document().text_pos_at(d.range().start).row),
        });
    }
}

/// Resolves `ovf:capacity="${key}"`: it names a ProductSection property (DSP0243 section 9.1)
/// whose default value is the capacity.
fn resolve_capacity_properties(root: roxmltree::Node<'_, '_>, disks: &mut [VirtualDisk]) {
    if !disks.iter().any(|d| property_key(&d.capacity).is_some()) {
        return;
    }
    let properties: std::collections::HashMap<&str, &str> = root
        .descendants()
        .filter(|n| n.is_element() && n.tag_name().name() == "Property")
        .filter_map(|n| Some((attr(n, "key")?, attr(n, "value")?)))
        .collect();
    for d in disks {
        if let Some(value) = property_key(&d.capacity).and_then(|k| properties.get(k)) {
            d.capacity_bytes = in_bytes(value, d.capacity_units.as_deref());
        }
    }
}

impl Envelope {
    /// Parses envelope text; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let err = |line: Option<u32>, reason: String| Error::Envelope {
            path: path.to_path_buf(),
            line,
            reason,
        };
        let doc = crate::xml::parse(text).map_err(|(line, reason)| err(line, reason))?;
        let root = doc.root_element();
        if root.tag_name().name() != "Envelope" {
            let name = root.tag_name().name();
            return Err(err(
                Some(1),
                format!("the root element is {name}, not Envelope"),
            ));
        }
        let ns = root.tag_name().namespace().unwrap_or("");
        let version = version_of(ns)
            .ok_or_else(|| err(Some(1), format!("unknown envelope namespace {ns:?}")))?;
        let line = |n: roxmltree::Node<'_, '_>| Some(line_of(&doc, n));
        let mut env = Envelope {
            version: version.to_string(),
            ..Envelope::default()
        };
        for n in root
            .children()
            .filter(|c| c.is_element() && c.tag_name().name() == "DeploymentOptionSection")
        {
            for c in n
                .children()
                .filter(|c| c.is_element() && c.tag_name().name() == "Configuration")
            {
                env.deployment_options.push(DeploymentOption {
                    id: attr(c, "id").unwrap_or_default().to_string(),
                    label: child_text(c, "Label"),
                    description: child_text(c, "Description"),
                    default: attr(c, "default").is_some_and(|d| d == "true"),
                });
            }
        }
        for n in root.children().filter(|c| c.is_element()) {
            match n.tag_name().name() {
                "References" => read_references(n, &line, &mut env.files)
                    .map_err(|(at, reason)| err(at, reason))?,
                "DiskSection" | "Section"
                    if n.tag_name().name() == "DiskSection"
                        || attr(n, "type").is_some_and(|t| t.ends_with("DiskSection_Type")) =>
                {
                    read_disks(n, &mut env.disks)
                }
                "VirtualSystem" | "VirtualSystemCollection" | "Content" => {
                    collect_systems(n, &mut env, 0).map_err(|at| {
                        let depth = MAX_COLLECTION_DEPTH;
                        err(
                            line(at),
                            format!("VirtualSystemCollections nested more than {depth} deep"),
                        )
                    })?
                }
                // Read before the systems, whose summaries take its default configuration.
                "DeploymentOptionSection" => {}
                other => env.other_sections.push(other.to_string()),
            }
        }
        resolve_capacity_properties(root, &mut env.disks);
        for n in root.descendants().filter(|n| n.is_element()) {
            let name = n.tag_name().name();
            if name == "ExtraConfig" {
                env.extra_config_keys
                    .push(attr(n, "key").unwrap_or_default().to_string());
            }
            let parent = n.parent_element().map(|p| p.tag_name().name());
            if matches!(
                parent,
                Some("Envelope" | "VirtualSystem" | "VirtualSystemCollection")
            ) && n
                .attributes()
                .any(|a| a.name() == "required" && a.value() == "true")
            {
                env.required_sections.push(RequiredSection {
                    name: name.to_string(),
                    line: line_of(&doc, n),
                });
            }
        }
        let mut properties = crate::properties::read(root, None);
        properties.append(&mut env.properties);
        env.properties = properties;
        Ok(env)
    }

    /// The `File` a disk lives in.
    pub fn file_of(&self, disk: &VirtualDisk) -> Option<&FileRef> {
        disk.file_ref
            .as_deref()
            .and_then(|r| self.files.iter().find(|f| f.id == r))
    }
}

/// Collects the virtual systems in `n`, at `depth` collections deep; `Err` names the node
/// nested too deep.
fn collect_systems<'a, 'i>(
    n: roxmltree::Node<'a, 'i>,
    env: &mut Envelope,
    depth: usize,
) -> Result<(), roxmltree::Node<'a, 'i>> {
    if depth > MAX_COLLECTION_DEPTH {
        return Err(n);
    }
    let is_system = n.tag_name().name() == "VirtualSystem"
        || attr(n, "type").is_some_and(|t| t.ends_with("VirtualSystem_Type"));
    env.properties
        .extend(crate::properties::read(n, attr(n, "id")));
    if !is_system {
        for c in n.children().filter(|c| c.is_element()) {
            if matches!(
                c.tag_name().name(),
                "VirtualSystem" | "VirtualSystemCollection" | "Content"
            ) {
                collect_systems(c, env, depth + 1)?;
            } else if !env.other_sections.iter().any(|s| s == c.tag_name().name()) {
                env.other_sections.push(c.tag_name().name().to_string());
            }
        }
        return Ok(());
    }
    // The summary describes the default deployment option, as an import deploys it.
    let default = env.default_deployment_option().map(str::to_string);
    let mut s = System {
        id: attr(n, "id").unwrap_or_default().to_string(),
        name: child_text(n, "Name"),
        hardware: crate::hardware::read(n),
        ..System::default()
    };
    for sec in n.children().filter(|c| c.is_element()) {
        match crate::hardware::section_name(sec) {
            "OperatingSystemSection" => {
                s.os = Some(OperatingSystem {
                    id: attr(sec, "id").unwrap_or_default().to_string(),
                    description: child_text(sec, "Description"),
                })
            }
            "VirtualHardwareSection" => summarize_hardware(sec, &mut s, default.as_deref()),
            _ => {}
        }
    }
    env.systems.push(s);
    Ok(())
}

/// The summary of a `VirtualHardwareSection` into `s`: CPUs, memory, drives with their
/// controllers, NICs and controllers, of the items of no deployment option and of `default`'s
/// (as [`crate::hardware::Hardware::select`] keeps them).
fn summarize_hardware(sec: roxmltree::Node<'_, '_>, s: &mut System, default: Option<&str>) {
    let items: Vec<_> = sec
        .children()
        .filter(|c| {
            c.is_element()
                && matches!(
                    c.tag_name().name(),
                    "Item" | "StorageItem" | "EthernetPortItem"
                )
        })
        .filter(|c| match attr(*c, "configuration") {
            None => true,
            Some(list) => default.is_some_and(|d| list.split_whitespace().any(|x| x == d)),
        })
        .collect();
    let controller = |item: roxmltree::Node<'_, '_>| -> Option<String> {
        let rt = child_text(item, "ResourceType").and_then(|t| t.parse::<u32>().ok())?;
        let kind = match rt {
            5 => "IDE",
            6 => "SCSI",
            20 => "SATA",
            _ => return None,
        };
        let sub =
            child_text(item, "ResourceSubType").map_or_else(String::new, |t| format!(" ({t})"));
        Some(format!("{kind}{sub}"))
    };
    for &item in &items {
        let rt = child_text(item, "ResourceType")
            .and_then(|t| t.parse::<u32>().ok())
            .unwrap_or(0);
        let quantity = child_text(item, "VirtualQuantity").and_then(|t| t.parse::<u64>().ok());
        match rt {
            3 => s.cpus = quantity,
            4 => {
                let unit = child_text(item, "AllocationUnits")
                    .and_then(|u| unit_bytes(&u))
                    .unwrap_or(1 << 20);
                s.memory_bytes = quantity.and_then(|q| q.checked_mul(unit));
            }
            17 => {
                let parent = child_text(item, "Parent");
                let on = parent.and_then(|p| {
                    items
                        .iter()
                        // OVF 0.9 spells it InstanceId.
                        .find(|i| {
                            let id = child_text(**i, "InstanceID")
                                .or_else(|| child_text(**i, "InstanceId"));
                            id.as_deref() == Some(p.as_str())
                        })
                        .and_then(|i| controller(*i))
                });
                s.drives.push(DiskDrive {
                    host_resource: child_text(item, "HostResource").unwrap_or_default(),
                    controller: on,
                });
            }
            10 => s
                .nics
                .push(child_text(item, "Connection").unwrap_or_default()),
            _ => {
                if let Some(c) = controller(item) {
                    s.controllers.push(c);
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An envelope the way vSphere writes one (also the editor's round-trip sample).
    pub(crate) const V1: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vmw="http://www.vmware.com/schema/ovf">
  <References><File ovf:href="vm-disk1.vmdk" ovf:id="file1" ovf:size="68608"/></References>
  <DiskSection><Info>Virtual disk information</Info>
    <Disk ovf:capacity="16" ovf:capacityAllocationUnits="byte * 2^30" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized" ovf:populatedSize="0"/>
  </DiskSection>
  <NetworkSection><Info>nets</Info><Network ovf:name="VM Network"/></NetworkSection>
  <VirtualSystem ovf:id="vm"><Info>A VM</Info><Name>vm</Name>
    <OperatingSystemSection ovf:id="101" vmw:osType="otherLinux64Guest"><Info>os</Info><Description>Other Linux (64-bit)</Description></OperatingSystemSection>
    <VirtualHardwareSection><Info>hw</Info>
      <Item><rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>2</rasd:VirtualQuantity></Item>
      <Item><rasd:AllocationUnits>byte * 2^20</rasd:AllocationUnits><rasd:InstanceID>2</rasd:InstanceID><rasd:ResourceType>4</rasd:ResourceType><rasd:VirtualQuantity>4096</rasd:VirtualQuantity></Item>
      <Item><rasd:InstanceID>3</rasd:InstanceID><rasd:ResourceSubType>lsilogic</rasd:ResourceSubType><rasd:ResourceType>6</rasd:ResourceType></Item>
      <Item><rasd:HostResource>ovf:/disk/vmdisk1</rasd:HostResource><rasd:InstanceID>4</rasd:InstanceID><rasd:Parent>3</rasd:Parent><rasd:ResourceType>17</rasd:ResourceType></Item>
      <Item><rasd:Connection>VM Network</rasd:Connection><rasd:InstanceID>5</rasd:InstanceID><rasd:ResourceType>10</rasd:ResourceType></Item>
    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>"#;

    #[test]
    fn reads_a_vsphere_style_envelope() {
        let e = Envelope::parse(V1, Path::new("vm.ovf")).unwrap();
        assert_eq!(e.version, "1.x");
        assert_eq!(
            e.files,
            vec![FileRef {
                id: "file1".into(),
                href: "vm-disk1.vmdk".into(),
                size: Some(68608),
                compression: None,
                chunk_size: None,
                line: Some(3),
            }]
        );
        assert_eq!(e.disks[0].capacity_bytes, Some(16 << 30));
        assert_eq!(e.file_of(&e.disks[0]).unwrap().href, "vm-disk1.vmdk");
        let s = &e.systems[0];
        assert_eq!((s.cpus, s.memory_bytes), (Some(2), Some(4 << 30)));
        assert_eq!(
            s.drives,
            vec![DiskDrive {
                host_resource: "ovf:/disk/vmdisk1".into(),
                controller: Some("SCSI (lsilogic)".to_string())
            }]
        );
        assert_eq!(s.controllers, vec!["SCSI (lsilogic)"]);
        assert_eq!(s.nics, vec!["VM Network"]);
        assert_eq!(s.os.as_ref().unwrap().id, "101");
        assert_eq!(e.other_sections, vec!["NetworkSection"]);
        let v2 = V1.replace("ovf/envelope/1", "ovf/envelope/2");
        assert_eq!(
            Envelope::parse(&v2, Path::new("vm.ovf")).unwrap().version,
            "2.x"
        );
        let v09 = V1.replace(
            "http://schemas.dmtf.org/ovf/envelope/1",
            "http://www.vmware.com/schema/ovf/1/envelope",
        );
        assert_eq!(
            Envelope::parse(&v09, Path::new("vm.ovf"))
                .unwrap()
                .disks
                .len(),
            1
        );
    }

    #[test]
    fn refuses_dtds_unsafe_names_and_garbage() {
        let p = Path::new("x.ovf");
        let dtd = format!(
            "<!DOCTYPE Envelope [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b \"&a;&a;&a;&a;\">]>{}",
            V1.trim_start_matches(r#"<?xml version="1.0" encoding="UTF-8"?>"#)
                .trim_start()
        );
        assert!(matches!(
            Envelope::parse(&dtd, p),
            Err(Error::Envelope { .. })
        ));
        let escape = V1.replace(
            "ovf:href=\"vm-disk1.vmdk\"",
            "ovf:href=\"../../etc/passwd\"",
        );
        // An href leading outside is read and described, never followed here.
        let env = Envelope::parse(&escape, p).unwrap();
        assert_eq!(env.files[0].location(), Err(crate::names::Outside::Parent));
        assert!(Envelope::parse("<Envelope xmlns=\"urn:other\"/>", p).is_err());
        assert!(Envelope::parse("<Envelope", p).is_err());
        assert!(Envelope::parse(&V1.replace("ovf:size=\"68608\"", "ovf:size=\"big\""), p).is_err());
        assert_eq!(unit_bytes("byte * 2^64"), None);
        let huge = V1.replace(
            "ovf:capacity=\"16\"",
            "ovf:capacity=\"18446744073709551615\"",
        );
        assert_eq!(
            Envelope::parse(&huge, p).unwrap().disks[0].capacity_bytes,
            None
        );
    }

    #[test]
    fn a_capacity_may_name_a_property() {
        let text = V1
            .replace("ovf:capacity=\"16\"", "ovf:capacity=\"${disk.size}\"")
            .replace(
                "<VirtualSystem ovf:id=\"vm\">",
                "<VirtualSystem ovf:id=\"vm\"><ProductSection><Info>p</Info><Property ovf:key=\"disk.size\" ovf:type=\"int\" ovf:value=\"2\"/></ProductSection>",
            );
        let env = Envelope::parse(&text, Path::new("p.ovf")).unwrap();
        assert_eq!(env.disks[0].capacity_bytes, Some(2 << 30));
        let unknown = text.replace("${disk.size}", "${other}");
        let env = Envelope::parse(&unknown, Path::new("p.ovf")).unwrap();
        assert_eq!(env.disks[0].capacity_bytes, None);
    }
}
