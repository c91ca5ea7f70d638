"""The JSON Schemas in schema/: valid draft 2020-12, inside the fast validator's keyword subset,
and right about real documents (runc's generated configs, the runtime-spec's example) and about
broken ones, down to the JSON path of each error."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = ROOT / "schema"
DATA_DIR = Path(__file__).resolve().parent / "data"
SCHEMA_NAMES = ("config", "state", "features")

# The keywords pyrun's fast validator interprets; a schema must use nothing else.
ALLOWED_KEYWORDS = frozenset(
    {
        "$schema",
        "$id",
        "$defs",
        "$ref",
        "$comment",
        "title",
        "description",
        "examples",
        "default",
        "type",
        "properties",
        "required",
        "additionalProperties",
        "patternProperties",
        "propertyNames",
        "items",
        "minItems",
        "maxItems",
        "uniqueItems",
        "enum",
        "const",
        "pattern",
        "minLength",
        "maxLength",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "anyOf",
        "oneOf",
        "allOf",
        "not",
        "if",
        "then",
        "else",
        "minProperties",
        "maxProperties",
    }
)
ALLOWED_TYPES = frozenset({"object", "array", "string", "integer", "number", "boolean", "null"})
SCHEMA_KEYWORDS = ("additionalProperties", "propertyNames", "items", "not", "if", "then", "else")
SCHEMA_MAP_KEYWORDS = ("properties", "patternProperties", "$defs")
SCHEMA_LIST_KEYWORDS = ("anyOf", "oneOf", "allOf")

Path_ = tuple[str | int, ...]


@cache
def load_schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text())
    return schema


@cache
def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(load_schema(name))


def load_data(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((DATA_DIR / name).read_text())
    return doc


def error_set(name: str, doc: Any) -> set[tuple[Path_, str]]:
    """Each top-level error as (instance path, failing keyword)."""
    return {(tuple(e.absolute_path), str(e.validator)) for e in validator(name).iter_errors(doc)}


def walk(node: Any, where: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node with its location, following only the places that hold schemas."""
    if isinstance(node, bool):
        return
    assert isinstance(node, dict), f"{where}: a schema must be an object or a boolean"
    yield where, node
    for key in SCHEMA_KEYWORDS:
        if key in node:
            yield from walk(node[key], f"{where}/{key}")
    for key in SCHEMA_MAP_KEYWORDS:
        for name, sub in node.get(key, {}).items():
            yield from walk(sub, f"{where}/{key}/{name}")
    for key in SCHEMA_LIST_KEYWORDS:
        for i, sub in enumerate(node.get(key, [])):
            yield from walk(sub, f"{where}/{key}/{i}")


# --- the schemas themselves -------------------------------------------------------------------


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schema_is_valid_draft_2020_12(name: str) -> None:
    schema = load_schema(name)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"https://pyrun.dev/schema/{name}.schema.json"


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schema_uses_only_the_fast_validator_keywords(name: str) -> None:
    schema = load_schema(name)
    defs = schema.get("$defs", {})
    for where, node in walk(schema):
        unknown = set(node) - ALLOWED_KEYWORDS
        assert not unknown, f"{where}: keywords outside the subset: {sorted(unknown)}"
        if where != "#":
            assert "$schema" not in node and "$id" not in node, f"{where}: nested $schema/$id"
            assert "$defs" not in node, f"{where}: $defs only at the top"
        types = node.get("type", [])
        types = [types] if isinstance(types, str) else types
        assert isinstance(types, list) and set(types) <= ALLOWED_TYPES, f"{where}: type {types}"
        if "items" in node:
            assert isinstance(node["items"], dict), f"{where}: items must be one schema"
        if "$ref" in node:
            ref = node["$ref"]
            assert ref.startswith("#/$defs/"), f"{where}: non-local $ref {ref}"
            target = ref.removeprefix("#/$defs/")
            assert "/" not in target and target in defs, f"{where}: dangling $ref {ref}"
            validating = set(node) - {"$ref", "description", "$comment", "title", "examples"}
            assert not validating, f"{where}: validation keywords beside $ref: {validating}"


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schema_never_closes_an_object(name: str) -> None:
    """Runtimes MUST ignore unknown properties, so no object may forbid them."""
    for where, node in walk(load_schema(name)):
        assert node.get("additionalProperties", True) is not False, where


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_every_def_is_used(name: str) -> None:
    schema = load_schema(name)
    text = json.dumps(schema)
    for def_name in schema.get("$defs", {}):
        assert f'"#/$defs/{def_name}"' in text, f"unused $defs/{def_name}"


