//! `serve`: disks served read-only over NBD to real clients, started by the tests: nbdinfo and
//! nbdcopy (libnbd-bin) and qemu-img read every layout, a VM folder's disks and an OVA's to the
//! bytes qemu-img reads from the local files; `nbdinfo --map` agrees with `qemu-img map`; many
//! clients at once; a client that sends garbage, asks past the end or too much gets an error or
//! is dropped while the others are served on. nbdinfo, nbdcopy and qemu-img are required
//! (scripts/setup.sh installs libnbd-bin): missing, the tests fail.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// A running `ovf-disk serve`, killed when dropped.
struct Serve {
    child: Child,
    socket: PathBuf,
}

impl Serve {
    fn start(dir: &Path, inputs: &[&str]) -> Self {
        Self::start_with(dir, &[], inputs)
    }

    /// With `options` before the inputs.
    fn start_with(dir: &Path, options: &[&str], inputs: &[&str]) -> Self {
        let socket = dir.join("nbd.sock");
        let _ = std::fs::remove_file(&socket);
        let mut child = Command::new(env!("CARGO_BIN_EXE_ovf-disk"))
            .arg("serve")
            .arg("--nbd")
            .arg(format!("unix:{}", socket.display()))
            .args(options)
            .args(inputs)
            .current_dir(dir)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            if let Some(status) = child.try_wait().unwrap() {
                let mut err = String::new();
                child
                    .stderr
                    .take()
                    .unwrap()
                    .read_to_string(&mut err)
                    .unwrap();
                panic!("serve exited ({status}): {err}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "serve is not listening"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, socket }
    }

    fn uri(&self, export: &str) -> String {
        format!("nbd+unix:///{export}?socket={}", self.socket.display())
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// nbdcopy of `uri` into a file of `dir`: its sha256.
fn nbdcopy_sha(dir: &Path, uri: &str) -> String {
    let out = dir.join("nbdcopy.raw");
    let _ = std::fs::remove_file(&out);
    run_ok(dir, "nbdcopy", &[uri, out.to_str().unwrap()]);
    let sha = sha256(&out);
    std::fs::remove_file(&out).unwrap();
    sha
}

/// The data ranges of a map: (start, length) of each run of data, merged.
fn data_runs(entries: impl Iterator<Item = (u64, u64, bool)>) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for (start, len, data) in entries.filter(|e| e.2 && e.1 > 0) {
        let _ = data;
        match out.last_mut() {
            Some((s, l)) if *s + *l == start => *l += len,
            _ => out.push((start, len)),
        }
    }
    out
}

fn nbdinfo_map(uri: &str) -> Vec<(u64, u64)> {
    let out = run_ok(Path::new("."), "nbdinfo", &["--map", "--json", uri]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    data_runs(v.as_array().unwrap().iter().map(|e| {
        let t = e["type"].as_u64().unwrap();
        (
            e["offset"].as_u64().unwrap(),
            e["length"].as_u64().unwrap(),
            t == 0,
        )
    }))
}

fn qemu_map(dir: &Path, file: &str) -> Vec<(u64, u64)> {
    let out = qemu_img(dir, &["map", "--output=json", "-f", "vmdk", file]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    data_runs(v.as_array().unwrap().iter().map(|e| {
        (
            e["start"].as_u64().unwrap(),
            e["length"].as_u64().unwrap(),
            e["data"].as_bool().unwrap(),
        )
    }))
}

#[test]
fn every_layout_a_vm_folder_and_an_ova_are_served_as_qemu_reads_them() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    sample_raw(&dir.join("src.raw"), 24 << 20);
    qemu_to_vmdk(dir, "src.raw", "sparse.vmdk", "subformat=monolithicSparse");
    qemu_to_vmdk(
        dir,
        "src.raw",
        "qemu-stream.vmdk",
        "subformat=streamOptimized",
    );
    qemu_to_vmdk(dir, "src.raw", "flat.vmdk", "subformat=monolithicFlat");
    ours_stream(dir, "src.raw", "ours-stream.vmdk");
    qemu_delta(dir, "sparse.vmdk", "delta.vmdk");
    qemu_io(
        dir,
        "delta.vmdk",
        &["write -P 0x5a 1M 3M", "write -z 8M 2M"],
    );
    let disks = [
        "sparse.vmdk",
        "qemu-stream.vmdk",
        "flat.vmdk",
        "ours-stream.vmdk",
        "delta.vmdk",
    ];
    let serve = Serve::start(dir, &disks);
    let list = run_ok(dir, "nbdinfo", &["--list", &serve.uri("")]);
    for name in disks {
        assert!(
            list.contains(&format!("export=\"{name}\"")),
            "{name} not listed:\n{list}"
        );
    }
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    for name in disks {
        let want = qemu_raw_sha(dir, name);
        assert_eq!(nbdcopy_sha(w, &serve.uri(name)), want, "nbdcopy {name}");
        let out = w.join("qemu.raw");
        qemu_img(
            w,
            &[
                "convert",
                "-O",
                "raw",
                &serve.uri(name),
                out.to_str().unwrap(),
            ],
        );
        assert_eq!(sha256(&out), want, "qemu-img over NBD {name}");
        // Block status: the data nbdinfo maps is the data qemu-img maps in the local file
        // (zeroed grains are zero to both). A flat extent's holes (SEEK_HOLE) are holes to us
        // and data to qemu-img's VMDK driver: there ours is a subset of qemu-img's.
        let (ours, qemu) = (nbdinfo_map(&serve.uri(name)), qemu_map(dir, name));
        if name == "flat.vmdk" {
            let inside =
                |&(s, l): &(u64, u64)| qemu.iter().any(|&(qs, ql)| s >= qs && s + l <= qs + ql);
            assert!(
                ours.iter().all(inside),
                "{name}: {ours:?} not inside {qemu:?}"
            );
            assert!(
                ours.len() > 1,
                "{name}: the flat file's holes are not reported: {ours:?}"
            );
        } else {
            assert_eq!(ours, qemu, "{name}: maps differ");
        }
    }
    // The first disk is the default export too.
    assert_eq!(
        nbdcopy_sha(w, &serve.uri("")),
        qemu_raw_sha(dir, "sparse.vmdk")
    );
    // Three copies at once (nbdcopy opens several connections each).
    let handles: Vec<_> = ["sparse.vmdk", "delta.vmdk", "ours-stream.vmdk"]
        .iter()
        .map(|name| {
            let uri = serve.uri(name);
            let out = w.join(format!("{name}.par.raw"));
            std::thread::spawn(move || {
                run_ok(Path::new("."), "nbdcopy", &[&uri, out.to_str().unwrap()]);
                sha256(&out)
            })
        })
        .collect();
    for (h, name) in handles
        .into_iter()
        .zip(["sparse.vmdk", "delta.vmdk", "ours-stream.vmdk"])
    {
        assert_eq!(
            h.join().unwrap(),
            qemu_raw_sha(dir, name),
            "{name} in parallel"
        );
    }
    drop(serve);

    // A VM folder: one export per disk, named by device.
    let vm = tempfile::tempdir().unwrap();
    esxi_vm_folder(vm.path());
    let serve = Serve::start(vm.path(), &["web.vmx"]);
    assert_eq!(
        nbdcopy_sha(w, &serve.uri("scsi0:0")),
        qemu_raw_sha(vm.path(), "web-000002.vmdk")
    );
    assert_eq!(
        nbdcopy_sha(w, &serve.uri("scsi1:0")),
        qemu_raw_sha(vm.path(), "data.vmdk")
    );
    drop(serve);

    // An OVA: its disks served from inside the archive, named by disk id.
    ovf_disk_ok(dir, &["export", "-q", "src.raw", "app.ova"]);
    let serve = Serve::start(dir, &["app.ova"]);
    let list = run_ok(dir, "nbdinfo", &["--list", "--json", &serve.uri("")]);
    let v: serde_json::Value = serde_json::from_str(&list).unwrap();
    let name = v["exports"][0]["export-name"].as_str().unwrap().to_string();
    assert_eq!(
        nbdcopy_sha(w, &serve.uri(&name)),
        sha256(&dir.join("src.raw"))
    );
}

/// Talks NBD by hand: the handshake up to `NBD_OPT_GO` with structured replies, then requests.
struct RawClient(std::os::unix::net::UnixStream);

impl RawClient {
    fn connect(socket: &Path) -> Self {
        let s = std::os::unix::net::UnixStream::connect(socket).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Self(s)
    }

    fn read(&mut self, n: usize) -> Vec<u8> {
        let mut b = vec![0u8; n];
        self.0.read_exact(&mut b).unwrap();
        b
    }

    fn option(&mut self, option: u32, data: &[u8]) {
        let mut o = 0x4948_4156_454f_5054u64.to_be_bytes().to_vec();
        o.extend_from_slice(&option.to_be_bytes());
        o.extend_from_slice(&(data.len() as u32).to_be_bytes());
        o.extend_from_slice(data);
        self.0.write_all(&o).unwrap();
    }

    /// Option replies until the ACK (or an error): their types.
    fn replies(&mut self) -> Vec<u32> {
        let mut kinds = Vec::new();
        loop {
            let h = self.read(20);
            let kind = u32::from_be_bytes(h[12..16].try_into().unwrap());
            let len = u32::from_be_bytes(h[16..20].try_into().unwrap());
            self.read(len as usize);
            kinds.push(kind);
            if kind == 1 || kind & (1 << 31) != 0 {
                return kinds;
            }
        }
    }

    fn go(socket: &Path, export: &str) -> Self {
        let mut c = Self::connect(socket);
        let hello = c.read(18);
        assert_eq!(&hello[..8], b"NBDMAGIC");
        c.0.write_all(&3u32.to_be_bytes()).unwrap();
        c.option(8, &[]);
        assert_eq!(c.replies(), [1]);
        let mut go = (export.len() as u32).to_be_bytes().to_vec();
        go.extend_from_slice(export.as_bytes());
        go.extend_from_slice(&0u16.to_be_bytes());
        c.option(7, &go);
        assert_eq!(*c.replies().last().unwrap(), 1);
        c
    }

    /// Sends a request; the reply's (type, error or 0).
    fn request(&mut self, kind: u16, offset: u64, length: u32) -> (u16, u32) {
        let mut r = 0x2560_9513u32.to_be_bytes().to_vec();
        r.extend_from_slice(&0u16.to_be_bytes());
        r.extend_from_slice(&kind.to_be_bytes());
        r.extend_from_slice(&7u64.to_be_bytes());
        r.extend_from_slice(&offset.to_be_bytes());
        r.extend_from_slice(&length.to_be_bytes());
        self.0.write_all(&r).unwrap();
        let h = self.read(20);
        assert_eq!(u32::from_be_bytes(h[..4].try_into().unwrap()), 0x668e_33ef);
        let t = u16::from_be_bytes(h[6..8].try_into().unwrap());
        let len = u32::from_be_bytes(h[16..20].try_into().unwrap());
        let body = self.read(len as usize);
        let error = match t & (1 << 15) {
            0 => 0,
            _ => u32::from_be_bytes(body[..4].try_into().unwrap()),
        };
        (t, error)
    }
}

#[test]
fn hostile_clients_get_errors_or_are_dropped_and_others_are_served() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    sample_raw(&dir.join("src.raw"), 4 << 20);
    qemu_to_vmdk(dir, "src.raw", "disk.vmdk", "subformat=monolithicSparse");
    let serve = Serve::start(dir, &["disk.vmdk"]);
    let want = sha256(&dir.join("src.raw"));
    // Garbage instead of the client flags and options: dropped.
    for garbage in [
        &b"\xff\xff\xff\xff"[..],
        b"\0\0\0\x03GARBAGE-GARBAGE-GARBAGE",
        b"\0\0\0\x03IHAVEOPT\0\0\0\x07\xff\xff\xff\xff",
    ] {
        let mut c = RawClient::connect(&serve.socket);
        c.read(18);
        c.0.write_all(garbage).unwrap();
        let mut rest = Vec::new();
        let _ = c.0.read_to_end(&mut rest);
        assert!(
            rest.len() < 64,
            "{garbage:?} was answered with {} bytes",
            rest.len()
        );
    }
    // An unknown export, an unknown option: errors, the connection stays usable.
    let mut c = RawClient::connect(&serve.socket);
    c.read(18);
    c.0.write_all(&3u32.to_be_bytes()).unwrap();
    c.option(7, b"\0\0\0\x04nope\0\0");
    assert_eq!(c.replies(), [(1 << 31) | 6]);
    c.option(99, b"");
    assert_eq!(c.replies(), [(1 << 31) | 1]);
    // Requests past the end, too large, writes, unknown commands: errors, and reads go on.
    let mut c = RawClient::go(&serve.socket, "");
    assert_eq!(c.request(0, 4 << 20, 512), (32769, 22), "past the end");
    assert_eq!(
        c.request(0, u64::MAX - 10, 512),
        (32769, 22),
        "offset overflow"
    );
    assert_eq!(
        c.request(0, 0, 64 << 20),
        (32769, 75),
        "larger than the maximum"
    );
    assert_eq!(
        c.request(4, 0, 512),
        (32769, 1),
        "trim on a read-only export"
    );
    assert_eq!(c.request(42, 0, 512), (32769, 22), "unknown command");
    assert_eq!(
        c.request(7, 0, 512),
        (32769, 22),
        "block status without the context"
    );
    assert_eq!(c.request(0, 0, 4096), (1, 0), "a read still works");
    // A request with the wrong magic: dropped.
    c.0.write_all(&[0u8; 28]).unwrap();
    let mut rest = Vec::new();
    let _ = c.0.read_to_end(&mut rest);
    assert!(rest.is_empty());
    // A client that disconnects in the middle of a request.
    let mut c = RawClient::go(&serve.socket, "");
    c.0.write_all(&0x2560_9513u32.to_be_bytes()).unwrap();
    drop(c);
    // The others are served on.
    let w = tempfile::tempdir().unwrap();
    assert_eq!(nbdcopy_sha(w.path(), &serve.uri("")), want);
}

#[test]
fn tcp_binds_the_loopback_when_only_a_port_is_given() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    sample_raw(&dir.join("src.raw"), 2 << 20);
    qemu_to_vmdk(dir, "src.raw", "disk.vmdk", "subformat=streamOptimized");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ovf-disk"))
        .args(["serve", "--nbd", &format!("tcp:{port}"), "disk.vmdk"])
        .current_dir(dir)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(20));
    }
    let w = tempfile::tempdir().unwrap();
    let sha = nbdcopy_sha(w.path(), &format!("nbd://127.0.0.1:{port}/disk.vmdk"));
    // Only the loopback: the same port on another local address is not ours.
    let ss = run_ok(dir, "ss", &["-ltn"]);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(sha, sha256(&dir.join("src.raw")));
    assert!(ss.contains(&format!("127.0.0.1:{port}")), "{ss}");
    assert!(
        !ss.contains(&format!("0.0.0.0:{port}")) && !ss.contains(&format!("*:{port}")),
        "{ss}"
    );
}

