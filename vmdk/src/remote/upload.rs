//! Objects written to S3 in one forward pass (a stream-optimized disk, an OVA): a multipart
//! upload whose parts are sent as they fill, completed by [`Upload::finish`] and aborted when
//! dropped unfinished, so no partial object is ever visible under the key.

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;

use quick_xml::events::BytesText;
use quick_xml::Writer;

use super::client::Client;
use crate::error::{Error, ErrorKind, Result};

/// Bytes of each of the first 1000 parts; later parts are 128 MiB (S3 allows 10000 parts, so
/// an object of up to about 1.1 TiB).
const FIRST_PARTS: usize = 16 << 20;

/// An S3 object being written.
pub struct Upload {
    client: Arc<Client>,
    url: String,
    name: PathBuf,
    id: String,
    buf: Vec<u8>,
    /// (part number, ETag) of the parts sent.
    parts: Vec<(u32, String)>,
    finished: bool,
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("name", &self.name)
            .field("parts", &self.parts.len())
            .finish()
    }
}

/// The text of the first `<tag>` element of an XML answer, unescaped.
fn element(xml: &str, tag: &str) -> Option<String> {
    let (_, rest) = xml.split_once(&format!("<{tag}>"))?;
    let (text, _) = rest.split_once(&format!("</{tag}>"))?;
    Some(
        text.replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

/// With `&` before the query or `?` when there is none.
fn with_query(url: &str, query: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{query}")
}

impl Upload {
    /// Starts a multipart upload to `url`.
    pub(crate) fn start(client: Arc<Client>, url: String, name: PathBuf) -> Result<Self> {
        let err = |e: io::Error| Error::file(&name, ErrorKind::Io(e));
        let (_, answer) = client
            .call("POST", &with_query(&url, "uploads"), Some(b""))
            .map_err(err)?;
        let id = element(&answer, "UploadId").ok_or_else(|| {
            err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the answer to starting a multipart upload has no UploadId",
            ))
        })?;
        Ok(Self {
            client,
            url,
            name,
            id,
            buf: Vec::with_capacity(FIRST_PARTS),
            parts: Vec::new(),
            finished: false,
        })
    }

    fn part_size(&self) -> usize {
        match self.parts.len() {
            0..1000 => FIRST_PARTS,
            _ => 128 << 20,
        }
    }

    /// Sends what is buffered as the next part.
    fn send_part(&mut self) -> io::Result<()> {
        let number = u32::try_from(self.parts.len() + 1).unwrap_or(u32::MAX);
        if number > 10_000 {
            return Err(io::Error::other(
                "more than 10000 parts: the object is too large for S3",
            ));
        }
        let url = with_query(
            &self.url,
            &format!(
                "partNumber={number}&uploadId={}",
                super::s3::uri_encode(&self.id, false)
            ),
        );
        let (etag, _) = self.client.call("PUT", &url, Some(&self.buf))?;
        let etag = etag.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "a part was stored without an ETag",
            )
        })?;
        self.parts.push((number, etag));
        self.buf.clear();
        Ok(())
    }

    /// Sends the last part and completes the upload: the object appears under its key.
    pub fn finish(mut self) -> Result<u64> {
        let err = |name: &PathBuf, e: io::Error| Error::file(name, ErrorKind::Io(e));
        if !self.buf.is_empty() || self.parts.is_empty() {
            self.send_part().map_err(|e| err(&self.name, e))?;
        }
        let mut w = Writer::new(Vec::new());
        let written = w
            .create_element("CompleteMultipartUpload")
            .write_inner_content(|w| {
                for (n, etag) in &self.parts {
                    w.create_element("Part").write_inner_content(|w| {
                        w.create_element("PartNumber")
                            .write_text_content(BytesText::new(&n.to_string()))?;
                        w.create_element("ETag")
                            .write_text_content(BytesText::new(etag))?;
                        Ok(())
                    })?;
                }
                Ok(())
            });
        written.map_err(|e| err(&self.name, io::Error::other(e.to_string())))?;
        let body = w.into_inner();
        let url = with_query(
            &self.url,
            &format!("uploadId={}", super::s3::uri_encode(&self.id, false)),
        );
        let (_, answer) = self
            .client
            .call("POST", &url, Some(&body))
            .map_err(|e| err(&self.name, e))?;
        // S3 may answer 200 with an error in the body.
        if answer.contains("<Error>") {
            let code = element(&answer, "Code").unwrap_or_default();
            return Err(err(
                &self.name,
                io::Error::other(format!("completing the upload failed ({code})")),
            ));
        }
        self.finished = true;
        Ok(self.parts.len() as u64)
    }
}

impl Write for Upload {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = self.part_size().saturating_sub(self.buf.len());
        let n = room.min(data.len());
        self.buf
            .extend_from_slice(data.get(..n).unwrap_or_default());
        if self.buf.len() >= self.part_size() {
            self.send_part()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for Upload {
    /// An unfinished upload is aborted: its parts are deleted and no object appears.
    fn drop(&mut self) {
        if !self.finished {
            let url = with_query(
                &self.url,
                &format!("uploadId={}", super::s3::uri_encode(&self.id, false)),
            );
            let _ = self.client.call("DELETE", &url, None);
        }
    }
}
