"""OOM notifications of a container's memory cgroup, for ``pyrun events``.

* v1 (memory controller in a v1 hierarchy, also on hybrid hosts): an eventfd registered on
  ``memory.oom_control`` through ``cgroup.event_control``. The kernel signals it each time the
  cgroup runs out of memory, and once more when the cgroup is removed (told apart by
  ``cgroup.event_control`` being gone, as runc does). Immediate.
* v2: the ``oom_kill`` counter of ``memory.events`` (``oom`` on kernels without it), read every
  ``POLL_SECONDS``: one event per read that finds it grown. A change can thus be reported up to
  ``POLL_SECONDS`` late, and two kills within one poll read as one event.

The watcher never blocks: the caller polls ``fd`` (v1) or wakes every ``poll_every`` seconds
(v2) and then asks ``check()`` how many events to report.
"""

from __future__ import annotations

import errno
import os

from runtime.cgroups.convert import parse_flat_keyed
from runtime.errors import CgroupError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from runtime.cgroups.base import CgroupFS, Manager

POLL_SECONDS = 0.25


class OomWatcher:
    """One container's OOM notifications; ``close()`` releases the kernel registration."""

    fd: int | None = None  # pollable (POLLIN) when the kernel has something to say
    poll_every: float | None = None  # seconds between check() calls when there is no fd
    gone = False  # the cgroup was removed: no more events will come

    def check(self) -> int:
        """How many OOM events happened since the last call (never blocks)."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class _EventfdWatcher(OomWatcher):
    def __init__(self, fs: CgroupFS, path: str) -> None:
        self._fs = fs
        self._control = f"{path}/cgroup.event_control"
        self._oom_fd = -1
        try:
            self._oom_fd = os.open(f"{path}/memory.oom_control", os.O_RDONLY | os.O_CLOEXEC)
            self.fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        except OSError as exc:
            self.close()
            raise CgroupError(
                f"cannot watch {path}/memory.oom_control: {os.strerror(exc.errno or 0).lower()}"
            ) from None
        try:
            fs.write(self._control, f"{self.fd} {self._oom_fd}")
        except CgroupError:
            self.close()
            raise

    def check(self) -> int:
        if self.fd is None:
            return 0
        try:
            os.eventfd_read(self.fd)
        except BlockingIOError:
            return 0
        except OSError as exc:
            if exc.errno == errno.EAGAIN:
                return 0
            raise
        if not self._fs.exists(self._control):
            self.gone = True  # the notification of the cgroup's removal, not an OOM
            self.close()
            return 0
        return 1  # one event per wake-up, however many the counter holds (runc's rule)

    def close(self) -> None:
        for fd in (self.fd, self._oom_fd):
            if fd is not None and fd >= 0:
                os.close(fd)
        self.fd = None
        self._oom_fd = -1


class _CounterWatcher(OomWatcher):
    def __init__(self, fs: CgroupFS, path: str) -> None:
        self._fs = fs
        self._events = f"{path}/memory.events"
        self.poll_every = POLL_SECONDS
        self._last = self._count()

    def _count(self) -> int:
        text = self._fs.read_optional(self._events)
        if text is None:
            self.gone = True
            return 0
        counters = parse_flat_keyed(text)
        return counters.get("oom_kill", counters.get("oom", 0))

    def check(self) -> int:
        if self.gone:
            return 0
        count = self._count()
        grown = count > self._last
        self._last = max(count, self._last)
        return 1 if grown else 0


def watch_oom(manager: Manager) -> OomWatcher | None:
    """The watcher for the container's memory cgroup; None when it has none (no memory
    controller, or a cgroup2 directory without memory.events)."""
    fs = manager.fs
    path = manager.path("memory") if manager.version != "v2" else None
    if path is not None:
        if not fs.exists(f"{path}/cgroup.event_control"):
            return None
        return _EventfdWatcher(fs, path)
    unified = manager.path("unified")
    if unified is not None and fs.exists(f"{unified}/memory.events"):
        return _CounterWatcher(fs, unified)
    return None
