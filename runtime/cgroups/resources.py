"""``linux.resources`` → cgroup files. Every field is checked first (its controller is mounted,
its values are sane, device rules emulate cleanly); only then is anything written (rule 2).

Each field goes to the hierarchy that has its controller: a v1 hierarchy when one is mounted,
otherwise the unified one when its ``cgroup.controllers`` lists it. Hybrid hosts mix the two
(this is how hugetlb lands in cgroup2 next to v1 memory); pure v1 and v2 hosts are the cases
where only one side exists. Controllers used in cgroup2 are enabled in the ancestors'
``cgroup.subtree_control`` only when a field needs them.
"""

from __future__ import annotations

from runtime.cgroups import convert, v1, v2
from runtime.cgroups.devices import emulate, parse_rules
from runtime.errors import CgroupError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from runtime.cgroups.base import CgroupFS, Manager

    Step = Callable[[], None]

_CPU_FIELDS = ("shares", "quota", "period", "burst", "realtimeRuntime", "realtimePeriod", "idle")


class _Router:
    """Decides, per controller, which hierarchy gets a field; remembers what cgroup2 needs."""

    def __init__(self, manager: Manager) -> None:
        self.manager = manager
        self.unified = manager.path("unified")
        self._available: set[str] | None = None
        self.enable: list[str] = []

    def available(self) -> set[str]:
        if self._available is None:
            mount = self.manager.mount("unified")
            self._available = (
                v2.available_controllers(self.manager.fs, mount) if mount is not None else set()
            )
        return self._available

    def route(self, field: str, v1_name: str, v2_name: str | None) -> tuple[bool, str]:
        """(is_v1, directory) for ``field``, or CgroupError naming the missing controller."""
        path = self.manager.path(v1_name) if self.manager.version != "v2" else None
        if path is not None:
            return True, path
        if self.unified is not None and v2_name is not None and v2_name in self.available():
            if v2_name not in self.enable:
                self.enable.append(v2_name)
            return False, self.unified
        missing = v2_name if self.manager.version == "v2" and v2_name else v1_name
        raise CgroupError(f"linux.resources.{field}: {missing} controller is not mounted")


def _is_set(section: dict[str, object], keys: tuple[str, ...]) -> bool:
    return any(section.get(key) not in (None, False, [], {}) for key in keys)


def apply_resources(manager: Manager, resources: dict[str, Any]) -> None:
    router = _Router(manager)
    res = convert.get_dict(resources, "linux.resources")
    cpu = convert.get_dict(res.get("cpu") or {}, "linux.resources.cpu")
    steps: list[Step] = []
    # runc's v1 order; unified last so its raw keys can refine what the fields set.
    steps += _cpuset(router, cpu)
    steps += _devices(router, res.get("devices"))
    steps += _memory(router, convert.get_dict(res.get("memory") or {}, "linux.resources.memory"))
    steps += _cpu(router, cpu)
    steps += _pids(router, convert.get_dict(res.get("pids") or {}, "linux.resources.pids"))
    steps += _blkio(router, convert.get_dict(res.get("blockIO") or {}, "linux.resources.blockIO"))
    steps += _hugetlb(router, res.get("hugepageLimits"))
    steps += _network(router, convert.get_dict(res.get("network") or {}, "linux.resources.network"))
    steps += _rdma(router, convert.get_dict(res.get("rdma") or {}, "linux.resources.rdma"))
    steps += _unified(router, convert.get_dict(res.get("unified") or {}, "linux.resources.unified"))
    mount = manager.mount("unified")
    if router.enable and mount is not None and router.unified is not None:
        steps.insert(0, _enable(manager.fs, mount, router.unified, router.enable))
    # Everything above only validated and planned; nothing has been written yet.
    for step in steps:
        step()


def _cpuset(router: _Router, cpu: dict[str, object]) -> list[Step]:
    steps = []
    for key in ("cpus", "mems"):
        value = convert.get_str(cpu, key, "linux.resources.cpu")
        if value:
            _is_v1, path = router.route(f"cpu.{key}", "cpuset", "cpuset")
            steps.append(_write(router.manager.fs, f"{path}/cpuset.{key}", value))
    return steps


def _devices(router: _Router, raw: object) -> list[Step]:
    if not raw:
        return []  # an empty list is "not given", never "deny everything"
    rules = parse_rules(raw)
    emulate(rules)  # refuses rule sets that v1 would silently misapply
    manager = router.manager
    path = manager.path("devices") if manager.version != "v2" else None
    if path is not None:
        return v1.devices_steps(manager.fs, path, rules)
    if router.unified is not None:
        return v2.devices_steps(manager.fs, router.unified, rules)
    raise CgroupError("linux.resources.devices: devices controller is not mounted")


