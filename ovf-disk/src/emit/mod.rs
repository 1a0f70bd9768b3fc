//! The configuration of a VM on another hypervisor, from a package's `VirtualSystem`: a libvirt
//! domain ([`libvirt_domain`]) or a VMware `.vmx` ([`vmx_config`]), naming the disks an import
//! wrote. Whatever cannot be expressed on the target is listed in [`Emitted::unmapped`], never
//! dropped silently.

mod libvirt;
mod vmx;

use std::path::PathBuf;

pub use libvirt::libvirt_domain;
pub use vmx::{vmx_config, VmxWriter};

use crate::package::hardware::{Device, DeviceKind, Hardware};

/// What configuration an import writes beside the disks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
#[non_exhaustive]
pub enum Emit {
    /// A libvirt domain XML per virtual system (`NAME.xml`).
    Libvirt,
    /// A VMware `.vmx` per virtual system (`NAME.vmx`).
    Vmx,
}

/// A disk the configuration names: the package's disk id, the file written for it, and
/// whether it is raw (else a VMDK descriptor).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EmitDisk {
    /// The envelope's `ovf:diskId`.
    pub disk_id: String,
    /// The file to name: absolute for libvirt, the file name for a `.vmx` beside it.
    pub path: PathBuf,
    /// Raw image (else a VMDK).
    pub raw: bool,
}

impl EmitDisk {
    /// A disk of id `disk_id` written at `path`.
    pub fn new(disk_id: impl Into<String>, path: impl Into<PathBuf>, raw: bool) -> Self {
        Self {
            disk_id: disk_id.into(),
            path: path.into(),
            raw,
        }
    }
}

/// An emitted configuration: its text and what of the package it could not express.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Emitted {
    /// The configuration's text.
    pub text: String,
    /// Devices and settings not carried over, each with why.
    pub unmapped: Vec<String>,
}

/// The disk id an item's `HostResource` names (`ovf:/disk/ID`, `/disk/ID`).
pub(crate) fn disk_id_of(device: &Device) -> Option<&str> {
    let r = device.host_resource.as_deref()?;
    r.strip_prefix("ovf:/disk/")
        .or_else(|| r.strip_prefix("/disk/"))
}

/// How a controller or NIC subtype reads, lower-cased without separators. A subtype may list
/// several models separated by spaces (`VMXNET3 virtio`: any of them will do); `pick` says
/// which ones are known, and the first known one is returned (the first one when none is).
pub(crate) fn norm_with(subtype: Option<&str>, pick: impl Fn(&str) -> bool) -> String {
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

/// [`norm_with`] for the controller and NIC models the emitters know.
pub(crate) fn norm(subtype: Option<&str>) -> String {
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
pub(crate) fn named(d: &Device) -> String {
    match &d.name {
        Some(n) => format!("{n} (item {})", d.instance_id),
        None => format!("item {}", d.instance_id),
    }
}

/// The number of a controller among those of its kind: its `Address` when it is a number,
/// else its position.
pub(crate) fn controller_index(h: &Hardware, controller: &Device) -> u32 {
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
pub(crate) fn unit_of(h: &Hardware, drive: &Device) -> u32 {
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

/// Items no emitter expresses (kinds other than the ones it handles), for the unmapped list.
pub(crate) fn other_items(h: &Hardware) -> impl Iterator<Item = &Device> {
    h.devices
        .iter()
        .filter(|d| matches!(d.kind, DeviceKind::Other(_)))
}
