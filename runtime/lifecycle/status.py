"""Container status and which verb may act on which status (rule 5).

Statuses are the runtime-spec's (creating, created, running, stopped) plus runc's paused. A
plain class instead of ``enum.Enum``: enum costs ~5 ms to import on the hot path, and the
members here are only ever compared by identity and printed.
"""

from __future__ import annotations

from runtime.errors import ContainerNotRunning, StateError


class Status:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"Status({self.name!r})"


CREATING = Status("creating")
CREATED = Status("created")
RUNNING = Status("running")
PAUSED = Status("paused")
STOPPED = Status("stopped")
ALL = (CREATING, CREATED, RUNNING, PAUSED, STOPPED)

# verb -> statuses it may act on. delete without --force also takes "created" (runc kills the
# waiting init first); --force takes everything.
ALLOWED: dict[str, frozenset[Status]] = {
    "start": frozenset({CREATED}),
    "kill": frozenset({CREATED, RUNNING, PAUSED}),
    "delete": frozenset({CREATED, STOPPED}),
    "pause": frozenset({CREATED, RUNNING}),
    "resume": frozenset({PAUSED}),
    "exec": frozenset({CREATED, RUNNING}),
    "update": frozenset({CREATED, RUNNING, PAUSED}),
    "ps": frozenset(ALL),
    "state": frozenset(ALL),
}


def require(verb: str, status: Status, container_id: str) -> None:
    """Raise the error runc gives when ``verb`` meets a container in ``status``."""
    if status in ALLOWED[verb]:
        return
    raise _refusal(verb, status, container_id)


def _refusal(verb: str, status: Status, container_id: str) -> StateError:
    if verb == "start":
        if status is STOPPED:
            return StateError("cannot start a container that has stopped")
        if status is RUNNING:
            return StateError("cannot start an already running container")
        return StateError(f"cannot start a container in the {status} state")
    if verb in ("kill", "pause"):
        return ContainerNotRunning()
    if verb == "delete":
        return StateError(f"cannot delete container {container_id} that is not stopped: {status}")
    if verb == "resume":
        return StateError("container not paused")
    if verb == "exec":
        if status is STOPPED:
            return StateError("cannot exec in a stopped container")
        if status is PAUSED:
            return StateError("cannot exec in a paused container (use --ignore-paused to override)")
        return StateError(f"cannot exec in a {status} container")
    if verb == "update" and status is STOPPED:
        return ContainerNotRunning()
    return StateError(f"cannot {verb} a container in the {status} state")
