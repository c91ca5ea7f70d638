"""``pyrun start ID``: release the waiting init into the user's program."""

from __future__ import annotations

import os

from runtime.errors import PyrunError
from runtime.lifecycle import status as st
from runtime.lifecycle.container import Container, Context
from runtime.lifecycle.store import EXEC_FIFO

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

_POLL_MS = 50


def start(ctx: Context, container_id: str) -> Container:
    container = Container.load(ctx.store, container_id)
    st.require("start", container.status(), container_id)
    release(container)
    return container


def release(container: Container) -> None:
    """Let init run the user's program, then run the poststart hooks."""
    _open_the_fifo(container)
    _poststart(container)


def _poststart(container: Container) -> None:
    """Runtime namespace, after the program started; a failure stops the container (spec
    v1.3: poststart failures are fatal) and is the error of `start`."""
    if not container.has_hooks("poststart"):
        return
    from runtime.lifecycle.hooks import HookError, hook_state, hooks_of, run_hooks

    try:
        hooks = hooks_of(container.store.read_config(container.id), "poststart")
    except (OSError, ValueError):
        return  # a state directory from before config copies: nothing to run
    if not hooks:
        return
    try:
        run_hooks("poststart", hooks, hook_state(container.state, "running"))
    except HookError:
        try:
            os.kill(container.pid, 9)
        except ProcessLookupError:
            pass
        raise


def _open_the_fifo(container: Container) -> None:
    """Open the exec fifo: init's blocked open returns, it writes one byte, runs the
    startContainer hooks and execs. The fifo closes with the exec (close-on-exec), so reading
    to its end waits for the program to really start; anything after the byte is init's report
    of why it could not."""
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
                    report = _read_to_end(fd, poller, container)
                    if report:
                        raise PyrunError(f"unable to start container process: {report}")
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


def _read_to_end(fd: int, poller: Any, container: Container) -> str:
    report = b""
    while True:
        poller.poll(_POLL_MS)
        # Read whether or not poll said so: a reader that opened the fifo after init did (a
        # racing start) is never told POLLHUP when init's end closes, but reads EOF.
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            if not container.init_alive():
                return report.decode(errors="replace")
            continue
        if not chunk:
            return report.decode(errors="replace")
        report += chunk
