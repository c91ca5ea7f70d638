"""linux.resources on cgroup v1 (and the v1 side of hybrid hosts): the exact values written."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from runtime.errors import CgroupError
from tests.unit.test_cgroups_fakes import MAX_V1, FakeHost

MiB = 1024 * 1024


@pytest.fixture
def v1(tmp_path: Path) -> FakeHost:
    return FakeHost(tmp_path, "v1")


def applied(host: FakeHost, resources: dict[str, object]) -> list[tuple[str, str]]:
    """Apply to a fresh container; every write made, with paths relative to the cgroup root."""
    manager = host.open("c1")
    manager.create()
    host.fs.writes.clear()
    manager.apply(resources)
    root = str(host.sysfs) + "/"
    return [(path.removeprefix(root), value) for path, value in host.fs.writes]


def test_memory_fields(v1: FakeHost) -> None:
    writes = applied(
        v1,
        {
            "memory": {
                "limit": 100 * MiB,
                "reservation": 50 * MiB,
                "swappiness": 10,
                "disableOOMKiller": True,
                "kernel": 123,  # deprecated: ignored like runc
            }
        },
    )
    assert writes == [
        ("memory/pyrun/c1/memory.limit_in_bytes", str(100 * MiB)),
        ("memory/pyrun/c1/memory.soft_limit_in_bytes", str(50 * MiB)),
        ("memory/pyrun/c1/memory.oom_control", "1"),
        ("memory/pyrun/c1/memory.swappiness", "10"),
    ]


def test_swap_order_follows_the_current_limit(v1: FakeHost) -> None:
    manager = v1.open("c1")
    manager.create()
    limit = "memory/pyrun/c1/memory.limit_in_bytes"
    memsw = "memory/pyrun/c1/memory.memsw.limit_in_bytes"
    root = str(v1.sysfs) + "/"

    def apply(memory: dict[str, int]) -> list[tuple[str, str]]:
        v1.fs.writes.clear()
        manager.apply({"memory": memory})
        return [(p.removeprefix(root), v) for p, v in v1.fs.writes]

    # From unlimited (current limit is huge): memory first, then memory+swap.
    assert apply({"limit": 100 * MiB, "swap": 200 * MiB}) == [
        (limit, str(100 * MiB)),
        (memsw, str(200 * MiB)),
    ]
    # Raising both: memory+swap first, or the new memory limit would exceed the old memsw.
    assert apply({"limit": 300 * MiB, "swap": 600 * MiB}) == [
        (memsw, str(600 * MiB)),
        (limit, str(300 * MiB)),
    ]
    # Lowering both: memory first, or the new memsw would be below the old memory limit.
    assert apply({"limit": 100 * MiB, "swap": 200 * MiB}) == [
        (limit, str(100 * MiB)),
        (memsw, str(200 * MiB)),
    ]
    # Unlimited swap goes first; unlimited memory without swap means unlimited swap too.
    assert apply({"limit": 50 * MiB, "swap": -1}) == [(memsw, "-1"), (limit, str(50 * MiB))]
    assert apply({"limit": -1}) == [(memsw, "-1"), (limit, "-1")]
    assert v1.read("memory/pyrun/c1/memory.limit_in_bytes") == "-1"


def test_memory_limit_below_usage_says_why(v1: FakeHost) -> None:
    manager = v1.open("c1")
    manager.create()
    v1.fs.fail[v1.path("memory/pyrun/c1/memory.limit_in_bytes")] = errno.EBUSY
    (v1.sysfs / "memory/pyrun/c1/memory.usage_in_bytes").write_text("5000\n")
    (v1.sysfs / "memory/pyrun/c1/memory.max_usage_in_bytes").write_text("7000\n")
    with pytest.raises(CgroupError) as caught:
        manager.apply({"memory": {"limit": 4096}})
    assert str(caught.value) == (
        "unable to set memory limit to 4096 (current usage: 5000, peak usage: 7000)"
    )


def test_cpu_fields_period_before_quota(v1: FakeHost) -> None:
    writes = applied(
        v1,
        {
            "cpu": {
                "shares": 512,
                "quota": 25000,
                "period": 50000,
                "burst": 1000,
                "realtimePeriod": 1000000,
                "realtimeRuntime": 950000,
                "idle": 1,
                "cpus": "0-1",
                "mems": "0",
            }
        },
    )
    cpu = "cpu,cpuacct/pyrun/c1/"
    assert writes == [
        ("cpuset/pyrun/c1/cpuset.cpus", "0-1"),
        ("cpuset/pyrun/c1/cpuset.mems", "0"),
        (cpu + "cpu.shares", "512"),
        (cpu + "cpu.cfs_period_us", "50000"),
        (cpu + "cpu.cfs_quota_us", "25000"),
        (cpu + "cpu.cfs_burst_us", "1000"),
        (cpu + "cpu.rt_period_us", "1000000"),
        (cpu + "cpu.rt_runtime_us", "950000"),
        (cpu + "cpu.idle", "1"),
    ]


def test_cpu_period_refused_is_retried_after_the_quota(v1: FakeHost) -> None:
    manager = v1.open("c1")
    manager.create()
    period = v1.path("cpu,cpuacct/pyrun/c1/cpu.cfs_period_us")
    real = v1.fs.sys_write
    refused: list[str] = []

    def once_einval(path: str, data: bytes) -> None:
        if path == period and not refused:
            refused.append(data.decode())
            raise OSError(errno.EINVAL, "Invalid argument")
        real(path, data)

    v1.fs.sys_write = once_einval  # type: ignore[method-assign]
    v1.fs.writes.clear()
    manager.apply({"cpu": {"quota": 1000, "period": 10000}})
    assert refused == ["10000"]
    names = [p.rsplit("/", 1)[1] for p, _ in v1.fs.writes]
    assert names == ["cpu.cfs_quota_us", "cpu.cfs_period_us"]
    assert v1.read("cpu,cpuacct/pyrun/c1/cpu.cfs_period_us") == "10000"


def test_cpu_shares_clamped_by_the_kernel_is_an_error(v1: FakeHost) -> None:
    manager = v1.open("c1")
    manager.create()
    with pytest.raises(CgroupError, match="the maximum allowed cpu-shares is 262144"):
        manager.apply({"cpu": {"shares": 300000}})
    with pytest.raises(CgroupError, match="the minimum allowed cpu-shares is 2"):
        manager.apply({"cpu": {"shares": 1}})


@pytest.mark.parametrize(("limit", "value"), [(100, "100"), (0, "max"), (-1, "max")])
def test_pids_limit(v1: FakeHost, limit: int, value: str) -> None:
    assert applied(v1, {"pids": {"limit": limit}}) == [("pids/pyrun/c1/pids.max", value)]


def test_blkio_fields(v1: FakeHost) -> None:
    writes = applied(
        v1,
        {
            "blockIO": {
                "weight": 300,
                "leafWeight": 200,
                "weightDevice": [{"major": 8, "minor": 0, "weight": 100, "leafWeight": 50}],
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}],
                "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 2000}],
                "throttleReadIOPSDevice": [{"major": 8, "minor": 16, "rate": 10}],
                "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 20}],
            }
        },
    )
    b = "blkio/pyrun/c1/blkio."
    assert writes == [
        (b + "weight", "300"),
        (b + "leaf_weight", "200"),
        (b + "weight_device", "8:0 100"),
        (b + "leaf_weight_device", "8:0 50"),
        (b + "throttle.read_bps_device", "8:0 1000"),
        (b + "throttle.write_bps_device", "8:0 2000"),
        (b + "throttle.read_iops_device", "8:16 10"),
        (b + "throttle.write_iops_device", "8:16 20"),
    ]


def test_blkio_weight_falls_back_to_bfq(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, "v1", with_blkio_weight=False)
    writes = applied(
        host,
        {"blockIO": {"weight": 300, "weightDevice": [{"major": 8, "minor": 0, "weight": 100}]}},
    )
    assert writes == [
        ("blkio/pyrun/c1/blkio.bfq.weight", "300"),
        ("blkio/pyrun/c1/blkio.bfq.weight_device", "8:0 100"),
    ]


def test_blkio_weight_without_any_weight_file(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, "v1", with_blkio_weight=False)
    manager = host.open("c1")
    manager.create()
    (host.sysfs / "blkio/pyrun/c1/blkio.bfq.weight").unlink()
    with pytest.raises(CgroupError, match=r"neither blkio\.weight nor blkio\.bfq\.weight exists"):
        manager.apply({"blockIO": {"weight": 300}})


def test_hugetlb_and_network(v1: FakeHost) -> None:
    writes = applied(
        v1,
        {
            "hugepageLimits": [
                {"pageSize": "2MB", "limit": 4 * MiB},
                {"pageSize": "1GB", "limit": 0},
            ],
            "network": {
                "classID": 0x100001,
                "priorities": [{"name": "eth0", "priority": 5}, {"name": "lo", "priority": 2}],
            },
        },
    )
    assert writes == [
        ("hugetlb/pyrun/c1/hugetlb.2MB.limit_in_bytes", str(4 * MiB)),
        ("hugetlb/pyrun/c1/hugetlb.1GB.limit_in_bytes", "0"),
        ("net_cls,net_prio/pyrun/c1/net_cls.classid", "1048577"),
        ("net_cls,net_prio/pyrun/c1/net_prio.ifpriomap", "eth0 5"),
        ("net_cls,net_prio/pyrun/c1/net_prio.ifpriomap", "lo 2"),
    ]


def test_devices_rules_in_order(v1: FakeHost) -> None:
    writes = applied(
        v1,
        {
            "devices": [
                {"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "access": "m"},
                {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "wr"},
                {"allow": True, "type": "b", "major": 8, "access": "r"},
                {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "w"},
            ]
        },
    )
    d = "devices/pyrun/c1/devices."
    assert writes == [
        (d + "deny", "a *:* rwm"),
        (d + "allow", "c *:* m"),
        (d + "allow", "c 1:3 rw"),
        (d + "allow", "b 8:* r"),
        (d + "deny", "c 1:3 w"),
    ]


def test_devices_start_from_deny_all_like_runc(v1: FakeHost) -> None:
    writes = applied(v1, {"devices": [{"allow": True, "type": "c", "major": 1, "minor": 5}]})
    assert writes == [
        ("devices/pyrun/c1/devices.deny", "a *:* rwm"),
        ("devices/pyrun/c1/devices.allow", "c 1:5 rwm"),
    ]
    assert applied(FakeHost(v1.sysfs.parent / "x", "v1"), {"devices": [{"allow": True}]}) == [
        ("devices/pyrun/c1/devices.allow", "a *:* rwm")
    ]


def test_device_hole_punching_is_refused_before_any_write(v1: FakeHost) -> None:
    manager = v1.open("c1")
    manager.create()
    v1.fs.writes.clear()
    with pytest.raises(CgroupError, match="cannot punch a hole"):
        manager.apply(
            {
                "memory": {"limit": MiB},
                "devices": [
                    {"allow": False},
                    {"allow": True, "type": "c", "access": "rwm"},
                    {"allow": False, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                ],
            }
        )
    assert v1.fs.writes == []


def test_unified_on_pure_v1_is_an_error(v1: FakeHost) -> None:
    manager = v1.open("c1")
    with pytest.raises(CgroupError) as caught:
        manager.apply({"unified": {"memory.high": "1"}})
    assert str(caught.value) == (
        "linux.resources.unified: this host has no cgroup v2 (unified) hierarchy"
    )


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ({"network": {"classID": 1}}, "linux.resources.network: net_cls controller is not mounted"),
        (
            {"network": {"priorities": [{"name": "eth0", "priority": 1}]}},
            "linux.resources.network.priorities: net_prio controller is not mounted",
        ),
        (
            {"rdma": {"mlx5_1": {"hcaHandles": 1}}},
            "linux.resources.rdma: rdma controller is not mounted",
        ),
        (
            {"unified": {"memory.high": "1G"}},
            "linux.resources.unified['memory.high']: memory controller is not available in the "
            "unified hierarchy (cgroup.controllers: hugetlb)",
        ),
    ],
)
def test_missing_controller_names_field_and_controller(
    tmp_path: Path, resources: dict[str, object], message: str
) -> None:
    host = FakeHost(tmp_path, "hybrid")
    manager = host.open("c1")
    manager.create()
    host.fs.writes.clear()
    with pytest.raises(CgroupError) as caught:
        manager.apply({"memory": {"limit": MiB}, **resources})
    assert str(caught.value) == message
    assert host.fs.writes == []  # validated before the first side effect


@pytest.mark.parametrize(
    ("resources", "message"),
    [
        ({"memory": {"swappiness": 101}}, "valid memory swappiness range is 0-100"),
        ({"memory": {"limit": "1G"}}, "linux.resources.memory.limit: must be an integer"),
        ({"pids": {"limit": True}}, "linux.resources.pids.limit: must be an integer"),
        ({"cpu": {"cpus": 3}}, "linux.resources.cpu.cpus: must be a string"),
        ({"hugepageLimits": [{"pageSize": "../2MB", "limit": 1}]}, "pageSize"),
        ({"blockIO": {"throttleReadBpsDevice": [{"major": 8, "rate": 1}]}}, "major and minor"),
        ({"devices": [{"type": "x", "allow": True}]}, r"devices\[0\].type"),
        ({"devices": [{"access": "rwx", "allow": True}]}, r"devices\[0\].access"),
        ({"devices": [{"type": "c"}]}, r"devices\[0\].allow"),
    ],
)
def test_invalid_values(v1: FakeHost, resources: dict[str, object], message: str) -> None:
    manager = v1.open("c1")
    manager.create()
    v1.fs.writes.clear()
    with pytest.raises(CgroupError, match=message):
        manager.apply(resources)
    assert v1.fs.writes == []


def test_hybrid_routes_hugetlb_to_cgroup2_and_enables_it_only_then(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, "hybrid")
    assert applied(host, {"memory": {"limit": MiB}, "pids": {"limit": 10}}) == [
        ("memory/pyrun/c1/memory.limit_in_bytes", str(MiB)),
        ("pids/pyrun/c1/pids.max", "10"),
    ]
    assert host.read("unified/cgroup.subtree_control") == ""
    writes = applied(host, {"hugepageLimits": [{"pageSize": "2MB", "limit": 2 * MiB}]})
    assert writes == [
        ("unified/cgroup.subtree_control", "+hugetlb"),
        ("unified/pyrun/cgroup.subtree_control", "+hugetlb"),
        ("unified/pyrun/c1/hugetlb.2MB.max", str(2 * MiB)),
    ]
    # Enabled already: not written again.
    assert applied(host, {"hugepageLimits": [{"pageSize": "2MB", "limit": 0}]}) == [
        ("unified/pyrun/c1/hugetlb.2MB.max", "0"),
    ]


def test_hybrid_unified_keys_go_to_the_unified_directory(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, "hybrid")
    writes = applied(host, {"unified": {"hugetlb.2MB.max": "0", "cgroup.max.depth": "3"}})
    assert writes[-2:] == [
        ("unified/pyrun/c1/hugetlb.2MB.max", "0"),
        ("unified/pyrun/c1/cgroup.max.depth", "3"),
    ]
    assert ("unified/cgroup.subtree_control", "+hugetlb") in writes


def test_untouched_values_keep_kernel_defaults(v1: FakeHost) -> None:
    applied(v1, {"memory": {"reservation": MiB}})
    assert v1.read("memory/pyrun/c1/memory.limit_in_bytes") == MAX_V1
