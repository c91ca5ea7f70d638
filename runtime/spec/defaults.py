"""Fill in what the spec leaves optional and pyrun relies on, so later code never guesses."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from runtime.spec.types import Config

# The device nodes every container gets (runtime-spec config-linux.md "Default Devices").
DEFAULT_DEVICES: list[dict[str, Any]] = [
    {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666},
    {"path": "/dev/zero", "type": "c", "major": 1, "minor": 5, "fileMode": 0o666},
    {"path": "/dev/full", "type": "c", "major": 1, "minor": 7, "fileMode": 0o666},
    {"path": "/dev/random", "type": "c", "major": 1, "minor": 8, "fileMode": 0o666},
    {"path": "/dev/urandom", "type": "c", "major": 1, "minor": 9, "fileMode": 0o666},
    {"path": "/dev/tty", "type": "c", "major": 5, "minor": 0, "fileMode": 0o666},
]

# Device cgroup rules runc always adds after the config's own (libcontainer/specconv
# AllowedDevices): mknod of anything, and use of the default nodes, ptys and tun.
ALWAYS_ALLOWED_DEVICE_RULES: list[dict[str, Any]] = [
    {"allow": True, "type": "c", "access": "m"},
    {"allow": True, "type": "b", "access": "m"},
    {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 8, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 7, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 0, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "rwm"},
    {"allow": True, "type": "c", "major": 1, "minor": 9, "access": "rwm"},
    {"allow": True, "type": "c", "major": 136, "access": "rwm"},
    {"allow": True, "type": "c", "major": 5, "minor": 2, "access": "rwm"},
    {"allow": True, "type": "c", "major": 10, "minor": 200, "access": "rwm"},
]


def apply_defaults(config: Any) -> Config:
    """Mutates and returns ``config`` (a validated document)."""
    process = config.get("process")
    if process is not None:
        user = process.setdefault("user", {})
        user.setdefault("uid", 0)
        user.setdefault("gid", 0)
        process.setdefault("env", [])
        process.setdefault("cwd", "/")
        process.setdefault("terminal", False)
    root = config.setdefault("root", {})
    root.setdefault("readonly", False)
    config.setdefault("mounts", [])
    config.setdefault("annotations", {})
    linux = config.setdefault("linux", {})
    linux.setdefault("namespaces", [])
    linux.setdefault("maskedPaths", [])
    linux.setdefault("readonlyPaths", [])
    linux.setdefault("devices", [])
    return config  # type: ignore[no-any-return]


def device_cgroup_rules(config: Config) -> list[dict[str, Any]]:
    """The device rules the cgroup gets: the config's, then runc's always-allowed set, then an
    allow rule for each device the config creates (as runc does)."""
    linux = config.get("linux", {})
    rules: list[dict[str, Any]] = [
        dict(rule) for rule in linux.get("resources", {}).get("devices", [])
    ]
    rules += ALWAYS_ALLOWED_DEVICE_RULES
    for device in linux.get("devices", []):
        kind = device.get("type", "c")
        if kind == "p":
            continue
        rules.append(
            {
                "allow": True,
                "type": "c" if kind == "u" else kind,
                "major": device.get("major", 0),
                "minor": device.get("minor", 0),
                "access": "rwm",
            }
        )
    return rules
