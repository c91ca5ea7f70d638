"""Pure helpers: typed access to OCI resource fields and runc's v1 → v2 value conversions."""

from __future__ import annotations

from runtime.errors import CgroupError

MAX_UINT64 = 2**64 - 1  # what runc reports for "max" (no limit) on cgroup v2


def get_int(obj: dict[str, object], key: str, where: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise CgroupError(f"{where}.{key}: must be an integer, not {value!r}")
    return value


def get_bool(obj: dict[str, object], key: str, where: str) -> bool:
    value = obj.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise CgroupError(f"{where}.{key}: must be true or false, not {value!r}")
    return value


def get_str(obj: dict[str, object], key: str, where: str) -> str | None:
    value = obj.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise CgroupError(f"{where}.{key}: must be a string, not {value!r}")
    return value


def get_dict(value: object, where: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise CgroupError(f"{where}: must be an object")
    return value


def get_list(value: object, where: str) -> list[dict[str, object]]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise CgroupError(f"{where}: must be a list of objects")
    return value


def device_number(entry: dict[str, object], where: str) -> str:
    """``major:minor`` of a blockIO device entry (both required)."""
    major = get_int(entry, "major", where)
    minor = get_int(entry, "minor", where)
    if major is None or minor is None or major < 0 or minor < 0:
        raise CgroupError(f"{where}: major and minor must be non-negative integers")
    return f"{major}:{minor}"


def shares_to_weight(shares: int) -> int:
    """cpu.shares [2, 262144] → cpu.weight [1, 10000], runc's linear formula."""
    if shares == 0:
        return 0
    shares = min(max(shares, 2), 262144)  # the kernel clamps v1 shares the same way
    return 1 + ((shares - 2) * 9999) // 262142


def blkio_weight_to_io_weight(weight: int) -> int:
    """blkio.weight [10, 1000] → io.weight [1, 10000], runc's linear formula."""
    if weight == 0:
        return 0
    return 1 + ((weight - 10) * 9999) // 990


def swap_to_v2(swap: int, memory: int) -> int:
    """OCI swap is memory+swap; memory.swap.max is swap alone (runc's conversion)."""
    if memory == -1 and swap == 0:
        return -1  # "unlimited memory" means unlimited swap too, as v1 behaves
    if swap in (-1, 0) or memory == -1:
        return swap
    if memory == 0:
        raise CgroupError(
            "linux.resources.memory.swap: cannot set a swap limit without a memory limit"
        )
    if memory < 0:
        raise CgroupError(f"linux.resources.memory.limit: invalid value {memory}")
    if swap < memory:
        raise CgroupError(
            f"linux.resources.memory.swap: memory+swap limit ({swap}) must be >= memory limit "
            f"({memory})"
        )
    return swap - memory


def v2_limit(value: int) -> str:
    """A v2 ``.max``/``.low`` value: -1 is "max", 0 is "not set" (empty string)."""
    if value == 0:
        return ""
    if value == -1:
        return "max"
    return str(value)


def pids_max(limit: int) -> str:
    return "max" if limit <= 0 else str(limit)


def page_size(entry: dict[str, object], where: str) -> str:
    size = get_str(entry, "pageSize", where)
    if not size or not size.isalnum():
        raise CgroupError(f"{where}.pageSize: must be a size like '2MB', not {size!r}")
    return size


def parse_id_list(text: str) -> list[int]:
    """``0-3,8`` (cpuset.cpus format) → [0, 1, 2, 3, 8]."""
    out: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        out.extend(range(int(low), int(high or low) + 1))
    return out


def parse_flat_keyed(text: str) -> dict[str, int]:
    """``key value`` lines (memory.stat, cpu.stat, cgroup.events) → {key: value}."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        value = value.strip()
        if key and value.lstrip("-").isdigit():
            out[key] = int(value)
    return out


def parse_limit(text: str) -> int:
    """A cgroup limit file: "max" → MAX_UINT64."""
    text = text.strip()
    return MAX_UINT64 if text == "max" else int(text)


def weight_devices(blkio: dict[str, object], where: str) -> list[tuple[str, int, int]]:
    """blockIO.weightDevice as ("major:minor", weight, leafWeight), 0 where unset."""
    found = []
    for index, entry in enumerate(
        get_list(blkio.get("weightDevice") or [], f"{where}.weightDevice")
    ):
        at = f"{where}.weightDevice[{index}]"
        found.append(
            (
                device_number(entry, at),
                get_int(entry, "weight", at) or 0,
                get_int(entry, "leafWeight", at) or 0,
            )
        )
    return found


THROTTLE_KEYS = (
    "throttleReadBpsDevice",
    "throttleWriteBpsDevice",
    "throttleReadIOPSDevice",
    "throttleWriteIOPSDevice",
)


def throttles(blkio: dict[str, object], where: str) -> list[tuple[str, str, int]]:
    """Every blockIO throttle as (key, "major:minor", rate), in THROTTLE_KEYS order."""
    found = []
    for key in THROTTLE_KEYS:
        for index, entry in enumerate(get_list(blkio.get(key) or [], f"{where}.{key}")):
            at = f"{where}.{key}[{index}]"
            rate = get_int(entry, "rate", at)
            if rate is None or rate < 0:
                raise CgroupError(f"{at}.rate: must be a non-negative integer")
            found.append((key, device_number(entry, at), rate))
    return found
