"""Reading through ovf_disk.Disk: the bytes qemu-img reads, file-object behaviour, many
threads, the allocation map, info and check as the command prints them, typed errors."""

from __future__ import annotations

import hashlib
import io
import json
import random
import threading

import pytest

import ovf_disk
from conftest import qemu_reading, run, sha256_bytes

LAYOUTS = [
    "monolithicSparse",
    "streamOptimized",
    "twoGbMaxExtentSparse",
    "monolithicFlat",
    "chain",
    "vmdk-convert",
    "sesparse",
]


def read_all(disk: ovf_disk.Disk, size: int = 1 << 20) -> str:
    """sha256 of the disk read from its start with readinto and `size` buffers."""
    h = hashlib.sha256()
    buf = bytearray(size)
    view = memoryview(buf)
    while n := disk.readinto(buf):
        h.update(view[:n])
    return h.hexdigest()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_bytes_read_equal_qemu_img(images, layout, tmp_path):
    path = images[layout]
    with ovf_disk.open(path) as disk:
        ours = read_all(disk)
        assert disk.tell() == disk.capacity
    assert ours == qemu_reading(path, tmp_path)
    if layout in ("monolithicSparse", "streamOptimized", "monolithicFlat", "twoGbMaxExtentSparse"):
        assert ours == images["sha256"]


def test_read_seek_tell_like_a_file(images):
    data = images["bytes"]
    with ovf_disk.open(images["streamOptimized"]) as disk:
        assert isinstance(disk, io.RawIOBase)
        assert disk.readable() and disk.seekable() and not disk.writable()
        assert disk.read(1000) == data[:1000]
        assert disk.tell() == 1000
        assert disk.seek(-4096, io.SEEK_END) == len(data) - 4096
        assert disk.read() == data[-4096:]
        assert disk.read(10) == b""
        assert disk.seek(10, io.SEEK_END) == len(data) + 10
        assert disk.read(10) == b""
        disk.seek(5 << 20)
        assert disk.seek(100, io.SEEK_CUR) == (5 << 20) + 100
        buf = bytearray(777)
        assert disk.readinto(memoryview(buf)) == 777
        assert bytes(buf) == data[(5 << 20) + 100 : (5 << 20) + 877]
        with pytest.raises(ValueError):
            disk.seek(-1)
        # BufferedReader over it, as io.open would build.
        disk.seek(0)
        assert io.BufferedReader(disk, 1 << 16).read(300_000) == data[:300_000]
    assert disk.closed
    with pytest.raises(ValueError):
        disk.read(1)


def test_many_threads_read_one_disk_at_random_offsets(images):
    data = images["bytes"]
    errors: list = []
    with ovf_disk.open(images["streamOptimized"]) as disk:

        def reader(seed: int) -> None:
            rng = random.Random(seed)
            buf = bytearray(256 << 10)
            try:
                for _ in range(150):
                    at = rng.randrange(0, len(data))
                    n = rng.randrange(1, 256 << 10)
                    if rng.random() < 0.5:
                        got = disk.pread(n, at)
                    else:
                        k = disk.preadinto(memoryview(buf)[:n], at)
                        got = bytes(buf[:k])
                    if got != data[at : at + n]:
                        errors.append((seed, at, n))
            except Exception as e:  # noqa: BLE001 - reported below
                errors.append(e)

        threads = [threading.Thread(target=reader, args=(s,)) for s in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []


def test_map_covers_the_disk_and_every_data_byte(images):
    data = images["bytes"]
    with ovf_disk.open(images["monolithicSparse"]) as disk:
        runs = list(disk.map())
        assert runs[0].offset == 0
        assert sum(r.length for r in runs) == disk.capacity
        for a, b in zip(runs, runs[1:]):
            assert a.offset + a.length == b.offset
            assert a.kind != b.kind
        assert {r.kind for r in runs} <= {"data", "zero", "unallocated"}
        for r in runs:
            if r.kind != "data":
                assert data[r.offset : r.offset + r.length].count(0) == r.length
        part = list(disk.map(1 << 20, 3 << 20))
        assert part[0].offset == 1 << 20 and sum(r.length for r in part) == 3 << 20
    # A ZERO extent maps as zero.
    zero_dir = images["dir"] / "zero-extent"
    zero_dir.mkdir(exist_ok=True)
    (zero_dir / "z.vmdk").write_text('createType="custom"\nRW 2048 ZERO\n')
    with ovf_disk.open(zero_dir / "z.vmdk") as disk:
        assert list(disk.map()) == [(0, 1 << 20, "zero")]


@pytest.mark.parametrize("layout", ["monolithicSparse", "chain", "sesparse"])
def test_info_and_check_are_what_the_command_prints(images, cli, layout):
    path = images[layout]
    with ovf_disk.open(path) as disk:
        info, check = disk.info(), disk.check()
    assert info == json.loads(run(cli, "info", "--json", path).stdout)
    assert check == json.loads(run(cli, "check", "--json", path).stdout)
    assert check["problems"] == []


def test_check_reports_a_damaged_grain_table(images, tmp_path):
    damaged = tmp_path / "d.vmdk"
    blob = bytearray(images["monolithicSparse"].read_bytes())
    gd_offset = int.from_bytes(blob[56:64], "little") * 512
    gt0 = int.from_bytes(blob[gd_offset : gd_offset + 4], "little") * 512
    blob[gt0 : gt0 + 4] = (0xFFFFFFF0).to_bytes(4, "little")  # a grain far past the end
    damaged.write_bytes(bytes(blob))
    with ovf_disk.open(damaged) as disk:
        report = disk.check()
    assert report["problems"], report


def test_errors_are_typed_and_name_file_and_offset(images, tmp_path):
    with pytest.raises(ovf_disk.IoError) as e:
        ovf_disk.open(tmp_path / "missing.vmdk")
    assert e.value.path == str(tmp_path / "missing.vmdk") and e.value.category == "io"
    assert isinstance(e.value, ovf_disk.Error)

    cut = tmp_path / "cut.vmdk"
    cut.write_bytes(images["monolithicSparse"].read_bytes()[:100])
    with pytest.raises(ovf_disk.DamagedError) as e:
        ovf_disk.open(cut)
    assert isinstance(e.value, ovf_disk.TruncatedError)
    assert e.value.path == str(cut) and e.value.structure is not None

    x = tmp_path / "x.vhdx"
    run("qemu-img", "create", "-q", "-f", "vhdx", x, "1M")
    with pytest.raises(ovf_disk.UnsupportedError) as e:
        ovf_disk.open(x, raw=None)
    assert "VHDX" in str(e.value)

    # qcow2 is read (its tests: ovf-disk/tests/qcow2_read.rs).
    q = tmp_path / "x.qcow2"
    run("qemu-img", "create", "-q", "-f", "qcow2", q, "1M")
    with ovf_disk.open(q) as d:
        assert (d.capacity, d.create_type, d.read(4)) == (1 << 20, "qcow2", bytes(4))

    with pytest.raises(ovf_disk.RefusedError) as e:
        ovf_disk.convert(images["monolithicSparse"], images["raw"], to="raw")
    assert e.value.category == "refused"


def test_raw_files_open_as_raw_when_asked(images):
    with ovf_disk.open(images["raw"], raw=True) as disk:
        assert disk.create_type == "raw" and disk.capacity == len(images["bytes"])
        assert disk.pread(4096, disk.capacity - 4096) == images["bytes"][-4096:]
    with pytest.raises(ovf_disk.UnsupportedError):
        ovf_disk.open(images["raw"])
    assert sha256_bytes(ovf_disk.open(images["raw"], raw=None).read()) == images["sha256"]
