"""stats(): runc ``events --stats`` data from fake v1, hybrid and v2 trees."""

from __future__ import annotations

import json
from pathlib import Path

from runtime.cgroups import convert
from tests.unit.test_cgroups_fakes import FakeHost

BLKIO_BYTES = "8:0 Read 100\n8:0 Write 200\n8:0 Sync 50\n8:0 Async 250\n8:0 Total 300\nTotal 300\n"
BLKIO_IOS = "8:0 Read 1\n8:0 Write 2\n8:0 Sync 0\n8:0 Async 3\n8:0 Total 3\nTotal 3\n"


def fill(root: Path, files: dict[str, str]) -> None:
    for name, value in files.items():
        (root / name).write_text(value)


def test_hybrid_stats(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, "hybrid")
    manager = host.open("c1")
    manager.create()
    manager.apply({"hugepageLimits": [{"pageSize": "2MB", "limit": 8388608}]})
    s = host.sysfs
    fill(
        s / "cpuacct/pyrun/c1",
        {
            "cpuacct.usage": "123456789\n",
            "cpuacct.usage_percpu": "100000000 23456789 \n",
            "cpuacct.usage_all": "cpu user system\n0 60000000 40000000\n1 20000000 3456789\n",
            "cpuacct.stat": "user 5\nsystem 3\n",
        },
    )
    fill(s / "cpu/pyrun/c1", {"cpu.stat": "nr_periods 10\nnr_throttled 2\nthrottled_time 3000\n"})
    fill(
        s / "memory/pyrun/c1",
        {
            "memory.stat": "cache 4096\nrss 8192\n",
            "memory.usage_in_bytes": "12288\n",
            "memory.max_usage_in_bytes": "20000\n",
            "memory.failcnt": "1\n",
            "memory.limit_in_bytes": "104857600\n",
            "memory.memsw.usage_in_bytes": "12288\n",
            "memory.memsw.max_usage_in_bytes": "20000\n",
            "memory.memsw.limit_in_bytes": "209715200\n",
        },
    )
    fill(s / "pids/pyrun/c1", {"pids.current": "3\n", "pids.max": "100\n"})
    (s / "blkio/pyrun/c1/blkio.throttle.io_service_bytes_recursive").write_text(BLKIO_BYTES)
    (s / "blkio/pyrun/c1/blkio.throttle.io_serviced_recursive").write_text(BLKIO_IOS)
    fill(
        s / "unified/pyrun/c1",
        {"hugetlb.2MB.current": "4194304\n", "hugetlb.2MB.events": "max 1\n"},
    )
    fill(s / "cpuset/pyrun/c1", {"cpuset.cpus": "0-1,3\n"})
    stats = manager.stats()
    json.dumps(stats)  # serialisable as is
    assert stats == {
        "cpu": {
            "usage": {
                "total": 123456789,
                "percpu": [100000000, 23456789],
                "percpu_kernel": [40000000, 3456789],
                "percpu_user": [60000000, 20000000],
                "kernel": 30000000,
                "user": 50000000,
            },
            "throttling": {"periods": 10, "throttledPeriods": 2, "throttledTime": 3000},
        },
        "cpuset": {
            "cpus": [0, 1, 3],
            "mems": [0],
            "cpu_exclusive": 0,
            "mem_hardwall": 0,
            "mem_exclusive": 0,
            "memory_migrate": 0,
            "memory_spread_page": 0,
            "memory_spread_slab": 0,
            "memory_pressure": 0,
            "sched_load_balance": 1,
            "sched_relax_domain_level": 0,
        },
        "memory": {
            "cache": 4096,
            "usage": {"limit": 104857600, "usage": 12288, "max": 20000, "failcnt": 1},
            "swap": {"limit": 209715200, "usage": 12288, "max": 20000, "failcnt": 0},
            "kernel": {"limit": 0, "failcnt": 0},  # no kmem accounting files
            "kernelTCP": {"limit": 0, "failcnt": 0},
            "raw": {"cache": 4096, "rss": 8192},
        },
        "pids": {"current": 3, "limit": 100},
        "blkio": {
            "ioServicedRecursive": [
                {"major": 8, "op": "Read", "value": 1},
                {"major": 8, "op": "Write", "value": 2},
                {"major": 8, "op": "Sync"},
                {"major": 8, "op": "Async", "value": 3},
                {"major": 8, "op": "Total", "value": 3},
            ],
            "ioServiceBytesRecursive": [
                {"major": 8, "op": "Read", "value": 100},
                {"major": 8, "op": "Write", "value": 200},
                {"major": 8, "op": "Sync", "value": 50},
                {"major": 8, "op": "Async", "value": 250},
                {"major": 8, "op": "Total", "value": 300},
            ],
        },
        "hugetlb": {"1GB": {"failcnt": 0}, "2MB": {"usage": 4194304, "failcnt": 1}},
        "intel_rdt": {},
        "network_interfaces": None,
    }


