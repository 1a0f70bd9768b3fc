//! The NBD protocol of one client: the fixed newstyle handshake, then transmission. Constants
//! and layouts from the protocol document (`doc/proto.md` of NetworkBlockDevice/nbd).

use std::io::{Read, Write};

use super::{Export, Server, MAX_REQUEST};
use crate::error::{Error, Result};

const NBDMAGIC: u64 = 0x4e42_444d_4147_4943;
const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
const OPTION_REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;
const REQUEST_MAGIC: u32 = 0x2560_9513;
const SIMPLE_REPLY_MAGIC: u32 = 0x6744_6698;
const STRUCTURED_REPLY_MAGIC: u32 = 0x668e_33ef;

// Handshake flags.
const FLAG_FIXED_NEWSTYLE: u16 = 1;
const FLAG_NO_ZEROES: u16 = 2;
const CLIENT_FLAGS_KNOWN: u32 = 3;

// Options.
const OPT_EXPORT_NAME: u32 = 1;
const OPT_ABORT: u32 = 2;
const OPT_LIST: u32 = 3;
const OPT_STARTTLS: u32 = 5;
const OPT_INFO: u32 = 6;
const OPT_GO: u32 = 7;
const OPT_STRUCTURED_REPLY: u32 = 8;
const OPT_LIST_META_CONTEXT: u32 = 9;
const OPT_SET_META_CONTEXT: u32 = 10;

// Option replies.
const REP_ACK: u32 = 1;
const REP_SERVER: u32 = 2;
const REP_INFO: u32 = 3;
const REP_META_CONTEXT: u32 = 4;
const REP_ERR_UNSUP: u32 = (1 << 31) | 1;
const REP_ERR_POLICY: u32 = (1 << 31) | 2;
const REP_ERR_INVALID: u32 = (1 << 31) | 3;
const REP_ERR_UNKNOWN: u32 = (1 << 31) | 6;

// Info types.
const INFO_EXPORT: u16 = 0;
const INFO_NAME: u16 = 1;
const INFO_BLOCK_SIZE: u16 = 3;

// Transmission flags: read-only, flush accepted, many connections see the same data, cache.
const TRANSMISSION_FLAGS: u16 = 1 | 2 | 4 | (1 << 7) | (1 << 8) | (1 << 10);

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
const CONTEXT_ID: u32 = 1;
const BASE_ALLOCATION: &str = "base:allocation";

/// Longest option payload read (a name is at most 4096 bytes; a few queries more).
const MAX_OPTION: u32 = 64 << 10;

/// Most options one client may send before it chooses an export.
const MAX_OPTIONS: usize = 1024;

/// Most block-status descriptors in one reply.
const MAX_DESCRIPTORS: usize = 4096;

/// A protocol failure of the client: the connection is dropped.
fn broken(why: impl Into<String>) -> Error {
    Error::InvalidInput(format!("NBD client: {}", why.into()))
}

/// Big-endian fields read from a byte slice, failing on a short one.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            return Err(broken("an option's payload is shorter than its fields"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([
            b.first().copied().unwrap_or(0),
            b.get(1).copied().unwrap_or(0),
        ]))
    }

    fn u32(&mut self) -> Result<u32> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_be_bytes(a))
    }

    /// A string of `u32` length and bytes, at most `max` long.
    fn string(&mut self, max: u32) -> Result<String> {
        let len = self.u32()?;
        if len > max {
            return Err(broken("a name longer than 4096 bytes"));
        }
        let b = self.take(len as usize)?;
        String::from_utf8(b.to_vec()).map_err(|_| broken("a name that is not UTF-8"))
    }
}

/// One client's connection.
pub(crate) struct Connection<'a, S> {
    server: &'a Server,
    stream: S,
    no_zeroes: bool,
    structured: bool,
    allocation: bool,
}

/// One request of the transmission phase.
struct Request {
    flags: u16,
    kind: u16,
    handle: u64,
    offset: u64,
    length: u32,
}

