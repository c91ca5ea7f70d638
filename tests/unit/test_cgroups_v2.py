"""linux.resources on cgroup v2: runc's conversions, subtree_control, unified keys, devices."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.cgroups import convert
from runtime.cgroups.devices import parse_rules
from runtime.cgroups.devices_bpf import program_for
from runtime.errors import CgroupError
from tests.unit.test_cgroups_fakes import FakeHost

MiB = 1024 * 1024


@pytest.fixture
def v2(tmp_path: Path) -> FakeHost:
    return FakeHost(tmp_path, "v2")


def applied(
    host: FakeHost, resources: dict[str, object], cgroups_path: str | None = None
) -> list[tuple[str, str]]:
    manager = host.open("c1", cgroups_path)
    manager.create()
    host.fs.writes.clear()
    manager.apply(resources)
    root = str(host.sysfs) + "/"
    return [(path.removeprefix(root), value) for path, value in host.fs.writes]


@pytest.mark.parametrize(
    ("shares", "weight"),
    [(0, 0), (1, 1), (2, 1), (512, 20), (1024, 39), (4096, 157), (262144, 10000), (10**6, 10000)],
)
def test_shares_to_weight_is_runcs_formula(shares: int, weight: int) -> None:
    assert convert.shares_to_weight(shares) == weight


@pytest.mark.parametrize(("blkio", "io"), [(0, 0), (10, 1), (100, 910), (500, 4950), (1000, 10000)])
def test_blkio_weight_to_io_weight(blkio: int, io: int) -> None:
    assert convert.blkio_weight_to_io_weight(blkio) == io


@pytest.mark.parametrize(
    ("swap", "memory", "expected"),
    [
        (0, -1, -1),
        (0, 100, 0),
        (-1, 100, -1),
        (300, 100, 200),
        (100, 100, 0),
        (300, -1, 300),
    ],
)
def test_swap_conversion(swap: int, memory: int, expected: int) -> None:
    assert convert.swap_to_v2(swap, memory) == expected


@pytest.mark.parametrize(
    ("swap", "memory", "message"),
    [(300, 0, "without a memory limit"), (50, 100, "must be >= memory limit")],
)
def test_swap_conversion_errors(swap: int, memory: int, message: str) -> None:
    with pytest.raises(CgroupError, match=message):
        convert.swap_to_v2(swap, memory)


def test_memory(v2: FakeHost) -> None:
    writes = applied(
        v2,
        {
            "memory": {
                "limit": 100 * MiB,
                "swap": 300 * MiB,
                "reservation": 50 * MiB,
                "swappiness": 5,
            }
        },
    )
    assert writes == [
        ("cgroup.subtree_control", "+memory"),
        ("pyrun/cgroup.subtree_control", "+memory"),
        ("pyrun/c1/memory.swap.max", str(200 * MiB)),
        ("pyrun/c1/memory.max", str(100 * MiB)),
        ("pyrun/c1/memory.low", str(50 * MiB)),
    ]


@pytest.mark.parametrize(
    ("memory", "values"),
    [
        ({"limit": MiB, "swap": MiB}, [("memory.swap.max", "0"), ("memory.max", str(MiB))]),
        ({"limit": -1}, [("memory.swap.max", "max"), ("memory.max", "max")]),
        ({"limit": MiB, "swap": -1}, [("memory.swap.max", "max"), ("memory.max", str(MiB))]),
    ],
)
def test_memory_swap_cases(v2: FakeHost, memory: dict[str, int], values: list) -> None:
    writes = applied(v2, {"memory": memory})
    assert writes[2:] == [(f"pyrun/c1/{name}", value) for name, value in values]


def test_swap_without_limit_fails_before_writing(v2: FakeHost) -> None:
    with pytest.raises(CgroupError, match="cannot set a swap limit without a memory limit"):
        applied(v2, {"pids": {"limit": 3}, "memory": {"swap": MiB}})
    assert v2.fs.writes == []


def test_cpu(v2: FakeHost) -> None:
    writes = applied(
        v2,
        {
            "cpu": {
                "shares": 1024,
                "quota": 50000,
                "period": 100000,
                "burst": 10000,
                "idle": 0,
                "cpus": "0-1",
                "mems": "0",
            }
        },
    )
    assert writes == [
        ("cgroup.subtree_control", "+cpuset +cpu"),
        ("pyrun/cgroup.subtree_control", "+cpuset +cpu"),
        ("pyrun/c1/cpuset.cpus", "0-1"),
        ("pyrun/c1/cpuset.mems", "0"),
        ("pyrun/c1/cpu.weight", "39"),
        ("pyrun/c1/cpu.max", "50000 100000"),
        ("pyrun/c1/cpu.max.burst", "10000"),
        ("pyrun/c1/cpu.idle", "0"),
    ]


@pytest.mark.parametrize(
    ("cpu", "value"),
    [
        ({"quota": -1}, "max 100000"),
        ({"period": 20000}, "max 20000"),
        ({"quota": 5000}, "5000 100000"),
    ],
)
def test_cpu_max(v2: FakeHost, cpu: dict[str, int], value: str) -> None:
    assert applied(v2, {"cpu": cpu})[-1] == ("pyrun/c1/cpu.max", value)


def test_realtime_is_refused_on_v2(v2: FakeHost) -> None:
    with pytest.raises(CgroupError, match="realtimeRuntime: realtime scheduling is not supported"):
        applied(v2, {"cpu": {"realtimeRuntime": 100}})


def test_pids_rdma_hugetlb(v2: FakeHost) -> None:
    writes = applied(
        v2,
        {
            "pids": {"limit": 0},
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4 * MiB}],
            "rdma": {"mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000}, "mlx4_0": {"hcaObjects": 7}},
        },
    )
    assert writes == [
        ("cgroup.subtree_control", "+pids +hugetlb +rdma"),
        ("pyrun/cgroup.subtree_control", "+pids +hugetlb +rdma"),
        ("pyrun/c1/pids.max", "max"),
        ("pyrun/c1/hugetlb.2MB.max", str(4 * MiB)),
        ("pyrun/c1/rdma.max", "mlx5_1 hca_handle=3 hca_object=10000"),
        ("pyrun/c1/rdma.max", "mlx4_0 hca_object=7"),
    ]


def test_io_without_bfq(v2: FakeHost) -> None:
    writes = applied(
        v2,
        {
            "blockIO": {
                "weight": 500,
                "leafWeight": 300,  # no v2 equivalent
                "weightDevice": [{"major": 8, "minor": 0, "weight": 100}],  # needs BFQ
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1000}],
                "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 2000}],
                "throttleReadIOPSDevice": [{"major": 8, "minor": 16, "rate": 10}],
                "throttleWriteIOPSDevice": [{"major": 8, "minor": 16, "rate": 20}],
            }
        },
    )
    assert writes == [
        ("cgroup.subtree_control", "+io"),
        ("pyrun/cgroup.subtree_control", "+io"),
        ("pyrun/c1/io.weight", "4950"),
        ("pyrun/c1/io.max", "8:0 rbps=1000"),
        ("pyrun/c1/io.max", "8:0 wbps=2000"),
        ("pyrun/c1/io.max", "8:16 riops=10"),
        ("pyrun/c1/io.max", "8:16 wiops=20"),
    ]


def test_io_with_bfq(v2: FakeHost) -> None:
    manager = v2.open("c1")
    manager.create()
    manager.apply({"pids": {"limit": 1}, "blockIO": {"throttleReadBpsDevice": []}})
    (v2.sysfs / "pyrun/c1/io.bfq.weight").write_text("default 100")
    v2.fs.writes.clear()
    manager.apply(
        {"blockIO": {"weight": 500, "weightDevice": [{"major": 8, "minor": 0, "weight": 90}]}}
    )
    root = str(v2.sysfs) + "/"
    assert [(p.removeprefix(root), v) for p, v in v2.fs.writes] == [
        ("cgroup.subtree_control", "+io"),
        ("pyrun/cgroup.subtree_control", "+io"),
        ("pyrun/c1/io.bfq.weight", "500"),
        ("pyrun/c1/io.bfq.weight", "8:0 90"),
    ]


def test_blkio_weight_range_on_v2(v2: FakeHost) -> None:
    with pytest.raises(CgroupError, match="weight: must be from 10 to 1000"):
        applied(v2, {"blockIO": {"weight": 5}})


def test_subtree_control_along_a_nested_path_only_where_missing(v2: FakeHost) -> None:
    (v2.sysfs / "cgroup.subtree_control").write_text("memory pids")
    writes = applied(v2, {"pids": {"limit": 5}, "memory": {"limit": MiB}}, "/a/b/c1")
    assert writes == [
        ("a/cgroup.subtree_control", "+memory +pids"),
        ("a/b/cgroup.subtree_control", "+memory +pids"),
        ("a/b/c1/memory.max", str(MiB)),
        ("a/b/c1/pids.max", "5"),
    ]


def test_no_resources_enable_nothing(v2: FakeHost) -> None:
    assert applied(v2, {}) == []
    assert applied(v2, {"memory": {}, "cpu": {}, "devices": [], "unified": {}}) == []


def test_unified_keys(v2: FakeHost) -> None:
    writes = applied(v2, {"unified": {"memory.high": "1G", "cgroup.max.depth": "5"}})
    assert writes == [
        ("cgroup.subtree_control", "+memory"),
        ("pyrun/cgroup.subtree_control", "+memory"),
        ("pyrun/c1/memory.high", "1G"),
        ("pyrun/c1/cgroup.max.depth", "5"),
    ]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("../cgroup.procs", "1", "must be a file name"),
        ("a/b", "1", "must be a file name"),
        ("cgroup.procs", "1", "managed by pyrun"),
        ("cgroup.subtree_control", "+cpu", "managed by pyrun"),
        ("cgroup.kill", "1", "managed by pyrun"),
        ("nodot", "1", "CONTROLLER.PARAMETER"),
        ("memory.high", 5, "value must be a string"),
        ("misc.max", "x 1", "misc controller is not available"),
    ],
)
def test_unified_rejections(v2: FakeHost, key: str, value: object, message: str) -> None:
    with pytest.raises(CgroupError, match=message):
        applied(v2, {"pids": {"limit": 2}, "unified": {key: value}})
    assert v2.fs.writes == []


def test_devices_become_an_ebpf_program_on_the_container_dir(v2: FakeHost) -> None:
    rules = [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
    ]
    assert applied(v2, {"devices": rules}) == []  # no controller files involved
    assert v2.fs.attached == [(v2.path("pyrun/c1"), program_for(parse_rules(rules)))]


@pytest.mark.parametrize(
    ("controllers", "resources", "message"),
    [
        (
            "memory pids",
            {"cpu": {"shares": 2}},
            "linux.resources.cpu: cpu controller is not mounted",
        ),
        (
            "memory pids",
            {"blockIO": {"weight": 10}},
            "linux.resources.blockIO: io controller is not mounted",
        ),
        (
            "",
            {"network": {"classID": 1}},
            "linux.resources.network: net_cls controller is not mounted",
        ),
        ("", {"cpu": {"cpus": "0"}}, "linux.resources.cpu.cpus: cpuset controller is not mounted"),
    ],
)
def test_v2_missing_controllers(
    tmp_path: Path, controllers: str, resources: dict[str, object], message: str
) -> None:
    host = FakeHost(tmp_path, "v2", v2_controllers=controllers)
    with pytest.raises(CgroupError) as caught:
        applied(host, resources)
    assert str(caught.value) == message
