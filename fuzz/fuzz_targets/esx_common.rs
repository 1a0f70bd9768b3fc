//! What the `cowd` and `sesparse` targets run on their input (not a target itself).

use vmdk::{MemoryFiles, OpenOptions};

#[path = "oracle.rs"]
mod oracle;

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
    // The parent's bytes map as data, and none of them is 0; `info` makes the summary.
    oracle::check_disk(&disk, |d| d.info().ok().map(|i| i.allocation));
}
