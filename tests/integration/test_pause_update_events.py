"""pause, resume, update, events and features through the CLI, with runc 1.1.5 as the oracle
where both runtimes can run the same sequence.

Observed from outside: the state's status, /proc/<pid>/status ``State``, the freezer and the
limit files in the host's cgroup filesystem (found through /proc/<pid>/cgroup, so runc's
cgroup paths work too), the JSON lines of ``events``, exit codes and the words on stderr.
``events`` streams are run directly (not through the shim: they start no container process)
so the test can stop the container while they run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from runtime.cgroups.probe import parse_proc_cgroup, probe
from tests.conftest import PYRUN, Bundles, Runtime, base_config

MiB = 1024 * 1024
SLEEPER = ["sleep", "100"]
STATS_KEYS = {
    "cpu",
    "cpuset",
    "memory",
    "pids",
    "blkio",
    "hugetlb",
    "intel_rdt",
    "network_interfaces",
}

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="containers need root")


@pytest.fixture(params=["pyrun", "runc"])
def rt(request: pytest.FixtureRequest) -> Runtime:
    """The same test with pyrun and with runc (the oracle)."""
    runtime: Runtime = request.getfixturevalue(request.param)
    return runtime


# -- observations -----------------------------------------------------------------------------


def wait_for(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        time.sleep(0.02)


def status_of(rt: Runtime, container_id: str) -> str:
    return str(rt.state(container_id)["status"])


def wait_status(rt: Runtime, container_id: str, status: str, timeout: float = 5.0) -> None:
    wait_for(lambda: status_of(rt, container_id) == status, timeout, f"{container_id} {status}")


def proc_state(pid: int) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("State:"):
            return line.split()[1]
    raise AssertionError("no State line")


def refused(result: Any, *words: str) -> None:
    assert result.returncode != 0, result
    for word in words:
        assert word in result.stderr, result


class Cgroup:
    """A container's cgroup files as the host sees them, whatever the runtime's paths."""

    def __init__(self, pid: int) -> None:
        self.host = probe()
        self.paths = parse_proc_cgroup(Path(f"/proc/{pid}/cgroup").read_text())

    def dir(self, controller: str) -> Path | None:
        key = controller if controller in self.host.hierarchies else "unified"
        if self.host.version == "v2":
            key = "unified"
        hierarchy = self.host.hierarchies.get(key)
        path = self.paths.get(key)
        if hierarchy is None or path is None:
            return None
        root = hierarchy.root.rstrip("/")
        return Path(hierarchy.mountpoint + path[len(root) :])

    def is_v1(self, controller: str) -> bool:
        return self.host.version != "v2" and controller in self.host.hierarchies

    def read(self, controller: str, v1_name: str, v2_name: str) -> str:
        directory = self.dir(controller)
        assert directory is not None, f"no {controller} hierarchy"
        name = v1_name if self.is_v1(controller) else v2_name
        return (directory / name).read_text().strip()

    def memory_limit(self) -> int:
        text = self.read("memory", "memory.limit_in_bytes", "memory.max")
        return -1 if text == "max" else int(text)

    def pids_max(self) -> str:
        return self.read("pids", "pids.max", "pids.max")

    def cpu_quota_period(self) -> tuple[int, int]:
        if self.is_v1("cpu"):
            quota = int(self.read("cpu", "cpu.cfs_quota_us", ""))
            return quota, int(self.read("cpu", "cpu.cfs_period_us", ""))
        quota_text, period = self.read("cpu", "", "cpu.max").split()
        return (-1 if quota_text == "max" else int(quota_text)), int(period)

    def frozen(self) -> bool:
        if self.is_v1("freezer"):
            return self.read("freezer", "freezer.state", "") == "FROZEN"
        events = self.read("freezer", "", "cgroup.events")
        return "frozen 1" in events.splitlines()


def running(rt: Runtime, bundles: Bundles, name: str = "c", args: list[str] | None = None) -> str:
    container_id = rt.id(name)
    rt.ok("run", "--detach", "--bundle", str(bundles.make(args or SLEEPER)), container_id)
    return container_id


def pid_of(rt: Runtime, container_id: str) -> int:
    return int(rt.state(container_id)["pid"])


# -- pause / resume -------------------------------------------------------------------------------


def test_pause_freezes_every_process_and_resume_thaws_them(rt: Runtime, bundles: Bundles) -> None:
    container_id = running(rt, bundles, args=["sh", "-c", "sleep 100 & sleep 100"])
    pid = pid_of(rt, container_id)
    cgroup = Cgroup(pid)
    wait_for(lambda: len(cgroup_pids(cgroup)) >= 2, what="the processes in the cgroup")
    assert proc_state(pid) == "S" and not cgroup.frozen()

    rt.ok("pause", container_id)
    assert status_of(rt, container_id) == "paused"
    assert cgroup.frozen()
    # Every process, not just init.
    assert all(frozen_task(member, cgroup) for member in cgroup_pids(cgroup))

    rt.ok("resume", container_id)
    assert status_of(rt, container_id) == "running"
    assert not cgroup.frozen()
    wait_for(lambda: proc_state(pid) == "S", what="init sleeping again")
    rt.ok("delete", "--force", container_id)


def cgroup_pids(cgroup: Cgroup) -> list[int]:
    directory = cgroup.dir("freezer")
    assert directory is not None
    return sorted(int(p) for p in (directory / "cgroup.procs").read_text().split())


def frozen_task(pid: int, cgroup: Cgroup) -> bool:
    """The kernel's own word for a frozen task: D on v1, a job-control stop flag on v2."""
    state = proc_state(pid)
    return state == "D" if cgroup.is_v1("freezer") else state in ("S", "T")


