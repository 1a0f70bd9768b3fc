//! Whole images, mutated: from small images of every layout we read (made here by qemu-img and
//! by ourselves) and an OVA, seeded random mutations (bit flips; 8-byte words set to 0, all
//! ones or 2^63; truncations; one part of the file spliced over another) run through `info`,
//! `check`, `inflate`, `convert` and the package verbs, each under a time limit and an address-space
//! limit. A panic, a signal (an abort on a failed allocation), a time-out or an exit code other
//! than 0, 1 or 2 fails the test, and the input is kept in `target/mutants-failed/` to become
//! a regression case in `testdata/mutants/` (which every run replays first).
//!
//! The run lasts `MUTANTS_SECONDS` (default 12 s, what CI affords beside the rest of the suite); `scripts/mutants.sh
//! SECONDS` runs it longer. `MUTANTS_SEED` picks the seed (default: a fixed one, so CI is
//! repeatable; the long run draws a fresh one and prints it); `MUTANTS_BIN` another binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Longest one command may take on a mutant.
const TIME_LIMIT: Duration = Duration::from_secs(20);
/// Address space one command may use (`ulimit -v`, KiB): far above what a 16 MiB image needs.
const ADDRESS_SPACE_KIB: u64 = 4 << 20;

/// A small xorshift generator: repeatable from its seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One image to mutate: a file of a disk (or a package), the file the commands open, and
/// whether it is a package.
struct Fixture {
    /// Names the fixture in messages and in kept inputs.
    name: String,
    /// The folder holding the disk's files.
    dir: PathBuf,
    /// The file mutated.
    file: String,
    /// The file the commands open.
    open: String,
    package: bool,
}

/// The images: every subformat qemu-img writes, a zeroed-grain sparse, a delta over a sparse
/// base, our own VMware-layout stream and sparse and vmfs writes, and an OVA.
fn fixtures(root: &Path) -> Vec<Fixture> {
    let src = root.join("src.raw");
    // 8 MiB, as the image issue 17 found the slow check on.
    sample_raw(&src, 8 << 20);
    let mut out = Vec::new();
    let mut add = |name: &str, make: &dyn Fn(&Path), files: &[&str], open: &str, package: bool| {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(&src, dir.join("src.raw")).unwrap();
        make(&dir);
        for f in files {
            out.push(Fixture {
                name: format!("{name}-{f}"),
                dir: dir.clone(),
                file: f.to_string(),
                open: open.to_string(),
                package,
            });
        }
    };
    for sub in ["monolithicSparse", "streamOptimized"] {
        add(
            &format!("qemu-{sub}"),
            &|d| qemu_to_vmdk(d, "src.raw", "d.vmdk", &format!("subformat={sub}")),
            &["d.vmdk"],
            "d.vmdk",
            false,
        );
    }
    add(
        "qemu-monolithicFlat",
        &|d| qemu_to_vmdk(d, "src.raw", "d.vmdk", "subformat=monolithicFlat"),
        &["d.vmdk", "d-flat.vmdk"],
        "d.vmdk",
        false,
    );
    add(
        "qemu-twoGbMaxExtentSparse",
        &|d| qemu_to_vmdk(d, "src.raw", "d.vmdk", "subformat=twoGbMaxExtentSparse"),
        &["d.vmdk", "d-s001.vmdk"],
        "d.vmdk",
        false,
    );
    add(
        "qemu-zeroed-grain",
        &|d| {
            qemu_to_vmdk(d, "src.raw", "d.vmdk", "zeroed_grain=on");
            qemu_io(d, "d.vmdk", &["write -z 0 256k"]);
        },
        &["d.vmdk"],
        "d.vmdk",
        false,
    );
    add(
        "qemu-delta",
        &|d| {
            qemu_to_vmdk(d, "src.raw", "base.vmdk", "");
            qemu_delta(d, "base.vmdk", "d.vmdk");
            qemu_io(d, "d.vmdk", &["write -P 0x5a 64k 128k"]);
        },
        &["d.vmdk", "base.vmdk"],
        "d.vmdk",
        false,
    );
    for to in ["streamOptimized", "monolithicSparse", "vmfs"] {
        let files: &[&str] = if to == "vmfs" {
            &["d.vmdk", "d-flat.vmdk"]
        } else {
            &["d.vmdk"]
        };
        add(
            &format!("ours-{to}"),
            &|d| {
                ovf_disk_ok(d, &["convert", "-q", "src.raw", "d.vmdk", "--to", to]);
            },
            files,
            "d.vmdk",
            false,
        );
    }
    // qcow2: compressed clusters of 4 KiB, and an overlay over it with zero clusters.
    add(
        "qemu-qcow2",
        &|d| {
            let c = [
                "convert",
                "-c",
                "-f",
                "raw",
                "-O",
                "qcow2",
                "-o",
                "cluster_size=4k",
            ];
            qemu_img(d, &[&c[..], &["src.raw", "base.qcow2"]].concat());
            let o = [
                "create",
                "-q",
                "-f",
                "qcow2",
                "-F",
                "qcow2",
                "-b",
                "base.qcow2",
                "d.qcow2",
            ];
            qemu_img(d, &o);
            let io = [
                "-f",
                "qcow2",
                "-c",
                "write -P 7 64k 64k",
                "-c",
                "write -z 1M 64k",
            ];
            run_ok(d, "qemu-io", &[&io[..], &["d.qcow2"]].concat());
        },
        &["d.qcow2", "base.qcow2"],
        "d.qcow2",
        false,
    );
    add(
        "ova",
        &|d| {
            ovf_disk_ok(
                d,
                &[
                    "convert",
                    "-q",
                    "src.raw",
                    "d.vmdk",
                    "--to",
                    "monolithicSparse",
                ],
            );
            ovf_disk_ok(d, &["export", "-q", "src.raw", "d.vmdk", "p.ova"]);
        },
        &["p.ova"],
        "p.ova",
        true,
    );
    out
}

