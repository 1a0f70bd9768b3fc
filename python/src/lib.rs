//! `ovf_disk._native`: the compiled half of the Python package `ovf_disk` (the rest, in
//! `python/python/ovf_disk/`, wraps it in Python classes: `Disk` as an `io.RawIOBase`,
//! `Package`). Every call that reads or writes much releases the GIL; copies run on their own
//! threads and stop when the caller's thread sees `KeyboardInterrupt` or its progress callback
//! raises, removing what they had written.

mod copy;
mod errors;
mod image;
mod package;

use pyo3::prelude::*;

/// The module `ovf_disk._native`.
#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    m.add_class::<image::Image>()?;
    m.add_class::<package::NativePackage>()?;
    m.add_function(wrap_pyfunction!(image::inspect, m)?)?;
    m.add_function(wrap_pyfunction!(copy::convert, m)?)?;
    m.add_function(wrap_pyfunction!(copy::inflate, m)?)?;
    m.add_function(wrap_pyfunction!(package::export, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}

/// `value` as JSON text (what the Python half turns into dicts with `json.loads`): the same
/// shapes `ovf-disk ... --json` prints.
pub(crate) fn to_json(value: &impl serde::Serialize) -> PyResult<String> {
    serde_json::to_string(value)
        .map_err(|e| pyo3::exceptions::PyRuntimeError::new_err(format!("JSON: {e}")))
}
