//! A libvirt domain (<https://libvirt.org/formatdomain.html>) for QEMU/KVM from a package's
//! virtual system, written through quick-xml's `Writer` (every value escaped; a value XML 1.0
//! cannot carry is refused).
//!
//! Mapping to what QEMU offers: SCSI `lsilogic` → `lsilogic`, `lsilogicsas` → `lsisas1068`,
//! `VirtualSCSI` (pvscsi) → `vmpvscsi`, `buslogic` → `lsilogic` (QEMU has no BusLogic), others →
//! `virtio-scsi`; SATA/AHCI → `sata`; IDE → `ide` (the `pc` machine type, since `q35` has no
//! IDE); NVMe → `virtio` disks (libvirt 9, the schema checked here, has no NVMe disk bus). NICs:
//! `E1000` → `e1000`, `E1000e` → `e1000e`, `VmxNet3` → `vmxnet3`, `PCNet32` → `pcnet`,
//! `VmxNet`/`VmxNet2` → `vmxnet3`, `virtio` → `virtio`. Every substitution and every item not
//! carried over is listed in [`Emitted::unmapped`].

use std::io::Write;

use quick_xml::events::{BytesText, Event};
use quick_xml::Writer;

use super::{other_items, EmitDisk, Emitted};
use crate::error::{Error, Result};
use ovf::envelope::System;
use ovf::hardware::{controller_index, disk_id_of, named, norm, unit_of};
use ovf::hardware::{Device, DeviceKind, Firmware, Hardware};
use ovf::write::{escape_attribute, escape_text, escaped_attribute};

/// The libosinfo namespace of a domain's `<metadata>`.
const LIBOSINFO: &str = "http://libosinfo.org/xmlns/libvirt/domain/1.0";

/// The libosinfo id of a guest, from vSphere's `osType` or VirtualBox's `OSType`, where one
/// maps (<https://gitlab.com/libosinfo/osinfo-db>).
fn libosinfo_id(os_type: &str) -> Option<&'static str> {
    let t = os_type.to_ascii_lowercase();
    let table: [(&str, &str); 27] = [
        ("debian12", "http://debian.org/debian/12"),
        ("debian11", "http://debian.org/debian/11"),
        ("debian10", "http://debian.org/debian/10"),
        ("debian9", "http://debian.org/debian/9"),
        ("debian8", "http://debian.org/debian/8"),
        ("rhel9", "http://redhat.com/rhel/9.0"),
        ("rhel8", "http://redhat.com/rhel/8.0"),
        ("rhel7", "http://redhat.com/rhel/7.0"),
        ("rhel6", "http://redhat.com/rhel/6.0"),
        ("centos6", "http://centos.org/centos/6.0"),
        ("ubuntu64", "http://libosinfo.org/linux/2022"),
        ("centos8", "http://centos.org/centos/8"),
        ("centos7", "http://centos.org/centos/7.0"),
        ("rockylinux", "http://rockylinux.org/rocky/9"),
        ("almalinux", "http://almalinux.org/almalinux/9"),
        ("sles15", "http://suse.com/sles/15"),
        ("sles12", "http://suse.com/sles/12"),
        ("windows2019srvnext", "http://microsoft.com/win/2k22"),
        ("windows2019srv", "http://microsoft.com/win/2k19"),
        ("windows9srv", "http://microsoft.com/win/2k16"),
        ("windows11", "http://microsoft.com/win/11"),
        ("windows9", "http://microsoft.com/win/10"),
        ("windows8srv", "http://microsoft.com/win/2k12r2"),
        ("windows7", "http://microsoft.com/win/7"),
        ("freebsd13", "http://freebsd.org/freebsd/13.0"),
        ("freebsd12", "http://freebsd.org/freebsd/12.0"),
        ("ubuntu", "http://libosinfo.org/linux/2022"),
    ];
    if let Some((_, id)) = table.iter().find(|(k, _)| t.starts_with(k)) {
        return Some(id);
    }
    // Generic Linux guests (vSphere's otherLinux64Guest, other5xLinux64Guest, VirtualBox's
    // Linux_64): libosinfo's generic Linux of the decade.
    (t.contains("linux")).then_some("http://libosinfo.org/linux/2022")
}

