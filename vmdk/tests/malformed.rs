//! The malformed-input catalogue of the `vmdk` library (issue 7): valid images built in code
//! (`support/builders.rs`), each damaged one way, opened, read, or streamed. Every case asserts
//! the specific error (kind, the structure it names, its offset where it has one, the file), no
//! panic, and a heap budget of 16 MiB, far below what the damaged sizes claim (directories of
//! terabytes, descriptors of gigabytes, grains that inflate without end).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use test_support::builders;
use test_support::catalogue;

use std::alloc::System;
use std::io::{Cursor, Write};

use builders::*;
use cap::Cap;
use catalogue::{run_catalogue, Case};
use vmdk::{Error, ErrorKind, Feature, MemoryFiles, OpenOptions, StreamReader};

#[global_allocator]
static ALLOC: Cap<System> = Cap::new(System, usize::MAX);

const BUDGET: usize = 16 << 20;

fn options(files: MemoryFiles) -> OpenOptions {
    OpenOptions::new().files(files)
}

fn one(name: &str, bytes: Vec<u8>) -> OpenOptions {
    let mut files = MemoryFiles::new();
    files.insert(name, bytes);
    options(files)
}

fn damaged(good: &[u8], f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut bytes = good.to_vec();
    f(&mut bytes);
    bytes
}

/// The error names `structure`, at `offset` (when given), in a named file, with a kind `kind`
/// accepts.
fn is(
    structure: &'static str,
    offset: Option<u64>,
    kind: fn(&ErrorKind) -> bool,
) -> impl Fn(&Error) -> bool {
    move |e| {
        e.structure() == structure
            && (offset.is_none() || e.offset() == offset)
            && e.path().is_some()
            && kind(e.kind())
    }
}

/// Opening fails.
fn open(name: &'static str, options: OpenOptions) -> impl Fn() -> Result<(), Error> {
    move || options.open(name).map(drop)
}

/// Opening works; reading the first `len` bytes fails.
fn read(name: &'static str, options: OpenOptions, len: usize) -> impl Fn() -> Result<(), Error> {
    move || {
        let disk = options.open(name)?;
        disk.read_exact_at(0, &mut vec![0u8; len])
    }
}

/// The one-pass streaming reader (what `inflate -` and `import -` use) fails.
fn stream(bytes: Vec<u8>) -> impl Fn() -> Result<(), Error> {
    move || {
        StreamReader::new(Cursor::new(&bytes), "s.vmdk")?
            .check(2)
            .map(drop)
    }
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::best());
    z.write_all(data).unwrap();
    z.finish().unwrap()
}

