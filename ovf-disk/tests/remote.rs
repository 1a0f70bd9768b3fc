//! Disks read over HTTP(S): every layout of the corpus served by a real nginx on the loopback
//! gives the bytes qemu-img reads from the local copy; only what the disk holds is fetched (the
//! server's own access log); TLS verified, pinned or refused; credentials never shown; and a
//! server that drops connections, sends short bodies, answers 503 or 429, stalls, has no ranges
//! or refuses, each met as it should be (fault_server.py). nginx and openssl are required
//! (scripts/setup.sh installs them): missing, the tests fail. The cluster job contract
//! (`deploy/job.yaml`) is run here too: its exact argument list onto a loop device.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::path::Path;

use common::*;
use test_support::http::{FaultServer, Nginx, NginxOptions};

/// A folder of disks in every layout the corpus has, each with qemu-img's reading of it.
struct Corpus {
    dir: tempfile::TempDir,
    /// (name to open, sha256 of qemu-img's raw reading of the local file)
    disks: Vec<(String, String)>,
}

fn corpus() -> Corpus {
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
    qemu_to_vmdk(dir, "src.raw", "flat disk.vmdk", "subformat=monolithicFlat");
    qemu_to_vmdk(
        dir,
        "src.raw",
        "split.vmdk",
        "subformat=twoGbMaxExtentSparse",
    );
    ours_stream(dir, "src.raw", "ours-stream.vmdk");
    // A snapshot chain: a delta over the sparse base, some grains rewritten.
    qemu_delta(dir, "sparse.vmdk", "delta.vmdk");
    qemu_io(
        dir,
        "delta.vmdk",
        &[
            "write -P 0x5a 1M 3M",
            "write -P 0 8M 64k",
            "write -P 7 23M 1M",
        ],
    );
    // seSparse as ESXi writes it (dissect.hypervisor's sample, testdata/peers), behind a
    // descriptor.
    let gz = std::fs::read(repo().join("testdata/peers/sesparse.vmdk.gz")).unwrap();
    let mut extent = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut extent).unwrap();
    std::fs::write(dir.join("se-sesparse.vmdk"), extent).unwrap();
    let line = format!("RW {} SESPARSE \"se-sesparse.vmdk\"", 1u64 << 20);
    let text = builders::esx_descriptor("seSparse", 0x1234_5678, None, &[line]);
    std::fs::write(dir.join("se.vmdk"), text).unwrap();
    let names = [
        "sparse.vmdk",
        "qemu-stream.vmdk",
        "flat disk.vmdk",
        "split.vmdk",
        "ours-stream.vmdk",
        "delta.vmdk",
        "se.vmdk",
    ];
    let disks = names
        .iter()
        .map(|n| (n.to_string(), qemu_raw_sha(dir, n)))
        .collect();
    Corpus { dir: d, disks }
}

/// The URL path of a file name (spaces encoded, as a browser or curl would send them).
fn url_name(name: &str) -> String {
    name.replace(' ', "%20")
}

/// `ovf-disk inflate URL out.raw --json` in `dir`, which must succeed: the output's sha256 and
/// the JSON's `fetched` object.
fn inflate_url(dir: &Path, url: &str, extra: &[&str]) -> (String, serde_json::Value) {
    inflate_url_to(dir, url, "remote-out.raw", extra)
}

/// [`inflate_url`] to `out_name`.
fn inflate_url_to(
    dir: &Path,
    url: &str,
    out_name: &str,
    extra: &[&str],
) -> (String, serde_json::Value) {
    let mut args = vec!["inflate", "--json", "--force", url, out_name];
    args.extend(extra);
    let out = ovf_disk_ok(dir, &args);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sha = sha256(&dir.join(out_name));
    std::fs::remove_file(dir.join(out_name)).unwrap();
    // The shape JSON.md documents.
    let keys: Vec<_> = json["fetched"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        keys,
        ["bytes_fetched", "connections", "requests", "retries"],
        "{json}"
    );
    assert!(!json["input"].as_str().unwrap().contains('@'), "{json}");
    (sha, json["fetched"].clone())
}

#[test]
fn every_layout_over_http_reads_as_qemu_reads_the_local_file() {
    let c = corpus();
    let dir = c.dir.path();
    let nginx = Nginx::start(dir, &NginxOptions::default());
    let work = tempfile::tempdir().unwrap();
    for (name, want) in &c.disks {
        let url = nginx.url(&url_name(name));
        let (sha, fetched) = inflate_url(work.path(), &url, &[]);
        assert_eq!(&sha, want, "{name} over HTTP");
        assert!(fetched["bytes_fetched"].as_u64().unwrap() > 0, "{fetched}");
        assert_eq!(fetched["retries"], 0, "{name}: {fetched}");
        let info = ovf_disk_ok(work.path(), &["info", &url]);
        let text = String::from_utf8_lossy(&info.stdout);
        assert!(text.contains(&format!("file:         {url}")), "{text}");
        let check = ovf_disk(work.path(), &["check", &url]);
        assert!(
            check.status.success(),
            "check {name}: {}",
            String::from_utf8_lossy(&check.stdout)
        );
    }
    // convert reads URLs too.
    ovf_disk_ok(
        work.path(),
        &[
            "convert",
            "-q",
            "--to",
            "monolithicSparse",
            &nginx.url("delta.vmdk"),
            "c.vmdk",
        ],
    );
    qemu_same(
        work.path(),
        "c.vmdk",
        "vmdk",
        &dir.join("delta.vmdk").display().to_string(),
        "vmdk",
    );
    // What does not exist is an error naming the URL and the status.
    let missing = ovf_disk(work.path(), &["info", &nginx.url("missing.vmdk")]);
    let err = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(missing.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&nginx.url("missing.vmdk")) && err.contains("404"),
        "{err}"
    );
}

#[test]
fn only_what_the_disk_holds_is_fetched() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    // 10% allocated: 256 KiB of data in every 2.5 MiB of a 256 MiB disk.
    let f = std::fs::File::create(dir.join("thin.raw")).unwrap();
    f.set_len(256 << 20).unwrap();
    for i in 0..100u64 {
        std::os::unix::fs::FileExt::write_all_at(&f, &noise(i, 256 << 10), i * (2560 << 10))
            .unwrap();
    }
    qemu_to_vmdk(dir, "thin.raw", "thin.vmdk", "subformat=monolithicSparse");
    qemu_delta(dir, "thin.vmdk", "top.vmdk");
    qemu_io(
        dir,
        "top.vmdk",
        &["write -P 0x33 10M 5M", "write -P 0x44 200M 1M"],
    );
    let nginx = Nginx::start(dir, &NginxOptions::default());
    let work = tempfile::tempdir().unwrap();
    for (name, files) in [
        ("thin.vmdk", &["thin.vmdk"][..]),
        ("top.vmdk", &["thin.vmdk", "top.vmdk"][..]),
    ] {
        nginx.clear_log();
        let (sha, fetched) = inflate_url(work.path(), &nginx.url(name), &["--connections", "8"]);
        assert_eq!(sha, qemu_raw_sha(dir, name), "{name}");
        let (sent, requests) = nginx.sent();
        // The files hold the allocated grains and the metadata; nothing more may be fetched,
        // bar 1%.
        let size: u64 = files
            .iter()
            .map(|f| std::fs::metadata(dir.join(f)).unwrap().len())
            .sum();
        assert!(
            sent <= size + size / 100,
            "{name}: {sent} bytes sent for {size} bytes of files"
        );
        assert!(
            sent >= size * 9 / 10,
            "{name}: only {sent} of {size} bytes sent?"
        );
        // Our own count agrees with the server's.
        assert_eq!(
            fetched["bytes_fetched"].as_u64().unwrap(),
            sent,
            "{name}: {fetched}"
        );
        assert_eq!(
            fetched["requests"].as_u64().unwrap(),
            requests,
            "{name}: {fetched}"
        );
        // Large requests: at most one per 64 KiB on average.
        assert!(
            requests <= sent / (64 << 10) + 20,
            "{name}: {requests} requests for {sent} bytes"
        );
    }
}

#[test]
fn connections_are_capped_and_used() {
    let c = corpus();
    let nginx = Nginx::start(c.dir.path(), &NginxOptions::default());
    let work = tempfile::tempdir().unwrap();
    let url = nginx.url("flat%20disk.vmdk");
    let (_, one) = inflate_url(work.path(), &url, &["--connections", "1"]);
    assert_eq!(one["connections"], 1, "{one}");
    let (_, eight) = inflate_url(work.path(), &url, &["--connections", "8"]);
    let n = eight["connections"].as_u64().unwrap();
    assert!((2..=8).contains(&n), "{eight}");
}

