#!/usr/bin/env bash
# Coverage each fuzz target's corpus reaches, in the sources that target is about.
#
#   fuzz/coverage.sh [TARGET...]        (default: every target)
#
# Builds the targets with coverage instrumentation (`cargo fuzz coverage`), replays
# fuzz/corpus/<target>/ and prints llvm-cov's region, function and line coverage for the
# target's files and their total. Needs rustup's llvm-tools (`rustup component add
# llvm-tools`); run fuzz/run.sh first so the corpora hold what the fuzzer found.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$here"
export RUSTC_BOOTSTRAP=1
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}"
llvm_cov=$(find "$(rustc --print sysroot)/lib/rustlib" -name llvm-cov -type f | head -1)
if [[ -z $llvm_cov ]]; then
    echo "llvm-cov not found: rustup component add llvm-tools" >&2
    exit 1
fi

declare -A files=(
    [descriptor]="vmdk/src/descriptor.rs"
    [sparse_header]="vmdk/src/read/sparse.rs vmdk/src/read/header.rs"
    [disk]="vmdk/src/disk.rs vmdk/src/read/sparse.rs vmdk/src/read/header.rs vmdk/src/descriptor.rs vmdk/src/io.rs"
    [stream]="vmdk/src/read/stream.rs vmdk/src/read/header.rs vmdk/src/read/sparse.rs vmdk/src/check.rs"
    [envelope]="ovf/src/envelope.rs ovf/src/xml.rs ovf/src/write/edit.rs ovf/src/write/downgrade.rs"
    [manifest]="ovf/src/manifest.rs"
    [ova]="ovf-disk/src/package/ova.rs ovf-disk/src/import/mod.rs ovf-disk/src/package/check.rs"
    [cowd]="vmdk/src/read/cowd.rs vmdk/src/read/esx.rs"
    [sesparse]="vmdk/src/read/sesparse.rs vmdk/src/read/esx.rs"
)
targets=("$@")
[[ ${#targets[@]} -eq 0 ]] && targets=(descriptor sparse_header disk stream envelope manifest ova cowd sesparse)

for t in "${targets[@]}"; do
    log=$(mktemp)
    if ! cargo fuzz coverage "$t" "corpus/$t" -- -rss_limit_mb=4096 >"$log" 2>&1; then
        tail -20 "$log" >&2
        echo "coverage of $t failed" >&2
        exit 1
    fi
    rm -f "$log"
    bin=$(find target -path "*coverage*release/$t" -type f | head -1)
    srcs=()
    for f in ${files[$t]}; do srcs+=("$root/$f"); done
    echo "== $t ($(find "corpus/$t" -type f | wc -l) corpus inputs)"
    "$llvm_cov" report "$bin" -instr-profile="coverage/$t/coverage.profdata" "${srcs[@]}" \
        | awk -v root="$root/" '$1 == "TOTAL" || $1 ~ /\.rs$/ {
            sub(root, "", $1)
            printf "  %-36s regions %7s   functions %7s   lines %7s\n", $1, $4, $7, $10
        }'
done
