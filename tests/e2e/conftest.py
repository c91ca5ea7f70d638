"""Fixtures and helpers shared by the e2e tests that run real callers (containerd, podman).

- ``busybox_image``: the busybox OCI image built offline once per session (tests/e2e/images.py).
- ``LoggedRuntime``: a runtime binary (pyrun or runc) behind a wrapper script that appends the
  command line each caller sent to ``<name>.argv.jsonl`` (one JSON list per line) and then execs
  the binary. The wrapper's file name is the runtime's name: podman takes a runtime's name from
  the basename of ``--runtime PATH`` and passes ``--log-format=json --log F`` only to names listed
  in ``runtime_supports_json``. The logs stay in pytest's temp dir (the last three sessions are
  kept): they are the record of what containerd and podman asked of pyrun.
- ``CONTAINERD_CONFIG``: the config of the tests' own containerd daemons (format it with
  ``root``, ``state``, ``address`` and ``opt``); ``stop_daemon(proc)`` ends one.
- Leak probes that look only at what one caller made: mounts under its temp dir, cgroup
  directories under its own parent, processes whose command line names its paths.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PYRUN, RUNC
from tests.e2e.images import Image, build_busybox_image, missing_tools

RUNTIME_BINARIES = {"runc": RUNC, "pyrun": PYRUN}

# The wrapper restores SIGPIPE and SIGXFSZ (Python ignores both, and an ignored signal stays
# ignored across exec) so the runtime starts with exactly what its caller gave it.
WRAPPER = """#!{python} -IS
# Written by tests/e2e/conftest.py: log the command line, then exec the real runtime.
import json, os, signal, sys
fd = os.open({log!r}, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
os.write(fd, (json.dumps(sys.argv[1:]) + "\\n").encode())
os.close(fd)
signal.signal(signal.SIGPIPE, signal.SIG_DFL)
signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
os.execv({real!r}, [{real!r}, *sys.argv[1:]])
"""


class LoggedRuntime:
    """``directory/<name>``: a wrapper that logs argv to ``directory/<name>.argv.jsonl``."""

    def __init__(self, name: str, directory: Path) -> None:
        self.name = name
        self.real = RUNTIME_BINARIES[name]
        if not os.path.exists(self.real):
            pytest.fail(f"{self.real} is missing: run `make setup`")
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / name
        self.log = directory / f"{name}.argv.jsonl"
        self.log.touch()
        self.path.write_text(
            WRAPPER.format(python=sys.executable, log=str(self.log), real=self.real)
        )
        self.path.chmod(0o755)

    def calls(self, since: int = 0) -> list[list[str]]:
        lines = self.log.read_text().splitlines()
        return [json.loads(line) for line in lines[since:]]

    def mark(self) -> int:
        return len(self.log.read_text().splitlines())

    def verbs(self, since: int = 0) -> list[str]:
        """The verb of each call (the first word that is not a global flag or its value)."""
        return [verb_of(argv) for argv in self.calls(since)]

    def transcript(self, since: int = 0) -> str:
        return "\n".join(" ".join(argv) for argv in self.calls(since))


GLOBAL_FLAGS_WITH_VALUE = {"--root", "--log", "--log-format", "--criu", "--rootless"}


def verb_of(argv: list[str]) -> str:
    skip = False
    for word in argv:
        if skip:
            skip = False
            continue
        if word in GLOBAL_FLAGS_WITH_VALUE:
            skip = True
            continue
        if word.startswith("-"):
            continue
        return word
    return ""


@pytest.fixture(scope="session")
def busybox_image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    missing = missing_tools()
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: run `make setup`")
    return build_busybox_image(tmp_path_factory.mktemp("image"))


# -- containerd daemons of the tests --------------------------------------------------------
CONTAINERD_CONFIG = """\
version = 2
root = "{root}"
state = "{state}"
# Plugins this VM cannot or need not run: no CRI (no kubelet), no aufs/btrfs/zfs/devmapper.
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]

[grpc]
  address = "{address}"

[ttrpc]
  address = "{address}.ttrpc"

[debug]
  address = ""
  level = "info"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{opt}"
