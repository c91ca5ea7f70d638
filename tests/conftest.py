"""Fixtures for tests that run real containers (integration/ and e2e/).

Every container command goes through a subreaper shim (tests/support/shim.py), as under
containerd or conmon. Each test gets its own state root and ids; afterwards the leak check
asserts that no state directory, cgroup, mount or process of the test is left, then removes
whatever was (by pid and path, never by name) so one failure does not cascade.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
PYRUN = str(VENV_BIN / "pyrun")
RUNC = shutil.which("runc") or "/usr/sbin/runc"
BUSYBOX = "/bin/busybox"
TEST_STATE_BASE = "/run/pyrun-test"

# Shared fixtures of the image tests: real registries (open, basic auth, bearer tokens), the OCI
# test images and archives (pushed to them, or behind a fault proxy), and the environment for
# `pyrun image` (documented in each module).
pytest_plugins = ("tests.support.registry", "tests.support.oci_images", "tests.support.imagecli")


class Result:
    def __init__(self, reply: dict[str, Any], argv: list[str]) -> None:
        self.returncode: int = reply["rc"]
        self.stdout: str = reply["stdout"]
        self.stderr: str = reply["stderr"]
        self.argv = argv

    def __repr__(self) -> str:
        return (
            f"Result(rc={self.returncode}, argv={self.argv},"
            f" stdout={self.stdout[-500:]!r}, stderr={self.stderr[-1500:]!r})"
        )


class Shim:
    """A client of tests/support/shim.py: runs commands as children of a subreaper."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "support" / "shim.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def run(
        self,
        argv: list[str],
        *,
        input: str | None = None,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        timeout: float = 60,
    ) -> Result:
        assert self.proc.stdin and self.proc.stdout
        request = {"argv": argv, "input": input, "env": env, "cwd": cwd, "timeout": timeout}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return Result(json.loads(self.proc.stdout.readline()), argv)

    def children(self) -> list[int]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps({"children": True}) + "\n")
        self.proc.stdin.flush()
        return list(json.loads(self.proc.stdout.readline())["children"])

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="session")
def shim() -> Iterator[Shim]:
    s = Shim()
    yield s
    leftover = s.children()
    for pid in leftover:
        _kill(pid)
    s.close()
    assert not leftover, f"processes left under the shim: {leftover}"


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, 9)


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One read-only busybox rootfs shared by the tests (bundles point at it)."""
    if not os.path.exists(BUSYBOX):
        pytest.fail("busybox-static is missing: run `make setup`")
    path = tmp_path_factory.mktemp("rootfs") / "rootfs"
    subprocess.run([str(REPO / "bundles" / "build-rootfs"), str(path)], check=True)
    return path


def base_config(args: list[str], rootfs: Path | str = "rootfs") -> dict[str, Any]:
    from runtime.lifecycle.specgen import default_config

    config = default_config()
    config["process"]["args"] = args
    config["root"]["path"] = str(rootfs)
    return config


class Bundles:
    def __init__(self, base: Path, rootfs: Path) -> None:
        self.base = base
        self.rootfs = rootfs
        self.count = 0

    def make(
        self,
        args: list[str] | None = None,
        *,
        config: dict[str, Any] | None = None,
        own_rootfs: bool = False,
        fmt: str = "json",
        name: str | None = None,
    ) -> Path:
        """A bundle dir with config.json (or .yaml); the shared rootfs unless own_rootfs."""
        self.count += 1
        bundle = self.base / (name or f"bundle{self.count}")
        bundle.mkdir()
        if own_rootfs:
            shutil.copytree(self.rootfs, bundle / "rootfs", symlinks=True)
            rootfs: Path | str = "rootfs"
        else:
            rootfs = self.rootfs
        if config is None:
            config = base_config(args or ["true"], rootfs)
        else:
            config.setdefault("root", {})["path"] = str(rootfs)
        if fmt == "yaml":
            import yaml

            (bundle / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        else:
            (bundle / "config.json").write_text(json.dumps(config, indent=2))
        return bundle


@pytest.fixture
def bundles(tmp_path: Path, busybox_rootfs: Path) -> Bundles:
    return Bundles(tmp_path, busybox_rootfs)


# Container-id prefixes of the running test: leak checks look only at what they name, so tests
# running at the same time (other sessions, xdist) never count as each other's leaks.
CURRENT_PREFIXES: list[str] = []


class Runtime:
    """One runtime binary (pyrun or runc) with its own state root, run through the shim."""

    def __init__(self, binary: str, root: str, shim: Shim, prefix: str) -> None:
        CURRENT_PREFIXES.append(prefix)
        self.binary = binary
        self.root = root
        self.shim = shim
        self.prefix = prefix
        self.ids: set[str] = set()

    def id(self, name: str = "c") -> str:
        value = f"{self.prefix}-{name}"
        self.ids.add(value)
        return value

    def __call__(
        self,
        *args: str,
        input: str | None = None,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 60,
        global_args: list[str] | None = None,
    ) -> Result:
        argv = [self.binary, "--root", self.root, *(global_args or []), *args]
        return self.shim.run(argv, input=input, cwd=cwd, env=env, timeout=timeout)

    def ok(self, *args: str, **kwargs: Any) -> Result:
        result = self(*args, **kwargs)
        assert result.returncode == 0, result
        return result

    def state(self, container_id: str) -> dict[str, Any]:
        return dict(json.loads(self.ok("state", container_id).stdout))

    def cleanup(self) -> None:
        for container_id in sorted(self.ids):
            self("delete", "--force", container_id)
        shutil.rmtree(self.root, ignore_errors=True)


def _new_prefix() -> str:
    return "t" + uuid.uuid4().hex[:10]


@pytest.fixture
def pyrun(shim: Shim) -> Iterator[Runtime]:
    prefix = _new_prefix()
    runtime = Runtime(PYRUN, f"{TEST_STATE_BASE}/{prefix}", shim, prefix)
    yield runtime
    runtime.cleanup()


@pytest.fixture
def runc(shim: Shim) -> Iterator[Runtime]:
    if not os.path.exists(RUNC):
        pytest.fail("runc is missing: run `make setup`")
    prefix = _new_prefix()
    runtime = Runtime(RUNC, f"{TEST_STATE_BASE}/{prefix}-runc", shim, prefix)
    yield runtime
    runtime.cleanup()


# -- leak checks ----------------------------------------------------------------------------


def default_parents() -> set[str]:
    """The /pyrun parent of containers without linux.cgroupsPath, in every hierarchy."""
    return {p for p in glob.glob("/sys/fs/cgroup/*/pyrun") if os.path.isdir(p)}


# Those that were there before the suite (another user's pyrun) are not the suite's leaks.
DEFAULT_PARENTS_BEFORE = default_parents()


def cgroup_leftovers(prefixes: list[str]) -> list[str]:
    """Cgroup directories (at any depth below /sys/fs/cgroup) named after the prefixes."""
    found = []
    for prefix in prefixes:
        for depth in ("*", "*/*", "*/*/*", "*/*/*/*"):
            found += [p for p in glob.glob(f"/sys/fs/cgroup/{depth}/{prefix}*") if os.path.isdir(p)]
    return sorted(set(found))


def mount_leftovers(markers: list[str]) -> list[str]:
    with open("/proc/self/mountinfo") as handle:
        lines = handle.read().splitlines()
    return [line for line in lines if any(marker in line for marker in markers)]


def state_leftovers(prefixes: list[str]) -> list[str]:
    found = []
    for prefix in prefixes:
        found += glob.glob(f"{TEST_STATE_BASE}/{prefix}*/*")
    return sorted(found)


@pytest.fixture(autouse=True)
def leak_check(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[None]:
    if "/unit/" in str(request.node.fspath):
        yield
        return
    CURRENT_PREFIXES.clear()
    yield
    problems = []
    prefixes = list(CURRENT_PREFIXES)
    cgroups = cgroup_leftovers(prefixes) + sorted(default_parents() - DEFAULT_PARENTS_BEFORE)
    if cgroups:
        problems.append(f"cgroups left: {cgroups}")
        for path in reversed(cgroups):
            with contextlib.suppress(OSError):
                os.rmdir(path)
    mounts = mount_leftovers([str(tmp_path)])
    if mounts:
        problems.append(f"mounts left: {mounts}")
    states = state_leftovers(prefixes)
    if states:
        problems.append(f"state dirs left: {states}")
        for path in states:
            shutil.rmtree(path, ignore_errors=True)
    if "shim" in request.fixturenames:
        shim: Shim = request.getfixturevalue("shim")
        children = shim.children()
        if children:
            problems.append(f"processes left under the shim: {children}")
            for pid in children:
                _kill(pid)
    assert not problems, "\n".join(problems)
