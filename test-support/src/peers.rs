//! The peer readers, for the interop tests of both crates: qemu-img and the Python readers of
//! `scripts/readers.py` (libvmdk-python, dissect.hypervisor), and sha256 of what they read.
//! A missing peer fails the tests loudly (scripts/setup.sh installs them), it never skips them.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use sha2::{Digest, Sha256};

/// The program `name` on `PATH`; missing is a failure.
pub fn tool(name: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join(name))
        .find(|p| p.is_file());
    found.unwrap_or_else(|| {
        panic!("{name} not found on PATH: run scripts/setup.sh (apt-get install -y qemu-utils)")
    })
}

/// `out`, which must come from a command that succeeded (`what` names it otherwise).
pub fn succeeded(out: Output, what: &str) -> Output {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs qemu-img with `args` in `dir`, which must succeed.
pub fn qemu_img(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new(tool("qemu-img"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    succeeded(out, &format!("qemu-img {}", args.join(" ")))
}

pub fn sha256(path: &Path) -> String {
    let mut f = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    format!("{:x}", h.finalize())
}

pub fn sha256_bytes(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// sha256 of the first `len` bytes of a file.
pub fn sha256_prefix(path: &Path, len: u64) -> String {
    let f = File::open(path).unwrap();
    let mut h = Sha256::new();
    let mut r = f.take(len);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = r.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    format!("{:x}", h.finalize())
}

/// qemu-img's raw reading of `input`, hashed.
pub fn qemu_raw_sha(dir: &Path, input: &str) -> String {
    let reference = format!("{input}.qemu-reference.raw");
    qemu_img(
        dir,
        &["convert", "-f", "vmdk", "-O", "raw", input, &reference],
    );
    let sha = sha256(&dir.join(&reference));
    std::fs::remove_file(dir.join(&reference)).unwrap();
    sha
}

/// What qemu-img makes of `file`: the sha256 of its raw reading, or its error.
pub fn qemu_reading(dir: &Path, file: &str) -> Result<String, String> {
    let raw = format!("{file}.qemu.raw");
    let out = Command::new(tool("qemu-img"))
        .args(["convert", "-f", "vmdk", "-O", "raw", file, &raw])
        .current_dir(dir)
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let sha = sha256(&dir.join(&raw));
    std::fs::remove_file(dir.join(&raw)).unwrap();
    Ok(sha)
}

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The Python with libvmdk-python and dissect.hypervisor: `$OVF_DISK_PYTHON` or `.venv`.
/// Missing is a failure, never a skip.
pub fn python() -> PathBuf {
    let p = std::env::var_os("OVF_DISK_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join(".venv/bin/python"));
    assert!(p.is_file(), "{} not found: run scripts/setup.sh, which creates .venv with libvmdk-python and dissect.hypervisor", p.display());
    p
}

/// sha256 of `file` as (libvmdk, dissect) read it, each with the size it reports. `limit` hashes
/// only a prefix (dissect cannot read a last partial grain).
pub fn peer_shas(dir: &Path, file: &str, limit: Option<u64>) -> Vec<(String, u64, String)> {
    peer_shas_of(dir, file, limit, None)
}

/// Like [`peer_shas`], with one reader only (`libvmdk` or `dissect`).
pub fn peer_shas_of(
    dir: &Path,
    file: &str,
    limit: Option<u64>,
    reader: Option<&str>,
) -> Vec<(String, u64, String)> {
    peer_results_of(dir, file, limit, reader)
        .into_iter()
        .map(|(reader, result)| {
            let (size, sha) = result.unwrap_or_else(|e| panic!("{file}: {reader}: {e}"));
            (reader, size, sha)
        })
        .collect()
}

/// What one reader made of a disk: its capacity and the sha256 of its bytes, or its error.
pub type PeerResult = Result<(u64, String), String>;

/// What each independent reader (libvmdk, dissect) makes of `file`, by reader name.
pub fn peer_results(dir: &Path, file: &str) -> Vec<(String, PeerResult)> {
    peer_results_of(dir, file, None, None)
}

/// Like [`peer_results`], hashing the first `limit` bytes only, with one reader only.
pub fn peer_results_of(
    dir: &Path,
    file: &str,
    limit: Option<u64>,
    reader: Option<&str>,
) -> Vec<(String, PeerResult)> {
    let mut cmd = Command::new(python());
    cmd.arg(repo().join("scripts/readers.py")).current_dir(dir);
    if let Some(r) = reader {
        cmd.args(["--reader", r]);
    }
    if let Some(l) = limit {
        cmd.args(["--limit", &l.to_string()]);
    }
    let out = succeeded(
        cmd.arg(file).output().unwrap(),
        &format!("readers.py {file}"),
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let reader = v["reader"].as_str().unwrap().to_string();
            let result = match v.get("error") {
                Some(e) => Err(e.to_string()),
                None => Ok((
                    v["size"].as_u64().unwrap(),
                    v["sha256"].as_str().unwrap().to_string(),
                )),
            };
            (reader, result)
        })
        .collect()
}
