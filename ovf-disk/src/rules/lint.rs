//! What an importing product would refuse or change in a package (`check --target`), rule by
//! rule, each with its source. Products: ESXi's host client and vCenter (ovftool's and the
//! vSphere Client's OVF deployment), VMware Workstation, VirtualBox, and virt-v2v's OVA input.
//!
//! Every finding names its source: a product's error text seen in a public report (the
//! repository and issue), a product's own source code or documentation. A rule only a
//! specification backs (DSP0243, the VMDK technote) is a note whatever the product, and its
//! source says so; a rule some products are known to accept is a note for those products.
//! The sources were gathered in December 2026 from public reports and the products' code
//! (VirtualBox's `ovfreader.cpp` and `ApplianceImplImport.cpp`, virt-v2v's `input/OVA.ml` and
//! `input/OVF.ml`, qemu's and open-vmdk's stream writers).

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

const TAG_VSPHERE: &str = "vSphere Client: \"The provided manifest file is invalid: Invalid OVF \
    checksum algorithm: SHA256 \" (home-assistant/operating-system#826, nextcloud/vm#2607)";
const TAG_ACCEPTED: &str = "accepted: VMware Player imported a tag-form manifest ESXi refused \
    (VMware Communities, Open Virtualization Format Tool forum, thread 2906760); virt-v2v's \
    manifest pattern (input/OVA.ml) reads `ALG (name) = hex`";
const SHA1_ONLY: &str = "older VMware products read SHA1 manifests only: Workstation Player 12.5 \
    with ovftool 4.2's SHA256 manifests (turnkeylinux/tracker#827)";
const NO_MANIFEST: &str =
    "ovftool warns that the manifest is missing, and imports (coreos/coreos-assembler#1156)";
const SIZE_VSPHERE: &str = "the vSphere Client aborts an OVA import whose ovf:size differs from \
    the file (gardenlinux/gardenlinux#2322)";
const SIZE_OVFTOOL: &str = "ovftool: \"Warning: - Wrong file size specified in OVF descriptor\", \
    then imports (vmware/vic-product#1166)";
const SIZE_SPEC: &str = "no product refusal on record: DSP0243 §9.1; VirtualBox (ovfreader.cpp: \
    ovf:size optional) and virt-v2v do not read ovf:size";
const CUT: &str = "a disk cut short fails where its data is read: ESXi's NFC stream reader, \
    vbox-img \"Error while copying the image: VERR_EOF\" (qemu-devel, August 2014, msg249466), \
    qemu-img under virt-v2v";
const CAPACITY_ESXI: &str = "ESXi: \"postNFCData failed: Capacity of uploaded disk is larger than \
    requested\" (teamdfir/sift#220)";
const CAPACITY_SPEC: &str = "no product refusal on record: DSP0243 §7.1; VirtualBox and virt-v2v \
    size the disk from its file";
const OVF2_WORKSTATION: &str = "Workstation: \"did not pass OVF specification conformance or \
    virtual hardware compliance checks\", \"Unsupported element 'StorageItem'\" for OVF 2.0 items \
    (BlackArch/blackarch#1937; The-Art-of-Hacking/websploit#1), with a retry that relaxes them";
const OVF2_V2V: &str = "virt-v2v's input/OVF.ml reads the OVF 1.x namespace only \
    (http://schemas.dmtf.org/ovf/envelope/1): an OVF 2.x envelope yields no disk";
const COLLECTION: &str = "no product refusal on record: a standalone ESXi host deploys one \
    VirtualSystem (vCenter deploys vApps)";
const FAMILY: &str =
    "vSphere: \"Unsupported hardware family 'virtualbox-2.2'\" (owncloud-archive/vm#53)";
const FAMILY_WORKSTATION: &str = "ovftool lists \"Unsupported hardware family\" among warnings \
    and writes the VMX (Banno/packer-post-processor-vsphere-ova#9)";
const VMX_NEWER: &str = "ESXi: \"No supported hardware versions among [vmx-16]\" \
    (sieteunoseis/cucm_tig_dashboard_ubuntu#2); VMware KB 1003746, virtual hardware versions";
const HW_MATRIX: &str =
    "VMware KB 1003746, virtual hardware versions (documentation; no error text on record)";
