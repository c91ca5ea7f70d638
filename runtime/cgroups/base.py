"""The cgroupfs seam (``CgroupFS``), the manager protocol and the verbs every host shares.

This module is on the hot path of ``pyrun create/start/kill/delete``: it imports only os, errno
and time. ``apply()`` and ``stats()`` import their (heavier) modules when called.

The manager is one class for all three layouts. It holds, per hierarchy key (a v1 controller
such as ``"memory"``, ``"name=systemd"``, or ``"unified"`` for cgroup2), the container's
directory and the hierarchy's mountpoint. ``version`` says which layout the host has:

* ``v1``: only v1 hierarchies; ``v2``: only ``unified``; ``hybrid``: both (like runc, a hybrid
  host's container is joined to every v1 hierarchy *and* the unified one).
"""

from __future__ import annotations

import errno
import os
import time

from runtime.errors import CgroupError

TYPE_CHECKING = False  # typing costs ~10 ms to import; mypy still reads the blocks below
if TYPE_CHECKING:
    from typing import Any, Protocol
else:
    Protocol = object

# The parent of containers without linux.cgroupsPath (/pyrun/<id>): made by the first such
# container, removed with the last, so an idle host keeps no cgroup of ours.
DEFAULT_PARENT = "pyrun"
# Seconds destroy() waits for exiting tasks to leave (rmdir fails with EBUSY until they do).
DESTROY_TIMEOUT = 1.0
# Seconds freeze()/thaw() wait for the kernel to report the new state.
FREEZE_TIMEOUT = 2.0

_SIGKILL = 9  # the signal module is not worth importing for one constant
_UNIFIED = "unified"
# Hierarchy used by pids()/exists(): the freezer first, so signal_all() signals exactly the
# set of processes it froze.
_PRIMARY_ORDER = (
    "freezer",
    "pids",
    "devices",
    "memory",
    "cpu",
    "cpuacct",
    "cpuset",
    "blkio",
    "name=systemd",
    _UNIFIED,
)


def _reason(exc: OSError) -> str:
    code = exc.errno or 0
    text = exc.strerror or os.strerror(code)
    name = errno.errorcode.get(code, str(code))
    return f"{text[:1].lower()}{text[1:]} ({name})"


