//! `export` options: the manifest's algorithm and spelling, signatures, gzip-compressed and
//! chunked disk files, files carried beside the disks, plain ustar members. Each is read back
//! by our `verify` and `import`, by `tar`, by `sha1sum`/`sha256sum`/`sha512sum -c`, and by
//! `openssl dgst -verify` for signatures made with keys and certificates `openssl` made (RSA
//! 2048 and 4096, SHA256 and SHA512; PKCS#8 and PKCS#1 keys).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::path::Path;

use common::*;

/// Two small disks in `dir` (`a.vmdk`, `b.raw`) and their raw sha256s.
fn disks(dir: &Path) -> (String, String) {
    sample_raw(&dir.join("b.raw"), 3 << 20);
    qemu_create(dir, "a.vmdk", "streamOptimized", "2M");
    qemu_io(dir, "a.vmdk", &["write -P 0x61 0 640k"]);
    (qemu_raw_sha(dir, "a.vmdk"), sha256(&dir.join("b.raw")))
}

/// Extracts `ova` into `dir/into` with tar and returns the member names in order.
fn untar(dir: &Path, ova: &str, into: &str) -> Vec<String> {
    std::fs::create_dir_all(dir.join(into)).unwrap();
    run_ok(dir, "tar", &["-xf", ova, "-C", into]);
    run_ok(dir, "tar", &["-tf", ova])
        .lines()
        .map(str::to_string)
        .collect()
}

/// The imported disks of `ova` (imported into `dir/out`) match `a` and `b`.
fn imports_to(dir: &Path, ova: &str, out: &str, a: &str, b: &str) {
    ovf_disk_ok(dir, &["import", "-q", "--format", "raw", ova, out]);
    let base = Path::new(ova)
        .file_stem()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert_eq!(sha256(&dir.join(format!("{out}/{base}-disk1.raw"))), a);
    assert_eq!(
        sha256_prefix(&dir.join(format!("{out}/{base}-disk2.raw")), 3 << 20),
        b
    );
}

#[test]
fn manifests_in_every_algorithm_and_spelling_are_read_by_the_sum_tools() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let (a, b) = disks(dir);
    for (alg, style, tool_name) in [
        ("sha1", "vmware", "sha1sum"),
        ("sha256", "vmware", "sha256sum"),
        ("sha512", "tag", "sha512sum"),
        ("sha1", "tag", "sha1sum"),
    ] {
        let ova = format!("{alg}-{style}.ova");
        ovf_disk_ok(
            dir,
            &[
                "export",
                "-q",
                "--manifest",
                alg,
                "--manifest-style",
                style,
                "a.vmdk",
                "b.raw",
                &ova,
            ],
        );
        let members = untar(dir, &ova, &format!("x-{alg}-{style}"));
        let base = ova.trim_end_matches(".ova");
        assert_eq!(members[..2], [format!("{base}.ovf"), format!("{base}.mf")]);
        let folder = dir.join(format!("x-{alg}-{style}"));
        let mf = std::fs::read_to_string(folder.join(format!("{base}.mf"))).unwrap();
        let upper = alg.to_uppercase();
        for line in mf.lines() {
            match style {
                "vmware" => assert!(
                    line.starts_with(&format!("{upper}(")) && line.contains(")= "),
                    "{line}"
                ),
                _ => assert!(
                    line.starts_with(&format!("{upper} (")) && line.contains(") = "),
                    "{line}"
                ),
            }
        }
        // The sum tools read the tag form as it is, and the VMware form turned into theirs.
        let sums = match style {
            "tag" => mf.clone(),
            _ => mf
                .lines()
                .map(|l| {
                    let (name, hex) = l.split_once(")= ").unwrap();
                    format!("{hex}  {}\n", &name[upper.len() + 1..])
                })
                .collect(),
        };
        std::fs::write(folder.join("sums"), sums).unwrap();
        run_ok(&folder, tool_name, &["-c", "sums"]);
        let v = ovf_disk_ok(dir, &["verify", &ova]);
        assert!(String::from_utf8_lossy(&v.stdout).ends_with("verified\n"));
        imports_to(dir, &ova, &format!("in-{alg}-{style}"), &a, &b);
    }
}

