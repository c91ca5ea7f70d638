"""``pyrun delete [--force] ID``: stop what is left and remove cgroup and state, and release
the bundle's image snapshot when ``pyrun image unpack`` made it.

Works from partial state too (a create killed half way): whatever the state directory names
is undone, and a missing piece is not an error.
"""

from __future__ import annotations

import os
import time

from runtime.errors import ContainerNotFound, PyrunError
from runtime.lifecycle import status as st
from runtime.lifecycle.container import Container, Context
from runtime.lifecycle.store import UnreadableState
from runtime.linux.procfs import is_alive

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from runtime.cgroups.base import CgroupManager
    from runtime.lifecycle.store import Store

_SIGKILL = 9
_SNAPSHOT_ANNOTATION = "io.pyrun.image.snapshot"
_DEATH_WAIT_SECONDS = 5.0


def delete(ctx: Context, container_id: str, force: bool = False) -> None:
    store = ctx.store
    try:
        container = Container.load(store, container_id)
    except (ContainerNotFound, UnreadableState):
        if force:
            # A create killed before its first state write leaves only the directory.
            store.remove(container_id)
            return
        raise
    status = container.status()
    if not force:
        st.require("delete", status, container_id)
    destroy(container)


def destroy(container: Container) -> None:
    poststop = _poststop_hooks(container)
    destroy_resources(
        container.store,
        container.id,
        container.cgroup(),
        container.pid,
        container.state.get("pidStartTime"),
    )
    _release_snapshot(container)
    if poststop:
        _run_poststop(container, poststop)


def _release_snapshot(container: Container) -> None:
    """A bundle made by ``pyrun image unpack`` gives its image snapshot back (docker rm
    removes the container's RW layer). imagetools is imported only for such bundles: delete
    is on the hot path. What the annotations claim is checked against the image store."""
    annotations = container.state.get("annotations")
    if not annotations or _SNAPSHOT_ANNOTATION not in annotations:
        return
    from imagetools.snapshots import release_container

    try:
        release_container(annotations, container.bundle)
    except (PyrunError, OSError) as err:
        from runtime import log

        log.warning(f"container {container.id}: image snapshot not released: {err}")


def _poststop_hooks(container: Container) -> list[Any]:
    if not container.has_hooks("poststop"):
        return []
    from runtime.lifecycle.hooks import hooks_of

    try:
        return hooks_of(container.store.read_config(container.id), "poststop")
    except (OSError, ValueError):
        return []


def _run_poststop(container: Container, hooks: list[Any]) -> None:
    """After everything is removed, before delete returns; a failure is only a warning."""
    from runtime import log
    from runtime.lifecycle.hooks import HookError, hook_state, run_hooks

    try:
        run_hooks("poststop", hooks, hook_state(container.state, "stopped"))
    except HookError as err:
        log.warning(err.message)


def destroy_resources(
    store: Store,
    container_id: str,
    manager: CgroupManager | None,
    init_pid: int,
    init_start: int | None = None,
) -> None:
    if init_pid and is_alive(init_pid, init_start):
        try:
            os.kill(init_pid, _SIGKILL)
        except ProcessLookupError:
            pass
    if manager is not None and manager.exists() and manager.pids():
        manager.signal_all(_SIGKILL)
    if init_pid:
        _wait_gone(init_pid, init_start)
    if manager is not None:
        manager.destroy()
    store.remove(container_id)


def _wait_gone(pid: int, started: int | None) -> None:
    """SIGKILL is not instant (exit of a big process, D state): wait, but bounded."""
    deadline = time.monotonic() + _DEATH_WAIT_SECONDS
    delay = 0.0005
    while is_alive(pid, started):
        if time.monotonic() > deadline:
            raise PyrunError(
                f"process {pid} did not die after SIGKILL within {_DEATH_WAIT_SECONDS:.0f}s"
                " (uninterruptible sleep?); retry delete --force"
            )
        time.sleep(delay)
        delay = min(delay * 2, 0.05)
