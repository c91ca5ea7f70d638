"""``pyrun run``: create + start, and in the foreground wait and delete.

In the foreground pyrun makes itself a child subreaper before create, so the container's init
(forked by a short-lived bootstrap child) is re-parented to it and can be waited for. Signals
pyrun receives are forwarded to init, as runc does. The exit code is the container's, or
128+N when init was killed by signal N.
"""

from __future__ import annotations

import contextlib
import os

from runtime.lifecycle.create import CreateOptions, create
from runtime.lifecycle.delete import destroy
from runtime.lifecycle.start import release
from runtime.trace import mark

TYPE_CHECKING = False
if TYPE_CHECKING:
    from runtime.lifecycle.container import Container, Context

# Everything but what cannot be caught, what the child's exit sends us, and job control.
_NOT_FORWARDED = frozenset({9, 17, 19, 20, 21, 22, 23, 28, 32, 33})


def run(ctx: Context, options: CreateOptions, detach: bool = False) -> int:
    if detach:
        container = create(ctx, options)
        try:
            release(container)
        except BaseException:
            destroy(container)
            raise
        return 0
    from runtime.linux.syscalls import PR_SET_CHILD_SUBREAPER, Syscalls

    Syscalls().prctl(PR_SET_CHILD_SUBREAPER, 1)
    container = create(ctx, options)
    try:
        with _Forwarding(container.pid):
            release(container)
            mark("P", "started")
            code = _wait(container.pid)
            mark("P", "exited")
    finally:
        _reap_orphans()
        destroy(container)
        _reap_orphans()
        mark("P", "deleted")
    return code


class _Forwarding:
    """Forward the signals pyrun gets to the container's init while it runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.previous: dict[int, object] = {}

    def __enter__(self) -> _Forwarding:
        import _signal

        for number in range(1, 32):
            if number in _NOT_FORWARDED:
                continue
            try:
                self.previous[number] = _signal.signal(number, self._forward)
            except (OSError, ValueError):
                continue
        return self

    def _forward(self, number: int, _frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, number)

    def __exit__(self, *_exc: object) -> None:
        import _signal

        for number, handler in self.previous.items():
            _signal.signal(number, handler)


def _wait(pid: int) -> int:
    """Wait for init, reaping any orphan that reaches us meanwhile (we are a subreaper)."""
    while True:
        try:
            reaped, status = os.waitpid(-1, 0)
        except ChildProcessError:
            return 255
        if reaped == pid:
            return exit_code(status)


def exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _reap_orphans() -> None:
    """Processes left in the container's pid namespace die with its init; reap what we got."""
    while True:
        try:
            reaped, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if reaped == 0:
            return


def wait_container(container: Container) -> int:
    return _wait(container.pid)
