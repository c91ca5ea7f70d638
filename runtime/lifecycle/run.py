"""``pyrun run``: create + start, and in the foreground wait and delete (unless --keep).

The container's init is a direct child of pyrun (the bootstrap child makes it with
CLONE_PARENT), so the foreground run waits for it with waitpid. When init, pid 1 of its
namespace, exits, the kernel kills and reaps everything else in the namespace. Signals pyrun
receives are forwarded to init, as runc does. The exit code is the container's, or 128+N when
init was killed by signal N.
"""

from __future__ import annotations

import os

from runtime.lifecycle.create import CreateOptions, create
from runtime.lifecycle.delete import destroy
from runtime.lifecycle.start import release
from runtime.trace import mark

TYPE_CHECKING = False
if TYPE_CHECKING:
    from runtime.cgroups.warmup import Warmup
    from runtime.lifecycle.container import Context
    from runtime.lifecycle.spawn import Bootstrap
    from runtime.lifecycle.terminal import ConsoleListener

# Everything but what cannot be caught, what the child's exit sends us, and job control.
_NOT_FORWARDED = frozenset({9, 17, 19, 20, 21, 22, 23, 28, 32, 33})


def run(
    ctx: Context,
    options: CreateOptions,
    detach: bool = False,
    early: Warmup | None = None,
    boot: Bootstrap | None = None,
    keep: bool = False,
) -> int:
    """``keep`` (runc's --keep): the exited container stays, stopped, until ``pyrun delete``
    (e.g. to commit its image snapshot first)."""
    listener: list[ConsoleListener] = []
    if not detach:

        def console_fallback() -> str:
            from runtime.lifecycle.terminal import ConsoleListener

            listener.append(ConsoleListener(ctx.root, options.id))
            return listener[0].path

        options.console_fallback = console_fallback
    try:
        container = create(ctx, options, early, boot)
        master = listener[0].receive() if listener else None
    finally:
        if listener:
            listener[0].close()
    if detach:
        try:
            release(container)
        except BaseException:
            destroy(container)
            raise
        return 0
    try:
        with _Forwarding(container.pid):
            release(container)
            mark("P", "started")
            if master is not None:
                _wire_terminal(master)
            code = wait_for(container.pid)
            mark("P", "exited")
    finally:
        if not keep:
            destroy(container)
            mark("P", "deleted")
    return code


def _wire_terminal(master: int) -> None:
    from runtime.lifecycle.terminal import proxy

    try:
        proxy(master)
    finally:
        os.close(master)


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
        try:
            os.kill(self.pid, number)
        except ProcessLookupError:
            pass

    def __exit__(self, *_exc: object) -> None:
        import _signal

        for number, handler in self.previous.items():
            _signal.signal(number, handler)


def wait_for(pid: int) -> int:
    """The exit code of our child ``pid`` (128+N if a signal N ended it)."""
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        return 255  # reaped elsewhere: nothing truthful to report
    return exit_code(status)


def exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)
