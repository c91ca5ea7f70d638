"""The container lifecycle through the CLI, as a caller sees it (create, start, kill, delete,
run, state, list, ps, --log), with runc 1.1.5 run through the same sequences as the oracle.

Everything is asserted from the outside: exit codes, the words on stderr, the files under the
state root, /proc and the cgroup filesystem.
"""

from __future__ import annotations

import datetime
import glob
import json
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PYRUN, REPO, Bundles, Runtime, base_config

# -- observations ---------------------------------------------------------------------------

RFC3339_NANO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$")
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
STATE_KEYS = {"ociVersion", "id", "pid", "status", "bundle", "rootfs", "created", "owner"}
SLEEPER = ["sleep", "100"]
# sh as pid 1 of a pid namespace only gets the signals it has a handler for: trap TERM.
TERM_AWARE = ["sh", "-c", "trap 'exit 0' TERM; sleep 100 & wait"]


def cgroup_dirs(container_id: str) -> list[str]:
    """pyrun's cgroup directories of a container (default path /pyrun/<id>), every hierarchy."""
    return sorted(
        p for p in glob.glob(f"/sys/fs/cgroup/*/pyrun/{container_id}") if os.path.isdir(p)
    )


def proc_stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name: [0] is the state letter."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    return raw[raw.rfind(b")") + 2 :].decode().split()


def alive(pid: int) -> bool:
    fields = proc_stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def cmdline(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().rstrip("\0").split("\0")


def processes_in_cgroup(suffix: str) -> list[int]:
    """Live processes whose /proc/<pid>/cgroup names a cgroup path ending in ``suffix``."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            text = Path(f"/proc/{name}/cgroup").read_text()
        except OSError:
            continue
        paths = [line.split(":", 2)[2] for line in text.splitlines() if line.count(":") >= 2]
        if any(p == suffix or p.endswith(suffix) for p in paths) and alive(int(name)):
            found.append(int(name))
    return sorted(found)


def catches(pid: int, number: int) -> bool:
    """Whether the process has a handler for signal ``number`` (SigCgt in /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (number - 1)))
    return False


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.01)


def wait_status(rt: Runtime, container_id: str, status: str) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    def check() -> bool:
        seen.update(rt.state(container_id))
        return bool(seen["status"] == status)

    wait_for(check, what=f"{container_id} to be {status} (last: {seen})")
    return seen


def assert_gone(rt: Runtime, container_id: str) -> None:
    """Nothing of the container is left: state dir, cgroup dirs, processes, list entry."""
    assert not os.path.exists(f"{rt.root}/{container_id}"), os.listdir(rt.root)
    assert cgroup_dirs(container_id) == []
    assert processes_in_cgroup(f"/{container_id}") == []
    listed = rt.ok("list", "--format", "json").stdout
    ids = [s["id"] for s in (json.loads(listed) or [])]
    assert container_id not in ids


def refused(result: Any, *words: str) -> None:
    assert result.returncode != 0, result
    for word in words:
        assert word in result.stderr, result


def stopped_container(rt: Runtime, bundles: Bundles, name: str = "c") -> str:
    """A container that ran and whose init has died (not deleted)."""
    container_id = rt.id(name)
    rt.ok("run", "--detach", "--bundle", str(bundles.make(SLEEPER)), container_id)
    rt.ok("kill", container_id, "KILL")
    wait_status(rt, container_id, "stopped")
    return container_id


@pytest.fixture(params=["pyrun", "runc"])
def rt(request: pytest.FixtureRequest) -> Runtime:
    """The same test with pyrun and with runc (the oracle)."""
    runtime: Runtime = request.getfixturevalue(request.param)
    return runtime


# -- 1. create -> start -> kill -> delete ---------------------------------------------------


