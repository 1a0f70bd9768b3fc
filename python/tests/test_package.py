"""Packages from Python: export, verify, check, info, import (equal to the command's import),
fix."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

import ovf_disk


@pytest.fixture(scope="module")
def ova(images, tmp_path_factory):
    d = tmp_path_factory.mktemp("pkg")
    report = ovf_disk.export([images["raw"], images["chain"]], d / "app.ova")
    return d / "app.ova"


def test_export_verify_check_info(ova, cli):
    pkg = ovf_disk.Package.open(ova)
    v = pkg.verify()
    assert v == json.loads(subprocess.run([cli, "verify", "--json", ova], capture_output=True, check=True).stdout)
    assert v["manifest"] is not None
    c = pkg.check()
    assert c == json.loads(subprocess.run([cli, "check", "--json", ova], capture_output=True, check=True).stdout)
    info = pkg.info()
    assert info == json.loads(subprocess.run([cli, "info", "--json", ova], capture_output=True, check=True).stdout)
    assert len(info["disks"]) == 2
    lint = pkg.check(target="esxi")
    assert "refused" in lint
    with pytest.raises(ovf_disk.RefusedError):
        pkg.check(target="hyper-v")
    assert pkg.descriptor == "app.ovf"


def test_import_equals_the_commands_import(ova, cli, tmp_path):
    calls = []
    report = ovf_disk.Package.open(ova).import_to(tmp_path / "py", emit=["libvirt", "vmx"], progress=lambda d, t: calls.append((d, t)))
    subprocess.run([cli, "import", "-q", "--emit", "libvirt", "--emit", "vmx", ova, tmp_path / "cli"], check=True)
    py, theirs = tmp_path / "py", tmp_path / "cli"
    assert sorted(p.name for p in py.iterdir()) == sorted(p.name for p in theirs.iterdir())
    for p in py.iterdir():
        ours, cli_made = p.read_bytes(), (theirs / p.name).read_bytes()
        if p.name.endswith("-thick.vmdk"):
            # Descriptors: a fresh content ID each import, nothing else differs.
            def fresh(b: bytes) -> list:
                return [ln for ln in b.splitlines() if not ln.startswith((b"CID=", b"ddb.longContentID"))]

            assert fresh(ours) == fresh(cli_made), p.name
        elif p.name == "app.xml":
            assert ours.replace(b"/py/", b"/cli/") == cli_made
        elif p.name != "app.mf":  # digests of the descriptors above
            assert ours == cli_made, p.name
    assert report["verified"] is True and len(report["disks"]) == 2
    assert calls[-1][0] == calls[-1][1] > 0
    # The import verifies as a package of its own.
    assert ovf_disk.Package.open(report["descriptor"]).verify()["manifest"] is not None


def test_a_damaged_package_is_not_imported(ova, tmp_path):
    bad = tmp_path / "bad.ova"
    blob = bytearray(ova.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    bad.write_bytes(bytes(blob))
    with pytest.raises(ovf_disk.Error):
        ovf_disk.Package.open(bad).import_to(tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_fix_writes_a_package_the_target_takes(ova, tmp_path):
    report = ovf_disk.Package.open(ova).fix(tmp_path / "fixed.ova", "virtualbox")
    assert report["after"]["refused"] is False
    assert ovf_disk.Package.open(tmp_path / "fixed.ova").verify()["manifest"] is not None


def test_missing_package_is_an_io_error(tmp_path):
    with pytest.raises(ovf_disk.IoError) as e:
        ovf_disk.Package.open(tmp_path / "none.ova")
    assert e.value.path is not None and os.path.basename(e.value.path) == "none.ova"
