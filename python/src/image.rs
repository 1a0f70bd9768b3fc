//! `Image`: an open disk (a VMDK of any layout with its parents, or a raw file; local or at a
//! URL) read from any thread at any offset; and `inspect`, which opens nothing a descriptor
//! names.

use std::path::{Path, PathBuf};

use pyo3::buffer::PyBuffer;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::errors::{refused, vmdk_to_py};

/// The largest window `map` walks in one call (the Python half walks a disk in such windows):
/// at most one run per grain of it.
const MAP_WINDOW: u64 = 1 << 30;

/// An open disk. Reads take the offset: one `Image` serves many threads at once.
#[pyclass(frozen, module = "ovf_disk._native")]
#[derive(Debug)]
pub(crate) struct Image {
    pub(crate) disk: vmdk::Disk,
    /// The name shown (a URL without its credentials and query).
    pub(crate) name: PathBuf,
    /// What was fetched, for a URL.
    pub(crate) remote: Option<vmdk::remote::RemoteFiles>,
}

/// How a disk is opened: the folder policy, and the remote source for a URL.
pub(crate) fn open_options(
    path: &str,
    allow_outside_paths: bool,
) -> vmdk::Result<(
    vmdk::OpenOptions,
    PathBuf,
    Option<vmdk::remote::RemoteFiles>,
)> {
    let options = vmdk::OpenOptions::new().allow_outside_paths(allow_outside_paths);
    if !vmdk::remote::is_url(path) {
        return Ok((options, PathBuf::from(path), None));
    }
    let (files, name) = vmdk::remote::RemoteFiles::new(path, &vmdk::remote::RemoteOptions::new())?;
    Ok((options.files(files.clone()), name, Some(files)))
}

/// Opens `path` (a VMDK, or with `raw` any file as raw bytes) with the GIL released.
pub(crate) fn open_image(
    py: Python<'_>,
    path: &str,
    allow_outside_paths: bool,
    raw: Option<bool>,
) -> PyResult<Image> {
    py.allow_threads(|| {
        let (options, name, remote) = open_options(path, allow_outside_paths)?;
        let disk = match raw {
            Some(true) => options.open_raw(&name)?,
            Some(false) => options.open(&name)?,
            None => options.open_vmdk_or_raw(&name)?,
        };
        Ok(Image { disk, name, remote })
    })
    .map_err(vmdk_to_py)
}

impl Image {
    /// Bytes readable at `offset` for a request of `size`: none past the end.
    fn readable(&self, offset: u64, size: usize) -> usize {
        let left = self.disk.capacity().saturating_sub(offset);
        usize::try_from(left).map_or(size, |l| l.min(size))
    }
}

#[pymethods]
impl Image {
    /// Opens a disk: `raw=None` takes a file that is no VMDK (and no other image format) as
    /// raw bytes, `True` always, `False` never.
    #[new]
    #[pyo3(signature = (path, *, allow_outside_paths = false, raw = Some(false)))]
    fn new(
        py: Python<'_>,
        path: &str,
        allow_outside_paths: bool,
        raw: Option<bool>,
    ) -> PyResult<Self> {
        open_image(py, path, allow_outside_paths, raw)
    }

    /// The virtual size in bytes.
    #[getter]
    fn capacity(&self) -> u64 {
        self.disk.capacity()
    }

    /// The `createType` of the first link (`raw` for raw files).
    #[getter]
    fn create_type(&self) -> String {
        self.disk.create_type().as_str().to_string()
    }

    /// The name the disk was opened under.
    #[getter]
    fn name(&self) -> String {
        self.name.display().to_string()
    }

    /// Every file the disk reads: each link of the chain and its extents.
    fn files(&self) -> Vec<String> {
        self.disk
            .files()
            .iter()
            .map(|p| p.display().to_string())
            .collect()
    }

