"""Fake cgroup hosts for the cgroups unit tests (no root, no real cgroupfs).

``FakeHost`` writes a ``proc/self/mountinfo`` and ``proc/self/cgroup`` for a v1, v2 or hybrid
host into a tmp dir and builds the cgroup roots with the files the kernel would show.
``FakeKernel`` is a ``CgroupFS`` whose raw operations play the kernel on that tree: mkdir
fills in control files, writes are logged (and update ``cgroup.events``/``subtree_control``
like the kernel does), rmdir refuses busy cgroups, kill and BPF attach are recorded.

Holds no tests; the other test_cgroups_* modules import it.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

from runtime.cgroups import open_manager
from runtime.cgroups.base import CgroupFS, Manager

MAX_V1 = "9223372036854771712"

V1_FILES: dict[str, dict[str, str]] = {
    "memory": {
        "memory.limit_in_bytes": MAX_V1,
        "memory.memsw.limit_in_bytes": MAX_V1,
        "memory.soft_limit_in_bytes": MAX_V1,
        "memory.swappiness": "60",
        "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
        "memory.usage_in_bytes": "0",
        "memory.max_usage_in_bytes": "0",
        "memory.failcnt": "0",
        "memory.memsw.usage_in_bytes": "0",
        "memory.memsw.max_usage_in_bytes": "0",
        "memory.memsw.failcnt": "0",
        "memory.stat": "cache 0\nrss 0\n",
        "memory.use_hierarchy": "1",
    },
    "cpu": {
        "cpu.shares": "1024",
        "cpu.cfs_period_us": "100000",
        "cpu.cfs_quota_us": "-1",
        "cpu.cfs_burst_us": "0",
        "cpu.rt_period_us": "1000000",
        "cpu.rt_runtime_us": "0",
        "cpu.idle": "0",
        "cpu.stat": "nr_periods 0\nnr_throttled 0\nthrottled_time 0\n",
    },
    "cpuacct": {
        "cpuacct.usage": "0",
        "cpuacct.usage_percpu": "0 0 \n",
        "cpuacct.stat": "user 0\nsystem 0\n",
        "cpuacct.usage_all": "cpu user system\n0 0 0\n1 0 0\n",
    },
    "cpuset": {
        "cpuset.cpus": "",
        "cpuset.mems": "",
        "cpuset.cpu_exclusive": "0",
        "cpuset.mem_exclusive": "0",
        "cpuset.sched_load_balance": "1",
    },
    "pids": {"pids.max": "max", "pids.current": "0"},
    "blkio": {
        "blkio.weight": "500",
        "blkio.leaf_weight": "500",
        "blkio.weight_device": "",
        "blkio.leaf_weight_device": "",
        "blkio.throttle.read_bps_device": "",
        "blkio.throttle.write_bps_device": "",
        "blkio.throttle.read_iops_device": "",
        "blkio.throttle.write_iops_device": "",
        "blkio.throttle.io_service_bytes_recursive": "",
        "blkio.throttle.io_serviced_recursive": "",
    },
    "devices": {"devices.allow": "", "devices.deny": "", "devices.list": "a *:* rwm\n"},
    "freezer": {"freezer.state": "THAWED\n"},
    "hugetlb": {
        f"hugetlb.{size}.{name}": "0"
        for size in ("2MB", "1GB")
        for name in ("limit_in_bytes", "usage_in_bytes", "max_usage_in_bytes", "failcnt")
    },
    "net_cls": {"net_cls.classid": "0"},
    "net_prio": {"net_prio.ifpriomap": "", "net_prio.prioidx": "1"},
    "rdma": {"rdma.max": "", "rdma.current": ""},
}

V2_FILES: dict[str, dict[str, str]] = {
    "memory": {
        "memory.max": "max",
        "memory.low": "0",
        "memory.high": "max",
        "memory.swap.max": "max",
        "memory.current": "0",
        "memory.swap.current": "0",
        "memory.stat": "anon 0\nfile 0\n",
        "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n",
    },
    "cpu": {"cpu.weight": "100", "cpu.max": "max 100000", "cpu.max.burst": "0", "cpu.idle": "0"},
    "cpuset": {
        "cpuset.cpus": "",
        "cpuset.mems": "",
        "cpuset.cpus.effective": "0-3",
        "cpuset.mems.effective": "0",
    },
    "pids": {"pids.max": "max", "pids.current": "0"},
    "io": {"io.max": "", "io.weight": "default 100", "io.stat": ""},
    "hugetlb": {
        f"hugetlb.{size}.{name}": value
        for size in ("2MB", "1GB")
        for name, value in (("max", "max"), ("current", "0"), ("events", "max 0\n"))
    },
    "rdma": {"rdma.max": "", "rdma.current": ""},
}

V2_CONTROLLERS = "cpuset cpu io memory hugetlb pids rdma"


def _write_files(path: Path, files: dict[str, str]) -> None:
    for name, value in files.items():
        (path / name).write_text(value)


class FakeKernel(CgroupFS):
    """``CgroupFS`` with the raw operations played by a fake kernel on a tmp tree."""

    def __init__(
        self, mounts: dict[str, tuple[str, ...] | None], v1_files: dict[str, dict[str, str]]
    ) -> None:
        # mountpoint -> v1 controllers of that hierarchy, or None for cgroup2.
        self.mounts = mounts
        self.v1_files = v1_files
        self.writes: list[tuple[str, str]] = []
        self.kills: list[tuple[int, int]] = []
        self.attached: list[tuple[str, bytes]] = []
        self.busy: set[str] = set()  # rmdir of these fails with EBUSY
        self.dead: set[int] = set()  # kill of these fails with ESRCH
        self.fail: dict[str, int] = {}  # path -> errno for writes

    def _mount_of(self, path: str) -> str:
        return max((m for m in self.mounts if path.startswith(m + "/")), key=len)

    def sys_mkdir(self, path: str) -> None:
        os.mkdir(path)
        mount = self._mount_of(path)
        controllers = self.mounts[mount]
        new = Path(path)
        (new / "cgroup.procs").write_text("")
        if controllers is None:
            parent_enabled = (new.parent / "cgroup.subtree_control").read_text().split()
            _write_files(
                new,
                {
                    "cgroup.controllers": " ".join(parent_enabled),
                    "cgroup.subtree_control": "",
                    "cgroup.freeze": "0",
                    "cgroup.events": "populated 0\nfrozen 0\n",
                    "cgroup.type": "domain",
                    "cgroup.max.depth": "max",
                    "cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\n",
                },
            )
            for name in parent_enabled:
                _write_files(new, V2_FILES.get(name, {}))
        else:
            (new / "tasks").write_text("")
            for name in controllers:
                _write_files(new, self.v1_files.get(name, {}))

    def sys_write(self, path: str, data: bytes) -> None:
        value = data.decode()
        if path in self.fail:
            raise OSError(self.fail[path], os.strerror(self.fail[path]))
        if not os.path.isfile(path):
            raise OSError(errno.ENOENT, os.strerror(errno.ENOENT))
        self.writes.append((path, value))
        name = os.path.basename(path)
        directory = Path(path).parent
        if name == "cgroup.subtree_control":
            enabled = (directory / name).read_text().split()
            for word in value.split():
                if word[1:] not in enabled and word.startswith("+"):
                    enabled.append(word[1:])
            (directory / name).write_text(" ".join(enabled))
            for child in directory.iterdir():
                if child.is_dir():
                    (child / "cgroup.controllers").write_text(" ".join(enabled))
                    for controller in enabled:
                        for file, default in V2_FILES.get(controller, {}).items():
                            if not (child / file).exists():
                                (child / file).write_text(default)
            return
        if name == "cgroup.freeze":
            events = (directory / "cgroup.events").read_text()
            events = events.replace(f"frozen {1 - int(value)}", f"frozen {value}")
            (directory / "cgroup.events").write_text(events)
        if name == "cgroup.procs":
            old = (directory / name).read_text()
            (directory / name).write_text(old + value + "\n")
            return
        if name == "cpu.shares":
            value = str(min(max(int(value), 2), 262144))  # the kernel clamps
        Path(path).write_text(value)

    def sys_rmdir(self, path: str) -> None:
        if path in self.busy:
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))
        if not os.path.isdir(path):
            raise OSError(errno.ENOENT, os.strerror(errno.ENOENT))
        entries = list(Path(path).iterdir())
        procs = Path(path, "cgroup.procs")
        if any(e.is_dir() for e in entries) or (procs.exists() and procs.read_text().strip()):
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY))
        for entry in entries:
            entry.unlink()
        os.rmdir(path)

    def sys_kill(self, pid: int, signum: int) -> None:
        self.kills.append((pid, signum))
        if pid in self.dead:
            raise OSError(errno.ESRCH, os.strerror(errno.ESRCH))

    def sys_attach_device_filter(self, path: str, program: bytes) -> None:
        self.attached.append((path, program))

    def written(self, path: str) -> list[str]:
        """Every value written to ``path``, in order."""
        return [value for where, value in self.writes if where == path]


def _mountinfo_line(number: int, mountpoint: str, fstype: str, options: str, root: str) -> str:
    return (
        f"{number} 23 0:{number} {root} {mountpoint} rw,nosuid,nodev,noexec,relatime "
        f"shared:{number} - {fstype} {fstype} {options}"
    )


class FakeHost:
    """A v1, v2 or hybrid host laid out under ``tmp`` (mountinfo says /sys/fs/cgroup/...)."""

    def __init__(
        self,
        tmp: Path,
        kind: str,
        *,
        own: dict[str, str] | None = None,
        v2_controllers: str | None = None,
        roots: dict[str, str] | None = None,
        with_blkio_weight: bool = True,
    ) -> None:
        self.kind = kind
        self.sysfs = tmp / "sys" / "fs" / "cgroup"
        self.proc = tmp / "proc"
        (self.proc / "self").mkdir(parents=True)
        self.sysfs.mkdir(parents=True)
        own = own or {}
        roots = roots or {}
        # (mount directory name, controllers in /proc/self/cgroup, mount options) per hierarchy
        if kind == "v1":
            v1 = [
                ("cpu,cpuacct", "cpu,cpuacct", "rw,cpu,cpuacct"),
                ("cpuset", "cpuset", "rw,cpuset"),
                ("memory", "memory", "rw,memory"),
                ("devices", "devices", "rw,devices"),
                ("freezer", "freezer", "rw,freezer"),
                ("blkio", "blkio", "rw,blkio"),
                ("pids", "pids", "rw,pids"),
                ("hugetlb", "hugetlb", "rw,hugetlb"),
                ("net_cls,net_prio", "net_cls,net_prio", "rw,net_cls,net_prio"),
                ("systemd", "name=systemd", "rw,xattr,name=systemd"),
            ]
            unified = None
        elif kind == "hybrid":
            v1 = [
                ("cpu", "cpu", "rw,cpu"),
                ("cpuacct", "cpuacct", "rw,cpuacct"),
                ("cpuset", "cpuset", "rw,cpuset"),
                ("memory", "memory", "rw,memory"),
                ("devices", "devices", "rw,devices"),
                ("freezer", "freezer", "rw,freezer"),
                ("blkio", "blkio", "rw,blkio"),
                ("pids", "pids", "rw,pids"),
                ("systemd", "name=systemd", "rw,name=systemd"),
            ]
            unified = "unified"
        else:
            v1 = []
            unified = ""
        self.mounts: dict[str, tuple[str, ...] | None] = {}
        v1_files = {name: dict(files) for name, files in V1_FILES.items()}
        if not with_blkio_weight:  # BFQ only (no CFQ since Linux 5.0)
            blkio = v1_files["blkio"]
            for name in ("blkio.weight", "blkio.leaf_weight", "blkio.weight_device"):
                del blkio[name]
            blkio.update({"blkio.bfq.weight": "100", "blkio.bfq.weight_device": ""})
        lines = [
            "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw",
            "31 22 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755",
        ]
        cgroup_lines = []
        number = 32
        for index, (directory, controllers, options) in enumerate(v1, start=1):
            mount = self.sysfs / directory
            mount.mkdir()
            names = tuple(c for c in controllers.split(",") if not c.startswith("name="))
            self.mounts[str(mount)] = names
            (mount / "cgroup.procs").write_text("")
            for name in names:
                _write_files(mount, v1_files.get(name, {}))
            if "cpuset" in names:
                _write_files(mount, {"cpuset.cpus": "0-3", "cpuset.mems": "0"})
            root = roots.get(controllers, "/")
            lines.append(
                _mountinfo_line(number, f"/sys/fs/cgroup/{directory}", "cgroup", options, root)
            )
            number += 1
            cgroup_lines.append(f"{index}:{controllers}:{own.get(controllers, '/')}")
        if unified is not None:
            mount = self.sysfs / unified if unified else self.sysfs
            mount.mkdir(exist_ok=True)
            self.mounts[str(mount)] = None
            if v2_controllers is None:
                v2_controllers = "hugetlb" if kind == "hybrid" else V2_CONTROLLERS
            _write_files(
                mount,
                {
                    "cgroup.controllers": v2_controllers,
                    "cgroup.subtree_control": "",
                    "cgroup.procs": "",
                    "cpu.stat": "usage_usec 0\n",
                },
            )
            mountpoint = "/sys/fs/cgroup" + (f"/{unified}" if unified else "")
            lines.append(
                _mountinfo_line(
                    number, mountpoint, "cgroup2", "rw,nsdelegate", roots.get("unified", "/")
                )
            )
            cgroup_lines.append(f"0::{own.get('unified', '/')}")
        if kind == "v2":
            # A pure v2 host has the tmpfs line only on hybrid/v1: drop it.
            lines = [line for line in lines if " tmpfs " not in line]
        (self.proc / "self" / "mountinfo").write_text("\n".join(lines) + "\n")
        (self.proc / "self" / "cgroup").write_text("\n".join(reversed(cgroup_lines)) + "\n")
        self.fs = FakeKernel(self.mounts, v1_files)

    def path(self, relative: str) -> str:
        return str(self.sysfs / relative)

    def open(self, container_id: str = "c1", cgroups_path: str | None = None, **kw: Any) -> Manager:
        manager = open_manager(
            container_id,
            cgroups_path,
            sysfs_root=str(self.sysfs),
            proc_root=str(self.proc),
            fs=self.fs,
            **kw,
        )
        assert isinstance(manager, Manager)
        return manager

    def read(self, relative: str) -> str:
        return (self.sysfs / relative).read_text()
