#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each, one after the other.
#
#   fuzz/run.sh SECONDS [extra libFuzzer flags...]     e.g. fuzz/run.sh 60 -timeout=10
#
# Seeds fuzz/corpus/<target>/ from testdata/fuzz-seeds/<target>/ when that folder exists (run
# fuzz/seeds.sh first for qemu-img images). disk, stream, ova, sparse_header, cowd and sesparse
# take inputs up to 1.2 MB and fail an input slower than 10 s. Builds with one job unless
# CARGO_BUILD_JOBS says otherwise. Crashes land in fuzz/artifacts/<target>/; the script goes on with the next target
# and exits non-zero if any target failed.
set -euo pipefail

if [[ $# -lt 1 || ! $1 =~ ^[0-9]+$ ]]; then
    echo "usage: $0 SECONDS [extra libFuzzer flags...]" >&2
    exit 2
fi
seconds=$1
shift

here=$(cd "$(dirname "$0")" && pwd)
seeds="$here/../testdata/fuzz-seeds"
# FUZZ_TARGETS="disk stream" fuzz/run.sh 600 runs only those.
read -r -a targets <<<"${FUZZ_TARGETS:-descriptor sparse_header disk stream envelope manifest ova cowd sesparse nbd vm}"

export RUSTC_BOOTSTRAP=1
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}"

cd "$here"
# FUZZ_BUILD="--dev" builds without optimisations (CI's smoke run: half the build time, and a
# few seconds of mutation need no speed); long runs keep cargo-fuzz's optimised default.
read -r -a build <<<"${FUZZ_BUILD:-}"
cargo fuzz build "${build[@]}"

failed=()
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t"
    if [[ -d "$seeds/$t" ]]; then
        cp -n "$seeds/$t"/* "corpus/$t/" 2>/dev/null || true
    fi
    echo "== $t: ${seconds}s, corpus of $(find "corpus/$t" -type f | wc -l) inputs"
    extra=()
    # The stream and ova targets run the reader's worker threads; glibc's registration of their
    # thread-local destructors (__cxa_thread_atexit_impl, 32 bytes) shows as a leak to
    # LeakSanitizer when a thread ends. It is not our allocation, so leak detection is off there.
    [[ $t == stream || $t == ova ]] && extra+=(-detect_leaks=0)
    # The targets that reach `check` and the readers get whole images (seeds.sh writes qemu-img
    # images of up to ~1 MiB) and a per-input time limit: an input slower than 10 s is a
    # failure (libFuzzer reports it as a timeout and keeps it), so a walk that grows with what a
    # header claims is found, not waited for (issue 17).
    case $t in
        disk | stream | ova | sparse_header | cowd | sesparse) extra+=(-max_len=1200000 -timeout=10) ;;
    esac
    if ! cargo fuzz run "${build[@]}" "$t" -- -max_total_time="$seconds" -rss_limit_mb=2048 "${extra[@]}" "$@"; then
        failed+=("$t")
    fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "failed: ${failed[*]} (inputs in $here/artifacts/)" >&2
    exit 1
fi
echo "all targets ran ${seconds}s without a failure"
