//! The HTTP client behind every remote object of a source: one connection pool, at most
//! `connections` requests in flight, each ranged GET retried with backoff on what may pass
//! (a dropped connection, a short body, 5xx, 429, a timeout), and counters of what was fetched.

use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use sha2::Digest as _;

use super::{Credentials, RemoteOptions, S3Config};
use crate::error::Result;

/// What a source's reads cost: bytes of response bodies, requests sent, retries, and the most
/// connections in use at once.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct FetchStats {
    /// Bytes of response bodies read.
    pub bytes_fetched: u64,
    /// Requests sent (retries included).
    pub requests: u64,
    /// Requests sent again after a failure that may pass.
    pub retries: u64,
    /// The most requests in flight at once.
    pub connections: u64,
}

/// How a probe of an object was answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Probe {
    /// The object's length, when the server says it.
    pub len: Option<u64>,
    /// Whether a `Range` request was answered 206 with the range asked.
    pub ranges: bool,
    /// `ETag` or `Last-Modified`, which must stay the same while the object is read.
    pub validator: Option<String>,
}

/// A failure of one attempt: whether trying again may help, and what to say.
pub(crate) struct Failure {
    retry: bool,
    error: io::Error,
    /// `Retry-After`, in seconds, when the server said.
    after: Option<u64>,
}

impl Failure {
    pub(crate) fn fatal(kind: io::ErrorKind, message: String) -> Self {
        Self {
            retry: false,
            error: io::Error::new(kind, message),
            after: None,
        }
    }

    pub(crate) fn transient(message: String) -> Self {
        Self {
            retry: true,
            error: io::Error::other(message),
            after: None,
        }
    }
}

/// The shared client of one source.
pub(crate) struct Client {
    agent: ureq::Agent,
    credentials: Credentials,
    /// Signs every request (S3).
    signer: Option<S3Config>,
    retries: u32,
    backoff: Duration,
    max: usize,
    /// This source's cap.
    own: Gate,
    /// The host's cap, shared with the other sources on it.
    host: Option<Arc<Gate>>,
    bytes: AtomicU64,
    requests: AtomicU64,
    retried: AtomicU64,
    peak: AtomicU64,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("connections", &self.max)
            .field("retries", &self.retries)
            .field("credentials", &self.credentials)
            .finish()
    }
}

/// A cap on requests in flight: per client, and per host across every client of the process.
#[derive(Debug)]
pub(crate) struct Gate {
    max: usize,
    in_flight: Mutex<usize>,
    freed: Condvar,
}

impl Gate {
    fn new(max: usize) -> Self {
        Self {
            max: max.max(1),
            in_flight: Mutex::new(0),
            freed: Condvar::new(),
        }
    }

    /// Waits for a slot; returns how many are in flight with it.
    fn take(&self) -> usize {
        let mut n = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        while *n >= self.max {
            n = self.freed.wait(n).unwrap_or_else(|p| p.into_inner());
        }
        *n += 1;
        *n
    }

    fn give(&self) {
        if let Ok(mut n) = self.in_flight.lock() {
            *n = n.saturating_sub(1);
        }
        self.freed.notify_one();
    }
}

/// The per-host gates of this process, by `host:port`: every source on one host shares one.
static HOSTS: Mutex<Vec<(String, Arc<Gate>)>> = Mutex::new(Vec::new());

/// The gate of `host` (created with `max` slots the first time).
pub(crate) fn host_gate(host: &str, max: usize) -> Arc<Gate> {
    let mut hosts = HOSTS.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, g)) = hosts.iter().find(|(h, _)| h == host) {
        return g.clone();
    }
    let g = Arc::new(Gate::new(max));
    hosts.push((host.to_string(), g.clone()));
    g
}

/// A slot of the connection caps, given back when dropped.
struct Permit<'a>(&'a Client);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if let Some(h) = &self.0.host {
            h.give();
        }
        self.0.own.give();
    }
}

