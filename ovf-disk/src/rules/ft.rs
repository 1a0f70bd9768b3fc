//! vSphere Fault Tolerance readiness: each of VMware's published requirements and restrictions
//! checked on a package's virtual systems, a VM's `.vmx`, or a lone disk, as pass, fail, or
//! pass after import (a thin or stream-optimized disk becomes eager-zeroed thick, a snapshot
//! chain one disk, an ISO-less CD-ROM an empty drive).
//!
//! Sources, cited on every rule:
//! - "vSphere Availability", chapter "Providing Fault Tolerance for Virtual Machines": the
//!   sections "Fault Tolerance Requirements, Limits, and Licensing", "Fault Tolerance
//!   Interoperability" (features and devices incompatible with FT: physical RDM, CD-ROM or
//!   floppy backed by a physical or remote device, USB and sound devices, NPIV, NIC
//!   passthrough, hot-plugging, serial or parallel ports, 3D video, VMCI, 2TB+ VMDK; snapshots
//!   must be removed) and "Legacy Fault Tolerance" (eager-zeroed thick disks required, no vlance
//!   NICs) of the 6.0 to 8.0 editions.
//! - "vSphere Availability" 4.1 and 5.x, "Fault Tolerance Checklist": legacy FT supports one
//!   vCPU, at most 64 GB of memory, virtual hardware version 7 or later.
//! - The 6.7 to 8.0 "Fault Tolerance Requirements, Limits, and Licensing": up to 8 vCPUs and
//!   128 GB per FT VM (4 vCPUs with the Standard and Enterprise licences).

use std::path::{Path, PathBuf};

use vmdk::{CreateType, Disk};

use crate::error::Result;
use crate::package::Package;
use crate::vm::{self, open_disk, Vm};
use ovf::hardware::norm_with;
use ovf::hardware::{DeviceKind, Hardware};

/// Which Fault Tolerance's rules to check.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
#[non_exhaustive]
pub enum FtVersion {
    /// The original FT of vSphere 4.0 to 6.0 (one vCPU, eager-zeroed thick disks).
    #[default]
    Legacy,
    /// SMP-FT of vSphere 6.0 on (up to 8 vCPUs, any disk type).
    Smp,
}

/// How a virtual machine fares on one rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum Outcome {
    /// Meets the rule now.
    Pass,
    /// Will meet it once imported (or inflated) by this tool.
    PassAfterImport,
    /// Does not meet it: the VM must be changed.
    Fail,
}

impl Outcome {
    /// `pass`, `pass after import`, `FAIL`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::PassAfterImport => "pass after import",
            Self::Fail => "FAIL",
        }
    }
}

/// One rule's result.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct RuleCheck {
    /// A short stable name (`vcpus`, `memory`, `thick-disks`, ...).
    pub rule: &'static str,
    /// The outcome.
    pub outcome: Outcome,
    /// What was found, and what the rule asks.
    pub detail: String,
    /// Where VMware states the rule.
    pub source: &'static str,
}

/// The rules for one virtual machine.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct MachineFt {
    /// The virtual system's id, the VM's name, or the disk.
    pub machine: String,
    /// Each rule.
    pub rules: Vec<RuleCheck>,
}

/// What [`ft_check_package`], [`ft_check_vm`] or [`ft_check_disk`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct FtReport {
    /// What was checked.
    pub subject: PathBuf,
    /// Which rules.
    pub version: FtVersion,
    /// Whether every machine meets every rule now or after import.
    pub ready: bool,
    /// Each machine.
    pub machines: Vec<MachineFt>,
    /// What FT also needs that no package, VM folder or disk can show: the cluster's own
    /// requirements, to check there (the report is the whole checklist).
    pub on_the_cluster: Vec<ClusterRequirement>,
}

/// A Fault Tolerance requirement of the hosts and cluster, not of the VM.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct ClusterRequirement {
    /// What the cluster must have.
    pub requirement: &'static str,
    /// Where VMware says so.
    pub source: &'static str,
}

