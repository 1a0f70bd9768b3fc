//! The virtual hardware of a `VirtualSystem` as a typed model: every `Item` of its
//! `VirtualHardwareSection` (DSP0243 §9.8, CIM `ResourceAllocationSettingData`), with what
//! vSphere and VirtualBox add beside them (firmware, secure boot, cores per socket, the guest OS
//! type, `vmw:Config` and `vmw:ExtraConfig`), and the queries the emitters and rules of
//! `ovf-disk` ask of it (which disk a drive holds, a controller's number, a drive's unit).
//!
//! Items that belong to a deployment option (`ovf:configuration="large"`) are kept with it;
//! [`Hardware::select`] keeps those of one configuration.

use crate::units::unit_bytes;
use crate::xml::{attr, child_text};

/// What an `Item` is, by its CIM `ResourceType` (DSP1041 / CIM_ResourceAllocationSettingData)
/// and, for controllers, its `ResourceSubType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum DeviceKind {
    /// 3: processors.
    Cpu,
    /// 4: memory.
    Memory,
    /// 5: an IDE controller.
    IdeController,
    /// 6: a parallel SCSI HBA.
    ScsiController,
    /// 20 with an AHCI subtype: a SATA controller.
    SataController,
    /// 20 with an NVMe subtype (`vmware.nvme.controller`).
    NvmeController,
    /// 23: a USB controller.
    UsbController,
    /// 17: a disk drive.
    Disk,
    /// 15 and 16: a CD or DVD drive.
    CdRom,
    /// 14: a floppy drive.
    Floppy,
    /// 10: an Ethernet adapter.
    Nic,
    /// 24: a graphics controller.
    Video,
    /// 35: a sound card.
    Sound,
    /// 21: a serial port.
    Serial,
    /// 22: a parallel port.
    Parallel,
    /// Anything else: its `ResourceType`.
    Other(u32),
}

impl DeviceKind {
    /// The kind of an item of `resource_type` with `subtype`.
    fn of(resource_type: u32, subtype: Option<&str>) -> Self {
        let sub = subtype.unwrap_or("").to_ascii_lowercase();
        match resource_type {
            3 => Self::Cpu,
            4 => Self::Memory,
            5 => Self::IdeController,
            6 => Self::ScsiController,
            20 if sub.contains("nvme") => Self::NvmeController,
            20 => Self::SataController,
            23 => Self::UsbController,
            17 => Self::Disk,
            15 | 16 => Self::CdRom,
            14 => Self::Floppy,
            10 => Self::Nic,
            24 => Self::Video,
            35 => Self::Sound,
            21 => Self::Serial,
            22 => Self::Parallel,
            other => Self::Other(other),
        }
    }

    /// Whether this is a disk controller.
    pub fn is_controller(self) -> bool {
        matches!(
            self,
            Self::IdeController
                | Self::ScsiController
                | Self::SataController
                | Self::NvmeController
        )
    }
}

/// One `Item` of a `VirtualHardwareSection`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Device {
    /// What it is.
    pub kind: DeviceKind,
    /// `InstanceID`.
    pub instance_id: String,
    /// `ElementName`.
    pub name: Option<String>,
    /// `ResourceSubType`: the controller or NIC model (`lsilogic`, `VmxNet3`, ...).
    pub subtype: Option<String>,
    /// `Parent`: the `InstanceID` of the controller it hangs on.
    pub parent: Option<String>,
    /// `Address`: a controller's bus number.
    pub address: Option<String>,
    /// `AddressOnParent`: a drive's unit on its controller.
    pub address_on_parent: Option<String>,
    /// `HostResource`: `ovf:/disk/ID` for a disk, an ISO's file reference for a CD.
    pub host_resource: Option<String>,
    /// `Connection`: a NIC's network name.
    pub connection: Option<String>,
    /// `VirtualQuantity`: CPUs, or memory in `AllocationUnits`.
    pub quantity: Option<u64>,
    /// `AllocationUnits` as written (`byte * 2^20`).
    pub units: Option<String>,
    /// `vmw:CoresPerSocket` of a CPU item.
    pub cores_per_socket: Option<u64>,
    /// `ovf:configuration`: the deployment options it belongs to (empty: all).
    pub configurations: Vec<String>,
    /// Settings vSphere attaches to the item (`vmw:Config`: `slotInfo.pciSlotNumber`, ...).
    pub config: Vec<(String, String)>,
    /// The line of its element in the descriptor (for findings).
    pub line: Option<u32>,
}

