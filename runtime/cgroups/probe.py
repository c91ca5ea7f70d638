"""Find the host's cgroup layout from /proc/self/mountinfo and /proc/self/cgroup, and resolve a
container's cgroupsPath to one directory per hierarchy.

The layout is probed, never guessed from paths: a v1 hierarchy is a ``cgroup`` mount whose
super-options name controllers this process belongs to (``/proc/self/cgroup``), the unified one
is a ``cgroup2`` mount. Reads two small files; imports nothing beyond os.
"""

from __future__ import annotations

import os

from runtime.errors import CgroupError

DEFAULT_SYSFS_ROOT = "/sys/fs/cgroup"
UNIFIED = "unified"


class Hierarchy:
    """One mounted hierarchy: where it is mounted and which part of it the mount shows."""

    __slots__ = ("mountpoint", "root")

    def __init__(self, mountpoint: str, root: str) -> None:
        self.mountpoint = mountpoint
        self.root = root  # mountinfo field 4: the hierarchy path shown at the mountpoint

    def __repr__(self) -> str:
        return f"Hierarchy({self.mountpoint!r}, root={self.root!r})"


class Host:
    """The probed layout: ``hierarchies`` maps a key (v1 controller, ``name=systemd`` or
    ``unified``) to its mount, ``own`` maps the same keys to this process's cgroup."""

    __slots__ = ("hierarchies", "own", "version")

    def __init__(self, version: str, hierarchies: dict[str, Hierarchy], own: dict[str, str]):
        self.version = version
        self.hierarchies = hierarchies
        self.own = own


def _read(path: str) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise CgroupError(f"read {path}: {exc.strerror}") from None
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode()


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """``/proc/<pid>/cgroup`` → {controller or "name=…" or "unified": path}."""
    own: dict[str, str] = {}
    for line in text.splitlines():
        number, _, rest = line.partition(":")
        controllers, sep, path = rest.partition(":")
        if not sep:
            continue
        if number == "0" and not controllers:
            own[UNIFIED] = path
            continue
        for name in controllers.split(","):
            if name:
                own[name] = path
    return own


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash as \ooo octal escapes.
    if "\\" not in field:
        return field
    out = []
    i = 0
    while i < len(field):
        chunk = field[i + 1 : i + 4]
        if field[i] == "\\" and len(chunk) == 3 and chunk.isdigit():
            out.append(chr(int(chunk, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[tuple[str, str, str, list[str]]]:
    """Every cgroup mount as (fstype, mountpoint, root, super-options)."""
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        if not sep:
            continue
        tail = right.split(" ")
        if tail[0] not in ("cgroup", "cgroup2"):
            continue
        fields = left.split(" ")
        if len(fields) < 5:
            continue
        options = tail[2].split(",") if len(tail) > 2 else []
        mounts.append((tail[0], _unescape(fields[4]), _unescape(fields[3]), options))
    return mounts


def _relocate(mountpoint: str, sysfs_root: str) -> str:
    # Lets tests (and chroots) see /sys/fs/cgroup/... of mountinfo under another directory.
    if sysfs_root == DEFAULT_SYSFS_ROOT:
        return mountpoint
    if mountpoint == DEFAULT_SYSFS_ROOT:
        return sysfs_root
    if mountpoint.startswith(DEFAULT_SYSFS_ROOT + "/"):
        return sysfs_root + mountpoint[len(DEFAULT_SYSFS_ROOT) :]
    return mountpoint


def probe(sysfs_root: str = DEFAULT_SYSFS_ROOT, proc_root: str = "/proc") -> Host:
    own = parse_proc_cgroup(_read(f"{proc_root}/self/cgroup"))
    hierarchies: dict[str, Hierarchy] = {}
    preferred: set[str] = set()  # keys already bound to a mount under /sys/fs/cgroup
    for fstype, mountpoint, root, options in parse_mountinfo(_read(f"{proc_root}/self/mountinfo")):
        standard = mountpoint == DEFAULT_SYSFS_ROOT or mountpoint.startswith(
            DEFAULT_SYSFS_ROOT + "/"
        )
        if fstype == "cgroup2":
            keys = [UNIFIED]
        else:
            keys = [opt for opt in options if opt in own and opt != UNIFIED]
        hierarchy = Hierarchy(_relocate(mountpoint, sysfs_root).rstrip("/") or "/", root)
        for key in keys:
            # The same hierarchy may be mounted twice (bind mounts): keep the standard place.
            if key in preferred or (key in hierarchies and not standard):
                continue
            hierarchies[key] = hierarchy
            if standard:
                preferred.add(key)
    has_v1 = any(key != UNIFIED and not key.startswith("name=") for key in hierarchies)
    if UNIFIED in hierarchies:
        version = "hybrid" if has_v1 else "v2"
    elif hierarchies:
        version = "v1"
    else:
        raise CgroupError(f"no cgroup filesystem is mounted (checked {proc_root}/self/mountinfo)")
    if version == "v2":
        # Named v1 hierarchies are irrelevant once everything lives in cgroup2.
        hierarchies = {UNIFIED: hierarchies[UNIFIED]}
    else:
        # Like runc: the controllers plus systemd's named hierarchy, no other named ones.
        hierarchies = {
            key: h
            for key, h in hierarchies.items()
            if not key.startswith("name=") or key == "name=systemd"
        }
    return Host(version, hierarchies, own)


def _under_root(path: str, root: str) -> str:
    """A hierarchy path made relative to what the mount shows (its mountinfo root)."""
    if root in ("", "/"):
        return path
    if path == root:
        return "/"
    if path.startswith(root + "/"):
        return path[len(root) :]
    # Not below the mount's root (e.g. a cgroupns view): the mount is all we can see.
    return path


def check_cgroups_path(cgroups_path: str) -> None:
    if "\0" in cgroups_path:
        raise CgroupError(f"invalid cgroupsPath {cgroups_path!r}: contains a NUL byte")
    if ".." in cgroups_path.split("/"):
        raise CgroupError(f"invalid cgroupsPath {cgroups_path!r}: '..' components are not allowed")


def resolve(host: Host, cgroups_path: str) -> tuple[dict[str, str], dict[str, str]]:
    """The container's directory and the mountpoint, per hierarchy key."""
    check_cgroups_path(cgroups_path)
    if not cgroups_path.strip("/"):
        raise CgroupError(f"invalid cgroupsPath {cgroups_path!r}: it names the hierarchy root")
    absolute = cgroups_path.startswith("/")
    paths: dict[str, str] = {}
    mounts: dict[str, str] = {}
    for key, hierarchy in host.hierarchies.items():
        if absolute:
            inside = _under_root(cgroups_path, hierarchy.root)
        else:
            own = host.own.get(key)
            if own is None:
                raise CgroupError(
                    f"cannot resolve relative cgroupsPath {cgroups_path!r}: this process has no "
                    f"cgroup in the {key} hierarchy (/proc/self/cgroup)"
                )
            inside = _under_root(own, hierarchy.root).rstrip("/") + "/" + cgroups_path
        mount = hierarchy.mountpoint
        path = os.path.normpath(f"{mount}/{inside}")
        if path == mount or not path.startswith(mount.rstrip("/") + "/"):
            raise CgroupError(
                f"invalid cgroupsPath {cgroups_path!r}: resolves to {path}, "
                f"not below the {key} hierarchy at {mount}"
            )
        paths[key] = path
        mounts[key] = mount
    return paths, mounts
