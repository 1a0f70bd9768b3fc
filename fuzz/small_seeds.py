#!/usr/bin/env python3
"""Writes the small hand-made seed files of testdata/fuzz-seeds/<target>/ (each well under
64 KiB), which run.sh copies into fuzz/corpus/<target>/. They cover layouts qemu-img does not
write: tiny grains and grain tables, a VMware-style stream-optimized extent (gdOffset =
GD_AT_END, directory found through the footer), text descriptors whose extents are the file
itself or ZERO, CRLF descriptors, and the ESXi delta extents (COWD and seSparse, the inputs of
the cowd and sesparse targets).

    python3 fuzz/small_seeds.py
"""
import os
import struct
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "testdata", "fuzz-seeds")
SECTOR = 512


def header(version, flags, capacity, grain, desc_off, desc_size, gtes, rgd, gd, overhead, algo=0):
    h = struct.pack("<4sIIQQQQIQQQB4sH", b"KDMV", version, flags, capacity, grain, desc_off,
                    desc_size, gtes, rgd, gd, overhead, 0, b"\n \r\n", algo)
    return h.ljust(SECTOR, b"\0")


def pad(b):
    return b + b"\0" * (-len(b) % SECTOR)


def descriptor(create_type, lines, newline="\n", extra=()):
    text = ["# Disk DescriptorFile", "version=1", "CID=2a2a2a2a", "parentCID=ffffffff",
            f'createType="{create_type}"', "", "# Extent description", *lines, "",
            "# The Disk Data Base", "#DDB", "", 'ddb.adapterType = "lsilogic"',
            'ddb.geometry.cylinders = "1"', 'ddb.geometry.heads = "16"',
            'ddb.geometry.sectors = "63"', *extra]
    return (newline.join(text) + newline).encode()


