#!/usr/bin/env bash
# Times ovf-disk against qemu-img on the same image, in one run, and prints the ratio.
#   benches/compare.sh [SIZE] [ROUNDS]     SIZE like 2G (default), 512M; ROUNDS default 3
# The test disk: 64 MiB chunks in turn of random data, text-like data (seq output) and zeros
# (holes), so about a third each. Every timed command must succeed, and every output is checked
# before its time counts: sha256 against qemu-img's raw reading of the source, and for the
# eager-zeroed cases no hole in any file written (the dd row: its size, no hole). Both tools'
# outputs are flushed to the device inside the time (ours with fsync at commit; qemu-img's and
# dd's with `sync` on every file written, a thick VMDK's -flat.vmdk included).
# Three rows compare us with ourselves or the device: a chain of 3 sparse deltas over a flat
# base against the monolithicSparse disk of the same contents (the chain should cost at most
# 1.3x), an OVA of 4 such disks imported side by side against one by one, and stream-optimized
# -> raw against dd writing zeros with O_DIRECT (the write limit). The last rows write the
# formats a migration's target takes (qcow2, compressed qcow2, dynamic VHD, VHDX), each checked
# by qemu-img's reading of it.
set -euo pipefail
cd "$(dirname "$0")/.."
. benches/eager.sh
. benches/testdisk.sh
SIZE=${1:-2G}
ROUNDS=${2:-3}
./scripts/setup.sh >/dev/null
SETUP_SKIP_PYTHON=1 cargo build --release -q -p ovf-disk
BIN=$PWD/target/release/ovf-disk
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ovf-disk-compare.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

bytes=$(numfmt --from=iec "$SIZE")
test_disk src.raw "$bytes"
echo "test disk: $SIZE ($bytes bytes): random, text-like and zero chunks of 64 MiB" >&2
"$BIN" convert -q src.raw so.vmdk --to streamOptimized
"$BIN" convert -q src.raw sp.vmdk --to monolithicSparse
want=$(sha256sum < src.raw | cut -d' ' -f1)

# The chain: a flat base holding the first quarter of the contents, and 3 monolithicSparse
# deltas made by qemu-img, each given the next quarter by qemu-io; the top delta reads as
# src.raw.
quarter=$(( (bytes / 4) >> 20 ))
cp src.raw stage.raw
dd if=/dev/zero of=stage.raw bs=1M seek=$quarter count=$((3 * quarter)) conv=notrunc status=none
"$BIN" convert -q stage.raw base.vmdk --to monolithicFlat
rm -f stage.raw
parent=base.vmdk
for q in 1 2 3; do
    qemu-img create -q -f vmdk -o subformat=monolithicSparse -b "$parent" -F vmdk "delta$q.vmdk" "$bytes"
    dd if=src.raw of=part.bin bs=1M skip=$((q * quarter)) count=$quarter status=none
    qemu-io -f vmdk -c "write -q -s part.bin $(( (q * quarter) << 20 )) $((quarter << 20))" "delta$q.vmdk"
    parent=delta$q.vmdk
done
rm -f part.bin
# The package: 4 disks of these contents.
for n in 1 2 3 4; do cp so.vmdk "disk$n.vmdk"; done
"$BIN" export -q disk1.vmdk disk2.vmdk disk3.vmdk disk4.vmdk four.ova
rm -f disk?.vmdk

