"""A bundle's changes as a layer changeset (image-spec layer.md), in tar order.

Two sources, one output (``Change`` items, parents before children, names sorted):

* overlay: the upper dir *is* the changeset. A 0/0 character device is a deleted name
  (``.wh.NAME``); a directory with ``trusted.overlay.opaque=y`` hides everything below it
  (``.wh..wh..opq`` after the directory's own entry); everything else is written as it is.
* vfs: the rootfs is compared with the ``base`` manifest recorded right after unpack (path ->
  inode, type, mode, uid, gid, size, ctime_ns, link target). Every write, chmod, chown,
  rename or link changes an inode's ctime, so inode + ctime find changes without hashing:
  new or changed paths are written whole, paths gone are whiteouts, a path whose type changed
  is written as its new self (an applier replaces a directory by a file and vice versa).
  Parent directories of a change are written too (their attributes), as containerd does.
  ctime comes from a coarse clock (one tick, up to 10 ms, on kernels without multigrain
  timestamps): a path whose ctime was set within ``FRESH_NS`` before the scan (right after
  unpack, that is most of a small tree) could change again in the same tick unseen. For those
  ("fresh") paths the scan also records a fingerprint of what a layer would hold of them
  (mtime, link count, device number, xattrs, a regular file's sha256); while their ctime is
  unchanged, commit compares that fingerprint instead. So an untouched path is never in the
  layer and a changed one always is, whatever the timing; only fresh paths are hashed.
"""

from __future__ import annotations

import errno
import os
import stat
import time

from imagetools.errors import SnapshotError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

OPAQUE_XATTR = "trusted.overlay.opaque"
# Overlay bookkeeping an upper dir may carry; never part of an image.
PRIVATE_XATTRS = ("trusted.overlay.", "user.overlay.")
_UNSUPPORTED = ("trusted.overlay.metacopy", "trusted.overlay.redirect")
# listxattr errors that mean "no xattrs here" (a filesystem or a file type without them).
_NO_XATTRS = (errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM)

ENTRY = "entry"  # write the file at ``source`` as ``path``
WHITEOUT = "whiteout"  # ``path`` was deleted: write dirname/.wh.basename
OPAQUE = "opaque"  # the directory ``path`` hides its lower children: write path/.wh..wh..opq


class Change:
    __slots__ = ("kind", "path", "source")

    def __init__(self, kind: str, path: str, source: str = "") -> None:
        self.kind = kind
        self.path = path  # relative to the rootfs, no leading "/"
        self.source = source  # absolute path on disk (entries only)

    def __repr__(self) -> str:
        return f"Change({self.kind}, {self.path!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Change) and (self.kind, self.path, self.source) == (
            other.kind,
            other.path,
            other.source,
        )


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def _names(directory: str) -> list[str]:
    return sorted(os.listdir(directory))


def is_whiteout(info: os.stat_result) -> bool:
    return stat.S_ISCHR(info.st_mode) and info.st_rdev == 0


# -- overlay -------------------------------------------------------------------------------------


def overlay_changes(upper: str) -> Iterator[Change]:
    """The changes an overlay upper dir holds."""
    yield from _walk_upper(upper, "")


def _walk_upper(upper: str, relative: str) -> Iterator[Change]:
    directory = _join(upper, relative) if relative else upper
    for name in _names(directory):
        path = _join(relative, name)
        source = f"{upper}/{path}"
        info = os.lstat(source)
        if is_whiteout(info):
            yield Change(WHITEOUT, path)
            continue
        _refuse_pointers(source, path)
        yield Change(ENTRY, path, source)
        if stat.S_ISDIR(info.st_mode):
            if _xattr(source, OPAQUE_XATTR) == b"y":
                yield Change(OPAQUE, path)
            yield from _walk_upper(upper, path)


def _xattr(path: str, name: str) -> bytes | None:
    try:
        return os.getxattr(path, name, follow_symlinks=False)
    except OSError:
        return None


def _refuse_pointers(source: str, path: str) -> None:
    """metacopy and redirect entries point into the lowers: not a self-contained changeset
    (we mount with both off; an upper dir made elsewhere might have them)."""
    for name in _UNSUPPORTED:
        if _xattr(source, name) is not None:
            raise SnapshotError(
                f"/{path} in the upper dir carries {name}: remount without metacopy and"
                " redirect_dir to commit"
            )


# -- vfs -----------------------------------------------------------------------------------------

# A base entry: [path, inode, st_mode, uid, gid, size, ctime_ns, link target or "",
# fingerprint]: the fingerprint is "" for a path older than the fresh window, null when a
# fresh path could not be read (it then always counts as changed). Version 1 manifests have
# no fingerprints: their fresh paths always count as changed.
BaseEntry = list["Any"]
FRESH_NS = 50_000_000
_CHUNK = 1 << 20


def scan(rootfs: str) -> dict[str, Any]:
    """The compact manifest of a tree: {"scanned_ns", "entries"}, parents before children
    (the rootfs itself not included). Paths are str with surrogate escapes for undecodable
    bytes."""
    entries: list[BaseEntry] = []
    started = time.time_ns()
    _scan(rootfs, "", entries, started - FRESH_NS)
    return {"version": 2, "scanned_ns": started, "entries": entries}


