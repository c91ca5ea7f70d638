"""The CLI edge (rule 4): the one place where results become output and errors exit codes.

Errors go to stderr and, with ``--log``, to the log file: one line per failure, in logrus'
text form or as one JSON object (podman reads a JSON log as a single object).
"""

from __future__ import annotations

import os
import sys

from runtime.errors import PyrunError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from runtime.cli.options import Invocation
    from runtime.lifecycle.container import Context
    from runtime.lifecycle.spawn import HeadStart


def dispatch(invocation: Invocation, head_start: HeadStart | None = None) -> int:
    """Run a parsed command line. ``head_start`` is what main() began for create/run."""
    from runtime import log
    from runtime.lifecycle.container import Context

    g = invocation.globals
    ctx = Context(
        root=str(g["root"] or default_root()),
        log_path=(g["log"] and str(g["log"])) or None,  # type: ignore[arg-type]
        log_format=str(g["log_format"]),
        debug=bool(g["debug"]),
        systemd_cgroup=bool(g["systemd_cgroup"]),
    )
    log.configure(ctx.log_path, ctx.log_format, ctx.debug)
    try:
        log.debug(f"{invocation.command} {invocation.args}")
        if invocation.command in ("create", "run"):
            if head_start is None:
                from runtime.lifecycle.spawn import HeadStart

                head_start = HeadStart()
            return _VERBS[invocation.command](ctx, invocation.options, invocation.args, head_start)
        return _VERBS[invocation.command](ctx, invocation.options, invocation.args)
    except PyrunError as err:
        _report(err.message)
        return err.exit_code
    except KeyboardInterrupt:
        _report("interrupted")
        return 130
    except OSError as err:
        # Anything the verbs did not map: still one clear line, never a traceback.
        where = f": {err.filename}" if err.filename else ""
        _report(f"{(err.strerror or str(err)).lower()}{where}")
        return 1
    finally:
        if head_start is not None:
            head_start.finish()


def default_root() -> str:
    """/run/pyrun for root; an unprivileged user's state lives in $XDG_RUNTIME_DIR/pyrun."""
    if os.geteuid() == 0:
        return "/run/pyrun"
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.geteuid()}"
    return f"{runtime_dir}/pyrun"


def _report(message: str) -> None:
    from runtime import log

    log.error(message)
    sys.stderr.write(f"pyrun: {message}\n")
    sys.stderr.flush()