#[test]
fn signed_packages_verify_here_and_with_openssl() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let (a, b) = disks(dir);
    for (bits, alg, pkcs1) in [
        (2048, "sha256", false),
        (4096, "sha512", true),
        (2048, "sha1", false),
    ] {
        let key = format!("k{bits}.pem");
        let cert = format!("c{bits}.pem");
        run_ok(
            dir,
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                &format!("rsa:{bits}"),
                "-keyout",
                &key,
                "-out",
                &cert,
                "-days",
                "2",
                "-nodes",
                "-subj",
                &format!("/CN=exporter {bits}"),
            ],
        );
        let key = if pkcs1 {
            run_ok(
                dir,
                "openssl",
                &["rsa", "-in", &key, "-out", "pkcs1.pem", "-traditional"],
            );
            assert!(std::fs::read_to_string(dir.join("pkcs1.pem"))
                .unwrap()
                .contains("BEGIN RSA PRIVATE KEY"));
            "pkcs1.pem".to_string()
        } else {
            key
        };
        let ova = format!("signed-{bits}-{alg}.ova");
        ovf_disk_ok(
            dir,
            &[
                "export",
                "-q",
                "--manifest",
                alg,
                "--sign",
                &key,
                "--cert",
                &cert,
                "a.vmdk",
                "b.raw",
                &ova,
            ],
        );
        let base = ova.trim_end_matches(".ova");
        let into = format!("x-{base}");
        let members = untar(dir, &ova, &into);
        assert_eq!(
            members[..3],
            [
                format!("{base}.ovf"),
                format!("{base}.mf"),
                format!("{base}.cert")
            ]
        );
        let v = ovf_disk_ok(dir, &["verify", "--json", &ova]);
        let v: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
        assert_eq!(v["ok"], true, "{v}");
        assert_eq!(v["signature"]["valid"], true, "{v}");
        assert!(v["signature"]["signer"]
            .as_str()
            .unwrap()
            .contains(&format!("exporter {bits}")));
        // openssl checks the same signature over the manifest.
        let folder = dir.join(&into);
        let cert_text = std::fs::read_to_string(folder.join(format!("{base}.cert"))).unwrap();
        let first = cert_text.lines().next().unwrap();
        assert!(
            first.starts_with(&format!("{}({base}.mf)= ", alg.to_uppercase())),
            "{first}"
        );
        let hex = first.split_once("= ").unwrap().1;
        let sig: Vec<u8> = (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        assert_eq!(sig.len(), bits / 8);
        std::fs::write(folder.join("sig.bin"), sig).unwrap();
        let public = run_ok(dir, "openssl", &["x509", "-in", &cert, "-pubkey", "-noout"]);
        std::fs::write(folder.join("pub.pem"), public).unwrap();
        let ok = run_ok(
            &folder,
            "openssl",
            &[
                "dgst",
                &format!("-{alg}"),
                "-verify",
                "pub.pem",
                "-signature",
                "sig.bin",
                &format!("{base}.mf"),
            ],
        );
        assert_eq!(ok.trim(), "Verified OK");
        imports_to(dir, &ova, &format!("in-{base}"), &a, &b);
    }
    // A key whose certificate is another key's is refused before anything is written.
    let run_bad = ovf_disk(
        dir,
        &[
            "export",
            "--sign",
            "k4096.pem",
            "--cert",
            "c2048.pem",
            "a.vmdk",
            "bad.ova",
        ],
    );
    let err = String::from_utf8_lossy(&run_bad.stderr);
    assert!(
        err.contains("the certificate is not the private key's"),
        "{err}"
    );
    assert!(!dir.join("bad.ova").exists());
}

