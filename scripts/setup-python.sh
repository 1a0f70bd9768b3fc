#!/usr/bin/env bash
# The Python packages the tests compare with, in .venv: libvmdk-python and dissect.hypervisor
# (readers of the disks we write), moto's S3 server and boto3 (the S3 endpoint of the
# remote-reading tests, and the independent client that checks what we upload). Needs python3
# with venv (scripts/setup.sh installs it). Run by scripts/setup.sh, or by scripts/test.sh beside
# the suite's build.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! .venv/bin/python -c 'import pyvmdk, dissect.hypervisor.disk.vmdk, moto, boto3, flask' >/dev/null 2>&1; then
    echo "setup: creating .venv with libvmdk-python, dissect.hypervisor, moto and boto3" >&2
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check 'libvmdk-python>=20240303' 'dissect.hypervisor>=3.15' 'moto[server]>=5' 'boto3>=1.34'
fi
.venv/bin/python -c 'import pyvmdk, dissect.hypervisor.disk.vmdk, moto, boto3, flask' || { echo "setup: the Python packages of the tests did not install" >&2; exit 1; }