def test_create_leaves_init_blocked_and_writes_the_pid_file(
    pyrun: Runtime, bundles: Bundles, tmp_path: Path
) -> None:
    container_id = pyrun.id()
    pid_dir = tmp_path / "piddir"
    pid_dir.mkdir()
    pid_file = pid_dir / "init.pid"
    pid_file.write_text("stale\n")  # replaced by rename, never rewritten in place
    stale = os.open(pid_file, os.O_RDONLY)
    result = pyrun(
        "create", "--bundle", str(bundles.make(SLEEPER)), "--pid-file", str(pid_file), container_id
    )
    assert result.returncode == 0, result
    assert result.stdout == ""
    state = pyrun.state(container_id)
    assert state["status"] == "created"
    pid = state["pid"]
    assert isinstance(pid, int) and pid > 0
    assert os.path.isdir(f"/proc/{pid}")
    # Blocked in open(exec.fifo): sleeping, and still pyrun's Python, not the user's program.
    # (Ready is sent just before the open, so allow init a moment to get there.)
    wait_for(lambda: proc_stat(pid)[0] == "S", what="init to block")  # type: ignore[index]
    if Path(f"/proc/{pid}/wchan").read_text() not in ("0", ""):  # "0": the kernel hides it
        wait_for(
            lambda: Path(f"/proc/{pid}/wchan").read_text() == "wait_for_partner",
            what="init to wait in fifo_open",
        )
    argv = cmdline(pid)
    assert "python" in os.path.basename(argv[0]) and any("pyrun" in a for a in argv), argv
    assert "python" in os.path.basename(os.readlink(f"/proc/{pid}/exe"))
    # The pid file: a bare integer, no newline, a new inode (temp + rename), no temp file left.
    assert pid_file.read_bytes() == str(pid).encode()
    try:
        assert os.read(stale, 100) == b"stale\n"
        assert os.fstat(stale).st_ino != os.stat(pid_file).st_ino
    finally:
        os.close(stale)
    assert sorted(os.listdir(pid_dir)) == ["init.pid"]
    # The state dir and the cgroup (every hierarchy) exist, with init inside.
    assert os.path.isdir(f"{pyrun.root}/{container_id}")
    dirs = cgroup_dirs(container_id)
    assert dirs, "no cgroup directory /sys/fs/cgroup/*/pyrun/<id>"
    for path in dirs:
        assert str(pid) in Path(f"{path}/cgroup.procs").read_text().split(), path
    assert processes_in_cgroup(f"/pyrun/{container_id}") == [pid]
    pyrun.ok("delete", container_id)
    assert_gone(pyrun, container_id)


@pytest.mark.parametrize(
    ("signal_args", "args"),
    [
        pytest.param([], TERM_AWARE, id="default-TERM"),
        pytest.param(["TERM"], TERM_AWARE, id="TERM"),
        pytest.param(["SIGTERM"], TERM_AWARE, id="SIGTERM"),
        pytest.param(["KILL"], SLEEPER, id="KILL"),
        pytest.param(["SIGKILL"], SLEEPER, id="SIGKILL"),
        pytest.param(["kill"], SLEEPER, id="kill"),
        pytest.param(["9"], SLEEPER, id="9"),
    ],
)
def test_create_start_kill_delete(
    pyrun: Runtime, bundles: Bundles, signal_args: list[str], args: list[str]
) -> None:
    container_id = pyrun.id()
    pyrun.ok("create", "--bundle", str(bundles.make(args)), container_id)
    pid = pyrun.state(container_id)["pid"]
    pyrun.ok("start", container_id)
    state = pyrun.state(container_id)
    assert state["status"] == "running"
    assert state["pid"] == pid
    # The same process now runs the user's program: busybox from the bundle's rootfs (init
    # execs right after handing start its byte, so give it that moment).
    wait_for(lambda: cmdline(pid) == args, what="init to exec the user's program")
    exe = os.stat(f"/proc/{pid}/exe")
    busybox = os.stat(bundles.rootfs / "bin" / "busybox")
    assert (exe.st_dev, exe.st_ino) == (busybox.st_dev, busybox.st_ino)
    assert not os.path.exists(f"{pyrun.root}/{container_id}/exec.fifo")

    if args is TERM_AWARE:  # a TERM before the trap is set would be dropped (pid 1)
        wait_for(lambda: catches(pid, signal.SIGTERM), what="sh to install its TERM trap")
    pyrun.ok("kill", container_id, *signal_args)
    state = wait_status(pyrun, container_id, "stopped")
    assert state["pid"] == 0
    assert not alive(pid)

    pyrun.ok("delete", container_id)
    assert_gone(pyrun, container_id)
    refused(pyrun("state", container_id), "does not exist")


def test_term_to_a_handlerless_pid1_is_ignored_like_runc(rt: Runtime, bundles: Bundles) -> None:
    """The kernel drops signals without a handler sent to a pid namespace's init (except
    KILL/STOP): `kill ID` exits 0 and the container keeps running, with runc as well."""
    container_id = rt.id()
    rt.ok("run", "--detach", "--bundle", str(bundles.make(SLEEPER)), container_id)
    rt.ok("kill", container_id)
    time.sleep(0.1)
    assert rt.state(container_id)["status"] == "running"
    rt.ok("kill", container_id, "KILL")
    wait_status(rt, container_id, "stopped")
    rt.ok("delete", container_id)


# -- 2. refusals, with runc's words ---------------------------------------------------------