def sparse(capacity=64, grain=8, gtes=4, data_grains=(0, 3, 5), zeroed=(2,), name="disk.vmdk"):
    """A monolithicSparse extent: header, descriptor, redundant GD+GTs, GD+GTs, grains."""
    desc = descriptor("monolithicSparse", [f'RW {capacity} SPARSE "{name}"'])
    desc_sectors = len(pad(desc)) // SECTOR
    grains = -(-capacity // grain)
    tables = -(-grains // gtes)
    gd_sectors = -(-tables * 4 // SECTOR)
    gt_sectors = -(-gtes * 4 // SECTOR)
    meta = gd_sectors + tables * gt_sectors
    rgd = 1 + desc_sectors
    gd = rgd + meta
    overhead = gd + meta
    gte = [0] * (tables * gtes)
    next_sector = overhead
    for g in range(grains):
        if g in data_grains:
            gte[g] = next_sector
            next_sector += grain
        elif g in zeroed:
            gte[g] = 1
    out = bytearray(header(2 if zeroed else 1, 0x3 | (0x4 if zeroed else 0), capacity, grain, 1,
                           desc_sectors, gtes, rgd, gd, overhead))
    out += pad(desc)
    for base in (rgd, gd):
        first_gt = base + gd_sectors
        out += pad(struct.pack(f"<{tables}I", *[first_gt + t * gt_sectors for t in range(tables)]))
        for t in range(tables):
            out += pad(struct.pack(f"<{gtes}I", *gte[t * gtes:(t + 1) * gtes]))
    for g in range(grains):
        if g in data_grains:
            out += bytes([0xab ^ g]) * (grain * SECTOR)
    return bytes(out)


def marker(num_sectors, kind):
    return struct.pack("<QII", num_sectors, 0, kind).ljust(SECTOR, b"\0")


def stream(capacity=64, grain=8, gtes=4, data_grains=(0, 5), raw_deflate=False):
    """A stream-optimized extent as VMware writes it: gdOffset = GD_AT_END in the header, grain
    markers, GT and GD markers, footer marker, footer, end-of-stream marker."""
    desc = descriptor("streamOptimized", [f'RW {capacity} SPARSE "disk.vmdk"'])
    desc_sectors = len(pad(desc)) // SECTOR
    grains = -(-capacity // grain)
    tables = -(-grains // gtes)

    def hdr(gd):
        return header(3, 0x30001, capacity, grain, 1, desc_sectors, gtes, 0, gd, 1 + desc_sectors, 1)

    out = bytearray(hdr(0xFFFF_FFFF_FFFF_FFFF)) + pad(desc)
    gd = []
    for t in range(tables):
        gt = [0] * gtes
        for g in range(t * gtes, min((t + 1) * gtes, grains)):
            if g in data_grains:
                gt[g - t * gtes] = len(out) // SECTOR
                data = bytes([0xcd ^ g]) * 100 + bytes(grain * SECTOR - 100)
                if raw_deflate:
                    c = zlib.compressobj(6, zlib.DEFLATED, -15)
                    packed = c.compress(data) + c.flush()
                else:
                    packed = zlib.compress(data)
                out += pad(struct.pack("<QI", g * grain, len(packed)) + packed)
        gt_bytes = pad(struct.pack(f"<{gtes}I", *gt))
        out += marker(len(gt_bytes) // SECTOR, 1)
        gd.append(len(out) // SECTOR)
        out += gt_bytes
    gd_bytes = pad(struct.pack(f"<{tables}I", *gd))
    out += marker(len(gd_bytes) // SECTOR, 2)
    gd_sector = len(out) // SECTOR
    out += gd_bytes
    out += marker(1, 3) + hdr(gd_sector) + marker(0, 0)
    return bytes(out)


def self_flat(sectors=4, crlf=False):
    """A text descriptor that names itself as a FLAT extent (padded so the extent fits)."""
    d = descriptor("monolithicFlat", [f'RW {sectors} FLAT "disk.vmdk" 0'],
                   "\r\n" if crlf else "\n")
    return d + b"#" * (sectors * SECTOR - len(d))


def cowd(capacity, grain, data_grains):
    """An ESXi sparse extent (COWD version 1): the 2048-byte header, the grain directory at
    sector 4, grain tables of 4096 entries (only those with a grain), then the grains."""
    grains = -(-capacity // grain)
    tables = -(-grains // 4096)
    out = bytearray(4 * SECTOR) + pad(bytes(tables * 4))
    gd = 4 * SECTOR
    table_at = {}
    for t in sorted({g // 4096 for g in data_grains}):
        table_at[t] = len(out)
        out[gd + 4 * t:gd + 4 * t + 4] = struct.pack("<I", len(out) // SECTOR)
        out += bytes(4096 * 4)
    for g in data_grains:
        entry = table_at[g // 4096] + 4 * (g % 4096)
        out[entry:entry + 4] = struct.pack("<I", len(out) // SECTOR)
        out += bytes([0x3c ^ (g & 0xff)]) * (grain * SECTOR)
    out[:32] = struct.pack("<4s7I", b"COWD", 1, 3, capacity, grain, 4, tables, len(out) // SECTOR)
    return bytes(out)


def sesparse(capacity, table_sectors, data_grains, zeroed=(), unmapped=(), dirty=False):
    """A seSparse extent (grains of 8 sectors): constant and volatile headers, journal header
    and journal, grain directory, grain table area (tables numbered from the last directory
    entry down), free bitmap, back map, grain area (grains numbered from the last down)."""
    gtes = table_sectors * 64
    grains = -(-capacity // 8)
    tables = -(-grains // gtes)
    gd, gd_size = 11, -(-tables * 8 // SECTOR)
    gt_area = gd + gd_size
    bitmap = gt_area + tables * table_sectors
    grain_area = bitmap + 2
    entries = {g: 0x2000_0000_0000_0000 for g in zeroed}
    entries.update({g: 0x1000_0000_0000_0000 for g in unmapped})
    for i, g in enumerate(sorted(data_grains)):
        n = len(data_grains) - 1 - i
        entries[g] = 0x3000_0000_0000_0000 | ((n & 0xFFF) << 48) | (n >> 12)
    used = sorted({g // gtes for g in entries}, reverse=True)
    out = bytearray(grain_area * SECTOR)
    for number, t in enumerate(used):
        at = (gt_area + number * table_sectors) * SECTOR
        out[gd * SECTOR + 8 * t:gd * SECTOR + 8 * t + 8] = struct.pack("<Q", 0x1000_0000 << 32 | number)
        for g, e in entries.items():
            if g // gtes == t:
                out[at + 8 * (g % gtes):at + 8 * (g % gtes) + 8] = struct.pack("<Q", e)
    for i, g in enumerate(sorted(data_grains, reverse=True)):
        at = (grain_area + i * 8) * SECTOR
        out[at:at + 8 * SECTOR] = bytes([0x5e ^ (g & 0xff)]) * (8 * SECTOR)
    out += bytes(max(0, (grain_area + len(data_grains) * 8) * SECTOR - len(out)))
    out[:26 * 8] = struct.pack("<26Q", 0xCAFEBABE, 0x2_0000_0001, capacity, 8, table_sectors,
                               0, 0, 0, 0, 0, 1, 1, 2, 1, 3, 8, gd, gd_size, gt_area,
                               tables * table_sectors, bitmap, 1, bitmap + 1, 1, grain_area,
                               grains * 8)
    out[SECTOR:SECTOR + 32] = struct.pack("<4Q", 0xCAFECAFE, len(used), 1, int(dirty))
    return bytes(out)


def nbd_client(export=b"disk", structured=True, go=True):
    """A client's side of an NBD conversation: flags, options, then requests (read, block
    status, cache, flush, a read past the end, disconnect)."""
    def opt(code, data=b""):
        return b"IHAVEOPT" + struct.pack(">II", code, len(data)) + data
    def req(kind, offset, length, flags=0):
        return struct.pack(">IHHQQI", 0x25609513, flags, kind, 7, offset, length)
    out = struct.pack(">I", 3) + opt(3)
    if structured:
        out += opt(8) + opt(10, struct.pack(">I", len(export)) + export + struct.pack(">I", 1)
                         + struct.pack(">I", 15) + b"base:allocation")
    if go:
        out += opt(7, struct.pack(">I", len(export)) + export + struct.pack(">HH", 1, 3))
    else:
        out += opt(1, export)
    out += req(0, 0, 4096) + req(7, 0, 65536) + req(7, 512, 512, 8) + req(5, 0, 4096)
    out += req(3, 0, 0) + req(0, 65000, 1000) + req(1, 0, 4) + b"DATA" + req(2, 0, 0)
    return out


def write(target, name, data):
    folder = os.path.join(ROOT, target)
    os.makedirs(folder, exist_ok=True)
    assert len(data) < 64 << 10, (name, len(data))
    with open(os.path.join(folder, name), "wb") as f:
        f.write(data)


def main():
    small = sparse()
    odd = sparse(capacity=61, grain=16, gtes=1, data_grains=(1, 3), zeroed=())
    vmware_stream = stream()
    raw_stream = stream(capacity=40, gtes=2, data_grains=(1, 4), raw_deflate=True)
    for target in ("sparse_header", "disk"):
        write(target, "sparse-tiny.vmdk", small)
        write(target, "sparse-odd-capacity.vmdk", odd)
        write(target, "stream-vmware.vmdk", vmware_stream)
        write(target, "stream-raw-deflate.vmdk", raw_stream)
    write("disk", "self-flat.vmdk", self_flat())
    write("disk", "self-flat-crlf.vmdk", self_flat(crlf=True))
    write("disk", "zero.vmdk", descriptor("custom", ["RW 2048 ZERO", "RDONLY 8 ZERO"]))
    write("disk", "mixed.vmdk", descriptor(
        "custom", ['RW 2 FLAT "disk.vmdk" 1', "RW 100 ZERO", 'NOACCESS 1 FLAT "disk.vmdk" 0']
    ) + b"#" * 2048)
    write("cowd", "cowd-1.vmdk", cowd(2 * 4096 + 5, 1, (0, 1, 4095, 8196)))
    write("cowd", "cowd-8-odd.vmdk", cowd(1003, 8, (0, 62, 125)))
    write("sesparse", "sesparse-64.vmdk", sesparse(1003, 64, (0, 7, 125), (3,), (4, 5)))
    write("sesparse", "sesparse-small-tables.vmdk",
          sesparse(2051, 1, (0, 64, 200, 256), (1, 65), (130,)))
    write("sesparse", "sesparse-dirty.vmdk", sesparse(2051, 1, (0, 256), dirty=True))
    write("nbd", "go-structured.bin", nbd_client())
    write("nbd", "export-name-simple.bin", nbd_client(structured=False, go=False))
    write("nbd", "default-export.bin", nbd_client(export=b""))
    write("descriptor", "crlf.txt", descriptor(
        "twoGbMaxExtentSparse", [f'RW 4192256 SPARSE "d-s{i:03}.vmdk"' for i in range(1, 4)],
        "\r\n", ['ddb.uuid = "60 00 C2 9b 69 2f c9 76-74 c4 07 9e 10 87 3b f9"']))
    write("descriptor", "delta.txt", descriptor(
        "monolithicSparse", ['RW 2048 SPARSE "child.vmdk"'],
        extra=['parentFileNameHint="base.vmdk"']).replace(b"parentCID=ffffffff", b"parentCID=12345678"))
    write("descriptor", "all-kinds.txt", descriptor("custom", [
        'RW 10 FLAT "a b.vmdk" 7', "RDONLY 20 ZERO", 'NOACCESS 30 VMFS "c.vmdk"',
        'RW 40 VMFSSPARSE "d.vmdk"', 'RW 50 VMFSRDM "e.vmdk"', 'RW 60 SESPARSE "f.vmdk"',
        "RW 70 SPARSE unquoted.vmdk"]))
    vmx = (b'.encoding = "UTF-8"\nconfig.version = "8"\nvirtualHW.version = "19"\n'
           b'displayName = "web"\nscsi0.present = "TRUE"\nscsi0.virtualDev = "pvscsi"\n'
           b'scsi0:0.present = "TRUE"\nscsi0:0.fileName = "d.vmdk"\n'
           b'sata0:1.present = "TRUE"\nsata0:1.deviceType = "cdrom-image"\n'
           b'sata0:1.fileName = "/iso/x.iso"\n')
    vmsd = (b'.encoding = "UTF-8"\nsnapshot.lastUID = "2"\nsnapshot.current = "2"\n'
            b'snapshot0.uid = "1"\nsnapshot0.displayName = "before |22upgrade|22"\n'
            b'snapshot0.createTimeHigh = "406441"\nsnapshot0.createTimeLow = "-1851591469"\n'
            b'snapshot0.numDisks = "1"\nsnapshot0.disk0.fileName = "d.vmdk"\n'
            b'snapshot0.disk0.node = "scsi0:0"\nsnapshot1.uid = "2"\nsnapshot1.parent = "1"\n'
            b'snapshot1.displayName = "after"\nsnapshot1.disk0.fileName = "d.vmdk"\n'
            b'snapshot1.disk0.node = "scsi0:0"\nsnapshot.numSnapshots = "2"\n')
    write("vm", "vmx-vmsd.txt", vmx + b"\0" + vmsd)
    write("vm", "vmx.txt", vmx)
    write("vm", "areas.json", b'{"startOffset": 0, "length": 1073741824, "changedArea": '
          b'[{"start": 0, "length": 65536}, {"start": 1048576, "length": 512}]}')
    write("vm", "areas-list.json", b'[{"start": 512, "length": 1024}]')


if __name__ == "__main__":
    main()