impl<'a, S: Read + Write> Connection<'a, S> {
    pub(crate) fn new(server: &'a Server, stream: S) -> Self {
        Self {
            server,
            stream,
            no_zeroes: false,
            structured: false,
            allocation: false,
        }
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> Result<()> {
        self.stream
            .read_exact(buf)
            .map_err(|e| broken(format!("reading: {e}")))
    }

    fn u32(&mut self) -> Result<u32> {
        let mut b = [0u8; 4];
        self.read_exact(&mut b)?;
        Ok(u32::from_be_bytes(b))
    }

    fn u64(&mut self) -> Result<u64> {
        let mut b = [0u8; 8];
        self.read_exact(&mut b)?;
        Ok(u64::from_be_bytes(b))
    }

    fn send(&mut self, bytes: &[u8]) -> Result<()> {
        self.stream
            .write_all(bytes)
            .map_err(|e| broken(format!("writing: {e}")))
    }

    /// The whole conversation: handshake, then requests until the client leaves.
    pub(crate) fn run(mut self) -> Result<()> {
        let Some(export) = self.handshake()? else {
            return Ok(());
        };
        self.transmission(export)
    }

    fn option_reply(&mut self, option: u32, kind: u32, data: &[u8]) -> Result<()> {
        let mut out = Vec::with_capacity(20 + data.len());
        out.extend_from_slice(&OPTION_REPLY_MAGIC.to_be_bytes());
        out.extend_from_slice(&option.to_be_bytes());
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&u32::try_from(data.len()).unwrap_or(0).to_be_bytes());
        out.extend_from_slice(data);
        self.send(&out)?;
        self.stream
            .flush()
            .map_err(|e| broken(format!("writing: {e}")))
    }

