r"""The parent <-> init protocol: a closed set of typed messages over two pipes (rule 7).

The container is set up by processes forked from ``pyrun create`` (no re-exec). The bootstrap
child is forked first thing, before the config is even read, so that it imports the
container-side modules (ctypes and friends) on the other core while the parent validates; the
parent then sends it the plan. The parent makes and joins the cgroup while the children set up::

    pyrun create (P)                 bootstrap (C1)              init (C2, pid 1 inside)
    ----------------                 --------------              -----------------------
    fork ------------------------->  imports
    read + validate config,
    state dir, exec fifo
    Plan(config, paths) ---------->  setns(paths), unshare(new
    cgroup dirs                      namespaces but cgroup)
    Proceed (1: cgroup dirs) --\     clone(CLONE_PARENT) -------> (a child of P, not of C1)
    resources (limits, devices) \   send Pid(init), exit 0      close fds, lo up, mounts,
             <--------- Pid(init) \                             /dev ...; before the cgroup
    waitpid(C1); write init's pid   \-------------------------> mount: [wait 1]
    into the cgroup (cgroup.procs)                               hostname, pivot_root, sysctl,
    Proceed (2: joined) ---------------------------------------> masks, rlimits, user, caps,
                                                                 exec lookup, [wait 2]
             <------------------------------------------- Ready  (or Failed(message))
    config copy, state.json (pid,
    start time), pid file, exit                                  open exec.fifo O_WRONLY
                                                                 (blocks until start)
    pyrun start: open exec.fifo, read "0", unlink ------------> execve(process.args)

If the parent fails before sending the plan, it closes its end: the bootstrap child sees EOF and
exits. With a new cgroup namespace, init waits for both Proceeds before unsharing it (the
namespace is rooted at the cgroup init is in). A ``Failed`` may come from either child at any
step; EOF before ``Ready`` means a child died without a word.
"""

from __future__ import annotations

import os

from runtime.errors import ContainerInitError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class Pid:
    """C1 -> P: the host pid of the container's init."""

    tag = b"P"
    __slots__ = ("pid",)

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def payload(self) -> bytes:
        return str(self.pid).encode()


class Ready:
    """C2 -> P: everything but the exec is done; init now waits for ``start``."""

    tag = b"R"
    __slots__ = ()

    def payload(self) -> bytes:
        return b""


class Failed:
    """C1/C2 -> P: setting the container up failed; the message is shown to the user."""

    tag = b"F"
    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message

    def payload(self) -> bytes:
        return self.message.encode(errors="replace")


class Plan:
    """P -> C1: what to build (the validated config and where things are), as JSON."""

    tag = b"C"
    __slots__ = ("data",)

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def payload(self) -> bytes:
        from runtime import jsonfast

        return jsonfast.dumps(self.data).encode()


class UserNamespace:
    """C1 -> P: a new user namespace exists; write its uid/gid maps (then Proceed). Only
    the parent can: the maps must be written from outside the namespace."""

    tag = b"U"
    __slots__ = ()

    def payload(self) -> bytes:
        return b""


class Hooks:
    """C2 -> P: the container's namespaces and mounts are ready, pivot_root is next: run the
    prestart and createRuntime hooks now (sent only when the config has some)."""

    tag = b"H"
    __slots__ = ()

    def payload(self) -> bytes:
        return b""


class Proceed:
    """P -> C1: go on (sent after the parent's part, e.g. writing id maps, is done)."""

    tag = b"G"
    __slots__ = ()

    def payload(self) -> bytes:
        return b""


if TYPE_CHECKING:
    Message = Pid | Ready | Failed | Proceed | Plan | Hooks | UserNamespace


def _decode(tag: bytes, payload: bytes) -> Message:
    if tag == Pid.tag:
        if not payload.isdigit():
            raise ContainerInitError(f"protocol error: bad pid {payload[:32]!r}")
        return Pid(int(payload))
    if tag == Ready.tag:
        return Ready()
    if tag == Failed.tag:
        return Failed(payload.decode(errors="replace"))
    if tag == Proceed.tag:
        return Proceed()
    if tag == Hooks.tag:
        return Hooks()
    if tag == UserNamespace.tag:
        return UserNamespace()
    if tag == Plan.tag:
        from runtime import jsonfast

        return Plan(jsonfast.loads(payload))
    raise ContainerInitError(f"protocol error: unknown message {tag!r}")


class Channel:
    """One end: messages out through ``write_fd``, in through ``read_fd``."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.read_fd = read_fd
        self.write_fd = write_fd

    def send(self, message: Message) -> None:
        payload = message.payload()
        frame = message.tag + len(payload).to_bytes(4, "big") + payload
        view = memoryview(frame)
        while view:
            written = os.write(self.write_fd, view)
            view = view[written:]

    def receive(self) -> Message | None:
        """The next message, or None at EOF (every writer has gone)."""
        header = self._read_exactly(5)
        if header is None:
            return None
        length = int.from_bytes(header[1:], "big")
        payload = self._read_exactly(length) if length else b""
        if payload is None:
            raise ContainerInitError("protocol error: truncated message")
        return _decode(header[:1], payload)

    def _read_exactly(self, count: int) -> bytes | None:
        chunks = b""
        while len(chunks) < count:
            chunk = os.read(self.read_fd, count - len(chunks))
            if not chunk:
                if chunks:
                    raise ContainerInitError("protocol error: truncated message")
                return None
            chunks += chunk
        return chunks

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.read_fd = self.write_fd = -1


def channel_pair() -> tuple[Channel, Channel]:
    """(parent end, child end). Both pipes are close-on-exec, as every fd Python opens."""
    up_read, up_write = os.pipe()
    down_read, down_write = os.pipe()
    return Channel(up_read, down_write), Channel(down_read, up_write)
