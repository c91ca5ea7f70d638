"""Checks a JSON Schema cannot express: cross-field rules, name tables, path forms.

Runs after the schema check and must not crash on a document the schema rejected, so every
access checks its type first. Each problem is ``(json path, message)``.
"""

from __future__ import annotations

from runtime.spec.tables import CAPABILITIES, RLIMITS

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from runtime.spec.document import Path

    Problems = list[tuple[Path, str]]

_CAPABILITY_SETS = ("bounding", "effective", "inheritable", "permitted", "ambient")

# sysctl prefix -> namespace that must be private for it (runc libcontainer/configs/validate).
_NAMESPACED_SYSCTLS: tuple[tuple[str, str], ...] = (
    ("net.", "network"),
    ("kernel.msgmax", "ipc"),
    ("kernel.msgmnb", "ipc"),
    ("kernel.msgmni", "ipc"),
    ("kernel.sem", "ipc"),
    ("kernel.shmall", "ipc"),
    ("kernel.shmmax", "ipc"),
    ("kernel.shmmni", "ipc"),
    ("kernel.shm_rmid_forced", "ipc"),
    ("fs.mqueue.", "ipc"),
    ("kernel.hostname", "uts"),
    ("kernel.domainname", "uts"),
)


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _looks_like_cap(name: str) -> bool:
    return name.startswith("CAP_") and name[4:].replace("_", "").isalpha() and name.isupper()


def semantic_problems(config: Any) -> Problems:
    if not isinstance(config, dict):
        return []
    problems: Problems = []
    _check_version(config, problems)
    _check_root(config, problems)
    _check_process(_dict(config.get("process")), problems)
    namespaces = _check_namespaces(_dict(config.get("linux")), problems)
    _check_mounts(_list(config.get("mounts")), problems)
    _check_linux(config, _dict(config.get("linux")), namespaces, problems)
    return problems


def _check_version(config: dict[str, Any], problems: Problems) -> None:
    version = config.get("ociVersion")
    if isinstance(version, str) and version.split(".", 1)[0] != "1":
        problems.append((("ociVersion",), f"unsupported version {version!r}: pyrun runs 1.x"))


def _check_root(config: dict[str, Any], problems: Problems) -> None:
    root = config.get("root")  # its presence is the schema's to require
    if isinstance(root, dict) and root.get("path") == "":
        problems.append((("root", "path"), "must not be empty"))


def _check_process(process: dict[str, Any], problems: Problems) -> None:
    cwd = process.get("cwd")
    if isinstance(cwd, str) and not cwd.startswith("/"):
        problems.append((("process", "cwd"), f"must be an absolute path, not {cwd!r}"))
    for index, entry in enumerate(_list(process.get("env"))):
        if isinstance(entry, str) and (("=" not in entry) or entry.startswith("=")):
            problems.append((("process", "env", index), f"must be KEY=VALUE, not {entry!r}"))
    args = process.get("args")
    if isinstance(args, list) and args and args[0] == "":
        problems.append((("process", "args", 0), "must name the program to run"))
    caps = _dict(process.get("capabilities"))
    for set_name in _CAPABILITY_SETS:
        for index, name in enumerate(_list(caps.get(set_name))):
            # Names not of the CAP_[A-Z_]+ form are already reported by the schema.
            if isinstance(name, str) and name not in CAPABILITIES and _looks_like_cap(name):
                problems.append(
                    (("process", "capabilities", set_name, index), f"unknown capability {name!r}")
                )
    seen: dict[str, int] = {}
    for index, rlimit in enumerate(_list(process.get("rlimits"))):
        if not isinstance(rlimit, dict):
            continue
        kind = rlimit.get("type")
        path: Path = ("process", "rlimits", index)
        if isinstance(kind, str):
            if kind not in RLIMITS:
                problems.append(((*path, "type"), f"unknown rlimit {kind!r}"))
            if kind in seen:
                problems.append(
                    ((*path, "type"), f"duplicate {kind}, first at rlimits[{seen[kind]}]")
                )
            seen.setdefault(kind, index)
        soft, hard = rlimit.get("soft"), rlimit.get("hard")
        if isinstance(soft, int) and isinstance(hard, int) and soft > hard:
            problems.append((path, f"soft limit {soft} is above hard limit {hard}"))


