//! A read-only NBD server: any disk this crate reads (a chain, a disk of a VM folder or of a
//! package, a disk at a URL), decoded, served to NBD clients (qemu-img, nbdcopy, nbdinfo,
//! virt-v2v, CDI), so no converted copy has to be staged first.
//!
//! Protocol: the NBD protocol document (NetworkBlockDevice/nbd, `doc/proto.md`), fixed
//! newstyle handshake with `NBD_OPT_GO`, `INFO`, `LIST`, `EXPORT_NAME`, `ABORT`, structured
//! replies and the `base:allocation` metadata context (so clients skip holes and zeroed grains);
//! transmission commands `READ`, `BLOCK_STATUS`, `CACHE`, `FLUSH`, `DISC` (writes are refused:
//! the export is read-only). Every byte a client sends is untrusted: option payloads are
//! bounded, requests past the end or larger than the maximum are answered with an error, and
//! a client that breaks the protocol is dropped; the others are served on.
//!
//! On a socket, the requests of one connection are answered by several threads at once
//! ([`Server::threads_per_connection`]; replies carry the request's handle, so they may come in
//! any order), with the bytes of replies in flight bounded across the server
//! ([`Server::max_buffered`]). With [`Server::tls`] (feature `nbd-tls`), clients must start TLS
//! (`NBD_OPT_STARTTLS`) before anything else; a TCP address off the loopback is refused
//! without TLS unless [`Server::allow_plaintext`] says otherwise.
//!
//! ```no_run
//! # fn main() -> ovf_disk::Result<()> {
//! use ovf_disk::nbd::{Listen, Server};
//!
//! let disk = vmdk::Disk::open("web-000002.vmdk")?;
//! let server = Server::new(vec![("web".into(), disk)]);
//! server.run(&Listen::Unix("/run/web.sock".into()), &std::sync::atomic::AtomicBool::new(false))?;
//! # Ok(())
//! # }
//! ```

mod io;
mod proto;
mod serve;
#[cfg(feature = "nbd-tls")]
mod tls;

#[cfg(feature = "nbd-tls")]
pub use tls::Tls;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::error::{Error, Result};

/// Where the server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Listen {
    /// A Unix socket at this path (created; a stale socket nobody listens on is replaced).
    Unix(PathBuf),
    /// A TCP address; only this address is bound.
    Tcp(SocketAddr),
}

impl std::str::FromStr for Listen {
    type Err = Error;

    /// `unix:PATH`, `tcp:HOST:PORT`, or `tcp:PORT` (the loopback).
    fn from_str(s: &str) -> Result<Self> {
        let bad = || {
            Error::InvalidInput(format!(
                "{s:?}: expected unix:PATH, tcp:HOST:PORT or tcp:PORT"
            ))
        };
        if let Some(path) = s.strip_prefix("unix:").filter(|p| !p.is_empty()) {
            return Ok(Self::Unix(path.into()));
        }
        let tcp = s.strip_prefix("tcp:").ok_or_else(bad)?;
        if let Ok(port) = tcp.parse::<u16>() {
            return Ok(Self::Tcp(SocketAddr::from(([127, 0, 0, 1], port))));
        }
        use std::net::ToSocketAddrs;
        let addr = tcp
            .to_socket_addrs()
            .map_err(|_| bad())?
            .next()
            .ok_or_else(bad)?;
        Ok(Self::Tcp(addr))
    }
}

/// One disk served under a name.
#[derive(Debug)]
pub(crate) struct Export {
    pub(crate) name: String,
    pub(crate) disk: vmdk::Disk,
}

/// A read-only NBD server of some disks, each an export.
#[derive(Debug)]
pub struct Server {
    exports: Vec<Export>,
    max_connections: usize,
    active: AtomicUsize,
    threads: usize,
    budget: serve::Budget,
    allow_plaintext: bool,
    #[cfg(feature = "nbd-tls")]
    tls: Option<Tls>,
}

/// Largest read or block-status request answered (32 MiB, what qemu's NBD server allows).
pub const MAX_REQUEST: u32 = 32 << 20;

