//! What an importing product would refuse or change in a package (`check --target`), rule by
//! rule, each with its source. Products: ESXi's host client and vCenter (ovftool's and the
//! vSphere Client's OVF deployment), VMware Workstation, VirtualBox, and virt-v2v's OVA input.
//!
//! Sources cited by the rules:
//! - VMware KB 2034422 / the vSphere Client's deploy errors and ovftool's manifest parser: a
//!   manifest line is `ALG(name)= hex`; the BSD tag form `ALG (name) = hex` is refused
//!   ("Invalid manifest"); SHA256 and SHA512 need vSphere 6.5 and ovftool 4.2 (older releases and
//!   Workstation before 14 take SHA1 only).
//! - DSP0243 §5.3: an OVA's first member is the descriptor, followed by the manifest and the
//!   certificate; §9.1 and §7.1: `ovf:size` is the file's size, `ovf:capacity` bounds the disk;
//!   §8.2: a section marked `ovf:required="true"` that the consumer does not understand makes the
//!   deployment fail.
//! - vSphere Client "Unsupported hardware family 'virtualbox-2.2'" when deploying VirtualBox
//!   exports; VMware's hardware-version matrix (KB 1003746): SATA controllers from vmx-10,
//!   NVMe from vmx-13, vmx-NN beyond what the host knows refused.
//! - ESXi's host client deploys a single VirtualSystem, not a VirtualSystemCollection (which
//!   needs vCenter's vApps); Workstation refuses OVF 2.0 envelopes.
//! - VMware's stream-optimized format ends with a footer and an end-of-stream marker; ESXi
//!   refuses stream files without them (as qemu-img writes them).
//! - VirtualBox's OVF import maps unknown controllers and NICs (PVSCSI, vmxnet3) to its own.

use std::io::Read;

use crate::error::Result;
use crate::package::Package;
use ovf::hardware::DeviceKind;

/// The product a package is checked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
#[non_exhaustive]
pub enum Target {
    /// ESXi's host client (one VirtualSystem at a time).
    Esxi,
    /// vCenter (vApps too).
    Vcenter,
    /// VMware Workstation.
    Workstation,
    /// Oracle VirtualBox.
    Virtualbox,
    /// virt-v2v's `-i ova`.
    VirtV2v,
}

impl Target {
    pub(crate) fn is_vmware(self) -> bool {
        matches!(self, Self::Esxi | Self::Vcenter | Self::Workstation)
    }
}

/// What the target would do about a finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
#[non_exhaustive]
pub enum Severity {
    /// Worth knowing; nothing changes.
    Note,
    /// The target imports the package but changes something.
    Change,
    /// The target refuses the package.
    Refuse,
}

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Finding {
    /// A short stable name (`manifest-spelling`, `system-type`, ...).
    pub rule: &'static str,
    /// What the target would do.
    pub severity: Severity,
    /// The file of the package concerned (the descriptor, the manifest, a disk).
    pub file: String,
    /// Where in it: an element, a line, a member's offset.
    #[cfg_attr(feature = "serde", serde(rename = "where"))]
    pub at: String,
    /// What is wrong, and what the target does.
    pub message: String,
    /// Where the rule comes from.
    pub source: &'static str,
}

/// What [`lint`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct LintReport {
    /// The package.
    pub package: std::path::PathBuf,
    /// The product.
    pub target: Target,
    /// Whether the target would refuse the package.
    pub refused: bool,
    /// Every finding, in the order found.
    pub findings: Vec<Finding>,
}

const KB_MANIFEST: &str = "ovftool and the vSphere Client's manifest parser (VMware KB 2034422)";
const DSP0243: &str = "DMTF DSP0243";
const HW_MATRIX: &str = "VMware KB 1003746, virtual hardware versions";
const HOST_CLIENT: &str = "ESXi host client / Workstation OVF import";
const STREAM: &str = "VMware Virtual Disk Format 5.0, stream-optimized extents";
const VBOX: &str = "VirtualBox manual, Importing and Exporting Virtual Machines";
const SOUND: &str = "ESXi and vCenter: \"No support for the virtual hardware device type '35'\" \
    for VirtualBox's sound card (Graylog2/graylog2-server#5594)";