def _check_namespaces(linux: dict[str, Any], problems: Problems) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for index, ns in enumerate(_list(linux.get("namespaces"))):
        if not isinstance(ns, dict) or not isinstance(ns.get("type"), str):
            continue
        kind = ns["type"]
        if kind in found:
            problems.append(
                (("linux", "namespaces", index, "type"), f"duplicate namespace type {kind!r}")
            )
            continue
        found[kind] = ns
        path = ns.get("path")
        if isinstance(path, str) and path and not path.startswith("/"):
            problems.append(
                (("linux", "namespaces", index, "path"), f"must be an absolute path, not {path!r}")
            )
    return found


def _check_mounts(mounts: list[Any], problems: Problems) -> None:
    for index, mount in enumerate(mounts):
        if not isinstance(mount, dict):
            continue
        destination = mount.get("destination")
        if isinstance(destination, str) and not destination.startswith("/"):
            problems.append(
                (
                    ("mounts", index, "destination"),
                    f"must be an absolute path inside the container, not {destination!r}",
                )
            )
        if isinstance(destination, str) and ".." in destination.split("/"):
            problems.append((("mounts", index, "destination"), "must not contain '..'"))


def _check_linux(
    config: dict[str, Any],
    linux: dict[str, Any],
    namespaces: dict[str, dict[str, Any]],
    problems: Problems,
) -> None:
    user_ns = namespaces.get("user")
    creates_user_ns = user_ns is not None and not user_ns.get("path")
    for key in ("uidMappings", "gidMappings"):
        mappings = linux.get(key)
        if creates_user_ns and not mappings:
            problems.append((("linux", key), "is required when a user namespace is created"))
        if mappings and user_ns is None:
            problems.append((("linux", key), "is set but there is no user namespace"))
    if "hostname" in config and config.get("hostname") and "uts" not in namespaces:
        problems.append((("hostname",), "cannot be set without a private uts namespace"))
    if config.get("domainname") and "uts" not in namespaces:
        problems.append((("domainname",), "cannot be set without a private uts namespace"))
    if linux.get("timeOffsets") and "time" not in namespaces:
        problems.append((("linux", "timeOffsets"), "needs a time namespace"))
    _check_sysctl(_dict(linux.get("sysctl")), namespaces, problems)
    _check_cgroups_path(linux.get("cgroupsPath"), problems)
    for key in ("maskedPaths", "readonlyPaths"):
        for index, path in enumerate(_list(linux.get(key))):
            if isinstance(path, str) and not path.startswith("/"):
                problems.append((("linux", key, index), f"must be an absolute path, not {path!r}"))
    for index, device in enumerate(_list(linux.get("devices"))):
        if not isinstance(device, dict):
            continue
        dpath = device.get("path")
        if isinstance(dpath, str) and not dpath.startswith("/"):
            problems.append((("linux", "devices", index, "path"), "must be an absolute path"))
        if device.get("type") in ("c", "b", "u"):
            for field in ("major", "minor"):
                if field not in device:
                    problems.append(
                        (("linux", "devices", index, field), "is required for this device type")
                    )
    _check_resources(_dict(linux.get("resources")), problems)
    _check_seccomp(_dict(linux.get("seccomp")), problems)


def _check_sysctl(
    sysctl: dict[str, Any], namespaces: dict[str, dict[str, Any]], problems: Problems
) -> None:
    for key in sysctl:
        needed = next((ns for prefix, ns in _NAMESPACED_SYSCTLS if key.startswith(prefix)), None)
        if needed is None:
            problems.append(
                (("linux", "sysctl", key), "is not namespaced: a container may not change it")
            )
        elif needed not in namespaces:
            problems.append((("linux", "sysctl", key), f"needs a private {needed} namespace"))


def _check_cgroups_path(value: Any, problems: Problems) -> None:
    if not isinstance(value, str) or value == "":
        return
    where: Path = ("linux", "cgroupsPath")
    if value.count(":") == 2 and not value.startswith("/"):
        slice_name, _prefix, name = value.split(":")
        if not name:
            problems.append((where, "systemd form 'slice:prefix:name' needs a name"))
        if slice_name and not slice_name.endswith(".slice"):
            problems.append((where, f"systemd slice {slice_name!r} must end in '.slice'"))
        return
    parts = value.strip("/").split("/")
    if any(part in ("..", ".") for part in parts):
        problems.append((where, f"must not contain '.' or '..' components: {value!r}"))
    elif any(part == "" for part in parts) and value.strip("/") != "":
        problems.append((where, f"must not contain empty components: {value!r}"))
    elif value.strip("/") == "":
        problems.append((where, "must name a cgroup below the root, not '/'"))


