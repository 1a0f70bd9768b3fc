//! Real HTTP servers on the loopback for the remote-reading tests, started by the tests
//! themselves: nginx (Debian's `nginx-light`) serving a folder with byte ranges, optionally over
//! TLS with a certificate made by openssl, with basic authentication and a rate limit per
//! connection; and `fault_server.py`, which misbehaves on purpose (dropped connections, short
//! bodies, 503, 429, stalls, no ranges, 416, 401). A missing nginx or openssl fails the test
//! (scripts/setup.sh installs them); it never skips it.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::peers::{repo, succeeded};

/// How an nginx is set up.
#[derive(Clone, Debug, Default)]
pub struct NginxOptions {
    /// Serve HTTPS with a self-signed certificate for 127.0.0.1 (see [`Nginx::cert`]).
    pub tls: bool,
    /// Require basic authentication as this user and password.
    pub basic_auth: Option<(String, String)>,
    /// nginx's `limit_rate` per connection (`25m` for 25 MB/s).
    pub limit_rate: Option<String>,
    /// Require the cookie `vmware_soap_session` with this value (ESXi's session), else 401.
    pub session_cookie: Option<String>,
    /// Pass every request to this upstream (`http://127.0.0.1:PORT`) with its `Host` header,
    /// instead of serving the folder: TLS in front of moto, as S3 is reached.
    pub proxy: Option<String>,
}

/// A running nginx serving a folder; stopped when dropped.
#[derive(Debug)]
pub struct Nginx {
    child: Child,
    dir: tempfile_dir::Dir,
    /// The port on 127.0.0.1.
    pub port: u16,
    /// Whether it speaks TLS.
    pub tls: bool,
}

