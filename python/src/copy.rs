//! `convert` and `inflate`: the copy engine on its own threads, while the calling thread waits
//! with the GIL released, calls the progress callback a few times a second and watches for
//! `KeyboardInterrupt`. A cancelled or failed copy leaves no output under the name asked for.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use pyo3::prelude::*;

use crate::errors::{refused, to_py, vmdk_to_py};
use crate::image::{open_image, Image};

/// How often the waiting thread looks for signals and reports progress.
const TICK: Duration = Duration::from_millis(250);

/// Runs `job` on a thread of its own, with a cancel flag and a progress counter, while this
/// thread waits without the GIL. Every `TICK` it runs Python's signal handlers (a
/// `KeyboardInterrupt` sets the flag) and calls `progress(done, total)`; an exception from
/// either cancels the job, waits for it to stop (its temporary outputs removed) and is raised.
/// A job that had already finished and committed its outputs when the exception came keeps
/// them: they are complete.
pub(crate) fn run_cancellable<T: Send>(
    py: Python<'_>,
    total: u64,
    progress: Option<&Bound<'_, PyAny>>,
    job: impl FnOnce(Arc<AtomicBool>, &(dyn Fn(u64) + Sync)) -> ovf_disk::Result<T> + Send,
) -> PyResult<T> {
    let cancel = Arc::new(AtomicBool::new(false));
    let done = AtomicU64::new(0);
    let (tx, rx) = mpsc::channel();
    // Behind a lock only so that the wait, run without the GIL, may borrow it.
    let rx = std::sync::Mutex::new(rx);
    let outcome = std::thread::scope(|scope| {
        let (cancel2, done) = (cancel.clone(), &done);
        scope.spawn(move || {
            let count = |n: u64| {
                done.fetch_add(n, Ordering::Relaxed);
            };
            let _ = tx.send(job(cancel2, &count));
        });
        let mut raised: Option<PyErr> = None;
        let mut last = Instant::now();
        loop {
            let got = py.allow_threads(|| match rx.lock() {
                Ok(rx) => rx.recv_timeout(TICK),
                Err(_) => Err(mpsc::RecvTimeoutError::Disconnected),
            });
            match got {
                Ok(result) => return (result, raised),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return (
                        Err(ovf_disk::Error::InvalidInput(
                            "the copy thread ended".into(),
                        )),
                        raised,
                    )
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if raised.is_some() {
                continue;
            }
            let mut failed = py.check_signals().err();
            if failed.is_none() && last.elapsed() >= TICK {
                if let Some(p) = progress {
                    failed = p.call1((done.load(Ordering::Relaxed), total)).err();
                }
                last = Instant::now();
            }
            if let Some(e) = failed {
                cancel.store(true, Ordering::Relaxed);
                raised = Some(e);
            }
        }
    });
    match outcome {
        (_, Some(raised)) => Err(raised),
        (Ok(value), None) => {
            if let Some(p) = progress {
                p.call1((total, total))?;
            }
            Ok(value)
        }
        (Err(e), None) => Err(to_py(e)),
    }
}

/// The zero mode named `zero`.
fn zero_mode(zero: &str) -> PyResult<vmdk::ZeroMode> {
    match zero {
        "write" => Ok(vmdk::ZeroMode::Write),
        "falloc" => Ok(vmdk::ZeroMode::Falloc),
        "sparse" => Ok(vmdk::ZeroMode::Sparse),
        other => Err(refused(format!(
            "zero={other:?}: one of \"write\", \"falloc\", \"sparse\""
        ))),
    }
}

/// Write options from the Python arguments.
pub(crate) fn write_options(zero: &str, threads: Option<usize>) -> PyResult<vmdk::WriteOptions> {
    let mut w = vmdk::WriteOptions::new().zero(zero_mode(zero)?);
    if let Some(t) = threads {
        w = w.threads(t);
    }
    Ok(w)
}

/// The source: an `Image` already open, or a path or URL opened now.
fn source(
    py: Python<'_>,
    src: &Bound<'_, PyAny>,
    allow_outside_paths: bool,
    raw: Option<bool>,
) -> PyResult<Py<Image>> {
    if let Ok(image) = src.downcast::<Image>() {
        return Ok(image.clone().unbind());
    }
    let path: PathBuf = src.extract()?;
    let path = path
        .to_str()
        .ok_or_else(|| refused("the source path is not UTF-8"))?
        .to_string();
    Py::new(py, open_image(py, &path, allow_outside_paths, raw)?)
}

/// Writes `image` as `format` at `dst` (a chain as a chain of qcow2 images with
/// `keep_chain`).
#[allow(clippy::too_many_arguments)]
fn write(
    py: Python<'_>,
    image: &Image,
    dst: &Path,
    format: &vmdk::Format,
    write: vmdk::WriteOptions,
    (replace, keep_chain): (bool, bool),
    progress: Option<&Bound<'_, PyAny>>,
) -> PyResult<String> {
    let started = Instant::now();
    let report = run_cancellable(py, image.disk.capacity(), progress, |cancel, count| {
        let options = ovf_disk::output::ConvertOptions::new()
            .write_options(write.cancel(cancel))
            .replace_existing(replace)
            .keep_chain(keep_chain);
        ovf_disk::output::convert(&image.disk, dst, format, &options, count)
    })?;
    let seconds = started.elapsed().as_secs_f64();
    let mut summary = ovf_disk::output::WriteSummary::new(&image.name, &report, seconds);
    summary.fetched = image.remote.as_ref().map(|r| r.stats());
    crate::to_json(&summary)
}

/// Converts a disk (path, URL or open `Image`) to `to` at `dst`; the report as JSON text.
#[pyfunction]
#[pyo3(signature = (src, dst, to = "streamOptimized", *, zero = "write", threads = None, replace = false, allow_outside_paths = false, progress = None, cluster_size = None, compress = None, preallocation = None, keep_chain = false))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn convert(
    py: Python<'_>,
    src: &Bound<'_, PyAny>,
    dst: PathBuf,
    to: &str,
    zero: &str,
    threads: Option<usize>,
    replace: bool,
    allow_outside_paths: bool,
    progress: Option<&Bound<'_, PyAny>>,
    cluster_size: Option<u64>,
    compress: Option<&str>,
    preallocation: Option<&str>,
    keep_chain: bool,
) -> PyResult<String> {
    let format: vmdk::Format = to.parse().map_err(vmdk_to_py)?;
    let mut options = write_options(zero, threads)?;
    let qcow2_only = cluster_size.is_some() || compress.is_some() || preallocation.is_some();
    if (qcow2_only || keep_chain) && format != vmdk::Format::Qcow2 {
        return Err(refused(
            "cluster_size, compress, preallocation and keep_chain apply to qcow2 outputs only",
        ));
    }
    if let Some(bytes) = cluster_size {
        options = options.cluster_size(bytes).map_err(vmdk_to_py)?;
    }
    options = options.compress(match compress {
        None => None,
        Some("zlib" | "deflate") => Some(vmdk::Compression::Deflate),
        Some("zstd") => Some(vmdk::Compression::Zstd),
        Some(other) => return Err(refused(format!("compress is zlib or zstd, not {other:?}"))),
    });
    if let Some(p) = preallocation {
        options = options.preallocation(match p {
            "off" => vmdk::Preallocation::Off,
            "metadata" => vmdk::Preallocation::Metadata,
            "falloc" => vmdk::Preallocation::Falloc,
            "full" => vmdk::Preallocation::Full,
            other => {
                return Err(refused(format!(
                    "preallocation is off, metadata, falloc or full, not {other:?}"
                )))
            }
        });
    }
    let image = source(py, src, allow_outside_paths, None)?;
    let flags = (replace, keep_chain);
    write(py, image.get(), &dst, &format, options, flags, progress)
}

/// Inflates a VMDK (path, URL or open `Image`) to an eager-zeroed thick disk at `dst`: raw
/// unless `dst` ends in `.vmdk` (then monolithicFlat, or vmfsEagerZeroedThick with `esx`).
#[pyfunction]
#[pyo3(signature = (src, dst, *, esx = false, zero = "write", threads = None, replace = false, allow_outside_paths = false, progress = None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn inflate(
    py: Python<'_>,
    src: &Bound<'_, PyAny>,
    dst: PathBuf,
    esx: bool,
    zero: &str,
    threads: Option<usize>,
    replace: bool,
    allow_outside_paths: bool,
    progress: Option<&Bound<'_, PyAny>>,
) -> PyResult<String> {
    let format = ovf_disk::output::thick_format_for(&dst, esx);
    let options = write_options(zero, threads)?;
    let image = source(py, src, allow_outside_paths, Some(false))?;
    let flags = (replace, false);
    write(py, image.get(), &dst, &format, options, flags, progress)
}