/// Header fields are refused at their own offset (the one header check every reader shares).
fn sparse_cases(cases: &mut Vec<Case<Error>>) {
    let mut b = SparseBuilder::new(4096);
    b.grains.insert(0, vec![1; 65536]);
    let (good, layout) = b.build("d.vmdk");
    let h = |category: &'static str,
             name: &str,
             f: &dyn Fn(&mut Vec<u8>),
             structure: &'static str,
             offset: Option<u64>,
             kind: fn(&ErrorKind) -> bool| {
        let bytes = damaged(&good, f);
        Case::new(
            category,
            name,
            open("d.vmdk", one("d.vmdk", bytes)),
            is(structure, offset, kind),
        )
    };
    cases.extend([
        h(
            "headers",
            "version 4",
            &|b| put(b, 4, &4u32.to_le_bytes()),
            "sparse header",
            Some(4),
            |k| matches!(k, ErrorKind::Unsupported(_)),
        ),
        h(
            "headers",
            "an unknown incompatible flag",
            &|b| put(b, 8, &(3u32 | 1 << 20).to_le_bytes()),
            "sparse header",
            Some(8),
            |k| matches!(k, ErrorKind::Unsupported(_)),
        ),
        h(
            "headers",
            "grainSize 100 (not a power of two)",
            &|b| put(b, 20, &100u64.to_le_bytes()),
            "sparse header",
            Some(20),
            |k| {
                matches!(
                    k,
                    ErrorKind::InvalidField {
                        field: "grainSize",
                        value: 100,
                        ..
                    }
                )
            },
        ),
        h(
            "headers",
            "grainSize 2^20 sectors",
            &|b| put(b, 20, &(1u64 << 20).to_le_bytes()),
            "sparse header",
            Some(20),
            |k| {
                matches!(
                    k,
                    ErrorKind::InvalidField {
                        field: "grainSize",
                        ..
                    }
                )
            },
        ),
        h(
            "headers",
            "numGTEsPerGT 0",
            &|b| put(b, 44, &0u32.to_le_bytes()),
            "sparse header",
            Some(44),
            |k| {
                matches!(
                    k,
                    ErrorKind::InvalidField {
                        field: "numGTEsPerGT",
                        ..
                    }
                )
            },
        ),
        h(
            "headers",
            "numGTEsPerGT 2^31 (a 8 GiB grain table)",
            &|b| put(b, 44, &(1u32 << 31).to_le_bytes()),
            "sparse header",
            Some(44),
            |k| {
                matches!(
                    k,
                    ErrorKind::InvalidField {
                        field: "numGTEsPerGT",
                        ..
                    }
                )
            },
        ),
        h(
            "headers",
            "capacity 2^64-1 sectors",
            &|b| put(b, 12, &u64::MAX.to_le_bytes()),
            "sparse header",
            Some(12),
            |k| {
                matches!(
                    k,
                    ErrorKind::InvalidField {
                        field: "capacity",
                        ..
                    }
                )
            },
        ),
        // A directory of 2^50 / 2^16 * 4 bytes = 64 GiB: refused before anything is allocated.
        h(
            "headers",
            "capacity 2^50 sectors (a 64 GiB grain directory)",
            &|b| put(b, 12, &(1u64 << 50).to_le_bytes()),
            "grain directory",
            None,
            |k| matches!(k, ErrorKind::Truncated { .. }),
        ),
        h(
            "headers",
            "gdOffset past the end",
            &|b| put(b, 56, &0x00ff_ffff_u64.to_le_bytes()),
            "grain directory",
            Some(0x00ff_ffff * 512),
            |k| matches!(k, ErrorKind::Truncated { .. }),
        ),
        h(
            "headers",
            "gdOffset 2^60 (overflows as bytes)",
            &|b| put(b, 56, &(1u64 << 60).to_le_bytes()),
            "sparse header",
            Some(56),
            |k| {
                matches!(
                    k,
                    ErrorKind::InvalidField {
                        field: "gdOffset",
                        ..
                    }
                )
            },
        ),
        h(
            "headers",
            "gdOffset 0",
            &|b| put(b, 56, &0u64.to_le_bytes()),
            "sparse header",
            Some(56),
            |k| {
                matches!(
                    k,
                    ErrorKind::InvalidField {
                        field: "gdOffset",
                        ..
                    }
                )
            },
        ),
        h(
            "headers",
            "gdOffset inside the embedded descriptor",
            &|b| put(b, 56, &2u64.to_le_bytes()),
            "grain directory",
            Some(1024),
            |k| matches!(k, ErrorKind::Inconsistent(m) if m.contains("embedded descriptor")),
        ),
        h(
            "headers",
            "rgdOffset past the end",
            &|b| put(b, 48, &0x00ff_ffff_u64.to_le_bytes()),
            "redundant grain directory",
            None,
            |k| matches!(k, ErrorKind::Truncated { .. }),
        ),
        h(
            "headers",
            "descriptorSize 100000 sectors (50 MiB)",
            &|b| put(b, 36, &100_000u64.to_le_bytes()),
            "sparse header",
            Some(36),
            |k| {
                matches!(
                    k,
                    ErrorKind::InvalidField {
                        field: "descriptorSize",
                        ..
                    }
                )
            },
        ),
        h(
            "headers",
            "descriptorOffset past the end",
            &|b| put(b, 28, &0x0fff_ffff_u64.to_le_bytes()),
            "embedded descriptor",
            None,
            |k| matches!(k, ErrorKind::Truncated { .. }),
        ),
        h(
            "headers",
            "newline detector damaged (text-mode transfer)",
            &|b| b[75] = b'\n',
            "sparse header",
            Some(73),
            |k| matches!(k, ErrorKind::Inconsistent(_)),
        ),
        h(
            "headers",
            "cut inside the header",
            &|b| b.truncate(300),
            "sparse header",
            Some(0),
            |k| {
                matches!(
                    k,
                    ErrorKind::Truncated {
                        end: 512,
                        file_len: 300
                    }
                )
            },
        ),
        h(
            "descriptors",
            "embedded descriptor capacity larger than the header's",
            &|b| {
                let text = b"RW 4096 SPARSE";
                let at = b.windows(text.len()).position(|w| w == text).unwrap();
                put(b, at, b"RW 9999 SPARSE");
            },
            "sparse header",
            Some(12),
            |k| matches!(k, ErrorKind::Inconsistent(m) if m.contains("less than")),
        ),
    ]);
    // Descriptors inside the sparse file.
    cases.extend([
        h(
            "descriptors",
            "embedded descriptor that is not text",
            &|b| put(b, 512, b"\xff\xfe"),
            "embedded descriptor",
            Some(512),
            |k| matches!(k, ErrorKind::Descriptor { line: 1, .. }),
        ),
        h(
            "descriptors",
            "embedded descriptor of a raw device map",
            &|b| put(b, 512, b"createType=\"vmfsRDM\"\n#"),
            "descriptor",
            None,
            |k| matches!(k, ErrorKind::Unsupported(Feature::RawDeviceMap)),
        ),
    ]);

    // Grain directories and tables.
    let gd = layout.grain_directory;
    let gt = layout.grain_tables[0];
    let t = |name: &str,
             f: &dyn Fn(&mut Vec<u8>),
             structure: &'static str,
             offset: Option<u64>,
             kind: fn(&ErrorKind) -> bool| {
        Case::new(
            "tables",
            name,
            read("d.vmdk", one("d.vmdk", damaged(&good, f)), 512),
            is(structure, offset, kind),
        )
    };
    cases.extend([
        t(
            "grain table past the end",
            &|b| put(b, gd, &0x00ff_ffffu32.to_le_bytes()),
            "grain table",
            Some(0x00ff_ffff * 512),
            |k| matches!(k, ErrorKind::Truncated { .. }),
        ),
        t(
            "grain table in the embedded descriptor",
            &|b| put(b, gd, &1u32.to_le_bytes()),
            "grain table",
            Some(512),
            |k| matches!(k, ErrorKind::Inconsistent(m) if m.contains("embedded descriptor")),
        ),
        t(
            "grain table on the grain directory",
            &|b| put(b, gd, &((gd / 512) as u32).to_le_bytes()),
            "grain table",
            Some(gd as u64),
            |k| matches!(k, ErrorKind::Inconsistent(m) if m.contains("grain directory")),
        ),
        t(
            "grain past the end",
            &|b| put(b, gt, &0x00ff_ffffu32.to_le_bytes()),
            "grain",
            Some(0x00ff_ffff * 512),
            |k| matches!(k, ErrorKind::Truncated { .. }),
        ),
        t(
            "grain at sector 2^32-1",
            &|b| put(b, gt, &u32::MAX.to_le_bytes()),
            "grain",
            Some(u64::from(u32::MAX) * 512),
            |k| matches!(k, ErrorKind::Truncated { .. }),
        ),
        t(
            "grain in the embedded descriptor",
            &|b| put(b, gt, &3u32.to_le_bytes()),
            "grain",
            Some(3 * 512),
            |k| matches!(k, ErrorKind::Inconsistent(m) if m.contains("embedded descriptor")),
        ),
        t(
            "grain on the grain directory",
            &|b| put(b, gt, &((gd / 512) as u32).to_le_bytes()),
            "grain",
            Some(gd as u64),
            |k| matches!(k, ErrorKind::Inconsistent(m) if m.contains("grain directory")),
        ),
        // A grain table is 4 sectors here, the redundant directory 1 sector before 4 more of
        // redundant tables: a table at the redundant directory overlaps nothing else.
        t(
            "grain table on the redundant grain directory",
            &|b| {
                put(
                    b,
                    gd,
                    &((layout.redundant_directory / 512) as u32).to_le_bytes(),
                )
            },
            "grain table",
            Some(layout.redundant_directory as u64),
            |k| matches!(k, ErrorKind::Inconsistent(m) if m.contains("inside the redundant grain directory")),
        ),
    ]);
}

