"""The spec layer end to end: bytes (JSON or YAML) -> every problem at once, or a defaulted
config; the bundle loader, ``pyrun validate`` and ``pyrun spec`` on top of it.

Every problem string is asserted whole: callers (and people) read them, so their wording, JSON
path form and YAML line numbers are the interface.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from runtime.errors import PyrunError, SpecError
from runtime.lifecycle.bundle import config_path, load_bundle
from runtime.lifecycle.specgen import MASKED_PATHS, READONLY_PATHS, default_config, write_spec
from runtime.lifecycle.validate import validate
from runtime.spec import parse_config, problems_in
from runtime.spec.defaults import (
    ALWAYS_ALLOWED_DEVICE_RULES,
    DEFAULT_DEVICES,
    apply_defaults,
    device_cgroup_rules,
)
from runtime.spec.document import Document, decode, format_path
from runtime.spec.semantic import semantic_problems

NS_ENUM = "['pid', 'network', 'mount', 'ipc', 'uts', 'user', 'cgroup', 'time']"


def minimal() -> dict[str, Any]:
    return {
        "ociVersion": "1.2.0",
        "root": {"path": "rootfs"},
        "process": {"cwd": "/", "user": {"uid": 0, "gid": 0}, "args": ["sh"]},
    }


def spec_problems(data: bytes, source: str) -> list[str]:
    with pytest.raises(SpecError) as caught:
        parse_config(data, source)
    assert caught.value.source == source
    return caught.value.problems


# -- every problem at once -------------------------------------------------------------------

BROKEN = {
    "ociVersion": "1.2.0",
    "root": {"path": "rootfs"},
    "process": {"cwd": "/", "user": {"uid": 0, "gid": 0}},
    "linux": {
        "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "bogus"}],
        "sysctl": {"net.ipv4.ip_forward": "1"},
    },
}

BROKEN_YAML = b"""\
ociVersion: 1.2.0
root:
  path: rootfs
process:
  cwd: /
  user: {uid: 0, gid: 0}
linux:
  namespaces:
    - type: pid
    - type: mount
    - type: bogus
  sysctl:
    net.ipv4.ip_forward: "1"
"""


def test_json_reports_schema_and_semantic_problems_together() -> None:
    problems = spec_problems(json.dumps(BROKEN).encode(), "config.json")
    assert problems == [
        f"linux.namespaces[2].type: 'bogus' is not one of {NS_ENUM}",
        "process.args: is required",
        'linux.sysctl["net.ipv4.ip_forward"]: needs a private network namespace',
    ]


def test_yaml_reports_the_same_problems_with_lines_in_line_order() -> None:
    problems = spec_problems(BROKEN_YAML, "config.yaml")
    assert problems == [
        "process.args (line 4): is required",
        f"linux.namespaces[2].type (line 11): 'bogus' is not one of {NS_ENUM}",
        'linux.sysctl["net.ipv4.ip_forward"] (line 13): needs a private network namespace',
    ]


def test_spec_error_message_lists_each_problem_on_its_own_line() -> None:
    with pytest.raises(SpecError) as caught:
        parse_config(BROKEN_YAML, "bundle/config.yaml")
    assert str(caught.value) == (
        "bundle/config.yaml: 3 problems:\n"
        "  process.args (line 4): is required\n"
        f"  linux.namespaces[2].type (line 11): 'bogus' is not one of {NS_ENUM}\n"
        '  linux.sysctl["net.ipv4.ip_forward"] (line 13): needs a private network namespace'
    )
    assert caught.value.exit_code == 1


def test_one_problem_uses_the_singular() -> None:
    config = minimal()
    config["process"]["cwd"] = "tmp"
    with pytest.raises(SpecError) as caught:
        parse_config(json.dumps(config).encode(), "c.json")
    assert (
        str(caught.value)
        == "c.json: 1 problem:\n  process.cwd: must be an absolute path, not 'tmp'"
    )


def test_yml_extension_is_yaml() -> None:
    problems = spec_problems(b"ociVersion: 1.2.0\nroot: {path: r}\nhostname: h\n", "c.yml")
    assert problems == ["hostname (line 3): cannot be set without a private uts namespace"]


def test_problems_in_is_empty_for_a_valid_document() -> None:
    assert problems_in(Document(minimal(), "c.json")) == []
    assert problems_in(Document(minimal(), "c.json"), full_report=True) == []


def test_parse_config_returns_the_defaulted_config() -> None:
    config = parse_config(json.dumps(minimal()).encode(), "config.json")
    assert config == {
        "ociVersion": "1.2.0",
        "root": {"path": "rootfs", "readonly": False},
        "process": {
            "cwd": "/",
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": [],
            "terminal": False,
        },
        "mounts": [],
        "annotations": {},
        "linux": {"namespaces": [], "maskedPaths": [], "readonlyPaths": [], "devices": []},
    }


# -- YAML specifics --------------------------------------------------------------------------


def test_yaml_duplicate_keys_are_reported_with_both_lines() -> None:
    data = b"ociVersion: 1.2.0\nroot: {path: r}\nlinux:\n  sysctl:\n    a: '1'\n    a: '2'\n"
    assert spec_problems(data, "c.yaml") == [
        "linux.sysctl.a (line 6): duplicate key, first at line 5"
    ]


def test_yaml_every_duplicate_key_is_reported() -> None:
    data = b"ociVersion: 1.2.0\nociVersion: 1.0.0\nroot: {path: r}\nhostname: a\nhostname: b\n"
    assert spec_problems(data, "c.yaml") == [
        "ociVersion (line 2): duplicate key, first at line 1",
        "hostname (line 5): duplicate key, first at line 4",
    ]


def test_yaml_duplicate_dotted_key_is_quoted_in_the_path() -> None:
    data = b'linux:\n  sysctl:\n    net.core.somaxconn: "1"\n    net.core.somaxconn: "2"\n'
    assert spec_problems(data, "c.yaml") == [
        'linux.sysctl["net.core.somaxconn"] (line 4): duplicate key, first at line 3'
    ]


def test_yaml_syntax_error_has_line_and_column() -> None:
    assert spec_problems(b"root:\n  path: [rootfs\n", "c.yaml") == [
        "(root) (line 3, column 1): invalid YAML: did not find expected ',' or ']'"
    ]


def test_yaml_undefined_alias_is_a_syntax_problem() -> None:
    assert spec_problems(b"a: *nope\n", "c.yaml") == [
        "(root) (line 1, column 4): invalid YAML: found undefined alias"
    ]


def test_yaml_anchors_and_aliases_expand_and_keep_lines() -> None:
    data = b"""\