def _check_resources(resources: dict[str, Any], problems: Problems) -> None:
    memory = _dict(resources.get("memory"))
    limit, swap = memory.get("limit"), memory.get("swap")
    if isinstance(limit, int) and isinstance(swap, int) and limit > 0 and 0 < swap < limit:
        problems.append(
            (
                ("linux", "resources", "memory", "swap"),
                f"memory+swap limit {swap} must not be below the memory limit {limit}",
            )
        )
    cpu = _dict(resources.get("cpu"))
    if isinstance(cpu.get("quota"), int) and cpu["quota"] > 0 and cpu.get("period") == 0:
        problems.append((("linux", "resources", "cpu", "period"), "must be set with a quota"))
    for index, rule in enumerate(_list(resources.get("devices"))):
        access = rule.get("access") if isinstance(rule, dict) else None
        if isinstance(access, str) and (set(access) - set("rwm")):
            problems.append(
                (
                    ("linux", "resources", "devices", index, "access"),
                    f"must use only r, w and m, not {access!r}",
                )
            )


# The largest errnoRet of each action that takes one: libseccomp refuses an ERRNO of 4095
# (MAX_ERRNO) and above; TRACE's is the 16-bit message a tracer gets.
_ERRNO_LIMITS = {"SCMP_ACT_ERRNO": 4094, "SCMP_ACT_TRACE": 0xFFFF}


def _check_seccomp(seccomp: dict[str, Any], problems: Problems) -> None:
    """runtime-spec: an errno only with ERRNO/TRACE ("MUST print an error and fail"); a
    syscall has 6 arguments; no empty names. SCMP_ACT_NOTIFY (a listener handed to a seccomp
    agent) is not implemented. Names unknown to the host's libseccomp are a host probe."""
    if not seccomp:
        return
    where: Path = ("linux", "seccomp")
    default = seccomp.get("defaultAction")
    _check_errno(default, seccomp.get("defaultErrnoRet"), (*where, "defaultErrnoRet"), problems)
    if default == "SCMP_ACT_NOTIFY":
        problems.append(((*where, "defaultAction"), "SCMP_ACT_NOTIFY cannot be the default action"))
    flags = _list(seccomp.get("flags"))
    for index, rule in enumerate(_list(seccomp.get("syscalls"))):
        if not isinstance(rule, dict):
            continue
        path: Path = (*where, "syscalls", index)
        action = rule.get("action")
        _check_errno(action, rule.get("errnoRet"), (*path, "errnoRet"), problems)
        if action == "SCMP_ACT_NOTIFY":
            problems.append(
                (
                    (*path, "action"),
                    "SCMP_ACT_NOTIFY is not supported by pyrun (no seccomp agent hand-off)",
                )
            )
        for name_index, name in enumerate(_list(rule.get("names"))):
            if name == "":
                problems.append(((*path, "names", name_index), "must name a syscall, not ''"))
        for arg_index, arg in enumerate(_list(rule.get("args"))):
            position = arg.get("index") if isinstance(arg, dict) else None
            if isinstance(position, int) and position > 5:
                problems.append(
                    (
                        (*path, "args", arg_index, "index"),
                        f"a syscall has 6 arguments (index 0 to 5), not index {position}",
                    )
                )
    if "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" in flags:
        position = flags.index("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV")
        problems.append(
            (
                (*where, "flags", position),
                "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs an SCMP_ACT_NOTIFY rule, "
                "which pyrun does not support",
            )
        )


def _check_errno(action: Any, errno: Any, path: Path, problems: Problems) -> None:
    if not isinstance(errno, int) or isinstance(errno, bool):
        return
    if not isinstance(action, str) or action not in _ERRNO_LIMITS:
        if isinstance(action, str):
            problems.append(
                (path, f"is only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not with {action}")
            )
    elif errno > _ERRNO_LIMITS[action]:
        limit = _ERRNO_LIMITS[action]
        problems.append((path, f"must be from 0 to {limit} with {action}, not {errno}"))
