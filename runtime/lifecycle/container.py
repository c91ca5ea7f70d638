"""A container as recorded in its state directory, with its status derived live.

Status is never trusted from the file: it is computed from the init pid and its start time
(so a reused pid reads as stopped), the exec fifo (created until start removes it), and the
freezer (paused).
"""

from __future__ import annotations

import os

from runtime.lifecycle import status as st
from runtime.lifecycle.store import EXEC_FIFO, Store
from runtime.linux.procfs import is_alive

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from runtime.cgroups.base import CgroupManager

OCI_VERSION = "1.2.0"


class Context:
    """The global flags every verb sees."""

    __slots__ = ("debug", "log_format", "log_path", "root", "systemd_cgroup")

    def __init__(
        self,
        root: str = "/run/pyrun",
        log_path: str | None = None,
        log_format: str = "text",
        debug: bool = False,
        systemd_cgroup: bool = False,
    ) -> None:
        self.root = root
        self.log_path = log_path
        self.log_format = log_format
        self.debug = debug
        self.systemd_cgroup = systemd_cgroup

    @property
    def store(self) -> Store:
        return Store(self.root)


class Container:
    def __init__(self, store: Store, state: dict[str, Any]) -> None:
        self.store = store
        self.state = state
        self.id: str = state["id"]
        self.dir = store.dir_of(self.id)
        self._cgroup: CgroupManager | None = None

    @classmethod
    def load(cls, store: Store, container_id: str) -> Container:
        return cls(store, store.read_state(container_id))

    @property
    def pid(self) -> int:
        return int(self.state.get("pid") or 0)

    @property
    def bundle(self) -> str:
        return str(self.state.get("bundle", ""))

    def has_hooks(self, kind: str) -> bool:
        """False only when the state says the config has none of ``kind`` (older state files
        do not say: then maybe)."""
        recorded = self.state.get("hooks")
        return recorded is None or kind in recorded

    def cgroup(self) -> CgroupManager | None:
        if self._cgroup is None and self.state.get("cgroup"):
            from runtime.cgroups import manager_from_state

            self._cgroup = manager_from_state(self.state["cgroup"])
        return self._cgroup

    def init_alive(self) -> bool:
        return is_alive(self.pid, self.state.get("pidStartTime"))

    def status(self) -> st.Status:
        if not self.pid:
            creator = self.state.get("creatorPid", 0)
            if is_alive(creator, self.state.get("creatorStartTime")):
                return st.CREATING
            return st.STOPPED
        if not self.init_alive():
            return st.STOPPED
        # Frozen first: a created container can be paused too (runc reports it as paused).
        manager = self.cgroup()
        if manager is not None and manager.is_frozen():
            return st.PAUSED
        if os.path.exists(f"{self.dir}/{EXEC_FIFO}"):
            return st.CREATED
        return st.RUNNING

    def oci_state(self, status: st.Status | None = None) -> dict[str, Any]:
        """The state document of runtime-spec (plus runc's rootfs/created/owner)."""
        current = status or self.status()
        document: dict[str, Any] = {
            "ociVersion": self.state.get("ociVersion", OCI_VERSION),
            "id": self.id,
            "pid": 0 if current is st.STOPPED else self.pid,
            "status": current.name,
            "bundle": self.bundle,
            "rootfs": self.state.get("rootfs", ""),
            "created": self.state.get("created", ""),
        }
        annotations = self.state.get("annotations")
        if annotations:
            document["annotations"] = annotations
        document["owner"] = self.state.get("owner", "")
        return document
