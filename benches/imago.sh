#!/usr/bin/env bash
# Our qcow2 writer against the imago crate's (issue 29: "the imago crate reads and writes
# qcow2; measure it against your own writer on our copy path"), side by side in one run,
# printed as ratios. imago runs on the same copy path (benches/imago/: our reader and
# allocation map, 8 MiB windows on 2 threads, clusters of zeros skipped, runs of data written
# through `FormatAccess::write`, then `flush` and `sync`); ours is `convert --to qcow2`, which
# fsyncs before its rename. Both outputs are checked and compared by qemu-img.
#   benches/imago.sh [SIZE] [ROUNDS]   the test disk (benches/testdisk.sh), default 1G, 3 rounds
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/testdisk.sh
SIZE=${1:-1G}
ROUNDS=${2:-3}
cargo build --release -q -p ovf-disk
(cd benches/imago && cargo build --release -q)
BIN=$PWD/target/release/ovf-disk
IMAGO=$PWD/benches/imago/target/release/imago-copy
W=$(mktemp -d "${TMPDIR:-/tmp}/ovf-disk-imago.XXXXXX")
trap 'rm -rf "$W"' EXIT
test_disk "$W/src.raw" "$(numfmt --from=iec "$SIZE")"
qemu-img convert -f raw -O vmdk -o subformat=monolithicSparse "$W/src.raw" "$W/sparse.vmdk"
qemu-img convert -f raw -O vmdk -o subformat=streamOptimized "$W/src.raw" "$W/stream.vmdk"
rm "$W/src.raw"
now() { date +%s.%N; }
echo "imago.sh: $SIZE test disk, $ROUNDS rounds, $(nproc) cores, imago $(grep -A1 'name = "imago"' benches/imago/Cargo.lock | sed -n 's/version = //p' | tr -d '"'), $(date -u +%FT%TZ)"
for src in sparse stream; do
    for r in $(seq "$ROUNDS"); do
        rm -f "$W/o.qcow2" "$W/i.qcow2"; sync
        s=$(now); "$BIN" convert -q --to qcow2 "$W/$src.vmdk" "$W/o.qcow2"; e=$(now)
        ours=$(echo "$e - $s" | bc)
        sync
        s=$(now); "$IMAGO" "$W/$src.vmdk" "$W/i.qcow2" 2; e=$(now)
        theirs=$(echo "$e - $s" | bc)
        qemu-img check -q "$W/i.qcow2"
        qemu-img compare -q -f vmdk -F qcow2 "$W/$src.vmdk" "$W/i.qcow2"
        qemu-img compare -q -f vmdk -F qcow2 "$W/$src.vmdk" "$W/o.qcow2"
        printf '%-6s round %s: ours %.2f s, imago %.2f s (%sx ours); sizes %s / %s bytes\n' "$src" "$r" "$ours" "$theirs" \
            "$(echo "scale=2; $theirs / $ours" | bc)" "$(stat -c %s "$W/o.qcow2")" "$(stat -c %s "$W/i.qcow2")"
    done
done
