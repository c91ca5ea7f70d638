"""``stats()``: the ``data`` object of runc ``events --stats`` (runc ``types/events.go``).

Field names and omissions follow runc's JSON tags: a field tagged ``omitempty`` is left out when
it is zero/empty, the others are always present. Values are read the way runc's fs (v1) and
fs2 (v2) drivers read them; each controller is read from the hierarchy that has it, so a hybrid
host reports v1 memory next to cgroup2 hugetlb.
"""

from __future__ import annotations

from runtime.cgroups import convert
from runtime.cgroups.base import CgroupFS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from runtime.cgroups.base import Manager

_NANOS_PER_TICK = 1_000_000_000 // 100  # cpuacct.stat counts USER_HZ (100 on Linux) ticks


def _omit(data: dict[str, Any], keep: tuple[str, ...] = ()) -> dict[str, Any]:
    """Go's ``omitempty``: drop zero/empty values except for the fields in ``keep``."""
    return {k: v for k, v in data.items() if k in keep or v not in (0, None, "", [], {})}


def _entry(limit: int = 0, usage: int = 0, peak: int = 0, failcnt: int = 0) -> dict[str, Any]:
    return _omit(
        {"limit": limit, "usage": usage, "max": peak, "failcnt": failcnt}, ("limit", "failcnt")
    )


def _int(fs: CgroupFS, path: str, default: int | None = None) -> int:
    """A one-number file; ``default`` when it is optional and missing."""
    text = fs.read_optional(path) if default is not None else fs.read(path)
    if text is None:
        return default or 0
    return convert.parse_limit(text)


def _keyed(fs: CgroupFS, path: str) -> dict[str, int]:
    return convert.parse_flat_keyed(fs.read_optional(path) or "")


class _Where:
    """Which directory holds each controller's files: v1 when mounted, else cgroup2."""

    def __init__(self, manager: Manager) -> None:
        self.manager = manager
        self.unified = manager.path("unified")

    def v1(self, name: str) -> str | None:
        return self.manager.path(name) if self.manager.version != "v2" else None


def collect(manager: Manager) -> dict[str, Any]:
    fs = manager.fs
    where = _Where(manager)
    return {
        "cpu": _cpu(fs, where),
        "cpuset": _cpuset(fs, where),
        "memory": _memory(fs, where),
        "pids": _pids(fs, where),
        "blkio": _blkio(fs, where),
        "hugetlb": _hugetlb(fs, where),
        "intel_rdt": {},
        "network_interfaces": None,
    }


# -- cpu --------------------------------------------------------------------------------------


def _cpu(fs: CgroupFS, where: _Where) -> dict[str, Any]:
    usage: dict[str, Any] = {"kernel": 0, "user": 0}
    throttling: dict[str, int] = {}
    acct = where.v1("cpuacct")
    cpu = where.v1("cpu")
    if acct is not None and fs.isdir(acct):
        from runtime.cgroups.v1 import controller

        ctl = controller("cpuacct", fs, acct)
        ticks = ctl.acct_stat  # {"user": n, "system": n}
        percpu_user, percpu_kernel = _usage_all(fs.read_optional(f"{acct}/cpuacct.usage_all"))
        usage = {
            "total": int(fs.read(f"{acct}/cpuacct.usage")),
            "percpu": list(ctl.usage_percpu),
            "percpu_kernel": percpu_kernel,
            "percpu_user": percpu_user,
            "kernel": ticks.get("system", 0) * _NANOS_PER_TICK,
            "user": ticks.get("user", 0) * _NANOS_PER_TICK,
        }
    if cpu is not None and fs.isdir(cpu):
        stat = _keyed(fs, f"{cpu}/cpu.stat")
        throttling = {
            "periods": stat.get("nr_periods", 0),
            "throttledPeriods": stat.get("nr_throttled", 0),
            "throttledTime": stat.get("throttled_time", 0),
        }
    if (acct is None or cpu is None) and where.unified is not None:
        # cpu.stat exists in every cgroup2 directory, controller enabled or not.
        stat = _keyed(fs, f"{where.unified}/cpu.stat")
        if acct is None and stat:
            usage = {
                "total": stat.get("usage_usec", 0) * 1000,
                "kernel": stat.get("system_usec", 0) * 1000,
                "user": stat.get("user_usec", 0) * 1000,
            }
        if cpu is None and "nr_periods" in stat:
            throttling = {
                "periods": stat.get("nr_periods", 0),
                "throttledPeriods": stat.get("nr_throttled", 0),
                "throttledTime": stat.get("throttled_usec", 0) * 1000,
            }
    return {"usage": _omit(usage, ("kernel", "user")), "throttling": _omit(throttling)}


def _usage_all(text: str | None) -> tuple[list[int], list[int]]:
    """cpuacct.usage_all: a header, then "cpu user system" per CPU, in nanoseconds."""
    user: list[int] = []
    kernel: list[int] = []
    for line in (text or "").splitlines()[1:]:
        fields = line.split()
        if len(fields) == 3:
            user.append(int(fields[1]))
            kernel.append(int(fields[2]))
    return user, kernel


# -- cpuset -----------------------------------------------------------------------------------

