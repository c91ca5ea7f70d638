"""``runtime.jsonfast`` must be indistinguishable from the json module for what pyrun reads and
writes (values, pretty and compact text, error type and position); ``runtime.timefmt`` must
print Go's RFC3339Nano."""

from __future__ import annotations

import calendar
import json
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime import jsonfast, timefmt

SETTINGS = settings(max_examples=200, deadline=None)

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(), children, max_size=5)
    ),
    max_leaves=30,
)


@SETTINGS
@given(json_values)
def test_arbitrary_values_round_trip(value: Any) -> None:
    assert jsonfast.loads(jsonfast.dumps(value)) == value
    assert jsonfast.loads(jsonfast.dumps(value, indent=2)) == value
    assert jsonfast.loads(jsonfast.dumps(value).encode()) == value


@SETTINGS
@given(json_values)
def test_dumps_matches_json_module(value: Any) -> None:
    assert jsonfast.dumps(value) == json.dumps(value, separators=(",", ":"))
    assert jsonfast.dumps(value, indent=2) == json.dumps(value, indent=2)
    assert jsonfast.dumps(value, indent=4) == json.dumps(value, indent=4)
    assert jsonfast.dumps(value, indent=0) == json.dumps(value, indent=0)


@SETTINGS
@given(json_values, st.sampled_from([None, 1, 2, "\t"]), st.booleans())
def test_loads_reads_what_json_writes(value: Any, indent: int | str | None, ascii_: bool) -> None:
    text = json.dumps(value, indent=indent, ensure_ascii=ascii_)
    assert jsonfast.loads(text) == json.loads(text)
    assert jsonfast.loads(text.encode()) == value


def outcome(parse: Any, text: str) -> tuple[str, Any]:
    try:
        return ("ok", parse(text))
    except json.JSONDecodeError as err:
        return ("error", (err.msg, err.pos, err.lineno, err.colno))


# Text built from JSON's own characters hits the scanner's error paths far more often than
# arbitrary unicode. NaN/Infinity are refused by jsonfast on purpose (json accepts them), and a
# str with a leading BOM gets a special message from json; both are tested separately.
json_ish = st.text(alphabet='{}[]",:0123456789.eE+-truefalsn \t\n\r\\u\x01', max_size=40)


@SETTINGS
@given(json_ish | st.text(max_size=20))
def test_errors_match_json_module(text: str) -> None:
    if "NaN" in text or "Infinity" in text or text.startswith("\ufeff"):
        return
    assert outcome(jsonfast.loads, text) == outcome(json.loads, text)


@pytest.mark.parametrize(
    ("text", "message", "pos"),
    [
        ("", "Expecting value", 0),
        ("   ", "Expecting value", 3),
        ("[1,]", "Expecting value", 3),
        ('{"a" 1}', "Expecting ':' delimiter", 5),
        ('{"a":1,}', "Expecting property name enclosed in double quotes", 7),
        ('"abc', "Unterminated string starting at", 0),
        ('"\x01"', "Invalid control character at", 1),
        ('"\\x"', "Invalid \\escape", 1),
        ("[1] [2]", "Extra data", 4),
        ("1 \n 2", "Extra data", 4),
        ("01", "Extra data", 1),
        ("tru", "Expecting value", 0),
    ],
)
def test_error_examples(text: str, message: str, pos: int) -> None:
    with pytest.raises(json.JSONDecodeError) as caught:
        jsonfast.loads(text)
    assert (caught.value.msg, caught.value.pos) == (message, pos)
    with pytest.raises(json.JSONDecodeError) as reference:
        json.loads(text)
    assert str(caught.value) == str(reference.value)


def test_error_line_and_column() -> None:
    with pytest.raises(json.JSONDecodeError) as caught:
        jsonfast.loads(b'{\n  "a": 1,\n  "b": tru\n}')
    assert (caught.value.lineno, caught.value.colno, caught.value.pos) == (3, 8, 19)


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"a": -Infinity}'])
def test_nan_and_infinity_are_refused(text: str) -> None:
    with pytest.raises(ValueError) as caught:
        jsonfast.loads(text)
    assert str(caught.value).endswith("is not valid JSON")
    assert not isinstance(caught.value, json.JSONDecodeError)


def test_bytes_are_utf8_with_optional_bom() -> None:
    assert jsonfast.loads(b'{"a": "\xc3\xa9"}') == {"a": "é"}
    assert jsonfast.loads(b'\xef\xbb\xbf{"a": 1}') == {"a": 1}
    assert jsonfast.loads(bytearray(b"[1]")) == [1]
    with pytest.raises(UnicodeDecodeError):
        jsonfast.loads(b'"\xff"')


def test_str_with_bom_is_an_error_at_position_0() -> None:
    with pytest.raises(json.JSONDecodeError) as caught:
        jsonfast.loads("\ufeff{}")
    assert caught.value.pos == 0


