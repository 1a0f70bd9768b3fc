#!/usr/bin/env bash
# Times ovf-disk against qemu-img (and vmdk-convert, when VMDK_CONVERT names it or it is on the
# PATH) on the images of benches/corpus.sh, in one run: raw -> stream-optimized (time and size
# of each tool's output) and stream-optimized -> eager-zeroed raw (each tool reading its own
# stream). Every output is checked: qemu-img must read each stream back to the image's sha256,
# and each raw output must equal the image and have no hole. Outputs are flushed inside the
# time (ours fsync at commit; the others `sync FILE`).
# ROUNDS (default 1) alternating pairs time raw -> stream; the table shows each tool's median
# and the rounds go to stderr.
#   [ROUNDS=3] benches/compare-corpus.sh [CORPUS_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/eager.sh
corpus=${1:-$PWD/target/corpus}
ROUNDS=${ROUNDS:-1}
benches/corpus.sh "$corpus" >/dev/null
./scripts/setup.sh >/dev/null
SETUP_SKIP_PYTHON=1 cargo build --release -q -p ovf-disk
BIN=$PWD/target/release/ovf-disk
VC=${VMDK_CONVERT:-$(command -v vmdk-convert || true)}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ovf-disk-corpus.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

now() { date +%s.%N; }
# timed CMD...: runs CMD (which must succeed) and prints its seconds.
timed() {
    local t0 t1
    t0=$(now)
    "$@" >/dev/null || { echo "compare-corpus: failed: $*" >&2; exit 1; }
    t1=$(now)
    echo "$t0 $t1" | awk '{printf "%.2f", $2 - $1}'
}
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
synced() { local out=$1; shift; "$@" && sync "$out"; }
sha() { sha256sum < "$1" | cut -d' ' -f1; }
# reads_as STREAM SHA: qemu-img reads the stream back to the image's bytes.
reads_as() {
    qemu-img convert -f vmdk -O raw "$1" check.raw
    [ "$(sha check.raw)" = "$2" ] || { echo "compare-corpus: $1 does not read back" >&2; exit 1; }
    rm -f check.raw
}
# eager_as RAW SHA: the raw output equals the image and has no hole nor unwritten extent.
eager_as() {
    [ "$(sha "$1")" = "$2" ] || { echo "compare-corpus: $1 differs" >&2; exit 1; }
    eager "$1"
}

printf '| image | MB | ours raw->stream | qemu-img | ratio | vmdk-convert -c 9 -n 2 | ours bytes | qemu-img bytes | vmdk-convert bytes | ours stream->eager raw | qemu-img | ratio |\n'
printf '|---|---|---|---|---|---|---|---|---|---|---|---|\n'
for img in "$corpus"/*.img; do
    name=$(basename "$img" .img)
    want=$(sha "$img")
    mb=$(( $(stat -c %s "$img") >> 20 ))
    ours=(); theirs=()
    for _ in $(seq "$ROUNDS"); do
        rm -f ours.vmdk qemu.vmdk vc.vmdk
        ours+=("$(timed "$BIN" convert -q --from raw --to streamOptimized "$img" ours.vmdk)")
        theirs+=("$(timed synced qemu.vmdk qemu-img convert -f raw -O vmdk -o subformat=streamOptimized "$img" qemu.vmdk)")
    done
    echo "$name raw -> stream: ours ${ours[*]}; qemu-img ${theirs[*]}" >&2
    t_ours=$(median "${ours[@]}")
    t_qemu=$(median "${theirs[@]}")
    reads_as ours.vmdk "$want"
    reads_as qemu.vmdk "$want"
    t_vc=-; s_vc=-
    if [ -n "$VC" ]; then
        t_vc=$(timed synced vc.vmdk "$VC" -c 9 -n 2 "$img" vc.vmdk)
        reads_as vc.vmdk "$want"
        s_vc=$(stat -c %s vc.vmdk)
    fi
    rm -f ours.raw qemu.raw
    t_in=$(timed "$BIN" inflate -q ours.vmdk ours.raw)
    t_qin=$(timed synced qemu.raw qemu-img convert -f vmdk -O raw -S 0 qemu.vmdk qemu.raw)
    eager_as ours.raw "$want"
    eager_as qemu.raw "$want"
    printf '| %s | %s | %s | %s | %sx | %s | %s | %s | %s | %s | %s | %sx |\n' "$name" "$mb" \
        "$t_ours" "$t_qemu" "$(echo "$t_qemu $t_ours" | awk '{printf "%.1f", $1 / $2}')" "$t_vc" \
        "$(stat -c %s ours.vmdk)" "$(stat -c %s qemu.vmdk)" "$s_vc" \
        "$t_in" "$t_qin" "$(echo "$t_qin $t_in" | awk '{printf "%.1f", $1 / $2}')"
    rm -f ours.vmdk qemu.vmdk vc.vmdk ours.raw qemu.raw
done