_CPUSET_FLAGS = (
    "cpu_exclusive",
    "mem_hardwall",
    "mem_exclusive",
    "memory_migrate",
    "memory_spread_page",
    "memory_spread_slab",
    "memory_pressure",
    "sched_load_balance",
    "sched_relax_domain_level",
)


def _cpuset(fs: CgroupFS, where: _Where) -> dict[str, Any]:
    out: dict[str, Any] = {}
    path = where.v1("cpuset")
    if path is not None:
        out["cpus"] = convert.parse_id_list(fs.read_optional(f"{path}/cpuset.cpus") or "")
        out["mems"] = convert.parse_id_list(fs.read_optional(f"{path}/cpuset.mems") or "")
        for flag in _CPUSET_FLAGS:
            out[flag] = _int(fs, f"{path}/cpuset.{flag}", 0)
    elif where.unified is not None:
        cpus = fs.read_optional(f"{where.unified}/cpuset.cpus.effective")
        mems = fs.read_optional(f"{where.unified}/cpuset.mems.effective")
        out["cpus"] = convert.parse_id_list(cpus or "")
        out["mems"] = convert.parse_id_list(mems or "")
    for flag in _CPUSET_FLAGS:
        out.setdefault(flag, 0)
    return _omit(out, _CPUSET_FLAGS)


# -- memory -----------------------------------------------------------------------------------


def _memory(fs: CgroupFS, where: _Where) -> dict[str, Any]:
    path = where.v1("memory")
    if path is not None:
        if not fs.isdir(path):
            return _memory_out(0, {}, _entry(), _entry(), _entry(), _entry())
        from runtime.cgroups.v1 import controller

        raw = dict(controller("memory", fs, path).stat)
        return _memory_out(
            raw.get("cache", 0),
            raw,
            _v1_memory(fs, path, "memory"),
            _v1_memory(fs, path, "memory.memsw"),
            _v1_memory(fs, path, "memory.kmem"),
            _v1_memory(fs, path, "memory.kmem.tcp"),
        )
    unified = where.unified
    if unified is None or fs.read_optional(f"{unified}/memory.current") is None:
        return _memory_out(0, {}, _entry(), _entry(), _entry(), _entry())
    raw = _keyed(fs, f"{unified}/memory.stat")
    limit = _int(fs, f"{unified}/memory.max")
    usage = _int(fs, f"{unified}/memory.current")
    peak = _int(fs, f"{unified}/memory.peak", 0)
    # v1 reports swap as memory+swap; runc adds the two on v2 for the same meaning.
    swap_usage = _int(fs, f"{unified}/memory.swap.current", 0) + usage
    swap_limit = _int(fs, f"{unified}/memory.swap.max", 0)
    if swap_limit != convert.MAX_UINT64:
        swap_limit = min(swap_limit + limit, convert.MAX_UINT64)
    return _memory_out(
        raw.get("file", 0),
        raw,
        _entry(limit, usage, peak),
        _entry(swap_limit, swap_usage),
        _entry(),
        _entry(),
    )


def _v1_memory(fs: CgroupFS, path: str, prefix: str) -> dict[str, Any]:
    usage_text = fs.read_optional(f"{path}/{prefix}.usage_in_bytes")
    if usage_text is None:
        return _entry()  # swap and kmem accounting are optional kernel features
    return _entry(
        _int(fs, f"{path}/{prefix}.limit_in_bytes", 0),
        int(usage_text),
        _int(fs, f"{path}/{prefix}.max_usage_in_bytes", 0),
        _int(fs, f"{path}/{prefix}.failcnt", 0),
    )


def _memory_out(
    cache: int,
    raw: dict[str, int],
    usage: dict[str, Any],
    swap: dict[str, Any],
    kernel: dict[str, Any],
    kernel_tcp: dict[str, Any],
) -> dict[str, Any]:
    return _omit(
        {
            "cache": cache,
            "usage": usage,
            "swap": swap,
            "kernel": kernel,
            "kernelTCP": kernel_tcp,
            "raw": raw,
        },
        ("usage", "swap", "kernel", "kernelTCP"),
    )


# -- pids, blkio, hugetlb -------------------------------------------------------------------------


def _pids(fs: CgroupFS, where: _Where) -> dict[str, Any]:
    path = where.v1("pids") or where.unified
    if path is None:
        return {}
    current = fs.read_optional(f"{path}/pids.current")
    if current is None:
        return {}
    limit = convert.parse_limit(fs.read_optional(f"{path}/pids.max") or "0")
    return _omit({"current": int(current), "limit": 0 if limit == convert.MAX_UINT64 else limit})