def test_repeated_keys_keep_the_last_like_json() -> None:
    assert jsonfast.loads('{"a": 1, "a": 2}') == {"a": 2}


def test_big_numbers_and_floats() -> None:
    assert jsonfast.loads("123456789012345678901234567890") == 123456789012345678901234567890
    assert jsonfast.loads("1.5e300") == 1.5e300
    assert jsonfast.loads("-0.0") == 0.0
    assert jsonfast.dumps(1e16) == "1e+16"
    assert jsonfast.dumps(0.1) == "0.1"


def test_dumps_examples() -> None:
    state = {"ociVersion": "1.2.0", "id": "c1", "pid": 42, "annotations": {}, "list": []}
    assert jsonfast.dumps(state) == (
        '{"ociVersion":"1.2.0","id":"c1","pid":42,"annotations":{},"list":[]}'
    )
    assert jsonfast.dumps(state, indent=2) == (
        '{\n  "ociVersion": "1.2.0",\n  "id": "c1",\n  "pid": 42,\n'
        '  "annotations": {},\n  "list": []\n}'
    )
    assert jsonfast.dumps({"a": [1, {"b": None}]}, indent=2) == (
        '{\n  "a": [\n    1,\n    {\n      "b": null\n    }\n  ]\n}'
    )
    assert jsonfast.dumps("é😀\n") == '"\\u00e9\\ud83d\\ude00\\n"'
    assert jsonfast.dumps((1, 2)) == "[1,2]"
    assert jsonfast.dumps((1, 2), indent=2) == "[\n  1,\n  2\n]"
    assert jsonfast.dumps({1: "a", 2.5: "b"}) == '{"1":"a","2.5":"b"}'


def test_dumps_refuses_nan_and_unknown_types() -> None:
    with pytest.raises(ValueError):
        jsonfast.dumps(float("nan"))
    with pytest.raises(ValueError):
        jsonfast.dumps({"a": float("inf")}, indent=2)
    with pytest.raises(TypeError):
        jsonfast.dumps({"a": {1, 2}})


def test_bool_and_null_keys_in_compact_form_match_json() -> None:
    assert jsonfast.dumps({True: 1, None: 2}) == json.dumps(
        {True: 1, None: 2}, separators=(",", ":")
    )


def test_bool_and_null_keys_in_pretty_form_match_json() -> None:
    value = {True: 1, False: 2, None: 3}
    assert jsonfast.dumps(value, indent=2) == json.dumps(value, indent=2)


# -- timefmt ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "1970-01-01T00:00:00Z"),
        (1, "1970-01-01T00:00:00.000000001Z"),
        (100, "1970-01-01T00:00:00.0000001Z"),
        (500_000_000, "1970-01-01T00:00:00.5Z"),
        (1_000_000_000, "1970-01-01T00:00:01Z"),
        (1_764_284_603_500_000_000, "2025-11-27T23:03:23.5Z"),
        (1_764_284_603_123_456_789, "2025-11-27T23:03:23.123456789Z"),
        (1_764_284_603_120_000_000, "2025-11-27T23:03:23.12Z"),
        (951_782_400_010_000_000, "2000-02-29T00:00:00.01Z"),
        (-1, "1969-12-31T23:59:59.999999999Z"),
    ],
)
def test_rfc3339_nano_examples(ns: int, text: str) -> None:
    assert timefmt.rfc3339_nano(ns) == text


def parse_rfc3339_nano(text: str) -> int:
    assert text.endswith("Z")
    seconds = calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S"))
    fraction = text[20:-1] if len(text) > 20 else ""
    if fraction:
        assert text[19] == "."
        assert not fraction.endswith("0")
        assert 1 <= len(fraction) <= 9
    else:
        assert len(text) == 20
    return seconds * 1_000_000_000 + int(fraction.ljust(9, "0") or "0")


@SETTINGS
@given(st.integers(min_value=0, max_value=253_402_300_799_999_999_999))
def test_rfc3339_nano_is_exact_and_trimmed(ns: int) -> None:
    assert parse_rfc3339_nano(timefmt.rfc3339_nano(ns)) == ns


@pytest.mark.parametrize(
    ("ns", "text"),
    [
        (0, "1970-01-01T00:00:00Z"),
        (1_764_284_603_999_999_999, "2025-11-27T23:03:23Z"),
    ],
)
def test_rfc3339_truncates_to_seconds(ns: int, text: str) -> None:
    assert timefmt.rfc3339(ns) == text


def test_timefmt_defaults_to_now(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(timefmt.time, "time_ns", lambda: 1_764_284_603_250_000_000)
    assert timefmt.rfc3339_nano() == "2025-11-27T23:03:23.25Z"
    assert timefmt.rfc3339() == "2025-11-27T23:03:23Z"
