//! `NativePackage`: an OVF or OVA package (local or at a URL) verified, checked, described,
//! imported and fixed; and `export`, which makes an OVA of disks.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

use pyo3::prelude::*;

use crate::copy::{run_cancellable, write_options};
use crate::errors::{refused, to_py};

/// An OVF package (`.ovf` with its files, or `.ova`), opened and its envelope parsed.
#[pyclass(frozen, module = "ovf_disk._native")]
#[derive(Debug)]
pub(crate) struct NativePackage {
    pkg: ovf_disk::package::Package,
}

/// The product a package is checked or fixed for.
fn target(name: &str) -> PyResult<ovf_disk::rules::Target> {
    use ovf_disk::rules::Target;
    Ok(match name {
        "esxi" => Target::Esxi,
        "vcenter" => Target::Vcenter,
        "workstation" => Target::Workstation,
        "virtualbox" => Target::Virtualbox,
        "virt-v2v" => Target::VirtV2v,
        other => {
            return Err(refused(format!(
                "target {other:?}: one of esxi, vcenter, workstation, virtualbox, virt-v2v"
            )))
        }
    })
}

/// The cores of this machine.
fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `value` as a JSON object with `extra` keys added.
fn json_with(
    value: &impl serde::Serialize,
    extra: &[(&str, serde_json::Value)],
) -> PyResult<String> {
    let mut v = serde_json::to_value(value)
        .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(format!("JSON: {e}")))?;
    if let Some(map) = v.as_object_mut() {
        for (k, x) in extra {
            map.insert((*k).to_string(), x.clone());
        }
    }
    crate::to_json(&v)
}

#[pymethods]
impl NativePackage {
    /// Opens the package at `path` (a file, or an `http(s)://` or `s3://` URL).
    #[new]
    #[pyo3(signature = (path, *, allow_outside_paths = false))]
    fn new(py: Python<'_>, path: &str, allow_outside_paths: bool) -> PyResult<Self> {
        let pkg = py
            .allow_threads(|| {
                if vmdk::remote::is_url(path) {
                    let (files, name) =
                        vmdk::remote::RemoteFiles::new(path, &vmdk::remote::RemoteOptions::new())?;
                    ovf_disk::package::Package::open_remote(files, &name)
                } else {
                    ovf_disk::package::Package::open(path.as_ref())
                }
            })
            .map_err(to_py)?;
        Ok(Self {
            pkg: pkg.allow_outside_paths(allow_outside_paths),
        })
    }

    /// The package's path (or URL without credentials).
    #[getter]
    fn path(&self) -> String {
        self.pkg.path().display().to_string()
    }

    /// The name of the OVF descriptor in the package.
    #[getter]
    fn descriptor(&self) -> String {
        self.pkg.descriptor().to_string()
    }

    /// `verify --json`: the manifest's digests and the signature checked.
    fn verify(&self, py: Python<'_>) -> PyResult<String> {
        let report = py
            .allow_threads(|| self.pkg.verify(&|_| {}))
            .map_err(to_py)?;
        crate::to_json(&report)
    }

    /// `check --json` (every disk read through), or with `target` `check --target T --json`
    /// (what that product refuses or changes).
    #[pyo3(signature = (target = None))]
    fn check(&self, py: Python<'_>, target: Option<&str>) -> PyResult<String> {
        if let Some(t) = target {
            let t = self::target(t)?;
            let report = py
                .allow_threads(|| ovf_disk::rules::lint(&self.pkg, t))
                .map_err(to_py)?;
            return crate::to_json(&report);
        }
        let options = vmdk::OpenOptions::new();
        let report = py
            .allow_threads(|| {
                ovf_disk::package::check_package(&self.pkg, &options, cores(), &|_| {})
            })
            .map_err(to_py)?;
        crate::to_json(&report)
    }

    /// `check --ft --json`: Fault Tolerance readiness (`legacy` or `smp`).
    #[pyo3(signature = (version = "smp"))]
    fn ft(&self, py: Python<'_>, version: &str) -> PyResult<String> {
        let version = match version {
            "legacy" => ovf_disk::rules::FtVersion::Legacy,
            "smp" => ovf_disk::rules::FtVersion::Smp,
            other => return Err(refused(format!("version {other:?}: legacy or smp"))),
        };
        let report = py
            .allow_threads(|| ovf_disk::rules::ft_check_package(&self.pkg, version))
            .map_err(to_py)?;
        crate::to_json(&report)
    }

    /// `info --json`.
    fn info(&self) -> PyResult<String> {
        crate::to_json(&self.pkg.info())
    }

