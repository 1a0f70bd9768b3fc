//! A remote object read forward, block after block, with several blocks fetched at once ahead
//! of the reader: a package digested or an OVA imported in one pass still uses every
//! connection. Memory: `depth` blocks.

use std::collections::VecDeque;
use std::io::{self, Read};
use std::sync::Arc;
use std::thread::JoinHandle;

use super::client::Client;

/// Bytes of one block.
pub(crate) const BLOCK: u64 = 8 << 20;

/// A forward reader over a ranged object.
pub(crate) struct Prefetch {
    client: Arc<Client>,
    url: Arc<str>,
    validator: Option<Arc<str>>,
    len: u64,
    /// The next byte not yet asked for.
    next: u64,
    /// Blocks being fetched, in order.
    queue: VecDeque<JoinHandle<io::Result<Vec<u8>>>>,
    depth: usize,
    current: Vec<u8>,
    at: usize,
}

impl Prefetch {
    /// A reader of the object's bytes from `start` to `len` (where it stops: the object's
    /// length, or less).
    pub(crate) fn new(
        client: Arc<Client>,
        url: String,
        (start, len): (u64, u64),
        validator: Option<String>,
        depth: usize,
    ) -> Self {
        Self {
            client,
            url: url.into(),
            validator: validator.map(Into::into),
            len,
            next: start.min(len),
            queue: VecDeque::new(),
            depth: depth.max(1),
            current: Vec::new(),
            at: 0,
        }
    }

    /// Starts fetches until `depth` are in flight or the object is all asked for.
    fn fill(&mut self) {
        while self.queue.len() < self.depth && self.next < self.len {
            let start = self.next;
            let n = BLOCK.min(self.len - start);
            self.next += n;
            let (client, url, validator) = (
                self.client.clone(),
                self.url.clone(),
                self.validator.clone(),
            );
            self.queue.push_back(std::thread::spawn(move || {
                let mut buf = vec![0u8; usize::try_from(n).unwrap_or(0)];
                client.fetch(&url, start, &mut buf, validator.as_deref())?;
                Ok(buf)
            }));
        }
    }
}

impl Read for Prefetch {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.at >= self.current.len() {
            self.fill();
            let Some(next) = self.queue.pop_front() else {
                return Ok(0);
            };
            self.current = next
                .join()
                .map_err(|_| io::Error::other("a fetch thread panicked"))??;
            self.at = 0;
            self.fill();
        }
        let avail = self.current.get(self.at..).unwrap_or_default();
        let n = avail.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), avail.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.at += n;
        Ok(n)
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        // Fetches still running finish on their own (each ends within the read timeout and
        // its retries); nothing waits for them.
        self.queue.clear();
    }
}
