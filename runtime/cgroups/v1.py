"""cgroup v1 resources: each ``*_steps`` function validates its OCI field and returns the writes
to make, in runc's order, as closures (``resources.py`` runs them only once every field passed).

Controller files are accessed through cgroupspy's controller classes where they fit; their
``get_property``/``set_property`` are rebound to the ``CgroupFS`` seam, so cgroupspy never opens a
file itself. cgroupspy is imported on first use (apply/stats only).
"""

from __future__ import annotations

import errno

from runtime.cgroups import convert
from runtime.cgroups.base import CgroupFS
from runtime.cgroups.devices import DeviceRule
from runtime.errors import CgroupError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Step = Callable[[], None]

_CLASSES = {
    "memory": "MemoryController",
    "cpu": "CpuController",
    "cpuacct": "CpuAcctController",
    "cpuset": "CpuSetController",
    "devices": "DevicesController",
    "blkio": "BlkIOController",
    "net_cls": "NetClsController",
    "net_prio": "NetPrioController",
}
_bound: dict[str, Any] = {}


class _Node:
    """What cgroupspy controllers need of a node (``full_path``), plus the seam to use."""

    __slots__ = ("fs", "full_path")

    def __init__(self, fs: CgroupFS, full_path: str) -> None:
        self.fs = fs
        self.full_path = full_path


def _file(node: _Node, filename: str | bytes) -> str:
    name = filename.decode() if isinstance(filename, bytes) else filename
    return f"{node.full_path}/{name}"


def _get_property(self: Any, filename: str | bytes) -> str:
    node: _Node = self.node
    return node.fs.read(_file(node, filename)).strip()


def _set_property(self: Any, filename: str | bytes, value: object) -> None:
    node: _Node = self.node
    node.fs.write(_file(node, filename), str(value))


def controller(kind: str, fs: CgroupFS, path: str) -> Any:
    """A cgroupspy controller for ``path`` whose file access goes through ``fs``."""
    cls = _bound.get(kind)
    if cls is None:
        from cgroupspy import controllers

        base = getattr(controllers, _CLASSES[kind])
        cls = type(
            f"Seam{base.__name__}",
            (base,),
            {
                "get_property": _get_property,
                "set_property": _set_property,
            },
        )
        _bound[kind] = cls
    return cls(_Node(fs, path))


# -- memory -----------------------------------------------------------------------------------


def memory_steps(fs: CgroupFS, path: str, memory: dict[str, object]) -> list[Step]:
    where = "linux.resources.memory"
    limit = convert.get_int(memory, "limit", where) or 0
    swap = convert.get_int(memory, "swap", where) or 0
    reservation = convert.get_int(memory, "reservation", where) or 0
    swappiness = convert.get_int(memory, "swappiness", where)
    no_oom_kill = convert.get_bool(memory, "disableOOMKiller", where)
    if swappiness is not None and swappiness != -1 and not 0 <= swappiness <= 100:
        raise CgroupError(
            f"{where}.swappiness: invalid value {swappiness}; "
            "valid memory swappiness range is 0-100"
        )
    # kernel/kernelTCP are deprecated by the runtime spec and ignored, as runc does.

    def run() -> None:
        ctl = controller("memory", fs, path)
        memsw = swap
        if limit == -1 and memsw == 0 and fs.exists(f"{path}/memory.memsw.limit_in_bytes"):
            memsw = -1  # unlimited memory implies unlimited swap
        # memory.memsw.limit_in_bytes may never drop below memory.limit_in_bytes, so order the
        # two writes against the current limit: raise swap first, lower memory first.
        if limit != 0 and memsw != 0:
            current = int(fs.read(f"{path}/memory.limit_in_bytes"))
            if memsw == -1 or current < memsw:
                ctl.memsw_limit_in_bytes = memsw
                _set_memory_limit(fs, path, limit)
            else:
                _set_memory_limit(fs, path, limit)
                ctl.memsw_limit_in_bytes = memsw
        else:
            if limit != 0:
                _set_memory_limit(fs, path, limit)
            if memsw != 0:
                ctl.memsw_limit_in_bytes = memsw
        if reservation != 0:
            ctl.soft_limit_in_bytes = reservation
        if no_oom_kill:
            ctl.oom_control = 1
        if swappiness is not None and swappiness != -1:
            ctl.swappiness = swappiness

    return [run]


def _set_memory_limit(fs: CgroupFS, path: str, limit: int) -> None:
    target = f"{path}/memory.limit_in_bytes"
    if fs.write(target, str(limit), tolerate=(errno.EBUSY,)) == 0:
        return
    # EBUSY: the kernel could not reclaim down to the new limit; say why, like runc.
    usage = fs.read(f"{path}/memory.usage_in_bytes").strip()
    peak = fs.read(f"{path}/memory.max_usage_in_bytes").strip()
    raise CgroupError(
        f"unable to set memory limit to {limit} (current usage: {usage}, peak usage: {peak})"
    )


# -- cpu --------------------------------------------------------------------------------------


