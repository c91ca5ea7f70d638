"""The parent's side of making a container's processes (protocol and diagram: channel.py)."""

from __future__ import annotations

import os

from runtime.errors import ContainerInitError, PyrunError
from runtime.lifecycle.channel import (
    Failed,
    Hooks,
    Pid,
    Plan,
    Proceed,
    Ready,
    UserNamespace,
    channel_pair,
)
from runtime.trace import mark

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from runtime.cgroups.base import CgroupManager
    from runtime.cgroups.warmup import Warmup


class HeadStart:
    """What create/run start before anything else, to overlap the rest: the cgroup migration
    warm-up (cgroups/warmup.py) and the bootstrap child. ``finish`` reaps whatever is left."""

    __slots__ = ("boot", "early")

    def __init__(self, warmup: Warmup | None = None) -> None:
        if warmup is None:
            from runtime.cgroups.warmup import Warmup

            warmup = Warmup.start()
        self.early = warmup
        self.boot = Bootstrap()

    def finish(self) -> None:
        self.boot.abort()
        if self.early is not None:
            self.early.wait()


class Bootstrap:
    """The bootstrap child, forked before the config is read so that it imports the
    container-side modules in parallel with validation. ``abort`` if no plan will come."""

    def __init__(self) -> None:
        self.channel, child = channel_pair()
        self.pid = os.fork()
        if self.pid == 0:
            self.channel.close()
            from runtime.lifecycle.init import bootstrap

            bootstrap(child)  # never returns
        child.close()
        self.plan: dict[str, Any] = {}
        mark("P", "bootstrap forked")

    def abort(self) -> None:
        """Close our end (the child exits on EOF) and reap the child. Idempotent."""
        self.channel.close()
        self._reap()

    def _reap(self) -> None:
        if self.pid:
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
            self.pid = 0

    def _map_ids(self, plan: dict[str, Any]) -> None:
        """The bootstrap child made a user namespace: write its maps, let it go on."""
        from runtime.linux.userns import write_id_maps

        message = self.channel.receive()
        if isinstance(message, Failed):
            raise ContainerInitError(f"unable to start container process: {message.message}")
        if not isinstance(message, UserNamespace):
            raise ContainerInitError(f"protocol error: expected UserNamespace, got {message!r}")
        linux = plan["config"]["linux"]
        write_id_maps(self.pid, linux.get("uidMappings", []), linux.get("gidMappings", []))
        self._proceed()

    def _proceed(self) -> None:
        """Send Proceed; a child that already failed has closed the pipe, and its Failed
        message (read next) is the error to show, not our EPIPE."""
        try:
            self.channel.send(Proceed())
        except BrokenPipeError:
            pass

    def _raise_reported_failure(self) -> None:
        message = self.channel.receive()
        while isinstance(message, Pid | Ready):
            message = self.channel.receive()
        if isinstance(message, Failed):
            raise ContainerInitError(f"unable to start container process: {message.message}")

    def send_plan(self, plan: dict[str, Any]) -> None:
        self.plan = plan
        self.channel.send(Plan(plan))

    def build(
        self,
        manager: CgroupManager | None,
        make_cgroup: Callable[[], None],
        apply_resources: Callable[[], None],
        joined: Callable[[], None] = lambda: None,
        runtime_hooks: Callable[[int], None] = lambda pid: None,
        while_waiting: Callable[[], None] = lambda: None,
    ) -> int:
        """Send the plan; while the children set up, make the cgroup directories (Proceed 1),
        apply resources and move init into the cgroup (Proceed 2); return init's pid once it
        is Ready. Resources go first: init must never be inside the cgroup while its device
        rules are half written (between "deny all" and "allow mknod", init's mknod fails)."""
        init_pid = 0
        plan = self.plan
        try:
            if _new_user_namespace(plan):
                self._map_ids(plan)
            make_cgroup()
            self._proceed()  # 1: the cgroup directories exist
            mark("P", "cgroup made")
            apply_resources()
            mark("P", "resources applied")
            message = self.channel.receive()
            if isinstance(message, Pid):
                init_pid = message.pid
                self._reap()
                if manager is not None:
                    try:
                        manager.join(init_pid)
                    except PyrunError:
                        # Init may have died already: its own report says why.
                        self._raise_reported_failure()
                        raise
                mark("P", "init joined cgroup")
                joined()
                self._proceed()  # 2: init is in its cgroup
                while_waiting()
                message = self.channel.receive()
            if isinstance(message, Hooks):
                # Init stopped before pivot_root: prestart and createRuntime run now, here in
                # the runtime namespace; init goes on when they succeeded.
                runtime_hooks(init_pid)
                self._proceed()  # 3: the runtime hooks ran
                message = self.channel.receive()
            if isinstance(message, Ready):
                return init_pid
            if isinstance(message, Failed):
                raise ContainerInitError(f"unable to start container process: {message.message}")
            raise ContainerInitError(
                "unable to start container process: init exited without a word"
            )
        except BaseException:
            if init_pid:
                _kill_and_reap(init_pid)
            raise
        finally:
            # Closing our end is also the abort signal: a child waiting to proceed sees EOF.
            self.channel.close()
            if self.pid:
                _kill_and_reap(self.pid)
                self.pid = 0


def _new_user_namespace(plan: dict[str, Any]) -> bool:
    namespaces = plan["config"]["linux"].get("namespaces", [])
    return any(ns.get("type") == "user" and not ns.get("path") for ns in namespaces)


def _kill_and_reap(pid: int) -> None:
    try:
        os.kill(pid, 9)
    except ProcessLookupError:
        return
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass
