"""The caller's side of a container terminal, for `pyrun run` / `pyrun exec -t` in the
foreground: receive the pty master on a console socket of our own, then wire it to the user's
terminal (raw mode, both directions, window size on SIGWINCH) until the process exits.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    import _socket
    from typing import Any


class ConsoleListener:
    """A console socket in the state root, listening for the one connection init makes."""

    def __init__(self, directory: str, name: str) -> None:
        import _socket

        os.makedirs(directory, mode=0o711, exist_ok=True)
        self.path = f"{directory}/.{name}.{os.getpid()}.console"
        self.sock: _socket.socket = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self.sock.bind(self.path)
        os.chmod(self.path, 0o600)
        self.sock.listen(1)

    def receive(self, timeout: float = 10.0) -> int:
        """The pty master init sent (it connected during create)."""
        import _socket

        from runtime.linux.console import receive_master

        self.sock.settimeout(timeout)
        fd, _ = self.sock._accept()  # type: ignore[attr-defined]  # the C socket: no socket.py
        connection = _socket.socket(fileno=fd)
        try:
            return receive_master(connection)
        finally:
            connection.close()

    def close(self) -> None:
        self.sock.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def proxy(master: int, stdin: int = 0, stdout: int = 1) -> None:
    """Copy the user's terminal to the pty and back until the pty closes (EIO/EOF when the
    last process holding its slave exits). The user's terminal is raw meanwhile, so keys like
    ^C reach the container; it is restored however this ends."""
    import _signal
    import select

    from runtime.linux.console import get_size, set_size

    interactive = os.isatty(stdin)
    saved = _raw(stdin) if interactive else None

    def resize(*_: object) -> None:
        size = get_size(stdin) if interactive else None
        if size:
            set_size(master, *size)

    previous = _signal.signal(_signal.SIGWINCH, resize)
    resize()
    try:
        sources = [master, stdin]
        while True:
            try:
                readable, _, _ = select.select(sources, [], [])
            except InterruptedError:
                continue
            if master in readable:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""  # EIO: the slave is closed
                if not data:
                    return
                _write_all(stdout, data)
            if stdin in readable:
                data = os.read(stdin, 65536)
                if not data:
                    sources.remove(stdin)  # our input ended; the container's output goes on
                    continue
                _write_all(master, data)
    finally:
        _signal.signal(_signal.SIGWINCH, previous)
        if saved is not None:
            import termios

            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)


def _raw(fd: int) -> Any:
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    tty.setraw(fd, termios.TCSADRAIN)
    return saved


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
