//! Disks read where they are: over HTTP and HTTPS with byte ranges (an ESXi host's
//! `/folder` datastore URLs included), behind the same [`Files`] abstraction as local files,
//! so every reader, `check`, `info` and the copy engine work on them unchanged.
//!
//! [`RemoteFiles::new`] takes the URL of a disk (a descriptor, a sparse, stream-optimized or
//! flat file) and gives back the files and the name to open; the names a descriptor gives for
//! its extents and parents resolve relative to that URL, keeping its query (ESXi's `dcPath` and
//! `dsName`), under the same path policy as local files. The name shown in errors is the URL
//! without its credentials and query.
//!
//! Each object is probed first (`Range: bytes=0-0`): a 206 answer means ranges work, whatever
//! `Accept-Ranges` says. Reads become ranged GETs, at most [`RemoteOptions::connections`] in
//! flight, retried with backoff on what may pass (a dropped connection, a short body, 5xx, 429,
//! a timeout); 401, 403, 404 and 416 fail at once. A server without ranges can still be read
//! forward in one pass ([`RemoteFiles::stream`]), which suits stream-optimized disks.
//!
//! ```no_run
//! use vmdk::remote::{Credentials, RemoteFiles, RemoteOptions};
//!
//! let url = "https://esx.example/folder/vm/vm.vmdk?dcPath=ha-datacenter&dsName=datastore1";
//! let options = RemoteOptions::new()
//!     .connections(8)
//!     .credentials(Credentials::basic("root", "secret"));
//! let (files, name) = RemoteFiles::new(url, &options)?;
//! let disk = vmdk::OpenOptions::new().files(files.clone()).open(&name)?;
//! println!("{} bytes; {:?}", disk.capacity(), files.stats());
//! # Ok::<(), vmdk::Error>(())
//! ```

mod auth;
mod client;
mod object;
mod prefetch;
mod s3;
mod tls;
mod upload;

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use auth::Credentials;
pub use client::FetchStats;
pub use s3::S3Config;
pub use tls::Tls;
pub use upload::Upload;

use crate::error::{Error, ErrorKind, Result};
use crate::io::{Backing, Files};
use client::Client;
use object::RemoteObject;

/// How remote sources are read.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RemoteOptions {
    /// Requests in flight at once per source (default 4).
    pub(crate) connections: usize,
    /// Times a failed request that may pass is sent again (default 5).
    pub(crate) retries: u32,
    /// First wait before a retry, doubled each time (default 250 ms, at most 10 s).
    pub(crate) backoff: Duration,
    /// Time allowed to connect (default 15 s).
    pub(crate) connect_timeout: Duration,
    /// Time allowed without a byte from the server (default 60 s).
    pub(crate) read_timeout: Duration,
    /// How the server's certificate is checked (default: the system's roots).
    pub(crate) tls: Tls,
    /// Credentials sent with every request (default none; those written in the URL are used
    /// when none are given).
    pub(crate) credentials: Credentials,
    /// Requests in flight at once to one host, across every source of this process on it
    /// (default 8).
    pub(crate) per_host: usize,
    /// Where S3 is and the credentials that sign its requests (default: from the environment,
    /// as the AWS tools find them, when an `s3://` URL is opened).
    pub(crate) s3: Option<S3Config>,
    /// Chunks of 1 MiB each object keeps; 0 (the default) keeps eight per connection and
    /// eight more, so workers reading 8 MiB windows at once do not evict each other's chunks.
    pub(crate) cache_chunks: usize,
    /// `HOST:PORT` requests connect to `HOST2:PORT2` instead (curl's `--connect-to`).
    pub(crate) connect_to: Vec<(String, String)>,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        Self {
            connections: 4,
            retries: 5,
            backoff: Duration::from_millis(250),
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
            tls: Tls::Verify,
            credentials: Credentials::default(),
            s3: None,
            per_host: 8,
            cache_chunks: 0,
            connect_to: Vec::new(),
        }
    }
}

