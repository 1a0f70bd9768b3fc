//! Package certificates (`.cert`, DSP0243 §5.2): a line `SHA256(name.mf)= hex` carrying an RSA
//! signature of the manifest, then the signer's X.509 certificate in PEM. This module reads the
//! file (RustCrypto's `x509-cert`); checking and making the signature is `ovf-disk`'s, which
//! links RSA, so that reading an OVF does not.

use std::path::Path;

use der::DecodePem;

use crate::error::{Error, Result};
use crate::manifest::Algorithm;

/// A parsed `.cert` file.
#[derive(Clone, Debug)]
pub struct CertificateFile {
    /// Digest algorithm of the signature.
    pub algorithm: Algorithm,
    /// The file signed (the manifest).
    pub signed_file: String,
    /// The signature bytes.
    pub signature: Vec<u8>,
    /// The certificate, as parsed.
    pub certificate: x509_cert::Certificate,
}

impl CertificateFile {
    /// Parses a `.cert`; `path` names it in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let err = |line: usize, reason: String| Error::Manifest {
            path: path.to_path_buf(),
            line,
            reason,
        };
        let first = text
            .lines()
            .position(|l| !l.trim().is_empty())
            .ok_or_else(|| err(1, "empty certificate file".into()))?;
        let line = text.lines().nth(first).unwrap_or("").trim();
        let entries = crate::manifest::Manifest::parse_lenient_digest(line, path, first + 1)?;
        let begin = text
            .find("-----BEGIN CERTIFICATE-----")
            .ok_or_else(|| err(first + 2, "no PEM certificate block".into()))?;
        let end = text[begin..]
            .find("-----END CERTIFICATE-----")
            .map(|e| begin + e + "-----END CERTIFICATE-----".len())
            .ok_or_else(|| err(first + 2, "the PEM certificate block does not end".into()))?;
        let pem = text.get(begin..end).unwrap_or("");
        let certificate = x509_cert::Certificate::from_pem(pem)
            .map_err(|e| err(first + 2, format!("certificate: {e}")))?;
        let signature = (0..entries.2.len() / 2)
            .map(|i| u8::from_str_radix(entries.2.get(2 * i..2 * i + 2).unwrap_or("zz"), 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| err(first + 1, "the signature is not hex".into()))?;
        Ok(Self {
            algorithm: entries.0,
            signed_file: entries.1,
            signature,
            certificate,
        })
    }

    /// The certificate's subject, as a distinguished name.
    pub fn subject(&self) -> String {
        self.certificate.tbs_certificate.subject.to_string()
    }
}
