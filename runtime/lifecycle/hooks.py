"""OCI hooks (runtime-spec v1.3.0 runtime.md, config.md "POSIX-platform Hooks").

Who runs which hook, and where:

================  ===========================  =====================  ==========================
hook              when                         namespace (path)       on failure
================  ===========================  =====================  ==========================
prestart          create, before pivot_root    runtime (pyrun create) create fails, all undone
createRuntime     create, before pivot_root    runtime (pyrun create) create fails, all undone
createContainer   create, before pivot_root    container (init)       create fails, all undone
startContainer    start, before the exec       container (init)       start fails, init exits
poststart         start, after the exec        runtime (pyrun start)  start fails, container
                                                                      killed (spec v1.3)
poststop          delete, after the removal    runtime (pyrun delete) a warning only
================  ===========================  =====================  ==========================

Each hook gets the container's state JSON on stdin, runs with its own ``env`` (or pyrun's when
it has none, as runc does) and is killed after ``timeout`` seconds. Its output is kept for the
error message only, like runc's.
"""

from __future__ import annotations

import os

from runtime.errors import PyrunError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from runtime.spec.types import Config, Hook

KINDS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")


class HookError(PyrunError):
    """A hook failed, exited non-zero or timed out."""


def hooks_of(config: Config, kind: str) -> list[Hook]:
    hooks: dict[str, list[Hook]] = dict(config.get("hooks", {}))  # type: ignore[arg-type]
    return list(hooks.get(kind, []))


def has_hooks(config: Config, *kinds: str) -> bool:
    return any(hooks_of(config, kind) for kind in kinds)


def hook_state(state: dict[str, Any], status: str, pid: int | None = None) -> dict[str, Any]:
    """The runtime-spec state document a hook reads from stdin."""
    document: dict[str, Any] = {
        "ociVersion": state.get("ociVersion", "1.2.0"),
        "id": state["id"],
        "status": status,
        "bundle": state.get("bundle", ""),
    }
    pid = state.get("pid") if pid is None else pid
    if pid and status != "stopped":
        document["pid"] = pid
    if state.get("annotations"):
        document["annotations"] = state["annotations"]
    return document


def run_hooks(kind: str, hooks: list[Hook], state: dict[str, Any]) -> None:
    """Run ``hooks`` in order; the first failure raises HookError (runc's wording)."""
    if not hooks:
        return
    from runtime import jsonfast

    payload = jsonfast.dumps(state).encode()
    for index, hook in enumerate(hooks):
        _run_one(kind, index, hook, payload)


def _run_one(kind: str, index: int, hook: Hook, payload: bytes) -> None:
    import subprocess

    path = hook["path"]
    argv = list(hook.get("args") or [path])
    env = None
    if "env" in hook:
        env = dict(entry.partition("=")[::2] for entry in hook.get("env", []))
    timeout = hook.get("timeout")
    try:
        # Its own process group: on a timeout the hook's children die with it.
        process = subprocess.Popen(
            argv,
            executable=path,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            close_fds=True,
            cwd="/",
            start_new_session=True,
        )
    except OSError as err:
        reason = (err.strerror or str(err)).lower()
        raise HookError(f"error running {kind} hook #{index}: {path}: {reason}") from None
    try:
        stdout, stderr = process.communicate(payload, timeout=timeout if timeout else None)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        stdout, stderr = process.communicate()
        raise HookError(
            f"error running {kind} hook #{index}: timeout after {timeout} seconds"
            + _output(stdout, stderr)
        ) from None
    finally:
        _kill_group(process.pid)
    result = subprocess.CompletedProcess(argv, process.returncode, stdout, stderr)
    if result.returncode != 0:
        how = (
            f"signal: {_signal_name(-result.returncode)}"
            if result.returncode < 0
            else f"exit status {result.returncode}"
        )
        raise HookError(
            f"error running {kind} hook #{index}: {how}" + _output(result.stdout, result.stderr)
        )


def _kill_group(pgid: int) -> None:
    """Whatever the hook left running in its group goes too (runc kills only the hook)."""
    try:
        os.killpg(pgid, 9)
    except ProcessLookupError:
        pass


def _output(stdout: bytes | str | None, stderr: bytes | str | None) -> str:
    def text(value: bytes | str | None) -> str:
        if isinstance(value, bytes):
            return value.decode(errors="replace").strip()
        return (value or "").strip()

    return f", stdout: {text(stdout)}, stderr: {text(stderr)}"


def _signal_name(number: int) -> str:
    from runtime.spec.tables import SIGNALS

    for name, value in SIGNALS.items():
        if value == number:
            return {"KILL": "killed", "TERM": "terminated"}.get(name, f"SIG{name}")
    return f"signal {number}"


def preload() -> None:
    """Import what running a hook needs. Init calls it before pivot_root when it has
    startContainer hooks to run afterwards, when the host's library is out of reach."""
    import subprocess  # noqa: F401

    from runtime import jsonfast  # noqa: F401
    from runtime.spec import tables  # noqa: F401