impl RemoteOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requests in flight at once (at least 1).
    pub fn connections(mut self, n: usize) -> Self {
        self.connections = n.max(1);
        self
    }

    /// Retries of a request that failed in a way that may pass.
    pub fn retries(mut self, n: u32) -> Self {
        self.retries = n;
        self
    }

    /// First wait before a retry.
    pub fn backoff(mut self, wait: Duration) -> Self {
        self.backoff = wait;
        self
    }

    /// Time allowed to connect.
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }

    /// Time allowed without a byte from the server.
    pub fn read_timeout(mut self, t: Duration) -> Self {
        self.read_timeout = t;
        self
    }

    /// How certificates are checked.
    pub fn tls(mut self, tls: Tls) -> Self {
        self.tls = tls;
        self
    }

    /// Credentials sent with every request.
    pub fn credentials(mut self, c: Credentials) -> Self {
        self.credentials = c;
        self
    }

    /// Requests in flight at once to one host across every source of the process.
    pub fn per_host(mut self, n: usize) -> Self {
        self.per_host = n.max(1);
        self
    }

    /// Where S3 is and who signs its requests.
    pub fn s3(mut self, config: S3Config) -> Self {
        self.s3 = Some(config);
        self
    }

    /// Connects to `to` (`HOST2:PORT2`) for every request to `from` (`HOST:PORT`, the port
    /// the URL gives or its scheme's), as curl's `--connect-to` does: the URL, the `Host`
    /// header, the TLS server name and the name the certificate must hold stay `from`'s. For a
    /// host whose name does not resolve here (an ESXi host known by name to vCenter only, an
    /// S3 bucket's virtual host reached through a tunnel).
    pub fn connect_to(mut self, from: impl Into<String>, to: impl Into<String>) -> Self {
        self.connect_to.push((from.into(), to.into()));
        self
    }
}

/// Whether `name` is a URL this module reads (`http://`, `https://` or `s3://`).
pub fn is_url(name: &str) -> bool {
    let lower = name.get(..8).unwrap_or(name).to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://") || lower.starts_with("s3://")
}

/// Objects opened, by URL: each with its name.
type Opened = HashMap<String, (PathBuf, Arc<RemoteObject>)>;

/// The files of one remote source: the objects under one scheme, host and port, read through
/// one client (one connection cap, one set of counters).
#[derive(Clone, Debug)]
pub struct RemoteFiles {
    /// `scheme://host[:port]` (`s3://bucket`), as names start.
    origin: String,
    /// What `origin` stands for in request URLs (the same for HTTP; the bucket's URL for S3).
    base: String,
    /// Names are S3 keys: every reserved character encoded.
    s3: bool,
    /// `?query`, or empty: appended to every object's URL.
    query: String,
    client: Arc<Client>,
    cache_chunks: usize,
    connections: usize,
    /// Objects opened so far, by URL: a file opened again (a parent checked, then read) shares
    /// its probe and its chunks.
    opened: Arc<Mutex<Opened>>,
}

impl RemoteFiles {
    /// The files of the source of `url`, and the name to open (the URL without its
    /// credentials and query: what errors show). Credentials in the URL are used when
    /// `options` gives none; they are never shown.
    pub fn new(url: &str, options: &RemoteOptions) -> Result<(Self, PathBuf)> {
        let bad = |why: String| Error::new(None, "URL", None, ErrorKind::InvalidInput(why));
        let parsed = url::Url::parse(url).map_err(|e| bad(format!("not a URL ({e})")))?;
        let host = parsed.host_str().ok_or_else(|| bad("no host".into()))?;
        let host_key = format!("{host}:{}", parsed.port_or_known_default().unwrap_or(0));
        let (origin, base, s3, signer) = match parsed.scheme() {
            "http" | "https" => {
                let origin = match parsed.port() {
                    Some(p) => format!("{}://{host}:{p}", parsed.scheme()),
                    None => format!("{}://{host}", parsed.scheme()),
                };
                (origin.clone(), origin, false, None)
            }
            "s3" => {
                let config = match &options.s3 {
                    Some(c) => c.clone(),
                    None => S3Config::from_environment()?,
                };
                let base = config.bucket_url(host);
                (format!("s3://{host}"), base, true, Some(config))
            }
            other => {
                return Err(bad(format!(
                    "scheme {other:?} is not read (http, https or s3)"
                )))
            }
        };
        let in_url = match parsed.username() {
            "" => Credentials::default(),
            user => {
                let decode = |s: &str| percent_decode(s);
                Credentials::basic(decode(user), decode(parsed.password().unwrap_or("")))
            }
        };
        let credentials = options.credentials.clone().or(in_url);
        let query = parsed.query().map(|q| format!("?{q}")).unwrap_or_default();
        // An S3 key is shown as written (decoded); an HTTP path as the user encoded it.
        let path = match s3 {
            true => percent_decode(parsed.path()),
            false => parsed.path().to_string(),
        };
        let files = Self {
            origin: origin.clone(),
            base,
            s3,
            query,
            client: Arc::new(
                Client::new(options, credentials, signer)?
                    .with_host(client::host_gate(&host_key, options.per_host.max(1))),
            ),
            cache_chunks: match options.cache_chunks {
                0 => options
                    .connections
                    .max(1)
                    .saturating_mul(8)
                    .saturating_add(8),
                n => n,
            },
            connections: options.connections.max(1),
            opened: Arc::default(),
        };
        Ok((files, PathBuf::from(format!("{origin}{path}"))))
    }

