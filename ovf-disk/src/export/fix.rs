//! Repairing a package for a product: [`fix`] exports it again with what the product's rules
//! ([`crate::rules::lint`]) refuse or change mended, and lists every change.

use ovf::hardware::DeviceKind;

use super::Options;
use crate::error::Result;
use crate::package::Package;
use crate::rules::lint::{lint, LintReport, Target, NEWEST_VMX};

/// What [`fix`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct FixReport {
    /// The package written.
    pub output: std::path::PathBuf,
    /// Every change made, in words.
    pub changes: Vec<String>,
    /// The findings before.
    pub before: LintReport,
    /// The findings the written package still has (what `fix` cannot repair: a collection for
    /// a standalone host, an OVF 2.x envelope for Workstation).
    pub after: LintReport,
}

/// Options of [`fix`]: how disks are written, and whether devices may be removed.
///
/// ```
/// let options = ovf_disk::export::FixOptions::new().allow_drop(true);
/// # let _ = options;
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct FixOptions {
    convert: crate::output::ConvertOptions,
    allow_drop: bool,
}

impl FixOptions {
    /// The defaults: `ConvertOptions`' defaults, no device removed.
    pub fn new() -> Self {
        Self::default()
    }

    /// How the disks are written.
    pub fn convert_options(mut self, convert: crate::output::ConvertOptions) -> Self {
        self.convert = convert;
        self
    }

    /// Whether devices the target does not have may be removed (a change that loses meaning:
    /// without it, such a device stays and the fixed package is still refused).
    pub fn allow_drop(mut self, allow: bool) -> Self {
        self.allow_drop = allow;
        self
    }
}

/// The oldest virtual hardware version that has the devices of `h`: vmx-10 for SATA (and as
/// the floor for a system that names none), vmx-13 for NVMe.
fn needed_vmx(h: &ovf::hardware::Hardware, floor: u32) -> u32 {
    let mut v = floor;
    if h.of(DeviceKind::SataController).next().is_some() {
        v = v.max(10);
    }
    if h.of(DeviceKind::NvmeController).next().is_some() {
        v = v.max(13);
    }
    v
}

/// Writes `out`, a package `target` accepts, from the package at `input` (an `.ovf` or an
/// `.ova`; never modified): the manifest rewritten (SHA1 for Workstation, SHA256 for the
/// others, spelled as VMware writes it), members in the order descriptor, manifest, files,
/// every `ovf:size` the file's, disks rewritten as VMware-layout stream-optimized files, and
/// for VMware targets a hardware family they know (`vmx-NN` in place of `virtualbox-2.2`, or
/// of a `vmx-NN` newer than they know). Every change is listed; what it cannot repair stays
/// in [`FixReport::after`].
pub fn fix(
    input: &std::path::Path,
    out: &std::path::Path,
    target: Target,
    options: &FixOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<FixReport> {
    let pkg = Package::open(input)?;
    let before = lint(&pkg, target)?;
    let mut changes = Vec::new();
    let algorithm = if target == Target::Workstation {
        ovf::manifest::Algorithm::Sha1
    } else {
        ovf::manifest::Algorithm::Sha256
    };
    let mut export = Options::new()
        .convert_options(options.convert.clone())
        .manifest(algorithm);
    changes.push(format!(
        "manifest written with {} digests, spelled ALG(name)= hex",
        algorithm.as_str()
    ));
    if target.is_vmware() {
        let env = pkg.envelope();
        let mut wanted = None;
        for s in &env.systems {
            let h = s.hardware.select(env.default_deployment_option());
            let stated = h.system_type.clone().unwrap_or_default();
            let vmx = h.vmx_version();
            let new = match vmx {
                Some(v) if v > NEWEST_VMX => NEWEST_VMX,
                Some(v) if needed_vmx(&h, v) > v => needed_vmx(&h, v),
                Some(_) => continue,
                None => needed_vmx(&h, 10),
            };
            changes.push(format!(
                "VirtualSystem {}: VirtualSystemType {stated:?} -> \"vmx-{new}\"",
                s.id
            ));
            wanted = Some(wanted.map_or(new, |w: u32| w.max(new)));
        }
        if let Some(v) = wanted {
            export.system_type = Some(format!("vmx-{v}"));
        }
    }
    if target.is_vmware() {
        export.devices.ide_subtype = true;
        export.devices.foreign_sound = options.allow_drop;
        export.devices.extra_config = options.allow_drop;
        for f in &before.findings {
            match (f.rule, options.allow_drop) {
                ("device-subtype", _) => {
                    changes.push(format!("{}: ResourceSubType removed", f.at));
                }
                ("device-unsupported" | "extra-config", true) => {
                    changes.push(format!("{}: removed (--allow-drop)", f.at));
                }
                _ => {}
            }
        }
    }
    if target == Target::Workstation && pkg.envelope().version == "2.x" {
        let text = String::from_utf8_lossy(&pkg.read_small(pkg.descriptor())?).into_owned();
        match ovf::write::downgrade_envelope(&text) {
            Ok(_) => {
                export.downgrade = true;
                changes.push(
                    "OVF 2.x envelope written as 1.x (EthernetPortItem and StorageItem as Item)"
                        .into(),
                );
            }
            Err(why) => changes.push(format!("not changed: the OVF 2.x envelope ({why})")),
        }
    }
    for f in before.findings.iter().filter(|f| f.rule == "file-size") {
        changes.push(format!(
            "{} {}: ovf:size corrected to the file's",
            f.file, f.at
        ));
    }
    changes.push(
        "disks rewritten as stream-optimized VMDKs in VMware's layout (footer, end-of-stream marker)"
            .into(),
    );
    changes.push("members ordered: descriptor, manifest, then the files".into());
    super::export(&[input.to_path_buf()], out, &export, progress)?;
    let after = lint(&Package::open(out)?, target)?;
    Ok(FixReport {
        output: out.to_path_buf(),
        changes,
        before,
        after,
    })
}
