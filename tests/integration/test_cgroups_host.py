"""runtime.cgroups on this host's real cgroups (root).

Every test works under its own ``/pyrun-test/<random>`` cgroup (the eBPF tests under
``<cgroup2 mount>/pyrun-test-<random>``), forks its own children and kills only those, by pid.
Fixtures undo everything in ``finally``: children, cgroups, the ``/pyrun-test`` parents and any
controller the test enabled in the cgroup2 root's ``subtree_control``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from runtime.cgroups import base, manager_from_state, open_manager
from runtime.cgroups.base import Manager
from runtime.cgroups.probe import probe
from runtime.errors import CgroupError

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="real cgroups need root"),
]

MiB = 1024 * 1024
PARENT = "/pyrun-test"


class Child:
    """A forked child that waits for "go", runs ``work`` in the child, reports one line of
    result, then sleeps until killed."""

    def __init__(self, work: Callable[[], str]) -> None:
        go_r, self._go = os.pipe()
        self._result, result_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            try:
                os.close(self._go)
                os.close(self._result)
                os.read(go_r, 1)
                os.write(result_w, (work() + "\n").encode())
                time.sleep(120)
            finally:
                os._exit(0)
        os.close(go_r)
        os.close(result_w)
        self.pid = pid
        self.status: int | None = None

    def go(self) -> str:
        os.write(self._go, b"x")
        data = b""
        while not data.endswith(b"\n"):
            chunk = os.read(self._result, 4096)
            assert chunk, "child exited without a result"
            data += chunk
        return data.decode().strip()

    def state(self) -> str:
        with open(f"/proc/{self.pid}/status") as handle:
            for line in handle:
                if line.startswith("State:"):
                    return line.split()[1]
        raise AssertionError("no State line")

    def wait(self) -> int:
        if self.status is None:
            self.status = os.waitpid(self.pid, 0)[1]
        return self.status

    def kill(self) -> None:
        if self.status is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self.wait()
            os.close(self._go)
            os.close(self._result)


def idle() -> str:
    return "ready"


@pytest.fixture
def children() -> Iterator[list[Child]]:
    spawned: list[Child] = []
    try:
        yield spawned
    finally:
        for child in spawned:
            child.kill()


def _unified_mount() -> str | None:
    host = probe()
    unified = host.hierarchies.get("unified")
    return unified.mountpoint if unified is not None else None


def _subtree(mount: str | None) -> set[str]:
    if mount is None:
        return set()
    with open(f"{mount}/cgroup.subtree_control") as handle:
        return set(handle.read().split())


def _restore_subtree(mount: str | None, before: set[str]) -> None:
    for name in _subtree(mount) - before:
        try:
            with open(f"{mount}/cgroup.subtree_control", "w") as handle:
                handle.write(f"-{name}")
        except OSError:
            pass  # still used below (another test): best effort


@pytest.fixture
def cgroup(children: list[Child]) -> Iterator[Manager]:
    name = f"t{uuid.uuid4().hex[:12]}"
    mount = _unified_mount()
    before = _subtree(mount)
    manager = open_manager(name, f"{PARENT}/{name}")
    assert isinstance(manager, Manager)
    try:
        yield manager
    finally:
        for child in children:
            child.kill()
        try:
            manager.destroy()
        finally:
            for path in manager.paths().values():
                try:
                    os.rmdir(os.path.dirname(path))  # /pyrun-test, unless another test uses it
                except OSError as exc:
                    if exc.errno not in (errno.ENOENT, errno.EBUSY, errno.ENOTEMPTY):
                        raise
            _restore_subtree(mount, before)


def read(manager: Manager, key: str, name: str) -> str:
    path = manager.path(key)
    assert path is not None, f"no {key} hierarchy"
    with open(f"{path}/{name}") as handle:
        return handle.read().strip()


def spawn(children: list[Child], manager: Manager, work: Callable[[], str] = idle) -> Child:
    child = Child(work)
    children.append(child)
    manager.join(child.pid)
    return child


def test_create_apply_and_read_back(cgroup: Manager) -> None:
    cgroup.create()
    cgroup.apply(
        {
            "memory": {"limit": 256 * MiB, "swap": 512 * MiB, "reservation": 128 * MiB},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
            "pids": {"limit": 64},
            "devices": [
                {"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "r"},
            ],
        }
    )
    if cgroup.version == "v2":
        assert read(cgroup, "unified", "memory.max") == str(256 * MiB)
        assert read(cgroup, "unified", "memory.swap.max") == str(256 * MiB)
        assert read(cgroup, "unified", "memory.low") == str(128 * MiB)
        assert read(cgroup, "unified", "cpu.weight") == "20"
        assert read(cgroup, "unified", "cpu.max") == "50000 100000"
        assert read(cgroup, "unified", "cpuset.cpus") == "0"
        assert read(cgroup, "unified", "pids.max") == "64"
    else:
        assert read(cgroup, "memory", "memory.limit_in_bytes") == str(256 * MiB)
        if os.path.exists(f"{cgroup.path('memory')}/memory.memsw.limit_in_bytes"):
            assert read(cgroup, "memory", "memory.memsw.limit_in_bytes") == str(512 * MiB)
        assert read(cgroup, "memory", "memory.soft_limit_in_bytes") == str(128 * MiB)
        assert read(cgroup, "cpu", "cpu.shares") == "512"
        assert read(cgroup, "cpu", "cpu.cfs_quota_us") == "50000"
        assert read(cgroup, "cpu", "cpu.cfs_period_us") == "100000"
        assert read(cgroup, "cpuset", "cpuset.cpus") == "0"
        assert read(cgroup, "cpuset", "cpuset.mems") == "0"
        assert read(cgroup, "pids", "pids.max") == "64"
        assert read(cgroup, "devices", "devices.list").splitlines() == ["c 1:3 rwm", "c 1:5 r"]


def _disk() -> str | None:
    """major:minor of the whole disk holding /, or None when / is not on a block device."""
    dev = os.stat("/").st_dev
    sys_path = os.path.realpath(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}")
    if not os.path.isdir(sys_path):
        return None
    if os.path.exists(f"{sys_path}/partition"):
        sys_path = os.path.dirname(sys_path)
    with open(f"{sys_path}/dev") as handle:
        return handle.read().strip()


def test_blkio_throttle_read_back(cgroup: Manager) -> None:
    disk = _disk()
    if disk is None:
        pytest.skip("/ is not on a block device: no device to throttle")
    major, minor = (int(part) for part in disk.split(":"))
    cgroup.create()
    cgroup.apply(
        {
            "blockIO": {
                "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 10 * MiB}],
                "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 500}],
            }
        }
    )
    if cgroup.version == "v2":
        line = read(cgroup, "unified", "io.max")
        assert line.startswith(f"{disk} rbps={10 * MiB} wbps=max riops=max wiops=500")
    else:
        assert read(cgroup, "blkio", "blkio.throttle.read_bps_device") == f"{disk} {10 * MiB}"
        assert read(cgroup, "blkio", "blkio.throttle.write_iops_device") == f"{disk} 500"


def test_hugetlb_limit_read_back(cgroup: Manager) -> None:
    cgroup.create()
    try:
        cgroup.apply({"hugepageLimits": [{"pageSize": "2MB", "limit": 4 * MiB}]})
    except CgroupError as exc:
        if "hugetlb controller is not mounted" in str(exc):
            pytest.skip("no hugetlb controller on this host")
        raise
    if cgroup.path("hugetlb") is not None and cgroup.version != "v2":
        assert read(cgroup, "hugetlb", "hugetlb.2MB.limit_in_bytes") == str(4 * MiB)
    else:
        assert read(cgroup, "unified", "hugetlb.2MB.max") == str(4 * MiB)


def test_join_pids_and_signal_all(cgroup: Manager, children: list[Child]) -> None:
    cgroup.create()
    child = spawn(children, cgroup)
    name = PARENT + "/" + os.path.basename(next(iter(cgroup.paths().values())))
    with open(f"/proc/{child.pid}/cgroup") as handle:
        lines = handle.read().splitlines()
    joined = {line.split(":", 2)[1] or "unified": line.split(":", 2)[2] for line in lines}
    for key in cgroup.paths():
        controllers = [k for k in joined if key in k.split(",")]
        assert controllers, f"{key} missing from /proc/{child.pid}/cgroup"
        assert joined[controllers[0]] == name
    assert cgroup.pids() == [child.pid]
    cgroup.signal_all(signal.SIGKILL)
    status = child.wait()
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    assert not cgroup.is_frozen()  # signal_all thawed again
    deadline = time.monotonic() + 2
    while cgroup.pids() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cgroup.pids() == []


def test_freeze_and_thaw(cgroup: Manager, children: list[Child]) -> None:
    cgroup.create()
    child = spawn(children, cgroup)
    assert child.go() == "ready"
    cgroup.freeze()
    assert cgroup.is_frozen()
    if cgroup.path("freezer") is not None:
        assert child.state() == "D"  # v1 freezer: tasks sit in the refrigerator
        assert read(cgroup, "freezer", "freezer.state") == "FROZEN"
    else:
        assert "frozen 1" in read(cgroup, "unified", "cgroup.events").splitlines()
    cgroup.thaw()
    assert not cgroup.is_frozen()
    deadline = time.monotonic() + 2
    while child.state() != "S" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert child.state() == "S"


_KEEP: list[bytearray] = []  # the child's memory must outlive busy_child()


def busy_child() -> str:
    block = bytearray(32 * MiB)
    for offset in range(0, len(block), 4096):
        block[offset] = 1  # touch every page so it is charged to the new cgroup
    _KEEP.append(block)
    end = time.monotonic() + 0.2
    while time.monotonic() < end:
        pass
    return str(len(block))


def test_stats_are_plausible(cgroup: Manager, children: list[Child]) -> None:
    cgroup.create()
    cgroup.apply({"memory": {"limit": 256 * MiB}, "pids": {"limit": 64}})
    child = spawn(children, cgroup, busy_child)
    assert child.go() == str(32 * MiB)
    stats: dict[str, Any] = cgroup.stats()
    assert set(stats) >= {"cpu", "memory", "pids", "blkio", "hugetlb"}
    assert stats["pids"] == {"current": 1, "limit": 64}
    memory = stats["memory"]
    assert memory["usage"]["limit"] == 256 * MiB
    assert 32 * MiB <= memory["usage"]["usage"] <= 256 * MiB
    assert memory["usage"]["max"] >= memory["usage"]["usage"]
    assert memory["raw"]
    usage = stats["cpu"]["usage"]
    assert usage["total"] >= 100_000_000  # at least 0.1 s of the 0.2 s busy loop
    assert usage["user"] + usage["kernel"] > 0
    if "percpu" in usage:
        assert sum(usage["percpu"]) == usage["total"]


def test_destroy_removes_every_directory(cgroup: Manager, children: list[Child]) -> None:
    cgroup.create()
    first = next(iter(cgroup.paths().values()))
    os.mkdir(f"{first}/nested")  # a cgroup the container made itself
    child = spawn(children, cgroup)
    child.kill()
    cgroup.destroy()
    for path in cgroup.paths().values():
        assert not os.path.exists(path)
        assert os.path.isdir(os.path.dirname(path))  # the shared parent stays
    assert not cgroup.exists()
    cgroup.destroy()  # idempotent


def test_destroy_of_a_busy_cgroup_names_the_pids(
    cgroup: Manager, children: list[Child], monkeypatch: pytest.MonkeyPatch
) -> None:
    cgroup.create()
    child = spawn(children, cgroup)
    monkeypatch.setattr(base, "DESTROY_TIMEOUT", 0.1)
    with pytest.raises(
        CgroupError, match=rf"still busy after 0.1 s \(pids inside: \[{child.pid}\]\)"
    ):
        cgroup.destroy()
    child.kill()
    cgroup.destroy()
    assert not cgroup.exists()


def device_probe() -> str:
    results = []
    for path, flags in (
        ("/dev/null", os.O_RDWR),
        ("/dev/zero", os.O_RDONLY),
        ("/dev/zero", os.O_WRONLY),
        ("/dev/full", os.O_RDONLY),
    ):
        try:
            os.close(os.open(path, flags))
            results.append("ok")
        except OSError as exc:
            results.append(errno.errorcode[exc.errno or 0])
    return " ".join(results)


def test_device_rules_are_enforced(cgroup: Manager, children: list[Child]) -> None:
    cgroup.create()
    cgroup.apply(
        {
            "devices": [
                {"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "r"},
            ]
        }
    )
    child = spawn(children, cgroup, device_probe)
    assert child.go() == "ok ok EPERM EPERM"


# -- cgroup v2 eBPF device filter -----------------------------------------------------------------


@pytest.fixture
def bpf_cgroup(children: list[Child]) -> Iterator[Manager]:
    """A v2 manager for <cgroup2 mount>/pyrun-test-<random>: BPF device programs attach to any
    cgroup2 directory, no controller needed (so this runs on hybrid hosts too)."""
    mount = _unified_mount()
    if mount is None:
        pytest.skip("no cgroup2 hierarchy on this host (pure v1)")
    path = f"{mount}/pyrun-test-{uuid.uuid4().hex[:12]}"
    manager = manager_from_state(
        {"version": "v2", "paths": {"unified": path}, "mounts": {"unified": mount}}
    )
    assert isinstance(manager, Manager)
    try:
        yield manager
    finally:
        for child in children:
            child.kill()
        manager.destroy()


def test_bpf_program_denies_dev_null(bpf_cgroup: Manager, children: list[Child]) -> None:
    from runtime.cgroups.devices_bpf import attached_programs

    bpf_cgroup.create()
    bpf_cgroup.apply(
        {"devices": [{"allow": True}, {"allow": False, "type": "c", "major": 1, "minor": 3}]}
    )
    path = bpf_cgroup.path("unified")
    assert path is not None and len(attached_programs(path)) == 1
    child = spawn(children, bpf_cgroup, device_probe)
    assert child.go() == "EPERM ok ok ok"


def test_bpf_program_is_replaced_on_update(bpf_cgroup: Manager, children: list[Child]) -> None:
    from runtime.cgroups.devices_bpf import attached_programs

    bpf_cgroup.create()
    path = bpf_cgroup.path("unified")
    assert path is not None
    bpf_cgroup.apply(
        {"devices": [{"allow": True}, {"allow": False, "type": "c", "major": 1, "minor": 3}]}
    )
    first = attached_programs(path)
    bpf_cgroup.apply(
        {
            "devices": [
                {"allow": False},
                {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "r"},
            ]
        }
    )
    second = attached_programs(path)
    assert len(second) == 1 and second != first
    child = spawn(children, bpf_cgroup, device_probe)
    assert child.go() == "ok ok EPERM EPERM"