fn stream_cases(cases: &mut Vec<Case<Error>>) {
    let (good, layout) = stream_sample().build();
    let g0 = layout.grain_markers[&0];
    let g1 = layout.grain_markers[&1];
    let footer = layout.footer;
    let open_case = |category,
                     name: &str,
                     f: &dyn Fn(&mut Vec<u8>),
                     structure,
                     offset,
                     kind: fn(&ErrorKind) -> bool| {
        Case::new(
            category,
            name,
            open("s.vmdk", one("s.vmdk", damaged(&good, f))),
            is(structure, offset, kind),
        )
    };
    let read_case = |category,
                     name: &str,
                     f: &dyn Fn(&mut Vec<u8>),
                     structure,
                     offset,
                     kind: fn(&ErrorKind) -> bool| {
        Case::new(
            category,
            name,
            read("s.vmdk", one("s.vmdk", damaged(&good, f)), 65536),
            is(structure, offset, kind),
        )
    };
    let stream_case = |category,
                       name: &str,
                       f: &dyn Fn(&mut Vec<u8>),
                       structure,
                       offset,
                       kind: fn(&ErrorKind) -> bool| {
        Case::new(
            category,
            format!("{name} (one pass)"),
            stream(damaged(&good, f)),
            is(structure, offset, kind),
        )
    };
    // A grain that inflates to 16 MiB, and one that inflates to less than a grain, in place of
    // grain 0 (whose stored size leaves room for either).
    let bomb = zlib(&vec![0u8; 16 << 20]);
    let short = zlib(&[7u8; 1000]);
    let replace_grain0 = move |b: &mut Vec<u8>, packed: &[u8]| {
        put(b, g0 + 8, &(packed.len() as u32).to_le_bytes());
        put(b, g0 + 12, packed);
    };
    let (bomb2, short2) = (bomb.clone(), short.clone());
    cases.extend([
        read_case(
            "markers",
            "grain marker with another grain's LBA",
            &|b| put(b, g0, &128u64.to_le_bytes()),
            "grain marker",
            Some(g0 as u64),
            |k| matches!(k, ErrorKind::Inconsistent(m) if m.contains("LBA")),
        ),
        read_case(
            "markers",
            "grain marker size 0",
            &|b| put(b, g0 + 8, &0u32.to_le_bytes()),
            "grain marker",
            Some(g0 as u64 + 8),
            |k| matches!(k, ErrorKind::InvalidField { field: "size", .. }),
        ),
        read_case(
            "markers",
            "grain marker size 4 GiB",
            &|b| put(b, g0 + 8, &u32::MAX.to_le_bytes()),
            "grain marker",
            Some(g0 as u64 + 8),
            |k| matches!(k, ErrorKind::InvalidField { field: "size", .. }),
        ),
        open_case(
            "markers",
            "footer gdOffset 2^64-1",
            &|b| put(b, footer + 56, &u64::MAX.to_le_bytes()),
            "footer",
            Some(footer as u64 + 56),
            |k| {
                matches!(
                    k,
                    ErrorKind::InvalidField {
                        field: "gdOffset",
                        ..
                    }
                )
            },
        ),
        open_case(
            "markers",
            "footer capacity differs from the header's",
            &|b| put(b, footer + 12, &7u64.to_le_bytes()),
            "footer",
            Some(footer as u64),
            |k| matches!(k, ErrorKind::Inconsistent(m) if m.contains("capacity")),
        ),
        open_case(
            "markers",
            "footer magic damaged",
            &|b| put(b, footer, b"XXXX"),
            "footer",
            Some(footer as u64),
            |k| {
                matches!(
                    k,
                    ErrorKind::InvalidField {
                        field: "magicNumber",
                        ..
                    }
                )
            },
        ),
        open_case(
            "markers",
            "footer marker of another type",
            &|b| put(b, layout.footer_marker + 12, &9u32.to_le_bytes()),
            "sparse header",
            Some(56),
            |k| matches!(k, ErrorKind::CutShort(m) if m.contains("GD_AT_END")),
        ),
        open_case(
            "markers",
            "end-of-stream marker missing",
            &|b| b.truncate(b.len() - 512),
            "sparse header",
            Some(56),
            |k| matches!(k, ErrorKind::CutShort(_)),
        ),
        open_case(
            "headers",
            "footer compressAlgorithm 2",
            &|b| put(b, footer + 77, &2u16.to_le_bytes()),
            "footer",
            Some(footer as u64 + 77),
            |k| matches!(k, ErrorKind::Unsupported(_)),
        ),
        read_case(
            "compressed data",
            "garbage in a grain's deflate stream",
            &|b| put(b, g0 + 14, b"garbage!"),
            "compressed grain",
            Some(g0 as u64 + 12),
            |k| matches!(k, ErrorKind::Decompress(_)),
        ),
        read_case(
            "compressed data",
            "a grain that inflates to 16 MiB",
            &move |b| replace_grain0(b, &bomb),
            "compressed grain",
            Some(g0 as u64 + 12),
            |k| matches!(k, ErrorKind::Decompress(_)),
        ),
        read_case(
            "compressed data",
            "a grain that inflates to 1000 bytes",
            &move |b| replace_grain0(b, &short),
            "compressed grain",
            Some(g0 as u64 + 12),
            |k| matches!(k, ErrorKind::Decompress(m) if m.contains("1000")),
        ),
        stream_case(
            "compressed data",
            "garbage in a grain's deflate stream",
            &|b| put(b, g0 + 14, b"garbage!"),
            "compressed grain",
            Some(g0 as u64 + 12),
            |k| matches!(k, ErrorKind::Decompress(_)),
        ),
        stream_case(
            "compressed data",
            "a grain that inflates to 16 MiB",
            &move |b| replace_grain0(b, &bomb2),
            "compressed grain",
            Some(g0 as u64 + 12),
            |k| matches!(k, ErrorKind::Decompress(_)),
        ),
        stream_case(
            "compressed data",
            "a grain that inflates to 1000 bytes",
            &move |b| replace_grain0(b, &short2),
            "compressed grain",
            Some(g0 as u64 + 12),
            |k| matches!(k, ErrorKind::Decompress(m) if m.contains("1000")),
        ),
        stream_case(
            "markers",
            "grains out of order",
            &|b| put(b, g1, &0u64.to_le_bytes()),
            "grain marker",
            Some(g1 as u64),
            |k| matches!(k, ErrorKind::Unsupported(_)),
        ),
        stream_case(
            "markers",
            "grain LBA past the capacity",
            &|b| put(b, g1, &(1u64 << 40).to_le_bytes()),
            "grain marker",
            Some(g1 as u64),
            |k| matches!(k, ErrorKind::InvalidField { field: "lba", .. }),
        ),
        stream_case(
            "markers",
            "grain marker size 4 GiB",
            &|b| put(b, g1 + 8, &u32::MAX.to_le_bytes()),
            "grain marker",
            Some(g1 as u64 + 8),
            |k| matches!(k, ErrorKind::InvalidField { field: "size", .. }),
        ),
        stream_case(
            "markers",
            "grain table marker of 2^40 sectors",
            &|b| put(b, layout.grain_tables[0] - 512, &(1u64 << 40).to_le_bytes()),
            "metadata marker",
            Some(layout.grain_tables[0] as u64 - 512),
            |k| {
                matches!(
                    k,
                    ErrorKind::InvalidField {
                        field: "numSectors",
                        ..
                    }
                )
            },
        ),
        stream_case(
            "markers",
            "unknown metadata marker type",
            &|b| put(b, layout.grain_tables[0] - 500, &9u32.to_le_bytes()),
            "metadata marker",
            Some(layout.grain_tables[0] as u64 - 500),
            |k| {
                matches!(
                    k,
                    ErrorKind::InvalidField {
                        field: "type",
                        value: 9,
                        ..
                    }
                )
            },
        ),
        stream_case(
            "markers",
            "cut inside a grain",
            &|b| b.truncate(g1 + 100),
            "compressed grain",
            None,
            |k| matches!(k, ErrorKind::Truncated { .. }),
        ),
        stream_case(
            "headers",
            "overHead 2^40 sectors",
            &|b| put(b, 64, &(1u64 << 40).to_le_bytes()),
            "sparse header",
            Some(64),
            |k| {
                matches!(
                    k,
                    ErrorKind::InvalidField {
                        field: "overHead",
                        ..
                    }
                )
            },
        ),
        stream_case(
            "headers",
            "capacity 2^64-1 sectors",
            &|b| put(b, 12, &u64::MAX.to_le_bytes()),
            "sparse header",
            Some(12),
            |k| {
                matches!(
                    k,
                    ErrorKind::InvalidField {
                        field: "capacity",
                        ..
                    }
                )
            },
        ),
    ]);
    let (sparse, _) = SparseBuilder::new(256).build("x.vmdk");
    cases.push(Case::new(
        "headers",
        "a hosted sparse extent given to the streaming reader",
        stream(sparse),
        is("sparse header", Some(8), |k| {
            matches!(k, ErrorKind::Unsupported(_))
        }),
    ));
}

