"""``pyrun spec``: a starting config, like ``runc spec`` but with Docker's capability set and
Docker's default seccomp profile (seccomp_default.json: moby's profile evaluated for those
capabilities, on this machine's architecture)."""

from __future__ import annotations

import os

from runtime.errors import PyrunError
from runtime.spec.tables import DOCKER_DEFAULT_CAPABILITIES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

MASKED_PATHS = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/sys/firmware",
    "/proc/scsi",
]
READONLY_PATHS = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]


def default_config(rootless: bool = False) -> dict[str, Any]:
    caps = list(DOCKER_DEFAULT_CAPABILITIES)
    config: dict[str, Any] = {
        "ociVersion": "1.2.0",
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "TERM=xterm",
            ],
            "cwd": "/",
            "capabilities": {
                "bounding": caps,
                "effective": list(caps),
                "permitted": list(caps),
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "pyrun",
        "mounts": _mounts(rootless),
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "maskedPaths": list(MASKED_PATHS),
            "readonlyPaths": list(READONLY_PATHS),
        },
    }
    linux = config["linux"]
    linux["seccomp"] = default_seccomp()
    if rootless:
        uid, gid = os.geteuid(), os.getegid()
        linux["uidMappings"] = [{"containerID": 0, "hostID": uid, "size": 1}]
        linux["gidMappings"] = [{"containerID": 0, "hostID": gid, "size": 1}]
        linux["namespaces"] = [ns for ns in linux["namespaces"] if ns["type"] != "network"]
        linux["namespaces"].append({"type": "user"})
    else:
        linux["resources"] = {"devices": [{"allow": False, "access": "rwm"}]}
    return config


def default_seccomp(machine: str | None = None) -> dict[str, Any]:
    """Docker's default profile for Docker's default capabilities on ``machine`` (x86_64 or
    aarch64, this machine's by default): its architectures, the common rules, then the
    architecture's own ones."""
    from runtime import jsonfast

    with open(__file__.rpartition("/")[0] + "/seccomp_default.json", "rb") as handle:
        data = jsonfast.loads(handle.read())
    machine = machine or os.uname().machine
    # Another machine: its native architecture only (libseccomp's default), the common rules.
    return {
        "defaultAction": data["defaultAction"],
        "defaultErrnoRet": data["defaultErrnoRet"],
        "architectures": data["architectures"].get(machine, []),
        "syscalls": data["syscalls"] + data["archSyscalls"].get(machine, []),
    }


def _mounts(rootless: bool) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]
            + ([] if rootless else ["gid=5"]),
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": ["nosuid", "noexec", "nodev"],
        },
    ]
    if rootless:
        mounts.append(
            {
                "destination": "/sys",
                "type": "none",
                "source": "/sys",
                "options": ["rbind", "nosuid", "noexec", "nodev", "ro"],
            }
        )
    else:
        mounts.append(
            {
                "destination": "/sys",
                "type": "sysfs",
                "source": "sysfs",
                "options": ["nosuid", "noexec", "nodev", "ro"],
            }
        )
        mounts.append(
            {
                "destination": "/sys/fs/cgroup",
                "type": "cgroup",
                "source": "cgroup",
                "options": ["nosuid", "noexec", "nodev", "relatime", "ro"],
            }
        )
    return mounts


def write_spec(bundle: str, rootless: bool = False, fmt: str = "json") -> str:
    """Write config.json (or config.yaml) into ``bundle``; refuse to overwrite, like runc."""
    if fmt not in ("json", "yaml"):
        raise PyrunError(f"--format must be json or yaml, not {fmt!r}")
    if not os.path.isdir(bundle):
        raise PyrunError(f"bundle {bundle}: not a directory")
    for name in ("config.json", "config.yaml", "config.yml"):
        if os.path.exists(f"{bundle}/{name}"):
            raise PyrunError(f"File {bundle}/{name} exists. Remove it first")
    config = default_config(rootless)
    path = f"{bundle}/config.{fmt}"
    if fmt == "json":
        import json

        text = json.dumps(config, indent="\t") + "\n"
    else:
        import yaml

        text = yaml.safe_dump(config, sort_keys=False, default_flow_style=False)
    with open(path, "x") as handle:
        handle.write(text)
    return path