def _scan(rootfs: str, relative: str, out: list[BaseEntry], fresh: int) -> None:
    directory = _join(rootfs, relative) if relative else rootfs
    with os.scandir(directory) as iterator:
        items = sorted(iterator, key=lambda e: e.name)
    for item in items:
        info = item.stat(follow_symlinks=False)
        path = _join(relative, item.name)
        link = os.readlink(item.path) if stat.S_ISLNK(info.st_mode) else ""
        mark = fingerprint(item.path, info) if info.st_ctime_ns >= fresh else ""
        out.append(
            [path, info.st_ino, info.st_mode, info.st_uid, info.st_gid, info.st_size,
             info.st_ctime_ns, link, mark]
        )  # fmt: skip
        if stat.S_ISDIR(info.st_mode):
            _scan(rootfs, path, out, fresh)


def fingerprint(source: str, info: os.stat_result) -> str | None:
    """What a layer holds of a path beyond inode, mode, owner, size and link target (which
    the base entry has anyway): mtime, link count, device number, xattrs and, for a regular
    file, the sha256 of its contents. None when it cannot be read."""
    import hashlib  # only here: the fast unpack path must not import it

    digest = hashlib.sha256(f"{info.st_mtime_ns} {info.st_nlink} {info.st_rdev}\0".encode())
    try:
        names = sorted(os.listxattr(source, follow_symlinks=False))
    except OSError as err:
        if err.errno not in _NO_XATTRS:
            return None
        names = []
    try:
        for name in names:
            value = os.getxattr(source, name, follow_symlinks=False)
            key = os.fsencode(name)
            digest.update(b"%d %s\0%d %s\0" % (len(key), key, len(value), value))
        if stat.S_ISREG(info.st_mode):
            digest.update(b"data\0")
            with open(source, "rb", buffering=0) as handle:
                while chunk := handle.read(_CHUNK):
                    digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def _same(base: BaseEntry, info: os.stat_result, source: str, fresh: int) -> bool:
    if (base[1], base[2], base[3], base[4], base[5], base[6]) != (
        info.st_ino,
        info.st_mode,
        info.st_uid,
        info.st_gid,
        info.st_size,
        info.st_ctime_ns,
    ):
        return False
    if stat.S_ISLNK(info.st_mode) and os.readlink(source) != base[7]:
        return False
    if base[6] < fresh:
        return True
    # ctime was set in the scan's clock tick: a change since may have left it as it was.
    recorded = base[8] if len(base) > 8 else None
    return isinstance(recorded, str) and bool(recorded) and fingerprint(source, info) == recorded


def vfs_changes(rootfs: str, base: dict[str, Any]) -> Iterator[Change]:
    """The changes of ``rootfs`` since ``base`` (``scan``'s result) was taken."""
    entries: list[BaseEntry] = base["entries"]
    by_path = {str(entry[0]): entry for entry in entries}
    children: dict[str, list[str]] = {}
    for entry in entries:
        parent, _, name = str(entry[0]).rpartition("/")
        children.setdefault(parent, []).append(name)
    fresh = int(base["scanned_ns"]) - FRESH_NS
    yield from _walk_vfs(rootfs, "", _Walk(by_path, children, fresh))


class _Walk:
    __slots__ = ("base", "children", "fresh", "written")

    def __init__(
        self, base: dict[str, BaseEntry], children: dict[str, list[str]], fresh: int
    ) -> None:
        self.base = base
        self.children = children
        self.fresh = fresh
        self.written: set[str] = set()


def _walk_vfs(rootfs: str, relative: str, walk: _Walk) -> Iterator[Change]:
    directory = _join(rootfs, relative) if relative else rootfs
    present = _names(directory)
    was_here = walk.children.get(relative, []) if _base_dir(walk.base, relative) else []
    written = walk.written
    for name in sorted(set(present) | set(was_here)):
        path = _join(relative, name)
        if name not in present:
            yield from _parents(rootfs, relative, written)
            yield Change(WHITEOUT, path)
            continue
        source = f"{rootfs}/{path}"
        info = os.lstat(source)
        if stat.S_ISSOCK(info.st_mode):
            continue  # tar has no sockets (docker skips them too)
        old = walk.base.get(path)
        if old is None or not _same(old, info, source, walk.fresh):
            yield from _parents(rootfs, relative, written)
            yield Change(ENTRY, path, source)
            if stat.S_ISDIR(info.st_mode):
                written.add(path)
        if stat.S_ISDIR(info.st_mode):
            yield from _walk_vfs(rootfs, path, walk)


def _base_dir(base: dict[str, BaseEntry], relative: str) -> bool:
    """Whether ``relative`` was a directory in the base (its old children then count)."""
    if not relative:
        return True
    old = base.get(relative)
    return old is not None and stat.S_ISDIR(old[2])


def _parents(rootfs: str, relative: str, written: set[str]) -> Iterator[Change]:
    """The not yet written directories down to ``relative``, outermost first."""
    if not relative or relative in written:
        return
    parts = relative.split("/")
    for depth in range(1, len(parts) + 1):
        path = "/".join(parts[:depth])
        if path not in written:
            written.add(path)
            yield Change(ENTRY, path, f"{rootfs}/{path}")
