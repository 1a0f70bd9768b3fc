//! VMware VM folders, as copied off a datastore: the `.vmx` configuration, each virtual disk
//! with the chain of snapshot deltas down to its base, the folder's other files, and the
//! consolidation of every disk's chain to one eager-zeroed thick disk ([`inflate_vm`]).
//!
//! A `.vmx` is text, `key = "value"` a line, keys case-insensitive, `#` comments, and values
//! escaped as `|XX` (two hex digits) for the characters the format reserves. It is read as
//! hostile input: at most 1 MiB, and a disk's `fileName` must be a plain name in the VM's
//! folder (an absolute path or `..` is refused unless outside paths are allowed, as for the
//! extents a descriptor names).

#[cfg(feature = "write")]
mod inflate;
mod vmsd;
mod vmx;

#[cfg(feature = "write")]
pub(crate) use inflate::output_stem;
#[cfg(feature = "write")]
pub use inflate::{inflate_vm, InflateReport, InflatedDisk};
#[cfg(feature = "write")]
pub(crate) use vmsd::find as find_snapshot;
pub use vmsd::{Snapshot, SnapshotDisk};
pub use vmx::{Vm, VmDisk, VmxWriter};

use std::path::{Path, PathBuf};

#[cfg(feature = "write")]
use vmdk::Format;
use vmdk::{Disk, OpenOptions};

use crate::error::{Error, Result};
#[cfg(feature = "write")]
use crate::output::convert::ConvertOptions;

/// Most files of a VM folder listed as unused.
const MAX_LISTED: usize = 10_000;

/// Options of [`vm_info`] and `inflate_vm` (feature `write`): how disks are opened and
/// written.
///
/// ```
/// let options = ovf_disk::vm::Options::new()
///     .allow_outside_paths(false)
///     .output_format(vmdk::Format::Raw)
///     .unwrap();
/// # let _ = options;
/// ```
#[derive(Clone, Debug)]
pub struct Options {
    open: OpenOptions,
    pub(crate) allow_outside: bool,
    /// Where the `.vmx` and the disks are read, when not from the host's files.
    files: Option<std::sync::Arc<dyn vmdk::Files>>,
    /// The snapshot whose disks are opened instead of the current ones.
    snapshot: Option<String>,
    #[cfg(feature = "write")]
    format: Format,
    #[cfg(feature = "write")]
    convert: ConvertOptions,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            open: OpenOptions::new(),
            allow_outside: false,
            files: None,
            snapshot: None,
            #[cfg(feature = "write")]
            format: Format::Vmdk(vmdk::CreateType::MonolithicFlat),
            #[cfg(feature = "write")]
            convert: ConvertOptions::new(),
        }
    }
}

impl Options {
    /// The defaults: disks and their extents must stay in the VM's folder; each disk written
    /// as a thick VMDK (`monolithicFlat`), eager-zeroed, existing outputs refused.
    pub fn new() -> Self {
        Self::default()
    }

    /// How disks are opened (memory maps, parent CIDs). Its outside-paths setting is replaced
    /// by [`Options::allow_outside_paths`]'s.
    pub fn open_options(mut self, open: OpenOptions) -> Self {
        self.open = open.allow_outside_paths(self.allow_outside);
        self
    }

    /// Whether a disk's `fileName`, and the files its descriptors name, may lead outside the
    /// VM's folder (absolute paths, `..`, links). Off by default.
    pub fn allow_outside_paths(mut self, allow: bool) -> Self {
        self.allow_outside = allow;
        self.open = self.open.allow_outside_paths(allow);
        self
    }

    /// Reads the `.vmx` and the disks through `files` (a VM folder at a URL:
    /// `vmdk::remote::RemoteFiles`) instead of the host's files. Such a folder is not listed:
    /// [`Info::unused`] stays empty.
    pub fn files(mut self, files: impl vmdk::Files + Clone + 'static) -> Self {
        self.open = self.open.files(files.clone());
        self.files = Some(std::sync::Arc::new(files));
        self
    }

    /// Opens each disk as it was when the snapshot `name` (its display name or uid in the
    /// folder's `.vmsd`) was taken, instead of its current leaf.
    pub fn snapshot(mut self, name: impl Into<String>) -> Self {
        self.snapshot = Some(name.into());
        self
    }

