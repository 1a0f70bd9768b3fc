//! Inputs given as `http://` or `https://` URLs: the options that say how they are fetched,
//! and the disk's files opened through `vmdk::remote`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use vmdk::remote::{Credentials, FetchStats, RemoteFiles, RemoteOptions, Tls};
use vmdk::OpenOptions;

/// How URL inputs are fetched.
#[derive(clap::Args, Debug)]
pub struct RemoteArgs {
    /// For a URL input: requests in flight at once.
    #[arg(long, value_name = "N", default_value_t = 4)]
    connections: usize,
    /// For a URL input: retries of a request that failed in a way that may pass (a dropped
    /// connection, a short body, 5xx, 429, a timeout).
    #[arg(long, value_name = "N", default_value_t = 5)]
    retries: u32,
    /// For a URL input: seconds without a byte from the server before a request is retried.
    #[arg(long, value_name = "SECONDS", default_value_t = 60)]
    timeout: u64,
    /// For an https URL: trust the CA certificates (PEM) of this file as well as the system's.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["tls_thumbprint", "insecure"])]
    ca_cert: Option<PathBuf>,
    /// For an https URL: accept only the server certificate with this SHA-256 thumbprint
    /// (sha256:HEX, colons allowed), as ESXi hosts with self-signed certificates are pinned.
    #[arg(long, value_name = "sha256:HEX", conflicts_with = "insecure")]
    tls_thumbprint: Option<String>,
    /// For an https URL: do not check the server's certificate at all (prints a warning).
    #[arg(long)]
    insecure: bool,
    /// For a URL input: a file of `user=`, `password=` and `cookie=` lines. Otherwise the URL's
    /// own credentials, then OVF_DISK_USER / OVF_DISK_PASSWORD / OVF_DISK_COOKIE, then ~/.netrc.
    #[arg(long, value_name = "FILE")]
    credentials: Option<PathBuf>,
    /// For an s3:// URL: the endpoint of an S3-compatible service (MinIO, Ceph), addressed in
    /// path style. Default: AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL, else AWS itself.
    /// Credentials and region as the AWS tools take them (AWS_ACCESS_KEY_ID, AWS_PROFILE, ...).
    #[arg(long, value_name = "URL")]
    s3_endpoint: Option<String>,
    /// For URL inputs: requests in flight to one host across every URL of this run (default:
    /// 8, or --connections when more).
    #[arg(long, value_name = "N")]
    per_host: Option<usize>,
    /// For URL inputs: at most N runs of ovf-disk on this machine read from one host at once
    /// (slots locked in $OVF_DISK_LOCK_DIR, default /run/lock/ovf-disk); a run waits for a slot.
    #[arg(long, value_name = "N")]
    max_per_host: Option<usize>,
    /// For URL inputs: connect to HOST2:PORT2 for every request to HOST:PORT, as curl's
    /// --connect-to (the URL, Host header and certificate name stay HOST's); repeatable.
    #[arg(long, value_name = "HOST:PORT:HOST2:PORT2", value_parser = parse_connect_to)]
    connect_to: Vec<(String, String)>,
}

/// `HOST:PORT:HOST2:PORT2` as the two `HOST:PORT` it names.
fn parse_connect_to(text: &str) -> std::result::Result<(String, String), String> {
    let parts: Vec<&str> = text.split(':').collect();
    match parts.as_slice() {
        [h, p, h2, p2]
            if !h.is_empty()
                && !h2.is_empty()
                && p.parse::<u16>().is_ok()
                && p2.parse::<u16>().is_ok() =>
        {
            Ok((format!("{h}:{p}"), format!("{h2}:{p2}")))
        }
        _ => Err("expected HOST:PORT:HOST2:PORT2 (names or IPv4 addresses, ports given)".into()),
    }
}

/// A disk input: the options that open it, the name to open, and the remote source when it is
/// one.
pub struct Opened {
    pub options: OpenOptions,
    pub name: PathBuf,
    pub remote: Option<RemoteFiles>,
}