# --- config: documents that must pass ---------------------------------------------------------


@pytest.mark.parametrize(
    "filename", ["runc-spec.json", "runc-spec-rootless.json", "oci-example-config.json"]
)
def test_real_configs_are_valid(filename: str) -> None:
    assert error_set("config", load_data(filename)) == set()


def test_minimal_config_is_valid() -> None:
    assert error_set("config", {"ociVersion": "1.2.0", "root": {"path": "rootfs"}}) == set()


def full_config() -> dict[str, Any]:
    """The spec's example plus every v1.2 field it leaves out."""
    doc = load_data("oci-example-config.json")
    process = doc["process"]
    process["consoleSize"] = {"height": 25, "width": 80}
    process["user"]["umask"] = 63
    process["scheduler"] = {
        "policy": "SCHED_DEADLINE",
        "nice": -5,
        "priority": 0,
        "flags": ["SCHED_FLAG_RESET_ON_FORK"],
        "runtime": 10_000_000,
        "deadline": 20_000_000,
        "period": 30_000_000,
    }
    process["execCPUAffinity"] = {"initial": "7", "final": "0-3,7"}
    doc["domainname"] = "example.test"
    doc["mounts"].append(
        {
            "destination": "/data",
            "type": "none",
            "source": "/volumes/testing",
            "options": ["rbind", "idmap"],
            "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
            "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
        }
    )
    hook = {"path": "/usr/bin/hook", "args": ["hook"], "env": ["A=1"], "timeout": 5}
    for point in ("createRuntime", "createContainer", "startContainer"):
        doc["hooks"][point] = [hook]
    linux = doc["linux"]
    linux["devices"].append({"path": "/dev/myfifo", "type": "p"})
    resources = linux["resources"]
    resources["memory"].update(
        {"limit": -1, "useHierarchy": True, "checkBeforeUpdate": True, "swappiness": 60}
    )
    resources["cpu"]["burst"] = 100_000
    resources["rdma"] = {
        "mlx5_1": {"hcaHandles": 3, "hcaObjects": 10000},
        "rxe3": {"hcaObjects": 1},
    }
    resources["unified"] = {"io.max": "259:0 rbps=2097152", "memory.high": "max"}
    resources["blockIO"]["throttleWriteBpsDevice"] = [{"major": 8, "minor": 0, "rate": 1}]
    resources["blockIO"]["throttleReadIOPSDevice"] = [{"major": 8, "minor": 0, "rate": 1}]
    linux["seccomp"].update(
        {
            "defaultErrnoRet": 1,
            "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
            "listenerPath": "/run/seccomp-agent.socket",
            "listenerMetadata": "MKNOD=/dev/null",
        }
    )
    linux["seccomp"]["syscalls"].append(
        {
            "names": ["personality"],
            "action": "SCMP_ACT_ALLOW",
            "errnoRet": 1,
            "args": [{"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_EQ"}],
        }
    )
    linux["personality"] = {"domain": "LINUX32", "flags": []}
    linux["intelRdt"] = {"closID": "guaranteed_group", "memBwSchema": "MB:0=20;1=70"}
    linux["memoryPolicy"] = {"mode": "MPOL_INTERLEAVE", "nodes": "0-3", "flags": []}
    return doc


def test_config_with_every_field_is_valid() -> None:
    assert error_set("config", full_config()) == set()


UNKNOWN = {"io.example.future": {"nested": [1, "two", None]}}


