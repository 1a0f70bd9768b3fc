//! Compiles the bundled libdeflate (c/, MIT) into a static library.

fn main() {
    let files = [
        "c/lib/arm/cpu_features.c",
        "c/lib/x86/cpu_features.c",
        "c/lib/adler32.c",
        "c/lib/crc32.c",
        "c/lib/deflate_compress.c",
        "c/lib/deflate_decompress.c",
        "c/lib/utils.c",
        "c/lib/zlib_compress.c",
        "c/lib/zlib_decompress.c",
    ];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    println!("cargo:rerun-if-changed=c");
    cc::Build::new()
        .files(files)
        .include("c")
        .warnings(false)
        .compile("vmdk_libdeflate");
}