/// A flat extent whose first MiB can be read only once its second MiB has been (or the gate
/// gives up and the read fails): a connection whose requests are answered in order can never
/// answer a read of the first MiB sent before a read of the second.
#[derive(Debug)]
struct Gate {
    opened: std::sync::Mutex<bool>,
    cv: std::sync::Condvar,
    patience: Duration,
}

#[derive(Debug, Clone)]
struct GatedFiles(std::sync::Arc<Gate>);

const GATED_DESCRIPTOR: &str = "# Disk DescriptorFile\nversion=1\nCID=fffffffe\n\
    parentCID=ffffffff\ncreateType=\"monolithicFlat\"\n\nRW 4096 FLAT \"gated-flat.vmdk\" 0\n\n\
    ddb.adapterType = \"lsilogic\"\n";

impl vmdk::ReadAt for GatedFiles {
    fn read_at(&self, pos: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        let gate = &self.0;
        let mut opened = gate.opened.lock().unwrap();
        if pos >= 1 << 20 {
            *opened = true;
            gate.cv.notify_all();
        } else {
            let (o, timeout) = gate
                .cv
                .wait_timeout_while(opened, gate.patience, |o| !*o)
                .unwrap();
            opened = o;
            if timeout.timed_out() && !*opened {
                return Err(std::io::Error::other("the gate was never opened"));
            }
        }
        drop(opened);
        let end = (pos + buf.len() as u64).min(2 << 20);
        let n = end.saturating_sub(pos) as usize;
        buf[..n].fill((pos >> 20) as u8 + 1);
        Ok(n)
    }
}

