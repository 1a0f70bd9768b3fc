#!/usr/bin/env bash
# Dynamic VHD and VHDX output against qemu-img's (`-O vpc -o subformat=dynamic`, `-O vhdx`),
# side by side in one run, printed as ratios (issue 29's goal: at least 2x qemu-img).
#   benches/vhd.sh [SIZE] [ROUNDS]    the test disk (benches/testdisk.sh) as a monolithicSparse
#                                     and a streamOptimized VMDK (qemu-img), default 1G, 3 rounds
# Both outputs are flushed inside their time (ours fsyncs before its rename; qemu-img's is
# followed by `sync -f`), and compared with `qemu-img compare`.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/testdisk.sh
SIZE=${1:-1G}
ROUNDS=${2:-3}
cargo build --release -q -p ovf-disk
BIN=$PWD/target/release/ovf-disk
W=$(mktemp -d "${TMPDIR:-/tmp}/ovf-disk-vhd.XXXXXX")
trap 'rm -rf "$W"' EXIT
test_disk "$W/src.raw" "$(numfmt --from=iec "$SIZE")"
qemu-img convert -f raw -O vmdk -o subformat=monolithicSparse "$W/src.raw" "$W/sparse.vmdk"
qemu-img convert -f raw -O vmdk -o subformat=streamOptimized "$W/src.raw" "$W/stream.vmdk"
rm "$W/src.raw"
now() { date +%s.%N; }
echo "vhd.sh: $SIZE test disk, $ROUNDS rounds, $(nproc) cores, $(date -u +%FT%TZ)"
for fmt in vhd vhdx; do
    case $fmt in
        vhd) qfmt=vpc; qopts=(-o subformat=dynamic) ;;
        vhdx) qfmt=vhdx; qopts=() ;;
    esac
    for src in sparse stream; do
        for r in $(seq "$ROUNDS"); do
            rm -f "$W/o.$fmt" "$W/q.$fmt"; sync
            s=$(now); "$BIN" convert -q --to "$fmt" "$W/$src.vmdk" "$W/o.$fmt"; e=$(now)
            ours=$(echo "$e - $s" | bc)
            sync
            s=$(now); qemu-img convert -f vmdk -O "$qfmt" "${qopts[@]}" "$W/$src.vmdk" "$W/q.$fmt"; sync -f "$W/q.$fmt"; e=$(now)
            theirs=$(echo "$e - $s" | bc)
            qemu-img compare -q -f vmdk -F "$qfmt" "$W/$src.vmdk" "$W/o.$fmt"
            printf '%-4s %-6s round %s: ours %.2f s, qemu-img %.2f s (%sx ours); sizes %s / %s bytes\n' "$fmt" "$src" "$r" "$ours" "$theirs" \
                "$(echo "scale=2; $theirs / $ours" | bc)" "$(stat -c %s "$W/o.$fmt")" "$(stat -c %s "$W/q.$fmt")"
        done
    done
done
