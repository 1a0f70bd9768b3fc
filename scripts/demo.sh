#!/usr/bin/env bash
# The main job on a fresh machine: set up, build, make a small stream-optimized sample disk
# (as OVF packages carry them), inflate it to an eager-zeroed thick VMDK and to raw, and check
# the result against qemu-img's reading of the same disk.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo build --release -q -p ovf-disk
bin=target/release/ovf-disk
work=target/demo
rm -rf "$work" && mkdir -p "$work"
# 64 MiB: random data, text, and zeros, converted to a stream-optimized VMDK by qemu-img.
head -c 8M /dev/urandom > "$work/data.bin"
head -c 8M < <(yes "eager-zeroed thick disks for Fault Tolerance") >> "$work/data.bin"
truncate -s 64M "$work/data.bin"
qemu-img convert -f raw -O vmdk -o subformat=streamOptimized "$work/data.bin" "$work/sample.vmdk"
"$bin" info "$work/sample.vmdk"
"$bin" inflate "$work/sample.vmdk" "$work/sample-thick.vmdk"
"$bin" inflate "$work/sample.vmdk" "$work/sample.raw"
qemu-img compare -f vmdk -F vmdk "$work/sample.vmdk" "$work/sample-thick.vmdk"
[ "$(qemu-img info -f vmdk --output=json "$work/sample.vmdk" | grep -m1 virtual-size)" = "$(qemu-img info -f vmdk --output=json "$work/sample-thick.vmdk" | grep -m1 virtual-size)" ] || { echo "demo: sizes differ" >&2; exit 1; }
ours=$(sha256sum < "$work/sample.raw" | cut -d' ' -f1)
theirs=$(qemu-img convert -f vmdk -O raw "$work/sample.vmdk" "$work/qemu.raw" && sha256sum < "$work/qemu.raw" | cut -d' ' -f1)
[ "$ours" = "$theirs" ] || { echo "demo: sha256 differs from qemu-img's reading" >&2; exit 1; }
echo "demo: $work/sample-thick.vmdk (+ -flat.vmdk) and $work/sample.raw match qemu-img's reading (sha256 $ours)"
du -k --apparent-size "$work/sample.raw" | sed 's/^/demo: apparent KiB: /'
du -k "$work/sample.raw" | sed 's/^/demo: allocated KiB: /'