const IDE: &str = "vCenter: \"Value 'PIIX4' of ResourceSubType element not found\" \
    (Graylog2/graylog2-images#211); VMware writes IDE controllers without a subtype";
const EXTRA: &str = "ovftool: \"ExtraConfig options exists in source (use --allowExtraConfig \
    option to allow this)\" (hashicorp/packer#5771); vCenter asks to accept them as security risks \
    (vmware-archive/vsphere-automation-sdk-rest#18)";
const ORDER: &str =
    "DMTF DSP0243 §5.3; VMware requires the OVF first (kubev2v/migration-planner#147)";
const PAX: &str =
    "ustar (POSIX.1-1988) members only; readers without pax see `@PaxHeader` members \
    (oVirt/ovirt-engine#601)";

/// The newest virtual hardware the targets know (vmx-21: ESXi 8.0 U2, Workstation 17.5).
pub(crate) const NEWEST_VMX: u32 = 21;

struct Findings(Vec<Finding>);

impl Findings {
    fn add(
        &mut self,
        rule: &'static str,
        severity: Severity,
        file: &str,
        at: impl Into<String>,
        message: impl Into<String>,
        source: &'static str,
    ) {
        self.0.push(Finding {
            rule,
            severity,
            file: file.to_string(),
            at: at.into(),
            message: message.into(),
            source,
        });
    }
}

/// The manifest's lines spelled as the BSD tag form (`ALG (name) = hex`), by line number.
fn tag_lines(text: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let l = l.trim();
            !l.is_empty() && l.split_once('(').is_some_and(|(alg, _)| alg.ends_with(' '))
        })
        .map(|(i, _)| i + 1)
        .collect()
}

/// What keeps a stream-optimized file from the layout ESXi imports, if anything. The evidence:
/// VMware's writers (GD_AT_END, a footer, an end-of-stream marker) and open-vmdk's
/// `vmdk-convert` (the grain directory in the header, an end-of-stream marker, no footer) are
/// accepted; qemu-img's files (no marker, no footer) are refused (qemu issue 1357). So: version
/// 3, an end-of-stream marker right after the last grain ending the file, and a footer where
/// the header says GD_AT_END. Reads the header, the tail, and for a directory in the header the
/// grain tables (4 bytes a grain) and the last grain's marker: never the grains.
fn stream_layout_fault(pkg: &Package, href: &str, len: u64) -> Result<Option<String>> {
    use vmdk::format::{SparseExtentHeader, SECTOR_SIZE};
    use zerocopy::FromBytes;
    let mut sector = [0u8; 512];
    if len < 1024 {
        return Ok(Some(
            "a stream-optimized file too short to hold its end-of-stream marker".into(),
        ));
    }
    pkg.read_at(href, 0, &mut sector)?;
    let Ok(h) = SparseExtentHeader::read_from_bytes(&sector[..]) else {
        return Ok(None);
    };
    if h.version.get() != 3 {
        return Ok(Some(format!(
            "a stream-optimized file of version {}, not 3",
            h.version.get()
        )));
    }
    let mut tail = [0u8; 512];
    pkg.read_at(href, len - 512, &mut tail)?;
    let eos_last = tail.iter().all(|&b| b == 0);
    if h.gd_offset.get() == SparseExtentHeader::GD_AT_END {
        let mut footer = [0u8; 4];
        let has_footer = len >= 1536 && {
            pkg.read_at(href, len - 1024, &mut footer)?;
            footer == *b"KDMV"
        };
        return Ok((!(has_footer && eos_last)).then(|| {
            "a stream-optimized file whose header says GD_AT_END without the footer and \
             end-of-stream marker that must end it"
                .to_string()
        }));
    }
    // The directory in the header: the marker must follow the last grain and end the file.
    let end = last_grain_end(pkg, href, &h, len)?;
    let fault = match end {
        Some(end) if eos_last && end.checked_add(SECTOR_SIZE) == Some(len) => None,
        _ => Some(
            "a stream-optimized file without an end-of-stream marker after its last grain (as \
             qemu-img writes them)"
                .to_string(),
        ),
    };
    Ok(fault)
}

