//! A package's disk file as the stream of the disk it holds (DSP0243 §5.3): as stored, or its
//! chunks (`href.000000000`, `href.000000001`, ...) read one after the other, each opened when
//! the previous one ends, gunzipped when `ovf:compression="gzip"`.

use std::io::Read;

use super::Package;
use crate::error::{Error, Result};
use ovf::envelope::FileRef;

/// Most chunks a chunked disk file may have (`href.000000000` onwards).
pub(crate) const MAX_CHUNKS: u32 = 100_000;

/// The disk held by `file` (of the package's disk `disk`), as a stream.
pub(crate) fn disk_stream(pkg: &Package, file: &FileRef, disk: &str) -> Result<Box<dyn Read>> {
    let base: Box<dyn Read> = if file.chunk_size.is_some() {
        let names = chunk_names(pkg, &file.href);
        if names.is_empty() {
            return Err(Error::Missing {
                path: pkg.path().to_path_buf(),
                name: format!("{}.000000000", file.href),
            });
        }
        if pkg
            .size(&format!("{}.{MAX_CHUNKS:09}", file.href))
            .is_some()
        {
            return Err(Error::Unsupported {
                disk: disk.to_string(),
                what: format!("a file in more than {MAX_CHUNKS} chunks"),
            });
        }
        Box::new(Chunks {
            pkg: pkg.clone(),
            names: names.into_iter(),
            current: None,
        })
    } else {
        pkg.reader(&file.href)?
    };
    decompressed(base, file.compression.as_deref(), disk)
}

/// The chunks of the chunked file `href` present in the package, in order: `href.000000000`
/// and the ones that follow it without a gap (at most [`MAX_CHUNKS`]).
pub(crate) fn chunk_names(pkg: &Package, href: &str) -> Vec<String> {
    (0..MAX_CHUNKS)
        .map(|i| format!("{href}.{i:09}"))
        .take_while(|name| pkg.size(name).is_some())
        .collect()
}

/// The chunks of a file read one after the other, each opened when the previous one ends.
struct Chunks {
    pkg: Package,
    names: std::vec::IntoIter<String>,
    current: Option<Box<dyn Read>>,
}

impl Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if let Some(r) = &mut self.current {
                let n = r.read(buf)?;
                if n > 0 || buf.is_empty() {
                    return Ok(n);
                }
            }
            match self.names.next() {
                None => return Ok(0),
                Some(name) => {
                    self.current = Some(self.pkg.reader(&name).map_err(std::io::Error::other)?)
                }
            }
        }
    }
}

/// A stored disk file as the disk's bytes: as is, or gunzipped for `ovf:compression="gzip"`.
pub(crate) fn decompressed<'a>(
    base: Box<dyn Read + 'a>,
    compression: Option<&str>,
    disk: &str,
) -> Result<Box<dyn Read + 'a>> {
    match compression {
        None | Some("") | Some("identity") => Ok(base),
        Some("gzip") => Ok(Box::new(flate2::read::MultiGzDecoder::new(base))),
        Some(other) => Err(Error::Unsupported {
            disk: disk.to_string(),
            what: format!("ovf:compression=\"{other}\""),
        }),
    }
}
