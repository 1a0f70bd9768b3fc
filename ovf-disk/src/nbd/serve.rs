//! The transmission phase: requests read, answered, replies written. On a socket the requests
//! of one connection are answered by several threads at once (the protocol lets replies come
//! in any order, matched by handle), bounded by the server's budget of buffered reply bytes;
//! a caller's stream is answered one request at a time.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Condvar, Mutex};

use super::io::{broken, Io, ReadHalf, WriteHalf};
use super::{Export, MAX_REQUEST};
use crate::error::Result;

const REQUEST_MAGIC: u32 = 0x2560_9513;
const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;
const STRUCTURED_REPLY_MAGIC: u32 = 0x668e_33ef;

// Commands.
const CMD_READ: u16 = 0;
const CMD_WRITE: u16 = 1;
const CMD_DISC: u16 = 2;
const CMD_FLUSH: u16 = 3;
const CMD_TRIM: u16 = 4;
const CMD_CACHE: u16 = 5;
const CMD_WRITE_ZEROES: u16 = 6;
const CMD_BLOCK_STATUS: u16 = 7;
const CMD_FLAG_REQ_ONE: u16 = 1 << 3;

// Structured reply types and flags.
const REPLY_FLAG_DONE: u16 = 1;
const REPLY_TYPE_OFFSET_DATA: u16 = 1;
const REPLY_TYPE_BLOCK_STATUS: u16 = 5;
const REPLY_TYPE_ERROR: u16 = (1 << 15) | 1;

// Errors (errno values the protocol names).
const EPERM: u32 = 1;
const EIO: u32 = 5;
const EINVAL: u32 = 22;
const EOVERFLOW: u32 = 75;

// base:allocation states.
const STATE_HOLE: u32 = 1;
const STATE_ZERO: u32 = 2;

/// The id of the one metadata context served, `base:allocation`.
pub(crate) const CONTEXT_ID: u32 = 1;

/// Most block-status descriptors in one reply.
const MAX_DESCRIPTORS: usize = 4096;

/// Reads of at most this size reuse a thread's buffer; larger ones take their own, released
/// with the budget when the reply is sent.
const KEPT_BUFFER: usize = 1 << 20;

/// One request of the transmission phase.
pub(crate) struct Request {
    flags: u16,
    kind: u16,
    handle: u64,
    offset: u64,
    length: u32,
}

/// The bytes of replies being built or sent, across every connection of a server: a thread
/// waits for room before it reads a request's data, so many clients asking for the largest
/// reads at once hold at most this much memory.
#[derive(Debug)]
pub(crate) struct Budget {
    limit: u64,
    used: Mutex<u64>,
    freed: Condvar,
}

impl Budget {
    pub(crate) fn new(limit: u64) -> Self {
        Self {
            limit: limit.max(u64::from(MAX_REQUEST)),
            used: Mutex::new(0),
            freed: Condvar::new(),
        }
    }

    fn take(&self, n: u64) -> Permit<'_> {
        let mut used = self.used.lock().unwrap_or_else(|p| p.into_inner());
        while *used + n > self.limit {
            used = self.freed.wait(used).unwrap_or_else(|p| p.into_inner());
        }
        *used += n;
        Permit(self, n)
    }
}

/// Bytes of a [`Budget`], given back when dropped.
struct Permit<'b>(&'b Budget, u64);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut used = self.0.used.lock().unwrap_or_else(|p| p.into_inner());
        *used = used.saturating_sub(self.1);
        self.0.freed.notify_all();
    }
}

/// What a connection negotiated, and what it serves.
#[derive(Clone, Copy)]
pub(crate) struct Session<'a> {
    pub(crate) export: &'a Export,
    pub(crate) structured: bool,
    pub(crate) allocation: bool,
    pub(crate) budget: &'a Budget,
}

