//! What the resume tests of the stream and sparse writers share: a checkpoint that records
//! what it is told, and a disk whose data leaves grain tables empty between full ones.

use std::sync::Mutex;

use super::options::Checkpoint;
use crate::disk::Disk;
use crate::error::Result;
use crate::{MemoryFiles, OpenOptions};

/// A checkpoint that records every value it is told, and resumes from `from`.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    pub(crate) from: u64,
    pub(crate) told: Mutex<Vec<u64>>,
}

impl Recorder {
    /// A checkpoint that resumes from `from`.
    pub(crate) fn from(from: u64) -> Self {
        Self {
            from,
            ..Self::default()
        }
    }

    /// What it was told, in order.
    pub(crate) fn told(self) -> Vec<u64> {
        self.told.into_inner().unwrap_or_else(|p| p.into_inner())
    }
}

impl Checkpoint for Recorder {
    fn resume_from(&self) -> u64 {
        self.from
    }

    fn reached(&self, done: u64) -> Result<()> {
        self.told
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(done);
        Ok(())
    }
}

/// A raw disk of four grain tables of 32 MiB and a bit, served from memory: data in tables 0,
/// 2 and 4 (tables 1 and 3 empty, so they have no grain table), and in the last, partial grain.
pub(crate) fn tables_apart() -> Disk {
    let capacity = (4u64 << 25) + 3 * 512;
    let mut bytes = vec![0u8; capacity as usize];
    let starts = [
        0u64,
        65_536 * 3,
        2 << 25,
        (2 << 25) + (1 << 20),
        capacity - 700,
    ];
    for (i, at) in starts.into_iter().enumerate() {
        let len = 700.min(capacity - at) as usize;
        if let Some(run) = bytes.get_mut(at as usize..at as usize + len) {
            run.fill(i as u8 + 1);
        }
    }
    let mut files = MemoryFiles::new();
    files.insert("d.raw", bytes);
    match OpenOptions::new().files(files).open_raw("d.raw") {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    }
}

/// Opens (creating) `path` for a write that may continue what is in it.
fn open_rw(path: &std::path::Path) -> std::fs::File {
    let file = std::fs::File::options()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path);
    file.unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Writes `disk` by `plan` into its files, with a checkpoint resuming from `from`; returns
/// what it told and the files' bytes.
fn write_plan(
    disk: &Disk,
    plan: &super::Plan,
    options: &super::WriteOptions,
    from: u64,
) -> Result<(Vec<u64>, Vec<Vec<u8>>)> {
    let recorder = std::sync::Arc::new(Recorder::from(from));
    let files: Vec<_> = plan.files().iter().map(|f| open_rw(f.path())).collect();
    let outputs: Vec<_> = files
        .iter()
        .zip(plan.files())
        .map(|(f, p)| (f, p.path()))
        .collect();
    let options = options.clone().checkpoint(recorder.clone());
    plan.write(disk, &outputs, &options, &|_| {})?;
    let told = recorder.told.lock().map(|t| t.clone()).unwrap_or_default();
    let bytes = plan
        .files()
        .iter()
        .map(|f| std::fs::read(f.path()).unwrap_or_default())
        .collect();
    Ok((told, bytes))
}