impl RemoteArgs {
    /// The options of a remote source at `url`.
    fn remote_options(&self, url: &str) -> Result<RemoteOptions> {
        let tls = match (&self.ca_cert, &self.tls_thumbprint, self.insecure) {
            (Some(ca), _, _) => Tls::CaFile(ca.clone()),
            (_, Some(t), _) => Tls::thumbprint(t)?,
            (_, _, true) => {
                eprintln!(
                    "ovf-disk: warning: --insecure: the server's certificate is not checked; \
                     anyone on the path can read and change what is fetched"
                );
                Tls::Insecure
            }
            _ => Tls::Verify,
        };
        let host = url::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        let credentials = match &self.credentials {
            Some(file) => Credentials::from_file(file)?,
            None => Credentials::default(),
        };
        // The URL's own credentials come before the environment's: RemoteFiles takes them
        // when these are empty, so the environment is asked only when the URL has none.
        let credentials = match credentials.is_empty() && !url_has_user(url) {
            true => Credentials::from_environment(&host),
            false => credentials,
        };
        let mut options = RemoteOptions::new();
        if url.to_ascii_lowercase().starts_with("s3://") {
            let mut s3 = vmdk::remote::S3Config::from_environment()?;
            if let Some(e) = &self.s3_endpoint {
                s3 = s3.endpoint(e);
            }
            options = options.s3(s3);
        }
        if let Some(n) = self.max_per_host {
            hold_host_slot(url, n)?;
        }
        for (from, to) in &self.connect_to {
            options = options.connect_to(from, to);
        }
        Ok(options
            .per_host(self.per_host.unwrap_or(self.connections.max(8)))
            .connections(self.connections)
            .retries(self.retries)
            .read_timeout(Duration::from_secs(self.timeout.max(1)))
            .tls(tls)
            .credentials(credentials))
    }

    /// `input` opened with `options`: through a remote source when it is a URL.
    pub fn open(&self, input: &Path, options: OpenOptions) -> Result<Opened> {
        let Some(url) = input.to_str().filter(|s| vmdk::remote::is_url(s)) else {
            return Ok(Opened {
                options,
                name: input.to_path_buf(),
                remote: None,
            });
        };
        let (files, name) = RemoteFiles::new(url, &self.remote_options(url)?)?;
        Ok(Opened {
            options: options.files(files.clone()),
            name,
            remote: Some(files),
        })
    }

    /// The remote source of the URL `input` and the name to open under it.
    pub fn source(&self, input: &Path) -> Result<(RemoteFiles, PathBuf)> {
        let url = input.to_str().unwrap_or("");
        Ok(RemoteFiles::new(url, &self.remote_options(url)?)?)
    }

    /// The package at the URL `input`, and its source (for what it fetched).
    pub fn package(&self, input: &Path) -> Result<(ovf_disk::package::Package, RemoteFiles)> {
        let (files, name) = self.source(input)?;
        let pkg = ovf_disk::package::Package::open_remote(files.clone(), &name)?;
        Ok((pkg, files))
    }

    /// Requests in flight at once for a URL input.
    pub fn connections(&self) -> usize {
        self.connections.max(1)
    }
}

fn url_has_user(url: &str) -> bool {
    url::Url::parse(url).is_ok_and(|u| !u.username().is_empty())
}

/// `input` as it may be shown: a URL without its credentials, query and fragment.
pub fn redacted(input: &Path) -> PathBuf {
    let Some(text) = input.to_str().filter(|s| vmdk::remote::is_url(s)) else {
        return input.to_path_buf();
    };
    match url::Url::parse(text) {
        // Nothing to hide: shown as given (an S3 key keeps its spaces).
        Ok(u)
            if u.username().is_empty()
                && u.password().is_none()
                && u.query().is_none()
                && u.fragment().is_none() =>
        {
            input.to_path_buf()
        }
        Ok(mut u) => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.set_query(None);
            u.set_fragment(None);
            PathBuf::from(u.as_str())
        }
        Err(_) => PathBuf::from("<a URL that does not parse>"),
    }
}

/// `text` with every URL argument of this run replaced by its redacted form: the last guard
/// before a message is printed.
pub fn scrub(text: &str) -> String {
    let mut out = text.to_string();
    for arg in std::env::args().skip(1) {
        if vmdk::remote::is_url(&arg) {
            let shown = redacted(Path::new(&arg)).display().to_string();
            if shown != arg {
                out = out.replace(&arg, &shown);
            }
            // Credentials on their own, wherever they appear.
            if let Ok(u) = url::Url::parse(&arg) {
                if let Some(p) = u.password().filter(|p| p.len() >= 3) {
                    out = out.replace(p, "<redacted>");
                }
            }
        }
    }
    out
}

