"""Signals as callers use them: kill of created and running containers, forwarding in `run`.

Each case runs through runc too, and both must agree on what the container's state becomes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.conftest import PYRUN, Bundles, Runtime, base_config


def _status_after(runtime: Runtime, cid: str, deadline: float = 3.0) -> str:
    end = time.monotonic() + deadline
    status = ""
    while time.monotonic() < end:
        status = str(runtime.state(cid)["status"])
        if status == "stopped":
            break
        time.sleep(0.05)
    return status


@pytest.mark.parametrize(
    ("sig", "expected"),
    [
        ("TERM", "stopped"),
        ("INT", "stopped"),
        ("HUP", "stopped"),
        ("QUIT", "stopped"),
        ("KILL", "stopped"),
        ("USR1", "created"),
        ("USR2", "created"),
        ("WINCH", "created"),
    ],
)
def test_kill_of_a_created_container_like_runc(
    pyrun: Runtime, runc: Runtime, bundles: Bundles, sig: str, expected: str
) -> None:
    """runc's waiting init exits on TERM/INT/HUP/QUIT and ignores USR1, USR2, WINCH..."""
    bundle = bundles.make(["sleep", "60"])
    for runtime in (runc, pyrun):
        cid = runtime.id(sig.lower())
        runtime.ok("create", "--bundle", str(bundle), cid)
        runtime.ok("kill", cid, sig)
        deadline = 3.0 if expected == "stopped" else 0.3
        assert _status_after(runtime, cid, deadline) == expected, runtime.binary
        runtime.ok("delete", "--force", cid)


def test_pid1_without_a_handler_ignores_term_in_both_runtimes(
    pyrun: Runtime, runc: Runtime, bundles: Bundles
) -> None:
    """The kernel protects a namespace's init: TERM to `sleep` as pid 1 does nothing."""
    bundle = bundles.make(["sleep", "60"])
    for runtime in (runc, pyrun):
        cid = runtime.id("p1")
        runtime.ok("run", "-d", "--bundle", str(bundle), cid)
        runtime.ok("kill", cid, "TERM")
        time.sleep(0.3)
        assert runtime.state(cid)["status"] == "running", runtime.binary
        runtime.ok("kill", cid, "KILL")
        assert _status_after(runtime, cid) == "stopped"
        runtime.ok("delete", cid)


def test_foreground_run_forwards_signals_to_the_container(pyrun: Runtime, bundles: Bundles) -> None:
    script = "trap 'echo caught TERM; exit 42' TERM; echo ready; while :; do sleep 0.05; done"
    bundle = bundles.make(["sh", "-c", script])
    # Started directly (not through the shim) so that the test can signal pyrun itself.
    process = subprocess.Popen(
        [PYRUN, "--root", pyrun.root, "run", "--bundle", str(bundle), pyrun.id("fw")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "ready\n"
        os.kill(process.pid, signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 42, err
    assert out == "caught TERM\n"


def test_foreground_run_reports_death_by_signal_as_128_plus_n(
    pyrun: Runtime, bundles: Bundles
) -> None:
    config = base_config(["sh", "-c", "kill -KILL $$"])
    # Without a pid namespace the shell is not a protected init and dies of its own SIGKILL.
    config["linux"]["namespaces"] = [  # type: ignore[index]
        ns
        for ns in config["linux"]["namespaces"]  # type: ignore[index]
        if ns["type"] != "pid"
    ]
    result = pyrun("run", "--bundle", str(bundles.make(config=config)), pyrun.id())
    assert result.returncode == 128 + 9, result