/// Puts `bytes` back into the plan's files: what a run killed after its last checkpoint may
/// leave (every later cluster, table and file too), which a resume must cut and write again.
fn leave(plan: &super::Plan, bytes: &[Vec<u8>]) {
    for (f, b) in plan.files().iter().zip(bytes) {
        std::fs::write(f.path(), b).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// A qcow2 write with a checkpoint, plain and compressed, continued from each checkpoint over
/// the whole file an uninterrupted write left, ends with that write's bytes, which read back as
/// the disk; a damaged L1 entry, a table entry past the data and a checkpoint inside a table
/// are refused.
#[test]
fn a_qcow2_write_continues_from_each_checkpoint_to_the_same_bytes() {
    use crate::Format;
    let disk = tables_apart();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("d.qcow2");
    let plan = super::Plan::new(Format::Qcow2, disk.capacity(), &path).unwrap();
    // Clusters of 4 KiB: a table covers 2 MiB, a window of 8 MiB four tables.
    let plain = super::WriteOptions::new().cluster_size(4096).unwrap();
    let deflate = plain.clone().compress(Some(crate::Compression::Deflate));
    // An overlay of a backing file: every cluster of a raw disk is its own, zeros as zero
    // clusters (entry 1).
    let overlay = plain.clone().qcow2_backing("b.qcow2");
    for options in [plain, deflate.threads(3), overlay] {
        let _ = std::fs::remove_file(&path);
        let (told, want) = write_plan(&disk, &plan, &options, 0).unwrap();
        // Data in windows 0, 8 and the last: every window's end with a table written is told.
        assert!(told.len() >= 3, "{told:?}");
        assert_eq!(told.last(), Some(&disk.capacity()));
        for &done in &told {
            leave(&plan, &want);
            let (_, got) = write_plan(&disk, &plan, &options, done).unwrap();
            assert!(got == want, "resumed at {done}");
        }
        if options.backing.is_some() {
            continue;
        }
        let back = crate::Disk::open(&path).unwrap();
        let (mut a, mut b) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
        for at in [0, 2 << 25, disk.capacity() - (1 << 20)] {
            back.read_exact_at(at, &mut a).unwrap();
            disk.read_exact_at(at, &mut b).unwrap();
            assert!(a == b, "at {at}");
        }
        // The first table's L1 entry (byte 4096) moved off its cluster.
        let mut bad = want.clone();
        bad[0][4096 + 7] ^= 0x10;
        leave(&plan, &bad);
        let e = write_plan(&disk, &plan, &options, told[0]).unwrap_err();
        assert!(
            e.to_string().contains("where this writer puts no table"),
            "{e}"
        );
        leave(&plan, &want);
        let e = write_plan(&disk, &plan, &options, 1 << 20).unwrap_err();
        assert!(e.to_string().contains("not at an L2 table's end"), "{e}");
    }
}

/// A twoGbMaxExtentSparse write continued from each checkpoint (each extent resumes in its own
/// bytes, the next ones start over) ends with the uninterrupted write's files.
#[test]
fn a_split_sparse_write_continues_from_each_checkpoint_to_the_same_bytes() {
    let mib = 2048u64; // sectors
    let capacity = (2047 + 64) * mib;
    let mut files = MemoryFiles::new();
    let mut descriptor = String::from("createType=\"custom\"\n");
    let mut at = 0;
    for (i, start) in [0, 100 * mib, (2047 + 40) * mib].into_iter().enumerate() {
        if start > at {
            descriptor.push_str(&format!("RW {} ZERO\n", start - at));
        }
        let name = format!("{i}.raw");
        files.insert(&name, vec![i as u8 + 1; 1 << 20]);
        descriptor.push_str(&format!("RW {mib} FLAT \"{name}\" 0\n"));
        at = start + mib;
    }
    descriptor.push_str(&format!("RW {} ZERO\n", capacity - at));
    files.insert("d.vmdk", descriptor.into_bytes());
    let disk = OpenOptions::new()
        .files(files)
        .open("d.vmdk")
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let format = "twoGbMaxExtentSparse".parse().unwrap();
    let plan = super::Plan::new(format, disk.capacity(), dir.path().join("d.vmdk")).unwrap();
    assert_eq!(plan.files().len(), 3);
    // The descriptor is written at the end: its CID fixed, as two uninterrupted writes of a
    // disk without one would differ there too.
    let options = super::WriteOptions::new().cid(0x1234_5678).unwrap();
    let (told, want) = write_plan(&disk, &plan, &options, 0).unwrap();
    // Tables 0 and 3 of the first extent, table 1 (its last) of the second.
    assert_eq!(told, [32 << 20, 128 << 20, disk.capacity()], "{told:?}");
    for &done in &told {
        leave(&plan, &want);
        let (_, got) = write_plan(&disk, &plan, &options, done).unwrap();
        assert!(got == want, "resumed at {done}");
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(12))]

    /// Any disk, cluster size (4 or 8 KiB: a table maps 2 or 8 MiB, so a 24 MiB disk has
    /// several checkpoints), compression and thread count: a qcow2 write continued from each
    /// checkpoint a write may tell ends with the uninterrupted write's bytes.
    #[test]
    fn any_qcow2_write_continues_from_each_checkpoint_to_the_same_bytes(
        fill in proptest::collection::vec((0u64..24 << 20, 1u64..3 << 20, 0u8..255), 0..6),
        bits in 12u32..14,
        compress: bool,
        threads in 1usize..4,
    ) {
        let capacity = (24u64 << 20) + 1536;
        let mut bytes = vec![0u8; capacity as usize];
        for (at, len, byte) in fill {
            let end = (at + len).min(capacity) as usize;
            if let Some(run) = bytes.get_mut(at as usize..end) {
                run.fill(byte);
            }
        }
        let mut files = MemoryFiles::new();
        files.insert("d.raw", bytes);
        let disk = OpenOptions::new().files(files).open_raw("d.raw").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.qcow2");
        let plan = super::Plan::new(crate::Format::Qcow2, capacity, &path).unwrap();
        let mut options = super::WriteOptions::new().cluster_size(1 << bits).unwrap().threads(threads);
        if compress {
            options = options.compress(Some(crate::Compression::Deflate));
        }
        let (told, want) = write_plan(&disk, &plan, &options, 0).unwrap();
        proptest::prop_assert_eq!(told.last(), Some(&capacity));
        // Every checkpoint a write may tell: the disk's bytes whose tables end at a window's
        // end (workers racing to the flush may skip some, so what one run told is a subset).
        let cluster = 1u64 << bits;
        let (per_window, per_table) = ((8u64 << 20) / cluster, cluster / 8);
        let clusters = capacity.div_ceil(cluster);
        let mut points: Vec<u64> = (1..=clusters.div_ceil(per_window))
            .map(|k| match (k * per_window).min(clusters) {
                end if end == clusters => capacity,
                end => ((end / per_table) * per_table * cluster).min(capacity),
            })
            .filter(|&b| b > 0)
            .collect();
        points.dedup();
        proptest::prop_assert!(points.len() >= 3, "{:?}", points);
        proptest::prop_assert!(told.iter().all(|t| points.contains(t)), "{:?} {:?}", told, points);
        for &done in &points {
            leave(&plan, &want);
            let (_, got) = write_plan(&disk, &plan, &options, done).unwrap();
            proptest::prop_assert!(got == want, "resumed at {}", done);
        }
    }
}

/// `bytes` of a VHD or VHDX file with what each write picks at random (the footer's unique id
/// and time, the headers' GUIDs, the disk's id) zeroed, so two writes of the same disk compare equal.
fn without_ids(format: &crate::Format, mut bytes: Vec<u8>) -> Vec<u8> {
    use crate::Format;
    let len = bytes.len();
    let mut blank = |at: usize, n: usize| {
        if let Some(r) = bytes.get_mut(at..(at + n).min(len)) {
            r.fill(0);
        }
    };
    match format {
        Format::Vhd => {
            blank(0, 512);
            blank(len.saturating_sub(512), 512);
        }
        Format::VhdFixed => blank(len.saturating_sub(512), 512),
        _ => {
            blank(64 << 10, 4096);
            blank(128 << 10, 4096);
            // The page 83 data (the disk's id): the metadata region at 3 MiB for a disk this
            // small, its third item 16 bytes into the items at 64 KiB.
            blank((3 << 20) + (64 << 10) + 16, 16);
        }
    }
    bytes
}

/// A VHD or VHDX write with a checkpoint, continued from each checkpoint over the whole file
/// an uninterrupted write left, ends with that write's bytes (but for what each write picks
/// at random), on one thread and on three (the blocks placed in disk order either way); a
/// damaged BAT entry is refused.
#[test]
fn vhd_and_vhdx_writes_continue_from_each_checkpoint_to_the_same_bytes() {
    use crate::Format;
    let disk = tables_apart();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for (format, bat_entry) in [
        (Format::Vhd, Some(1536 + 3)),
        (Format::Vhdx, Some((2 << 20) + 7)),
        (Format::VhdxFixed, Some((2 << 20) + 7)),
        (Format::VhdFixed, None),
    ] {
        let path = dir.path().join(format!("d.{}", format.name()));
        let plan = super::Plan::new(format.clone(), disk.capacity(), &path).unwrap();
        let mut first: Option<Vec<u8>> = None;
        for threads in [1, 3] {
            let options = super::WriteOptions::new().threads(threads);
            let _ = std::fs::remove_file(&path);
            let (told, want) = write_plan(&disk, &plan, &options, 0).unwrap();
            let want_main = without_ids(&format, want[0].clone());
            // Every layout the same whatever the threads do.
            match &first {
                None => first = Some(want_main.clone()),
                Some(f) => assert!(*f == want_main, "{format:?} on {threads} threads"),
            }
            assert_eq!(told.last(), Some(&plan.capacity), "{format:?}");
            if threads == 1 {
                continue;
            }
            // A fixed VHD is the copy engine's raw image (which tells at most twice a second)
            // and a footer: continued from windows of its own.
            let points = match format {
                Format::VhdFixed => vec![8 << 20, 64 << 20, plan.capacity],
                _ => told.clone(),
            };
            assert!(points.len() >= 3, "{format:?}: {told:?}");
            for &done in &points {
                leave(&plan, &want);
                let (_, got) = write_plan(&disk, &plan, &options, done).unwrap();
                let got = without_ids(&format, got[0].clone());
                assert!(got == want_main, "{format:?} resumed at {done}");
            }
            if let Some(at) = bat_entry {
                let mut bad = want.clone();
                bad[0][at] ^= 0x10;
                leave(&plan, &bad);
                let e = write_plan(&disk, &plan, &options, told[1]).unwrap_err();
                assert!(e.to_string().contains("cannot resume"), "{format:?}: {e}");
            }
        }
    }
}
