#!/usr/bin/env bash
# Warm migration, side by side in one run: applying a delta that changes 1% of a disk onto a
# copy of its base, against a full inflate of the delta's leaf (what a pipeline without
# `apply` does at cutover). Prints both times and the ratio; every output checked by sha256
# against qemu-img's reading of the leaf; each run flushed inside its time.
#   benches/apply.sh [SIZE] [FILL] [ZERO] [BASE_ZERO]   default 8G, 2, write and ZERO (the disk;
#       1/FILL of the base is data; inflate's --zero for the full inflate and for the base's
#       copy apply writes into: `64G 16 write sparse` fits a machine with 75 GiB free and writes
#       the 64 GiB an eager-zeroed inflate writes; `64G 8 sparse` fits 30 GiB, its full inflate
#       writing only the leaf's data, a harder bar for apply)
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
SIZE=${1:-8G}
FILL=${2:-2}
ZERO=${3:-write}
BASE_ZERO=${4:-$ZERO}
root=$PWD
./scripts/setup.sh >/dev/null
cargo build --release -q -p ovf-disk
BIN=$root/target/release/ovf-disk
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ovf-disk-apply.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
bytes=$(numfmt --from=iec "$SIZE")
# The base: random data over its first 1/FILL.
truncate -s "$bytes" base.raw
head -c $((bytes / FILL)) /dev/urandom | dd of=base.raw conv=notrunc bs=1M iflag=fullblock status=none
qemu-img convert -f raw -O vmdk base.raw base.vmdk
rm base.raw
# The delta: 1% of the disk rewritten, in 100 places.
qemu-img create -q -f vmdk -b base.vmdk -F vmdk delta.vmdk
chunk=$((bytes / 100 / 100 / 65536 * 65536))
args=()
for i in $(seq 0 99); do args+=(-c "write -P $((i % 250 + 1)) $((i * (bytes / 100))) $chunk"); done
qemu-io -f vmdk "${args[@]}" delta.vmdk >/dev/null
qemu-img convert -f vmdk -O raw delta.vmdk leaf.raw
want=$(sha256sum < leaf.raw | cut -d' ' -f1)
rm leaf.raw
"$BIN" inflate -q --zero "$BASE_ZERO" --record-state base.vmdk target.raw
sync
now() { date +%s.%N; }
t0=$(now); "$BIN" apply -q delta.vmdk target.raw; sync target.raw; t1=$(now)
[ "$(sha256sum < target.raw | cut -d' ' -f1)" = "$want" ] || { echo "apply.sh: apply's target differs from the leaf" >&2; exit 1; }
rm -f full.raw; sync
t2=$(now); "$BIN" inflate -q --zero "$ZERO" delta.vmdk full.raw; sync full.raw; t3=$(now)
[ "$(sha256sum < full.raw | cut -d' ' -f1)" = "$want" ] || { echo "apply.sh: the inflate differs from the leaf" >&2; exit 1; }
apply=$(echo "$t0 $t1" | awk '{printf "%.3f", $2 - $1}')
full=$(echo "$t2 $t3" | awk '{printf "%.3f", $2 - $1}')
echo "disk $SIZE, base 1/$FILL data, full inflate --zero $ZERO, base copy --zero $BASE_ZERO, delta $(du -h --apparent-size delta.vmdk | cut -f1) (1% changed)"
printf 'apply %ss, full inflate of the leaf %ss, apply/full %s (want < 0.05)\n' "$apply" "$full" "$(echo "$apply $full" | awk '{printf "%.3f", $1 / $2}')"
