"""``pyrun update [FLAGS | --resources FILE|-] ID``: change a live container's cgroup limits.

As runc does it: the new values come either from flags (parsed the way runc parses them: memory
sizes through go-units' ``RAMInBytes`` (``512m``, ``1.5g``; ``-1`` is unlimited), the rest as
Go integers) or, with ``--resources``, from a JSON ``LinuxResources`` document (a file, or
standard input for ``-``, which is what containerd sends); with ``--resources`` every other
flag is ignored. Then, in this order (rule 2):

1. every problem of the input is collected (bad flag values, JSON syntax, the schema's
   ``Resources`` shape) and reported together;
2. the container must not be stopped ("container not running");
3. the values are merged into the container's stored config (``<state>/config.json``): a 0
   means "unchanged" for the limits runc treats that way, lists merge by their key (page
   size, device number, interface name);
4. the merged resources (without devices: update never changes device rules, as runc) are
   applied through the cgroup manager, which checks them all before its first write;
5. only then is the merged config written back, so ``state`` and later updates see it.

Differences from runc 1.1.5, on purpose: fields runc's update ignores (``hugepageLimits``,
``network``, ``rdma``, blkio throttles and device weights, ``swappiness``,
``disableOOMKiller``) are applied rather than dropped; ``unified`` keys merge into the stored
ones instead of replacing them; Intel RDT is not implemented, so ``--l3-cache-schema`` and
``--mem-bw-schema`` always get runc's "not enabled" error.
"""

from __future__ import annotations

import os

from runtime.errors import CgroupError, PyrunError, SpecError
from runtime.lifecycle import status as st
from runtime.lifecycle.container import Container, Context

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO

    Path = tuple[str | int, ...]

MAX_INT64 = 2**63 - 1
MAX_UINT64 = 2**64 - 1

# flag (runc's name) -> (option dest, JSON path in LinuxResources, how its value is parsed)
FLAGS: tuple[tuple[str, str, tuple[str, str], str], ...] = (
    ("blkio-weight", "blkio_weight", ("blockIO", "weight"), "int"),
    ("cpuset-cpus", "cpuset_cpus", ("cpu", "cpus"), "str"),
    ("cpuset-mems", "cpuset_mems", ("cpu", "mems"), "str"),
    ("cpu-idle", "cpu_idle", ("cpu", "idle"), "int"),
    ("cpu-burst", "cpu_burst", ("cpu", "burst"), "uint"),
    ("cpu-period", "cpu_period", ("cpu", "period"), "uint"),
    ("cpu-rt-period", "cpu_rt_period", ("cpu", "realtimePeriod"), "uint"),
    ("cpu-share", "cpu_share", ("cpu", "shares"), "uint"),
    ("cpu-quota", "cpu_quota", ("cpu", "quota"), "int"),
    ("cpu-rt-runtime", "cpu_rt_runtime", ("cpu", "realtimeRuntime"), "int"),
    ("memory", "memory", ("memory", "limit"), "size"),
    ("memory-swap", "memory_swap", ("memory", "swap"), "size"),
    ("memory-reservation", "memory_reservation", ("memory", "reservation"), "size"),
    ("pids-limit", "pids_limit", ("pids", "limit"), "int"),
)
IGNORED_FLAGS = (("kernel-memory", "kernel_memory"), ("kernel-memory-tcp", "kernel_memory_tcp"))

# Limits where runc reads 0 as "leave as it is" (its cgroup drivers skip zero values).
_ZERO_IS_UNSET: dict[str, tuple[str, ...]] = {
    "memory": ("limit", "reservation", "swap", "kernel", "kernelTCP"),
    "cpu": ("shares", "quota", "period", "realtimeRuntime", "realtimePeriod"),
    "blockIO": ("weight", "leafWeight"),
    "pids": ("limit",),
}
# List fields and the key that identifies an entry when merging.
_LIST_KEYS: dict[Path, tuple[str, ...]] = {
    ("hugepageLimits",): ("pageSize",),
    ("blockIO", "weightDevice"): ("major", "minor"),
    ("blockIO", "throttleReadBpsDevice"): ("major", "minor"),
    ("blockIO", "throttleWriteBpsDevice"): ("major", "minor"),
    ("blockIO", "throttleReadIOPSDevice"): ("major", "minor"),
    ("blockIO", "throttleWriteIOPSDevice"): ("major", "minor"),
    ("network", "priorities"): ("name",),
}


# -- values as runc parses them ---------------------------------------------------------------