const HEAD: &str = "# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n";

fn descriptor_cases(cases: &mut Vec<Case<Error>>) {
    let flat = vec![7u8; 4096];
    let d = |name: &str, body: String, kind: fn(&ErrorKind) -> bool| {
        let mut files = MemoryFiles::new();
        files.insert("d.vmdk", format!("{HEAD}{body}").into_bytes());
        files.insert("f.bin", flat.clone());
        Case::new(
            "descriptors",
            name,
            open("d.vmdk", options(files)),
            move |e: &Error| e.path().is_some() && kind(e.kind()),
        )
    };
    let many_extents: String = "RW 1 ZERO\n".repeat(70_000);
    cases.extend([
        d(
            "flat extent longer than its file",
            "createType=\"monolithicFlat\"\nRW 9 FLAT \"f.bin\" 0\n".into(),
            // A file shorter than its structures say is truncated, whatever the structure.
            |k| {
                matches!(
                    k,
                    ErrorKind::Truncated {
                        end: 4608,
                        file_len: 4096
                    }
                )
            },
        ),
        d(
            "flat extent offset 2^56 sectors",
            "createType=\"monolithicFlat\"\nRW 8 FLAT \"f.bin\" 99999999999999999\n".into(),
            |k| matches!(k, ErrorKind::Inconsistent(_)),
        ),
        d(
            "extent file missing",
            "createType=\"monolithicFlat\"\nRW 8 FLAT \"missing.bin\" 0\n".into(),
            |k| matches!(k, ErrorKind::Io(_)),
        ),
        d(
            "VMFSSPARSE extent that is a flat file",
            "createType=\"vmfsSparse\"\nRW 8 VMFSSPARSE \"f.bin\"\n".into(),
            |k| {
                matches!(
                    k,
                    ErrorKind::InvalidField {
                        field: "magicNumber",
                        ..
                    }
                )
            },
        ),
        d(
            "SESPARSE extent that is a flat file",
            "createType=\"seSparse\"\nRW 8 SESPARSE \"f.bin\"\n".into(),
            |k| matches!(k, ErrorKind::InvalidField { field: "magic", .. }),
        ),
        d(
            "raw device mapping",
            "createType=\"custom\"\nRW 8 VMFSRDM \"f.bin\"\n".into(),
            |k| matches!(k, ErrorKind::Unsupported(Feature::RawDeviceMap)),
        ),
        d(
            "unknown createType",
            "createType=\"fancyNewType\"\nRW 8 FLAT \"f.bin\" 0\n".into(),
            |k| matches!(k, ErrorKind::Unsupported(_)),
        ),
        d(
            "no extent line",
            "createType=\"custom\"\n".into(),
            |k| matches!(k, ErrorKind::Inconsistent(m) if m.contains("no extent")),
        ),
        d(
            "no createType",
            "RW 8 FLAT \"f.bin\" 0\n".into(),
            |k| matches!(k, ErrorKind::Inconsistent(m) if m.contains("createType")),
        ),
        d(
            "extent path with ..",
            "createType=\"custom\"\nRW 8 FLAT \"../f.bin\" 0\n".into(),
            |k| matches!(k, ErrorKind::PathOutside { name, .. } if name == "../f.bin"),
        ),
        d(
            "absolute extent path (CVE-2022-47951)",
            "createType=\"custom\"\nRW 8 FLAT \"/etc/shadow\" 0\n".into(),
            |k| matches!(k, ErrorKind::PathOutside { name, .. } if name == "/etc/shadow"),
        ),
        d(
            "extents summing past 2^64 bytes",
            "createType=\"custom\"\nRW 36028797018963967 ZERO\nRW 36028797018963967 ZERO\n".into(),
            |k| matches!(k, ErrorKind::Inconsistent(m) if m.contains("2^64")),
        ),
        d(
            "a line that is not a descriptor line",
            "createType=\"custom\"\nRW 8 FLAT \"f.bin\" 0\nthis is not a line\n".into(),
            |k| matches!(k, ErrorKind::Descriptor { line: 7, .. }),
        ),
        d(
            "sparse extent that is a flat file",
            "createType=\"custom\"\nRW 8 SPARSE \"f.bin\"\n".into(),
            |k| {
                matches!(
                    k,
                    ErrorKind::InvalidField {
                        field: "magicNumber",
                        ..
                    }
                )
            },
        ),
        d(
            "extent size that is not a number",
            "createType=\"custom\"\nRW eight FLAT \"f.bin\" 0\n".into(),
            |k| matches!(k, ErrorKind::Descriptor { line: 6, .. }),
        ),
        d(
            "70000 extent lines",
            format!("createType=\"custom\"\n{many_extents}"),
            |k| matches!(k, ErrorKind::Descriptor { .. }),
        ),
    ]);
    let raw = |name: &str, bytes: Vec<u8>, structure, offset, kind: fn(&ErrorKind) -> bool| {
        Case::new(
            "descriptors",
            name,
            open("x", one("x", bytes)),
            is(structure, offset, kind),
        )
    };
    let (cowd, _) = CowdBuilder::new(64).build();
    let (sesparse, _) = SeSparseBuilder::new(64).build();
    let mut huge = HEAD.as_bytes().to_vec();
    huge.resize(5 << 20, b'#');
    cases.extend([
        raw(
            "an ELF binary",
            b"\x7fELF binary".to_vec(),
            "file",
            None,
            |k| matches!(k, ErrorKind::NotVmdk),
        ),
        raw("8 MiB of zeros", vec![0u8; 8 << 20], "file", None, |k| {
            matches!(k, ErrorKind::NotVmdk)
        }),
        raw("a 5 MiB text descriptor", huge, "file", None, |k| {
            matches!(k, ErrorKind::NotVmdk)
        }),
        raw(
            "a COWD extent opened without its descriptor",
            cowd,
            "COWD header",
            Some(0),
            |k| matches!(k, ErrorKind::InvalidInput(m) if m.contains("descriptor")),
        ),
        raw(
            "a seSparse extent opened without its descriptor",
            sesparse,
            "seSparse header",
            Some(0),
            |k| matches!(k, ErrorKind::InvalidInput(m) if m.contains("descriptor")),
        ),
    ]);
}