/// The cluster's side of `version`'s requirements ("vSphere Availability", "Fault Tolerance
/// Requirements, Limits, and Licensing" and the legacy "Fault Tolerance Checklist").
fn cluster_requirements(version: FtVersion) -> Vec<ClusterRequirement> {
    let mut out = vec![
        "the hosts in a vSphere HA cluster, with HA enabled",
        "host certificate checking enabled in vCenter",
        "a VMkernel adapter for Fault Tolerance logging and one for vMotion on each host",
        "host CPUs of a family FT supports, hardware-assisted virtualisation (Intel VT-x or AMD-V) enabled in their BIOS",
    ];
    match version {
        FtVersion::Legacy => {
            out.push("the VM's disks on storage every host shares");
            out.push("a 1 Gbit/s (or faster) Fault Tolerance logging network");
        }
        FtVersion::Smp => {
            out.push("a 10 Gbit/s Fault Tolerance logging network, dedicated");
            out.push(
                "the primary's and the secondary's files on datastores of their own (SMP-FT copies the disks)",
            );
            out.push(
                "a vSphere licence that allows the VM's vCPUs under FT (Standard and Enterprise allow fewer than Enterprise Plus)",
            );
        }
    }
    let source = match version {
        FtVersion::Legacy => LEGACY_CHECKLIST,
        FtVersion::Smp => REQUIREMENTS,
    };
    out.into_iter()
        .map(|requirement| ClusterRequirement {
            requirement,
            source,
        })
        .collect()
}

impl FtReport {
    fn new(subject: &Path, version: FtVersion, machines: Vec<MachineFt>) -> Self {
        let ready = machines
            .iter()
            .all(|m| m.rules.iter().all(|r| r.outcome != Outcome::Fail));
        Self {
            subject: subject.to_path_buf(),
            version,
            ready,
            machines,
            on_the_cluster: cluster_requirements(version),
        }
    }
}

const REQUIREMENTS: &str =
    "vSphere Availability, Fault Tolerance Requirements, Limits, and Licensing";
const LEGACY_CHECKLIST: &str = "vSphere Availability 4.1/5.x, Fault Tolerance Checklist";
const INCOMPATIBLE: &str =
    "vSphere Availability, Fault Tolerance Interoperability: Features and Devices Incompatible with Fault Tolerance";
const NOT_SUPPORTED: &str =
    "vSphere Availability, Fault Tolerance Interoperability: vSphere Features Not Supported with Fault Tolerance";
const LEGACY_DIFFERENCES: &str =
    "vSphere Availability 6.x, Legacy Fault Tolerance: Differences Between Legacy FT and FT";

/// Rules are collected here.
struct Rules(Vec<RuleCheck>);

impl Rules {
    fn add(&mut self, rule: &'static str, outcome: Outcome, detail: String, source: &'static str) {
        self.0.push(RuleCheck {
            rule,
            outcome,
            detail,
            source,
        });
    }

    /// A rule that fails when `found` is not empty (devices the VM must not have).
    fn absent(&mut self, rule: &'static str, what: &str, found: Vec<String>) {
        if found.is_empty() {
            self.add(rule, Outcome::Pass, format!("no {what}"), INCOMPATIBLE);
        } else {
            let detail = format!("{what} not supported with FT: {}", found.join(", "));
            self.add(rule, Outcome::Fail, detail, INCOMPATIBLE);
        }
    }
}

/// The vCPU and memory rules.
fn size_rules(r: &mut Rules, version: FtVersion, cpus: u64, memory: Option<u64>) {
    let (max_cpus, max_gib) = match version {
        FtVersion::Legacy => (1, 64),
        FtVersion::Smp => (8, 128),
    };
    let cpu_outcome = if cpus <= max_cpus {
        Outcome::Pass
    } else {
        Outcome::Fail
    };
    let source = match version {
        FtVersion::Legacy => LEGACY_CHECKLIST,
        FtVersion::Smp => REQUIREMENTS,
    };
    r.add(
        "vcpus",
        cpu_outcome,
        format!("{cpus} vCPU(s); at most {max_cpus}"),
        source,
    );
    match memory {
        Some(m) => {
            let outcome = if m <= max_gib << 30 {
                Outcome::Pass
            } else {
                Outcome::Fail
            };
            r.add(
                "memory",
                outcome,
                format!("{} MiB; at most {max_gib} GB", m >> 20),
                source,
            );
        }
        None => r.add("memory", Outcome::Pass, "not stated".into(), source),
    }
}

