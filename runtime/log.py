"""Log lines for --log/--log-format/--debug, without the logging module (~8 ms to import).

text: logrus' form, ``time="…" level=error msg="…"``; json: one object per line with level, msg
and time (RFC3339), which is what containerd and podman parse.
"""

from __future__ import annotations

import os

_state: dict[str, object] = {"path": None, "format": "text", "debug": False}


def configure(path: str | None, fmt: str = "text", debug: bool = False) -> None:
    _state["path"] = path
    _state["format"] = fmt
    _state["debug"] = debug


def _line(level: str, message: str) -> str:
    from runtime import jsonfast
    from runtime.timefmt import rfc3339

    if _state["format"] == "json":
        return jsonfast.dumps({"level": level, "msg": message, "time": rfc3339()}) + "\n"
    quoted = jsonfast.dumps(message)
    return f'time="{rfc3339()}" level={level} msg={quoted}\n'


def _write(level: str, message: str) -> None:
    path = _state["path"]
    if not path:
        return
    line = _line(level, message).encode()
    try:
        fd = os.open(str(path), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError:
        return  # a log we cannot open must not turn success into failure
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def error(message: str) -> None:
    _write("error", message)


def warning(message: str) -> None:
    import sys

    _write("warning", message)
    if not _state["path"]:
        sys.stderr.write(f"pyrun: warning: {message}\n")


def debug(message: str) -> None:
    if not _state["debug"]:
        return
    if _state["path"]:
        _write("debug", message)
    else:
        import sys

        sys.stderr.write(f"pyrun: debug: {message}\n")