def test_unknown_properties_are_accepted_at_every_level() -> None:
    doc = full_config()
    objects = [
        doc,
        doc["process"],
        doc["process"]["user"],
        doc["process"]["consoleSize"],
        doc["process"]["capabilities"],
        doc["process"]["rlimits"][0],
        doc["process"]["scheduler"],
        doc["process"]["ioPriority"],
        doc["process"]["execCPUAffinity"],
        doc["root"],
        doc["mounts"][0],
        doc["mounts"][-1]["uidMappings"][0],
        doc["hooks"],
        doc["hooks"]["prestart"][0],
        doc["linux"],
        doc["linux"]["namespaces"][0],
        doc["linux"]["uidMappings"][0],
        doc["linux"]["timeOffsets"]["monotonic"],
        doc["linux"]["devices"][0],
        doc["linux"]["resources"],
        doc["linux"]["resources"]["devices"][0],
        doc["linux"]["resources"]["memory"],
        doc["linux"]["resources"]["cpu"],
        doc["linux"]["resources"]["pids"],
        doc["linux"]["resources"]["blockIO"],
        doc["linux"]["resources"]["blockIO"]["weightDevice"][0],
        doc["linux"]["resources"]["blockIO"]["throttleReadBpsDevice"][0],
        doc["linux"]["resources"]["hugepageLimits"][0],
        doc["linux"]["resources"]["network"],
        doc["linux"]["resources"]["network"]["priorities"][0],
        doc["linux"]["resources"]["rdma"]["mlx5_1"],
        doc["linux"]["seccomp"],
        doc["linux"]["seccomp"]["syscalls"][-1],
        doc["linux"]["seccomp"]["syscalls"][-1]["args"][0],
        doc["linux"]["personality"],
        doc["linux"]["intelRdt"],
        doc["linux"]["memoryPolicy"],
    ]
    for obj in objects:
        obj.update(copy.deepcopy(UNKNOWN))
    # Sections of other platforms and of newer spec versions, as containerd or podman send them.
    doc["windows"] = {"layerFolders": ["C:\\layers\\1"]}
    doc["vm"] = {"hypervisor": {"path": "/usr/bin/qemu"}}
    doc["linux"]["netDevices"] = {"eth0": {"name": "ctr0"}}
    doc["linux"]["resources"]["vtpms"] = [{"statePath": "/var/lib/vtpm"}]
    assert error_set("config", doc) == set()


# --- config: documents that must fail, and where ----------------------------------------------


def get_at(doc: Any, path: Path_) -> Any:
    for step in path:
        doc = doc[step]
    return doc


