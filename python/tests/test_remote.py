"""Disks and packages at URLs from Python: ovf_disk.open and Package.open over HTTP with byte
ranges (nginx, started here), read to the same bytes as the local files, with what was
fetched reported."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time

import pytest

import ovf_disk
from conftest import sha256_file


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(images, tmp_path_factory):
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if nginx is None:
        pytest.fail("nginx is missing (scripts/setup.sh installs nginx-light)")
    d = tmp_path_factory.mktemp("nginx")
    (d / "logs").mkdir()
    (d / "tmp").mkdir()
    root = d / "www"
    root.mkdir()
    shutil.copy(images["monolithicSparse"], root / "sparse.vmdk")
    shutil.copy(images["streamOptimized"], root / "stream.vmdk")
    ovf_disk.export([images["raw"]], root / "app.ova")
    port = free_port()
    user = "user root;" if os.geteuid() == 0 else ""
    (d / "nginx.conf").write_text(
        f"daemon off; {user} pid {d}/nginx.pid; error_log {d}/logs/error.log; worker_processes 1;\n"
        "events { worker_connections 64; }\n"
        f"http {{ access_log {d}/logs/access.log; client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp;\n"
        f"fastcgi_temp_path {d}/tmp; uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;\n"
        f"default_type application/octet-stream; server {{ listen 127.0.0.1:{port}; root {root}; }} }}\n"
    )
    proc = subprocess.Popen([nginx, "-c", str(d / "nginx.conf"), "-p", str(d)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"nginx did not start: {proc.stderr.read() if proc.stderr else ''}")
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", root
    proc.terminate()
    proc.wait(timeout=10)


@pytest.mark.parametrize("name", ["sparse.vmdk", "stream.vmdk"])
def test_a_disk_at_a_url_reads_like_the_file(server, images, name):
    url, _ = server
    with ovf_disk.open(f"{url}/{name}") as disk:
        assert disk.capacity == len(images["bytes"])
        assert disk.name == f"{url}/{name}"
        assert disk.pread(4096, disk.capacity - 4096) == images["bytes"][-4096:]
        fetched = disk.fetched()
        assert fetched is not None and fetched["requests"] >= 1, fetched
    out = images["dir"] / f"from-url-{name}.raw"
    ovf_disk.inflate(f"{url}/{name}", out, replace=True)
    assert sha256_file(out) == images["sha256"]
    out.unlink()


def test_a_package_at_a_url_verifies(server):
    url, _ = server
    pkg = ovf_disk.Package.open(f"{url}/app.ova")
    assert pkg.verify()["manifest"] is not None
    assert len(pkg.info()["disks"]) == 1


def test_a_missing_url_is_an_io_error_naming_it(server):
    url, _ = server
    with pytest.raises(ovf_disk.IoError) as e:
        ovf_disk.open(f"{url}/none.vmdk")
    assert "none.vmdk" in str(e.value)