/// The rule on the disks' provisioning, given whether each is eager-zeroed thick now.
fn thick_rule(r: &mut Rules, version: FtVersion, disks: &[(String, bool)]) {
    if version == FtVersion::Smp {
        r.add(
            "thick-disks",
            Outcome::Pass,
            "FT supports every disk type (thick and thin)".into(),
            LEGACY_DIFFERENCES,
        );
        return;
    }
    let thin: Vec<&str> = disks
        .iter()
        .filter(|(_, thick)| !*thick)
        .map(|(n, _)| n.as_str())
        .collect();
    if thin.is_empty() {
        r.add(
            "thick-disks",
            Outcome::Pass,
            "every disk eager-zeroed thick".into(),
            LEGACY_DIFFERENCES,
        );
    } else {
        r.add(
            "thick-disks",
            Outcome::PassAfterImport,
            format!(
                "not eager-zeroed thick now ({}); import and inflate write every byte",
                thin.join(", ")
            ),
            LEGACY_DIFFERENCES,
        );
    }
}

/// The rule on disk sizes: none larger than 2 TB.
fn size_of_disks_rule(r: &mut Rules, disks: &[(String, u64)]) {
    let big: Vec<String> = disks
        .iter()
        .filter(|(_, c)| *c > 2 << 40)
        .map(|(n, c)| format!("{n} ({} GiB)", c >> 30))
        .collect();
    if big.is_empty() {
        r.add(
            "disk-size",
            Outcome::Pass,
            "no disk over 2 TB".into(),
            INCOMPATIBLE,
        );
    } else {
        r.add(
            "disk-size",
            Outcome::Fail,
            format!("2TB+ disks are not supported: {}", big.join(", ")),
            INCOMPATIBLE,
        );
    }
}

/// Legacy FT's NIC rule: no vlance (PCNet32) adapter; `vlance` names those the VM has.
fn vlance_rule(r: &mut Rules, vlance: &[String]) {
    if vlance.is_empty() {
        r.add(
            "nic-vlance",
            Outcome::Pass,
            "no vlance NIC".into(),
            LEGACY_DIFFERENCES,
        );
    } else {
        r.add(
            "nic-vlance",
            Outcome::Fail,
            format!(
                "vlance (PCNet32) NICs are not supported by legacy FT: {}",
                vlance.join(", ")
            ),
            LEGACY_DIFFERENCES,
        );
    }
}

/// Legacy FT's virtual hardware rule: version 7 or later; `unstated` is the outcome (and its
/// words) when no version is known.
fn hardware_version_rule(r: &mut Rules, version: Option<u32>, unstated: (Outcome, &str)) {
    let (outcome, detail) = match version {
        Some(v) if v < 7 => (
            Outcome::Fail,
            format!("virtual hardware version {v}; legacy FT needs 7 or later"),
        ),
        Some(v) => (Outcome::Pass, format!("virtual hardware version {v}")),
        None => (unstated.0, unstated.1.to_string()),
    };
    r.add("hardware-version", outcome, detail, LEGACY_CHECKLIST);
}

