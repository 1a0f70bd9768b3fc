//! Faults of an envelope itself, whatever product reads it: what DSP0243 and its schema
//! (DSP8023) forbid and a reader would otherwise resolve by guessing. Each names its rule, the
//! element and its line, so `check` and every product's lint report the same fault alike.

use std::collections::HashMap;

use crate::envelope::Envelope;
use crate::hardware::{Device, DeviceKind};

/// One fault of an envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Fault {
    /// A short stable name (`duplicate-disk-id`, `host-resource`, ...).
    pub rule: &'static str,
    /// The element (`DiskSection/Disk ovf:diskId="vmdisk1"`).
    #[cfg_attr(feature = "serde", serde(rename = "where"))]
    pub at: String,
    /// Its line in the descriptor, when known.
    pub line: Option<u32>,
    /// What is wrong.
    pub message: String,
    /// The kind of device whose item is at fault (`host-resource`, `parent`); `None` for the
    /// other rules. Products differ by kind: VirtualBox checks the host resource of hard disks
    /// only, for instance.
    pub device: Option<DeviceKind>,
}

impl Fault {
    /// A fault of `rule` at `at` (line `line`), saying `message`, of an item of kind `device`:
    /// for callers that check envelopes with rules of their own and report them alike.
    pub fn new(
        rule: &'static str,
        at: impl Into<String>,
        line: Option<u32>,
        message: impl Into<String>,
        device: Option<DeviceKind>,
    ) -> Self {
        Self {
            rule,
            at: at.into(),
            line,
            message: message.into(),
            device,
        }
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}: {}", self.at, self.message),
            None => write!(f, "{}: {}", self.at, self.message),
        }
    }
}

impl Envelope {
    /// The envelope's own faults, in document order of the rules: duplicate file and disk ids,
    /// duplicate hrefs, a disk's `fileRef` naming no `File`, capacities that are absent, zero or not a size, a populated size over
    /// the capacity, an OVF 0.9 body under a 1.x or 2.x namespace, and hardware items whose
    /// `HostResource` names no disk or file of the package or whose drive hangs on something
    /// that is not a controller.
    pub fn faults(&self) -> Vec<Fault> {
        let mut out = Vec::new();
        self.file_faults(&mut out);
        self.disk_faults(&mut out);
        if self.version != "0.9" && self.other_sections.iter().any(|s| s == "Section") {
            out.push(Fault {
                rule: "ovf-0.9-body",
                at: "Envelope".into(),
                line: Some(2),
                message: format!(
                    "sections written as OVF 0.9 writes them (`Section xsi:type=...`) under the \
                     OVF {} namespace",
                    self.version
                ),
                device: None,
            });
        }
        for system in &self.systems {
            for d in &system.hardware.devices {
                self.device_faults(&system.id, &system.hardware, d, &mut out);
            }
        }
        out
    }

    fn file_faults(&self, out: &mut Vec<Fault>) {
        let (mut ids, mut hrefs) = (HashMap::new(), HashMap::new());
        for f in &self.files {
            let at = format!("References/File ovf:id=\"{}\"", f.id);
            if let Some(first) = ids.insert(f.id.as_str(), f.line) {
                out.push(duplicate("duplicate-file-id", at.clone(), f.line, first));
            }
            let place = f.location().unwrap_or_else(|_| f.href.clone());
            if let Some(first) = hrefs.insert(place, f.line) {
                out.push(Fault {
                    rule: "duplicate-href",
                    at,
                    line: f.line,
                    message: format!(
                        "ovf:href {:?} names the file a File{} names already",
                        f.href,
                        at_line(first)
                    ),
                    device: None,
                });
            }
        }
    }

