//! The grain codec: deflate for compressed grains, both ways, and the zero scan.
//!
//! Spec: "Stream-Optimized Compressed" (p. 11): grains are deflate streams, written by VMware and
//! qemu with a zlib (RFC 1950) wrapper; raw deflate is read too. Inflating uses libdeflate
//! (`libdeflater`) when the compressed size is known (a grain marker gives it) and flate2 when
//! the stream's end must be found while reading (compressed grains without markers);
//! compressing uses libdeflate too (level 6 by default). Why these, with the figures that chose
//! them:
//! `benches/README.md`. Every output buffer bounds what a stream may produce: a grain that
//! would inflate past it is an error, never a larger allocation.

use std::cell::RefCell;

use flate2::{Decompress, FlushDecompress, Status};

/// Largest compressed size a grain of `grain_bytes` may have: deflate expands incompressible
/// data by a few bytes per 16 KiB block, so anything much larger than a grain is damage.
pub fn max_compressed_grain(grain_bytes: u64) -> u64 {
    grain_bytes + grain_bytes / 8 + 4096
}

/// Whether `data` starts with a zlib (RFC 1950) header using deflate.
fn is_zlib(data: &[u8]) -> bool {
    match data {
        [cmf, flg, ..] => {
            cmf & 0x0f == 8 && cmf >> 4 <= 7 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0
        }
        _ => false,
    }
}

thread_local! {
    static INFLATER: RefCell<libdeflater::Decompressor> = RefCell::new(libdeflater::Decompressor::new());
}

/// Inflates one compressed grain (exactly `input`, zlib-wrapped or raw deflate) into `out`,
/// which bounds the output: a stream that would produce more than `out.len()` bytes is an
/// error. Returns the bytes produced.
pub fn inflate(input: &[u8], out: &mut [u8]) -> Result<usize, String> {
    let zlib = is_zlib(input);
    let result = INFLATER.with(|d| {
        let mut d = d.borrow_mut();
        if zlib {
            d.zlib_decompress(input, out)
        } else {
            d.deflate_decompress(input, out)
        }
    });
    match result {
        Ok(n) => Ok(n),
        Err(libdeflater::DecompressionError::InsufficientSpace) => {
            Err(format!("inflates to more than {} bytes", out.len()))
        }
        Err(libdeflater::DecompressionError::BadData) => Err(if zlib {
            "not a valid zlib stream (damaged data or checksum)".into()
        } else {
            "not a valid deflate stream".into()
        }),
    }
}

/// Inflates a compressed grain that is followed by other bytes (no marker gives its size),
/// stopping at the end of its stream.
pub fn inflate_until_end(input: &[u8], out: &mut [u8]) -> Result<usize, String> {
    let mut d = Decompress::new(is_zlib(input));
    let status = d
        .decompress(input, out, FlushDecompress::Finish)
        .map_err(|e| e.to_string())?;
    let n = usize::try_from(d.total_out()).unwrap_or(usize::MAX);
    match status {
        Status::StreamEnd => Ok(n),
        _ if n == out.len() => Err(format!("inflates to more than {} bytes", out.len())),
        _ => Err("the compressed stream is cut short".into()),
    }
}

#[cfg(feature = "write")]
thread_local! {
    static DEFLATE: RefCell<Option<(u32, libdeflater::Compressor)>> = const { RefCell::new(None) };
}

/// Compresses one grain into a zlib stream at `level` (0, stored, to 12), with libdeflate,
/// reusing this thread's compressor.
#[cfg(feature = "write")]
pub fn compress_grain(level: u32, data: &[u8]) -> Result<Vec<u8>, String> {
    DEFLATE.with(|cell| {
        let mut slot = cell.borrow_mut();
        if !matches!(&*slot, Some((l, _)) if *l == level) {
            let lvl = i32::try_from(level.min(12))
                .ok()
                .and_then(|l| libdeflater::CompressionLvl::new(l).ok())
                .ok_or_else(|| format!("compression level {level}"))?;
            *slot = Some((level, libdeflater::Compressor::new(lvl)));
        }
        let Some((_, c)) = slot.as_mut() else {
            return Err("no compressor".to_string());
        };
        let mut out = vec![0u8; c.zlib_compress_bound(data.len())];
        let n = c.zlib_compress(data, &mut out).map_err(|e| e.to_string())?;
        out.truncate(n);
        Ok(out)
    })
}

/// Whether every byte of `data` is zero (a word-wise scan the compiler vectorizes).
#[cfg(feature = "write")]
pub fn is_zero(data: &[u8]) -> bool {
    let mut chunks = data.chunks_exact(16);
    let words_zero = chunks.by_ref().fold(0u128, |acc, c| {
        acc | u128::from_ne_bytes(c.try_into().unwrap_or([1; 16]))
    }) == 0;
    words_zero && chunks.remainder().iter().all(|&b| b == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inflate_bounds_output() {
        let data = vec![7u8; 8192];
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut z, &data).unwrap();
        let packed = z.finish().unwrap();
        let mut out = vec![0u8; 8192];
        assert_eq!(inflate(&packed, &mut out), Ok(8192));
        assert_eq!(out, data);
        let mut small = vec![0u8; 4096];
        assert!(inflate(&packed, &mut small)
            .unwrap_err()
            .contains("more than"));
        let mut big = vec![0u8; 9000];
        assert_eq!(inflate(&packed, &mut big), Ok(8192));
        assert!(inflate(&packed[..packed.len() / 2], &mut out).is_err());
        assert!(inflate(b"\x78\x9cgarbage", &mut out).is_err());
        // The streaming variant stops at the end of the stream, whatever follows.
        let mut trailing = packed.clone();
        trailing.extend_from_slice(b"next grain marker");
        assert_eq!(inflate_until_end(&trailing, &mut out), Ok(8192));
        assert!(inflate_until_end(&packed, &mut small).is_err());
    }

    #[cfg(feature = "write")]
    #[test]
    fn compressed_grains_inflate_back() {
        let data: Vec<u8> = (0..65536u32).map(|i| (i * 7 % 251) as u8).collect();
        for level in [0, 1, 3, 6, 9] {
            let packed = compress_grain(level, &data).unwrap();
            let mut out = vec![0u8; 65536];
            assert_eq!(inflate(&packed, &mut out), Ok(65536));
            assert_eq!(out, data);
        }
    }

    #[cfg(feature = "write")]
    #[test]
    fn zero_scan() {
        assert!(is_zero(&[0u8; 100]));
        for at in [0, 15, 16, 99] {
            let mut v = vec![0u8; 100];
            v[at] = 1;
            assert!(!is_zero(&v), "{at}");
        }
        assert!(is_zero(&[]));
    }
}
