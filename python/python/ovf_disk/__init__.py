"""VMware virtual disks and OVF packages, from Python, at native speed.

Read any VMDK layout (hosted sparse and flat, stream-optimized, VMFS thick and thin, ESXi
snapshot deltas vmfsSparse and seSparse, parent chains), locally or at an ``http(s)://`` or
``s3://`` URL, as a file object; inspect an untrusted file without opening anything its
descriptor names; check, convert and inflate disks; verify, check, import, fix and export OVF
and OVA packages. The work is done by the Rust libraries of the ``ovf-disk`` project (the same
code as the ``ovf-disk`` command); every long call releases the GIL.

    >>> import ovf_disk
    >>> with ovf_disk.open("appliance-disk1.vmdk") as disk:      # doctest: +SKIP
    ...     head = disk.read(512)
    >>> ovf_disk.inspect("upload.vmdk")["allowed"]               # doctest: +SKIP
    True

Errors are raised as subclasses of :class:`ovf_disk.Error` (``DamagedError``,
``TruncatedError``, ``UnsupportedError``, ``RefusedError``, ``IoError``), each with ``path``,
``offset``, ``structure`` and ``category`` attributes.
"""

from __future__ import annotations

import io
import json
import os
import threading
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence, Union

from . import _native
from ._native import (
    DamagedError,
    Error,
    IoError,
    RefusedError,
    TruncatedError,
    UnsupportedError,
)

__all__ = [
    "Disk",
    "Package",
    "Run",
    "open",
    "inspect",
    "convert",
    "inflate",
    "export",
    "Error",
    "DamagedError",
    "TruncatedError",
    "UnsupportedError",
    "RefusedError",
    "IoError",
]

__version__ = _native.__version__

PathLike = Union[str, "os.PathLike[str]"]
Progress = Callable[[int, int], Any]

#: The createTypes :func:`inspect` allows unless told otherwise (OpenStack Glance's default).
GLANCE_ALLOWED = ("monolithicSparse", "streamOptimized")

#: Bytes :meth:`Disk.map` asks the library for at once.
_MAP_WINDOW = 1 << 30


def _name(path: PathLike) -> str:
    return os.fspath(path)


class Run(tuple):
    """One run of :meth:`Disk.map`: ``(offset, length, kind)``, kind ``"data"``, ``"zero"``
    (explicitly zeroed: ZERO extents, zeroed grains) or ``"unallocated"`` (stored nowhere in
    the chain; reads as zeros)."""

    __slots__ = ()

    def __new__(cls, offset: int, length: int, kind: str) -> "Run":
        return tuple.__new__(cls, (offset, length, kind))

    @property
    def offset(self) -> int:
        return self[0]

    @property
    def length(self) -> int:
        return self[1]

    @property
    def kind(self) -> str:
        return self[2]

    def __repr__(self) -> str:
        return f"Run(offset={self[0]}, length={self[1]}, kind={self[2]!r})"


