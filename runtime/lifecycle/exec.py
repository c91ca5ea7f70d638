"""``pyrun exec``: run another process in a running container.

::

    pyrun exec (P)                  joiner (E1)                     process (E2)
    --------------                  -----------                     ------------
    process from --process or
    the flags, validated
    fork ------------------------>  imports; seccomp compiled;
                                    console socket connected;
                                    join the container's cgroup;
                                    setns into each of init's
                                    namespaces (user first,
                                    mount last)
                                    clone(CLONE_PARENT) ----------> (a child of P, inside the
             <----------- Pid(E2) - exit 0                         container's pid namespace)
    waitpid(E1)                                                    cwd, rlimits, keyring, user,
                                                                   capabilities, no_new_privs,
                                                                   seccomp, the pty, lookup
             <----------------------------- EOF (exec closed it)   execve(process.args)
                                    or Failed(why)
    pid file; --detach: exit;
    else wait (and wire the tty)

The channel closing without a message is the sign that the exec happened (close-on-exec).
"""

from __future__ import annotations

import os

from runtime.errors import ContainerInitError, PyrunError, SpecError
from runtime.lifecycle import status as st
from runtime.lifecycle.channel import Failed, Pid, channel_pair
from runtime.lifecycle.container import Container, Context

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from runtime.lifecycle.channel import Channel
    from runtime.linux.syscalls import Syscalls
    from runtime.spec.types import Process

# The order runc joins in: the user namespace grants the rights for the rest, the mount
# namespace changes how the remaining /proc paths resolve.
_JOIN_ORDER = ("user", "ipc", "uts", "network", "pid", "cgroup", "time", "mount")


class ExecOptions:
    __slots__ = (
        "console_socket",
        "detach",
        "ignore_paused",
        "pid_file",
        "preserve_fds",
        "process",
    )

    def __init__(
        self,
        process: Process,
        detach: bool = False,
        pid_file: str | None = None,
        console_socket: str | None = None,
        preserve_fds: int = 0,
        ignore_paused: bool = False,
    ) -> None:
        self.process = process
        self.detach = detach
        self.pid_file = pid_file
        self.console_socket = console_socket
        self.preserve_fds = preserve_fds
        self.ignore_paused = ignore_paused


# -- the process to run ----------------------------------------------------------------------


def process_from_file(path: str) -> Process:
    """A process.json (``-`` for stdin), validated against the spec's Process schema."""
    import sys

    try:
        if path == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as handle:
                data = handle.read()
    except OSError as err:
        raise PyrunError(f"{path}: {(err.strerror or 'cannot read').lower()}") from None
    from runtime.spec.document import decode

    document = decode(data, path if path.endswith((".yaml", ".yml")) else "process.json")
    return validate_process(document.data, path)


def process_from_flags(
    base: Process,
    command: list[str],
    *,
    env: list[str] | None = None,
    cwd: str | None = None,
    user: str | None = None,
    additional_gids: list[str] | None = None,
    caps: list[str] | None = None,
    tty: bool = False,
    no_new_privs: bool = False,
) -> Process:
    """runc's exec without --process: the container's process, changed by the flags."""
    import copy

    if not command:
        raise PyrunError("exec: no command given (pyrun exec ID COMMAND [ARGS...])")
    process: Any = copy.deepcopy(dict(base))
    process["args"] = list(command)
    process["terminal"] = tty
    process.pop("consoleSize", None)
    if env:
        merged = dict(entry.partition("=")[::2] for entry in process.get("env", []))
        for entry in env:
            key, _, value = entry.partition("=")
            merged[key] = value
        process["env"] = [f"{key}={value}" for key, value in merged.items()]
    if cwd:
        process["cwd"] = cwd
    if user:
        uid, _, gid = user.partition(":")
        if not uid.isdigit() or (gid and not gid.isdigit()):
            raise PyrunError(f"--user {user!r}: expected UID[:GID] (numbers)")
        process["user"] = {"uid": int(uid), "gid": int(gid or 0)}
    if additional_gids:
        if not all(g.isdigit() for g in additional_gids):
            raise PyrunError(f"--additional-gids {additional_gids!r}: expected numbers")
        process.setdefault("user", {})["additionalGids"] = [int(g) for g in additional_gids]
    if caps:
        sets = process.setdefault("capabilities", {})
        for name in ("bounding", "effective", "permitted"):
            present = sets.setdefault(name, [])
            present.extend(cap for cap in caps if cap not in present)
    if no_new_privs:
        process["noNewPrivileges"] = True
    return validate_process(process, "exec flags")