ociVersion: 1.2.0
root: {path: rootfs}
process:
  cwd: /
  user: {uid: 0, gid: 0}
  args: &cmd [sh, -c]
  env: [A=1]
annotations:
  copied: *cmd
"""
    document = decode(data, "c.yaml")
    assert document.data["annotations"] == {"copied": ["sh", "-c"]}
    assert document.line_of(("annotations", "copied")) == 9
    assert document.line_of(("process", "args", 1)) == 6
    assert problems_in(document) == [
        "annotations.copied (line 9): ['sh', '-c'] is not of type 'string'"
    ]


def test_yaml_merge_keys_work() -> None:
    data = b"""\
base: &base {uid: 0, gid: 0}
ociVersion: 1.2.0
root: {path: rootfs}
process:
  cwd: /
  args: [sh]
  user:
    <<: *base
    uid: 7
"""
    config = parse_config(data, "c.yaml")
    assert config["process"]["user"] == {"uid": 7, "gid": 0}


def test_yaml_11_booleans_become_booleans() -> None:
    data = b"""\
ociVersion: 1.2.0
root: {path: rootfs, readonly: yes}
process:
  terminal: off
  noNewPrivileges: on
  cwd: /
  args: [sh]
  user: {uid: 0, gid: 0}
"""
    config = parse_config(data, "c.yaml")
    assert config["root"]["readonly"] is True
    assert config["process"]["terminal"] is False
    assert config["process"]["noNewPrivileges"] is True


def test_yaml_11_boolean_where_a_string_belongs_is_reported() -> None:
    data = b"ociVersion: 1.2.0\nroot: {path: rootfs}\nhostname: no\n"
    assert spec_problems(data, "c.yaml") == ["hostname (line 3): False is not of type 'string'"]


def test_yaml_unquoted_version_number_is_a_float() -> None:
    assert spec_problems(b"ociVersion: 1.0\nroot: {path: r}\n", "c.yaml") == [
        "ociVersion (line 1): 1.0 is not of type 'string'"
    ]


def test_yaml_dates_and_integer_keys_become_strings() -> None:
    document = decode(b"hostname: 2020-01-02\nannotations: {1: one}\n", "c.yaml")
    assert document.data == {"hostname": "2020-01-02", "annotations": {"1": "one"}}


@pytest.mark.parametrize(
    ("data", "where"), [(b"", ""), (b"# only a comment\n", ""), (b"---\n", " (line 2)")]
)
def test_empty_yaml_document_is_not_an_object(data: bytes, where: str) -> None:
    assert decode(data, "c.yaml").data is None
    assert spec_problems(data, "c.yaml") == [f"(root){where}: None is not of type 'object'"]


def test_top_level_yaml_list_is_reported_at_the_root_with_its_line() -> None:
    assert spec_problems(b"- a\n- b\n", "c.yaml") == [
        "(root) (line 1): ['a', 'b'] is not of type 'object'"
    ]


def test_top_level_json_list_is_reported_at_the_root() -> None:
    assert spec_problems(b"[1, 2]", "c.json") == ["(root): [1, 2] is not of type 'object'"]


def test_yaml_invalid_utf8_is_one_line_like_json() -> None:
    problems = spec_problems(b"hostname: \xff\n", "c.yaml")
    assert len(problems) == 1
    assert "\n" not in problems[0]
    assert problems[0].startswith("(root): not UTF-8 text")


def test_yaml_recursive_alias_is_a_spec_error() -> None:
    with pytest.raises(SpecError):
        decode(b"a: &a [*a]\n", "c.yaml")


def test_yaml_alias_bomb_is_refused_quickly() -> None:
    # 40 doublings would expand to 10**12 values: refused after the 100,000th, in bounded time
    # (generous bound: the suite runs on a loaded 2-core VM).
    lines = ["l0: &l0 [x, x]"] + [f"l{i}: &l{i} [*l{i - 1}, *l{i - 1}]" for i in range(1, 40)]
    started = time.monotonic()
    with pytest.raises(SpecError) as caught:
        decode("\n".join(lines).encode(), "c.yaml")
    assert time.monotonic() - started < 5
    assert "more than 100000 values once aliases are expanded" in str(caught.value)


# -- JSON specifics --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b'{"a": 1,\n "b": }', "(root) (line 2, column 7): invalid JSON: Expecting value"),
        (b"", "(root) (line 1, column 1): invalid JSON: Expecting value"),
        (b"  \n", "(root) (line 2, column 1): invalid JSON: Expecting value"),
        (b'{"a": 1} x', "(root) (line 1, column 10): invalid JSON: Extra data"),
        (
            b"{\n  'a': 1}",
            "(root) (line 2, column 3): invalid JSON: "
            "Expecting property name enclosed in double quotes",
        ),
        (
            b'{"a": "b\x01"}',
            "(root) (line 1, column 9): invalid JSON: Invalid control character at",
        ),
        (b'{"a": NaN}', "(root): invalid JSON: NaN is not valid JSON"),
        (b'{"a": -Infinity}', "(root): invalid JSON: -Infinity is not valid JSON"),
    ],
)
def test_json_syntax_errors(data: bytes, problem: str) -> None:
    assert spec_problems(data, "config.json") == [problem]


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"\xff\xfe{}", "(root): not UTF-8 text (invalid start byte at byte 0)"),
        (b'{"a": "\xc3"}', "(root): not UTF-8 text (invalid continuation byte at byte 7)"),
        (b'{"hostname": "x\xe9"}', "(root): not UTF-8 text (invalid continuation byte at byte 15)"),
    ],
)
def test_json_non_utf8(data: bytes, problem: str) -> None:
    assert spec_problems(data, "config.json") == [problem]


def test_json_utf8_bom_is_accepted() -> None:
    config = parse_config(b"\xef\xbb\xbf" + json.dumps(minimal()).encode(), "config.json")
    assert config["process"]["args"] == ["sh"]


def test_json_empty_object_lists_every_required_field() -> None:
    problems = spec_problems(b"{}", "config.json")
    assert problems[:2] == ["ociVersion: is required", "root: is required"]
    # The semantic check repeats the schema's finding in its own words (reported as a nit).
    assert problems[2:] in ([], ["root: is required on Linux"])


def test_non_yaml_suffix_is_json() -> None:
    assert spec_problems(b"ociVersion: 1.2.0\n", "config") == [
        "(root) (line 1, column 1): invalid JSON: Expecting value"
    ]


# -- format_path -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ((), "(root)"),
        (("linux", "namespaces", 2, "type"), "linux.namespaces[2].type"),
        (("linux", "sysctl", "net.ipv4.ip_forward"), 'linux.sysctl["net.ipv4.ip_forward"]'),
        (("annotations", "org.opencontainers.x"), 'annotations["org.opencontainers.x"]'),
        (("annotations", "a-b_c"), "annotations.a-b_c"),
        (("annotations", ""), 'annotations[""]'),
        (("annotations", "with space"), 'annotations["with space"]'),
        ((0, "a"), "[0].a"),
        (("a.b",), '["a.b"]'),
    ],
)
def test_format_path(path: tuple[str | int, ...], text: str) -> None:
    assert format_path(path) == text


def test_line_of_falls_back_to_the_nearest_ancestor() -> None:
    document = decode(b"process:\n  user:\n    uid: 0\n", "c.yaml")
    assert document.line_of(("process", "user", "uid")) == 3
    assert document.line_of(("process", "user", "gid")) == 2
    assert document.line_of(("process", "args", 0)) == 1
    assert document.line_of(("hostname",)) == 1
    assert decode(b"{}", "c.json").line_of(("a",)) is None


# -- semantic checks: one valid and one invalid case each ------------------------------------

BASE: dict[str, Any] = {"root": {"path": "rootfs"}}


def sem(**fields: Any) -> list[tuple[tuple[str | int, ...], str]]:
    return semantic_problems({**copy.deepcopy(BASE), **fields})


SEMANTIC_CASES: list[tuple[str, dict[str, Any], dict[str, Any], list[Any]]] = [
    (
        "version",
        {"ociVersion": "1.0.2"},
        {"ociVersion": "2.0.0"},
        [(("ociVersion",), "unsupported version '2.0.0': pyrun runs 1.x")],
    ),
    (
        "root path",
        {"root": {"path": "r"}},
        {"root": {"path": ""}},
        [(("root", "path"), "must not be empty")],
    ),
    (
        "cwd",
        {"process": {"cwd": "/work"}},
        {"process": {"cwd": "work"}},
        [(("process", "cwd"), "must be an absolute path, not 'work'")],
    ),
    (
        "env",
        {"process": {"env": ["A=", "B=c=d"]}},
        {"process": {"env": ["A=1", "NOVALUE", "=x"]}},
        [
            (("process", "env", 1), "must be KEY=VALUE, not 'NOVALUE'"),
            (("process", "env", 2), "must be KEY=VALUE, not '=x'"),
        ],
    ),
    (
        "args[0]",
        {"process": {"args": ["sh", ""]}},
        {"process": {"args": ["", "x"]}},
        [(("process", "args", 0), "must name the program to run")],
    ),
    (
        "rlimit type",
        {"process": {"rlimits": [{"type": "RLIMIT_CORE", "soft": 0, "hard": 0}]}},
        {"process": {"rlimits": [{"type": "RLIMIT_BOGUS", "soft": 0, "hard": 0}]}},
        [(("process", "rlimits", 0, "type"), "unknown rlimit 'RLIMIT_BOGUS'")],
    ),
    (
        "rlimit duplicate",
        {
            "process": {
                "rlimits": [
                    {"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1},
                    {"type": "RLIMIT_NPROC", "soft": 1, "hard": 1},
                ]
            }
        },
        {
            "process": {
                "rlimits": [
                    {"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1},
                    {"type": "RLIMIT_NPROC", "soft": 1, "hard": 1},
                    {"type": "RLIMIT_NOFILE", "soft": 2, "hard": 2},
                ]
            }
        },
        [(("process", "rlimits", 2, "type"), "duplicate RLIMIT_NOFILE, first at rlimits[0]")],
    ),
    (
        "rlimit soft above hard",
        {"process": {"rlimits": [{"type": "RLIMIT_NOFILE", "soft": 5, "hard": 5}]}},
        {"process": {"rlimits": [{"type": "RLIMIT_NOFILE", "soft": 6, "hard": 5}]}},
        [(("process", "rlimits", 0), "soft limit 6 is above hard limit 5")],
    ),
    (
        "namespace duplicate",
        {"linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]}},
        {"linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "pid"}]}},
        [(("linux", "namespaces", 2, "type"), "duplicate namespace type 'pid'")],
    ),
    (
        "namespace path",
        {"linux": {"namespaces": [{"type": "network", "path": "/proc/1/ns/net"}]}},
        {"linux": {"namespaces": [{"type": "network", "path": "proc/1/ns/net"}]}},
        [(("linux", "namespaces", 0, "path"), "must be an absolute path, not 'proc/1/ns/net'")],
    ),
    (
        "mount destination relative",
        {"mounts": [{"destination": "/data"}]},
        {"mounts": [{"destination": "/ok"}, {"destination": "data"}]},
        [
            (
                ("mounts", 1, "destination"),
                "must be an absolute path inside the container, not 'data'",
            )
        ],
    ),
    (
        "mount destination ..",
        {"mounts": [{"destination": "/a..b/c"}]},
        {"mounts": [{"destination": "/a/../b"}]},
        [(("mounts", 0, "destination"), "must not contain '..'")],
    ),
    (
        "uidMappings required",
        {
            "linux": {
                "namespaces": [{"type": "user"}],
                "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
                "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
            }
        },
        {"linux": {"namespaces": [{"type": "user"}]}},
        [
            (("linux", "uidMappings"), "is required when a user namespace is created"),
            (("linux", "gidMappings"), "is required when a user namespace is created"),
        ],
    ),
    (
        "mappings without a user namespace",
        {"linux": {"namespaces": [{"type": "user", "path": "/proc/1/ns/user"}]}},
        {"linux": {"uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]}},
        [(("linux", "uidMappings"), "is set but there is no user namespace")],
    ),
    (
        "hostname",
        {"hostname": "h", "linux": {"namespaces": [{"type": "uts"}]}},
        {"hostname": "h"},
        [(("hostname",), "cannot be set without a private uts namespace")],
    ),
    (
        "domainname",
        {"domainname": "d", "linux": {"namespaces": [{"type": "uts"}]}},
        {"domainname": "d"},
        [(("domainname",), "cannot be set without a private uts namespace")],
    ),
    (
        "timeOffsets",
        {
            "linux": {
                "namespaces": [{"type": "time"}],
                "timeOffsets": {"monotonic": {"secs": 1, "nanosecs": 0}},
            }
        },
        {"linux": {"timeOffsets": {"monotonic": {"secs": 1, "nanosecs": 0}}}},
        [(("linux", "timeOffsets"), "needs a time namespace")],
    ),
    (
        "sysctl not namespaced",
        {"linux": {"sysctl": {}}},
        {"linux": {"sysctl": {"vm.swappiness": "10"}}},
        [
            (
                ("linux", "sysctl", "vm.swappiness"),
                "is not namespaced: a container may not change it",
            )
        ],
    ),
    (
        "sysctl needs its namespace",
        {
            "linux": {
                "namespaces": [{"type": "network"}, {"type": "ipc"}, {"type": "uts"}],
                "sysctl": {
                    "net.ipv4.ip_forward": "1",
                    "kernel.shmmax": "1",
                    "fs.mqueue.msg_max": "1",
                    "kernel.domainname": "d",
                },
            }
        },
        {
            "linux": {
                "sysctl": {
                    "net.ipv4.ip_forward": "1",
                    "kernel.shmmax": "1",
                    "fs.mqueue.msg_max": "1",
                    "kernel.hostname": "h",
                }
            }
        },
        [
            (("linux", "sysctl", "net.ipv4.ip_forward"), "needs a private network namespace"),
            (("linux", "sysctl", "kernel.shmmax"), "needs a private ipc namespace"),
            (("linux", "sysctl", "fs.mqueue.msg_max"), "needs a private ipc namespace"),
            (("linux", "sysctl", "kernel.hostname"), "needs a private uts namespace"),
        ],
    ),
    (
        "systemd cgroupsPath name",
        {"linux": {"cgroupsPath": "system.slice:pyrun:c1"}},
        {"linux": {"cgroupsPath": "system.slice:pyrun:"}},
        [(("linux", "cgroupsPath"), "systemd form 'slice:prefix:name' needs a name")],
    ),
    (
        "systemd cgroupsPath slice",
        {"linux": {"cgroupsPath": ":pyrun:c1"}},
        {"linux": {"cgroupsPath": "system:pyrun:c1"}},
        [(("linux", "cgroupsPath"), "systemd slice 'system' must end in '.slice'")],
    ),
    (
        "cgroupsPath dot components",
        {"linux": {"cgroupsPath": "/a.b/c..d"}},
        {"linux": {"cgroupsPath": "/a/../b"}},
        [(("linux", "cgroupsPath"), "must not contain '.' or '..' components: '/a/../b'")],
    ),
    (
        "cgroupsPath empty components",
        {"linux": {"cgroupsPath": "/a/b/"}},
        {"linux": {"cgroupsPath": "/a//b"}},
        [(("linux", "cgroupsPath"), "must not contain empty components: '/a//b'")],
    ),
    (
        "cgroupsPath root",
        {"linux": {"cgroupsPath": ""}},
        {"linux": {"cgroupsPath": "//"}},
        [(("linux", "cgroupsPath"), "must name a cgroup below the root, not '/'")],
    ),
    (
        "maskedPaths",
        {"linux": {"maskedPaths": ["/proc/kcore"]}},
        {"linux": {"maskedPaths": ["/proc/kcore", "proc/keys"]}},
        [(("linux", "maskedPaths", 1), "must be an absolute path, not 'proc/keys'")],
    ),
    (
        "readonlyPaths",
        {"linux": {"readonlyPaths": ["/proc/sys"]}},
        {"linux": {"readonlyPaths": ["proc/sys"]}},
        [(("linux", "readonlyPaths", 0), "must be an absolute path, not 'proc/sys'")],
    ),
    (
        "device path",
        {"linux": {"devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}]}},
        {"linux": {"devices": [{"path": "dev/fuse", "type": "c", "major": 10, "minor": 229}]}},
        [(("linux", "devices", 0, "path"), "must be an absolute path")],
    ),
    (
        "device numbers",
        {"linux": {"devices": [{"path": "/dev/fifo", "type": "p"}]}},
        {"linux": {"devices": [{"path": "/dev/sda", "type": "b", "minor": 0}]}},
        [(("linux", "devices", 0, "major"), "is required for this device type")],
    ),
    (
        "memory swap",
        {"linux": {"resources": {"memory": {"limit": 100, "swap": -1}}}},
        {"linux": {"resources": {"memory": {"limit": 100, "swap": 50}}}},
        [
            (
                ("linux", "resources", "memory", "swap"),
                "memory+swap limit 50 must not be below the memory limit 100",
            )
        ],
    ),
    (
        "cpu period",
        {"linux": {"resources": {"cpu": {"quota": 50000}}}},
        {"linux": {"resources": {"cpu": {"quota": 50000, "period": 0}}}},
        [(("linux", "resources", "cpu", "period"), "must be set with a quota")],
    ),
    (
        "device rule access",
        {"linux": {"resources": {"devices": [{"allow": False, "access": "rwm"}]}}},
        {"linux": {"resources": {"devices": [{"allow": True, "access": "rwx"}]}}},
        [(("linux", "resources", "devices", 0, "access"), "must use only r, w and m, not 'rwx'")],
    ),
]


@pytest.mark.parametrize(
    ("valid", "invalid", "expected"),
    [case[1:] for case in SEMANTIC_CASES],
    ids=[case[0] for case in SEMANTIC_CASES],
)
def test_semantic_check(
    valid: dict[str, Any], invalid: dict[str, Any], expected: list[Any]
) -> None:
    assert sem(**valid) == []
    assert sem(**invalid) == expected


@pytest.mark.parametrize(
    "set_name", ["bounding", "effective", "inheritable", "permitted", "ambient"]
)
def test_semantic_unknown_capability_in_every_set(set_name: str) -> None:
    assert sem(process={"capabilities": {set_name: ["CAP_CHOWN", "CAP_BPF"]}}) == []
    assert sem(process={"capabilities": {set_name: ["CAP_CHOWN", "CAP_FLY"]}}) == [
        (("process", "capabilities", set_name, 1), "unknown capability 'CAP_FLY'")
    ]


def test_semantic_leaves_malformed_capability_names_to_the_schema() -> None:
    assert sem(process={"capabilities": {"bounding": ["cap_chown", "CAP_X1"]}}) == []


def test_missing_root_is_reported_once_by_the_schema() -> None:
    assert semantic_problems({"ociVersion": "1.2.0"}) == []
    problems = spec_problems(b'{"ociVersion": "1.2.0"}', "c.json")
    assert [p for p in problems if p.startswith("root")] == ["root: is required"]


def test_semantic_checks_never_crash_on_wrong_types() -> None:
    weird = {
        "ociVersion": 1,
        "root": 1,
        "process": {
            "cwd": 5,
            "env": [1, None],
            "args": "sh",
            "capabilities": {"bounding": "CAP_FLY"},
            "rlimits": [1, {"type": 5, "soft": "a"}],
        },
        "linux": {
            "namespaces": [1, {"type": 2}],
            "sysctl": [],
            "devices": [1, {"path": 3}],
            "resources": {"devices": [1, {"access": 5}], "memory": [], "cpu": 3},
            "maskedPaths": "x",
            "cgroupsPath": 5,
        },
        "mounts": [1, {"destination": 4}],
    }
    assert semantic_problems(weird) == []
    assert semantic_problems([]) == []
    assert semantic_problems(None) == []
    assert sem(process="x", linux=[], mounts={}) == []


def test_semantic_and_schema_problems_render_together_in_order() -> None:
    config = minimal()
    config["process"]["cwd"] = "rel"
    config["process"]["user"]["uid"] = "root"
    config["mounts"] = [{"destination": "x/../y"}]
    problems = problems_in(Document(config, "c.json"))
    assert problems == [
        "process.user.uid: 'root' is not of type 'integer'",
        "process.cwd: must be an absolute path, not 'rel'",
        "mounts[0].destination: must be an absolute path inside the container, not 'x/../y'",
        "mounts[0].destination: must not contain '..'",
    ]


# -- defaults --------------------------------------------------------------------------------


def test_apply_defaults_fills_every_optional_field() -> None:
    config: dict[str, Any] = {"ociVersion": "1.2.0", "process": {"args": ["sh"]}}
    result = apply_defaults(config)
    assert result is config
    assert config == {
        "ociVersion": "1.2.0",
        "process": {
            "args": ["sh"],
            "user": {"uid": 0, "gid": 0},
            "env": [],
            "cwd": "/",
            "terminal": False,
        },
        "root": {"readonly": False},
        "mounts": [],
        "annotations": {},
        "linux": {"namespaces": [], "maskedPaths": [], "readonlyPaths": [], "devices": []},
    }


def test_apply_defaults_keeps_given_values_and_adds_no_process() -> None:
    config: dict[str, Any] = {
        "root": {"path": "r", "readonly": True},
        "linux": {"namespaces": [{"type": "pid"}], "devices": [{"path": "/dev/x"}]},
        "annotations": {"a": "b"},
    }
    apply_defaults(config)
    assert "process" not in config
    assert config["root"] == {"path": "r", "readonly": True}
    assert config["linux"]["namespaces"] == [{"type": "pid"}]
    assert config["linux"]["devices"] == [{"path": "/dev/x"}]
    assert config["annotations"] == {"a": "b"}

    process_config: dict[str, Any] = {
        "process": {"user": {"uid": 5}, "cwd": "/w", "env": ["A=1"], "terminal": True}
    }
    apply_defaults(process_config)
    assert process_config["process"] == {
        "user": {"uid": 5, "gid": 0},
        "cwd": "/w",
        "env": ["A=1"],
        "terminal": True,
    }


def test_device_cgroup_rules_order_config_then_always_allowed_then_devices() -> None:
    config: Any = {
        "linux": {
            "resources": {
                "devices": [
                    {"allow": False, "access": "rwm"},
                    {"allow": True, "type": "c", "major": 4, "access": "r"},
                ]
            },
            "devices": [
                {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229},
                {"path": "/dev/sda", "type": "b", "major": 8, "minor": 0},
                {"path": "/dev/fifo", "type": "p"},
                {"path": "/dev/u", "type": "u", "major": 3, "minor": 4},
                {"path": "/dev/nonums"},
            ],
        }
    }
    rules = device_cgroup_rules(config)
    assert rules[:2] == [
        {"allow": False, "access": "rwm"},
        {"allow": True, "type": "c", "major": 4, "access": "r"},
    ]
    assert rules[2:13] == ALWAYS_ALLOWED_DEVICE_RULES
    assert rules[13:] == [
        {"allow": True, "type": "c", "major": 10, "minor": 229, "access": "rwm"},
        {"allow": True, "type": "b", "major": 8, "minor": 0, "access": "rwm"},
        {"allow": True, "type": "c", "major": 3, "minor": 4, "access": "rwm"},
        {"allow": True, "type": "c", "major": 0, "minor": 0, "access": "rwm"},
    ]
    rules[0]["allow"] = True
    assert config["linux"]["resources"]["devices"][0]["allow"] is False


def test_device_cgroup_rules_without_linux_section_are_the_always_allowed_set() -> None:
    assert device_cgroup_rules({}) == ALWAYS_ALLOWED_DEVICE_RULES  # type: ignore[typeddict-item]
    assert len(ALWAYS_ALLOWED_DEVICE_RULES) == 11


def test_always_allowed_rules_cover_the_default_devices() -> None:
    allowed = {
        (r["type"], r.get("major"), r.get("minor"))
        for r in ALWAYS_ALLOWED_DEVICE_RULES
        if r["access"] == "rwm"
    }
    for device in DEFAULT_DEVICES:
        assert (device["type"], device["major"], device["minor"]) in allowed
    assert [d["path"] for d in DEFAULT_DEVICES] == [
        "/dev/null",
        "/dev/zero",
        "/dev/full",
        "/dev/random",
        "/dev/urandom",
        "/dev/tty",
    ]


# -- bundles ---------------------------------------------------------------------------------


def make_bundle(
    base: Path, config: dict[str, Any] | None = None, *, names: tuple[str, ...] = ("config.json",)
) -> Path:
    base.mkdir(exist_ok=True)
    config = minimal() if config is None else config
    for name in names:
        if name.endswith("json"):
            (base / name).write_text(json.dumps(config))
        else:
            (base / name).write_text(yaml.safe_dump(config, sort_keys=False))
    return base


@pytest.mark.parametrize("name", ["config.json", "config.yaml", "config.yml"])
def test_config_path_finds_the_one_config(tmp_path: Path, name: str) -> None:
    make_bundle(tmp_path, names=(name,))
    assert config_path(str(tmp_path)) == f"{tmp_path}/{name}"


def test_config_path_refuses_two_configs(tmp_path: Path) -> None:
    make_bundle(tmp_path, names=("config.json", "config.yaml"))
    with pytest.raises(PyrunError) as caught:
        config_path(str(tmp_path))
    assert str(caught.value) == (
        f"bundle {tmp_path}: both config.json and config.yaml exist; keep exactly one"
    )


def test_config_path_refuses_yaml_and_yml(tmp_path: Path) -> None:
    make_bundle(tmp_path, names=("config.yaml", "config.yml"))
    with pytest.raises(PyrunError) as caught:
        config_path(str(tmp_path))
    assert str(caught.value) == (
        f"bundle {tmp_path}: both config.yaml and config.yml exist; keep exactly one"
    )


def test_config_path_without_config(tmp_path: Path) -> None:
    (tmp_path / "config.json").mkdir()  # a directory is not a config
    with pytest.raises(PyrunError) as caught:
        config_path(str(tmp_path))
    assert str(caught.value) == f"bundle {tmp_path}: no config.json or config.yaml"


def test_config_path_of_a_missing_bundle(tmp_path: Path) -> None:
    with pytest.raises(PyrunError) as caught:
        config_path(str(tmp_path / "nope"))
    assert str(caught.value) == f"bundle {tmp_path}/nope: not a directory"


@pytest.mark.parametrize("name", ["config.json", "config.yaml"])
def test_load_bundle_returns_config_and_absolute_rootfs(tmp_path: Path, name: str) -> None:
    bundle = make_bundle(tmp_path / "b", names=(name,))
    (bundle / "rootfs").mkdir()
    config, rootfs = load_bundle(str(bundle))
    assert rootfs == f"{bundle}/rootfs"
    assert config["process"]["args"] == ["sh"]
    assert config["root"]["readonly"] is False


def test_load_bundle_with_absolute_rootfs(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    config = minimal()
    config["root"]["path"] = f"{elsewhere}/./"
    bundle = make_bundle(tmp_path / "b", config)
    assert load_bundle(str(bundle))[1] == str(elsewhere)


def test_load_bundle_missing_rootfs_alone(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "b")
    with pytest.raises(SpecError) as caught:
        load_bundle(str(bundle))
    assert caught.value.problems == [
        f"root.path: rootfs {bundle}/rootfs does not exist or is not a directory"
    ]
    assert caught.value.source == f"{bundle}/config.json"


def test_load_bundle_rootfs_that_is_a_file(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "b")
    (bundle / "rootfs").write_text("")
    with pytest.raises(SpecError) as caught:
        load_bundle(str(bundle))
    assert caught.value.problems == [
        f"root.path: rootfs {bundle}/rootfs does not exist or is not a directory"
    ]


def test_load_bundle_reports_missing_rootfs_with_the_other_problems(tmp_path: Path) -> None:
    config = minimal()
    config["root"]["path"] = "nope"
    config["process"]["cwd"] = "rel"
    del config["process"]["args"]
    bundle = make_bundle(tmp_path / "b", config)
    with pytest.raises(SpecError) as caught:
        load_bundle(str(bundle))
    assert str(caught.value) == (
        f"{bundle}/config.json: 3 problems:\n"
        "  process.args: is required\n"
        "  process.cwd: must be an absolute path, not 'rel'\n"
        f"  root.path: rootfs {bundle}/nope does not exist or is not a directory"
    )


def test_load_bundle_yaml_problems_keep_lines_and_add_rootfs(tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    bundle.mkdir()
    (bundle / "config.yaml").write_text(
        "ociVersion: 1.2.0\nroot:\n  path: missing\nprocess:\n  cwd: x\n  args: [sh]\n"
    )
    with pytest.raises(SpecError) as caught:
        load_bundle(str(bundle))
    assert caught.value.problems == [
        "process.cwd (line 5): must be an absolute path, not 'x'",
        f"root.path: rootfs {bundle}/missing does not exist or is not a directory",
    ]


def test_load_bundle_syntax_error_has_no_rootfs_guess(tmp_path: Path) -> None:
    bundle = tmp_path / "b"
    bundle.mkdir()
    (bundle / "config.json").write_text('{"root": {"path": "nope"},')
    with pytest.raises(SpecError) as caught:
        load_bundle(str(bundle))
    assert caught.value.problems == [
        "(root) (line 1, column 27): invalid JSON: "
        "Expecting property name enclosed in double quotes"
    ]


def test_load_bundle_missing_namespace_path(tmp_path: Path) -> None:
    config = minimal()
    config["linux"] = {
        "namespaces": [{"type": "pid"}, {"type": "network", "path": f"{tmp_path}/netns"}]
    }
    bundle = make_bundle(tmp_path / "b", config)
    (bundle / "rootfs").mkdir()
    with pytest.raises(SpecError) as caught:
        load_bundle(str(bundle))
    assert caught.value.problems == [f"linux.namespaces[1].path: {tmp_path}/netns does not exist"]
    (tmp_path / "netns").write_text("")
    assert load_bundle(str(bundle))[1] == f"{bundle}/rootfs"


# -- pyrun validate --------------------------------------------------------------------------


def test_validate_valid_bundle(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "b")
    (bundle / "rootfs").mkdir()
    assert validate(str(bundle)) == (f"{bundle}/config.json: valid\n", True)


def test_validate_config_file_path(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "b", names=("config.yaml",))
    (bundle / "rootfs").mkdir()
    assert validate(f"{bundle}/config.yaml") == (f"{bundle}/config.yaml: valid\n", True)


def test_validate_reports_everything_with_the_rootfs(tmp_path: Path) -> None:
    config = minimal()
    config["hostname"] = "h"
    config["linux"] = {"namespaces": [{"type": "pid"}, {"type": "pid"}]}
    bundle = make_bundle(tmp_path / "b", config)
    text, ok = validate(str(bundle))
    assert ok is False
    assert text == (
        f"{bundle}/config.json: 3 problems:\n"
        "  linux.namespaces[1].type: duplicate namespace type 'pid'\n"
        "  hostname: cannot be set without a private uts namespace\n"
        f"  root.path: rootfs {bundle}/rootfs does not exist or is not a directory\n"
    )


def test_validate_only_host_problem(tmp_path: Path) -> None:
    bundle = make_bundle(tmp_path / "b")
    assert validate(str(bundle)) == (
        f"{bundle}/config.json: 1 problem:\n"
        f"  root.path: rootfs {bundle}/rootfs does not exist or is not a directory\n",
        False,
    )


def test_validate_syntax_error(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("a: [1\n")
    assert validate(str(path)) == (
        f"{path}: 1 problem:\n  (root) (line 2, column 1): invalid YAML: "
        "did not find expected ',' or ']'\n",
        False,
    )


def test_validate_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PyrunError) as caught:
        validate(str(tmp_path / "none.json"))
    assert str(caught.value) == f"{tmp_path}/none.json: no such file or directory"


# -- pyrun spec ------------------------------------------------------------------------------


@pytest.mark.parametrize("rootless", [False, True])
def test_default_configs_have_no_problems(rootless: bool) -> None:
    config = default_config(rootless)
    assert problems_in(Document(config, "config.json"), full_report=True) == []


def test_default_config_shape() -> None:
    config = default_config()
    assert config["process"]["args"] == ["sh"]
    assert config["root"] == {"path": "rootfs", "readonly": True}
    assert [ns["type"] for ns in config["linux"]["namespaces"]] == [
        "pid",
        "network",
        "ipc",
        "uts",
        "mount",
    ]
    assert config["linux"]["maskedPaths"] == MASKED_PATHS
    assert config["linux"]["readonlyPaths"] == READONLY_PATHS
    assert config["linux"]["resources"] == {"devices": [{"allow": False, "access": "rwm"}]}
    assert [m["destination"] for m in config["mounts"]] == [
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
        "/sys/fs/cgroup",
    ]
    assert "gid=5" in config["mounts"][2]["options"]


def test_rootless_config_shape() -> None:
    import os

    config = default_config(rootless=True)
    linux = config["linux"]
    assert [ns["type"] for ns in linux["namespaces"]] == ["pid", "ipc", "uts", "mount", "user"]
    assert linux["uidMappings"] == [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
    assert linux["gidMappings"] == [{"containerID": 0, "hostID": os.getegid(), "size": 1}]
    assert "resources" not in linux
    assert config["mounts"][-1] == {
        "destination": "/sys",
        "type": "none",
        "source": "/sys",
        "options": ["rbind", "nosuid", "noexec", "nodev", "ro"],
    }
    assert "gid=5" not in config["mounts"][2]["options"]


def test_write_spec_json(tmp_path: Path) -> None:
    path = write_spec(str(tmp_path))
    assert path == f"{tmp_path}/config.json"
    text = (tmp_path / "config.json").read_text()
    assert text == json.dumps(default_config(), indent="\t") + "\n"
    assert text.startswith('{\n\t"ociVersion": "1.2.0",\n\t"process": {\n')
    assert parse_config(text.encode(), path)["hostname"] == "pyrun"


def test_write_spec_yaml_round_trips(tmp_path: Path) -> None:
    path = write_spec(str(tmp_path), rootless=True, fmt="yaml")
    assert path == f"{tmp_path}/config.yaml"
    data = (tmp_path / "config.yaml").read_bytes()
    assert data.startswith(b"ociVersion: 1.2.0\nprocess:\n  terminal: false\n")
    document = decode(data, path)
    assert document.data == default_config(rootless=True)
    assert problems_in(document, full_report=True) == []


def test_written_spec_validates_once_rootfs_exists(tmp_path: Path) -> None:
    write_spec(str(tmp_path), fmt="yaml")
    (tmp_path / "rootfs").mkdir()
    assert validate(str(tmp_path)) == (f"{tmp_path}/config.yaml: valid\n", True)


@pytest.mark.parametrize("existing", ["config.json", "config.yaml", "config.yml"])
@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_write_spec_refuses_to_overwrite(tmp_path: Path, existing: str, fmt: str) -> None:
    (tmp_path / existing).write_text("keep")
    with pytest.raises(PyrunError) as caught:
        write_spec(str(tmp_path), fmt=fmt)
    assert str(caught.value) == f"File {tmp_path}/{existing} exists. Remove it first"
    assert sorted(p.name for p in tmp_path.iterdir()) == [existing]
    assert (tmp_path / existing).read_text() == "keep"


def test_write_spec_bad_format_and_bundle(tmp_path: Path) -> None:
    with pytest.raises(PyrunError) as caught:
        write_spec(str(tmp_path), fmt="toml")
    assert str(caught.value) == "--format must be json or yaml, not 'toml'"
    with pytest.raises(PyrunError) as caught:
        write_spec(str(tmp_path / "none"))
    assert str(caught.value) == f"bundle {tmp_path}/none: not a directory"
    assert list(tmp_path.iterdir()) == []


def test_pyrun_spec_and_validate_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from runtime.cli.main import main

    assert main(["spec", "--bundle", str(tmp_path), "--format", "yaml"]) == 0
    assert (tmp_path / "config.yaml").is_file()
    assert main(["spec", "-b", str(tmp_path)]) == 1
    assert capsys.readouterr().err == (
        f"pyrun: File {tmp_path}/config.yaml exists. Remove it first\n"
    )
    assert not (tmp_path / "config.json").exists()
    assert main(["validate", str(tmp_path)]) == 1
    assert capsys.readouterr().out == (
        f"{tmp_path}/config.yaml: 1 problem:\n"
        f"  root.path: rootfs {tmp_path}/rootfs does not exist or is not a directory\n"
    )
    (tmp_path / "rootfs").mkdir()
    assert main(["validate", str(tmp_path)]) == 0
    assert capsys.readouterr().out == f"{tmp_path}/config.yaml: valid\n"
