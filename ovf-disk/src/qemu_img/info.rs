//! `qemu-img info`: the image node (format, sizes, backing file, VMDK's format-specific fields)
//! and its file children (the descriptor's file, each extent's file).

use vmdk::Disk;

use super::{allocated, size_to_str, Names};
use crate::error::Result;

/// What `qemu-img info --output=json` prints of one image (an element of its array with
/// `--backing-chain`).
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
#[non_exhaustive]
pub struct ImageInfo {
    /// The file nodes under it: `extents.N` for each extent in a file of its own, then `file`.
    pub children: Vec<NodeInfo>,
    /// `vmdk` for a delta's parent.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub backing_filename_format: Option<String>,
    /// The disk's capacity in bytes.
    pub virtual_size: u64,
    /// The image's name.
    pub filename: String,
    /// The grain size, for an image of one sparse extent.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub cluster_size: Option<u64>,
    /// `vmdk` or `raw`.
    pub format: String,
    /// Bytes its files take on their file systems.
    pub actual_size: u64,
    /// VMDK's own fields.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub format_specific: Option<FormatSpecific<VmdkData>>,
    /// The parent's name, relative to the current folder (or absolute).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub full_backing_filename: Option<String>,
    /// The parent's name as the descriptor writes it.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub backing_filename: Option<String>,
    /// Always false: VMDK has no dirty flag qemu-img reports.
    pub dirty_flag: bool,
}

/// A file node: `name` (`file`, `extents.N`) and what qemu-img says of the file.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct NodeInfo {
    /// The node's name under the image.
    pub name: String,
    /// The file.
    pub info: FileInfo,
}

/// What `qemu-img info` says of a file node.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
#[non_exhaustive]
pub struct FileInfo {
    /// None: a file has no children.
    pub children: Vec<NodeInfo>,
    /// The file's length, rounded up to whole sectors as qemu's block layer counts it.
    pub virtual_size: u64,
    /// The file's name.
    pub filename: String,
    /// `file`.
    pub format: String,
    /// Bytes it takes on its file system.
    pub actual_size: u64,
    /// `{"type": "file", "data": {}}`.
    pub format_specific: FormatSpecific<FileData>,
    /// Always false.
    pub dirty_flag: bool,
}

/// `format-specific`: the driver's name and its fields.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct FormatSpecific<T> {
    /// `vmdk` or `file`.
    #[cfg_attr(feature = "serde", serde(rename = "type"))]
    pub kind: String,
    /// The fields.
    pub data: T,
}

/// A file node's format-specific fields: none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct FileData {}

/// VMDK's format-specific fields.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
#[non_exhaustive]
pub struct VmdkData {
    /// The descriptor's CID.
    pub cid: u32,
    /// Its parentCID.
    pub parent_cid: u32,
    /// Its createType.
    pub create_type: String,
    /// Each extent.
    pub extents: Vec<VmdkExtent>,
}

/// One extent as qemu-img lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "kebab-case"))]
#[non_exhaustive]
pub struct VmdkExtent {
    /// `true` for a compressed sparse extent, absent otherwise.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub compressed: Option<bool>,
    /// The extent's bytes.
    pub virtual_size: u64,
    /// Its file's name (empty for a ZERO extent, which has none).
    pub filename: String,
    /// The grain size of a sparse extent.
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub cluster_size: Option<u64>,
    /// The descriptor's extent type (`SPARSE`, `FLAT`, `VMFS`, `ZERO`); empty for the extent of
    /// a monolithic or stream-optimized file, whose descriptor is embedded.
    pub format: String,
}

/// A file node for `path`, named `filename`.
fn file_node(name: String, path: &std::path::Path, filename: String) -> NodeInfo {
    NodeInfo {
        name,
        info: FileInfo {
            children: Vec::new(),
            // qemu's block layer counts whole sectors: a 387-byte descriptor is 512.
            virtual_size: std::fs::metadata(path).map_or(0, |m| m.len().div_ceil(512) * 512),
            filename,
            format: "file".into(),
            actual_size: allocated(path),
            format_specific: FormatSpecific {
                kind: "file".into(),
                data: FileData {},
            },
            dirty_flag: false,
        },
    }
}

/// `qemu-img info` of `disk` opened from `name`: one image, or with `backing_chain` each link.
pub fn info(disk: &Disk, name: &str, backing_chain: bool) -> Result<Vec<ImageInfo>> {
    let names = Names::of(disk, name);
    let mut out = Vec::new();
    for (link, (link_name, li)) in disk.chain().zip(&names.links) {
        out.push(image_info(link, link_name, li, &names));
        if !backing_chain {
            break;
        }
    }
    Ok(out)
}