def ram_in_bytes(text: str) -> int:
    """go-units ``RAMInBytes`` (v0.4, what runc 1.1 uses): ``<number>[ ][kmgtp][i][b]``, case
    insensitive, binary multiples, the fraction truncated. ValueError with runc's words."""
    import re

    match = re.fullmatch(r"([0-9]+(?:\.[0-9]+)*) ?([kmgtp])?i?b?", text, re.IGNORECASE)
    if match is None:
        raise ValueError(f"invalid size: '{text}'")
    number, prefix = match.group(1), (match.group(2) or "").lower()
    if number.count(".") > 1:
        raise ValueError(f'strconv.ParseFloat: parsing "{number}": invalid syntax')
    size = float(number) * 1024 ** ("kmgtp".index(prefix) + 1 if prefix else 0)
    if size > MAX_INT64:
        raise ValueError(f"invalid size: '{text}': out of range")
    return int(size)


def parse_uint(text: str) -> int:
    """Go ``strconv.ParseUint(text, 10, 64)``."""
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f'strconv.ParseUint: parsing "{text}": invalid syntax')
    value = int(text)
    if value > MAX_UINT64:
        raise ValueError(f'strconv.ParseUint: parsing "{text}": value out of range')
    return value


def parse_int(text: str) -> int:
    """Go ``strconv.ParseInt(text, 10, 64)``: an optional sign, then decimal digits."""
    digits = text[1:] if text[:1] in ("+", "-") else text
    if not (digits.isascii() and digits.isdigit()):
        raise ValueError(f'strconv.ParseInt: parsing "{text}": invalid syntax')
    value = int(text)
    if not -MAX_INT64 - 1 <= value <= MAX_INT64:
        raise ValueError(f'strconv.ParseInt: parsing "{text}": value out of range')
    return value


def parse_memory(text: str) -> int:
    """A memory flag: ``-1`` (unlimited) or a size."""
    return -1 if text == "-1" else ram_in_bytes(text)


_PARSERS = {"uint": parse_uint, "int": parse_int, "size": parse_memory}


class Request:
    """What the caller asked for: a LinuxResources document, where it came from, and for
    flags which flag set which JSON path (so problems name the flag)."""

    __slots__ = ("flag_of", "problems", "resources", "source", "warnings")

    def __init__(self, source: str) -> None:
        self.source = source
        self.resources: dict[str, Any] = {}
        self.problems: list[str] = []
        self.warnings: list[str] = []
        self.flag_of: dict[Path, str] = {}


def from_flags(options: dict[str, Any]) -> Request:
    """The update runc's flags describe; every unparsable value is a problem."""
    request = Request("update")
    for flag, dest, path, kind in FLAGS:
        text = options.get(dest)
        if text is None or text == "":
            continue
        value: object = str(text)
        if kind != "str":
            try:
                value = _PARSERS[kind](str(text))
            except ValueError as err:
                request.problems.append(f"invalid value for {flag}: {err}")
                continue
        section, key = path
        request.resources.setdefault(section, {})[key] = value
        request.flag_of[path] = f"--{flag}"
    if any(options.get(dest) for _flag, dest in IGNORED_FLAGS):
        request.warnings.append("Kernel memory settings are ignored and will be removed")
    return request


def from_document(data: bytes, source: str) -> Request:
    """The update in a JSON LinuxResources document (``--resources``)."""
    from runtime.spec.document import decode

    request = Request(source)
    document = decode(data, source)  # SpecError with line and column on a syntax error
    if not isinstance(document.data, dict):
        request.problems.append("(root): must be a JSON object (LinuxResources)")
        return request
    request.resources = document.data
    return request


def read_request(options: dict[str, Any], stdin: BinaryIO | None = None) -> Request:
    source = options.get("resources")
    if not source:
        request = from_flags(options)
    elif source == "-":
        stream = stdin
        if stream is None:
            import sys

            stream = sys.stdin.buffer
        request = from_document(stream.read(), "<stdin>")
    else:
        try:
            with open(str(source), "rb") as handle:
                data = handle.read()
        except OSError as err:
            raise PyrunError(f"open {source}: {(err.strerror or str(err)).lower()}") from None
        request = from_document(data, str(source))
    for flag, dest in (("l3-cache-schema", "l3_cache_schema"), ("mem-bw-schema", "mem_bw_schema")):
        if options.get(dest):
            # Intel RDT is not implemented: runc's words for a host without it.
            request.problems.append(
                "Intel RDT/CAT: l3 cache schema is not enabled"
                if flag == "l3-cache-schema"
                else "Intel RDT/MBA: memory bandwidth schema is not enabled"
            )
    return request


# -- checks -----------------------------------------------------------------------------------