/// How long a reply may wait for the client to read it before the client is dropped (its
/// threads and buffered replies given back).
const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl Server {
    /// A server of `exports` (name, disk). The first is also the default export (the empty
    /// name, which `nbd+unix:///?socket=...` asks for).
    pub fn new(exports: Vec<(String, vmdk::Disk)>) -> Self {
        Self {
            exports: exports
                .into_iter()
                .map(|(name, disk)| Export { name, disk })
                .collect(),
            max_connections: 64,
            active: AtomicUsize::new(0),
            threads: 4,
            budget: serve::Budget::new(512 << 20),
            allow_plaintext: false,
            #[cfg(feature = "nbd-tls")]
            tls: None,
        }
    }

    /// Requests of one connection answered at once, on as many threads (default 4; 1 answers
    /// them in order). A caller's stream ([`Self::serve_connection`]) is always answered in
    /// order.
    pub fn threads_per_connection(mut self, n: usize) -> Self {
        self.threads = n.max(1);
        self
    }

    /// Bytes of read replies held at once across every connection (default 512 MiB, at least
    /// [`MAX_REQUEST`]): a request waits for room before its data is read. A client that stops
    /// reading its replies holds at most its threads' requests, for 30 s, and is then dropped.
    pub fn max_buffered(mut self, bytes: u64) -> Self {
        self.budget = serve::Budget::new(bytes);
        self
    }

    /// Requires TLS of every client (`NBD_OPT_STARTTLS` first; until then every other option
    /// is answered `NBD_REP_ERR_TLS_REQD`).
    #[cfg(feature = "nbd-tls")]
    pub fn tls(mut self, tls: Tls) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Listens on a TCP address off the loopback without TLS (refused by default: the disks'
    /// bytes would cross the network in the clear, to anyone who connects).
    pub fn allow_plaintext(mut self, allow: bool) -> Self {
        self.allow_plaintext = allow;
        self
    }

    /// Whether clients must start TLS.
    fn tls_required(&self) -> bool {
        #[cfg(feature = "nbd-tls")]
        if self.tls.is_some() {
            return true;
        }
        false
    }

    /// Clients served at once (default 64); more are disconnected at once.
    pub fn max_connections(mut self, n: usize) -> Self {
        self.max_connections = n.max(1);
        self
    }

    /// The export called `name` (the empty name: the first).
    pub(crate) fn export(&self, name: &str) -> Option<&Export> {
        match name {
            "" => self.exports.first(),
            _ => self.exports.iter().find(|e| e.name == name),
        }
    }

    /// The exports' names.
    pub fn names(&self) -> Vec<&str> {
        self.exports.iter().map(|e| e.name.as_str()).collect()
    }

    /// Serves one client on `stream` (a connection the caller accepted) until it disconnects
    /// or breaks the protocol (an error, naming what it broke). Its requests are answered in
    /// order, and it cannot start TLS: a server that requires TLS serves it nothing.
    pub fn serve_connection<S: Read + Write>(&self, stream: S) -> Result<()> {
        proto::Connection::new(self, io::Io::Other(Box::new(stream))).run()
    }

    /// Accepts clients on `listen` until `stop` is set (checked between connections), each
    /// served on its own thread.
    pub fn run(&self, listen: &Listen, stop: &AtomicBool) -> Result<()> {
        std::thread::scope(|scope| -> Result<()> {
            match listen {
                Listen::Unix(path) => {
                    let listener = bind_unix(path)?;
                    for conn in listener.incoming() {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let Ok(conn) = conn else { continue };
                        self.spawn(scope, io::Socket::Unix(conn));
                    }
                }
                Listen::Tcp(addr) => {
                    if !addr.ip().is_loopback() && !self.tls_required() && !self.allow_plaintext {
                        return Err(Error::InvalidInput(format!(
                            "listening on {addr} without TLS: the disks would cross the network \
                             in the clear; give a certificate and key, or allow plaintext"
                        )));
                    }
                    let listener = std::net::TcpListener::bind(addr)
                        .map_err(|e| Error::InvalidInput(format!("listening on {addr}: {e}")))?;
                    for conn in listener.incoming() {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let Ok(conn) = conn else { continue };
                        let _ = conn.set_nodelay(true);
                        self.spawn(scope, io::Socket::Tcp(conn));
                    }
                }
            }
            Ok(())
        })
    }

    /// Serves `conn` on a thread of `scope`, or drops it when too many are served.
    fn spawn<'s>(&'s self, scope: &'s std::thread::Scope<'s, '_>, conn: io::Socket) {
        if self.active.fetch_add(1, Ordering::SeqCst) >= self.max_connections {
            self.active.fetch_sub(1, Ordering::SeqCst);
            return;
        }
        conn.set_write_timeout(WRITE_TIMEOUT);
        scope.spawn(move || {
            let _ = proto::Connection::new(self, io::Io::Socket(conn)).run();
            self.active.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

/// A Unix listener at `path`; a socket file there that nobody answers on is replaced, anything
/// else is refused.
fn bind_unix(path: &std::path::Path) -> Result<std::os::unix::net::UnixListener> {
    use std::os::unix::fs::FileTypeExt;
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        let stale =
            meta.file_type().is_socket() && std::os::unix::net::UnixStream::connect(path).is_err();
        if !stale {
            return Err(Error::Exists(path.to_path_buf()));
        }
        std::fs::remove_file(path).map_err(Error::io(path))?;
    }
    std::os::unix::net::UnixListener::bind(path).map_err(Error::io(path))
}