/// The rules that read a package's hardware.
fn hardware_rules(r: &mut Rules, version: FtVersion, h: &Hardware) {
    let named = |kind: DeviceKind| -> Vec<String> {
        h.of(kind)
            .map(|d| {
                d.name
                    .clone()
                    .unwrap_or_else(|| format!("item {}", d.instance_id))
            })
            .collect()
    };
    let by_subtype = |needle: &str| -> Vec<String> {
        h.devices
            .iter()
            .filter(|d| {
                d.subtype
                    .as_deref()
                    .is_some_and(|s| s.to_ascii_lowercase().contains(needle))
            })
            .map(|d| {
                d.name
                    .clone()
                    .unwrap_or_else(|| format!("item {}", d.instance_id))
            })
            .collect()
    };
    let mut usb = named(DeviceKind::UsbController);
    usb.extend(by_subtype("usb"));
    r.absent("usb", "USB controllers or devices", usb);
    let mut sound = named(DeviceKind::Sound);
    sound.extend(by_subtype("sound"));
    r.absent("sound", "sound devices", sound);
    let mut ports = named(DeviceKind::Serial);
    ports.extend(named(DeviceKind::Parallel));
    r.absent("serial-parallel", "serial or parallel ports", ports);
    let three_d = ["mks.enable3d", "svga.3d"]
        .iter()
        .filter(|k| h.config(k).is_some_and(|v| v.eq_ignore_ascii_case("true")))
        .map(|k| k.to_string())
        .collect();
    r.absent("3d-video", "video with 3D", three_d);
    let media: Vec<String> = h
        .devices
        .iter()
        .filter(|d| matches!(d.kind, DeviceKind::CdRom | DeviceKind::Floppy))
        .filter(|d| d.host_resource.as_deref().is_some_and(|x| !x.is_empty()))
        .map(|d| {
            d.name
                .clone()
                .unwrap_or_else(|| format!("item {}", d.instance_id))
        })
        .collect();
    if media.is_empty() {
        r.add(
            "cdrom-floppy",
            Outcome::Pass,
            "no CD-ROM or floppy backed by a device".into(),
            INCOMPATIBLE,
        );
    } else {
        r.add(
            "cdrom-floppy",
            Outcome::PassAfterImport,
            format!(
                "{} {} media in the package; an import leaves {} empty",
                media.join(", "),
                if media.len() == 1 { "has" } else { "have" },
                if media.len() == 1 { "it" } else { "them" }
            ),
            INCOMPATIBLE,
        );
    }
    if version == FtVersion::Legacy {
        hardware_version_rule(
            r,
            h.vmx_version(),
            (
                Outcome::Pass,
                "no vmx-NN stated: the target chooses (7 or later)",
            ),
        );
        let vlance: Vec<String> = h
            .of(DeviceKind::Nic)
            .filter(|n| {
                let m = norm_with(n.subtype.as_deref(), |t| t == "pcnet32" || t == "vlance");
                m == "pcnet32" || m == "vlance"
            })
            .map(|d| {
                d.name
                    .clone()
                    .unwrap_or_else(|| format!("item {}", d.instance_id))
            })
            .collect();
        vlance_rule(r, &vlance);
    }
}

/// Checks every virtual system of `pkg` against `version`'s rules, with the hardware of the
/// default deployment option.
pub fn ft_check_package(pkg: &Package, version: FtVersion) -> Result<FtReport> {
    let env = pkg.envelope();
    let mut machines = Vec::new();
    for system in &env.systems {
        let h = system.hardware.select(env.default_deployment_option());
        let mut r = Rules(Vec::new());
        size_rules(&mut r, version, h.cpus().unwrap_or(1), h.memory_bytes());
        let ids: Vec<&str> = h
            .of(DeviceKind::Disk)
            .filter_map(ovf::hardware::disk_id_of)
            .collect();
        let disks: Vec<_> = env
            .disks
            .iter()
            .filter(|d| ids.contains(&d.disk_id.as_str()))
            .collect();
        // A package's disks are stream-optimized or thin: an import writes them thick.
        let thick: Vec<(String, bool)> = disks.iter().map(|d| (d.disk_id.clone(), false)).collect();
        thick_rule(&mut r, version, &thick);
        let sizes: Vec<(String, u64)> = disks
            .iter()
            .map(|d| (d.disk_id.clone(), d.capacity_bytes.unwrap_or(0)))
            .collect();
        size_of_disks_rule(&mut r, &sizes);
        let deltas: Vec<String> = disks
            .iter()
            .filter(|d| d.parent_ref.is_some())
            .map(|d| d.disk_id.clone())
            .collect();
        if deltas.is_empty() {
            r.add(
                "snapshots",
                Outcome::Pass,
                "no delta disks".into(),
                NOT_SUPPORTED,
            );
        } else {
            r.add(
                "snapshots",
                Outcome::Fail,
                format!(
                    "delta disks (ovf:parentRef) are snapshots: {}",
                    deltas.join(", ")
                ),
                NOT_SUPPORTED,
            );
        }
        hardware_rules(&mut r, version, &h);
        machines.push(MachineFt {
            machine: system.id.clone(),
            rules: r.0,
        });
    }
    Ok(FtReport::new(pkg.path(), version, machines))
}

