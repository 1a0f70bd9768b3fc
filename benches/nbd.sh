#!/usr/bin/env bash
# nbdcopy from our NBD export against nbdcopy from qemu-nbd serving the same VMDK (issue 28: at
# least 2x), side by side in one run, printed as ratios; both copies synced in their time and
# checked by sha256 against the source. qemu-nbd serves read-only, persistent, 8 connections
# (nbdcopy opens 4); ours serves the file's export by name.
#   benches/nbd.sh [SIZE] [ROUNDS]    the test disk (benches/testdisk.sh) as a monolithicSparse
#                                     and a streamOptimized VMDK (qemu-img), default 2G, 3 rounds
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/testdisk.sh
SIZE=${1:-2G}
ROUNDS=${2:-3}
cargo build --release -q -p ovf-disk
BIN=$PWD/target/release/ovf-disk
W=$(mktemp -d "${TMPDIR:-/tmp}/ovf-disk-nbd.XXXXXX")
pids=()
cleanup() {
    if [ ${#pids[@]} -gt 0 ]; then kill "${pids[@]}" 2>/dev/null || true; fi
    rm -rf "$W"
}
trap cleanup EXIT
test_disk "$W/src.raw" "$(numfmt --from=iec "$SIZE")"
want=$(sha256sum < "$W/src.raw" | cut -d' ' -f1)
qemu-img convert -f raw -O vmdk -o subformat=monolithicSparse "$W/src.raw" "$W/sparse.vmdk"
qemu-img convert -f raw -O vmdk -o subformat=streamOptimized "$W/src.raw" "$W/stream.vmdk"
rm "$W/src.raw"
now() { date +%s.%N; }
wait_socket() { for _ in $(seq 200); do [ -S "$1" ] && return; sleep 0.05; done; echo "nbd.sh: no $1" >&2; exit 1; }
copy() { # copy URI: seconds of nbdcopy to a file and its sync; checks the bytes
    rm -f "$W/out.raw"; sync
    local s e
    s=$(now); nbdcopy "$1" "$W/out.raw"; sync -f "$W/out.raw"; e=$(now)
    [ "$(sha256sum < "$W/out.raw" | cut -d' ' -f1)" = "$want" ] || { echo "nbd.sh: $1 read other bytes" >&2; exit 1; }
    echo "$e - $s" | bc
}
echo "nbd.sh: $SIZE test disk, $ROUNDS rounds, $(nproc) cores, $(date -u +%FT%TZ)"
for src in sparse stream; do
    "$BIN" serve --nbd "unix:$W/ours.sock" "$W/$src.vmdk" 2>/dev/null & pids+=($!)
    qemu-nbd --read-only --persistent --shared=8 -f vmdk --socket="$W/qemu.sock" "$W/$src.vmdk" & pids+=($!)
    wait_socket "$W/ours.sock"; wait_socket "$W/qemu.sock"
    for r in $(seq "$ROUNDS"); do
        ours=$(copy "nbd+unix:///$src.vmdk?socket=$W/ours.sock")
        theirs=$(copy "nbd+unix:///?socket=$W/qemu.sock")
        printf '%-6s round %s: nbdcopy from ours %.2f s, from qemu-nbd %.2f s (%sx ours)\n' "$src" "$r" "$ours" "$theirs" \
            "$(echo "scale=2; $theirs / $ours" | bc)"
    done
    kill "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
    pids=()
    rm -f "$W/ours.sock" "$W/qemu.sock"
done
