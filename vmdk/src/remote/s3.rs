//! Amazon S3 and services that speak its API (MinIO, Ceph RGW, moto): `s3://BUCKET/KEY` names
//! mapped to HTTPS URLs (virtual-host style on AWS, path style on a custom endpoint), every
//! request signed with AWS Signature Version 4, and credentials found where the AWS tools find
//! them (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, else the profile
//! `AWS_PROFILE` or `default` of `~/.aws/credentials`; the region from `AWS_REGION`,
//! `AWS_DEFAULT_REGION`, else `us-east-1`; a custom endpoint from `AWS_ENDPOINT_URL_S3` or
//! `AWS_ENDPOINT_URL`).

use std::fmt;
use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorKind, Result};

/// Where S3 is and who asks it.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Config {
    /// A custom endpoint (`http://127.0.0.1:9000`): requests go there in path style.
    pub(crate) endpoint: Option<String>,
    /// The region requests are signed for.
    pub(crate) region: String,
    access_key: String,
    secret_key: String,
    session_token: Option<String>,
}

impl fmt::Debug for S3Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

/// SHA-256 of no bytes, the payload hash of a request without a body.
pub(crate) const EMPTY_SHA256: &str =
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    // An HMAC takes keys of any length: this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| {
        <Hmac<Sha256> as Mac>::new_from_slice(&[]).unwrap_or_else(|_| unreachable!())
    });
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// Percent-encodes everything but the unreserved characters (and `/` when `slash`), as
/// SigV4's canonical request wants.
pub(crate) fn uri_encode(text: &str, slash: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || (slash && b == b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl S3Config {
    /// A configuration with these credentials.
    pub fn new(
        access_key: impl Into<String>,
        secret_key: impl Into<String>,
        region: impl Into<String>,
    ) -> Self {
        Self {
            endpoint: None,
            region: region.into(),
            access_key: access_key.into(),
            secret_key: secret_key.into(),
            session_token: None,
        }
    }

    /// Requests go to this endpoint, in path style.
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into().trim_end_matches('/').to_string());
        self
    }

    /// A session token (temporary credentials).
    pub fn session_token(mut self, token: impl Into<String>) -> Self {
        self.session_token = Some(token.into());
        self
    }

    /// What the AWS tools would use, from the environment and `~/.aws/credentials`.
    pub fn from_environment() -> Result<Self> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let region = env("AWS_REGION")
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".into());
        let mut config = match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
            (Some(a), Some(s)) => {
                let c = Self::new(a, s, region);
                match env("AWS_SESSION_TOKEN") {
                    Some(t) => c.session_token(t),
                    None => c,
                }
            }
            _ => {
                let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
                let file = env("AWS_SHARED_CREDENTIALS_FILE")
                    .map(std::path::PathBuf::from)
                    .or_else(|| env("HOME").map(|h| Path::new(&h).join(".aws/credentials")));
                let text = file
                    .as_ref()
                    .and_then(|f| std::fs::read_to_string(f).ok())
                    .unwrap_or_default();
                profile_credentials(&text, &profile, region).ok_or_else(|| {
                    Error::new(
                        None,
                        "S3 credentials",
                        None,
                        ErrorKind::InvalidInput(format!(
                            "no AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and no profile \
                             {profile:?} in ~/.aws/credentials"
                        )),
                    )
                })?
            }
        };
        if let Some(e) = env("AWS_ENDPOINT_URL_S3").or_else(|| env("AWS_ENDPOINT_URL")) {
            config = config.endpoint(e);
        }
        Ok(config)
    }

    /// The HTTP(S) URL prefix of `bucket`: `ENDPOINT/BUCKET`, or
    /// `https://BUCKET.s3.REGION.amazonaws.com` (virtual-host style), or for a bucket whose
    /// name holds a dot, `https://s3.REGION.amazonaws.com/BUCKET` (path style, as the AWS SDKs
    /// fall back to: `*.s3.REGION.amazonaws.com`'s certificate covers one label, so
    /// `my.bucket.s3...` fails TLS verification).
    pub(crate) fn bucket_url(&self, bucket: &str) -> String {
        match &self.endpoint {
            Some(e) => format!("{e}/{}", uri_encode(bucket, false)),
            None if bucket.contains('.') => format!(
                "https://s3.{}.amazonaws.com/{}",
                self.region,
                uri_encode(bucket, false)
            ),
            None => format!("https://{bucket}.s3.{}.amazonaws.com", self.region),
        }
    }

    /// The headers that sign a request: `Authorization`, `x-amz-date`,
    /// `x-amz-content-sha256` and, with temporary credentials, `x-amz-security-token`.
    /// `url` is the full request URL; `payload` the body's SHA-256 in hex (or
    /// `UNSIGNED-PAYLOAD`); `now` seconds since the epoch.
    pub(crate) fn sign(
        &self,
        method: &str,
        url: &str,
        extra: &[(&str, &str)],
        payload: &str,
        now: u64,
    ) -> Result<Vec<(String, String)>> {
        let parsed = url::Url::parse(url).map_err(|e| {
            Error::new(
                None,
                "S3 request",
                None,
                ErrorKind::InvalidInput(e.to_string()),
            )
        })?;
        let host = match (parsed.host_str(), parsed.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => String::new(),
        };
        let (date, stamp) = amz_date(now);
        let mut query: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| (uri_encode(&k, false), uri_encode(&v, false)))
            .collect();
        query.sort();
        let canonical_query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let mut headers = vec![
            ("host".to_string(), host),
            ("x-amz-content-sha256".to_string(), payload.to_string()),
            ("x-amz-date".to_string(), stamp.clone()),
        ];
        if let Some(t) = &self.session_token {
            headers.push(("x-amz-security-token".to_string(), t.clone()));
        }
        headers.extend(
            extra
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string())),
        );
        headers.sort();
        let signed: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
        let signed = signed.join(";");
        let canonical_headers: String = headers
            .iter()
            .map(|(k, v)| format!("{k}:{}\n", v.trim()))
            .collect();
        let request = format!(
            "{method}\n{}\n{}\n{canonical_headers}\n{signed}\n{payload}",
            parsed.path(),
            canonical_query.join("&")
        );
        let scope = format!("{date}/{}/s3/aws4_request", self.region);
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{}",
            hex(&Sha256::digest(request.as_bytes()))
        );
        let key = [date.as_str(), self.region.as_str(), "s3", "aws4_request"]
            .iter()
            .fold(
                format!("AWS4{}", self.secret_key).into_bytes(),
                |k, part| hmac(&k, part.as_bytes()),
            );
        let signature = hex(&hmac(&key, to_sign.as_bytes()));
        let mut out = vec![
            (
                "Authorization".to_string(),
                format!(
                    "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders={signed}, Signature={signature}",
                    self.access_key
                ),
            ),
            ("x-amz-date".to_string(), stamp),
            ("x-amz-content-sha256".to_string(), payload.to_string()),
        ];
        if let Some(t) = &self.session_token {
            out.push(("x-amz-security-token".to_string(), t.clone()));
        }
        Ok(out)
    }
}