    /// `import --json`: verifies, then writes every disk thick (`fmt` `vmdk` or `raw`) into
    /// `outdir` with a new descriptor, manifest and the configurations asked for.
    #[pyo3(signature = (outdir, fmt = "vmdk", *, emit = None, props = None, deployment_option = None, zero = "write", threads = None, progress = None))]
    #[allow(clippy::too_many_arguments)]
    fn import_to(
        &self,
        py: Python<'_>,
        outdir: PathBuf,
        fmt: &str,
        emit: Option<Vec<String>>,
        props: Option<HashMap<String, String>>,
        deployment_option: Option<String>,
        zero: &str,
        threads: Option<usize>,
        progress: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<String> {
        let raw = match fmt {
            "vmdk" => false,
            "raw" => true,
            other => return Err(refused(format!("fmt {other:?}: vmdk or raw"))),
        };
        let mut options = ovf_disk::import::Options::new()
            .output_format(ovf_disk::output::thick_format(raw, false))
            .map_err(to_py)?;
        for e in emit.unwrap_or_default() {
            options = options.emit(match e.as_str() {
                "libvirt" => ovf_disk::emit::Emit::Libvirt,
                "vmx" => ovf_disk::emit::Emit::Vmx,
                other => return Err(refused(format!("emit {other:?}: libvirt or vmx"))),
            });
        }
        let mut props: Vec<(String, String)> = props.unwrap_or_default().into_iter().collect();
        props.sort();
        for (k, v) in props {
            options = options.property(k, v);
        }
        if let Some(d) = deployment_option {
            options = options.deployment_option(d);
        }
        let write = write_options(zero, threads)?;
        let total = self
            .pkg
            .envelope()
            .disks
            .iter()
            .filter_map(|d| d.capacity_bytes)
            .sum();
        let started = Instant::now();
        let report = run_cancellable(py, total, progress, |cancel, count| {
            let options = options.convert_options(
                ovf_disk::output::ConvertOptions::new().write_options(write.cancel(cancel)),
            );
            ovf_disk::import::import(&self.pkg, &outdir, &options, &|_, n| count(n))
        })?;
        json_with(
            &report,
            &[
                ("package", self.path().into()),
                ("verified", report.verify.manifest.is_some().into()),
                ("seconds", started.elapsed().as_secs_f64().into()),
            ],
        )
    }

    /// `fix --json`: writes `out` (an `.ova`), the package changed so `target` takes it.
    #[pyo3(signature = (out, target, *, allow_drop = false, progress = None))]
    fn fix(
        &self,
        py: Python<'_>,
        out: PathBuf,
        target: &str,
        allow_drop: bool,
        progress: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<String> {
        let t = self::target(target)?;
        let input = self.pkg.path().to_path_buf();
        let report = run_cancellable(py, 0, progress, |cancel, count| {
            let options = ovf_disk::export::FixOptions::new()
                .convert_options(
                    ovf_disk::output::ConvertOptions::new()
                        .write_options(vmdk::WriteOptions::new().cancel(cancel)),
                )
                .allow_drop(allow_drop);
            ovf_disk::export::fix(&input, &out, t, &options, count)
        })?;
        crate::to_json(&report)
    }
}

/// `export --json`: an OVA at `out` of the disks `inputs` (raw images or VMDKs), with a
/// manifest (`sha1`, `sha256`, `sha512`).
#[pyfunction]
#[pyo3(signature = (inputs, out, *, manifest = "sha256", compress = false, progress = None))]
pub(crate) fn export(
    py: Python<'_>,
    inputs: Vec<PathBuf>,
    out: PathBuf,
    manifest: &str,
    compress: bool,
    progress: Option<&Bound<'_, PyAny>>,
) -> PyResult<String> {
    use ovf_disk::ovf::manifest::Algorithm;
    let algorithm = match manifest {
        "sha1" => Algorithm::Sha1,
        "sha256" => Algorithm::Sha256,
        "sha512" => Algorithm::Sha512,
        other => {
            return Err(refused(format!(
                "manifest {other:?}: sha1, sha256 or sha512"
            )))
        }
    };
    let started = Instant::now();
    let report = run_cancellable(py, 0, progress, |cancel, count| {
        let options = ovf_disk::export::Options::new()
            .convert_options(
                ovf_disk::output::ConvertOptions::new()
                    .write_options(vmdk::WriteOptions::new().cancel(cancel)),
            )
            .manifest(algorithm)
            .compress(compress);
        ovf_disk::export::export(&inputs, &out, &options, count)
    })?;
    json_with(
        &report,
        &[("seconds", started.elapsed().as_secs_f64().into())],
    )
}