    /// The text of `path` (at most `max` bytes) through these options' files; `None` when it
    /// does not exist.
    fn read_text(&self, path: &Path, max: u64) -> Result<Option<String>> {
        let too_big = || Error::Config {
            path: path.to_path_buf(),
            line: 0,
            reason: format!("larger than {max} bytes: not a VM configuration"),
        };
        let bytes = match &self.files {
            Some(files) => {
                let backing = match files.open(path) {
                    Ok(b) => b,
                    Err(e) if matches!(e.kind(), vmdk::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::NotFound) => {
                        return Ok(None)
                    }
                    Err(e) => return Err(e.into()),
                };
                if backing.len() > max {
                    return Err(too_big());
                }
                let mut bytes = vec![0u8; usize::try_from(backing.len()).unwrap_or(0)];
                positioned_io::ReadAt::read_exact_at(&backing, 0, &mut bytes)
                    .map_err(Error::io(path))?;
                bytes
            }
            None => match std::fs::metadata(path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => return Err(Error::io(path)(e)),
                Ok(m) if m.len() > max => return Err(too_big()),
                Ok(_) => std::fs::read(path).map_err(Error::io(path))?,
            },
        };
        Ok(Some(String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// Reads the `.vmx` at `vmx` through these options' files (the host's by default).
    pub fn read_vm(&self, vmx: &Path) -> Result<Vm> {
        if self.files.is_none() {
            return Vm::open(vmx);
        }
        let text = self
            .read_text(vmx, vmx::MAX_VMX)?
            .ok_or_else(|| Error::Missing {
                path: vmx.to_path_buf(),
                name: "the .vmx".into(),
            })?;
        Vm::parse(&text, vmx)
    }

    /// The snapshots the folder's `.vmsd` lists (none without one).
    pub fn snapshots(&self, vmx: &Path) -> Result<Vec<Snapshot>> {
        let path = vmsd::path_of(vmx);
        match self.read_text(&path, vmx::MAX_VMX)? {
            Some(text) => vmsd::parse(&text, &path),
            None => Ok(Vec::new()),
        }
    }

    /// The size of a file of a disk: through these options' files, or the host's.
    fn file_size(&self, path: &Path) -> Option<u64> {
        match &self.files {
            Some(files) => files.open(path).ok().map(|b| b.len()),
            None => std::fs::metadata(path).ok().map(|m| m.len()),
        }
    }

    /// The options disks are opened with (the outside-paths policy included).
    pub fn disk_open_options(&self) -> &OpenOptions {
        &self.open
    }

    /// What each disk becomes: raw, or a thick VMDK type (`monolithicFlat`, `vmfs`,
    /// `twoGbMaxExtentFlat`); other formats are refused.
    #[cfg(feature = "write")]
    pub fn output_format(mut self, format: Format) -> Result<Self> {
        if !format.is_thick() && format != Format::Qcow2 {
            return Err(Error::InvalidInput(format!(
                "a VM's disks are consolidated to raw, qcow2 or thick VMDK disks, not {format}"
            )));
        }
        self.format = format;
        Ok(self)
    }

    /// How disks are written (threads, zeros, replacing outputs, the space check).
    #[cfg(feature = "write")]
    pub fn convert_options(mut self, convert: ConvertOptions) -> Self {
        self.convert = convert;
        self
    }
}

/// One link of a disk's chain in a [`Info`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Link {
    /// The link's descriptor (or only file).
    pub file: PathBuf,
    /// Its `createType`.
    pub create_type: String,
    /// Bytes its files take (descriptor and extents).
    pub size: u64,
}

/// A disk of a [`Info`]: its device, capacity and chain, leaf first.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct DiskInfo {
    /// Controller and unit.
    pub device: String,
    /// The controller's model.
    pub controller: String,
    /// Capacity in bytes.
    pub capacity: u64,
    /// The chain, from the current leaf down to the base.
    pub chain: Vec<Link>,
}

/// A file of the VM's folder that no disk and not the configuration uses.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct UnusedFile {
    /// Its name.
    pub name: String,
    /// What it is, by its name: `change tracking`, `snapshot state`, `memory`, `NVRAM`,
    /// `snapshot list`, `log`, `swap`, `disk not in the configuration`, `other`.
    pub kind: &'static str,
}

/// What [`vm_info`] found: the configuration, each disk's chain, the unused files.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Info {
    /// The configuration.
    #[cfg_attr(feature = "serde", serde(flatten))]
    pub vm: Vm,
    /// Each disk, by device, with its chain.
    #[cfg_attr(feature = "serde", serde(rename = "disk_chains"))]
    pub chains: Vec<DiskInfo>,
    /// Files of the folder no disk uses (at most 10000 listed).
    pub unused: Vec<UnusedFile>,
    /// The snapshots the folder's `.vmsd` lists, oldest first.
    pub snapshots: Vec<Snapshot>,
}