/// libvirt's SCSI controller model for an OVF subtype, and whether it is a substitution.
fn scsi_model(subtype: Option<&str>) -> (&'static str, Option<&'static str>) {
    match norm(subtype).as_str() {
        "lsilogic" => ("lsilogic", None),
        "lsilogicsas" | "lsisas1068" => ("lsisas1068", None),
        "virtualscsi" | "pvscsi" | "vmpvscsi" => ("vmpvscsi", None),
        "buslogic" => (
            "lsilogic",
            Some("QEMU has no BusLogic controller: LSI Logic instead"),
        ),
        "virtio" | "virtioscsi" => ("virtio-scsi", None),
        _ => (
            "virtio-scsi",
            Some("an unknown SCSI model: virtio-scsi instead"),
        ),
    }
}

/// The SCSI controllers (libvirt models) OVMF, the EFI firmware distributions ship, cannot boot
/// from, named for the note: it has a driver for virtio-scsi only (edk2 builds its LSI, MPT and
/// PVSCSI drivers only when asked; Debian's does not). Booting the domains showed it: OVMF
/// falls back to its shell (ovf-disk/tests/boot.rs).
fn ovmf_cannot_boot(model: &str) -> Option<&'static str> {
    match model {
        "vmpvscsi" => Some("VMware's paravirtual SCSI"),
        "lsilogic" => Some("LSI Logic's parallel SCSI (the LSI 53C895A QEMU emulates)"),
        "lsisas1068" => Some("LSI Logic SAS (the SAS1068 QEMU emulates)"),
        _ => None,
    }
}

/// libvirt's NIC model for an OVF subtype, and whether it is a substitution.
fn nic_model(subtype: Option<&str>) -> (&'static str, Option<&'static str>) {
    match norm(subtype).as_str() {
        "e1000" => ("e1000", None),
        "e1000e" => ("e1000e", None),
        "vmxnet3" => ("vmxnet3", None),
        "pcnet32" | "pcnet" | "vlance" | "amd79c970a" | "amd79c973" => ("pcnet", None),
        "vmxnet" | "vmxnet2" => ("vmxnet3", Some("QEMU has no vmxnet2: vmxnet3 instead")),
        "virtio" | "virtionet" => ("virtio", None),
        "" => ("e1000", Some("no model stated: e1000")),
        _ => ("e1000", Some("an unknown model: e1000 instead")),
    }
}

/// The bus a drive's controller gives it on QEMU.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Bus {
    Scsi,
    Sata,
    Ide,
    Virtio,
    Fdc,
}

impl Bus {
    fn name(self) -> &'static str {
        match self {
            Self::Scsi => "scsi",
            Self::Sata => "sata",
            Self::Ide => "ide",
            Self::Virtio => "virtio",
            Self::Fdc => "fdc",
        }
    }

    /// The prefix of target device names on this bus.
    fn prefix(self) -> &'static str {
        match self {
            Self::Scsi | Self::Sata => "sd",
            Self::Ide => "hd",
            Self::Virtio => "vd",
            Self::Fdc => "fd",
        }
    }
}

/// `sda`, `sdb`, ..., `sdz`, `sdaa`: the `n`th name with `prefix`.
fn target_name(prefix: &str, n: usize) -> String {
    let mut suffix = Vec::new();
    let mut n = n + 1;
    while n > 0 {
        n -= 1;
        suffix.push(b'a' + (n % 26) as u8);
        n /= 26;
    }
    suffix.reverse();
    format!("{prefix}{}", String::from_utf8_lossy(&suffix))
}

