"""Writing from Python: what convert and inflate write reads back alike in qemu-img,
dissect.hypervisor and libvmdk's pyvmdk; progress is called a few times a second; an
interrupted copy leaves nothing under its name."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest

import ovf_disk
from conftest import qemu_reading, run, sha256_file


def dissect_reading(path) -> str:
    from dissect.hypervisor.disk.vmdk import VMDK

    h = hashlib.sha256()
    with open(path, "rb") as f:
        disk = VMDK(f)
        stream = disk.open() if hasattr(disk, "open") else disk
        left = disk.size
        while left:
            chunk = stream.read(min(left, 1 << 20))
            if not chunk:
                break
            h.update(chunk)
            left -= len(chunk)
    return h.hexdigest()


def pyvmdk_reading(path) -> str:
    import pyvmdk

    h = hashlib.sha256()
    handle = pyvmdk.handle()
    handle.open(str(path))
    handle.open_extent_data_files()
    left = handle.get_media_size()
    while left:
        chunk = handle.read_buffer(min(left, 1 << 20))
        h.update(chunk)
        left -= len(chunk)
    handle.close()
    return h.hexdigest()


@pytest.mark.parametrize("to", ["streamOptimized", "monolithicSparse", "monolithicFlat"])
def test_what_python_writes_reads_alike_in_every_peer(images, tmp_path, to):
    out = tmp_path / f"{to}.vmdk"
    report = ovf_disk.convert(images["raw"], out, to=to)
    assert report["capacity"] == len(images["bytes"])
    assert report["files"][0] == str(out)
    want = images["sha256"]
    assert qemu_reading(out, tmp_path) == want
    assert dissect_reading(out) == want
    assert pyvmdk_reading(out) == want
    with ovf_disk.open(out) as disk:
        assert disk.create_type == to


def test_convert_from_an_open_disk_and_to_qcow2(images, tmp_path):
    with ovf_disk.open(images["chain"]) as disk:
        report = ovf_disk.convert(disk, tmp_path / "c.qcow2", to="qcow2")
    assert report["files"] == [str(tmp_path / "c.qcow2")]
    assert qemu_reading(tmp_path / "c.qcow2", tmp_path, fmt="qcow2") == qemu_reading(images["chain"], tmp_path)


def test_qcow2_options_and_a_chain_of_qcow2_images(images, tmp_path):
    want = qemu_reading(images["chain"], tmp_path)
    for i, kw in enumerate([
        {"cluster_size": 4096, "compress": "zlib"},
        {"compress": "zstd"},
        {"preallocation": "metadata", "cluster_size": 1 << 20},
    ]):
        out = tmp_path / f"o{i}.qcow2"
        ovf_disk.convert(images["chain"], out, to="qcow2", **kw)
        run("qemu-img", "check", "-q", out)
        assert qemu_reading(out, tmp_path, fmt="qcow2") == want, kw
        info = json.loads(run("qemu-img", "info", "--output=json", out).stdout)
        assert info["cluster-size"] == kw.get("cluster_size", 65536), info
    chain = tmp_path / "chain"
    chain.mkdir()
    report = ovf_disk.convert(images["chain"], chain / "leaf.qcow2", to="qcow2", keep_chain=True)
    assert len(report["files"]) >= 2 and report["files"][0] == str(chain / "leaf.qcow2")
    assert qemu_reading(chain / "leaf.qcow2", tmp_path, fmt="qcow2") == want
    with pytest.raises(ovf_disk.RefusedError):
        ovf_disk.convert(images["chain"], tmp_path / "x.raw", to="raw", compress="zlib")
    with pytest.raises(ovf_disk.RefusedError):
        ovf_disk.convert(images["chain"], tmp_path / "x.qcow2", to="qcow2", compress="lz4")
    assert not (tmp_path / "x.raw").exists() and not (tmp_path / "x.qcow2").exists()


def test_inflate_writes_every_byte_and_equals_the_command(images, tmp_path, cli):
    calls: list = []
    ours = tmp_path / "py.raw"
    report = ovf_disk.inflate(images["streamOptimized"], ours, progress=lambda d, t: calls.append((d, t)))
    assert sha256_file(ours) == images["sha256"]
    assert report["written_bytes"] == len(images["bytes"])
    assert calls and calls[-1] == (len(images["bytes"]),) * 2
    assert all(d <= t for d, t in calls)
    theirs = tmp_path / "cli.vmdk"
    subprocess.run([cli, "inflate", "-q", images["streamOptimized"], theirs], check=True)
    py_vmdk = tmp_path / "py.vmdk"
    ovf_disk.inflate(images["streamOptimized"], py_vmdk)
    assert sha256_file(tmp_path / "py-flat.vmdk") == sha256_file(tmp_path / "cli-flat.vmdk")


def big_source(tmp_path):
    """256 MiB of random text over 16 letters: compressible, so compressing it keeps one
    thread busy for seconds (random bytes would be stored as they are, at once)."""
    raw = tmp_path / "big.raw"
    letters = bytes.maketrans(bytes(range(256)), b"abcdefghijklmnop" * 16)
    with open(raw, "wb") as f:
        for _ in range(256):
            f.write(os.urandom(1 << 20).translate(letters))
    return raw


def test_progress_is_called_a_few_times_a_second_and_can_cancel(tmp_path):
    src = big_source(tmp_path)
    out = tmp_path / "out.vmdk"
    calls: list = []

    def progress(done, total):
        calls.append((time.monotonic(), done, total))
        if len(calls) == 2:
            raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        ovf_disk.convert(src, out, threads=1, progress=progress)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["big.raw"]
    assert 0 < calls[1][1] < calls[1][2] == 256 << 20
    assert calls[1][0] - calls[0][0] >= 0.2


def test_keyboard_interrupt_stops_the_copy_and_removes_its_output(tmp_path):
    src = big_source(tmp_path)
    script = f"""
import ovf_disk, sys
def progress(done, total):
    print("progress", done, flush=True)
ovf_disk.convert({str(src)!r}, {str(tmp_path / 'out.vmdk')!r}, threads=1, progress=progress)
print("finished", flush=True)
"""
    p = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert p.stdout is not None
    line = p.stdout.readline()
    assert line.startswith("progress"), line + p.stderr.read() if p.stderr else ""
    started = time.monotonic()
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert time.monotonic() - started < 5, "the copy did not stop soon after SIGINT"
    assert "finished" not in out
    assert "KeyboardInterrupt" in err
    assert p.returncode != 0
    assert sorted(x.name for x in tmp_path.iterdir()) == ["big.raw"]


def test_a_later_copy_works_after_an_interrupted_one(images, tmp_path):
    def stop(done, total):
        raise KeyboardInterrupt

    src = big_source(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        ovf_disk.convert(src, tmp_path / "a.vmdk", threads=1, progress=stop)
    ovf_disk.convert(images["raw"], tmp_path / "b.vmdk")
    assert qemu_reading(tmp_path / "b.vmdk", tmp_path) == images["sha256"]


def test_zero_modes(images, tmp_path):
    ovf_disk.inflate(images["monolithicSparse"], tmp_path / "s.raw", zero="sparse")
    assert sha256_file(tmp_path / "s.raw") == images["sha256"]
    st = os.stat(tmp_path / "s.raw")
    assert st.st_blocks * 512 < st.st_size
    with pytest.raises(ovf_disk.RefusedError):
        ovf_disk.inflate(images["monolithicSparse"], tmp_path / "x.raw", zero="sometimes")
