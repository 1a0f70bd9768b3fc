#!/usr/bin/env bash
# vmdk-img convert -O raw against ovf-disk (issue 28: "as fast as ovf-disk inflate, within 5%"),
# and qemu-img for reference, side by side in one run, alternating, each output synced in its
# time and checked by sha256 against the source:
# - every byte written: `vmdk-img convert -S 0 -O raw` against `ovf-disk inflate` (both eager);
# - holes left for zeros (qemu-img's default): `vmdk-img convert -O raw` against
#   `ovf-disk convert --to raw` and `qemu-img convert -O raw`.
#   benches/vmdk-img.sh [SIZE] [ROUNDS]   the test disk (benches/testdisk.sh) as a
#                                         monolithicSparse and a streamOptimized VMDK, 2G, 3
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/testdisk.sh
SIZE=${1:-2G}
ROUNDS=${2:-3}
cargo build --release -q -p ovf-disk
BIN=$PWD/target/release
W=$(mktemp -d "${TMPDIR:-/tmp}/ovf-disk-vmdk-img.XXXXXX")
trap 'rm -rf "$W"' EXIT
test_disk "$W/src.raw" "$(numfmt --from=iec "$SIZE")"
want=$(sha256sum < "$W/src.raw" | cut -d' ' -f1)
qemu-img convert -f raw -O vmdk -o subformat=monolithicSparse "$W/src.raw" "$W/sparse.vmdk"
qemu-img convert -f raw -O vmdk -o subformat=streamOptimized "$W/src.raw" "$W/stream.vmdk"
rm "$W/src.raw"
now() { date +%s.%N; }
run() { # run COMMAND...: seconds of the command and the sync of out.raw; checks the bytes
    rm -f "$W/out.raw"; sync
    local s e
    s=$(now); "$@" >/dev/null; sync -f "$W/out.raw"; e=$(now)
    [ "$(sha256sum < "$W/out.raw" | cut -d' ' -f1)" = "$want" ] || { echo "vmdk-img.sh: $* wrote other bytes" >&2; exit 1; }
    echo "$e - $s" | bc
}
ratio() { echo "scale=3; $1 / $2" | bc; }
echo "vmdk-img.sh: $SIZE test disk, $ROUNDS rounds, $(nproc) cores, $(date -u +%FT%TZ)"
for src in sparse stream; do
    for r in $(seq "$ROUNDS"); do
        vi=$(run "$BIN/vmdk-img" convert -S 0 -f vmdk -O raw "$W/$src.vmdk" "$W/out.raw")
        inf=$(run "$BIN/ovf-disk" inflate -q "$W/$src.vmdk" "$W/out.raw")
        vs=$(run "$BIN/vmdk-img" convert -f vmdk -O raw "$W/$src.vmdk" "$W/out.raw")
        cv=$(run "$BIN/ovf-disk" convert -q --to raw "$W/$src.vmdk" "$W/out.raw")
        q=$(run qemu-img convert -f vmdk -O raw "$W/$src.vmdk" "$W/out.raw")
        printf '%-6s round %s: every byte: vmdk-img -S 0 %.2f s, inflate %.2f s (%sx inflate); holes: vmdk-img %.2f s, convert --to raw %.2f s (%sx), qemu-img %.2f s (%sx vmdk-img)\n' \
            "$src" "$r" "$vi" "$inf" "$(ratio "$vi" "$inf")" "$vs" "$cv" "$(ratio "$vs" "$cv")" "$q" "$(ratio "$q" "$vs")"
    done
done
