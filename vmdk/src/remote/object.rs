//! One remote object read with positioned reads: large reads become one ranged GET each, small
//! ones (grain tables, grains, markers) are served from 1 MiB chunks fetched once and kept in a
//! small cache, so a sparse extent is fetched in large requests and no byte twice while the
//! cache holds it. Concurrent readers of one chunk wait for a single fetch.

use std::io;
use std::sync::{Arc, Mutex};

use positioned_io::ReadAt;

use super::client::Client;

/// Bytes of one cached chunk.
pub(crate) const CHUNK: u64 = 1 << 20;

/// Reads at least this long go straight to the server, one request each.
const DIRECT: usize = CHUNK as usize;

/// One request asks for at most this much.
const MAX_REQUEST: usize = 16 << 20;

/// A chunk being fetched or fetched.
type Slot = Arc<Mutex<Option<Arc<[u8]>>>>;

/// A remote object: its URL (with the query), length and validator, and a cache of chunks.
pub(crate) struct RemoteObject {
    pub(crate) url: String,
    pub(crate) len: u64,
    pub(crate) validator: Option<String>,
    pub(crate) client: Arc<Client>,
    /// Chunks by index, least recently used first.
    cache: Mutex<Vec<(u64, Slot)>>,
    capacity: usize,
}

impl std::fmt::Debug for RemoteObject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Not the URL: its query may hold a signature.
        f.debug_struct("RemoteObject")
            .field("len", &self.len)
            .finish()
    }
}

impl RemoteObject {
    pub(crate) fn new(
        url: String,
        len: u64,
        validator: Option<String>,
        client: Arc<Client>,
        capacity: usize,
    ) -> Self {
        Self {
            url,
            len,
            validator,
            client,
            cache: Mutex::new(Vec::new()),
            capacity: capacity.max(2),
        }
    }

    /// The slot of chunk `index`, made most recently used; a new one when not cached.
    fn slot(&self, index: u64) -> Slot {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = cache.iter().position(|(k, _)| *k == index) {
            let entry = cache.remove(i);
            let slot = entry.1.clone();
            cache.push(entry);
            return slot;
        }
        if cache.len() >= self.capacity {
            cache.remove(0);
        }
        let slot = Slot::default();
        cache.push((index, slot.clone()));
        slot
    }

    /// Chunk `index` when it is cached and fetched (nothing is inserted or waited for).
    fn cached(&self, index: u64) -> Option<Arc<[u8]>> {
        let slot = {
            let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
            cache.iter().find(|(k, _)| *k == index)?.1.clone()
        };
        let held = slot.try_lock().ok()?;
        held.clone()
    }

    fn forget(&self, index: u64) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.retain(|(k, _)| *k != index);
    }

    /// The bytes of chunk `index`, fetched once.
    fn chunk(&self, index: u64) -> io::Result<Arc<[u8]>> {
        let slot = self.slot(index);
        let mut held = slot.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(bytes) = held.as_ref() {
            return Ok(bytes.clone());
        }
        let start = index * CHUNK;
        let len = CHUNK.min(self.len.saturating_sub(start));
        let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0)];
        if let Err(e) = self
            .client
            .fetch(&self.url, start, &mut buf, self.validator.as_deref())
        {
            drop(held);
            self.forget(index);
            return Err(e);
        }
        let bytes: Arc<[u8]> = buf.into();
        *held = Some(bytes.clone());
        Ok(bytes)
    }
}

impl ReadAt for RemoteObject {
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        let Some(left) = self.len.checked_sub(pos).filter(|&l| l > 0) else {
            return Ok(0);
        };
        let n = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let index = pos / CHUNK;
        let cached = self.cached(index);
        if n >= DIRECT && cached.is_none() {
            // Stop before a cached chunk the read would fetch again.
            let mut n = n.min(MAX_REQUEST);
            let last = (pos + n as u64 - 1) / CHUNK;
            if last > index && self.cached(last).is_some() {
                n = usize::try_from(last * CHUNK - pos).unwrap_or(n);
            }
            let dst = buf.get_mut(..n).unwrap_or_default();
            self.client
                .fetch(&self.url, pos, dst, self.validator.as_deref())?;
            return Ok(n);
        }
        let chunk = match cached {
            Some(c) => c,
            None => self.chunk(index)?,
        };
        let within = usize::try_from(pos % CHUNK).unwrap_or(0);
        let avail = chunk.get(within..).unwrap_or_default();
        let n = n.min(avail.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), avail.get(..n)) {
            dst.copy_from_slice(src);
        }
        Ok(n)
    }
}