/// Whether `disk` is eager-zeroed thick now (createType `vmfsEagerZeroedThick`: the only type
/// that says so).
fn is_eager_thick(disk: &Disk) -> bool {
    disk.parent().is_none() && disk.create_type().as_str() == "vmfsEagerZeroedThick"
}

/// The disk rules on opened disks, `(name, disk)`, and the raw device maps found (`(name,
/// physical)`: physical mode, or virtual).
fn disk_rules(
    r: &mut Rules,
    version: FtVersion,
    disks: &[(String, Disk)],
    rdms: &[(String, bool)],
) {
    let thick: Vec<(String, bool)> = disks
        .iter()
        .map(|(n, d)| (n.clone(), is_eager_thick(d)))
        .collect();
    thick_rule(r, version, &thick);
    let sizes: Vec<(String, u64)> = disks
        .iter()
        .map(|(n, d)| (n.clone(), d.capacity()))
        .collect();
    size_of_disks_rule(r, &sizes);
    let chains: Vec<String> = disks
        .iter()
        .filter(|(_, d)| d.parent().is_some())
        .map(|(n, d)| format!("{n} ({} links)", d.chain().count()))
        .collect();
    if chains.is_empty() {
        r.add(
            "snapshots",
            Outcome::Pass,
            "no snapshot deltas".into(),
            NOT_SUPPORTED,
        );
    } else {
        r.add(
            "snapshots",
            Outcome::PassAfterImport,
            format!(
                "snapshot chains ({}); inflate consolidates each into one disk",
                chains.join(", ")
            ),
            NOT_SUPPORTED,
        );
    }
    let physical: Vec<String> = rdms
        .iter()
        .filter(|(_, p)| *p)
        .map(|(n, _)| n.clone())
        .collect();
    r.absent(
        "physical-rdm",
        "physical-mode raw device mappings",
        physical,
    );
}

/// Whether the descriptor at `path` is a raw device map: `Some(true)` in physical mode
/// (`vmfsPassthroughRawDeviceMap`), `Some(false)` virtual (`vmfsRawDeviceMap`).
fn raw_device_map(path: &Path) -> Option<bool> {
    let file = std::fs::File::open(path).ok()?;
    let mut text = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(file, 64 << 10), &mut text).ok()?;
    let d = vmdk::Descriptor::parse_bytes(&text).ok()?;
    match d.create_type()? {
        CreateType::VmfsRdmp => Some(true),
        CreateType::VmfsRdm => Some(false),
        _ => None,
    }
}

