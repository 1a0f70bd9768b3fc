//! OVF packages and the operations of the `ovf-disk` tool that are more than argument parsing:
//! inflating a disk into an eager-zeroed thick image with output that is never left looking
//! complete when it is not. (Envelopes, manifests and OVA archives come with the OVF work.)

pub mod convert;
pub mod inflate;
pub mod output;
pub mod package;
