# Sourced by benches/compare.sh and benches/compare-corpus.sh: the check of an eager-zeroed
# output they share.
# eager FILE...: every block of each file is allocated and written (no hole, no extent
# preallocated but unwritten), as eager-zeroed thick needs; otherwise the script exits, naming
# the file.
eager() {
    local f alloc size
    for f; do
        alloc=$(($(stat -c %b "$f") * $(stat -c %B "$f")))
        size=$(stat -c %s "$f")
        [ "$alloc" -ge "$size" ] || { echo "${0##*/}: $f has holes ($alloc of $size bytes allocated)" >&2; exit 1; }
        if filefrag -v "$f" | grep -q unwritten; then
            echo "${0##*/}: $f has preallocated extents never written" >&2; exit 1
        fi
    done
}
