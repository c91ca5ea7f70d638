"""`pyrun create` killed with SIGKILL part way: `delete --force` must undo whatever was made.

Each case starts `pyrun create` with Popen in a process group of its own and SIGKILLs exactly
that pid, either after the k-th `PYRUN_TRACE` phase line (P = pyrun, C1 = bootstrap, C2 = the
container's init; runtime/trace.py) or after a fixed delay. The test process is a child
subreaper meanwhile, so whatever the killed pyrun had forked is re-parented here and can be
watched and reaped by pid. Then, as containerd would: `delete --force ID` exits 0 and leaves no
state dir, no cgroup, no process of the container, no orphan of the killed pyrun, and the id
can be used again.
"""

from __future__ import annotations

import ctypes
import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from tests.conftest import PYRUN, Bundles, Runtime, Shim
from tests.integration.test_lifecycle import (
    SLEEPER,
    alive,
    cgroup_dirs,
    cmdline,
    proc_stat,
    processes_in_cgroup,
    refused,
)

PR_SET_CHILD_SUBREAPER = 36
TRACE_LINE = re.compile(r"^trace +[0-9.]+ (P |C1|C2) (.+)$")
ORPHAN_GRACE_SECONDS = 5.0


class Orphans:
    """This process as a child subreaper: find and reap what gets re-parented to it."""

    def __init__(self, keep: set[int]) -> None:
        # Our own long-lived children (the shim, servers of session fixtures such as the
        # registries) are not orphans of the pyrun under test: never reaped, never killed.
        self.keep: set[int] = set()
        self.keep = keep | set(self.children())
        self.libc = ctypes.CDLL("libc.so.6", use_errno=True)
        assert self.libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0

    def children(self) -> list[int]:
        me = str(os.getpid())
        found = []
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) in self.keep:
                continue
            fields = proc_stat(int(name))
            if fields is not None and fields[1] == me:
                found.append(int(name))
        return sorted(found)

    def reap(self) -> list[int]:
        """Reap every exited child; returns those still alive."""
        living = []
        for pid in self.children():
            try:
                reaped, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                continue
            if reaped == 0:
                living.append(pid)
        return living

    def settle(self, timeout: float = ORPHAN_GRACE_SECONDS) -> list[tuple[int, list[str]]]:
        """Wait for the orphans to exit; those that do not, with their command lines."""
        deadline = time.monotonic() + timeout
        while True:
            living = self.reap()
            if not living or time.monotonic() > deadline:
                break
            time.sleep(0.01)
        described = []
        for pid in living:
            try:
                described.append((pid, cmdline(pid)))
            except OSError:
                described.append((pid, []))
        return described

    def close(self) -> None:
        self.libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
        for pid in self.reap():
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass


@pytest.fixture
def orphans(shim: Shim) -> Iterator[Orphans]:
    watcher = Orphans({shim.proc.pid})
    try:
        yield watcher
    finally:
        watcher.close()


class Drain(threading.Thread):
    """Reads a pipe to EOF (every writer gone), keeping the lines."""

    def __init__(self, stream: object) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.lines: list[str] = []
        self.changed = threading.Condition()
        self.eof = False

    def run(self) -> None:
        for raw in iter(self.stream.readline, b""):  # type: ignore[attr-defined]
            with self.changed:
                self.lines.append(raw.decode(errors="replace").rstrip("\n"))
                self.changed.notify_all()
        with self.changed:
            self.eof = True
            self.changed.notify_all()

    def traces(self) -> list[tuple[str, str]]:
        with self.changed:
            matches = [TRACE_LINE.match(line) for line in self.lines]
        return [(m.group(1).strip(), m.group(2)) for m in matches if m]

    def wait_for_traces(self, count: int, proc: subprocess.Popen[bytes], timeout: float) -> None:
        """Until ``count`` trace lines came, pyrun exited, or the timeout passed."""
        deadline = time.monotonic() + timeout
        with self.changed:
            while len(self.traces_locked()) < count and not self.eof:
                if proc.poll() is not None or time.monotonic() > deadline:
                    return
                self.changed.wait(0.005)

    def traces_locked(self) -> list[str]:
        return [line for line in self.lines if line.startswith("trace ")]