/// Where the last grain of a stream-optimized file whose grain directory is in its header ends
/// (sector-aligned), or the end of its metadata when it has no grain; `None` when its tables
/// or the marker lie outside the file.
fn last_grain_end(
    pkg: &Package,
    href: &str,
    h: &vmdk::format::SparseExtentHeader,
    len: u64,
) -> Result<Option<u64>> {
    use vmdk::format::SECTOR_SIZE;
    let read_u32s = |at: u64, count: u64| -> Result<Option<Vec<u32>>> {
        let bytes = count
            .checked_mul(4)
            .filter(|&b| at.checked_add(b).is_some_and(|e| e <= len));
        let Some(bytes) = bytes.and_then(|b| usize::try_from(b).ok()) else {
            return Ok(None);
        };
        let mut buf = vec![0u8; bytes];
        pkg.read_at(href, at, &mut buf)?;
        Ok(Some(
            buf.chunks_exact(4)
                .map(|c| <[u8; 4]>::try_from(c).map_or(0, u32::from_le_bytes))
                .collect(),
        ))
    };
    let per_gt = u64::from(h.num_gtes_per_gt.get()).max(1);
    let grains = h.capacity.get().div_ceil(h.grain_size.get().max(1));
    let tables = grains.div_ceil(per_gt);
    let Some(gd_at) = h.gd_offset.get().checked_mul(SECTOR_SIZE) else {
        return Ok(None);
    };
    let Some(gd) = read_u32s(gd_at, tables)? else {
        return Ok(None);
    };
    let mut last = 0u64;
    for &gt in gd.iter().filter(|&&gt| gt != 0) {
        let Some(entries) = read_u32s(u64::from(gt) * SECTOR_SIZE, per_gt)? else {
            return Ok(None);
        };
        last = last.max(entries.into_iter().map(u64::from).max().unwrap_or(0));
    }
    if last <= 1 {
        return Ok(h.over_head.get().checked_mul(SECTOR_SIZE));
    }
    // The grain's marker: its LBA (8 bytes), then the size of its compressed data (4 bytes).
    let Some(marker) = read_u32s(last * SECTOR_SIZE + 8, 1)? else {
        return Ok(None);
    };
    let size = u64::from(marker.first().copied().unwrap_or(0));
    Ok((last * SECTOR_SIZE + 12 + size)
        .div_ceil(SECTOR_SIZE)
        .checked_mul(SECTOR_SIZE))
}

/// The sparse header's flags and whether the file starts with `KDMV`, when it does.
fn sparse_flags(head: &[u8]) -> Option<u32> {
    if head.get(..4) != Some(b"KDMV".as_slice()) {
        return None;
    }
    let f: [u8; 4] = head.get(8..12)?.try_into().ok()?;
    Some(u32::from_le_bytes(f))
}

/// What one rule family needs: the package, its envelope and descriptor, the target.
struct Scope<'a> {
    pkg: &'a Package,
    env: &'a ovf::Envelope,
    descriptor: String,
    target: Target,
    vmware: bool,
}

/// Checks `pkg` for what `target` would refuse or change.
pub fn lint(pkg: &Package, target: Target) -> Result<LintReport> {
    let mut f = Findings(Vec::new());
    let scope = Scope {
        pkg,
        env: pkg.envelope(),
        descriptor: pkg.descriptor().to_string(),
        target,
        vmware: target.is_vmware(),
    };
    manifest_rules(&scope, &mut f)?;
    // The archive: where the descriptor is, and headers only some tar readers know.
    if let Some(archive) = pkg.archive() {
        archive_rules(archive, scope.vmware, &mut f);
    }
    size_rules(&scope, &mut f)?;
    fault_rules(&scope, &mut f);
    envelope_rules(&scope, &mut f);
    for system in &scope.env.systems {
        let h = system
            .hardware
            .select(scope.env.default_deployment_option());
        let at = |what: &str| format!("VirtualSystem ovf:id=\"{}\"/{what}", system.id);
        version_rules(&scope, &h, &at, &mut f);
        device_rules(&scope, &h, &at, &mut f);
    }
    extra_rules(&scope, &mut f);
    disk_file_rules(&scope, &mut f)?;
    let refused = f.0.iter().any(|x| x.severity == Severity::Refuse);
    Ok(LintReport {
        package: pkg.path().to_path_buf(),
        target,
        refused,
        findings: f.0,
    })
}

