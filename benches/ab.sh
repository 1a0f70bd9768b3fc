#!/usr/bin/env bash
# Times two builds of ovf-disk against each other in one run (a change's "before" and "after"),
# alternating them round by round on the same inputs, and prints each case's medians and ratio.
#   benches/ab.sh REV [SIZE] [ROUNDS]     REV: the git revision to compare the work tree with
#                                         (built in a temporary worktree); SIZE default 1G;
#                                         ROUNDS default 3
# AB_OLD=PATH uses an ovf-disk binary already built at REV instead of building it.
# Cases: raw -> streamOptimized (convert), streamOptimized -> eager raw and thick VMDK
# (inflate), an OVA of that disk imported, and info + check of the stream file. Every output
# is checked by sha256 against the source before its time counts, and flushed inside the time
# (our commit fsyncs).
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
. benches/testdisk.sh
REV=${1:?usage: benches/ab.sh REV [SIZE] [ROUNDS]}
SIZE=${2:-1G}
ROUNDS=${3:-3}
root=$PWD
./scripts/setup.sh >/dev/null
cargo build --release -q -p ovf-disk
NEW=$root/target/release/ovf-disk
old_tree=$(mktemp -d "${TMPDIR:-/tmp}/ovf-disk-ab-old.XXXXXX")
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ovf-disk-ab.XXXXXX")
trap 'git -C "$root" worktree remove --force "$old_tree" >/dev/null 2>&1 || rm -rf "$old_tree"; rm -rf "$WORK"' EXIT
if [ -n "${AB_OLD:-}" ]; then
    OLD=$AB_OLD
else
    git worktree add -q --detach "$old_tree" "$REV"
    (cd "$old_tree" && CARGO_TARGET_DIR="$root/target/ab-old" cargo build --release -q -p ovf-disk)
    OLD=$root/target/ab-old/release/ovf-disk
fi
cd "$WORK"

bytes=$(numfmt --from=iec "$SIZE")
test_disk src.raw "$bytes"
want=$(sha256sum < src.raw | cut -d' ' -f1)
"$NEW" convert -q src.raw so.vmdk --to streamOptimized
"$NEW" export -q so.vmdk app.ova
echo "test disk: $SIZE, random, text-like and zero chunks of 64 MiB; $ROUNDS rounds, old = $REV" >&2

now() { date +%s.%N; }
sha() { sha256sum < "$1" | cut -d' ' -f1; }
check() { [ "$(sha "$1")" = "$want" ] || { echo "ab.sh: $2: $1 differs from the source" >&2; exit 1; }; }
# case NAME: runs "$bin" for the case into out.*, checks it, prints the seconds.
run_case() {
    local bin=$1 name=$2 t0 t1
    rm -rf out.* out-* imported
    t0=$(now)
    case $name in
        convert) "$bin" convert -q src.raw out.vmdk --to streamOptimized ;;
        inflate-raw) "$bin" inflate -q so.vmdk out.raw ;;
        inflate-thick) "$bin" inflate -q so.vmdk out.vmdk ;;
        import) "$bin" import -q app.ova imported ;;
        info-check) "$bin" info so.vmdk >/dev/null && "$bin" check so.vmdk >/dev/null ;;
    esac
    t1=$(now)
    case $name in
        convert) qemu-img convert -f vmdk -O raw out.vmdk out.check.raw && check out.check.raw "$bin $name" ;;
        inflate-raw) check out.raw "$bin $name" ;;
        inflate-thick) check out-flat.vmdk "$bin $name" ;;
        import) check imported/*-flat.vmdk "$bin $name" ;;
    esac
    echo "$t0 $t1" | awk '{printf "%.3f", $2 - $1}'
}
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR] = $1} END {printf "%.3f", a[int((NR + 1) / 2)]}'; }

printf '%-14s %10s %10s %8s\n' case old new new/old
for name in convert inflate-raw inflate-thick import info-check; do
    olds=() news=()
    for ((r = 0; r < ROUNDS; r++)); do
        if ((r % 2 == 0)); then
            olds+=("$(run_case "$OLD" "$name")"); news+=("$(run_case "$NEW" "$name")")
        else
            news+=("$(run_case "$NEW" "$name")"); olds+=("$(run_case "$OLD" "$name")")
        fi
    done
    o=$(median "${olds[@]}") n=$(median "${news[@]}")
    printf '%-14s %10s %10s %8s\n' "$name" "$o" "$n" "$(echo "$n $o" | awk '{printf "%.2f", $1 / $2}')"
done
