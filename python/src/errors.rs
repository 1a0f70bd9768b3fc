//! The exceptions of `ovf_disk`, one per category of the libraries' errors, each carrying the
//! file, the structure and the offset the error names.

use std::path::Path;

use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(
    _native,
    Error,
    PyException,
    "Any error of ovf_disk. Attributes: path (str or None), offset (int or None), structure (str or None), category (str)."
);
create_exception!(
    _native,
    DamagedError,
    Error,
    "The input is damaged: a structure holds what its format forbids, or two disagree."
);
create_exception!(
    _native,
    TruncatedError,
    DamagedError,
    "A file is shorter than its structures say: an incomplete copy or download."
);
create_exception!(
    _native,
    UnsupportedError,
    Error,
    "The input uses a feature (or is a format) ovf_disk does not read or write."
);
create_exception!(
    _native,
    RefusedError,
    Error,
    "Refused by policy or by the caller: a name leading outside its folder, an existing output, an option out of range."
);
create_exception!(
    _native,
    IoError,
    Error,
    "The operating system (or a server) failed or refused: not found, permission, a failing device, a connection."
);

/// Adds the exception classes to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("Error", py.get_type::<Error>())?;
    m.add("DamagedError", py.get_type::<DamagedError>())?;
    m.add("TruncatedError", py.get_type::<TruncatedError>())?;
    m.add("UnsupportedError", py.get_type::<UnsupportedError>())?;
    m.add("RefusedError", py.get_type::<RefusedError>())?;
    m.add("IoError", py.get_type::<IoError>())?;
    Ok(())
}

/// Where an error points: file, offset, structure.
struct Place<'a> {
    path: Option<&'a Path>,
    offset: Option<u64>,
    structure: Option<&'static str>,
}

fn place_of(e: &ovf_disk::Error) -> Place<'_> {
    use ovf_disk::Error as E;
    let (path, offset): (Option<&Path>, Option<u64>) = match e {
        E::Disk { error, .. } => {
            return Place {
                path: error.path(),
                offset: error.offset(),
                structure: Some(error.structure()),
            }
        }
        E::Io { path, .. }
        | E::Busy { path, .. }
        | E::NoSpace { path, .. }
        | E::Config { path, .. }
        | E::Missing { path, .. }
        | E::Outside { path, .. } => (Some(path), None),
        E::Archive { path, offset, .. } | E::Truncated { path, offset, .. } => {
            (Some(path), Some(*offset))
        }
        E::Exists(p) | E::IsInput(p) | E::Verification(p) => (Some(p), None),
        E::LargerThanDeclared { file, .. } => (Some(file), None),
        _ => (None, None),
    };
    Place {
        path,
        offset,
        structure: None,
    }
}

/// The Python exception for a library error, with its fields set.
pub(crate) fn to_py(e: ovf_disk::Error) -> PyErr {
    let category = e.category();
    let message = e.to_string();
    let err = match category {
        ovf_disk::Category::Io => IoError::new_err(message),
        ovf_disk::Category::Damaged => DamagedError::new_err(message),
        ovf_disk::Category::Truncated => TruncatedError::new_err(message),
        ovf_disk::Category::Unsupported => UnsupportedError::new_err(message),
        _ => RefusedError::new_err(message),
    };
    let place = place_of(&e);
    Python::with_gil(|py| {
        let value = err.value(py);
        let path = place.path.map(|p| p.display().to_string());
        let name = match category {
            ovf_disk::Category::Io => "io",
            ovf_disk::Category::Damaged => "damaged",
            ovf_disk::Category::Truncated => "truncated",
            ovf_disk::Category::Unsupported => "unsupported",
            _ => "refused",
        };
        // Setting attributes on a fresh exception instance cannot fail in practice; a failure
        // would only lose the extra fields, never the error itself.
        let _ = value.setattr("path", path);
        let _ = value.setattr("offset", place.offset);
        let _ = value.setattr("structure", place.structure);
        let _ = value.setattr("category", name);
    });
    err
}

/// The Python exception for a `vmdk` error.
pub(crate) fn vmdk_to_py(e: vmdk::Error) -> PyErr {
    to_py(ovf_disk::Error::from(e))
}

/// A refusal of the caller's argument.
pub(crate) fn refused(message: impl Into<String>) -> PyErr {
    to_py(ovf_disk::Error::InvalidInput(message.into()))
}