/// Reads one request; `None` when the client left between requests.
fn request(stream: &mut dyn Read) -> Result<Option<Request>> {
    let mut b = [0u8; 28];
    match stream.read_exact(&mut b) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(broken(format!("reading: {e}"))),
    }
    let be = |at: usize, n: usize| {
        b.get(at..at + n)
            .map_or(0, |s| s.iter().fold(0u64, |v, &x| (v << 8) | u64::from(x)))
    };
    let magic = be(0, 4) as u32;
    if magic != REQUEST_MAGIC {
        return Err(broken(format!("a request with magic {magic:#x}")));
    }
    Ok(Some(Request {
        flags: be(4, 2) as u16,
        kind: be(6, 2) as u16,
        handle: be(8, 8),
        offset: be(16, 8),
        length: be(24, 4) as u32,
    }))
}

/// Reads and drops a write's payload (the export is read-only); a larger one than any request
/// drops the client.
fn drain_write(stream: &mut dyn Read, r: &Request) -> Result<()> {
    if r.length > MAX_REQUEST {
        return Err(broken("a write larger than the maximum"));
    }
    let copied = std::io::copy(&mut stream.take(u64::from(r.length)), &mut std::io::sink())
        .map_err(|e| broken(format!("reading: {e}")))?;
    match copied == u64::from(r.length) {
        true => Ok(()),
        false => Err(broken("reading: the client left within a write")),
    }
}

fn send(stream: &mut dyn Write, bytes: &[u8]) -> Result<()> {
    stream
        .write_all(bytes)
        .map_err(|e| broken(format!("writing: {e}")))
}

/// The stream as a reading and a writing half, for a socket (plain or TLS); `None` for a
/// caller's stream, which is served one request at a time.
fn split(stream: &mut Io<'_>) -> std::io::Result<Option<(ReadHalf, WriteHalf)>> {
    match std::mem::replace(stream, Io::Gone) {
        Io::Socket(s) => {
            let w = s.try_clone()?;
            Ok(Some((Box::new(s), Box::new(w))))
        }
        #[cfg(feature = "nbd-tls")]
        Io::Tls(s) => super::tls::split(*s).map(Some),
        other => {
            *stream = other;
            Ok(None)
        }
    }
}

/// Serves requests on `stream` until the client disconnects: on several threads when the
/// stream splits and `threads` is more than one.
pub(crate) fn transmission(
    session: Session<'_>,
    stream: &mut Io<'_>,
    threads: usize,
) -> Result<()> {
    if threads > 1 {
        if let Some((reader, writer)) =
            split(stream).map_err(|e| broken(format!("splitting the stream: {e}")))?
        {
            return parallel(session, reader, writer, threads);
        }
    }
    let mut buf = Vec::new();
    while let Some(r) = request(stream)? {
        match r.kind {
            CMD_DISC => return Ok(()),
            CMD_WRITE => {
                drain_write(stream, &r)?;
                send(stream, &session.error(&r, EPERM, "the export is read-only"))?;
            }
            _ => {
                let (head, data) = session.answer(&r, &mut buf);
                send(stream, &head)?;
                send(stream, data.bytes(&buf))?;
            }
        }
        stream
            .flush()
            .map_err(|e| broken(format!("writing: {e}")))?;
    }
    Ok(())
}

