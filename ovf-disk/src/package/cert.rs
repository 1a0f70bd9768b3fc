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

/// Signs `manifest` (the manifest's bytes, named `manifest_name` in the package) with the RSA
/// private key in `key_pem` (PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`), digest
/// `algorithm`, and returns the `.cert` text: the signature line as ovftool writes it
/// (`SHA256(name.mf)= hex`) and the PEM certificate `cert_pem` (the first `CERTIFICATE` block
/// of it; `key_pem` may hold both). The certificate's public key must be the key's.
pub(crate) fn sign(
    manifest: &[u8],
    manifest_name: &str,
    algorithm: Algorithm,
    key_pem: &str,
    cert_pem: &str,
) -> std::result::Result<String, String> {
    use rsa::pkcs1::DecodeRsaPrivateKey;
    use rsa::pkcs1v15::SigningKey;
    use rsa::pkcs8::DecodePrivateKey;
    use rsa::signature::{SignatureEncoding, Signer};

    let pem_block = |text: &str, label: &str| -> Option<String> {
        let begin = format!("-----BEGIN {label}-----");
        let end = format!("-----END {label}-----");
        let from = text.find(&begin)?;
        let to = text.get(from..)?.find(&end)? + from + end.len();
        text.get(from..to).map(str::to_string)
    };
    let key = match (
        pem_block(key_pem, "PRIVATE KEY"),
        pem_block(key_pem, "RSA PRIVATE KEY"),
    ) {
        (Some(p8), _) => {
            rsa::RsaPrivateKey::from_pkcs8_pem(&p8).map_err(|e| format!("private key: {e}"))?
        }
        (None, Some(p1)) => {
            rsa::RsaPrivateKey::from_pkcs1_pem(&p1).map_err(|e| format!("private key: {e}"))?
        }
        (None, None) => return Err("no PEM private key (PRIVATE KEY or RSA PRIVATE KEY)".into()),
    };
    let cert = pem_block(cert_pem, "CERTIFICATE").ok_or("no PEM certificate (CERTIFICATE)")?;
    let parsed =
        x509_cert::Certificate::from_pem(&cert).map_err(|e| format!("certificate: {e}"))?;
    let spki = parsed
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| format!("certificate's public key: {e}"))?;
    let public = RsaPublicKey::from_public_key_der(&spki)
        .map_err(|e| format!("the certificate's key is not RSA: {e}"))?;
    if public != rsa::RsaPublicKey::from(&key) {
        return Err("the certificate is not the private key's".into());
    }
    let signature = match algorithm {
        Algorithm::Sha1 => SigningKey::<sha1::Sha1>::new(key).sign(manifest).to_vec(),
        Algorithm::Sha256 => SigningKey::<sha2::Sha256>::new(key).sign(manifest).to_vec(),
        Algorithm::Sha512 => SigningKey::<sha2::Sha512>::new(key).sign(manifest).to_vec(),
    };
    let hex: String = signature.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!(
        "{}({manifest_name})= {hex}\n{}\n",
        algorithm.as_str(),
        cert.trim_end()
    ))
}
