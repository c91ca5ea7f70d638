"""User namespace id maps, written by the parent for the child that made the namespace.

Root writes /proc/<pid>/uid_map and gid_map directly. Without privilege the kernel accepts one
line mapping the writer's own id (and, for gids, only after setgroups is denied); anything
else goes through the setuid helpers newuidmap/newgidmap (package uidmap), which check
/etc/subuid and /etc/subgid -- as runc and podman do.
"""

from __future__ import annotations

import os

from runtime.errors import LinuxError, PyrunError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from runtime.spec.types import IDMapping


def _lines(mappings: list[IDMapping]) -> str:
    return "".join(f"{m['containerID']} {m['hostID']} {m['size']}\n" for m in mappings)


def _only_own_id(mappings: list[IDMapping], own: int) -> bool:
    return len(mappings) == 1 and mappings[0]["hostID"] == own and mappings[0]["size"] == 1


def write_id_maps(pid: int, uid_mappings: list[IDMapping], gid_mappings: list[IDMapping]) -> None:
    """Give the user namespace of ``pid`` its uid and gid maps."""
    privileged = os.geteuid() == 0
    if privileged or _only_own_id(gid_mappings, os.getegid()):
        if not privileged:
            _write(f"/proc/{pid}/setgroups", "deny")
        _write(f"/proc/{pid}/gid_map", _lines(gid_mappings))
    else:
        _helper("newgidmap", pid, gid_mappings)
    if privileged or _only_own_id(uid_mappings, os.geteuid()):
        _write(f"/proc/{pid}/uid_map", _lines(uid_mappings))
    else:
        _helper("newuidmap", pid, uid_mappings)


def _write(path: str, text: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)
    except OSError as err:
        raise LinuxError(f"write {path.rsplit('/', 1)[-1]}", err.errno or 0, text.strip()) from None


def _helper(name: str, pid: int, mappings: list[IDMapping]) -> None:
    import shutil
    import subprocess

    program = shutil.which(name) or f"/usr/bin/{name}"
    argv = [program, str(pid)]
    for m in mappings:
        argv += [str(m["containerID"]), str(m["hostID"]), str(m["size"])]
    try:
        result = subprocess.run(argv, capture_output=True, text=True)
    except OSError as err:
        raise PyrunError(
            f"{name} is needed to map ids other than your own ({(err.strerror or '').lower()});"
            " install the uidmap package"
        ) from None
    if result.returncode != 0:
        raise PyrunError(
            f"{name} refused the mapping {_lines(mappings).strip()!r}:"
            f" {result.stderr.strip() or result.stdout.strip()}"
            " (check /etc/subuid and /etc/subgid)"
        )


def setgroups_allowed() -> bool:
    """False in a user namespace whose setgroups was denied (an unprivileged single mapping)."""
    try:
        with open("/proc/self/setgroups", "rb") as handle:
            return handle.read().strip() != b"deny"
    except OSError:
        return True


def maps_id(mappings: list[IDMapping], container_id: int) -> bool:
    return any(m["containerID"] <= container_id < m["containerID"] + m["size"] for m in mappings)
