"""Layout probing, cgroupsPath resolution, the systemd path form and the state round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtime.cgroups import manager_from_state, open_manager, systemd_path
from runtime.cgroups.probe import parse_mountinfo, parse_proc_cgroup, probe
from runtime.errors import CgroupError
from tests.unit.test_cgroups_fakes import FakeHost


@pytest.mark.parametrize(
    ("kind", "version", "keys"),
    [
        (
            "v1",
            "v1",
            {
                "cpu",
                "cpuacct",
                "cpuset",
                "memory",
                "devices",
                "freezer",
                "blkio",
                "pids",
                "hugetlb",
                "net_cls",
                "net_prio",
                "name=systemd",
            },
        ),
        ("v2", "v2", {"unified"}),
        (
            "hybrid",
            "hybrid",
            {
                "cpu",
                "cpuacct",
                "cpuset",
                "memory",
                "devices",
                "freezer",
                "blkio",
                "pids",
                "name=systemd",
                "unified",
            },
        ),
    ],
)
def test_probe_detects_layout_from_mountinfo(
    tmp_path: Path, kind: str, version: str, keys: set[str]
) -> None:
    host = FakeHost(tmp_path, kind)
    layout = probe(sysfs_root=str(host.sysfs), proc_root=str(host.proc))
    assert layout.version == version
    assert set(layout.hierarchies) == keys


def test_v1_comounted_controllers_share_one_directory(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, "v1")
    paths = host.open("c1").paths()
    assert paths["cpu"] == paths["cpuacct"] == host.path("cpu,cpuacct/pyrun/c1")
    assert paths["net_cls"] == paths["net_prio"] == host.path("net_cls,net_prio/pyrun/c1")
    assert paths["name=systemd"] == host.path("systemd/pyrun/c1")


def test_default_path_is_pyrun_slash_id_in_every_hierarchy(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, "hybrid")
    manager = host.open("web")
    assert manager.version == "hybrid"
    assert manager.paths() == {
        "cpu": host.path("cpu/pyrun/web"),
        "cpuacct": host.path("cpuacct/pyrun/web"),
        "cpuset": host.path("cpuset/pyrun/web"),
        "memory": host.path("memory/pyrun/web"),
        "devices": host.path("devices/pyrun/web"),
        "freezer": host.path("freezer/pyrun/web"),
        "blkio": host.path("blkio/pyrun/web"),
        "pids": host.path("pids/pyrun/web"),
        "name=systemd": host.path("systemd/pyrun/web"),
        "unified": host.path("unified/pyrun/web"),
    }


def test_v2_paths(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, "v2")
    assert host.open("a", "/machine/a").paths() == {"unified": host.path("machine/a")}


def test_relative_path_joins_this_process_cgroup_per_hierarchy(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, "hybrid", own={"memory": "/process_api/abc", "unified": "/svc"})
    paths = host.open("c1", "box/c1").paths()
    assert paths["memory"] == host.path("memory/process_api/abc/box/c1")
    assert paths["cpu"] == host.path("cpu/box/c1")
    assert paths["unified"] == host.path("unified/svc/box/c1")


def test_absolute_path_is_relative_to_the_mount_root(tmp_path: Path) -> None:
    # Inside a container the mount shows /docker/x of the hierarchy at the mountpoint.
    host = FakeHost(
        tmp_path,
        "hybrid",
        own={"memory": "/docker/x/inner"},
        roots={"memory": "/docker/x"},
    )
    paths = host.open("c1", "/docker/x/pyrun/c1").paths()
    assert paths["memory"] == host.path("memory/pyrun/c1")
    assert paths["cpu"] == host.path("cpu/docker/x/pyrun/c1")  # that mount shows the root
    relative = host.open("c1", "sub").paths()
    assert relative["memory"] == host.path("memory/inner/sub")


@pytest.mark.parametrize("bad", ["/pyrun/../etc", "../x", "a/../../b", "/", "", "//", "a/\0"])
def test_bad_cgroups_paths_are_rejected(tmp_path: Path, bad: str) -> None:
    host = FakeHost(tmp_path, "v2")
    with pytest.raises(CgroupError, match="invalid cgroupsPath"):
        host.open("c1", bad)


@pytest.mark.parametrize("bad_id", ["", ".", "..", "a/b"])
def test_bad_container_ids_are_rejected(tmp_path: Path, bad_id: str) -> None:
    host = FakeHost(tmp_path, "v2")
    with pytest.raises(CgroupError, match="invalid container id"):
        host.open(bad_id)


def test_no_cgroup_mounts_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "self").mkdir()
    (tmp_path / "self" / "mountinfo").write_text("22 1 254:0 / / rw - ext4 /dev/vda rw\n")
    (tmp_path / "self" / "cgroup").write_text("0::/\n")
    with pytest.raises(CgroupError, match="no cgroup filesystem is mounted"):
        open_manager("c1", None, proc_root=str(tmp_path))


def test_mountinfo_escapes_and_optional_fields() -> None:
    text = (
        "40 31 0:38 / /sys/fs/cgroup/un\\040ified rw,relatime shared:9 master:3 - cgroup2 "
        "cgroup2 rw\n"
        "35 31 0:32 /docker /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
        "22 1 254:0 / / rw - ext4 /dev/vda rw\n"
    )
    assert parse_mountinfo(text) == [
        ("cgroup2", "/sys/fs/cgroup/un ified", "/", ["rw"]),
        ("cgroup", "/sys/fs/cgroup/memory", "/docker", ["rw", "memory"]),
    ]


def test_proc_cgroup_parsing() -> None:
    text = "12:cpu,cpuacct:/a\n1:name=systemd:/b\n0::/c\n"
    assert parse_proc_cgroup(text) == {
        "cpu": "/a",
        "cpuacct": "/a",
        "name=systemd": "/b",
        "unified": "/c",
    }


def test_bind_mounted_duplicate_prefers_standard_place(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, "hybrid")
    info = host.proc / "self" / "mountinfo"
    extra = "99 22 0:32 / /mnt/memory rw - cgroup cgroup rw,memory\n"
    info.write_text(extra + info.read_text())
    assert host.open("c1").paths()["memory"] == host.path("memory/pyrun/c1")


# -- systemd ----------------------------------------------------------------------------------


def test_systemd_requested_without_systemd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(systemd_path, "RUNTIME_DIR", str(tmp_path / "no-such-dir"))
    host = FakeHost(tmp_path, "v2")
    with pytest.raises(CgroupError) as caught:
        host.open("c1", "system.slice:docker:c1", systemd=True)
    assert str(caught.value) == (
        "systemd cgroup driver requested (--systemd-cgroup) but systemd is not running on this host"
    )


@pytest.fixture
def systemd_running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    running = tmp_path / "run-systemd-system"
    running.mkdir()
    monkeypatch.setattr(systemd_path, "RUNTIME_DIR", str(running))


@pytest.mark.usefixtures("systemd_running")
@pytest.mark.parametrize(
    ("cgroups_path", "expected"),
    [
        ("system.slice:docker:abc", "system.slice/docker-abc.scope"),
        ("a-b-c.slice:pfx:n1", "a.slice/a-b.slice/a-b-c.slice/pfx-n1.scope"),
        (":runc:n2", "system.slice/runc-n2.scope"),
        ("-.slice:x:n3", "x-n3.scope"),
        ("user.slice::n4.slice", "user.slice/n4.slice"),
        (None, "system.slice/runc-c1.scope"),
    ],
)
def test_systemd_paths_match_runc(tmp_path: Path, cgroups_path: str | None, expected: str) -> None:
    host = FakeHost(tmp_path, "v2")
    assert host.open("c1", cgroups_path, systemd=True).paths() == {"unified": host.path(expected)}


@pytest.mark.usefixtures("systemd_running")
@pytest.mark.parametrize(
    ("cgroups_path", "message"),
    [
        ("/pyrun/c1", 'expected cgroupsPath to be of format "slice:prefix:name"'),
        ("a:b", 'expected cgroupsPath to be of format "slice:prefix:name"'),
        ("a--b.slice:p:n", "invalid slice name: a--b.slice"),
        ("-a.slice:p:n", "invalid slice name"),
        ("system:p:n", "invalid slice name: system"),
        ("a/b.slice:p:n", "invalid slice name"),
        ("system.slice:p:", "bad unit name"),
        ("system.slice:p:../x", "bad unit name"),
    ],
)
def test_systemd_path_errors(tmp_path: Path, cgroups_path: str, message: str) -> None:
    host = FakeHost(tmp_path, "v2")
    with pytest.raises(CgroupError, match=message.replace("(", r"\(")):
        host.open("c1", cgroups_path, systemd=True)


# -- state round trip -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["v1", "v2", "hybrid"])
def test_state_round_trip(tmp_path: Path, kind: str) -> None:
    host = FakeHost(tmp_path, kind)
    manager = host.open("c1")
    state = json.loads(json.dumps(manager.to_state()))
    again = manager_from_state(state, fs=host.fs)
    assert again.version == manager.version
    assert again.paths() == manager.paths()
    assert again.to_state() == state
    manager.create()
    assert again.exists()


@pytest.mark.parametrize(
    "state",
    [
        {},
        {"version": "v3", "paths": {}, "mounts": {}},
        {"version": "v2", "paths": {"unified": "/sys/fs/cgroup/x"}, "mounts": {}},
        {"version": "v2", "paths": {"unified": "/etc"}, "mounts": {"unified": "/sys/fs/cgroup"}},
        {
            "version": "v2",
            "paths": {"unified": "/sys/fs/cgroup/../../etc"},
            "mounts": {"unified": "/sys/fs/cgroup"},
        },
        {
            "version": "v2",
            "paths": {"unified": "/sys/fs/cgroup"},
            "mounts": {"unified": "/sys/fs/cgroup"},
        },
    ],
)
def test_bad_state_is_rejected(state: dict[str, object]) -> None:
    with pytest.raises(CgroupError, match="invalid cgroup state"):
        manager_from_state(state)
