#!/usr/bin/env bash
# The mutation test of whole images (ovf-disk/tests/mutants.rs), run long with a fresh seed:
#   scripts/mutants.sh [SECONDS] [SEED]        default one hour, a random seed (printed)
# Failing inputs are kept in target/mutants-failed/; their mutation lines go in
# testdata/mutants/FIXTURE.txt, which every run (CI's too) replays.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
seconds=${1:-3600}
seed=${2:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
echo "mutants: $seconds s, seed $seed"
MUTANTS_SECONDS=$seconds MUTANTS_SEED=$seed \
    cargo test --release -p ovf-disk --test mutants -- --nocapture
