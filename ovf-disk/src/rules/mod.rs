//! Reports on a package or a VM, writing nothing: what each product would accept or change
//! ([`lint`]), and whether a VM can run under VMware Fault Tolerance ([`ft`]).

pub(crate) mod ft;
pub(crate) mod lint;
