"""``pyrun create``: everything but the user's program, then exit leaving init waiting.

Order (rule 2): load and validate the bundle, probe the cgroup hierarchy -> only then make the
state directory (first, so ``delete --force`` can undo anything after it), the exec fifo, the
cgroup, and the container's processes. On any failure everything made so far is removed.
"""

from __future__ import annotations

import os

from runtime.errors import PyrunError
from runtime.lifecycle.container import OCI_VERSION, Container, Context
from runtime.lifecycle.init import InitPlan
from runtime.lifecycle.store import EXEC_FIFO, Store, validate_id, write_atomic
from runtime.linux.procfs import start_time
from runtime.timefmt import rfc3339_nano
from runtime.trace import mark

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from runtime.cgroups.base import CgroupManager
    from runtime.cgroups.probe import Host
    from runtime.cgroups.warmup import Warmup
    from runtime.lifecycle.spawn import Bootstrap
    from runtime.spec.types import Config


class CreateOptions:
    __slots__ = (
        "bundle",
        "console_fallback",
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
        # `run` in the foreground: makes a console socket of its own when the config wants a
        # terminal and the caller gave none; returns its path.
        self.console_fallback: Callable[[], str] | None = None


def create(
    ctx: Context,
    options: CreateOptions,
    early: Warmup | None = None,
    boot: Bootstrap | None = None,
) -> Container:
    """``early`` (the cgroup migration warm-up, cgroups/warmup.py) and ``boot`` (the
    bootstrap child, spawn.py) are started by the CLI before it imports this module, so that
    they overlap everything below; create starts them itself when they are not given."""
    from runtime.lifecycle.bundle import load_bundle

    mark("P", "create")
    if early is None:
        from runtime.cgroups.warmup import Warmup

        early = Warmup.start()
    if boot is None:
        from runtime.lifecycle.spawn import Bootstrap

        boot = Bootstrap()
    try:
        validate_id(options.id)
        bundle = os.path.abspath(options.bundle)
        config, rootfs = load_bundle(bundle, seccomp_cache_dir(ctx))
        mark("P", "config loaded")
        _check_supported(config, options)
        manager = _open_cgroup(ctx, options.id, config, early.host if early else None)
        mark("P", "cgroup probed")
        store = ctx.store
        state_dir = store.make(options.id)
    except BaseException:
        boot.abort()
        if early is not None:
            early.wait()
        raise
    state = _initial_state(options.id, bundle, rootfs, config, manager)
    try:
        store.write_state(options.id, state)  # first: delete --force can undo from here on
        mark("P", "state written")
        plan = InitPlan.message(
            options.id,
            config,
            rootfs,
            bundle,
            state_dir,
            _cgroup_mounts(manager),
            options.no_pivot,
            options.preserve_fds,
            not options.no_new_keyring,
            os.path.abspath(options.console_socket) if options.console_socket else None,
            seccomp_cache_dir(ctx),
        )
        boot.send_plan(plan)  # the bootstrap child goes on while we finish here

        def make_cgroup() -> None:
            fifo = f"{state_dir}/{EXEC_FIFO}"
            os.mkfifo(fifo, 0o622)
            # Whatever the umask: init opens it for writing as the container's user (runc).
            os.chmod(fifo, 0o622)
            if manager is not None:
                manager.create()

        def apply_resources() -> None:
            if manager is not None:
                _apply_resources(manager, config)

        def while_init_sets_up() -> None:
            store.write_config(options.id, config)

        def runtime_hooks(init_pid: int) -> None:
            from runtime.lifecycle.hooks import hook_state, hooks_of, run_hooks

            document = hook_state(state, "creating", init_pid)
            for kind in ("prestart", "createRuntime"):
                run_hooks(kind, hooks_of(config, kind), document)

        pid = boot.build(
            manager,
            make_cgroup,
            apply_resources,
            early.stop if early else lambda: None,
            runtime_hooks,
            while_init_sets_up,
        )
        mark("P", "init ready")
        state["pid"] = pid
        state["pidStartTime"] = start_time(pid)
        state["recorded"] = "created"
        store.write_state(options.id, state)
        if options.pid_file:
            write_atomic(os.path.abspath(options.pid_file), str(pid).encode(), 0o644)
        if early is not None:
            early.wait()  # long over by now; leave no thread behind
    except BaseException:
        boot.abort()
        if early is not None:
            early.wait()
        _undo(store, options.id, manager)
        raise
    mark("P", "created")
    return Container(store, state)


def seccomp_cache_dir(ctx: Context) -> str:
    return f"{ctx.root}/.seccomp"


def _check_supported(config: Config, options: CreateOptions) -> None:
    process = config.get("process")
    if process is None:
        raise PyrunError("config has no process to run (process is required by create)")
    if process.get("terminal") and not options.console_socket:
        if options.console_fallback is None:
            raise PyrunError(
                "cannot allocate tty if pyrun will detach without setting console socket"
            )
        options.console_socket = options.console_fallback()
    if not any(ns.get("type") == "mount" for ns in config["linux"]["namespaces"]):
        raise PyrunError(
            "linux.namespaces: a mount namespace is required (pyrun never mounts on the host)"
        )


def _open_cgroup(
    ctx: Context, container_id: str, config: Config, host: Host | None = None
) -> CgroupManager | None:
    from runtime.cgroups import open_manager

    manager = open_manager(
        container_id,
        config["linux"].get("cgroupsPath") or None,
        systemd=ctx.systemd_cgroup,
        host=host,
    )
    if os.geteuid() == 0 or _delegated(manager):
        return manager
    # Rootless without a delegated cgroup: run without one (runc --rootless does the same),
    # unless the config asks for limits that then could not be enforced.
    limits = sorted(k for k in config["linux"].get("resources", {}) if k != "devices")
    if limits:
        raise PyrunError(
            f"linux.resources.{limits[0]}: cannot be applied: running as uid {os.geteuid()},"
            " and this host does not delegate the container's cgroup to you"
            f" ({next(iter(manager.paths().values()))} is not writable)"
        )
    from runtime import log

    log.debug("rootless: no delegated cgroup, the container runs in the caller's cgroups")
    return None


def _delegated(manager: CgroupManager) -> bool:
    """True if every hierarchy's nearest existing ancestor of the container's cgroup is ours to
    write (cgroup v2 delegation, or a v1 tree chowned to the user)."""
    for path in manager.paths().values():
        existing = path
        while not os.path.isdir(existing):
            existing = existing.rpartition("/")[0] or "/"
        if not os.access(existing, os.W_OK):
            return False
    return True


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
        # Which hooks start and delete must run: without any, they never read the config copy.
        "hooks": sorted(kind for kind, hooks in config.get("hooks", {}).items() if hooks),
    }


def _cgroup_mounts(manager: CgroupManager | None) -> list[tuple[str, str, str, str | None]]:
    """How a ``cgroup`` mount in the config shows this container's hierarchies: (directory
    under the mount, host cgroup dir to bind, fstype and data for a fresh mount)."""
    if manager is None:
        return []
    mounts: list[tuple[str, str, str, str | None]] = []
    for name, path in manager.paths().items():  # the host's mountinfo order, as runc
        if manager.version == "v2":
            return [("", path, "cgroup2", None)]
        if name == "unified":
            continue  # runc shows only the v1 hierarchies on a hybrid host
        subdir = (
            path[len("/sys/fs/cgroup/") :].split("/", 1)[0]
            if path.startswith("/sys/fs/cgroup/")
            else name.replace("name=", "")
        )
        data = name if not name.startswith("name=") else f"none,{name}"
        mounts.append((subdir, path, "cgroup", data))
    return mounts


def _undo(store: Store, container_id: str, manager: CgroupManager | None) -> None:
    """Remove everything a failed create made. Errors here must not hide the first one."""
    from runtime.lifecycle.delete import destroy_resources

    try:
        destroy_resources(store, container_id, manager, init_pid=0)
    except PyrunError:
        pass
