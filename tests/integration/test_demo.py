"""``make demo`` (tools/demo.py): the example bundle runs, goes through registryd as an image
and runs again from the pulled copy; afterwards nothing of it is left."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the demo runs containers as root")


def test_demo_runs_the_whole_toolchain_and_leaves_nothing() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "tools" / "demo.py")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    greetings = re.findall(r"^Hello from a pyrun container!$", out, re.M)
    assert len(greetings) == 2, out  # (the ps lines show the script too)
    for verb in ("commit", "push", "pull", "unpack"):
        assert re.search(rf"^\$ pyrun image --root \S+ {verb} ", out, re.M), (verb, out)
    pushed = re.findall(r"^sha256:[0-9a-f]{64}$", out, re.M)
    assert len(pushed) == 3 and len(set(pushed)) == 1, out  # commit = push = pull digest
    server = re.search(r"registryd \(pid (\d+)\) stopped: exit 0", out)
    assert server, out
    assert not os.path.exists(f"/proc/{server.group(1)}/status") or _is_other(server.group(1))
    workdir = re.search(r"--root (/\S+/pyrun-demo-[^/\s]+)/registry", out)
    assert workdir, out
    assert not os.path.exists(workdir.group(1))
    with open("/proc/self/mountinfo") as mounts:
        assert workdir.group(1) not in mounts.read()
    ids = re.findall(r"pyrun run --bundle \S+ (demo-\S+)", out)
    assert len(ids) == 2
    for container in ids:
        assert not os.path.exists(f"/run/pyrun/{container}")


def _is_other(pid: str) -> bool:
    """The pid was reused by an unrelated process (not a registryd)."""
    with open(f"/proc/{pid}/cmdline", "rb") as handle:
        return b"registryd" not in handle.read()
