//! libdeflate 1.26, bundled, for the grain codec of the `vmdk` crate.
//!
//! A safe wrapper over the few libdeflate calls the codec makes: zlib (RFC 1950) and raw
//! deflate (RFC 1951) decompression of one whole buffer, zlib and raw deflate compression at a
//! level, and
//! [`Compressor::lazy`], the one thing the crates.io bindings cannot give: libdeflate's lazy
//! matcher (its levels 5 to 7) with a search depth and nice match length of our choosing. The
//! C source is libdeflate 1.26 as bundled by `libdeflate-sys` 1.26.1 with one function added
//! (`libdeflate_alloc_lazy_compressor`); `README.md` says why and how to update it.

use std::ffi::{c_int, c_void};
use std::fmt;
use std::ptr::NonNull;

/// The C declarations this crate calls (`c/libdeflate.h`); `build.rs` compiles every
/// `libdeflate_` name with a `vmdk_` prefix.
mod ffi {
    use std::ffi::{c_int, c_uint, c_void};

    /// Opaque `struct libdeflate_compressor`.
    #[repr(C)]
    pub struct Compressor {
        _private: [u8; 0],
    }

    /// Opaque `struct libdeflate_decompressor`.
    #[repr(C)]
    pub struct Decompressor {
        _private: [u8; 0],
    }

    extern "C" {
        #[link_name = "vmdk_libdeflate_alloc_compressor"]
        pub fn libdeflate_alloc_compressor(level: c_int) -> *mut Compressor;
        #[link_name = "vmdk_libdeflate_alloc_lazy_compressor"]
        pub fn libdeflate_alloc_lazy_compressor(depth: c_uint, nice: c_uint) -> *mut Compressor;
        #[link_name = "vmdk_libdeflate_zlib_compress_bound"]
        pub fn libdeflate_zlib_compress_bound(c: *mut Compressor, in_nbytes: usize) -> usize;
        #[link_name = "vmdk_libdeflate_zlib_compress"]
        pub fn libdeflate_zlib_compress(
            c: *mut Compressor,
            input: *const c_void,
            in_nbytes: usize,
            out: *mut c_void,
            out_nbytes_avail: usize,
        ) -> usize;
        #[link_name = "vmdk_libdeflate_deflate_compress_bound"]
        pub fn libdeflate_deflate_compress_bound(c: *mut Compressor, in_nbytes: usize) -> usize;
        #[link_name = "vmdk_libdeflate_deflate_compress"]
        pub fn libdeflate_deflate_compress(
            c: *mut Compressor,
            input: *const c_void,
            in_nbytes: usize,
            out: *mut c_void,
            out_nbytes_avail: usize,
        ) -> usize;
        #[link_name = "vmdk_libdeflate_free_compressor"]
        pub fn libdeflate_free_compressor(c: *mut Compressor);

        #[link_name = "vmdk_libdeflate_alloc_decompressor"]
        pub fn libdeflate_alloc_decompressor() -> *mut Decompressor;
        #[link_name = "vmdk_libdeflate_zlib_decompress"]
        pub fn libdeflate_zlib_decompress(
            d: *mut Decompressor,
            input: *const c_void,
            in_nbytes: usize,
            out: *mut c_void,
            out_nbytes_avail: usize,
            actual_out_nbytes_ret: *mut usize,
        ) -> c_int;
        #[link_name = "vmdk_libdeflate_deflate_decompress"]
        pub fn libdeflate_deflate_decompress(
            d: *mut Decompressor,
            input: *const c_void,
            in_nbytes: usize,
            out: *mut c_void,
            out_nbytes_avail: usize,
            actual_out_nbytes_ret: *mut usize,
        ) -> c_int;
        #[link_name = "vmdk_libdeflate_free_decompressor"]
        pub fn libdeflate_free_decompressor(d: *mut Decompressor);
    }
}

/// A libdeflate compressor: one per thread (it holds the match finder's tables, ~300 KiB).
pub struct Compressor(NonNull<ffi::Compressor>);