/// Whether a system boots with BIOS or UEFI.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
#[non_exhaustive]
pub enum Firmware {
    /// BIOS (the default when nothing says).
    #[default]
    Bios,
    /// UEFI.
    Efi,
}

/// The hardware of a `VirtualSystem`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Hardware {
    /// `VirtualSystemType` (`vmx-13`, `virtualbox-2.2`; several separated by spaces).
    pub system_type: Option<String>,
    /// BIOS or UEFI: vSphere's `vmw:Config firmware`, VirtualBox's `Firmware type`, or a
    /// `firmware` attribute of the hardware section.
    pub firmware: Firmware,
    /// Secure boot, where the package says (`bootOptions.efiSecureBootEnabled`).
    pub secure_boot: bool,
    /// The guest OS type of the hypervisor that wrote the package: `vmw:osType`
    /// (`debian12_64Guest`) or `vbox:OSType` (`Debian_64`).
    pub os_type: Option<String>,
    /// The `OperatingSystemSection`'s CIM id (DSP0243 §9.7).
    pub os_id: Option<u32>,
    /// Every item, in order.
    pub devices: Vec<Device>,
    /// `vmw:Config` and `vmw:ExtraConfig` settings of the section, key and value.
    pub extra_config: Vec<(String, String)>,
}

impl Hardware {
    /// The hardware of deployment option `configuration`: items of no configuration, or of
    /// this one; with `None`, only items of no configuration.
    pub fn select(&self, configuration: Option<&str>) -> Hardware {
        let mut h = self.clone();
        h.devices.retain(|d| {
            d.configurations.is_empty()
                || configuration.is_some_and(|c| d.configurations.iter().any(|x| x == c))
        });
        h
    }

    /// The devices of `kind`.
    pub fn of(&self, kind: DeviceKind) -> impl Iterator<Item = &Device> {
        self.devices.iter().filter(move |d| d.kind == kind)
    }

    /// Virtual CPUs (the last CPU item's quantity).
    pub fn cpus(&self) -> Option<u64> {
        self.of(DeviceKind::Cpu).filter_map(|d| d.quantity).last()
    }

    /// Cores per socket, where the package says.
    pub fn cores_per_socket(&self) -> Option<u64> {
        self.of(DeviceKind::Cpu)
            .filter_map(|d| d.cores_per_socket)
            .last()
    }

    /// Memory in bytes (the last memory item's quantity in its units; MiB when unstated).
    pub fn memory_bytes(&self) -> Option<u64> {
        let d = self.of(DeviceKind::Memory).last()?;
        let unit = d.units.as_deref().and_then(unit_bytes).unwrap_or(1 << 20);
        d.quantity?.checked_mul(unit)
    }

    /// The newest `vmx-NN` the `VirtualSystemType` names (it may list several), if any.
    pub fn vmx_version(&self) -> Option<u32> {
        self.system_type
            .as_deref()
            .unwrap_or("")
            .split_whitespace()
            .filter_map(|t| t.strip_prefix("vmx-")?.parse::<u32>().ok())
            .max()
    }

    /// The device whose `InstanceID` is `id`.
    pub fn device(&self, id: &str) -> Option<&Device> {
        self.devices.iter().find(|d| d.instance_id == id)
    }

    /// The controller `device` hangs on.
    pub fn controller_of(&self, device: &Device) -> Option<&Device> {
        self.device(device.parent.as_deref()?)
            .filter(|c| c.kind.is_controller())
    }

    /// A `vmw:Config` or `vmw:ExtraConfig` value, by key (any case).
    pub fn config(&self, key: &str) -> Option<&str> {
        self.extra_config
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }
}

/// A `vmw:Config` / `vmw:ExtraConfig` element's key and value.
fn config_pair(n: roxmltree::Node<'_, '_>) -> Option<(String, String)> {
    matches!(n.tag_name().name(), "Config" | "ExtraConfig").then_some(())?;
    Some((
        attr(n, "key")?.to_string(),
        attr(n, "value").unwrap_or_default().to_string(),
    ))
}

