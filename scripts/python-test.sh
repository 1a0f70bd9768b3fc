#!/usr/bin/env bash
# The Python package (python/, issue 31): `pip install ./python` into a fresh virtual
# environment (maturin builds the abi3 wheel; the dev profile here, as the rest of the suite, so
# it reuses the workspace's build), the peers its tests compare with (dissect.hypervisor,
# libvmdk-python), then pytest over python/tests. Needs the ovf-disk command built
# (target/debug/ovf-disk): the tests compare the package's answers with the command's.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v strace >/dev/null || { echo "python-test: strace is missing (scripts/setup.sh installs it)" >&2; exit 1; }
[ -x target/debug/ovf-disk ] || cargo build -q -p ovf-disk
venv=target/python-venv
rm -rf "$venv"
python3 -m venv "$venv"
pip=("$venv/bin/pip" install -q --disable-pip-version-check)
"${pip[@]}" pytest 'dissect.hypervisor>=3.15' 'libvmdk-python>=20240303'
# The same route as a user's `pip install ./python`, with the dev profile.
CARGO_TARGET_DIR="$PWD/target" "${pip[@]}" --config-settings=build-args='--profile dev' ./python
"$venv/bin/python" -c 'import ovf_disk, sys; print("python-test: ovf_disk", ovf_disk.__version__, "from", ovf_disk.__file__, file=sys.stderr)'
cd python/tests
OVF_DISK_BIN="$PWD/../../target/debug/ovf-disk" exec "../../$venv/bin/python" -m pytest -q -p no:cacheprovider "$@"