def _out(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _create_options(options: dict[str, Any], args: dict[str, Any]) -> Any:
    from runtime.lifecycle.create import CreateOptions

    container_id, bundle = resolve_id_and_bundle(str(args["id"]), options.get("bundle"))
    return CreateOptions(
        container_id,
        bundle,
        pid_file=options.get("pid_file"),
        console_socket=options.get("console_socket"),
        no_pivot=bool(options.get("no_pivot")),
        no_new_keyring=bool(options.get("no_new_keyring")),
        preserve_fds=int(options.get("preserve_fds") or 0),
    )


def resolve_id_and_bundle(target: str, bundle: str | None) -> tuple[str, str]:
    """`pyrun create ID` (bundle: --bundle or the current directory) or the short form
    `pyrun create path/to/bundle` (a directory holding a config: id = its name)."""
    if bundle is None and os.path.isdir(target):
        from runtime.lifecycle.bundle import CONFIG_NAMES

        def has_config(directory: str) -> bool:
            return any(os.path.isfile(os.path.join(directory, name)) for name in CONFIG_NAMES)

        # "hello" is an id when the current directory is itself a bundle (runc's form).
        if has_config(target) and ("/" in target or not has_config(".")):
            path = os.path.abspath(target)
            return os.path.basename(path), path
    return target, bundle or os.getcwd()


def _verb_create(
    ctx: Context, options: dict[str, Any], args: dict[str, Any], head: HeadStart
) -> int:
    create_options = _create_options(options, args)
    from runtime.lifecycle.create import create

    create(ctx, create_options, head.early, head.boot)
    return 0


def _verb_run(ctx: Context, options: dict[str, Any], args: dict[str, Any], head: HeadStart) -> int:
    create_options = _create_options(options, args)
    from runtime.lifecycle.run import run

    detach, keep = bool(options.get("detach")), bool(options.get("keep"))
    return run(ctx, create_options, detach, head.early, head.boot, keep=keep)


def _verb_start(ctx: Context, options: dict[str, Any], args: dict[str, Any]) -> int:
    from runtime.lifecycle.start import start

    start(ctx, str(args["id"]))
    return 0


def _verb_state(ctx: Context, options: dict[str, Any], args: dict[str, Any]) -> int:
    from runtime.lifecycle.state import state

    _out(state(ctx, str(args["id"])))  # no trailing newline: runc's exact bytes
    return 0


def _verb_kill(ctx: Context, options: dict[str, Any], args: dict[str, Any]) -> int:
    from runtime.lifecycle.kill import kill

    kill(ctx, str(args["id"]), str(args.get("signal") or "TERM"), bool(options.get("all")))
    return 0


def _verb_delete(ctx: Context, options: dict[str, Any], args: dict[str, Any]) -> int:
    from runtime.lifecycle.delete import delete

    delete(ctx, str(args["id"]), bool(options.get("force")))
    return 0


def _verb_list(ctx: Context, options: dict[str, Any], args: dict[str, Any]) -> int:
    from runtime.lifecycle.state import list_output

    _out(list_output(ctx, str(options["format"]), bool(options["quiet"])))
    return 0


def _verb_ps(ctx: Context, options: dict[str, Any], args: dict[str, Any]) -> int:
    from runtime.lifecycle.state import ps

    _out(ps(ctx, str(args["id"]), str(options["format"]), list(args.get("ps_args") or ())))
    return 0


def _verb_spec(ctx: Context, options: dict[str, Any], args: dict[str, Any]) -> int:
    from runtime.lifecycle.specgen import write_spec

    write_spec(str(options["bundle"]), bool(options["rootless"]), str(options["format"]))
    return 0


def _verb_validate(ctx: Context, options: dict[str, Any], args: dict[str, Any]) -> int:
    from runtime.lifecycle.validate import validate

    text, ok = validate(str(args.get("path") or "."))
    _out(text)
    return 0 if ok else 1


def _verb_pause(ctx: Context, options: dict[str, Any], args: dict[str, Any]) -> int:
    from runtime.lifecycle.pause import pause

    pause(ctx, str(args["id"]))
    return 0


def _verb_resume(ctx: Context, options: dict[str, Any], args: dict[str, Any]) -> int:
    from runtime.lifecycle.pause import resume

    resume(ctx, str(args["id"]))
    return 0


def _verb_update(ctx: Context, options: dict[str, Any], args: dict[str, Any]) -> int:
    from runtime.lifecycle.update import update

    update(ctx, str(args["id"]), options)
    return 0


def _verb_events(ctx: Context, options: dict[str, Any], args: dict[str, Any]) -> int:
    from runtime.lifecycle.events import events

    stream = events(ctx, str(args["id"]), str(options["interval"]), bool(options["stats"]))
    try:
        for line in stream:
            _out(line)
    except KeyboardInterrupt:
        pass  # Ctrl-C or SIGTERM: the end of the stream, not an error
    finally:
        stream.close()
    return 0


def _verb_features(ctx: Context, options: dict[str, Any], args: dict[str, Any]) -> int:
    from runtime.lifecycle.features import features_output

    _out(features_output())
    return 0


def _verb_exec(ctx: Context, options: dict[str, Any], args: dict[str, Any]) -> int:
    from runtime.lifecycle.container import Container
    from runtime.lifecycle.exec import ExecOptions, exec_in, process_from_file, process_from_flags

    for unsupported in ("apparmor", "process_label"):
        if options.get(unsupported):
            flag = "--" + unsupported.replace("_", "-")
            raise PyrunError(f"{flag}: not supported by pyrun (no LSM profiles on this host)")
    container_id = str(args["id"])
    command = list(args.get("command") or ())
    if options.get("process"):
        if command:
            raise PyrunError("exec: give either --process or a command, not both")
        process = process_from_file(str(options["process"]))
    else:
        container = Container.load(ctx.store, container_id)
        base = container.store.read_config(container_id).get("process", {})
        process = process_from_flags(
            base,
            command,
            env=list(options.get("env") or ()),
            cwd=options.get("cwd"),
            user=options.get("user"),
            additional_gids=list(options.get("additional_gids") or ()),
            caps=list(options.get("cap") or ()),
            tty=bool(options.get("tty")),
            no_new_privs=bool(options.get("no_new_privs")),
        )
    exec_options = ExecOptions(
        process,
        detach=bool(options.get("detach")),
        pid_file=options.get("pid_file"),
        console_socket=options.get("console_socket"),
        preserve_fds=int(options.get("preserve_fds") or 0),
        ignore_paused=bool(options.get("ignore_paused")),
    )
    return exec_in(ctx, container_id, exec_options)


_VERBS: dict[str, Callable[..., int]] = {
    "exec": _verb_exec,
    "create": _verb_create,
    "run": _verb_run,
    "start": _verb_start,
    "state": _verb_state,
    "kill": _verb_kill,
    "delete": _verb_delete,
    "list": _verb_list,
    "ps": _verb_ps,
    "spec": _verb_spec,
    "validate": _verb_validate,
    "pause": _verb_pause,
    "resume": _verb_resume,
    "update": _verb_update,
    "events": _verb_events,
    "features": _verb_features,
}