impl Client {
    pub(crate) fn new(
        options: &RemoteOptions,
        credentials: Credentials,
        signer: Option<S3Config>,
    ) -> Result<Self> {
        let mut agent = ureq::AgentBuilder::new()
            .tls_config(options.tls.client_config()?)
            .timeout_connect(options.connect_timeout)
            .timeout_read(options.read_timeout)
            .max_idle_connections_per_host(options.connections.max(1))
            .user_agent(concat!("vmdk-rs/", env!("CARGO_PKG_VERSION")));
        if !options.connect_to.is_empty() {
            let map = options.connect_to.clone();
            agent = agent.resolver(move |netloc: &str| {
                let to = map
                    .iter()
                    .find(|(from, _)| from.eq_ignore_ascii_case(netloc))
                    .map_or(netloc, |(_, to)| to.as_str());
                std::net::ToSocketAddrs::to_socket_addrs(to).map(Iterator::collect)
            });
        }
        let agent = agent.build();
        Ok(Self {
            agent,
            credentials,
            signer,
            retries: options.retries,
            backoff: options.backoff,
            max: options.connections.max(1),
            own: Gate::new(options.connections),
            host: None,
            bytes: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            peak: AtomicU64::new(0),
        })
    }

    pub(crate) fn stats(&self) -> FetchStats {
        FetchStats {
            bytes_fetched: self.bytes.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retried.load(Ordering::Relaxed),
            connections: self.peak.load(Ordering::Relaxed),
        }
    }

    /// Shares the cap of `gate` (the host's) with the other sources on the host.
    pub(crate) fn with_host(mut self, gate: Arc<Gate>) -> Self {
        self.host = Some(gate);
        self
    }