class CgroupFS:
    """The only code that reads, writes, creates or removes anything in a cgroup filesystem.

    ``sys_*`` methods are the raw operations and raise ``OSError``; unit tests subclass this and
    override them to play the kernel on a tmp tree. The public methods map every ``OSError`` to
    one ``CgroupError`` carrying the operation, the path and the errno name. A caller that expects
    a particular errno (ENOENT on an idempotent destroy, EBUSY while tasks are exiting) lists it in
    ``tolerate`` and gets it back as a number instead of an exception.
    """

    __slots__ = ()

    # -- raw operations (override in fakes) -----------------------------------------------------

    def sys_read(self, path: str) -> bytes:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            chunks: list[bytes] = []
            while True:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)
        finally:
            os.close(fd)

    def sys_write(self, path: str, data: bytes) -> None:
        # One write(2) per value: cgroupfs parses each write on its own.
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)

    def sys_mkdir(self, path: str) -> None:
        os.mkdir(path, 0o755)

    def sys_rmdir(self, path: str) -> None:
        os.rmdir(path)

    def sys_scandir(self, path: str) -> list[tuple[str, bool]]:
        with os.scandir(path) as entries:
            return [(e.name, e.is_dir(follow_symlinks=False)) for e in entries]

    def sys_stat(self, path: str) -> int:
        return os.stat(path).st_mode

    def sys_kill(self, pid: int, signum: int) -> None:
        os.kill(pid, signum)

    def sys_attach_device_filter(self, path: str, program: bytes) -> None:
        from runtime.cgroups import devices_bpf

        devices_bpf.attach(path, program)

    # -- mapped operations ------------------------------------------------------------------------

    def read(self, path: str) -> str:
        try:
            return self.sys_read(path).decode()
        except OSError as exc:
            raise CgroupError(f"read {path}: {_reason(exc)}") from None

    def read_optional(self, path: str) -> str | None:
        """The file's text, or None when it does not exist (optional kernel features)."""
        try:
            return self.sys_read(path).decode()
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise CgroupError(f"read {path}: {_reason(exc)}") from None

    def write(self, path: str, value: str, tolerate: tuple[int, ...] = ()) -> int:
        """Write one value; 0 on success, or the errno if it is in ``tolerate``."""
        try:
            self.sys_write(path, value.encode())
        except OSError as exc:
            if exc.errno in tolerate:
                return exc.errno or 0
            raise CgroupError(f"write {value!r} to {path}: {_reason(exc)}") from None
        return 0

    def mkdir(self, path: str, missing_parent_ok: bool = False) -> bool | None:
        """Create one directory; False when it already exists, None when its parent does not
        (only with ``missing_parent_ok``, else that is an error like any other)."""
        try:
            self.sys_mkdir(path)
        except OSError as exc:
            if exc.errno == errno.EEXIST:
                return False
            if exc.errno == errno.ENOENT and missing_parent_ok:
                return None
            raise CgroupError(f"mkdir {path}: {_reason(exc)}") from None
        return True

    def rmdir(self, path: str, tolerate: tuple[int, ...] = ()) -> int:
        try:
            self.sys_rmdir(path)
        except OSError as exc:
            if exc.errno in tolerate:
                return exc.errno or 0
            raise CgroupError(f"rmdir {path}: {_reason(exc)}") from None
        return 0

    def listdir(self, path: str) -> list[tuple[str, bool]]:
        """(name, is_dir) of every entry; empty when the directory does not exist."""
        try:
            return self.sys_scandir(path)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return []
            raise CgroupError(f"list {path}: {_reason(exc)}") from None

    def subdirs(self, path: str) -> list[str]:
        return [name for name, is_dir in self.listdir(path) if is_dir]

    def _mode(self, path: str) -> int:
        try:
            return self.sys_stat(path)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                return 0
            raise CgroupError(f"stat {path}: {_reason(exc)}") from None

    def exists(self, path: str) -> bool:
        return self._mode(path) != 0

    def isdir(self, path: str) -> bool:
        return self._mode(path) & 0o170000 == 0o040000  # S_IFDIR, without importing stat

    def kill(self, pid: int, signum: int) -> bool:
        """Signal one process; False when it is already gone."""
        try:
            self.sys_kill(pid, signum)
        except OSError as exc:
            if exc.errno == errno.ESRCH:
                return False
            raise CgroupError(f"kill {pid} with signal {signum}: {_reason(exc)}") from None
        return True

    def attach_device_filter(self, path: str, program: bytes) -> None:
        """Load an eBPF device program and attach it to the cgroup2 directory ``path``."""
        try:
            self.sys_attach_device_filter(path, program)
        except OSError as exc:
            raise CgroupError(f"attach eBPF device filter to {path}: {_reason(exc)}") from None


class CgroupManager(Protocol):
    """What the rest of pyrun may ask of a container's cgroup (see ``open_manager``)."""

    version: str

    def create(self) -> None: ...
    def apply(self, resources: dict[str, Any]) -> None: ...
    def join(self, pid: int) -> None: ...
    def pids(self) -> list[int]: ...
    def signal_all(self, signum: int) -> None: ...
    def freeze(self) -> None: ...
    def thaw(self) -> None: ...
    def is_frozen(self) -> bool: ...
    def stats(self) -> dict[str, Any]: ...
    def exists(self) -> bool: ...
    def destroy(self) -> None: ...
    def paths(self) -> dict[str, str]: ...
    def to_state(self) -> dict[str, Any]: ...


_DEFAULT_FS = CgroupFS()