const VBOX: &str = "VirtualBox's ApplianceImplImport.cpp maps controllers and NICs it has not to \
    its own (VirtualBox manual, Importing and Exporting Virtual Machines)";
const SOUND: &str = "ESXi and vCenter: \"No support for the virtual hardware device type '35'\" \
    for VirtualBox's sound card (Graylog2/graylog2-server#5594)";
const IDE: &str = "vCenter: \"Value 'PIIX4' of ResourceSubType element not found\" \
    (Graylog2/graylog2-images#211); VMware writes IDE controllers without a subtype";
const EXTRA: &str = "ovftool: \"ExtraConfig options exists in source (use --allowExtraConfig \
    option to allow this)\" (hashicorp/packer#5771); vCenter asks to accept them as security risks \
    (vmware-archive/vsphere-automation-sdk-rest#18)";
const SECTION_VMWARE: &str = "Workstation: \"Unsupported section 'StartupSection'\" \
    (xcp-ng/xenadmin#202); ESXi: \"Unable to parse 'tools.syncTime' for attribute 'key' on \
    element 'Config'\" for a required vmw:Config (sexibytes/sexigraf#240); DSP0243 §8.2";
const SECTION_IGNORED: &str = "ignored: VirtualBox's ovfreader.cpp and virt-v2v's input/OVF.ml \
    skip sections they do not know, required or not";
const DISK_FILE: &str = "ovftool: \"Error: File (...) could not be found\" \
    (kubernetes-sigs/cluster-api-provider-vsphere#896); virt-v2v: \"OVF references file ... which \
    was not found in the OVA archive\" (input/OVA.ml); VirtualBox: \"Unexpected end of OVA\" \
    (ApplianceImplImport.cpp)";
const NOT_VMDK: &str = "ESXi hostd: \"Stream reader initialization failed: Not a supported disk \
    format (invalid sparse VMDK header)\" (vmware/pyvmomi-community-samples#398)";
const OLD_VERSION: &str = "ESXi: \"Not a supported disk format (sparse VMDK version too old)\" \
    (glennmatthews/cot#65, mininet/mininet#483)";
const NO_MARKER: &str = "a stream file that ends without an end-of-stream marker failed to \
    deploy on ESXi and deployed once a zero sector was appended (qemu issue 1357)";
const AFTER_MARKER: &str = "ovftool and Workstation: \"SHA digest of file ... does not match \
    manifest\" (home-assistant/operating-system#2121); vCenter's content library: \"IO error \
    during transfer ... Pipe closed\", gone with VMware's vmdk-convert (siderolabs/talos#11053)";
const AFTER_MARKER_ESXI: &str = "ESXi's host client imports qemu-img's stream files as they are \
    (home-assistant/operating-system#2121, qemu issue 1357)";
const NO_FOOTER: &str = "no product refusal on record: VMware Virtual Disk Format 5.0, \
    stream-optimized extents (GD_AT_END needs a footer)";
const ORDER: &str = "ovftool and Workstation: \"Did not find an .ovf file at the beginning of the \
    OVA package\" (teamdfir/sift#253, coreos/coreos-assembler#1141); vSphere's URL import \
    (kubev2v/migration-planner#147)";
const ORDER_OTHERS: &str =
    "accepted: virt-v2v finds the .ovf anywhere in the archive (input/OVA.ml); DSP0243 §5.3";
const PAX: &str = "no product refusal on record: oVirt engine's own OVA reader took pax headers \
    for members (oVirt/ovirt-engine#601); ustar (POSIX.1-1988) members read everywhere";
const FORK: &str = "virt-v2v skips `._` members (input/OVA.ml: \"added when using 'tar' on some \
    Macs\")";
const CAPACITY_GROWN: &str = "DMTF DSP0243 §7.1: the disk is made as large as ovf:capacity says";
const COLLECTION_V2V: &str = "virt-v2v's input/OVF.ml reads /Envelope/VirtualSystem only: the \
    systems of a collection are not found";
const DISK_FORMAT: &str = "ESXi's NFC stream reader: \"Not a supported disk format (sparse VMDK \
    version too old)\" for a sparse file that is not stream-optimized (mininet/mininet#483)";
const PROBED: &str = "no product refusal on record: VirtualBox and virt-v2v read a disk by its \
    contents (a raw file as raw)";