/// One drive of the domain, placed.
struct Drive<'a> {
    device: &'static str,
    bus: Bus,
    /// `(controller, bus, unit)` of a drive address, when it has one.
    address: Option<(u32, u32, u32)>,
    /// The disk written for it (none for an empty CD-ROM or floppy).
    disk: Option<&'a EmitDisk>,
}

/// Where a drive goes: its bus, and its drive address on that bus.
fn place(h: &Hardware, d: &Device, unmapped: &mut Vec<String>) -> (Bus, Option<(u32, u32, u32)>) {
    let Some(c) = h.controller_of(d) else {
        if d.kind == DeviceKind::Floppy {
            return (Bus::Fdc, None);
        }
        unmapped.push(format!(
            "{}: no controller found for it: put on a virtio bus",
            named(d)
        ));
        return (Bus::Virtio, None);
    };
    let index = controller_index(h, c);
    let unit = unit_of(h, d);
    match c.kind {
        DeviceKind::ScsiController => (Bus::Scsi, Some((index, 0, unit))),
        DeviceKind::SataController => (Bus::Sata, Some((index, 0, unit))),
        // IDE: one controller of two channels; an OVF IDE controller's Address is its channel.
        DeviceKind::IdeController => (Bus::Ide, Some((0, index, unit))),
        _ => {
            unmapped.push(format!(
                "{}: on an NVMe controller, which libvirt 9 cannot express: a virtio disk instead",
                named(d)
            ));
            (Bus::Virtio, None)
        }
    }
}

/// An XML-escaped text or attribute value, or the error naming what it was for.
fn escaped(value: &str, what: &str, attribute: bool) -> Result<String> {
    let r = if attribute {
        escape_attribute(value)
    } else {
        escape_text(value)
    };
    r.map_err(|e| Error::InvalidInput(format!("{what} {value:?}: {}", e.reason)))
}

