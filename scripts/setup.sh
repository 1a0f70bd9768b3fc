#!/usr/bin/env bash
# Installs what the tool's tests and demo need on a fresh Debian machine, and is safe to run
# again: qemu-utils (qemu-img, qemu-io), the reference the tests compare against, openssl, and a Python
# virtual environment in .venv with the independent VMDK readers from PyPI (libvmdk-python,
# dissect.hypervisor) that read back what we write.
set -euo pipefail
cd "$(dirname "$0")/.."
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
apt_updated=""
apt_install() {
    [ -n "$apt_updated" ] || { $sudo apt-get update -qq; apt_updated=1; }
    echo "setup: installing $*" >&2
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}
command -v qemu-img >/dev/null 2>&1 && command -v qemu-io >/dev/null 2>&1 || apt_install qemu-utils
command -v python3 >/dev/null 2>&1 || apt_install python3 python3-venv
# openssl makes the keys and certificates of the signed-package tests; tar and sha256sum read
# our OVAs back.
command -v openssl >/dev/null 2>&1 || apt_install openssl
command -v tar >/dev/null 2>&1 || apt_install tar
# libvirt's schema check (virt-xml-validate, which runs xmllint) and its test driver (virsh)
# accept the domains `import --emit libvirt` writes; xorriso reads the OVF environment ISOs.
command -v virsh >/dev/null 2>&1 && command -v virt-xml-validate >/dev/null 2>&1 || apt_install libvirt-clients
command -v xmllint >/dev/null 2>&1 || apt_install libxml2-utils
# libxml2-dev: `check` validates envelopes against DMTF's schema with libxml2, which the
# default build links (ovf's `schema` feature).
dpkg -s libxml2-dev >/dev/null 2>&1 || apt_install libxml2-dev
command -v xorriso >/dev/null 2>&1 || apt_install xorriso
# nginx (nginx-light) serves disks over HTTP(S) with ranges, TLS and basic authentication to
# the remote-reading tests (ovf-disk/tests/remote.rs), which start it themselves.
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || apt_install nginx-light
# nbdinfo and nbdcopy (libnbd-bin): the NBD clients the tests of `serve` run.
command -v nbdinfo >/dev/null 2>&1 && command -v nbdcopy >/dev/null 2>&1 || apt_install libnbd-bin
command -v ss >/dev/null 2>&1 || apt_install iproute2
# strace: the Python tests prove `inspect` never opens a file a descriptor names.
command -v strace >/dev/null 2>&1 || apt_install strace
# python3-venv: the Python package's tests build it into a fresh virtual environment.
python3 -c 'import ensurepip' >/dev/null 2>&1 || apt_install python3-venv
# losetup: loop devices stand in for block-mode volumes in the block-device tests.
command -v losetup >/dev/null 2>&1 || apt_install mount
# The boot tests (ovf-disk/tests/boot.rs): libvirt's daemon with its QEMU driver, QEMU, OVMF
# (UEFI), SYSLINUX (BIOS), and the tools that build the tiny bootable disk (a FAT32 partition
# written with mtools, an MBR partition table, a cpio initramfs).
boot_tools() {
    command -v libvirtd && command -v qemu-system-x86_64 && [ -f /usr/share/OVMF/OVMF_CODE_4M.fd ] \
        && command -v syslinux && [ -f /usr/lib/syslinux/mbr/mbr.bin ] && command -v mcopy \
        && command -v mkfs.vfat && command -v sfdisk && command -v cpio
}
if ! boot_tools >/dev/null 2>&1; then
    # QEMU's emulator from the release the machine's qemu-img comes from: bookworm-backports'
    # 10.x on these machines (installing bookworm's 7.2 emulator would take qemu-utils back to
    # 7.2, whose quirks the interop tests do not expect).
    qemu_version=$(dpkg-query -W -f='${Version}' qemu-utils 2>/dev/null || true)
    from=()
    if [[ $qemu_version == *bpo12* ]]; then
        if ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
            echo "deb http://deb.debian.org/debian bookworm-backports main" \
                | $sudo tee /etc/apt/sources.list.d/ovf-disk-backports.list >/dev/null
            apt_updated=""
        fi
        from=(-t bookworm-backports)
    fi
    apt_install --no-install-recommends "${from[@]}" qemu-system-x86
    apt_install --no-install-recommends libvirt-daemon-system libvirt-daemon-driver-qemu ovmf \
        syslinux syslinux-common mtools dosfstools fdisk cpio
    boot_tools >/dev/null || { echo "setup: the boot tests' tools did not install" >&2; exit 1; }
    [ "$(dpkg-query -W -f='${Version}' qemu-utils)" = "$qemu_version" ] \
        || { echo "setup: installing QEMU changed qemu-utils from $qemu_version" >&2; exit 1; }
fi
# /dev/kvm as udev leaves it on a host (group kvm, which libvirt's QEMU user is in): a device
# only root may open makes libvirtd probe QEMU again on every define (a minute each).
if [ -c /dev/kvm ] && [ "$(stat -c %G /dev/kvm)" != kvm ] && getent group kvm >/dev/null; then
    $sudo chgrp kvm /dev/kvm && $sudo chmod 660 /dev/kvm
fi
# filefrag shows whether an eager-zeroed output has extents preallocated but never written.
command -v filefrag >/dev/null 2>&1 || apt_install e2fsprogs
command -v cargo >/dev/null || { echo "setup: cargo (Rust) is required" >&2; exit 1; }

# The tests' Python packages (scripts/setup-python.sh); scripts/test.sh installs them while the
# suite builds, so it skips them here.
[ "${SETUP_SKIP_PYTHON:-}" = 1 ] || ./scripts/setup-python.sh
command -v qemu-img >/dev/null || { echo "setup: qemu-img still missing" >&2; exit 1; }