impl vmdk::Files for GatedFiles {
    fn open(&self, path: &Path) -> vmdk::Result<vmdk::Backing> {
        match path.file_name().and_then(|n| n.to_str()) {
            Some("gated-flat.vmdk") => Ok(vmdk::Backing::new(path, self.clone(), 2 << 20)),
            _ => Ok(vmdk::Backing::from_bytes(
                path,
                GATED_DESCRIPTOR.as_bytes().to_vec(),
            )),
        }
    }
}

/// Sends READ requests (handle, offset, length) at once, then reads every reply:
/// (handle, error or 0, first data byte).
fn pipelined(c: &mut RawClient, reads: &[(u64, u64, u32)]) -> Vec<(u64, u32, u8)> {
    for &(handle, offset, length) in reads {
        let mut r = 0x2560_9513u32.to_be_bytes().to_vec();
        r.extend_from_slice(&0u16.to_be_bytes());
        r.extend_from_slice(&0u16.to_be_bytes());
        r.extend_from_slice(&handle.to_be_bytes());
        r.extend_from_slice(&offset.to_be_bytes());
        r.extend_from_slice(&length.to_be_bytes());
        c.0.write_all(&r).unwrap();
    }
    (0..reads.len())
        .map(|_| {
            let h = c.read(20);
            let t = u16::from_be_bytes(h[6..8].try_into().unwrap());
            let handle = u64::from_be_bytes(h[8..16].try_into().unwrap());
            let body = c.read(u32::from_be_bytes(h[16..20].try_into().unwrap()) as usize);
            match t & (1 << 15) {
                0 => (handle, 0, body[8]),
                _ => (handle, u32::from_be_bytes(body[..4].try_into().unwrap()), 0),
            }
        })
        .collect()
}