def normalize(resources: dict[str, Any]) -> dict[str, Any]:
    """Drop the zeros that mean "unchanged" (before the schema sees them: runc accepts a
    ``blockIO.weight`` of 0, the schema's range is 10-1000), and apply runc's rule that an
    unlimited memory without a swap value means unlimited swap too."""
    out = dict(resources)
    for section, keys in _ZERO_IS_UNSET.items():
        value = out.get(section)
        if isinstance(value, dict):
            if section == "pids" and value.get("limit") == 0:
                out.pop(section)  # nothing to change (and limit is required by the schema)
            else:
                out[section] = {k: v for k, v in value.items() if not (k in keys and v == 0)}
    memory = out.get("memory")
    if isinstance(memory, dict) and memory.get("limit") == -1 and "swap" not in memory:
        out["memory"] = {**memory, "swap": -1}
    cpu = out.get("cpu")
    if isinstance(cpu, dict):
        out["cpu"] = {k: v for k, v in cpu.items() if not (k in ("cpus", "mems") and v == "")}
    return out


def schema_problems(request: Request, resources: dict[str, Any]) -> list[str]:
    """Every violation of the config schema's ``Resources`` definition."""
    from runtime.spec import load_schema
    from runtime.spec.fastcheck import FastValidator

    config_schema = load_schema("config")
    schema = {"$defs": config_schema["$defs"], "$ref": "#/$defs/Resources"}
    if FastValidator(schema).is_valid(resources):
        return []
    from runtime.spec.document import Document, format_path
    from runtime.spec.report import schema_problems as report

    found = report(Document(resources, request.source), schema)
    lines = []
    for path, message in found:
        where = request.flag_of.get(path)
        lines.append(f"{where or format_path(path)}: {message}")
    return lines


def merged_problems(resources: dict[str, Any]) -> list[str]:
    """Checks across old and new values (what the schema cannot see)."""
    memory = resources.get("memory") or {}
    limit, swap = memory.get("limit"), memory.get("swap")
    problems = []
    if isinstance(limit, int) and isinstance(swap, int) and limit > 0 and 0 < swap < limit:
        problems.append(
            f"memory.swap: memory+swap limit {swap} must not be below the memory limit {limit}"
        )
    return problems


# -- merge ------------------------------------------------------------------------------------


def merge(current: dict[str, Any], update: dict[str, Any], at: Path = ()) -> dict[str, Any]:
    """``update`` laid over ``current``: objects key by key, lists entry by entry."""
    out = dict(current)
    for key, value in update.items():
        path = (*at, key)
        old = out.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            out[key] = merge(old, value, path)
        elif isinstance(value, list) and isinstance(old, list) and path in _LIST_KEYS:
            out[key] = _merge_list(old, value, _LIST_KEYS[path])
        else:
            out[key] = value
    return out


def _merge_list(old: list[Any], new: list[Any], keys: tuple[str, ...]) -> list[Any]:
    def ident(entry: Any) -> tuple[object, ...]:
        return tuple(entry.get(k) for k in keys) if isinstance(entry, dict) else (id(entry),)

    replaced = {ident(entry): entry for entry in new}
    out = [replaced.pop(ident(entry), entry) for entry in old]
    out += [entry for entry in new if ident(entry) in replaced]
    return out


# -- the verb ---------------------------------------------------------------------------------


def update(
    ctx: Context, container_id: str, options: dict[str, Any], stdin: BinaryIO | None = None
) -> None:
    from runtime import log

    container = Container.load(ctx.store, container_id)
    request = read_request(options, stdin)
    resources = normalize(request.resources)
    problems = request.problems + (schema_problems(request, resources) if resources else [])
    if problems:
        raise SpecError(request.source, problems)
    for warning in request.warnings:
        log.warning(warning)
    if "devices" in resources:
        log.warning("update does not change device rules: linux.resources.devices ignored")
        resources.pop("devices")
    st.require("update", container.status(), container_id)
    manager = container.cgroup()
    if manager is None:
        raise CgroupError(f"cannot update container {container_id}: it has no cgroup")
    with _Lock(container.dir):
        config = ctx.store.read_config(container_id)
        linux = config.setdefault("linux", {})
        stored = {k: v for k, v in (linux.get("resources") or {}).items() if k != "devices"}
        merged = merge(stored, resources)
        problems = merged_problems(merged)
        if problems:
            raise SpecError(request.source, problems)
        manager.apply(merged)
        devices = (linux.get("resources") or {}).get("devices")
        linux["resources"] = {**merged, "devices": devices} if devices is not None else merged
        ctx.store.write_config(container_id, config)


class _Lock:
    """flock on the state directory: two updates at once must not lose each other's values."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> _Lock:
        import fcntl

        self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *_: object) -> None:
        os.close(self.fd)  # closing releases the lock