def test_pause_and_resume_refusals_use_runcs_words(rt: Runtime, bundles: Bundles) -> None:
    container_id = running(rt, bundles)
    refused(rt("resume", container_id), "container not paused")
    rt.ok("pause", container_id)
    refused(rt("pause", container_id), "container not running")
    refused(rt("delete", container_id), f"cannot delete container {container_id}", "paused")
    rt.ok("resume", container_id)
    rt.ok("kill", container_id, "KILL")
    wait_status(rt, container_id, "stopped")
    refused(rt("pause", container_id), "container not running")
    refused(rt("resume", container_id), "container not paused")
    refused(rt("pause", rt.id("nope")), "does not exist")
    rt.ok("delete", container_id)


def test_a_created_container_can_be_paused_and_must_be_resumed_to_start(
    rt: Runtime, bundles: Bundles
) -> None:
    container_id = rt.id()
    rt.ok("create", "--bundle", str(bundles.make(SLEEPER)), container_id)
    rt.ok("pause", container_id)
    assert status_of(rt, container_id) == "paused"
    refused(rt("start", container_id), "cannot start a container in the paused state")
    rt.ok("resume", container_id)
    assert status_of(rt, container_id) == "created"
    rt.ok("start", container_id)
    assert status_of(rt, container_id) == "running"
    rt.ok("delete", "--force", container_id)


def test_kill_9_and_delete_force_work_on_paused_containers(rt: Runtime, bundles: Bundles) -> None:
    killed = running(rt, bundles, "k")
    rt.ok("pause", killed)
    rt.ok("kill", killed, "KILL")
    wait_status(rt, killed, "stopped")
    rt.ok("delete", killed)

    deleted = running(rt, bundles, "d")
    pid = pid_of(rt, deleted)
    cgroup = Cgroup(pid)
    rt.ok("pause", deleted)
    rt.ok("delete", "--force", deleted, timeout=20)
    wait_for(lambda: not Path(f"/proc/{pid}").exists() or proc_state(pid) == "Z", what="dead")
    assert not os.path.exists(f"{rt.root}/{deleted}")
    freezer = cgroup.dir("freezer")
    assert freezer is not None and not freezer.exists()


def test_kill_term_of_a_paused_container_waits_for_resume(rt: Runtime, bundles: Bundles) -> None:
    container_id = running(rt, bundles, args=["sh", "-c", "trap 'exit 0' TERM; sleep 100 & wait"])
    rt.ok("pause", container_id)
    rt.ok("kill", container_id, "TERM")
    time.sleep(0.3)
    assert status_of(rt, container_id) == "paused"  # pending: a frozen task handles nothing
    rt.ok("resume", container_id)
    wait_status(rt, container_id, "stopped")
    rt.ok("delete", container_id)


# -- update ---------------------------------------------------------------------------------------


