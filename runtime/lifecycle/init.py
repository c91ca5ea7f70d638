"""The container side of create: the bootstrap child (C1) and the container's init (C2).

Both are forked from ``pyrun create`` and never return into the CLI: they end in ``os._exit``
or ``execve``. The protocol with the parent is in ``channel.py``. Nothing here raises past its
entry point: every failure becomes a ``Failed`` message with runc's wording.
"""

from __future__ import annotations

import os

from runtime.errors import ContainerInitError, PyrunError
from runtime.lifecycle.channel import Failed, Hooks, Pid, Plan, Proceed, Ready, UserNamespace
from runtime.lifecycle.store import EXEC_FIFO
from runtime.trace import mark

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from runtime.lifecycle.channel import Channel
    from runtime.linux.syscalls import Syscalls
    from runtime.spec.types import Config


class InitPlan:
    """What the children build: sent by the parent as one ``Plan`` message."""

    __slots__ = (
        "bundle",
        "cgroup_mounts",
        "config",
        "console",
        "console_socket",
        "container_id",
        "host_pid",
        "namespaces",
        "new_keyring",
        "no_pivot",
        "preserve_fds",
        "rootfs",
        "seccomp",
        "seccomp_cache",
        "state_dir",
        "state_dir_fd",
    )

    def __init__(self, data: dict[str, Any]) -> None:
        from runtime.linux.namespaces import NamespacePlan
        from runtime.linux.rootfs import CgroupMount

        self.config: Config = data["config"]
        self.rootfs: str = data["rootfs"]
        self.bundle: str = data["bundle"]
        self.state_dir: str = data["stateDir"]
        self.state_dir_fd = -1  # opened by the bootstrap child, before any namespace
        self.host_pid = 0  # init's pid as the host sees it (hooks' state), found by init
        self.no_pivot: bool = data["noPivot"]
        self.container_id: str = data["id"]
        self.console_socket: str | None = data.get("consoleSocket")
        self.console: Any = None  # the connected console socket (terminal: true)
        self.seccomp_cache: str | None = data.get("seccompCache")
        self.new_keyring: bool = data["newKeyring"]
        self.preserve_fds: int = data["preserveFds"]
        self.cgroup_mounts = [CgroupMount(*item) for item in data["cgroupMounts"]]
        self.namespaces = NamespacePlan(self.config["linux"]["namespaces"])
        self.seccomp: Callable[[], None] | None = None  # loads the filter right before the exec

    @staticmethod
    def message(
        container_id: str,
        config: Config,
        rootfs: str,
        bundle: str,
        state_dir: str,
        cgroup_mounts: list[tuple[str, str, str, str | None]],
        no_pivot: bool,
        preserve_fds: int,
        new_keyring: bool,
        console_socket: str | None = None,
        seccomp_cache: str | None = None,
    ) -> dict[str, Any]:
        return {
            "seccompCache": seccomp_cache,
            "consoleSocket": console_socket,
            "id": container_id,
            "newKeyring": new_keyring,
            "config": config,
            "rootfs": rootfs,
            "bundle": bundle,
            "stateDir": state_dir,
            "cgroupMounts": cgroup_mounts,
            "noPivot": no_pivot,
            "preserveFds": preserve_fds,
        }


def _describe(err: BaseException) -> str:
    if isinstance(err, PyrunError):
        return err.message
    if isinstance(err, OSError):
        return f"{(err.strerror or str(err)).lower()}: {err.filename or ''}".rstrip(": ")
    return f"{type(err).__name__}: {err}"


def _fail(channel: Channel, err: BaseException) -> None:
    try:
        channel.send(Failed(_describe(err)))
    finally:
        os._exit(1)