/// The devices a `.vmx` names that FT does not allow: USB, sound, serial and parallel ports,
/// 3D video, host-device CD-ROMs and floppies, NPIV, unrestricted VMCI.
fn vmx_device_rules(r: &mut Rules, vm: &Vm) {
    let on = |key: &str| {
        vm.setting(key)
            .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    };
    let present = |prefix: &str| -> Vec<String> {
        vm.settings_starting_with(prefix)
            .filter(|(k, v)| k.ends_with(".present") && v.eq_ignore_ascii_case("true"))
            .map(|(k, _)| k.trim_end_matches(".present").to_string())
            .collect()
    };
    let mut usb = present("usb");
    usb.extend(present("ehci"));
    r.absent("usb", "USB controllers or devices", usb);
    r.absent("sound", "sound devices", present("sound"));
    let mut ports = present("serial");
    ports.extend(present("parallel"));
    r.absent("serial-parallel", "serial or parallel ports", ports);
    let three_d = ["mks.enable3d", "svga.3d"]
        .into_iter()
        .filter(|k| on(k))
        .map(str::to_string)
        .collect();
    r.absent("3d-video", "video with 3D", three_d);
    // CD-ROMs and floppies backed by a host device (not an ISO or image file).
    let devices: Vec<String> = vm
        .settings_starting_with("")
        .filter(|(k, v)| {
            k.ends_with(".devicetype")
                && matches!(v.to_ascii_lowercase().as_str(), "cdrom-raw" | "atapi-cdrom")
        })
        .map(|(k, _)| k.trim_end_matches(".devicetype").to_string())
        .filter(|dev| on(&format!("{dev}.present")) && on(&format!("{dev}.startConnected")))
        .chain(
            vm.settings_starting_with("floppy")
                .filter(|(k, v)| k.ends_with(".filetype") && v.eq_ignore_ascii_case("device"))
                .map(|(k, _)| k.trim_end_matches(".filetype").to_string())
                .filter(|dev| {
                    on(&format!("{dev}.present")) && on(&format!("{dev}.startConnected"))
                }),
        )
        .collect();
    r.absent(
        "cdrom-floppy",
        "CD-ROM or floppy drives backed by a host device",
        devices,
    );
    let npiv: Vec<String> = vm
        .settings_starting_with("wwn.")
        .map(|(k, _)| k.to_string())
        .collect();
    r.absent("npiv", "N_Port ID Virtualization (wwn.*)", npiv);
    let vmci = if on("vmci0.unrestricted") {
        vec!["vmci0.unrestricted".to_string()]
    } else {
        Vec::new()
    };
    r.absent("vmci", "unrestricted VMCI", vmci);
}

/// Checks the VM at `vmx` (its disks opened with `options`) against `version`'s rules.
pub fn ft_check_vm(vmx: &Path, options: &vm::Options, version: FtVersion) -> Result<FtReport> {
    let vm = options.read_vm(vmx)?;
    let mut r = Rules(Vec::new());
    size_rules(&mut r, version, u64::from(vm.cpus), vm.memory_bytes);
    let mut disks = Vec::new();
    let mut rdms = Vec::new();
    for d in &vm.disks {
        match open_disk(&vm, d, options) {
            Ok(disk) => disks.push((d.device.clone(), disk)),
            Err(e) => {
                // A raw device map does not open (its data is a host device), but it is what
                // the rule asks about.
                let rdm = vm.disk_path(d, false).ok().and_then(|p| raw_device_map(&p));
                match rdm {
                    Some(physical) => rdms.push((d.device.clone(), physical)),
                    None => return Err(e),
                }
            }
        }
    }
    disk_rules(&mut r, version, &disks, &rdms);
    vmx_device_rules(&mut r, &vm);
    if version == FtVersion::Legacy {
        let hw: Option<u32> = vm
            .setting("virtualHW.version")
            .and_then(|v| v.trim().parse().ok());
        hardware_version_rule(
            &mut r,
            hw,
            (
                Outcome::Fail,
                "no virtualHW.version: version 4, older than legacy FT's 7",
            ),
        );
        let vlance: Vec<String> = vm
            .settings_starting_with("ethernet")
            .filter(|(k, v)| k.ends_with(".virtualdev") && v.eq_ignore_ascii_case("vlance"))
            .map(|(k, _)| k.trim_end_matches(".virtualdev").to_string())
            .collect();
        vlance_rule(&mut r, &vlance);
    }
    let name = vm.name.clone().unwrap_or_else(|| vmx.display().to_string());
    Ok(FtReport::new(
        vmx,
        version,
        vec![MachineFt {
            machine: name,
            rules: r.0,
        }],
    ))
}

/// Checks a lone disk against `version`'s disk rules (provisioning, size, snapshots, RDM).
pub fn ft_check_disk(path: &Path, disk: Disk, version: FtVersion) -> FtReport {
    let mut r = Rules(Vec::new());
    let name = path.display().to_string();
    disk_rules(&mut r, version, &[(name.clone(), disk)], &[]);
    FtReport::new(
        path,
        version,
        vec![MachineFt {
            machine: name,
            rules: r.0,
        }],
    )
}
