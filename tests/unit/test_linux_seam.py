"""``runtime.linux`` driven through a recording fake of the syscall seam (rule 3).

The fake has the methods of ``Syscalls``, records every call as ``(method, args)`` and makes no
syscall; its ``call`` only runs the harmless os functions (symlink, the monkeypatched chown)
against the tmp rootfs. Mount targets that ``Rootfs`` passes as ``/proc/self/fd/N`` (an fd the
fake's ``openat2`` opened) are recorded as ``fd:<path inside the rootfs>``.
"""

from __future__ import annotations

import inspect
import os
import stat
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import runtime.linux.rootfs as rootfs_mod
from runtime.errors import LinuxError
from runtime.lifecycle.specgen import MASKED_PATHS, READONLY_PATHS, default_config
from runtime.linux.rootfs import CgroupMount, Rootfs
from runtime.linux.syscalls import (
    RESOLVE_IN_ROOT,
    RESOLVE_NO_MAGICLINKS,
    Syscalls,
)
from runtime.spec.defaults import apply_defaults
from runtime.spec.tables import (
    MOUNT_ATTR__ATIME,
    MOUNT_ATTR_NOATIME,
    MOUNT_ATTR_NOEXEC,
    MOUNT_ATTR_RDONLY,
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
    MS_STRICTATIME,
    MS_UNBINDABLE,
    parse_signal,
)

Call = tuple[str, tuple[Any, ...]]
ENOENT, EPERM, ENOTDIR, ELOOP = 2, 1, 20, 40
O_PATH_FLAGS = os.O_PATH
RESOLVE = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS
AT_EMPTY_PATH_RECURSIVE = 0x1000 | 0x8000