/// What a file of a VM folder is, by its name.
fn kind_of(name: &str) -> &'static str {
    let lower = name.to_ascii_lowercase();
    let kinds: [(&str, &'static str); 9] = [
        ("-ctk.vmdk", "change tracking"),
        (".vmsn", "snapshot state"),
        (".vmem", "memory"),
        (".nvram", "NVRAM"),
        (".vmsd", "snapshot list"),
        (".log", "log"),
        (".vswp", "swap"),
        (".vmxf", "team settings"),
        (".vmdk", "disk not in the configuration"),
    ];
    kinds
        .into_iter()
        .find(|(suffix, _)| lower.ends_with(suffix))
        .map_or("other", |(_, k)| k)
}

/// Opens `disk` of `vm`: its leaf and the chain below it.
pub(crate) fn open_disk(vm: &Vm, disk: &VmDisk, options: &Options) -> Result<Disk> {
    let as_of;
    let disk = match &options.snapshot {
        Some(name) => {
            as_of = disk_as_of(vm, disk, name, options)?;
            &as_of
        }
        None => disk,
    };
    let path = vm.disk_path(disk, options.allow_outside)?;
    options
        .open
        .open(&path)
        .map_err(|e| Error::from(e).for_disk(&disk.device))
}

/// Each disk of the VM at `vmx` opened (its whole chain), with its device (`scsi0:0`): what
/// `nbd` serves, one export a disk.
pub fn open_disks(vmx: &Path, options: &Options) -> Result<Vec<(String, Disk)>> {
    let vm = options.read_vm(vmx)?;
    vm.disks
        .iter()
        .map(|d| open_disk(&vm, d, options).map(|disk| (d.device.clone(), disk)))
        .collect()
}

/// `disk` as the snapshot `name` froze it: the file the `.vmsd` lists for its device.
fn disk_as_of(vm: &Vm, disk: &VmDisk, name: &str, options: &Options) -> Result<VmDisk> {
    let snapshots = options.snapshots(&vm.path)?;
    let listed: Vec<&str> = snapshots.iter().map(|s| s.name.as_str()).collect();
    let s = vmsd::find(&snapshots, name).ok_or_else(|| {
        Error::InvalidInput(format!(
            "{}: no snapshot {name:?} (the .vmsd lists {listed:?})",
            vm.path.display()
        ))
    })?;
    let file = s
        .disks
        .iter()
        .find(|d| d.device.eq_ignore_ascii_case(&disk.device))
        .ok_or_else(|| {
            Error::InvalidInput(format!(
                "{}: snapshot {name:?} lists no disk {}",
                vm.path.display(),
                disk.device
            ))
        })?;
    let mut at = disk.clone();
    at.file = file.file.clone();
    Ok(at)
}

/// Bytes the files of the link `link` take: its files, not its parents'.
fn link_size(link: &Disk, options: &Options) -> u64 {
    let below = link.parent().map(Disk::files).unwrap_or_default();
    link.files()
        .iter()
        .filter(|f| !below.contains(f))
        .filter_map(|f| options.file_size(f))
        .sum()
}

