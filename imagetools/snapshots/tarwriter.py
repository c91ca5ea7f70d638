"""Write a changeset as a gzip-compressed layer tar, hashing as it goes.

PAX format (long names, big ids, xattrs as ``SCHILY.xattr.NAME``), numeric owners only, times
in whole seconds (docker's choice: the same tree gives the same digest), hardlinks for every
further name of an inode already written, devices and FIFOs as such, sockets skipped. The
gzip header carries no name and mtime 0, so equal trees give equal blobs.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tarfile
import zlib

from imagetools.snapshots.changes import ENTRY, OPAQUE, PRIVATE_XATTRS, WHITEOUT, Change

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import BinaryIO

_COPY_BUFFER = 1 << 20


class LayerBlob:
    """What was written: the diff_id (uncompressed) and the blob's digest and size."""

    __slots__ = ("diff_id", "digest", "entries", "size")

    def __init__(self, diff_id: str, digest: str, size: int, entries: int) -> None:
        self.diff_id = diff_id
        self.digest = digest
        self.size = size
        self.entries = entries


class _Sink(io.RawIOBase):
    """tar bytes in: sha256 of them (diff_id), gzip them, sha256 of that (digest), write."""

    def __init__(self, out: BinaryIO, level: int) -> None:
        self.out = out
        self.plain = hashlib.sha256()
        self.packed = hashlib.sha256()
        self.compressor = zlib.compressobj(level, zlib.DEFLATED, 31)  # 31: gzip framing
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.plain.update(data)
        self._emit(self.compressor.compress(data))
        return len(data)

    def finish(self) -> None:
        self._emit(self.compressor.flush())

    def _emit(self, data: bytes) -> None:
        if data:
            self.packed.update(data)
            self.out.write(data)
            self.size += len(data)


def write_layer(changes: Iterable[Change], out: BinaryIO, level: int = 6) -> LayerBlob:
    sink = _Sink(out, level)
    entries = 0
    links: dict[tuple[int, int], str] = {}
    archive = tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT)  # noqa: SIM115
    archive.copybufsize = _COPY_BUFFER  # type: ignore[attr-defined]  # not in the stubs
    try:
        for change in changes:
            entries += _add(archive, change, links)
    finally:
        archive.close()
    sink.finish()
    return LayerBlob(
        f"sha256:{sink.plain.hexdigest()}", f"sha256:{sink.packed.hexdigest()}", sink.size, entries
    )


def _marker(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.REGTYPE
    info.mode = 0o644
    info.mtime = 0
    return info


def _add(archive: tarfile.TarFile, change: Change, links: dict[tuple[int, int], str]) -> int:
    if change.kind == WHITEOUT:
        parent, _, name = change.path.rpartition("/")
        archive.addfile(_marker(f"{parent}/.wh.{name}" if parent else f".wh.{name}"))
        return 1
    if change.kind == OPAQUE:
        archive.addfile(_marker(f"{change.path}/.wh..wh..opq"))
        return 1
    assert change.kind == ENTRY
    info = os.lstat(change.source)
    header = tarfile.TarInfo(change.path)
    header.mode = stat.S_IMODE(info.st_mode)
    header.uid, header.gid = info.st_uid, info.st_gid
    header.uname = header.gname = ""
    header.mtime = int(info.st_mtime)
    header.pax_headers = _xattrs(change.source)
    mode = info.st_mode
    if stat.S_ISREG(mode):
        key = (info.st_dev, info.st_ino)
        if info.st_nlink > 1 and key in links:
            header.type = tarfile.LNKTYPE
            header.linkname = links[key]
            archive.addfile(header)
            return 1
        if info.st_nlink > 1:
            links[key] = change.path
        header.type = tarfile.REGTYPE
        header.size = info.st_size
        with open(change.source, "rb", buffering=0) as handle:
            archive.addfile(header, handle)
        return 1
    if stat.S_ISDIR(mode):
        header.type = tarfile.DIRTYPE
    elif stat.S_ISLNK(mode):
        header.type = tarfile.SYMTYPE
        header.linkname = os.readlink(change.source)
    elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        header.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
        header.devmajor, header.devminor = os.major(info.st_rdev), os.minor(info.st_rdev)
    elif stat.S_ISFIFO(mode):
        header.type = tarfile.FIFOTYPE
    else:
        return 0  # a socket: tar cannot hold it
    archive.addfile(header)
    return 1


def _xattrs(path: str) -> dict[str, str]:
    """SCHILY.xattr records; values as surrogate-escaped str, which tarfile writes back as
    the original bytes (with hdrcharset=BINARY when they are not UTF-8)."""
    records: dict[str, str] = {}
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return records
    for name in sorted(names):
        if name.startswith(PRIVATE_XATTRS):
            continue
        try:
            value = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
        records[f"SCHILY.xattr.{name}"] = value.decode("utf-8", "surrogateescape")
    return records