fn image_info(link: &Disk, link_name: &str, li: &vmdk::LinkInfo, names: &Names) -> ImageInfo {
    let own = link.path();
    let mut children = Vec::new();
    let mut actual = allocated(own);
    let mut extents = Vec::new();
    for (i, e) in li.extents.iter().enumerate() {
        let Some(path) = &e.path else {
            // A ZERO extent: no file (qemu-img takes it for the previous extent's file and
            // reads that file's bytes; it holds zeros).
            extents.push(VmdkExtent {
                compressed: None,
                virtual_size: e.size,
                filename: String::new(),
                cluster_size: None,
                format: e.kind.clone(),
            });
            continue;
        };
        let filename = names.files.get(path).cloned().unwrap_or_default();
        if path != own {
            actual += allocated(path);
            children.push(file_node(format!("extents.{i}"), path, filename.clone()));
        }
        let sparse = e.sparse.as_ref();
        extents.push(VmdkExtent {
            compressed: sparse.filter(|s| s.compressed).map(|_| true),
            virtual_size: e.size,
            filename,
            cluster_size: sparse.map(|s| s.grain_size),
            format: match path == own && sparse.is_some() {
                true => String::new(),
                false => e.kind.clone(),
            },
        });
    }
    // qemu lists a node's children newest first: the extents last to first, then the file.
    children.reverse();
    children.push(file_node("file".into(), own, link_name.to_string()));
    let vmdk = link.is_vmdk();
    let hint = li
        .parent_file_name_hint
        .clone()
        .filter(|_| link.parent().is_some());
    let cluster_size = match extents.as_slice() {
        [one] => one.cluster_size,
        _ => None,
    };
    ImageInfo {
        children,
        backing_filename_format: hint.as_ref().map(|_| "vmdk".to_string()),
        virtual_size: link.capacity(),
        filename: link_name.to_string(),
        cluster_size: cluster_size.filter(|_| vmdk),
        format: if vmdk { "vmdk" } else { "raw" }.to_string(),
        actual_size: actual,
        format_specific: vmdk.then(|| FormatSpecific {
            kind: "vmdk".into(),
            data: VmdkData {
                cid: li.cid.unwrap_or(0),
                parent_cid: li.parent_cid.unwrap_or(u32::MAX),
                create_type: li.create_type.clone(),
                extents,
            },
        }),
        full_backing_filename: hint.as_ref().map(|h| super::combine(link_name, h)),
        backing_filename: hint,
        dirty_flag: false,
    }
}

impl ImageInfo {
    /// `qemu-img info`'s human form of this image.
    pub fn human(&self) -> String {
        let mut o = format!(
            "image: {}\nfile format: {}\nvirtual size: {} ({} bytes)\ndisk size: {}\n",
            self.filename,
            self.format,
            size_to_str(self.virtual_size),
            self.virtual_size,
            size_to_str(self.actual_size)
        );
        if let Some(c) = self.cluster_size {
            o.push_str(&format!("cluster_size: {c}\n"));
        }
        if let Some(b) = &self.backing_filename {
            o.push_str(&format!("backing file: {b}"));
            match &self.full_backing_filename {
                Some(full) if full != b => o.push_str(&format!(" (actual path: {full})")),
                _ => {}
            }
            o.push('\n');
        }
        if let Some(f) = &self.backing_filename_format {
            o.push_str(&format!("backing file format: {f}\n"));
        }
        if let Some(fs) = &self.format_specific {
            let d = &fs.data;
            o.push_str(&format!(
                "Format specific information:\n    cid: {}\n    parent cid: {}\n    create type: {}\n    extents:\n",
                d.cid, d.parent_cid, d.create_type
            ));
            for (i, e) in d.extents.iter().enumerate() {
                o.push_str(&format!("        [{i}]:\n"));
                if e.compressed.is_some() {
                    o.push_str("            compressed: true\n");
                }
                o.push_str(&format!(
                    "            virtual size: {}\n            filename: {}\n",
                    e.virtual_size, e.filename
                ));
                if let Some(c) = e.cluster_size {
                    o.push_str(&format!("            cluster size: {c}\n"));
                }
                o.push_str(&format!("            format: {}\n", e.format));
            }
        }
        for c in &self.children {
            o.push_str(&format!(
                "Child node '/{}':\n    filename: {}\n    protocol type: file\n    file length: {} ({} bytes)\n    disk size: {}\n",
                c.name,
                c.info.filename,
                size_to_str(c.info.virtual_size),
                c.info.virtual_size,
                size_to_str(c.info.actual_size)
            ));
        }
        o
    }
}