/// The parent chain of `builders::parent_chain` as files.
fn chain(parent_cid_in_child: u32, hint: &str, parent_hint: Option<&str>) -> MemoryFiles {
    let mut files = MemoryFiles::new();
    for (name, bytes) in parent_chain(parent_cid_in_child, hint, parent_hint) {
        files.insert(name, bytes);
    }
    files
}

fn chain_cases(cases: &mut Vec<Case<Error>>) {
    let c = |name: &str, files: MemoryFiles, max: usize, kind: fn(&ErrorKind) -> bool| {
        let options = options(files).max_chain_length(max);
        Case::new(
            "parent chains",
            name,
            open("child.vmdk", options),
            move |e: &Error| e.path().is_some() && kind(e.kind()),
        )
    };
    let mut own = MemoryFiles::new();
    let mut me = SparseBuilder::new(256);
    me.parent = Some((me.cid, "child.vmdk".into()));
    own.insert("child.vmdk", me.build("child.vmdk").0);
    let mut not_vmdk = chain(0x1111_1111, "base.vmdk", None);
    not_vmdk.insert("base.vmdk", b"\x7fELF".repeat(300));
    cases.extend([
        c(
            "parentCID differs from the parent's CID",
            chain(0x1234_5678, "base.vmdk", None),
            64,
            |k| {
                matches!(
                    k,
                    ErrorKind::ParentCidMismatch {
                        expected: 0x1234_5678,
                        found: 0x1111_1111
                    }
                )
            },
        ),
        c(
            "parent names the child (a loop)",
            chain(0x1111_1111, "base.vmdk", Some("child.vmdk")),
            64,
            |k| matches!(k, ErrorKind::ParentLoop),
        ),
        c("a disk that is its own parent", own, 64, |k| {
            matches!(k, ErrorKind::ParentLoop)
        }),
        c(
            "parent behind ..",
            chain(0x1111_1111, "../base.vmdk", None),
            64,
            |k| matches!(k, ErrorKind::PathOutside { name, .. } if name == "../base.vmdk"),
        ),
        c(
            "absolute parent path",
            chain(0x1111_1111, "/etc/base.vmdk", None),
            64,
            |k| matches!(k, ErrorKind::PathOutside { name, .. } if name == "/etc/base.vmdk"),
        ),
        c(
            "parent file missing",
            chain(0x1111_1111, "gone.vmdk", None),
            64,
            |k| matches!(k, ErrorKind::Io(_)),
        ),
        c("parent that is not a VMDK", not_vmdk, 64, |k| {
            matches!(k, ErrorKind::NotVmdk)
        }),
        c(
            "a chain longer than allowed",
            chain(0x1111_1111, "base.vmdk", None),
            1,
            |k| matches!(k, ErrorKind::ChainTooLong { max: 1 }),
        ),
    ]);
}

/// A parent-less ESXi link `d.vmdk` whose one extent line (`kind`, `sectors`) names `x.vmdk`,
/// holding `extent`.
fn esx_files(create_type: &str, kind: &str, sectors: u64, extent: Vec<u8>) -> OpenOptions {
    let mut files = MemoryFiles::new();
    let line = format!("RW {sectors} {kind} \"x.vmdk\"");
    files.insert(
        "d.vmdk",
        esx_descriptor(create_type, 0x2a2a_2a2a, None, &[line]).into_bytes(),
    );
    files.insert("x.vmdk", extent);
    options(files)
}

/// A field of `bytes` at `at` set to a little-endian `u32`.
fn set32(at: usize, value: u32) -> impl Fn(&mut Vec<u8>) {
    move |b| put(b, at, &value.to_le_bytes())
}

/// A field of `bytes` at `at` set to a little-endian `u64`.
fn set64(at: usize, value: u64) -> impl Fn(&mut Vec<u8>) {
    move |b| put(b, at, &value.to_le_bytes())
}

fn invalid(field: &'static str) -> impl Fn(&ErrorKind) -> bool {
    move |k| matches!(k, ErrorKind::InvalidField { field: f, .. } if *f == field)
}

fn inside(what: &'static str) -> impl Fn(&ErrorKind) -> bool {
    move |k| matches!(k, ErrorKind::Inconsistent(m) if m.contains(what))
}

fn truncated(k: &ErrorKind) -> bool {
    matches!(k, ErrorKind::Truncated { .. })
}

/// The error names `structure` at `offset` in the extent `x.vmdk`, with a kind `kind` accepts.
fn in_extent(
    structure: &'static str,
    offset: u64,
    kind: impl Fn(&ErrorKind) -> bool + 'static,
) -> impl Fn(&Error) -> bool {
    move |e| {
        e.structure() == structure
            && e.offset() == Some(offset)
            && e.path().and_then(|p| p.file_name()) == Some("x.vmdk".as_ref())
            && kind(e.kind())
    }
}