def set_at(path: Path_, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        get_at(doc, path[:-1])[path[-1]] = copy.deepcopy(value)

    return change


def del_at(path: Path_) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        del get_at(doc, path[:-1])[path[-1]]

    return change


def both(*changes: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def change(doc: dict[str, Any]) -> None:
        for one in changes:
            one(doc)

    return change


SECCOMP = {
    "defaultAction": "SCMP_ACT_ERRNO",
    "architectures": ["SCMP_ARCH_X86_64"],
    "syscalls": [
        {
            "names": ["read", "write"],
            "action": "SCMP_ACT_ALLOW",
            "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}],
        }
    ],
}
NS2 = ("linux", "namespaces", 2)
SC0 = ("linux", "seccomp", "syscalls", 0)
RES = ("linux", "resources")

# (id, change applied to a copy of `runc spec` output, expected {(instance path, keyword)})
INVALID_CONFIGS: list[tuple[str, Callable[[dict[str, Any]], None], set[tuple[Path_, str]]]] = [
    ("no-ociVersion", del_at(("ociVersion",)), {((), "required")}),
    ("ociVersion-not-semver", set_at(("ociVersion",), "1.0"), {(("ociVersion",), "pattern")}),
    ("no-root", del_at(("root",)), {((), "required")}),
    ("root-without-path", set_at(("root",), {"readonly": True}), {(("root",), "required")}),
    ("process-without-args", del_at(("process", "args")), {(("process",), "required")}),
    ("process-empty-args", set_at(("process", "args"), []), {(("process", "args"), "minItems")}),
    ("process-without-cwd", del_at(("process", "cwd")), {(("process",), "required")}),
    (
        "terminal-not-bool",
        set_at(("process", "terminal"), "yes"),
        {(("process", "terminal"), "type")},
    ),
    ("user-without-gid", del_at(("process", "user", "gid")), {(("process", "user"), "required")}),
    (
        "negative-uid",
        set_at(("process", "user", "uid"), -1),
        {(("process", "user", "uid"), "minimum")},
    ),
    (
        "uid-over-uint32",
        set_at(("process", "user", "uid"), 2**32),
        {(("process", "user", "uid"), "maximum")},
    ),
    (
        "additionalGids-string",
        set_at(("process", "user", "additionalGids"), [5, "6"]),
        {(("process", "user", "additionalGids", 1), "type")},
    ),
    (
        "oomScoreAdj-2000",
        set_at(("process", "oomScoreAdj"), 2000),
        {(("process", "oomScoreAdj"), "maximum")},
    ),
    (
        "oomScoreAdj-minus-1001",
        set_at(("process", "oomScoreAdj"), -1001),
        {(("process", "oomScoreAdj"), "minimum")},
    ),
    (
        "bad-rlimit-type",
        set_at(("process", "rlimits", 0, "type"), "RLIMIT_FOO"),
        {(("process", "rlimits", 0, "type"), "enum")},
    ),
    (
        "rlimit-without-soft",
        del_at(("process", "rlimits", 0, "soft")),
        {(("process", "rlimits", 0), "required")},
    ),
    (
        "lowercase-capability",
        set_at(("process", "capabilities", "bounding", 1), "CAP_foo"),
        {(("process", "capabilities", "bounding", 1), "pattern")},
    ),
    (
        "capability-without-prefix",
        set_at(("process", "capabilities", "ambient"), ["NET_RAW"]),
        {(("process", "capabilities", "ambient", 0), "pattern")},
    ),
    (
        "consoleSize-without-width",
        set_at(("process", "consoleSize"), {"height": 25}),
        {(("process", "consoleSize"), "required")},
    ),
    (
        "scheduler-bad-policy",
        set_at(("process", "scheduler"), {"policy": "SCHED_FAST"}),
        {(("process", "scheduler", "policy"), "enum")},
    ),
    (
        "ioPriority-bad-class-and-level",
        set_at(("process", "ioPriority"), {"class": "IOPRIO_CLASS_NONE", "priority": 8}),
        {
            (("process", "ioPriority", "class"), "enum"),
            (("process", "ioPriority", "priority"), "maximum"),
        },
    ),
    (
        "execCPUAffinity-not-a-list",
        set_at(("process", "execCPUAffinity"), {"final": "all"}),
        {(("process", "execCPUAffinity", "final"), "pattern")},
    ),
    (
        "mount-without-destination",
        del_at(("mounts", 0, "destination")),
        {(("mounts", 0), "required")},
    ),
    (
        "mount-options-string",
        set_at(("mounts", 1, "options"), "nosuid,noexec"),
        {(("mounts", 1, "options"), "type")},
    ),
    (
        "mount-uidMappings-alone",
        set_at(("mounts", 0, "uidMappings"), [{"containerID": 0, "hostID": 1000, "size": 1}]),
        {(("mounts", 0), "required")},
    ),
    (
        "hook-without-path",
        set_at(("hooks",), {"prestart": [{"args": ["fix-mounts"]}]}),
        {(("hooks", "prestart", 0), "required")},
    ),
    (
        "hook-timeout-zero",
        set_at(("hooks",), {"poststop": [{"path": "/bin/true", "timeout": 0}]}),
        {(("hooks", "poststop", 0, "timeout"), "minimum")},
    ),
    (
        "hooks-not-a-list",
        set_at(("hooks",), {"createRuntime": {"path": "/bin/true"}}),
        {(("hooks", "createRuntime"), "type")},
    ),
    ("annotation-value-int", set_at(("annotations",), {"a": 1}), {(("annotations", "a"), "type")}),
    (
        "annotation-empty-key",
        set_at(("annotations",), {"": "x"}),
        {(("annotations",), "minLength")},
    ),
    ("namespace-type-not-in-enum", set_at((*NS2, "type"), "foo"), {((*NS2, "type"), "enum")}),
    ("namespace-without-type", set_at(NS2, {"path": "/proc/1/ns/ipc"}), {(NS2, "required")}),
    (
        "idmapping-without-size",
        set_at(("linux", "uidMappings"), [{"containerID": 0, "hostID": 1000}]),
        {(("linux", "uidMappings", 0), "required")},
    ),
    (
        "timeOffset-negative-nanosecs",
        set_at(("linux", "timeOffsets"), {"boottime": {"secs": 1, "nanosecs": -1}}),
        {(("linux", "timeOffsets", "boottime", "nanosecs"), "minimum")},
    ),
    (
        "device-bad-type",
        set_at(("linux", "devices"), [{"type": "x", "path": "/dev/x", "major": 1, "minor": 3}]),
        {(("linux", "devices", 0, "type"), "enum")},
    ),
    (
        "char-device-without-numbers",
        set_at(("linux", "devices"), [{"type": "c", "path": "/dev/fuse"}]),
        {(("linux", "devices", 0), "required")},
    ),
    (
        "memory-limit-string",
        set_at((*RES, "memory"), {"limit": "512M"}),
        {((*RES, "memory", "limit"), "type")},
    ),
    (
        "cpu-shares-negative",
        set_at((*RES, "cpu"), {"shares": -1}),
        {((*RES, "cpu", "shares"), "minimum")},
    ),
    ("pids-without-limit", set_at((*RES, "pids"), {}), {((*RES, "pids"), "required")}),
    (
        "blockIO-weight-5",
        set_at((*RES, "blockIO"), {"weight": 5, "leafWeight": 1001}),
        {((*RES, "blockIO", "weight"), "minimum"), ((*RES, "blockIO", "leafWeight"), "maximum")},
    ),
    (
        "weightDevice-without-weights",
        set_at((*RES, "blockIO"), {"weightDevice": [{"major": 8, "minor": 0}]}),
        {((*RES, "blockIO", "weightDevice", 0), "anyOf")},
    ),
    (
        "throttle-without-rate",
        set_at((*RES, "blockIO"), {"throttleReadBpsDevice": [{"major": 8, "minor": 0}]}),
        {((*RES, "blockIO", "throttleReadBpsDevice", 0), "required")},
    ),
    (
        "hugepage-bad-size",
        set_at((*RES, "hugepageLimits"), [{"pageSize": "2 megs", "limit": 1}]),
        {((*RES, "hugepageLimits", 0, "pageSize"), "pattern")},
    ),
    (
        "rdma-empty-entry",
        set_at((*RES, "rdma"), {"mlx5_1": {}}),
        {((*RES, "rdma", "mlx5_1"), "anyOf")},
    ),
    (
        "unified-value-int",
        set_at((*RES, "unified"), {"pids.max": 10}),
        {((*RES, "unified", "pids.max"), "type")},
    ),
    (
        "device-cgroup-bad-access",
        set_at((*RES, "devices", 0, "access"), "rwx"),
        {((*RES, "devices", 0, "access"), "pattern")},
    ),
    (
        "device-cgroup-without-allow",
        del_at((*RES, "devices", 0, "allow")),
        {((*RES, "devices", 0), "required")},
    ),
    (
        "sysctl-value-int",
        set_at(("linux", "sysctl"), {"net.ipv4.ip_forward": 1}),
        {(("linux", "sysctl", "net.ipv4.ip_forward"), "type")},
    ),
    (
        "rootfsPropagation-not-in-enum",
        set_at(("linux", "rootfsPropagation"), "sideways"),
        {(("linux", "rootfsPropagation"), "enum")},
    ),
    (
        "seccomp-without-defaultAction",
        set_at(("linux", "seccomp"), {"syscalls": []}),
        {(("linux", "seccomp"), "required")},
    ),
    (
        "seccomp-bad-action",
        both(set_at(("linux", "seccomp"), SECCOMP), set_at((*SC0, "action"), "SCMP_ACT_NOPE")),
        {((*SC0, "action"), "enum")},
    ),
    (
        "seccomp-bad-default-action",
        both(
            set_at(("linux", "seccomp"), SECCOMP),
            set_at(("linux", "seccomp", "defaultAction"), "ALLOW"),
        ),
        {(("linux", "seccomp", "defaultAction"), "enum")},
    ),
    (
        "seccomp-bad-arch",
        both(
            set_at(("linux", "seccomp"), SECCOMP),
            set_at(("linux", "seccomp", "architectures"), ["x86_64"]),
        ),
        {(("linux", "seccomp", "architectures", 0), "enum")},
    ),
    (
        "seccomp-bad-operator",
        both(
            set_at(("linux", "seccomp"), SECCOMP), set_at((*SC0, "args", 0, "op"), "SCMP_CMP_LIKE")
        ),
        {((*SC0, "args", 0, "op"), "enum")},
    ),
    (
        "seccomp-bad-flag",
        both(
            set_at(("linux", "seccomp"), SECCOMP), set_at(("linux", "seccomp", "flags"), ["TSYNC"])
        ),
        {(("linux", "seccomp", "flags", 0), "enum")},
    ),
    (
        "seccomp-empty-names",
        both(set_at(("linux", "seccomp"), SECCOMP), set_at((*SC0, "names"), [])),
        {((*SC0, "names"), "minItems")},
    ),
    (
        "seccomp-arg-without-value",
        both(set_at(("linux", "seccomp"), SECCOMP), del_at((*SC0, "args", 0, "value"))),
        {((*SC0, "args", 0), "required")},
    ),
    (
        "personality-bad-domain",
        set_at(("linux", "personality"), {"domain": "SVR4"}),
        {(("linux", "personality", "domain"), "enum")},
    ),
    (
        "intelRdt-memBwSchema-without-MB",
        set_at(("linux", "intelRdt"), {"memBwSchema": "L3:0=7f0"}),
        {(("linux", "intelRdt", "memBwSchema"), "pattern")},
    ),
    (
        "several-errors-at-once",
        both(
            del_at(("ociVersion",)),
            set_at(("process", "user", "uid"), -1),
            set_at((*NS2, "type"), "foo"),
        ),
        {((), "required"), (("process", "user", "uid"), "minimum"), ((*NS2, "type"), "enum")},
    ),
]


@pytest.mark.parametrize(
    ("change", "expected"),
    [pytest.param(change, expected, id=name) for name, change, expected in INVALID_CONFIGS],
)
def test_invalid_config_fails_at_the_expected_paths(
    change: Callable[[dict[str, Any]], None], expected: set[tuple[Path_, str]]
) -> None:
    doc = load_data("runc-spec.json")
    change(doc)
    assert error_set("config", doc) == expected


def test_required_messages_name_the_missing_property() -> None:
    doc = load_data("runc-spec.json")
    del doc["process"]["args"]
    (error,) = validator("config").iter_errors(doc)
    assert error.message == "'args' is a required property"


def test_fifo_device_needs_no_numbers() -> None:
    doc = load_data("runc-spec.json")
    doc["linux"]["devices"] = [{"type": "p", "path": "/dev/myfifo"}]
    assert error_set("config", doc) == set()


def test_integer_bounds_are_inclusive() -> None:
    doc = load_data("runc-spec.json")
    doc["process"]["user"]["uid"] = 2**32 - 1
    doc["process"]["oomScoreAdj"] = -1000
    doc["process"]["rlimits"][0]["hard"] = 2**64 - 1
    doc["linux"]["resources"]["memory"] = {"limit": -(2**63), "swap": 2**63 - 1}
    doc["linux"]["resources"]["blockIO"] = {"weight": 1000, "leafWeight": 10}
    assert error_set("config", doc) == set()
    doc["process"]["rlimits"][0]["hard"] = 2**64
    doc["linux"]["resources"]["memory"]["swap"] = 2**63
    assert error_set("config", doc) == {
        (("process", "rlimits", 0, "hard"), "maximum"),
        (("linux", "resources", "memory", "swap"), "maximum"),
    }


# --- state ------------------------------------------------------------------------------------

RUNC_STATE = {
    "ociVersion": "1.0.2-dev",
    "id": "mycontainer",
    "pid": 4422,
    "status": "running",
    "bundle": "/containers/redis",
    "rootfs": "/containers/redis/rootfs",
    "created": "2024-02-01T10:12:13.123456789Z",
    "owner": "",
}


def test_runc_state_output_is_valid() -> None:
    assert error_set("state", RUNC_STATE) == set()


@pytest.mark.parametrize(
    "doc",
    [
        pytest.param({**RUNC_STATE, "status": "stopped", "pid": 0}, id="stopped"),
        pytest.param({**RUNC_STATE, "status": "paused"}, id="paused"),
        pytest.param(
            {
                "ociVersion": "1.2.0",
                "id": "oci-container1",
                "status": "creating",
                "bundle": "/containers/redis",
                "annotations": {"myKey": "myValue"},
            },
            id="creating-without-pid",
        ),
        pytest.param({**RUNC_STATE, **UNKNOWN}, id="unknown-property"),
    ],
)
def test_other_states_are_valid(doc: dict[str, Any]) -> None:
    assert error_set("state", doc) == set()


def without(doc: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != key}


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        pytest.param(without(RUNC_STATE, "pid"), {((), "required")}, id="running-without-pid"),
        pytest.param(
            {**without(RUNC_STATE, "pid"), "status": "created"},
            {((), "required")},
            id="created-without-pid",
        ),
        pytest.param(without(RUNC_STATE, "bundle"), {((), "required")}, id="no-bundle"),
        pytest.param(without(RUNC_STATE, "id"), {((), "required")}, id="no-id"),
        pytest.param({**RUNC_STATE, "id": ""}, {(("id",), "minLength")}, id="empty-id"),
        pytest.param(
            {**RUNC_STATE, "status": "exploded"}, {(("status",), "enum")}, id="bad-status"
        ),
        pytest.param({**RUNC_STATE, "pid": -1}, {(("pid",), "minimum")}, id="negative-pid"),
        pytest.param({**RUNC_STATE, "pid": "4422"}, {(("pid",), "type")}, id="pid-string"),
        pytest.param(
            {**RUNC_STATE, "annotations": {"k": True}},
            {(("annotations", "k"), "type")},
            id="annotation-bool",
        ),
    ],
)
def test_invalid_state_fails_at_the_expected_paths(
    doc: dict[str, Any], expected: set[tuple[Path_, str]]
) -> None:
    assert error_set("state", doc) == expected


