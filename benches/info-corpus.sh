#!/usr/bin/env bash
# `info` and `check` (schema validation included) through the binary over a thousand
# descriptors: the envelopes other products wrote (testdata/envelopes/) over and over, each
# alone in a package folder, one process per descriptor as a user or a script runs them.
# Prints the totals and the time per descriptor; every run must end with exit 0 (info) or
# 0/2 (check: the broken ones are findings), never a crash.
#   benches/info-corpus.sh [COUNT]     default 1000
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
COUNT=${1:-1000}
cargo build --release -q -p ovf-disk
BIN=$PWD/target/release/ovf-disk
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ovf-disk-info.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
n=0
for f in testdata/envelopes/*/*.ovf; do
    mkdir -p "$WORK/$n"
    cp "$f" "$WORK/$n/x.ovf"
    n=$((n + 1))
done
now() { date +%s.%N; }
run() { # run WHAT: COUNT invocations of `ovf-disk WHAT`, round robin over the packages
    local what=$1 i=0 bad=0 t0 t1 rc
    t0=$(now)
    while [ $i -lt "$COUNT" ]; do
        rc=0
        "$BIN" $what "$WORK/$((i % n))/x.ovf" >/dev/null 2>&1 || rc=$?
        case $what:$rc in
            info*:0 | info*:1 | check*:0 | check*:1 | check*:2) ;;
            *) echo "info-corpus.sh: ovf-disk $what $WORK/$((i % n))/x.ovf exited $rc" >&2; bad=1 ;;
        esac
        i=$((i + 1))
    done
    t1=$(now)
    [ $bad -eq 0 ] || exit 1
    echo "$t0 $t1" | awk -v w="$what" -v c="$COUNT" '{printf "%-14s %d descriptors in %.2f s, %.2f ms each\n", w, c, $2 - $1, ($2 - $1) * 1000 / c}'
}
echo "$n envelopes, $COUNT runs of each command"
run info
run "info --json"
run check
