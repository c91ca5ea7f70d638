"""``pyrun features``: what this runtime implements, as runtime-spec's Features document
(features.md, features-linux.md; schema/features.schema.json), printed like runc's (indented
by four spaces).

Every value says what pyrun itself does, not what the host has:

* hooks: the kinds ``runtime.lifecycle.hooks`` runs; mountOptions: the options
  ``runtime.linux.mountopts`` turns into flags, propagation or mount_setattr attributes
  (``idmap``, ``ridmap`` and ``tmpcopyup`` are accepted but not implemented, so they are not
  listed, and ``mountExtensions.idmap`` is disabled);
* namespaces and capabilities: the tables in ``runtime.spec.tables``;
* cgroup: v1, v2 (and hybrid) through cgroupfs, rdma limits; no systemd manager (with
  ``--systemd-cgroup`` only the path takes systemd's form);
* seccomp: enabled when ``runtime.linux.seccomp`` (which compiles ``linux.seccomp`` with the
  host's libseccomp) is part of this build; actions, operators and flags are its tables, less
  ``SCMP_ACT_NOTIFY``, which the spec layer refuses (no seccomp agent hand-off); without it, the
  names the config schema accepts and ``enabled: false``. Architectures are narrowed to those the
  host's libseccomp knows when it is installed (asked through ctypes; its version goes into the
  annotations);
* AppArmor, SELinux and Intel RDT: not implemented.
"""

from __future__ import annotations

from runtime import jsonfast

TYPE_CHECKING = False
if TYPE_CHECKING:
    from types import ModuleType
    from typing import Any

OCI_VERSION_MIN = "1.0.0"
OCI_VERSION_MAX = "1.2.0"
UNSUPPORTED_SECCOMP_ACTIONS = ("SCMP_ACT_NOTIFY",)  # refused by runtime/spec/semantic.py


def features_output() -> str:
    return jsonfast.dumps(features(), indent=4) + "\n"


def features() -> dict[str, Any]:
    from runtime.spec.tables import (
        CAPABILITIES,
        MOUNT_FLAGS,
        NAMESPACES,
        PROPAGATION_FLAGS,
        RECURSIVE_MOUNT_ATTRS,
    )

    annotations = {"org.pyrun.version": _version()}
    seccomp = _seccomp(annotations)
    return {
        "ociVersionMin": OCI_VERSION_MIN,
        "ociVersionMax": OCI_VERSION_MAX,
        "hooks": _hooks(),
        "mountOptions": sorted({*MOUNT_FLAGS, *PROPAGATION_FLAGS, *RECURSIVE_MOUNT_ATTRS}),
        "linux": {
            "namespaces": sorted(NAMESPACES),
            "capabilities": sorted(CAPABILITIES, key=CAPABILITIES.__getitem__),
            "cgroup": {
                "v1": True,
                "v2": True,
                "systemd": False,
                "systemdUser": False,
                "rdma": True,
            },
            "seccomp": seccomp,
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": False}},
        },
        "annotations": annotations,
    }


def _hooks() -> list[str]:
    try:
        from runtime.lifecycle.hooks import KINDS
    except ImportError:  # a build without hook support
        return []
    return list(KINDS)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pyrun")
    except PackageNotFoundError:
        return "unknown"


def _schema_enum(definition: str, *path: str) -> list[str]:
    from runtime.spec import load_schema

    node: Any = load_schema("features")["$defs"][definition]
    for key in path:
        node = node[key]
    return list(node["enum"])


def _seccomp(annotations: dict[str, str]) -> dict[str, Any]:
    implementation = _seccomp_module()
    found: dict[str, Any] = {"enabled": implementation is not None}
    if implementation is not None:
        actions = [a for a in implementation.ACTIONS if a not in UNSUPPORTED_SECCOMP_ACTIONS]
        operators = list(implementation.OPERATORS)
        archs = list(implementation.ARCHITECTURES)
    else:
        actions = _schema_enum("Seccomp", "properties", "actions", "items")
        operators = _schema_enum("Seccomp", "properties", "operators", "items")
        archs = _schema_enum("Seccomp", "properties", "archs", "items")
    library = Libseccomp.load()
    if library is not None:
        annotations["io.github.seccomp.libseccomp.version"] = library.version()
        archs = [arch for arch in archs if library.knows_arch(arch)]
    found.update(actions=sorted(actions), operators=sorted(operators), archs=sorted(archs))
    if implementation is not None:
        found["knownFlags"] = sorted(implementation.FLAGS)
    return found


def _seccomp_module() -> ModuleType | None:
    try:
        from runtime.linux import seccomp
    except ImportError:  # a build without seccomp support
        return None
    return seccomp


class Libseccomp:
    """The few questions features asks the host's libseccomp (never required)."""

    def __init__(self, lib: Any) -> None:
        self.lib = lib

    @classmethod
    def load(cls, name: str = "libseccomp.so.2") -> Libseccomp | None:
        import ctypes

        try:
            lib = ctypes.CDLL(name)
            lib.seccomp_version.restype = ctypes.POINTER(ctypes.c_uint * 3)
            lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
            lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
        except (OSError, AttributeError):
            return None
        return cls(lib)

    def version(self) -> str:
        major, minor, micro = self.lib.seccomp_version().contents
        return f"{major}.{minor}.{micro}"

    def knows_arch(self, name: str) -> bool:
        """``SCMP_ARCH_X86_64`` -> seccomp_arch_resolve_name("x86_64") != 0."""
        token = name.removeprefix("SCMP_ARCH_").lower().encode()
        return bool(self.lib.seccomp_arch_resolve_name(token))