def validate_process(document: Any, source: str) -> Process:
    """Every problem of a process document at once (schema + the semantic checks)."""
    from runtime.spec import load_schema
    from runtime.spec.fastcheck import FastValidator
    from runtime.spec.semantic import semantic_problems

    schema = dict(load_schema("config"))
    process_schema = {"$defs": schema.get("$defs", {}), **_process_schema(schema)}
    problems: list[str] = []
    if not FastValidator(process_schema).is_valid(document):
        from runtime.spec.document import Document
        from runtime.spec.report import render_all, schema_problems

        problems = render_all(
            Document(document, source), schema_problems(Document(document, source), process_schema)
        )
    for path, message in semantic_problems({"process": document}):
        from runtime.spec.document import format_path

        problems.append(f"{format_path(path[1:])}: {message}")
    if problems:
        raise SpecError(source, problems)
    process: Any = document
    process.setdefault("env", [])
    process.setdefault("cwd", "/")
    process.setdefault("user", {"uid": 0, "gid": 0})
    return process  # type: ignore[no-any-return]


def _process_schema(schema: dict[str, Any]) -> dict[str, Any]:
    found = schema.get("properties", {}).get("process")
    if isinstance(found, dict) and "$ref" not in found:
        return found
    if isinstance(found, dict):
        name = found["$ref"].rsplit("/", 1)[-1]
        return dict(schema["$defs"][name])
    raise PyrunError("schema/config.schema.json has no process schema")


# -- running it ------------------------------------------------------------------------------


def exec_in(ctx: Context, container_id: str, options: ExecOptions) -> int:
    container = Container.load(ctx.store, container_id)
    status = container.status()
    if not (status is st.PAUSED and options.ignore_paused):
        st.require("exec", status, container_id)
    process = options.process
    config = container.store.read_config(container.id)
    listener = None
    if process.get("terminal") and not options.console_socket:
        if options.detach:
            raise PyrunError(
                "cannot allocate tty if pyrun will detach without setting console socket"
            )
        from runtime.lifecycle.terminal import ConsoleListener

        listener = ConsoleListener(ctx.root, f"{container_id}-exec")
    try:
        socket_path = options.console_socket or (listener.path if listener else None)
        pid = _spawn(ctx, container, config, process, socket_path, options.preserve_fds)
        if options.pid_file:
            from runtime.lifecycle.store import write_atomic

            write_atomic(os.path.abspath(options.pid_file), str(pid).encode(), 0o644)
        if options.detach:
            return 0
        master = listener.receive() if listener else None
        return _wait(pid, master)
    finally:
        if listener is not None:
            listener.close()


def _wait(pid: int, master: int | None) -> int:
    from runtime.lifecycle.run import exit_code

    if master is not None:
        from runtime.lifecycle.terminal import proxy

        try:
            proxy(master)
        finally:
            os.close(master)
    _, status = os.waitpid(pid, 0)
    return exit_code(status)


