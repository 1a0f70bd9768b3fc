"""Fixtures of the ovf_disk tests: source images made with qemu-img, the command-line tool's
path (the tests compare the package with it), and the peers' readers."""

from __future__ import annotations

import gzip
import hashlib
import os
import pathlib
import random
import shutil
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]


def sha256_file(path: os.PathLike | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def run(*args: object, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], check=True, capture_output=True, text=True, **kw)


def qemu_reading(path: os.PathLike | str, tmp: pathlib.Path, fmt: str = "vmdk") -> str:
    """sha256 of the bytes qemu-img reads from `path`."""
    out = tmp / f"qemu-{os.path.basename(path)}.raw"
    run("qemu-img", "convert", "-f", fmt, "-O", "raw", path, out)
    digest = sha256_file(out)
    out.unlink()
    return digest


def make_raw(path: pathlib.Path, size: int, seed: int = 7) -> bytes:
    """A raw image of `size` bytes: random, text and patterned runs among zeros."""
    rng = random.Random(seed)
    data = bytearray(size)
    for _ in range(24):
        at = rng.randrange(0, size - 1) & ~511
        n = min(rng.choice([512, 4096, 65536, 300_000, 1 << 20]), size - at)
        kind = rng.randrange(3)
        if kind == 0:
            data[at : at + n] = rng.randbytes(n)
        elif kind == 1:
            text = b"ovf-disk python fixture %d\n" % at
            data[at : at + n] = (text * (n // len(text) + 1))[:n]
        else:
            data[at : at + n] = bytes([rng.randrange(1, 256)]) * n
    data[-4096:] = bytes(range(256)) * 16
    path.write_bytes(bytes(data))
    return bytes(data)


@pytest.fixture(scope="session")
def cli() -> pathlib.Path:
    """The ovf-disk command built from the same sources (scripts/test.sh sets OVF_DISK_BIN)."""
    path = pathlib.Path(os.environ.get("OVF_DISK_BIN", REPO / "target/debug/ovf-disk"))
    if not path.exists():
        pytest.fail(f"the ovf-disk command is not built at {path} (cargo build -p ovf-disk)")
    return path


@pytest.fixture(scope="session")
def images(tmp_path_factory) -> dict:
    """Every layout qemu-img writes, of one 48 MiB raw image, with the raw's sha256; and the
    peers' samples in testdata/peers."""
    for tool in ("qemu-img",):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing (scripts/setup.sh installs it)")
    d = tmp_path_factory.mktemp("images")
    raw = d / "src.raw"
    data = make_raw(raw, 48 << 20)
    out = {"raw": raw, "bytes": data, "sha256": sha256_bytes(data), "dir": d}
    for sub in ("monolithicSparse", "streamOptimized", "twoGbMaxExtentSparse", "monolithicFlat"):
        sd = d / sub
        sd.mkdir()
        run("qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", f"subformat={sub}", raw, sd / "disk.vmdk")
        out[sub] = sd / "disk.vmdk"
    # A delta over the sparse disk: the middle of the disk rewritten.
    chain = d / "chain"
    chain.mkdir()
    shutil.copy(out["monolithicSparse"], chain / "base.vmdk")
    run("qemu-img", "create", "-q", "-f", "vmdk", "-b", "base.vmdk", "-F", "vmdk", chain / "delta.vmdk")
    run("qemu-io", "-f", "vmdk", "-c", "write -P 0x5a 20M 3M", chain / "delta.vmdk")
    out["chain"] = chain / "delta.vmdk"
    peers = REPO / "testdata/peers"
    out["vmdk-convert"] = peers / "vmdk-convert-1m.vmdk"
    se = d / "sesparse"
    se.mkdir()
    (se / "sample-sesparse.vmdk").write_bytes(gzip.decompress((peers / "sesparse.vmdk.gz").read_bytes()))
    # The descriptor the Rust tests give it (test-support's esx_descriptor).
    (se / "sample.vmdk").write_text(
        '# Disk DescriptorFile\nversion=1\nencoding="UTF-8"\nCID=12345678\nparentCID=ffffffff\n'
        'createType="seSparse"\n\n# Extent description\nRW 1048576 SESPARSE "sample-sesparse.vmdk"\n\n'
        '# The Disk Data Base\n#DDB\n\nddb.adapterType = "lsilogic"\nddb.geometry.cylinders = "100"\n'
        'ddb.geometry.heads = "64"\nddb.geometry.sectors = "32"\nddb.virtualHWVersion = "14"\n'
    )
    out["sesparse"] = se / "sample.vmdk"
    return out
