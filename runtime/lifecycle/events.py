"""``pyrun events [--stats] [--interval 5s] ID``: the container's stats and OOM events, one JSON
object per line, in runc's format (runc ``types/events.go``)::

    {"type":"stats","id":"ID","data":{"cpu":{…},"memory":{…},"pids":{…},"blkio":{…},…}}
    {"type":"oom","id":"ID"}

``--stats`` prints one stats event and exits. Otherwise a stats event follows every interval
(the first after one interval, as runc's ticker) and an oom event each time the memory cgroup
reports one (``runtime.cgroups.oom``: at once on v1, within 0.25 s on v2), until the
container's init exits; then ``events`` exits 0. (runc goes on until the cgroup is removed,
printing errors meanwhile: a stopped container has nothing left to report.) SIGINT and SIGTERM
end the stream cleanly, with exit 0.

The end of the container is seen through a pidfd on its init (checked against the recorded
start time, so a reused pid cannot stand in for it), without polling.
"""

from __future__ import annotations

import os
import time

from runtime import jsonfast
from runtime.errors import CgroupError, PyrunError, StateError
from runtime.lifecycle import status as st
from runtime.lifecycle.container import Container, Context

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Generator, Iterator
    from typing import Any

    from runtime.cgroups.base import CgroupManager

# Go's time.ParseDuration units, in nanoseconds.
_UNITS = {
    "ns": 1,
    "us": 1_000,
    "\u00b5s": 1_000,  # micro sign
    "\u03bcs": 1_000,  # Greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_LIVENESS_POLL = 0.25  # seconds between liveness checks when pidfd_open is unavailable


def parse_duration(text: str) -> float:
    """Go ``time.ParseDuration`` ("5s", "1m30s", "250ms", "1.5h", "-2s", "0") in seconds;
    ValueError with Go's words."""
    quoted = jsonfast.dumps(text)
    rest = text
    negative = rest[:1] == "-"
    if rest[:1] in ("-", "+"):
        rest = rest[1:]
    if rest == "0":
        return 0.0
    if not rest:
        raise ValueError(f"time: invalid duration {quoted}")
    total = 0.0
    while rest:
        index = 0
        while index < len(rest) and rest[index] in "0123456789.":
            index += 1
        number, rest = rest[:index], rest[index:]
        if number.count(".") > 1 or not any(c.isdigit() for c in number):
            raise ValueError(f"time: invalid duration {quoted}")
        index = 0
        while index < len(rest) and rest[index] not in "0123456789.":
            index += 1
        unit, rest = rest[:index], rest[index:]
        if not unit:
            raise ValueError(f"time: missing unit in duration {quoted}")
        if unit not in _UNITS:
            raise ValueError(f"time: unknown unit {jsonfast.dumps(unit)} in duration {quoted}")
        total += float(number) * _UNITS[unit]
    seconds = total / 1e9
    return -seconds if negative else seconds


def interval_seconds(text: str) -> float:
    try:
        seconds = parse_duration(text)
    except ValueError as err:
        quoted = jsonfast.dumps(text)
        raise PyrunError(f"invalid value {quoted} for flag -interval: {err}") from None
    if seconds <= 0:
        raise PyrunError("duration interval must be greater than 0")
    return seconds


def event_line(kind: str, container_id: str, data: dict[str, Any] | None = None) -> str:
    event: dict[str, Any] = {"type": kind, "id": container_id}
    if data is not None:
        event["data"] = data
    return jsonfast.dumps(event) + "\n"


def events(
    ctx: Context, container_id: str, interval: str = "5s", stats_only: bool = False
) -> Generator[str, None, None]:
    """The lines to print, as they happen. A generator: the checks run at the first next()."""
    seconds = interval_seconds(interval)
    container = Container.load(ctx.store, container_id)
    if container.status() is st.STOPPED:
        raise StateError(f"container with id {container_id} is not running")
    manager = container.cgroup()
    if manager is None:
        raise CgroupError(f"container {container_id} has no cgroup: no stats to show")
    if stats_only:
        yield event_line("stats", container_id, manager.stats())
        return
    yield from _stream(container, manager, seconds)


def _stream(container: Container, manager: CgroupManager, seconds: float) -> Iterator[str]:
    import select
    import signal

    from runtime import log
    from runtime.cgroups.base import Manager
    from runtime.cgroups.oom import watch_oom

    # TERM ends the stream like Ctrl-C: the CLI edge treats both as the end, not an error.
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler)
    watcher = watch_oom(manager) if isinstance(manager, Manager) else None
    pidfd = _pidfd(container)
    try:
        poller = select.poll()
        if pidfd is not None:
            poller.register(pidfd, select.POLLIN)
        if watcher is not None and watcher.fd is not None:
            poller.register(watcher.fd, select.POLLIN)
        next_stats = time.monotonic() + seconds
        while True:
            wait = next_stats - time.monotonic()
            if watcher is not None and watcher.poll_every is not None and not watcher.gone:
                wait = min(wait, watcher.poll_every)
            if pidfd is None:
                wait = min(wait, _LIVENESS_POLL)
            ready = {fd for fd, _ in poller.poll(max(0, int(wait * 1000) + 1))}
            if watcher is not None:
                if watcher.fd is not None and watcher.fd in ready:
                    fd = watcher.fd
                    for _ in range(watcher.check()):
                        yield event_line("oom", container.id)
                    if watcher.gone:
                        poller.unregister(fd)  # the cgroup was removed
                elif watcher.poll_every is not None:
                    for _ in range(watcher.check()):
                        yield event_line("oom", container.id)
            if (pidfd is not None and pidfd in ready) or not container.init_alive():
                if watcher is not None:  # an OOM kill of init: its event may come last
                    for _ in range(watcher.check()):
                        yield event_line("oom", container.id)
                return
            now = time.monotonic()
            if now >= next_stats:
                next_stats += seconds
                if next_stats <= now:  # fell behind (a slow read): skip, as a ticker does
                    next_stats = now + seconds
                try:
                    data = manager.stats()
                except CgroupError as err:
                    if not container.init_alive():
                        return
                    log.error(err.message)  # runc logs and goes on to the next tick
                    continue
                yield event_line("stats", container.id, data)
    finally:
        if watcher is not None:
            watcher.close()
        if pidfd is not None:
            os.close(pidfd)
        signal.signal(signal.SIGTERM, previous)


def _pidfd(container: Container) -> int | None:
    """A pidfd of the container's init, or None (kernel before 5.3: liveness is polled)."""
    try:
        fd = os.pidfd_open(container.pid)
    except (OSError, AttributeError):
        return None
    if not container.init_alive():  # the pid was reused between status() and now
        os.close(fd)
        return None
    return fd
