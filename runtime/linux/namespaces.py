"""Which namespaces a container gets new, which it joins by path, and joining them."""

from __future__ import annotations

import os

from runtime.errors import LinuxError
from runtime.spec.tables import NAMESPACES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from runtime.linux.syscalls import Syscalls
    from runtime.spec.types import Namespace

# setns order: the user namespace first (it grants the rights to join the rest), the mount
# namespace last (joining it changes how the remaining paths resolve).
_JOIN_ORDER = ("user", "ipc", "uts", "network", "pid", "cgroup", "time", "mount")


class NamespacePlan:
    __slots__ = ("joins", "new_flags", "types")

    def __init__(self, namespaces: list[Namespace]) -> None:
        self.new_flags = 0
        self.joins: list[tuple[str, str]] = []  # (type, path)
        self.types = set()
        for ns in namespaces:
            kind = ns["type"]
            self.types.add(kind)
            path = ns.get("path")
            if path:
                self.joins.append((kind, path))
            else:
                self.new_flags |= NAMESPACES[kind][0]
        self.joins.sort(key=lambda item: _JOIN_ORDER.index(item[0]))

    def has_new(self, kind: str) -> bool:
        return bool(self.new_flags & NAMESPACES[kind][0])

    def has(self, kind: str) -> bool:
        return kind in self.types


def join_all(sys: Syscalls, joins: list[tuple[str, str]]) -> None:
    """Open every namespace file first, then setns into each."""
    opened: list[tuple[str, str, int]] = []
    try:
        for kind, path in joins:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as err:
                raise LinuxError(f"open {kind} namespace", err.errno or 0, path) from None
            opened.append((kind, path, fd))
        for kind, path, fd in opened:
            sys.setns(fd, NAMESPACES[kind][0], path)
    finally:
        for _, _, fd in opened:
            os.close(fd)
