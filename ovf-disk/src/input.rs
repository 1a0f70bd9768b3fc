//! One front door for every input: a path opened as a disk, a package or a VM folder's
//! `.vmx`, by what the file holds ([`input_kind`]), as `info`, `check` and `check --ft` open
//! what they are given.

use std::path::Path;

use crate::error::Result;
use crate::package::kind::{input_kind, InputKind};
use crate::package::Package;
use crate::vm::{self, Vm};

/// An input opened as what it holds.
#[derive(Debug)]
#[non_exhaustive]
pub enum Input {
    /// A disk (its whole chain), opened with the options' `vmdk` open options.
    Disk(Box<vmdk::Disk>),
    /// An OVF package (`.ovf` with its files, or `.ova`), read in place.
    Package(Box<Package>),
    /// A VM's configuration; its disks open through [`crate::vm::vm_info`] and the like, with the
    /// same options.
    Vm(Box<Vm>),
}

impl Input {
    /// Opens `path` as what it holds: a disk with `options`' open options (and its outside-path
    /// policy for extents), a package, or a `.vmx`.
    ///
    /// ```no_run
    /// use ovf_disk::Input;
    /// use ovf_disk::vm;
    ///
    /// match Input::open("appliance.ova".as_ref(), &vm::Options::new())? {
    ///     Input::Package(pkg) => println!("{} systems", pkg.envelope().systems.len()),
    ///     Input::Disk(disk) => println!("{} bytes", disk.capacity()),
    ///     Input::Vm(vm) => println!("{} disks", vm.disks.len()),
    ///     _ => {}
    /// }
    /// # Ok::<(), ovf_disk::Error>(())
    /// ```
    pub fn open(path: &Path, options: &vm::Options) -> Result<Self> {
        Ok(match input_kind(path)? {
            InputKind::Ovf | InputKind::Ova => Self::Package(Box::new(
                Package::open(path)?.allow_outside_paths(options.allow_outside),
            )),
            InputKind::Vmx => Self::Vm(Box::new(Vm::open(path)?)),
            _ => Self::Disk(Box::new(options.disk_open_options().open(path)?)),
        })
    }

    /// What it is.
    pub fn kind(&self) -> InputKind {
        match self {
            Self::Disk(_) => InputKind::Disk,
            Self::Package(p) if p.archive().is_some() => InputKind::Ova,
            Self::Package(_) => InputKind::Ovf,
            Self::Vm(_) => InputKind::Vmx,
        }
    }
}
