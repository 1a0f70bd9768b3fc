//! Credentials for a remote source: HTTP basic authentication and a session cookie, and where a
//! command-line tool finds them (the environment, a credentials file, `~/.netrc`). Secrets never
//! appear in `Debug` output or in the names shown in errors.

use std::fmt;
use std::path::Path;

use crate::error::{Error, ErrorKind, Result};

/// A user name and password for HTTP basic authentication, and an optional session cookie
/// (ESXi's `vmware_soap_session=...`), sent with every request.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    user: Option<(String, String)>,
    cookie: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("user", &self.user.as_ref().map(|(u, _)| u))
            .field("password", &self.user.as_ref().map(|_| "<redacted>"))
            .field("cookie", &self.cookie.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Credentials {
    /// Basic authentication as `user` with `password`.
    pub fn basic(user: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            user: Some((user.into(), password.into())),
            cookie: None,
        }
    }

    /// A `Cookie` header value sent with every request (`vmware_soap_session="..."`).
    pub fn cookie(mut self, cookie: impl Into<String>) -> Self {
        self.cookie = Some(cookie.into());
        self
    }

    /// Whether nothing is set.
    pub fn is_empty(&self) -> bool {
        self.user.is_none() && self.cookie.is_none()
    }

    /// The user name, if any (never the password).
    pub fn user(&self) -> Option<&str> {
        self.user.as_ref().map(|(u, _)| u.as_str())
    }

    /// The `Authorization` header value, if a user is set.
    pub(crate) fn authorization(&self) -> Option<String> {
        use base64::Engine as _;
        let (user, password) = self.user.as_ref()?;
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        Some(format!("Basic {token}"))
    }

    /// The `Cookie` header value, if set.
    pub(crate) fn cookie_header(&self) -> Option<&str> {
        self.cookie.as_deref()
    }

    /// What a command-line tool finds for `host`, first found first: `OVF_DISK_USER` and
    /// `OVF_DISK_PASSWORD` (and `OVF_DISK_COOKIE`) in the environment, then the `machine` entry
    /// for `host` (or `default`) in `~/.netrc` (or the file `NETRC` names). Credentials written
    /// in a URL itself are taken by [`super::RemoteFiles::new`] and come before these.
    pub fn from_environment(host: &str) -> Self {
        let env = |k| std::env::var(k).ok().filter(|v: &String| !v.is_empty());
        let mut found = match (env("OVF_DISK_USER"), env("OVF_DISK_PASSWORD")) {
            (Some(u), p) => Self::basic(u, p.unwrap_or_default()),
            _ => netrc_path()
                .and_then(|p| std::fs::read_to_string(p).ok())
                .and_then(|text| netrc_lookup(&text, host))
                .unwrap_or_default(),
        };
        if let Some(c) = env("OVF_DISK_COOKIE") {
            found.cookie = Some(c);
        }
        found
    }

    /// Reads a credentials file: lines `user=NAME`, `password=SECRET` and `cookie=VALUE`
    /// (blank lines and `#` comments ignored). The file should be readable by its owner only.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).map_err(|e| Error::file(path, ErrorKind::Io(e)))?;
        let mut user = None;
        let mut password = None;
        let mut cookie = None;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = || {
                Error::new(
                    Some(path),
                    "credentials file",
                    None,
                    ErrorKind::Descriptor {
                        line: i + 1,
                        reason: "expected user=, password= or cookie= (the value is not shown)"
                            .into(),
                    },
                )
            };
            let (key, value) = line.split_once('=').ok_or_else(bad)?;
            let value = value.trim().to_string();
            match key.trim() {
                "user" => user = Some(value),
                "password" => password = Some(value),
                "cookie" => cookie = Some(value),
                _ => return Err(bad()),
            }
        }
        Ok(Self {
            user: user.map(|u| (u, password.unwrap_or_default())),
            cookie,
        })
    }

    /// `self`, or where it is empty, `other`.
    pub(crate) fn or(self, other: Self) -> Self {
        Self {
            user: self.user.or(other.user),
            cookie: self.cookie.or(other.cookie),
        }
    }
}

/// `$NETRC`, else `~/.netrc`.
fn netrc_path() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("NETRC") {
        return Some(p.into());
    }
    std::env::var_os("HOME").map(|h| Path::new(&h).join(".netrc"))
}

/// The login and password of `host` (or the `default` entry) in a `.netrc` text.
fn netrc_lookup(text: &str, host: &str) -> Option<Credentials> {
    let mut words = text.split_whitespace();
    let mut entries: Vec<(Option<String>, Option<String>, Option<String>)> = Vec::new();
    while let Some(w) = words.next() {
        match w {
            "machine" => entries.push((words.next().map(str::to_string), None, None)),
            "default" => entries.push((None, None, None)),
            "login" | "password" => {
                let value = words.next().map(str::to_string);
                if let Some(e) = entries.last_mut() {
                    if w == "login" {
                        e.1 = value;
                    } else {
                        e.2 = value;
                    }
                }
            }
            // A macro runs to the next blank line; its words are skipped as they come.
            _ => {}
        }
    }
    let pick = |want: Option<&str>| {
        entries
            .iter()
            .find(|(m, _, _)| m.as_deref() == want)
            .and_then(|(_, l, p)| {
                Some(Credentials::basic(
                    l.clone()?,
                    p.clone().unwrap_or_default(),
                ))
            })
    };
    pick(Some(host)).or_else(|| pick(None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netrc_entries_by_host_then_default() {
        let text = "machine esx.example login root password s3cret\n\
                    machine other login bob password x\ndefault login anon password guest\n";
        let c = netrc_lookup(text, "esx.example").unwrap();
        assert_eq!(c.user(), Some("root"));
        assert_eq!(c.authorization().unwrap(), "Basic cm9vdDpzM2NyZXQ=");
        assert_eq!(netrc_lookup(text, "nowhere").unwrap().user(), Some("anon"));
        assert!(netrc_lookup("machine a login b", "c").is_none());
    }

    #[test]
    fn debug_never_shows_secrets() {
        let c = Credentials::basic("root", "hunter2").cookie("vmware_soap_session=abc");
        let shown = format!("{c:?}");
        assert!(shown.contains("root"), "{shown}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("abc"),
            "{shown}"
        );
    }

    #[test]
    fn credentials_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("creds");
        std::fs::write(
            &p,
            "# esx\nuser=root\npassword = pa=ss\ncookie=vmware_soap_session=\"x\"\n",
        )
        .unwrap();
        let c = Credentials::from_file(&p).unwrap();
        assert_eq!(c.user(), Some("root"));
        assert_eq!(
            c.authorization().unwrap(),
            format!("Basic {}", {
                use base64::Engine as _;
                base64::engine::general_purpose::STANDARD.encode("root:pa=ss")
            })
        );
        assert_eq!(c.cookie_header(), Some("vmware_soap_session=\"x\""));
        std::fs::write(&p, "user root\npassword=topsecret\n").unwrap();
        let e = Credentials::from_file(&p).unwrap_err().to_string();
        assert!(e.contains("line 1") && !e.contains("topsecret"), "{e}");
    }
}
