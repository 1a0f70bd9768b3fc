#!/usr/bin/env bash
# The whole test suite: installs what the tests need, then runs every test of the workspace
# (unit, integration, interop against qemu-img, the examples, doc tests), and the `vmdk` reader
# built alone (no writers, no O_DIRECT) with its own tests. The interop tests fail, never skip,
# when a reference reader is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo test --workspace --no-fail-fast "$@"
cargo test -p vmdk --no-default-features --no-fail-fast "$@"
