//! Writing envelope text, through quick-xml so every value written is escaped: [`escape`] the
//! values, [`build`] a whole envelope for bare disks, [`edit`] an existing one in place keeping
//! every byte it does not change, and [`downgrade`] a 2.x envelope to 1.x.

pub mod build;
pub mod downgrade;
pub mod edit;
pub mod escape;

#[cfg(test)]
mod tests;

pub use build::envelope_for_disks;
pub use downgrade::downgrade_envelope;
pub use edit::{edit_envelope, vmdk_format, EnvelopeEdits, ItemEdit, ItemFacts, Storage};
pub use escape::{escape_attribute, escape_text, escaped_attribute, XmlError};
