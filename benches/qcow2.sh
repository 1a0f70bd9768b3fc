#!/usr/bin/env bash
# qcow2 side by side with qemu-img in one run, printed as ratios (issue 29's goals):
#   stream-optimized VMDK -> qcow2     at least 3x qemu-img
#   sparse VMDK -> qcow2               never slower than qemu-img; within 1.3x of
#                                      `dd oflag=direct` writing as many bytes
#   raw -> compressed qcow2            at least 4x `qemu-img convert -c`, at no larger output
#   compressed qcow2 -> raw (reading)  ours against qemu-img's
#   benches/qcow2.sh [SIZE] [ROUNDS] [RAW...]
# SIZE (default 1G) sizes the test disk (benches/testdisk.sh: a third random, a third text, a
# third zeros); RAW... are more raw images for the compressed rows (real contents:
# benches/corpus.sh builds them). Every output is flushed inside its time (ours fsyncs before
# its rename; qemu-img's and dd's are followed by `sync -f`) and compared with qemu-img.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/testdisk.sh
SIZE=${1:-1G}
ROUNDS=${2:-3}
shift $(( $# < 2 ? $# : 2 ))
cargo build --release -q -p ovf-disk
BIN=$PWD/target/release/ovf-disk
W=$(mktemp -d "${TMPDIR:-/tmp}/ovf-disk-qcow2.XXXXXX")
trap 'rm -rf "$W"' EXIT
test_disk "$W/src.raw" "$(numfmt --from=iec "$SIZE")"
qemu-img convert -f raw -O vmdk -o subformat=monolithicSparse "$W/src.raw" "$W/sparse.vmdk"
qemu-img convert -f raw -O vmdk -o subformat=streamOptimized "$W/src.raw" "$W/stream.vmdk"
now() { date +%s.%N; }
ratio() { echo "scale=2; $1 / $2" | bc; }
echo "qcow2.sh: $SIZE test disk, $ROUNDS rounds, $(nproc) cores, $(date -u +%FT%TZ)"

# One timed pair: $1 label, $2 input, $3 its qemu format, $4 our extra options, $5 qemu's.
pair() {
    local label=$1 in=$2 fmt=$3 ours_opts=$4 qemu_opts=$5 r s e ours theirs
    for r in $(seq "$ROUNDS"); do
        rm -f "$W/o.qcow2" "$W/q.qcow2"; sync
        # shellcheck disable=SC2086
        s=$(now); "$BIN" convert -q --to qcow2 $ours_opts "$in" "$W/o.qcow2"; e=$(now)
        ours=$(echo "$e - $s" | bc)
        sync
        # shellcheck disable=SC2086
        s=$(now); qemu-img convert -f "$fmt" -O qcow2 $qemu_opts "$in" "$W/q.qcow2"; sync -f "$W/q.qcow2"; e=$(now)
        theirs=$(echo "$e - $s" | bc)
        qemu-img compare -q -f "$fmt" -F qcow2 "$in" "$W/o.qcow2"
        qemu-img check -q "$W/o.qcow2"
        printf '%-22s round %s: ours %.2f s, qemu-img %.2f s (%sx ours); sizes %s / %s bytes\n' \
            "$label" "$r" "$ours" "$theirs" "$(ratio "$theirs" "$ours")" \
            "$(stat -c %s "$W/o.qcow2")" "$(stat -c %s "$W/q.qcow2")"
    done
}

pair "stream -> qcow2" "$W/stream.vmdk" vmdk "" ""
pair "sparse -> qcow2" "$W/sparse.vmdk" vmdk "" ""
# dd writing as many bytes as our sparse -> qcow2 output holds, with O_DIRECT.
bytes=$(stat -c %s "$W/o.qcow2")
for r in $(seq "$ROUNDS"); do
    rm -f "$W/dd.raw"; sync
    s=$(now); dd if=/dev/zero of="$W/dd.raw" bs=8M count=$(( (bytes + (8 << 20) - 1) >> 23 )) oflag=direct status=none; sync -f "$W/dd.raw"; e=$(now)
    dd_s=$(echo "$e - $s" | bc)
    rm -f "$W/o.qcow2"; sync
    s=$(now); "$BIN" convert -q --to qcow2 "$W/sparse.vmdk" "$W/o.qcow2"; e=$(now)
    ours=$(echo "$e - $s" | bc)
    printf '%-22s round %s: ours %.2f s, dd oflag=direct %.2f s (ours %sx dd)\n' \
        "sparse vs dd" "$r" "$ours" "$dd_s" "$(ratio "$ours" "$dd_s")"
done
rm -f "$W/dd.raw" "$W/sparse.vmdk" "$W/stream.vmdk"

for raw in "$W/src.raw" "$@"; do
    name=$(basename "$raw")
    pair "$name -> -c" "$raw" raw "--compress" "-c"
    pair "$name -> -c zstd" "$raw" raw "--compression-type zstd" "-c -o compression_type=zstd"
    # Reading a compressed qcow2 (qemu-img's) back to raw.
    qemu-img convert -c -f raw -O qcow2 "$raw" "$W/c.qcow2"
    for r in $(seq "$ROUNDS"); do
        rm -f "$W/a.raw" "$W/b.raw"; sync
        s=$(now); "$BIN" convert -q --to raw "$W/c.qcow2" "$W/a.raw"; e=$(now)
        ours=$(echo "$e - $s" | bc)
        s=$(now); qemu-img convert -f qcow2 -O raw "$W/c.qcow2" "$W/b.raw"; sync -f "$W/b.raw"; e=$(now)
        theirs=$(echo "$e - $s" | bc)
        cmp "$W/a.raw" "$W/b.raw"
        printf '%-22s round %s: ours %.2f s, qemu-img %.2f s (%sx ours)\n' \
            "$name read -c" "$r" "$ours" "$theirs" "$(ratio "$theirs" "$ours")"
    done
    rm -f "$W/a.raw" "$W/b.raw" "$W/c.qcow2"
done