// SAFETY: a libdeflate compressor is plain heap memory with no thread affinity; `&mut self` on
// every call keeps it from being used by two threads at once.
unsafe impl Send for Compressor {}

impl fmt::Debug for Compressor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Compressor").finish_non_exhaustive()
    }
}

impl Compressor {
    /// A compressor at one of libdeflate's levels, 0 (stored blocks only) to 12. `None` for a
    /// level out of range or when memory is short.
    pub fn new(level: u32) -> Option<Self> {
        let level = c_int::try_from(level)
            .ok()
            .filter(|l| (0..=12).contains(l))?;
        // SAFETY: any level is checked by libdeflate (NULL when out of range); the pointer
        // returned is owned by the new value and freed once, in `drop`.
        NonNull::new(unsafe { ffi::libdeflate_alloc_compressor(level) }).map(Self)
    }

    /// A compressor with libdeflate's lazy matcher (that of its levels 5 to 7) trying up to
    /// `max_search_depth` earlier positions per match (2 to 1000; libdeflate's level 5 tries
    /// 16, level 6 35) and stopping at a match of `nice_match_length` bytes (3 to 258; levels 5
    /// and 6 use 30 and 65). `None` for a parameter out of range or when memory is short.
    pub fn lazy(max_search_depth: u32, nice_match_length: u32) -> Option<Self> {
        // SAFETY: the C function checks both ranges (NULL when out of range; `c_uint` is `u32`
        // on every target); the pointer returned is owned by the new value and freed once, in
        // `drop`.
        NonNull::new(unsafe {
            ffi::libdeflate_alloc_lazy_compressor(max_search_depth, nice_match_length)
        })
        .map(Self)
    }

    /// The most bytes [`zlib_compress`](Self::zlib_compress) can write for `n` input bytes.
    pub fn zlib_compress_bound(&mut self, n: usize) -> usize {
        // SAFETY: `self.0` is a live compressor; the call only reads it.
        unsafe { ffi::libdeflate_zlib_compress_bound(self.0.as_ptr(), n) }
    }

    /// Compresses `data` into `out` as one zlib stream; returns the bytes written, or `None`
    /// when they do not fit in `out` (never when `out` holds
    /// [`zlib_compress_bound`](Self::zlib_compress_bound) bytes).
    pub fn zlib_compress(&mut self, data: &[u8], out: &mut [u8]) -> Option<usize> {
        // SAFETY: `self.0` is a live compressor used by this thread alone (`&mut self`); the
        // input and output pointers come from slices valid for the lengths passed, and
        // libdeflate writes no more than `out.len()` bytes.
        let n = unsafe {
            ffi::libdeflate_zlib_compress(
                self.0.as_ptr(),
                data.as_ptr().cast::<c_void>(),
                data.len(),
                out.as_mut_ptr().cast::<c_void>(),
                out.len(),
            )
        };
        (n != 0).then_some(n)
    }
}

impl Compressor {
    /// The most bytes [`deflate_compress`](Self::deflate_compress) can write for `n` input
    /// bytes.
    pub fn deflate_compress_bound(&mut self, n: usize) -> usize {
        // SAFETY: `self.0` is a live compressor; the call only reads it.
        unsafe { ffi::libdeflate_deflate_compress_bound(self.0.as_ptr(), n) }
    }

    /// Compresses `data` into `out` as one raw deflate stream (no zlib wrapper: a qcow2
    /// compressed cluster); returns the bytes written, or `None` when they do not fit in `out`.
    pub fn deflate_compress(&mut self, data: &[u8], out: &mut [u8]) -> Option<usize> {
        // SAFETY: as in `zlib_compress`: a live compressor used by this thread alone, pointers
        // from slices valid for the lengths passed, at most `out.len()` bytes written.
        let n = unsafe {
            ffi::libdeflate_deflate_compress(
                self.0.as_ptr(),
                data.as_ptr().cast::<c_void>(),
                data.len(),
                out.as_mut_ptr().cast::<c_void>(),
                out.len(),
            )
        };
        (n != 0).then_some(n)
    }
}

