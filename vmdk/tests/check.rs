//! `check` follows the file, not what its header claims (issue 17): grain tables over other
//! tables are reported and not walked, and problems of one kind beyond a few dozen are counted,
//! not listed. (That it finishes quickly on whole mutated images is `ovf-disk`'s
//! `tests/mutants.rs`, which runs every verb under a time limit.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use test_support::builders;

use builders::*;
use vmdk::{MemoryFiles, OpenOptions, LISTED_PER_KIND};

#[test]
fn tables_over_tables_are_counted_not_walked() {
    // 200 grain tables of 4 entries (4 KiB grains), one grain allocated in table 0.
    let mut b = SparseBuilder::new(200 * 4 * 8);
    b.grain_sectors = 8;
    b.gtes_per_gt = 4;
    b.grains.insert(0, noise(1, 4096));
    let (mut bytes, layout) = b.build("d.vmdk");
    // Every entry of both directories names table 0.
    let t0 = (layout.grain_tables[0] / 512) as u32;
    for dir in [layout.grain_directory, layout.redundant_directory] {
        for t in 0..200 {
            put(&mut bytes, dir + t * 4, &t0.to_le_bytes());
        }
    }
    let mut files = MemoryFiles::new();
    files.insert("d.vmdk", bytes);
    let options = OpenOptions::new().files(files);
    let report = vmdk::check("d.vmdk", &options).unwrap();
    // The same walk over a disk an importer holds open already.
    let disk = options.open("d.vmdk").unwrap();
    assert_eq!(vmdk::check_disk(&disk), report);
    let over: Vec<_> = report
        .problems
        .iter()
        .filter(|p| p.structure == "grain table")
        .collect();
    assert_eq!(over.len(), LISTED_PER_KIND, "{:#?}", report.problems);
    assert!(
        over[0].message.contains("lies over grain table 0"),
        "{over:?}"
    );
    let omitted = report
        .omitted
        .iter()
        .find(|o| o.structure == "grain table")
        .unwrap();
    assert_eq!(omitted.count, 199 - LISTED_PER_KIND as u64);
    assert_eq!(
        report.problem_count(),
        report.problems.len() as u64 + report.omitted.iter().map(|o| o.count).sum::<u64>()
    );
    // Table 0 was walked once: its one grain is counted once, not 200 times.
    assert_eq!(report.allocated_grains, 1);
    assert!(!report.is_clean());
}
