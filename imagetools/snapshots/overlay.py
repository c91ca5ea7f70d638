"""Overlay mounts for bundle snapshots: the probe, the options, mount and unmount.

Options keep the upper dir committable as a plain tree plus whiteouts: no metacopy (a
metacopy file's data stays in a lower layer), no redirect_dir (a renamed directory would be a
pointer into the lowers), index=off (no hardlink index). Only options the running kernel knows
(/sys/module/overlay/parameters) are passed.

The mount data is limited to one page (4096 bytes). Like docker's overlay2, lower layers are
named by short links (``l/<link>``) and the mount is made from ``<root>/snapshots`` as the
current directory, so each lower costs ~15 bytes: 60 layers take under 1 KB. (The chdir is
process-wide: callers are single-threaded CLI processes.)
"""

from __future__ import annotations

import os

from imagetools.errors import SnapshotError
from imagetools.snapshots.layout import Layout, read_json, write_json

_PARAMETERS = "/sys/module/overlay/parameters"
_PAGE = 4096
# Option -> the kernel parameter that tells the kernel knows it.
_WANTED = (
    ("index=off", "index"),
    ("redirect_dir=off", "redirect_dir"),
    ("metacopy=off", "metacopy"),
)


def known_options() -> list[str]:
    return [option for option, parameter in _WANTED if os.path.exists(f"{_PARAMETERS}/{parameter}")]


def support(layout: Layout) -> list[str] | None:
    """The options to mount with, or None when overlay cannot be used here (not root, no
    overlay in the kernel, an upper filesystem it refuses). Probed once per kernel release by
    mounting a tiny overlay under the store; the answer is cached in the store."""
    cache = f"{layout.dir}/overlay.json"
    release = os.uname().release
    cached = read_json(cache)
    if isinstance(cached, dict) and cached.get("kernel") == release:
        options = cached.get("options")
        return list(options) if cached.get("supported") and isinstance(options, list) else None
    options = _probe(layout)
    os.makedirs(layout.dir, exist_ok=True)
    write_json(cache, {"kernel": release, "supported": options is not None, "options": options})
    return options


def _probe(layout: Layout) -> list[str] | None:
    from imagetools.snapshots.tmp import TmpDir
    from runtime.errors import LinuxError
    from runtime.linux.syscalls import Syscalls

    if os.geteuid() != 0:
        return None
    sys = Syscalls()
    with TmpDir(layout, "probe-") as base:
        for name in ("lower", "upper", "work", "merged"):
            os.mkdir(f"{base}/{name}")
        data = f"lowerdir={base}/lower,upperdir={base}/upper,workdir={base}/work"
        try:
            # The first mount loads the module, whose parameters then say which options exist.
            for options in ([], known_options()):
                sys.mount("overlay", f"{base}/merged", "overlay", 0, ",".join([data, *options]))
                sys.umount(f"{base}/merged")
        except LinuxError:
            return None
    return options


def mount(
    layout: Layout, links: list[str], upper: str, work: str, target: str, options: list[str]
) -> None:
    """Mount ``links`` (short names under l/, top layer first) with ``upper``/``work``
    (absolute: mountinfo then names this snapshot's dirs exactly) on ``target``."""
    from runtime.linux.syscalls import Syscalls

    lower = ":".join(f"l/{link}" for link in links)
    data = ",".join([f"lowerdir={lower}", f"upperdir={upper}", f"workdir={work}", *options])
    if len(data) >= _PAGE:
        raise SnapshotError(
            f"{len(links)} layers do not fit in one overlay mount ({len(data)} bytes of mount"
            f" options, the kernel takes {_PAGE - 1}): use --snapshotter vfs"
        )
    saved = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.chdir(layout.dir)
        Syscalls().mount("overlay", target, "overlay", 0, data)
    finally:
        os.fchdir(saved)
        os.close(saved)


