#!/usr/bin/env bash
# The whole test suite: installs what the tests need, then runs every test of the workspace
# (unit, integration, interop against qemu-img, the examples, doc tests), the Python package's
# pytest suite (scripts/python-test.sh), and the `vmdk` reader
# built alone (no writers, no O_DIRECT) with its own tests. The interop tests fail, never skip,
# when a reference reader is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
SETUP_SKIP_PYTHON=1 ./scripts/setup.sh
# The Python packages install while the suite builds (network and CPU overlap); the tests start
# once both are done.
./scripts/setup-python.sh & python_setup=$!
trap 'kill "$python_setup" 2>/dev/null || true' EXIT
cargo test --workspace --no-run -q "$@"
wait "$python_setup" || { echo "test.sh: the Python packages did not install" >&2; exit 1; }
cargo test --workspace --no-fail-fast "$@"
echo "test.sh: vmdk alone ($(date -u +%T))"
cargo test -p vmdk --no-default-features --no-fail-fast "$@"
echo "test.sh: python ($(date -u +%T))"
# The Python package: built into a fresh virtual environment, its pytest suite run.
./scripts/python-test.sh
echo "test.sh: ovf-disk alone ($(date -u +%T))"
# ovf-disk without its writers: the library and its unit tests build, and the read-only
# importer example verifies and checks an OVA the full tool wrote.
cargo test -p ovf-disk --no-default-features --lib --no-fail-fast "$@"
cargo build -q -p ovf-disk --no-default-features --example verify
work=$(mktemp -d) && trap 'rm -rf "$work"' EXIT
head -c 3M /dev/urandom > "$work/src.raw"
target/debug/ovf-disk export -q "$work/src.raw" "$work/app.ova"
target/debug/examples/verify "$work/app.ova" | tee "$work/verify.out"
grep -q '^verified, clean$' "$work/verify.out" || { echo "test.sh: the read-only example did not verify the OVA" >&2; exit 1; }
echo "read-only example: 1 passed, 0 failed"