def test_duplicate_id_is_refused_and_the_first_is_untouched(rt: Runtime, bundles: Bundles) -> None:
    container_id = rt.id()
    bundle = str(bundles.make(SLEEPER))
    rt.ok("create", "--bundle", bundle, container_id)
    before = rt.state(container_id)
    refused(
        rt("create", "--bundle", bundle, container_id), "container with given ID already exists"
    )
    refused(rt("run", "--bundle", bundle, container_id), "container with given ID already exists")
    after = rt.state(container_id)
    assert after == before
    assert after["status"] == "created" and alive(after["pid"])
    rt.ok("start", container_id)
    assert rt.state(container_id)["status"] == "running"
    rt.ok("delete", "--force", container_id)


def test_start_twice_is_refused(rt: Runtime, bundles: Bundles) -> None:
    container_id = rt.id()
    rt.ok("create", "--bundle", str(bundles.make(SLEEPER)), container_id)
    rt.ok("start", container_id)
    refused(rt("start", container_id), "cannot start an already running container")
    assert rt.state(container_id)["status"] == "running"
    rt.ok("delete", "--force", container_id)


@pytest.mark.timeout(60)
def test_concurrent_starts_start_once_and_never_hang(pyrun: Runtime, bundles: Bundles) -> None:
    """Racing `start`s: exactly one wins, the others are refused promptly (none spins)."""
    bundle = str(bundles.make(SLEEPER))
    for round_ in range(3):
        container_id = pyrun.id(f"r{round_}")
        pyrun.ok("create", "--bundle", bundle, container_id)
        starters = [
            subprocess.Popen(
                [PYRUN, "--root", pyrun.root, "start", container_id],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                process_group=0,
            )
            for _ in range(6)
        ]
        outcomes = []
        for proc in starters:
            try:
                proc.wait(timeout=5)
                outcomes.append((proc.returncode, proc.communicate()[1].decode()))
            except subprocess.TimeoutExpired:
                outcomes.append((None, "hung"))
                proc.kill()
                proc.communicate()
        assert [code for code, _ in outcomes].count(0) == 1, outcomes
        for code, stderr in outcomes:
            if code != 0:
                assert code == 1 and "cannot start an already running container" in stderr, outcomes
        assert pyrun.state(container_id)["status"] == "running"
        pyrun.ok("delete", "--force", container_id)


def test_a_start_that_lost_the_race_is_refused_once_the_fifo_is_gone(
    pyrun: Runtime, bundles: Bundles
) -> None:
    """The loser of a start race opened exec.fifo after init had written to it: it must give
    up when the winner removes the fifo, not wait forever. The test plays the winner."""
    import select

    container_id = pyrun.id()
    pyrun.ok("create", "--bundle", str(bundles.make(SLEEPER)), container_id)
    pid = pyrun.state(container_id)["pid"]
    fifo = f"{pyrun.root}/{container_id}/exec.fifo"
    fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        assert poller.poll(5000), "init never wrote to exec.fifo"
        assert os.read(fd, 1) == b"0"
        wait_for(lambda: cmdline(pid) == SLEEPER, what="init to exec the user's program")
        loser = subprocess.Popen(
            [PYRUN, "--root", pyrun.root, "start", container_id],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            process_group=0,
        )
        try:
            wait_for(
                lambda: (
                    any(
                        os.readlink(f"/proc/{loser.pid}/fd/{n}") == fifo
                        for n in os.listdir(f"/proc/{loser.pid}/fd")
                    )
                    or loser.poll() is not None
                ),
                what="the loser to open the fifo",
            )
        finally:
            os.unlink(fifo)  # what the winner does after reading the byte
        try:
            code = loser.wait(timeout=5)
        finally:
            if loser.poll() is None:
                loser.kill()
            _, err = loser.communicate()
        assert code == 1, err
        assert b"cannot start an already running container" in err
    finally:
        os.close(fd)
    assert pyrun.state(container_id)["status"] == "running"
    pyrun.ok("delete", "--force", container_id)


def test_start_of_a_stopped_container_is_refused(rt: Runtime, bundles: Bundles) -> None:
    container_id = stopped_container(rt, bundles)
    refused(rt("start", container_id), "cannot start a container that has stopped")
    rt.ok("delete", container_id)


def test_kill_of_a_stopped_container_is_refused_but_kill_all_is_not(
    rt: Runtime, bundles: Bundles
) -> None:
    container_id = stopped_container(rt, bundles)
    refused(rt("kill", container_id, "KILL"), "container not running")
    result = rt("kill", "--all", container_id, "KILL")
    assert result.returncode == 0, result
    assert rt.state(container_id)["status"] == "stopped"
    rt.ok("delete", container_id)