/// The VM at `vmx`: its configuration, each disk's chain, and the files of its folder that
/// nothing uses.
pub fn vm_info(vmx: &Path, options: &Options) -> Result<Info> {
    let vm = options.read_vm(vmx)?;
    let mut chains = Vec::new();
    let mut used: Vec<PathBuf> = vec![vm.path.clone()];
    for d in &vm.disks {
        let disk = open_disk(&vm, d, options)?;
        used.extend(disk.files());
        chains.push(DiskInfo {
            device: d.device.clone(),
            controller: d.controller.clone(),
            capacity: disk.capacity(),
            chain: disk
                .chain()
                .map(|l| Link {
                    file: l.path().to_path_buf(),
                    create_type: l.create_type().as_str().to_string(),
                    size: link_size(l, options),
                })
                .collect(),
        });
    }
    let used: Vec<PathBuf> = used
        .iter()
        .filter_map(|p| p.file_name().map(PathBuf::from))
        .collect();
    let mut unused = Vec::new();
    let snapshots = options.snapshots(vmx)?;
    if options.files.is_some() {
        return Ok(Info {
            vm,
            chains,
            unused,
            snapshots,
        });
    }
    let entries = std::fs::read_dir(vm.folder()).map_err(Error::io(vm.folder()))?;
    for entry in entries {
        let entry = entry.map_err(Error::io(vm.folder()))?;
        if !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let name = entry.file_name();
        if used.iter().any(|u| u.as_os_str() == name) {
            continue;
        }
        let name = name.to_string_lossy().into_owned();
        if unused.len() < MAX_LISTED {
            unused.push(UnusedFile {
                kind: kind_of(&name),
                name,
            });
        }
    }
    unused.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Info {
        vm,
        chains,
        unused,
        snapshots,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const VMX: &str = r#".encoding = "UTF-8"
config.version = "8"
virtualHW.version = "19"
displayName = "web |22prod|22"
numvcpus = "4"
memSize = "8192"
guestOS = "debian12-64"
firmware = "efi"
scsi0.present = "TRUE"
scsi0.virtualDev = "pvscsi"
scsi0:0.present = "TRUE"
scsi0:0.fileName = "web-000002.vmdk"
scsi0:1.present = "FALSE"
scsi0:1.fileName = "old.vmdk"
sata0.present = "TRUE"
sata0:0.present = "TRUE"
sata0:0.fileName = "data.vmdk"
sata0:1.present = "TRUE"
sata0:1.deviceType = "cdrom-image"
sata0:1.fileName = "debian.iso"
# a comment
nvme0.present = "FALSE"
nvme0:0.fileName = "gone.vmdk"
ide1:0.fileName = "ide.vmdk"
sata0:2.present = "TRUE"
sata0:2.deviceType = "ata-hardDisk"
sata0:2.fileName = "data2.img"
sata0:3.present = "TRUE"
sata0:3.deviceType = "atapi-cdrom"
sata0:3.fileName = "auto detect"
"#;

    #[test]
    fn reads_the_configuration_and_the_disks_present() {
        let vm = Vm::parse(VMX, Path::new("vm/web.vmx")).unwrap();
        assert_eq!(vm.name.as_deref(), Some("web \"prod\""));
        assert_eq!(vm.cpus, 4);
        assert_eq!(vm.memory_bytes, Some(8192 << 20));
        assert_eq!(vm.guest_os.as_deref(), Some("debian12-64"));
        assert_eq!(vm.firmware, "efi");
        let d: Vec<(&str, &str, &str)> = vm
            .disks
            .iter()
            .map(|d| (d.device.as_str(), d.controller.as_str(), d.file.as_str()))
            .collect();
        assert_eq!(
            d,
            [
                ("scsi0:0", "pvscsi", "web-000002.vmdk"),
                ("sata0:0", "ahci", "data.vmdk"),
                // A disk whose file is not named .vmdk is still a disk (issue 26).
                ("sata0:2", "ahci", "data2.img"),
                ("ide1:0", "ide", "ide.vmdk"),
            ]
        );
    }

    #[test]
    fn refuses_what_is_not_a_configuration_and_paths_outside() {
        for (text, line) in [
            ("a = \"b\"\nno equals sign\n", 2),
            ("key with space = \"x\"\n", 1),
            ("a = \"unclosed\n", 1),
        ] {
            match Vm::parse(text, Path::new("x.vmx")) {
                Err(Error::Config { line: l, .. }) => assert_eq!(l, line, "{text}"),
                other => panic!("{text}: {other:?}"),
            }
        }
        for name in ["../other/x.vmdk", "/vmfs/volumes/ds/x.vmdk", "sub/x.vmdk"] {
            let vm = Vm::parse(
                &format!("scsi0:0.fileName = \"{name}\"\n"),
                Path::new("vm/x.vmx"),
            )
            .unwrap();
            let e = vm.disk_path(&vm.disks[0], false).unwrap_err();
            assert!(
                e.to_string().contains("leads outside the VM's folder"),
                "{e}"
            );
        }
    }

    #[test]
    fn unescapes_values_and_names_kinds() {
        assert_eq!(vmx::unescape("a|22b|7Cc|zz|"), "a\"b|c|zz|");
        assert_eq!(kind_of("web-ctk.vmdk"), "change tracking");
        assert_eq!(kind_of("web-Snapshot1.vmsn"), "snapshot state");
        assert_eq!(kind_of("vmware.log"), "log");
        assert_eq!(kind_of("web.nvram"), "NVRAM");
        assert_eq!(kind_of("stray.vmdk"), "disk not in the configuration");
        assert_eq!(kind_of("notes.txt"), "other");
    }
}