    fn disk_faults(&self, out: &mut Vec<Fault>) {
        let mut ids = HashMap::new();
        for d in &self.disks {
            let at = format!("DiskSection/Disk ovf:diskId=\"{}\"", d.disk_id);
            if let Some(first) = ids.insert(d.disk_id.as_str(), d.line) {
                out.push(duplicate("duplicate-disk-id", at.clone(), d.line, first));
            }
            if let Some(r) = d.file_ref.as_deref().filter(|_| self.file_of(d).is_none()) {
                out.push(Fault {
                    rule: "disk-file-ref",
                    at: at.clone(),
                    line: d.line,
                    message: format!("ovf:fileRef {r:?} names no File in References"),
                    device: None,
                });
            }
            let found = match d.capacity_bytes {
                _ if d.capacity.trim().is_empty() => {
                    Some(("disk-capacity", "no ovf:capacity".to_string()))
                }
                Some(0) => Some(("disk-capacity-zero", "ovf:capacity is zero".to_string())),
                None => Some((
                    "disk-capacity",
                    format!(
                        "ovf:capacity {:?} in units {:?} is not a size",
                        d.capacity,
                        d.capacity_units.as_deref().unwrap_or("byte")
                    ),
                )),
                Some(_) => None,
            };
            if let Some((rule, message)) = found {
                out.push(Fault {
                    rule,
                    at: at.clone(),
                    line: d.line,
                    message,
                    device: None,
                });
            }
            if let (Some(populated), Some(capacity)) = (d.populated_size, d.capacity_bytes) {
                if populated > capacity {
                    out.push(Fault {
                        rule: "populated-size",
                        at,
                        line: d.line,
                        message: format!(
                            "ovf:populatedSize {populated} is more than the capacity, {capacity} bytes"
                        ),
                        device: None,
                    });
                }
            }
        }
    }

    fn device_faults(
        &self,
        system: &str,
        hardware: &crate::hardware::Hardware,
        d: &Device,
        out: &mut Vec<Fault>,
    ) {
        let at = format!(
            "VirtualSystem ovf:id=\"{system}\"/Item InstanceID {}",
            d.instance_id
        );
        if let Some(h) = d.host_resource.as_deref() {
            let message = self.host_resource_fault(h.trim());
            if let Some(message) = message {
                out.push(Fault {
                    rule: "host-resource",
                    at: at.clone(),
                    line: d.line,
                    message,
                    device: Some(d.kind),
                });
            }
        }
        let drive = matches!(
            d.kind,
            DeviceKind::Disk | DeviceKind::CdRom | DeviceKind::Floppy
        );
        if let (true, Some(parent)) = (drive, d.parent.as_deref()) {
            let message = match hardware.device(parent) {
                None => Some(format!("its Parent {parent} is no item of the system")),
                Some(p) if !p.kind.is_controller() => Some(format!(
                    "its Parent {parent} is {}, not a controller",
                    p.name.as_deref().unwrap_or("another device")
                )),
                Some(_) => None,
            };
            if let Some(message) = message {
                out.push(Fault {
                    rule: "parent",
                    at,
                    line: d.line,
                    message,
                    device: Some(d.kind),
                });
            }
        }
    }

    /// What is wrong with a `HostResource`, if anything: it must name a disk of the
    /// DiskSection (`ovf:/disk/ID`) or a file of the References (`ovf:/file/ID`).
    fn host_resource_fault(&self, h: &str) -> Option<String> {
        // `ovf:/disk/ID` as DSP0243 writes it; `ovf://disk/ID` and `/disk/ID` as some
        // exporters (VirtualBox, old VMware) do.
        let tail = |kind: &str| {
            [
                format!("ovf:/{kind}/"),
                format!("ovf://{kind}/"),
                format!("/{kind}/"),
            ]
            .iter()
            .find_map(|prefix| h.strip_prefix(prefix.as_str()))
        };
        if let Some(id) = tail("disk") {
            return (!self.disks.iter().any(|d| d.disk_id == id))
                .then(|| format!("HostResource {h:?} names no Disk of the DiskSection"));
        }
        if let Some(id) = tail("file") {
            return (!self.files.iter().any(|f| f.id == id))
                .then(|| format!("HostResource {h:?} names no File of the References"));
        }
        if h.is_empty() {
            return None;
        }
        Some(format!(
            "HostResource {h:?} is neither ovf:/disk/ID nor ovf:/file/ID"
        ))
    }
}

/// A second element with an id the first (at `first`'s line) has.
fn duplicate(rule: &'static str, at: String, line: Option<u32>, first: Option<u32>) -> Fault {
    Fault {
        rule,
        message: format!("the same id as the element{}", at_line(first)),
        at,
        line,
        device: None,
    }
}

fn at_line(line: Option<u32>) -> String {
    line.map_or_else(String::new, |l| format!(" at line {l}"))
}
