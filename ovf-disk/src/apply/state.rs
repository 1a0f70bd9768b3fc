//! The state file of a warm-migration target: what link it holds, and which change is being
//! written to it. Lines of `key value`, replaced atomically (written beside, flushed, renamed).

use std::fs::File;

use super::out::Out;
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// What a target holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct State {
    /// The `CID` of the link the target equals.
    pub cid: u32,
    /// Its capacity in bytes.
    pub capacity: u64,
    /// SHA-256 (hex) of 64 blocks of 4 KiB sampled across the target.
    pub sample: String,
    /// A change being written and not finished: its `CID`, and the offset below which it is
    /// written and flushed.
    pub applying: Option<(u32, u64)>,
}

/// The state file beside `target`: `.NAME.ovf-disk-state`.
pub(crate) fn beside(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let folder = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    folder.join(format!(".{name}.ovf-disk-state"))
}

/// SHA-256 of 64 blocks of 4 KiB at evenly spread offsets of the first `capacity` bytes of
/// `file`: a target that moved on since its state was recorded is told apart cheaply.
pub(crate) fn sample(file: &Out, capacity: u64) -> std::io::Result<String> {
    let mut h = Sha256::new();
    let mut block = [0u8; 4096];
    for i in 0..64u64 {
        let at = (capacity / 64 * i) & !4095;
        let n = 4096.min(capacity.saturating_sub(at)) as usize;
        let part = block.get_mut(..n).unwrap_or_default();
        file.read_exact_at(part, at)?;
        h.update(&part);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

impl State {
    /// The state at `path`, if there is one.
    pub fn load(path: &Path) -> Result<Option<Self>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(path)(e)),
        };
        let bad = |why: &str| Error::InvalidInput(format!("{}: {why}", path.display()));
        let mut state = Self::default();
        let mut lines = text.lines();
        if lines.next() != Some("ovf-disk state 1") {
            return Err(bad("not an ovf-disk state file"));
        }
        for line in lines {
            let (key, value) = line
                .split_once(' ')
                .ok_or_else(|| bad("a line without a value"))?;
            let hex32 =
                |v: &str| u32::from_str_radix(v, 16).map_err(|_| bad("a CID that is not hex"));
            match key {
                "cid" => state.cid = hex32(value)?,
                "capacity" => state.capacity = value.parse().map_err(|_| bad("a bad capacity"))?,
                "sample" => state.sample = value.to_string(),
                "applying" => {
                    let (c, at) = value
                        .split_once(' ')
                        .ok_or_else(|| bad("a bad applying line"))?;
                    state.applying =
                        Some((hex32(c)?, at.parse().map_err(|_| bad("a bad offset"))?));
                }
                _ => return Err(bad(&format!("an unknown key {key:?}"))),
            }
        }
        Ok(Some(state))
    }

    /// The state of a target that now holds the link `cid` of `capacity` bytes (its sampled
    /// blocks read from `out`, the file `file`), saved at `path`.
    pub(crate) fn holding(
        cid: u32,
        capacity: u64,
        out: &Out,
        file: &Path,
        path: &Path,
    ) -> Result<Self> {
        let state = Self {
            cid,
            capacity,
            sample: sample(out, capacity).map_err(Error::io(file))?,
            applying: None,
        };
        state.save(path)?;
        Ok(state)
    }

    /// Writes the state to `path`, atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut text = format!(
            "ovf-disk state 1\ncid {:08x}\ncapacity {}\nsample {}\n",
            self.cid, self.capacity, self.sample
        );
        if let Some((cid, at)) = self.applying {
            text.push_str(&format!("applying {cid:08x} {at}\n"));
        }
        let next = path.with_extension("next");
        let write = || -> std::io::Result<()> {
            let mut f = File::create(&next)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&next, path)
        };
        write().map_err(Error::io(path))
    }
}

/// Where applying the delta `cid` (whose parent is `parent`) onto a target with `state` starts:
/// where an interrupted run of the same delta got to, or 0; refused (unless `force`) when the
/// state does not show the target as the delta's parent, another change did not finish, or the
/// target's sampled blocks changed since the state was recorded.
#[allow(clippy::too_many_arguments)]
pub(crate) fn check(
    state: &Option<State>,
    cid: u32,
    parent: Option<u32>,
    out: &Out,
    capacity: u64,
    force: bool,
    delta: &Path,
    target: &Path,
) -> Result<u64> {
    let refuse = |why: String| {
        Err(Error::InvalidInput(format!(
            "not applying {} to {}: {why}",
            delta.display(),
            target.display()
        )))
    };
    let Some(s) = state else {
        if force {
            return Ok(0);
        }
        return refuse(
            "there is no record of what the target holds (`inflate --record-state` writes one \
             after the first copy; --force if you know it is the delta's parent)"
                .into(),
        );
    };
    match s.applying {
        Some((c, at)) if c == cid => return Ok(at),
        Some((c, _)) if !force => {
            return refuse(format!(
                "the change with CID {c:08x} was being applied and did not finish: apply it again \
                 first"
            ))
        }
        _ => {}
    }
    if force {
        return Ok(0);
    }
    if s.cid == cid {
        return refuse(format!("the target already holds it (CID {cid:08x})"));
    }
    if parent != Some(s.cid) {
        return refuse(format!(
            "its parentCID is {}, the target holds CID {:08x}",
            parent.map_or_else(|| "not set".into(), |p| format!("{p:08x}")),
            s.cid
        ));
    }
    let now = sample(out, capacity).map_err(Error::io(target))?;
    if now != s.sample {
        return refuse(
            "the target changed since its state was recorded (its sampled blocks differ)".into(),
        );
    }
    Ok(0)
}