# --- features ---------------------------------------------------------------------------------


def runc_like_features() -> dict[str, Any]:
    """What a v1.2 runtime's `features` prints (runc 1.1.5 here has no such command)."""
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": "1.2.0",
        "hooks": [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop",
        ],
        "mountOptions": ["bind", "rbind", "ro", "rw", "nosuid", "idmap", "ridmap", "tmpcopyup"],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": ["CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_CHECKPOINT_RESTORE"],
            "cgroup": {"v1": True, "v2": True, "systemd": True, "systemdUser": True, "rdma": True},
            "seccomp": {
                "enabled": True,
                "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL_PROCESS"],
                "operators": ["SCMP_CMP_EQ", "SCMP_CMP_MASKED_EQ"],
                "archs": ["SCMP_ARCH_X86_64", "SCMP_ARCH_AARCH64", "SCMP_ARCH_RISCV64"],
                "knownFlags": [
                    "SECCOMP_FILTER_FLAG_TSYNC",
                    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
                    "SECCOMP_FILTER_FLAG_LOG",
                ],
                "supportedFlags": ["SECCOMP_FILTER_FLAG_LOG"],
            },
            "apparmor": {"enabled": True},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": True},
            "mountExtensions": {"idmap": {"enabled": True}},
        },
        "annotations": {
            "io.github.seccomp.libseccomp.version": "2.5.4",
            "org.opencontainers.runc.version": "1.2.0",
        },
        "potentiallyUnsafeConfigAnnotations": ["bundle", "org.systemd.property."],
    }