    /// Each object opened so far: its name (the URL without credentials and query), length
    /// and validator (`ETag`, else `Last-Modified`), sorted by name. What a checkpoint keeps to
    /// tell whether the source changed between two runs.
    pub fn identity(&self) -> Vec<(PathBuf, u64, Option<String>)> {
        let opened = self.opened.lock().unwrap_or_else(|p| p.into_inner());
        let mut all: Vec<_> = opened
            .values()
            .map(|(name, o)| (name.clone(), o.len, o.validator.clone()))
            .collect();
        all.sort();
        all
    }

    /// What the reads so far fetched.
    pub fn stats(&self) -> FetchStats {
        self.client.stats()
    }

    /// The URL of a name under this source (with the query), or why it is not one.
    fn url_of(&self, path: &Path) -> Result<String> {
        let name = path.to_str().unwrap_or("");
        let rest = name
            .strip_prefix(&self.origin)
            .filter(|r| r.starts_with('/'))
            .ok_or_else(|| {
                Error::file(
                    path,
                    ErrorKind::PathOutside {
                        name: name.into(),
                        why: "not on the server the disk was read from",
                    },
                )
            })?;
        let rest = match self.s3 {
            true => s3::uri_encode(rest, true),
            false => encode_path(rest),
        };
        Ok(format!("{}{rest}{}", self.base, self.query))
    }

    /// A new object at `path` (an S3 key), written forward and stored when
    /// [`Upload::finish`] succeeds: a multipart upload, aborted if dropped unfinished, so a
    /// failed or killed write leaves no object (S3's lifecycle rules remove the parts of a
    /// killed one; a failed one is aborted at once).
    pub fn upload(&self, path: &Path) -> Result<Upload> {
        if !self.s3 {
            return Err(Error::file(
                path,
                ErrorKind::InvalidInput("only s3:// URLs are written".into()),
            ));
        }
        let url = self.url_of(path)?;
        Upload::start(self.client.clone(), url, path.to_path_buf())
    }

    /// Whether the server answers byte ranges for `path`, and the object's length when it
    /// says.
    pub fn probe(&self, path: &Path) -> Result<(bool, Option<u64>)> {
        let url = self.url_of(path)?;
        let p = self
            .client
            .probe(&url)
            .map_err(|e| Error::file(path, ErrorKind::Io(e)))?;
        Ok((p.ranges, p.len))
    }

    /// The object at `path` read forward from its start: with byte ranges, blocks of 8 MiB
    /// are fetched ahead of the reader over every connection; without, one GET. For what is
    /// read in one pass: an OVA imported while its disks are digested, a manifest digest, a
    /// stream-optimized disk through [`crate::StreamReader`].
    pub fn reader(&self, path: &Path) -> Result<Box<dyn Read + Send>> {
        let url = self.url_of(path)?;
        let probe = self
            .client
            .probe(&url)
            .map_err(|e| Error::file(path, ErrorKind::Io(e)))?;
        match (probe.ranges, probe.len) {
            (true, Some(len)) => Ok(Box::new(prefetch::Prefetch::new(
                self.client.clone(),
                url,
                (0, len),
                probe.validator,
                self.connections,
            ))),
            _ => self.stream(path),
        }
    }

    /// The bytes `start..end` of the object at `path` read forward, fetched ahead as
    /// [`RemoteFiles::reader`] does: a member of an OVA read in place, what is left of a disk
    /// an interrupted import had read part of. The server must serve byte ranges, and the
    /// object must be the one opened before ([`crate::Files::open`]: same length and
    /// validator).
    pub fn reader_range(&self, path: &Path, start: u64, end: u64) -> Result<Box<dyn Read + Send>> {
        let backing = self.open(path)?;
        let len = backing.len();
        if start > end || end > len {
            return Err(Error::file(
                path,
                ErrorKind::InvalidInput(format!(
                    "bytes {start}..{end} lie outside the object ({len} bytes)"
                )),
            ));
        }
        let url = self.url_of(path)?;
        let validator = self.validator_of(&url);
        Ok(Box::new(prefetch::Prefetch::new(
            self.client.clone(),
            url,
            (start, end),
            validator,
            self.connections,
        )))
    }