/// What a domain says, mapped from the hardware: every value already escaped, every
/// substitution listed in `unmapped`. [`write_domain`] writes it.
struct Domain<'a> {
    /// The escaped `<name>`.
    name: String,
    /// The libosinfo id, where one maps.
    os: Option<&'static str>,
    /// `pc` when there is IDE (`q35` has none), else `q35`.
    machine: &'static str,
    /// The hardware, for what is written as it stands (memory, CPUs, firmware, USB, serial
    /// ports, sound cards).
    h: &'a Hardware,
    /// SCSI controllers: index and libvirt model.
    scsi: Vec<(u32, &'static str)>,
    /// SATA and IDE controllers: libvirt type and index.
    controllers: Vec<(&'static str, u32)>,
    /// Drives in item order, placed.
    drives: Vec<Drive<'a>>,
    /// The escaped path of each drive with a disk, in drive order.
    paths: Vec<String>,
    /// NICs: escaped network name and libvirt model.
    nics: Vec<(String, &'static str)>,
}

/// The domain XML of `system` (its hardware `h`, one configuration selected), its disks
/// written as `disks` (absolute paths).
pub fn libvirt_domain(system: &System, h: &Hardware, disks: &[EmitDisk]) -> Result<Emitted> {
    let mut unmapped = Vec::new();
    let domain = map_domain(system, h, disks, &mut unmapped)?;
    let text = write_domain(&domain)?;
    Ok(Emitted { text, unmapped })
}

/// Maps `system`'s hardware to a domain: names, drives, controllers, NICs, and what is not
/// carried over.
fn map_domain<'a>(
    system: &System,
    h: &'a Hardware,
    disks: &'a [EmitDisk],
    unmapped: &mut Vec<String>,
) -> Result<Domain<'a>> {
    let name = system.name.as_deref().unwrap_or(&system.id);
    let name = escaped(
        if name.is_empty() { "imported" } else { name },
        "name",
        false,
    )?;
    let uses_ide = h.of(DeviceKind::IdeController).next().is_some();
    let machine = if uses_ide { "pc" } else { "q35" };
    let drives = map_drives(h, disks, machine, unmapped);
    let mut scsi = Vec::new();
    let mut controllers = Vec::new();
    for c in h.devices.iter().filter(|d| d.kind.is_controller()) {
        match c.kind {
            DeviceKind::ScsiController => {
                let (model, note) = scsi_model(c.subtype.as_deref());
                if let Some(n) = note {
                    unmapped.push(format!("{}: {n}", named(c)));
                }
                let holds_disk = h.of(DeviceKind::Disk).any(|d| {
                    h.controller_of(d)
                        .is_some_and(|x| x.instance_id == c.instance_id)
                });
                if let Some(what) = ovmf_cannot_boot(model).filter(|_| holds_disk) {
                    if h.firmware == Firmware::Efi {
                        unmapped.push(format!(
                            "{}: OVMF (the EFI firmware) has no driver for {what}: the VM cannot \
                             boot from its disks there; move the boot disk to SATA or \
                             virtio-scsi, or boot with BIOS",
                            named(c)
                        ));
                    }
                }
                scsi.push((controller_index(h, c), model));
            }
            DeviceKind::SataController => controllers.push(("sata", controller_index(h, c))),
            DeviceKind::IdeController if controller_index(h, c) == 0 => {
                controllers.push(("ide", 0))
            }
            _ => {}
        }
    }
    let mut nics = Vec::new();
    for n in h.of(DeviceKind::Nic) {
        let (model, note) = nic_model(n.subtype.as_deref());
        if let Some(note) = note {
            unmapped.push(format!("{}: {note}", named(n)));
        }
        let network = n.connection.as_deref().unwrap_or("default");
        nics.push((escaped(network, "network name", true)?, model));
    }
    note_not_carried(h, unmapped);
    note_vmdk_data_files(&drives, unmapped);
    let os = h.os_type.as_deref().and_then(libosinfo_id);
    if os.is_none() {
        unmapped.push(format!(
            "guest OS {}: no libosinfo id maps to it",
            h.os_type
                .as_deref()
                .map_or_else(|| format!("id {}", h.os_id.unwrap_or(0)), str::to_string)
        ));
    }
    let paths: Vec<String> = drives
        .iter()
        .filter_map(|d| d.disk)
        .map(|d| escaped(&d.path.to_string_lossy(), "disk path", true))
        .collect::<Result<_>>()?;
    Ok(Domain {
        name,
        os,
        machine,
        h,
        scsi,
        controllers,
        drives,
        paths,
        nics,
    })
}

/// Says, for each VMDK disk the domain names, that libvirt gives QEMU only that file: under
/// `qemu:///system` (QEMU running as libvirt's own user, each named file handed to it for the
/// run) QEMU cannot open the VMDK's data file, which its descriptor names and libvirt does not
/// know. Found by booting the domains (ovf-disk/tests/boot.rs); raw and qcow2 outputs have one
/// file.
fn note_vmdk_data_files(drives: &[Drive<'_>], unmapped: &mut Vec<String>) {
    for disk in drives.iter().filter_map(|d| d.disk).filter(|d| d.is_vmdk()) {
        unmapped.push(format!(
            "disk {}: a VMDK whose data is in a second file its descriptor names; libvirt gives \
             QEMU only {}, so under qemu:///system QEMU's user must be allowed to read and \
             write the data file too (or import with --format raw)",
            disk.disk_id,
            disk.path.display()
        ));
    }
}

/// The drives in item order (disks, CD-ROMs, floppies), placed on their buses; a disk the
/// import did not write, a floppy the machine has no controller for and a CD-ROM's medium are
/// listed in `unmapped`.
fn map_drives<'a>(
    h: &Hardware,
    disks: &'a [EmitDisk],
    machine: &str,
    unmapped: &mut Vec<String>,
) -> Vec<Drive<'a>> {
    let mut drives = Vec::new();
    for d in &h.devices {
        let device = match d.kind {
            DeviceKind::Disk => "disk",
            DeviceKind::CdRom => "cdrom",
            DeviceKind::Floppy => "floppy",
            _ => continue,
        };
        let disk = match d.kind {
            DeviceKind::Disk => {
                let found = disk_id_of(d).and_then(|id| disks.iter().find(|x| x.disk_id == id));
                if found.is_none() {
                    unmapped.push(format!(
                        "{}: names {:?}, which the import did not write (a blank disk?): not attached",
                        named(d),
                        d.host_resource.as_deref().unwrap_or("")
                    ));
                    continue;
                }
                found
            }
            _ => None,
        };
        let (bus, address) = place(h, d, unmapped);
        if bus == Bus::Fdc && machine == "q35" {
            unmapped.push(format!(
                "{}: a floppy drive, which the q35 machine has no controller for",
                named(d)
            ));
            continue;
        }
        if d.kind == DeviceKind::CdRom && d.host_resource.as_deref().is_some_and(|r| !r.is_empty())
        {
            unmapped.push(format!(
                "{}: its medium ({}) is not carried over: an empty drive",
                named(d),
                d.host_resource.as_deref().unwrap_or("")
            ));
        }
        drives.push(Drive {
            device,
            bus,
            address,
            disk,
        });
    }
    drives
}

