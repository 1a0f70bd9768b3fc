//! The cluster job contract (`deploy/job.yaml`): the Job's exact argument list, read from the
//! file, run against nginx (TLS, basic authentication, an ESXi-style `/folder` URL) with a
//! loop device as the block-mode volume: the volume holds the disk's bytes, the log holds a
//! JSON progress line a second up to the total, and the password is nowhere in it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::io::Read;

use common::*;
use test_support::http::{Nginx, NginxOptions};

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
