"""Take the kernel's cost of moving a process between cgroups off create's critical path.

Every cgroup migration takes ``cgroup_threadgroup_rwsem`` for writing, and the first writer
after a quiet period waits for an RCU grace period (5-20 ms on this class of VM; runc pays it
too) -- while holding ``cgroup_mutex``, so cgroup mkdirs wait as well. The rwsem's rcu_sync
then stays in its fast state for about one more grace period after the last writer.

So as pyrun starts, a forked helper moves itself into the cgroup it is already in (a no-op
for everything, visible nowhere), which starts the grace period while config parsing and
validation run, and then repeats the no-op every few ms to keep rcu_sync in its fast state
until create has moved init into the container's cgroup and stops it. Measured here: the
join's ~11 ms becomes ~1 ms. A thread, not a forked process: a fork would make every page the
parent writes afterwards a copy-on-write fault (~400 of them, 1-2 ms, measured). The thread
holds the GIL only for microseconds per round. Failures (no permission, odd hosts) are
ignored: it is only an optimisation, and it gives up by itself after half a second.
"""

from __future__ import annotations

import _thread
import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from runtime.cgroups.probe import Host

_INTERVAL = 0.003  # well inside any grace period, so rcu_sync never leaves its fast state
_GIVE_UP = 0.5


class Warmup:
    """The warm-up thread: ``start`` begins it, ``stop`` ends the rounds, ``wait`` joins."""

    __slots__ = ("_done", "_stop", "host")

    def __init__(self, host: Host | None) -> None:
        self._stop = False
        self._done = _thread.allocate_lock()
        self._done.acquire()
        self.host = host  # the probed layout, for create to reuse

    @classmethod
    def start(cls) -> Warmup:
        """Probe here, in the calling thread: the helper thread must run almost no Python, or
        it would take the GIL from the main thread in the middle of its work."""
        from runtime.cgroups.probe import probe
        from runtime.errors import CgroupError

        try:
            host: Host | None = probe()
        except CgroupError:
            host = None
        warmup = cls(host)
        target = target_of(host) if host is not None else None
        if target is None:
            warmup._done.release()
            return warmup
        _thread.start_new_thread(warmup._run, (target,))
        return warmup

    def _run(self, target: str) -> None:
        try:
            self._keep_migrating_in_place(target)
        finally:
            self._done.release()

    def _keep_migrating_in_place(self, target: str) -> None:
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CLOEXEC)
        except OSError:
            return  # only an optimisation
        try:
            me = str(os.getpid()).encode()
            end = time.monotonic() + _GIVE_UP
            while not self._stop and time.monotonic() < end:
                os.write(fd, me)
                time.sleep(_INTERVAL)
        except OSError:
            pass
        finally:
            os.close(fd)

    def stop(self) -> None:
        """The container has joined its cgroup: no more use for the fast state."""
        self._stop = True

    def wait(self) -> None:
        """Stop the rounds and wait for the thread to end (at most one round)."""
        self._stop = True
        self._done.acquire()
        self._done.release()


def target_of(host: Host) -> str | None:
    """cgroup.procs of this process's own cgroup in the first hierarchy of ``host``."""
    for key, hierarchy in host.hierarchies.items():
        own = host.own.get(key)
        if own is None:
            continue
        directory = hierarchy.mountpoint + _below_root(own, hierarchy.root)
        return f"{directory.rstrip('/')}/cgroup.procs"
    return None


def _below_root(own: str, root: str) -> str:
    if root in ("/", "") or not own.startswith(root):
        return own
    return own[len(root) :] or "/"