/// vmfsSparse: every header field a reader uses, the grain directory, tables and grains.
fn cowd_cases(cases: &mut Vec<Case<Error>>) {
    let sectors = 3 * 4096 + 5;
    let mut b = CowdBuilder::new(sectors);
    for g in [0u64, 1, 4096, 12_292] {
        b.grains.insert(g, noise(g + 1, 512));
    }
    let (good, layout) = b.build();
    let gd = layout.grain_directory;
    let entry0 = layout.entries[&0];
    let case = |name: &str,
                f: &dyn Fn(&mut Vec<u8>),
                structure: &'static str,
                offset: u64,
                kind: Box<dyn Fn(&ErrorKind) -> bool>| {
        let files = esx_files(
            "vmfsSparse",
            "VMFSSPARSE",
            sectors.into(),
            damaged(&good, f),
        );
        Case::new(
            "COWD",
            name,
            read("d.vmdk", files, 4096),
            in_extent(structure, offset, kind),
        )
    };
    let h = "COWD header";
    cases.extend([
        case(
            "magic damaged",
            &set32(0, 0x4457_4f44),
            h,
            0,
            Box::new(invalid("magicNumber")),
        ),
        case(
            "version 2",
            &set32(4, 2),
            h,
            4,
            Box::new(|k| matches!(k, ErrorKind::Unsupported(Feature::CowdVersion(2)))),
        ),
        case(
            "grainSize 0",
            &set32(16, 0),
            h,
            16,
            Box::new(invalid("grainSize")),
        ),
        case(
            "grainSize 3",
            &set32(16, 3),
            h,
            16,
            Box::new(invalid("grainSize")),
        ),
        case(
            "grainSize 2^20 sectors",
            &set32(16, 1 << 20),
            h,
            16,
            Box::new(invalid("grainSize")),
        ),
        case(
            "numGDEntries fewer than the capacity needs",
            &set32(24, 2),
            h,
            24,
            Box::new(invalid("numGDEntries")),
        ),
        case(
            "numSectors 2^32-1: a 4 MiB grain directory past the end",
            &|b| {
                put(b, 12, &u32::MAX.to_le_bytes());
                put(b, 24, &u32::MAX.to_le_bytes());
            },
            "grain directory",
            gd as u64,
            Box::new(truncated),
        ),
        case(
            "descriptor line longer than numSectors",
            &set32(12, 100),
            h,
            12,
            Box::new(inside("less than")),
        ),
        case(
            "gdOffset 0 (over the header)",
            &set32(20, 0),
            "grain directory",
            0,
            Box::new(inside("COWD header")),
        ),
        case(
            "gdOffset past the end",
            &set32(20, 0x00ff_ffff),
            "grain directory",
            0x00ff_ffff * 512,
            Box::new(truncated),
        ),
        case(
            "cut inside the header",
            &|b| b.truncate(1000),
            h,
            0,
            Box::new(truncated),
        ),
        case(
            "grain table past the end",
            &set32(gd, 0x00ff_ffff),
            "grain table",
            0x00ff_ffff * 512,
            Box::new(truncated),
        ),
        case(
            "grain table in the header",
            &set32(gd, 1),
            "grain table",
            512,
            Box::new(inside("COWD header")),
        ),
        case(
            "grain table on the grain directory",
            &set32(gd, (gd / 512) as u32),
            "grain table",
            gd as u64,
            Box::new(inside("grain directory")),
        ),
        case(
            "grain past the end",
            &set32(entry0, 0x00ff_ffff),
            "grain",
            0x00ff_ffff * 512,
            Box::new(truncated),
        ),
        case(
            "grain at sector 2^32-1",
            &set32(entry0, u32::MAX),
            "grain",
            u64::from(u32::MAX) * 512,
            Box::new(truncated),
        ),
        case(
            "grain in the header",
            &set32(entry0, 2),
            "grain",
            1024,
            Box::new(inside("COWD header")),
        ),
        case(
            "grain on the grain directory",
            &set32(entry0, (gd / 512) as u32),
            "grain",
            gd as u64,
            Box::new(inside("grain directory")),
        ),
    ]);
}