const FAULT_SPEC: &str = "no product refusal on record: DMTF DSP0243 and its schema (DSP8023)";
const SCHEMA: &str = "accepted: products read envelopes DMTF's schema (DSP8023) refuses: \
    VirtualBox's own exports put RASD elements out of the schema's order and VirtualBox imports \
    them; VMware's NSX appliance envelope breaks it and deploys on vSphere (testdata/envelopes, \
    CORPUS.md)";
const DUPLICATES: &str =
    "accepted: VirtualBox keeps the last of two (ovfreader.cpp), virt-v2v the \
    first (input/OVF.ml's XPath)";
const VBOX_FILE_REF: &str = "VirtualBox: \"cannot find References/File element for ID ... \
    referenced by 'Disk' element\" (ovfreader.cpp)";
const V2V_FILE_REF: &str = "virt-v2v: \"no href in ovf:File\" (input/OVF.ml)";
const VBOX_CAPACITY: &str = "VirtualBox: \"missing or invalid attribute 'capacity' in \
    'DiskSection' element\" (ovfreader.cpp)";
const VBOX_HOST: &str = "VirtualBox: \"Disk item with instance ID ... specifies invalid host \
    resource\" (ovfreader.cpp; hard disks only)";
const V2V_HOST: &str = "virt-v2v: \"could not parse disk rasd:HostResource from OVF document\" \
    (input/OVF.ml: ovf:/disk/ID only)";
const VBOX_PARENT: &str = "VirtualBox: \"Disk item with instance ID ... specifies invalid \
    parent\" (ovfreader.cpp; hard disks only)";
const OLD_BODY: &str = "Workstation: \"Missing attribute 'type' on element 'Section'\"; vSphere \
    5.5: \"xsi is an undeclared named space\" (opendedup/sdfs#97)";
const OLD_BODY_VBOX: &str =
    "accepted: VirtualBox's ovfreader.cpp reads `Section xsi:type=` in either namespace";

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

/// How a stream-optimized file departs from the layout VMware's readers take.
#[derive(Debug, PartialEq, Eq)]
enum StreamFault {
    /// A header version other than 3.
    Version(u32),
    /// GD_AT_END without the footer and end-of-stream marker that must end the file.
    NoFooter,
    /// No end-of-stream marker (a zero sector) right after the last grain.
    NoMarker,
    /// A marker after the last grain, and this many bytes after it (qemu-img pads its last
    /// grain to a whole 64 KiB cluster).
    AfterMarker(u64),
}

impl StreamFault {
    fn message(&self) -> String {
        match self {
            Self::Version(v) => format!("a stream-optimized file of version {v}, not 3"),
            Self::NoFooter => "a stream-optimized file whose header says GD_AT_END without the \
                footer and end-of-stream marker that must end it"
                .into(),
            Self::NoMarker => {
                "a stream-optimized file without an end-of-stream marker after its last grain"
                    .into()
            }
            Self::AfterMarker(n) => format!(
                "{n} bytes follow the end-of-stream marker after the last grain (qemu-img pads \
                 its last grain to a whole cluster): VMware's stream reader stops at the marker"
            ),
        }
    }

    /// What `target` does with it, and the source.
    fn verdict(&self, target: Target) -> (Severity, &'static str) {
        match self {
            Self::Version(_) => (Severity::Refuse, OLD_VERSION),
            Self::NoFooter => (Severity::Note, NO_FOOTER),
            Self::NoMarker => (Severity::Refuse, NO_MARKER),
            Self::AfterMarker(_) if target == Target::Esxi => (Severity::Note, AFTER_MARKER_ESXI),
            Self::AfterMarker(_) => (Severity::Refuse, AFTER_MARKER),
        }
    }
}

