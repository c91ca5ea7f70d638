"""``--systemd-cgroup``: map runc's ``slice:prefix:name`` cgroupsPath to the cgroup path runc's
systemd driver would use.

pyrun does not talk to systemd: no transient unit is registered over D-Bus. The returned path
is created and managed with the cgroupfs code like any other, so systemd does not know the
scope (``systemctl status`` will not show it and systemd will not clean it up); the layout is
the same as runc's so that tools looking for ``/system.slice/runc-<id>.scope`` find it.
"""

from __future__ import annotations

import os

from runtime.errors import CgroupError

# sd_booted(3): systemd is PID 1 iff this directory exists.
RUNTIME_DIR = "/run/systemd/system"


def systemd_running() -> bool:
    return os.path.isdir(RUNTIME_DIR)


def expand_slice(slice_name: str) -> str:
    """``a-b-c.slice`` → ``/a.slice/a-b.slice/a-b-c.slice``; ``-.slice`` is the root."""
    suffix = ".slice"
    if len(slice_name) <= len(suffix) or not slice_name.endswith(suffix) or "/" in slice_name:
        raise CgroupError(f"invalid slice name: {slice_name}")
    stem = slice_name[: -len(suffix)]
    if stem == "-":
        return "/"
    path = prefix = ""
    for component in stem.split("-"):
        if not component:  # "a--b.slice", "-a.slice" and "a-.slice" are not valid units
            raise CgroupError(f"invalid slice name: {slice_name}")
        path += f"/{prefix}{component}{suffix}"
        prefix += f"{component}-"
    return path


def systemd_cgroup_path(container_id: str, cgroups_path: str | None) -> str:
    """The absolute cgroup path for ``slice:prefix:name`` (default ``system.slice:runc:<id>``)."""
    if not systemd_running():
        raise CgroupError(
            "systemd cgroup driver requested (--systemd-cgroup) but systemd is not running on "
            "this host"
        )
    if not cgroups_path:
        slice_name, prefix, name = "", "runc", container_id
    else:
        parts = cgroups_path.split(":")
        if len(parts) != 3:
            raise CgroupError(
                'expected cgroupsPath to be of format "slice:prefix:name" for systemd cgroups, '
                f"got {cgroups_path!r} instead"
            )
        slice_name, prefix, name = parts
    if not name or "/" in name or "/" in prefix:
        raise CgroupError(f"invalid systemd cgroupsPath {cgroups_path!r}: bad unit name")
    parent = expand_slice(slice_name or "system.slice")
    unit = name if name.endswith(".slice") else f"{prefix}-{name}.scope"
    return f"{parent.rstrip('/')}/{unit}"
