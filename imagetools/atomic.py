"""Atomic file writes for the store, the unpackers and the credentials file (``os`` only: the
quick unpack path imports this too).

``write_atomic(path, data)``: a temp file next to ``path`` written whole, fsynced, renamed
over ``path``, so a killed writer leaves the old file or the new one (with the fsync, so does
a power cut).
"""

from __future__ import annotations

import os


def write_atomic(
    path: str,
    data: bytes,
    mode: int = 0o644,
    *,
    temp: str | None = None,
    exact_mode: bool = False,
    durable: bool = True,
) -> None:
    """Write ``data`` to ``path`` through ``temp`` (default ``<path>.tmp<pid>``), created with
    ``mode`` (less the umask, unless ``exact_mode``); fsync unless not ``durable``."""
    temp = temp or f"{path}.tmp{os.getpid()}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        if exact_mode:
            os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(temp, path)