/// The manifest: spelling and algorithm.
fn manifest_rules(scope: &Scope<'_>, f: &mut Findings) -> Result<()> {
    let Scope {
        pkg,
        descriptor,
        target,
        vmware,
        ..
    } = scope;
    let (target, vmware) = (*target, *vmware);
    if let Some((mf, manifest)) = pkg.manifest() {
        let text = String::from_utf8_lossy(&pkg.read_small(mf)?).into_owned();
        let tags = tag_lines(&text);
        if let Some(first) = tags.first() {
            let severity = if vmware {
                Severity::Refuse
            } else {
                Severity::Note
            };
            f.add(
                "manifest-spelling",
                severity,
                mf,
                format!("line {first}"),
                format!(
                    "{} line(s) spelled `ALG (name) = hex`; VMware's products read only `ALG(name)= hex`",
                    tags.len()
                ),
                KB_MANIFEST,
            );
        }
        let newer: Vec<&str> = manifest
            .entries
            .iter()
            .map(|e| e.algorithm.as_str())
            .filter(|a| *a != "SHA1")
            .collect();
        if let Some(alg) = newer.first() {
            if target == Target::Workstation || target == Target::Esxi {
                f.add(
                    "manifest-algorithm",
                    Severity::Note,
                    mf,
                    "line 1",
                    format!("{alg} digests: vSphere 5.5 and Workstation before 14 take SHA1 manifests only"),
                    KB_MANIFEST,
                );
            }
        }
    } else if vmware {
        f.add(
            "manifest-missing",
            Severity::Note,
            descriptor,
            "package",
            "no manifest: nothing can be verified on import",
            DSP0243,
        );
    }

    Ok(())
}

/// Sizes and capacities: each file's `ovf:size`, each disk's capacity against its declared one.
fn size_rules(scope: &Scope<'_>, f: &mut Findings) -> Result<()> {
    let Scope {
        pkg,
        env,
        descriptor,
        vmware,
        ..
    } = scope;
    let vmware = *vmware;
    for file in &env.files {
        let present = pkg.size(&file.href);
        if let (Some(declared), Some(present)) = (file.size, present) {
            if declared != present && file.chunk_size.is_none() {
                // Shorter is cut short, which every product refuses; longer, only VMware's.
                let cut = present < declared && !file.is_compressed();
                let severity = if vmware || cut {
                    Severity::Refuse
                } else {
                    Severity::Note
                };
                f.add(
                    "file-size",
                    severity,
                    descriptor,
                    format!("References/File ovf:href=\"{}\"", file.href),
                    if cut {
                        format!("ovf:size says {declared} bytes, the file has {present}: cut short")
                    } else {
                        format!("ovf:size says {declared} bytes, the file has {present}")
                    },
                    DSP0243,
                );
            }
        }
    }
    for d in &pkg.verify(&|_| {})?.capacities {
        let (severity, what) = if d.capacity > d.declared {
            (Severity::Refuse, "more than")
        } else {
            (Severity::Change, "less than")
        };
        f.add(
            "capacity",
            severity,
            descriptor,
            format!("DiskSection/Disk ovf:diskId=\"{}\"", d.disk_id),
            format!(
                "the disk holds {} bytes, {what} the {} its ovf:capacity declares",
                d.capacity, d.declared
            ),
            DSP0243,
        );
    }

    Ok(())
}

