"""Joining namespaces by path, --preserve-fds, --no-new-keyring and --systemd-cgroup."""

from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import PYRUN, Bundles, Runtime, base_config


def _ns(pid: int, kind: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def test_joining_another_containers_namespaces_by_path(pyrun: Runtime, bundles: Bundles) -> None:
    first = pyrun.id("a")
    pyrun.ok("run", "-d", "--bundle", str(bundles.make(["sleep", "60"])), first)
    pid = pyrun.state(first)["pid"]
    assert isinstance(pid, int)
    config = base_config(
        ["sh", "-c", "for n in net uts ipc; do readlink /proc/self/ns/$n; done; hostname"]
    )
    for ns in config["linux"]["namespaces"]:  # type: ignore[index]
        if ns["type"] in ("network", "uts", "ipc"):
            ns["path"] = f"/proc/{pid}/ns/{ {'network': 'net'}.get(ns['type'], ns['type']) }"
    config.pop("hostname")  # a joined uts namespace keeps the first container's name
    result = pyrun("run", "--bundle", str(bundles.make(config=config)), pyrun.id("b"))
    assert result.returncode == 0, result
    lines = result.stdout.splitlines()
    assert lines[:3] == [_ns(pid, "net"), _ns(pid, "uts"), _ns(pid, "ipc")]
    assert lines[3] == "pyrun"
    # The pid and mount namespaces were new ones, not the first container's.
    pyrun.ok("kill", first, "KILL")
    pyrun.ok("delete", "--force", first)


def test_a_namespace_path_that_does_not_exist_is_refused_before_anything_happens(
    pyrun: Runtime, bundles: Bundles
) -> None:
    config = base_config(["true"])
    config["linux"]["namespaces"][1]["path"] = "/proc/999999999/ns/net"  # type: ignore[index]
    cid = pyrun.id()
    result = pyrun("run", "--bundle", str(bundles.make(config=config)), cid)
    assert result.returncode == 1
    assert "linux.namespaces[1].path: /proc/999999999/ns/net does not exist" in result.stderr
    assert not Path(pyrun.root, cid).exists()


def test_preserve_fds_passes_exactly_the_extra_descriptors(
    pyrun: Runtime, bundles: Bundles, tmp_path: Path
) -> None:
    secret = tmp_path / "secret"
    secret.write_text("passed through fd 3\n")
    listing = "ls /proc/self/fd | sort -n | tr '\\n' ' '"
    bundle = bundles.make(["sh", "-c", f"cat <&3 || echo no fd 3; {listing}"])
    script = (
        f"exec 3<{secret} 4<{secret}; "
        f"{PYRUN} --root {pyrun.root} run --preserve-fds 1 --bundle {bundle} {pyrun.id('p')}"
    )
    result = pyrun.shim.run(["sh", "-c", script])
    assert result.returncode == 0, result
    out_lines = result.stdout.splitlines()
    assert out_lines[0] == "passed through fd 3"
    # 0-2, the preserved 3, and the fd ls uses to read the directory: never fd 4.
    fds = out_lines[1].split()
    assert fds[:4] == ["0", "1", "2", "3"] and "4" not in fds[:-1], fds
    script = f"exec 3<{secret}; {PYRUN} --root {pyrun.root} run --bundle {bundle} {pyrun.id('q')}"
    result = pyrun.shim.run(["sh", "-c", script])
    assert result.returncode == 0, result
    assert result.stdout.splitlines()[0] == "no fd 3"


def test_systemd_cgroup_flag_is_refused_clearly_without_systemd(
    pyrun: Runtime, bundles: Bundles
) -> None:
    if os.path.isdir("/run/systemd/system"):
        import pytest

        pytest.skip("this host runs systemd: the flag is valid here")
    config = base_config(["true"])
    config["linux"]["cgroupsPath"] = "system.slice:pyrun:x"  # type: ignore[index]
    cid = pyrun.id()
    result = pyrun(
        "run", "--bundle", str(bundles.make(config=config)), cid, global_args=["--systemd-cgroup"]
    )
    assert result.returncode == 1
    assert "systemd" in result.stderr and "not running" in result.stderr
    assert not Path(pyrun.root, cid).exists()


def test_each_container_gets_its_own_session_keyring(pyrun: Runtime, bundles: Bundles) -> None:
    config = base_config(["sh", "-c", "grep -c '_ses\\.' /proc/keys; grep _ses /proc/keys"])
    config["linux"]["maskedPaths"].remove("/proc/keys")  # type: ignore[index]
    cid = pyrun.id()
    result = pyrun("run", "--bundle", str(bundles.make(config=config)), cid)
    assert result.returncode == 0, result
    assert f"_ses.{cid}: empty" in result.stdout
    keep = pyrun(
        "run", "--no-new-keyring", "--bundle", str(bundles.make(config=config)), pyrun.id("k")
    )
    assert keep.returncode in (0, 1), keep
    assert f"_ses.{pyrun.prefix}-k" not in keep.stdout


def test_cgroup_namespace_shows_the_container_cgroup_as_root(
    pyrun: Runtime, bundles: Bundles
) -> None:
    config = base_config(["sh", "-c", "cat /proc/self/cgroup; ls /sys/fs/cgroup/pids"])
    config["linux"]["namespaces"].append({"type": "cgroup"})  # type: ignore[index]
    result = pyrun("run", "--bundle", str(bundles.make(config=config)), pyrun.id())
    assert result.returncode == 0, result
    lines = [line for line in result.stdout.splitlines() if ":" in line]
    assert lines and all(line.endswith(":/") for line in lines), lines
    assert "pids.max" in result.stdout  # the fresh cgroup mount shows the container's cgroup


def test_time_namespace_applies_the_clock_offsets(pyrun: Runtime, bundles: Bundles) -> None:
    config = base_config(["cat", "/proc/uptime"])
    config["linux"]["namespaces"].append({"type": "time"})  # type: ignore[index]
    config["linux"]["timeOffsets"] = {  # type: ignore[index]
        "boottime": {"secs": 86400 * 365, "nanosecs": 0},
        "monotonic": {"secs": 86400, "nanosecs": 0},
    }
    with open("/proc/uptime") as handle:
        host_uptime = float(handle.read().split()[0])
    result = pyrun("run", "--bundle", str(bundles.make(config=config)), pyrun.id())
    assert result.returncode == 0, result
    uptime = float(result.stdout.split()[0])
    assert 86400 * 365 <= uptime - host_uptime < 86400 * 365 + 60
