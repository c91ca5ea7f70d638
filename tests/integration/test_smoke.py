"""The shortest path through the runtime: a container that says hello, run in the foreground."""

from __future__ import annotations

from tests.conftest import Bundles, Runtime


def test_run_prints_and_exits_with_the_containers_code(pyrun: Runtime, bundles: Bundles) -> None:
    bundle = bundles.make(["sh", "-c", "echo hello from $(hostname); exit 3"])
    result = pyrun("run", "--bundle", str(bundle), pyrun.id())
    assert result.returncode == 3, result
    assert result.stdout == "hello from pyrun\n"
    assert pyrun.ok("list", "--format", "json").stdout.strip() == "null"
