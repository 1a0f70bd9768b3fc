//! The readers of sparse extents: what they share ([`grains`]: grain entries, reserved
//! metadata ranges, the [`grains::Grains`] trait a disk reads through), the one hosted header
//! check ([`header`]), the seekable reader of hosted sparse and stream-optimized extents that
//! [`crate::Disk`] and [`crate::check()`] open them with ([`sparse`]), the one-pass streaming
//! reader for pipes and tar members ([`stream`]), and the reader of the ESXi delta extents
//! ([`esx`]) with the header checks of [`cowd`] and [`sesparse`]; and the reader of qcow2 images
//! ([`qcow2`]), a link of a disk like any other.

pub(crate) mod cowd;
pub(crate) mod esx;
pub(crate) mod grains;
pub(crate) mod header;
pub(crate) mod qcow2;
pub(crate) mod sesparse;
pub(crate) mod sparse;
pub(crate) mod stream;