    fn permit(&self) -> Permit<'_> {
        let n = self.own.take();
        if let Some(h) = &self.host {
            h.take();
        }
        self.peak.fetch_max(n as u64, Ordering::Relaxed);
        Permit(self)
    }

    /// A GET of `url`, with `range` (`first..=last`) when given.
    fn get(
        &self,
        url: &str,
        range: Option<(u64, u64)>,
    ) -> std::result::Result<ureq::Response, Failure> {
        let range = range.map(|(first, last)| format!("bytes={first}-{last}"));
        self.send("GET", url, range.as_deref(), None)
    }

    /// A request: `range` as its `Range` header, `body` sent when given; signed for S3
    /// (the body's digest in the signature) or with the credentials.
    pub(crate) fn send(
        &self,
        method: &str,
        url: &str,
        range: Option<&str>,
        body: Option<&[u8]>,
    ) -> std::result::Result<ureq::Response, Failure> {
        let mut req = self.agent.request(method, url);
        if let Some(r) = range {
            req = req.set("Range", r);
        }
        if let Some(signer) = &self.signer {
            let payload = match body {
                Some(b) if !b.is_empty() => hex(&sha2::Sha256::digest(b)),
                _ => super::s3::EMPTY_SHA256.to_string(),
            };
            let extra: Vec<(&str, &str)> = range.map(|r| ("Range", r)).into_iter().collect();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let headers = signer
                .sign(method, url, &extra, &payload, now)
                .map_err(|e| Failure::fatal(io::ErrorKind::InvalidInput, e.to_string()))?;
            for (k, v) in &headers {
                req = req.set(k, v);
            }
        } else if let Some(a) = self.credentials.authorization() {
            req = req.set("Authorization", &a);
        }
        if let Some(c) = self.credentials.cookie_header() {
            req = req.set("Cookie", c);
        }
        self.requests.fetch_add(1, Ordering::Relaxed);
        let sent = match body {
            Some(b) => req.send_bytes(b),
            None => req.call(),
        };
        match sent {
            Ok(r) => Ok(r),
            Err(ureq::Error::Status(code, r)) => Err(status_failure(code, r)),
            Err(ureq::Error::Transport(t)) => Err(transport_failure(&t)),
        }
    }

    /// Requests this client has in flight at most (its `connections`).
    pub(crate) fn connections(&self) -> usize {
        self.max
    }

    /// [`Client::send`] with retries, holding a connection slot; the answer's body read
    /// whole (at most 1 MiB: S3's XML answers).
    pub(crate) fn call(
        &self,
        method: &str,
        url: &str,
        body: Option<&[u8]>,
    ) -> io::Result<(Option<String>, String)> {
        self.with_retries(|| {
            let _permit = self.permit();
            let r = self.send(method, url, None, body)?;
            let etag = r.header("ETag").map(str::to_string);
            let mut text = String::new();
            r.into_reader()
                .take(1 << 20)
                .read_to_string(&mut text)
                .map_err(|e| Failure::transient(format!("reading the answer: {e}")))?;
            Ok((etag, text))
        })
    }

    /// Runs `attempt` until it succeeds, fails for good, or the retries are spent.
    fn with_retries<T>(
        &self,
        mut attempt: impl FnMut() -> std::result::Result<T, Failure>,
    ) -> io::Result<T> {
        let mut tries = 0u32;
        loop {
            let failure = match attempt() {
                Ok(v) => return Ok(v),
                Err(f) => f,
            };
            if !failure.retry || tries >= self.retries {
                let error = failure.error;
                return Err(match tries {
                    0 => error,
                    n => io::Error::new(error.kind(), format!("{error} (after {n} retries)")),
                });
            }
            let wait = match failure.after {
                Some(s) => Duration::from_secs(s.min(30)),
                None => self
                    .backoff
                    .saturating_mul(1 << tries.min(6))
                    .min(Duration::from_secs(10)),
            };
            std::thread::sleep(wait);
            tries += 1;
            self.retried.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Asks for the first byte of `url`: whether ranges work, the length, the validator.
    pub(crate) fn probe(&self, url: &str) -> io::Result<Probe> {
        self.with_retries(|| {
            let _permit = self.permit();
            let r = self.get(url, Some((0, 0)))?;
            let validator = validator(&r);
            let probe = match r.status() {
                206 => {
                    let (start, len) = content_range(&r).ok_or_else(|| {
                        Failure::fatal(
                            io::ErrorKind::InvalidData,
                            "a 206 answer without a Content-Range with the length".into(),
                        )
                    })?;
                    if start != 0 {
                        return Err(Failure::fatal(
                            io::ErrorKind::InvalidData,
                            format!("asked for byte 0, the server sent bytes from {start}"),
                        ));
                    }
                    Probe {
                        len: Some(len),
                        ranges: true,
                        validator,
                    }
                }
                _ => Probe {
                    len: r
                        .header("Content-Length")
                        .and_then(|v| v.trim().parse().ok()),
                    ranges: false,
                    validator,
                },
            };
            // A 206 body is one byte; a 200 body is the whole object: not read, the connection
            // is dropped.
            if probe.ranges {
                let mut sink = Vec::new();
                let _ = r.into_reader().take(16).read_to_end(&mut sink);
                self.bytes.fetch_add(sink.len() as u64, Ordering::Relaxed);
            }
            Ok(probe)
        })
    }

    /// Fills `dst` with the bytes of `url` from `start`, with ranged GETs retried as needed;
    /// `validator` must match the probe's.
    pub(crate) fn fetch(
        &self,
        url: &str,
        start: u64,
        dst: &mut [u8],
        validator: Option<&str>,
    ) -> io::Result<()> {
        let mut done = 0usize;
        self.with_retries(|| {
            // What earlier attempts delivered is kept: a retry asks only for the rest.
            let rest = dst.get_mut(done..).unwrap_or_default();
            if rest.is_empty() {
                return Ok(());
            }
            let first = start + done as u64;
            let last = first + rest.len() as u64 - 1;
            let _permit = self.permit();
            let r = self.get(url, Some((first, last)))?;
            if r.status() != 206 {
                return Err(Failure::fatal(
                    io::ErrorKind::Unsupported,
                    format!(
                        "asked for a byte range, the server answered {} with the whole object",
                        r.status()
                    ),
                ));
            }
            match content_range(&r) {
                Some((s, _)) if s == first => {}
                other => {
                    return Err(Failure::fatal(
                        io::ErrorKind::InvalidData,
                        format!(
                            "asked for bytes from {first}, the server's Content-Range is {other:?}"
                        ),
                    ))
                }
            }
            if let (Some(want), Some(got)) = (validator, validator_of(&r)) {
                if want != got {
                    return Err(Failure::fatal(
                        io::ErrorKind::InvalidData,
                        format!("the object changed while it was read ({want} became {got})"),
                    ));
                }
            }
            let mut body = r.into_reader();
            while done < dst.len() {
                let Some(into) = dst.get_mut(done..) else {
                    break;
                };
                match body.read(into) {
                    Ok(0) => {
                        return Err(Failure::transient(format!(
                            "the body ended after {} of {} bytes",
                            done as u64 + start - first,
                            last + 1 - first
                        )))
                    }
                    Ok(n) => {
                        done += n;
                        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(Failure::transient(format!("reading the body: {e}"))),
                }
            }
            Ok(())
        })
    }

    /// The whole object, as one GET read forward (servers without ranges): only the request
    /// is retried, not the body.
    pub(crate) fn stream(self: &Arc<Self>, url: &str) -> io::Result<Box<dyn Read + Send>> {
        let r = self.with_retries(|| self.get(url, None))?;
        Ok(Box::new(Counted {
            inner: r.into_reader(),
            client: self.clone(),
        }))
    }
}

/// A body reader that counts what it reads into the client's stats.
struct Counted<R> {
    inner: R,
    client: Arc<Client>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.client.bytes.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// The failure a transport error means: a TLS failure (a certificate refused) will not pass;
/// a dropped connection, a timeout or a refused connection may. The text is the transport's
/// own and its causes', never the URL (its query may hold a signature).
fn transport_failure(t: &ureq::Transport) -> Failure {
    let mut text = match t.message() {
        Some(m) => format!("{}: {m}", t.kind()),
        None => t.kind().to_string(),
    };
    let mut tls = None;
    let mut cause = std::error::Error::source(t);
    while let Some(c) = cause {
        let inner = c
            .downcast_ref::<io::Error>()
            .and_then(|e| e.get_ref())
            .and_then(|e| e.downcast_ref::<rustls::Error>());
        if let Some(r) = c.downcast_ref::<rustls::Error>().or(inner) {
            tls = Some(r.to_string());
        }
        let shown = c.to_string();
        if !text.contains(&shown) {
            text = format!("{text}: {shown}");
        }
        cause = c.source();
    }
    match tls {
        Some(why) => Failure::fatal(
            io::ErrorKind::PermissionDenied,
            format!("TLS: {why} (--ca-cert FILE or --tls-thumbprint sha256:HEX trust a server)"),
        ),
        None => Failure::transient(text),
    }
}

/// The failure an error status means: 408, 429 and 5xx may pass; other 4xx do not. S3's
/// error code (`<Code>NoSuchKey</Code>`) is added to the message when the body says it.
fn status_failure(code: u16, r: ureq::Response) -> Failure {
    let mut message = format!("HTTP {code} {}", r.status_text());
    let after: Option<u64> = r.header("Retry-After").and_then(|v| v.trim().parse().ok());
    let kind = match code {
        401 | 403 => io::ErrorKind::PermissionDenied,
        404 | 410 => io::ErrorKind::NotFound,
        _ => io::ErrorKind::Other,
    };
    let mut body = String::new();
    let _ = r.into_reader().take(64 << 10).read_to_string(&mut body);
    let code_in_body = body
        .split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map(|(c, _)| c)
        .filter(|c| !c.is_empty() && c.len() < 64 && c.bytes().all(|b| b.is_ascii_alphanumeric()));
    if let Some(c) = code_in_body {
        message.push_str(&format!(" ({c})"));
    }
    Failure {
        retry: matches!(code, 408 | 429 | 500..=599),
        error: io::Error::new(kind, message),
        after,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `(first byte, object length)` of a `Content-Range: bytes A-B/LEN` header.
fn content_range(r: &ureq::Response) -> Option<(u64, u64)> {
    let v = r.header("Content-Range")?.trim();
    let rest = v.strip_prefix("bytes ")?;
    let (range, len) = rest.split_once('/')?;
    let (a, _) = range.split_once('-')?;
    Some((a.trim().parse().ok()?, len.trim().parse().ok()?))
}

fn validator_of(r: &ureq::Response) -> Option<&str> {
    r.header("ETag").or_else(|| r.header("Last-Modified"))
}

fn validator(r: &ureq::Response) -> Option<String> {
    validator_of(r).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_gate_per_host_caps_every_source_on_it() {
        let a = host_gate("gate-test.example:443", 2);
        let b = host_gate("gate-test.example:443", 99);
        assert!(
            Arc::ptr_eq(&a, &b),
            "the second source shares the first one's gate"
        );
        assert_eq!((a.take(), b.take()), (1, 2));
        // A third slot waits until one is given back.
        let waiter = {
            let g = a.clone();
            std::thread::spawn(move || g.take())
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!waiter.is_finished());
        b.give();
        assert_eq!(waiter.join().unwrap(), 2);
        assert!(!Arc::ptr_eq(&a, &host_gate("other.example:443", 2)));
    }
}