/// The envelope's own faults ([`ovf::Envelope::faults`]): every product refuses a package
/// whose references it cannot resolve; a populated size over the capacity is only noted.
fn fault_rules(scope: &Scope<'_>, f: &mut Findings) {
    for fault in scope.env.faults() {
        let severity = if fault.rule == "populated-size" {
            Severity::Note
        } else {
            Severity::Refuse
        };
        let at = match fault.line {
            Some(line) => format!("line {line}: {}", fault.at),
            None => fault.at.clone(),
        };
        f.add(
            fault.rule,
            severity,
            &scope.descriptor,
            at,
            fault.message,
            DSP0243,
        );
    }
}

/// The envelope: its version, and collections a standalone host cannot deploy.
fn envelope_rules(scope: &Scope<'_>, f: &mut Findings) {
    let Scope {
        env,
        descriptor,
        target,
        ..
    } = scope;
    let target = *target;
    if env.version == "2.x" && target == Target::Workstation {
        f.add(
            "ovf-version",
            Severity::Refuse,
            descriptor,
            "Envelope",
            "an OVF 2.x envelope, which Workstation does not import",
            HOST_CLIENT,
        );
    }
    if env.systems.len() > 1 && matches!(target, Target::Esxi | Target::Workstation) {
        f.add(
            "collection",
            Severity::Refuse,
            descriptor,
            "VirtualSystemCollection",
            format!(
                "{} virtual systems in a collection: a standalone host deploys one (vCenter deploys vApps)",
                env.systems.len()
            ),
            HOST_CLIENT,
        );
    }
}

/// A system's hardware family and version: known to VMware, not too new.
fn version_rules(
    scope: &Scope<'_>,
    h: &ovf::hardware::Hardware,
    at: &dyn Fn(&str) -> String,
    f: &mut Findings,
) {
    let Scope {
        descriptor, vmware, ..
    } = scope;
    let vmware = *vmware;
    let types: Vec<&str> = h
        .system_type
        .as_deref()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let vmx = h.vmx_version();
    if vmware && vmx.is_none() && !types.is_empty() {
        f.add(
            "system-type",
            Severity::Refuse,
            descriptor,
            at("VirtualHardwareSection/System/VirtualSystemType"),
            format!(
                "hardware family {:?}: VMware's products refuse it (\"Unsupported hardware family\")",
                types.join(" ")
            ),
            HW_MATRIX,
        );
    }
    if let Some(v) = vmx.filter(|&v| v > NEWEST_VMX && vmware) {
        f.add(
            "system-type",
            Severity::Refuse,
            descriptor,
            at("VirtualHardwareSection/System/VirtualSystemType"),
            format!("vmx-{v} is newer than vmx-{NEWEST_VMX}, the newest the targets know"),
            HW_MATRIX,
        );
    }
}

/// A system's devices: those that need a newer hardware version, that VMware has not, or that
/// VirtualBox replaces.
fn device_rules(
    scope: &Scope<'_>,
    h: &ovf::hardware::Hardware,
    at: &dyn Fn(&str) -> String,
    f: &mut Findings,
) {
    let Scope {
        descriptor,
        target,
        vmware,
        ..
    } = scope;
    let (target, vmware) = (*target, *vmware);
    let vmx = h.vmx_version();
    if let Some(version) = vmx.filter(|_| vmware) {
        for (kind, needs, what) in [
            (DeviceKind::SataController, 10, "a SATA controller"),
            (DeviceKind::NvmeController, 13, "an NVMe controller"),
        ] {
            for d in h.of(kind) {
                if version < needs {
                    f.add(
                        "device-version",
                        Severity::Refuse,
                        descriptor,
                        at(&format!("Item InstanceID {}", d.instance_id)),
                        format!("{what} needs vmx-{needs}; the system is vmx-{version}"),
                        HW_MATRIX,
                    );
                }
            }
        }
    }
    if vmware {
        for d in &h.devices {
            let at = at(&format!("Item InstanceID {}", d.instance_id));
            if d.kind == DeviceKind::Sound && foreign_sound(d.subtype.as_deref()) {
                f.add(
                    "device-unsupported",
                    Severity::Refuse,
                    descriptor,
                    at,
                    format!(
                        "a sound card of subtype {:?}, which VMware's products do not have \
                         (fix removes it with --allow-drop)",
                        d.subtype.as_deref().unwrap_or("")
                    ),
                    SOUND,
                );
            } else if d.kind == DeviceKind::IdeController && d.subtype.is_some() {
                f.add(
                    "device-subtype",
                    Severity::Refuse,
                    descriptor,
                    at,
                    format!(
                        "an IDE controller of subtype {:?}: VMware's products take none",
                        d.subtype.as_deref().unwrap_or("")
                    ),
                    IDE,
                );
            }
        }
    }
    if target == Target::Virtualbox {
        for d in &h.devices {
            let sub = ovf::hardware::norm(d.subtype.as_deref());
            let what = match (d.kind, sub.as_str()) {
                (DeviceKind::ScsiController, "virtualscsi" | "pvscsi") => "a PVSCSI controller",
                (DeviceKind::Nic, "vmxnet3" | "vmxnet" | "vmxnet2") => "a vmxnet NIC",
                _ => continue,
            };
            f.add(
                "device-type",
                Severity::Change,
                descriptor,
                at(&format!("Item InstanceID {}", d.instance_id)),
                format!("{what}, which VirtualBox has not: it imports one of its own instead"),
                VBOX,
            );
        }
    }
}