/// The requests read on this thread, answered by `threads` others, each reply written whole
/// under the writer's lock.
fn parallel(
    session: Session<'_>,
    mut reader: ReadHalf,
    writer: WriteHalf,
    threads: usize,
) -> Result<()> {
    let writer = Mutex::new(writer);
    // A reply's header and data, one after the other under the lock.
    let put = |head: &[u8], data: &[u8]| -> Result<()> {
        let mut w = writer.lock().unwrap_or_else(|p| p.into_inner());
        send(&mut **w, head)?;
        match data.is_empty() {
            true => Ok(()),
            false => send(&mut **w, data),
        }
    };
    let (tx, rx) = mpsc::sync_channel::<Request>(threads * 4);
    let rx = Mutex::new(rx);
    // Set when the client broke the protocol: what it queued is dropped, not answered.
    let cancelled = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut buf = Vec::new();
                let mut gone = false;
                loop {
                    let next = rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                    let Ok(r) = next else { break };
                    // Once a reply could not be sent, requests are taken and dropped, so the
                    // reading thread never waits on a full queue for a client that stopped
                    // reading: it ends when the client does.
                    if gone || cancelled.load(Ordering::Relaxed) {
                        continue;
                    }
                    let (head, data) = session.answer(&r, &mut buf);
                    gone = put(&head, data.bytes(&buf)).is_err();
                }
            });
        }
        let result = (|| -> Result<()> {
            while let Some(r) = request(&mut reader)? {
                match r.kind {
                    CMD_DISC => break,
                    CMD_WRITE => {
                        drain_write(&mut reader, &r)?;
                        put(&session.error(&r, EPERM, "the export is read-only"), &[])?;
                    }
                    _ => {
                        if tx.send(r).is_err() {
                            break;
                        }
                    }
                }
            }
            Ok(())
        })();
        // The threads answer what was asked, then stop; a client that broke the protocol gets
        // nothing more.
        if result.is_err() {
            cancelled.store(true, Ordering::Relaxed);
        }
        drop(tx);
        result
    })
}

/// A reply's data: none, the thread's buffer, or a buffer of its own with its budget.
enum Data<'b> {
    None,
    Kept { len: usize, _permit: Permit<'b> },
    Own { data: Vec<u8>, _permit: Permit<'b> },
}

impl Data<'_> {
    fn bytes<'s>(&'s self, kept: &'s [u8]) -> &'s [u8] {
        match self {
            Self::None => &[],
            Self::Kept { len, .. } => kept.get(..*len).unwrap_or_default(),
            Self::Own { data, .. } => data,
        }
    }
}

impl<'a> Session<'a> {
    /// The reply to `r`: its header (or whole reply) and its data.
    fn answer(&self, r: &Request, kept: &mut Vec<u8>) -> (Vec<u8>, Data<'a>) {
        let capacity = self.export.disk.capacity();
        let inside = r
            .offset
            .checked_add(u64::from(r.length))
            .is_some_and(|end| end <= capacity);
        let head = match r.kind {
            CMD_READ if r.length > MAX_REQUEST => self.error(r, EOVERFLOW, "too large"),
            CMD_READ if !inside => self.error(r, EINVAL, "past the end of the disk"),
            CMD_READ => return self.read(r, kept),
            CMD_TRIM | CMD_WRITE_ZEROES | CMD_WRITE => {
                self.error(r, EPERM, "the export is read-only")
            }
            CMD_FLUSH => self.done(r),
            CMD_CACHE if inside => self.done(r),
            CMD_BLOCK_STATUS if self.allocation && inside && r.length > 0 => self.block_status(r),
            _ => self.error(r, EINVAL, "not a request this export answers"),
        };
        (head, Data::None)
    }

    fn read(&self, r: &Request, kept: &mut Vec<u8>) -> (Vec<u8>, Data<'a>) {
        let len = r.length as usize;
        let permit = self.budget.take(u64::from(r.length));
        let mut own = Vec::new();
        let buf = match len <= KEPT_BUFFER {
            true => {
                kept.resize(len, 0);
                kept.as_mut_slice()
            }
            false => {
                own.resize(len, 0);
                own.as_mut_slice()
            }
        };
        if self.export.disk.read_exact_at(r.offset, buf).is_err() {
            return (self.error(r, EIO, "the disk could not be read"), Data::None);
        }
        let head = match self.structured {
            true => {
                let mut out = self.header(r, REPLY_TYPE_OFFSET_DATA, REPLY_FLAG_DONE, 8 + len);
                out.extend_from_slice(&r.offset.to_be_bytes());
                out
            }
            false => self.simple(r, 0),
        };
        let data = match len <= KEPT_BUFFER {
            true => Data::Kept {
                len,
                _permit: permit,
            },
            false => Data::Own {
                data: own,
                _permit: permit,
            },
        };
        (head, data)
    }

