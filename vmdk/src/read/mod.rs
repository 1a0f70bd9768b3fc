//! The readers of hosted sparse extents: the one header check they share ([`header`]), the
//! seekable reader that [`crate::Disk`] and [`crate::check()`] open extents with ([`sparse`]),
//! and the one-pass streaming reader for pipes and tar members ([`stream`]).

pub(crate) mod header;
pub(crate) mod sparse;
pub(crate) mod stream;
