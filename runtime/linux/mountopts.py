"""OCI mount options -> mount(2) flags, propagation, data string and recursive attributes."""

from __future__ import annotations

from runtime.spec.tables import (
    MOUNT_EXTENSIONS,
    MOUNT_FLAGS,
    MS_BIND,
    PROPAGATION_FLAGS,
    RECURSIVE_MOUNT_ATTRS,
)


class MountOptions:
    """What one mount's ``options`` list means to the kernel."""

    __slots__ = ("attr_clear", "attr_set", "data", "flags", "propagation")

    def __init__(self, options: list[str] | None, mount_type: str | None = None) -> None:
        self.flags = 0
        self.propagation: list[int] = []
        self.attr_set = 0
        self.attr_clear = 0
        data: list[str] = []
        for option in options or []:
            known = MOUNT_FLAGS.get(option)
            if known is not None:
                clear, flag = known
                self.flags = (self.flags & ~flag) if clear else (self.flags | flag)
            elif option in PROPAGATION_FLAGS:
                self.propagation.append(PROPAGATION_FLAGS[option])
            elif option in RECURSIVE_MOUNT_ATTRS:
                set_bits, clear_bits = RECURSIVE_MOUNT_ATTRS[option]
                self.attr_set |= set_bits
                self.attr_clear |= clear_bits
            elif option in MOUNT_EXTENSIONS:
                continue
            else:
                data.append(option)
        if mount_type == "bind":
            self.flags |= MS_BIND
        self.data = ",".join(data) if data else None

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & MS_BIND)