def test_update_flags_reach_the_cgroup_files(rt: Runtime, bundles: Bundles) -> None:
    container_id = running(rt, bundles)
    cgroup = Cgroup(pid_of(rt, container_id))
    rt.ok(
        "update",
        "--memory",
        "64m",
        "--memory-swap",
        "128m",
        "--memory-reservation",
        "32m",
        "--cpu-share",
        "512",
        "--cpu-quota",
        "50000",
        "--cpu-period",
        "100000",
        "--pids-limit",
        "20",
        container_id,
    )
    assert cgroup.memory_limit() == 64 * MiB
    assert cgroup.pids_max() == "20"
    assert cgroup.cpu_quota_period() == (50000, 100000)
    if cgroup.is_v1("memory"):
        assert cgroup.read("memory", "memory.memsw.limit_in_bytes", "") == str(128 * MiB)
        assert cgroup.read("memory", "memory.soft_limit_in_bytes", "") == str(32 * MiB)
    if cgroup.is_v1("cpu"):
        assert cgroup.read("cpu", "cpu.shares", "") == "512"

    # A later update changes only what it names; memory goes up past the old swap limit when
    # swap moves with it, and -1 lifts limits.
    rt.ok("update", "--memory", "200m", "--memory-swap", "300m", container_id)
    assert cgroup.memory_limit() == 200 * MiB
    assert cgroup.pids_max() == "20"
    assert cgroup.cpu_quota_period() == (50000, 100000)
    rt.ok("update", "--pids-limit", "-1", "--cpu-quota", "-1", container_id)
    assert cgroup.pids_max() == "max"
    assert cgroup.cpu_quota_period()[0] == -1
    rt.ok("delete", "--force", container_id)


def test_update_remembers_the_merged_resources(pyrun: Runtime, bundles: Bundles) -> None:
    container_id = running(pyrun, bundles)
    pyrun.ok("update", "--memory", "64m", "--cpu-shares", "300", container_id)
    pyrun.ok("update", "--pids-limit", "30", container_id)
    config = json.loads(Path(f"{pyrun.root}/{container_id}/config.json").read_text())
    resources = config["linux"]["resources"]
    assert resources["memory"]["limit"] == 64 * MiB
    assert resources["cpu"]["shares"] == 300
    assert resources["pids"] == {"limit": 30}
    assert resources["devices"], "update must leave the device rules alone"
    # swap alone is checked against the remembered memory limit
    result = pyrun("update", "--memory-swap", "32m", container_id)
    refused(result, "memory.swap: memory+swap limit 33554432 must not be below the memory limit")
    pyrun.ok("delete", "--force", container_id)


def test_update_resources_from_stdin_and_from_a_file(
    rt: Runtime, bundles: Bundles, tmp_path: Path
) -> None:
    container_id = running(rt, bundles)
    cgroup = Cgroup(pid_of(rt, container_id))
    document = {"memory": {"limit": 48 * MiB}, "cpu": {"quota": 20000, "period": 100000}}
    rt.ok("update", "--resources=-", container_id, input=json.dumps(document))
    assert cgroup.memory_limit() == 48 * MiB
    assert cgroup.cpu_quota_period() == (20000, 100000)
    path = tmp_path / "resources.json"
    path.write_text(json.dumps({"pids": {"limit": 12}}))
    rt.ok("update", "-r", str(path), "--pids-limit", "99", container_id)  # flags are ignored
    assert cgroup.pids_max() == "12"
    assert cgroup.memory_limit() == 48 * MiB
    rt.ok("delete", "--force", container_id)


def test_update_reports_invalid_values_and_changes_nothing(rt: Runtime, bundles: Bundles) -> None:
    container_id = running(rt, bundles)
    cgroup = Cgroup(pid_of(rt, container_id))
    before = (cgroup.memory_limit(), cgroup.pids_max(), cgroup.cpu_quota_period())
    refused(rt("update", "--cpu-quota", "abc", container_id), "invalid value for cpu-quota")
    refused(rt("update", "--memory", "12x", container_id), "invalid value for memory")
    result = rt("update", "-r", "-", container_id, input='{"memory": {"limit": "x"}}')
    refused(result, "memory")
    assert (cgroup.memory_limit(), cgroup.pids_max(), cgroup.cpu_quota_period()) == before
    rt.ok("delete", "--force", container_id)


