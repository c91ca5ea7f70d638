"""The container side of create: the bootstrap child (C1) and the container's init (C2).

Both are forked from ``pyrun create`` and never return into the CLI: they end in ``os._exit``
or ``execve``. The protocol with the parent is in ``channel.py``. Nothing here raises past its
entry point: every failure becomes a ``Failed`` message with runc's wording.
"""

from __future__ import annotations

import _signal
import os

from runtime.errors import ContainerInitError, PyrunError
from runtime.lifecycle.channel import Failed, Pid, Ready
from runtime.lifecycle.store import EXEC_FIFO
from runtime.trace import mark

TYPE_CHECKING = False
if TYPE_CHECKING:
    from runtime.cgroups.base import CgroupManager
    from runtime.lifecycle.channel import Channel
    from runtime.linux.namespaces import NamespacePlan
    from runtime.linux.rootfs import CgroupMount
    from runtime.linux.syscalls import Syscalls
    from runtime.spec.types import Config

_SIG_DFL = 0


class InitPlan:
    """Everything the children need, handed over by fork (no serialisation)."""

    __slots__ = (
        "bundle",
        "cgroup",
        "cgroup_mounts",
        "config",
        "namespaces",
        "no_pivot",
        "preserve_fds",
        "rootfs",
        "state_dir_fd",
        "sys",
    )

    def __init__(
        self,
        sys: Syscalls,
        config: Config,
        rootfs: str,
        bundle: str,
        namespaces: NamespacePlan,
        cgroup: CgroupManager | None,
        cgroup_mounts: list[CgroupMount],
        state_dir_fd: int,
        no_pivot: bool = False,
        preserve_fds: int = 0,
    ) -> None:
        self.sys = sys
        self.config = config
        self.rootfs = rootfs
        self.bundle = bundle
        self.namespaces = namespaces
        self.cgroup = cgroup
        self.cgroup_mounts = cgroup_mounts
        self.state_dir_fd = state_dir_fd
        self.no_pivot = no_pivot
        self.preserve_fds = preserve_fds


def _describe(err: BaseException) -> str:
    if isinstance(err, PyrunError):
        return err.message
    if isinstance(err, OSError):
        return f"{(err.strerror or str(err)).lower()}: {err.filename or ''}".rstrip(": ")
    return f"{type(err).__name__}: {err}"


def bootstrap(plan: InitPlan, channel: Channel) -> None:
    """C1: enter the cgroup and namespaces, then fork init into them. Never returns."""
    code = 1
    try:
        from runtime.linux.namespaces import join_all

        # The cgroup first: a new cgroup namespace is rooted where its creator stands.
        mark("C1", "forked")
        if plan.cgroup is not None:
            plan.cgroup.join(os.getpid())
        mark("C1", "joined cgroup")
        join_all(plan.sys, plan.namespaces.joins)
        if plan.namespaces.new_flags:
            plan.sys.unshare(plan.namespaces.new_flags)
        mark("C1", "unshared")
        init_pid = os.fork()
        if init_pid == 0:
            container_init(plan, channel)
        channel.send(Pid(init_pid))
        code = 0
    except BaseException as err:
        try:
            channel.send(Failed(_describe(err)))
        finally:
            os._exit(1)
    os._exit(code)


def container_init(plan: InitPlan, channel: Channel) -> None:
    """C2: set the container up, report Ready, wait for start, exec. Never returns."""
    try:
        exec_path, args, env = _setup(plan)
        channel.send(Ready())
        channel.close()
    except BaseException as err:
        try:
            channel.send(Failed(_describe(err)))
        finally:
            os._exit(1)
    _wait_for_start_and_exec(plan, exec_path, args, env)