def _memory(router: _Router, memory: dict[str, object]) -> list[Step]:
    if not _is_set(memory, ("limit", "reservation", "swap", "swappiness", "disableOOMKiller")):
        return []
    is_v1, path = router.route("memory", "memory", "memory")
    return (v1.memory_steps if is_v1 else v2.memory_steps)(router.manager.fs, path, memory)


def _cpu(router: _Router, cpu: dict[str, object]) -> list[Step]:
    if not _is_set(cpu, _CPU_FIELDS):
        return []
    is_v1, path = router.route("cpu", "cpu", "cpu")
    return (v1.cpu_steps if is_v1 else v2.cpu_steps)(router.manager.fs, path, cpu)


def _pids(router: _Router, pids: dict[str, object]) -> list[Step]:
    limit = convert.get_int(pids, "limit", "linux.resources.pids")
    if limit is None:
        return []
    _is_v1, path = router.route("pids", "pids", "pids")
    return [_write(router.manager.fs, f"{path}/pids.max", convert.pids_max(limit))]


def _blkio(router: _Router, blkio: dict[str, object]) -> list[Step]:
    if not _is_set(blkio, tuple(blkio)):
        return []
    is_v1, path = router.route("blockIO", "blkio", "io")
    return (v1.blkio_steps if is_v1 else v2.io_steps)(router.manager.fs, path, blkio)


def _hugetlb(router: _Router, raw: object) -> list[Step]:
    entries = convert.get_list(raw or [], "linux.resources.hugepageLimits")
    if not entries:
        return []
    limits = []
    for index, entry in enumerate(entries):
        where = f"linux.resources.hugepageLimits[{index}]"
        size = convert.page_size(entry, where)
        value = convert.get_int(entry, "limit", where)
        if value is None or value < 0:
            raise CgroupError(f"{where}.limit: must be a non-negative integer")
        limits.append((size, value))
    is_v1, path = router.route("hugepageLimits", "hugetlb", "hugetlb")
    return (v1.hugetlb_steps if is_v1 else v2.hugetlb_steps)(router.manager.fs, path, limits)


def _network(router: _Router, network: dict[str, object]) -> list[Step]:
    fs = router.manager.fs
    steps = []
    class_id = convert.get_int(network, "classID", "linux.resources.network")
    if class_id is not None:
        _is_v1, path = router.route("network", "net_cls", None)
        steps += v1.net_cls_steps(fs, path, class_id)
    entries = convert.get_list(network.get("priorities") or [], "linux.resources.network")
    if entries:
        pairs = []
        for index, entry in enumerate(entries):
            where = f"linux.resources.network.priorities[{index}]"
            name = convert.get_str(entry, "name", where)
            priority = convert.get_int(entry, "priority", where)
            if not name or " " in name or "/" in name or priority is None or priority < 0:
                raise CgroupError(f"{where}: needs an interface name and a priority >= 0")
            pairs.append((name, priority))
        _is_v1, path = router.route("network.priorities", "net_prio", None)
        steps += v1.net_prio_steps(fs, path, pairs)
    return steps


def _rdma(router: _Router, rdma: dict[str, object]) -> list[Step]:
    if not rdma:
        return []
    lines = [_rdma_line(device, limits) for device, limits in rdma.items()]
    _is_v1, path = router.route("rdma", "rdma", "rdma")
    return [_write(router.manager.fs, f"{path}/rdma.max", line) for line in lines]


def _unified(router: _Router, unified: dict[str, object]) -> list[Step]:
    if not unified:
        return []
    if router.unified is None:
        raise CgroupError("linux.resources.unified: this host has no cgroup v2 (unified) hierarchy")
    steps, needed = v2.unified_steps(router.manager.fs, router.unified, unified, router.available())
    router.enable += [name for name in needed if name not in router.enable]
    return steps


def _rdma_line(device: str, limits: object) -> str:
    where = f"linux.resources.rdma[{device!r}]"
    if not device or any(c.isspace() for c in device):
        raise CgroupError(f"{where}: invalid device name")
    entry = convert.get_dict(limits, where)
    line = device
    for key, name in (("hcaHandles", "hca_handle"), ("hcaObjects", "hca_object")):
        value = convert.get_int(entry, key, where)
        if value is not None:
            if value < 0:
                raise CgroupError(f"{where}.{key}: must be >= 0")
            line += f" {name}={value}"
    return line


def _write(fs: CgroupFS, path: str, value: str) -> Step:
    def run() -> None:
        fs.write(path, value)

    return run


def _enable(fs: CgroupFS, mount: str, path: str, controllers: list[str]) -> Step:
    def run() -> None:
        v2.enable_controllers(fs, mount, path, controllers)

    return run
