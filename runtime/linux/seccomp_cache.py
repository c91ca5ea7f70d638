"""Compiled seccomp programs, cached by everything that determines them.

Compiling Docker's default profile costs 16-20 ms inside libseccomp (x86_64 + x86 + x32), on
the critical path of every create -- and containerd and podman send that same profile for every
container. The program depends only on the profile, on this libseccomp and on this kernel (its
flags are probed), so the key hashes those three. A hit spares loading libseccomp at all, in
the container's init (no compile) and in the parent (a cached profile already passed the host
check the first time). Entries are written atomically; a corrupt one is ignored.

Entry layout: b"PYSC1" | flags (u32, native) | program bytes (struct sock_filter array).
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from runtime.linux.seccomp import CompiledFilter

_MAGIC = b"PYSC1"
_LIBRARY_PLACES = (
    "/usr/lib/x86_64-linux-gnu/libseccomp.so.2",
    "/lib/x86_64-linux-gnu/libseccomp.so.2",
    "/usr/lib/aarch64-linux-gnu/libseccomp.so.2",
    "/lib/aarch64-linux-gnu/libseccomp.so.2",
    "/usr/lib64/libseccomp.so.2",
    "/usr/lib/libseccomp.so.2",
)


def _library_identity() -> bytes:
    for place in _LIBRARY_PLACES:
        try:
            info = os.stat(place)  # follows the .so.2 link to the real file
        except OSError:
            continue
        return f"{place}:{info.st_ino}:{info.st_size}:{info.st_mtime_ns}".encode()
    return b"no libseccomp found"


def cache_path(directory: str, profile: Any) -> str:
    """Where the program for ``profile`` is (or will be) kept under ``directory``."""
    import _sha256

    from runtime import jsonfast

    digest = _sha256.sha256()
    digest.update(_MAGIC)
    digest.update(_library_identity())
    digest.update(os.uname().release.encode())
    digest.update(jsonfast.dumps(profile).encode())
    return f"{directory}/{digest.hexdigest()}"


def load(path: str) -> CompiledFilter | None:
    from runtime.linux.seccomp import CompiledFilter

    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    header = len(_MAGIC) + 4
    if not data.startswith(_MAGIC) or len(data) <= header or (len(data) - header) % 8:
        return None
    flags = int.from_bytes(data[len(_MAGIC) : header], "little")
    return CompiledFilter(data[header:], flags, [])


def store(path: str, compiled: CompiledFilter) -> None:
    """Best effort: a cache that cannot be written only costs the next compile."""
    directory = path.rpartition("/")[0]
    temp = f"{path}.tmp{os.getpid()}"
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, _MAGIC + compiled.flags.to_bytes(4, "little") + compiled.program)
        finally:
            os.close(fd)
        os.rename(temp, path)
    except OSError:
        try:
            os.unlink(temp)
        except OSError:
            pass
