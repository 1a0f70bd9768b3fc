//! Warm migration: copy a disk once, then bring the copy forward by writing only what changed
//! — the grains a snapshot delta holds ([`apply`]), or the areas vSphere's changed-block
//! tracking lists ([`apply_areas`]) — so the downtime at cutover is the last change, not the
//! whole disk.
//!
//! A target is a raw image, a block device, a thick VMDK (its flat extent is written), or a
//! qcow2 image (updated in place: `vmdk::Qcow2Update`, clusters copied on write). What
//! it holds is recorded in a small state file beside it (`.NAME.ovf-disk-state`, or one the
//! caller names): the `CID` of the link it equals, its capacity, and a digest of 64 sampled
//! blocks. A delta applies only onto the target its `parentCID` names (and whose sampled blocks
//! are unchanged since the record), unless forced; afterwards the state names the delta, so the
//! next delta of the chain applies on top. While a change is written the state says which and
//! how far it got (written after the target is flushed): a run killed at any point finishes the
//! same change when started again, and nothing else applies until it has.

mod out;
mod state;

pub use state::State;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use vmdk::{Allocation, Disk, OpenOptions};

use crate::error::{Error, Result};
use out::Out;

/// Options of [`apply`] and [`apply_areas`].
#[derive(Clone, Debug, Default)]
pub struct Options {
    force: bool,
    state: Option<PathBuf>,
}

impl Options {
    /// The defaults: the state file beside the target; mismatches refused.
    pub fn new() -> Self {
        Self::default()
    }

    /// Apply even when the state does not show the target as the change's base (or there
    /// is no state): the caller vouches for it.
    pub fn force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }

    /// The state file, instead of `.NAME.ovf-disk-state` beside the target.
    pub fn state_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.state = Some(path.into());
        self
    }

    fn state_path(&self, target: &Path) -> PathBuf {
        self.state.clone().unwrap_or_else(|| state::beside(target))
    }
}

/// What one change wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Applied {
    /// The delta, or the source of the areas.
    pub from: PathBuf,
    /// Its `CID` (the state's new one).
    pub cid: u32,
    /// Bytes of data written.
    pub data_bytes: u64,
    /// Bytes written as zeros (zeroed or unmapped grains).
    pub zero_bytes: u64,
    /// Ranges written.
    pub ranges: u64,
    /// Where an interrupted run of the same change had got to.
    pub resumed_from: u64,
}

/// What [`apply`] or [`apply_areas`] did, and the target's state after.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Report {
    /// The target written (the flat extent, for a thick VMDK).
    pub target: PathBuf,
    /// Each change, in the order applied.
    pub applied: Vec<Applied>,
    /// The state recorded.
    pub state: State,
}

/// The file a target's bytes go to, and its capacity: the target itself (a raw image, a block
/// device), or the flat extent of a thick VMDK (one FLAT or VMFS extent from offset 0).
pub(crate) fn target_file(target: &Path) -> Result<(PathBuf, u64)> {
    let head = {
        let mut f = File::open(target).map_err(Error::io(target))?;
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut std::io::Read::take(&mut f, 4096), &mut b)
            .map_err(Error::io(target))?;
        b
    };
    let text = String::from_utf8_lossy(&head);
    if text.contains("# Disk DescriptorFile") || text.contains("createType") {
        let disk = OpenOptions::new().open(target)?;
        let files = disk.files();
        let thick = matches!(disk.create_type().as_str(), "monolithicFlat" | "vmfs")
            && files.len() == 2
            && disk.parent().is_none();
        let flat = files.into_iter().find(|f| f != target).filter(|_| thick);
        return match flat {
            Some(f) => Ok((f, disk.capacity())),
            None => Err(Error::InvalidInput(format!(
                "{}: a target is a raw image, a block device or a thick VMDK (monolithicFlat or \
                 vmfs, one extent), not {}",
                target.display(),
                disk.create_type()
            ))),
        };
    }
    let mut f = File::open(target).map_err(Error::io(target))?;
    let len = std::io::Seek::seek(&mut f, std::io::SeekFrom::End(0)).map_err(Error::io(target))?;
    Ok((target.to_path_buf(), len))
}

/// Records that `target` (written by a full copy of `disk`) holds `disk`: the first state of a
/// warm migration. Returns it.
pub fn record(target: &Path, disk: &Disk, options: &Options) -> Result<State> {
    let (out, _) = Out::open(target)?;
    let capacity = disk.capacity();
    let cid = disk.descriptor().cid().unwrap_or(0);
    State::holding(cid, capacity, &out, out.path(), &options.state_path(target))
}

