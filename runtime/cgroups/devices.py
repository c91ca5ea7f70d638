"""OCI device rules (``linux.resources.devices``): parsing, and runc's emulator of the v1
devices cgroup.

Semantics (runc's, which are the v1 kernel's): the list starts in allow-list mode (everything
denied); a rule of type ``a`` resets to deny-all (``allow: false``) or allow-all
(``allow: true``) and forgets every earlier rule; any other rule adds an exception to the
current default or removes (part of) one. The emulator computes the final default and the
exceptions, which is what the v2 eBPF program checks, and refuses what v1 would silently
ignore: removing a specific device from a wildcard exception ("punching a hole").
"""

from __future__ import annotations

from runtime.errors import CgroupError

WILDCARD = -1
_MAX_NUMBER = 2**31 - 1  # eBPF compares against a sign-extended 32-bit immediate
_ACCESS = "rwm"


def _canonical_access(access: str) -> str:
    return "".join(c for c in _ACCESS if c in access)


class DeviceRule:
    """One ``linux.resources.devices`` entry, normalised (wildcards are -1)."""

    __slots__ = ("access", "allow", "major", "minor", "type")

    def __init__(self, allow: bool, type: str, major: int, minor: int, access: str) -> None:
        self.allow = allow
        self.type = type
        self.major = major
        self.minor = minor
        self.access = access

    def cgroup_string(self) -> str:
        """The line v1's devices.allow / devices.deny take, e.g. ``c 1:3 rwm``."""
        major = "*" if self.major == WILDCARD else str(self.major)
        minor = "*" if self.minor == WILDCARD else str(self.minor)
        return f"{self.type} {major}:{minor} {self.access}"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DeviceRule):
            return NotImplemented
        return (self.allow, self.type, self.major, self.minor, self.access) == (
            other.allow,
            other.type,
            other.major,
            other.minor,
            other.access,
        )

    def __hash__(self) -> int:
        return hash((self.allow, self.type, self.major, self.minor, self.access))

    def __repr__(self) -> str:
        return f"DeviceRule({'allow' if self.allow else 'deny'} {self.cgroup_string()})"


def _number(entry: dict[str, object], key: str, where: str) -> int:
    value = entry.get(key)
    if value is None or value == WILDCARD:
        return WILDCARD
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_NUMBER:
        raise CgroupError(f"{where}.{key}: must be an integer from 0 to {_MAX_NUMBER}")
    return value


def parse_rules(raw: object) -> list[DeviceRule]:
    if not isinstance(raw, list):
        raise CgroupError("linux.resources.devices: must be a list")
    rules = []
    for index, entry in enumerate(raw):
        where = f"linux.resources.devices[{index}]"
        if not isinstance(entry, dict):
            raise CgroupError(f"{where}: must be an object")
        allow = entry.get("allow")
        if not isinstance(allow, bool):
            raise CgroupError(f"{where}.allow: must be true or false")
        kind = entry.get("type") or "a"
        if kind not in ("a", "b", "c"):
            raise CgroupError(f"{where}.type: must be 'a', 'b' or 'c', not {kind!r}")
        access = entry.get("access") or _ACCESS
        if not isinstance(access, str) or not access or set(access) - set(_ACCESS):
            raise CgroupError(f"{where}.access: must be letters from 'rwm', not {access!r}")
        rules.append(
            DeviceRule(
                allow,
                str(kind),
                _number(entry, "major", where),
                _number(entry, "minor", where),
                _canonical_access(access),
            )
        )
    return rules


Meta = tuple[str, int, int]  # (type, major, minor)


class Emulator:
    """The state of a v1 devices cgroup after a sequence of rules (runc's ``devices.Emulator``)."""

    __slots__ = ("default_allow", "exceptions")

    def __init__(self) -> None:
        self.default_allow = False  # runc: a rule list starts in allow-list (deny-all) mode
        self.exceptions: dict[Meta, str] = {}

    def apply(self, rule: DeviceRule) -> None:
        if rule.type == "a":
            self.default_allow = rule.allow
            self.exceptions = {}
        elif rule.allow == self.default_allow:
            self._remove(rule)
        else:
            meta = (rule.type, rule.major, rule.minor)
            merged = self.exceptions.get(meta, "") + rule.access
            self.exceptions[meta] = _canonical_access(merged)

    def _remove(self, rule: DeviceRule) -> None:
        meta = (rule.type, rule.major, rule.minor)
        for partial in (
            (rule.type, WILDCARD, rule.minor),
            (rule.type, rule.major, WILDCARD),
            (rule.type, WILDCARD, WILDCARD),
        ):
            if partial == meta:
                continue
            overlap = set(self.exceptions.get(partial, "")) & set(rule.access)
            if overlap:
                held = DeviceRule(not rule.allow, *partial, self.exceptions[partial])
                raise CgroupError(
                    f"linux.resources.devices: rule {rule!r} is not supported by the devices "
                    f"cgroup: it cannot punch a hole in the wildcard rule {held!r}"
                )
        left = _canonical_access(
            "".join(c for c in self.exceptions.get(meta, "") if c not in rule.access)
        )
        if left:
            self.exceptions[meta] = left
        else:
            self.exceptions.pop(meta, None)

    def rules(self) -> list[DeviceRule]:
        """The exceptions, each acting against the default, sorted like runc's."""
        ordered = sorted(
            self.exceptions.items(), key=lambda item: (item[0][1], item[0][2], item[0][0])
        )
        return [DeviceRule(not self.default_allow, *meta, access) for meta, access in ordered]


def emulate(rules: list[DeviceRule]) -> Emulator:
    emulator = Emulator()
    for rule in rules:
        emulator.apply(rule)
    return emulator
