"""Capabilities: the five sets of ``process.capabilities`` applied in runc's order.

Order matters (libcontainer/init_linux.go finalizeNamespace): drop the bounding set while
CAP_SETPCAP is still effective -> keep capabilities across the uid switch (PR_SET_KEEPCAPS) ->
switch user -> capset(effective, permitted, inheritable) -> raise ambient.
"""

from __future__ import annotations

from runtime.spec.tables import CAPABILITIES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from runtime.linux.syscalls import Syscalls
    from runtime.spec.types import Capabilities


def last_cap() -> int:
    """The highest capability this kernel knows (names above it are skipped, like runc)."""
    try:
        with open("/proc/sys/kernel/cap_last_cap", "rb") as handle:
            return int(handle.read())
    except OSError:
        return max(CAPABILITIES.values())


def mask(names: list[str] | None, limit: int) -> int:
    bits = 0
    for name in names or []:
        number = CAPABILITIES[name]
        if number <= limit:
            bits |= 1 << number
    return bits


class CapabilityPlan:
    """The bit masks for one process, computed before any privilege is given up."""

    __slots__ = ("ambient", "bounding", "effective", "inheritable", "limit", "permitted")

    def __init__(self, caps: Capabilities | None, limit: int | None = None) -> None:
        caps = caps or {}
        self.limit = last_cap() if limit is None else limit
        self.bounding = mask(caps.get("bounding"), self.limit)
        self.effective = mask(caps.get("effective"), self.limit)
        self.permitted = mask(caps.get("permitted"), self.limit)
        self.inheritable = mask(caps.get("inheritable"), self.limit)
        self.ambient = mask(caps.get("ambient"), self.limit)

    def drop_bounding(self, sys: Syscalls) -> None:
        from runtime.linux.syscalls import PR_CAPBSET_DROP

        for number in range(self.limit + 1):
            if not self.bounding & (1 << number):
                sys.prctl(PR_CAPBSET_DROP, number)

    def apply(self, sys: Syscalls) -> None:
        from runtime.linux.syscalls import (
            PR_CAP_AMBIENT,
            PR_CAP_AMBIENT_CLEAR_ALL,
            PR_CAP_AMBIENT_RAISE,
        )

        sys.capset(self.effective, self.permitted, self.inheritable)
        sys.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
        # An ambient capability must also be permitted and inheritable, or the kernel refuses
        # it; runc skips such names silently, and so do we.
        allowed = self.ambient & self.permitted & self.inheritable
        for number in range(self.limit + 1):
            if allowed & (1 << number):
                sys.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, number)