def test_delete_of_a_running_container_needs_force(rt: Runtime, bundles: Bundles) -> None:
    container_id = rt.id()
    rt.ok("run", "--detach", "--bundle", str(bundles.make(SLEEPER)), container_id)
    pid = rt.state(container_id)["pid"]
    refused(
        rt("delete", container_id),
        f"cannot delete container {container_id} that is not stopped: running",
    )
    assert rt.state(container_id)["status"] == "running" and alive(pid)
    rt.ok("delete", "--force", container_id)
    wait_for(lambda: not alive(pid), what=f"pid {pid} to die")
    refused(rt("state", container_id), "does not exist")


def test_delete_of_a_created_container_kills_it(rt: Runtime, bundles: Bundles) -> None:
    container_id = rt.id()
    rt.ok("create", "--bundle", str(bundles.make(SLEEPER)), container_id)
    pid = rt.state(container_id)["pid"]
    result = rt("delete", container_id)
    assert result.returncode == 0, result
    wait_for(lambda: not alive(pid), what=f"pid {pid} to die")
    refused(rt("state", container_id), "does not exist")
    assert not os.path.exists(f"{rt.root}/{container_id}")


def test_kill_all_of_a_created_container_stops_it(rt: Runtime, bundles: Bundles) -> None:
    container_id = rt.id()
    rt.ok("create", "--bundle", str(bundles.make(SLEEPER)), container_id)
    pid = rt.state(container_id)["pid"]
    rt.ok("kill", "--all", container_id, "KILL")
    wait_for(lambda: not alive(pid), what=f"pid {pid} to die")
    assert rt.state(container_id)["status"] == "stopped"
    refused(rt("start", container_id), "cannot start a container that has stopped")
    rt.ok("delete", container_id)


def test_signal_zero_only_checks_that_init_exists(rt: Runtime, bundles: Bundles) -> None:
    """runc passes signal 0 through (kill(2)'s existence check)."""
    container_id = rt.id()
    rt.ok("create", "--bundle", str(bundles.make(SLEEPER)), container_id)
    result = rt("kill", container_id, "0")
    assert result.returncode == 0, result
    state = rt.state(container_id)
    assert state["status"] == "created" and alive(state["pid"])
    rt.ok("kill", container_id, "KILL")
    wait_status(rt, container_id, "stopped")
    refused(rt("kill", container_id, "0"), "container not running")
    rt.ok("delete", container_id)


def test_a_pid_file_that_cannot_be_written_fails_create_and_leaves_nothing(
    rt: Runtime, bundles: Bundles, tmp_path: Path
) -> None:
    container_id = rt.id()
    pid_file = tmp_path / "missing-dir" / "init.pid"
    result = rt(
        "create", "--bundle", str(bundles.make(SLEEPER)), "--pid-file", str(pid_file), container_id
    )
    assert result.returncode == 1, result
    assert "no such file or directory" in result.stderr
    assert not pid_file.parent.exists()
    refused(rt("state", container_id), "does not exist")
    assert not os.path.exists(f"{rt.root}/{container_id}")
    assert processes_in_cgroup(f"/{container_id}") == []
    assert cgroup_dirs(container_id) == []


def test_a_relative_pid_file_is_relative_to_the_callers_directory(
    rt: Runtime, bundles: Bundles, tmp_path: Path
) -> None:
    container_id = rt.id()
    rt.ok(
        "create",
        "--bundle",
        str(bundles.make(SLEEPER)),
        "--pid-file",
        "rel.pid",
        container_id,
        cwd=str(tmp_path),
    )
    assert (tmp_path / "rel.pid").read_text() == str(rt.state(container_id)["pid"])
    rt.ok("delete", container_id)


@pytest.mark.parametrize("verb", ["state", "start", "kill", "delete", "ps"])
def test_unknown_id_does_not_exist(rt: Runtime, verb: str) -> None:
    refused(rt(verb, rt.id("missing")), "does not exist")


def test_delete_force_of_an_unknown_id_succeeds(rt: Runtime) -> None:
    result = rt("delete", "--force", rt.id("missing"))
    assert result.returncode == 0, result
    assert result.stderr == ""


# -- 3. run in the foreground and detached --------------------------------------------------


@pytest.mark.parametrize("code", [0, 3, 255])
def test_run_passes_the_exit_code_through(rt: Runtime, bundles: Bundles, code: int) -> None:
    container_id = rt.id()
    result = rt("run", "--bundle", str(bundles.make(["sh", "-c", f"exit {code}"])), container_id)
    assert result.returncode == code, result
    assert rt.ok("list", "--format", "json").stdout.strip() == "null"
    assert not os.path.exists(f"{rt.root}/{container_id}")