def _spawn(
    ctx: Context,
    container: Container,
    config: dict[str, Any],
    process: Process,
    console_socket: str | None,
    preserve_fds: int,
) -> int:
    parent, child = channel_pair()
    joiner = os.fork()
    if joiner == 0:
        parent.close()
        _joiner(ctx, container, config, process, console_socket, preserve_fds, child)
    child.close()
    target = 0
    try:
        message = parent.receive()
        if isinstance(message, Pid):
            target = message.pid
            os.waitpid(joiner, 0)
            joiner = 0
            message = parent.receive()  # None: the exec closed the channel
        if message is None and target:
            return target
        if isinstance(message, Failed):
            raise ContainerInitError(f"unable to start container process: {message.message}")
        raise ContainerInitError(
            "unable to start container process: the process exited without a word"
        )
    except BaseException:
        if target:
            _reap(target)
        raise
    finally:
        parent.close()
        if joiner:
            _reap(joiner)


def _reap(pid: int) -> None:
    try:
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def _fail(channel: Channel, err: BaseException) -> None:
    from runtime.lifecycle.init import _describe

    try:
        from runtime.lifecycle.channel import Failed as FailedMessage

        channel.send(FailedMessage(_describe(err)))
    finally:
        os._exit(1)


def _joiner(
    ctx: Context,
    container: Container,
    config: dict[str, Any],
    process: Process,
    console_socket: str | None,
    preserve_fds: int,
    channel: Channel,
) -> None:
    """E1: everything that needs the host's view, then the container's namespaces."""
    try:
        # Imported now: after setns into the mount namespace, the host's modules are gone.
        import runtime.lifecycle.become
        import runtime.lifecycle.init
        import runtime.linux.capabilities
        import runtime.linux.console
        import runtime.linux.process
        import runtime.linux.userns
        from runtime.linux.syscalls import Syscalls
        from runtime.spec.tables import NAMESPACES

        sys = Syscalls()
        compiled = None
        seccomp = config.get("linux", {}).get("seccomp")
        if seccomp:
            from runtime.lifecycle.create import seccomp_cache_dir

            compiled = runtime.lifecycle.init._compiled_seccomp(seccomp, seccomp_cache_dir(ctx))
        console = None
        if process.get("terminal"):
            if not console_socket:
                raise PyrunError("process.terminal needs a console socket")
            from runtime.linux import console as console_module

            console = console_module.connect(console_socket)
        manager = container.cgroup()
        if manager is not None:
            manager.join(os.getpid())
        init_pid = container.pid
        kinds = [ns["type"] for ns in config.get("linux", {}).get("namespaces", [])]
        opened = []
        for kind in sorted(kinds, key=_JOIN_ORDER.index):
            name = NAMESPACES[kind][1]
            opened.append(
                (kind, os.open(f"/proc/{init_pid}/ns/{name}", os.O_RDONLY | os.O_CLOEXEC))
            )
        for kind, fd in opened:
            sys.setns(fd, NAMESPACES[kind][0], kind)
            os.close(fd)
        target = sys.fork_sibling()
        if target == 0:
            _become(sys, config, process, compiled, console, preserve_fds, channel)
        channel.send(Pid(target))
    except BaseException as err:
        _fail(channel, err)
    os._exit(0)


def _become(
    sys: Syscalls,
    config: dict[str, Any],
    process: Process,
    compiled: Any,
    console: Any,
    preserve_fds: int,
    channel: Channel,
) -> None:
    """E2: inside the container; turn into the process and exec it. Never returns."""
    try:
        from runtime.lifecycle.become import become, close_inherited_fds
        from runtime.linux.console import hand_over_pty
        from runtime.linux.process import apply_rlimits
        from runtime.linux.userns import setgroups_allowed

        close_inherited_fds(preserve_fds)
        groups_allowed = setgroups_allowed()
        apply_rlimits(process.get("rlimits", []))
        if console is not None:
            hand_over_pty(sys, console, process.get("consoleSize"))
        path, args, env, late_seccomp = become(
            sys, process, groups_allowed=groups_allowed, seccomp=compiled
        )
        if late_seccomp is not None:
            late_seccomp()
        os.execve(path, args, env)
    except BaseException as err:
        _fail(channel, err)