/// Lists the items no domain element carries: parallel ports, NVMe controllers (their disks
/// become virtio disks) and items of unknown types.
fn note_not_carried(h: &Hardware, unmapped: &mut Vec<String>) {
    for d in h.devices.iter() {
        let why = match d.kind {
            DeviceKind::Parallel => "a parallel port, not carried over",
            DeviceKind::NvmeController => "an NVMe controller: its disks are virtio disks",
            _ => continue,
        };
        unmapped.push(format!("{}: {why}", named(d)));
    }
    for d in other_items(h) {
        if let DeviceKind::Other(rt) = d.kind {
            unmapped.push(format!(
                "{}: ResourceType {rt}{}, not known here: not carried over",
                named(d),
                d.subtype
                    .as_deref()
                    .map_or_else(String::new, |s| format!(" ({s})"))
            ));
        }
    }
}

/// The text of a mapped domain.
fn write_domain(d: &Domain<'_>) -> Result<String> {
    let io = |e: std::io::Error| Error::InvalidInput(format!("writing the domain XML: {e}"));
    let h = d.h;
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    w.create_element("domain")
        .with_attribute(("type", "kvm"))
        .write_inner_content(|w| {
            w.create_element("name")
                .write_text_content(BytesText::from_escaped(d.name.as_str()))?;
            if let Some(id) = d.os {
                w.create_element("metadata").write_inner_content(|w| {
                    w.create_element("libosinfo:libosinfo")
                        .with_attribute(("xmlns:libosinfo", LIBOSINFO))
                        .write_inner_content(|w| {
                            w.create_element("libosinfo:os")
                                .with_attribute(("id", id))
                                .write_empty()?;
                            Ok(())
                        })?;
                    Ok(())
                })?;
            }
            memory(w, h)?;
            let cpus = h.cpus().unwrap_or(1).max(1);
            w.create_element("vcpu")
                .write_text_content(BytesText::new(&cpus.to_string()))?;
            write_os(w, h, d.machine)?;
            if let Some(cores) = h.cores_per_socket().filter(|&c| c > 0 && cpus % c == 0) {
                w.create_element("cpu").write_inner_content(|w| {
                    w.create_element("topology")
                        .with_attribute(("sockets", (cpus / cores).to_string().as_str()))
                        .with_attribute(("dies", "1"))
                        .with_attribute(("cores", cores.to_string().as_str()))
                        .with_attribute(("threads", "1"))
                        .write_empty()?;
                    Ok(())
                })?;
            }
            w.create_element("devices")
                .write_inner_content(|w| write_devices(w, d))?;
            Ok(())
        })
        .map_err(io)?;
    let _ = w.write_event(Event::Text(BytesText::new("\n")));
    let mut text = w.into_inner();
    text.flush().map_err(io)?;
    String::from_utf8(text).map_err(|e| Error::InvalidInput(e.to_string()))
}