# runc's v1 preference: BFQ debug, BFQ, CFQ, throttle recursive, throttle; first complete wins.
_BLKIO_GROUPS: tuple[tuple[tuple[str, str], ...], ...] = (
    (
        ("blkio.bfq.sectors_recursive", "sectorsRecursive"),
        ("blkio.bfq.io_service_time_recursive", "ioServiceTimeRecursive"),
        ("blkio.bfq.io_wait_time_recursive", "ioWaitTimeRecursive"),
        ("blkio.bfq.io_merged_recursive", "ioMergedRecursive"),
        ("blkio.bfq.io_queued_recursive", "ioQueueRecursive"),
        ("blkio.bfq.time_recursive", "ioTimeRecursive"),
        ("blkio.bfq.io_serviced_recursive", "ioServicedRecursive"),
        ("blkio.bfq.io_service_bytes_recursive", "ioServiceBytesRecursive"),
    ),
    (
        ("blkio.bfq.io_serviced_recursive", "ioServicedRecursive"),
        ("blkio.bfq.io_service_bytes_recursive", "ioServiceBytesRecursive"),
    ),
    (
        ("blkio.sectors_recursive", "sectorsRecursive"),
        ("blkio.io_service_time_recursive", "ioServiceTimeRecursive"),
        ("blkio.io_wait_time_recursive", "ioWaitTimeRecursive"),
        ("blkio.io_merged_recursive", "ioMergedRecursive"),
        ("blkio.io_queued_recursive", "ioQueueRecursive"),
        ("blkio.time_recursive", "ioTimeRecursive"),
        ("blkio.io_serviced_recursive", "ioServicedRecursive"),
        ("blkio.io_service_bytes_recursive", "ioServiceBytesRecursive"),
    ),
    (
        ("blkio.throttle.io_serviced_recursive", "ioServicedRecursive"),
        ("blkio.throttle.io_service_bytes_recursive", "ioServiceBytesRecursive"),
    ),
    (
        ("blkio.throttle.io_serviced", "ioServicedRecursive"),
        ("blkio.throttle.io_service_bytes", "ioServiceBytesRecursive"),
    ),
)


def _blkio_entries(text: str) -> list[dict[str, Any]]:
    """``8:0 Read 123`` / ``8:0 123`` lines; the ``Total`` summary line is skipped."""
    out = []
    for line in text.splitlines():
        fields = line.replace(":", " ").split()
        if len(fields) < 3:
            continue
        op, value = (fields[2], fields[3]) if len(fields) >= 4 else ("", fields[2])
        out.append(
            _omit({"major": int(fields[0]), "minor": int(fields[1]), "op": op, "value": int(value)})
        )
    return out


def _blkio(fs: CgroupFS, where: _Where) -> dict[str, Any]:
    path = where.v1("blkio")
    if path is not None:
        for group in _BLKIO_GROUPS:
            found: dict[str, Any] = {}
            for filename, key in group:
                text = fs.read_optional(f"{path}/{filename}")
                if not text or not text.strip():
                    break
                found[key] = _blkio_entries(text)
            else:
                return _omit(found)
        return {}
    if where.unified is None:
        return {}
    return _io_stat(fs.read_optional(f"{where.unified}/io.stat") or "")


def _io_stat(text: str) -> dict[str, Any]:
    """cgroup2 io.stat (``8:0 rbytes=1 wbytes=2 rios=3 wios=4 ...``) in v1's tables."""
    tables: dict[str, list[dict[str, Any]]] = {}
    names = {
        "rbytes": ("ioServiceBytesRecursive", "Read"),
        "wbytes": ("ioServiceBytesRecursive", "Write"),
        "rios": ("ioServicedRecursive", "Read"),
        "wios": ("ioServicedRecursive", "Write"),
    }
    for line in text.splitlines():
        device, *items = line.split()
        major, _, minor = device.partition(":")
        if not minor:
            continue
        for item in items:
            key, _, value = item.partition("=")
            if key in names:
                table, op = names[key]
                entry = {"major": int(major), "minor": int(minor), "op": op, "value": int(value)}
                tables.setdefault(table, []).append(_omit(entry))
    return _omit(dict(tables))


def _hugetlb(fs: CgroupFS, where: _Where) -> dict[str, Any]:
    out: dict[str, Any] = {}
    path = where.v1("hugetlb")
    if path is not None:
        for size in _sizes(fs, path, ".limit_in_bytes"):
            prefix = f"{path}/hugetlb.{size}"
            out[size] = _omit(
                {
                    "usage": _int(fs, f"{prefix}.usage_in_bytes", 0),
                    "max": _int(fs, f"{prefix}.max_usage_in_bytes", 0),
                    "failcnt": _int(fs, f"{prefix}.failcnt", 0),
                },
                ("failcnt",),
            )
    elif where.unified is not None:
        for size in _sizes(fs, where.unified, ".max"):
            prefix = f"{where.unified}/hugetlb.{size}"
            out[size] = _omit(
                {
                    "usage": _int(fs, f"{prefix}.current", 0),
                    "failcnt": _keyed(fs, f"{prefix}.events").get("max", 0),
                },
                ("failcnt",),
            )
    return out


def _sizes(fs: CgroupFS, path: str, suffix: str) -> list[str]:
    """Page sizes with a hugetlb.<size><suffix> file (``.rsvd`` variants excluded)."""
    sizes = []
    for name, is_dir in fs.listdir(path):
        if not is_dir and name.startswith("hugetlb.") and name.endswith(suffix):
            size = name[len("hugetlb.") : -len(suffix)]
            if size and "." not in size:
                sizes.append(size)
    return sorted(sizes)