now() { date +%s.%N; }
# outputs OUT: the files a write to OUT made (a thick VMDK's descriptor and its flat extent).
outputs() {
    if [ -d "$1" ]; then find "$1" -type f; return; fi
    echo "$1"
    if [[ $1 == *.vmdk && -e ${1%.vmdk}-flat.vmdk ]]; then echo "${1%.vmdk}-flat.vmdk"; fi
}
# time_cmd OUT CMD...: runs CMD, which must succeed, and prints the seconds it took. OUT (and
# its flat extent) are removed first.
time_cmd() {
    local out=$1; shift
    rm -rf "$out" "${out%.vmdk}-flat.vmdk"
    local t0 t1
    t0=$(now)
    "$@" >/dev/null || { echo "compare: failed: $*" >&2; return 1; }
    t1=$(now)
    echo "$t0 $t1" | awk '{printf "%.3f", $2 - $1}'
}
# qsync OUT CMD...: runs CMD, then flushes every file it wrote to OUT to the device (ours fsync
# before their rename; qemu-img and dd are flushed here, inside the time).
qsync() {
    local out=$1; shift
    "$@" || return 1
    # shellcheck disable=SC2046
    sync $(outputs "$out")
}
# verify FILE FORMAT: sha256 of what qemu-img reads equals the source's.
verify() {
    local got
    got=$(qemu-img convert -f "$2" -O raw "$1" verify.raw && sha256sum < verify.raw | cut -d' ' -f1)
    rm -f verify.raw
    [ "$got" = "$want" ] || { echo "compare: $1 differs from the source (sha256 $got)" >&2; exit 1; }
}
# check KIND OUT: what a timed output must be. eager: qemu-img reads the source's bytes and no
# file has holes; stream: qemu-img reads the source's bytes; zeros: $bytes bytes, no holes;
# folder: 4 raw disks in OUT, each eager; qcow2, vpc, vhdx: qemu-img reads the source's bytes
# from an image of that format.
check_output() {
    local kind=$1 out=$2 f
    case $kind in
        folder) [ "$(find "$out" -name '*.raw' | wc -l)" -eq 4 ] || { echo "compare: $out lacks disks" >&2; exit 1; }
            for f in "$out"/*.raw; do check_output eager "$f"; done ;;
        eager | stream) verify "$out" "$([[ $out == *.vmdk ]] && echo vmdk || echo raw)" ;;&
        eager) # shellcheck disable=SC2046
            eager $(outputs "$out") ;;
        zeros) [ "$(stat -c %s "$out")" -eq "$bytes" ] || { echo "compare: $out is not $bytes bytes" >&2; exit 1; }
            eager "$out" ;;
        qcow2 | vpc | vhdx) verify "$out" "$kind" ;;
    esac
}
stats() { # min and median of the arguments
    printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {m=a[int((NR+1)/2)]; printf "%.2f %.2f", a[1], m}'
}

declare -A RES
# run_case NAME OURS_KIND THEIRS_KIND ours_out ours_cmd... -- theirs_out theirs_cmd...
run_case() {
    local name=$1 ours_kind=$2 theirs_kind=$3; shift 3
    local ours_out=$1; shift
    local ours=() theirs=()
    while [ "$1" != "--" ]; do ours+=("$1"); shift; done
    shift
    local theirs_out=$1; shift
    theirs=("$@")
    local to=() tt=() t
    for ((r = 0; r < ROUNDS; r++)); do
        t=$(time_cmd "$ours_out" "${ours[@]}") || exit 1
        to+=("$t")
        check_output "$ours_kind" "$ours_out"
        t=$(time_cmd "$theirs_out" qsync "$theirs_out" "${theirs[@]}") || exit 1
        tt+=("$t")
        check_output "$theirs_kind" "$theirs_out"
    done
    RES[$name]="$(stats "${to[@]}") $(stats "${tt[@]}")"
    echo "done: $name (ours ${to[*]}; theirs ${tt[*]})" >&2
}

run_case "stream-optimized -> eager-zeroed raw" eager eager out.raw "$BIN" inflate -q so.vmdk out.raw -- \
    q.raw qemu-img convert -f vmdk -O raw -S 0 so.vmdk q.raw
run_case "monolithic sparse -> eager-zeroed raw" eager eager out.raw "$BIN" inflate -q sp.vmdk out.raw -- \
    q.raw qemu-img convert -f vmdk -O raw -S 0 sp.vmdk q.raw
run_case "sparse -> thick VMDK (monolithicFlat)" eager eager out.vmdk "$BIN" inflate -q sp.vmdk out.vmdk -- \
    q.vmdk qemu-img convert -f vmdk -O vmdk -o subformat=monolithicFlat -S 0 sp.vmdk q.vmdk
run_case "raw -> stream-optimized" stream stream out.vmdk "$BIN" convert -q src.raw out.vmdk --to streamOptimized -- \
    q.vmdk qemu-img convert -f raw -O vmdk -o subformat=streamOptimized src.raw q.vmdk
ours_size=$(stat -c %s out.vmdk); theirs_size=$(stat -c %s q.vmdk)
run_case "sparse -> raw vs dd of zeros (device limit)" eager zeros out.raw "$BIN" inflate -q sp.vmdk out.raw -- \
    dd.raw dd if=/dev/zero of=dd.raw bs=8M count=$((bytes / (8 << 20))) status=none
run_case "stream -> raw vs dd oflag=direct" eager zeros out.raw "$BIN" inflate -q so.vmdk out.raw -- \
    dd.raw dd if=/dev/zero of=dd.raw bs=8M count=$((bytes / (8 << 20))) oflag=direct status=none
run_case "3 deltas over flat vs monolithicSparse (ours)" eager eager out.raw "$BIN" inflate -q delta3.vmdk out.raw -- \
    sp.raw "$BIN" inflate -q sp.vmdk sp.raw
run_case "4-disk OVA: at once vs one by one (ours)" folder folder outdir "$BIN" import -q --format raw four.ova outdir -- \
    one "$BIN" import -q --format raw --disks-at-once 1 four.ova one
# The formats of a migration's target (issue 29; benches/qcow2.sh and vhd.sh have more rows).
run_case "stream-optimized -> qcow2" qcow2 qcow2 out.qcow2 "$BIN" convert -q so.vmdk out.qcow2 --to qcow2 -- \
    q.qcow2 qemu-img convert -f vmdk -O qcow2 so.vmdk q.qcow2
run_case "sparse -> qcow2" qcow2 qcow2 out.qcow2 "$BIN" convert -q sp.vmdk out.qcow2 --to qcow2 -- \
    q.qcow2 qemu-img convert -f vmdk -O qcow2 sp.vmdk q.qcow2
run_case "raw -> compressed qcow2" qcow2 qcow2 out.qcow2 "$BIN" convert -q src.raw out.qcow2 --to qcow2 --compress -- \
    q.qcow2 qemu-img convert -c -f raw -O qcow2 src.raw q.qcow2
c_ours=$(stat -c %s out.qcow2); c_theirs=$(stat -c %s q.qcow2)
run_case "sparse -> dynamic VHD" vpc vpc out.vhd "$BIN" convert -q sp.vmdk out.vhd --to vhd -- \
    q.vhd qemu-img convert -f vmdk -O vpc -o subformat=dynamic sp.vmdk q.vhd
run_case "sparse -> VHDX" vhdx vhdx out.vhdx "$BIN" convert -q sp.vmdk out.vhdx --to vhdx -- \
    q.vhdx qemu-img convert -f vmdk -O vhdx sp.vmdk q.vhdx

printf '\n%-46s %9s %9s %9s %9s %8s\n' "case ($SIZE, $ROUNDS rounds; seconds)" "ours min" "ours med" "them min" "them med" "ratio"
for name in "stream-optimized -> eager-zeroed raw" "monolithic sparse -> eager-zeroed raw" "sparse -> thick VMDK (monolithicFlat)" "raw -> stream-optimized" "sparse -> raw vs dd of zeros (device limit)" "stream -> raw vs dd oflag=direct" "3 deltas over flat vs monolithicSparse (ours)" "4-disk OVA: at once vs one by one (ours)" "stream-optimized -> qcow2" "sparse -> qcow2" "raw -> compressed qcow2" "sparse -> dynamic VHD" "sparse -> VHDX"; do
    read -r omin omed tmin tmed <<<"${RES[$name]}"
    printf '%-46s %9s %9s %9s %9s %7.2fx\n' "$name" "$omin" "$omed" "$tmin" "$tmed" "$(echo "$tmed $omed" | awk '{print $1 / $2}')"
done
printf '\nratio = their median / our median (above 1: we are faster; for dd, below 1 means slower than the device;\n'
printf 'for the chain, our chain against our sparse disk: at least 0.77 is within 1.3x; for the OVA, at once against one by one)\n'
printf 'stream-optimized output size: ours %s bytes, qemu-img %s bytes (%.3f of theirs)\n' "$ours_size" "$theirs_size" "$(echo "$ours_size $theirs_size" | awk '{print $1 / $2}')"
printf 'compressed qcow2 size: ours %s bytes, qemu-img -c %s bytes (%.3f of theirs)\n' "$c_ours" "$c_theirs" "$(echo "$c_ours $c_theirs" | awk '{print $1 / $2}')"
