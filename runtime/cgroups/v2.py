"""cgroup v2 (unified hierarchy) resources: OCI's v1-shaped values converted the way runc does,
controllers enabled in the ancestors' ``cgroup.subtree_control``, devices as an eBPF program.

Like ``v1.py``, each ``*_steps`` function validates first and returns closures.
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

    Step = Callable[[], None]

# Interface files a unified key may not write: membership and topology belong to join()/create()
# and freezing to freeze(); writing them through resources would bypass the manager.
_RESERVED = frozenset(
    {
        "cgroup.procs",
        "cgroup.threads",
        "cgroup.subtree_control",
        "cgroup.type",
        "cgroup.kill",
        "cgroup.freeze",
        "cgroup.controllers",
        "cgroup.events",
        "cgroup.stat",
    }
)


def available_controllers(fs: CgroupFS, mount: str) -> set[str]:
    return set(fs.read(f"{mount}/cgroup.controllers").split())


def enable_controllers(fs: CgroupFS, mount: str, path: str, controllers: list[str]) -> None:
    """``+controller`` in ``cgroup.subtree_control`` of every ancestor of ``path`` (from the
    mount down to its parent) that does not have it yet."""
    ancestor = mount
    parts = [part for part in path[len(mount) :].split("/") if part]
    for part in [None, *parts[:-1]]:
        if part is not None:
            ancestor = f"{ancestor}/{part}"
        enabled = fs.read(f"{ancestor}/cgroup.subtree_control").split()
        missing = [name for name in controllers if name not in enabled]
        if missing:
            fs.write(f"{ancestor}/cgroup.subtree_control", " ".join(f"+{name}" for name in missing))


def memory_steps(fs: CgroupFS, path: str, memory: dict[str, object]) -> list[Step]:
    where = "linux.resources.memory"
    limit = convert.get_int(memory, "limit", where) or 0
    swap = convert.get_int(memory, "swap", where) or 0
    reservation = convert.get_int(memory, "reservation", where) or 0
    # swappiness and disableOOMKiller have no v2 file; runc ignores them there too.
    swap_max = convert.swap_to_v2(swap, limit)
    swap_value = convert.v2_limit(swap_max)
    if swap_value == "" and swap > 0:
        swap_value = "0"  # memory == memory+swap: no swap at all
    memory_value = convert.v2_limit(limit)
    low_value = convert.v2_limit(reservation)

    def run() -> None:
        if swap_value:
            # Without swap accounting the file is missing; "max"/"0" then already hold.
            tolerate = (errno.ENOENT,) if swap_value in ("max", "0") else ()
            fs.write(f"{path}/memory.swap.max", swap_value, tolerate=tolerate)
        if memory_value:
            fs.write(f"{path}/memory.max", memory_value)
        if low_value:
            fs.write(f"{path}/memory.low", low_value)

    return [run]


def cpu_steps(fs: CgroupFS, path: str, cpu: dict[str, object]) -> list[Step]:
    where = "linux.resources.cpu"
    shares = convert.get_int(cpu, "shares", where) or 0
    quota = convert.get_int(cpu, "quota", where) or 0
    period = convert.get_int(cpu, "period", where) or 0
    burst = convert.get_int(cpu, "burst", where)
    idle = convert.get_int(cpu, "idle", where)
    for key in ("realtimeRuntime", "realtimePeriod"):
        if convert.get_int(cpu, key, where):
            raise CgroupError(f"{where}.{key}: realtime scheduling is not supported on cgroup v2")
    writes = []
    if shares:
        writes.append(("cpu.weight", str(convert.shares_to_weight(shares))))
    if quota or period:
        # quota <= 0 means no limit; the kernel's default period is 100 ms.
        writes.append(("cpu.max", f"{quota if quota > 0 else 'max'} {period or 100000}"))
    if burst is not None:
        writes.append(("cpu.max.burst", str(burst)))
    if idle is not None:
        writes.append(("cpu.idle", str(idle)))

    def run() -> None:
        for name, value in writes:
            fs.write(f"{path}/{name}", value)

    return [run]


_IO_MAX = {
    "throttleReadBpsDevice": "rbps",
    "throttleWriteBpsDevice": "wbps",
    "throttleReadIOPSDevice": "riops",
    "throttleWriteIOPSDevice": "wiops",
}


def io_steps(fs: CgroupFS, path: str, blkio: dict[str, object]) -> list[Step]:
    where = "linux.resources.blockIO"
    weight = convert.get_int(blkio, "weight", where) or 0
    if weight and not 10 <= weight <= 1000:
        raise CgroupError(f"{where}.weight: must be from 10 to 1000, not {weight}")
    # leafWeight has no v2 equivalent; per-device weights exist only with BFQ (as in runc).
    device_weights = [
        f"{number} {weight}" for number, weight, _ in convert.weight_devices(blkio, where) if weight
    ]
    limits = [
        f"{number} {_IO_MAX[key]}={rate}" for key, number, rate in convert.throttles(blkio, where)
    ]

    def run() -> None:
        bfq = fs.exists(f"{path}/io.bfq.weight")
        if weight:
            if bfq:
                fs.write(f"{path}/io.bfq.weight", str(weight))
            else:
                io_weight = convert.blkio_weight_to_io_weight(weight)
                fs.write(f"{path}/io.weight", str(io_weight))
        if bfq:
            for line in device_weights:
                fs.write(f"{path}/io.bfq.weight", line)
        for line in limits:
            fs.write(f"{path}/io.max", line)

    return [run]


def hugetlb_steps(fs: CgroupFS, path: str, limits: list[tuple[str, int]]) -> list[Step]:
    def run() -> None:
        for size, limit in limits:
            fs.write(f"{path}/hugetlb.{size}.max", str(limit))

    return [run]


def devices_steps(fs: CgroupFS, path: str, rules: list[DeviceRule]) -> list[Step]:
    from runtime.cgroups.devices_bpf import program_for

    program = program_for(rules)  # generated now: an invalid rule set fails before any write

    def run() -> None:
        fs.attach_device_filter(path, program)

    return [run]


def unified_steps(
    fs: CgroupFS, path: str, unified: dict[str, object], available: set[str]
) -> tuple[list[Step], list[str]]:
    """Writes for ``linux.resources.unified`` and the controllers they need enabled."""
    where = "linux.resources.unified"
    writes = []
    needed = []
    for key, value in unified.items():
        if not key or "/" in key or ".." in key or "\0" in key:
            raise CgroupError(f"{where}[{key!r}]: must be a file name (no '/' or '..')")
        if key in _RESERVED:
            raise CgroupError(f"{where}[{key!r}]: {key} is managed by pyrun and cannot be set")
        if not isinstance(value, str):
            raise CgroupError(f"{where}[{key!r}]: value must be a string, not {value!r}")
        name, dot, _param = key.partition(".")
        if not dot or not name:
            raise CgroupError(f"{where}[{key!r}]: must be in the form CONTROLLER.PARAMETER")
        if name != "cgroup":
            if name not in available:
                raise CgroupError(
                    f"{where}[{key!r}]: {name} controller is not available in the unified "
                    f"hierarchy (cgroup.controllers: {' '.join(sorted(available)) or 'none'})"
                )
            if name not in needed:
                needed.append(name)
        writes.append((key, value))

    def run() -> None:
        for key, value in writes:
            fs.write(f"{path}/{key}", value)

    return [run], needed
