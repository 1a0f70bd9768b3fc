//! Package signatures: checking a certificate's RSA signature over the manifest (PKCS#1 v1.5,
//! SHA1, SHA256 or SHA512, with RustCrypto's `rsa`), and signing a manifest on export. Not done:
//! building the certificate's chain to a trusted root, or checking its validity dates and
//! revocation.

#[cfg(feature = "write")]
use der::DecodePem;
use der::Encode;
use ovf::cert::CertificateFile;
use ovf::manifest::Algorithm;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::pkcs8::DecodePublicKey;
use rsa::signature::Verifier;
use rsa::RsaPublicKey;

/// Checks `cert`'s signature over `signed` (the manifest's bytes): `Ok(())` when it matches.
pub(crate) fn verify(cert: &CertificateFile, signed: &[u8]) -> std::result::Result<(), String> {
    let spki = cert
        .certificate
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(|e| format!("public key: {e}"))?;
    let key = RsaPublicKey::from_public_key_der(&spki)
        .map_err(|e| format!("not an RSA public key: {e}"))?;
    let signature =
        Signature::try_from(cert.signature.as_slice()).map_err(|e| format!("signature: {e}"))?;
    let result = match cert.algorithm {
        Algorithm::Sha1 => VerifyingKey::<sha1::Sha1>::new(key).verify(signed, &signature),
        Algorithm::Sha256 => VerifyingKey::<sha2::Sha256>::new(key).verify(signed, &signature),
        Algorithm::Sha512 => VerifyingKey::<sha2::Sha512>::new(key).verify(signed, &signature),
    };
    result.map_err(|_| "the signature does not match the manifest".to_string())
}

#[cfg(feature = "write")]
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
