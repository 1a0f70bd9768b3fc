//! A VMware `.vmx` for Workstation or ESXi from a package's virtual system, naming the thick
//! disks an import wrote beside it, written through [`VmxWriter`] (keys checked, every value
//! escaped the way VMware escapes: `|` and two hex digits for `"`, `|`, `#` and control
//! characters).

use super::{other_items, EmitDisk, Emitted};
use crate::error::Result;
use crate::vm::VmxWriter;
use ovf::envelope::System;
use ovf::hardware::{controller_index, disk_id_of, named, norm, unit_of};
use ovf::hardware::{Device, DeviceKind, Firmware, Hardware};

/// The `virtualHW.version` written when the package names none (`vmx-10`: ESXi 5.5 and
/// Workstation 10 on).
const DEFAULT_HW_VERSION: u32 = 10;

/// vSphere's `guestOS` value for an `osType` (`debian12_64Guest` → `debian12-64`); VirtualBox
/// types map to the nearest generic one.
fn guest_os(h: &Hardware) -> (String, Option<String>) {
    let Some(t) = h.os_type.as_deref() else {
        return (
            "other-64".into(),
            Some("no guest OS type stated: other-64".into()),
        );
    };
    if let Some(stem) = t.strip_suffix("Guest") {
        return (stem.replace("_64", "-64").to_ascii_lowercase(), None);
    }
    let lower = t.to_ascii_lowercase();
    let bits = if lower.ends_with("_64") { "-64" } else { "" };
    let family = [
        ("debian", "debian10"),
        ("ubuntu", "ubuntu"),
        ("redhat", "rhel8"),
        ("fedora", "fedora"),
        ("opensuse", "opensuse"),
        ("windows10", "windows9"),
        ("windows11", "windows11"),
        ("windows2019", "windows2019srv"),
        ("freebsd", "freebsd"),
        ("linux", "otherlinux"),
    ]
    .into_iter()
    .find(|(k, _)| lower.starts_with(k))
    .map(|(_, v)| v);
    match family {
        Some(f) => (
            format!("{f}{bits}"),
            Some(format!(
                "guest OS {t}: written as the nearest vSphere type, {f}{bits}"
            )),
        ),
        None => (
            format!("other{bits}"),
            Some(format!(
                "guest OS {t}: no vSphere type maps to it: other{bits}"
            )),
        ),
    }
}

/// The `virtualHW.version` of `system_type` (`vmx-13 vmx-19`: the highest), capped at `cap`.
fn hw_version(h: &Hardware, cap: Option<u32>, unmapped: &mut Vec<String>) -> u32 {
    let v = h.vmx_version().unwrap_or_else(|| {
        unmapped.push(format!(
            "system type {:?} names no vmx-NN: virtualHW.version {DEFAULT_HW_VERSION}",
            h.system_type.as_deref().unwrap_or("")
        ));
        DEFAULT_HW_VERSION
    });
    match cap {
        Some(c) if c < v => c,
        _ => v,
    }
}

/// The VMX device prefix of a drive's controller (`scsi0`, `sata0`, `nvme0`, `ide1`).
fn bus_of(h: &Hardware, d: &Device) -> Option<String> {
    let c = h.controller_of(d)?;
    let kind = match c.kind {
        DeviceKind::ScsiController => "scsi",
        DeviceKind::SataController => "sata",
        DeviceKind::NvmeController => "nvme",
        DeviceKind::IdeController => "ide",
        _ => return None,
    };
    Some(format!("{kind}{}", controller_index(h, c)))
}

/// The `.vmx` of `system` (hardware `h`, one configuration selected), its disks written as
/// `disks` (file names beside the `.vmx`), `virtualHW.version` at most `hw_cap`.
pub fn vmx_config(
    system: &System,
    h: &Hardware,
    disks: &[EmitDisk],
    hw_cap: Option<u32>,
) -> Result<Emitted> {
    let mut unmapped = Vec::new();
    let mut w = VmxWriter::new();
    set_machine(&mut w, system, h, hw_cap, &mut unmapped)?;
    set_controllers(&mut w, h, &mut unmapped)?;
    set_drives(&mut w, h, disks, &mut unmapped)?;
    set_other_devices(&mut w, h, &mut unmapped)?;
    Ok(Emitted {
        text: w.finish(),
        unmapped,
    })
}

