//! `qemu-img check`: our checker's findings in qemu-img's report and exit codes. Leaked grains
//! are not counted, as qemu-img's VMDK check does not count them (qemu-io's zero writes leave
//! them, and a pipeline that takes qemu-img's exit 0 would fail on 3): `ovf-disk check`
//! reports them.

use vmdk::Disk;

/// What `qemu-img check --output=json` prints, and the exit code it ends with.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
#[non_exhaustive]
pub struct Check {
    /// Parts that could not be checked: 0.
    pub check_errors: u64,
    /// Problems found (each grain or table at fault), absent when none.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub corruptions: Option<u64>,
    /// The image's name.
    pub filename: String,
    /// `vmdk`.
    pub format: String,
    /// Each problem, as `ERROR` lines (standard error, as qemu-img prints its own).
    #[cfg_attr(feature = "serde", serde(skip))]
    pub errors: Vec<String>,
}

/// `qemu-img check` of `disk` (a VMDK) opened from `name`.
pub fn check(disk: &Disk, name: &str) -> Check {
    let report = vmdk::check_disk(disk);
    let corruptions = report.problem_count();
    Check {
        check_errors: 0,
        corruptions: (corruptions > 0).then_some(corruptions),
        filename: name.to_string(),
        format: "vmdk".into(),
        errors: report
            .problems
            .iter()
            .map(|p| match p.offset {
                Some(at) => format!(
                    "ERROR: {}: {} at offset {at:#x}: {}",
                    p.path.display(),
                    p.structure,
                    p.message
                ),
                None => format!(
                    "ERROR: {}: {}: {}",
                    p.path.display(),
                    p.structure,
                    p.message
                ),
            })
            .collect(),
    }
}

impl Check {
    /// qemu-img's exit code: 2 for corruptions, 0 clean.
    pub fn exit_code(&self) -> u8 {
        match self.corruptions {
            Some(_) => 2,
            None => 0,
        }
    }

    /// `qemu-img check`'s human summary (after the `ERROR` lines).
    pub fn human(&self) -> String {
        let mut o = String::new();
        if let Some(n) = self.corruptions {
            o.push_str(&format!(
                "\n{n} errors were found on the image.\nData may be corrupted, or further writes to the image may corrupt it.\n"
            ));
        }
        if self.corruptions.is_none() {
            o.push_str("No errors were found on the image.\n");
        }
        o
    }
}
