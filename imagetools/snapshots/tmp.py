"""Work directories under ``<root>/snapshots/tmp``: what a killed process leaves there is
recognised as a leftover (no live flock) and removed by the next user; nothing in tmp/ is
ever used as a finished snapshot."""

from __future__ import annotations

import os

from imagetools.snapshots.layout import Layout

_LOCK = ".lock"
_NEW = ".locknew"


class TmpDir:
    """``tmp/<random>``, guarded by ``tmp/<random>.lock`` that is flocked BEFORE it gets its
    name (made as ``.locknew``, locked, renamed): a cleaner that can flock a ``.lock`` knows
    its owner is gone. Removed on exit unless renamed away; an overlay mounted on its
    ``merged`` subdir is unmounted first."""

    def __init__(self, layout: Layout, prefix: str = "") -> None:
        self.layout = layout
        self.path = f"{layout.tmp}/{prefix}{os.urandom(8).hex()}"
        self.guard = -1

    def __enter__(self) -> str:
        import fcntl

        os.makedirs(self.layout.tmp, exist_ok=True)
        fresh = f"{self.path}{_NEW}"
        self.guard = os.open(fresh, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.guard, fcntl.LOCK_EX)
        os.rename(fresh, f"{self.path}{_LOCK}")
        os.mkdir(self.path, 0o700)
        return self.path

    def __exit__(self, *_exc: object) -> None:
        try:
            _discard(self.path)
        finally:
            os.close(self.guard)


def remove_stale(layout: Layout) -> list[str]:
    """Remove the tmp dirs whose owner is gone; returns their paths."""
    try:
        names = os.listdir(layout.tmp)
    except FileNotFoundError:
        return []
    removed = []
    for name in names:
        if name.endswith(_NEW):
            _remove_if_unlocked(f"{layout.tmp}/{name}", None)
            continue
        base = name.removesuffix(_LOCK)
        if name != base and base in names:
            continue  # handled with its directory
        if _remove_if_unlocked(f"{layout.tmp}/{base}{_LOCK}", f"{layout.tmp}/{base}"):
            removed.append(f"{layout.tmp}/{base}")
    return removed


def _remove_if_unlocked(lock: str, directory: str | None) -> bool:
    import fcntl

    try:
        fd = os.open(lock, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        fd = -1  # a directory without its lock file: its owner removed the lock, then died
    try:
        if fd >= 0:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # alive
        if directory is not None:
            _discard(directory)
        else:
            _unlink(lock)
        return True
    finally:
        if fd >= 0:
            os.close(fd)


def _discard(path: str) -> None:
    import shutil

    from imagetools.snapshots import overlay

    merged = f"{path}/merged"
    if os.path.isdir(merged) and overlay.mounted_upper(merged) is not None:
        overlay.unmount(merged)
    shutil.rmtree(path, ignore_errors=True)
    _unlink(f"{path}{_LOCK}")


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
