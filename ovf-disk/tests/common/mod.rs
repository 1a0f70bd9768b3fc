//! Helpers for the integration tests: run qemu-img and ovf-disk, hash files, check holes.
//! qemu-img (Debian's qemu-utils) is required: a missing qemu-img fails the tests loudly
//! (scripts/setup.sh installs it), it never skips them.
#![allow(
    dead_code,
    unused_imports,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Command, Output};

/// The byte-by-byte image builders, the peers (qemu-img, the Python readers, sha256) and the
/// OVA and envelope builders, shared with the library's tests (the test-support crate).
pub use test_support::builders::{self, noise};
pub use test_support::ovf::*;
pub use test_support::peers::*;

/// Runs qemu-io on a vmdk with commands, which must succeed.
pub fn qemu_io(dir: &Path, file: &str, commands: &[&str]) {
    let mut cmd = Command::new(tool("qemu-io"));
    cmd.args(["-f", "vmdk"]).current_dir(dir);
    for c in commands {
        cmd.args(["-c", c]);
    }
    cmd.arg(file);
    let out = succeeded(
        cmd.output().unwrap(),
        &format!("qemu-io {commands:?} {file}"),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("failed"), "qemu-io {commands:?}: {text}");
}

/// Runs ovf-disk with `args` in `dir` and returns its output, whatever the status.
pub fn ovf_disk(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ovf-disk"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

/// Our stream-optimized copy of the raw image `src` (in `dir`) as `out`: `ovf-disk convert
/// --to streamOptimized`, which must succeed.
pub fn ours_stream(dir: &Path, src: &str, out: &str) {
    let args = ["convert", "-q", "--to", "streamOptimized", src, out];
    ovf_disk_ok(dir, &args);
}

/// Runs ovf-disk, which must succeed.
pub fn ovf_disk_ok(dir: &Path, args: &[&str]) -> Output {
    succeeded(ovf_disk(dir, args), &format!("ovf-disk {}", args.join(" ")))
}

/// Asserts the file is eager-zeroed: no holes (its allocated blocks cover its whole size) and
/// no extent preallocated but never written (`filefrag -v`, FIEMAP): outputs are preallocated
/// before they are written, and allocated blocks alone would not show whether every byte was.
pub fn assert_no_holes(path: &Path) {
    let m = std::fs::metadata(path).unwrap();
    assert!(
        m.blocks() * 512 >= m.len(),
        "{} has holes: {} bytes allocated of {}",
        path.display(),
        m.blocks() * 512,
        m.len()
    );
    assert!(
        !unwritten_extents(path),
        "{} has preallocated extents never written",
        path.display()
    );
}

/// Whether the file has extents preallocated and never written (`filefrag -v`). Fails loudly
/// where the file system does not report extents (tmpfs has no FIEMAP): an eager-zero claim
/// that cannot be verified must not pass.
pub fn unwritten_extents(path: &Path) -> bool {
    let out = Command::new("filefrag")
        .arg("-v")
        .arg(path)
        .output()
        .expect("filefrag (e2fsprogs) runs: scripts/setup.sh installs it");
    assert!(
        out.status.success(),
        "filefrag cannot report the extents of {} (no FIEMAP on its file system?): whether \
         every byte was written is not verified there: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).contains("unwritten")
}

/// Bytes allocated to a file.
pub fn allocated(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().blocks() * 512
}

/// Inflates `input` (in `dir`) to raw and to thick VMDKs (monolithicFlat and vmfs), and asserts:
/// the raw output's sha256 equals qemu-img's raw reading, it has no holes, and qemu-img compare
/// finds both thick VMDKs identical to the input. Returns the sha256.
pub fn assert_inflates_like_qemu(dir: &Path, input: &str) -> String {
    let expected = qemu_raw_sha(dir, input);
    let raw = format!("{input}.inflated.raw");
    ovf_disk_ok(dir, &["inflate", "-q", input, &raw]);
    assert_eq!(
        sha256(&dir.join(&raw)),
        expected,
        "{input}: raw output differs from qemu-img's reading"
    );
    assert_no_holes(&dir.join(&raw));
    std::fs::remove_file(dir.join(&raw)).unwrap();
    for (suffix, esx) in [("thick", false), ("esx", true)] {
        let out = format!("{input}.{suffix}.vmdk");
        let mut args = vec!["inflate", "-q", input, &out];
        if esx {
            args.push("--esx");
        }
        ovf_disk_ok(dir, &args);
        let text = std::fs::read_to_string(dir.join(&out)).unwrap();
        let want = if esx {
            "createType=\"vmfs\""
        } else {
            "createType=\"monolithicFlat\""
        };
        assert!(text.contains(want), "{text}");
        let flat = format!("{}-flat.vmdk", out.strip_suffix(".vmdk").unwrap());
        assert_no_holes(&dir.join(&flat));
        qemu_same(dir, input, "vmdk", &out, "vmdk");
        std::fs::remove_file(dir.join(&out)).unwrap();
        std::fs::remove_file(dir.join(&flat)).unwrap();
    }
    expected
}

/// A raw image of `len` bytes: random data, text-like data, zeros and partial grains, at
/// offsets that cross grain and grain-table boundaries.
pub fn sample_raw(path: &Path, len: u64) {
    use std::os::unix::fs::FileExt;
    let f = File::create(path).unwrap();
    f.set_len(len).unwrap();
    let text = b"The quick brown fox jumps over the lazy dog 0123456789. ".repeat(4000);
    let mut at = 0u64;
    let mut i = 0u64;
    while at < len {
        let chunk: Vec<u8> = match i % 4 {
            0 => noise(i + 1, 300_000),
            1 => text[..200_000].to_vec(),
            2 => vec![0u8; 1_000_000],
            _ => noise(i + 99, 777),
        };
        let n = chunk.len().min((len - at) as usize);
        f.write_all_at(&chunk[..n], at).unwrap();
        at += n as u64 + (i % 3) * 3_000_000 + 512 * (i % 5);
        i += 1;
    }
    // The last bytes of the disk, so partial last grains hold data.
    let tail = noise(12345, 4096.min(len as usize));
    f.write_all_at(&tail, len - tail.len() as u64).unwrap();
}

/// qemu-img writes the raw image `src` (in `dir`) as the VMDK `out`, with its `-o` options
/// (`subformat=streamOptimized`, `zeroed_grain=on`, ...; empty for none).
pub fn qemu_to_vmdk(dir: &Path, src: &str, out: &str, options: &str) {
    let mut args = vec!["convert", "-f", "raw", "-O", "vmdk"];
    if !options.is_empty() {
        args.extend(["-o", options]);
    }
    args.extend([src, out]);
    qemu_img(dir, &args);
}

/// The virtual size qemu-img reads for `file` (in `dir`) of format `fmt`.
pub fn qemu_virtual_size(dir: &Path, file: &str, fmt: &str) -> u64 {
    let out = qemu_img(dir, &["info", "-f", fmt, "--output=json", file]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["virtual-size"].as_u64().unwrap()
}

/// qemu-img compare finds `a` (format `fa`) and `b` (format `fb`) identical, and of the same
/// virtual size (`compare` alone accepts a larger image whose tail is zeros; its strict mode
/// also compares allocation, which differs on purpose between thin and thick images).
pub fn qemu_same(dir: &Path, a: &str, fa: &str, b: &str, fb: &str) {
    qemu_img(dir, &["compare", "-f", fa, "-F", fb, a, b]);
    assert_eq!(
        qemu_virtual_size(dir, a, fa),
        qemu_virtual_size(dir, b, fb),
        "{a} and {b}: sizes differ"
    );
}

/// The disk database of the VMDK `file` (in `dir`) as its bytes say, read without our parser:
/// every `ddb.KEY = "VALUE"` line in the first 64 KiB (a text descriptor, or the descriptor
/// embedded in a sparse file).
pub fn raw_ddb(dir: &Path, file: &str) -> std::collections::BTreeMap<String, String> {
    let bytes = std::fs::read(dir.join(file)).unwrap();
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(64 << 10)]).into_owned();
    head.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            let k = k.trim();
            k.starts_with("ddb.")
                .then(|| (k.to_string(), v.trim().trim_matches('"').to_string()))
        })
        .collect()
}