def test_update_lists_every_problem_at_once(pyrun: Runtime, bundles: Bundles) -> None:
    container_id = running(pyrun, bundles)
    cgroup = Cgroup(pid_of(pyrun, container_id))
    before = (cgroup.memory_limit(), cgroup.pids_max())
    result = pyrun(
        "update",
        "--memory",
        "1x",
        "--cpu-quota",
        "abc",
        "--blkio-weight",
        "5",
        "--pids-limit",
        "20",
        container_id,
    )
    refused(
        result,
        "3 problems",
        'invalid value for cpu-quota: strconv.ParseInt: parsing "abc": invalid syntax',
        "invalid value for memory: invalid size: '1x'",
        "--blkio-weight: 5 is less than the minimum of 10",
    )
    document = {"memory": {"limit": "x"}, "cpu": {"shares": -3}, "pids": {}}
    result = pyrun("update", "--resources", "-", container_id, input=json.dumps(document))
    refused(
        result,
        "<stdin>: 3 problems",
        "cpu.shares: -3 is less than the minimum of 0",
        "memory.limit: 'x' is not of type 'integer'",
        "pids.limit: is required",
    )
    refused(pyrun("update", "-r", "-", container_id, input='{"pids":'), "invalid JSON")
    assert (cgroup.memory_limit(), cgroup.pids_max()) == before
    pyrun.ok("delete", "--force", container_id)


def test_update_of_a_stopped_container_is_refused(rt: Runtime, bundles: Bundles) -> None:
    container_id = running(rt, bundles)
    rt.ok("kill", container_id, "KILL")
    wait_status(rt, container_id, "stopped")
    refused(rt("update", "--memory", "64m", container_id), "container not running")
    refused(rt("update", "--memory", "64m", rt.id("nope")), "does not exist")
    rt.ok("delete", container_id)


# -- events ---------------------------------------------------------------------------------------


def stats_of(rt: Runtime, container_id: str) -> dict[str, Any]:
    result = rt.ok("events", "--stats", container_id)
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result
    event = json.loads(lines[0])
    assert list(event) == ["type", "id", "data"]
    assert (event["type"], event["id"]) == ("stats", container_id)
    return dict(event["data"])


def test_events_stats_prints_one_plausible_stats_event(rt: Runtime, bundles: Bundles) -> None:
    container_id = running(rt, bundles, args=["sh", "-c", "sleep 100 & sleep 100"])
    rt.ok("update", "--memory", "64m", "--pids-limit", "20", container_id)
    data = stats_of(rt, container_id)
    assert set(data) == STATS_KEYS
    memory = data["memory"]
    assert {"usage", "swap", "kernel", "kernelTCP"} <= set(memory)
    assert memory["usage"]["limit"] == 64 * MiB
    assert 0 < memory["usage"]["usage"] < 64 * MiB
    assert data["pids"]["limit"] == 20
    assert 2 <= data["pids"]["current"] <= 3  # sh and two sleeps (or sh exec'd the last)
    assert data["cpu"]["usage"]["total"] > 0
    assert {"kernel", "user"} <= set(data["cpu"]["usage"])
    rt.ok("delete", "--force", container_id)


def key_paths(value: Any, prefix: str = "") -> set[str]:
    """Every key path of nested objects, skipping map-like parts (raw counters, hugetlb sizes)."""
    out: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            out.add(prefix + key)
            if key not in ("raw", "hugetlb"):
                out |= key_paths(item, f"{prefix}{key}.")
    return out


def test_events_stats_has_runcs_shape(pyrun: Runtime, runc: Runtime, bundles: Bundles) -> None:
    shapes = []
    for rt in (pyrun, runc):
        container_id = running(rt, bundles, args=SLEEPER)
        rt.ok("update", "--memory", "64m", "--pids-limit", "20", container_id)
        shapes.append(key_paths(stats_of(rt, container_id)))
        rt.ok("delete", "--force", container_id)
    # cpu.throttling is empty until a quota throttles something; usage per cpu and kernel time
    # come and go with the counters being zero (omitempty): compare what is always there.
    volatile = ("cpu.throttling.", "cpu.usage.percpu", "memory.cache", "blkio.")
    mine, theirs = ({p for p in s if not p.startswith(volatile)} for s in shapes)
    assert mine == theirs