def unmount(target: str) -> None:
    """Unmount; a mount kept busy (a shell's cwd in it) is detached instead, as overlay2 does."""
    from runtime.errors import LinuxError
    from runtime.linux.syscalls import MNT_DETACH, Syscalls

    sys = Syscalls()
    try:
        sys.umount(target)
    except LinuxError as err:
        if err.errno != 16:  # EBUSY
            raise
        sys.umount(target, MNT_DETACH)


def mount_stack(target: str) -> list[str | None]:
    """What is mounted on ``target``, bottom to top: an overlay's upperdir ('' without one),
    None for any other filesystem. Empty when ``target`` is not a mount point."""
    with open("/proc/self/mountinfo", "rb") as handle:
        return parse_stack(handle.read().decode("utf-8", "surrogateescape"), target)


def parse_stack(mountinfo: str, target: str) -> list[str | None]:
    stack: list[str | None] = []
    for line in mountinfo.splitlines():
        fields, _, tail = line.partition(" - ")
        parts = fields.split(" ")
        if len(parts) < 5 or _unescape(parts[4]) != target:
            continue
        tail_parts = tail.split(" ")
        if not tail_parts or tail_parts[0] != "overlay":
            stack.append(None)
            continue
        upper = ""
        for option in _unescape(tail_parts[-1]).split(","):
            if option.startswith("upperdir="):
                upper = option[len("upperdir=") :]
        stack.append(upper)
    return stack


def mounts_of_upper(upper: str) -> list[str]:
    """Mount points of every overlay whose upperdir is ``upper`` (a moved bundle's too)."""
    with open("/proc/self/mountinfo", "rb") as handle:
        text = handle.read().decode("utf-8", "surrogateescape")
    option = f"upperdir={upper}"
    return [point for point, options in _overlays(text) if option in options]


def user_elsewhere(upper: str) -> int | None:
    """A pid in another mount namespace than this process's that still has an overlay whose
    upperdir is ``upper`` mounted, None if there is none. A running container keeps its copy
    of the bundle's overlay (its root, after pivot_root) in its own namespace, where this
    process's mountinfo does not show it. Each namespace's mountinfo is read once; processes
    that vanish or may not be looked at meanwhile are skipped."""
    import errno

    vanished = (errno.ENOENT, errno.ESRCH, errno.EACCES, errno.EPERM)
    option = f"upperdir={upper}"
    seen = {os.readlink("/proc/self/ns/mnt")}
    pids = sorted(int(name) for name in os.listdir("/proc") if name.isdigit())
    for pid in pids:
        try:
            namespace = os.readlink(f"/proc/{pid}/ns/mnt")
            if namespace in seen:
                continue
            with open(f"/proc/{pid}/mountinfo", "rb") as handle:
                text = handle.read().decode("utf-8", "surrogateescape")
        except OSError as err:
            if err.errno in vanished:
                continue
            raise
        seen.add(namespace)
        if any(option in options for _point, options in _overlays(text)):
            return pid
    return None


def _overlays(mountinfo: str) -> list[tuple[str, list[str]]]:
    """(mount point, super options) of every overlay in ``mountinfo``."""
    found = []
    for line in mountinfo.splitlines():
        fields, _, tail = line.partition(" - ")
        parts, tail_parts = fields.split(" "), tail.split(" ")
        if len(parts) < 5 or not tail_parts or tail_parts[0] != "overlay":
            continue
        found.append((_unescape(parts[4]), _unescape(tail_parts[-1]).split(",")))
    return found


def mounted_upper(target: str) -> str | None:
    """The upperdir of the top overlay on ``target``; None when the top mount is not an
    overlay or there is none."""
    stack = mount_stack(target)
    return stack[-1] if stack else None


def _unescape(text: str) -> str:
    r"""mountinfo writes space, tab, newline and backslash as \ooo."""
    if "\\" not in text:
        return text
    out, index = [], 0
    while index < len(text):
        if text[index] == "\\" and text[index + 1 : index + 4].isdigit():
            out.append(chr(int(text[index + 1 : index + 4], 8)))
            index += 4
        else:
            out.append(text[index])
            index += 1
    return "".join(out)