class Disk(io.RawIOBase):
    """An open virtual disk: its virtual bytes as a read-only, seekable binary file.

    Made by :func:`open`. ``read``, ``readinto``, ``seek`` and ``tell`` work as on any raw
    file (reads past the end return ``b""``); :meth:`pread` and :meth:`preadinto` read at an
    offset without touching the position, from any number of threads at once (the GIL is
    released while the library reads, inflates and resolves parents).
    """

    def __init__(self, image: "_native.Image") -> None:
        super().__init__()
        self._image = image
        self._pos = 0
        self._lock = threading.Lock()

    # -- io.RawIOBase --------------------------------------------------------------------

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def writable(self) -> bool:
        return False

    def readinto(self, buffer: Any) -> int:
        """Reads into ``buffer`` (a writable bytes-like object) from the position."""
        self._checkClosed()
        with memoryview(buffer) as view, view.cast("B") as flat:
            with self._lock:
                n = self._image.readinto_at(flat, self._pos)
                self._pos += n
        return n

    def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes from the position (all the rest when ``size`` is negative)."""
        self._checkClosed()
        with self._lock:
            left = max(0, self._image.capacity - self._pos)
            n = left if size is None or size < 0 else min(size, left)
            data = self._image.read_at(self._pos, n)
            self._pos += len(data)
        return data

    def readall(self) -> bytes:
        return self.read(-1)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._checkClosed()
        with self._lock:
            if whence == io.SEEK_SET:
                pos = offset
            elif whence == io.SEEK_CUR:
                pos = self._pos + offset
            elif whence == io.SEEK_END:
                pos = self._image.capacity + offset
            else:
                raise ValueError(f"invalid whence ({whence})")
            if pos < 0:
                raise ValueError(f"negative seek position {pos}")
            self._pos = pos
            return pos

    def tell(self) -> int:
        self._checkClosed()
        return self._pos

    # -- positioned reads, for many threads -----------------------------------------------

    def pread(self, size: int, offset: int) -> bytes:
        """Up to ``size`` bytes at ``offset``; the position is not used or moved."""
        self._checkClosed()
        return self._image.read_at(offset, size)

    def preadinto(self, buffer: Any, offset: int) -> int:
        """Reads into ``buffer`` at ``offset``; returns the bytes read. Position unchanged."""
        self._checkClosed()
        with memoryview(buffer) as view, view.cast("B") as flat:
            return self._image.readinto_at(flat, offset)

    # -- what the disk is -----------------------------------------------------------------

    @property
    def capacity(self) -> int:
        """The virtual size in bytes."""
        return self._image.capacity

    @property
    def create_type(self) -> str:
        """The ``createType`` of the disk's first link (``raw`` for a raw image)."""
        return self._image.create_type

    @property
    def name(self) -> str:
        """The path or URL (without credentials and query) the disk was opened from."""
        return self._image.name

    def files(self) -> list[str]:
        """Every file the disk reads: each link of its chain and their extents."""
        return self._image.files()

    def info(self) -> dict:
        """What ``ovf-disk info --json`` prints for the disk: createType, capacity, CIDs,
        disk database, extents with their headers, allocation summary, parent links."""
        self._checkClosed()
        return json.loads(self._image.info())

    def map(self, offset: int = 0, length: Optional[int] = None) -> Iterator[Run]:
        """The allocation of ``length`` bytes from ``offset`` (default: to the end), resolved
        through the parents, as :class:`Run` tuples in order, adjacent runs of one kind merged.
        """
        self._checkClosed()
        end = self.capacity if length is None else min(self.capacity, offset + length)
        pending: Optional[list] = None
        at = offset
        while at < end:
            n = min(_MAP_WINDOW, end - at)
            for o, ln, kind in self._image.map(at, n):
                if pending is not None and pending[2] == kind and pending[0] + pending[1] == o:
                    pending[1] += ln
                    continue
                if pending is not None:
                    yield Run(*pending)
                pending = [o, ln, kind]
            at += n
        if pending is not None:
            yield Run(*pending)

    def check(self) -> dict:
        """What ``ovf-disk check --json`` prints for the disk: every structure walked, the
        problems found (``report["problems"]``; none when clean)."""
        self._checkClosed()
        return json.loads(self._image.check())

    def fetched(self) -> Optional[dict]:
        """For a disk at a URL: requests made, bytes fetched, retries. ``None`` for files."""
        text = self._image.fetched()
        return None if text is None else json.loads(text)

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{self.capacity} bytes, {self.create_type}"
        return f"<ovf_disk.Disk {self.name!r} ({state})>"


def open(path_or_url: PathLike, *, allow_outside_paths: bool = False, raw: Optional[bool] = False) -> Disk:
    """Opens a virtual disk for reading: a VMDK descriptor or single-file VMDK (its extents
    and parents followed), or with ``raw=True`` any file as raw bytes (``raw=None``: raw when
    the file is no VMDK and no other image format). Local paths, ``http(s)://`` URLs (ESXi
    datastore URLs too; credentials from the URL, ``OVF_DISK_USER``/``OVF_DISK_PASSWORD`` or
    ``~/.netrc``) and ``s3://`` URLs.

    Files a descriptor names outside its own folder (absolute paths, ``..``, links leading
    elsewhere) are refused with :class:`RefusedError` unless ``allow_outside_paths``.
    """
    return Disk(_native.Image(_name(path_or_url), allow_outside_paths=allow_outside_paths, raw=raw))