const USER: &str = "root";
const PASSWORD: &str = "Sup3r-s3cret-pa55";

#[test]
fn tls_is_verified_pinned_or_refused_and_credentials_never_shown() {
    let c = corpus();
    let dir = c.dir.path();
    let nginx = Nginx::start(
        dir,
        &NginxOptions {
            tls: true,
            basic_auth: Some((USER.into(), PASSWORD.into())),
            ..NginxOptions::default()
        },
    );
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let want = &c.disks.iter().find(|(n, _)| n == "sparse.vmdk").unwrap().1;
    let url = nginx.url("sparse.vmdk");
    let with_user = url.replace("https://", &format!("https://{USER}:{PASSWORD}@"));
    let ca = nginx.ca().display().to_string();
    let creds = w.join("creds");
    std::fs::write(&creds, format!("user={USER}\npassword={PASSWORD}\n")).unwrap();
    let creds = creds.display().to_string();
    let mut shown = Vec::new();

    // Verified against the given CA, credentials from the URL, a file, or the environment.
    for args in [
        vec!["--ca-cert", &ca, &with_user],
        vec!["--ca-cert", &ca, "--credentials", &creds, &url],
        vec![
            "--tls-thumbprint",
            &nginx.thumbprint()[..],
            "--credentials",
            &creds,
            &url,
        ],
    ] {
        let mut all = vec!["inflate", "--json", "--force"];
        all.extend(&args);
        all.push("out.raw");
        let out = ovf_disk_ok(w, &all);
        assert_eq!(&sha256(&w.join("out.raw")), want, "{args:?}");
        shown.push(out);
    }
    let env_run = std::process::Command::new(env!("CARGO_BIN_EXE_ovf-disk"))
        .args(["info", "--ca-cert", &ca, &url])
        .env("OVF_DISK_USER", USER)
        .env("OVF_DISK_PASSWORD", PASSWORD)
        .current_dir(w)
        .output()
        .unwrap();
    shown.push(succeeded(
        env_run,
        "info with credentials from the environment",
    ));
    let insecure = ovf_disk_ok(w, &["info", "--insecure", &with_user]);
    assert!(String::from_utf8_lossy(&insecure.stderr).contains("warning: --insecure"));
    shown.push(insecure);

    // Refused: an unknown issuer, another thumbprint, a wrong password, no password. Nothing
    // is written.
    std::fs::remove_file(w.join("out.raw")).unwrap();
    let wrong_pin = format!("sha256:{}", "00".repeat(32));
    let bad_password = url.replace("https://", &format!("https://{USER}:not-{PASSWORD}@"));
    for (args, says) in [
        (vec![&with_user[..]], "certificate"),
        (
            vec!["--tls-thumbprint", &wrong_pin, &with_user],
            "thumbprint",
        ),
        (vec!["--ca-cert", &ca, &bad_password], "401"),
        (vec!["--ca-cert", &ca, &url], "401"),
    ] {
        let mut all = vec!["inflate"];
        all.extend(&args);
        all.push("out.raw");
        let out = ovf_disk(w, &all);
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(err.lines().count() <= 2, "{args:?}: one clear error: {err}");
        let left: Vec<_> = std::fs::read_dir(w)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(!w.join("out.raw").exists(), "{args:?}: {left:?}");
        shown.push(out);
    }
    // The password is nowhere: not in messages, JSON, or any file written.
    for out in &shown {
        for stream in [&out.stdout, &out.stderr] {
            let text = String::from_utf8_lossy(stream);
            assert!(!text.contains(PASSWORD), "the password was printed: {text}");
        }
    }
    for entry in std::fs::read_dir(w).unwrap().flatten() {
        if entry.file_name() == "creds" {
            continue;
        }
        let bytes = std::fs::read(entry.path()).unwrap();
        let found = bytes
            .windows(PASSWORD.len())
            .any(|win| win == PASSWORD.as_bytes());
        assert!(!found, "{} holds the password", entry.path().display());
    }
}

