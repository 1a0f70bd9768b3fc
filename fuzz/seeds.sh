#!/usr/bin/env bash
# Generates seed inputs with qemu-img and qemu-io into fuzz/corpus/<target>/:
# small images (1 and 4 MiB) of every VMDK subformat qemu writes, 64 KiB of 0xab written at
# offset 0, plus their descriptors (separate ones as they are, embedded ones cut out).
#
#   descriptor     text descriptors and embedded descriptors, a delta link's included
#   sparse_header  every sparse extent file (monolithicSparse, streamOptimized, 2 GiB extents,
#                  zeroed-grain, delta)
#   disk           every file a user could open on its own: sparse images and descriptors
#   stream         the stream-optimized images
#   ova            an OVA of two of the images, made by ovf-disk export (when the release
#                  binary is built: cargo build --release -p ovf-disk)
set -euo pipefail

command -v qemu-img >/dev/null && command -v qemu-io >/dev/null || {
    echo "qemu-img and qemu-io are needed (apt-get install qemu-utils)" >&2
    exit 1
}

here=$(cd "$(dirname "$0")" && pwd)
corpus="$here/corpus"
mkdir -p "$corpus/descriptor" "$corpus/sparse_header" "$corpus/disk" "$corpus/stream" "$corpus/ova"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

write() {
    qemu-io -f vmdk "$@" >/dev/null
}

# The text of an embedded descriptor: the sectors the header names, without the NUL padding.
embedded_descriptor() {
    python3 - "$1" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()
offset, size = struct.unpack_from("<QQ", data, 28)
if offset:
    sys.stdout.buffer.write(data[offset * 512:(offset + size) * 512].split(b"\0")[0])
PY
}

subformats=(monolithicSparse monolithicFlat twoGbMaxExtentSparse twoGbMaxExtentFlat streamOptimized)
for size in 1M 4M; do
    for sub in "${subformats[@]}"; do
        name="$sub-$size"
        img="$work/$name.vmdk"
        qemu-img create -q -f vmdk -o "subformat=$sub" "$img" "$size"
        write -c "write -P 0xab 0 64k" "$img"
        case $sub in
            monolithicSparse | streamOptimized)
                cp "$img" "$corpus/sparse_header/$name.vmdk"
                cp "$img" "$corpus/disk/$name.vmdk"
                [[ $sub == streamOptimized ]] && cp "$img" "$corpus/stream/$name.vmdk"
                embedded_descriptor "$img" >"$corpus/descriptor/$name.txt"
                ;;
            twoGbMaxExtentSparse)
                cp "$work/$name-s001.vmdk" "$corpus/sparse_header/$name-s001.vmdk"
                cp "$img" "$corpus/descriptor/$name.txt"
                cp "$img" "$corpus/disk/$name.vmdk"
                ;;
            *)
                cp "$img" "$corpus/descriptor/$name.txt"
                cp "$img" "$corpus/disk/$name.vmdk"
                ;;
        esac
    done
done

# Zeroed-grain entries (version 2, flag bit 2): data, then a zeroed grain.
img="$work/zeroed-grain.vmdk"
qemu-img create -q -f vmdk -o subformat=monolithicSparse,zeroed_grain=on "$img" 4M
write -c "write -P 0xab 0 64k" -c "write -z 1M 64k" "$img"
cp "$img" "$corpus/sparse_header/zeroed-grain-4M.vmdk"
cp "$img" "$corpus/disk/zeroed-grain-4M.vmdk"

# A delta link over a monolithicSparse base: parentCID and parentFileNameHint.
base="$work/base.vmdk"
child="$work/child.vmdk"
qemu-img create -q -f vmdk "$base" 1M
write -c "write -P 0xab 0 64k" "$base"
qemu-img create -q -f vmdk -b base.vmdk -F vmdk "$child"
write -c "write -P 0xcd 64k 64k" "$child"
cp "$child" "$corpus/sparse_header/delta-1M.vmdk"
cp "$child" "$corpus/disk/delta-1M.vmdk"
embedded_descriptor "$child" >"$corpus/descriptor/delta-1M.txt"

echo "seeds: $(ls "$corpus/descriptor" | wc -l) descriptor, $(ls "$corpus/sparse_header" | wc -l) sparse_header, $(ls "$corpus/disk" | wc -l) disk"

# An OVA holding a stream-optimized and a sparse disk, exported by ovf-disk itself.
bin="$here/../target/release/ovf-disk"
if [[ -x $bin ]]; then
    "$bin" export -q "$work/streamOptimized-1M.vmdk" "$work/monolithicSparse-1M.vmdk" "$work/pkg.ova"
    cp "$work/pkg.ova" "$corpus/ova/export-1M.ova"
fi