class Manager:
    """cgroupfs manager for one container on a v1, v2 or hybrid host."""

    __slots__ = ("_mounts", "_paths", "fs", "version")

    def __init__(
        self,
        version: str,
        paths: dict[str, str],
        mounts: dict[str, str],
        fs: CgroupFS | None = None,
    ) -> None:
        self.version = version
        self._paths = paths
        self._mounts = mounts
        self.fs = fs if fs is not None else _DEFAULT_FS

    def __repr__(self) -> str:
        return f"<cgroup manager {self.version} {self._paths}>"

    # -- lookups used by apply/stats ----------------------------------------------------------

    def paths(self) -> dict[str, str]:
        return dict(self._paths)

    def path(self, key: str) -> str | None:
        """The container's directory in hierarchy ``key`` (a v1 controller or "unified")."""
        return self._paths.get(key)

    def mount(self, key: str) -> str | None:
        return self._mounts.get(key)

    def to_state(self) -> dict[str, Any]:
        return {"version": self.version, "paths": dict(self._paths), "mounts": dict(self._mounts)}

    def _dirs(self) -> list[tuple[str, str]]:
        """(key, dir) for each distinct directory: co-mounted controllers share one."""
        seen: set[str] = set()
        out = []
        for key, path in self._paths.items():
            if path not in seen:
                seen.add(path)
                out.append((key, path))
        return out

    def _primary(self) -> str:
        for key in _PRIMARY_ORDER:
            path = self._paths.get(key)
            if path is not None:
                return path
        return next(iter(self._paths.values()))

    # -- lifecycle ------------------------------------------------------------------------------

    def create(self) -> None:
        fs = self.fs
        for key, path in self._dirs():
            is_cpuset = self._paths.get("cpuset") == path
            # Usually the parents exist (/pyrun): try the container's directory first, one
            # syscall per hierarchy instead of one per level.
            created = fs.mkdir(path, missing_parent_ok=True)
            if created is not None and not (
                is_cpuset and not self._fill_cpuset(path.rpartition("/")[0], path, created)
            ):
                continue
            self._create_levels(key, path, is_cpuset)

    def _create_levels(self, key: str, path: str, is_cpuset: bool) -> None:
        """mkdir -p from the hierarchy's mount. The last container's delete may remove
        /pyrun between two of our mkdirs: then walk again."""
        fs = self.fs
        mount = self._mounts[key]
        for _attempt in range(3):
            current = mount
            for part in path[len(mount) :].split("/"):
                if not part:
                    continue
                parent, current = current, f"{current}/{part}"
                made = fs.mkdir(current, missing_parent_ok=True)
                if made is None:
                    break
                if is_cpuset:
                    self._fill_cpuset(parent, current, made)
            else:
                return
        raise CgroupError(f"mkdir {path}: a parent directory kept disappearing")

    def _fill_cpuset(self, parent: str, path: str, created: bool) -> bool:
        """A new v1 cpuset starts with empty cpus/mems and refuses tasks until they are set:
        copy them from the parent. False if the parent had nothing to give."""
        fs = self.fs
        complete = True
        for name in ("cpuset.cpus", "cpuset.mems"):
            if not created and fs.read(f"{path}/{name}").strip():
                continue
            value = fs.read(f"{parent}/{name}").strip()
            if value:
                fs.write(f"{path}/{name}", value)
            else:
                complete = False
        return complete

    def apply(self, resources: dict[str, Any]) -> None:
        from runtime.cgroups.resources import apply_resources

        apply_resources(self, resources)

    def join(self, pid: int) -> None:
        fs = self.fs
        value = str(pid)
        for _key, path in self._dirs():
            procs = f"{path}/cgroup.procs"
            # EINVAL: the task is still TASK_NEW right after clone(); runc retries the same way.
            for _attempt in range(5):
                if fs.write(procs, value, tolerate=(errno.EINVAL,)) == 0:
                    break
                time.sleep(0.03)
            else:
                fs.write(procs, value)

    def pids(self) -> list[int]:
        return sorted(self._pids_under(self._primary()))

    def _pids_under(self, top: str) -> list[int]:
        fs = self.fs
        found: list[int] = []
        stack = [top]
        while stack:
            path = stack.pop()
            text = fs.read_optional(f"{path}/cgroup.procs")
            if text is None:
                continue  # removed while we walked
            found.extend(int(word) for word in text.split())
            stack.extend(f"{path}/{name}" for name in fs.subdirs(path))
        return found

    def exists(self) -> bool:
        return any(self.fs.isdir(path) for _key, path in self._dirs())

    def signal_all(self, signum: int) -> None:
        fs = self.fs
        froze = was_frozen = False
        if self._freezer() is not None and self.fs.isdir(self._primary()):
            was_frozen = self.is_frozen()
            if not was_frozen:
                try:
                    self.freeze()
                    froze = True
                except CgroupError:
                    # Signalling matters more than closing the fork race: go on unfrozen.
                    pass
        try:
            for pid in self.pids():
                fs.kill(pid, signum)
        finally:
            # A paused container stays paused, except that v1 only delivers SIGKILL on thaw.
            if froze or (was_frozen and signum == _SIGKILL):
                self.thaw()

    def destroy(self) -> None:
        errors = []
        for key, path in self._dirs():
            try:
                self._remove_tree(path)
            except CgroupError as exc:
                errors.append(exc)
                continue
            parent = path.rpartition("/")[0]
            if parent == f"{self._mounts[key]}/{DEFAULT_PARENT}":
                # Another container still in it (EBUSY, ENOTEMPTY) or already gone: fine.
                self.fs.rmdir(parent, tolerate=(errno.EBUSY, errno.ENOTEMPTY, errno.ENOENT))
        if errors:
            raise errors[0]

    def _remove_tree(self, top: str) -> None:
        fs = self.fs
        deadline = time.monotonic() + DESTROY_TIMEOUT
        delay = 0.001
        while True:
            # Children before parents; re-walk each round since tasks may still create cgroups.
            order = [top]
            index = 0
            while index < len(order):
                path = order[index]
                order.extend(f"{path}/{name}" for name in fs.subdirs(path))
                index += 1
            busy = None
            for path in reversed(order):
                if fs.rmdir(path, tolerate=(errno.ENOENT, errno.EBUSY)) == errno.EBUSY:
                    busy = path
            if busy is None:
                return
            if time.monotonic() >= deadline:
                pids = sorted(self._pids_under(busy))
                raise CgroupError(
                    f"cannot remove cgroup {busy}: still busy after {DESTROY_TIMEOUT:g} s "
                    f"(pids inside: {pids})"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    # -- freezer --------------------------------------------------------------------------------

    def _freezer(self) -> tuple[bool, str] | None:
        """(is_v1, dir) of the freezer to use, or None when the host has none."""
        path = self._paths.get("freezer")
        if path is not None:
            return True, path
        path = self._paths.get(_UNIFIED)
        if path is not None:
            return False, path  # cgroup.freeze exists in every non-root cgroup2 (Linux 5.2+)
        return None

    def _need_freezer(self) -> tuple[bool, str]:
        freezer = self._freezer()
        if freezer is None:
            raise CgroupError("cannot freeze: the freezer controller is not mounted")
        return freezer

    def freeze(self) -> None:
        self._set_frozen(True)

    def thaw(self) -> None:
        self._set_frozen(False)

    def _set_frozen(self, frozen: bool) -> None:
        fs = self.fs
        is_v1, path = self._need_freezer()
        if is_v1:
            target, value = f"{path}/freezer.state", "FROZEN" if frozen else "THAWED"
        else:
            target, value = f"{path}/cgroup.freeze", "1" if frozen else "0"
        fs.write(target, value)
        deadline = time.monotonic() + FREEZE_TIMEOUT
        delay = 0.0005
        rounds = 0
        while self.is_frozen() != frozen:
            if time.monotonic() >= deadline:
                if frozen:
                    fs.write(target, "THAWED" if is_v1 else "0")
                verb = "freeze" if frozen else "thaw"
                raise CgroupError(
                    f"cannot {verb} cgroup {path}: timed out after {FREEZE_TIMEOUT:g} s"
                )
            rounds += 1
            if is_v1 and rounds % 25 == 0:
                fs.write(target, value)  # v1 FREEZING can stall on a task in a syscall; poke again
            time.sleep(delay)
            delay = min(delay * 2, 0.01)

    def is_frozen(self) -> bool:
        fs = self.fs
        is_v1, path = self._need_freezer()
        if is_v1:
            return (fs.read_optional(f"{path}/freezer.state") or "").strip() == "FROZEN"
        for line in (fs.read_optional(f"{path}/cgroup.events") or "").splitlines():
            key, _, value = line.partition(" ")
            if key == "frozen":
                return value.strip() == "1"
        return False

    # -- stats ----------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        from runtime.cgroups.stats import collect

        return collect(self)