def start_create(
    pyrun: Runtime, bundle: str, container_id: str, trace: bool
) -> tuple[subprocess.Popen[bytes], Drain]:
    env = dict(os.environ)
    env.pop("PYRUN_TRACE", None)
    if trace:
        env["PYRUN_TRACE"] = "1"
    proc = subprocess.Popen(
        [PYRUN, "--root", pyrun.root, "create", "--bundle", bundle, container_id],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
        process_group=0,  # a group of its own: nothing else gets our signal
    )
    drain = Drain(proc.stderr)
    drain.start()
    return proc, drain


def kill_create(proc: subprocess.Popen[bytes]) -> int:
    """SIGKILL that one pid (unless already reaped) and reap it."""
    proc.send_signal(signal.SIGKILL)  # Popen checks it has not reaped the pid already
    return proc.wait(timeout=10)


def assert_cleaned_up(
    pyrun: Runtime,
    container_id: str,
    orphans: Orphans,
    drain: Drain,
    where: str,
    statuses: tuple[str, ...] = ("creating", "created", "stopped"),
) -> None:
    # What a caller sees between the crash and the cleanup: no traceback, a sane status.
    state = pyrun("state", container_id)
    assert "Traceback" not in state.stderr, (where, state)
    if state.returncode == 0:
        assert json.loads(state.stdout)["status"] in statuses, where
    else:
        assert "does not exist" in state.stderr, (where, state)
    listed = pyrun("list", "--format", "json")
    assert listed.returncode == 0, (where, listed)

    result = pyrun("delete", "--force", container_id)
    assert result.returncode == 0, (where, result)
    assert "Traceback" not in result.stderr, (where, result)

    assert not os.path.exists(f"{pyrun.root}/{container_id}"), (where, os.listdir(pyrun.root))
    assert cgroup_dirs(container_id) == [], where
    left = orphans.settle()
    assert left == [], f"{where}: orphans of the killed pyrun still alive: {left}"
    assert processes_in_cgroup(f"/pyrun/{container_id}") == [], where
    drain.join(timeout=5)
    assert not drain.is_alive(), f"{where}: something still holds pyrun's stderr"
    refused(pyrun("state", container_id), "does not exist")
    # Again a cgroup and leftover check, after the orphans have all gone.
    assert cgroup_dirs(container_id) == [], where


def assert_id_reusable(pyrun: Runtime, bundle: str, container_id: str) -> None:
    pyrun.ok("create", "--bundle", bundle, container_id)
    state = pyrun.state(container_id)
    assert state["status"] == "created" and alive(state["pid"])
    pyrun.ok("delete", container_id)
    assert not os.path.exists(f"{pyrun.root}/{container_id}")
    assert cgroup_dirs(container_id) == []


def test_trace_marks_phases_of_all_three_processes(pyrun: Runtime, bundles: Bundles) -> None:
    """The kill points below are only meaningful if the trace covers P, C1 and C2."""
    container_id = pyrun.id()
    result = pyrun(
        "create",
        "--bundle",
        str(bundles.make(SLEEPER)),
        container_id,
        env={**os.environ, "PYRUN_TRACE": "1"},
    )
    assert result.returncode == 0, result
    traces = [TRACE_LINE.match(line) for line in result.stderr.splitlines()]
    assert all(traces), result.stderr
    roles = [m.group(1).strip() for m in traces if m]
    assert set(roles) == {"P", "C1", "C2"}, roles
    assert len(roles) >= 10
    pyrun.ok("delete", container_id)


# The first lines are pyrun's own phases before it forks; the children's interleave after.
KILL_AFTER_LINES = [1, 2, 4, 6, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18]