/// `<os>` (firmware, machine type) and `<features>`.
fn write_os<W: Write>(w: &mut Writer<W>, h: &Hardware, machine: &str) -> std::io::Result<()> {
    let mut os_el = w.create_element("os");
    if h.firmware == Firmware::Efi {
        os_el = os_el.with_attribute(("firmware", "efi"));
    }
    os_el.write_inner_content(|w| {
        w.create_element("type")
            .with_attribute(("arch", "x86_64"))
            .with_attribute(("machine", machine))
            .write_text_content(BytesText::new("hvm"))?;
        // Stated either way: left out, libvirt may pick a Secure Boot firmware with Microsoft's
        // keys enrolled, which refuses an unsigned boot loader the OVF never asked to check.
        if h.firmware == Firmware::Efi {
            let enabled = if h.secure_boot { "yes" } else { "no" };
            w.create_element("firmware").write_inner_content(|w| {
                for feature in ["enrolled-keys", "secure-boot"] {
                    w.create_element("feature")
                        .with_attribute(("enabled", enabled))
                        .with_attribute(("name", feature))
                        .write_empty()?;
                }
                Ok(())
            })?;
        }
        Ok(())
    })?;
    w.create_element("features").write_inner_content(|w| {
        w.create_element("acpi").write_empty()?;
        w.create_element("apic").write_empty()?;
        if h.firmware == Firmware::Efi && h.secure_boot {
            w.create_element("smm")
                .with_attribute(("state", "on"))
                .write_empty()?;
        }
        Ok(())
    })?;
    Ok(())
}

/// `<devices>`' content: controllers, drives, NICs, serial ports, sound, video.
fn write_devices<W: Write>(w: &mut Writer<W>, d: &Domain<'_>) -> std::io::Result<()> {
    for (index, model) in &d.scsi {
        w.create_element("controller")
            .with_attribute(("type", "scsi"))
            .with_attribute(("index", index.to_string().as_str()))
            .with_attribute(("model", *model))
            .write_empty()?;
    }
    for (kind, index) in &d.controllers {
        w.create_element("controller")
            .with_attribute(("type", *kind))
            .with_attribute(("index", index.to_string().as_str()))
            .write_empty()?;
    }
    if d.h.of(DeviceKind::UsbController).next().is_some() {
        w.create_element("controller")
            .with_attribute(("type", "usb"))
            .with_attribute(("index", "0"))
            .with_attribute(("model", "qemu-xhci"))
            .write_empty()?;
    }
    write_drives(w, &d.drives, &d.paths)?;
    for (network, model) in &d.nics {
        w.create_element("interface")
            .with_attribute(("type", "network"))
            .write_inner_content(|w| {
                w.create_element("source")
                    .with_attribute(escaped_attribute("network", network))
                    .write_empty()?;
                w.create_element("model")
                    .with_attribute(("type", *model))
                    .write_empty()?;
                Ok(())
            })?;
    }
    for _ in d.h.of(DeviceKind::Serial) {
        w.create_element("serial")
            .with_attribute(("type", "pty"))
            .write_empty()?;
    }
    for s in d.h.of(DeviceKind::Sound) {
        let model = match norm(s.subtype.as_deref()).as_str() {
            "sb16" => "sb16",
            "ensoniq1371" | "es1370" => "es1370",
            "ac97" => "ac97",
            _ => "ich6",
        };
        w.create_element("sound")
            .with_attribute(("model", model))
            .write_empty()?;
    }
    w.create_element("video").write_inner_content(|w| {
        w.create_element("model")
            .with_attribute(("type", "vga"))
            .write_empty()?;
        Ok(())
    })?;
    Ok(())
}