/// A program from `PATH` or the system folders root's `PATH` has (`/usr/sbin`).
fn program(name: &str) -> PathBuf {
    ["/usr/sbin", "/usr/bin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| crate::peers::tool(name))
}

/// A free port on the loopback (the listener is closed before the server binds it).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Waits until something accepts connections on `port`.
fn wait_listening(port: u16, child: &mut Child, what: &str) {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited ({status}) before listening on {port}");
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{what} is not listening on {port}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Nginx {
    /// Starts nginx serving `root` with `options`.
    pub fn start(root: &Path, options: &NginxOptions) -> Self {
        let dir = tempfile_dir::Dir::new("nginx");
        let d = dir.path();
        for sub in ["logs", "tmp"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let mut server = String::new();
        if options.tls {
            certificates(d);
            server.push_str(&format!(
                "ssl_certificate {0}/cert.pem; ssl_certificate_key {0}/key.pem;\n",
                d.display()
            ));
        }
        if let Some((user, password)) = &options.basic_auth {
            let out = Command::new(program("openssl"))
                .args(["passwd", "-apr1", password])
                .output()
                .unwrap();
            let hash = String::from_utf8(succeeded(out, "openssl passwd").stdout).unwrap();
            std::fs::write(d.join("htpasswd"), format!("{user}:{}", hash.trim())).unwrap();
            server.push_str(&format!(
                "auth_basic \"test\"; auth_basic_user_file {}/htpasswd;\n",
                d.display()
            ));
        }
        if let Some(cookie) = &options.session_cookie {
            server.push_str(&format!(
                "if ($cookie_vmware_soap_session != \"{cookie}\") {{ return 401; }}\n"
            ));
        }
        if let Some(rate) = &options.limit_rate {
            server.push_str(&format!("limit_rate {rate};\n"));
        }
        // Several tries: the port is free when chosen, but another test may take it first.
        for _ in 0..5 {
            let port = free_port();
            let listen = match options.tls {
                true => format!("127.0.0.1:{port} ssl"),
                false => format!("127.0.0.1:{port}"),
            };
            let conf = format!(
                "daemon off; pid {d}/nginx.pid; error_log {d}/logs/error.log; worker_processes 2;\n\
                 events {{ worker_connections 256; }}\n\
                 http {{\n\
                 log_format bytes '$request $status $body_bytes_sent';\n\
                 access_log {d}/logs/access.log bytes;\n\
                 client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp;\n\
                 uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;\n\
                 default_type application/octet-stream; keepalive_requests 100000;\n\
                 server {{ listen {listen}; root {root}; {server} {location} }}\n}}\n",
                d = d.display(),
                root = root.display(),
                location = match &options.proxy {
                    Some(up) => format!(
                        "client_max_body_size 0; location / {{ proxy_pass {up}; \
                         proxy_set_header Host $host; proxy_request_buffering off; \
                         proxy_buffering off; }}"
                    ),
                    None => String::new(),
                },
            );
            std::fs::write(d.join("nginx.conf"), conf).unwrap();
            let mut child = Command::new(program("nginx"))
                .arg("-c")
                .arg(d.join("nginx.conf"))
                .arg("-p")
                .arg(d)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("nginx starts (scripts/setup.sh installs nginx-light)");
            std::thread::sleep(Duration::from_millis(50));
            if let Ok(Some(_)) = child.try_wait() {
                continue;
            }
            wait_listening(port, &mut child, "nginx");
            return Self {
                child,
                dir,
                port,
                tls: options.tls,
            };
        }
        panic!(
            "nginx did not start: {}",
            std::fs::read_to_string(d.join("logs/error.log")).unwrap_or_default()
        );
    }

    /// The URL of `name` under the served folder.
    pub fn url(&self, name: &str) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}/{name}", self.port)
    }

    /// The PEM certificate of the CA that signed a TLS server's certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The PEM certificate a TLS server presents.
    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// `sha256:HEX` of the certificate, as openssl prints it.
    pub fn thumbprint(&self) -> String {
        let out = Command::new(program("openssl"))
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
            .arg(self.cert())
            .output()
            .unwrap();
        let text = String::from_utf8(succeeded(out, "openssl x509").stdout).unwrap();
        let hex = text.trim().rsplit('=').next().unwrap().replace(':', "");
        format!("sha256:{}", hex.to_lowercase())
    }

    /// Body bytes sent so far, and requests answered, from the access log.
    pub fn sent(&self) -> (u64, u64) {
        let log =
            std::fs::read_to_string(self.dir.path().join("logs/access.log")).unwrap_or_default();
        log.lines().fold((0, 0), |(bytes, n), line| {
            let b = line
                .rsplit(' ')
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            (bytes + b, n + 1)
        })
    }

    /// Bytes of response bodies sent for requests of `path` (the URI without its query).
    pub fn sent_for(&self, path: &str) -> u64 {
        self.log()
            .lines()
            .filter(|l| {
                l.split(' ')
                    .nth(1)
                    .is_some_and(|uri| uri.split('?').next() == Some(path))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }

    /// The access log: one line per request, `METHOD URI PROTOCOL STATUS BYTES`.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("logs/access.log")).unwrap_or_default()
    }

    /// Clears the access log (nginx keeps appending to the same file).
    pub fn clear_log(&self) {
        std::fs::write(self.dir.path().join("logs/access.log"), "").unwrap();
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A certificate for 127.0.0.1 and localhost in `dir` (cert.pem, key.pem), signed by a CA of
/// its own (ca.pem, ca-key.pem): a CA certificate may not serve as a server's own (webpki
/// refuses it); and a client certificate the same CA signed (client-cert.pem, client-key.pem).
pub fn certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new(program("openssl"))
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        succeeded(out, &format!("openssl {}", args.join(" ")));
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test CA",
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca.pem",
    ]);
    // A key and a certificate the CA signs: `{prefix}key.pem`, `{prefix}cert.pem`.
    let leaf = |prefix: &str, subject: &str, extensions: &str| {
        let (key, req, ext, cert) = (
            format!("{prefix}key.pem"),
            format!("{prefix}req.pem"),
            format!("{prefix}ext.cnf"),
            format!("{prefix}cert.pem"),
        );
        openssl(&[
            "req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", &key, "-out", &req,
        ]);
        std::fs::write(dir.join(&ext), extensions).unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            &req,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &cert,
        ]);
    };
    leaf(
        "",
        "/CN=127.0.0.1",
        // And the names S3's virtual-host style uses (a bucket's host in us-east-1), for
        // nginx in front of moto.
        "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost,\
         DNS:*.s3.us-east-1.amazonaws.com,DNS:s3.us-east-1.amazonaws.com\n",
    );
    leaf(
        "client-",
        "/CN=test client",
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    );
}