/// One mutation of a file, as a line of a regression file (`flip 20 3`, `word 56 ...`).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Mutation {
    /// Flips bit `bit` of byte `at`.
    Flip { at: usize, bit: u32 },
    /// Sets the 8 bytes from `at` (cut at the end of the file) to `value`.
    Word { at: usize, value: u64 },
    /// Cuts the file to `len` bytes.
    Truncate { len: usize },
    /// Copies `len` bytes from `from` over those at `to`.
    Splice { from: usize, to: usize, len: usize },
    /// Sets byte `at` to `value`.
    Byte { at: usize, value: u8 },
    /// Shifts the little-endian field of `width` bytes at `at` left by `by` bits.
    Shift { at: usize, width: usize, by: u32 },
}

impl std::fmt::Display for Mutation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Flip { at, bit } => write!(f, "flip {at} {bit}"),
            Self::Word { at, value } => write!(f, "word {at} {value}"),
            Self::Truncate { len } => write!(f, "truncate {len}"),
            Self::Splice { from, to, len } => write!(f, "splice {from} {to} {len}"),
            Self::Byte { at, value } => write!(f, "byte {at} {value}"),
            Self::Shift { at, width, by } => write!(f, "shift {at} {width} {by}"),
        }
    }
}

impl Mutation {
    /// The mutation a regression file's line describes.
    fn parse(line: &str) -> Option<Self> {
        let w: Vec<&str> = line.split_whitespace().collect();
        let n = |i: usize| w.get(i)?.parse::<u64>().ok();
        Some(match *w.first()? {
            "flip" => Self::Flip {
                at: n(1)? as usize,
                bit: n(2)? as u32,
            },
            "word" => Self::Word {
                at: n(1)? as usize,
                value: n(2)?,
            },
            "truncate" => Self::Truncate {
                len: n(1)? as usize,
            },
            "splice" => Self::Splice {
                from: n(1)? as usize,
                to: n(2)? as usize,
                len: n(3)? as usize,
            },
            "byte" => Self::Byte {
                at: n(1)? as usize,
                value: n(2)? as u8,
            },
            "shift" => Self::Shift {
                at: n(1)? as usize,
                width: n(2)? as usize,
                by: n(3)? as u32,
            },
            _ => return None,
        })
    }