/// Reads one item of a hardware section.
fn device(item: roxmltree::Node<'_, '_>) -> Device {
    let resource_type = child_text(item, "ResourceType")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let subtype = child_text(item, "ResourceSubType");
    Device {
        kind: DeviceKind::of(resource_type, subtype.as_deref()),
        // OVF 0.9 spells it InstanceId and names items by their Caption.
        instance_id: child_text(item, "InstanceID")
            .or_else(|| child_text(item, "InstanceId"))
            .unwrap_or_default(),
        name: child_text(item, "ElementName").or_else(|| child_text(item, "Caption")),
        subtype,
        parent: child_text(item, "Parent"),
        address: child_text(item, "Address"),
        address_on_parent: child_text(item, "AddressOnParent"),
        host_resource: child_text(item, "HostResource"),
        connection: child_text(item, "Connection"),
        quantity: child_text(item, "VirtualQuantity").and_then(|q| q.parse().ok()),
        units: child_text(item, "AllocationUnits"),
        cores_per_socket: child_text(item, "CoresPerSocket").and_then(|c| c.parse().ok()),
        configurations: attr(item, "configuration")
            .map(|c| c.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default(),
        config: item.children().filter_map(config_pair).collect(),
        line: Some(item.document().text_pos_at(item.range().start).row),
    }
}

/// A section's name, also as OVF 0.9 writes it: `<Section xsi:type="ovf:VirtualHardwareSection_Type">`
/// is a `VirtualHardwareSection`.
pub(crate) fn section_name<'a>(sec: roxmltree::Node<'a, '_>) -> &'a str {
    match sec.tag_name().name() {
        "Section" => attr(sec, "type")
            .map(|t| t.rsplit(':').next().unwrap_or(t))
            .and_then(|t| t.strip_suffix("_Type"))
            .unwrap_or("Section"),
        other => other,
    }
}

/// Reads the hardware of the `VirtualSystem` node `system`.
pub(crate) fn read(system: roxmltree::Node<'_, '_>) -> Hardware {
    let mut h = Hardware::default();
    for sec in system.children().filter(|c| c.is_element()) {
        match section_name(sec) {
            "OperatingSystemSection" => {
                h.os_id = attr(sec, "id").and_then(|i| i.parse().ok());
                h.os_type = attr(sec, "osType")
                    .map(str::to_string)
                    .or_else(|| child_text(sec, "OSType"));
            }
            "VirtualHardwareSection" => {
                if attr(sec, "firmware").is_some_and(|f| f.eq_ignore_ascii_case("efi")) {
                    h.firmware = Firmware::Efi;
                }
                for n in sec.children().filter(|c| c.is_element()) {
                    match n.tag_name().name() {
                        "System" => {
                            h.system_type = child_text(n, "VirtualSystemType");
                        }
                        "Item" | "StorageItem" | "EthernetPortItem" => h.devices.push(device(n)),
                        _ => h.extra_config.extend(config_pair(n)),
                    }
                }
            }
            // VirtualBox's own description of the machine.
            "Machine" => {
                let efi = sec.descendants().any(|d| {
                    d.tag_name().name() == "Firmware"
                        && attr(d, "type")
                            .is_some_and(|t| t.to_ascii_uppercase().starts_with("EFI"))
                });
                if efi {
                    h.firmware = Firmware::Efi;
                }
            }
            _ => {}
        }
    }
    if h.config("firmware")
        .is_some_and(|f| f.eq_ignore_ascii_case("efi"))
    {
        h.firmware = Firmware::Efi;
    }
    h.secure_boot = h
        .config("bootOptions.efiSecureBootEnabled")
        .or_else(|| h.config("uefi.secureBoot.enabled"))
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    h
}

// Queries over the devices, shared by the emitters and the rules.

/// The disk id an item's `HostResource` names (`ovf:/disk/ID`, `/disk/ID`): how a drive is
/// linked to its `DiskSection/Disk`.
pub fn disk_id_of(device: &Device) -> Option<&str> {
    let r = device.host_resource.as_deref()?;
    r.strip_prefix("ovf:/disk/")
        .or_else(|| r.strip_prefix("/disk/"))
}

/// How a controller or NIC subtype reads, lower-cased without separators. A subtype may list
/// several models separated by spaces (`VMXNET3 virtio`: any of them will do); `pick` says
/// which ones are known, and the first known one is returned (the first one when none is).
pub fn norm_with(subtype: Option<&str>, pick: impl Fn(&str) -> bool) -> String {
    let tokens: Vec<String> = subtype
        .unwrap_or("")
        .split_whitespace()
        .map(|t| {
            t.chars()
                .filter(|c| c.is_ascii_alphanumeric())
                .collect::<String>()
                .to_ascii_lowercase()
        })
        .collect();
    tokens
        .iter()
        .find(|t| pick(t))
        .or(tokens.first())
        .cloned()
        .unwrap_or_default()
}

/// [`norm_with`] for the controller and NIC models the emitters (libvirt, `.vmx`) know.
pub fn norm(subtype: Option<&str>) -> String {
    const KNOWN: [&str; 14] = [
        "lsilogic",
        "lsilogicsas",
        "lsisas1068",
        "virtualscsi",
        "pvscsi",
        "buslogic",
        "e1000",
        "e1000e",
        "vmxnet3",
        "vmxnet",
        "vmxnet2",
        "pcnet32",
        "virtio",
        "ahci",
    ];
    norm_with(subtype, |t| KNOWN.contains(&t))
}

/// A device named for messages: `ElementName` (`InstanceID`).
pub fn named(d: &Device) -> String {
    match &d.name {
        Some(n) => format!("{n} (item {})", d.instance_id),
        None => format!("item {}", d.instance_id),
    }
}

/// The number of a controller among those of its kind: its `Address` when it is a number,
/// else its position.
pub fn controller_index(h: &Hardware, controller: &Device) -> u32 {
    if let Some(a) = controller.address.as_deref().and_then(|a| a.parse().ok()) {
        return a;
    }
    h.of(controller.kind)
        .position(|c| c.instance_id == controller.instance_id)
        .and_then(|p| u32::try_from(p).ok())
        .unwrap_or(0)
}

/// A drive's unit on its controller: `AddressOnParent` when it is a number, else its position
/// among the drives on that controller.
pub fn unit_of(h: &Hardware, drive: &Device) -> u32 {
    if let Some(u) = drive
        .address_on_parent
        .as_deref()
        .and_then(|a| a.parse().ok())
    {
        return u;
    }
    h.devices
        .iter()
        .filter(|d| d.parent.is_some() && d.parent == drive.parent)
        .position(|d| d.instance_id == drive.instance_id)
        .and_then(|p| u32::try_from(p).ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::Envelope;
    use std::path::Path;

    #[test]
    fn reads_vsphere_hardware() {
        let text = crate::envelope::tests::V1.replace(
            "<Item><rasd:AllocationUnits>hertz",
            "<vmw:Config ovf:required=\"false\" vmw:key=\"firmware\" vmw:value=\"efi\"/><Item><rasd:AllocationUnits>hertz",
        );
        let e = Envelope::parse(&text, Path::new("vm.ovf")).unwrap();
        let h = &e.systems[0].hardware;
        assert_eq!(h.firmware, Firmware::Efi);
        assert_eq!(h.cpus(), Some(2));
        assert_eq!(h.memory_bytes(), Some(4 << 30));
        assert_eq!(h.os_id, Some(101));
        assert_eq!(h.os_type.as_deref(), Some("otherLinux64Guest"));
        let disk = h.of(DeviceKind::Disk).next().unwrap();
        let c = h.controller_of(disk).unwrap();
        assert_eq!(
            (c.kind, c.subtype.as_deref()),
            (DeviceKind::ScsiController, Some("lsilogic"))
        );
        assert_eq!(h.of(DeviceKind::Nic).count(), 1);
    }

    #[test]
    fn keeps_the_items_of_one_configuration() {
        let text = crate::envelope::tests::V1.replace(
            "<Item><rasd:AllocationUnits>hertz * 10^6</rasd:AllocationUnits><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>2</rasd:VirtualQuantity></Item>",
            "<Item ovf:configuration=\"small\"><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>1</rasd:VirtualQuantity></Item><Item ovf:configuration=\"large huge\"><rasd:InstanceID>1</rasd:InstanceID><rasd:ResourceType>3</rasd:ResourceType><rasd:VirtualQuantity>8</rasd:VirtualQuantity><vmw:CoresPerSocket ovf:required=\"false\">4</vmw:CoresPerSocket></Item>",
        );
        let e = Envelope::parse(&text, Path::new("vm.ovf")).unwrap();
        let h = &e.systems[0].hardware;
        assert_eq!(h.select(Some("small")).cpus(), Some(1));
        assert_eq!(h.select(Some("huge")).cpus(), Some(8));
        assert_eq!(h.select(Some("huge")).cores_per_socket(), Some(4));
        assert_eq!(h.select(None).cpus(), None);
    }
}