    /// Up to `size` bytes at `offset` (fewer at the end of the disk, none past it).
    fn read_at<'py>(
        &self,
        py: Python<'py>,
        offset: u64,
        size: usize,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let n = self.readable(offset, size);
        if n == 0 {
            return Ok(PyBytes::new(py, &[]));
        }
        let mut buf = vec![0u8; n];
        py.allow_threads(|| self.disk.read_exact_at(offset, &mut buf))
            .map_err(vmdk_to_py)?;
        Ok(PyBytes::new(py, &buf))
    }

    /// Reads into `buffer` (any writable, C-contiguous bytes-like object) from `offset`;
    /// returns the bytes read (fewer at the end of the disk, 0 past it).
    fn readinto_at(&self, py: Python<'_>, buffer: PyBuffer<u8>, offset: u64) -> PyResult<usize> {
        if buffer.readonly() || !buffer.is_c_contiguous() {
            return Err(refused("readinto needs a writable, contiguous buffer"));
        }
        let n = self.readable(offset, buffer.len_bytes());
        if n == 0 {
            return Ok(0);
        }
        let ptr = buffer.buf_ptr() as usize;
        py.allow_threads(|| {
            // SAFETY: `buffer` is a writable, C-contiguous export of at least `n` bytes
            // (checked above) and stays exported (so its memory stays put and cannot be
            // resized) until `buffer` is dropped after this closure returns.
            let slice = unsafe { std::slice::from_raw_parts_mut(ptr as *mut u8, n) };
            self.disk.read_exact_at(offset, slice)
        })
        .map_err(vmdk_to_py)?;
        Ok(n)
    }

    /// `info --json` of the disk, as JSON text.
    fn info(&self, py: Python<'_>) -> PyResult<String> {
        let info = py.allow_threads(|| self.disk.info()).map_err(vmdk_to_py)?;
        crate::to_json(&info)
    }

    /// The allocation runs of `length` bytes from `offset` (at most 1 GiB at once): a list of
    /// (offset, length, kind), kind one of `data`, `zero`, `unallocated`.
    fn map(
        &self,
        py: Python<'_>,
        offset: u64,
        length: u64,
    ) -> PyResult<Vec<(u64, u64, &'static str)>> {
        if length > MAP_WINDOW {
            return Err(refused(format!(
                "map covers at most {MAP_WINDOW} bytes a call"
            )));
        }
        let runs = py
            .allow_threads(|| self.disk.map(offset, length))
            .map_err(vmdk_to_py)?;
        Ok(runs
            .iter()
            .map(|r| {
                let kind = match r.kind {
                    vmdk::Allocation::Data => "data",
                    vmdk::Allocation::Zero => "zero",
                    _ => "unallocated",
                };
                (r.offset, r.len, kind)
            })
            .collect())
    }

    /// `check --json` of the disk, as JSON text.
    fn check(&self, py: Python<'_>) -> PyResult<String> {
        #[derive(serde::Serialize)]
        struct CheckJson<'a> {
            file: &'a Path,
            #[serde(flatten)]
            report: &'a vmdk::CheckReport,
        }
        let report = py.allow_threads(|| vmdk::check_disk(&self.disk));
        crate::to_json(&CheckJson {
            file: &self.name,
            report: &report,
        })
    }

    /// What was fetched so far (requests, bytes, retries) for a disk at a URL, as JSON text;
    /// `None` for local files.
    fn fetched(&self) -> PyResult<Option<String>> {
        self.remote
            .as_ref()
            .map(|r| crate::to_json(&r.stats()))
            .transpose()
    }
}

/// The createTypes an image service accepts unless told otherwise (OpenStack Glance's default).
const GLANCE_DEFAULT: &[&str] = &["monolithicSparse", "streamOptimized"];

/// What `path` claims to be, as JSON text: the inspection, with `allowed` and the `reasons`
/// it is not. Opens only `path` itself.
#[pyfunction]
#[pyo3(signature = (path, allowed = None))]
pub(crate) fn inspect(
    py: Python<'_>,
    path: &str,
    allowed: Option<Vec<String>>,
) -> PyResult<String> {
    let found = py
        .allow_threads(|| {
            let (options, name, _) = open_options(path, false)?;
            options.inspect(name)
        })
        .map_err(vmdk_to_py)?;
    let allowed: Vec<String> =
        allowed.unwrap_or_else(|| GLANCE_DEFAULT.iter().map(|s| s.to_string()).collect());
    let reasons = refusals(&found, &allowed);
    #[derive(serde::Serialize)]
    struct InspectJson<'a> {
        #[serde(flatten)]
        found: &'a vmdk::Inspection,
        allowed: bool,
        reasons: &'a [String],
    }
    crate::to_json(&InspectJson {
        found: &found,
        allowed: reasons.is_empty(),
        reasons: &reasons,
    })
}

/// Why an image service should not take `found`, given the createTypes it `allowed`.
fn refusals(found: &vmdk::Inspection, allowed: &[String]) -> Vec<String> {
    let mut reasons = Vec::new();
    if found.format != "vmdk" {
        reasons.push(format!("not a VMDK: {}", found.format));
        return reasons;
    }
    match &found.create_type {
        Some(t) if allowed.iter().any(|a| a == t) => {}
        Some(t) => reasons.push(format!("createType {t} is not allowed")),
        None => reasons.push("no createType".into()),
    }
    // A single-file type names only itself: any other name in it is a trap (the CVE Glance's
    // inspector answers: an embedded descriptor naming a host file as a second extent).
    let single = matches!(
        found.create_type.as_deref(),
        Some("monolithicSparse" | "streamOptimized")
    );
    for f in &found.files {
        if let Some(why) = &f.outside {
            reasons.push(format!("names {:?}, outside its folder ({why})", f.name));
        } else if single && !f.is_self {
            reasons.push(format!(
                "a single-file disk naming another file, {:?}",
                f.name
            ));
        }
    }
    if found.has_parent {
        reasons.push("a delta disk: its data needs a parent".into());
    }
    if found.encrypted {
        reasons.push("encrypted".into());
    }
    if !found.supported {
        reasons.push("a createType ovf_disk does not read".into());
    }
    reasons
}
