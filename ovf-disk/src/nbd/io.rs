//! The byte streams a client is served on: a socket the server accepted (which can be split
//! into a reading and a writing half, so requests are answered while the next ones are read,
//! and which can start TLS), the same socket under TLS, or a stream a caller handed in (served
//! one request at a time, without TLS).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;

/// A socket the server accepted.
#[derive(Debug)]
pub(crate) enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Socket {
    /// Bounds each write: a client that stops reading its replies fails the write that waits
    /// on it, so its connection ends instead of holding threads and buffered replies.
    pub(crate) fn set_write_timeout(&self, limit: std::time::Duration) {
        let _ = match self {
            Self::Tcp(s) => s.set_write_timeout(Some(limit)),
            Self::Unix(s) => s.set_write_timeout(Some(limit)),
        };
    }

    /// A second handle on the same socket (one half reads, the other writes).
    pub(crate) fn try_clone(&self) -> io::Result<Self> {
        Ok(match self {
            Self::Tcp(s) => Self::Tcp(s.try_clone()?),
            Self::Unix(s) => Self::Unix(s.try_clone()?),
        })
    }
}

impl Read for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => s.read(buf),
            Self::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Socket {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => s.write(buf),
            Self::Unix(s) => s.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => s.write_vectored(bufs),
            Self::Unix(s) => s.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A protocol failure of the client: the connection is dropped.
pub(crate) fn broken(why: impl Into<String>) -> crate::error::Error {
    crate::error::Error::InvalidInput(format!("NBD client: {}", why.into()))
}

/// A stream of the caller's, read and written in turn.
pub(crate) trait Duplex: Read + Write {}
impl<T: Read + Write> Duplex for T {}

/// What one client is served on.
pub(crate) enum Io<'s> {
    /// A socket in plain text.
    Socket(Socket),
    /// A socket after `NBD_OPT_STARTTLS`.
    #[cfg(feature = "nbd-tls")]
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, Socket>>),
    /// A caller's stream ([`super::Server::serve_connection`]).
    Other(Box<dyn Duplex + 's>),
    /// Nothing (while a socket is handed to TLS).
    Gone,
}

/// The reading half of a split stream.
pub(crate) type ReadHalf = Box<dyn Read + Send>;
/// The writing half of a split stream: each reply is written whole by one call of `write_all`
/// (a TLS half encrypts and sends it under one lock).
pub(crate) type WriteHalf = Box<dyn Write + Send>;

impl Io<'_> {
    /// Whether the stream is under TLS.
    pub(crate) fn is_tls(&self) -> bool {
        #[cfg(feature = "nbd-tls")]
        if matches!(self, Self::Tls(_)) {
            return true;
        }
        false
    }
}

fn gone() -> io::Error {
    io::Error::new(io::ErrorKind::NotConnected, "the stream was handed over")
}

impl Read for Io<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Socket(s) => s.read(buf),
            #[cfg(feature = "nbd-tls")]
            Self::Tls(s) => s.read(buf),
            Self::Other(s) => s.read(buf),
            Self::Gone => Err(gone()),
        }
    }
}

impl Write for Io<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Socket(s) => s.write(buf),
            #[cfg(feature = "nbd-tls")]
            Self::Tls(s) => s.write(buf),
            Self::Other(s) => s.write(buf),
            Self::Gone => Err(gone()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Socket(s) => s.flush(),
            #[cfg(feature = "nbd-tls")]
            Self::Tls(s) => s.flush(),
            Self::Other(s) => s.flush(),
            Self::Gone => Err(gone()),
        }
    }
}