    /// The validator of the object at `url`, once opened.
    fn validator_of(&self, url: &str) -> Option<String> {
        let opened = self.opened.lock().unwrap_or_else(|p| p.into_inner());
        opened.get(url).and_then(|(_, o)| o.validator.clone())
    }

    /// The whole object at `path` read forward with one GET: for servers without ranges and
    /// disks read in one pass (a stream-optimized disk through [`crate::StreamReader`]).
    pub fn stream(&self, path: &Path) -> Result<Box<dyn Read + Send>> {
        let url = self.url_of(path)?;
        self.client
            .stream(&url)
            .map_err(|e| Error::file(path, ErrorKind::Io(e)))
    }
}

impl Files for RemoteFiles {
    fn open(&self, path: &Path) -> Result<Backing> {
        let url = self.url_of(path)?;
        let mut opened = self.opened.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, object)) = opened.get(&url) {
            return Ok(Backing::new(path, Shared(object.clone()), object.len));
        }
        let io_err = |e| Error::file(path, ErrorKind::Io(e));
        let probe = self.client.probe(&url).map_err(io_err)?;
        if !probe.ranges {
            return Err(io_err(std::io::Error::new(
                std::io::ErrorKind::Unsupported,
                "the server does not serve byte ranges (a request for bytes 0-0 was answered \
                 with the whole object); only a stream-optimized disk can be read, in one pass",
            )));
        }
        let len = probe.len.unwrap_or(0);
        let object = Arc::new(RemoteObject::new(
            url.clone(),
            len,
            probe.validator,
            self.client.clone(),
            self.cache_chunks,
        ));
        opened.insert(url, (path.to_path_buf(), object.clone()));
        Ok(Backing::new(path, Shared(object), len))
    }
}

/// An object shared by every [`Backing`] of its URL.
struct Shared(Arc<RemoteObject>);

impl positioned_io::ReadAt for Shared {
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read_at(pos, buf)
    }
}

/// Percent-encodes what a name from a descriptor may hold that a URL path may not (spaces,
/// quotes, non-ASCII); `%` is left alone, as the URL the user gave is already encoded.
fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~!$&'()*+,;=:@%".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes (credentials written in a URL).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b, hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_under_the_url_keeping_its_query() {
        let url = "https://root:p%40ss@esx.example:8443/folder/My%20VM/vm.vmdk?dcPath=ha-datacenter&dsName=ds1";
        let (files, name) = RemoteFiles::new(url, &RemoteOptions::new()).unwrap();
        assert_eq!(
            name,
            Path::new("https://esx.example:8443/folder/My%20VM/vm.vmdk")
        );
        assert_eq!(files.client.stats(), FetchStats::default());
        let extent = crate::io::resolve_name(&name, "vm flat.vmdk", false).unwrap();
        assert_eq!(
            files.url_of(&extent).unwrap(),
            "https://esx.example:8443/folder/My%20VM/vm%20flat.vmdk?dcPath=ha-datacenter&dsName=ds1"
        );
        let shown = format!("{files:?} {name:?}");
        assert!(
            !shown.contains("p@ss") && !shown.contains("p%40ss"),
            "{shown}"
        );
        assert!(shown.contains("root"), "{shown}");
        assert!(crate::io::resolve_name(&name, "../other/x.vmdk", false).is_err());
        let elsewhere = files
            .url_of(Path::new("https://other.example/x.vmdk"))
            .unwrap_err();
        assert!(
            elsewhere.to_string().contains("not on the server"),
            "{elsewhere}"
        );
    }

    #[test]
    fn only_http_urls() {
        assert!(is_url("https://h/x") && is_url("HTTP://h/x") && !is_url("disk.vmdk"));
        assert!(is_url("s3://bucket/key"));
        for bad in ["ftp://h/x", "https://"] {
            assert!(
                RemoteFiles::new(bad, &RemoteOptions::new()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("p%40ss%2"), "p@ss%2");
        assert_eq!(encode_path("/a b/é\"x"), "/a%20b/%C3%A9%22x");
    }
}
