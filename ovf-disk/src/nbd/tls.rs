//! TLS for NBD (`NBD_OPT_STARTTLS`, the protocol document's "TLS support"): the server's
//! certificate and key, optionally a CA whose certificates clients must present, and a TLS
//! stream split into a reading and a writing half so one connection's requests are answered in
//! parallel.
//!
//! rustls with ring (already what `vmdk`'s remote reader uses): TLS 1.2 and 1.3, the protocols
//! qemu's and libnbd's GnuTLS clients negotiate.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

use super::io::{ReadHalf, Socket, WriteHalf};
use crate::error::{Error, Result};

/// The TLS a server offers (and then requires: a client that does not start TLS is served
/// nothing, as qemu-nbd and nbdkit do with `--tls=require`).
#[derive(Clone, Debug)]
pub struct Tls {
    pub(crate) config: Arc<ServerConfig>,
}

fn bad(path: &Path, what: &str, e: impl std::fmt::Display) -> Error {
    Error::InvalidInput(format!("{}: {what}: {e}", path.display()))
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| bad(path, "reading PEM certificates", e))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad(path, "reading PEM certificates", e))?;
    if certs.is_empty() {
        return Err(bad(path, "reading PEM certificates", "none found"));
    }
    Ok(certs)
}

impl Tls {
    /// The server's certificate chain (`cert`, PEM, the server's first) and private key (`key`,
    /// PEM: PKCS#8, PKCS#1 or SEC1). With `client_ca` (PEM), clients must present a certificate
    /// that CA signed (qemu's `tls-creds-x509` with `verify-peer`, libnbd's
    /// `tls-certificates` folder holding `client-cert.pem`).
    pub fn from_pem_files(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Result<Self> {
        let chain = certificates(cert)?;
        let key =
            PrivateKeyDer::from_pem_file(key).map_err(|e| bad(key, "reading a PEM key", e))?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::InvalidInput(format!("TLS: {e}")))?;
        let builder = match client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for c in certificates(ca)? {
                    roots.add(c).map_err(|e| bad(ca, "a CA certificate", e))?;
                }
                let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                    roots.into(),
                    provider,
                )
                .build()
                .map_err(|e| bad(ca, "client verification", e))?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder
            .with_single_cert(chain, key)
            .map_err(|e| bad(cert, "the certificate and key", e))?;
        Ok(Self::from_config(Arc::new(config)))
    }

    /// A server configuration built by the caller (its own verifier, key store, protocols).
    pub fn from_config(config: Arc<ServerConfig>) -> Self {
        Self { config }
    }
}

/// The TLS handshake on an accepted socket, after the `NBD_OPT_STARTTLS` acknowledgement.
pub(crate) fn accept(
    tls: &Tls,
    mut sock: Socket,
) -> io::Result<StreamOwned<ServerConnection, Socket>> {
    let mut conn = ServerConnection::new(tls.config.clone()).map_err(io::Error::other)?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock)?;
    }
    Ok(StreamOwned::new(conn, sock))
}

/// What both halves share: the TLS state, and the socket the writing half sends on (locked
/// while a reply is encrypted and sent, so records leave in the order they were made).
struct Shared {
    conn: Mutex<ServerConnection>,
    out: Mutex<Socket>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// Sends whatever TLS records are pending, gathered in `records` (emptied first, kept by
    /// the caller so a reply's records reuse one buffer); `out` must be held.
    fn send_pending(&self, out: &mut Socket, records: &mut Vec<u8>) -> io::Result<()> {
        records.clear();
        {
            let mut conn = lock(&self.conn);
            while conn.wants_write() {
                conn.write_tls(records)?;
            }
        }
        out.write_all(records)
    }
}

/// Splits a TLS stream: the reading half reads ciphertext from the socket without any lock and
/// decrypts under the shared one; the writing half encrypts and sends under it.
pub(crate) fn split(
    stream: StreamOwned<ServerConnection, Socket>,
) -> io::Result<(ReadHalf, WriteHalf)> {
    let StreamOwned { conn, sock } = stream;
    let shared = Arc::new(Shared {
        conn: Mutex::new(conn),
        out: Mutex::new(sock.try_clone()?),
    });
    let reader = TlsReader {
        shared: shared.clone(),
        sock,
        raw: vec![0; 16 << 10],
        plain: Vec::new(),
        pos: 0,
        closed: false,
    };
    Ok((
        Box::new(reader),
        Box::new(TlsWriter {
            shared,
            records: Vec::new(),
        }),
    ))
}

struct TlsReader {
    shared: Arc<Shared>,
    sock: Socket,
    raw: Vec<u8>,
    /// Plaintext decrypted and not read yet.
    plain: Vec<u8>,
    pos: usize,
    /// The client sent its close_notify, or its socket ended.
    closed: bool,
}

/// Moves what `conn` decrypted into `plain`; `Ok(true)` once the peer has closed.
fn drain(conn: &mut ServerConnection, plain: &mut Vec<u8>) -> io::Result<bool> {
    match conn.reader().read_to_end(plain) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
        Err(e) => Err(e),
    }
}

impl TlsReader {
    /// Reads ciphertext from the socket and decrypts it into `plain`.
    fn fill(&mut self) -> io::Result<()> {
        let n = self.sock.read(&mut self.raw)?;
        if n == 0 {
            self.closed = true;
            return Ok(());
        }
        let mut rest = self.raw.get(..n).unwrap_or_default();
        let pending = {
            let mut conn = lock(&self.shared.conn);
            while !rest.is_empty() {
                // Plaintext taken out first, so rustls's own buffer never fills up.
                self.closed |= drain(&mut conn, &mut self.plain)?;
                conn.read_tls(&mut rest)?;
                conn.process_new_packets().map_err(io::Error::other)?;
            }
            self.closed |= drain(&mut conn, &mut self.plain)?;
            conn.wants_write()
        };
        if pending {
            // A key update or an alert rustls answers: sent in order with the replies.
            let mut out = lock(&self.shared.out);
            self.shared.send_pending(&mut out, &mut Vec::new())?;
        }
        Ok(())
    }
}

impl Read for TlsReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(avail) = self.plain.get(self.pos..).filter(|a| !a.is_empty()) {
                let n = avail.len().min(buf.len());
                if let (Some(dst), Some(src)) = (buf.get_mut(..n), avail.get(..n)) {
                    dst.copy_from_slice(src);
                }
                self.pos += n;
                return Ok(n);
            }
            self.plain.clear();
            self.pos = 0;
            // Plaintext the handshake's stream had already decrypted comes first.
            let closed = drain(&mut lock(&self.shared.conn), &mut self.plain)?;
            self.closed |= closed;
            if !self.plain.is_empty() {
                continue;
            }
            if self.closed {
                return Ok(0);
            }
            self.fill()?;
        }
    }
}

struct TlsWriter {
    shared: Arc<Shared>,
    /// The records of the chunk being sent: one buffer for every chunk of every reply.
    records: Vec<u8>,
}

/// Plaintext handed to rustls at a time: one record, well under its buffer limit.
const RECORD: usize = 16 << 10;

impl Write for TlsWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let mut out = lock(&self.shared.out);
        for chunk in buf.chunks(RECORD) {
            lock(&self.shared.conn).writer().write_all(chunk)?;
            self.shared.send_pending(&mut out, &mut self.records)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for TlsWriter {
    /// A close_notify when the server ends the connection (the client disconnected, or
    /// broke the protocol).
    fn drop(&mut self) {
        let mut out = lock(&self.shared.out);
        lock(&self.shared.conn).send_close_notify();
        let _ = self.shared.send_pending(&mut out, &mut self.records);
    }
}
