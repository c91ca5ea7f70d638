"""Container cgroups on cgroup v1, v2 and hybrid hosts, through one syscall seam.

::

    open_manager(id, cgroupsPath)            probe.py: mountinfo + /proc/self/cgroup → layout
        │                                    systemd_path.py: slice:prefix:name → path
        ▼
    base.Manager ── create/join/pids/signal_all/freeze/thaw/destroy/to_state  (hot path)
        │  every file operation goes through base.CgroupFS (OSError → CgroupError, one place)
        ├── apply(resources) → resources.py: validate all, then write
        │       v1.py (cgroupspy controllers), v2.py (+ subtree_control), devices.py (rules +
        │       runc's emulator), devices_bpf.py (BPF_PROG_TYPE_CGROUP_DEVICE via bpf(2))
        └── stats() → stats.py: runc ``events --stats`` "data"

Importing this package, ``open_manager``, create, join, pids, destroy and the state round trip
load only os, errno and time (plus this package); everything else is imported on first use.
"""

from __future__ import annotations

from runtime.errors import CgroupError

TYPE_CHECKING = False  # typing costs ~10 ms to import; mypy still reads the block below
if TYPE_CHECKING:
    from typing import Any

    from runtime.cgroups.base import CgroupFS, CgroupManager
    from runtime.cgroups.probe import Host

__all__ = ["CgroupError", "manager_from_state", "open_manager"]

_VERSIONS = ("v1", "v2", "hybrid")


def _check_id(container_id: str) -> None:
    if not container_id:
        raise CgroupError("invalid container id: must not be empty")
    if "/" in container_id or "\0" in container_id or container_id in (".", ".."):
        raise CgroupError(f"invalid container id {container_id!r}: not usable as a cgroup name")


def open_manager(
    container_id: str,
    cgroups_path: str | None,
    *,
    systemd: bool = False,
    sysfs_root: str = "/sys/fs/cgroup",
    proc_root: str = "/proc",
    fs: CgroupFS | None = None,
    host: Host | None = None,
) -> CgroupManager:
    """The cgroup manager for a container, by runc's rules for ``linux.cgroupsPath``.

    Absolute paths are relative to each hierarchy's root as this cgroup namespace sees it,
    relative ones to this process's own cgroup, and None means ``/pyrun/<container_id>``.
    ``fs`` replaces the cgroupfs seam (unit tests); ``host`` reuses an earlier ``probe()``.
    """
    from runtime.cgroups.base import DEFAULT_PARENT, Manager
    from runtime.cgroups.probe import probe, resolve

    _check_id(container_id)
    if systemd:
        from runtime.cgroups.systemd_path import systemd_cgroup_path

        path = systemd_cgroup_path(container_id, cgroups_path)
    elif cgroups_path is None:
        path = f"/{DEFAULT_PARENT}/{container_id}"
    else:
        path = cgroups_path
    if host is None:
        host = probe(sysfs_root=sysfs_root, proc_root=proc_root)
    paths, mounts = resolve(host, path)
    return Manager(host.version, paths, mounts, fs)


def manager_from_state(data: dict[str, Any], *, fs: CgroupFS | None = None) -> CgroupManager:
    """Rebuild the manager saved by ``to_state()``, without probing the host again."""
    from runtime.cgroups.base import Manager

    version = data.get("version") if isinstance(data, dict) else None
    paths = data.get("paths") if isinstance(data, dict) else None
    mounts = data.get("mounts") if isinstance(data, dict) else None
    if version not in _VERSIONS or not isinstance(paths, dict) or not isinstance(mounts, dict):
        raise CgroupError(f"invalid cgroup state: {data!r}")
    if not paths or set(paths) != set(mounts):
        raise CgroupError(f"invalid cgroup state: paths and mounts differ: {data!r}")
    for key, path in paths.items():
        mount = mounts[key]
        if not (
            isinstance(path, str)
            and isinstance(mount, str)
            and mount.startswith("/")
            and path.startswith(mount.rstrip("/") + "/")
            and ".." not in path.split("/")
        ):
            raise CgroupError(f"invalid cgroup state: {key} path {path!r} is not below {mount!r}")
    return Manager(str(version), dict(paths), dict(mounts), fs)