def _setup(plan: InitPlan) -> tuple[str, list[str], dict[str, str]]:
    # Every module init needs is imported here, first: after pivot_root the host's Python
    # library is out of reach, and a lazy import there would fail inside the container.
    from runtime.linux.capabilities import CapabilityPlan
    from runtime.linux.process import (
        apply_rlimits,
        build_env,
        find_executable,
        home_of,
        set_oom_score_adj,
        switch_user,
    )
    from runtime.linux.rootfs import Rootfs
    from runtime.linux.syscalls import PR_SET_KEEPCAPS, PR_SET_NO_NEW_PRIVS
    from runtime.linux.system import loopback_up, set_names, write_sysctls

    sys = plan.sys
    config = plan.config
    process = config["process"]
    mark("C2", "forked, imports done")
    _close_inherited_fds(plan.preserve_fds)
    if plan.namespaces.has_new("network"):
        loopback_up()
    rootfs = Rootfs(
        sys,
        config,
        plan.rootfs,
        plan.bundle,
        cgroup_mounts=plan.cgroup_mounts,
        cgroupns=plan.namespaces.has("cgroup"),
        userns=plan.namespaces.has("user"),
    )
    rootfs.prepare()
    mark("C2", "mounts done")
    set_names(sys, config.get("hostname"), config.get("domainname"))
    rootfs.pivot(plan.no_pivot)
    write_sysctls(config.get("linux", {}).get("sysctl", {}))
    rootfs.finalize()
    mark("C2", "pivoted, finalized")
    if "oomScoreAdj" in process:
        set_oom_score_adj(process["oomScoreAdj"])
    apply_rlimits(process.get("rlimits", []))

    caps = CapabilityPlan(process.get("capabilities"))
    user = process.get("user", {})
    caps.drop_bounding(sys)
    sys.prctl(PR_SET_KEEPCAPS, 1)
    switch_user(sys, user)
    _chdir(process.get("cwd", "/"))
    sys.prctl(PR_SET_KEEPCAPS, 0)
    caps.apply(sys)
    if process.get("noNewPrivileges"):
        sys.prctl(PR_SET_NO_NEW_PRIVS, 1)
    if "umask" in user:
        os.umask(user["umask"])
    env = build_env(process, home_of(user.get("uid", 0)))
    args = process["args"]
    exec_path = find_executable(args[0], env)
    _reset_signals()
    mark("C2", "ready")
    return exec_path, args, env


def _chdir(cwd: str) -> None:
    try:
        os.chdir(cwd)
    except OSError as err:
        reason = (err.strerror or "failed").lower()
        raise ContainerInitError(
            f"chdir to cwd ({cwd!r}) set in config.json failed: {reason}"
        ) from None


def _close_inherited_fds(preserve: int) -> None:
    """Only stdio and --preserve-fds reach the container; every other inherited fd is marked
    close-on-exec (pyrun's own fds already are)."""
    keep = 3 + preserve
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd >= keep:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass  # the directory fd of the listing itself, already closed


def _reset_signals() -> None:
    """Python ignores SIGPIPE and SIGXFSZ; ignored signals survive exec, so restore them."""
    for number in range(1, _signal.NSIG):
        try:
            if _signal.getsignal(number) == _signal.SIG_IGN:
                _signal.signal(number, _SIG_DFL)
        except (OSError, ValueError):
            continue


def _wait_for_start_and_exec(
    plan: InitPlan, exec_path: str, args: list[str], env: dict[str, str]
) -> None:
    try:
        # Blocks until `pyrun start` opens the fifo for reading. The state directory is reached
        # through a descriptor opened before pivot_root, so no host path is visible here.
        fd = os.open(EXEC_FIFO, os.O_WRONLY | os.O_CLOEXEC, dir_fd=plan.state_dir_fd)
        os.write(fd, b"0")
        os.close(fd)
        os.close(plan.state_dir_fd)
        os.execve(exec_path, args, env)
    except OSError as err:
        message = f"pyrun: exec {args[0]!r} failed: {(err.strerror or 'error').lower()}\n"
        try:
            os.write(2, message.encode())
        finally:
            os._exit(127)
