#!/usr/bin/env python3
"""Reads VMDK files with the independent readers from PyPI and prints one JSON line per file and
reader: {"file", "reader", "size", "sha256"} (or "error"). Used by the interop tests.

  readers.py [--limit BYTES] [--reader libvmdk|dissect] FILE...

--limit hashes only the first BYTES (dissect.hypervisor fails on the last partial grain of a
disk whose capacity is not a grain multiple; see shared/PEERS.md).

libvmdk reads a delta disk only once its parent is opened and set on it: its parent chain is
opened here from each descriptor's parentFileNameHint (beside the descriptor, 64 links at most).
dissect opens parents itself.
"""
import hashlib
import json
import pathlib
import sys

CHUNK = 4 << 20


def libvmdk_open(path, depth=0):
    import pyvmdk

    if depth > 64:
        raise IOError(f"{path}: parent chain longer than 64 links")
    h = pyvmdk.handle()
    h.open(path)
    h.open_extent_data_files()
    parent = h.get_parent_filename()
    if parent:
        h.set_parent(libvmdk_open(str(pathlib.Path(path).parent / parent), depth + 1))
    return h


def libvmdk(path, limit):
    h = libvmdk_open(path)
    size = h.get_media_size()
    end = size if limit is None else min(size, limit)
    d, off = hashlib.sha256(), 0
    while off < end:
        n = min(CHUNK, end - off)
        d.update(h.read_buffer_at_offset(n, off))
        off += n
    h.close()
    return size, d.hexdigest()


def dissect(path, limit):
    from dissect.hypervisor.disk.vmdk import VMDK

    v = VMDK(pathlib.Path(path))
    size = v.size
    end = size if limit is None else min(size, limit)
    d, off = hashlib.sha256(), 0
    v.seek(0)
    while off < end:
        n = min(CHUNK, end - off)
        b = v.read(n)
        if len(b) != n:
            raise IOError(f"short read at {off}: {len(b)} of {n}")
        d.update(b)
        off += n
    return size, d.hexdigest()


def main():
    args = sys.argv[1:]
    limit, only = None, None
    while args[:1] in (["--limit"], ["--reader"]):
        if args[0] == "--limit":
            limit = int(args[1])
        else:
            only = args[1]
        args = args[2:]
    for path in args:
        for name, fn in (("libvmdk", libvmdk), ("dissect", dissect)):
            if only is not None and name != only:
                continue
            try:
                size, sha = fn(path, limit)
                print(json.dumps({"file": path, "reader": name, "size": size, "sha256": sha}))
            except Exception as e:  # reported, and the test fails on it
                print(json.dumps({"file": path, "reader": name, "error": f"{type(e).__name__}: {e}"}))


if __name__ == "__main__":
    main()
