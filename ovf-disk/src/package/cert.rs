//! Package certificates (`.cert`, DSP0243 §5.2): a line `SHA256(name.mf)= hex` carrying an RSA
//! signature of the manifest, then the signer's X.509 certificate in PEM. The signature is
//! checked against the manifest's bytes with the certificate's public key (RSA PKCS#1 v1.5,
//! SHA1, SHA256 or SHA512, with RustCrypto's `rsa` and `x509-cert`). Not done: building the
//! certificate's chain to a trusted root, or checking its validity dates and revocation.

use std::path::Path;

use der::{DecodePem, Encode};
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use rsa::RsaPublicKey;

use super::manifest::Algorithm;
use crate::error::{Error, Result};

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
        let entries = super::manifest::Manifest::parse_lenient_digest(line, path, first + 1)?;
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

    /// Checks the signature over `signed` (the manifest's bytes): `Ok(())` when it matches.
    pub fn verify(&self, signed: &[u8]) -> std::result::Result<(), String> {
        let spki = self
            .certificate
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .map_err(|e| format!("public key: {e}"))?;
        let key = RsaPublicKey::from_public_key_der(&spki)
            .map_err(|e| format!("not an RSA public key: {e}"))?;
        let signature = Signature::try_from(self.signature.as_slice())
            .map_err(|e| format!("signature: {e}"))?;
        let result = match self.algorithm {
            Algorithm::Sha1 => VerifyingKey::<sha1::Sha1>::new(key).verify(signed, &signature),
            Algorithm::Sha256 => VerifyingKey::<sha2::Sha256>::new(key).verify(signed, &signature),
            Algorithm::Sha512 => VerifyingKey::<sha2::Sha512>::new(key).verify(signed, &signature),
        };
        result.map_err(|_| "the signature does not match the manifest".to_string())
    }
}
