//! The NBD protocol of one client: the fixed newstyle handshake, then transmission. Constants
//! and layouts from the protocol document (`doc/proto.md` of NetworkBlockDevice/nbd).

use std::io::{Read, Write};

use super::io::{broken, Io};
use super::serve::{self, Session, CONTEXT_ID};
use super::{Export, Server, MAX_REQUEST};
use crate::error::Result;

const NBDMAGIC: u64 = 0x4e42_444d_4147_4943;
const IHAVEOPT: u64 = 0x4948_4156_454f_5054;
const OPTION_REPLY_MAGIC: u64 = 0x0003_e889_0455_65a9;

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
const REP_ERR_TLS_REQD: u32 = (1 << 31) | 5;
const REP_ERR_UNKNOWN: u32 = (1 << 31) | 6;

// Info types.
const INFO_EXPORT: u16 = 0;
const INFO_NAME: u16 = 1;
const INFO_BLOCK_SIZE: u16 = 3;

// Transmission flags: read-only, flush accepted, many connections see the same data, cache.
const TRANSMISSION_FLAGS: u16 = 1 | 2 | 4 | (1 << 7) | (1 << 8) | (1 << 10);

const BASE_ALLOCATION: &str = "base:allocation";

/// Longest option payload read (a name is at most 4096 bytes; a few queries more).
const MAX_OPTION: u32 = 64 << 10;

/// Most options one client may send before it chooses an export.
const MAX_OPTIONS: usize = 1024;

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
pub(crate) struct Connection<'a, 's> {
    server: &'a Server,
    stream: Io<'s>,
    no_zeroes: bool,
    structured: bool,
    allocation: bool,
}

impl<'a, 's> Connection<'a, 's> {
    pub(crate) fn new(server: &'a Server, stream: Io<'s>) -> Self {
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
        let session = Session {
            export,
            structured: self.structured,
            allocation: self.allocation,
            budget: &self.server.budget,
        };
        serve::transmission(session, &mut self.stream, self.server.threads)
    }

    /// Whether the server requires TLS and the client has not started it yet.
    fn tls_missing(&self) -> bool {
        self.server.tls_required() && !self.stream.is_tls()
    }

    /// `NBD_OPT_STARTTLS`: acknowledged, then the TLS handshake on the socket; the options
    /// negotiated before it are forgotten (the protocol document's "TLS support").
    fn start_tls(&mut self, option: u32, data: &[u8]) -> Result<()> {
        if !data.is_empty() {
            return self.option_reply(option, REP_ERR_INVALID, b"STARTTLS takes no data");
        }
        if self.stream.is_tls() {
            return self.option_reply(option, REP_ERR_INVALID, b"TLS is already started");
        }
        #[cfg(feature = "nbd-tls")]
        if let (Some(tls), super::io::Io::Socket(_)) = (&self.server.tls, &self.stream) {
            self.option_reply(option, REP_ACK, &[])?;
            let super::io::Io::Socket(sock) = std::mem::replace(&mut self.stream, Io::Gone) else {
                return Err(broken("the socket went away"));
            };
            let stream =
                super::tls::accept(tls, sock).map_err(|e| broken(format!("TLS handshake: {e}")))?;
            self.stream = Io::Tls(Box::new(stream));
            self.structured = false;
            self.allocation = false;
            return Ok(());
        }
        self.option_reply(option, REP_ERR_POLICY, b"TLS is not offered by this server")
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
        if self.tls_missing() {
            return match option {
                // No reply can refuse it: the connection is closed.
                OPT_EXPORT_NAME => Err(broken("NBD_OPT_EXPORT_NAME before TLS")),
                OPT_ABORT => {
                    let _ = self.option_reply(option, REP_ACK, &[]);
                    Ok(Some(None))
                }
                OPT_STARTTLS => self.start_tls(option, data).map(|()| None),
                _ => {
                    self.option_reply(option, REP_ERR_TLS_REQD, b"TLS is required")?;
                    Ok(None)
                }
            };
        }
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
            OPT_STARTTLS => self.start_tls(option, data).map(|()| None),
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
}