    /// The handshake: options until the client chooses an export (`None`: it aborted).
    fn handshake(&mut self) -> Result<Option<&'a Export>> {
        let mut hello = Vec::with_capacity(18);
        hello.extend_from_slice(&NBDMAGIC.to_be_bytes());
        hello.extend_from_slice(&IHAVEOPT.to_be_bytes());
        hello.extend_from_slice(&(FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES).to_be_bytes());
        self.send(&hello)?;
        self.stream
            .flush()
            .map_err(|e| broken(format!("writing: {e}")))?;
        let client = self.u32()?;
        if client & !CLIENT_FLAGS_KNOWN != 0 {
            return Err(broken(format!("unknown client flags {client:#x}")));
        }
        self.no_zeroes = client & u32::from(FLAG_NO_ZEROES) != 0;
        for _ in 0..MAX_OPTIONS {
            if self.u64()? != IHAVEOPT {
                return Err(broken("an option without the IHAVEOPT magic"));
            }
            let option = self.u32()?;
            let len = self.u32()?;
            if len > MAX_OPTION {
                return Err(broken(format!("an option of {len} bytes")));
            }
            let mut data = vec![0u8; len as usize];
            self.read_exact(&mut data)?;
            if let Some(done) = self.option(option, &data)? {
                return Ok(done);
            }
        }
        Err(broken(format!("more than {MAX_OPTIONS} options")))
    }

    /// Answers one option: `Some` when the handshake ends (with the export, or `None` when
    /// the client aborted).
    fn option(&mut self, option: u32, data: &[u8]) -> Result<Option<Option<&'a Export>>> {
        let server = self.server;
        match option {
            OPT_EXPORT_NAME => {
                let name = String::from_utf8_lossy(data).into_owned();
                // No reply can say "unknown" here: the protocol closes the connection.
                let export = server
                    .export(&name)
                    .ok_or_else(|| broken(format!("no export {name:?}")))?;
                let mut out = Vec::with_capacity(134);
                out.extend_from_slice(&export.disk.capacity().to_be_bytes());
                out.extend_from_slice(&TRANSMISSION_FLAGS.to_be_bytes());
                if !self.no_zeroes {
                    out.extend_from_slice(&[0u8; 124]);
                }
                self.send(&out)?;
                Ok(Some(Some(export)))
            }
            OPT_ABORT => {
                let _ = self.option_reply(option, REP_ACK, &[]);
                Ok(Some(None))
            }
            OPT_LIST => {
                if !data.is_empty() {
                    self.option_reply(option, REP_ERR_INVALID, &[])?;
                    return Ok(None);
                }
                for e in &server.exports {
                    let mut d = (e.name.len() as u32).to_be_bytes().to_vec();
                    d.extend_from_slice(e.name.as_bytes());
                    self.option_reply(option, REP_SERVER, &d)?;
                }
                self.option_reply(option, REP_ACK, &[])?;
                Ok(None)
            }
            OPT_STARTTLS => {
                self.option_reply(option, REP_ERR_POLICY, b"TLS is not offered by this server")?;
                Ok(None)
            }
            OPT_INFO | OPT_GO => self.info(option, data),
            OPT_STRUCTURED_REPLY => {
                let reply = match data.is_empty() {
                    true => {
                        self.structured = true;
                        REP_ACK
                    }
                    false => REP_ERR_INVALID,
                };
                self.option_reply(option, reply, &[])?;
                Ok(None)
            }
            OPT_LIST_META_CONTEXT | OPT_SET_META_CONTEXT => {
                self.meta_context(option, data)?;
                Ok(None)
            }
            _ => {
                self.option_reply(option, REP_ERR_UNSUP, &[])?;
                Ok(None)
            }
        }
    }

    /// `NBD_OPT_INFO` and `NBD_OPT_GO`.
    fn info(&mut self, option: u32, data: &[u8]) -> Result<Option<Option<&'a Export>>> {
        let mut f = Fields(data);
        let parsed = f.string(4096).and_then(|name| {
            let n = f.u16()?;
            let wanted = (0..n).map(|_| f.u16()).collect::<Result<Vec<_>>>()?;
            Ok((name, wanted))
        });
        let Ok((name, wanted)) = parsed.and_then(|p| match f.0.is_empty() {
            true => Ok(p),
            false => Err(broken("trailing bytes")),
        }) else {
            self.option_reply(option, REP_ERR_INVALID, &[])?;
            return Ok(None);
        };
        let Some(export) = self.server.export(&name) else {
            self.option_reply(option, REP_ERR_UNKNOWN, b"no such export")?;
            return Ok(None);
        };
        let mut info = INFO_EXPORT.to_be_bytes().to_vec();
        info.extend_from_slice(&export.disk.capacity().to_be_bytes());
        info.extend_from_slice(&TRANSMISSION_FLAGS.to_be_bytes());
        self.option_reply(option, REP_INFO, &info)?;
        if wanted.contains(&INFO_NAME) {
            let mut d = INFO_NAME.to_be_bytes().to_vec();
            d.extend_from_slice(export.name.as_bytes());
            self.option_reply(option, REP_INFO, &d)?;
        }
        let mut sizes = INFO_BLOCK_SIZE.to_be_bytes().to_vec();
        for v in [1u32, 4096, MAX_REQUEST] {
            sizes.extend_from_slice(&v.to_be_bytes());
        }
        self.option_reply(option, REP_INFO, &sizes)?;
        self.option_reply(option, REP_ACK, &[])?;
        Ok((option == OPT_GO).then_some(Some(export)))
    }

    /// `NBD_OPT_LIST_META_CONTEXT` and `NBD_OPT_SET_META_CONTEXT`: only `base:allocation`.
    fn meta_context(&mut self, option: u32, data: &[u8]) -> Result<()> {
        let mut f = Fields(data);
        let parsed = (|| -> Result<(String, Vec<String>)> {
            let name = f.string(4096)?;
            let n = f.u32()?;
            if n > 256 {
                return Err(broken("too many metadata queries"));
            }
            let queries = (0..n).map(|_| f.string(4096)).collect::<Result<_>>()?;
            Ok((name, queries))
        })();
        let Ok((name, queries)) = parsed else {
            return self.option_reply(option, REP_ERR_INVALID, &[]);
        };
        if option == OPT_SET_META_CONTEXT && !self.structured {
            return self.option_reply(option, REP_ERR_INVALID, b"structured replies first");
        }
        if self.server.export(&name).is_none() {
            return self.option_reply(option, REP_ERR_UNKNOWN, b"no such export");
        }
        let listing = option == OPT_LIST_META_CONTEXT;
        let matches = |q: &str| q == BASE_ALLOCATION || (listing && (q == "base:" || q.is_empty()));
        let chosen = (listing && queries.is_empty()) || queries.iter().any(|q| matches(q));
        if option == OPT_SET_META_CONTEXT {
            self.allocation = chosen;
        }
        if chosen {
            let mut d = CONTEXT_ID.to_be_bytes().to_vec();
            d.extend_from_slice(BASE_ALLOCATION.as_bytes());
            self.option_reply(option, REP_META_CONTEXT, &d)?;
        }
        self.option_reply(option, REP_ACK, &[])
    }

    fn request(&mut self) -> Result<Option<Request>> {
        let mut b = [0u8; 28];
        match self.stream.read_exact(&mut b) {
            Ok(()) => {}
            // A client that goes away between requests has simply left.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(broken(format!("reading: {e}"))),
        }
        let mut f = Fields(&b);
        let magic = f.u32()?;
        if magic != REQUEST_MAGIC {
            return Err(broken(format!("a request with magic {magic:#x}")));
        }
        let flags = f.u16()?;
        let kind = f.u16()?;
        let mut h = [0u8; 8];
        h.copy_from_slice(f.take(8)?);
        let mut o = [0u8; 8];
        o.copy_from_slice(f.take(8)?);
        let length = f.u32()?;
        Ok(Some(Request {
            flags,
            kind,
            handle: u64::from_be_bytes(h),
            offset: u64::from_be_bytes(o),
            length,
        }))
    }

    /// Serves requests on `export` until the client disconnects.
    fn transmission(&mut self, export: &Export) -> Result<()> {
        let capacity = export.disk.capacity();
        let mut buf = Vec::new();
        while let Some(r) = self.request()? {
            let inside = r
                .offset
                .checked_add(u64::from(r.length))
                .is_some_and(|end| end <= capacity);
            match r.kind {
                CMD_DISC => return Ok(()),
                CMD_READ if r.length > MAX_REQUEST => self.error(&r, EOVERFLOW, "too large")?,
                CMD_READ if !inside => self.error(&r, EINVAL, "past the end of the disk")?,
                CMD_READ => {
                    buf.resize(r.length as usize, 0);
                    match export.disk.read_exact_at(r.offset, &mut buf) {
                        Ok(()) => self.data(&r, &buf)?,
                        Err(_) => self.error(&r, EIO, "the disk could not be read")?,
                    }
                }
                CMD_WRITE => {
                    // The client sent data with it: read and dropped, or the client is dropped.
                    if r.length > MAX_REQUEST {
                        return Err(broken("a write larger than the maximum"));
                    }
                    buf.resize(r.length as usize, 0);
                    self.read_exact(&mut buf)?;
                    self.error(&r, EPERM, "the export is read-only")?
                }
                CMD_TRIM | CMD_WRITE_ZEROES => self.error(&r, EPERM, "the export is read-only")?,
                CMD_FLUSH => self.done(&r)?,
                CMD_CACHE if inside => self.done(&r)?,
                CMD_BLOCK_STATUS if self.allocation && inside && r.length > 0 => {
                    self.block_status(export, &r)?
                }
                _ => self.error(&r, EINVAL, "not a request this export answers")?,
            }
        }
        Ok(())
    }

    fn header(&self, r: &Request, kind: u16, flags: u16, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(20 + len);
        out.extend_from_slice(&STRUCTURED_REPLY_MAGIC.to_be_bytes());
        out.extend_from_slice(&flags.to_be_bytes());
        out.extend_from_slice(&kind.to_be_bytes());
        out.extend_from_slice(&r.handle.to_be_bytes());
        out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
        out
    }

    fn simple(&mut self, r: &Request, error: u32) -> Result<()> {
        let mut out = Vec::with_capacity(16);
        out.extend_from_slice(&SIMPLE_REPLY_MAGIC.to_be_bytes());
        out.extend_from_slice(&error.to_be_bytes());
        out.extend_from_slice(&r.handle.to_be_bytes());
        self.send(&out)
    }

    /// Success without data.
    fn done(&mut self, r: &Request) -> Result<()> {
        if self.structured {
            let out = self.header(r, 0, REPLY_FLAG_DONE, 0);
            self.send(&out)
        } else {
            self.simple(r, 0)
        }
    }

    fn error(&mut self, r: &Request, errno: u32, message: &str) -> Result<()> {
        if !self.structured {
            return self.simple(r, errno);
        }
        let mut payload = errno.to_be_bytes().to_vec();
        payload.extend_from_slice(&(message.len() as u16).to_be_bytes());
        payload.extend_from_slice(message.as_bytes());
        let mut out = self.header(r, REPLY_TYPE_ERROR, REPLY_FLAG_DONE, payload.len());
        out.extend_from_slice(&payload);
        self.send(&out)
    }

    fn data(&mut self, r: &Request, data: &[u8]) -> Result<()> {
        if self.structured {
            let mut out = self.header(r, REPLY_TYPE_OFFSET_DATA, REPLY_FLAG_DONE, 8 + data.len());
            out.extend_from_slice(&r.offset.to_be_bytes());
            self.send(&out)?;
        } else {
            self.simple(r, 0)?;
        }
        self.send(data)
    }

    /// `base:allocation` of the requested range: data, zeroed grains (zero), and ranges no
    /// link holds (hole and zero), at most [`MAX_DESCRIPTORS`] of them (one with `REQ_ONE`).
    fn block_status(&mut self, export: &Export, r: &Request) -> Result<()> {
        let runs = match export.disk.map(r.offset, u64::from(r.length)) {
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
        self.send(&out)
    }
}