/// Writes the deltas (each a snapshot delta link, opened alone: only its own grains are read,
/// never its parent), oldest first, into `target`, each onto the state the previous one left.
/// `open` gives the files and the outside-path policy (a delta at a URL reads through it).
pub fn apply(
    deltas: &[PathBuf],
    target: &Path,
    open: &OpenOptions,
    options: &Options,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Report> {
    let (out, room) = Out::open(target)?;
    let file = out.path().to_path_buf();
    let state_path = options.state_path(target);
    let mut state = State::load(&state_path)?;
    let mut applied = Vec::new();
    for path in deltas {
        let delta = open.clone().link_only(true).open(path)?;
        let cid = delta.descriptor().cid().unwrap_or(0);
        let parent = delta.descriptor().parent_cid();
        let capacity = delta.capacity();
        // The target holds the disk (a block device may hold more); the state says how much.
        let recorded = state.as_ref().map_or(capacity, |s| s.capacity);
        if capacity > room || (recorded != capacity && !options.force) {
            return Err(Error::InvalidInput(format!(
                "{}: its capacity, {capacity} bytes, is not the target's ({recorded}, in {room} \
                 bytes)",
                path.display(),
            )));
        }
        let from = state::check(
            &state,
            cid,
            parent,
            &out,
            capacity,
            options.force,
            path,
            target,
        )?;
        let mut now = state.clone().unwrap_or(State {
            cid: parent.unwrap_or(0),
            capacity,
            sample: String::new(),
            applying: None,
        });
        now.applying = Some((cid, from));
        now.save(&state_path)?;
        let mut done = Applied {
            from: path.clone(),
            cid,
            data_bytes: 0,
            zero_bytes: 0,
            ranges: 0,
            resumed_from: from,
        };
        let ranges = vec![(from, capacity - from)];
        write_ranges(
            &delta,
            &ranges,
            What::Held,
            &out,
            &file,
            &mut done,
            progress,
            &mut |at| {
                now.applying = Some((cid, at));
                now.save(&state_path)
            },
        )?;
        state = Some(State::holding(cid, capacity, &out, &file, &state_path)?);
        applied.push(done);
    }
    Ok(Report {
        target: file,
        applied,
        state: state.unwrap_or_default(),
    })
}

/// Brings a VM folder's copy forward: for each disk of the VM at `vmx`, the links written since
/// the snapshot `from` (up to the snapshot `to`, or to the current state), oldest first, applied
/// onto the disk's copy in `outdir` (what `inflate VM.vmx OUTDIR --snapshot FROM
/// --record-state` wrote: `STEM.vmdk` or `STEM.raw`, named as `inflate` names them). One report
/// a disk that changed.
pub fn apply_vm(
    vmx: &Path,
    outdir: &Path,
    from: &str,
    to: Option<&str>,
    vm: &crate::vm::Options,
    options: &Options,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Vec<Report>> {
    let config = vm.read_vm(vmx)?;
    let snapshots = vm.snapshots(vmx)?;
    let pick = |name: &str| {
        crate::vm::find_snapshot(&snapshots, name).ok_or_else(|| {
            Error::InvalidInput(format!(
                "{}: no snapshot {name:?} in its .vmsd",
                vmx.display()
            ))
        })
    };
    let (from, to) = (pick(from)?, to.map(pick).transpose()?);
    let mut taken = Vec::new();
    let mut reports = Vec::new();
    for d in &config.disks {
        let frozen = |s: &crate::vm::Snapshot| {
            s.disks
                .iter()
                .find(|x| x.device.eq_ignore_ascii_case(&d.device))
                .map(|x| x.file.clone())
                .ok_or_else(|| {
                    Error::InvalidInput(format!(
                        "{}: snapshot {:?} lists no disk {}",
                        vmx.display(),
                        s.name,
                        d.device
                    ))
                })
        };
        let base = frozen(from)?;
        let mut top = d.clone();
        if let Some(s) = to {
            top.file = frozen(s)?;
        }
        let chain = crate::vm::open_disk(&config, &top, vm)?;
        let stem = crate::vm::output_stem(&chain, &d.device, &taken);
        taken.push(stem.clone());
        // The links above the one the snapshot froze, leaf first.
        let base_name = Path::new(&base).file_name();
        let mut deltas: Vec<PathBuf> = Vec::new();
        let mut found = false;
        for link in chain.chain() {
            if link.path().file_name() == base_name {
                found = true;
                break;
            }
            deltas.push(link.path().to_path_buf());
        }
        if !found {
            return Err(Error::InvalidInput(format!(
                "{}: disk {} was {base} at snapshot {:?}, which is not in the chain of {}",
                vmx.display(),
                d.device,
                from.name,
                top.file
            )));
        }
        if deltas.is_empty() {
            continue;
        }
        deltas.reverse();
        let target = ["vmdk", "raw", "qcow2"]
            .map(|e| outdir.join(format!("{stem}.{e}")))
            .into_iter()
            .find(|p| p.exists())
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "{}: no copy of disk {} ({stem}.vmdk, {stem}.raw or {stem}.qcow2)",
                    outdir.display(),
                    d.device
                ))
            })?;
        reports.push(apply(
            &deltas,
            &target,
            vm.disk_open_options(),
            options,
            progress,
        )?);
    }
    Ok(reports)
}