/// What keeps a stream-optimized file from the layout VMware's readers take, if anything.
/// VMware's writers (GD_AT_END, a footer, an end-of-stream marker) and open-vmdk's
/// `vmdk-convert` (the grain directory in the header, an end-of-stream marker ending the file,
/// no footer) are what they take; qemu-img's files have no footer and, with data, a marker
/// followed by the rest of the last grain's cluster, or, empty, no marker at all. Reads the
/// header, the tail, and for a directory in the header the grain tables (4 bytes a grain), the
/// last grain's marker and the sector after it: never the grains.
fn stream_layout_fault(pkg: &Package, href: &str, len: u64) -> Result<Option<StreamFault>> {
    use vmdk::format::{SparseExtentHeader, SECTOR_SIZE};
    use zerocopy::FromBytes;
    let mut sector = [0u8; 512];
    if len < 1024 {
        return Ok(Some(StreamFault::NoMarker));
    }
    pkg.read_at(href, 0, &mut sector)?;
    let Ok(h) = SparseExtentHeader::read_from_bytes(&sector[..]) else {
        return Ok(None);
    };
    if h.version.get() != 3 {
        return Ok(Some(StreamFault::Version(h.version.get())));
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
        return Ok((!(has_footer && eos_last)).then_some(StreamFault::NoFooter));
    }
    // The directory in the header: a marker must follow the last grain, and end the file.
    let Some(end) = last_grain_end(pkg, href, &h, len)? else {
        return Ok(Some(StreamFault::NoMarker));
    };
    let Some(after) = end.checked_add(SECTOR_SIZE).filter(|&a| a <= len) else {
        return Ok(Some(StreamFault::NoMarker));
    };
    let mut marker = [0u8; 512];
    pkg.read_at(href, end, &mut marker)?;
    Ok(match (marker.iter().all(|&b| b == 0), after == len) {
        (false, _) => Some(StreamFault::NoMarker),
        (true, true) => None,
        (true, false) => Some(StreamFault::AfterMarker(len - after)),
    })
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
    schema_rule(&scope, &mut f)?;
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

/// The envelope against DMTF's schema: one note for all its violations (`check` lists them).
fn schema_rule(scope: &Scope<'_>, f: &mut Findings) -> Result<()> {
    let Some(v) = scope.pkg.schema()? else {
        return Ok(());
    };
    if let Some(first) = v.violations.first() {
        let count = v.violations.len() + v.omitted;
        f.add(
            "schema",
            Severity::Note,
            &scope.descriptor,
            first.line.map_or_else(String::new, |l| format!("line {l}")),
            format!(
                "{count} violation(s) of {} (`ovf-disk check` lists them), the first: {}",
                v.schema, first.message
            ),
            SCHEMA,
        );
    }
    Ok(())
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
            let (severity, source) = match target {
                Target::Esxi | Target::Vcenter => (Severity::Refuse, TAG_VSPHERE),
                _ => (Severity::Note, TAG_ACCEPTED),
            };
            f.add(
                "manifest-spelling",
                severity,
                mf,
                format!("line {first}"),
                format!(
                    "{} line(s) spelled `ALG (name) = hex`; the vSphere Client reads only `ALG(name)= hex`",
                    tags.len()
                ),
                source,
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
                    SHA1_ONLY,
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
            NO_MANIFEST,
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
        target,
        vmware,
        ..
    } = scope;
    let (target, vmware) = (*target, *vmware);
    for file in &env.files {
        let present = pkg.size(&file.href);
        if let (Some(declared), Some(present)) = (file.size, present) {
            if declared != present && file.chunk_size.is_none() {
                // Shorter is cut short, which every product fails to read; a size that merely
                // differs, only the vSphere Client refuses.
                let cut = present < declared && !file.is_compressed();
                let (severity, source) = match (cut, target) {
                    (true, _) => (Severity::Refuse, CUT),
                    (false, Target::Esxi | Target::Vcenter) => (Severity::Refuse, SIZE_VSPHERE),
                    (false, Target::Workstation) => (Severity::Note, SIZE_OVFTOOL),
                    (false, _) => (Severity::Note, SIZE_SPEC),
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
                    source,
                );
            }
        }
    }
    for d in &pkg.verify(&|_| {})?.capacities {
        let (severity, what, source) = match (d.capacity > d.declared, vmware) {
            (true, true) => (Severity::Refuse, "more than", CAPACITY_ESXI),
            (true, false) => (Severity::Note, "more than", CAPACITY_SPEC),
            (false, _) => (Severity::Change, "less than", CAPACITY_GROWN),
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
            source,
        );
    }

    Ok(())
}

/// The envelope's own faults ([`ovf::Envelope::faults`]): every product refuses a package
/// whose references it cannot resolve; a populated size over the capacity is only noted.
fn fault_rules(scope: &Scope<'_>, f: &mut Findings) {
    for fault in scope.env.faults() {
        let (severity, source) = fault_verdict(&fault, scope.target);
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
            source,
        );
    }
}

