"""Terminals: a pty inside the container, its master handed to the caller over a unix socket.

The protocol is runc's (and what containerd's shim and conmon implement): the caller listens
on an AF_UNIX stream socket (``--console-socket``); the runtime connects, sends ONE message
with a non-empty payload and exactly one SCM_RIGHTS descriptor -- the pty master -- and closes
its copy. The slave becomes the process's stdio and controlling terminal, and is bind-mounted
on /dev/console for init.
"""

from __future__ import annotations

import _socket
import fcntl
import os
import struct
import termios

from runtime.errors import LinuxError, PyrunError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from runtime.linux.syscalls import Syscalls
    from runtime.spec.types import ConsoleSize

_TIOCSPTLCK = 0x40045431  # unlock the slave
_TIOCGPTN = 0x80045430  # the slave's number


def connect(path: str) -> _socket.socket:
    """Connect to the caller's console socket (before pivot_root hides its path)."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as err:
        sock.close()
        reason = (err.strerror or str(err)).lower()
        raise PyrunError(f"console socket {path}: {reason}") from None
    return sock


class Pty:
    """A master/slave pair from the devpts instance behind ``ptmx``."""

    __slots__ = ("master", "slave", "slave_path")

    def __init__(self, ptmx: str = "/dev/ptmx") -> None:
        try:
            self.master = os.open(ptmx, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError as err:
            raise LinuxError("open pty master", err.errno or 0, ptmx) from None
        fcntl.ioctl(self.master, _TIOCSPTLCK, struct.pack("i", 0))
        number = struct.unpack("I", fcntl.ioctl(self.master, _TIOCGPTN, b"\0\0\0\0"))[0]
        directory = ptmx.rpartition("/")[0]
        # /dev/ptmx is a link to pts/ptmx: the slave lives next to the real ptmx node.
        pts = f"{directory}/pts" if not directory.endswith("/pts") else directory
        self.slave_path = f"{pts}/{number}"
        try:
            self.slave = os.open(self.slave_path, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
        except OSError as err:
            raise LinuxError("open pty slave", err.errno or 0, self.slave_path) from None

    def resize(self, height: int, width: int) -> None:
        set_size(self.master, height, width)


def set_size(fd: int, height: int, width: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))


def get_size(fd: int) -> tuple[int, int] | None:
    try:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    except OSError:
        return None
    return rows, cols


def send_master(sock: _socket.socket, master: int, name: str) -> None:
    """One message, non-empty payload (the slave's name, as runc), one SCM_RIGHTS fd."""
    rights = struct.pack("i", master)
    try:
        sock.sendmsg([name.encode()], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, rights)])
    except OSError as err:
        raise LinuxError("send pty master", err.errno or 0, name) from None


def receive_master(sock: _socket.socket) -> int:
    """The pty master a runtime sent on ``sock`` (the caller's side of the protocol)."""
    size = struct.calcsize("i")
    _, ancillary, _, _ = sock.recvmsg(1024, _socket.CMSG_SPACE(size))
    for level, kind, data in ancillary:
        if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS and len(data) >= size:
            return int(struct.unpack("i", data[:size])[0])
    raise PyrunError("console socket: no pty master received")


def hand_over_pty(
    sys: Syscalls,
    sock: _socket.socket,
    size: ConsoleSize | None,
    console_file: str | None = None,
) -> None:
    """The whole protocol from the runtime's side: a pty from this mount namespace's devpts
    (sized), its slave bind-mounted on ``console_file`` (init: /dev/console) and made our
    controlling terminal and stdio, its master sent over ``sock``."""
    pty = Pty("/dev/ptmx")
    if size:
        pty.resize(size["height"], size["width"])
    if console_file is not None:
        from runtime.linux.securepath import ensure_file
        from runtime.spec.tables import MS_BIND

        ensure_file(console_file)
        sys.mount(pty.slave_path, console_file, None, MS_BIND, None)
    send_master(sock, pty.master, pty.slave_path)
    sock.close()
    os.close(pty.master)
    become_controlled_by(pty.slave)
    os.close(pty.slave)


def become_controlled_by(slave: int) -> None:
    """New session, the slave as controlling terminal and as stdin/stdout/stderr."""
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for target in (0, 1, 2):
        os.dup2(slave, target)
