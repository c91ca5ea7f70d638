"""OCI hooks: order, namespaces, state on stdin, timeouts and failure semantics (spec v1.3)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Bundles, Runtime, base_config

ALL_KINDS = [
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
]


def _script(path: Path, body: str, shell: str = "/bin/sh") -> Path:
    path.write_text(f"#!{shell}\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def _recording_bundle(bundles: Bundles, tmp_path: Path, args: list[str]) -> tuple[Path, Path]:
    """A bundle whose hooks each append '<kind> <mnt ns> <state json>' to log/hooks.log.

    The log directory is bind-mounted at /hooklog so that startContainer, which runs inside the
    container (its path resolved there), writes to the same file."""
    logdir = tmp_path / "log"
    logdir.mkdir()
    config = base_config(args)
    config["mounts"].append(  # type: ignore[attr-defined]
        {"destination": "/hooklog", "type": "bind", "source": str(logdir), "options": ["rbind"]}
    )
    bundle = bundles.make(config=config, own_rootfs=True)
    body = 'state=$(cat); echo "$1 $(readlink /proc/self/ns/mnt) $state" >> {log}'
    host_hook = _script(tmp_path / "hook.sh", body.format(log=logdir / "hooks.log"))
    _script(bundle / "rootfs" / "hook.sh", body.format(log="/hooklog/hooks.log"))
    hooks: dict[str, list[dict[str, Any]]] = {}
    for kind in ALL_KINDS:
        path = "/hook.sh" if kind == "startContainer" else str(host_hook)
        hooks[kind] = [{"path": path, "args": ["hook.sh", kind], "timeout": 10}]
    config["hooks"] = hooks
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle, logdir / "hooks.log"


def _log(path: Path) -> list[tuple[str, str, dict[str, Any]]]:
    entries = []
    for line in path.read_text().splitlines():
        kind, ns, state = line.split(" ", 2)
        entries.append((kind, ns, json.loads(state)))
    return entries


def test_every_hook_runs_in_order_with_its_state_and_namespace(
    pyrun: Runtime, bundles: Bundles, tmp_path: Path
) -> None:
    bundle, log = _recording_bundle(bundles, tmp_path, ["sleep", "60"])
    cid = pyrun.id()
    pyrun.ok("create", "--bundle", str(bundle), cid)
    pid = pyrun.state(cid)["pid"]
    assert [k for k, _, _ in _log(log)] == ["prestart", "createRuntime", "createContainer"]
    pyrun.ok("start", cid)
    pyrun.ok("kill", cid, "KILL")
    pyrun.ok("delete", cid)
    entries = _log(log)
    assert [k for k, _, _ in entries] == ALL_KINDS
    host_ns = os.readlink("/proc/self/ns/mnt")
    by_kind = {kind: (ns, state) for kind, ns, state in entries}
    for kind in ("prestart", "createRuntime", "poststart", "poststop"):
        assert by_kind[kind][0] == host_ns, f"{kind} must run in the runtime namespace"
    for kind in ("createContainer", "startContainer"):
        assert by_kind[kind][0] != host_ns, f"{kind} must run in the container namespace"
    assert by_kind["createContainer"][0] == by_kind["startContainer"][0]
    statuses = {kind: state["status"] for kind, (_, state) in by_kind.items()}
    assert statuses == {
        "prestart": "creating",
        "createRuntime": "creating",
        "createContainer": "creating",
        "startContainer": "created",
        "poststart": "running",
        "poststop": "stopped",
    }
    for kind, (_, state) in by_kind.items():
        assert state["id"] == cid and state["bundle"] == str(bundle), kind
        if kind != "poststop":
            assert state["pid"] == pid, kind


def test_run_in_the_foreground_runs_every_hook(
    pyrun: Runtime, bundles: Bundles, tmp_path: Path
) -> None:
    bundle, log = _recording_bundle(bundles, tmp_path, ["true"])
    result = pyrun("run", "--bundle", str(bundle), pyrun.id())
    assert result.returncode == 0, result
    assert [k for k, _, _ in _log(log)] == ALL_KINDS


def _bundle_with_hook(
    bundles: Bundles, tmp_path: Path, kind: str, body: str, timeout: int | None = None
) -> Path:
    config = base_config(["sleep", "60"])
    own = kind == "startContainer"
    bundle = bundles.make(config=config, own_rootfs=own)
    hook = _script((bundle / "rootfs" if own else tmp_path) / "hook.sh", body)
    entry: dict[str, Any] = {"path": "/hook.sh" if own else str(hook)}
    if timeout is not None:
        entry["timeout"] = timeout
    config["hooks"] = {kind: [entry]}
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle


@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer"])
def test_a_failing_create_hook_fails_create_and_leaves_nothing(
    pyrun: Runtime, bundles: Bundles, tmp_path: Path, kind: str
) -> None:
    bundle = _bundle_with_hook(bundles, tmp_path, kind, "echo out; echo bad >&2; exit 3")
    cid = pyrun.id()
    result = pyrun("create", "--bundle", str(bundle), cid)
    assert result.returncode == 1
    assert f"error running {kind} hook #0: exit status 3, stdout: out, stderr: bad" in (
        result.stderr
    )
    assert not Path(pyrun.root, cid).exists()
    assert pyrun("state", cid).returncode == 1


def test_a_hanging_hook_is_killed_after_its_timeout(
    pyrun: Runtime, bundles: Bundles, tmp_path: Path
) -> None:
    bundle = _bundle_with_hook(bundles, tmp_path, "createRuntime", "sleep 30", timeout=1)
    cid = pyrun.id()
    result = pyrun("create", "--bundle", str(bundle), cid, timeout=20)
    assert result.returncode == 1
    assert "error running createRuntime hook #0: timeout after 1 seconds" in result.stderr
    assert not Path(pyrun.root, cid).exists()


def test_a_failing_start_container_hook_fails_start(
    pyrun: Runtime, bundles: Bundles, tmp_path: Path
) -> None:
    bundle = _bundle_with_hook(bundles, tmp_path, "startContainer", "echo nope >&2; exit 1")
    cid = pyrun.id()
    pyrun.ok("create", "--bundle", str(bundle), cid)
    result = pyrun("start", cid)
    assert result.returncode == 1
    assert "error running startContainer hook #0: exit status 1" in result.stderr
    assert "stderr: nope" in result.stderr
    assert pyrun.state(cid)["status"] == "stopped"
    pyrun.ok("delete", cid)


def test_a_failing_poststart_hook_fails_start_and_stops_the_container(
    pyrun: Runtime, bundles: Bundles, tmp_path: Path
) -> None:
    bundle = _bundle_with_hook(bundles, tmp_path, "poststart", "exit 2")
    cid = pyrun.id()
    pyrun.ok("create", "--bundle", str(bundle), cid)
    result = pyrun("start", cid)
    assert result.returncode == 1
    assert "error running poststart hook #0: exit status 2" in result.stderr
    states = [pyrun.state(cid)["status"] for _ in range(20)]
    assert states[-1] == "stopped"
    pyrun.ok("delete", cid)


def test_a_failing_poststop_hook_only_warns(
    pyrun: Runtime, bundles: Bundles, tmp_path: Path
) -> None:
    bundle = _bundle_with_hook(bundles, tmp_path, "poststop", "exit 4")
    cid = pyrun.id()
    pyrun.ok("run", "-d", "--bundle", str(bundle), cid)
    pyrun.ok("kill", cid, "KILL")
    result = pyrun("delete", "--force", cid)
    assert result.returncode == 0, result
    assert "warning: error running poststop hook #0: exit status 4" in result.stderr
    assert not Path(pyrun.root, cid).exists()


def test_hook_env_and_args_are_passed_exactly(
    pyrun: Runtime, bundles: Bundles, tmp_path: Path
) -> None:
    out = tmp_path / "out.txt"
    config = base_config(["true"])
    config["hooks"] = {
        # args[0] is the hook's argv[0]; env is exactly the hook's.
        "createRuntime": [
            {
                "path": "/bin/sh",
                "args": ["named", "-c", f"echo $0 > {out}; /usr/bin/env >> {out}"],
                "env": ["GREETING=hi", "PATH=/nowhere"],
            }
        ]
    }
    result = pyrun("run", "--bundle", str(bundles.make(config=config)), pyrun.id())
    assert result.returncode == 0, result
    lines = out.read_text().splitlines()
    assert lines[0] == "named"
    assert sorted(lines[1:]) == ["GREETING=hi", "PATH=/nowhere", "PWD=/"]


def test_hook_order_and_statuses_compared_with_runc(
    pyrun: Runtime, runc: Runtime, bundles: Bundles, tmp_path: Path
) -> None:
    """Same bundle through both: the same hooks, each in the same namespace. The order differs
    in one place: runc 1.1.5 runs poststart as soon as it has released init, racing init's
    startContainer hooks (runc #4347's family); runtime-spec v1.3 puts poststart after the
    user's process has started, which is what pyrun does (asserted in the first test)."""
    seen = {}
    for runtime in (runc, pyrun):
        sub = tmp_path / runtime.prefix
        sub.mkdir()
        bundle, log = _recording_bundle(bundles, sub, ["sleep", "60"])
        cid = runtime.id("h")
        runtime.ok("create", "--bundle", str(bundle), cid)
        runtime.ok("start", cid)
        runtime.ok("kill", cid, "KILL")
        runtime.ok("delete", "--force", cid)
        entries = _log(log)
        host_ns = os.readlink("/proc/self/ns/mnt")
        seen[runtime.binary] = [(kind, ns == host_ns) for kind, ns, _ in entries]
    assert sorted(seen[runc.binary]) == sorted(seen[pyrun.binary])
    assert [kind for kind, _ in seen[pyrun.binary]] == ALL_KINDS


def test_kill_and_delete_while_create_runs_are_refused_and_nothing_is_left(
    pyrun: Runtime, bundles: Bundles, tmp_path: Path
) -> None:
    """A createRuntime hook holds create in the `creating` state for a moment. Everything runs
    in one shell under the test's subreaper, so the container's init is reaped by it."""
    from tests.conftest import PYRUN

    bundle = _bundle_with_hook(bundles, tmp_path, "createRuntime", "sleep 1.5")
    cid = pyrun.id()
    p = f"{PYRUN} --root {pyrun.root}"
    script = f"""
{p} create --bundle {bundle} {cid} & creating=$!
for i in $(seq 200); do {p} state {cid} >/dev/null 2>&1 && break; sleep 0.01; done
{p} state {cid} | grep -o '"status": "[a-z]*"'
{p} kill {cid} KILL; echo "kill=$?"
{p} delete {cid}; echo "delete=$?"
wait $creating; echo "create=$?"
"""
    result = pyrun.shim.run(["sh", "-c", script], timeout=30)
    lines = result.stdout.splitlines()
    assert lines == ['"status": "creating"', "kill=1", "delete=1", "create=0"], result
    assert "container not running" in result.stderr
    assert f"cannot delete container {cid} that is not stopped: creating" in result.stderr
    assert pyrun.state(cid)["status"] == "created"
    pyrun.ok("delete", cid)
    assert not Path(pyrun.root, cid).exists()
