//! Objects written to S3 in one forward pass (a stream-optimized disk, an OVA): a multipart
//! upload whose parts are sent as they fill, by as many threads as the source has connections
//! (each part a PUT of its own, so parts travel side by side while the writer fills the next),
//! completed by [`Upload::finish`] once every part is stored and aborted when dropped
//! unfinished, so no partial object is ever visible under the key.

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

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
    /// Parts handed to the senders so far.
    sent: u32,
    senders: Senders,
    finished: bool,
}

/// The threads that PUT parts, and what they report.
struct Senders {
    queue: Option<SyncSender<(u32, Vec<u8>)>>,
    threads: Vec<JoinHandle<()>>,
    /// (part number, ETag) of the parts stored, in the order they were stored.
    stored: Arc<Mutex<Vec<(u32, String)>>>,
    /// The first failure: once set, nothing more is sent.
    failed: Arc<Mutex<Option<io::Error>>>,
}

impl Senders {
    /// `n` threads PUTting the parts of the upload `id` at `url`; a part is handed to a thread
    /// that is free (so at most `n` parts are held besides the one being filled).
    fn start(client: &Arc<Client>, url: &str, id: &str, n: usize) -> Self {
        let (queue, parts) = sync_channel::<(u32, Vec<u8>)>(0);
        let parts = Arc::new(Mutex::new(parts));
        let stored = Arc::new(Mutex::new(Vec::new()));
        let failed: Arc<Mutex<Option<io::Error>>> = Arc::new(Mutex::new(None));
        let threads = (0..n)
            .map(|_| {
                let (client, parts, stored, failed) = (
                    client.clone(),
                    parts.clone(),
                    stored.clone(),
                    failed.clone(),
                );
                let (url, id) = (url.to_string(), id.to_string());
                std::thread::spawn(move || loop {
                    let next = lock(&parts).recv();
                    let Ok((number, body)) = next else { break };
                    if lock(&failed).is_some() {
                        continue;
                    }
                    match put_part(&client, &url, &id, number, &body) {
                        Ok(etag) => lock(&stored).push((number, etag)),
                        Err(e) => {
                            lock(&failed).get_or_insert(e);
                        }
                    }
                })
            })
            .collect();
        Self {
            queue: Some(queue),
            threads,
            stored,
            failed,
        }
    }

    /// The first failure, as a new error (the original stays for [`Senders::wait`]).
    fn failure(&self) -> Option<io::Error> {
        lock(&self.failed)
            .as_ref()
            .map(|e| io::Error::new(e.kind(), e.to_string()))
    }

    /// Waits for every part handed over: the parts stored in part order, or the first failure.
    fn wait(&mut self) -> io::Result<Vec<(u32, String)>> {
        self.queue = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        if let Some(e) = lock(&self.failed).take() {
            return Err(e);
        }
        let mut parts = std::mem::take(&mut *lock(&self.stored));
        parts.sort_unstable();
        Ok(parts)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// PUTs part `number` of the upload `id`: its ETag.
fn put_part(client: &Client, url: &str, id: &str, number: u32, body: &[u8]) -> io::Result<String> {
    let url = with_query(
        url,
        &format!(
            "partNumber={number}&uploadId={}",
            super::s3::uri_encode(id, false)
        ),
    );
    let (etag, _) = client.call("PUT", &url, Some(body))?;
    etag.ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            "a part was stored without an ETag",
        )
    })
}

impl std::fmt::Debug for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upload")
            .field("name", &self.name)
            .field("parts", &self.sent)
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
        let senders = Senders::start(&client, &url, &id, client.connections().max(1));
        Ok(Self {
            client,
            url,
            name,
            id,
            buf: Vec::with_capacity(FIRST_PARTS),
            sent: 0,
            senders,
            finished: false,
        })
    }

    fn part_size(&self) -> usize {
        match self.sent {
            0..1000 => FIRST_PARTS,
            _ => 128 << 20,
        }
    }

    /// Hands what is buffered to the senders as the next part (waiting until one is free).
    fn send_part(&mut self) -> io::Result<()> {
        if let Some(e) = self.senders.failure() {
            return Err(e);
        }
        let number = self.sent + 1;
        if number > 10_000 {
            return Err(io::Error::other(
                "more than 10000 parts: the object is too large for S3",
            ));
        }
        let next = Vec::with_capacity(self.part_size());
        let body = std::mem::replace(&mut self.buf, next);
        let queue = self.senders.queue.as_ref();
        queue
            .and_then(|q| q.send((number, body)).ok())
            .ok_or_else(|| io::Error::other("the part senders stopped"))?;
        self.sent = number;
        Ok(())
    }

    /// Sends the last part, waits for every part, and completes the upload: the object
    /// appears under its key.
    pub fn finish(mut self) -> Result<u64> {
        let err = |name: &PathBuf, e: io::Error| Error::file(name, ErrorKind::Io(e));
        if !self.buf.is_empty() || self.sent == 0 {
            self.send_part().map_err(|e| err(&self.name, e))?;
        }
        let parts = self.senders.wait().map_err(|e| err(&self.name, e))?;
        if parts.len() != self.sent as usize {
            return Err(err(&self.name, io::Error::other("a part was not stored")));
        }
        let mut w = Writer::new(Vec::new());
        let written = w
            .create_element("CompleteMultipartUpload")
            .write_inner_content(|w| {
                for (n, etag) in &parts {
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
        Ok(parts.len() as u64)
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
            // Nothing more is sent; the PUTs in flight end (fail or land); then the abort
            // deletes every part stored.
            lock(&self.senders.failed)
                .get_or_insert_with(|| io::Error::other("the upload was abandoned"));
            let _ = self.senders.wait();
            let url = with_query(
                &self.url,
                &format!("uploadId={}", super::s3::uri_encode(&self.id, false)),
            );
            let _ = self.client.call("DELETE", &url, None);
        }
    }
}
