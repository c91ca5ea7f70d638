"""Values of `update` and `events` parsed as runc parses them, the update document's checks and
merge, the v2 OOM counter, and the features document (no root, no containers)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from runtime.cgroups.base import CgroupFS, Manager
from runtime.cgroups.oom import POLL_SECONDS, watch_oom
from runtime.errors import PyrunError, SpecError
from runtime.lifecycle import update as up
from runtime.lifecycle.events import event_line, interval_seconds, parse_duration
from runtime.lifecycle.features import Libseccomp, features, features_output

KiB, MiB, GiB, TiB, PiB = (1024**n for n in range(1, 6))

# -- memory sizes: go-units RAMInBytes ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("100", 100),
        ("512m", 512 * MiB),
        ("512M", 512 * MiB),
        ("512mb", 512 * MiB),
        ("512MiB", 512 * MiB),
        ("1g", GiB),
        ("1.5g", GiB + GiB // 2),
        ("10 k", 10 * KiB),
        ("10kb", 10 * KiB),
        ("2t", 2 * TiB),
        ("1p", PiB),
        ("7b", 7),
        ("1.9", 1),  # the fraction is truncated, as Go's int64(float64)
        ("10ib", 10),  # go-units' regex takes "i" and "b" without a prefix
    ],
)
def test_ram_in_bytes_accepts_what_go_units_accepts(text: str, expected: int) -> None:
    assert up.ram_in_bytes(text) == expected


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", "invalid size: ''"),
        ("m", "invalid size: 'm'"),
        ("1x", "invalid size: '1x'"),
        ("-5", "invalid size: '-5'"),
        ("1  m", "invalid size: '1  m'"),
        ("1m ", "invalid size: '1m '"),
        ("1e3", "invalid size: '1e3'"),
        ("\uff11", "invalid size"),  # a full-width digit is not a Go \d
        ("1.2.3", 'strconv.ParseFloat: parsing "1.2.3": invalid syntax'),
        ("99999999p", "out of range"),
    ],
)
def test_ram_in_bytes_refuses_with_runcs_words(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words.replace(".", r"\.").replace("(", r"\(")):
        up.ram_in_bytes(text)


def test_memory_flags_take_minus_one_as_unlimited_and_nothing_else_negative() -> None:
    assert up.parse_memory("-1") == -1
    with pytest.raises(ValueError):
        up.parse_memory("-2")


# -- integers: strconv.ParseUint / ParseInt (base 10, 64 bits) -----------------------------


def test_parse_uint() -> None:
    assert up.parse_uint("0") == 0
    assert up.parse_uint("100000") == 100000
    assert up.parse_uint(str(2**64 - 1)) == 2**64 - 1
    for bad in ("", "-1", "+1", " 1", "1_0", "0x10", "1.0", "\u0661"):
        with pytest.raises(ValueError, match="invalid syntax"):
            up.parse_uint(bad)
    with pytest.raises(ValueError, match="value out of range"):
        up.parse_uint(str(2**64))


def test_parse_int() -> None:
    assert up.parse_int("-1") == -1
    assert up.parse_int("+5") == 5
    assert up.parse_int(str(-(2**63))) == -(2**63)
    for bad in ("", "-", "x", "1.5", "5 "):
        with pytest.raises(ValueError, match="invalid syntax"):
            up.parse_int(bad)
    with pytest.raises(ValueError, match="value out of range"):
        up.parse_int(str(2**63))


# -- the update document from flags ---------------------------------------------------------


def flags(**values: str) -> dict[str, Any]:
    options: dict[str, Any] = {dest: None for _flag, dest, _path, _kind in up.FLAGS}
    options.update({dest: None for _flag, dest in up.IGNORED_FLAGS})
    options.update(resources=None, l3_cache_schema=None, mem_bw_schema=None)
    options.update(values)
    return options


def test_flags_become_linux_resources() -> None:
    request = up.read_request(
        flags(
            memory="64m",
            memory_swap="-1",
            memory_reservation="32m",
            cpu_share="512",
            cpu_quota="-1",
            cpu_period="100000",
            cpu_rt_period="1000000",
            cpu_rt_runtime="950000",
            cpu_burst="0",
            cpu_idle="1",
            cpuset_cpus="0-1",
            cpuset_mems="0",
            pids_limit="20",
            blkio_weight="300",
        )
    )
    assert request.problems == []
    assert request.resources == {
        "blockIO": {"weight": 300},
        "cpu": {
            "cpus": "0-1",
            "mems": "0",
            "idle": 1,
            "burst": 0,
            "period": 100000,
            "realtimePeriod": 1000000,
            "shares": 512,
            "quota": -1,
            "realtimeRuntime": 950000,
        },
        "memory": {"limit": 64 * MiB, "swap": -1, "reservation": 32 * MiB},
        "pids": {"limit": 20},
    }
    assert request.flag_of[("memory", "limit")] == "--memory"


def test_every_bad_flag_value_is_reported_in_runcs_words() -> None:
    request = up.read_request(
        flags(memory="1x", cpu_quota="abc", cpu_period="-5", pids_limit="1.5", memory_swap="9z")
    )
    assert request.problems == [
        'invalid value for cpu-period: strconv.ParseUint: parsing "-5": invalid syntax',
        'invalid value for cpu-quota: strconv.ParseInt: parsing "abc": invalid syntax',
        "invalid value for memory: invalid size: '1x'",
        "invalid value for memory-swap: invalid size: '9z'",
        'invalid value for pids-limit: strconv.ParseInt: parsing "1.5": invalid syntax',
    ]
    assert request.resources == {}


def test_kernel_memory_is_ignored_with_runcs_warning_and_rdt_is_refused() -> None:
    request = up.read_request(flags(kernel_memory="10m", kernel_memory_tcp="1m"))
    assert request.warnings == ["Kernel memory settings are ignored and will be removed"]
    assert request.resources == {}
    request = up.read_request(flags(l3_cache_schema="L3:0=f", mem_bw_schema="MB:0=50"))
    assert request.problems == [
        "Intel RDT/CAT: l3 cache schema is not enabled",
        "Intel RDT/MBA: memory bandwidth schema is not enabled",
    ]


def test_resources_document_ignores_the_flags(tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"memory": {"limit": 1024}}))
    request = up.read_request(flags(resources=str(path), memory="5m"))
    assert request.resources == {"memory": {"limit": 1024}}
    assert request.source == str(path)


def test_resources_from_stdin_and_its_syntax_errors() -> None:
    import io

    request = up.read_request(flags(resources="-"), io.BytesIO(b'{"pids": {"limit": 7}}'))
    assert request.resources == {"pids": {"limit": 7}}
    assert request.source == "<stdin>"
    with pytest.raises(SpecError) as caught:
        up.read_request(flags(resources="-"), io.BytesIO(b'{"pids":\n'))
    assert caught.value.problems[0].startswith("(root) (line 2, column 1): invalid JSON")
    request = up.read_request(flags(resources="-"), io.BytesIO(b"[1]"))
    assert request.problems == ["(root): must be a JSON object (LinuxResources)"]


def test_a_missing_resources_file_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PyrunError, match="no such file or directory"):
        up.read_request(flags(resources=str(tmp_path / "nope.json")))


# -- checks ---------------------------------------------------------------------------------


def test_normalize_drops_runcs_unchanged_zeros_and_makes_unlimited_memory_unlimited_swap() -> None:
    out = up.normalize(
        {
            "memory": {"limit": -1, "reservation": 0},
            "cpu": {"shares": 0, "quota": 0, "idle": 0, "burst": 0, "cpus": ""},
            "blockIO": {"weight": 0},
            "pids": {"limit": 0},
        }
    )
    assert out == {
        "memory": {"limit": -1, "swap": -1},
        "cpu": {"idle": 0, "burst": 0},
        "blockIO": {},
    }
    assert up.normalize({"memory": {"limit": -1, "swap": 100}})["memory"]["swap"] == 100
    assert up.normalize({"pids": {}}) == {"pids": {}}  # left for the schema to refuse


def test_schema_problems_name_the_flag_or_the_json_path() -> None:
    request = up.from_flags(flags(blkio_weight="5", memory="10"))
    assert up.schema_problems(request, request.resources) == [
        "--blkio-weight: 5 is less than the minimum of 10"
    ]
    request = up.from_document(
        b'{"memory": {"limit": "x"}, "cpu": {"shares": -3}, "pids": {}}', "<stdin>"
    )
    assert up.schema_problems(request, request.resources) == [
        "cpu.shares: -3 is less than the minimum of 0",
        "memory.limit: 'x' is not of type 'integer'",
        "pids.limit: is required",
    ]
    assert up.schema_problems(request, {"memory": {"limit": 5}}) == []


def test_merge_lays_objects_and_keyed_lists_over_the_stored_values() -> None:
    stored = {
        "memory": {"limit": 100, "swap": 200},
        "cpu": {"shares": 1024, "cpus": "0"},
        "hugepageLimits": [{"pageSize": "2MB", "limit": 1}, {"pageSize": "1GB", "limit": 2}],
        "blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 10}]},
        "unified": {"memory.high": "50"},
    }
    update = {
        "memory": {"limit": 150},
        "hugepageLimits": [{"pageSize": "1GB", "limit": 3}, {"pageSize": "64KB", "limit": 4}],
        "blockIO": {"throttleReadBpsDevice": [{"major": 8, "minor": 16, "rate": 5}]},
        "unified": {"pids.max": "9"},
    }
    assert up.merge(stored, update) == {
        "memory": {"limit": 150, "swap": 200},
        "cpu": {"shares": 1024, "cpus": "0"},
        "hugepageLimits": [
            {"pageSize": "2MB", "limit": 1},
            {"pageSize": "1GB", "limit": 3},
            {"pageSize": "64KB", "limit": 4},
        ],
        "blockIO": {
            "throttleReadBpsDevice": [
                {"major": 8, "minor": 0, "rate": 10},
                {"major": 8, "minor": 16, "rate": 5},
            ]
        },
        "unified": {"memory.high": "50", "pids.max": "9"},
    }
    assert stored["memory"] == {"limit": 100, "swap": 200}  # not mutated


def test_merged_swap_below_the_memory_limit_is_a_problem() -> None:
    assert up.merged_problems({"memory": {"limit": 200, "swap": 100}}) == [
        "memory.swap: memory+swap limit 100 must not be below the memory limit 200"
    ]
    assert up.merged_problems({"memory": {"limit": 200, "swap": -1}}) == []
    assert up.merged_problems({"memory": {"limit": -1, "swap": 5}}) == []


# -- events: Go durations and the output lines ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5s", 5.0),
        ("0", 0.0),
        ("+1s", 1.0),
        ("-2s", -2.0),
        ("250ms", 0.25),
        ("1m30s", 90.0),
        ("1.5h", 5400.0),
        (".5s", 0.5),
        ("5.s", 5.0),
        ("100us", 0.0001),
        ("100\u00b5s", 0.0001),
        ("100\u03bcs", 0.0001),
        ("1500ns", 0.0000015),
        ("1h1m1s1ms", 3661.001),
    ],
)
def test_parse_duration_like_go(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", 'time: invalid duration ""'),
        ("-", 'time: invalid duration "-"'),
        ("5", 'time: missing unit in duration "5"'),
        ("1s5", 'time: missing unit in duration "1s5"'),
        ("s", 'time: invalid duration "s"'),
        (".s", 'time: invalid duration ".s"'),
        ("1..2s", 'time: invalid duration "1..2s"'),
        ("5x", 'time: unknown unit "x" in duration "5x"'),
        ("5 s", 'time: unknown unit " s" in duration "5 s"'),
    ],
)
def test_parse_duration_errors_like_go(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration(text)
    assert str(caught.value) == message


def test_interval_must_be_positive_and_parse() -> None:
    assert interval_seconds("200ms") == pytest.approx(0.2)
    for text in ("0", "0s", "-1s"):
        with pytest.raises(PyrunError, match=r"^duration interval must be greater than 0$"):
            interval_seconds(text)
    with pytest.raises(PyrunError) as caught:
        interval_seconds("5")
    assert caught.value.message == (
        'invalid value "5" for flag -interval: time: missing unit in duration "5"'
    )


def test_event_lines_are_compact_json_in_runcs_field_order() -> None:
    assert event_line("oom", "c1") == '{"type":"oom","id":"c1"}\n'
    assert event_line("stats", "c1", {"pids": {"current": 1}}) == (
        '{"type":"stats","id":"c1","data":{"pids":{"current":1}}}\n'
    )


# -- the v2 OOM counter (v1's eventfd needs the kernel: integration tests) --------------------


def test_v2_oom_watcher_reports_each_growth_of_oom_kill(tmp_path: Path) -> None:
    cgroup = tmp_path / "pyrun" / "c"
    cgroup.mkdir(parents=True)
    events = cgroup / "memory.events"
    events.write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    manager = Manager("v2", {"unified": str(cgroup)}, {"unified": str(tmp_path)}, CgroupFS())
    watcher = watch_oom(manager)
    assert watcher is not None and watcher.fd is None and watcher.poll_every == POLL_SECONDS
    assert watcher.check() == 0  # what happened before watching is not news
    events.write_text("low 0\nhigh 0\nmax 9\noom 3\noom_kill 3\n")
    assert watcher.check() == 1
    assert watcher.check() == 0
    events.unlink()  # the cgroup went away
    assert watcher.check() == 0 and watcher.gone
    watcher.close()


def test_no_oom_watcher_without_a_memory_controller(tmp_path: Path) -> None:
    cgroup = tmp_path / "c"
    cgroup.mkdir()
    manager = Manager("v2", {"unified": str(cgroup)}, {"unified": str(tmp_path)}, CgroupFS())
    assert watch_oom(manager) is None


# -- features --------------------------------------------------------------------------------


def test_features_validate_against_the_schema_and_say_what_pyrun_does() -> None:
    import jsonschema

    from runtime.spec import load_schema
    from runtime.spec.tables import CAPABILITIES, MOUNT_EXTENSIONS, NAMESPACES

    document = json.loads(features_output())
    jsonschema.Draft202012Validator(load_schema("features")).validate(document)
    assert document == features()
    assert (document["ociVersionMin"], document["ociVersionMax"]) == ("1.0.0", "1.2.0")
    linux = document["linux"]
    assert linux["namespaces"] == sorted(NAMESPACES)
    assert linux["capabilities"] == list(CAPABILITIES)
    assert linux["cgroup"] == {
        "v1": True,
        "v2": True,
        "systemd": False,
        "systemdUser": False,
        "rdma": True,
    }
    assert linux["apparmor"] == linux["selinux"] == {"enabled": False}
    assert linux["mountExtensions"] == {"idmap": {"enabled": False}}
    assert not set(document["mountOptions"]) & MOUNT_EXTENSIONS
    assert {"ro", "rro", "rbind", "rprivate", "nosymfollow"} <= set(document["mountOptions"])
    seccomp = linux["seccomp"]
    assert {"SCMP_ACT_ERRNO", "SCMP_ACT_ALLOW", "SCMP_ACT_KILL_PROCESS"} <= set(seccomp["actions"])
    assert "SCMP_ARCH_X86_64" in seccomp["archs"]
    if importlib.util.find_spec("runtime.linux.seccomp") is not None:
        assert seccomp["enabled"] is True
        assert "SCMP_ACT_NOTIFY" not in seccomp["actions"]  # refused by the spec layer
        assert "SECCOMP_FILTER_FLAG_SPEC_ALLOW" in seccomp["knownFlags"]
    assert features_output().startswith('{\n    "ociVersionMin": "1.0.0",\n')


def test_features_without_seccomp_support_or_libseccomp_fall_back_to_the_schema_names(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from runtime.lifecycle import features as module

    assert Libseccomp.load("libdoes-not-exist.so.9") is None
    monkeypatch.setattr(Libseccomp, "load", classmethod(lambda cls: None))
    monkeypatch.setattr(module, "_seccomp_module", lambda: None)
    document = features()
    assert "io.github.seccomp.libseccomp.version" not in document["annotations"]
    seccomp = document["linux"]["seccomp"]
    assert seccomp["enabled"] is False and "knownFlags" not in seccomp
    assert len(seccomp["archs"]) == 19 and len(seccomp["actions"]) == 9