def _without_pid_namespace(args: list[str]) -> dict[str, Any]:
    config = base_config(args)
    namespaces = config["linux"]["namespaces"]
    config["linux"]["namespaces"] = [ns for ns in namespaces if ns["type"] != "pid"]
    return config


@pytest.mark.parametrize(("name", "number"), [("9", 9), ("TERM", 15), ("USR1", 10)])
def test_run_exits_128_plus_n_when_init_kills_itself(
    rt: Runtime, bundles: Bundles, name: str, number: int
) -> None:
    # Without a pid namespace sh is not a namespace init, so its own signal reaches it.
    bundle = bundles.make(config=_without_pid_namespace(["sh", "-c", f"kill -{name} $$"]))
    result = rt("run", "--bundle", str(bundle), rt.id())
    assert result.returncode == 128 + number, result


def test_run_kill_self_as_pid1_is_ignored_like_runc(rt: Runtime, bundles: Bundles) -> None:
    """`kill -9 $$` from pid 1 of a pid namespace does nothing (kernel rule): exit 0."""
    result = rt("run", "--bundle", str(bundles.make(["sh", "-c", "kill -9 $$"])), rt.id())
    assert result.returncode == 0, result


def _popen_run(pyrun: Runtime, bundle: Path, container_id: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [PYRUN, "--root", pyrun.root, "run", "--bundle", str(bundle), container_id],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        process_group=0,
    )


def _running_pid(pyrun: Runtime, container_id: str, proc: subprocess.Popen[bytes]) -> int:
    pid = 0

    def running() -> bool:
        nonlocal pid
        assert proc.poll() is None, proc.communicate()
        result = subprocess.run(
            [PYRUN, "--root", pyrun.root, "state", container_id], capture_output=True, text=True
        )
        if result.returncode != 0:
            return False
        state = json.loads(result.stdout)
        pid = state["pid"]
        return bool(state["status"] == "running")

    wait_for(running, what=f"{container_id} to run")
    return pid


def test_run_exits_137_when_init_is_killed_from_outside(pyrun: Runtime, bundles: Bundles) -> None:
    container_id = pyrun.id()
    proc = _popen_run(pyrun, bundles.make(SLEEPER), container_id)
    try:
        pid = _running_pid(pyrun, container_id, proc)
        os.kill(pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == 137
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert_gone(pyrun, container_id)


def test_run_forwards_signals_to_init(pyrun: Runtime, bundles: Bundles) -> None:
    container_id = pyrun.id()
    bundle = bundles.make(["sh", "-c", "trap 'echo got TERM; exit 7' TERM; sleep 100 & wait"])
    proc = _popen_run(pyrun, bundle, container_id)
    try:
        init = _running_pid(pyrun, container_id, proc)
        wait_for(lambda: catches(init, signal.SIGTERM), what="sh to install its TERM trap")
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=10) == 7
        out, _ = proc.communicate()
        assert out == b"got TERM\n"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert_gone(pyrun, container_id)


def test_run_passes_stdout_and_stderr_through(rt: Runtime, bundles: Bundles) -> None:
    bundle = bundles.make(["sh", "-c", "echo to-out; echo to-err >&2; echo more-out"])
    result = rt("run", "--bundle", str(bundle), rt.id())
    assert result.returncode == 0, result
    assert result.stdout == "to-out\nmore-out\n"
    assert result.stderr == "to-err\n"


def test_run_passes_stdin_through(rt: Runtime, bundles: Bundles) -> None:
    text = "first line\nsecond line\n" + "x" * 20000 + "\n"
    result = rt("run", "--bundle", str(bundles.make(["cat"])), rt.id(), input=text)
    assert result.returncode == 0, result.stderr
    assert result.stdout == text


def test_run_detach_returns_while_the_container_runs(
    pyrun: Runtime, bundles: Bundles, tmp_path: Path
) -> None:
    container_id = pyrun.id()
    pid_file = tmp_path / "run.pid"
    started = time.monotonic()
    result = pyrun(
        "run",
        "--detach",
        "--pid-file",
        str(pid_file),
        "--bundle",
        str(bundles.make(SLEEPER)),
        container_id,
    )
    assert result.returncode == 0, result
    assert time.monotonic() - started < 10
    state = pyrun.state(container_id)
    assert state["status"] == "running"
    assert pid_file.read_bytes() == str(state["pid"]).encode()
    wait_for(lambda: cmdline(state["pid"]) == SLEEPER, what="init to exec sleep")
    pyrun.ok("kill", container_id, "KILL")
    wait_status(pyrun, container_id, "stopped")
    pyrun.ok("delete", container_id)
    assert_gone(pyrun, container_id)


