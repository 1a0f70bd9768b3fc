#!/usr/bin/env bash
# Installs what the tool's tests and demo need on a fresh Debian machine: qemu-utils (qemu-img,
# qemu-io), the reference reader the tests compare against. Safe to run again.
set -euo pipefail
need=()
command -v qemu-img >/dev/null 2>&1 || need+=(qemu-utils)
command -v qemu-io >/dev/null 2>&1 || need+=(qemu-utils)
if [ ${#need[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "setup: installing ${need[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq qemu-utils >/dev/null
fi
command -v qemu-img >/dev/null || { echo "setup: qemu-img still missing" >&2; exit 1; }
command -v cargo >/dev/null || { echo "setup: cargo (Rust) is required" >&2; exit 1; }
