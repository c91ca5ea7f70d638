"""Container state on disk: ``<root>/<id>/`` with state.json, config.json and exec.fifo.

Every file is written atomically (temp file + rename), so a pyrun killed at any point leaves
either the old or the new version, never half of one. The state directory is made first thing
in create, before any cgroup or process exists, so ``delete --force`` can always find and undo
what a killed create left behind (runc #4534). /run is volatile by design, so there is no fsync:
the rename already protects against a crashed pyrun, and nothing here must survive a reboot.
"""

from __future__ import annotations

import os

from runtime import jsonfast
from runtime.errors import ContainerExists, ContainerNotFound, PyrunError, StateError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

STATE_FILE = "state.json"
CONFIG_FILE = "config.json"
EXEC_FIFO = "exec.fifo"
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")


class UnreadableState(StateError):
    """state.json exists but is not this container's state (truncated, foreign, edited)."""

    def __init__(self, container_id: str) -> None:
        super().__init__(
            f"container {container_id}: {STATE_FILE} is unreadable; delete --force removes it"
        )
        self.container_id = container_id


def validate_id(container_id: str) -> None:
    """runc's rule: [A-Za-z0-9_+.-]+, not "." or ".."; it becomes a directory name."""
    if (
        not container_id
        or container_id in (".", "..")
        or not set(container_id) <= _ID_CHARS
        or len(container_id) > 1024
    ):
        raise PyrunError(f"invalid container id format: {container_id!r}")


def write_atomic(path: str, data: bytes, mode: int = 0o600) -> None:
    temp = f"{path}.tmp{os.getpid()}"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.rename(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise


class Store:
    def __init__(self, root: str) -> None:
        self.root = root

    def dir_of(self, container_id: str) -> str:
        return f"{self.root}/{container_id}"

    def make(self, container_id: str) -> str:
        """Create the container's directory; ContainerExists if the id is taken."""
        validate_id(container_id)
        os.makedirs(self.root, mode=0o711, exist_ok=True)
        path = self.dir_of(container_id)
        try:
            os.mkdir(path, 0o711)
        except FileExistsError:
            raise ContainerExists(container_id) from None
        return path

    def read_state(self, container_id: str) -> dict[str, Any]:
        validate_id(container_id)
        try:
            with open(f"{self.dir_of(container_id)}/{STATE_FILE}", "rb") as handle:
                data = handle.read()
        except FileNotFoundError:
            raise ContainerNotFound(container_id) from None
        except NotADirectoryError:
            raise ContainerNotFound(container_id) from None
        try:
            state = jsonfast.loads(data)
        except (ValueError, SystemError):  # SystemError: jsonfast on some syntax errors
            raise UnreadableState(container_id) from None
        if not isinstance(state, dict) or state.get("id") != container_id:
            raise UnreadableState(container_id)
        return state

    def write_state(self, container_id: str, state: dict[str, Any]) -> None:
        write_atomic(f"{self.dir_of(container_id)}/{STATE_FILE}", jsonfast.dumps(state).encode())

    def write_config(self, container_id: str, config: Any) -> None:
        write_atomic(f"{self.dir_of(container_id)}/{CONFIG_FILE}", jsonfast.dumps(config).encode())

    def read_config(self, container_id: str) -> Any:
        with open(f"{self.dir_of(container_id)}/{CONFIG_FILE}", "rb") as handle:
            return jsonfast.loads(handle.read())

    def ids(self) -> list[str]:
        try:
            names = os.listdir(self.root)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if os.path.isfile(f"{self.root}/{n}/{STATE_FILE}"))

    def has_dir(self, container_id: str) -> bool:
        return os.path.isdir(self.dir_of(container_id))

    def remove(self, container_id: str) -> None:
        """Remove the directory and everything in it (state, config, fifo, temp files)."""
        path = self.dir_of(container_id)
        try:
            names = os.listdir(path)
        except FileNotFoundError:
            return
        for name in names:
            try:
                os.unlink(f"{path}/{name}")
            except FileNotFoundError:
                pass
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass
