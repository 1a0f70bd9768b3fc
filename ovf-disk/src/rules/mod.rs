//! Reports on a package or a VM, writing nothing: what each product would accept or change
//! ([`lint()`]), and whether a VM can run under VMware Fault Tolerance ([`ft_check_package`],
//! [`ft_check_vm`], [`ft_check_disk`]).

pub(crate) mod ft;
pub(crate) mod lint;

pub use ft::{
    ft_check_disk, ft_check_package, ft_check_vm, ClusterRequirement, FtReport, FtVersion,
    MachineFt, Outcome, RuleCheck,
};
pub use lint::{lint, Finding, LintReport, Severity, Target};
