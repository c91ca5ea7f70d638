"""``pyrun start ID``: release the waiting init into the user's program."""

from __future__ import annotations

import os

from runtime.errors import PyrunError
from runtime.lifecycle import status as st
from runtime.lifecycle.container import Container, Context
from runtime.lifecycle.store import EXEC_FIFO

_POLL_MS = 50


def start(ctx: Context, container_id: str) -> Container:
    container = Container.load(ctx.store, container_id)
    st.require("start", container.status(), container_id)
    release(container)
    return container


def release(container: Container) -> None:
    """Open the exec fifo: init's blocked open returns, it writes one byte and execs."""
    import select

    path = f"{container.dir}/{EXEC_FIFO}"
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise PyrunError("cannot start an already running container") from None
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while True:
            if poller.poll(_POLL_MS):
                data = os.read(fd, 1)
                if data:
                    break
                # EOF: init opened and closed the fifo for a racing `start` that took the
                # byte, or died; polling on would spin (POLLHUP stays set).
                if container.init_alive():
                    raise PyrunError("cannot start an already running container")
                raise PyrunError("cannot start a container that has stopped")
            # No byte yet: if init died meanwhile, nobody will ever write.
            if not container.init_alive():
                raise PyrunError("cannot start a container that has stopped")
            # Opened after init had written for a racing `start`, which then removed the fifo.
            if not os.path.exists(path):
                raise PyrunError("cannot start an already running container")
    finally:
        os.close(fd)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
