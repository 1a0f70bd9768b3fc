//! The configuration of a VM on another hypervisor, from a package's `VirtualSystem`: a libvirt
//! domain ([`libvirt_domain`]) or a VMware `.vmx` ([`vmx_config`]), naming the disks an import
//! wrote. Whatever cannot be expressed on the target is listed in [`Emitted::unmapped`], never
//! dropped silently.

#[cfg(feature = "write")]
pub(crate) mod iso;
mod libvirt;
mod vmx;

use std::path::PathBuf;

pub use libvirt::libvirt_domain;
pub use vmx::vmx_config;

use ovf::hardware::{Device, DeviceKind, Hardware};

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

/// A disk the configuration names: the package's disk id, the file written for it, and its
/// format.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EmitDisk {
    /// The envelope's `ovf:diskId`.
    pub disk_id: String,
    /// The file to name: absolute for libvirt, the file name for a `.vmx` beside it.
    pub path: PathBuf,
    /// The file's format as QEMU and libvirt name it: `vmdk` (a descriptor), `raw` or `qcow2`.
    pub format: String,
}

impl EmitDisk {
    /// A disk of id `disk_id` written at `path` in `format` (`vmdk`, `raw`, `qcow2`).
    pub fn new(
        disk_id: impl Into<String>,
        path: impl Into<PathBuf>,
        format: impl Into<String>,
    ) -> Self {
        Self {
            disk_id: disk_id.into(),
            path: path.into(),
            format: format.into(),
        }
    }

    /// Whether the file is a VMDK descriptor.
    pub fn is_vmdk(&self) -> bool {
        self.format == "vmdk"
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

/// Items no emitter expresses (kinds other than the ones it handles), for the unmapped list.
pub(crate) fn other_items(h: &Hardware) -> impl Iterator<Item = &Device> {
    h.devices
        .iter()
        .filter(|d| matches!(d.kind, DeviceKind::Other(_)))
}
