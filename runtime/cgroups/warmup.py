"""Start the kernel's cost of moving a process between cgroups early, in the background.

Every cgroup migration takes ``cgroup_threadgroup_rwsem`` for writing, and the first writer
after a quiet period waits for an RCU grace period (5-20 ms on this class of VM; runc pays it
too) -- while holding ``cgroup_mutex``, so cgroup mkdirs wait as well. The rwsem's rcu_sync
stays in its fast state for about one more grace period after the last writer, so a migration
started as pyrun starts, overlapping config parsing and validation, makes the container's own
mkdirs and joins a few ms later cheap (measured here: ~11 ms -> ~1 ms).

The warm-up is a forked process that moves itself into the cgroup it is already in: a no-op
for everything, visible nowhere. A process rather than a thread, so that it never waits for
(or takes) the parent's GIL. Failures (no permission, odd hosts) are ignored: it is only an
optimisation.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from runtime.cgroups.probe import Host


class Early:
    """The host's probed cgroup layout plus the warm-up started from it (if any)."""

    __slots__ = ("host", "warmup")

    def __init__(self, host: Host, warmup: Warmup | None) -> None:
        self.host = host
        self.warmup = warmup

    def wait(self) -> None:
        if self.warmup is not None:
            self.warmup.wait()


def begin() -> Early | None:
    """Probe the cgroup layout and start the warm-up; None if there is no cgroup filesystem
    (create then reports that, after the config's own problems)."""
    from runtime.cgroups.probe import probe
    from runtime.errors import CgroupError

    try:
        host = probe()
    except CgroupError:
        return None
    return Early(host, start_warmup(host))


class Warmup:
    """The warm-up process; ``wait`` reaps it."""

    __slots__ = ("pid",)

    def __init__(self, target: str) -> None:
        self.pid = os.fork()
        if self.pid == 0:
            try:
                fd = os.open(target, os.O_WRONLY | os.O_CLOEXEC)
                os.write(fd, str(os.getpid()).encode())
            except OSError:
                pass
            os._exit(0)

    def wait(self) -> None:
        if self.pid:
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
            self.pid = 0


def start_warmup(host: Host) -> Warmup | None:
    """Begin a no-op migration of this process in one hierarchy of ``host``."""
    for key, hierarchy in host.hierarchies.items():
        own = host.own.get(key)
        if own is None:
            continue
        directory = hierarchy.mountpoint + _below_root(own, hierarchy.root)
        return Warmup(f"{directory.rstrip('/')}/cgroup.procs")
    return None


def _below_root(own: str, root: str) -> str:
    if root in ("/", "") or not own.startswith(root):
        return own
    return own[len(root) :] or "/"
