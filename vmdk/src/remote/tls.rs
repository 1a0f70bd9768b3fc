//! How a remote source's TLS certificate is checked: against the system's roots (the default),
//! against a given CA certificate file as well, pinned by the SHA-256 thumbprint of the server's
//! certificate (how ESXi hosts with self-signed certificates are trusted), or not at all.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorKind, Result};

/// How the server's certificate is checked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Tls {
    /// Verified against the system's root certificates, and those of `ca_file` when given.
    #[default]
    Verify,
    /// Verified against the system's roots and the certificates (PEM) of this file.
    CaFile(PathBuf),
    /// Accepted only when the SHA-256 digest of the server's own certificate (DER) is this one:
    /// `sha256:HEX`, as `openssl x509 -fingerprint -sha256` prints it (colons allowed).
    Thumbprint([u8; 32]),
    /// Not verified at all. Anyone on the path can read and change what is fetched: for tests
    /// and emergencies only; tools print a warning.
    Insecure,
}

impl Tls {
    /// Parses `sha256:HEX` (colons and case ignored) into [`Tls::Thumbprint`].
    pub fn thumbprint(text: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::new(
                None,
                "TLS thumbprint",
                None,
                ErrorKind::InvalidInput(format!("{text:?}: {why} (expected sha256:HEX)")),
            )
        };
        let hex = text
            .strip_prefix("sha256:")
            .or_else(|| text.strip_prefix("SHA256:"))
            .ok_or_else(|| bad("no sha256: prefix"))?;
        let digits: Vec<u8> = hex.bytes().filter(|&b| b != b':').collect();
        if digits.len() != 64 {
            return Err(bad("not 64 hexadecimal digits"));
        }
        let mut out = [0u8; 32];
        for (o, pair) in out.iter_mut().zip(digits.chunks(2)) {
            let s = std::str::from_utf8(pair).map_err(|_| bad("not hexadecimal"))?;
            *o = u8::from_str_radix(s, 16).map_err(|_| bad("not hexadecimal"))?;
        }
        Ok(Self::Thumbprint(out))
    }

    /// The rustls configuration that checks certificates this way.
    pub(crate) fn client_config(&self) -> Result<Arc<ClientConfig>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| tls_error(None, e.to_string()))?;
        let config = match self {
            Self::Verify | Self::CaFile(_) => {
                let mut roots = RootCertStore::empty();
                for cert in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(cert);
                }
                if let Self::CaFile(path) = self {
                    add_pem_file(&mut roots, path)?;
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            Self::Thumbprint(digest) => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Pinned {
                    digest: Some(*digest),
                    provider,
                }))
                .with_no_client_auth(),
            Self::Insecure => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Pinned {
                    digest: None,
                    provider,
                }))
                .with_no_client_auth(),
        };
        Ok(Arc::new(config))
    }
}

fn tls_error(path: Option<&Path>, why: String) -> Error {
    Error::new(
        path,
        "TLS configuration",
        None,
        ErrorKind::InvalidInput(why),
    )
}

/// Adds every certificate of a PEM file; a file holding none is an error.
fn add_pem_file(roots: &mut RootCertStore, path: &Path) -> Result<()> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<std::result::Result<_, _>>())
        .map_err(|e| tls_error(Some(path), format!("reading the CA certificates: {e}")))?;
    if certs.is_empty() {
        return Err(tls_error(
            Some(path),
            "no PEM certificate in the file".into(),
        ));
    }
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| tls_error(Some(path), format!("a CA certificate is refused: {e}")))?;
    }
    Ok(())
}

/// Accepts the server's certificate when its SHA-256 digest is `digest` (or any, when `None`);
/// handshake signatures are still checked, so the server holds the certificate's key.
#[derive(Debug)]
struct Pinned {
    digest: Option<[u8; 32]>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self.digest {
            Some(want) if Sha256::digest(end_entity.as_ref()).as_slice() != want => {
                Err(rustls::Error::General(format!(
                    "the server's certificate has thumbprint sha256:{}, not the one given",
                    hex(&Sha256::digest(end_entity.as_ref()))
                )))
            }
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thumbprints_parse_with_or_without_colons() {
        let hexs = "AB".repeat(32);
        let colons = vec!["ab"; 32].join(":");
        assert_eq!(
            Tls::thumbprint(&format!("sha256:{hexs}")).unwrap(),
            Tls::Thumbprint([0xab; 32])
        );
        assert_eq!(
            Tls::thumbprint(&format!("sha256:{colons}")).unwrap(),
            Tls::Thumbprint([0xab; 32])
        );
        for bad in [
            "ab",
            "sha1:ab",
            "sha256:zz",
            &format!("sha256:{}", "a".repeat(63)),
        ] {
            assert!(Tls::thumbprint(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_mode_builds() {
        for t in [Tls::Verify, Tls::Thumbprint([1; 32]), Tls::Insecure] {
            t.client_config().unwrap();
        }
        let e = Tls::CaFile("/nonexistent/ca.pem".into())
            .client_config()
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/ca.pem"), "{e}");
    }
}