def bootstrap(channel: Channel) -> None:
    """C1, forked before the config is read: import, wait for the plan, enter the namespaces
    to join, unshare the new ones, make init. Never returns.

    The cgroup namespace is left to init: it must be made after init has joined its cgroup,
    which the parent does while init sets up (see channel.py).
    """
    try:
        # The point of forking early: these imports (ctypes above all) and the ones init needs
        # run while the parent validates the config. Init is a clone of this process and
        # inherits them; after pivot_root it could not import anything from the host.
        import runtime.lifecycle.become
        import runtime.lifecycle.hooks
        import runtime.linux.capabilities
        import runtime.linux.console
        import runtime.linux.process
        import runtime.linux.rootfs
        import runtime.linux.system
        import runtime.linux.userns  # noqa: F401
        from runtime.linux.namespaces import join_all
        from runtime.linux.syscalls import Syscalls
        from runtime.spec.tables import NAMESPACES

        mark("C1", "imports done")
        message = channel.receive()
        if message is None:
            os._exit(0)  # the parent stopped before sending a plan (invalid config, ...)
        if not isinstance(message, Plan):
            raise ContainerInitError(f"protocol error: expected Plan, got {message!r}")
        plan = InitPlan(message.data)
        sys = Syscalls()
        # Host paths are opened while we are still the host's root: in a user namespace the
        # mapped root may not traverse the caller's directories (containerd's state is 0700).
        # Init inherits both descriptors.
        plan.state_dir_fd = os.open(plan.state_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        if plan.config.get("process", {}).get("terminal"):
            from runtime.linux.console import connect

            plan.console = connect(plan.console_socket or "")
        # runc's nsexec order: join namespaces by path (a user namespace first), then a new
        # user namespace -- mapped by the parent -- then the other new namespaces, which the
        # new user namespace owns.
        join_all(sys, plan.namespaces.joins)
        if plan.namespaces.has_new("user"):
            _enter_new_user_namespace(plan, channel, sys)
        elif plan.namespaces.has("user"):
            _become_root_if_mapped(plan)
        flags = plan.namespaces.new_flags & ~(NAMESPACES["cgroup"][0] | NAMESPACES["user"][0])
        if flags:
            sys.unshare(flags)
        offsets = plan.config["linux"].get("timeOffsets")
        if offsets and plan.namespaces.has_new("time"):
            from runtime.linux.system import write_time_offsets

            write_time_offsets(offsets)
        mark("C1", "unshared")
        init_pid = sys.fork_sibling()
        if init_pid == 0:
            container_init(plan, channel, sys)
        channel.send(Pid(init_pid))
    except BaseException as err:  # everything must reach the parent
        _fail(channel, err)
    os._exit(0)


def _enter_new_user_namespace(plan: InitPlan, channel: Channel, sys: Syscalls) -> None:
    from runtime.spec.tables import NAMESPACES

    sys.unshare(NAMESPACES["user"][0])
    channel.send(UserNamespace())
    _await_proceed(channel)  # the parent has written our uid/gid maps
    _become_root_if_mapped(plan)


def _become_root_if_mapped(plan: InitPlan) -> None:
    """Act as the namespace's root, as runc does, when root is mapped (it usually is)."""
    from runtime.linux.userns import maps_id

    linux = plan.config["linux"]
    if maps_id(linux.get("gidMappings", []), 0):
        os.setresgid(0, 0, 0)
    if maps_id(linux.get("uidMappings", []), 0):
        os.setresuid(0, 0, 0)


def container_init(plan: InitPlan, channel: Channel, sys: Syscalls) -> None:
    """C2: set the container up, report Ready, wait for start, exec. Never returns."""
    try:
        exec_path, args, env = _setup(plan, channel, sys)
        channel.send(Ready())
        channel.close()
    except BaseException as err:
        _fail(channel, err)
    _wait_for_start_and_exec(plan, exec_path, args, env)


def _await_proceed(channel: Channel) -> None:
    message = channel.receive()
    if message is None:
        os._exit(1)  # the parent gave up (failed or was killed): nothing to report to
    if not isinstance(message, Proceed):
        raise ContainerInitError(f"protocol error: expected Proceed, got {message!r}")


def _setup(
    plan: InitPlan, channel: Channel, sys: Syscalls
) -> tuple[str, list[str], dict[str, str]]:
    # Every module init needs is imported here, first: after pivot_root the host's Python
    # library is out of reach, and a lazy import there would fail inside the container.
    from runtime.lifecycle import hooks as oci_hooks
    from runtime.lifecycle.become import become, close_inherited_fds
    from runtime.linux import console as console_module
    from runtime.linux.process import apply_rlimits, set_oom_score_adj
    from runtime.linux.rootfs import Rootfs
    from runtime.linux.system import loopback_up, set_names, write_sysctls
    from runtime.linux.userns import setgroups_allowed
    from runtime.spec.tables import NAMESPACES

    config = plan.config
    process = config["process"]
    mark("C2", "forked, imports done")
    close_inherited_fds(plan.preserve_fds)
    plan.host_pid = _host_pid()
    groups_allowed = setgroups_allowed()  # read now: /proc may not be mounted after pivot
    if plan.namespaces.has_new("network"):
        loopback_up()
    compiled = None
    if config.get("linux", {}).get("seccomp"):
        # libseccomp is the host's: compile now, before pivot_root; load at the very end.
        compiled = _compiled_seccomp(config["linux"]["seccomp"], plan.seccomp_cache)
        mark("C2", "seccomp compiled")
    # The parent makes the cgroup meanwhile (Proceed 1: its directories exist, which the
    # cgroup mount needs) and moves us into it (Proceed 2, needed before the exec, and before
    # a new cgroup namespace is made: it is rooted where we stand).
    proceeds = [0]

    def await_proceed(upto: int) -> None:
        while proceeds[0] < upto:
            _await_proceed(channel)
            proceeds[0] += 1
            mark("C2", f"proceed {proceeds[0]}")

    if plan.namespaces.has_new("cgroup"):
        await_proceed(2)
        sys.unshare(NAMESPACES["cgroup"][0])
    rootfs = Rootfs(
        sys,
        config,
        plan.rootfs,
        plan.bundle,
        cgroup_mounts=plan.cgroup_mounts,
        cgroupns=plan.namespaces.has("cgroup"),
        userns=plan.namespaces.has("user"),
        before_cgroup_mount=lambda: await_proceed(1),
    )
    rootfs.prepare()
    mark("C2", "mounts done")
    set_names(sys, config.get("hostname"), config.get("domainname"))
    _hooks_before_pivot(plan, channel, await_proceed)
    console = plan.console  # connected by the bootstrap child, before any namespace
    if oci_hooks.has_hooks(config, "startContainer"):
        oci_hooks.preload()  # they run after pivot_root, when nothing can be imported
    rootfs.pivot(plan.no_pivot)
    if console is not None:
        console_module.hand_over_pty(sys, console, process.get("consoleSize"), "/dev/console")
    write_sysctls(config.get("linux", {}).get("sysctl", {}))
    rootfs.finalize()
    mark("C2", "pivoted, finalized")
    if plan.new_keyring:
        # Not the caller's session keyring: the container gets its own (runc: "_ses.<id>").
        sys.join_session_keyring(f"_ses.{plan.container_id}")
    if "oomScoreAdj" in process:
        set_oom_score_adj(process["oomScoreAdj"])
    apply_rlimits(process.get("rlimits", []))
    exec_path, args, env, plan.seccomp = become(
        sys, process, groups_allowed=groups_allowed, seccomp=compiled
    )
    await_proceed(2)
    mark("C2", "ready")
    return exec_path, args, env


def _compiled_seccomp(profile: Any, cache_dir: str | None) -> Any:
    """The profile's program, from the cache (seccomp_cache.py) or compiled and cached."""
    from runtime.linux import seccomp_cache
    from runtime.linux.seccomp import compile_filter

    if cache_dir is None:
        return compile_filter(profile)
    path = seccomp_cache.cache_path(cache_dir, profile)
    compiled = seccomp_cache.load(path)
    if compiled is None:
        compiled = compile_filter(profile)
        seccomp_cache.store(path, compiled)
    return compiled


def _hooks_before_pivot(
    plan: InitPlan, channel: Channel, await_proceed: Callable[[int], None]
) -> None:
    """prestart and createRuntime run in the parent (runtime namespace), createContainer here
    (container namespace); all of them while the host is still visible, before pivot_root."""
    from runtime.lifecycle import hooks as oci_hooks

    if oci_hooks.has_hooks(plan.config, "prestart", "createRuntime"):
        await_proceed(2)
        channel.send(Hooks())
        await_proceed(3)
    created = oci_hooks.hooks_of(plan.config, "createContainer")
    if created:
        oci_hooks.run_hooks("createContainer", created, _hook_state(plan, "creating"))


def _hook_state(plan: InitPlan, status: str) -> dict[str, Any]:
    from runtime.lifecycle.hooks import hook_state

    state = {
        "id": plan.container_id,
        "bundle": plan.bundle,
        "ociVersion": plan.config.get("ociVersion", "1.2.0"),
        "annotations": plan.config.get("annotations", {}),
    }
    return hook_state(state, status, plan.host_pid)


def _host_pid() -> int:
    """Our pid in the outermost pid namespace: the first NSpid field of the host's /proc."""
    with open("/proc/self/status", "rb") as handle:
        for line in handle:
            if line.startswith(b"NSpid:"):
                return int(line.split()[1])
    return os.getpid()


def _wait_for_start_and_exec(
    plan: InitPlan, exec_path: str, args: list[str], env: dict[str, str]
) -> None:
    try:
        # Blocks until `pyrun start` opens the fifo for reading. The state directory is reached
        # through a descriptor opened before pivot_root, so no host path is visible here.
        fd = os.open(EXEC_FIFO, os.O_WRONLY | os.O_CLOEXEC, dir_fd=plan.state_dir_fd)
        os.write(fd, b"0")
        os.close(plan.state_dir_fd)
    except OSError:
        os._exit(1)  # start went away: nothing to report to
    # The fifo stays open until the exec closes it (O_CLOEXEC): `start` reads to its end, so it
    # returns once the program runs, and reads why if it does not.
    try:
        _start_container_hooks(plan)
        if plan.seccomp is not None:
            plan.seccomp()  # with no_new_privs: nothing but the exec runs under the filter
        os.execve(exec_path, args, env)
    except (OSError, PyrunError) as err:
        if isinstance(err, OSError):
            message = f"exec {args[0]!r} failed: {(err.strerror or 'error').lower()}"
        else:
            message = err.message
        try:
            os.write(fd, message.encode(errors="replace"))
        finally:
            os._exit(127)


def _start_container_hooks(plan: InitPlan) -> None:
    from runtime.lifecycle.hooks import hooks_of, run_hooks

    hooks = hooks_of(plan.config, "startContainer")
    if hooks:
        run_hooks("startContainer", hooks, _hook_state(plan, "created"))
