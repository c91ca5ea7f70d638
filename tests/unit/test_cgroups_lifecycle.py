"""create / join / pids / signal_all / freeze / destroy on fake trees, and the hot-path imports."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from runtime.cgroups import base
from runtime.cgroups.base import CgroupFS
from runtime.errors import CgroupError
from tests.unit.test_cgroups_fakes import FakeHost

REPO = Path(__file__).resolve().parents[2]


def test_create_makes_every_hierarchy_and_fills_new_cpuset_levels(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, "hybrid")
    manager = host.open("c1")
    manager.create()
    for path in manager.paths().values():
        assert os.path.isdir(path)
    # Both new levels got the parent's cpus/mems (they start empty and refuse tasks).
    assert host.read("cpuset/pyrun/cpuset.cpus") == "0-3"
    assert host.read("cpuset/pyrun/c1/cpuset.cpus") == "0-3"
    assert host.read("cpuset/pyrun/c1/cpuset.mems") == "0"
    assert host.fs.written(host.path("cpuset/pyrun/c1/cpuset.cpus")) == ["0-3"]


def test_create_is_idempotent_and_repairs_empty_cpuset(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, "v1")
    manager = host.open("c1")
    manager.create()
    (host.sysfs / "cpuset/pyrun/c1/cpuset.mems").write_text("")  # a crash mid-create
    host.fs.writes.clear()
    manager.create()
    assert host.fs.writes == [(host.path("cpuset/pyrun/c1/cpuset.mems"), "0")]


def test_join_writes_the_pid_to_every_hierarchy_like_runc(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, "hybrid")
    manager = host.open("c1")
    manager.create()
    host.fs.writes.clear()
    manager.join(4242)
    procs = sorted(path for path, value in host.fs.writes if value == "4242")
    expected = sorted(f"{p}/cgroup.procs" for p in manager.paths().values())
    assert procs == expected
    assert host.path("systemd/pyrun/c1/cgroup.procs") in procs
    assert host.path("unified/pyrun/c1/cgroup.procs") in procs


def test_join_writes_each_comounted_directory_once(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, "v1")
    manager = host.open("c1")
    manager.create()
    host.fs.writes.clear()
    manager.join(7)
    assert len(host.fs.writes) == len(set(manager.paths().values())) == 10


def test_join_retries_einval_then_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    host = FakeHost(tmp_path, "v2")
    manager = host.open("c1")
    manager.create()
    monkeypatch.setattr(base.time, "sleep", lambda _s: None)
    host.fs.fail[host.path("pyrun/c1/cgroup.procs")] = errno.EINVAL
    with pytest.raises(CgroupError) as caught:
        manager.join(99)
    assert str(caught.value) == (
        f"write '99' to {host.path('pyrun/c1/cgroup.procs')}: invalid argument (EINVAL)"
    )


def test_pids_include_sub_cgroups(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, "v2")
    manager = host.open("c1")
    manager.create()
    top = host.sysfs / "pyrun/c1"
    (top / "cgroup.procs").write_text("10\n12\n")
    (top / "inner" / "deeper").mkdir(parents=True)
    (top / "inner" / "cgroup.procs").write_text("11\n")
    (top / "inner" / "deeper" / "cgroup.procs").write_text("30\n")
    assert manager.pids() == [10, 11, 12, 30]


def test_pids_of_a_missing_cgroup_is_empty(tmp_path: Path) -> None:
    assert FakeHost(tmp_path, "v1").open("gone").pids() == []


@pytest.mark.parametrize("kind", ["v1", "hybrid"])
def test_signal_all_freezes_signals_then_thaws_v1(tmp_path: Path, kind: str) -> None:
    host = FakeHost(tmp_path, kind)
    manager = host.open("c1")
    manager.create()
    (host.sysfs / "freezer/pyrun/c1/cgroup.procs").write_text("5\n6\n")
    host.fs.dead.add(5)  # exited meanwhile: ESRCH is ignored
    host.fs.writes.clear()
    manager.signal_all(15)
    state = host.path("freezer/pyrun/c1/freezer.state")
    assert host.fs.writes == [(state, "FROZEN"), (state, "THAWED")]
    assert host.fs.kills == [(5, 15), (6, 15)]
    assert not manager.is_frozen()


def test_signal_all_v2_uses_cgroup_freeze(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, "v2")
    manager = host.open("c1")
    manager.create()
    (host.sysfs / "pyrun/c1/cgroup.procs").write_text("8\n")
    host.fs.writes.clear()
    manager.signal_all(9)
    freeze = host.path("pyrun/c1/cgroup.freeze")
    assert host.fs.writes == [(freeze, "1"), (freeze, "0")]
    assert host.fs.kills == [(8, 9)]


def test_signal_all_keeps_a_paused_container_paused_except_for_sigkill(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, "v1")
    manager = host.open("c1")
    manager.create()
    (host.sysfs / "freezer/pyrun/c1/cgroup.procs").write_text("5\n")
    manager.freeze()
    host.fs.writes.clear()
    manager.signal_all(15)
    assert host.fs.writes == []
    assert manager.is_frozen()
    manager.signal_all(9)  # v1 delivers SIGKILL only once thawed
    assert host.fs.writes == [(host.path("freezer/pyrun/c1/freezer.state"), "THAWED")]
    assert host.fs.kills == [(5, 15), (5, 9)]


def test_freeze_thaw_v1_and_v2(tmp_path: Path) -> None:
    v1 = FakeHost(tmp_path / "a", "v1")
    manager = v1.open("c1")
    manager.create()
    manager.freeze()
    assert v1.read("freezer/pyrun/c1/freezer.state") == "FROZEN"
    assert manager.is_frozen()
    manager.thaw()
    assert v1.read("freezer/pyrun/c1/freezer.state") == "THAWED"
    assert not manager.is_frozen()

    v2 = FakeHost(tmp_path / "b", "v2")
    manager = v2.open("c1")
    manager.create()
    manager.freeze()
    assert v2.read("pyrun/c1/cgroup.freeze") == "1"
    assert "frozen 1" in v2.read("pyrun/c1/cgroup.events")
    assert manager.is_frozen()
    manager.thaw()
    assert not manager.is_frozen()


def test_freeze_times_out_and_thaws_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    host = FakeHost(tmp_path, "v2")
    manager = host.open("c1")
    manager.create()
    monkeypatch.setattr(base, "FREEZE_TIMEOUT", 0.02)
    # A kernel that never reports frozen: cgroup.events is not updated.
    real_write = host.fs.sys_write

    def stuck(path: str, data: bytes) -> None:
        if path.endswith("cgroup.freeze"):
            host.fs.writes.append((path, data.decode()))
            return
        real_write(path, data)

    monkeypatch.setattr(host.fs, "sys_write", stuck)
    with pytest.raises(CgroupError, match=r"cannot freeze cgroup .*: timed out"):
        manager.freeze()
    freeze = host.path("pyrun/c1/cgroup.freeze")
    assert host.fs.writes == [(freeze, "1"), (freeze, "0")]


def test_freeze_without_freezer_is_an_error(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, "v1")
    state = host.open("c1").to_state()
    del state["paths"]["freezer"], state["mounts"]["freezer"]
    from runtime.cgroups import manager_from_state

    with pytest.raises(CgroupError, match="freezer controller is not mounted"):
        manager_from_state(state, fs=host.fs).freeze()


@pytest.mark.parametrize("kind", ["v1", "v2", "hybrid"])
def test_destroy_removes_bottom_up_then_the_empty_default_parent_and_is_idempotent(
    tmp_path: Path, kind: str
) -> None:
    host = FakeHost(tmp_path, kind)
    manager = host.open("c1")
    manager.create()
    other = host.open("c2")
    other.create()
    first = next(iter(manager.paths().values()))
    os.mkdir(f"{first}/sub")  # a cgroup made by the container itself
    os.mkdir(f"{first}/sub/deeper")
    assert manager.exists()
    removed: list[str] = []
    real = host.fs.sys_rmdir

    def record(path: str) -> None:
        real(path)
        removed.append(path)

    host.fs.sys_rmdir = record  # type: ignore[method-assign]
    manager.destroy()
    assert not manager.exists()
    for path in manager.paths().values():
        assert not os.path.exists(path)
        assert os.path.isdir(os.path.dirname(path))  # /pyrun stays: c2 is in it
    assert removed[:3] == [f"{first}/sub/deeper", f"{first}/sub", first]
    assert sorted(removed) == sorted(
        {*manager.paths().values(), f"{first}/sub", f"{first}/sub/deeper"}
    )
    manager.destroy()  # nothing left: still fine
    other.destroy()  # the last container takes the empty /pyrun with it
    for path in other.paths().values():
        assert not os.path.exists(os.path.dirname(path))
    custom = host.open("c3", cgroups_path="/team/c3")
    custom.create()
    custom.destroy()  # a parent the user named is not ours to remove, as in runc
    assert all(os.path.isdir(os.path.dirname(p)) for p in custom.paths().values())


def test_create_walks_again_when_the_last_delete_takes_the_parent(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, "v2")
    manager = host.open("c1")
    real = host.fs.sys_mkdir
    taken: list[str] = []

    def race(path: str) -> None:
        real(path)
        if path.endswith("/pyrun") and not taken:  # another delete removes it right away
            taken.append(path)
            host.fs.sys_rmdir(path)

    host.fs.sys_mkdir = race  # type: ignore[method-assign]
    manager.create()
    assert taken and all(os.path.isdir(p) for p in manager.paths().values())


def test_destroy_retries_while_busy_then_names_path_and_pids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = FakeHost(tmp_path, "hybrid")
    manager = host.open("c1")
    manager.create()
    monkeypatch.setattr(base, "DESTROY_TIMEOUT", 0.05)
    busy = host.path("memory/pyrun/c1")
    (Path(busy) / "cgroup.procs").write_text("321\n")
    with pytest.raises(CgroupError) as caught:
        manager.destroy()
    assert str(caught.value) == (
        f"cannot remove cgroup {busy}: still busy after 0.05 s (pids inside: [321])"
    )
    # Every other hierarchy was still cleaned up.
    assert [p for p in manager.paths().values() if os.path.exists(p)] == [busy]
    (Path(busy) / "cgroup.procs").write_text("")  # the task finally exits
    manager.destroy()
    assert not manager.exists()


def test_destroy_succeeds_once_tasks_leave_within_the_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = FakeHost(tmp_path, "v2")
    manager = host.open("c1")
    manager.create()
    target = host.path("pyrun/c1")
    host.fs.busy.add(target)
    attempts = []
    real = host.fs.sys_rmdir

    def exiting(path: str) -> None:
        attempts.append(path)
        if len(attempts) == 3:
            host.fs.busy.discard(target)
        real(path)

    monkeypatch.setattr(host.fs, "sys_rmdir", exiting)
    manager.destroy()
    assert attempts == [target] * 3 + [host.path("pyrun")]  # then the empty default parent
    assert not os.path.exists(target)


def test_seam_maps_errors_in_one_place(tmp_path: Path) -> None:
    fs = CgroupFS()
    missing = str(tmp_path / "nope")
    with pytest.raises(CgroupError) as caught:
        fs.read(missing)
    assert str(caught.value) == f"read {missing}: no such file or directory (ENOENT)"
    assert fs.read_optional(missing) is None
    assert fs.rmdir(missing, tolerate=(errno.ENOENT,)) == errno.ENOENT
    with pytest.raises(CgroupError, match=r"mkdir .*: no such file or directory \(ENOENT\)"):
        fs.mkdir(f"{missing}/deeper")
    assert fs.mkdir(str(tmp_path / "d")) is True
    assert fs.mkdir(str(tmp_path / "d")) is False
    assert fs.listdir(missing) == []
    assert fs.isdir(str(tmp_path / "d")) and not fs.exists(missing)


def test_hot_path_imports_nothing_heavy(tmp_path: Path) -> None:
    """import, open_manager, create, join, pids, destroy and the state round trip load only
    os/errno/time and our own light modules (checked in a clean interpreter: -S, so the
    editable-install hook does not pre-load re/enum/pathlib)."""
    host = FakeHost(tmp_path, "hybrid")
    script = textwrap.dedent(
        f"""
        import os, sys
        before = set(sys.modules)
        import runtime.cgroups as cg
        from runtime.cgroups.base import CgroupFS

        class Fake(CgroupFS):  # plays the kernel with os only, so it loads nothing itself
            def sys_mkdir(self, path):
                os.mkdir(path)
                for name in ("cgroup.procs", "cpuset.cpus", "cpuset.mems"):
                    os.close(os.open(path + "/" + name, os.O_CREAT | os.O_WRONLY))

            def sys_write(self, path, data):
                pass  # join without a real pid

            def sys_rmdir(self, path):
                for name in os.listdir(path):
                    os.unlink(path + "/" + name)
                os.rmdir(path)

        m = cg.open_manager("c1", None, sysfs_root={str(host.sysfs)!r},
                            proc_root={str(host.proc)!r}, fs=Fake())
        m.create()
        m.join(1)
        m.pids()
        m2 = cg.manager_from_state(m.to_state(), fs=Fake())
        m2.exists()
        m2.destroy()
        print(" ".join(sorted(set(sys.modules) - before)))
        """
    )
    done = subprocess.run(
        [sys.executable, "-S", "-c", script],
        cwd=tmp_path,
        env={"PYTHONPATH": str(REPO), "PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout.split()
    allowed = {
        "__future__",
        "errno",
        "os",
        "os.path",
        "posixpath",
        "genericpath",
        "stat",
        "_stat",
        "time",
        "_collections_abc",
        "runtime",
        "runtime.errors",
        "runtime.cgroups",
        "runtime.cgroups.base",
        "runtime.cgroups.probe",
    }
    assert set(out) <= allowed, set(out) - allowed
    for heavy in (
        "re",
        "enum",
        "json",
        "dataclasses",
        "pathlib",
        "subprocess",
        "ctypes",
        "typing",
        "cgroupspy",
    ):
        assert heavy not in out
    assert not os.path.exists(host.path("cpu/pyrun/c1"))
