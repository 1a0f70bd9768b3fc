//! Exporting an OVA: an OVF and its disks (or bare disks, with an envelope made for them),
//! every disk converted to a stream-optimized VMDK in VMware's layout on the way, a SHA256
//! manifest, and the members in the order importers expect: descriptor, manifest, disks
//! (DSP0243 §5.3). The archive is written under a temporary name and renamed into place only
//! when complete; the converted disks are staged beside it and removed.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::manifest::{digest, Algorithm, Entry, Manifest};
use super::ops::Package;
use super::ova::write_ova;
use super::PackageError;
use crate::convert::{convert, ConvertError, ConvertOptions, OutputType};
use crate::output::{check_target, OutputError, PendingFile};

/// The `ovf:format` of a stream-optimized VMDK.
pub const STREAM_OPTIMIZED_FORMAT: &str =
    "http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized";

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The package could not be read.
    #[error(transparent)]
    Package(#[from] PackageError),
    /// A disk could not be converted.
    #[error("{}", with_path(path, source))]
    Disk {
        /// The disk.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: Box<ConvertError>,
    },
    /// The archive could not be written.
    #[error(transparent)]
    Output(#[from] OutputError),
}

/// `path: source`, or just `source` when it already starts with the path.
fn with_path(path: &std::path::Path, source: &ConvertError) -> String {
    let (p, s) = (path.display().to_string(), source.to_string());
    if s.starts_with(&p) {
        s
    } else {
        format!("{p}: {s}")
    }
}

/// What [`export`] wrote.
#[derive(Clone, Debug)]
pub struct ExportReport {
    /// The archive.
    pub ova: PathBuf,
    /// Its members in order, with their sizes.
    pub members: Vec<(String, u64)>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PackageError + '_ {
    move |source| PackageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// A staged stream-optimized disk, removed when dropped.
struct Staged(PathBuf);

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// An envelope for bare disks: one virtual system with the disks on a SCSI controller.
pub fn envelope_for_disks(name: &str, disks: &[(String, u64, u64)]) -> String {
    let mut refs = String::new();
    let mut section = String::new();
    let mut items = String::new();
    for (i, (href, size, capacity)) in disks.iter().enumerate() {
        refs.push_str(&format!(
            "    <File ovf:href=\"{href}\" ovf:id=\"file{i}\" ovf:size=\"{size}\"/>\n"
        ));
        section.push_str(&format!("    <Disk ovf:capacity=\"{capacity}\" ovf:capacityAllocationUnits=\"byte\" ovf:diskId=\"vmdisk{i}\" ovf:fileRef=\"file{i}\" ovf:format=\"{STREAM_OPTIMIZED_FORMAT}\"/>\n"));
        items.push_str(&format!("      <Item>\n        <rasd:AddressOnParent>{i}</rasd:AddressOnParent>\n        <rasd:ElementName>Hard disk {}</rasd:ElementName>\n        <rasd:HostResource>ovf:/disk/vmdisk{i}</rasd:HostResource>\n        <rasd:InstanceID>{}</rasd:InstanceID>\n        <rasd:Parent>1</rasd:Parent>\n        <rasd:ResourceType>17</rasd:ResourceType>\n      </Item>\n", i + 1, i + 2));
    }
    let name = name.replace(['<', '>', '&', '"'], "_");
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData">
  <References>
{refs}  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
{section}  </DiskSection>
  <VirtualSystem ovf:id="{name}">
    <Info>A virtual machine made of the exported disks</Info>
    <Name>{name}</Name>
    <VirtualHardwareSection>
      <Info>Virtual hardware requirements</Info>
      <Item>
        <rasd:ElementName>SCSI controller 0</rasd:ElementName>
        <rasd:InstanceID>1</rasd:InstanceID>
        <rasd:ResourceSubType>lsilogic</rasd:ResourceSubType>
        <rasd:ResourceType>6</rasd:ResourceType>
      </Item>
{items}    </VirtualHardwareSection>
  </VirtualSystem>
</Envelope>
"#
    )
}

/// Exports `inputs` to `out` (an `.ova`): either one `.ovf` (its disks converted), or disks
/// (any VMDK or raw image), for which an envelope is made.
pub fn export(
    inputs: &[PathBuf],
    out: &Path,
    options: &ConvertOptions,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ExportReport, ExportError> {
    let folder = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let base = out
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "export".into());
    check_target(out, inputs, options.force)?;
    let mut staged: Vec<(String, Staged)> = Vec::new();
    let stage = |disk: &vmdk::Disk, name: &str, src: &Path| -> Result<(Staged, u64), ExportError> {
        let tmp = folder.join(format!(".{name}.export-{}.vmdk", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        let staged = Staged(tmp.clone());
        let opts = ConvertOptions {
            force: true,
            ..options.clone()
        };
        convert(
            disk,
            &tmp,
            &OutputType::Vmdk(vmdk::CreateType::StreamOptimized),
            &opts,
            progress,
        )
        .map_err(|e| ExportError::Disk {
            path: src.to_path_buf(),
            source: Box::new(e),
        })?;
        let size = std::fs::metadata(&tmp).map_err(io(&tmp))?.len();
        Ok((staged, size))
    };
    let is_ovf = inputs.len() == 1
        && inputs
            .first()
            .is_some_and(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("ovf")));
    let (descriptor_name, text) = if is_ovf {
        let ovf = inputs.first().cloned().unwrap_or_default();
        let pkg = Package::open(&ovf)?;
        let mut text = std::fs::read_to_string(&ovf).map_err(io(&ovf))?;
        for disk in &pkg.envelope.disks {
            let Some(file) = pkg.envelope.file_of(disk) else {
                continue;
            };
            let vdisk = pkg.open_disk(&file.href).map_err(|e| ExportError::Disk {
                path: ovf.clone(),
                source: Box::new(e.into()),
            })?;
            let (s, size) = stage(&vdisk, &file.href, &ovf)?;
            text =
                super::ops::rewrite_file_reference(&text, &file.href, &file.href, file.size, size);
            staged.push((file.href.clone(), s));
        }
        // Every disk is stream-optimized now, whatever the source said.
        for fmt in [
            "vmdk.html#monolithicFlat",
            "vmdk.html#monolithicSparse",
            "vmdk.html#sparse",
            "vmdk.html#compressed",
        ] {
            text = text.replace(fmt, "vmdk.html#streamOptimized");
        }
        (pkg.descriptor.clone(), text)
    } else {
        let mut disks = Vec::new();
        for (i, input) in inputs.iter().enumerate() {
            let vdisk = crate::convert::open_input(input, None, &vmdk::OpenOptions::default())
                .map_err(|e| ExportError::Disk {
                    path: input.clone(),
                    source: Box::new(e.into()),
                })?;
            let name = format!("{base}-disk{}.vmdk", i + 1);
            let (s, size) = stage(&vdisk, &name, input)?;
            disks.push((name.clone(), size, vdisk.capacity()));
            staged.push((name, s));
        }
        (format!("{base}.ovf"), envelope_for_disks(&base, &disks))
    };
    // The manifest covers the descriptor and every disk, with SHA256.
    let mut manifest = Manifest::default();
    manifest.entries.push(Entry {
        algorithm: Algorithm::Sha256,
        name: descriptor_name.clone(),
        digest: digest(Algorithm::Sha256, &mut text.as_bytes()).map_err(io(out))?,
    });
    for (name, s) in &staged {
        let d = digest(Algorithm::Sha256, &mut File::open(&s.0).map_err(io(&s.0))?)
            .map_err(io(&s.0))?;
        manifest.entries.push(Entry {
            algorithm: Algorithm::Sha256,
            name: name.clone(),
            digest: d,
        });
    }
    let mf_name = format!(
        "{}.mf",
        descriptor_name
            .rsplit_once('.')
            .map_or(descriptor_name.as_str(), |(s, _)| s)
    );
    let mf = manifest.print();
    let mut members: Vec<(String, u64, Box<dyn std::io::Read>)> = vec![
        (
            descriptor_name.clone(),
            text.len() as u64,
            Box::new(std::io::Cursor::new(text.into_bytes())),
        ),
        (
            mf_name.clone(),
            mf.len() as u64,
            Box::new(std::io::Cursor::new(mf.into_bytes())),
        ),
    ];
    let mut listed = vec![
        (descriptor_name, members.first().map_or(0, |m| m.1)),
        (mf_name, members.get(1).map_or(0, |m| m.1)),
    ];
    for (name, s) in &staged {
        let size = std::fs::metadata(&s.0).map_err(io(&s.0))?.len();
        members.push((
            name.clone(),
            size,
            Box::new(File::open(&s.0).map_err(io(&s.0))?),
        ));
        listed.push((name.clone(), size));
    }
    let pending = PendingFile::create(out)?;
    let w = BufWriter::with_capacity(1 << 20, pending.file());
    let mut w = write_ova(w, members).map_err(io(out))?;
    w.flush().map_err(io(out))?;
    drop(w);
    pending.commit()?;
    Ok(ExportReport {
        ova: out.to_path_buf(),
        members: listed,
    })
}