    /// `bytes` with the mutation applied (nothing where it does not fit).
    fn apply(&self, bytes: &[u8]) -> Vec<u8> {
        let mut b = bytes.to_vec();
        match *self {
            Self::Flip { at, bit } => {
                if let Some(x) = b.get_mut(at) {
                    *x ^= 1 << (bit % 8);
                }
            }
            Self::Word { at, value } => {
                let end = (at + 8).min(b.len());
                if at < end {
                    b[at..end].copy_from_slice(&value.to_le_bytes()[..end - at]);
                }
            }
            Self::Truncate { len } => b.truncate(len),
            Self::Splice { from, to, len } => {
                if from + len <= b.len() && to + len <= b.len() {
                    let part = b[from..from + len].to_vec();
                    b[to..to + len].copy_from_slice(&part);
                }
            }
            Self::Byte { at, value } => {
                if let Some(x) = b.get_mut(at) {
                    *x = value;
                }
            }
            Self::Shift { at, width, by } => {
                if at + width <= b.len() && width <= 8 {
                    let mut v = [0u8; 8];
                    v[..width].copy_from_slice(&b[at..at + width]);
                    let shifted = u64::from_le_bytes(v).wrapping_shl(by);
                    b[at..at + width].copy_from_slice(&shifted.to_le_bytes()[..width]);
                }
            }
        }
        b
    }
}

/// A mutation of a file of `len` bytes, chosen by `rng`.
fn mutation(rng: &mut Rng, len: usize) -> Mutation {
    let len = len.max(1);
    // Half the mutations hit the first sector, where headers and descriptors live.
    let at = |rng: &mut Rng| {
        if rng.below(2) == 0 {
            rng.below(len.min(512))
        } else {
            rng.below(len)
        }
    };
    match rng.below(6) {
        0 => Mutation::Flip {
            at: at(rng),
            bit: rng.below(8) as u32,
        },
        1 => Mutation::Word {
            at: at(rng) & !7,
            value: [0u64, u64::MAX, 1 << 63][rng.below(3)],
        },
        2 => Mutation::Truncate {
            len: rng.below(len),
        },
        3 => {
            let n = 1 + rng.below(4096.min(len));
            Mutation::Splice {
                from: rng.below(len - n + 1),
                to: rng.below(len - n + 1),
                len: n,
            }
        }
        // A byte of a word of the header set to a small number (a capacity or an offset made
        // large), as issue 17's 8 TiB capacity was.
        4 => Mutation::Byte {
            at: at(rng),
            value: [1u8, 4, 0x10, 0x80, 0xff][rng.below(5)],
        },
        // A sparse header's size field (capacity, grainSize, descriptorSize, numGTEsPerGT,
        // overHead) or offset (descriptorOffset, rgdOffset, gdOffset) multiplied by a power of
        // two: what a damaged header claims while staying plausible.
        _ => {
            let (at, width) = [
                (12, 8),
                (20, 8),
                (28, 8),
                (36, 8),
                (44, 4),
                (48, 8),
                (56, 8),
                (64, 8),
            ][rng.below(8)];
            Mutation::Shift {
                at,
                width,
                by: 1 + rng.below(40) as u32,
            }
        }
    }
}

/// The `ovf-disk` under test: this build's, or another (`MUTANTS_BIN`, e.g. a release build or
/// an older one to compare).
fn binary() -> PathBuf {
    std::env::var_os("MUTANTS_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_ovf-disk")),
        PathBuf::from,
    )
}

/// Runs `ovf-disk args` in `dir` under the limits; `Err` says why the run failed the test.
fn run_limited(dir: &Path, args: &[&str]) -> Result<(), String> {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -v {ADDRESS_SPACE_KIB}; exec \"$0\" \"$@\""))
        .arg(binary())
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            return match status.code() {
                Some(0..=2) if !err.contains("panicked") => Ok(()),
                Some(c) => Err(format!("exit code {c}: {err}")),
                None => Err(format!("killed by a signal ({status}): {err}")),
            };
        }
        if started.elapsed() > TIME_LIMIT {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("still running after {TIME_LIMIT:?}"));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The commands a mutant goes through.