class FakeSyscalls:
    """A recording stand-in for ``runtime.linux.syscalls.Syscalls``."""

    SAFE_CALLS = frozenset({"symlink", "chown"})

    def __init__(self) -> None:
        self.calls: list[Call] = []
        # (source, target) of a mount -> errno it fails with; likewise for other methods.
        self.mount_failures: dict[tuple[str | None, str], int] = {}
        self.fd_paths: dict[int, str] = {}

    def _shown(self, target: str) -> str:
        prefix = "/proc/self/fd/"
        number = target[len(prefix) :]
        if target.startswith(prefix) and number.isdigit() and int(number) in self.fd_paths:
            return "fd:" + self.fd_paths[int(number)]
        return target

    def unshare(self, flags: int) -> None:
        self.calls.append(("unshare", (flags,)))

    def setns(self, fd: int, nstype: int, path: str = "") -> None:
        os.fstat(fd)  # the fd must still be open when it is used
        self.calls.append(("setns", (nstype, path)))

    def mount(
        self, source: str | None, target: str, fstype: str | None, flags: int, data: str | None
    ) -> None:
        shown = self._shown(target)
        self.calls.append(("mount", (source, shown, fstype, flags, data)))
        errno = self.mount_failures.get((source, shown))
        if errno is not None:
            raise LinuxError("mount", errno, f"{source or fstype or ''} on {shown}".strip())

    def umount(self, target: str, flags: int = 0) -> None:
        self.calls.append(("umount", (target, flags)))

    def pivot_root(self, new_root: str, put_old: str) -> None:
        self.calls.append(("pivot_root", (new_root, put_old)))

    def sethostname(self, name: str) -> None:
        self.calls.append(("sethostname", (name,)))

    def setdomainname(self, name: str) -> None:
        self.calls.append(("setdomainname", (name,)))

    def prctl(self, option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
        self.calls.append(("prctl", (option, arg2, arg3, arg4, arg5)))
        return 0

    def capset(self, effective: int, permitted: int, inheritable: int) -> None:
        self.calls.append(("capset", (effective, permitted, inheritable)))

    def openat2(self, dirfd: int, path: str, flags: int, resolve: int, mode: int = 0) -> int:
        self.calls.append(("openat2", (path, flags, resolve)))
        fd = os.open(path, flags | os.O_CLOEXEC, dir_fd=dirfd)
        self.fd_paths[fd] = "/" if path == "." else "/" + path
        return fd

    def mount_setattr(
        self, dirfd: int, path: str, flags: int, attr_set: int, attr_clr: int
    ) -> None:
        self.calls.append(("mount_setattr", (path, flags, attr_set, attr_clr)))

    def join_session_keyring(self, name: str) -> None:
        self.calls.append(("join_session_keyring", (name,)))

    def load_seccomp(self, program: bytes, flags: int) -> int:
        self.calls.append(("load_seccomp", (len(program) // 8, flags)))
        return 0

    def fork_sibling(self) -> int:
        self.calls.append(("fork_sibling", ()))
        return 4242

    def call(self, operation: str, detail: str, func: Any, *args: Any) -> Any:
        shown = tuple(self._shown(a) if isinstance(a, str) else a for a in args)
        self.calls.append(("call", (operation, detail, *shown)))
        if operation not in self.SAFE_CALLS:
            return None
        try:
            return func(*args)
        except OSError as err:
            raise LinuxError(operation, err.errno or 0, detail) from None

    def of(self, *methods: str) -> list[Call]:
        return [c for c in self.calls if c[0] in methods]


def public_methods(cls: type) -> dict[str, list[str]]:
    return {
        name: list(inspect.signature(value).parameters)
        for name, value in vars(cls).items()
        if callable(value) and not name.startswith("_") and name != "of"
    }


def test_fake_has_the_methods_of_the_seam_with_the_same_parameters() -> None:
    assert public_methods(FakeSyscalls) == public_methods(Syscalls)
    assert {
        "unshare",
        "setns",
        "mount",
        "umount",
        "pivot_root",
        "sethostname",
        "setdomainname",
        "prctl",
        "capset",
        "openat2",
        "mount_setattr",
        "call",
    } <= set(public_methods(Syscalls))


def test_real_seam_call_maps_oserror_to_linuxerror(tmp_path: Path) -> None:
    with pytest.raises(LinuxError) as caught:
        Syscalls().call("rmdir", "/x", os.rmdir, str(tmp_path / "missing"))
    assert (caught.value.operation, caught.value.errno) == ("rmdir", ENOENT)
    assert str(caught.value) == "rmdir /x: no such file or directory"
    assert Syscalls().call("listdir", "", os.listdir, str(tmp_path)) == []


# -- Rootfs ----------------------------------------------------------------------------------


class Recorder:
    """os.mknod / os.chown stand-ins: record, and leave a plain file where a node would be."""

    def __init__(self) -> None:
        self.nodes: list[tuple[str, int, int]] = []
        self.chowns: list[tuple[str, int, int]] = []

    def mknod(self, path: str, mode: int = 0o600, device: int = 0) -> None:
        if os.path.lexists(path):
            raise FileExistsError(17, "File exists", path)
        self.nodes.append((path, mode, device))
        Path(path).touch()

    def chown(self, path: str, uid: int, gid: int) -> None:
        self.chowns.append((path, uid, gid))


@pytest.fixture
def rec(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    recorder = Recorder()
    monkeypatch.setattr(os, "mknod", recorder.mknod)
    monkeypatch.setattr(os, "chown", recorder.chown)
    return recorder


@pytest.fixture
def bundle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "rootfs").mkdir()
    # The rootfs's parent mount is read from the host's mountinfo; pin it.
    monkeypatch.setattr(rootfs_mod, "_parent_mount", lambda path: (str(tmp_path), True))
    return tmp_path


def config_of(rootless: bool = False, **linux: Any) -> Any:
    config = apply_defaults(default_config(rootless))
    config["linux"].update(linux)
    return config


V2 = [CgroupMount("", "/sys/fs/cgroup/pyrun/c1", "cgroup2", None)]


def mounts_of(fake: FakeSyscalls) -> list[tuple[Any, ...]]:
    return [args for name, args in fake.calls if name == "mount"]


def test_default_config_prepare_sequence(bundle: Path, rec: Recorder) -> None:
    root = str(bundle / "rootfs")
    fake = FakeSyscalls()
    Rootfs(fake, config_of(), root, str(bundle), cgroup_mounts=V2).prepare()

    def at(path: str) -> list[Call]:
        return [("openat2", (path, O_PATH_FLAGS, RESOLVE))]

    ro_common = MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RELATIME | MS_RDONLY
    expected: list[Call] = [
        ("mount", (None, "/", None, MS_SLAVE | MS_REC, None)),
        ("mount", (None, str(bundle), None, MS_PRIVATE, None)),
        ("mount", (root, root, None, MS_BIND | MS_REC, None)),
        *at("proc"),
        ("mount", ("proc", "fd:/proc", "proc", 0, None)),
        *at("dev"),
        (
            "mount",
            ("tmpfs", "fd:/dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k"),
        ),
        *at("dev/pts"),
        (
            "mount",
            (
                "devpts",
                "fd:/dev/pts",
                "devpts",
                MS_NOSUID | MS_NOEXEC,
                "newinstance,ptmxmode=0666,mode=0620,gid=5",
            ),
        ),
        *at("dev/shm"),
        (
            "mount",
            (
                "shm",
                "fd:/dev/shm",
                "tmpfs",
                MS_NOSUID | MS_NOEXEC | MS_NODEV,
                "mode=1777,size=65536k",
            ),
        ),
        *at("dev/mqueue"),
        ("mount", ("mqueue", "fd:/dev/mqueue", "mqueue", MS_NOSUID | MS_NOEXEC | MS_NODEV, None)),
        *at("sys"),
        (
            "mount",
            ("sysfs", "fd:/sys", "sysfs", MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RDONLY, None),
        ),
        (
            "mount",
            ("/sys/fs/cgroup/pyrun/c1", f"{root}/sys/fs/cgroup", None, MS_BIND | MS_REC, None),
        ),
        ("mount", (None, f"{root}/sys/fs/cgroup", None, MS_BIND | MS_REMOUNT | ro_common, None)),
    ]
    for name in ("null", "zero", "full", "random", "urandom", "tty"):
        expected.append(("call", ("chown", f"/dev/{name}", f"{root}/dev/{name}", 0, 0)))
    expected.append(("call", ("symlink", "/dev/ptmx", "pts/ptmx", f"{root}/dev/ptmx")))
    assert fake.calls == expected


def test_default_devices_are_made_with_their_numbers(bundle: Path, rec: Recorder) -> None:
    root = str(bundle / "rootfs")
    Rootfs(FakeSyscalls(), config_of(), root, str(bundle), cgroup_mounts=V2).prepare()
    chr666 = stat.S_IFCHR | 0o666
    assert rec.nodes == [
        (f"{root}/dev/null", chr666, os.makedev(1, 3)),
        (f"{root}/dev/zero", chr666, os.makedev(1, 5)),
        (f"{root}/dev/full", chr666, os.makedev(1, 7)),
        (f"{root}/dev/random", chr666, os.makedev(1, 8)),
        (f"{root}/dev/urandom", chr666, os.makedev(1, 9)),
        (f"{root}/dev/tty", chr666, os.makedev(5, 0)),
    ]
    assert rec.chowns == [(path, 0, 0) for path, _, _ in rec.nodes]


def test_dev_symlinks_are_real_links_in_the_rootfs(bundle: Path, rec: Recorder) -> None:
    root = bundle / "rootfs"
    Rootfs(FakeSyscalls(), config_of(), str(root), str(bundle), cgroup_mounts=V2).prepare()
    links = {
        name: os.readlink(root / "dev" / name)
        for name in sorted(os.listdir(root / "dev"))
        if (root / "dev" / name).is_symlink()
    }
    expected = {
        "fd": "/proc/self/fd",
        "ptmx": "pts/ptmx",
        "stderr": "/proc/self/fd/2",
        "stdin": "/proc/self/fd/0",
        "stdout": "/proc/self/fd/1",
    }
    if os.path.exists("/proc/kcore"):
        expected["core"] = "/proc/kcore"
    assert links == expected
    assert sorted(
        p.name for p in (root / "dev").iterdir() if p.is_dir() and not p.is_symlink()
    ) == [
        "mqueue",
        "pts",
        "shm",
    ]


def test_existing_dev_entries_are_kept(bundle: Path, rec: Recorder) -> None:
    root = bundle / "rootfs"
    (root / "dev").mkdir(mode=0o751)
    (root / "dev").chmod(0o751)
    (root / "dev" / "null").write_text("already")
    os.symlink("/elsewhere", root / "dev" / "stdin")
    (root / "dev" / "ptmx").write_text("old")
    fake = FakeSyscalls()
    Rootfs(fake, config_of(), str(root), str(bundle), cgroup_mounts=V2).prepare()
    # runc gives a tmpfs the mode of the directory it covers.
    assert fake.calls[5:9] == [
        ("openat2", ("dev", O_PATH_FLAGS, RESOLVE)),
        (
            "mount",
            ("tmpfs", "fd:/dev", "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k"),
        ),
        ("openat2", ("dev", O_PATH_FLAGS, RESOLVE)),
        ("call", ("chmod", "/dev", "fd:/dev", 0o751)),
    ]
    assert f"{root}/dev/null" not in [n[0] for n in rec.nodes]
    assert (root / "dev" / "null").read_text() == "already"
    assert os.readlink(root / "dev" / "stdin") == "/elsewhere"
    assert os.readlink(root / "dev" / "ptmx") == "pts/ptmx"


@pytest.mark.parametrize(
    ("propagation", "first", "after"),
    [
        (None, MS_SLAVE | MS_REC, []),
        ("rslave", MS_SLAVE | MS_REC, []),
        ("slave", MS_SLAVE, []),
        ("private", MS_PRIVATE, []),
        ("rprivate", MS_PRIVATE | MS_REC, []),
        ("unbindable", MS_UNBINDABLE, []),
        ("shared", MS_SLAVE | MS_REC, [(None, "/", None, MS_SHARED, None)]),
        ("rshared", MS_SLAVE | MS_REC, [(None, "/", None, MS_SHARED | MS_REC, None)]),
    ],
)
def test_rootfs_propagation(
    bundle: Path, rec: Recorder, propagation: str | None, first: int, after: list[Any]
) -> None:
    config = config_of()
    config["mounts"] = []
    config["linux"]["maskedPaths"] = []
    config["linux"]["readonlyPaths"] = []
    config["root"]["readonly"] = False
    if propagation:
        config["linux"]["rootfsPropagation"] = propagation
    fake = FakeSyscalls()
    rootfs = Rootfs(fake, config, str(bundle / "rootfs"), str(bundle))
    rootfs.prepare()
    assert mounts_of(fake)[0] == (None, "/", None, first, None)
    fake.calls.clear()
    rootfs.finalize()
    assert mounts_of(fake) == after


def test_unshared_parent_is_left_alone(bundle: Path, rec: Recorder, monkeypatch: Any) -> None:
    monkeypatch.setattr(rootfs_mod, "_parent_mount", lambda path: ("/", False))
    config = config_of()
    config["mounts"] = []
    fake = FakeSyscalls()
    root = str(bundle / "rootfs")
    Rootfs(fake, config, root, str(bundle)).prepare()
    assert mounts_of(fake) == [
        (None, "/", None, MS_SLAVE | MS_REC, None),
        (root, root, None, MS_BIND | MS_REC, None),
    ]


def test_rootless_sys_bind_is_remounted_with_its_flags(bundle: Path, rec: Recorder) -> None:
    config = config_of(rootless=True)
    config["mounts"] = [m for m in config["mounts"] if m["destination"] == "/sys"]
    fake = FakeSyscalls()
    root = str(bundle / "rootfs")
    Rootfs(fake, config, root, str(bundle), userns=True).prepare()
    # In a user namespace the source's own flags are locked: the atime ones the host's /sys
    # has (relatime here) are kept on the remount.
    host_atime = _atime_flags("/sys")
    assert fake.calls[3:7] == [
        ("openat2", ("sys", O_PATH_FLAGS, RESOLVE)),
        ("mount", ("/sys", "fd:/sys", None, MS_BIND | MS_REC, None)),
        # opened again: the first fd names the directory under the new mount
        ("openat2", ("sys", O_PATH_FLAGS, RESOLVE)),
        (
            "mount",
            (
                None,
                "fd:/sys",
                None,
                MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RDONLY | MS_BIND | MS_REMOUNT | host_atime,
                None,
            ),
        ),
    ]
    assert (bundle / "rootfs" / "sys").is_dir()


def _atime_flags(path: str) -> int:
    flag = os.statvfs(path).f_flag
    return (
        (0x400 if flag & 1024 else 0)
        | (0x800 if flag & 2048 else 0)
        | (0x200000 if flag & 4096 else 0)
    )


def test_userns_binds_device_nodes_instead_of_mknod(bundle: Path, rec: Recorder) -> None:
    config = config_of(rootless=True)
    config["mounts"] = []
    fake = FakeSyscalls()
    root = bundle / "rootfs"
    Rootfs(fake, config, str(root), str(bundle), userns=True).prepare()
    assert rec.nodes == []
    names = ("null", "zero", "full", "random", "urandom", "tty")
    assert mounts_of(fake)[3:] == [
        (f"/dev/{name}", f"{root}/dev/{name}", None, MS_BIND, None) for name in names
    ]
    assert all((root / "dev" / name).is_file() for name in names)


def test_bind_mount_of_a_file_relative_to_the_bundle(bundle: Path, rec: Recorder) -> None:
    (bundle / "hosts").write_text("127.0.0.1 localhost\n")
    config = config_of()
    config["mounts"] = [
        {
            "destination": "/etc/hosts",
            "type": "bind",
            "source": "hosts",
            "options": ["ro", "nosuid", "rprivate", "rro", "rnoexec", "rnoatime"],
        }
    ]
    fake = FakeSyscalls()
    root = bundle / "rootfs"
    Rootfs(fake, config, str(root), str(bundle)).prepare()
    assert fake.calls[3:9] == [
        ("openat2", ("etc/hosts", O_PATH_FLAGS, RESOLVE)),
        ("mount", (f"{bundle}/hosts", "fd:/etc/hosts", None, MS_BIND, None)),
        ("openat2", ("etc/hosts", O_PATH_FLAGS, RESOLVE)),
        (
            "mount",
            (None, "fd:/etc/hosts", None, MS_RDONLY | MS_NOSUID | MS_BIND | MS_REMOUNT, None),
        ),
        ("mount", (None, "fd:/etc/hosts", None, MS_PRIVATE | MS_REC, None)),
        (
            "mount_setattr",
            (
                "",
                AT_EMPTY_PATH_RECURSIVE,
                MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOEXEC | MOUNT_ATTR_NOATIME,
                MOUNT_ATTR__ATIME,
            ),
        ),
    ]
    assert [c for c in fake.calls if "fd:/etc/hosts" in c[1]] == [fake.calls[i] for i in (4, 6, 7)]
    assert fake.of("mount_setattr") == [fake.calls[8]]
    assert (root / "etc" / "hosts").is_file()
    assert (root / "etc" / "hosts").read_text() == ""


def test_plain_bind_mount_needs_no_remount(bundle: Path, rec: Recorder) -> None:
    (bundle / "data").mkdir()
    config = config_of()
    config["mounts"] = [
        {
            "destination": "/data",
            "type": "none",
            "source": str(bundle / "data"),
            "options": ["rbind"],
        }
    ]
    fake = FakeSyscalls()
    Rootfs(fake, config, str(bundle / "rootfs"), str(bundle)).prepare()
    assert fake.calls[3:5] == [
        ("openat2", ("data", O_PATH_FLAGS, RESOLVE)),
        ("mount", (str(bundle / "data"), "fd:/data", None, MS_BIND | MS_REC, None)),
    ]
    assert [c for c in fake.calls if "data" in str(c[1][0]) or "fd:/data" in c[1]] == fake.calls[
        3:5
    ]


def test_missing_bind_source_is_an_error(bundle: Path, rec: Recorder) -> None:
    config = config_of()
    config["mounts"] = [{"destination": "/x", "type": "bind", "source": "/nonexistent/src"}]
    with pytest.raises(LinuxError) as caught:
        Rootfs(FakeSyscalls(), config, str(bundle / "rootfs"), str(bundle)).prepare()
    assert str(caught.value) == "bind mount source /nonexistent/src: no such file or directory"


def test_mount_destination_symlink_cannot_escape(bundle: Path, rec: Recorder) -> None:
    root = bundle / "rootfs"
    os.symlink("/../../..", root / "evil")
    config = config_of()
    config["mounts"] = [{"destination": "/evil/target", "type": "tmpfs", "source": "tmpfs"}]
    fake = FakeSyscalls()
    Rootfs(fake, config, str(root), str(bundle)).prepare()
    assert fake.calls[3:5] == [
        ("openat2", ("target", O_PATH_FLAGS, RESOLVE)),
        ("mount", ("tmpfs", "fd:/target", "tmpfs", 0, None)),
    ]
    assert (root / "target").is_dir()


def test_bind_mounted_dev_gets_only_config_devices(bundle: Path, rec: Recorder) -> None:
    (bundle / "hostdev").mkdir()
    config = config_of(
        devices=[{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "uid": 5, "gid": 6}]
    )
    config["mounts"] = [{"destination": "/dev/", "type": "bind", "source": str(bundle / "hostdev")}]
    root = bundle / "rootfs"
    fake = FakeSyscalls()
    Rootfs(fake, config, str(root), str(bundle)).prepare()
    assert rec.nodes == [(f"{root}/dev/fuse", stat.S_IFCHR | 0o666, os.makedev(10, 229))]
    assert rec.chowns == [(f"{root}/dev/fuse", 5, 6)]
    assert not (root / "dev" / "stdin").is_symlink()
    assert not (root / "dev" / "ptmx").exists()


def test_config_devices_override_defaults_and_fifos_have_no_numbers(
    bundle: Path, rec: Recorder
) -> None:
    config = config_of(
        devices=[
            {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o600},
            {"path": "/dev/pipe", "type": "p", "fileMode": 0o640},
            {"path": "/dev/disk/sda", "type": "b", "major": 8, "minor": 0},
        ]
    )
    config["mounts"] = []
    root = bundle / "rootfs"
    Rootfs(FakeSyscalls(), config, str(root), str(bundle)).prepare()
    nodes = {path[len(str(root)) :]: (mode, device) for path, mode, device in rec.nodes}
    assert nodes["/dev/null"] == (stat.S_IFCHR | 0o600, os.makedev(1, 3))
    assert nodes["/dev/pipe"] == (stat.S_IFIFO | 0o640, 0)
    assert nodes["/dev/disk/sda"] == (stat.S_IFBLK | 0o666, os.makedev(8, 0))
    assert list(nodes) == [
        "/dev/null",
        "/dev/zero",
        "/dev/full",
        "/dev/random",
        "/dev/urandom",
        "/dev/tty",
        "/dev/pipe",
        "/dev/disk/sda",
    ]


def test_cgroup_v2_in_a_cgroup_namespace_is_a_fresh_mount(bundle: Path, rec: Recorder) -> None:
    config = config_of()
    config["mounts"] = [m for m in config["mounts"] if m["destination"] == "/sys/fs/cgroup"]
    root = str(bundle / "rootfs")
    fake = FakeSyscalls()
    Rootfs(fake, config, root, str(bundle), cgroup_mounts=V2, cgroupns=True).prepare()
    common = MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RELATIME
    assert mounts_of(fake)[3:] == [
        ("cgroup", f"{root}/sys/fs/cgroup", "cgroup2", common | MS_RDONLY, None)
    ]


V1 = [
    CgroupMount("memory", "/sys/fs/cgroup/memory/c1", "cgroup", "memory"),
    CgroupMount("cpu,cpuacct", "/sys/fs/cgroup/cpu,cpuacct/c1", "cgroup", "cpu,cpuacct"),
]
CGROUP_COMMON = MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RELATIME


def cgroup_only_config() -> Any:
    config = config_of()
    config["mounts"] = [m for m in config["mounts"] if m["destination"] == "/sys/fs/cgroup"]
    return config


def test_cgroup_v1_hierarchies_under_a_tmpfs(bundle: Path, rec: Recorder) -> None:
    root = bundle / "rootfs"
    dest = f"{root}/sys/fs/cgroup"
    fake = FakeSyscalls()
    Rootfs(fake, cgroup_only_config(), str(root), str(bundle), cgroup_mounts=V1).prepare()
    ro = MS_BIND | MS_REMOUNT | CGROUP_COMMON | MS_RDONLY
    # The tmpfs itself stays read-write (runc's mountCgroupV1); each hierarchy is read-only.
    assert mounts_of(fake)[3:] == [
        ("tmpfs", dest, "tmpfs", CGROUP_COMMON, "mode=755"),
        ("/sys/fs/cgroup/memory/c1", f"{dest}/memory", None, MS_BIND | MS_REC, None),
        (None, f"{dest}/memory", None, ro, None),
        ("/sys/fs/cgroup/cpu,cpuacct/c1", f"{dest}/cpu,cpuacct", None, MS_BIND | MS_REC, None),
        (None, f"{dest}/cpu,cpuacct", None, ro, None),
    ]
    assert sorted(os.listdir(dest)) == ["cpu,cpuacct", "memory"]


def test_cgroup_v1_in_a_cgroup_namespace_keeps_the_covered_mode(
    bundle: Path, rec: Recorder
) -> None:
    root = bundle / "rootfs"
    dest = root / "sys" / "fs" / "cgroup"
    dest.mkdir(parents=True)
    dest.chmod(0o711)  # (sysfs has 0555; the test must write below it)
    fake = FakeSyscalls()
    Rootfs(
        fake, cgroup_only_config(), str(root), str(bundle), cgroup_mounts=V1, cgroupns=True
    ).prepare()
    assert fake.calls[3:7] == [
        ("mount", ("tmpfs", str(dest), "tmpfs", CGROUP_COMMON, "mode=755")),
        ("call", ("chmod", "/sys/fs/cgroup", str(dest), 0o711)),
        ("mount", ("cgroup", f"{dest}/memory", "cgroup", CGROUP_COMMON | MS_RDONLY, "memory")),
        (
            "mount",
            ("cgroup", f"{dest}/cpu,cpuacct", "cgroup", CGROUP_COMMON | MS_RDONLY, "cpu,cpuacct"),
        ),
    ]


def test_cgroup_mount_without_flags_gets_safe_ones(bundle: Path, rec: Recorder) -> None:
    config = config_of()
    config["mounts"] = [{"destination": "/sys/fs/cgroup", "type": "cgroup2", "source": "cgroup"}]
    root = str(bundle / "rootfs")
    fake = FakeSyscalls()
    Rootfs(fake, config, root, str(bundle), cgroup_mounts=V2, cgroupns=True).prepare()
    assert mounts_of(fake)[3:] == [
        ("cgroup", f"{root}/sys/fs/cgroup", "cgroup2", MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
    ]


def test_no_pivot_moves_and_chroots(bundle: Path) -> None:
    root = str(bundle / "rootfs")
    fake = FakeSyscalls()
    Rootfs(fake, config_of(), root, str(bundle)).pivot(no_pivot=True)
    assert fake.calls == [
        ("call", ("chdir", root, root)),
        ("mount", (root, "/", None, MS_MOVE, None)),
        ("call", ("chroot", root, ".")),
        ("call", ("chdir", "/", "/")),
    ]


def test_pivot_root_stacks_and_detaches_the_old_root(
    bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(bundle)  # pivot fchdir()s this process; monkeypatch restores the cwd
    fake = FakeSyscalls()
    Rootfs(fake, config_of(), str(bundle / "rootfs"), str(bundle)).pivot()
    assert fake.calls == [
        ("pivot_root", (".", ".")),
        ("mount", (None, ".", None, MS_SLAVE | MS_REC, None)),
        ("umount", (".", 0x2)),
        ("call", ("chdir", "/", "/")),
    ]
    assert os.getcwd() == "/"


@pytest.fixture
def statvfs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    asked: list[str] = []

    def fake(path: str) -> SimpleNamespace:
        asked.append(path)
        # nosuid, nodev, noexec, noatime (0x400) and relatime (0x1000): only the first three
        # are kept on the remount.
        return SimpleNamespace(f_flag=0x2 | 0x4 | 0x8 | 0x400 | 0x1000)

    monkeypatch.setattr(os, "statvfs", fake)
    return asked


def test_default_config_finalize_sequence(bundle: Path, statvfs: list[str]) -> None:
    fake = FakeSyscalls()
    directories = ("/proc/acpi", "/proc/asound", "/proc/scsi", "/sys/firmware")
    for path in directories:
        fake.mount_failures[("/dev/null", path)] = ENOTDIR
    fake.mount_failures[("/proc/timer_stats", "/proc/timer_stats")] = ENOENT
    fake.mount_failures[("/dev/null", "/proc/timer_stats")] = ENOENT
    Rootfs(fake, config_of(), str(bundle / "rootfs"), str(bundle)).finalize()
    kept = MS_NOSUID | MS_NODEV | MS_NOEXEC
    expected: list[Any] = []
    for path in READONLY_PATHS:
        expected += [
            (path, path, None, MS_BIND | MS_REC, None),
            (None, path, None, kept | MS_BIND | MS_REMOUNT | MS_RDONLY | MS_REC, None),
        ]
    for path in MASKED_PATHS:
        expected.append(("/dev/null", path, None, MS_BIND, None))
        if path in directories:
            expected.append(("tmpfs", path, "tmpfs", MS_RDONLY, None))
    expected.append((None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY, None))
    assert mounts_of(fake) == expected
    assert statvfs == READONLY_PATHS


def test_missing_readonly_path_is_skipped(bundle: Path, statvfs: list[str]) -> None:
    fake = FakeSyscalls()
    fake.mount_failures[("/proc/sys", "/proc/sys")] = ENOENT
    config = config_of(readonlyPaths=["/proc/sys"], maskedPaths=[])
    config["root"]["readonly"] = False
    Rootfs(fake, config, str(bundle / "rootfs"), str(bundle)).finalize()
    assert mounts_of(fake) == [("/proc/sys", "/proc/sys", None, MS_BIND | MS_REC, None)]
    assert statvfs == []


@pytest.mark.parametrize(("key", "path"), [("readonlyPaths", "/proc/sys"), ("maskedPaths", "/x")])
def test_other_mask_errors_are_raised(
    bundle: Path, statvfs: list[str], key: str, path: str
) -> None:
    fake = FakeSyscalls()
    fake.mount_failures[(path, path)] = EPERM
    fake.mount_failures[("/dev/null", path)] = EPERM
    config = config_of(readonlyPaths=[], maskedPaths=[])
    config["linux"][key] = [path]
    with pytest.raises(LinuxError) as caught:
        Rootfs(fake, config, str(bundle / "rootfs"), str(bundle)).finalize()
    assert caught.value.errno == EPERM


def test_readonly_dev_and_tmpfs_are_mounted_rw_then_remounted(
    bundle: Path, rec: Recorder, statvfs: list[str]
) -> None:
    config = config_of(readonlyPaths=[], maskedPaths=[])
    config["root"]["readonly"] = False
    config["mounts"] = [
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "ro"]},
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["ro", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["ro"]},
    ]
    fake = FakeSyscalls()
    rootfs = Rootfs(fake, config, str(bundle / "rootfs"), str(bundle))
    rootfs.prepare()
    assert [m for m in mounts_of(fake) if m[1].startswith("fd:")] == [
        ("tmpfs", "fd:/dev", "tmpfs", MS_NOSUID, None),
        ("tmpfs", "fd:/tmp", "tmpfs", MS_NODEV, None),
        ("sysfs", "fd:/sys", "sysfs", MS_RDONLY, None),
    ]
    fake.calls.clear()
    rootfs.finalize()
    remount = MS_REMOUNT | MS_BIND | MS_RDONLY
    assert mounts_of(fake) == [
        (None, "/dev", None, MS_NOSUID | remount, None),
        (None, "/tmp", None, MS_NODEV | remount, None),
    ]


def test_dev_ro_then_rw_stays_writable(bundle: Path, statvfs: list[str]) -> None:
    config = config_of(readonlyPaths=[], maskedPaths=[])
    config["root"]["readonly"] = False
    config["mounts"][1]["options"] += ["ro", "rw"]
    fake = FakeSyscalls()
    Rootfs(fake, config, str(bundle / "rootfs"), str(bundle)).finalize()
    assert mounts_of(fake) == []


def test_parse_signal_refuses_non_ascii_digits() -> None:
    with pytest.raises(ValueError):
        parse_signal("\u0663")


def test_readonly_root_retries_with_the_mount_flags(bundle: Path, statvfs: list[str]) -> None:
    """runc's setReadonly: a plain remount first; on EPERM again with the flags / has."""
    config = config_of(readonlyPaths=[], maskedPaths=[])
    config["root"]["readonly"] = True

    class FailsOnce(FakeSyscalls):
        def mount(
            self, source: str | None, target: str, fstype: str | None, flags: int, data: str | None
        ) -> None:
            try:
                super().mount(source, target, fstype, flags, data)
            finally:
                self.mount_failures.pop((None, "/"), None)

    fake = FailsOnce()
    fake.mount_failures[(None, "/")] = EPERM
    Rootfs(fake, config, str(bundle / "rootfs"), str(bundle)).finalize()
    root_mounts = [m for m in mounts_of(fake) if m[1] == "/"]
    assert root_mounts[0] == (None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY, None)
    assert len(root_mounts) == 2 and root_mounts[1][3] & (MS_BIND | MS_REMOUNT | MS_RDONLY)