def test_runc_like_features_are_valid() -> None:
    assert error_set("features", runc_like_features()) == set()


def test_minimal_features_are_valid() -> None:
    assert error_set("features", {"ociVersionMin": "1.0.0", "ociVersionMax": "1.2.0"}) == set()


def test_features_accept_null_for_unknown() -> None:
    doc = runc_like_features()
    for key in ("hooks", "mountOptions", "annotations", "potentiallyUnsafeConfigAnnotations"):
        doc[key] = None
    linux = doc["linux"]
    for key in ("namespaces", "capabilities", "apparmor"):
        linux[key] = None
    linux["cgroup"]["rdma"] = None
    linux["seccomp"]["archs"] = None
    linux["mountExtensions"]["idmap"]["enabled"] = None
    assert error_set("features", doc) == set()
    assert error_set("features", {**doc, "linux": None}) == set()


def test_features_accept_unknown_properties() -> None:
    doc = runc_like_features()
    doc.update(UNKNOWN)
    doc["linux"].update(UNKNOWN)
    doc["linux"]["seccomp"].update(UNKNOWN)
    doc["linux"]["memoryPolicy"] = {"modes": ["MPOL_INTERLEAVE"], "flags": []}
    doc["linux"]["netDevices"] = {"enabled": True}
    assert error_set("features", doc) == set()