/// Whether `input` is a URL.
pub fn is_url(input: &Path) -> bool {
    input.to_str().is_some_and(vmdk::remote::is_url)
}

/// What a URL names, by the extension of its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UrlKind {
    Ova,
    Ovf,
    Vmx,
    Disk,
}

/// What the URL `input` names.
pub fn url_kind(input: &Path) -> UrlKind {
    let name = input.to_str().unwrap_or("").to_ascii_lowercase();
    let path = name.split(['?', '#']).next().unwrap_or("");
    match path.rsplit_once('.').map(|(_, e)| e) {
        Some("ova") => UrlKind::Ova,
        Some("ovf") => UrlKind::Ovf,
        Some("vmx") => UrlKind::Vmx,
        _ => UrlKind::Disk,
    }
}

/// Refuses a URL that names a package or a VM where a disk is wanted.
pub fn refuse_package_url(input: &Path) -> Result<()> {
    match url_kind(input) {
        UrlKind::Ova | UrlKind::Ovf => {
            anyhow::bail!("a package: `ovf-disk import URL OUTDIR` imports it from the URL")
        }
        UrlKind::Vmx => {
            anyhow::bail!("a VM's .vmx: `ovf-disk inflate URL OUTDIR` consolidates its disks")
        }
        UrlKind::Disk => Ok(()),
    }
}

/// The host slots this run holds (locked files, released when the process ends).
static SLOTS: std::sync::Mutex<Vec<(String, std::fs::File)>> = std::sync::Mutex::new(Vec::new());

/// Holds one of `n` slots of the host of `url` across the processes of this machine: files
/// `HOST.0` ... `HOST.N-1` in the lock folder, the first one free locked (`flock`) for the rest
/// of the run. Waits, saying so once, while every slot is taken.
fn hold_host_slot(url: &str, n: usize) -> Result<()> {
    use rustix::fs::{flock, FlockOperation};
    let host = url::Url::parse(url)
        .ok()
        .and_then(|u| Some(format!("{}_{}", u.host_str()?, u.port_or_known_default()?)))
        .unwrap_or_else(|| "host".into());
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut held = SLOTS.lock().unwrap_or_else(|p| p.into_inner());
    if held.iter().any(|(h, _)| *h == host) {
        return Ok(());
    }
    let dir = std::env::var_os("OVF_DISK_LOCK_DIR")
        .map_or_else(|| PathBuf::from("/run/lock/ovf-disk"), PathBuf::from);
    std::fs::create_dir_all(&dir).with_context(|| format!("the lock folder {}", dir.display()))?;
    let mut said = false;
    loop {
        for i in 0..n.max(1) {
            let path = dir.join(format!("{host}.{i}"));
            let file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&path)
                .with_context(|| format!("the host slot {}", path.display()))?;
            if flock(&file, FlockOperation::NonBlockingLockExclusive).is_ok() {
                held.push((host, file));
                return Ok(());
            }
        }
        if !said {
            eprintln!("ovf-disk: waiting: {n} run(s) already read from {host} (--max-per-host)");
            said = true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// What the source of a run is, for its checkpoint: each object's name, length and validator.
pub fn identity(files: &RemoteFiles) -> Vec<String> {
    files
        .identity()
        .into_iter()
        .map(|(name, len, validator)| {
            format!("{} {len} {}", name.display(), validator.unwrap_or_default())
        })
        .collect()
}

/// One line of what a remote source cost, for the summary on standard error.
pub fn summary(stats: &FetchStats) -> String {
    format!(
        "fetched {:.1} MiB in {} requests over at most {} connections, {} retries",
        stats.bytes_fetched as f64 / f64::from(1 << 20),
        stats.requests,
        stats.connections,
        stats.retries
    )
}

/// `context` for errors about a URL input: its name without credentials and query.
pub fn shown(opened: &Opened) -> String {
    opened.name.display().to_string()
}

/// Whether the remote source serves byte ranges for the disk (`true` for local files).
pub fn serves_ranges(opened: &Opened) -> Result<bool> {
    match &opened.remote {
        Some(r) => Ok(r
            .probe(&opened.name)
            .with_context(|| format!("reading {}", opened.name.display()))?
            .0),
        None => Ok(true),
    }
}