/// What of a range [`write_ranges`] writes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum What {
    /// What the link holds: data read, zeros written for zeroed grains, unallocated ranges
    /// skipped (they are the base's).
    Held,
    /// Every byte (changed areas: whatever the target held there changed).
    Every,
}

/// Copies `what` of `src` over `ranges` into `out`, windows of 8 MiB in order; `checkpoint`
/// is called with the offset reached, after a flush, at most twice a second.
#[allow(clippy::too_many_arguments)]
fn write_ranges(
    src: &Disk,
    ranges: &[(u64, u64)],
    what: What,
    out: &Out,
    file: &Path,
    done: &mut Applied,
    progress: &(dyn Fn(u64) + Sync),
    checkpoint: &mut dyn FnMut(u64) -> Result<()>,
) -> Result<()> {
    const WINDOW: u64 = 8 << 20;
    let zeros = vec![0u8; WINDOW as usize];
    let mut buf = vec![0u8; WINDOW as usize];
    let mut told = Instant::now();
    for &(start, len) in ranges {
        let end = start + len;
        let mut at = start;
        while at < end {
            let n = WINDOW.min(end - at);
            let runs = match what {
                What::Held => src.map(at, n)?,
                What::Every => vec![vmdk::Run {
                    offset: at,
                    len: n,
                    kind: Allocation::Data,
                }],
            };
            for run in runs {
                let k = run.len as usize;
                match run.kind {
                    Allocation::Data => {
                        let part = buf.get_mut(..k).unwrap_or_default();
                        src.read_exact_at(run.offset, part)?;
                        out.write_at(part, run.offset)?;
                        done.data_bytes += run.len;
                    }
                    Allocation::Zero => {
                        out.write_zeroes(run.offset, run.len, &zeros)?;
                        done.zero_bytes += run.len;
                    }
                    Allocation::Unallocated => continue,
                }
                if what == What::Held {
                    done.ranges += 1;
                }
            }
            at += n;
            progress(n);
            if told.elapsed() >= Duration::from_millis(500) {
                out.sync()?;
                checkpoint(at)?;
                told = Instant::now();
            }
        }
        if what == What::Every {
            done.ranges += 1;
        }
    }
    let _ = file;
    out.sync()
}

/// Changed areas of a disk, as vSphere's `QueryChangedDiskAreas` returns them: byte ranges,
/// sorted, not overlapping, sector-aligned, inside the capacity.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangedAreas {
    areas: Vec<(u64, u64)>,
}

impl ChangedAreas {
    /// Checks `areas` (start, length) against a disk of `capacity` bytes.
    pub fn new(areas: Vec<(u64, u64)>, capacity: u64) -> Result<Self> {
        let mut end = 0u64;
        for (i, &(start, len)) in areas.iter().enumerate() {
            let bad =
                |why: &str| Error::InvalidInput(format!("changed area {i} ({start}+{len}): {why}"));
            if start % 512 != 0 || len % 512 != 0 {
                return Err(bad("not sector-aligned"));
            }
            if start < end {
                return Err(bad("unsorted or overlapping the one before"));
            }
            end = start
                .checked_add(len)
                .filter(|&e| e <= capacity)
                .ok_or_else(|| bad(&format!("past the disk's end ({capacity} bytes)")))?;
        }
        Ok(Self { areas })
    }