impl Drop for Compressor {
    fn drop(&mut self) {
        // SAFETY: the pointer came from a libdeflate allocation and is freed only here.
        unsafe { ffi::libdeflate_free_compressor(self.0.as_ptr()) }
    }
}

/// Why a stream did not decompress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecompressError {
    /// Not a valid stream of the format asked for (or its zlib checksum does not match).
    BadData,
    /// The stream inflates to more bytes than the output buffer holds.
    InsufficientSpace,
}

impl fmt::Display for DecompressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BadData => "not a valid stream",
            Self::InsufficientSpace => "the stream inflates past the output buffer",
        })
    }
}

impl std::error::Error for DecompressError {}

/// A libdeflate decompressor: one per thread (about 10 KiB of tables).
pub struct Decompressor(NonNull<ffi::Decompressor>);

// SAFETY: as for `Compressor`: heap memory with no thread affinity, used through `&mut self`.
unsafe impl Send for Decompressor {}

impl fmt::Debug for Decompressor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decompressor").finish_non_exhaustive()
    }
}

/// The signature shared by libdeflate's whole-buffer decompressors.
type DecompressFn = unsafe extern "C" fn(
    *mut ffi::Decompressor,
    *const c_void,
    usize,
    *mut c_void,
    usize,
    *mut usize,
) -> c_int;

impl Decompressor {
    /// A decompressor; `None` when memory is short.
    pub fn new() -> Option<Self> {
        // SAFETY: no arguments; the pointer returned is owned by the new value and freed
        // once, in `drop`.
        NonNull::new(unsafe { ffi::libdeflate_alloc_decompressor() }).map(Self)
    }

    /// Inflates the zlib stream at the start of `input` into `out` (bytes after the stream's
    /// end are ignored); returns the bytes produced.
    pub fn zlib_decompress(
        &mut self,
        input: &[u8],
        out: &mut [u8],
    ) -> Result<usize, DecompressError> {
        self.run(ffi::libdeflate_zlib_decompress, input, out)
    }

    /// Inflates the raw deflate stream at the start of `input` into `out` (bytes after the
    /// stream's end are ignored); returns the bytes produced.
    pub fn deflate_decompress(
        &mut self,
        input: &[u8],
        out: &mut [u8],
    ) -> Result<usize, DecompressError> {
        self.run(ffi::libdeflate_deflate_decompress, input, out)
    }

    fn run(
        &mut self,
        f: DecompressFn,
        input: &[u8],
        out: &mut [u8],
    ) -> Result<usize, DecompressError> {
        let mut produced = 0usize;
        // SAFETY: `self.0` is a live decompressor used by this thread alone (`&mut self`); the
        // pointers come from slices valid for the lengths passed and from a local `usize`;
        // libdeflate reads at most `input.len()` bytes and writes at most `out.len()`.
        let result = unsafe {
            f(
                self.0.as_ptr(),
                input.as_ptr().cast::<c_void>(),
                input.len(),
                out.as_mut_ptr().cast::<c_void>(),
                out.len(),
                &mut produced,
            )
        };
        // enum libdeflate_result: 0 success, 1 bad data, 3 insufficient space (2, short
        // output, is only returned when no size is asked for).
        match result {
            0 if produced <= out.len() => Ok(produced),
            3 => Err(DecompressError::InsufficientSpace),
            _ => Err(DecompressError::BadData),
        }
    }
}

