//! Hostile input for the OVF side: random bytes and random mutations of a valid envelope,
//! manifest, certificate and OVA never panic any parser, the package check or the streaming
//! import; they work or fail with an error. (The catalogue of specific errors is in
//! `malformed.rs`; the fuzz targets run the same parsers for longer.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::io::Cursor;
use std::path::Path;

use common::builders::*;
use common::{disk_entry, envelope, file_ref, sha256_bytes, tar_of};
use ovf_disk::import::{self, import_stream};
use ovf_disk::output::ConvertOptions;
use ovf_disk::ovf::cert::CertificateFile;
use ovf_disk::ovf::manifest::Manifest;
use ovf_disk::ovf::Envelope;
use ovf_disk::package::{check_package, Package};
use proptest::prelude::*;
use proptest::sample::Index;

struct Sample {
    ovf: Vec<u8>,
    mf: Vec<u8>,
    cert: Vec<u8>,
    ova: Vec<u8>,
}

fn sample() -> Sample {
    let mut b = StreamBuilder::new(2048);
    b.grains.insert(0, noise(1, 65536));
    b.grains.insert(7, noise(2, 4096));
    let disk = b.build().0;
    let ovf = envelope(
        &file_ref("disk1.vmdk", disk.len(), ""),
        &disk_entry(1),
        "  <VirtualSystem ovf:id=\"vm\"><Info>x</Info><Name>vm</Name><VirtualHardwareSection><Info>hw</Info><Item><rasd:ResourceType xmlns:rasd=\"urn:r\">17</rasd:ResourceType></Item></VirtualHardwareSection></VirtualSystem>\n",
    );
    let mf = format!(
        "SHA256(p.ovf)= {}\nSHA1(disk1.vmdk)= {}\n",
        sha256_bytes(ovf.as_bytes()),
        "0".repeat(40)
    );
    let cert = format!(
        "SHA256(p.mf)= {}\n-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIUQ0Ehj0Zz\n-----END CERTIFICATE-----\n",
        "ab".repeat(64)
    );
    let ova = tar_of(&[
        ("p.ovf", ovf.as_bytes()),
        ("p.mf", mf.as_bytes()),
        ("p.cert", cert.as_bytes()),
        ("disk1.vmdk", &disk),
    ]);
    Sample {
        ovf: ovf.into_bytes(),
        mf: mf.into_bytes(),
        cert: cert.into_bytes(),
        ova,
    }
}

fn mutate(base: &[u8], edits: &[(Index, u8)], cut: Option<Index>) -> Vec<u8> {
    let mut bytes = base.to_vec();
    for (at, v) in edits {
        let i = at.index(bytes.len());
        bytes[i] = *v;
    }
    if let Some(c) = cut {
        bytes.truncate(c.index(bytes.len() + 1));
    }
    bytes
}

fn parse_texts(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    let _ = Envelope::parse(&text, Path::new("x.ovf"));
    let _ = Manifest::parse(&text, Path::new("x.mf"));
    let _ = CertificateFile::parse(&text, Path::new("x.cert"));
}

fn open_archive(bytes: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.ova");
    std::fs::write(&path, bytes).unwrap();
    if let Ok(pkg) = Package::open(&path) {
        let _ = check_package(&pkg, &vmdk::OpenOptions::default(), 1, &|_| {});
    }
    let out = dir.path().join("out");
    let write = vmdk::WriteOptions::new()
        .zero(vmdk::ZeroMode::Sparse)
        .threads(1);
    let options = import::Options::new()
        .output_format(vmdk::Format::Raw)
        .unwrap()
        .convert_options(ConvertOptions::new().write_options(write));
    let _ = import_stream(Cursor::new(bytes), "x.ova", &out, &options, &|_, _| {});
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn mutated_texts_never_panic(
        which in 0usize..3,
        edits in prop::collection::vec((any::<Index>(), any::<u8>()), 1..12),
        cut in proptest::option::of(any::<Index>()),
    ) {
        let s = sample();
        let base = [&s.ovf, &s.mf, &s.cert][which];
        parse_texts(&mutate(base, &edits, cut));
    }

    #[test]
    fn mutated_archives_never_panic(
        edits in prop::collection::vec((any::<Index>(), any::<u8>()), 1..12),
        cut in proptest::option::of(any::<Index>()),
    ) {
        open_archive(&mutate(&sample().ova, &edits, cut));
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..3000)) {
        parse_texts(&bytes);
        open_archive(&bytes);
    }
}