/// Requests of one connection are answered in parallel (the library's server, on a Unix
/// socket): a read that waits for a later one is answered once that one is read. Answered one
/// at a time (`threads_per_connection(1)`), the same reads fail: the
/// first waits for the second, which is never read, until the gate gives up.
#[test]
fn one_connections_requests_are_answered_in_parallel() {
    let d = tempfile::tempdir().unwrap();
    for (threads, patience) in [(4, 20), (1, 2)] {
        let files = GatedFiles(std::sync::Arc::new(Gate {
            opened: std::sync::Mutex::new(false),
            cv: std::sync::Condvar::new(),
            patience: Duration::from_secs(patience),
        }));
        let disk = vmdk::OpenOptions::new()
            .files(files)
            .open("/gated/gated.vmdk")
            .unwrap();
        let server = ovf_disk::nbd::Server::new(vec![("gated".into(), disk)])
            .threads_per_connection(threads);
        let socket = d.path().join(format!("gated-{threads}.sock"));
        let listen = ovf_disk::nbd::Listen::Unix(socket.clone());
        let stop = std::sync::atomic::AtomicBool::new(false);
        let replies = std::thread::scope(|scope| {
            scope.spawn(|| server.run(&listen, &stop).unwrap());
            let started = Instant::now();
            while std::os::unix::net::UnixStream::connect(&socket).is_err() {
                assert!(started.elapsed() < Duration::from_secs(20));
                std::thread::sleep(Duration::from_millis(10));
            }
            let mut c = RawClient::go(&socket, "gated");
            c.0.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let replies = pipelined(&mut c, &[(1, 0, 4096), (2, 1 << 20, 4096)]);
            drop(c);
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            // Wakes the accept loop, which then sees `stop`.
            let _ = std::os::unix::net::UnixStream::connect(&socket);
            replies
        });
        match threads {
            // Both with their data: the first was answered once the second had been read (its
            // reply may still leave first, whichever thread takes the writer's lock first).
            4 => {
                let mut sorted = replies.clone();
                sorted.sort_unstable();
                assert_eq!(sorted, [(1, 0, 1), (2, 0, 2)], "{replies:?}");
            }
            // In order, and the first an I/O error (5): it could not wait for the second.
            _ => assert_eq!(replies, [(1, 5, 0), (2, 0, 2)]),
        }
    }
}