def test_events_refusals_use_runcs_words(rt: Runtime, bundles: Bundles) -> None:
    container_id = running(rt, bundles)
    refused(
        rt("events", "--interval", "0s", container_id),
        "duration interval must be greater than 0",
    )
    refused(rt("events", "--interval", "5", container_id), "for flag -interval")
    rt.ok("kill", container_id, "KILL")
    wait_status(rt, container_id, "stopped")
    refused(
        rt("events", "--stats", container_id), f"container with id {container_id} is not running"
    )
    refused(rt("events", "--stats", rt.id("nope")), "does not exist")
    rt.ok("delete", container_id)


class Stream:
    """`pyrun events` running beside the test, its lines collected as they come."""

    def __init__(self, pyrun: Runtime, *args: str) -> None:
        self.proc = subprocess.Popen(
            [PYRUN, "--root", pyrun.root, "events", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def lines(self) -> Iterator[dict[str, Any]]:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            yield json.loads(line)

    def finish(self, timeout: float = 10) -> tuple[int, list[dict[str, Any]], str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, [json.loads(line) for line in out.splitlines()], err

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


def test_events_stream_every_interval_until_the_container_stops(
    pyrun: Runtime, bundles: Bundles
) -> None:
    container_id = running(pyrun, bundles)
    stream = Stream(pyrun, "--interval", "200ms", container_id)
    try:
        started = time.monotonic()
        seen = []
        for event in stream.lines():
            seen.append(event)
            if len(seen) == 3:
                break
        elapsed = time.monotonic() - started
        assert all(e["type"] == "stats" and e["id"] == container_id for e in seen)
        assert all(set(e["data"]) == STATS_KEYS for e in seen)
        assert 0.4 < elapsed < 5, elapsed  # the first after one interval, then every 200 ms
        pyrun.ok("kill", container_id, "KILL")
        code, rest, err = stream.finish()
        assert code == 0, err
        assert err == ""
        assert all(e["type"] == "stats" for e in rest)
    finally:
        stream.kill()
    pyrun.ok("delete", container_id)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_events_ends_cleanly_on_term_and_int(
    pyrun: Runtime, bundles: Bundles, sig: signal.Signals
) -> None:
    container_id = running(pyrun, bundles)
    stream = Stream(pyrun, "--interval", "100ms", container_id)
    try:
        next(stream.lines())
        stream.proc.send_signal(sig)
        code, _, err = stream.finish()
        assert code == 0 and err == "", err
    finally:
        stream.kill()
    assert status_of(pyrun, container_id) == "running"
    pyrun.ok("delete", "--force", container_id)


def test_events_reports_an_oom_kill(pyrun: Runtime, bundles: Bundles) -> None:
    # 64 MiB through a shell variable in a 16 MiB cgroup without swap: the OOM killer ends it.
    hog = 'sleep 1; x=$(head -c 64m /dev/zero | tr "\\0" a); echo ${#x}'
    config = base_config(["sh", "-c", hog], bundles.rootfs)
    config["linux"]["resources"] = {"memory": {"limit": 16 * MiB, "swap": 16 * MiB}}
    container_id = pyrun.id()
    pyrun.ok("run", "--detach", "--bundle", str(bundles.make(config=config)), container_id)
    stream = Stream(pyrun, "--interval", "1s", container_id)
    try:
        code, events, err = stream.finish(timeout=30)
    finally:
        stream.kill()
    assert code == 0, err
    ooms = [e for e in events if e["type"] == "oom"]
    assert ooms and ooms[0] == {"type": "oom", "id": container_id}, events
    assert status_of(pyrun, container_id) == "stopped"
    pyrun.ok("delete", container_id)


# -- features -------------------------------------------------------------------------------------


def test_features_validate_against_the_schema(pyrun: Runtime, runc: Runtime) -> None:
    import jsonschema

    from runtime.spec import load_schema

    validator = jsonschema.Draft202012Validator(load_schema("features"))
    mine = json.loads(pyrun.ok("features").stdout)
    validator.validate(mine)
    theirs = json.loads(runc.ok("features").stdout)
    validator.validate(theirs)  # the schema takes the oracle's document too
    assert set(theirs) - {"annotations"} <= set(mine)
    assert set(theirs["linux"]) <= set(mine["linux"])
    assert set(mine["linux"]["namespaces"]) >= set(theirs["linux"]["namespaces"])
    assert mine["linux"]["capabilities"] == theirs["linux"]["capabilities"]
    assert mine["ociVersionMax"] == "1.2.0"