#[test]
fn a_misbehaving_server_is_retried_or_refused_as_it_should_be() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    sample_raw(&dir.join("src.raw"), 6 << 20);
    qemu_to_vmdk(dir, "src.raw", "sparse.vmdk", "subformat=monolithicSparse");
    ours_stream(dir, "src.raw", "stream.vmdk");
    let want = sha256(&dir.join("src.raw"));
    let server = FaultServer::start(dir);
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let quick = ["--timeout", "1"];
    // Each fault that may pass: the same bytes, after retries (none where nothing failed).
    for fault in ["ok", "drop", "short", "503", "429", "stall"] {
        for name in ["sparse.vmdk", "stream.vmdk"] {
            let (sha, fetched) = inflate_url(w, &server.url(fault, name), &quick);
            assert_eq!(sha, want, "{fault} {name}");
            let retries = fetched["retries"].as_u64().unwrap();
            match fault {
                "ok" => assert_eq!(retries, 0, "{fetched}"),
                _ => assert!(retries > 0, "{fault} {name}: {fetched}"),
            }
        }
    }
    // No ranges: a stream-optimized disk is read in one pass; anything else is refused.
    let (sha, _) = inflate_url(w, &server.url("norange", "stream.vmdk"), &[]);
    assert_eq!(sha, want, "stream-optimized without ranges");
    for (fault, name, says) in [
        ("norange", "sparse.vmdk", "does not serve byte ranges"),
        ("416", "sparse.vmdk", "416"),
        ("401", "sparse.vmdk", "401"),
        ("ok", "missing.vmdk", "404"),
    ] {
        let started = std::time::Instant::now();
        let out = ovf_disk(w, &["inflate", &server.url(fault, name), "out.raw"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{fault}: {err}");
        assert!(err.contains(says), "{fault}: {err}");
        // Errors that will not pass are not retried.
        assert!(!err.contains("retries"), "{fault}: {err}");
        assert!(
            started.elapsed().as_secs() < 5,
            "{fault}: took {:?}",
            started.elapsed()
        );
        assert!(!w.join("out.raw").exists(), "{fault}");
    }
    // Retries run out: the error says how many were made.
    let out = ovf_disk(
        w,
        &[
            "inflate",
            "--retries",
            "0",
            &server.url("503", "sparse.vmdk"),
            "o.raw",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("503"), "{err}");
}

/// `ovf-disk ARGS --json` in `dir`, which must succeed: its JSON.
fn json_of(dir: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = args.to_vec();
    all.push("--json");
    serde_json::from_slice(&ovf_disk_ok(dir, &all).stdout).unwrap()
}

#[test]
fn packages_over_http_verify_check_and_import_like_local_ones() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    sample_raw(&dir.join("src.raw"), 12 << 20);
    let want = sha256(&dir.join("src.raw"));
    ovf_disk_ok(dir, &["export", "-q", "src.raw", "app.ova"]);
    // The same package as a folder: the OVA's members, unpacked by tar.
    std::fs::create_dir(dir.join("pkg")).unwrap();
    run_ok(dir, "tar", &["xf", "app.ova", "-C", "pkg"]);
    let nginx = Nginx::start(dir, &NginxOptions::default());
    let server = FaultServer::start(dir);
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let ovf_name = std::fs::read_dir(dir.join("pkg"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .find(|n| n.ends_with(".ovf"))
        .unwrap();
    let ova = nginx.url("app.ova");
    let ovf = nginx.url(&format!("pkg/{ovf_name}"));
    for url in [&ova, &ovf] {
        let v = ovf_disk_ok(w, &["verify", url]);
        assert!(
            String::from_utf8_lossy(&v.stdout).ends_with("verified\n"),
            "{url}"
        );
        ovf_disk_ok(w, &["check", url]);
        ovf_disk_ok(w, &["check", "--target", "esxi", url]);
        let info = json_of(w, &["info", url]);
        assert_eq!(info["disks"].as_array().unwrap().len(), 1, "{info}");
    }
    // Imported from the OVA (read in place, the disk fetched ahead), from the folder, and from
    // a server without ranges (one pass) and one that drops connections: the same disk each time, and an output
    // that verifies.
    let cases = [
        ("ova", ova.clone()),
        ("ovf", ovf.clone()),
        ("norange", server.url("norange", "app.ova")),
        ("drop", server.url("drop", "app.ova")),
    ];
    for (case, url) in cases {
        let out = w.join(case);
        nginx.clear_log();
        let json = json_of(
            w,
            &["import", "--format", "raw", &url, out.to_str().unwrap()],
        );
        let raw = json["disks"][0]["files"][0].as_str().unwrap().to_string();
        assert_eq!(sha256(Path::new(&raw)), want, "{case}: {json}");
        ovf_disk_ok(w, &["verify", json["descriptor"].as_str().unwrap()]);
        let fetched = &json["fetched"];
        assert!(
            fetched["bytes_fetched"].as_u64().unwrap() > 0,
            "{case}: {json}"
        );
        if case == "ova" {
            // Read in place: the disk member once (digested while it is written), plus the
            // 1 MiB chunks that hold the tar headers, the descriptor and the manifest (here,
            // with a small disk, most of the archive), bar the probes.
            let size = std::fs::metadata(dir.join("app.ova")).unwrap().len();
            let (sent, _) = nginx.sent();
            assert!(
                sent <= size + size.min(3 << 20) + 16,
                "{case}: {sent} bytes sent for a {size}-byte OVA"
            );
        }
        if case == "ovf" {
            // The descriptor fetched once, when the package was opened: the manifest's digest
            // of it is taken from those bytes (the log says `request status bytes`).
            let size = std::fs::metadata(dir.join("pkg").join(&ovf_name))
                .unwrap()
                .len();
            let log = nginx.log();
            let sent = nginx.sent_for(&format!("/pkg/{ovf_name}"));
            assert!(
                sent <= size + 16,
                "{sent} bytes sent for a {size}-byte .ovf:\n{log}"
            );
            // The stream-optimized disk is fetched once, digested while it is written: its
            // bytes, plus what opening it for the capacity check reads (its header and
            // footer, a 1 MiB chunk each, the whole of a file this small), not once more to
            // verify it first.
            let vmdk = std::fs::read_dir(dir.join("pkg"))
                .unwrap()
                .flatten()
                .map(|e| e.file_name().into_string().unwrap())
                .find(|n| n.ends_with(".vmdk"))
                .unwrap();
            let size = std::fs::metadata(dir.join("pkg").join(&vmdk))
                .unwrap()
                .len();
            let sent = nginx.sent_for(&format!("/pkg/{vmdk}"));
            assert!(
                sent >= size && sent <= size + size.min(2 << 20) + 16,
                "{sent} bytes sent for a {size}-byte disk:\n{log}"
            );
        }
        if case == "drop" {
            assert!(fetched["retries"].as_u64().unwrap() > 0, "{case}: {json}");
        }
    }
    // A disk whose bytes do not match the manifest, found while it is written in the one
    // pass: the import fails and leaves nothing.
    std::fs::create_dir(dir.join("bad")).unwrap();
    for e in std::fs::read_dir(dir.join("pkg")).unwrap().flatten() {
        let name = e.file_name().into_string().unwrap();
        let mut bytes = std::fs::read(e.path()).unwrap();
        if name.ends_with(".vmdk") {
            // A byte of the last grain's compressed data, before the grain table, directory,
            // footer and end-of-stream marker: the stream still reads, the digest differs.
            let at = bytes.len() - 6 * 512 - 100;
            bytes[at] ^= 0xff;
        }
        std::fs::write(dir.join("bad").join(&name), bytes).unwrap();
    }
    let out = ovf_disk(
        w,
        &[
            "import",
            "--format",
            "raw",
            &nginx.url(&format!("bad/{ovf_name}")),
            "bad-out",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("verification failed, nothing was imported"),
        "{err}"
    );
    assert!(!w.join("bad-out").exists(), "{err}");
    // A disk command given a package URL says what to run.
    let out = ovf_disk(w, &["inflate", &ova, "x.raw"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("ovf-disk import URL"));
}

/// The ESXi VM folder of `esxi_vm_folder` in `dir/web`: the sha256 of each disk (the `web`
/// chain's leaf and `data`) as qemu-img reads the local files.
fn esxi_folder_in(dir: &Path) -> (String, String) {
    let web = dir.join("web");
    std::fs::create_dir(&web).unwrap();
    esxi_vm_folder(&web);
    (
        qemu_raw_sha(&web, "web-000002.vmdk"),
        qemu_raw_sha(&web, "data.vmdk"),
    )
}

/// An ESXi VM folder (a vmfs base under COWD and seSparse snapshots, and a second disk) served
/// as an ESXi host's `/folder` URLs are, with `dcPath` and `dsName` in the query: `info` lists
/// the chains, `check --ft` reads it, and `inflate VM.vmx` consolidates each disk to the bytes
/// qemu-img reads from the local folder.
#[test]
fn a_vm_folder_at_a_url_consolidates_like_the_local_one() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let (web, data) = esxi_folder_in(dir);
    let nginx = Nginx::start(dir, &NginxOptions::default());
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let url = format!(
        "{}?dcPath=ha-datacenter&dsName=datastore1",
        nginx.url("web/web.vmx")
    );
    let info = ovf_disk_ok(w, &["info", &url]);
    let text = String::from_utf8_lossy(&info.stdout);
    for want in [
        "disk scsi0:0 (pvscsi)",
        "3 links",
        "(seSparse,",
        "(vmfsSparse,",
        "disk scsi1:0",
    ] {
        assert!(text.contains(want), "{want:?} missing:\n{text}");
    }
    assert!(!text.contains("dsName"), "the query is not shown: {text}");
    let ft = ovf_disk(w, &["check", "--ft", &url]);
    assert!(
        matches!(ft.status.code(), Some(0 | 2)),
        "{}",
        String::from_utf8_lossy(&ft.stderr)
    );
    ovf_disk_ok(w, &["inflate", "-q", &url, "thick"]);
    assert_eq!(sha256(&w.join("thick/web-flat.vmdk")), web);
    assert_eq!(sha256(&w.join("thick/data-flat.vmdk")), data);
    // Every file was asked for with the query, as ESXi needs it.
    let log = nginx.log();
    for name in [
        "web-000002-sesparse.vmdk",
        "web-000001-delta.vmdk",
        "web-flat.vmdk",
        "data-flat.vmdk",
    ] {
        let asked = format!("/web/{name}?dcPath=ha-datacenter&dsName=datastore1 ");
        assert!(log.contains(&asked), "{asked} not in the log:\n{log}");
    }
    assert!(
        log.lines().all(|l| l.contains("dsName=datastore1")),
        "{log}"
    );
}

/// A VM folder at a URL inflated disk by disk, killed once its first disk is written (its
/// checkpoint at the disk's capacity, the second disk under way), continues with `--resume`:
/// the first disk is not fetched again, and both come out as an uninterrupted run writes them.
#[test]
fn a_killed_vm_folder_inflate_resumes_without_fetching_written_disks_again() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let (web, data) = esxi_folder_in(dir);
    // 2 MB/s a connection: each 6 MiB disk takes three seconds on one.
    let nginx = Nginx::start(
        dir,
        &NginxOptions {
            limit_rate: Some("2m".into()),
            ..NginxOptions::default()
        },
    );
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let url = nginx.url("web/web.vmx");
    let checkpoint = w.join("thick/.web.vmdk.ovf-disk-checkpoint");
    let capacity = (3 * 4096 + 5) * 512;
    let args = ["inflate", "--disks-at-once", "1", &url, "thick"];
    kill_run_when(w, &args, &checkpoint, "the first disk", |done| {
        done >= capacity
    });
    assert!(
        !w.join("thick/web.vmdk").exists(),
        "a killed run committed a disk"
    );
    nginx.clear_log();
    let out = ovf_disk(
        w,
        &["inflate", "--resume", "--checkpoint", "x", &url, "thick"],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("keep theirs beside them"));
    ovf_disk_ok(w, &["inflate", "-q", "--resume", &url, "thick"]);
    assert_eq!(sha256(&w.join("thick/web-flat.vmdk")), web);
    assert_eq!(sha256(&w.join("thick/data-flat.vmdk")), data);
    // The first disk's data (its flat base and its deltas' grains) was not fetched again:
    // only the second disk's, and the descriptors and headers every run reads.
    let log = nginx.log();
    assert!(nginx.sent_for("/web/web-flat.vmdk") < 1 << 20, "{log}");
    assert!(nginx.sent_for("/web/data-flat.vmdk") >= capacity, "{log}");
    let left: Vec<_> = std::fs::read_dir(w.join("thick"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A monolithicFlat disk of `capacity` bytes of sample data in `dir`, served by nginx throttled
/// to `rate` a connection: the source's sha256, the server (stopped when dropped) and the
/// disk's URL.
fn throttled_flat_disk(dir: &Path, capacity: u64, rate: &str) -> (String, Nginx, String) {
    sample_raw(&dir.join("src.raw"), capacity);
    qemu_to_vmdk(dir, "src.raw", "disk.vmdk", "subformat=monolithicFlat");
    let want = sha256(&dir.join("src.raw"));
    let nginx = Nginx::start(
        dir,
        &NginxOptions {
            limit_rate: Some(rate.into()),
            ..NginxOptions::default()
        },
    );
    let url = nginx.url("disk.vmdk");
    (want, nginx, url)
}

/// `done` of the checkpoint at `path`, when there is one.
fn checkpoint_done(path: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().last()?.strip_prefix("done ")?.parse().ok()
}

/// Starts `ovf-disk inflate --connections 1 --threads 1 URL out.raw` in `w` (one window after
/// the other, so the checkpoint moves a window at a time) and kills it (SIGKILL) once its
/// checkpoint says `percent` of `capacity` is written; returns that.
fn kill_at(w: &Path, url: &str, capacity: u64, percent: u64) -> u64 {
    let checkpoint = w.join(".out.raw.ovf-disk-checkpoint");
    kill_run_at(
        w,
        &["inflate", url, "out.raw"],
        &checkpoint,
        capacity,
        percent,
    )
}

/// [`kill_at`] of `ovf-disk COMMAND -q --connections 1 --threads 1 ARGS...` (`args` is the
/// command and its arguments), its checkpoint at `checkpoint`.
fn kill_run_at(w: &Path, args: &[&str], checkpoint: &Path, capacity: u64, percent: u64) -> u64 {
    let what = format!("{percent}%");
    kill_run_when(w, args, checkpoint, &what, |done| {
        done * 100 >= capacity * percent
    })
}

/// [`kill_run_at`], killing once `reached` holds for what the checkpoint says is done.
fn kill_run_when(
    w: &Path,
    args: &[&str],
    checkpoint: &Path,
    what: &str,
    reached: impl Fn(u64) -> bool,
) -> u64 {
    let (command, args) = args.split_first().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ovf-disk"))
        .args([*command, "-q", "--connections", "1", "--threads", "1"])
        .args(args)
        .current_dir(w)
        .spawn()
        .unwrap();
    let mut done = 0;
    kill_when(&mut child, what, || {
        done = checkpoint_done(checkpoint).unwrap_or(0);
        reached(done)
    });
    done
}

/// A remote convert to a stream-optimized VMDK, killed once its checkpoint moved (the
/// output's length right after a grain table), continues with `--resume`: it reads its partial
/// output back, fetches only the disk past the tables written, and ends with the very bytes
/// of an uninterrupted run; a partial output that is not what its checkpoint says is refused.
#[test]
fn a_killed_remote_convert_to_stream_optimized_resumes_to_the_same_file() {
    killed_convert_resumes(&Case {
        to: "streamOptimized",
        // The first grain's marker, at sector 128.
        damage: (".out.vmdk.ovf-disk-partial", 128 * 512),
        ..Case::default()
    });
}

/// The same for a monolithicSparse VMDK, whose checkpoint is the disk's bytes whose grain
/// tables are written.
#[test]
fn a_killed_remote_convert_to_monolithic_sparse_resumes_to_the_same_file() {
    killed_convert_resumes(&Case {
        to: "monolithicSparse",
        // The first grain table, after the header, the descriptor, the redundant directory
        // and tables (4 of 4 sectors) and the directory: sector 39.
        damage: (".out.vmdk.ovf-disk-partial", 39 * 512),
        disk_bytes: true,
        ..Case::default()
    });
}

/// The same for a twoGbMaxExtentSparse VMDK (its one extent here resumes in its own bytes).
#[test]
fn a_killed_remote_convert_to_split_sparse_resumes_to_the_same_files() {
    killed_convert_resumes(&Case {
        to: "twoGbMaxExtentSparse",
        // The extent's first grain table: header, redundant directory and tables, directory.
        damage: (".out-s001.vmdk.ovf-disk-partial", 19 * 512),
        disk_bytes: true,
        ..Case::default()
    });
}

/// The same for qcow2 (clusters of 16 KiB: an L2 table maps 32 MiB), whose resumable layout
/// `qemu-img check` finds clean.
#[test]
fn a_killed_remote_convert_to_qcow2_resumes_to_the_same_file() {
    killed_convert_resumes(&Case {
        to: "qcow2",
        more: &["--cluster-size", "16384"],
        out: "out.qcow2",
        qemu: "qcow2",
        // The L1 table, in the second cluster.
        damage: (".out.qcow2.ovf-disk-partial", 16384),
        disk_bytes: true,
    });
}

/// A remote convert to a dynamic VHD and to VHDX, killed once its checkpoint moved,
/// continues with `--resume`: qemu-img reads the result as the source (and finds the VHDX
/// clean), the disk below the checkpoint is not fetched again, and a damaged BAT entry is
/// refused (that the bytes are an uninterrupted write's, but for the ids each write picks, is
/// `vmdk`'s unit test).
#[test]
fn a_killed_remote_convert_to_vhd_and_vhdx_resumes() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let capacity = 128u64 << 20;
    let (_, _nginx, url) = throttled_flat_disk(dir, capacity, "16m");
    let src = dir.join("src.raw").display().to_string();
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    // (format, qemu-img's name, the first BAT entry's byte that holds its offset)
    for (to, qemu, entry) in [("vhd", "vpc", 1536 + 3), ("vhdx", "vhdx", (2 << 20) + 6)] {
        let out = format!("out.{to}");
        let checkpoint = w.join(format!(".{out}.ovf-disk-checkpoint"));
        let args = ["convert", "--to", to, url.as_str(), out.as_str()];
        let done = kill_run_when(w, &args, &checkpoint, "a checkpoint", |done| done > 0);
        let resumed = ["convert", "--json", "--resume", "--to", to, &url, &out];
        let json: serde_json::Value =
            serde_json::from_slice(&ovf_disk_ok(w, &resumed).stdout).unwrap();
        qemu_same(w, &out, qemu, &src, "raw");
        if to == "vhdx" {
            qemu_img(w, &["check", "-f", "vhdx", &out]);
        }
        let bytes = json["fetched"]["bytes_fetched"].as_u64().unwrap();
        assert!(
            done >= 8 << 20 && bytes <= capacity - done + (1 << 20),
            "{to}: {bytes} fetched after {done}"
        );
        assert!(!checkpoint.exists());
        // A damaged BAT entry below the checkpoint: refused, nothing written.
        let bad = format!("bad.{to}");
        let bad_checkpoint = w.join(format!(".{bad}.ovf-disk-checkpoint"));
        let args = ["convert", "--to", to, url.as_str(), bad.as_str()];
        kill_run_when(w, &args, &bad_checkpoint, "a checkpoint", |done| done > 0);
        let partial = w.join(format!(".{bad}.ovf-disk-partial"));
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&partial)
            .unwrap();
        std::os::unix::fs::FileExt::write_all_at(&f, &[0x5a], entry).unwrap();
        drop(f);
        let out = ovf_disk(w, &["convert", "--resume", "--to", to, &url, &bad]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("cannot resume"), "{to}: {err}");
        assert!(!w.join(&bad).exists());
    }
}

/// `v` as the `&str`s the run helpers take.
fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A run of [`killed_convert_resumes`]: the format and options written, the output and its
/// format for qemu-img, the partial file and offset damaged, and whether the checkpoint
/// counts bytes of the disk (else of the output).
struct Case<'a> {
    to: &'a str,
    more: &'a [&'a str],
    out: &'a str,
    qemu: &'a str,
    damage: (&'a str, u64),
    disk_bytes: bool,
}

impl Default for Case<'_> {
    fn default() -> Self {
        Self {
            to: "streamOptimized",
            more: &[],
            out: "out.vmdk",
            qemu: "vmdk",
            damage: ("", 0),
            disk_bytes: false,
        }
    }
}

/// A remote `convert` of `case` killed once its checkpoint moved, resumed: the bytes of an
/// uninterrupted run, the disk below the checkpoint (at least the first grain table's 32 MiB)
/// not fetched again; a partial output damaged where `case` says is refused.
fn killed_convert_resumes(case: &Case<'_>) {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    // Four grain tables of 32 MiB.
    let capacity = 128u64 << 20;
    let (_, _nginx, url) = throttled_flat_disk(dir, capacity, "16m");
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    // The same CID every run, so the runs' bytes can be compared whole.
    let convert = |more: &[&str], out: &str| -> Vec<String> {
        let mut args = vec!["convert", "--to", case.to];
        if case.qemu == "vmdk" {
            args.extend(["--cid", "1234abcd"]);
        }
        args.extend(case.more);
        args.extend(more);
        args.extend([url.as_str(), out]);
        args.into_iter().map(String::from).collect()
    };
    let out = case.out;
    let whole = w.join("whole");
    std::fs::create_dir(&whole).unwrap();
    ovf_disk_ok(&whole, &strs(&convert(&["--connections", "8"], out)));
    let src = dir.join("src.raw").display().to_string();
    qemu_same(&whole, out, case.qemu, &src, "raw");
    if case.qemu == "qcow2" {
        qemu_img(&whole, &["check", "-f", "qcow2", out]);
    }
    let want = sha256(&whole.join(out));
    let checkpoint = w.join(format!(".{out}.ovf-disk-checkpoint"));
    let args = convert(&[], out);
    let done = kill_run_when(w, &strs(&args), &checkpoint, "a checkpoint", |done| {
        done > 0
    });
    assert!(w.join(format!(".{out}.ovf-disk-partial")).exists());
    let args = convert(&["--json", "--resume"], out);
    let json: serde_json::Value =
        serde_json::from_slice(&ovf_disk_ok(w, &strs(&args)).stdout).unwrap();
    assert_eq!(sha256(&w.join(out)), want, "resumed after {done} bytes");
    for name in std::fs::read_dir(&whole).unwrap() {
        let name = name.unwrap().file_name();
        assert_eq!(
            sha256(&w.join(&name)),
            sha256(&whole.join(&name)),
            "{name:?}"
        );
    }
    // The disk below the checkpoint, at least the first grain table's 32 MiB, was not
    // fetched again.
    let kept = match case.disk_bytes {
        true => done.max(32 << 20),
        false => 32 << 20,
    };
    let bytes = json["fetched"]["bytes_fetched"].as_u64().unwrap();
    assert!(
        bytes <= capacity - kept + (1 << 20),
        "{bytes} fetched after {done}"
    );
    assert!(!checkpoint.exists());
    // A partial output that is not what the checkpoint says (its first grain's marker,
    // table entry or L1 entry overwritten) is refused, not continued.
    let bad = format!("bad.{}", case.qemu);
    let bad_checkpoint = w.join(format!(".{bad}.ovf-disk-checkpoint"));
    let args = convert(&[], &bad);
    kill_run_when(w, &strs(&args), &bad_checkpoint, "a checkpoint", |done| {
        done > 0
    });
    let (file, at) = case.damage;
    let partial = w.join(file.replacen("out", "bad", 1));
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&partial)
        .unwrap_or_else(|e| panic!("{}: {e}", partial.display()));
    std::os::unix::fs::FileExt::write_all_at(&f, &[0xff; 16], at).unwrap();
    drop(f);
    let out = ovf_disk(w, &strs(&convert(&["--resume"], &bad)));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot resume"), "{err}");
    assert!(!w.join(&bad).exists());
}

/// A remote inflate killed at 20, 50 and 80% continues with `--resume` from its checkpoint,
/// fetching only what was left, to the bytes an uninterrupted run writes; a source changed
/// between the runs refuses to resume, and a run without `--resume` starts over.
#[test]
fn a_killed_remote_inflate_resumes_to_the_same_bytes() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    // Ten windows of 8 MiB: the checkpoint moves by 10%.
    let capacity = 80u64 << 20;
    // 12 MiB/s per connection: a window every 0.67 s on one connection.
    let (want, _nginx, url) = throttled_flat_disk(dir, capacity, "12m");
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    for percent in [20, 50, 80] {
        let done = kill_at(w, &url, capacity, percent);
        assert!(
            !w.join("out.raw").exists(),
            "{percent}%: a killed run left its output"
        );
        assert!(w.join(".out.raw.ovf-disk-partial").exists(), "{percent}%");
        let (sha, fetched) =
            inflate_url_to(w, &url, "out.raw", &["--resume", "--connections", "8"]);
        assert_eq!(sha, want, "resumed at {percent}%");
        // Only what was left was fetched (and the descriptor, and the probes).
        let bytes = fetched["bytes_fetched"].as_u64().unwrap();
        assert!(
            bytes <= capacity - done + (1 << 20),
            "{percent}%: {bytes} bytes fetched after {done} were done"
        );
        let left: Vec<_> = std::fs::read_dir(w)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert!(left.is_empty(), "{percent}%: {left:?}");
    }
    // The source changes between the runs: resuming is refused, nothing is written; a run
    // without --resume removes the leftovers and starts over.
    kill_at(w, &url, capacity, 30);
    let flat = dir.join("disk-flat.vmdk");
    let f = std::fs::OpenOptions::new().write(true).open(&flat).unwrap();
    f.set_modified(std::time::SystemTime::now() + std::time::Duration::from_secs(5))
        .unwrap();
    drop(f);
    let out = ovf_disk(w, &["inflate", "--resume", &url, "out.raw"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot resume"), "{err}");
    assert!(!w.join("out.raw").exists());
    let out = ovf_disk_ok(w, &["inflate", "--connections", "8", &url, "out.raw"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("left by an interrupted run"));
    assert_eq!(sha256(&w.join("out.raw")), want);
    // `convert` of a disk at a URL to raw resumes alike; outputs that are not raw or thick,
    // and the commands that start over, refuse --resume.
    std::fs::remove_file(w.join("out.raw")).unwrap();
    let done = kill_run_at(
        w,
        &["convert", "--to", "raw", &url, "out.raw"],
        &w.join(".out.raw.ovf-disk-checkpoint"),
        capacity,
        50,
    );
    let out = ovf_disk_ok(
        w,
        &[
            "convert", "--json", "--resume", "--to", "raw", &url, "out.raw",
        ],
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let bytes = json["fetched"]["bytes_fetched"].as_u64().unwrap();
    assert!(
        done > 0 && bytes <= capacity - done + (1 << 20),
        "{bytes} after {done}"
    );
    assert_eq!(sha256(&w.join("out.raw")), want);
    std::fs::remove_file(w.join("out.raw")).unwrap();
    // A preallocated qcow2 output is written again from the start.
    let args = [
        "convert",
        "--resume",
        "--to",
        "qcow2",
        "--preallocation",
        "metadata",
        &url,
        "s.qcow2",
    ];
    let out = ovf_disk(w, &args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("a preallocated one is written again"), "{err}");
    // --resume is for URL inputs.
    let out = ovf_disk(
        w,
        &[
            "inflate",
            "--resume",
            &dir.join("disk.vmdk").display().to_string(),
            "local.raw",
        ],
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("--resume continues a run from a URL"));
}

/// A loop device over a file of `len` bytes of garbage in `dir`, detached when dropped.
struct LoopDevice(String);

impl LoopDevice {
    fn new(dir: &Path, len: usize) -> Self {
        let img = dir.join("volume.img");
        std::fs::write(&img, vec![0x5au8; len]).unwrap();
        let dev = run_ok(dir, "losetup", &["-f", "--show", img.to_str().unwrap()]);
        Self(dev.trim().to_string())
    }

    /// The sha256 of its first `len` bytes.
    fn sha(&self, len: u64) -> String {
        use std::io::Read;
        let mut bytes = Vec::new();
        std::fs::File::open(&self.0)
            .unwrap()
            .take(len)
            .read_to_end(&mut bytes)
            .unwrap();
        sha256_bytes(&bytes)
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        let _ = std::process::Command::new("losetup")
            .args(["-d", &self.0])
            .status();
    }
}

/// A remote inflate onto a block device (written in place, as a Job writes its volume) keeps
/// its checkpoint at `--checkpoint FILE`; killed at 30 and 70%, the same command with
/// `--resume` continues from it, fetching only what was left, to the source's bytes; without
/// `--checkpoint` a resume is refused, and a checkpoint of another source too.
#[test]
fn a_killed_remote_inflate_onto_a_block_device_resumes_from_its_checkpoint_file() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let capacity = 80u64 << 20;
    let (want, _nginx, url) = throttled_flat_disk(dir, capacity, "12m");
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let dev = LoopDevice::new(w, (capacity + (4 << 20)) as usize);
    let checkpoint = w.join("state/web.checkpoint");
    std::fs::create_dir_all(checkpoint.parent().unwrap()).unwrap();
    let cp = checkpoint.to_str().unwrap();
    for percent in [30, 70] {
        let args = ["inflate", "--force", "--checkpoint", cp, &url, &dev.0];
        let done = kill_run_at(w, &args, &checkpoint, capacity, percent);
        // Without the checkpoint's place, a resume onto a device is refused.
        let out = ovf_disk(w, &["inflate", "--resume", "--force", &url, &dev.0]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("--checkpoint FILE"), "{err}");
        let out = ovf_disk_ok(
            w,
            &[
                "inflate",
                "--json",
                "--resume",
                "--force",
                "--connections",
                "8",
                "--checkpoint",
                cp,
                &url,
                &dev.0,
            ],
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(dev.sha(capacity), want, "resumed at {percent}%");
        let bytes = json["fetched"]["bytes_fetched"].as_u64().unwrap();
        assert!(
            done > 0 && bytes <= capacity - done + (1 << 20),
            "{percent}%: {bytes} bytes fetched after {done} were done"
        );
        assert!(
            !checkpoint.exists(),
            "{percent}%: the checkpoint outlived the run"
        );
    }
    // A checkpoint another source left is refused.
    std::fs::write(&checkpoint, "ovf-disk checkpoint 1\nid 00\ndone 1048576\n").unwrap();
    let out = ovf_disk(
        w,
        &[
            "inflate",
            "--resume",
            "--force",
            "--checkpoint",
            cp,
            &url,
            &dev.0,
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot resume"), "{err}");
}

/// `ovf-disk ARGS` in `dir` with the tests' AWS environment and moto's endpoint.
fn ovf_disk_s3(
    dir: &Path,
    moto: &test_support::http::MotoServer,
    args: &[&str],
) -> std::process::Output {
    ovf_disk_aws(dir, Some(&moto.endpoint), args)
}

/// S3 (moto's server, checked with boto3): disks, chains and an OVA read from `s3://` URLs
/// give the local bytes; a stream-optimized disk and an OVA written to `s3://` URLs (multipart
/// uploads) are what boto3 downloads and qemu-img and `verify` accept; a write that fails
/// leaves no object and no upload behind; the secret key is never printed.
#[test]
fn s3_objects_are_read_and_written_like_files() {
    use test_support::http::{MotoServer, AWS_ENV};
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    sample_raw(&dir.join("src.raw"), 24 << 20);
    let want = sha256(&dir.join("src.raw"));
    qemu_to_vmdk(dir, "src.raw", "sparse.vmdk", "subformat=monolithicSparse");
    qemu_delta(dir, "sparse.vmdk", "delta.vmdk");
    qemu_io(dir, "delta.vmdk", &["write -P 0x5a 1M 3M"]);
    ours_stream(dir, "src.raw", "stream.vmdk");
    ovf_disk_ok(dir, &["export", "-q", "src.raw", "app.ova"]);
    let moto = MotoServer::start();
    let d = dir.display();
    moto.boto3(&format!(
        "s3.create_bucket(Bucket='disks')\n\
         for f in ['sparse.vmdk', 'delta.vmdk', 'stream.vmdk', 'app.ova']:\n    \
         s3.upload_file('{d}/' + f, 'disks', 'vm dir/' + f)"
    ));
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let mut outputs = Vec::new();
    for name in ["sparse.vmdk", "delta.vmdk", "stream.vmdk"] {
        let url = format!("s3://disks/vm dir/{name}");
        let out = ovf_disk_s3(w, &moto, &["inflate", "--json", "--force", &url, "out.raw"]);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            sha256(&w.join("out.raw")),
            qemu_raw_sha(dir, name),
            "{name}"
        );
        outputs.push(out);
    }
    let out = ovf_disk_s3(
        w,
        &moto,
        &[
            "import",
            "--format",
            "raw",
            "s3://disks/vm dir/app.ova",
            "imported",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let raw = std::fs::read_dir(w.join("imported"))
        .unwrap()
        .flatten()
        .find(|e| e.path().extension().is_some_and(|x| x == "raw"))
        .unwrap();
    assert_eq!(sha256(&raw.path()), want);
    outputs.push(out);

    // Written: a stream-optimized disk and an OVA, read back by boto3.
    let src = dir.join("src.raw").display().to_string();
    for (args, key) in [
        (
            vec![
                "convert",
                "--to",
                "streamOptimized",
                &src,
                "s3://disks/out/disk.vmdk",
            ],
            "out/disk.vmdk",
        ),
        (
            vec!["export", &src, "s3://disks/out/app.ova"],
            "out/app.ova",
        ),
    ] {
        let out = ovf_disk_s3(w, &moto, &args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let local = w.join(key.replace('/', "_"));
        moto.boto3(&format!(
            "s3.download_file('disks', '{key}', '{}')",
            local.display()
        ));
        outputs.push(out);
    }
    assert_eq!(qemu_raw_sha(w, "out_disk.vmdk"), want);
    // 40 MiB of random bytes: three parts (16 + 16 + 8 MiB) PUT side by side, stored in order
    // (the multipart ETag counts them; the object reads as the source).
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let noise: Vec<u8> = (0..40 << 20)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect();
    std::fs::write(w.join("noise.raw"), &noise).unwrap();
    let out = ovf_disk_s3(
        w,
        &moto,
        &[
            "convert",
            "--to",
            "streamOptimized",
            "noise.raw",
            "s3://disks/out/noise.vmdk",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let etag = moto.boto3(&format!(
        "print(s3.head_object(Bucket='disks', Key='out/noise.vmdk')['ETag'])\n\
         s3.download_file('disks', 'out/noise.vmdk', '{}')",
        w.join("noise.vmdk").display()
    ));
    assert!(etag.trim().trim_matches('"').ends_with("-3"), "{etag}");
    assert_eq!(qemu_raw_sha(w, "noise.vmdk"), sha256(&w.join("noise.raw")));
    let v = ovf_disk_ok(w, &["verify", "out_app.ova"]);
    assert!(String::from_utf8_lossy(&v.stdout).ends_with("verified\n"));

    // A write that fails midway (a grain damaged near the end of the input) leaves neither an
    // object nor an unfinished upload.
    let mut bad = std::fs::read(dir.join("stream.vmdk")).unwrap();
    let at = bad.len() * 3 / 4;
    bad[at..at + 4096].fill(0x55);
    std::fs::write(dir.join("bad.vmdk"), bad).unwrap();
    let bad = dir.join("bad.vmdk").display().to_string();
    let out = ovf_disk_s3(
        w,
        &moto,
        &[
            "convert",
            "--to",
            "streamOptimized",
            &bad,
            "s3://disks/out/bad.vmdk",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = moto.boto3(
        "print(len(s3.list_multipart_uploads(Bucket='disks').get('Uploads', [])))\n\
         print(sorted(o['Key'] for o in s3.list_objects_v2(Bucket='disks', Prefix='out/')['Contents']))",
    );
    assert_eq!(
        listed, "0\n['out/app.ova', 'out/disk.vmdk', 'out/noise.vmdk']\n",
        "{listed}"
    );
    outputs.push(out);
    // Missing keys and buckets: S3's error code in one line.
    let out = ovf_disk_s3(w, &moto, &["info", "s3://disks/vm dir/none.vmdk"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("s3://disks/vm dir/none.vmdk") && err.contains("NoSuchKey"),
        "{err}"
    );
    outputs.push(out);
    for out in &outputs {
        for stream in [&out.stdout, &out.stderr] {
            assert!(!String::from_utf8_lossy(stream).contains(AWS_ENV[1].1));
        }
    }
}

/// ESXi's session cookie: sent from `OVF_DISK_COOKIE` (or a credentials file) with every
/// request; a server that requires it refuses a client without it, and the value is never
/// printed.
#[test]
fn a_session_cookie_is_sent_with_every_request() {
    let c = corpus();
    let cookie = "52a1b2c3-0000-1111-2222-deadbeefcafe";
    let nginx = Nginx::start(
        c.dir.path(),
        &NginxOptions {
            session_cookie: Some(cookie.into()),
            ..NginxOptions::default()
        },
    );
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let url = nginx.url("delta.vmdk");
    let want = &c.disks.iter().find(|(n, _)| n == "delta.vmdk").unwrap().1;
    let run = |cookie: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ovf-disk"));
        cmd.args(["inflate", "--force", &url, "out.raw"])
            .current_dir(w);
        if let Some(c) = cookie {
            cmd.env("OVF_DISK_COOKIE", format!("vmware_soap_session={c}"));
        }
        cmd.output().unwrap()
    };
    let out = run(None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
    nginx.clear_log();
    let out = succeeded(run(Some(cookie)), "inflate with the session cookie");
    assert_eq!(&sha256(&w.join("out.raw")), want);
    // The delta and its parent were asked for with it: no request was refused.
    let log = nginx.log();
    assert!(
        log.contains("/sparse.vmdk ") && log.contains("/delta.vmdk "),
        "{log}"
    );
    assert!(log.lines().all(|l| l.contains(" 206 ")), "{log}");
    for stream in [&out.stdout, &out.stderr] {
        assert!(!String::from_utf8_lossy(stream).contains("deadbeefcafe"));
    }
}

/// `--progress json`: a JSON line a second on standard error while a remote inflate runs (what
/// a Kubernetes Job's log shows), bytes done rising to the total.
#[test]
fn progress_json_is_a_line_a_second_up_to_the_total() {
    let c = corpus();
    let nginx = Nginx::start(
        c.dir.path(),
        &NginxOptions {
            limit_rate: Some("8m".into()),
            ..NginxOptions::default()
        },
    );
    let work = tempfile::tempdir().unwrap();
    let out = ovf_disk_ok(
        work.path(),
        &[
            "inflate",
            "--progress",
            "json",
            "--connections",
            "1",
            "--threads",
            "1",
            &nginx.url("flat%20disk.vmdk"),
            "o.raw",
        ],
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 2, "{lines:?}");
    let done: Vec<u64> = lines.iter().map(|l| l["done"].as_u64().unwrap()).collect();
    assert!(done.windows(2).all(|w| w[0] <= w[1]), "{done:?}");
    assert_eq!(*done.last().unwrap(), 24 << 20);
    assert!(
        lines
            .iter()
            .all(|l| l["total"] == 24 << 20 && l["rate"].is_number()),
        "{lines:?}"
    );
}

/// `--max-per-host 1`: three runs started at once against one host read from it one after the
/// other (each run's requests form one block in the server's log), and all finish.
#[test]
fn max_per_host_lets_one_run_at_a_time_read_from_a_host() {
    let c = corpus();
    let nginx = Nginx::start(
        c.dir.path(),
        &NginxOptions {
            limit_rate: Some("16m".into()),
            ..NginxOptions::default()
        },
    );
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let locks = w.join("locks");
    let names = ["sparse.vmdk", "qemu-stream.vmdk", "ours-stream.vmdk"];
    let children: Vec<_> = names
        .iter()
        .map(|name| {
            std::process::Command::new(env!("CARGO_BIN_EXE_ovf-disk"))
                .args([
                    "inflate",
                    "-q",
                    "--max-per-host",
                    "1",
                    &nginx.url(name),
                    &format!("{name}.raw"),
                ])
                .env("OVF_DISK_LOCK_DIR", &locks)
                .current_dir(w)
                .spawn()
                .unwrap()
        })
        .collect();
    for (mut child, name) in children.into_iter().zip(names) {
        assert!(child.wait().unwrap().success(), "{name}");
        let want = &c.disks.iter().find(|(n, _)| n == name).unwrap().1;
        assert_eq!(&sha256(&w.join(format!("{name}.raw"))), want, "{name}");
    }
    let order: Vec<&str> = nginx
        .log()
        .lines()
        .filter_map(|l| {
            names
                .iter()
                .copied()
                .find(|n| l.contains(&format!("/{n} ")))
        })
        .collect();
    let mut blocks = order.clone();
    blocks.dedup();
    assert_eq!(blocks.len(), 3, "the runs' requests interleave: {order:?}");
}

/// The `args:` list of the Job's container.
fn job_args() -> Vec<String> {
    let text = include_str!("../../deploy/job.yaml");
    let mut lines = text.lines().skip_while(|l| l.trim() != "args:").skip(1);
    let mut args = Vec::new();
    for l in lines.by_ref() {
        match l.trim().strip_prefix("- ") {
            Some(a) => args.push(a.to_string()),
            None => break,
        }
    }
    assert!(args.len() > 4, "{args:?}");
    args
}

#[test]
fn the_jobs_command_line_writes_the_volume_and_logs_progress() {
    use std::io::Read;
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let web = dir.join("folder/web");
    std::fs::create_dir_all(&web).unwrap();
    sample_raw(&web.join("src.raw"), 48 << 20);
    qemu_to_vmdk(&web, "src.raw", "web.vmdk", "subformat=monolithicFlat");
    let want = sha256(&web.join("src.raw"));
    let nginx = Nginx::start(
        dir,
        &NginxOptions {
            tls: true,
            basic_auth: Some(("root".into(), "job-secret-pw".into())),
            // 2 MiB/s a connection: the run lasts a few seconds, a progress line each.
            limit_rate: Some("2m".into()),
            ..NginxOptions::default()
        },
    );
    std::fs::write(
        dir.join("credentials"),
        "user=root\npassword=job-secret-pw\n",
    )
    .unwrap();
    // The volume: a loop device over a file of garbage, larger than the disk.
    let img = dir.join("volume.img");
    std::fs::write(&img, vec![0x5au8; 52 << 20]).unwrap();
    let dev = run_ok(dir, "losetup", &["-f", "--show", img.to_str().unwrap()]);
    let dev = dev.trim().to_string();
    struct Detach(String);
    impl Drop for Detach {
        fn drop(&mut self) {
            let _ = std::process::Command::new("losetup")
                .args(["-d", &self.0])
                .status();
        }
    }
    let _detach = Detach(dev.clone());
    let origin = format!("https://127.0.0.1:{}", nginx.port);
    let args: Vec<String> = job_args()
        .into_iter()
        .map(|a| {
            a.replace("https://esx1.example", &origin)
                .replace("$(ESX_THUMBPRINT)", &nginx.thumbprint())
                .replace(
                    "/secrets/esx/credentials",
                    dir.join("credentials").to_str().unwrap(),
                )
                .replace("/dev/xvda", &dev)
        })
        .collect();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ovf-disk"))
        .args(&args)
        .current_dir(dir)
        .output()
        .unwrap();
    let out = succeeded(out, &format!("the Job's command {args:?}"));
    let mut volume = Vec::new();
    std::fs::File::open(&dev)
        .unwrap()
        .take(48 << 20)
        .read_to_end(&mut volume)
        .unwrap();
    assert_eq!(sha256_bytes(&volume), want);
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    let progress: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(progress.len() >= 2, "{log}");
    assert_eq!(progress.last().unwrap()["done"], 48 << 20, "{log}");
    assert!(!log.contains("job-secret-pw"), "{log}");
}

/// The files of `dir` (not the hidden ones), each with its sha256, sorted by name; but for
/// a VMDK descriptor (the CID each write picks at random left out) and the manifest (its line
/// for such a descriptor left out), whose text stands instead.
fn tree_sha(dir: &Path) -> Vec<(String, String)> {
    let mut all: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|n| !n.starts_with('.'))
        .map(|n| {
            let path = dir.join(&n);
            let small = std::fs::metadata(&path).unwrap().len() < 1 << 16;
            let text = || std::fs::read_to_string(&path).unwrap();
            let kept = match (n.rsplit_once('.').map(|(_, e)| e), small) {
                (Some("vmdk"), true) => text()
                    .lines()
                    .filter(|l| !l.starts_with("CID=") && !l.starts_with("ddb.longContentID"))
                    .collect::<Vec<_>>()
                    .join("\n"),
                (Some("mf"), _) => text()
                    .lines()
                    .filter(|l| !l.contains("-thick.vmdk)"))
                    .collect::<Vec<_>>()
                    .join("\n"),
                _ => sha256(&path),
            };
            (n, kept)
        })
        .collect();
    all.sort();
    all
}

/// `stream INPUT COVERED` of a one-pass write's checkpoint: where its stream was.
fn stream_point(path: &Path) -> Option<(u64, u64)> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find_map(|l| l.strip_prefix("stream "))?;
    let (input, covered) = line.split_once(' ')?;
    Some((input.parse().ok()?, covered.parse().ok()?))
}

/// An import from a URL killed while it writes its disk continues with `--resume` to the
/// files an uninterrupted import writes (disk, descriptor, manifest), for an OVA read in place
/// into a raw disk and an `.ovf` into a thick VMDK (both stream-optimized disks digested while
/// they are written: the digest's state kept in the checkpoint) and into qcow2 (the disk
/// verified first, then written through the reader): the disk's bytes before the checkpoint
/// are not fetched again, nor a file the interrupted run verified; a source changed between
/// the runs refuses to resume; a run without `--resume` starts over.
#[test]
fn a_killed_remote_import_resumes_to_the_same_files() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    // Four grain tables of 32 MiB, each with 4 MiB of data that does not compress.
    sample_raw(&dir.join("src.raw"), 128 << 20);
    let f = std::fs::File::options()
        .write(true)
        .open(dir.join("src.raw"))
        .unwrap();
    for table in 0..4u64 {
        let at = table * (32 << 20) + (1 << 20);
        std::os::unix::fs::FileExt::write_all_at(&f, &noise(table + 7, 4 << 20), at).unwrap();
    }
    drop(f);
    ovf_disk_ok(dir, &["export", "-q", "src.raw", "app.ova"]);
    std::fs::create_dir(dir.join("pkg")).unwrap();
    run_ok(dir, "tar", &["xf", "app.ova", "-C", "pkg"]);
    let names: Vec<String> = std::fs::read_dir(dir.join("pkg"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    let ovf_name = names.iter().find(|n| n.ends_with(".ovf")).unwrap();
    let vmdk = names.iter().find(|n| n.ends_with(".vmdk")).unwrap().clone();
    let disk_len = std::fs::metadata(dir.join("pkg").join(&vmdk))
        .unwrap()
        .len();
    let nginx = Nginx::start(
        dir,
        &NginxOptions {
            limit_rate: Some("8m".into()),
            ..NginxOptions::default()
        },
    );
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let ova = nginx.url("app.ova");
    let ovf = nginx.url(&format!("pkg/{ovf_name}"));
    for (case, url, format, in_pass) in [
        ("ova-raw", &ova, "raw", true),
        ("ovf-vmdk", &ovf, "vmdk", true),
        ("ovf-qcow2", &ovf, "qcow2", false),
    ] {
        let whole = w.join(format!("whole-{case}"));
        let json = json_of(
            w,
            &["import", "--format", format, url, whole.to_str().unwrap()],
        );
        let main = Path::new(json["disks"][0]["files"][0].as_str().unwrap());
        let main = main.file_name().unwrap().to_str().unwrap().to_string();
        let out = w.join(case);
        let checkpoint = out.join(format!(".{main}.ovf-disk-checkpoint"));
        let args = ["import", "--format", format, url, case];
        kill_run_when(w, &args, &checkpoint, "a checkpoint", |done| done > 0);
        let point = stream_point(&checkpoint);
        assert_eq!(point.is_some(), in_pass, "{case}");
        nginx.clear_log();
        let json = json_of(w, &["import", "--resume", "--format", format, url, case]);
        assert_eq!(tree_sha(&out), tree_sha(&whole), "{case}");
        let leftovers: Vec<_> = std::fs::read_dir(&out)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().into_string().unwrap())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{case}: {leftovers:?}");
        ovf_disk_ok(w, &["verify", json["descriptor"].as_str().unwrap()]);
        let fetched = json["fetched"]["bytes_fetched"].as_u64().unwrap();
        if point.is_none() {
            // Written through the reader from its checkpoint, the disk verified by the
            // interrupted run not digested again: less than the whole disk fetched.
            assert!(
                fetched + (1 << 20) <= disk_len,
                "{case}: {fetched} bytes fetched of {disk_len}:\n{}",
                nginx.log()
            );
        }
        if let Some((input, _)) = point {
            // The disk before the point was not fetched again: the rest, plus what every
            // run reads in 1 MiB chunks (the tar headers, the disk's header, the descriptor
            // and manifest).
            assert!(input >= 4 << 20, "{case}: {input}");
            assert!(
                fetched <= disk_len - input + (3 << 20),
                "{case}: {fetched} bytes fetched after {input} of {disk_len}:\n{}",
                nginx.log()
            );
        }
    }
    // A source changed between the runs is not resumed; without --resume, a run starts over.
    let args = ["import", "--format", "raw", ova.as_str(), "changed"];
    let whole = tree_sha(&w.join("whole-ova-raw"));
    let main = whole
        .iter()
        .find(|(n, _)| n.ends_with(".raw"))
        .unwrap()
        .0
        .clone();
    let checkpoint = w.join(format!("changed/.{main}.ovf-disk-checkpoint"));
    kill_run_when(w, &args, &checkpoint, "a checkpoint", |done| done > 0);
    let now = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    let f = std::fs::File::options()
        .write(true)
        .open(dir.join("app.ova"))
        .unwrap();
    f.set_modified(now).unwrap();
    drop(f);
    let out = ovf_disk(
        w,
        &["import", "--resume", "--format", "raw", &ova, "changed"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("cannot resume"), "{err}");
    ovf_disk_ok(w, &["import", "-q", "--format", "raw", &ova, "changed"]);
    assert_eq!(tree_sha(&w.join("changed")), whole);
    // A local package is imported from the start: --resume is refused.
    let out = ovf_disk(w, &["import", "--resume", "x.ova", "y"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("a local package is imported again"), "{err}");
}

/// `ovf-disk ARGS` in `dir` with S3 credentials and the S3 endpoint `endpoint` (none: S3
/// itself is addressed).
fn ovf_disk_aws(dir: &Path, endpoint: Option<&str>, args: &[&str]) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_ovf-disk"));
    command
        .args(args)
        .envs(test_support::http::AWS_ENV)
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_ENDPOINT_URL_S3")
        .current_dir(dir);
    if let Some(e) = endpoint {
        command.env("AWS_ENDPOINT_URL", e);
    }
    command.output().unwrap()
}

/// S3 addressed as AWS is, in virtual-host style: with no endpoint, `s3://disks/KEY` is
/// `https://disks.s3.us-east-1.amazonaws.com/KEY`, the bucket in the host name (TLS server
/// name, certificate and `Host` header), not in the path. Here that host is nginx with a
/// certificate for it, in front of moto, reached with `--connect-to`: a disk read from there
/// is qemu-img's reading of it, one written there is read back by boto3, and every request
/// nginx saw named the key alone.
#[test]
fn s3_virtual_host_style_reads_and_writes_as_aws_is_addressed() {
    use test_support::http::MotoServer;
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    sample_raw(&dir.join("src.raw"), 24 << 20);
    ours_stream(dir, "src.raw", "stream.vmdk");
    let moto = MotoServer::start();
    moto.boto3(&format!(
        "s3.create_bucket(Bucket='disks')\ns3.upload_file('{}/stream.vmdk', 'disks', 'vm/stream.vmdk')",
        dir.display()
    ));
    let nginx = Nginx::start(
        dir,
        &NginxOptions {
            tls: true,
            proxy: Some(moto.endpoint.clone()),
            ..NginxOptions::default()
        },
    );
    let work = tempfile::tempdir().unwrap();
    let w = work.path();
    let ca = nginx.ca().display().to_string();
    let connect = format!(
        "disks.s3.us-east-1.amazonaws.com:443:127.0.0.1:{}",
        nginx.port
    );
    let remote = ["--ca-cert", ca.as_str(), "--connect-to", connect.as_str()];
    let mut args = vec!["inflate", "-q"];
    args.extend(remote);
    args.extend(["s3://disks/vm/stream.vmdk", "out.raw"]);
    let out = ovf_disk_aws(w, None, &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sha256(&w.join("out.raw")), qemu_raw_sha(dir, "stream.vmdk"));
    let src = dir.join("src.raw").display().to_string();
    let mut args = vec!["convert", "-q", "--to", "streamOptimized"];
    args.extend(remote);
    args.extend([src.as_str(), "s3://disks/out/disk.vmdk"]);
    let out = ovf_disk_aws(w, None, &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    moto.boto3(&format!(
        "s3.download_file('disks', 'out/disk.vmdk', '{}/back.vmdk')",
        w.display()
    ));
    qemu_same(w, "back.vmdk", "vmdk", &src, "raw");
    let log = nginx.log();
    assert!(log.lines().count() >= 3, "{log}");
    assert!(
        log.lines()
            .all(|l| (l.contains(" /vm/") || l.contains(" /out/")) && !l.contains("/disks")),
        "{log}"
    );
}