def test_run_foreground_writes_the_pid_file(rt: Runtime, bundles: Bundles, tmp_path: Path) -> None:
    pid_file = tmp_path / "fg.pid"
    bundle = bundles.make(["sh", "-c", "echo ran"])
    result = rt("run", "--pid-file", str(pid_file), "--bundle", str(bundle), rt.id())
    assert result.returncode == 0, result
    assert result.stdout == "ran\n"
    assert re.fullmatch(rb"[1-9][0-9]*", pid_file.read_bytes())


# -- 4. short forms and config formats ------------------------------------------------------


def test_run_with_a_bundle_path_uses_the_directory_name_as_id(
    pyrun: Runtime, bundles: Bundles
) -> None:
    container_id = pyrun.id("short")
    bundle = bundles.make(["sh", "-c", "echo short form; exit 4"], name=container_id)
    result = pyrun("run", str(bundle))
    assert result.returncode == 4, result
    assert result.stdout == "short form\n"
    # Detached, the id is visible.
    pyrun.ok("run", "--detach", str(bundle))
    state = pyrun.state(container_id)
    assert state["id"] == container_id and state["bundle"] == str(bundle)
    pyrun.ok("delete", "--force", container_id)
    assert_gone(pyrun, container_id)


def test_create_with_a_bundle_path(pyrun: Runtime, bundles: Bundles) -> None:
    container_id = pyrun.id("short")
    bundle = bundles.make(SLEEPER, name=container_id)
    pyrun.ok("create", str(bundle))
    state = pyrun.state(container_id)
    assert state["status"] == "created" and state["bundle"] == str(bundle)
    pyrun.ok("delete", container_id)
    assert_gone(pyrun, container_id)


def test_create_id_in_the_bundle_directory(rt: Runtime, bundles: Bundles) -> None:
    """runc's own form: no --bundle, the current directory is the bundle."""
    container_id = rt.id()
    bundle = bundles.make(SLEEPER)
    result = rt("create", container_id, cwd=str(bundle))
    assert result.returncode == 0, result
    assert rt.state(container_id)["bundle"] == str(bundle)
    rt.ok("delete", container_id)


def test_a_yaml_bundle_runs(pyrun: Runtime, bundles: Bundles) -> None:
    bundle = bundles.make(["sh", "-c", "echo from yaml; exit 5"], fmt="yaml")
    assert sorted(os.listdir(bundle)) == ["config.yaml"]
    result = pyrun("run", "--bundle", str(bundle), pyrun.id())
    assert result.returncode == 5, result
    assert result.stdout == "from yaml\n"


@pytest.mark.parametrize("verb", ["create", "run"])
def test_both_config_json_and_yaml_are_refused(pyrun: Runtime, bundles: Bundles, verb: str) -> None:
    container_id = pyrun.id()
    bundle = bundles.make(["true"])
    (bundle / "config.yaml").write_text((bundle / "config.json").read_text())
    result = pyrun(verb, "--bundle", str(bundle), container_id)
    assert result.returncode == 1, result
    assert "config.json" in result.stderr and "config.yaml" in result.stderr
    assert "Traceback" not in result.stderr
    assert not os.path.exists(f"{pyrun.root}/{container_id}")
    assert cgroup_dirs(container_id) == []
    assert pyrun.ok("list", "--format", "json").stdout.strip() == "null"


# -- 5. list and ps -------------------------------------------------------------------------


def test_list_table_quiet_and_json(rt: Runtime, bundles: Bundles) -> None:
    empty = rt.ok("list", "--format", "json").stdout
    assert empty.strip() == "null"
    table = rt.ok("list").stdout.splitlines()
    assert table[0].split() == ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"]
    assert table[1:] == []
    assert rt.ok("list", "-q").stdout == ""

    created, running = rt.id("a"), rt.id("b")
    rt.ok("create", "--bundle", str(bundles.make(SLEEPER)), created)
    rt.ok("run", "--detach", "--bundle", str(bundles.make(SLEEPER)), running)
    states = {cid: rt.state(cid) for cid in (created, running)}

    assert sorted(rt.ok("list", "-q").stdout.split()) == sorted(states)
    listed = json.loads(rt.ok("list", "--format", "json").stdout)
    assert isinstance(listed, list) and len(listed) == 2
    for entry in listed:
        state = states[entry["id"]]
        assert set(entry) == set(state)
        assert {k: v for k, v in entry.items() if k != "owner"} == {
            k: v for k, v in state.items() if k != "owner"
        }
        # runc's list (unlike its state) names the user owning the state directory.
        assert state["owner"] == "" and entry["owner"] == "root"
    rows = [line.split() for line in rt.ok("list").stdout.splitlines()[1:]]
    assert sorted((r[0], int(r[1]), r[2], r[3]) for r in rows) == sorted(
        (s["id"], s["pid"], s["status"], s["bundle"]) for s in states.values()
    )
    assert {r[5] for r in rows} == {"root"}
    for cid in states:
        rt.ok("delete", "--force", cid)
    assert rt.ok("list", "--format", "json").stdout.strip() == "null"


