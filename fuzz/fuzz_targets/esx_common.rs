//! What the `cowd` and `sesparse` targets run on their input (not a target itself).

use vmdk::internals::extent_layout;
use vmdk::{Disk, MemoryFiles, OpenOptions};

/// Bytes read at each end of the disk.
const READ_LEN: u64 = 64 << 10;
/// Steps `allocation_summary` (and `info`, which makes one) may take, as in the `disk` target:
/// past this only the first window is mapped.
const MAX_MAP_STEPS: u64 = 1 << 22;
/// `allocation_summary` maps the disk in windows of this size.
const WINDOW: u64 = 1 << 30;
/// The parent's size: smaller than most inputs' capacity, so reads cross its end.
const PARENT_LEN: usize = 64 << 10;

/// A descriptor of `create_type` with one extent `line`; `parent` is its `parentCID` and
/// `parentFileNameHint` lines.
fn descriptor(create_type: &str, cid: &str, parent: &str, line: &str) -> Vec<u8> {
    format!(
        "# Disk DescriptorFile\nversion=1\nCID={cid}\n{parent}createType=\"{create_type}\"\n\n# Extent description\n{line}\n\n# The Disk Data Base\n#DDB\n\nddb.adapterType = \"lsilogic\"\n"
    )
    .into_bytes()
}

/// Roughly how many steps mapping the whole disk takes: one per window and one per grain of
/// every sparse extent.
fn map_cost(disk: &Disk) -> u64 {
    let windows = disk.capacity().div_ceil(WINDOW);
    extent_layout(disk)
        .into_iter()
        .fold(windows, |cost, (len, grain)| {
            cost.saturating_add(grain.map_or(1, |g| len.div_ceil(g)))
        })
}

pub fn run(data: &[u8], create_type: &str, kind: &str, sectors: u64) {
    let mut files = MemoryFiles::new();
    files.insert("x.vmdk", data.to_vec());
    let base: Vec<u8> = (0..PARENT_LEN).map(|i| (i % 251) as u8 | 1).collect();
    files.insert("base-flat.vmdk", base);
    let parent_line = format!("RW {} VMFS \"base-flat.vmdk\"", PARENT_LEN / 512);
    let no_parent = "parentCID=ffffffff\n";
    files.insert(
        "base.vmdk",
        descriptor("vmfs", "11111111", no_parent, &parent_line),
    );
    let line = format!("RW {sectors} {kind} \"x.vmdk\"");
    let parent = "parentCID=11111111\nparentFileNameHint=\"base.vmdk\"\n";
    files.insert("d.vmdk", descriptor(create_type, "22222222", parent, &line));
    let options = OpenOptions::new().files(files);

    // check opens the disk itself and reports what stops it as a problem.
    let _ = vmdk::check("d.vmdk", &options);
    let Ok(disk) = options.open("d.vmdk") else {
        return;
    };
    let capacity = disk.capacity();
    if map_cost(&disk) <= MAX_MAP_STEPS {
        if let Ok(info) = disk.info() {
            let sum = info.allocation;
            assert_eq!(
                sum.data + sum.zero + sum.unallocated,
                capacity,
                "the allocation summary does not add up to the capacity"
            );
        }
    } else if let Ok(runs) = disk.map(0, capacity.min(WINDOW)) {
        let mut at = 0;
        for r in runs {
            assert_eq!(r.offset, at, "allocation map runs are not contiguous");
            at += r.len;
        }
    }

    // The first and last 64 KiB. What the map calls zero or unallocated must read as zeros
    // (the parent's bytes map as data, and none of them is 0).
    let n = capacity.min(READ_LEN);
    let mut buf = vec![0u8; n as usize];
    for offset in [0, capacity - n] {
        buf.fill(0xee);
        if disk.read_exact_at(offset, &mut buf).is_err() {
            continue;
        }
        let Ok(runs) = disk.map(offset, n) else {
            continue;
        };
        for r in runs {
            let from = (r.offset - offset) as usize;
            let bytes = &buf[from..from + r.len as usize];
            if r.kind.is_zero() {
                assert!(
                    bytes.iter().all(|&b| b == 0),
                    "{:?} run at {:#x}+{:#x} does not read as zeros",
                    r.kind,
                    r.offset,
                    r.len
                );
            }
        }
    }
    assert!(disk.read_exact_at(capacity, &mut [0u8; 1]).is_err());
}
