"""inspect: what an image service checks before it trusts a file, without opening any file the
descriptor names. Every hostile or damaged case returns a verdict or raises ovf_disk.Error,
and strace shows no open of the file the descriptor points at."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

import ovf_disk


def patch_embedded_descriptor(src: pathlib.Path, dst: pathlib.Path, extra: str) -> None:
    """Copies the single-file VMDK `src` to `dst` with `extra` lines added to its embedded
    descriptor (in place: qemu-img leaves 20 sectors for it)."""
    blob = bytearray(src.read_bytes())
    at = int.from_bytes(blob[28:36], "little") * 512
    size = int.from_bytes(blob[36:44], "little") * 512
    text = bytes(blob[at : at + size]).rstrip(b"\0").decode()
    lines = text.splitlines()
    i = max(n for n, line in enumerate(lines) if line.startswith("RW "))
    lines.insert(i + 1, extra)
    new = ("\n".join(lines) + "\n").encode()
    assert len(new) <= size
    blob[at : at + size] = new.ljust(size, b"\0")
    dst.write_bytes(bytes(blob))


@pytest.fixture()
def hostile(images, tmp_path):
    """Cases, each a file in `tmp_path/up` (the upload folder), and the outside file they aim at."""
    up = tmp_path / "up"
    up.mkdir()
    secret_dir = tmp_path / "outside"
    secret_dir.mkdir()
    secret = secret_dir / "secret.bin"
    secret.write_bytes(b"S" * 1024 * 1024)
    os.symlink(secret, up / "link.bin")
    cases: dict[str, pathlib.Path] = {}

    def text(name: str, body: str) -> None:
        (up / name).write_text(body)
        cases[name] = up / name

    head = '# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\n'
    text("absolute.vmdk", head + f'createType="monolithicFlat"\nRW 2048 FLAT "{secret}" 0\n')
    text("dotdot.vmdk", head + 'createType="monolithicFlat"\nRW 2048 FLAT "../outside/secret.bin" 0\n')
    text("symlink.vmdk", head + 'createType="monolithicFlat"\nRW 2048 FLAT "link.bin" 0\n')
    text(
        "parent.vmdk",
        '# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=12345678\n'
        f'createType="monolithicSparse"\nparentFileNameHint="{secret}"\nRW 2048 SPARSE "parent.vmdk"\n',
    )
    text("overflow.vmdk", head + f'createType="monolithicFlat"\nRW {2**63} FLAT "{secret}" 0\nRW {2**63} FLAT "{secret}" 0\n')
    text("garbage.vmdk", '# Disk DescriptorFile\ncreateType="monolithicFlat"\nRW x FLAT\n\0\xff')
    for name, src in (("sparse-trap.vmdk", "monolithicSparse"), ("stream-trap.vmdk", "streamOptimized")):
        patch_embedded_descriptor(images[src], up / name, f'RW 2048 FLAT "{secret}" 0')
        cases[name] = up / name
    blob = images["monolithicSparse"].read_bytes()
    (up / "cut.vmdk").write_bytes(blob[:100])
    huge = bytearray(blob[:4096])
    huge[36:44] = (2**40).to_bytes(8, "little")  # descriptorSize: 2^40 sectors
    (up / "huge-descriptor.vmdk").write_bytes(bytes(huge))
    (up / "empty.vmdk").write_bytes(b"")
    (up / "random.vmdk").write_bytes(os.urandom(5000))
    for name in ("cut.vmdk", "huge-descriptor.vmdk", "empty.vmdk", "random.vmdk"):
        cases[name] = up / name
    return cases, secret, up / "link.bin"


def test_the_verdicts(images, hostile):
    cases, secret, _ = hostile
    for name in ("absolute.vmdk", "dotdot.vmdk", "symlink.vmdk"):
        r = ovf_disk.inspect(cases[name], allowed=["monolithicFlat"])
        assert r["allowed"] is False, (name, r)
        assert r["files"][0]["outside"], (name, r)
        assert any("outside its folder" in x for x in r["reasons"]), r
    r = ovf_disk.inspect(cases["parent.vmdk"])
    assert r["has_parent"] and not r["allowed"]
    assert [f["role"] for f in r["files"]] == ["extent", "parent"]
    for name in ("sparse-trap.vmdk", "stream-trap.vmdk"):
        r = ovf_disk.inspect(cases[name])
        assert r["format"] == "vmdk" and not r["allowed"], r
        assert r["files"][0]["is_self"] and r["files"][1]["name"] == str(secret)
    assert ovf_disk.inspect(cases["overflow.vmdk"], allowed=["monolithicFlat"])["capacity"] is None
    # What a service accepts.
    for layout in ("monolithicSparse", "streamOptimized"):
        r = ovf_disk.inspect(images[layout])
        assert r["allowed"] and r["reasons"] == [], r
        assert r["capacity"] == len(images["bytes"])
    r = ovf_disk.inspect(images["monolithicFlat"])
    assert not r["allowed"] and "createType monolithicFlat is not allowed" in r["reasons"]
    assert ovf_disk.inspect(images["monolithicFlat"], allowed=["monolithicFlat"])["allowed"]
    r = ovf_disk.inspect(images["raw"])
    assert (r["format"], r["allowed"], r["capacity"]) == ("raw", False, len(images["bytes"]))


def test_opening_them_is_refused_by_name(hostile):
    cases, secret, _ = hostile
    for name in ("absolute.vmdk", "dotdot.vmdk", "symlink.vmdk", "sparse-trap.vmdk", "stream-trap.vmdk"):
        with pytest.raises(ovf_disk.RefusedError) as e:
            ovf_disk.open(cases[name])
        assert "outside" in str(e.value), (name, str(e.value))


def test_no_case_opens_the_file_it_points_at(hostile, tmp_path):
    if shutil.which("strace") is None:
        pytest.fail("strace is missing (scripts/setup.sh installs it)")
    cases, secret, link = hostile
    script = tmp_path / "inspect_all.py"
    script.write_text(
        "import json, sys, ovf_disk\n"
        "out = {}\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n"
        "        out[path] = ovf_disk.inspect(path)['allowed']\n"
        "    except ovf_disk.Error as e:\n"
        "        out[path] = type(e).__name__ + ': ' + str(e)\n"
        "    try:\n"
        "        ovf_disk.open(path).close()\n"
        "    except ovf_disk.Error:\n"
        "        pass\n"
        "print(json.dumps(out))\n"
    )
    log = tmp_path / "strace.log"
    paths = [str(p) for p in cases.values()]
    done = subprocess.run(
        ["strace", "-f", "-qq", "-e", "trace=open,openat,openat2,creat", "-o", str(log), sys.executable, str(script), *paths],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    verdicts = json.loads(done.stdout)
    assert set(verdicts) == set(paths)
    # Every case ends in a verdict of "not allowed" or a typed error.
    for path, v in verdicts.items():
        assert v is False or isinstance(v, str) and v.split(":")[0].endswith("Error"), (path, v)
    opened = [line for line in log.read_text().splitlines() if str(secret) in line or str(link) in line]
    assert opened == [], opened
    # The log did record the opens of the cases themselves (strace saw the library's opens).
    assert str(cases["absolute.vmdk"]) in log.read_text()