def test_ps_lists_every_process_of_the_container(rt: Runtime, bundles: Bundles) -> None:
    container_id = rt.id()
    bundle = bundles.make(["sh", "-c", "sleep 100 & sleep 100 & wait"])
    rt.ok("run", "--detach", "--bundle", str(bundle), container_id)
    init = rt.state(container_id)["pid"]

    def three() -> bool:
        found = json.loads(rt.ok("ps", "--format", "json", container_id).stdout)
        return sorted(cmdline(p)[0] for p in found) == ["sh", "sleep", "sleep"]

    wait_for(three, what="sh and its two sleeps")
    pids = json.loads(rt.ok("ps", "--format", "json", container_id).stdout)
    assert init in pids
    assert all(isinstance(p, int) for p in pids)
    assert sorted(cmdline(p)[0] for p in pids) == ["sh", "sleep", "sleep"]
    children = [p for p in pids if p != init]
    assert all(proc_stat(p)[1] == str(init) for p in children)  # type: ignore[index]

    table = rt.ok("ps", container_id).stdout.splitlines()
    header = table[0].split()
    assert "PID" in header
    column = header.index("PID")
    assert sorted(int(line.split()[column]) for line in table[1:]) == sorted(pids)

    rt.ok("kill", "--all", container_id, "KILL")
    wait_status(rt, container_id, "stopped")
    wait_for(lambda: not any(alive(p) for p in pids), what="all processes to die")
    assert json.loads(rt.ok("ps", "--format", "json", container_id).stdout) in ([], None)
    rt.ok("delete", container_id)


# -- 6. --log -------------------------------------------------------------------------------


def _failing_commands(bundles: Bundles, container_id: str) -> dict[str, list[str]]:
    bad = base_config(["sh"])
    bad["process"]["cwd"] = "relative"
    bad["linux"]["namespaces"].append({"type": "bogus"})
    return {
        "state-unknown": ["state", container_id],
        "kill-unknown": ["kill", container_id, "KILL"],
        "create-invalid-config": [
            "create",
            "--bundle",
            str(bundles.make(config=bad)),
            container_id,
        ],
        "create-missing-binary": [
            "create",
            "--bundle",
            str(bundles.make(["no-such-binary"])),
            container_id,
        ],
    }


FAILING = ["state-unknown", "kill-unknown", "create-invalid-config", "create-missing-binary"]


@pytest.mark.parametrize("case", FAILING)
def test_log_json_gets_one_error_line_per_failure(
    pyrun: Runtime, bundles: Bundles, tmp_path: Path, case: str
) -> None:
    log = tmp_path / "log.json"
    argv = _failing_commands(bundles, pyrun.id())[case]
    result = pyrun(*argv, global_args=["--log", str(log), "--log-format", "json"])
    assert result.returncode == 1, result
    lines = log.read_text().splitlines()
    assert len(lines) == 1, lines
    entry = json.loads(lines[0])
    assert isinstance(entry, dict)
    assert set(entry) == {"level", "msg", "time"}
    assert entry["level"] == "error"
    assert entry["msg"]
    assert RFC3339.match(entry["time"]), entry
    datetime.datetime.fromisoformat(entry["time"].replace("Z", "+00:00"))
    # The message also reaches stderr.
    assert entry["msg"].splitlines()[0] in result.stderr
    # podman reads a JSON log file as ONE object.
    assert json.loads(log.read_text()) == entry


@pytest.mark.parametrize("case", FAILING)
def test_log_text_gets_one_logrus_line_per_failure(
    pyrun: Runtime, bundles: Bundles, tmp_path: Path, case: str
) -> None:
    log = tmp_path / "log.txt"
    argv = _failing_commands(bundles, pyrun.id())[case]
    result = pyrun(*argv, global_args=["--log", str(log)])
    assert result.returncode == 1, result
    lines = log.read_text().splitlines()
    assert len(lines) == 1, lines
    match = re.fullmatch(r'time="([^"]+)" level=error msg=(".*")', lines[0])
    assert match, lines[0]
    assert RFC3339.match(match.group(1))
    message = json.loads(match.group(2))
    assert message.splitlines()[0] in result.stderr