@pytest.mark.parametrize("after_lines", KILL_AFTER_LINES, ids=lambda k: f"trace{k}")
def test_create_killed_after_trace_line(
    pyrun: Runtime, bundles: Bundles, orphans: Orphans, after_lines: int
) -> None:
    container_id = pyrun.id()
    bundle = str(bundles.make(SLEEPER))
    proc, drain = start_create(pyrun, bundle, container_id, trace=True)
    try:
        drain.wait_for_traces(after_lines, proc, timeout=10)
        status = kill_create(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    seen = drain.traces()
    where = f"killed (status {status}) after {seen[-1] if seen else 'nothing'}"
    assert_cleaned_up(pyrun, container_id, orphans, drain, where)
    assert_id_reusable(pyrun, bundle, container_id)


@pytest.mark.parametrize("delay_ms", [0, 5, 10, 20, 40, 80])
def test_create_killed_after_delay(
    pyrun: Runtime, bundles: Bundles, orphans: Orphans, delay_ms: int
) -> None:
    container_id = pyrun.id()
    bundle = str(bundles.make(SLEEPER))
    proc, drain = start_create(pyrun, bundle, container_id, trace=False)
    try:
        time.sleep(delay_ms / 1000)
        status = kill_create(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    where = f"killed after {delay_ms} ms (status {status})"
    assert_cleaned_up(pyrun, container_id, orphans, drain, where)
    assert_id_reusable(pyrun, bundle, container_id)


def test_a_killed_create_leaves_a_blocked_init_that_delete_force_kills(
    pyrun: Runtime, bundles: Bundles, orphans: Orphans
) -> None:
    """Killed right after init reported Ready: init is blocked on the exec fifo, with no pid
    in the state (or a complete one); delete --force must still find and kill it."""
    container_id = pyrun.id()
    bundle = str(bundles.make(SLEEPER))
    proc, drain = start_create(pyrun, bundle, container_id, trace=True)
    try:
        deadline = time.monotonic() + 10
        while not any(role == "C2" and phase == "ready" for role, phase in drain.traces()):
            assert time.monotonic() < deadline and proc.poll() is None, drain.lines
            time.sleep(0.001)
        kill_create(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    time.sleep(0.05)
    # The init pyrun forked lives on in the cgroup, blocked, now our (the subreaper's) child.
    blocked = processes_in_cgroup(f"/pyrun/{container_id}")
    assert len(blocked) == 1, blocked
    assert blocked[0] in orphans.children()
    assert_cleaned_up(pyrun, container_id, orphans, drain, "killed after C2 ready")
    assert not alive(blocked[0])
    assert_id_reusable(pyrun, bundle, container_id)


def test_racing_creates_of_one_id_make_exactly_one_container(
    pyrun: Runtime, bundles: Bundles, orphans: Orphans
) -> None:
    container_id = pyrun.id()
    bundle = str(bundles.make(SLEEPER))
    racers = [start_create(pyrun, bundle, container_id, trace=False) for _ in range(4)]
    codes = [proc.wait(timeout=30) for proc, _ in racers]
    for _, drain in racers:
        drain.join(timeout=0.5)
    assert sorted(codes) == [0, 1, 1, 1], codes
    losers = [drain for (proc, drain) in racers if proc.returncode == 1]
    for drain in losers:
        assert any("container with given ID already exists" in line for line in drain.lines), (
            drain.lines
        )
    # The winner's container is whole: the losers' cleanup did not touch it.
    state = pyrun.state(container_id)
    assert state["status"] == "created" and alive(state["pid"])
    assert processes_in_cgroup(f"/pyrun/{container_id}") == [state["pid"]]
    pyrun.ok("start", container_id)
    assert pyrun.state(container_id)["status"] == "running"
    pyrun.ok("delete", "--force", container_id)
    assert cgroup_dirs(container_id) == []
    assert orphans.settle() == []


@pytest.mark.parametrize("delay_ms", [0, 10, 30, 60])
def test_delete_killed_part_way_can_be_repeated(
    pyrun: Runtime, bundles: Bundles, orphans: Orphans, delay_ms: int
) -> None:
    container_id = pyrun.id()
    bundle = str(bundles.make(["sh", "-c", "sleep 100 & sleep 100 & wait"]))
    pyrun.ok("run", "--detach", "--bundle", bundle, container_id)
    pids = json.loads(pyrun.ok("ps", "--format", "json", container_id).stdout)
    proc = subprocess.Popen(
        [PYRUN, "--root", pyrun.root, "delete", "--force", container_id],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        process_group=0,
    )
    try:
        time.sleep(delay_ms / 1000)
    finally:
        status = kill_create(proc)
    result = pyrun("delete", "--force", container_id)
    assert result.returncode == 0, (status, result)
    assert not os.path.exists(f"{pyrun.root}/{container_id}")
    assert cgroup_dirs(container_id) == []
    assert processes_in_cgroup(f"/pyrun/{container_id}") == []
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(alive(pid) for pid in pids)
    assert orphans.settle() == []
    assert_id_reusable(pyrun, bundle, container_id)


def test_a_killed_foreground_run_leaves_a_container_delete_force_removes(
    pyrun: Runtime, bundles: Bundles, orphans: Orphans
) -> None:
    container_id = pyrun.id()
    bundle = str(bundles.make(SLEEPER))
    proc = subprocess.Popen(
        [PYRUN, "--root", pyrun.root, "run", "--bundle", bundle, container_id],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        process_group=0,
    )
    drain = Drain(proc.stderr)
    drain.start()
    try:
        deadline = time.monotonic() + 10
        while True:
            result = subprocess.run(
                [PYRUN, "--root", pyrun.root, "state", container_id], capture_output=True
            )
            if result.returncode == 0 and json.loads(result.stdout)["status"] == "running":
                init = json.loads(result.stdout)["pid"]
                break
            assert time.monotonic() < deadline and proc.poll() is None, drain.lines
            time.sleep(0.01)
    finally:
        kill_create(proc)
    # pyrun run was init's subreaper; init now runs on, re-parented to us.
    time.sleep(0.05)
    assert alive(init) and init in orphans.children()
    assert pyrun.state(container_id)["status"] == "running"
    assert_cleaned_up(
        pyrun, container_id, orphans, drain, "run killed while running", statuses=("running",)
    )
    assert not alive(init)


# -- partial and unreadable state, made by hand -----------------------------------------------


def test_a_state_dir_without_state_json_is_removed_by_delete_force(
    pyrun: Runtime, bundles: Bundles
) -> None:
    """What a create killed right after making its directory leaves (runc #4534)."""
    container_id = pyrun.id()
    bundle = str(bundles.make(SLEEPER))
    state_dir = f"{pyrun.root}/{container_id}"
    os.makedirs(state_dir)
    with open(f"{state_dir}/state.json.tmp12345", "w") as handle:
        handle.write('{"id": "half')
    refused(pyrun("state", container_id), "does not exist")
    assert container_id not in pyrun.ok("list", "-q").stdout.split()
    refused(pyrun("create", "--bundle", bundle, container_id), "already exists")
    result = pyrun("delete", "--force", container_id)
    assert result.returncode == 0, result
    assert not os.path.exists(state_dir)
    assert_id_reusable(pyrun, bundle, container_id)


@pytest.mark.parametrize(
    "content",
    ['{"id": "x", "pid": ', "", "[]", "not json at all", '{"pid": 1}', '{"id": "GOOD"}'],
    ids=["truncated", "empty", "array", "text", "no-id", "foreign-id"],
)
def test_an_unreadable_state_json_is_reported_and_delete_force_removes_it(
    pyrun: Runtime, bundles: Bundles, content: str
) -> None:
    good = pyrun.id("good")
    pyrun.ok("create", "--bundle", str(bundles.make(SLEEPER)), good)
    container_id = pyrun.id("bad")
    state_dir = f"{pyrun.root}/{container_id}"
    os.makedirs(state_dir)
    with open(f"{state_dir}/state.json", "w") as handle:
        # foreign-id: the state of another container, whose directory must survive
        handle.write(content.replace("GOOD", good))
    # One bad directory must not break the others' listing.
    listed = pyrun("list", "--format", "json")
    assert listed.returncode == 0, listed
    assert [s["id"] for s in json.loads(listed.stdout)] == [good]
    for verb in ("state", "start", "kill", "delete"):
        result = pyrun(verb, container_id)
        assert result.returncode == 1, result
        assert "Traceback" not in result.stderr, result.stderr[-300:]
        assert container_id in result.stderr, result
    assert os.path.isdir(state_dir)
    result = pyrun("delete", "--force", container_id)
    assert result.returncode == 0, result
    assert not os.path.exists(state_dir)
    assert pyrun.state(good)["status"] == "created"
    pyrun.ok("delete", good)