#[test]
fn compressed_and_chunked_disk_files_import_and_verify() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let (a, b) = disks(dir);
    ovf_disk_ok(
        dir,
        &[
            "export",
            "-q",
            "--compress",
            "--chunk-size",
            "65536",
            "a.vmdk",
            "b.raw",
            "cc.ova",
        ],
    );
    let members = untar(dir, "cc.ova", "x");
    assert!(
        members.contains(&"cc-disk1.vmdk.000000000".to_string()),
        "{members:?}"
    );
    assert!(
        members
            .iter()
            .filter(|m| m.starts_with("cc-disk2.vmdk."))
            .count()
            > 1,
        "{members:?}"
    );
    let ovf = std::fs::read_to_string(dir.join("x/cc.ovf")).unwrap();
    assert!(ovf.contains("ovf:compression=\"gzip\""), "{ovf}");
    assert!(ovf.contains("ovf:chunkSize=\"65536\""), "{ovf}");
    // The chunks put together are a gzip file (gzip reads it) of a stream-optimized disk.
    let mut whole = Vec::new();
    for m in members.iter().filter(|m| m.starts_with("cc-disk2.vmdk.")) {
        let bytes = std::fs::read(dir.join("x").join(m)).unwrap();
        assert!(bytes.len() <= 65536);
        whole.extend(bytes);
    }
    std::fs::write(dir.join("disk2.vmdk.gz"), &whole).unwrap();
    run_ok(dir, "gzip", &["-t", "disk2.vmdk.gz"]);
    // Readers no one here wrote: the manifest checks with sha256sum (over the members as
    // stored), and each disk, its chunks joined and gunzipped, reads in qemu-img as its source.
    let mf = std::fs::read_to_string(dir.join("x/cc.mf")).unwrap();
    let sums = sha256sum_lines(&mf);
    std::fs::write(dir.join("x/cc.sha256"), sums).unwrap();
    run_ok(
        &dir.join("x"),
        "sha256sum",
        &["-c", "--strict", "cc.sha256"],
    );
    for (disk, want, len) in [
        ("cc-disk1.vmdk", &a, None),
        ("cc-disk2.vmdk", &b, Some(3u64 << 20)),
    ] {
        let mut joined = Vec::new();
        for m in members
            .iter()
            .filter(|m| m.starts_with(&format!("{disk}.")))
        {
            joined.extend(std::fs::read(dir.join("x").join(m)).unwrap());
        }
        let gz = format!("{disk}.gz");
        std::fs::write(dir.join(&gz), &joined).unwrap();
        run_ok(dir, "gzip", &["-d", "-f", &gz]);
        qemu_img(
            dir,
            &[
                "convert",
                "-f",
                "vmdk",
                "-O",
                "raw",
                disk,
                &format!("{disk}.raw"),
            ],
        );
        let got = match len {
            Some(len) => sha256_prefix(&dir.join(format!("{disk}.raw")), len),
            None => sha256(&dir.join(format!("{disk}.raw"))),
        };
        assert_eq!(&got, want, "{disk}");
    }
    let v = ovf_disk_ok(dir, &["verify", "cc.ova"]);
    let text = String::from_utf8_lossy(&v.stdout);
    assert!(text.ends_with("verified\n"), "{text}");
    assert!(!text.contains("not listed"), "{text}");
    imports_to(dir, "cc.ova", "in-cc", &a, &b);
    // Compressed only, and chunked only; the folder form of the package verifies too.
    ovf_disk_ok(
        dir,
        &["export", "-q", "--compress", "a.vmdk", "b.raw", "gz.ova"],
    );
    imports_to(dir, "gz.ova", "in-gz", &a, &b);
    ovf_disk_ok(
        dir,
        &[
            "export",
            "-q",
            "--chunk-size",
            "1048576",
            "a.vmdk",
            "b.raw",
            "ch.ova",
        ],
    );
    imports_to(dir, "ch.ova", "in-ch", &a, &b);
    untar(dir, "cc.ova", "folder");
    let v = ovf_disk_ok(dir, &["verify", "folder/cc.ovf"]);
    assert!(String::from_utf8_lossy(&v.stdout).ends_with("verified\n"));
    // A chunk size that is not a multiple of 512 is refused.
    let bad = ovf_disk(
        dir,
        &["export", "--chunk-size", "1000", "a.vmdk", "bad.ova"],
    );
    assert!(String::from_utf8_lossy(&bad.stderr).contains("must be a multiple of 512"));
    // Sizes take units as ovftool's do: 1M is the same package as 1048576.
    ovf_disk_ok(
        dir,
        &[
            "export",
            "-q",
            "--chunk-size",
            "1M",
            "a.vmdk",
            "b.raw",
            "ch-unit.ova",
        ],
    );
    let sizes = |ova: &str, into: &str| -> Vec<(String, u64)> {
        untar(dir, ova, into)
            .into_iter()
            .filter(|m| m.contains(".vmdk."))
            .map(|m| {
                let len = std::fs::metadata(dir.join(into).join(&m)).unwrap().len();
                (m.replace("ch-unit", "ch"), len)
            })
            .collect()
    };
    let chunks = sizes("ch-unit.ova", "ch-unit");
    assert_eq!(chunks.len(), 2, "{chunks:?}");
    assert_eq!(chunks, sizes("ch.ova", "ch-again"));
    let bad = ovf_disk(
        dir,
        &["export", "--chunk-size", "1.5G", "a.vmdk", "bad.ova"],
    );
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not a size"));
}

#[test]
fn files_beside_the_disks_are_carried_and_long_names_refused() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    disks(dir);
    let pkg = dir.join("pkg");
    std::fs::create_dir(&pkg).unwrap();
    std::fs::copy(dir.join("a.vmdk"), pkg.join("a.vmdk")).unwrap();
    std::fs::write(pkg.join("boot.iso"), vec![0x42u8; 5000]).unwrap();
    let refs = format!(
        "{}<File ovf:href=\"boot.iso\" ovf:id=\"iso\" ovf:size=\"5000\"/>",
        file_ref(
            "a.vmdk",
            std::fs::metadata(pkg.join("a.vmdk")).unwrap().len() as usize,
            ""
        )
    );
    std::fs::write(pkg.join("p.ovf"), envelope(&refs, &disk_entry(2), "")).unwrap();
    ovf_disk_ok(dir, &["export", "-q", "pkg/p.ovf", "carried.ova"]);
    let members = untar(dir, "carried.ova", "x");
    assert_eq!(members, ["p.ovf", "p.mf", "a.vmdk", "boot.iso"]);
    assert_eq!(
        std::fs::read(dir.join("x/boot.iso")).unwrap(),
        vec![0x42u8; 5000]
    );
    let mf = std::fs::read_to_string(dir.join("x/p.mf")).unwrap();
    assert!(mf.contains("SHA256(boot.iso)= "), "{mf}");
    let v = ovf_disk_ok(dir, &["verify", "carried.ova"]);
    assert!(String::from_utf8_lossy(&v.stdout).ends_with("verified\n"));
    // A member name longer than ustar's 100 bytes.
    let long = format!("{}.ova", "n".repeat(110));
    let bad = ovf_disk(dir, &["export", "a.vmdk", &long]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("a plain ustar member name holds at most 100"),
        "{err}"
    );
    assert!(!dir.join(&long).exists());
}