    /// The areas of a `QueryChangedDiskAreas` answer in JSON (`{"changedArea": [{"start": N,
    /// "length": N}, ...], ...}`, other keys ignored) or a bare list of such areas, checked
    /// against a disk of `capacity` bytes ([`ChangedAreas::new`]). Memory is 16 bytes an area
    /// (no tree of the document is built).
    ///
    /// ```
    /// use ovf_disk::apply::ChangedAreas;
    ///
    /// let json = r#"{"startOffset": 0, "changedArea": [{"start": 512, "length": 1024}]}"#;
    /// assert_eq!(ChangedAreas::from_json(json, 1 << 20)?.areas(), [(512, 1024)]);
    /// assert!(ChangedAreas::from_json(r#"[{"start": 1, "length": 512}]"#, 1 << 20).is_err());
    /// # Ok::<(), ovf_disk::Error>(())
    /// ```
    #[cfg(feature = "serde")]
    pub fn from_json(text: &str, capacity: u64) -> Result<Self> {
        #[derive(serde::Deserialize)]
        struct Area {
            start: Option<u64>,
            length: Option<u64>,
        }
        #[derive(serde::Deserialize)]
        struct Answer {
            #[serde(rename = "changedArea")]
            changed_area: Option<Vec<Area>>,
        }
        let bad = |e: serde_json::Error| {
            Error::InvalidInput(format!(
                "not JSON as QueryChangedDiskAreas returns it (line {}, column {}): {e}",
                e.line(),
                e.column()
            ))
        };
        let list = match text.trim_start().starts_with('[') {
            true => serde_json::from_str::<Vec<Area>>(text).map_err(bad)?,
            false => serde_json::from_str::<Answer>(text)
                .map_err(bad)?
                .changed_area
                .ok_or_else(|| Error::InvalidInput("no changedArea list".into()))?,
        };
        let areas = list
            .iter()
            .enumerate()
            .map(|(i, a)| match (a.start, a.length) {
                (Some(s), Some(l)) => Ok((s, l)),
                _ => Err(Error::InvalidInput(format!(
                    "changed area {i} has no whole start and length"
                ))),
            })
            .collect::<Result<Vec<_>>>()?;
        Self::new(areas, capacity)
    }

    /// [`ChangedAreas::from_json`] of the file at `path` (refused past 64 MiB before it is
    /// read), its errors naming the file.
    #[cfg(feature = "serde")]
    pub fn read(path: &std::path::Path, capacity: u64) -> Result<Self> {
        let named = |e: Error| Error::InvalidInput(format!("{}: {e}", path.display()));
        let meta = std::fs::metadata(path).map_err(Error::io(path))?;
        if meta.len() > 64 << 20 {
            return Err(named(Error::InvalidInput("larger than 64 MiB".into())));
        }
        let text = std::fs::read_to_string(path).map_err(Error::io(path))?;
        Self::from_json(&text, capacity).map_err(named)
    }

    /// The areas.
    pub fn areas(&self) -> &[(u64, u64)] {
        &self.areas
    }

    /// Bytes they cover.
    pub fn bytes(&self) -> u64 {
        self.areas.iter().map(|a| a.1).sum()
    }
}

/// Copies `areas` of `source` (any disk or chain: the disk as it is now) into `target`. The
/// state is checked for an unfinished change first, and records `source`'s `CID` after.
pub fn apply_areas(
    source: &Disk,
    areas: &ChangedAreas,
    target: &Path,
    options: &Options,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Report> {
    let (out, room) = Out::open(target)?;
    let file = out.path().to_path_buf();
    let capacity = source.capacity();
    if capacity > room {
        return Err(Error::InvalidInput(format!(
            "{}: its capacity, {capacity} bytes, is more than the target holds ({room})",
            source.path().display(),
        )));
    }
    let state_path = options.state_path(target);
    let state = State::load(&state_path)?;
    let cid = source.descriptor().cid().unwrap_or(0);
    // Areas come from the caller's own bookkeeping: only an unfinished other change stops
    // them. The same areas again resume where they stopped.
    let from = match state.as_ref().and_then(|s| s.applying) {
        Some((c, at)) if c == cid => at,
        Some((c, _)) if !options.force => {
            return Err(Error::InvalidInput(format!(
                "{}: a change (CID {c:08x}) was being applied and did not finish: run it again \
                 first (or --force)",
                target.display()
            )))
        }
        _ => 0,
    };
    let mut now = state.unwrap_or(State {
        cid,
        capacity,
        sample: String::new(),
        applying: None,
    });
    now.applying = Some((cid, from));
    now.save(&state_path)?;
    let mut done = Applied {
        from: source.path().to_path_buf(),
        cid,
        data_bytes: 0,
        zero_bytes: 0,
        ranges: 0,
        resumed_from: from,
    };
    // What is left of the areas past `from`.
    let left: Vec<(u64, u64)> = areas
        .areas
        .iter()
        .filter(|&&(s, l)| s + l > from)
        .map(|&(s, l)| (s.max(from), s + l - s.max(from)))
        .collect();
    write_ranges(
        source,
        &left,
        What::Every,
        &out,
        &file,
        &mut done,
        progress,
        &mut |at| {
            now.applying = Some((cid, at));
            now.save(&state_path)
        },
    )?;
    let now = State::holding(cid, capacity, &out, &file, &state_path)?;
    Ok(Report {
        target: file,
        applied: vec![done],
        state: now,
    })
}
