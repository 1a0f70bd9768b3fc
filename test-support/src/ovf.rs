//! OVA and envelope builders for the tests of the OVF side: raw ustar members (names, types and
//! sizes the tar crate refuses to write), archives, and minimal OVF 1.x envelopes.
#![allow(clippy::indexing_slicing)]

/// One raw ustar member (header and padded data), for names, types and sizes the tar crate's
/// builder refuses to write. `size` overrides the header's size field (octal) when given.
pub fn tar_member(name: &[u8], kind: u8, link: &str, data: &[u8], size: Option<&[u8]>) -> Vec<u8> {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name);
    h[100..107].copy_from_slice(b"0000644");
    match size {
        Some(field) => h[124..124 + field.len()].copy_from_slice(field),
        None => h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes()),
    }
    h[136..147].copy_from_slice(b"00000000000");
    h[156] = kind;
    h[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].copy_from_slice(b"        ");
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    let mut out = h.to_vec();
    out.extend_from_slice(data);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

/// A tar archive of regular members, with its end-of-archive blocks.
pub fn tar_of(members: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, data) in members {
        out.extend(tar_member(name.as_bytes(), b'0', "", data, None));
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

pub const NS: &str = "http://schemas.dmtf.org/ovf/envelope/1";
pub const STREAM_FORMAT: &str =
    "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized";

/// A minimal OVF 1.x envelope: `refs` in References, `disks` in the DiskSection, then `rest`.
pub fn envelope(refs: &str, disks: &str, rest: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Envelope xmlns=\"{NS}\" xmlns:ovf=\"{NS}\">\n  <References>{refs}</References>\n  <DiskSection><Info>Disks</Info>{disks}</DiskSection>\n{rest}</Envelope>\n"
    )
}

/// A `File` reference with id `file1`.
pub fn file_ref(href: &str, size: usize, extra: &str) -> String {
    format!("<File ovf:href=\"{href}\" ovf:id=\"file1\" ovf:size=\"{size}\"{extra}/>")
}

/// A stream-optimized `Disk` of `mib` MiB in `file1`.
pub fn disk_entry(mib: u64) -> String {
    format!("<Disk ovf:capacity=\"{mib}\" ovf:capacityAllocationUnits=\"byte * 2^20\" ovf:diskId=\"vmdisk1\" ovf:fileRef=\"file1\" ovf:format=\"{STREAM_FORMAT}\"/>")
}