fn commands(f: &Fixture) -> Vec<Vec<&'static str>> {
    let mut v = vec![vec!["info", "--json"], vec!["check", "--json"]];
    if f.package {
        v.push(vec!["verify"]);
        v.push(vec![
            "import",
            "-q",
            "--force",
            "--zero",
            "sparse",
            "--threads",
            "2",
        ]);
    } else {
        v.push(vec![
            "inflate",
            "-q",
            "--force",
            "--zero",
            "sparse",
            "--threads",
            "2",
        ]);
        v.push(vec![
            "convert",
            "-q",
            "--force",
            "--to",
            "streamOptimized",
            "--threads",
            "2",
        ]);
    }
    v
}

/// Runs every command on the fixture's folder (with the mutant in place); the first failure.
fn try_mutant(f: &Fixture, work: &Path) -> Result<(), String> {
    for cmd in commands(f) {
        let mut args: Vec<&str> = cmd.clone();
        args.push(&f.open);
        match cmd[0] {
            "inflate" => args.push("out.raw"),
            "convert" => args.push("out.vmdk"),
            "import" => args.push("out"),
            _ => {}
        }
        run_limited(work, &args).map_err(|e| format!("{}: {e}", cmd.join(" ")))?;
        let _ = std::fs::remove_file(work.join("out.raw"));
        let _ = std::fs::remove_file(work.join("out.vmdk"));
        let _ = std::fs::remove_dir_all(work.join("out"));
    }
    Ok(())
}

/// A scratch copy of the fixture's folder with `bytes` in place of its mutated file.
fn stage(f: &Fixture, bytes: &[u8], work: &Path) {
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(work).unwrap();
    for e in std::fs::read_dir(&f.dir).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name != "src.raw" {
            std::fs::copy(e.path(), work.join(&name)).unwrap();
        }
    }
    std::fs::write(work.join(&f.file), bytes).unwrap();
}

#[test]
fn mutated_images_never_panic_hang_or_exhaust_memory() {
    let seconds: u64 = std::env::var("MUTANTS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    let seed: u64 = std::env::var("MUTANTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1717);
    eprintln!("mutants: seed {seed}, {seconds} s");
    let d = tempfile::tempdir().unwrap();
    let fixtures = fixtures(d.path());
    let work = d.path().join("work");
    let kept = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/mutants-failed");
    let mut failures = Vec::new();

    // The mutations that failed once, every run: `testdata/mutants/FIXTURE.txt`, one per line.
    let regressions = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/mutants");
    let mut replayed = 0;
    for e in std::fs::read_dir(&regressions)
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.ends_with(".txt") {
            continue;
        }
        let Some(f) = fixtures.iter().find(|f| name == format!("{}.txt", f.name)) else {
            panic!("{name}: no fixture of this name");
        };
        let original = std::fs::read(f.dir.join(&f.file)).unwrap();
        for line in std::fs::read_to_string(e.path()).unwrap().lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            let m = Mutation::parse(line).unwrap_or_else(|| panic!("{name}: {line:?}"));
            stage(f, &m.apply(&original), &work);
            replayed += 1;
            if let Err(why) = try_mutant(f, &work) {
                failures.push(format!("regression {name}: {m}: {why}"));
            }
        }
    }
    eprintln!("mutants: {replayed} regression cases replayed");

    let mut rng = Rng(seed | 1);
    let started = Instant::now();
    let mut runs = 0u64;
    while started.elapsed() < Duration::from_secs(seconds) {
        let f = &fixtures[rng.below(fixtures.len())];
        let original = std::fs::read(f.dir.join(&f.file)).unwrap();
        let m = mutation(&mut rng, original.len());
        let mutant = m.apply(&original);
        stage(f, &mutant, &work);
        runs += 1;
        if let Err(why) = try_mutant(f, &work) {
            std::fs::create_dir_all(&kept).unwrap();
            let name = format!("{}.{seed}-{runs}", f.name);
            std::fs::write(kept.join(&name), &mutant).unwrap();
            failures.push(format!(
                "{}: {m} (the input is kept as target/mutants-failed/{name}; add the line to \
                 testdata/mutants/{}.txt): {why}",
                f.name, f.name
            ));
            if failures.len() >= 5 {
                break;
            }
        }
    }
    eprintln!(
        "mutants: {runs} mutants of {} fixtures in {:.0} s",
        fixtures.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(runs > 0 || seconds == 0);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