def inspect(path: PathLike, allowed: Optional[Iterable[str]] = GLANCE_ALLOWED) -> dict:
    """What an image service needs before it trusts a file, read from the file alone: no file
    its descriptor names is opened (names are only resolved and checked against its folder).

    Returns a dict: ``format`` (``vmdk``, ``vmfsSparse-extent``, ``seSparse-extent``,
    ``qcow2``, ``vhdx``, ``vhd``, ``vdi``, ``qed``, ``luks`` or ``raw``), ``create_type``,
    ``supported``, ``capacity`` (the virtual size), ``has_parent``, ``encrypted``, ``files``
    (each named file: ``role``, ``name``, ``path``, ``outside`` (why, or ``None``),
    ``is_self``), and the verdict: ``allowed`` (a VMDK of an allowed createType naming nothing
    outside its folder, no other file when single-file, no parent, not encrypted) with the
    ``reasons`` it is not. Raises only when the file itself cannot be read or its descriptor is
    damaged.
    """
    allow = list(GLANCE_ALLOWED if allowed is None else allowed)
    return json.loads(_native.inspect(_name(path), allow))


def _source(src: Union[PathLike, Disk]) -> Any:
    return src._image if isinstance(src, Disk) else _name(src)


def convert(
    src: Union[PathLike, Disk],
    dst: PathLike,
    to: str = "streamOptimized",
    *,
    zero: str = "write",
    threads: Optional[int] = None,
    replace: bool = False,
    allow_outside_paths: bool = False,
    progress: Optional[Progress] = None,
    cluster_size: Optional[int] = None,
    compress: Optional[str] = None,
    preallocation: Optional[str] = None,
    keep_chain: bool = False,
) -> dict:
    """Writes the disk ``src`` (a path, URL or open :class:`Disk`; a file that is no VMDK is
    read as raw; a qcow2 image) as ``to`` at ``dst``: any VMDK createType
    (``streamOptimized``, ``monolithicSparse``, ``monolithicFlat``, ``twoGbMaxExtentSparse``,
    ``vmfs``, ...), ``raw``, ``qcow2``, ``vhd`` (dynamic), ``vhd-fixed``, ``vhdx`` or
    ``vhdx-fixed``.

    For ``qcow2`` only: ``cluster_size`` (bytes, a power of two from 512 to 2 MiB; default
    64 KiB), ``compress`` (``"zlib"`` or ``"zstd"``: each cluster compressed, as ``qemu-img
    convert -c``), ``preallocation`` (``"off"``, ``"metadata"``, ``"falloc"``, ``"full"``) and
    ``keep_chain`` (a delta disk as a chain of qcow2 images, one per link, beside ``dst``).

    ``zero`` says how zeros reach raw and flat outputs: ``"write"`` (eager-zeroed),
    ``"falloc"`` (preallocated) or ``"sparse"`` (holes). ``progress(done, total)`` is called on
    the calling thread at most four times a second while the copy runs on threads of its own
    (the GIL released), and once at the end. ``KeyboardInterrupt``, or an exception raised by
    ``progress``, stops the copy: its temporary outputs are removed and the exception is
    raised. The output appears under ``dst`` only when complete; an existing ``dst`` is refused
    unless ``replace``. Returns what ``ovf-disk convert --json`` prints.
    """
    return json.loads(
        _native.convert(
            _source(src),
            _name(dst),
            to,
            zero=zero,
            threads=threads,
            replace=replace,
            allow_outside_paths=allow_outside_paths,
            progress=progress,
            cluster_size=cluster_size,
            compress=compress,
            preallocation=preallocation,
            keep_chain=keep_chain,
        )
    )


def inflate(
    src: Union[PathLike, Disk],
    dst: PathLike,
    *,
    esx: bool = False,
    zero: str = "write",
    threads: Optional[int] = None,
    replace: bool = False,
    allow_outside_paths: bool = False,
    progress: Optional[Progress] = None,
) -> dict:
    """Inflates the VMDK ``src`` (a path, URL or open :class:`Disk`) to an eager-zeroed thick
    disk at ``dst``: a raw image, or when ``dst`` ends in ``.vmdk`` a monolithicFlat VMDK
    (``vmfs`` with ``esx=True``). Progress, interruption and the report as in :func:`convert`.
    """
    return json.loads(
        _native.inflate(
            _source(src),
            _name(dst),
            esx=esx,
            zero=zero,
            threads=threads,
            replace=replace,
            allow_outside_paths=allow_outside_paths,
            progress=progress,
        )
    )


