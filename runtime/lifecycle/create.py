"""``pyrun create``: everything but the user's program, then exit leaving init waiting.

Order (rule 2): load and validate the bundle, probe the cgroup hierarchy -> only then make the
state directory (first, so ``delete --force`` can undo anything after it), the exec fifo, the
cgroup, and the container's processes. On any failure everything made so far is removed.
"""

from __future__ import annotations

import contextlib
import os

from runtime.errors import ContainerInitError, PyrunError
from runtime.lifecycle.channel import Failed, Pid, Ready, channel_pair
from runtime.lifecycle.container import OCI_VERSION, Container, Context
from runtime.lifecycle.store import EXEC_FIFO, Store, validate_id, write_atomic
from runtime.linux.procfs import start_time
from runtime.timefmt import rfc3339_nano
from runtime.trace import mark

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from runtime.cgroups.base import CgroupManager
    from runtime.linux.rootfs import CgroupMount
    from runtime.spec.types import Config


class CreateOptions:
    __slots__ = (
        "bundle",
        "console_socket",
        "id",
        "no_new_keyring",
        "no_pivot",
        "pid_file",
        "preserve_fds",
    )

    def __init__(
        self,
        container_id: str,
        bundle: str,
        pid_file: str | None = None,
        console_socket: str | None = None,
        no_pivot: bool = False,
        no_new_keyring: bool = False,
        preserve_fds: int = 0,
    ) -> None:
        self.id = container_id
        self.bundle = bundle
        self.pid_file = pid_file
        self.console_socket = console_socket
        self.no_pivot = no_pivot
        self.no_new_keyring = no_new_keyring
        self.preserve_fds = preserve_fds


def create(ctx: Context, options: CreateOptions) -> Container:
    from runtime.lifecycle.bundle import load_bundle

    validate_id(options.id)
    bundle = os.path.abspath(options.bundle)
    config, rootfs = load_bundle(bundle)
    mark("P", "config loaded")
    _check_supported(config, options)
    manager = _open_cgroup(ctx, options.id, config)

    store = ctx.store
    mark("P", "cgroup probed")
    state_dir = store.make(options.id)
    state = _initial_state(options.id, bundle, rootfs, config, manager)
    try:
        store.write_state(options.id, state)
        store.write_config(options.id, config)
        os.mkfifo(f"{state_dir}/{EXEC_FIFO}", 0o622)
        if manager is not None:
            manager.create()
            _apply_resources(manager, config)
        mark("P", "cgroup made")
        pid = _spawn(config, rootfs, bundle, state_dir, manager, options)
        mark("P", "init ready")
        state["pid"] = pid
        state["pidStartTime"] = start_time(pid)
        state["recorded"] = "created"
        store.write_state(options.id, state)
        if options.pid_file:
            write_atomic(os.path.abspath(options.pid_file), str(pid).encode(), 0o644)
    except BaseException:
        _undo(store, options.id, manager)
        raise
    mark("P", "created")
    return Container(store, state)


def _check_supported(config: Config, options: CreateOptions) -> None:
    process = config.get("process")
    if process is None:
        raise PyrunError("config has no process to run (process is required by create)")
    if process.get("terminal") and not options.console_socket:
        raise PyrunError("cannot allocate tty if pyrun will detach without setting console socket")
    if not any(ns.get("type") == "mount" for ns in config["linux"]["namespaces"]):
        raise PyrunError(
            "linux.namespaces: a mount namespace is required (pyrun never mounts on the host)"
        )


def _open_cgroup(ctx: Context, container_id: str, config: Config) -> CgroupManager | None:
    from runtime.cgroups import open_manager

    return open_manager(
        container_id, config["linux"].get("cgroupsPath") or None, systemd=ctx.systemd_cgroup
    )


def _apply_resources(manager: CgroupManager, config: Config) -> None:
    from runtime.spec.defaults import device_cgroup_rules

    resources: dict[str, Any] = dict(config["linux"].get("resources", {}))
    resources["devices"] = device_cgroup_rules(config)
    manager.apply(resources)


def _initial_state(
    container_id: str, bundle: str, rootfs: str, config: Config, manager: CgroupManager | None
) -> dict[str, Any]:
    me = os.getpid()
    return {
        "ociVersion": config.get("ociVersion", OCI_VERSION),
        "id": container_id,
        "pid": 0,
        "pidStartTime": None,
        "creatorPid": me,
        "creatorStartTime": start_time(me),
        "bundle": bundle,
        "rootfs": rootfs,
        "created": rfc3339_nano(),
        "owner": "",
        "annotations": config.get("annotations", {}),
        "cgroup": manager.to_state() if manager is not None else None,
        "recorded": "creating",
    }


def _cgroup_mounts(manager: CgroupManager | None) -> list[CgroupMount]:
    """How a ``cgroup`` mount in the config shows this container's hierarchies."""
    from runtime.linux.rootfs import CgroupMount

    if manager is None:
        return []
    mounts = []
    for name, path in sorted(manager.paths().items()):
        if manager.version == "v2":
            return [CgroupMount("", path, "cgroup2", None)]
        if name == "unified":
            continue  # runc shows only the v1 hierarchies on a hybrid host
        subdir = (
            path[len("/sys/fs/cgroup/") :].split("/", 1)[0]
            if path.startswith("/sys/fs/cgroup/")
            else name.replace("name=", "")
        )
        data = name if not name.startswith("name=") else f"none,{name}"
        mounts.append(CgroupMount(subdir, path, "cgroup", data))
    return mounts


def _spawn(
    config: Config,
    rootfs: str,
    bundle: str,
    state_dir: str,
    manager: CgroupManager | None,
    options: CreateOptions,
) -> int:
    from runtime.lifecycle.init import InitPlan, bootstrap
    from runtime.linux.namespaces import NamespacePlan
    from runtime.linux.syscalls import Syscalls

    plan = InitPlan(
        Syscalls(),
        config,
        rootfs,
        bundle,
        NamespacePlan(config["linux"]["namespaces"]),
        manager,
        _cgroup_mounts(manager),
        os.open(state_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC),
        no_pivot=options.no_pivot,
        preserve_fds=options.preserve_fds,
    )
    parent, child = channel_pair()
    try:
        bootstrap_pid = os.fork()
        if bootstrap_pid == 0:
            parent.close()
            bootstrap(plan, child)  # never returns
        child.close()
        os.close(plan.state_dir_fd)
        return _await_init(parent, bootstrap_pid)
    finally:
        parent.close()


def _await_init(channel: Any, bootstrap_pid: int) -> int:
    init_pid = 0
    try:
        message = channel.receive()
        if isinstance(message, Pid):
            init_pid = message.pid
            message = channel.receive()
    finally:
        os.waitpid(bootstrap_pid, 0)
    if isinstance(message, Ready):
        return init_pid
    if init_pid:
        _kill_quietly(init_pid)
    if isinstance(message, Failed):
        raise ContainerInitError(f"unable to start container process: {message.message}")
    raise ContainerInitError("unable to start container process: init exited without a word")


def _kill_quietly(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, 9)


def _undo(store: Store, container_id: str, manager: CgroupManager | None) -> None:
    """Remove everything a failed create made. Errors here must not hide the first one."""
    from runtime.lifecycle.delete import destroy_resources

    with contextlib.suppress(PyrunError):
        destroy_resources(store, container_id, manager, init_pid=0)
