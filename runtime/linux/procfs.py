"""Facts about processes read from /proc: liveness that is safe against pid reuse."""

from __future__ import annotations


def stat_fields(pid: int, proc: str = "/proc") -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (state is [0], starttime [19])."""
    try:
        with open(f"{proc}/{pid}/stat", "rb") as handle:
            raw = handle.read()
    except OSError:
        return None
    # The command name may contain spaces and parentheses: split after the last ')'.
    return raw[raw.rfind(b")") + 2 :].decode().split()


def start_time(pid: int, proc: str = "/proc") -> int | None:
    """The process's start time in clock ticks since boot, or None if it does not exist."""
    fields = stat_fields(pid, proc)
    return int(fields[19]) if fields else None


def is_alive(pid: int, started: int | None, proc: str = "/proc") -> bool:
    """True if ``pid`` exists, is not a zombie, and (when known) started at ``started``."""
    if pid <= 0:
        return False
    fields = stat_fields(pid, proc)
    if fields is None or fields[0] in ("Z", "X"):
        return False
    return started is None or int(fields[19]) == started