impl Drop for Decompressor {
    fn drop(&mut self) {
        // SAFETY: the pointer came from a libdeflate allocation and is freed only here.
        unsafe { ffi::libdeflate_free_decompressor(self.0.as_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        (0..65536u32)
            .map(|i| {
                b"the quick brown fox jumps over the lazy dog "[(i % 44) as usize] ^ (i / 997) as u8
            })
            .collect()
    }

    /// `data` compressed by `c` as one zlib stream (empty if it did not fit its bound).
    fn pack(c: &mut Compressor, data: &[u8]) -> Vec<u8> {
        let mut out = vec![0; c.zlib_compress_bound(data.len())];
        let n = c.zlib_compress(data, &mut out).unwrap_or(0);
        out.truncate(n);
        out
    }

    fn round_trip(c: &mut Compressor, data: &[u8]) {
        let packed = pack(c, data);
        assert!(!packed.is_empty() && packed.len() < data.len());
        let mut back = vec![0; data.len()];
        let mut d = Decompressor::new().unwrap_or_else(|| panic!("decompressor"));
        assert_eq!(d.zlib_decompress(&packed, &mut back), Ok(data.len()));
        assert_eq!(back, data);
    }

    #[test]
    fn levels_and_lazy_round_trip() {
        let data = sample();
        for level in [1, 6, 9] {
            let mut c = Compressor::new(level).unwrap_or_else(|| panic!("level {level}"));
            round_trip(&mut c, &data);
        }
        let mut c = Compressor::lazy(20, 65).unwrap_or_else(|| panic!("lazy"));
        round_trip(&mut c, &data);
    }

    #[test]
    fn lazy_with_level_six_parameters_is_level_six() {
        let data = sample();
        let six = pack(
            &mut Compressor::new(6).unwrap_or_else(|| panic!("6")),
            &data,
        );
        let lazy = pack(
            &mut Compressor::lazy(35, 65).unwrap_or_else(|| panic!("lazy")),
            &data,
        );
        assert!(!six.is_empty());
        assert_eq!(six, lazy);
        let shallow = pack(
            &mut Compressor::lazy(2, 3).unwrap_or_else(|| panic!("shallow")),
            &data,
        );
        assert_ne!(six, shallow);
    }

    /// The crates.io copy of libdeflate links into the same binary (every symbol of ours has
    /// the `vmdk_` prefix) and writes the same bytes at the same level: ours is libdeflate.
    #[test]
    fn links_beside_libdeflater_with_the_same_output() {
        let data = sample();
        for level in [1, 6, 9] {
            let ours = pack(
                &mut Compressor::new(level).unwrap_or_else(|| panic!("level {level}")),
                &data,
            );
            let lvl = libdeflater::CompressionLvl::new(level as i32)
                .unwrap_or_else(|_| panic!("level {level}"));
            let mut theirs = libdeflater::Compressor::new(lvl);
            let mut other = vec![0; theirs.zlib_compress_bound(data.len())];
            let m = theirs.zlib_compress(&data, &mut other).unwrap_or(0);
            assert_eq!(ours[..], other[..m], "level {level}");
            let mut back = vec![0; data.len()];
            let k = libdeflater::Decompressor::new()
                .zlib_decompress(&ours, &mut back)
                .unwrap_or(0);
            assert_eq!(back[..k], data[..]);
        }
    }

    #[test]
    fn parameters_out_of_range_are_refused() {
        assert!(Compressor::new(13).is_none());
        assert!(Compressor::lazy(1, 65).is_none());
        assert!(Compressor::lazy(1001, 65).is_none());
        assert!(Compressor::lazy(20, 2).is_none());
        assert!(Compressor::lazy(20, 259).is_none());
        assert!(Compressor::lazy(u32::MAX, u32::MAX).is_none());
    }

    #[test]
    fn output_too_small_and_bad_data() {
        let data = sample();
        let mut c = Compressor::lazy(20, 65).unwrap_or_else(|| panic!("lazy"));
        assert_eq!(c.zlib_compress(&data, &mut [0; 16]), None);
        let mut packed = pack(&mut c, &data);
        let mut d = Decompressor::new().unwrap_or_else(|| panic!("decompressor"));
        let mut short = vec![0; data.len() - 1];
        assert_eq!(
            d.zlib_decompress(&packed, &mut short),
            Err(DecompressError::InsufficientSpace)
        );
        if let Some(last) = packed.last_mut() {
            *last ^= 1; // the Adler-32 checksum
        }
        let mut out = vec![0; data.len()];
        assert_eq!(
            d.zlib_decompress(&packed, &mut out),
            Err(DecompressError::BadData)
        );
        assert_eq!(
            d.deflate_decompress(&[0xff; 8], &mut out),
            Err(DecompressError::BadData)
        );
    }
}
