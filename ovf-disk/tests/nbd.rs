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
        let socket = dir.join("nbd.sock");
        let _ = std::fs::remove_file(&socket);
        let mut child = Command::new(env!("CARGO_BIN_EXE_ovf-disk"))
            .arg("serve")
            .arg("--nbd")
            .arg(format!("unix:{}", socket.display()))
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