/// What `target` does with an envelope fault, and the source: a refusal where the product's
/// code refuses it, a note where it is known to accept it or nothing is on record.
fn fault_verdict(fault: &ovf::faults::Fault, target: Target) -> (Severity, &'static str) {
    let disk = fault.device == Some(DeviceKind::Disk);
    let refuse = |source| (Severity::Refuse, source);
    match (fault.rule, target) {
        ("disk-file-ref", Target::Virtualbox) => refuse(VBOX_FILE_REF),
        ("disk-file-ref", Target::VirtV2v) => refuse(V2V_FILE_REF),
        // VirtualBox reads an absent capacity as an error, a zero one (`disk-capacity-zero`)
        // as a number.
        ("disk-capacity", Target::Virtualbox) => refuse(VBOX_CAPACITY),
        ("host-resource", Target::Virtualbox) if disk => refuse(VBOX_HOST),
        ("host-resource", Target::VirtV2v) if disk => refuse(V2V_HOST),
        ("parent", Target::Virtualbox) if disk => refuse(VBOX_PARENT),
        ("ovf-0.9-body", t) if t.is_vmware() => refuse(OLD_BODY),
        ("ovf-0.9-body", Target::Virtualbox) => (Severity::Note, OLD_BODY_VBOX),
        (
            "duplicate-file-id" | "duplicate-href" | "duplicate-disk-id",
            Target::Virtualbox | Target::VirtV2v,
        ) => (Severity::Note, DUPLICATES),
        _ => (Severity::Note, FAULT_SPEC),
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
    let ovf2 = match target {
        Target::Workstation => Some(OVF2_WORKSTATION),
        Target::VirtV2v => Some(OVF2_V2V),
        _ => None,
    };
    if let Some(source) = ovf2.filter(|_| env.version == "2.x") {
        f.add(
            "ovf-version",
            Severity::Refuse,
            descriptor,
            "Envelope",
            "an OVF 2.x envelope, which the target does not import as it is",
            source,
        );
    }
    let collection = match target {
        Target::Esxi | Target::Workstation => Some((Severity::Note, COLLECTION)),
        Target::VirtV2v => Some((Severity::Refuse, COLLECTION_V2V)),
        _ => None,
    };
    if let Some((severity, source)) = collection.filter(|_| env.systems.len() > 1) {
        f.add(
            "collection",
            severity,
            descriptor,
            "VirtualSystemCollection",
            format!(
                "{} virtual systems in a collection: the target deploys one VirtualSystem",
                env.systems.len()
            ),
            source,
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
        descriptor,
        target,
        vmware,
        ..
    } = scope;
    let (target, vmware) = (*target, *vmware);
    let types: Vec<&str> = h
        .system_type
        .as_deref()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let vmx = h.vmx_version();
    if vmware && vmx.is_none() && !types.is_empty() {
        let (severity, source) = match target {
            Target::Workstation => (Severity::Note, FAMILY_WORKSTATION),
            _ => (Severity::Refuse, FAMILY),
        };
        f.add(
            "system-type",
            severity,
            descriptor,
            at("VirtualHardwareSection/System/VirtualSystemType"),
            format!(
                "hardware family {:?}: VMware's products do not know it (\"Unsupported hardware family\")",
                types.join(" ")
            ),
            source,
        );
    }
    if let Some(v) = vmx.filter(|&v| v > NEWEST_VMX && vmware) {
        f.add(
            "system-type",
            Severity::Refuse,
            descriptor,
            at("VirtualHardwareSection/System/VirtualSystemType"),
            format!("vmx-{v} is newer than vmx-{NEWEST_VMX}, the newest the targets know"),
            VMX_NEWER,
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
    required_sections(env, descriptor, vmware, f);
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
        pkg,
        env,
        target,
        vmware,
        ..
    } = scope;
    let (target, vmware) = (*target, *vmware);
    let refused_by_vmware = |source| match vmware {
        true => (Severity::Refuse, source),
        false => (Severity::Note, PROBED),
    };
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
                DISK_FILE,
            );
            continue;
        };
        let mut head = [0u8; 512];
        let mut r = pkg.reader(&file.href)?;
        let n = r.read(&mut head).unwrap_or(0);
        let head = head.split_at(n.min(head.len())).0;
        if !looks_like_vmdk(head) {
            let (severity, source) = refused_by_vmware(NOT_VMDK);
            f.add(
                "disk-not-vmdk",
                severity,
                &file.href,
                at,
                "the file is no VMDK (no sparse, COWD or seSparse header, no descriptor)",
                source,
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
            let (severity, source) = refused_by_vmware(DISK_FORMAT);
            f.add(
                "disk-format",
                severity,
                &file.href,
                at.clone(),
                "ovf:format says streamOptimized; the file is not a stream-optimized VMDK",
                source,
            );
        }
        // A file shorter than its ovf:size is cut short (`file-size`), not laid out otherwise.
        let cut = file.size.is_some_and(|declared| len < declared);
        if is_stream && vmware && !cut {
            if let Some(fault) = stream_layout_fault(pkg, &file.href, len)? {
                let (severity, source) = fault.verdict(target);
                f.add(
                    "stream-layout",
                    severity,
                    &file.href,
                    format!("offset {:#x}", len.saturating_sub(512)),
                    fault.message(),
                    source,
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
                match vmware {
                    true => ORDER,
                    false => ORDER_OTHERS,
                },
            );
        }
    }
    for m in archive.members() {
        if m.extended {
            f.add(
                "tar-extensions",
                Severity::Note,
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
                FORK,
            );
        }
    }
}

/// Sections marked required that no target here understands: refused.
fn required_sections(env: &ovf::Envelope, descriptor: &str, vmware: bool, f: &mut Findings) {
    let (severity, source) = match vmware {
        true => (Severity::Refuse, SECTION_VMWARE),
        false => (Severity::Note, SECTION_IGNORED),
    };
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
                severity,
                descriptor,
                format!("{name} (line {})", section.line),
                format!(
                    "{name} is marked ovf:required=\"true\" and is not a section the targets know"
                ),
                source,
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

#[cfg(test)]
mod tests {
    use super::*;

    const TARGETS: [Target; 5] = [
        Target::Esxi,
        Target::Vcenter,
        Target::Workstation,
        Target::Virtualbox,
        Target::VirtV2v,
    ];

    /// A refusal cites a product; a rule no product is known to refuse by is a note.
    fn consistent((severity, source): (Severity, &str)) {
        let spec_only = source.starts_with("no product refusal on record");
        let accepted = source.starts_with("accepted:");
        if severity == Severity::Refuse {
            assert!(!spec_only && !accepted, "{source}");
        }
        if spec_only || accepted {
            assert_eq!(severity, Severity::Note, "{source}");
        }
    }

    #[test]
    fn refusals_cite_a_product_and_spec_only_rules_are_notes() {
        let rules = [
            "duplicate-file-id",
            "duplicate-href",
            "duplicate-disk-id",
            "disk-file-ref",
            "disk-capacity",
            "disk-capacity-zero",
            "populated-size",
            "host-resource",
            "parent",
            "ovf-0.9-body",
        ];
        let kinds = [None, Some(DeviceKind::Disk), Some(DeviceKind::CdRom)];
        for t in TARGETS {
            for rule in rules {
                for device in kinds {
                    let fault = ovf::faults::Fault::new(rule, "x", None, "ovf:capacity", device);
                    consistent(fault_verdict(&fault, t));
                }
            }
            for f in [
                StreamFault::Version(1),
                StreamFault::NoFooter,
                StreamFault::NoMarker,
                StreamFault::AfterMarker(512),
            ] {
                consistent(f.verdict(t));
            }
        }
        // What the products' code says, as the table in fault_verdict has it.
        let disk = Some(DeviceKind::Disk);
        let verdict = |rule, t, device| {
            fault_verdict(&ovf::faults::Fault::new(rule, "x", None, "", device), t).0
        };
        assert_eq!(
            verdict("disk-file-ref", Target::Virtualbox, None),
            Severity::Refuse
        );
        assert_eq!(
            verdict("host-resource", Target::VirtV2v, disk),
            Severity::Refuse
        );
        assert_eq!(
            verdict("host-resource", Target::Virtualbox, Some(DeviceKind::CdRom)),
            Severity::Note
        );
        assert_eq!(
            verdict("duplicate-disk-id", Target::Virtualbox, None),
            Severity::Note
        );
        assert_eq!(
            verdict("ovf-0.9-body", Target::Esxi, None),
            Severity::Refuse
        );
    }
}