/// The machine: configuration and hardware versions, name, guest OS, CPUs, memory, firmware.
fn set_machine(
    w: &mut VmxWriter,
    system: &System,
    h: &Hardware,
    hw_cap: Option<u32>,
    unmapped: &mut Vec<String>,
) -> Result<()> {
    w.set("config.version", "8")?;
    let version = hw_version(h, hw_cap, unmapped);
    w.set("virtualHW.version", version.to_string())?;
    let name = system.name.as_deref().unwrap_or(&system.id);
    w.set("displayName", name)?;
    let (guest, note) = guest_os(h);
    unmapped.extend(note);
    w.set("guestOS", guest)?;
    let cpus = h.cpus().unwrap_or(1).max(1);
    w.set("numvcpus", cpus.to_string())?;
    if let Some(c) = h.cores_per_socket() {
        w.set("cpuid.coresPerSocket", c.to_string())?;
    }
    let memory = h.memory_bytes().unwrap_or(1 << 30).div_ceil(1 << 20);
    w.set("memSize", memory.to_string())?;
    if h.firmware == Firmware::Efi {
        w.set("firmware", "efi")?;
        // Stated either way, as the OVF says (unstated: off).
        let enabled = if h.secure_boot { "TRUE" } else { "FALSE" };
        w.set("uefi.secureBoot.enabled", enabled)?;
    }
    Ok(())
}

