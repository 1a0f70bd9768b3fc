#!/usr/bin/env bash
# The main job on a fresh machine: set up, build, make a small stream-optimized sample disk
# (as OVF packages carry them), inflate it to an eager-zeroed thick VMDK and to raw, and check
# the result against qemu-img's reading of the same disk.
set -euo pipefail
cd "$(dirname "$0")/.."
# The demo needs no Python: the tests' packages install with the suite (scripts/test.sh).
SETUP_SKIP_PYTHON=1 ./scripts/setup.sh
# The dev profile (dependencies optimised, see Cargo.toml): what the test suite builds too, so
# a machine that runs both compiles the dependencies once. `cargo build --release` for real
# disks.
cargo build -q -p ovf-disk
bin=target/debug/ovf-disk
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
# Sizes are read with a JSON parser, never by position in the text: qemu-img prints the file
# layer's `virtual-size` (under "children") before the disk's own, and our `info --json` nests
# the chain's links the same way.
json() { python3 -c 'import json, sys; v = json.load(sys.stdin)
for k in sys.argv[1:]: v = v[k]
print(v)' "$@"; }
want=$(stat -c %s "$work/data.bin")
for f in sample.vmdk sample-thick.vmdk; do
    theirs=$(qemu-img info -f vmdk --output=json "$work/$f" | json virtual-size)
    ours=$("$bin" info --json "$work/$f" | json capacity)
    [ "$theirs" = "$want" ] && [ "$ours" = "$want" ] || {
        echo "demo: $f: virtual size $theirs (qemu-img), capacity $ours (ours), source $want bytes" >&2
        exit 1
    }
done
[ "$(stat -c %s "$work/sample.raw")" = "$want" ] || { echo "demo: sample.raw is not $want bytes" >&2; exit 1; }
ours=$(sha256sum < "$work/sample.raw" | cut -d' ' -f1)
theirs=$(qemu-img convert -f vmdk -O raw "$work/sample.vmdk" "$work/qemu.raw" && sha256sum < "$work/qemu.raw" | cut -d' ' -f1)
[ "$ours" = "$theirs" ] || { echo "demo: sha256 differs from qemu-img's reading" >&2; exit 1; }
# Eager-zeroed: every block of the thick extent and of the raw image allocated and written.
. benches/eager.sh
eager "$work/sample-thick-flat.vmdk" "$work/sample.raw"
echo "demo: $work/sample-thick.vmdk (+ -flat.vmdk) and $work/sample.raw match qemu-img's reading (sha256 $ours)"
du -k --apparent-size "$work/sample.raw" | sed 's/^/demo: apparent KiB: /'
du -k "$work/sample.raw" | sed 's/^/demo: allocated KiB: /'