/// Sections marked required that no product here understands; ExtraConfig settings.
fn extra_rules(scope: &Scope<'_>, f: &mut Findings) {
    let Scope {
        env,
        descriptor,
        vmware,
        ..
    } = scope;
    let vmware = *vmware;
    required_sections(env, descriptor, f);
    let extra = &env.extra_config_keys;
    if vmware && !extra.is_empty() {
        f.add(
            "extra-config",
            Severity::Change,
            descriptor,
            "VirtualHardwareSection/vmw:ExtraConfig",
            format!(
                "{} ExtraConfig setting(s) ({}): deployed only when allowed \
                 (ovftool --allowExtraConfig, vCenter's security prompt); fix removes them with \
                 --allow-drop",
                extra.len(),
                extra.join(", ")
            ),
            EXTRA,
        );
    }
}

/// Disk files: stream-optimized as VMware writes them, and as their `ovf:format` says.
fn disk_file_rules(scope: &Scope<'_>, f: &mut Findings) -> Result<()> {
    let Scope {
        pkg, env, vmware, ..
    } = scope;
    let vmware = *vmware;
    for disk in &env.disks {
        let Some(file) = env.file_of(disk) else {
            continue;
        };
        if file.is_compressed() || file.chunk_size.is_some() {
            continue;
        }
        let at = format!("DiskSection/Disk ovf:diskId=\"{}\"", disk.disk_id);
        let Some(len) = pkg.size(&file.href) else {
            let message = match pkg.not_followed(&file.href) {
                Some(why) => format!("the disk's file {:?} {why}: not read", file.href),
                None => format!("the disk's file {:?} is not in the package", file.href),
            };
            f.add(
                "disk-file",
                Severity::Refuse,
                &file.href,
                at,
                message,
                DSP0243,
            );
            continue;
        };
        let mut head = [0u8; 512];
        let mut r = pkg.reader(&file.href)?;
        let n = r.read(&mut head).unwrap_or(0);
        let head = head.split_at(n.min(head.len())).0;
        if !looks_like_vmdk(head) {
            f.add(
                "disk-not-vmdk",
                Severity::Refuse,
                &file.href,
                at,
                "the file is no VMDK (no sparse, COWD or seSparse header, no descriptor)",
                DSP0243,
            );
            continue;
        }
        let flags = sparse_flags(head);
        let says_stream = disk
            .format
            .as_deref()
            .is_some_and(|fm| fm.ends_with("#streamOptimized"));
        let is_stream = flags.is_some_and(|fl| fl & 0x30000 == 0x30000);
        if says_stream && !is_stream {
            f.add(
                "disk-format",
                if vmware {
                    Severity::Refuse
                } else {
                    Severity::Note
                },
                &file.href,
                at.clone(),
                "ovf:format says streamOptimized; the file is not a stream-optimized VMDK",
                DSP0243,
            );
        }
        // A file shorter than its ovf:size is cut short (`file-size`), not laid out otherwise.
        let cut = file.size.is_some_and(|declared| len < declared);
        if is_stream && vmware && !cut {
            if let Some(fault) = stream_layout_fault(pkg, &file.href, len)? {
                f.add(
                    "stream-layout",
                    Severity::Refuse,
                    &file.href,
                    format!("offset {:#x}", len.saturating_sub(512)),
                    format!("{fault}; ESXi refuses it"),
                    STREAM,
                );
            }
        }
    }
    Ok(())
}

