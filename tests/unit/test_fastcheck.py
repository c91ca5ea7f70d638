"""The hot-path validator must agree with jsonschema, the reference, on every document."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from runtime.spec import load_schema
from runtime.spec.fastcheck import ACCELERATED_PATTERNS, FastValidator, SchemaUnsupported

DATA = Path(__file__).parent / "data"
SEEDS = ["runc-spec.json", "runc-spec-rootless.json", "oci-example-config.json"]
SCHEMAS = ["config", "state", "features"]

json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**65), max_value=2**65)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["", "CAP_KILL", "cap_kill", "1.0.0", "1.2", "rwm", "rwx", "pid", "/x", "a"])
)
json_value = st.recursive(
    json_leaf,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out += _paths(value, (*prefix, index))
    return out


def _mutate(doc: Any, path: tuple[Any, ...], action: str, value: Any, key: str) -> Any:
    doc = copy.deepcopy(doc)
    if not path:
        return value if action == "replace" else doc
    parent = doc
    for part in path[:-1]:
        parent = parent[part]
    last = path[-1]
    if action == "replace":
        parent[last] = value
    elif action == "delete":
        del parent[last]
    elif action == "add" and isinstance(parent[last], dict):
        parent[last][key] = value
    elif action == "add" and isinstance(parent[last], list):
        parent[last].append(value)
    return doc


@pytest.fixture(scope="module")
def seeds() -> list[Any]:
    return [json.loads((DATA / name).read_text()) for name in SEEDS]


@pytest.mark.parametrize("name", SCHEMAS)
def test_schema_uses_only_supported_keywords(name: str) -> None:
    # FastValidator raises SchemaUnsupported on an unknown keyword; exercise every node by
    # validating a document that reaches each branch is impractical, so walk the schema.
    from runtime.spec.fastcheck import SUPPORTED_KEYWORDS

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if where.endswith(("properties", "$defs", "patternProperties")):
                    walk(value, f"{where}/{key}")
                    continue
                assert key in SUPPORTED_KEYWORDS, f"{name}: {where}/{key}"
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                if not where.endswith(("enum", "required", "examples", "type", "const")):
                    walk(value, f"{where}[{index}]")

    walk(load_schema(name), "")


@pytest.mark.parametrize("name", SEEDS)
def test_seed_configs_agree(name: str) -> None:
    doc = json.loads((DATA / name).read_text())
    schema = load_schema("config")
    assert FastValidator(schema).is_valid(doc) is True
    assert Draft202012Validator(schema).is_valid(doc) is True


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_configs_agree_with_jsonschema(seeds: list[Any], data: st.DataObject) -> None:
    schema = load_schema("config")
    reference = Draft202012Validator(schema)
    fast = FastValidator(schema)
    doc = data.draw(st.sampled_from(seeds))
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        path = data.draw(st.sampled_from(_paths(doc)))
        action = data.draw(st.sampled_from(["replace", "delete", "add"]))
        doc = _mutate(doc, path, action, data.draw(json_value), data.draw(st.text(max_size=6)))
    assert fast.is_valid(doc) == reference.is_valid(doc), json.dumps(doc)[:2000]


@settings(max_examples=300, deadline=None)
@given(doc=json_value)
def test_arbitrary_documents_agree_for_every_schema(doc: Any) -> None:
    for name in SCHEMAS:
        schema = load_schema(name)
        assert FastValidator(schema).is_valid(doc) == Draft202012Validator(schema).is_valid(doc)


@pytest.mark.parametrize("pattern", sorted(ACCELERATED_PATTERNS))
@settings(max_examples=400, deadline=None)
@given(data=st.data())
def test_accelerated_patterns_match_re(pattern: str, data: st.DataObject) -> None:
    text = data.draw(
        st.from_regex(pattern)
        | st.text(alphabet="0123456789.-+CAP_XYrwmabz\n", max_size=16)
        | st.text(max_size=10)
    )
    assert ACCELERATED_PATTERNS[pattern](text) == bool(re.search(pattern, text)), repr(text)


def test_unknown_keyword_is_refused() -> None:
    with pytest.raises(SchemaUnsupported):
        FastValidator({"format": "uri"}).is_valid("x")


def test_integer_semantics_match_jsonschema() -> None:
    schema = {"type": "integer", "minimum": 0}
    for value, expected in [(1, True), (1.0, True), (1.5, False), (True, False), (-1, False)]:
        assert FastValidator(schema).is_valid(value) is expected
        assert Draft202012Validator(schema).is_valid(value) is expected


def test_enum_distinguishes_bool_from_int() -> None:
    schema = {"enum": [1]}
    assert FastValidator(schema).is_valid(True) is Draft202012Validator(schema).is_valid(True)
    assert FastValidator(schema).is_valid(1.0) is Draft202012Validator(schema).is_valid(1.0)