/// seSparse: every field of both headers a reader uses, the areas, the directory, the tables,
/// each entry kind and the grains.
fn sesparse_cases(cases: &mut Vec<Case<Error>>) {
    let sectors = 2 * 4096 * 8 + 3;
    let mut b = SeSparseBuilder::new(sectors);
    for g in [0u64, 1, 4096, 8192] {
        b.grains.insert(g, noise(g + 1, 4096));
    }
    b.zeroed.push(5);
    let (good, layout) = b.build();
    let gd = layout.grain_directory;
    let entry0 = layout.entries[&0];
    let u64_at = |at: usize| u64::from_le_bytes(good[at..at + 8].try_into().unwrap());
    let (gd_sector, grains_sector) = (u64_at(128), u64_at(192));
    let case = |name: &str,
                f: &dyn Fn(&mut Vec<u8>),
                structure: &'static str,
                offset: u64,
                kind: Box<dyn Fn(&ErrorKind) -> bool>| {
        let files = esx_files("seSparse", "SESPARSE", sectors, damaged(&good, f));
        Case::new(
            "seSparse",
            name,
            read("d.vmdk", files, 4096),
            in_extent(structure, offset, kind),
        )
    };
    let (h, v) = ("seSparse header", "seSparse volatile header");
    let vh = layout.volatile_header;
    cases.extend([
        case(
            "magic damaged",
            &set64(0, 0xcafe_babf),
            h,
            0,
            Box::new(invalid("magic")),
        ),
        case(
            "version 0x200000002",
            &set64(8, 0x2_0000_0002),
            h,
            8,
            Box::new(|k| {
                matches!(
                    k,
                    ErrorKind::Unsupported(Feature::SeSparseVersion(0x2_0000_0002))
                )
            }),
        ),
        case(
            "capacity 2^64-1 sectors",
            &set64(16, u64::MAX),
            h,
            16,
            Box::new(invalid("capacity")),
        ),
        case(
            "descriptor line longer than capacity",
            &set64(16, 64),
            h,
            16,
            Box::new(inside("less than")),
        ),
        case(
            "grain_size 3",
            &set64(24, 3),
            h,
            24,
            Box::new(invalid("grain_size")),
        ),
        case(
            "grain_size 2^20 sectors",
            &set64(24, 1 << 20),
            h,
            24,
            Box::new(invalid("grain_size")),
        ),
        case(
            "grain_table_size 0",
            &set64(32, 0),
            h,
            32,
            Box::new(invalid("grain_table_size")),
        ),
        case(
            "grain_table_size 65 sectors",
            &set64(32, 65),
            h,
            32,
            Box::new(invalid("grain_table_size")),
        ),
        case(
            "flags 1",
            &set64(40, 1),
            h,
            40,
            Box::new(|k| matches!(k, ErrorKind::Unsupported(Feature::SeSparseFlags(1)))),
        ),
        case(
            "reserved2 set",
            &set64(56, 1),
            h,
            56,
            Box::new(invalid("reserved2")),
        ),
        case(
            "volatile_header_offset 2^60 sectors",
            &set64(80, 1 << 60),
            h,
            80,
            Box::new(invalid("volatile header")),
        ),
        case(
            "volatile_header_size 0",
            &set64(88, 0),
            h,
            88,
            Box::new(invalid("volatile_header_size")),
        ),
        case(
            "volatile header over the constant header",
            &set64(80, 0),
            h,
            80,
            Box::new(inside("overlaps the seSparse header")),
        ),
        case(
            "journal_size 2^64-1 sectors",
            &set64(120, u64::MAX),
            h,
            112,
            Box::new(invalid("journal")),
        ),
        case(
            "grain directory over the journal",
            &set64(128, 4),
            h,
            128,
            Box::new(inside("overlaps the journal")),
        ),
        case(
            "grain area over the grain table area",
            &set64(192, gd_sector + 1),
            h,
            192,
            Box::new(inside("overlaps the grain table area")),
        ),
        case(
            "grain_dir_size 0 (fewer entries than the capacity needs)",
            &set64(136, 0),
            h,
            136,
            Box::new(invalid("grain_dir_size")),
        ),
        case(
            "grain directory past the end",
            &set64(128, grains_sector + (1 << 40)),
            "grain directory",
            (grains_sector + (1 << 40)) * 512,
            Box::new(truncated),
        ),
        case(
            "cut inside the constant header",
            &|b| b.truncate(100),
            h,
            0,
            Box::new(truncated),
        ),
        case(
            "cut inside the volatile header",
            &|b| b.truncate(vh + 100),
            v,
            vh as u64,
            Box::new(truncated),
        ),
        case(
            "volatile header magic damaged",
            &set64(vh, 0xcafe_babe),
            v,
            vh as u64,
            Box::new(invalid("magic")),
        ),
        case(
            "journal to replay",
            &set64(vh + 24, 1),
            v,
            vh as u64 + 24,
            Box::new(|k| matches!(k, ErrorKind::Unsupported(Feature::SeSparseJournalReplay))),
        ),
        case(
            "directory entry that is no grain table",
            &set64(gd, 0x2000_0000_0000_0000),
            "grain directory",
            gd as u64,
            Box::new(invalid("entry")),
        ),
        case(
            "directory entry past the grain table area",
            &set64(gd, 0x1000_0000_0000_0003),
            "grain directory",
            gd as u64,
            Box::new(invalid("entry")),
        ),
        case(
            "grain table cut by the end of the file",
            &|b| b.truncate(layout.grain_tables[&0] + 100),
            "grain table",
            layout.grain_tables[&0] as u64,
            Box::new(truncated),
        ),
        case(
            "table entry of unknown kind",
            &set64(entry0, 0x4000_0000_0000_0000),
            "grain table",
            entry0 as u64,
            Box::new(invalid("entry")),
        ),
        case(
            "unallocated table entry with bits set",
            &set64(entry0, 0x0000_0000_0000_0007),
            "grain table",
            entry0 as u64,
            Box::new(invalid("entry")),
        ),
        case(
            "grain number past the grain area",
            &set64(entry0, SeSparseBuilder::allocated(1 << 40)),
            "grain table",
            entry0 as u64,
            Box::new(invalid("entry")),
        ),
        case(
            "grain in the grain area, past the end of the file",
            &set64(entry0, SeSparseBuilder::allocated(4096)),
            "grain",
            (grains_sector + 4096 * 8) * 512,
            Box::new(truncated),
        ),
    ]);
}

/// A field of `bytes` at `at` set to a big-endian `u32` (qcow2).
fn be32(at: usize, value: u32) -> impl Fn(&mut Vec<u8>) {
    move |b| put(b, at, &value.to_be_bytes())
}

/// A field of `bytes` at `at` set to a big-endian `u64` (qcow2).
fn be64(at: usize, value: u64) -> impl Fn(&mut Vec<u8>) {
    move |b| put(b, at, &value.to_be_bytes())
}

fn unsupported(k: &ErrorKind) -> bool {
    matches!(k, ErrorKind::Unsupported(Feature::Qcow2(_)))
}

