"""`pyrun exec`: the process joins every namespace and the cgroup of the container, with the
container's process settings changed by the flags, or a whole process.json; runc alongside."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import Bundles, Runtime

NS_KINDS = ["ipc", "mnt", "net", "pid", "uts"]


@pytest.fixture
def running(pyrun: Runtime, bundles: Bundles) -> tuple[Runtime, str]:
    cid = pyrun.id("x")
    pyrun.ok("run", "-d", "--bundle", str(bundles.make(["sleep", "120"])), cid)
    return pyrun, cid


def test_exec_output_and_exit_code(running: tuple[Runtime, str]) -> None:
    pyrun, cid = running
    result = pyrun("exec", cid, "sh", "-c", "echo out; echo err >&2; exit 7")
    assert (result.returncode, result.stdout, result.stderr) == (7, "out\n", "err\n")


def test_exec_joins_the_containers_namespaces_and_cgroup(running: tuple[Runtime, str]) -> None:
    pyrun, cid = running
    init = pyrun.state(cid)["pid"]
    script = "; ".join(f"readlink /proc/self/ns/{kind}" for kind in NS_KINDS)
    result = pyrun("exec", cid, "sh", "-c", f"{script}; cat /proc/self/cgroup; echo $$")
    assert result.returncode == 0, result
    lines = result.stdout.splitlines()
    assert lines[: len(NS_KINDS)] == [os.readlink(f"/proc/{init}/ns/{k}") for k in NS_KINDS]
    with open(f"/proc/{init}/cgroup") as handle:
        assert lines[len(NS_KINDS) : -1] == handle.read().splitlines()
    assert int(lines[-1]) > 1  # a pid inside the container's pid namespace


def test_exec_flags_change_env_cwd_user_and_caps(running: tuple[Runtime, str]) -> None:
    pyrun, cid = running
    result = pyrun(
        "exec",
        "--env",
        "GREETING=hi",
        "-e",
        "TERM=dumb",
        "--cwd",
        "/tmp",
        "--user",
        "1000:1000",
        "--additional-gids",
        "5",
        "--cap",
        "CAP_SYS_ADMIN",
        cid,
        "sh",
        "-c",
        "echo $GREETING $TERM; pwd; id -u; id -g; grep CapBnd /proc/self/status",
    )
    assert result.returncode == 0, result
    lines = result.stdout.splitlines()
    assert lines[0] == "hi dumb"
    assert lines[1] == "/tmp"
    assert lines[2:4] == ["1000", "1000"]
    assert int(lines[4].split()[1], 16) & (1 << 21)  # CAP_SYS_ADMIN joined the bounding set


def test_exec_a_process_json(running: tuple[Runtime, str], tmp_path: Path) -> None:
    pyrun, cid = running
    process = {
        "args": ["sh", "-c", "echo $A; pwd; id -u"],
        "env": ["A=from-json", "PATH=/bin"],
        "cwd": "/etc",
        "user": {"uid": 33, "gid": 33},
    }
    path = tmp_path / "process.json"
    path.write_text(json.dumps(process))
    result = pyrun("exec", "--process", str(path), cid)
    assert result.returncode == 0, result
    assert result.stdout.splitlines() == ["from-json", "/etc", "33"]


def test_a_malformed_process_json_reports_every_problem(
    running: tuple[Runtime, str], tmp_path: Path
) -> None:
    pyrun, cid = running
    path = tmp_path / "process.json"
    path.write_text(json.dumps({"cwd": "relative", "user": {"uid": -1}, "env": ["NOEQUALS"]}))
    result = pyrun("exec", "--process", str(path), cid)
    assert result.returncode == 1
    for expected in (
        "args: is required",
        "user.uid: -1 is less than the minimum of 0",
        "cwd: must be an absolute path",
        "env[0]: must be KEY=VALUE",
    ):
        assert expected in result.stderr, result.stderr
    path.write_text("{not json")
    result = pyrun("exec", "--process", str(path), cid)
    assert result.returncode == 1 and "invalid JSON" in result.stderr


def test_exec_of_a_missing_binary_fails_clearly(running: tuple[Runtime, str]) -> None:
    pyrun, cid = running
    result = pyrun("exec", cid, "no-such-binary")
    assert result.returncode == 1
    assert 'exec: "no-such-binary": executable file not found in $PATH' in result.stderr


def test_exec_detached_writes_the_pid_file(running: tuple[Runtime, str], tmp_path: Path) -> None:
    pyrun, cid = running
    pid_file = tmp_path / "exec.pid"
    result = pyrun("exec", "-d", "--pid-file", str(pid_file), cid, "sleep", "30")
    assert result.returncode == 0, result
    pid = int(pid_file.read_text())
    with open(f"/proc/{pid}/cmdline", "rb") as handle:
        assert handle.read().split(b"\0")[:2] == [b"sleep", b"30"]
    assert pid in json.loads(pyrun("ps", "--format", "json", cid).stdout)


def test_exec_into_a_stopped_container_is_refused(pyrun: Runtime, bundles: Bundles) -> None:
    cid = pyrun.id()
    pyrun.ok("run", "-d", "--bundle", str(bundles.make(["true"])), cid)
    for _ in range(50):
        if pyrun.state(cid)["status"] == "stopped":
            break
    result = pyrun("exec", cid, "true")
    assert result.returncode == 1
    assert "cannot exec in a stopped container" in result.stderr
    pyrun.ok("delete", cid)


def test_exec_matches_runc(pyrun: Runtime, runc: Runtime, bundles: Bundles) -> None:
    bundle = bundles.make(["sleep", "120"])
    script = "id; pwd; env | sort; grep -E '^(Cap|NoNewPrivs)' /proc/self/status; umask"
    outputs = {}
    for runtime in (runc, pyrun):
        cid = runtime.id("e")
        runtime.ok("run", "-d", "--bundle", str(bundle), cid)
        result = runtime("exec", "--cwd", "/tmp", "-e", "X=1", cid, "sh", "-c", script)
        assert result.returncode == 0, result
        outputs[runtime.binary] = result.stdout
        runtime.ok("delete", "--force", cid)
    assert outputs[runc.binary] == outputs[pyrun.binary]
