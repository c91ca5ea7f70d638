"""``pyrun pause ID`` and ``pyrun resume ID``: the cgroup freezer (v1 freezer.state, v2
cgroup.freeze) through the container's cgroup manager.

The paused status is not recorded anywhere: ``Container.status()`` reads the freezer, so a
container frozen or thawed behind pyrun's back reads as it really is (as with runc).
"""

from __future__ import annotations

from runtime.errors import CgroupError
from runtime.lifecycle import status as st
from runtime.lifecycle.container import Container, Context

TYPE_CHECKING = False
if TYPE_CHECKING:
    from runtime.cgroups.base import CgroupManager


def pause(ctx: Context, container_id: str) -> None:
    container = Container.load(ctx.store, container_id)
    st.require("pause", container.status(), container_id)
    _manager(container, "pause").freeze()


def resume(ctx: Context, container_id: str) -> None:
    container = Container.load(ctx.store, container_id)
    st.require("resume", container.status(), container_id)
    _manager(container, "resume").thaw()


def _manager(container: Container, verb: str) -> CgroupManager:
    manager = container.cgroup()
    if manager is None:
        raise CgroupError(f"cannot {verb} container {container.id}: it has no cgroup")
    return manager