def cpu_steps(fs: CgroupFS, path: str, cpu: dict[str, object]) -> list[Step]:
    where = "linux.resources.cpu"
    shares = convert.get_int(cpu, "shares", where) or 0
    quota = convert.get_int(cpu, "quota", where) or 0
    period = convert.get_int(cpu, "period", where) or 0
    burst = convert.get_int(cpu, "burst", where)
    rt_runtime = convert.get_int(cpu, "realtimeRuntime", where) or 0
    rt_period = convert.get_int(cpu, "realtimePeriod", where) or 0
    idle = convert.get_int(cpu, "idle", where)

    def run() -> None:
        ctl = controller("cpu", fs, path)
        if shares:
            ctl.shares = shares
            got = int(fs.read(f"{path}/cpu.shares"))
            if shares > got:
                raise CgroupError(f"the maximum allowed cpu-shares is {got}")
            if shares < got:
                raise CgroupError(f"the minimum allowed cpu-shares is {got}")
        pending_period = False
        if period:
            # A smaller period can be refused (EINVAL) while the old quota/new period ratio
            # exceeds the parent's; then set the quota first and the period again (runc).
            target = f"{path}/cpu.cfs_period_us"
            pending_period = fs.write(target, str(period), tolerate=(errno.EINVAL,)) != 0
        if quota:
            ctl.cfs_quota_us = quota
        if pending_period:
            fs.write(f"{path}/cpu.cfs_period_us", str(period))
        if burst is not None:
            fs.write(f"{path}/cpu.cfs_burst_us", str(burst))
        if rt_period:
            ctl.rt_period_us = rt_period
        if rt_runtime:
            ctl.rt_runtime_us = rt_runtime
        if idle is not None:
            fs.write(f"{path}/cpu.idle", str(idle))

    return [run]


# -- blkio ------------------------------------------------------------------------------------

_THROTTLE_FILES = {
    "throttleReadBpsDevice": "blkio.throttle.read_bps_device",
    "throttleWriteBpsDevice": "blkio.throttle.write_bps_device",
    "throttleReadIOPSDevice": "blkio.throttle.read_iops_device",
    "throttleWriteIOPSDevice": "blkio.throttle.write_iops_device",
}


def blkio_steps(fs: CgroupFS, path: str, blkio: dict[str, object]) -> list[Step]:
    where = "linux.resources.blockIO"
    weight = convert.get_int(blkio, "weight", where) or 0
    leaf_weight = convert.get_int(blkio, "leafWeight", where) or 0
    devices = convert.weight_devices(blkio, where)
    throttles = [
        (_THROTTLE_FILES[key], f"{number} {rate}")
        for key, number, rate in convert.throttles(blkio, where)
    ]

    def run() -> None:
        # CFQ has blkio.weight; with BFQ (no CFQ since Linux 5.0) only blkio.bfq.weight exists.
        cfq = fs.exists(f"{path}/blkio.weight")
        prefix = "blkio." if cfq else "blkio.bfq."
        wants_weight = weight or any(w for _, w, _ in devices)
        if wants_weight and not cfq and not fs.exists(f"{path}/blkio.bfq.weight"):
            raise CgroupError(
                f"{where}.weight: neither blkio.weight nor blkio.bfq.weight exists in {path} "
                "(the block I/O scheduler has no proportional weights)"
            )
        if weight:
            if cfq:
                controller("blkio", fs, path).weight = weight
            else:
                fs.write(f"{path}/blkio.bfq.weight", str(weight))
        if leaf_weight:
            controller("blkio", fs, path).leaf_weight = leaf_weight
        for number, dev_weight, dev_leaf in devices:
            if dev_weight:
                fs.write(f"{path}/{prefix}weight_device", f"{number} {dev_weight}")
            if dev_leaf:
                fs.write(f"{path}/blkio.leaf_weight_device", f"{number} {dev_leaf}")
        for filename, line in throttles:
            fs.write(f"{path}/{filename}", line)

    return [run]


# -- devices, network, hugetlb ------------------------------------------------------------------


def _device_line(rule: DeviceRule) -> str:
    """devices.allow/deny syntax: "c 1:3 rwm", with "*" for any major or minor."""
    major = "*" if rule.major < 0 else str(rule.major)
    minor = "*" if rule.minor < 0 else str(rule.minor)
    return f"{rule.type} {major}:{minor} {rule.access}"


def devices_steps(fs: CgroupFS, path: str, rules: list[DeviceRule]) -> list[Step]:
    # Written directly rather than through cgroupspy: every container has device rules, and
    # importing cgroupspy would cost ~4 ms on each create.
    def run() -> None:
        # runc's rule lists start from deny-all; a leading "a" rule sets the mode itself.
        if not rules or rules[0].type != "a":
            fs.write(f"{path}/devices.deny", "a *:* rwm")
        for rule in rules:
            name = "devices.allow" if rule.allow else "devices.deny"
            fs.write(f"{path}/{name}", _device_line(rule))

    return [run]


def net_cls_steps(fs: CgroupFS, path: str, class_id: int) -> list[Step]:
    def run() -> None:
        controller("net_cls", fs, path).class_id = class_id

    return [run]


def net_prio_steps(fs: CgroupFS, path: str, priorities: list[tuple[str, int]]) -> list[Step]:
    def run() -> None:
        ctl = controller("net_prio", fs, path)
        for name, priority in priorities:
            ctl.ifpriomap = {name: priority}  # the kernel parses one "ifname prio" per write

    return [run]


def hugetlb_steps(fs: CgroupFS, path: str, limits: list[tuple[str, int]]) -> list[Step]:
    def run() -> None:
        for size, limit in limits:
            fs.write(f"{path}/hugetlb.{size}.limit_in_bytes", str(limit))

    return [run]