/// The `<disk>` elements: each drive with its target name (`sda`, `hdb`... counted per
/// prefix), its file from `paths` (in drive order, for drives with a disk) and its address.
fn write_drives<W: Write>(
    w: &mut Writer<W>,
    drives: &[Drive<'_>],
    paths: &[String],
) -> std::io::Result<()> {
    let mut names: Vec<(&str, usize)> = Vec::new();
    let mut path = paths.iter();
    for d in drives {
        let prefix = d.bus.prefix();
        let n = match names.iter_mut().find(|(p, _)| *p == prefix) {
            Some((_, n)) => {
                *n += 1;
                *n - 1
            }
            None => {
                names.push((prefix, 1));
                0
            }
        };
        let file = d.disk.and_then(|_| path.next());
        w.create_element("disk")
            .with_attribute(("type", "file"))
            .with_attribute(("device", d.device))
            .write_inner_content(|w| {
                let kind = d.disk.map_or("raw", |x| x.format.as_str());
                w.create_element("driver")
                    .with_attribute(("name", "qemu"))
                    .with_attribute(("type", kind))
                    .write_empty()?;
                if let Some(f) = file {
                    w.create_element("source")
                        .with_attribute(escaped_attribute("file", f))
                        .write_empty()?;
                }
                w.create_element("target")
                    .with_attribute(("dev", target_name(prefix, n).as_str()))
                    .with_attribute(("bus", d.bus.name()))
                    .write_empty()?;
                if d.device != "disk" {
                    w.create_element("readonly").write_empty()?;
                }
                if let Some((controller, bus, unit)) = d.address {
                    w.create_element("address")
                        .with_attribute(("type", "drive"))
                        .with_attribute(("controller", controller.to_string().as_str()))
                        .with_attribute(("bus", bus.to_string().as_str()))
                        .with_attribute(("target", "0"))
                        .with_attribute(("unit", unit.to_string().as_str()))
                        .write_empty()?;
                }
                Ok(())
            })?;
    }
    Ok(())
}

/// `<memory>` in the largest unit that holds it exactly (the OVF's own unit when it was one of
/// libvirt's).
fn memory<W: Write>(w: &mut Writer<W>, h: &Hardware) -> std::io::Result<()> {
    let bytes = h.memory_bytes().unwrap_or(1 << 30);
    let (value, unit) = [(1u64 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")]
        .into_iter()
        .find(|(u, _)| bytes % u == 0)
        .map_or((bytes, "b"), |(u, name)| (bytes / u, name));
    w.create_element("memory")
        .with_attribute(("unit", unit))
        .write_text_content(BytesText::new(&value.to_string()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_names_count_like_libvirt() {
        let names: Vec<String> = [0, 1, 25, 26, 27, 701, 702]
            .iter()
            .map(|&n| target_name("sd", n))
            .collect();
        assert_eq!(
            names,
            ["sda", "sdb", "sdz", "sdaa", "sdab", "sdzz", "sdaaa"]
        );
    }

    #[test]
    fn models_map_to_what_qemu_offers() {
        assert_eq!(scsi_model(Some("lsilogic")).0, "lsilogic");
        assert_eq!(scsi_model(Some("lsilogicsas")).0, "lsisas1068");
        assert_eq!(scsi_model(Some("VirtualSCSI")).0, "vmpvscsi");
        assert!(scsi_model(Some("buslogic")).1.is_some());
        assert_eq!(nic_model(Some("VmxNet3")).0, "vmxnet3");
        assert_eq!(nic_model(Some("E1000e")).0, "e1000e");
        assert_eq!(nic_model(Some("PCNet32")).0, "pcnet");
        assert_eq!(
            libosinfo_id("debian12_64Guest"),
            Some("http://debian.org/debian/12")
        );
        assert_eq!(
            libosinfo_id("windows9_64Guest"),
            Some("http://microsoft.com/win/10")
        );
        assert_eq!(
            libosinfo_id("Linux_64"),
            Some("http://libosinfo.org/linux/2022")
        );
        assert_eq!(libosinfo_id("solaris11_64Guest"), None);
    }
}