/// The credentials of `profile` in an AWS credentials file.
fn profile_credentials(text: &str, profile: &str, region: String) -> Option<S3Config> {
    let mut current = None;
    let (mut access, mut secret, mut token) = (None, None, None);
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(name.trim().to_string());
            continue;
        }
        if current.as_deref() != Some(profile) {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            let v = v.trim().to_string();
            match k.trim() {
                "aws_access_key_id" => access = Some(v),
                "aws_secret_access_key" => secret = Some(v),
                "aws_session_token" => token = Some(v),
                _ => {}
            }
        }
    }
    let config = S3Config::new(access?, secret?, region);
    Some(match token {
        Some(t) => config.session_token(t),
        None => config,
    })
}

/// `(YYYYMMDD, YYYYMMDDTHHMMSSZ)` of `now` (seconds since the epoch, UTC).
fn amz_date(now: u64) -> (String, String) {
    let days = now / 86_400;
    let secs = now % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let date = format!("{year:04}{month:02}{day:02}");
    let stamp = format!(
        "{date}T{:02}{:02}{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
    (date, stamp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(amz_date(0).1, "19700101T000000Z");
        // 2013-05-24T00:00:00Z, the date of AWS's published examples.
        assert_eq!(amz_date(1_369_353_600).1, "20130524T000000Z");
        assert_eq!(amz_date(1_709_251_199).1, "20240229T235959Z");
    }

    /// AWS's published example: "GET Object" of `test.txt` with `Range: bytes=0-9`, from the
    /// S3 API reference ("Signature Calculations for the Authorization Header: Transferring
    /// Payload in a Single Chunk (AWS Signature Version 4)").
    #[test]
    fn signature_matches_aws_published_example() {
        let c = S3Config::new(
            "AKIAIOSFODNN7EXAMPLE",
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
            "us-east-1",
        );
        let h = c
            .sign(
                "GET",
                "https://examplebucket.s3.amazonaws.com/test.txt",
                &[("Range", "bytes=0-9")],
                EMPTY_SHA256,
                1_369_353_600,
            )
            .unwrap();
        assert_eq!(
            h[0].1,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
             Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        );
        assert!(!format!("{c:?}").contains("wJalr"));
    }

    #[test]
    fn buckets_are_addressed_as_the_aws_sdks_address_them() {
        let c = S3Config::new("A", "S", "eu-west-1");
        assert_eq!(
            c.bucket_url("disks"),
            "https://disks.s3.eu-west-1.amazonaws.com"
        );
        assert_eq!(
            c.bucket_url("disks.example.com"),
            "https://s3.eu-west-1.amazonaws.com/disks.example.com"
        );
        let c = c.endpoint("http://127.0.0.1:9000");
        assert_eq!(c.bucket_url("disks"), "http://127.0.0.1:9000/disks");
    }

    #[test]
    fn profiles() {
        let text = "[default]\naws_access_key_id = A\naws_secret_access_key = S\n[other]\naws_access_key_id=B\naws_secret_access_key=T\naws_session_token=X\n";
        let c = profile_credentials(text, "other", "eu-west-1".into()).unwrap();
        assert_eq!(
            (c.access_key.as_str(), c.session_token.as_deref()),
            ("B", Some("X"))
        );
        assert!(profile_credentials(text, "none", "r".into()).is_none());
    }
}