/// qcow2: the header, the L1 and L2 tables, data and compressed clusters, on two images
/// qemu-img made (4 KiB clusters, 256 KiB): version 3 with zero clusters (the L1 table at
/// 12288, the refcount table at 4096, the L2 table at 16384, cluster 4 at 0x7000), and
/// version 2 with deflate-compressed clusters (cluster 1 compressed at 0x6000).
fn qcow2_cases(cases: &mut Vec<Case<Error>>) {
    let v3: &[u8] = include_bytes!("../../testdata/fuzz-seeds/disk/qcow2-zero.qcow2");
    let v2: &[u8] = include_bytes!("../../testdata/fuzz-seeds/disk/qcow2-v2-deflate.qcow2");
    let (l1, l2) = (12288usize, 16384usize);
    let case = |category: &'static str,
                name: &str,
                good: &'static [u8],
                f: &dyn Fn(&mut Vec<u8>),
                (structure, offset): (&'static str, u64),
                kind: Box<dyn Fn(&ErrorKind) -> bool>| {
        let files = one("q.qcow2", damaged(good, f));
        let expect = is(structure, Some(offset), |_| true);
        Case::new(
            category,
            name,
            read("q.qcow2", files, 256 << 10),
            move |e| expect(e) && kind(e.kind()),
        )
    };
    let h = "qcow2 header";
    let v3: &'static [u8] = v3;
    let v2: &'static [u8] = v2;
    cases.extend([
        case(
            "qcow2",
            "version 4",
            v3,
            &be32(4, 4),
            (h, 4),
            Box::new(unsupported),
        ),
        case(
            "qcow2",
            "version 1 (qcow)",
            v3,
            &be32(4, 1),
            (h, 4),
            Box::new(unsupported),
        ),
        case(
            "qcow2",
            "clusters of 2^22",
            v3,
            &be32(20, 22),
            (h, 20),
            Box::new(invalid("cluster_bits")),
        ),
        case(
            "qcow2",
            "clusters of 256 bytes",
            v3,
            &be32(20, 8),
            (h, 20),
            Box::new(invalid("cluster_bits")),
        ),
        case(
            "qcow2",
            "AES encryption",
            v3,
            &be32(32, 1),
            (h, 32),
            Box::new(unsupported),
        ),
        case(
            "qcow2",
            "LUKS encryption",
            v3,
            &be32(32, 2),
            (h, 32),
            Box::new(unsupported),
        ),
        case(
            "qcow2",
            "L1 table too small for the size",
            v3,
            &be64(24, 1 << 40),
            (h, 36),
            Box::new(invalid("l1_size")),
        ),
        case(
            "qcow2",
            "L1 table over qemu's limit",
            v3,
            &be32(36, 1 << 30),
            (h, 36),
            Box::new(invalid("l1_size")),
        ),
        case(
            "qcow2",
            "L1 table not cluster-aligned",
            v3,
            &be64(40, 12288 + 8),
            (h, 40),
            Box::new(invalid("l1_table_offset")),
        ),
        case(
            "qcow2",
            "L1 table past the end of the file",
            v3,
            &be64(40, 1 << 40),
            ("L1 table", 1 << 40),
            Box::new(truncated),
        ),
        case(
            "qcow2",
            "L1 table over the header",
            v3,
            &be64(40, 0),
            (h, 40),
            Box::new(invalid("l1_table_offset")),
        ),
        case(
            "qcow2",
            "refcount table not cluster-aligned",
            v3,
            &be64(48, 4097),
            (h, 48),
            Box::new(invalid("refcount_table_offset")),
        ),
        case(
            "qcow2",
            "external data file",
            v3,
            &be64(72, 1 << 2),
            (h, 72),
            Box::new(unsupported),
        ),
        case(
            "qcow2",
            "extended L2 entries",
            v3,
            &be64(72, 1 << 4),
            (h, 72),
            Box::new(unsupported),
        ),
        case(
            "qcow2",
            "unknown incompatible feature",
            v3,
            &be64(72, 1 << 9),
            (h, 72),
            Box::new(unsupported),
        ),
        case(
            "qcow2",
            "header length under 104",
            v3,
            &be32(100, 72),
            (h, 100),
            Box::new(invalid("header_length")),
        ),
        case(
            "qcow2",
            "header length over a cluster",
            v3,
            &be32(100, 8192),
            (h, 100),
            Box::new(invalid("header_length")),
        ),
        case(
            "qcow2",
            "zstd without its incompatible bit",
            v3,
            &|b| b[104] = 1,
            (h, 104),
            Box::new(invalid("compression_type")),
        ),
        case(
            "qcow2",
            "unknown compression type",
            v3,
            &|b| {
                b[104] = 7;
                be64(72, 1 << 3)(b)
            },
            (h, 104),
            Box::new(unsupported),
        ),
        case(
            "qcow2",
            "backing file name of 2000 bytes",
            v3,
            &|b| {
                be64(8, 512)(b);
                be32(16, 2000)(b)
            },
            (h, 16),
            Box::new(invalid("backing_file_size")),
        ),
        case(
            "qcow2",
            "header extension past its area",
            v3,
            &|b| {
                be32(112, 0xe279_2aca)(b);
                be32(116, 9000)(b)
            },
            ("header extension", 112),
            Box::new(invalid("length")),
        ),
        case(
            "qcow2 tables",
            "L1 entry not cluster-aligned",
            v3,
            &be64(l1, 0x8000_0000_0000_4200),
            ("L1 table", l1 as u64),
            Box::new(invalid("entry")),
        ),
        case(
            "qcow2 tables",
            "L2 table over the L1 table",
            v3,
            &be64(l1, 0x8000_0000_0000_3000),
            ("L2 table", 0x3000),
            Box::new(inside("L1 table")),
        ),
        case(
            "qcow2 tables",
            "L2 table over the refcount table",
            v3,
            &be64(l1, 0x1000),
            ("L2 table", 0x1000),
            Box::new(inside("refcount table")),
        ),
        case(
            "qcow2 tables",
            "L2 table past the end of the file",
            v3,
            &be64(l1, 1 << 40),
            ("L2 table", 1 << 40),
            Box::new(truncated),
        ),
        case(
            "qcow2 tables",
            "data cluster not cluster-aligned",
            v3,
            &be64(l2 + 32, 0x8000_0000_0000_7200),
            ("L2 table", (l2 + 32) as u64),
            Box::new(invalid("entry")),
        ),
        // Data clusters are read by the disk's grain reader: "grain" in its errors.
        case(
            "qcow2 tables",
            "data cluster over the L1 table",
            v3,
            &be64(l2 + 32, 0x8000_0000_0000_3000),
            ("grain", 0x3000),
            Box::new(inside("L1 table")),
        ),
        case(
            "qcow2 tables",
            "data cluster past the end of the file",
            v3,
            &be64(l2 + 32, 0x8000_0000_1000_0000),
            ("grain", 0x1000_0000),
            Box::new(truncated),
        ),
        case(
            "qcow2 compressed",
            "compressed cluster past the end of the file",
            v2,
            &be64(l2 + 8, 0x4000_0000_1000_0000),
            ("compressed cluster", 0x1000_0000),
            Box::new(inside("past the end")),
        ),
        case(
            "qcow2 compressed",
            "compressed cluster at offset 0",
            v2,
            &be64(l2 + 8, 0x4000_0000_0000_0000),
            ("L2 table", (l2 + 8) as u64),
            Box::new(invalid("entry")),
        ),
        case(
            "qcow2 compressed",
            "compressed data damaged",
            v2,
            &|b| b[0x6000..0x6010].fill(0xff),
            ("compressed cluster", 0x6000),
            Box::new(inside("cluster 1 (zlib)")),
        ),
        case(
            "qcow2 compressed",
            "compressed cluster cut short",
            v2,
            &|b| b.truncate(0x6010),
            ("compressed cluster", 0x6000),
            Box::new(|_| true),
        ),
    ]);
}

#[test]
fn malformed_inputs_fail_precisely_within_a_heap_budget() {
    let mut cases = Vec::new();
    sparse_cases(&mut cases);
    stream_cases(&mut cases);
    descriptor_cases(&mut cases);
    chain_cases(&mut cases);
    cowd_cases(&mut cases);
    sesparse_cases(&mut cases);
    qcow2_cases(&mut cases);
    run_catalogue(
        &ALLOC,
        cases,
        &[
            "headers",
            "tables",
            "markers",
            "compressed data",
            "descriptors",
            "parent chains",
            "COWD",
            "seSparse",
            "qcow2",
            "qcow2 tables",
            "qcow2 compressed",
        ],
        // The real count (README): a case lost fails.
        160,
        BUDGET,
    );
}