def test_v2_stats(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, "v2")
    manager = host.open("c1")
    manager.create()
    manager.apply(
        {
            "memory": {"limit": 1048576},
            "pids": {"limit": 0},
            "blockIO": {"weight": 100},
            "cpu": {"cpus": "0-3"},
        }
    )
    fill(
        host.sysfs / "pyrun/c1",
        {
            "cpu.stat": "usage_usec 1000\nuser_usec 600\nsystem_usec 400\nnr_periods 5\n"
            "nr_throttled 1\nthrottled_usec 7\n",
            "memory.stat": "anon 8192\nfile 4096\n",
            "memory.current": "12288\n",
            "memory.peak": "16384\n",
            "memory.swap.current": "100\n",
            "pids.current": "2\n",
            "io.stat": "8:0 rbytes=100 wbytes=200 rios=1 wios=2 dbytes=0 dios=0\n",
        },
    )
    stats = manager.stats()
    assert stats["cpu"] == {
        "usage": {"total": 1000000, "kernel": 400000, "user": 600000},
        "throttling": {"periods": 5, "throttledPeriods": 1, "throttledTime": 7000},
    }
    assert stats["memory"] == {
        "cache": 4096,
        "usage": {"limit": 1048576, "usage": 12288, "max": 16384, "failcnt": 0},
        "swap": {"limit": convert.MAX_UINT64, "usage": 12388, "failcnt": 0},
        "kernel": {"limit": 0, "failcnt": 0},
        "kernelTCP": {"limit": 0, "failcnt": 0},
        "raw": {"anon": 8192, "file": 4096},
    }
    assert stats["pids"] == {"current": 2}  # "max" is reported as no limit
    assert stats["blkio"] == {
        "ioServiceBytesRecursive": [
            {"major": 8, "op": "Read", "value": 100},
            {"major": 8, "op": "Write", "value": 200},
        ],
        "ioServicedRecursive": [
            {"major": 8, "op": "Read", "value": 1},
            {"major": 8, "op": "Write", "value": 2},
        ],
    }
    assert stats["cpuset"]["cpus"] == [0, 1, 2, 3]
    assert stats["hugetlb"] == {}  # controller not enabled: no files


def test_v2_swap_limit_adds_memory(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, "v2")
    manager = host.open("c1")
    manager.create()
    manager.apply({"memory": {"limit": 1000, "swap": 3000}})
    assert host.read("pyrun/c1/memory.swap.max") == "2000"
    assert manager.stats()["memory"]["swap"]["limit"] == 3000


def test_stats_of_a_fresh_v1_container_omit_empty_fields(tmp_path: Path) -> None:
    host = FakeHost(tmp_path, "v1")
    manager = host.open("c1")
    manager.create()
    stats = manager.stats()
    assert stats["cpu"] == {
        "usage": {
            "percpu": [0, 0],
            "percpu_kernel": [0, 0],
            "percpu_user": [0, 0],
            "kernel": 0,
            "user": 0,
        },
        "throttling": {},
    }
    assert stats["pids"] == {}
    assert stats["blkio"] == {}
    assert stats["memory"]["usage"] == {"limit": 9223372036854771712, "failcnt": 0}
    assert stats["hugetlb"] == {"1GB": {"failcnt": 0}, "2MB": {"failcnt": 0}}
