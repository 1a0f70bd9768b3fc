#!/usr/bin/env bash
# Times ovf-disk against qemu-img on the same image, in one run, and prints the ratio.
#   benches/compare.sh [SIZE] [ROUNDS]     SIZE like 2G (default), 512M; ROUNDS default 3
# The test disk: 64 MiB chunks in turn of random data, text-like data (seq output) and zeros
# (holes), so about a third each. Every output is checked (sha256 against qemu-img's raw reading
# of the same input) before its time is printed. Both tools' outputs are flushed to the device
# (ours with fsync at commit, qemu-img's with `sync FILE`), so the times are comparable.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZE=${1:-2G}
ROUNDS=${2:-3}
./scripts/setup.sh >/dev/null
SETUP_SKIP_PYTHON=1 cargo build --release -q -p ovf-disk
BIN=$PWD/target/release/ovf-disk
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ovf-disk-compare.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"

bytes=$(numfmt --from=iec "$SIZE")
chunk=$((64 << 20))
truncate -s "$bytes" src.raw
i=0
for ((off = 0; off < bytes; off += chunk)); do
    n=$(( bytes - off < chunk ? bytes - off : chunk ))
    case $((i % 3)) in
        0) head -c "$n" /dev/urandom | dd of=src.raw bs=1M seek=$((off >> 20)) conv=notrunc status=none ;;
        1) head -c "$n" < <(seq 1 100000000) | dd of=src.raw bs=1M seek=$((off >> 20)) conv=notrunc status=none iflag=fullblock ;;
        2) ;;
    esac
    i=$((i + 1))
done
echo "test disk: $SIZE ($bytes bytes): random, text-like and zero chunks of 64 MiB" >&2
"$BIN" convert -q src.raw so.vmdk --to streamOptimized
"$BIN" convert -q src.raw sp.vmdk --to monolithicSparse
want=$(sha256sum < src.raw | cut -d' ' -f1)

now() { date +%s.%N; }
# time_cmd OUT CMD...: runs CMD, prints seconds. OUT is removed first.
time_cmd() {
    local out=$1; shift
    rm -f "$out" "${out%.vmdk}-flat.vmdk"
    local t0 t1
    t0=$(now); "$@" >/dev/null; t1=$(now)
    echo "$t0 $t1" | awk '{printf "%.3f", $2 - $1}'
}
# verify FILE FORMAT: sha256 of what qemu-img reads equals the source's.
verify() {
    local got
    got=$(qemu-img convert -f "$2" -O raw "$1" verify.raw && sha256sum < verify.raw | cut -d' ' -f1)
    rm -f verify.raw
    [ "$got" = "$want" ] || { echo "compare: $1 differs from the source (sha256 $got)" >&2; exit 1; }
}
stats() { # min and median of the arguments
    printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {m=a[int((NR+1)/2)]; printf "%.2f %.2f", a[1], m}'
}
qsync() { "$@" && sync "${@: -1}"; }

declare -A RES
run_case() { # name ours_out ours_cmd... -- theirs_out theirs_cmd...
    local name=$1; shift
    local ours_out=$1; shift
    local ours=() theirs=()
    while [ "$1" != "--" ]; do ours+=("$1"); shift; done
    shift
    local theirs_out=$1; shift
    theirs=("$@")
    local to=() tt=()
    for ((r = 0; r < ROUNDS; r++)); do
        to+=("$(time_cmd "$ours_out" "${ours[@]}")")
        verify "$ours_out" "$([[ $ours_out == *.vmdk ]] && echo vmdk || echo raw)"
        if [ "$theirs_out" != - ]; then
            tt+=("$(time_cmd "$theirs_out" qsync "${theirs[@]}")")
            verify "$theirs_out" "$([[ $theirs_out == *.vmdk ]] && echo vmdk || echo raw)"
        else
            tt+=("$(time_cmd /dev/null "${theirs[@]}")")
        fi
    done
    RES[$name]="$(stats "${to[@]}") $(stats "${tt[@]}")"
    echo "done: $name (ours ${to[*]}; theirs ${tt[*]})" >&2
}

run_case "stream-optimized -> eager-zeroed raw" out.raw "$BIN" inflate -q so.vmdk out.raw -- \
    q.raw qemu-img convert -f vmdk -O raw -S 0 so.vmdk q.raw
run_case "monolithic sparse -> eager-zeroed raw" out.raw "$BIN" inflate -q sp.vmdk out.raw -- \
    q.raw qemu-img convert -f vmdk -O raw -S 0 sp.vmdk q.raw
run_case "sparse -> thick VMDK (monolithicFlat)" out.vmdk "$BIN" inflate -q sp.vmdk out.vmdk -- \
    q.vmdk qemu-img convert -f vmdk -O vmdk -o subformat=monolithicFlat -S 0 sp.vmdk q.vmdk
run_case "raw -> stream-optimized" out.vmdk "$BIN" convert -q src.raw out.vmdk --to streamOptimized -- \
    q.vmdk qemu-img convert -f raw -O vmdk -o subformat=streamOptimized src.raw q.vmdk
ours_size=$(stat -c %s out.vmdk); theirs_size=$(stat -c %s q.vmdk)
run_case "sparse -> raw vs dd of zeros (device limit)" out.raw "$BIN" inflate -q sp.vmdk out.raw -- \
    - dd if=/dev/zero of=dd.raw bs=8M count=$((bytes / (8 << 20))) conv=fsync status=none

printf '\n%-46s %9s %9s %9s %9s %8s\n' "case ($SIZE, $ROUNDS rounds; seconds)" "ours min" "ours med" "them min" "them med" "ratio"
for name in "stream-optimized -> eager-zeroed raw" "monolithic sparse -> eager-zeroed raw" "sparse -> thick VMDK (monolithicFlat)" "raw -> stream-optimized" "sparse -> raw vs dd of zeros (device limit)"; do
    read -r omin omed tmin tmed <<<"${RES[$name]}"
    printf '%-46s %9s %9s %9s %9s %7.2fx\n' "$name" "$omin" "$omed" "$tmin" "$tmed" "$(echo "$tmed $omed" | awk '{print $1 / $2}')"
done
printf '\nratio = their median / our median (above 1: we are faster; for dd, below 1 means slower than the device)\n'
printf 'stream-optimized output size: ours %s bytes, qemu-img %s bytes (%.3f of theirs)\n' "$ours_size" "$theirs_size" "$(echo "$ours_size $theirs_size" | awk '{print $1 / $2}')"
