//! The binding to libxml2's XML Schema validator: the dozen functions `xmllint --schema` calls,
//! declared by hand (they have kept these signatures since libxml2 2.7).
//!
//! Each schema is compiled once, from the files built into the crate, and kept for the
//! process. libxml2 loads imported schema documents through its external entity loader, which
//! this module replaces once with one that serves the built-in files by name while this
//! thread compiles a schema, refuses everything while this thread reads an envelope, and hands
//! every other load (another user of libxml2 in the process) to the loader it replaced.

use std::cell::Cell;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::sync::{Mutex, OnceLock};

use super::{Schema, MAX_VIOLATIONS};

/// libxml2's `xmlError` (`xmlerror.h`), unchanged in layout since 2.6.
#[repr(C)]
struct XmlError {
    domain: c_int,
    code: c_int,
    message: *const c_char,
    level: c_int,
    file: *const c_char,
    line: c_int,
    str1: *const c_char,
    str2: *const c_char,
    str3: *const c_char,
    int1: c_int,
    int2: c_int,
    ctxt: *mut c_void,
    node: *mut c_void,
}

/// `XML_ERR_ERROR`: levels from here up are errors, below are warnings.
const XML_ERR_ERROR: c_int = 2;
/// `xmlParserOption`s for reading an envelope: no network, no error printed, line numbers past
/// 65535 kept (`XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |
/// XML_PARSE_BIG_LINES`). No entity substitution and no DTD loading: neither flag is set.
const ENVELOPE_OPTIONS: c_int = (1 << 11) | (1 << 5) | (1 << 6) | (1 << 22);

type StructuredError = unsafe extern "C" fn(user: *mut c_void, error: *const XmlError);
type EntityLoader =
    unsafe extern "C" fn(url: *const c_char, id: *const c_char, ctxt: *mut c_void) -> *mut c_void;

#[link(name = "xml2")]
unsafe extern "C" {
    fn xmlInitParser();
    fn xmlReadMemory(
        buffer: *const c_char,
        size: c_int,
        url: *const c_char,
        encoding: *const c_char,
        options: c_int,
    ) -> *mut c_void;
    fn xmlFreeDoc(doc: *mut c_void);
    fn xmlSchemaNewMemParserCtxt(buffer: *const c_char, size: c_int) -> *mut c_void;
    fn xmlSchemaSetParserStructuredErrors(
        ctxt: *mut c_void,
        f: Option<StructuredError>,
        user: *mut c_void,
    );
    fn xmlSchemaParse(ctxt: *mut c_void) -> *mut c_void;
    fn xmlSchemaFreeParserCtxt(ctxt: *mut c_void);
    fn xmlSchemaNewValidCtxt(schema: *mut c_void) -> *mut c_void;
    fn xmlSchemaSetValidStructuredErrors(
        ctxt: *mut c_void,
        f: Option<StructuredError>,
        user: *mut c_void,
    );
    fn xmlSchemaValidateDoc(ctxt: *mut c_void, doc: *mut c_void) -> c_int;
    fn xmlSchemaFreeValidCtxt(ctxt: *mut c_void);
    fn xmlGetExternalEntityLoader() -> Option<EntityLoader>;
    fn xmlSetExternalEntityLoader(f: Option<EntityLoader>);
    fn xmlNewStringInputStream(ctxt: *mut c_void, buffer: *const c_char) -> *mut c_void;
}

/// A built-in schema file: its name as the schemas import it, and its text ending in NUL.
type File = (&'static str, &'static str);

macro_rules! xsd {
    ($dir:literal, $name:literal) => {
        (
            $name,
            concat!(include_str!(concat!("../../xsd/", $dir, "/", $name)), "\0"),
        )
    };
}

/// DSP8023 1.1.1 first, then what it imports.
const OVF1_FILES: [File; 5] = [
    xsd!("ovf1", "dsp8023_1.1.1.xsd"),
    xsd!("ovf1", "xml.xsd"),
    xsd!("ovf1", "common.xsd"),
    xsd!("ovf1", "CIM_VirtualSystemSettingData.xsd"),
    xsd!("ovf1", "CIM_ResourceAllocationSettingData.xsd"),
];

