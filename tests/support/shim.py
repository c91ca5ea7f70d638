"""A tiny subreaper that runs commands for the tests, like containerd's shim or conmon.

`pyrun create` exits leaving the container's init re-parented to the nearest subreaper; on
this machine pid 1 does not reap, so without this process every detached container would end
as a zombie. Protocol: one JSON request per line on stdin
``{"argv": [...], "env": {...}|null, "cwd": str|null, "input": str|null, "timeout": float}``,
one JSON reply per line on stdout ``{"rc": int, "stdout": str, "stderr": str, "pid": int}``.
Orphans are reaped between and during requests. Standard library only.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import sys
import tempfile
import time

PR_SET_CHILD_SUBREAPER = 36


def _reap_orphans(statuses: dict[int, int]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        statuses[pid] = status


def _run(request: dict, statuses: dict[int, int]) -> dict:
    out = tempfile.TemporaryFile()
    err = tempfile.TemporaryFile()
    stdin_r, stdin_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.dup2(stdin_r, 0)
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            if request.get("cwd"):
                os.chdir(request["cwd"])
            env = request.get("env") or dict(os.environ)
            signal.signal(signal.SIGPIPE, signal.SIG_DFL)
            os.execvpe(request["argv"][0], request["argv"], env)
        except BaseException as exc:
            os.write(2, f"shim: exec failed: {exc}\n".encode())
        finally:
            os._exit(127)
    os.close(stdin_r)
    data = (request.get("input") or "").encode()
    try:
        if data:
            os.write(stdin_w, data)
    finally:
        os.close(stdin_w)
    deadline = time.monotonic() + float(request.get("timeout") or 60)
    timed_out = False
    while pid not in statuses:
        _reap_orphans(statuses)
        if pid in statuses:
            break
        if time.monotonic() > deadline and not timed_out:
            timed_out = True
            os.kill(pid, signal.SIGKILL)
        time.sleep(0.002)
    status = statuses.pop(pid)
    rc = os.waitstatus_to_exitcode(status)
    out.seek(0)
    err.seek(0)
    reply = {
        "rc": rc,
        "stdout": out.read().decode(errors="replace"),
        "stderr": err.read().decode(errors="replace"),
        "pid": pid,
        "timed_out": timed_out,
    }
    out.close()
    err.close()
    return reply


def main() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise SystemExit("shim: cannot become a subreaper")
    statuses: dict[int, int] = {}
    stdin = sys.stdin.buffer
    buffered = b""
    while True:
        ready, _, _ = select.select([stdin.fileno()], [], [], 0.05)
        _reap_orphans(statuses)
        statuses.clear()  # orphans' statuses are nobody's business
        if not ready:
            continue
        chunk = os.read(stdin.fileno(), 65536)
        if not chunk:
            break
        buffered += chunk
        while b"\n" in buffered:
            line, buffered = buffered.split(b"\n", 1)
            if not line.strip():
                continue
            request = json.loads(line)
            if request.get("children"):
                reply = {"children": _children()}
            else:
                reply = _run(request, statuses)
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()
    # Stdin closed: reap for a moment longer, then leave.
    end = time.monotonic() + 1
    while time.monotonic() < end:
        _reap_orphans(statuses)
        time.sleep(0.01)


def _children() -> list[int]:
    """Pids whose parent is this shim (containers that are still alive or unreaped)."""
    me = str(os.getpid())
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                raw = handle.read()
        except OSError:
            continue
        fields = raw[raw.rfind(b")") + 2 :].split()
        if fields[1].decode() == me:
            found.append(int(name))
    return found


if __name__ == "__main__":
    main()