/// A running `fault_server.py`; stopped when dropped.
#[derive(Debug)]
pub struct FaultServer {
    child: Child,
    /// The port on 127.0.0.1.
    pub port: u16,
}

impl FaultServer {
    /// Starts the fault server over the files of `root`.
    pub fn start(root: &Path) -> Self {
        let mut child = Command::new(program("python3"))
            .arg(repo().join("test-support/fault_server.py"))
            .arg("--root")
            .arg(root)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs fault_server.py");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .parse()
            .expect("fault_server.py prints its port");
        wait_listening(port, &mut child, "fault_server.py");
        Self { child, port }
    }

    /// The URL of `name` served with `fault`.
    pub fn url(&self, fault: &str, name: &str) -> String {
        format!("http://127.0.0.1:{}/{fault}/{name}", self.port)
    }
}

impl Drop for FaultServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// moto's S3 server (PyPI `moto[server]`, installed in `.venv` by scripts/setup.sh) on the
/// loopback, a stand-in for S3 that the tests check with boto3, an independent client;
/// stopped when dropped.
#[derive(Debug)]
pub struct MotoServer {
    child: Child,
    /// The endpoint, `http://127.0.0.1:PORT`.
    pub endpoint: String,
}

/// The environment every S3 client of the tests gets: made-up credentials and a region.
pub const AWS_ENV: [(&str, &str); 3] = [
    ("AWS_ACCESS_KEY_ID", "AKIDTESTONLY"),
    ("AWS_SECRET_ACCESS_KEY", "test-secret-never-printed"),
    ("AWS_REGION", "us-east-1"),
];

impl MotoServer {
    /// Starts moto's server.
    pub fn start() -> Self {
        let venv = crate::peers::python();
        let bin = venv.parent().unwrap().join("moto_server");
        assert!(
            bin.is_file(),
            "{} not found: run scripts/setup.sh",
            bin.display()
        );
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new(&bin)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("moto_server starts");
            std::thread::sleep(Duration::from_millis(100));
            if let Ok(Some(_)) = child.try_wait() {
                continue;
            }
            wait_listening(port, &mut child, "moto_server");
            return Self {
                child,
                endpoint: format!("http://127.0.0.1:{port}"),
            };
        }
        panic!("moto_server did not start");
    }

    /// Runs `script` with boto3 (`s3` is a client of this server), which must succeed; its
    /// standard output.
    pub fn boto3(&self, script: &str) -> String {
        let program = format!(
            "import boto3, sys\ns3 = boto3.client('s3', endpoint_url='{}', region_name='us-east-1')\n{script}\n",
            self.endpoint
        );
        let out = Command::new(crate::peers::python())
            .arg("-c")
            .arg(program)
            .envs(AWS_ENV)
            .output()
            .unwrap();
        String::from_utf8(succeeded(out, "boto3").stdout).unwrap()
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A temporary folder removed when dropped (test-support depends on no tempfile crate).
mod tempfile_dir {
    use std::path::{Path, PathBuf};

    #[derive(Debug)]
    pub struct Dir(PathBuf);

    impl Dir {
        pub fn new(what: &str) -> Self {
            use std::sync::atomic::{AtomicU64, Ordering};
            static N: AtomicU64 = AtomicU64::new(0);
            let p = std::env::temp_dir().join(format!(
                "{what}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&p);
            std::fs::create_dir_all(&p).unwrap();
            Self(p)
        }

        pub fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}