/// DSP8023 2.0.1 first, then what it imports.
const OVF2_FILES: [File; 12] = [
    xsd!("ovf2", "dsp8023_2.0.1.xsd"),
    xsd!("ovf2", "xml.xsd"),
    xsd!("ovf2", "common.xsd"),
    xsd!("ovf2", "CIM_VirtualSystemSettingData.xsd"),
    xsd!("ovf2", "CIM_ResourceAllocationSettingData.xsd"),
    xsd!("ovf2", "CIM_StorageAllocationSettingData.xsd"),
    xsd!("ovf2", "CIM_EthernetPortAllocationSettingData.xsd"),
    xsd!("ovf2", "CIM_BootConfigSetting.xsd"),
    xsd!("ovf2", "CIM_BootSourceSetting.xsd"),
    xsd!("ovf2", "xmldsig-core-schema.xsd"),
    xsd!("ovf2", "xenc-schema.xsd"),
    xsd!("ovf2", "xenc-schema-11.xsd"),
];

thread_local! {
    /// What the entity loader may serve on this thread: `Some(files)` while this thread
    /// compiles a schema or reads an envelope (`Some(&[])`: nothing), `None` otherwise (the
    /// replaced loader decides).
    static SERVING: Cell<Option<&'static [File]>> = const { Cell::new(None) };
}

/// The loader libxml2 had before ours.
static PREVIOUS_LOADER: OnceLock<Option<EntityLoader>> = OnceLock::new();

/// Sets [`SERVING`] for as long as it lives.
struct Serving;

impl Serving {
    fn files(files: &'static [File]) -> Self {
        SERVING.with(|s| s.set(Some(files)));
        Self
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        SERVING.with(|s| s.set(None));
    }
}

/// libxml2's external entity loader while this module is loaded: the built-in file named by
/// `url`'s last segment, nothing, or the previous loader's answer (see [`SERVING`]).
unsafe extern "C" fn loader(
    url: *const c_char,
    id: *const c_char,
    ctxt: *mut c_void,
) -> *mut c_void {
    match SERVING.with(Cell::get) {
        Some(files) => {
            if url.is_null() {
                return std::ptr::null_mut();
            }
            // SAFETY: libxml2 passes a NUL-terminated URL that lives for this call.
            let url = unsafe { CStr::from_ptr(url) }.to_bytes();
            let name = url.rsplit(|&c| c == b'/').next().unwrap_or(url);
            match files.iter().find(|(n, _)| n.as_bytes() == name) {
                // SAFETY: the text is NUL-terminated and 'static, so it outlives the input
                // stream libxml2 makes of it (which may point into it without copying).
                Some((_, text)) => unsafe { xmlNewStringInputStream(ctxt, text.as_ptr().cast()) },
                None => std::ptr::null_mut(),
            }
        }
        None => match PREVIOUS_LOADER.get().copied().flatten() {
            // SAFETY: the loader libxml2 had installed, called as libxml2 would call it.
            Some(previous) => unsafe { previous(url, id, ctxt) },
            None => std::ptr::null_mut(),
        },
    }
}

/// Initialises libxml2 and installs [`loader`], once per process.
fn init() {
    PREVIOUS_LOADER.get_or_init(|| {
        // SAFETY: xmlInitParser may be called more than once and from any thread; the loader
        // is read and replaced once, inside this OnceLock's initialiser.
        unsafe {
            xmlInitParser();
            let previous = xmlGetExternalEntityLoader();
            xmlSetExternalEntityLoader(Some(loader));
            previous
        }
    });
}

/// Errors with their lines, and how many more were reported.
type Errors = (Vec<(Option<u32>, String)>, usize);

/// What libxml2 reported through a structured error callback: errors with their lines, at
/// most [`MAX_VIOLATIONS`], and how many more.
#[derive(Default)]
struct Collected {
    errors: Vec<(Option<u32>, String)>,
    omitted: usize,
}

/// The structured error callback: `user` is a `Collected`.
unsafe extern "C" fn collect(user: *mut c_void, error: *const XmlError) {
    if user.is_null() || error.is_null() {
        return;
    }
    // SAFETY: `user` is the `&mut Collected` given with this callback, alive for the call
    // that reports; `error` is libxml2's report, valid during this callback.
    let (out, error) = unsafe { (&mut *user.cast::<Collected>(), &*error) };
    if error.level < XML_ERR_ERROR {
        return;
    }
    if out.errors.len() >= MAX_VIOLATIONS {
        out.omitted += 1;
        return;
    }
    let message = if error.message.is_null() {
        format!("libxml2 error {}", error.code)
    } else {
        // SAFETY: a NUL-terminated message owned by libxml2 for this callback.
        unsafe { CStr::from_ptr(error.message) }
            .to_string_lossy()
            .into_owned()
    };
    let line = u32::try_from(error.line).ok().filter(|&l| l > 0);
    out.errors.push((line, message));
}