class Package:
    """An OVF package: an ``.ovf`` with the files beside it, or an ``.ova``; local or at a URL.

    Open one with :meth:`Package.open`. Every method returns what the matching ``ovf-disk``
    command prints with ``--json``, as a dict.
    """

    def __init__(self, native: "_native.NativePackage") -> None:
        self._native = native

    @classmethod
    def open(cls, path: PathLike, *, allow_outside_paths: bool = False) -> "Package":
        """Opens and parses the package at ``path``. ``ovf:href`` values leading outside the
        package (``..``, absolute paths) are described but not followed unless
        ``allow_outside_paths``."""
        return cls(_native.NativePackage(_name(path), allow_outside_paths=allow_outside_paths))

    @property
    def path(self) -> str:
        """The package's path (a URL without credentials)."""
        return self._native.path

    @property
    def descriptor(self) -> str:
        """The name of the OVF descriptor in the package (``app.ovf``)."""
        return self._native.descriptor

    def verify(self) -> dict:
        """The manifest's digests, the certificate's signature and chain (``verify --json``);
        ``report["ok"]``-style verdicts are in the dict's fields."""
        return json.loads(self._native.verify())

    def check(self, target: Optional[str] = None) -> dict:
        """Without ``target``: every disk read through and its structures checked
        (``check --json``). With ``target`` (``esxi``, ``vcenter``, ``workstation``,
        ``virtualbox``, ``virt-v2v``): what that product would refuse or change
        (``check --target T --json``)."""
        return json.loads(self._native.check(target))

    def ft(self, version: str = "smp") -> dict:
        """Fault Tolerance readiness (``check --ft --json``), ``legacy`` or ``smp``."""
        return json.loads(self._native.ft(version))

    def info(self) -> dict:
        """The package summarised (``info --json``): virtual systems, hardware, disks, files."""
        return json.loads(self._native.info())

    def import_to(
        self,
        outdir: PathLike,
        fmt: str = "vmdk",
        emit: Optional[Sequence[str]] = None,
        props: Optional[Mapping[str, str]] = None,
        *,
        deployment_option: Optional[str] = None,
        zero: str = "write",
        threads: Optional[int] = None,
        progress: Optional[Progress] = None,
    ) -> dict:
        """Verifies the package, then writes every disk eager-zeroed thick into ``outdir``
        (``fmt`` ``vmdk``: monolithicFlat; ``raw``), a new OVF naming them, a manifest, and the
        configurations ``emit`` asks for (``libvirt``, ``vmx``), with OVF properties ``props``.
        ``outdir`` is removed again if the import fails or is interrupted. Progress and
        interruption as in :func:`convert`. Returns ``import --json``'s dict."""
        return json.loads(
            self._native.import_to(
                _name(outdir),
                fmt,
                emit=list(emit) if emit is not None else None,
                props=dict(props) if props is not None else None,
                deployment_option=deployment_option,
                zero=zero,
                threads=threads,
                progress=progress,
            )
        )

    def fix(
        self,
        out: PathLike,
        target: str,
        *,
        allow_drop: bool = False,
        progress: Optional[Progress] = None,
    ) -> dict:
        """Writes ``out`` (an ``.ova``): this package changed so ``target`` takes it
        (``fix --json``). ``allow_drop`` lets it drop what the target cannot express."""
        return json.loads(
            self._native.fix(_name(out), target, allow_drop=allow_drop, progress=progress)
        )

    def __repr__(self) -> str:
        return f"<ovf_disk.Package {self.path!r}>"


def export(
    inputs: Sequence[PathLike],
    out: PathLike,
    *,
    manifest: str = "sha256",
    compress: bool = False,
    progress: Optional[Progress] = None,
) -> dict:
    """Makes an OVA at ``out`` of the disks ``inputs`` (raw images or VMDKs of any layout),
    each written stream-optimized, with a generated OVF and a manifest (``sha1``, ``sha256``,
    ``sha512``). Returns ``export --json``'s dict."""
    return json.loads(
        _native.export([_name(i) for i in inputs], _name(out), manifest=manifest, compress=compress, progress=progress)
    )