/// The SCSI, SATA and NVMe controllers (IDE is always there).
fn set_controllers(w: &mut VmxWriter, h: &Hardware, unmapped: &mut Vec<String>) -> Result<()> {
    for c in h.devices.iter().filter(|d| d.kind.is_controller()) {
        let index = controller_index(h, c);
        match c.kind {
            DeviceKind::ScsiController => {
                let model = match norm(c.subtype.as_deref()).as_str() {
                    "lsilogic" => "lsilogic",
                    "lsilogicsas" | "lsisas1068" => "lsisas1068",
                    "virtualscsi" | "pvscsi" => "pvscsi",
                    "buslogic" => "buslogic",
                    "virtio" => {
                        unmapped.push(format!(
                            "{}: virtio SCSI, which VMware has not: LSI Logic",
                            named(c)
                        ));
                        "lsilogic"
                    }
                    _ => {
                        unmapped.push(format!("{}: an unknown SCSI model: LSI Logic", named(c)));
                        "lsilogic"
                    }
                };
                w.set(&format!("scsi{index}.present"), "TRUE")?;
                w.set(&format!("scsi{index}.virtualDev"), model)?;
            }
            DeviceKind::SataController => {
                w.set(&format!("sata{index}.present"), "TRUE")?;
            }
            DeviceKind::NvmeController => {
                w.set(&format!("nvme{index}.present"), "TRUE")?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Disks and CD-ROMs on their controllers; a disk the import did not write, or wrote raw, is
/// left out and listed.
fn set_drives(
    w: &mut VmxWriter,
    h: &Hardware,
    disks: &[EmitDisk],
    unmapped: &mut Vec<String>,
) -> Result<()> {
    for d in &h.devices {
        if !matches!(d.kind, DeviceKind::Disk | DeviceKind::CdRom) {
            continue;
        }
        let Some(bus) = bus_of(h, d) else {
            unmapped.push(format!(
                "{}: no controller found for it: left out",
                named(d)
            ));
            continue;
        };
        let device = format!("{bus}:{}", unit_of(h, d));
        if d.kind == DeviceKind::Disk {
            let Some(disk) = disk_id_of(d).and_then(|id| disks.iter().find(|x| x.disk_id == id))
            else {
                unmapped.push(format!(
                    "{}: names {:?}, which the import did not write: left out",
                    named(d),
                    d.host_resource.as_deref().unwrap_or("")
                ));
                continue;
            };
            if !disk.is_vmdk() {
                unmapped.push(format!(
                    "{}: a {} image, which a .vmx cannot name: left out (import as VMDK)",
                    named(d),
                    disk.format
                ));
                continue;
            }
            w.set(&format!("{device}.present"), "TRUE")?;
            w.set(&format!("{device}.fileName"), disk.path.to_string_lossy())?;
        } else {
            w.set(&format!("{device}.present"), "TRUE")?;
            w.set(&format!("{device}.deviceType"), "atapi-cdrom")?;
            w.set(&format!("{device}.fileName"), "auto detect")?;
            w.set(&format!("{device}.startConnected"), "FALSE")?;
        }
    }
    Ok(())
}

/// Floppies, NICs, USB, sound, serial ports; parallel ports and unknown items listed.
fn set_other_devices(w: &mut VmxWriter, h: &Hardware, unmapped: &mut Vec<String>) -> Result<()> {
    for (i, f) in h.of(DeviceKind::Floppy).enumerate() {
        let _ = f;
        w.set(&format!("floppy{i}.present"), "TRUE")?;
        w.set(&format!("floppy{i}.startConnected"), "FALSE")?;
        w.set(&format!("floppy{i}.fileType"), "device")?;
        w.set(&format!("floppy{i}.fileName"), "auto detect")?;
    }
    for (i, n) in h.of(DeviceKind::Nic).enumerate() {
        let model = match norm(n.subtype.as_deref()).as_str() {
            "e1000" => "e1000",
            "e1000e" => "e1000e",
            "vmxnet3" => "vmxnet3",
            "vmxnet" | "vmxnet2" => "vmxnet",
            "pcnet32" | "pcnet" | "vlance" | "amd79c970a" | "amd79c973" => "vlance",
            _ => {
                unmapped.push(format!("{}: model {:?}: e1000", named(n), n.subtype));
                "e1000"
            }
        };
        w.set(&format!("ethernet{i}.present"), "TRUE")?;
        w.set(&format!("ethernet{i}.virtualDev"), model)?;
        if let Some(net) = &n.connection {
            w.set(&format!("ethernet{i}.networkName"), net)?;
        }
        w.set(&format!("ethernet{i}.addressType"), "generated")?;
    }
    if h.of(DeviceKind::UsbController).next().is_some() {
        w.set("usb.present", "TRUE")?;
    }
    if let Some(s) = h.of(DeviceKind::Sound).next() {
        let _ = s;
        w.set("sound.present", "TRUE")?;
        w.set("sound.virtualDev", "hdaudio")?;
    }
    for (i, _) in h.of(DeviceKind::Serial).enumerate() {
        w.set(&format!("serial{i}.present"), "TRUE")?;
        w.set(&format!("serial{i}.startConnected"), "FALSE")?;
    }
    for d in h.of(DeviceKind::Parallel) {
        unmapped.push(format!("{}: a parallel port, not carried over", named(d)));
    }
    for d in other_items(h) {
        if let DeviceKind::Other(rt) = d.kind {
            unmapped.push(format!(
                "{}: ResourceType {rt}, not known here: not carried over",
                named(d)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn values_are_escaped_and_read_back() {
        let mut w = VmxWriter::new();
        w.set("displayName", "a \"b\" | #c\n").unwrap();
        w.set("numvcpus", "2").unwrap();
        w.set("numvcpus", "4").unwrap();
        assert!(w.set("bad key", "x").is_err());
        assert!(w.set("a=b", "x").is_err());
        let text = w.finish();
        assert_eq!(
            text,
            ".encoding = \"UTF-8\"\ndisplayName = \"a |22b|22 |7C |23c|0A\"\nnumvcpus = \"4\"\n"
        );
        let vm = crate::vm::Vm::parse(&text, Path::new("x.vmx")).unwrap();
        assert_eq!(vm.name.as_deref(), Some("a \"b\" | #c\n"));
        assert_eq!(vm.cpus, 4);
    }
}