/// A compiled schema (`xmlSchemaPtr`), used under its lock.
struct Compiled(*mut c_void);

// SAFETY: a compiled schema is heap memory of libxml2's, tied to no thread; every use goes
// through the Mutex that holds it.
unsafe impl Send for Compiled {}

static OVF1: OnceLock<Result<Mutex<Compiled>, String>> = OnceLock::new();
static OVF2: OnceLock<Result<Mutex<Compiled>, String>> = OnceLock::new();

/// Compiles the schema whose files are `files` (the main one first).
fn compile(files: &'static [File]) -> Result<Mutex<Compiled>, String> {
    init();
    let (name, text) = files.first().ok_or("no schema file")?;
    let size = c_int::try_from(text.len() - 1).map_err(|_| "schema too large")?;
    let mut collected = Collected::default();
    let _serving = Serving::files(files);
    // SAFETY: the parser context reads `text` (alive for 'static) and reports into
    // `collected`, which outlives the context (freed before this block ends). Imports go
    // through `loader`, which serves `files` on this thread while `_serving` lives.
    let schema = unsafe {
        let ctxt = xmlSchemaNewMemParserCtxt(text.as_ptr().cast(), size);
        if ctxt.is_null() {
            return Err("libxml2 could not make a schema parser".into());
        }
        xmlSchemaSetParserStructuredErrors(
            ctxt,
            Some(collect),
            std::ptr::from_mut(&mut collected).cast(),
        );
        let schema = xmlSchemaParse(ctxt);
        xmlSchemaFreeParserCtxt(ctxt);
        schema
    };
    if schema.is_null() {
        let first = collected.errors.first().map_or("", |(_, m)| m.as_str());
        return Err(format!("{name} does not compile: {}", first.trim_end()));
    }
    Ok(Mutex::new(Compiled(schema)))
}

/// Validates envelope text `text` against `schema`: the errors (line, message), at most
/// [`MAX_VIOLATIONS`], and how many more. `Err` when libxml2 cannot read the text or the
/// schema does not compile.
pub(super) fn validate(schema: Schema, text: &str) -> Result<Errors, String> {
    let compiled = match schema {
        Schema::Ovf1 => OVF1.get_or_init(|| compile(&OVF1_FILES)),
        Schema::Ovf2 => OVF2.get_or_init(|| compile(&OVF2_FILES)),
    }
    .as_ref()
    .map_err(Clone::clone)?;
    let size = c_int::try_from(text.len()).map_err(|_| "envelope too large")?;
    let compiled = compiled.lock().map_err(|_| "schema lock poisoned")?;
    let mut collected = Collected::default();
    // No file is loaded while the envelope is read.
    let _serving = Serving::files(&[]);
    // SAFETY: libxml2 reads `text` (`size` bytes, alive for the call) into a document of its
    // own, freed below; the validation context uses the compiled schema under its lock and
    // reports into `collected`, which outlives it.
    let outcome = unsafe {
        let doc = xmlReadMemory(
            text.as_ptr().cast(),
            size,
            std::ptr::null(),
            // The text is a Rust string: UTF-8 whatever its declaration says.
            c"UTF-8".as_ptr(),
            ENVELOPE_OPTIONS,
        );
        if doc.is_null() {
            return Err("libxml2 could not read the envelope".into());
        }
        let ctxt = xmlSchemaNewValidCtxt(compiled.0);
        if ctxt.is_null() {
            xmlFreeDoc(doc);
            return Err("libxml2 could not make a validation context".into());
        }
        xmlSchemaSetValidStructuredErrors(
            ctxt,
            Some(collect),
            std::ptr::from_mut(&mut collected).cast(),
        );
        let outcome = xmlSchemaValidateDoc(ctxt, doc);
        xmlSchemaFreeValidCtxt(ctxt);
        xmlFreeDoc(doc);
        outcome
    };
    if outcome < 0 {
        return Err(format!("libxml2's validator failed ({outcome})"));
    }
    if outcome > 0 && collected.errors.is_empty() && collected.omitted == 0 {
        collected.errors.push((
            None,
            "invalid by the schema (the validator named no place)".into(),
        ));
    }
    Ok((collected.errors, collected.omitted))
}