    fn header(&self, r: &Request, kind: u16, flags: u16, len: usize) -> Vec<u8> {
        // Room for what the callers append: a read's offset (its data is sent apart), or the
        // whole payload of the others.
        let appended = match kind {
            REPLY_TYPE_OFFSET_DATA => 8,
            _ => len,
        };
        let mut out = Vec::with_capacity(20 + appended);
        out.extend_from_slice(&STRUCTURED_REPLY_MAGIC.to_be_bytes());
        out.extend_from_slice(&flags.to_be_bytes());
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&r.handle.to_be_bytes());
        out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
        out
    }

    fn simple(&self, r: &Request, error: u32) -> Vec<u8> {
        let mut out = Vec::with_capacity(16);
        out.extend_from_slice(&SIMPLE_REPLY_MAGIC.to_be_bytes());
        out.extend_from_slice(&error.to_be_bytes());
        out.extend_from_slice(&r.handle.to_be_bytes());
        out
    }

    /// Success without data.
    fn done(&self, r: &Request) -> Vec<u8> {
        match self.structured {
            true => self.header(r, 0, REPLY_FLAG_DONE, 0),
            false => self.simple(r, 0),
        }
    }

    fn error(&self, r: &Request, errno: u32, message: &str) -> Vec<u8> {
        if !self.structured {
            return self.simple(r, errno);
        }
        let mut payload = errno.to_be_bytes().to_vec();
        payload.extend_from_slice(&(message.len() as u16).to_be_bytes());
        payload.extend_from_slice(message.as_bytes());
        let mut out = self.header(r, REPLY_TYPE_ERROR, REPLY_FLAG_DONE, payload.len());
        out.extend_from_slice(&payload);
        out
    }

    /// `base:allocation` of the requested range: data, zeroed grains (zero), and ranges no
    /// link holds (hole and zero), at most [`MAX_DESCRIPTORS`] of them (one with `REQ_ONE`).
    fn block_status(&self, r: &Request) -> Vec<u8> {
        let runs = match self.export.disk.map(r.offset, u64::from(r.length)) {
            Ok(runs) => runs,
            Err(_) => return self.error(r, EIO, "the disk's tables could not be read"),
        };
        let most = if r.flags & CMD_FLAG_REQ_ONE != 0 {
            1
        } else {
            MAX_DESCRIPTORS
        };
        let mut payload = CONTEXT_ID.to_be_bytes().to_vec();
        let mut count = 0;
        let mut last: Option<(u64, u32)> = None;
        for run in runs {
            let state = match run.kind {
                vmdk::Allocation::Data => 0,
                vmdk::Allocation::Zero => STATE_ZERO,
                vmdk::Allocation::Unallocated => STATE_HOLE | STATE_ZERO,
            };
            // Runs of one state merged; the length is at most the request's, so fits in u32.
            match &mut last {
                Some((len, s)) if *s == state => *len += run.len,
                _ => {
                    if let Some((len, s)) = last.take() {
                        if count == most {
                            break;
                        }
                        payload.extend_from_slice(&(len as u32).to_be_bytes());
                        payload.extend_from_slice(&s.to_be_bytes());
                        count += 1;
                    }
                    last = Some((run.len, state));
                }
            }
        }
        if let Some((len, s)) = last.filter(|_| count < most) {
            payload.extend_from_slice(&(len as u32).to_be_bytes());
            payload.extend_from_slice(&s.to_be_bytes());
        }
        let mut out = self.header(r, REPLY_TYPE_BLOCK_STATUS, REPLY_FLAG_DONE, payload.len());
        out.extend_from_slice(&payload);
        out
    }
}
