# Sourced by benches/compare.sh and benches/ab.sh: the test disk they time.
# test_disk FILE BYTES: FILE of BYTES bytes, 64 MiB chunks in turn of random data, text-like
# data (seq output) and zeros (holes), so about a third each.
test_disk() {
    local file=$1 bytes=$2 chunk=$((64 << 20)) i=0 off n
    truncate -s "$bytes" "$file"
    for ((off = 0; off < bytes; off += chunk)); do
        n=$(( bytes - off < chunk ? bytes - off : chunk ))
        case $((i % 3)) in
            0) head -c "$n" /dev/urandom | dd of="$file" bs=1M seek=$((off >> 20)) conv=notrunc status=none ;;
            1) head -c "$n" < <(seq 1 100000000) | dd of="$file" bs=1M seek=$((off >> 20)) conv=notrunc status=none iflag=fullblock ;;
            2) ;;
        esac
        i=$((i + 1))
    done
}
