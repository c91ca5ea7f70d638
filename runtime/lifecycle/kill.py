"""``pyrun kill [--all] ID [SIGNAL]``."""

from __future__ import annotations

import os

from runtime.errors import ContainerNotRunning, PyrunError
from runtime.lifecycle import status as st
from runtime.lifecycle.container import Container, Context
from runtime.spec.tables import parse_signal

_SIGKILL = 9


def signal_number(text: str) -> int:
    if text.strip() == "0":
        return 0  # runc passes 0 on: it only checks that the process exists
    try:
        return parse_signal(text)
    except ValueError as err:
        raise PyrunError(str(err)) from None


def kill(
    ctx: Context, container_id: str, signal: str = "TERM", all_processes: bool = False
) -> None:
    number = signal_number(signal)
    container = Container.load(ctx.store, container_id)
    status = container.status()
    if all_processes:
        if status is st.STOPPED:
            return  # runc: kill --all on a stopped container is not an error
        manager = container.cgroup()
        if manager is not None:
            manager.signal_all(number)
            return
    st.require("kill", status, container_id)
    try:
        os.kill(container.pid, number)
    except ProcessLookupError:
        raise ContainerNotRunning() from None
    if status is st.PAUSED and number == _SIGKILL:
        # A frozen v1 task dies only once thawed (runc thaws for SIGKILL alone, too).
        manager = container.cgroup()
        if manager is not None:
            manager.thaw()