/// A PKI for the TLS tests: the server's certificate (pki/cert.pem, key.pem, ca.pem), and the
/// folders libnbd's `tls-certificates` and qemu's `tls-creds-x509` read: the CA alone, and the
/// CA with a client certificate.
fn tls_folders(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let pki = dir.join("pki");
    let ca_only = dir.join("ca-only");
    let with_client = dir.join("with-client");
    for d in [&pki, &ca_only, &with_client] {
        std::fs::create_dir_all(d).unwrap();
    }
    test_support::http::certificates(&pki);
    std::fs::copy(pki.join("ca.pem"), ca_only.join("ca-cert.pem")).unwrap();
    std::fs::copy(pki.join("ca.pem"), with_client.join("ca-cert.pem")).unwrap();
    for f in ["client-cert.pem", "client-key.pem"] {
        std::fs::copy(pki.join(f), with_client.join(f)).unwrap();
    }
    (pki, ca_only, with_client)
}

/// `serve --tls-cert/--tls-key`: clients must start TLS; nbdinfo, nbdcopy and qemu-img read
/// through it to qemu-img's bytes; plaintext clients get nothing; with --tls-client-ca a
/// client without a certificate the CA signed is refused; a TCP address off the loopback is
/// refused without TLS unless --allow-plaintext.
#[test]
fn tls_is_required_when_offered_and_real_clients_read_through_it() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    sample_raw(&dir.join("src.raw"), 8 << 20);
    qemu_to_vmdk(dir, "src.raw", "disk.vmdk", "subformat=streamOptimized");
    let want = sha256(&dir.join("src.raw"));
    let (pki, ca_only, with_client) = tls_folders(dir);
    let (cert, key, ca) = (
        pki.join("cert.pem"),
        pki.join("key.pem"),
        pki.join("ca.pem"),
    );
    let tls = [
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ];
    {
        let serve = Serve::start_with(dir, &tls, &["disk.vmdk"]);
        let uri = format!(
            "nbds+unix:///disk.vmdk?socket={}&tls-certificates={}",
            serve.socket.display(),
            ca_only.display()
        );
        let info = run_ok(dir, "nbdinfo", &[&uri]);
        assert!(info.contains("with TLS"), "{info}");
        let w = tempfile::tempdir().unwrap();
        assert_eq!(nbdcopy_sha(w.path(), &uri), want);
        let plain = Command::new("nbdinfo")
            .arg(serve.uri("disk.vmdk"))
            .output()
            .unwrap();
        assert!(!plain.status.success(), "a plaintext client was served");
        // By hand: before STARTTLS, options are refused with NBD_REP_ERR_TLS_REQD (2^31 + 5)
        // and NBD_OPT_EXPORT_NAME (which has no error reply) ends the connection.
        let mut c = RawClient::connect(&serve.socket);
        c.read(18);
        c.0.write_all(&3u32.to_be_bytes()).unwrap();
        c.option(7, b"\0\0\0\x09disk.vmdk\0\0");
        assert_eq!(c.replies(), [(1 << 31) | 5]);
        c.option(3, b"");
        assert_eq!(c.replies(), [(1 << 31) | 5]);
        c.option(5, b"x");
        assert_eq!(c.replies(), [(1 << 31) | 3], "STARTTLS with a payload");
        c.option(1, b"disk.vmdk");
        let mut rest = Vec::new();
        let _ = c.0.read_to_end(&mut rest);
        assert!(rest.is_empty(), "EXPORT_NAME before TLS was answered");
    }
    // Over TCP, the server asking for client certificates: qemu-img with its tls-creds object.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("tcp:127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ovf-disk"))
        .args(["serve", "--nbd", &listen])
        .args(tls)
        .args(["--tls-client-ca", ca.to_str().unwrap(), "disk.vmdk"])
        .current_dir(dir)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(20));
    }
    let object = format!(
        "tls-creds-x509,id=tls0,endpoint=client,dir={}",
        with_client.display()
    );
    let image = format!(
        "driver=nbd,server.type=inet,server.host=127.0.0.1,server.port={port},\
         export=disk.vmdk,tls-creds=tls0"
    );
    run_ok(
        dir,
        "qemu-img",
        &[
            "convert",
            "--object",
            &object,
            "--image-opts",
            &image,
            "-O",
            "raw",
            "qemu.raw",
        ],
    );
    let tcp_uri = |folder: &Path| {
        format!(
            "nbds://127.0.0.1:{port}/disk.vmdk?tls-certificates={}",
            folder.display()
        )
    };
    let without = Command::new("nbdinfo")
        .arg(tcp_uri(&ca_only))
        .output()
        .unwrap();
    let with = Command::new("nbdinfo")
        .arg(tcp_uri(&with_client))
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(sha256(&dir.join("qemu.raw")), want);
    assert!(
        !without.status.success(),
        "a client without a certificate was served"
    );
    assert!(
        with.status.success(),
        "{}",
        String::from_utf8_lossy(&with.stderr)
    );
    // Off the loopback: refused without TLS, served with --allow-plaintext.
    let off = format!("tcp:0.0.0.0:{port}");
    let refused = ovf_disk(dir, &["serve", "--nbd", &off, "disk.vmdk"]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(
        err.contains("0.0.0.0") && err.contains("without TLS"),
        "{err}"
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_ovf-disk"))
        .args(["serve", "--nbd", &off, "--allow-plaintext", "disk.vmdk"])
        .current_dir(dir)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "--allow-plaintext did not listen"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}