"""


def stop_daemon(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it has not exited within 10 s."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


# -- probes ----------------------------------------------------------------------------------


def wait_until(predicate: Callable[[], bool], timeout: float = 10, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(step)


def _absent(probe: Callable[[str], list[Any]], arg: str) -> bool:
    return not probe(arg)


def wait_absent(probe: Callable[[str], list[Any]], arg: str, timeout: float = 10) -> bool:
    """Wait until probe(arg) finds nothing (processes, cgroups ... named by arg)."""
    return wait_until(functools.partial(_absent, probe, arg), timeout)


def reclaim_cgroups(relative: str, timeout: float = 5) -> list[str]:
    """Wait for the cgroup ``relative`` to go in every hierarchy; if it stays, kill what is in
    it, remove it and return where it was (a leak)."""
    if wait_absent(cgroup_dirs, relative, timeout):
        return []
    left = cgroup_dirs(relative)
    for path in left:
        kill_pids(cgroup_procs(path))
    wait_until(lambda: not remove_cgroup_tree(relative) and not cgroup_dirs(relative))
    return left


def mounts_mentioning(marker: str) -> list[str]:
    """Mount points of every mountinfo line that mentions marker (mount point or options)."""
    with open("/proc/self/mountinfo") as handle:
        return [line.split()[4] for line in handle if marker in line]


def unmount_all(marker: str) -> list[str]:
    """Lazily unmount, deepest first, every mount that mentions marker; return what was there."""
    found = mounts_mentioning(marker)
    for point in sorted(set(found), key=len, reverse=True):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    return found


def processes_mentioning(marker: str) -> list[int]:
    """Pids (other than ours) whose command line contains marker."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{entry}/stat") as handle:
                zombie = handle.read().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            continue
        if marker in cmdline and not zombie:
            found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def kill_pids(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def unix_socket_paths(pid: int) -> list[str]:
    """Paths of the unix sockets process pid holds open (from its fds and /proc/net/unix)."""
    inodes = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    except OSError:
        return []
    paths = []
    with open("/proc/net/unix") as handle:
        for line in handle.readlines()[1:]:
            fields = line.split()
            if len(fields) >= 8 and fields[6] in inodes:
                paths.append(fields[7])
    return paths


def cgroup_dirs(relative: str) -> list[str]:
    """``/sys/fs/cgroup/<hierarchy>/<relative>`` for every hierarchy where it exists."""
    root = Path("/sys/fs/cgroup")
    return sorted(str(p) for p in root.glob(f"*/{relative.strip('/')}") if p.is_dir())


def cgroup_children(relative: str) -> list[str]:
    """Sub-cgroups (at any depth) below ``relative`` in every hierarchy, deepest first."""
    found = []
    for parent in cgroup_dirs(relative):
        for dirpath, dirnames, _ in os.walk(parent):
            found += [os.path.join(dirpath, name) for name in dirnames]
    return sorted(found, key=len, reverse=True)


def remove_cgroup_tree(relative: str) -> list[str]:
    """rmdir every cgroup below relative and relative itself; return those that had children."""
    leftovers = cgroup_children(relative)
    for path in [*leftovers, *cgroup_dirs(relative)]:
        try:
            os.rmdir(path)
        except OSError:
            pass
    return leftovers


def cgroup_procs(path: str) -> list[int]:
    with open(os.path.join(path, "cgroup.procs")) as handle:
        return sorted(int(line) for line in handle if line.strip())


# -- outcome of a test, for fixtures that clean up after it ------------------------------------

CALL_REPORT = pytest.StashKey[pytest.TestReport]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "call":
        item.stash[CALL_REPORT] = report
    return report


def failed_as_expected(request: pytest.FixtureRequest) -> bool:
    """True when the test's call failed and the test is marked xfail: the known failure of a
    feature pyrun lacks may leave things behind; fixtures clean them up and report them without
    turning the expected failure into an error."""
    report = request.node.stash.get(CALL_REPORT, None)
    xfailed = report is not None and report.outcome == "skipped" and hasattr(report, "wasxfail")
    return xfailed and request.node.get_closest_marker("xfail") is not None
