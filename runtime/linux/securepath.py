"""Paths inside a container's rootfs that can never point outside it.

A rootfs comes from an image and may hold hostile symlinks (``/etc -> /``, ``a -> ../../..``).
``resolve_in_root`` follows them the way the kernel would if the rootfs were ``/`` (what
filepath-securejoin does), so a mount destination or device path cannot escape. The final
``open_in_root`` goes through openat2(RESOLVE_IN_ROOT) so the kernel itself enforces it.
"""

from __future__ import annotations

import os
import stat

from runtime.errors import LinuxError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from runtime.linux.syscalls import Syscalls

_MAX_SYMLINKS = 40  # the kernel's MAXSYMLINKS


def resolve_in_root(root: str, unsafe: str) -> str:
    """The host path of ``unsafe`` (a path inside the container) with every symlink resolved
    inside ``root``. Components that do not exist yet are kept as they are."""
    root = root.rstrip("/") or "/"
    pending = [p for p in unsafe.split("/") if p]
    pending.reverse()
    resolved: list[str] = []
    hops = 0
    while pending:
        part = pending.pop()
        if part == ".":
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root + "/" + "/".join([*resolved, part])
        try:
            info = os.lstat(candidate)
        except FileNotFoundError:
            resolved.append(part)
            continue
        except NotADirectoryError:
            resolved.append(part)
            continue
        if not stat.S_ISLNK(info.st_mode):
            resolved.append(part)
            continue
        hops += 1
        if hops > _MAX_SYMLINKS:
            raise LinuxError("resolve", 40, unsafe)  # ELOOP
        target = os.readlink(candidate)
        if target.startswith("/"):
            resolved = []
        more = [p for p in target.split("/") if p]
        more.reverse()
        pending.extend(more)
    return root + "/" + "/".join(resolved) if resolved else root


def mkdir_all(path: str, mode: int = 0o755) -> None:
    """``mkdir -p`` of an already-resolved host path."""
    try:
        os.makedirs(path, mode=mode, exist_ok=True)
    except FileExistsError:
        raise LinuxError("mkdir", 17, f"{path} (exists and is not a directory)") from None
    except OSError as err:
        raise LinuxError("mkdir", err.errno or 0, path) from None


def ensure_file(path: str) -> None:
    """Create an empty file at ``path`` (a bind-mount target for a file source)."""
    mkdir_all(os.path.dirname(path))
    try:
        fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    except IsADirectoryError:
        return
    except OSError as err:
        raise LinuxError("create", err.errno or 0, path) from None
    os.close(fd)


def open_in_root(sys: Syscalls, root_fd: int, path: str, flags: int) -> int:
    """openat2 with RESOLVE_IN_ROOT: the kernel keeps every lookup inside ``root_fd``."""
    from runtime.linux.syscalls import RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS

    return sys.openat2(
        root_fd, path.lstrip("/") or ".", flags, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS
    )