/// qemu-img creates `delta` (in `dir`), an empty VMDK delta over `parent` (a snapshot).
pub fn qemu_delta(dir: &Path, parent: &str, delta: &str) {
    qemu_img(
        dir,
        &[
            "create", "-q", "-f", "vmdk", "-b", parent, "-F", "vmdk", delta,
        ],
    );
}

/// Kills `child` (SIGKILL) as soon as `reached()` says so, polling; fails when it ends first
/// (`what` says what was awaited) or a minute passes.
pub fn kill_when(child: &mut std::process::Child, what: &str, mut reached: impl FnMut() -> bool) {
    let started = std::time::Instant::now();
    loop {
        if reached() {
            child.kill().unwrap();
            child.wait().unwrap();
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the run ended ({status}) before {what}");
        }
        assert!(
            started.elapsed().as_secs() < 60,
            "no {what} within a minute"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// qemu-img creates an empty VMDK `name` (in `dir`) of `subformat` and `size` (`1M`, `2G`).
pub fn qemu_create(dir: &Path, name: &str, subformat: &str, size: &str) {
    qemu_img(
        dir,
        &[
            "create",
            "-q",
            "-f",
            "vmdk",
            "-o",
            &format!("subformat={subformat}"),
            name,
            size,
        ],
    );
}

/// Runs `program args` in `dir`, which must succeed; its standard output.
pub fn run_ok(dir: &Path, program: &str, args: &[&str]) -> String {
    let out = Command::new(tool(program))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    let out = succeeded(out, &format!("{program} {}", args.join(" ")));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// An ESXi datastore folder in `dir`: `web.vmx` with `web.vmdk` (createType vmfs over
/// `web-flat.vmdk`) under a COWD snapshot (vmfsSparse, `web-000001.vmdk`) and a seSparse
/// snapshot (`web-000002.vmdk`), with change-tracking files, and `data.vmdk` (vmfs) on a second
/// SCSI controller.
pub fn esxi_vm_folder(dir: &Path) {
    use builders::{esx_descriptor, CowdBuilder, SeSparseBuilder};
    let sectors: u32 = 3 * 4096 + 5;
    let base = noise(7, sectors as usize * 512);
    std::fs::write(dir.join("web-flat.vmdk"), &base).unwrap();
    let flat = |name: &str| format!("RW {sectors} VMFS \"{name}\"");
    std::fs::write(
        dir.join("web.vmdk"),
        esx_descriptor("vmfs", 0x1111_1111, None, &[flat("web-flat.vmdk")]),
    )
    .unwrap();
    let mut cowd = CowdBuilder::new(sectors);
    for g in [0u64, 1, 4095, 4096, u64::from(sectors) - 1] {
        cowd.grains.insert(g, noise(g + 3, 512));
    }
    std::fs::write(dir.join("web-000001-delta.vmdk"), cowd.build().0).unwrap();
    std::fs::write(
        dir.join("web-000001.vmdk"),
        esx_descriptor(
            "vmfsSparse",
            0x2222_2222,
            Some((0x1111_1111, "web.vmdk")),
            &[format!("RW {sectors} VMFSSPARSE \"web-000001-delta.vmdk\"")],
        ),
    )
    .unwrap();
    let mut se = SeSparseBuilder::new(sectors.into());
    se.grains.insert(1, noise(91, 4096));
    se.grains.insert(600, noise(92, 4096));
    se.zeroed = vec![2];
    std::fs::write(dir.join("web-000002-sesparse.vmdk"), se.build().0).unwrap();
    std::fs::write(
        dir.join("web-000002.vmdk"),
        esx_descriptor(
            "seSparse",
            0x3333_3333,
            Some((0x2222_2222, "web-000001.vmdk")),
            &[format!(
                "RW {sectors} SESPARSE \"web-000002-sesparse.vmdk\""
            )],
        ),
    )
    .unwrap();
    std::fs::write(dir.join("data-flat.vmdk"), noise(8, sectors as usize * 512)).unwrap();
    std::fs::write(
        dir.join("data.vmdk"),
        esx_descriptor("vmfs", 0x4444_4444, None, &[flat("data-flat.vmdk")]),
    )
    .unwrap();
    for ctk in ["web-ctk.vmdk", "web-000001-ctk.vmdk", "web-000002-ctk.vmdk"] {
        std::fs::write(dir.join(ctk), b"# Change Tracking File\n").unwrap();
    }
    std::fs::write(
        dir.join("web.vmx"),
        "displayName = \"web\"\nscsi0.present = \"TRUE\"\nscsi0.virtualDev = \"pvscsi\"\nscsi0:0.present = \"TRUE\"\nscsi0:0.fileName = \"web-000002.vmdk\"\nscsi1.present = \"TRUE\"\nscsi1.virtualDev = \"lsilogic\"\nscsi1:0.present = \"TRUE\"\nscsi1:0.fileName = \"data.vmdk\"\n",
    )
    .unwrap();
}

/// A raw image at `path` of random contents drawn from `seed` (advanced): up to 25 MiB, runs
/// of noise up to 300 KiB apart by gaps of up to `max_gap` bytes, the rest unwritten (holes).
/// The random sparse disks the writers' round trips go through.
pub fn random_sparse_raw(path: &Path, seed: &mut u64, max_gap: u64) {
    let mut next = || {
        *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        *seed
    };
    let len = ((next() >> 33) % (24 << 20) + (1 << 20)) / 512 * 512;
    let f = File::create(path).unwrap();
    f.set_len(len).unwrap();
    let mut at = 0u64;
    while at < len {
        let s = next();
        let n = ((s >> 40) % (300 << 10)).min(len - at);
        if s % 3 == 0 {
            std::os::unix::fs::FileExt::write_all_at(&f, &noise(s, n as usize), at).unwrap();
        }
        at += n + (s >> 20) % max_gap;
    }
}

/// The size and sha256 of what dissect.hypervisor's reader `reader` (`vhd.VHD`, `vhdx.VHDX`)
/// reads from `file` (in `dir`).
pub fn dissect_read(dir: &Path, file: &str, reader: &str) -> (u64, String) {
    let (module, class) = reader.split_once('.').unwrap();
    let script = format!(
        "import hashlib, sys\n\
         from dissect.hypervisor.disk.{module} import {class}\n\
         v = {class}(open(sys.argv[1], 'rb'))\n\
         h = hashlib.sha256(); left = v.size; v.seek(0)\n\
         while left:\n    b = v.read(min(left, 1 << 20)); h.update(b); left -= len(b)\n\
         print(v.size, h.hexdigest())\n"
    );
    let out = Command::new(python())
        .args(["-c", &script, file])
        .current_dir(dir)
        .output()
        .unwrap();
    let out = succeeded(out, &format!("dissect.hypervisor's {class} reader"));
    let text = String::from_utf8_lossy(&out.stdout);
    let (size, sha) = text.trim().split_once(' ').unwrap();
    (size.parse().unwrap(), sha.to_string())
}