L = ("linux",)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(del_at(("ociVersionMax",)), {((), "required")}, id="no-ociVersionMax"),
        pytest.param(
            set_at(("ociVersionMin",), None), {(("ociVersionMin",), "type")}, id="null-min"
        ),
        pytest.param(set_at(("hooks", 0), "prestop"), {(("hooks", 0), "enum")}, id="bad-hook"),
        pytest.param(
            set_at((*L, "namespaces", 1), "ipcs"), {((*L, "namespaces", 1), "enum")}, id="bad-ns"
        ),
        pytest.param(
            set_at((*L, "capabilities", 0), "cap_chown"),
            {((*L, "capabilities", 0), "pattern")},
            id="bad-capability",
        ),
        pytest.param(
            set_at((*L, "cgroup", "v2"), "yes"), {((*L, "cgroup", "v2"), "type")}, id="cgroup-str"
        ),
        pytest.param(
            set_at((*L, "seccomp", "actions", 0), "SCMP_ACT_MAYBE"),
            {((*L, "seccomp", "actions", 0), "enum")},
            id="bad-action",
        ),
        pytest.param(
            set_at((*L, "seccomp", "supportedFlags"), "SECCOMP_FILTER_FLAG_LOG"),
            {((*L, "seccomp", "supportedFlags"), "type")},
            id="flags-not-a-list",
        ),
        pytest.param(
            set_at((*L, "mountExtensions", "idmap", "enabled"), 1),
            {((*L, "mountExtensions", "idmap", "enabled"), "type")},
            id="idmap-enabled-int",
        ),
        pytest.param(
            set_at(("annotations", "org.opencontainers.runc.version"), 1.2),
            {(("annotations", "org.opencontainers.runc.version"), "type")},
            id="annotation-number",
        ),
    ],
)
def test_invalid_features_fail_at_the_expected_paths(
    change: Callable[[dict[str, Any]], None], expected: set[tuple[Path_, str]]
) -> None:
    doc = runc_like_features()
    change(doc)
    assert error_set("features", doc) == expected