def test_log_gets_nothing_on_success_and_runc_uses_the_same_keys(
    pyrun: Runtime, runc: Runtime, bundles: Bundles, tmp_path: Path
) -> None:
    container_id = pyrun.id()
    log = tmp_path / "ok.json"
    flags = ["--log", str(log), "--log-format", "json"]
    bundle = str(bundles.make(["true"]))
    pyrun.ok("run", "--bundle", bundle, container_id, global_args=flags)
    assert not log.exists() or log.read_text() == ""
    runc_log = tmp_path / "runc.json"
    refused(
        runc(
            "state",
            runc.id("missing"),
            global_args=["--log", str(runc_log), "--log-format", "json"],
        )
    )
    pyrun_log = tmp_path / "pyrun.json"
    refused(
        pyrun(
            "state",
            pyrun.id("missing"),
            global_args=["--log", str(pyrun_log), "--log-format", "json"],
        )
    )
    runc_entry = json.loads(runc_log.read_text().splitlines()[-1])
    pyrun_entry = json.loads(pyrun_log.read_text())
    assert set(pyrun_entry) == set(runc_entry) == {"level", "msg", "time"}
    assert pyrun_entry["level"] == runc_entry["level"] == "error"
    assert "does not exist" in pyrun_entry["msg"] and "does not exist" in runc_entry["msg"]


# -- 7. state -------------------------------------------------------------------------------


def _state_schema_validator() -> Any:
    import jsonschema

    schema = json.loads((REPO / "schema" / "state.schema.json").read_text())
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


@pytest.mark.parametrize("annotations", [False, True], ids=["plain", "annotated"])
def test_state_document_matches_runc_and_the_schema(
    pyrun: Runtime, runc: Runtime, bundles: Bundles, annotations: bool
) -> None:
    config = base_config(SLEEPER)
    if annotations:
        config["annotations"] = {"org.example.key": "value", "other": ""}
    bundle = str(bundles.make(config=config))
    validator = _state_schema_validator()
    expected = STATE_KEYS | ({"annotations"} if annotations else set())
    documents: dict[str, list[dict[str, Any]]] = {}
    for rt in (pyrun, runc):
        container_id = rt.id()
        rt.ok("create", "--bundle", bundle, container_id)
        created = rt.state(container_id)
        rt.ok("start", container_id)
        running = rt.state(container_id)
        rt.ok("kill", container_id, "KILL")
        stopped = wait_status(rt, container_id, "stopped")
        documents[rt.binary] = [created, running, stopped]
        rt.ok("delete", container_id)
    ours = documents[pyrun.binary]
    theirs = documents[runc.binary]
    for mine, other in zip(ours, theirs, strict=True):
        assert set(mine) == set(other) == expected
        assert mine["status"] == other["status"]
        assert (mine["pid"] == 0) == (other["pid"] == 0)
        assert mine["bundle"] == other["bundle"] == bundle
        assert mine["rootfs"] == other["rootfs"] == str(bundles.rootfs)
        assert mine["owner"] == other["owner"]
        if annotations:
            assert mine["annotations"] == other["annotations"] == config["annotations"]
    for document in ours:
        errors = sorted(e.message for e in validator.iter_errors(document))
        assert errors == [], document
        assert RFC3339_NANO.match(document["created"]), document
        assert isinstance(document["pid"], int)
    assert [d["status"] for d in ours] == ["created", "running", "stopped"]
    assert ours[0]["pid"] == ours[1]["pid"] > 0 and ours[2]["pid"] == 0
    assert ours[0]["created"] == ours[1]["created"] == ours[2]["created"]
    assert ours[0]["ociVersion"] == config["ociVersion"]


def test_state_created_time_is_now(pyrun: Runtime, bundles: Bundles) -> None:
    container_id = pyrun.id()
    before = datetime.datetime.now(datetime.UTC)
    pyrun.ok("create", "--bundle", str(bundles.make(SLEEPER)), container_id)
    after = datetime.datetime.now(datetime.UTC)
    created = pyrun.state(container_id)["created"]
    # fromisoformat keeps microseconds only: cut the nanoseconds.
    text = re.sub(r"(\.\d{1,6})\d*Z$", r"\1+00:00", created).replace("Z", "+00:00")
    when = datetime.datetime.fromisoformat(text)
    slack = datetime.timedelta(seconds=1)
    assert before - slack <= when <= after + slack
    pyrun.ok("delete", container_id)
