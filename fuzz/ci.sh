#!/usr/bin/env bash
# CI's fuzz smoke run: builds every fuzz target (so a parser change that breaks a target fails
# CI) and runs each one for a few seconds on the seeds in testdata/fuzz-seeds/, with the same
# flags as fuzz/run.sh (input size, per-input time limit, memory limit). Installs cargo-fuzz
# when it is missing. Long runs stay with fuzz/run.sh; this only proves the targets build and
# that the committed seeds and a few seconds of mutation crash nothing.
#
#   fuzz/ci.sh [SECONDS]     default 5 s per target
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
seconds=${1:-5}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz" >&2
    cargo install --locked -q cargo-fuzz
fi
# The smoke run builds with every core CI has; run.sh's default of one job is for long runs
# beside other work.
# Unoptimised (FUZZ_BUILD=--dev): the build is CI's cost here, not the few seconds of running.
FUZZ_BUILD="${FUZZ_BUILD---dev}" CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-$(nproc)}" "$here/run.sh" "$seconds"