/// Whether the first bytes of a disk file are a VMDK's: a hosted sparse (`KDMV`), ESXi COWD
/// (`COWD`) or seSparse header, or a text descriptor.
fn looks_like_vmdk(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head);
    use vmdk::format::{CowdHeader, SeSparseConstHeader, SparseExtentHeader};
    head.starts_with(&SparseExtentHeader::MAGIC.to_le_bytes())
        || head.starts_with(&CowdHeader::MAGIC.to_le_bytes())
        || head.starts_with(&SeSparseConstHeader::MAGIC.to_le_bytes())
        || text.trim_start().starts_with('#')
        || text.contains("createType")
}

/// Sections (children of the envelope and of virtual systems) marked `ovf:required="true"`
/// whose name is not one DSP0243 defines.
/// The rules on an OVA's members: the descriptor first, plain ustar headers, no macOS
/// resource-fork (`._NAME`) members.
fn archive_rules(archive: &crate::package::ova::OvaIndex, vmware: bool, f: &mut Findings) {
    let severity = |refused: bool| match refused {
        true => Severity::Refuse,
        false => Severity::Note,
    };
    if let Some(first) = archive.members().first() {
        if archive.descriptor().is_some_and(|d| d != first) {
            f.add(
                "descriptor-position",
                severity(vmware),
                &first.name,
                format!("tar header at offset {:#x}", first.header_offset),
                format!(
                    "the first member is {:?}, not the OVF descriptor: VMware's importers refuse \
                     the archive",
                    first.name
                ),
                ORDER,
            );
        }
    }
    for m in archive.members() {
        if m.extended {
            f.add(
                "tar-extensions",
                severity(vmware),
                &m.name,
                format!("tar header at offset {:#x}", m.header_offset),
                "pax or GNU extension headers precede this member (macOS and GNU tar write \
                 them for long names and file attributes); a plain ustar reader takes them for \
                 members of their own",
                PAX,
            );
        }
        if m.name.starts_with("._") {
            f.add(
                "resource-fork",
                Severity::Note,
                &m.name,
                format!("tar header at offset {:#x}", m.header_offset),
                "a macOS resource-fork file (AppleDouble), not part of the package",
                PAX,
            );
        }
    }
}

/// Sections marked required that no target here understands: refused.
fn required_sections(env: &ovf::Envelope, descriptor: &str, f: &mut Findings) {
    const KNOWN: [&str; 20] = [
        "References",
        "DiskSection",
        "NetworkSection",
        "DeploymentOptionSection",
        "VirtualSystem",
        "VirtualSystemCollection",
        "Info",
        "Name",
        "OperatingSystemSection",
        "VirtualHardwareSection",
        "ProductSection",
        "EulaSection",
        "AnnotationSection",
        "StartupSection",
        "ResourceAllocationSection",
        "InstallSection",
        "EnvironmentFilesSection",
        "BootDeviceSection",
        "SharedDiskSection",
        "ScaleOutSection",
    ];
    for section in &env.required_sections {
        let name = &section.name;
        if !KNOWN.contains(&name.as_str()) {
            f.add(
                "required-section",
                Severity::Refuse,
                descriptor,
                format!("{name} (line {})", section.line),
                format!(
                    "{name} is marked ovf:required=\"true\" and is not a section the targets know"
                ),
                DSP0243,
            );
        }
    }
}

/// Whether a sound card's `ResourceSubType` is not one of VMware's (`vmware.soundcard.*`).
pub(crate) fn foreign_sound(subtype: Option<&str>) -> bool {
    !subtype.is_some_and(|s| {
        s.trim()
            .to_ascii_lowercase()
            .starts_with("vmware.soundcard.")
    })
}
