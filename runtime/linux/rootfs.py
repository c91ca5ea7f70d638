"""The container's filesystem: mounts, /dev, pivot_root, masked and read-only paths.

Runs in the container's init, inside its new mount namespace, in runc's order
(libcontainer/rootfs_linux.go): propagation of ``/`` -> bind the rootfs onto itself -> each
config mount (destinations resolved inside the rootfs) -> /dev nodes and links -> pivot_root (or
MS_MOVE + chroot with --no-pivot). ``finalize`` runs after sysctls: read-only and masked paths,
then a read-only ``/`` and ``/dev`` when asked.
"""

from __future__ import annotations

import os
import stat

from runtime.errors import LinuxError
from runtime.linux.mountopts import MountOptions
from runtime.linux.securepath import ensure_file, mkdir_all, open_in_root, resolve_in_root
from runtime.spec.tables import (
    MS_BIND,
    MS_MOVE,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_RELATIME,
    MS_REMOUNT,
    MS_SHARED,
    MS_SLAVE,
    PROPAGATION_FLAGS,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from runtime.linux.syscalls import Syscalls
    from runtime.spec.types import Config, Device, Mount

_AT_EMPTY_PATH = 0x1000
_AT_RECURSIVE = 0x8000
_MNT_DETACH = 0x2
# Flags that a bind mount only takes through a second, remounting call.
_BIND_KEEP = MS_BIND | MS_REC


class CgroupMount:
    """How the ``cgroup`` mount type is served: one entry per hierarchy.

    ``subdir`` is the directory under the mount destination ("" for a v2 root), ``source`` the
    container's host cgroup directory (bind mode) and ``fstype``/``data`` the fresh mount used
    inside a cgroup namespace.
    """

    __slots__ = ("data", "fstype", "source", "subdir")

    def __init__(self, subdir: str, source: str, fstype: str, data: str | None) -> None:
        self.subdir = subdir
        self.source = source
        self.fstype = fstype
        self.data = data


class Rootfs:
    def __init__(
        self,
        sys: Syscalls,
        config: Config,
        rootfs: str,
        bundle: str,
        *,
        cgroup_mounts: list[CgroupMount] | None = None,
        cgroupns: bool = False,
        userns: bool = False,
        before_cgroup_mount: Callable[[], None] | None = None,
    ) -> None:
        self.sys = sys
        self.config = config
        self.rootfs = rootfs
        self.bundle = bundle
        self.cgroup_mounts = cgroup_mounts or []
        self.cgroupns = cgroupns
        self.userns = userns
        # Called before the first cgroup mount: the container's cgroup directories, which that
        # mount shows, are made by the parent while the other mounts go in.
        self.before_cgroup_mount = before_cgroup_mount
        self._root_fd = -1

    # -- before pivot_root -------------------------------------------------------------------
    def prepare(self) -> None:
        propagation = self.config.get("linux", {}).get("rootfsPropagation")
        flag = PROPAGATION_FLAGS.get(propagation or "", MS_SLAVE | MS_REC)
        if flag & MS_SHARED:
            flag = MS_SLAVE | MS_REC  # pivot_root refuses a shared parent; made shared after
        self.sys.mount(None, "/", None, flag, None)
        self._make_parent_private()
        self.sys.mount(self.rootfs, self.rootfs, None, MS_BIND | MS_REC, None)
        self._root_fd = os.open(self.rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for mount in self.config.get("mounts", []):
                self._mount(mount)
            if self._needs_dev_setup():
                self._create_devices()
                self._create_dev_links()
            else:
                self._create_devices(only_config=True)
        finally:
            os.close(self._root_fd)
            self._root_fd = -1

    def _make_parent_private(self) -> None:
        """pivot_root fails when the rootfs's parent mount is shared (runc does the same)."""
        parent, shared = _parent_mount(self.rootfs)
        if shared:
            self.sys.mount(None, parent, None, MS_PRIVATE, None)

    def _mount(self, mount: Mount) -> None:
        destination = mount["destination"]
        mtype = mount.get("type") or ""
        options = MountOptions(mount.get("options"), mtype)
        if mtype in ("cgroup", "cgroup2") and not options.is_bind:
            if self.before_cgroup_mount is not None:
                self.before_cgroup_mount()
            self._mount_cgroup(destination, options)
            return
        host_dest = resolve_in_root(self.rootfs, destination)
        source = mount.get("source") or mtype or "none"
        # runc (rootfs_linux.go, case "tmpfs") gives a tmpfs the mode of the directory it
        # covers, when that directory already existed, whatever ``mode=`` says.
        keep_mode = _existing_mode(host_dest) if mtype == "tmpfs" and not options.is_bind else None
        if options.is_bind:
            if not source.startswith("/"):
                source = os.path.join(self.bundle, source)
            try:
                is_dir = stat.S_ISDIR(os.stat(source).st_mode)
            except OSError as err:
                raise LinuxError("bind mount source", err.errno or 0, source) from None
            if is_dir:
                mkdir_all(host_dest)
            else:
                ensure_file(host_dest)
        else:
            mkdir_all(host_dest)
        relative = host_dest[len(self.rootfs) :]
        fd = open_in_root(self.sys, self._root_fd, relative, os.O_PATH)
        try:
            target = f"/proc/self/fd/{fd}"
            if options.is_bind:
                self.sys.mount(source, target, None, options.flags & _BIND_KEEP, None)
            else:
                flags = options.flags
                if _readonly_in_finalize(mount, options):
                    flags &= ~MS_RDONLY  # files and modes go in first; finalize makes it ro
                self.sys.mount(source, target, mtype, flags, options.data)
        finally:
            os.close(fd)
        if not (options.is_bind and options.flags & ~_BIND_KEEP) and not (
            options.propagation or options.attr_set or options.attr_clear or keep_mode is not None
        ):
            return
        # The descriptor above names the directory *under* the new mount: a remount, a
        # propagation change, mount_setattr or chmod through it hits that directory (for the
        # mount calls: not a mount root, EINVAL). Open the destination again so the lookup
        # crosses onto the new mount.
        fd = open_in_root(self.sys, self._root_fd, relative, os.O_PATH)
        try:
            self._mount_at_finish(f"/proc/self/fd/{fd}", options, keep_mode, destination)
        finally:
            os.close(fd)

    def _mount_at_finish(
        self, target: str, options: MountOptions, keep_mode: int | None, shown: str
    ) -> None:
        """What a mount needs after it is in place: bind remount flags, a tmpfs's mode,
        propagation, attrs."""
        if options.is_bind:
            extra = options.flags & ~_BIND_KEEP
            if extra:
                if self.userns:
                    extra |= _mount_flags(target)  # locked flags of the source must stay
                self.sys.mount(None, target, None, extra | MS_BIND | MS_REMOUNT, None)
        elif keep_mode is not None:
            self.sys.call("chmod", shown, os.chmod, target, keep_mode)
        for propagation in options.propagation:
            self.sys.mount(None, target, None, propagation, None)
        if options.attr_set or options.attr_clear:
            fd = os.open(target, os.O_PATH | os.O_CLOEXEC)
            try:
                self.sys.mount_setattr(
                    fd, "", _AT_EMPTY_PATH | _AT_RECURSIVE, options.attr_set, options.attr_clear
                )
            finally:
                os.close(fd)

    def _mount_cgroup(self, destination: str, options: MountOptions) -> None:
        host_dest = resolve_in_root(self.rootfs, destination)
        keep_mode = _existing_mode(host_dest)
        mkdir_all(host_dest)
        flags = options.flags & ~MS_BIND
        readonly = flags & MS_RDONLY
        common = (MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RELATIME) & flags or (
            MS_NOSUID | MS_NODEV | MS_NOEXEC
        )
        v2_root = len(self.cgroup_mounts) == 1 and self.cgroup_mounts[0].subdir == ""
        if not v2_root:
            # v1: a tmpfs holds one directory per hierarchy. Like runc (mountCgroupV1) it stays
            # read-write even when the cgroup mount is "ro" (only the hierarchies are
            # read-only) and takes the mode of the directory it covers (sysfs: 0555).
            self.sys.mount("tmpfs", host_dest, "tmpfs", common, "mode=755")
            if keep_mode is not None:
                self.sys.call("chmod", destination, os.chmod, host_dest, keep_mode)
        for item in self.cgroup_mounts:
            target = host_dest if item.subdir == "" else os.path.join(host_dest, item.subdir)
            mkdir_all(target)
            if self.cgroupns:
                self.sys.mount("cgroup", target, item.fstype, common | readonly, item.data)
            else:
                self.sys.mount(item.source, target, None, MS_BIND | MS_REC, None)
                self.sys.mount(None, target, None, MS_BIND | MS_REMOUNT | common | readonly, None)

    def _needs_dev_setup(self) -> bool:
        for mount in self.config.get("mounts", []):
            if mount.get("destination", "").rstrip("/") == "/dev":
                return not MountOptions(mount.get("options"), mount.get("type")).is_bind
        return True

    def _create_devices(self, only_config: bool = False) -> None:
        from runtime.spec.defaults import DEFAULT_DEVICES

        wanted: dict[str, Device] = {}
        if not only_config:
            for default in DEFAULT_DEVICES:
                wanted[default["path"]] = default  # type: ignore[assignment]
        for device in self.config.get("linux", {}).get("devices", []):
            wanted[device["path"]] = device
        if not wanted:
            return
        old_umask = os.umask(0)
        try:
            for node in wanted.values():
                self._create_device(node)
        finally:
            os.umask(old_umask)

    def _create_device(self, device: Device) -> None:
        host_path = resolve_in_root(self.rootfs, device["path"])
        mkdir_all(os.path.dirname(host_path))
        kind = device.get("type", "c")
        mode = device.get("fileMode", 0o666) & 0o7777
        if self.userns:
            # mknod is not allowed in a user namespace: bind the host's node instead (runc).
            ensure_file(host_path)
            self.sys.mount(device["path"], host_path, None, MS_BIND, None)
            return
        type_bits = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}
        rdev = os.makedev(device.get("major", 0), device.get("minor", 0)) if kind != "p" else 0
        try:
            os.mknod(host_path, type_bits[kind] | mode, rdev)
        except FileExistsError:
            return
        except OSError as err:
            raise LinuxError("mknod", err.errno or 0, device["path"]) from None
        self.sys.call(
            "chown", device["path"], os.chown, host_path, device.get("uid", 0), device.get("gid", 0)
        )

    def _create_dev_links(self) -> None:
        links = [
            ("/proc/self/fd", "/dev/fd"),
            ("/proc/self/fd/0", "/dev/stdin"),
            ("/proc/self/fd/1", "/dev/stdout"),
            ("/proc/self/fd/2", "/dev/stderr"),
        ]
        if os.path.exists("/proc/kcore"):
            links.append(("/proc/kcore", "/dev/core"))
        for target, link in links:
            host_link = resolve_in_root(self.rootfs, link)
            try:
                os.symlink(target, host_link)
            except FileExistsError:
                continue
            except OSError as err:
                raise LinuxError("symlink", err.errno or 0, link) from None
        # /dev/ptmx must be the devpts instance's own ptmx (newinstance), as runc sets it up.
        ptmx = resolve_in_root(self.rootfs, "/dev/ptmx")
        try:
            os.unlink(ptmx)
        except FileNotFoundError:
            pass
        except OSError as err:
            raise LinuxError("unlink", err.errno or 0, "/dev/ptmx") from None
        self.sys.call("symlink", "/dev/ptmx", os.symlink, "pts/ptmx", ptmx)

    # -- the switch --------------------------------------------------------------------------
    def pivot(self, no_pivot: bool = False) -> None:
        if no_pivot:
            self.sys.call("chdir", self.rootfs, os.chdir, self.rootfs)
            self.sys.mount(self.rootfs, "/", None, MS_MOVE, None)
            self.sys.call("chroot", self.rootfs, os.chroot, ".")
            self.sys.call("chdir", "/", os.chdir, "/")
            return
        old_root = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        new_root = os.open(self.rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fchdir(new_root)
            # pivot_root(".", ".") stacks the old root on top of the new one; it is then
            # detached without a temporary directory in the rootfs (runc's approach).
            self.sys.pivot_root(".", ".")
            os.fchdir(old_root)
            self.sys.mount(None, ".", None, MS_SLAVE | MS_REC, None)
            self.sys.umount(".", _MNT_DETACH)
        finally:
            os.close(old_root)
            os.close(new_root)
        self.sys.call("chdir", "/", os.chdir, "/")

    # -- after pivot_root --------------------------------------------------------------------
    def finalize(self) -> None:
        linux = self.config.get("linux", {})
        for path in linux.get("readonlyPaths", []):
            self._readonly(path)
        for path in linux.get("maskedPaths", []):
            self._mask(path)
        # Like runc's finalizeRootfs: every read-only tmpfs and /dev was mounted read-write and
        # becomes read-only now, per mount (MS_BIND: the superblock stays rw, as in runc) and
        # keeping its other flags (a bind remount clears the flags it is not given: nosuid...).
        for mount in self.config.get("mounts", []):
            options = MountOptions(mount.get("options"), mount.get("type"))
            if options.flags & MS_RDONLY and (
                mount.get("type") == "tmpfs" or _is_dev(mount.get("destination", ""))
            ):
                flags = (options.flags & ~_BIND_KEEP) | MS_REMOUNT | MS_BIND | MS_RDONLY
                self.sys.mount(None, mount["destination"], None, flags, None)
        if self.config.get("root", {}).get("readonly"):
            self._readonly_root()
        propagation = linux.get("rootfsPropagation")
        if propagation in ("shared", "rshared"):
            self.sys.mount(None, "/", None, PROPAGATION_FLAGS[propagation], None)

    def _readonly_root(self) -> None:
        """runc's setReadonly: a plain read-only remount, and if the kernel refuses it (flags
        locked by a user namespace: nosuid, nodev...), again with the flags / already has."""
        flags = MS_BIND | MS_REMOUNT | MS_RDONLY
        try:
            self.sys.mount(None, "/", None, flags, None)
        except LinuxError as err:
            if err.errno != 1:  # EPERM
                raise
            self.sys.mount(None, "/", None, flags | _mount_flags("/"), None)

    def _readonly(self, path: str) -> None:
        try:
            self.sys.mount(path, path, None, MS_BIND | MS_REC, None)
        except LinuxError as err:
            if err.errno == 2:  # ENOENT: nothing to protect
                return
            raise
        flags = _mount_flags(path)
        if not self.userns:
            # runc keeps only these three; in a user namespace the atime flags are locked
            # too and must be kept or the remount fails.
            flags &= MS_NOSUID | MS_NODEV | MS_NOEXEC
        self.sys.mount(None, path, None, flags | MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC, None)

    def _mask(self, path: str) -> None:
        try:
            self.sys.mount("/dev/null", path, None, MS_BIND, None)
        except LinuxError as err:
            if err.errno == 2:
                return
            if err.errno != 20:  # ENOTDIR: a directory is masked with an empty read-only tmpfs
                raise
            self.sys.mount("tmpfs", path, "tmpfs", MS_RDONLY, None)


def _is_dev(destination: str) -> bool:
    return destination.rstrip("/") == "/dev"


def _readonly_in_finalize(mount: Mount, options: MountOptions) -> bool:
    """A read-only tmpfs or /dev is mounted read-write first (runc's mountPropagate)."""
    return not options.is_bind and (
        mount.get("type") == "tmpfs" or _is_dev(mount.get("destination", ""))
    )


def _existing_mode(path: str) -> int | None:
    """The permission bits (with setuid/setgid/sticky) of ``path``, or None if it is absent."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None


_ST_TO_MS = (
    # statvfs ST_* bit -> mount MS_* flag (the first four share their values)
    (MS_RDONLY, MS_RDONLY),
    (MS_NOSUID, MS_NOSUID),
    (MS_NODEV, MS_NODEV),
    (MS_NOEXEC, MS_NOEXEC),
    (1024, 0x400),  # ST_NOATIME -> MS_NOATIME
    (2048, 0x800),  # ST_NODIRATIME -> MS_NODIRATIME
    (4096, MS_RELATIME),  # ST_RELATIME
)


def _mount_flags(path: str) -> int:
    """The MS_* flags a mount already has. A remount must keep them -- in a user namespace
    they are locked and leaving one out fails with EPERM (runc does the same)."""
    info = os.statvfs(path)
    flags = 0
    for st_bit, ms_flag in _ST_TO_MS:
        if info.f_flag & st_bit:
            flags |= ms_flag
    return flags


def _parent_mount(path: str) -> tuple[str, bool]:
    """The mount point holding ``path`` and whether it is shared (from mountinfo)."""
    best, shared = "/", False
    with open("/proc/self/mountinfo", "rb") as handle:
        for line in handle.read().decode().splitlines():
            fields = line.split(" ")
            mount_point = fields[4].replace("\\040", " ")
            if (path == mount_point or path.startswith(mount_point.rstrip("/") + "/")) and len(
                mount_point
            ) >= len(best):
                best = mount_point
                separator = fields.index("-")
                shared = any(f.startswith("shared:") for f in fields[6:separator])
    return best, shared
