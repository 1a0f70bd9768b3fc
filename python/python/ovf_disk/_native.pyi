"""Type stubs of ovf_disk._native, the compiled half of ovf_disk (use the ovf_disk module)."""

from typing import Any, Callable, Optional, Sequence

__version__: str

class Error(Exception):
    path: Optional[str]
    offset: Optional[int]
    structure: Optional[str]
    category: str

class DamagedError(Error): ...
class TruncatedError(DamagedError): ...
class UnsupportedError(Error): ...
class RefusedError(Error): ...
class IoError(Error): ...

class Image:
    def __init__(self, path: str, *, allow_outside_paths: bool = False, raw: Optional[bool] = False) -> None: ...
    @property
    def capacity(self) -> int: ...
    @property
    def create_type(self) -> str: ...
    @property
    def name(self) -> str: ...
    def files(self) -> list[str]: ...
    def read_at(self, offset: int, size: int) -> bytes: ...
    def readinto_at(self, buffer: Any, offset: int) -> int: ...
    def info(self) -> str: ...
    def map(self, offset: int, length: int) -> list[tuple[int, int, str]]: ...
    def check(self) -> str: ...
    def fetched(self) -> Optional[str]: ...

class NativePackage:
    def __init__(self, path: str, *, allow_outside_paths: bool = False) -> None: ...
    @property
    def path(self) -> str: ...
    @property
    def descriptor(self) -> str: ...
    def verify(self) -> str: ...
    def check(self, target: Optional[str] = None) -> str: ...
    def ft(self, version: str = "smp") -> str: ...
    def info(self) -> str: ...
    def import_to(
        self,
        outdir: str,
        fmt: str = "vmdk",
        *,
        emit: Optional[list[str]] = None,
        props: Optional[dict[str, str]] = None,
        deployment_option: Optional[str] = None,
        zero: str = "write",
        threads: Optional[int] = None,
        progress: Optional[Callable[[int, int], Any]] = None,
    ) -> str: ...
    def fix(
        self,
        out: str,
        target: str,
        *,
        allow_drop: bool = False,
        progress: Optional[Callable[[int, int], Any]] = None,
    ) -> str: ...

def inspect(path: str, allowed: Optional[list[str]] = None) -> str: ...
def convert(
    src: Any,
    dst: str,
    to: str = "streamOptimized",
    *,
    zero: str = "write",
    threads: Optional[int] = None,
    replace: bool = False,
    allow_outside_paths: bool = False,
    progress: Optional[Callable[[int, int], Any]] = None,
    cluster_size: Optional[int] = None,
    compress: Optional[str] = None,
    preallocation: Optional[str] = None,
    keep_chain: bool = False,
) -> str: ...
def inflate(
    src: Any,
    dst: str,
    *,
    esx: bool = False,
    zero: str = "write",
    threads: Optional[int] = None,
    replace: bool = False,
    allow_outside_paths: bool = False,
    progress: Optional[Callable[[int, int], Any]] = None,
) -> str: ...
def export(
    inputs: Sequence[str],
    out: str,
    *,
    manifest: str = "sha256",
    compress: bool = False,
    progress: Optional[Callable[[int, int], Any]] = None,
) -> str: ...
