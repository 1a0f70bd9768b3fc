//! What the integration tests of `vmdk` and `ovf-disk` share (not published, not an API):
//! [`builders`] lay VMDK files out byte by byte, independent of any writer of ours; [`peers`]
//! run qemu-img and the Python readers (libvmdk, dissect) and hash what they read; [`catalogue`]
//! runs malformed-input cases under a heap budget; [`run`] finds the built examples; [`ovf`]
//! builds tar members, envelopes, and package folders with their manifests and OVAs
//! ([`ovf::PackageDir`], the one package builder of the tests); [`http`] starts nginx and a
//! fault-injecting server on the loopback. It depends on neither crate, so the tests of both
//! use it without a second copy of their types.

// Test plumbing: the catalogue's cases hold closures, which have no Debug.
#![allow(
    missing_debug_implementations,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing
)]

pub mod builders;
pub mod catalogue;
pub mod http;
pub mod ovf;
pub mod peers;
pub mod run;
