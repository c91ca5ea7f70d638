"""Terminals: the console-socket protocol callers use (containerd, conmon), /dev/console, the
size, and `run`/`exec -t` wiring the user's own terminal in the foreground."""

from __future__ import annotations

import json
import os
import select
import socket
import subprocess
import time
from pathlib import Path

from tests.conftest import PYRUN, Bundles, Runtime, base_config


class ConsoleServer:
    """What a caller does: listen, accept the runtime's connection, take the pty master."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(1)
        self.sock.settimeout(20)
        self.payload = b""

    def master(self) -> int:
        connection, _ = self.sock.accept()
        with connection:
            self.payload, fds, _, _ = socket.recv_fds(connection, 1024, 4)
        assert len(fds) == 1, "exactly one descriptor must come over the console socket"
        return fds[0]

    def close(self) -> None:
        self.sock.close()


def read_all(master: int, deadline: float = 10.0) -> bytes:
    output = b""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        ready, _, _ = select.select([master], [], [], 0.2)
        if not ready:
            continue
        try:
            chunk = os.read(master, 4096)
        except OSError:  # EIO: the slave side closed
            break
        if not chunk:
            break
        output += chunk
    return output


SCRIPT = "tty; stty size; ls -l /dev/console | cut -c1; test -t 0 && echo stdin-is-a-tty; exit 3"


def _terminal_config(args: list[str]) -> dict[str, object]:
    config = base_config(args)
    config["process"]["terminal"] = True  # type: ignore[index]
    config["process"]["consoleSize"] = {"height": 33, "width": 101}  # type: ignore[index]
    return config


def test_console_socket_gets_the_pty_master(
    pyrun: Runtime, runc: Runtime, bundles: Bundles, tmp_path: Path
) -> None:
    outputs = {}
    for runtime in (runc, pyrun):
        server = ConsoleServer(tmp_path / f"{runtime.prefix}.sock")
        bundle = bundles.make(config=_terminal_config(["sh", "-c", SCRIPT]))
        cid = runtime.id("t")
        try:
            created = runtime(
                "create", "--console-socket", str(server.path), "--bundle", str(bundle), cid
            )
            assert created.returncode == 0, created
            master = server.master()
            assert server.payload  # a non-empty payload with the descriptor
            runtime.ok("start", cid)
            outputs[runtime.binary] = read_all(master).replace(b"\r\n", b"\n").decode()
            os.close(master)
        finally:
            server.close()
        deadline = time.monotonic() + 10
        while runtime.state(cid)["status"] != "stopped" and time.monotonic() < deadline:
            time.sleep(0.05)
        runtime.ok("delete", cid)
    ours = outputs[PYRUN]
    assert ours.splitlines() == ["/dev/pts/0", "33 101", "c", "stdin-is-a-tty"]
    assert outputs[runc.binary] == ours


def test_terminal_without_console_socket_is_refused_on_create(
    pyrun: Runtime, bundles: Bundles
) -> None:
    cid = pyrun.id()
    result = pyrun("create", "--bundle", str(bundles.make(config=_terminal_config(["true"]))), cid)
    assert result.returncode == 1
    assert "cannot allocate tty if pyrun will detach without setting console socket" in (
        result.stderr
    )
    assert not Path(pyrun.root, cid).exists()


def _under_script(command: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run a command with a terminal of its own (util-linux script), as a user at a shell."""
    return subprocess.run(
        ["script", "-qec", command, "/dev/null"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_run_in_the_foreground_wires_the_users_terminal(pyrun: Runtime, bundles: Bundles) -> None:
    config = _terminal_config(["sh", "-c", "tty; test -t 1 && echo out-is-a-tty; exit 5"])
    bundle = bundles.make(config=config)
    result = _under_script(f"{PYRUN} --root {pyrun.root} run --bundle {bundle} {pyrun.id()}")
    assert result.returncode == 5, result
    # script echoes its stdin's EOF as "^@" (runc shows the same): strip it.
    lines = [line.replace("^@", "") for line in result.stdout.replace("\r", "").splitlines()]
    assert "/dev/pts/0" in lines and "out-is-a-tty" in lines


def test_exec_with_a_tty_in_the_foreground(pyrun: Runtime, bundles: Bundles) -> None:
    cid = pyrun.id()
    pyrun.ok("run", "-d", "--bundle", str(bundles.make(["sleep", "60"])), cid)
    result = _under_script(f"{PYRUN} --root {pyrun.root} exec -t {cid} sh -c 'tty; exit 4'")
    assert result.returncode == 4, result
    assert "/dev/pts/" in result.stdout
    pyrun.ok("delete", "--force", cid)


def test_exec_with_a_console_socket_and_a_process_json(
    pyrun: Runtime, bundles: Bundles, tmp_path: Path
) -> None:
    """containerd's exec: --process with terminal true, --console-socket, --detach."""
    cid = pyrun.id()
    pyrun.ok("run", "-d", "--bundle", str(bundles.make(["sleep", "60"])), cid)
    process = {
        "terminal": True,
        "args": ["sh", "-c", "tty; echo via-exec"],
        "cwd": "/",
        "env": ["PATH=/bin"],
        "user": {"uid": 0, "gid": 0},
    }
    (tmp_path / "p.json").write_text(json.dumps(process))
    server = ConsoleServer(tmp_path / "exec.sock")
    try:
        result = pyrun(
            "exec",
            "--process",
            str(tmp_path / "p.json"),
            "--console-socket",
            str(server.path),
            "--detach",
            "--pid-file",
            str(tmp_path / "p.pid"),
            cid,
        )
        assert result.returncode == 0, result
        master = server.master()
        output = read_all(master).replace(b"\r\n", b"\n").decode().splitlines()
        os.close(master)
    finally:
        server.close()
    assert output[0].startswith("/dev/pts/") and output[1] == "via-exec"
    assert int((tmp_path / "p.pid").read_text()) > 0
    pyrun.ok("delete", "--force", cid)
