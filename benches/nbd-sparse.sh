#!/usr/bin/env bash
# Block status over NBD (issue 28): nbdcopy of a 64 GiB disk that is 10% allocated, from our
# NBD export, against nbdcopy of a disk holding the same data with no holes (6.25 GiB), side by
# side in one run: with `base:allocation` the copy costs what the data costs, not the capacity
# (ratio near 1). Both copies synced in their time and checked by sha256 against the source.
#   benches/nbd-sparse.sh [ROUNDS]     default 2; needs about 26 GB free in $TMPDIR
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-2}
cargo build --release -q -p ovf-disk
BIN=$PWD/target/release/ovf-disk
W=$(mktemp -d "${TMPDIR:-/tmp}/ovf-disk-nbd-sparse.XXXXXX")
pids=()
cleanup() {
    if [ ${#pids[@]} -gt 0 ]; then kill "${pids[@]}" 2>/dev/null || true; fi
    rm -rf "$W"
}
trap cleanup EXIT
cd "$W"
# 64 chunks of 100 MiB of random data: one every GiB of the sparse disk, back to back in the
# dense one.
head -c $((100 << 20)) /dev/urandom > chunk
truncate -s 64G sparse.raw
truncate -s $((64 * 100))M dense.raw
for i in $(seq 0 63); do
    dd if=chunk of=sparse.raw bs=1M seek=$((i * 1024)) conv=notrunc status=none
    dd if=chunk of=dense.raw bs=1M seek=$((i * 100)) conv=notrunc status=none
done
want_sparse=$(sha256sum < sparse.raw | cut -d' ' -f1)
want_dense=$(sha256sum < dense.raw | cut -d' ' -f1)
qemu-img convert -f raw -O vmdk sparse.raw sparse.vmdk
qemu-img convert -f raw -O vmdk dense.raw dense.vmdk
rm sparse.raw dense.raw chunk
"$BIN" serve --nbd "unix:$W/s.sock" sparse.vmdk dense.vmdk 2>/dev/null & pids+=($!)
for _ in $(seq 200); do [ -S s.sock ] && break; sleep 0.05; done
now() { date +%s.%N; }
copy() { # copy EXPORT WANT: seconds of nbdcopy to a file and its sync, bytes checked
    rm -f out.raw; sync
    local s e
    s=$(now); nbdcopy "nbd+unix:///$1?socket=$W/s.sock" out.raw; sync -f out.raw; e=$(now)
    [ "$(sha256sum < out.raw | cut -d' ' -f1)" = "$2" ] || { echo "nbd-sparse.sh: $1 read other bytes" >&2; exit 1; }
    echo "$e - $s" | bc
}
echo "nbd-sparse.sh: 64 GiB disk, 6.25 GiB of it data, $ROUNDS rounds, $(nproc) cores, $(date -u +%FT%TZ)"
for r in $(seq "$ROUNDS"); do
    sparse=$(copy sparse.vmdk "$want_sparse")
    dense=$(copy dense.vmdk "$want_dense")
    printf 'round %s: 64 GiB, 10%% allocated %.2f s; 6.25 GiB, all data %.2f s (ratio %s)\n' "$r" "$sparse" "$dense" \
        "$(echo "scale=2; $sparse / $dense" | bc)"
done
