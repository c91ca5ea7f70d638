"""A yes/no JSON Schema check for the hot path, without the jsonschema library.

``jsonschema`` stays the reference and writes every error report; importing it costs about
120 ms here, longer than a whole ``runc run``. This interpreter answers only "valid or not" for the
keyword subset our schemas use (tests/unit/test_schemas.py keeps the schemas inside that subset,
and tests/unit/test_fastcheck.py checks that it agrees with jsonschema on generated documents).
An unknown keyword is a programming error: ``SchemaUnsupported`` is raised rather than guessing.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs ~10 ms to import; mypy still reads the block below
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    Check = Callable[[Any, dict[str, Any]], bool]

# Keywords that never constrain an instance.
_ANNOTATIONS = frozenset(
    {"$schema", "$id", "$comment", "$defs", "title", "description", "examples", "default"}
)


class SchemaUnsupported(Exception):
    """The schema uses a keyword this interpreter does not implement."""


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_TYPES: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": _is_integer,
    "number": _is_number,
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
}


def _freeze(value: Any) -> Any:
    """A hashable key with JSON Schema equality: 1 == 1.0, but True != 1."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int | float):
        return ("num", value)
    if isinstance(value, list):
        return ("list", tuple(_freeze(v) for v in value))
    if isinstance(value, dict):
        return ("dict", frozenset((k, _freeze(v)) for k, v in value.items()))
    return ("other", value)


def _strip_final_newline(text: str) -> str:
    # Python's "$" also matches before one final newline; jsonschema uses Python's re.
    return text[:-1] if text.endswith("\n") else text


_DIGITS = frozenset("0123456789")
_IDENT = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-")
_CAP_TAIL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ_")


def _is_numeric_id(part: str) -> bool:
    return part == "0" or (part != "" and part[0] != "0" and set(part) <= _DIGITS)


def _is_dotted_idents(text: str) -> bool:
    return all(part != "" and set(part) <= _IDENT for part in text.split("."))


def _semver(text: str) -> bool:
    text = _strip_final_newline(text)
    core, plus, build = text.partition("+")
    if plus and not _is_dotted_idents(build):
        return False
    core, dash, pre = core.partition("-")
    if dash and not _is_dotted_idents(pre):
        return False
    parts = core.split(".")
    return len(parts) == 3 and all(_is_numeric_id(p) for p in parts)


def _capability(text: str) -> bool:
    text = _strip_final_newline(text)
    return text.startswith("CAP_") and len(text) > 4 and set(text[4:]) <= _CAP_TAIL


def _device_access(text: str) -> bool:
    return set(_strip_final_newline(text)) <= frozenset("rwm")


# The patterns every ordinary config meets, checked without importing re (~9 ms). Each must
# agree with re.search exactly; tests/unit/test_fastcheck.py proves it on generated strings.
ACCELERATED_PATTERNS: dict[str, Callable[[str], bool]] = {
    "^(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)\\.(0|[1-9][0-9]*)"
    "(-[0-9A-Za-z-]+(\\.[0-9A-Za-z-]+)*)?(\\+[0-9A-Za-z-]+(\\.[0-9A-Za-z-]+)*)?$": _semver,
    "^CAP_[A-Z_]+$": _capability,
    "^[rwm]*$": _device_access,
}

_pattern_cache: dict[str, Any] = {}


def _search(pattern: str, text: str) -> bool:
    accelerated = ACCELERATED_PATTERNS.get(pattern)
    if accelerated is not None:
        return accelerated(text)
    compiled = _pattern_cache.get(pattern)
    if compiled is None:
        import re  # only rarely used patterns pay for re

        compiled = _pattern_cache[pattern] = re.compile(pattern)
    return compiled.search(text) is not None


class FastValidator:
    """Validates instances against one schema document (with local ``$ref``s)."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self._root = schema

    def is_valid(self, instance: Any) -> bool:
        return self._check(instance, self._root)

    def _resolve(self, ref: str) -> dict[str, Any]:
        if not ref.startswith("#/"):
            raise SchemaUnsupported(f"non-local $ref {ref!r}")
        node: Any = self._root
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node  # type: ignore[no-any-return]

    def _check(self, value: Any, schema: Any) -> bool:
        if schema is True:
            return True
        if schema is False:
            return False
        for keyword, arg in schema.items():
            check = _KEYWORDS.get(keyword)
            if check is None:
                if keyword in _ANNOTATIONS or keyword in ("then", "else"):
                    continue
                raise SchemaUnsupported(f"keyword {keyword!r}")
            if not check(self, value, arg, schema):
                return False
        return True


def _kw_ref(v: FastValidator, value: Any, ref: str, _: dict[str, Any]) -> bool:
    return v._check(value, v._resolve(ref))


def _kw_type(v: FastValidator, value: Any, arg: Any, _: dict[str, Any]) -> bool:
    if isinstance(arg, str):
        return _TYPES[arg](value)
    return any(_TYPES[name](value) for name in arg)


def _kw_properties(v: FastValidator, value: Any, props: dict[str, Any], _: Any) -> bool:
    if not isinstance(value, dict):
        return True
    for name, sub in props.items():
        if name in value and not v._check(value[name], sub):
            return False
    return True


def _kw_pattern_properties(v: FastValidator, value: Any, pats: dict[str, Any], _: Any) -> bool:
    if not isinstance(value, dict):
        return True
    for pattern, sub in pats.items():
        for name, item in value.items():
            if _search(pattern, name) and not v._check(item, sub):
                return False
    return True


def _kw_additional(v: FastValidator, value: Any, sub: Any, schema: dict[str, Any]) -> bool:
    if not isinstance(value, dict):
        return True
    known = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    for name, item in value.items():
        if name in known or any(_search(p, name) for p in patterns):
            continue
        if not v._check(item, sub):
            return False
    return True


def _kw_property_names(v: FastValidator, value: Any, sub: Any, _: Any) -> bool:
    return not isinstance(value, dict) or all(v._check(name, sub) for name in value)


def _kw_required(v: FastValidator, value: Any, names: list[str], _: Any) -> bool:
    return not isinstance(value, dict) or all(name in value for name in names)


def _kw_min_properties(v: FastValidator, value: Any, n: int, _: Any) -> bool:
    return not isinstance(value, dict) or len(value) >= n


def _kw_max_properties(v: FastValidator, value: Any, n: int, _: Any) -> bool:
    return not isinstance(value, dict) or len(value) <= n


def _kw_items(v: FastValidator, value: Any, sub: Any, _: Any) -> bool:
    return not isinstance(value, list) or all(v._check(item, sub) for item in value)


def _kw_min_items(v: FastValidator, value: Any, n: int, _: Any) -> bool:
    return not isinstance(value, list) or len(value) >= n


def _kw_max_items(v: FastValidator, value: Any, n: int, _: Any) -> bool:
    return not isinstance(value, list) or len(value) <= n


def _kw_unique(v: FastValidator, value: Any, unique: bool, _: Any) -> bool:
    if not unique or not isinstance(value, list):
        return True
    keys = [_freeze(item) for item in value]
    return len(set(keys)) == len(keys)


def _kw_enum(v: FastValidator, value: Any, options: list[Any], _: Any) -> bool:
    key = _freeze(value)
    return any(_freeze(option) == key for option in options)


def _kw_const(v: FastValidator, value: Any, const: Any, _: Any) -> bool:
    return bool(_freeze(value) == _freeze(const))


def _kw_pattern(v: FastValidator, value: Any, pattern: str, _: Any) -> bool:
    return not isinstance(value, str) or _search(pattern, value)


def _kw_min_length(v: FastValidator, value: Any, n: int, _: Any) -> bool:
    return not isinstance(value, str) or len(value) >= n


def _kw_max_length(v: FastValidator, value: Any, n: int, _: Any) -> bool:
    return not isinstance(value, str) or len(value) <= n


def _kw_minimum(v: FastValidator, value: Any, bound: float, _: Any) -> bool:
    return not _is_number(value) or value >= bound


def _kw_maximum(v: FastValidator, value: Any, bound: float, _: Any) -> bool:
    return not _is_number(value) or value <= bound


def _kw_exclusive_minimum(v: FastValidator, value: Any, bound: float, _: Any) -> bool:
    return not _is_number(value) or value > bound


def _kw_exclusive_maximum(v: FastValidator, value: Any, bound: float, _: Any) -> bool:
    return not _is_number(value) or value < bound


def _kw_any_of(v: FastValidator, value: Any, subs: list[Any], _: Any) -> bool:
    return any(v._check(value, sub) for sub in subs)


def _kw_one_of(v: FastValidator, value: Any, subs: list[Any], _: Any) -> bool:
    return sum(1 for sub in subs if v._check(value, sub)) == 1


def _kw_all_of(v: FastValidator, value: Any, subs: list[Any], _: Any) -> bool:
    return all(v._check(value, sub) for sub in subs)


def _kw_not(v: FastValidator, value: Any, sub: Any, _: Any) -> bool:
    return not v._check(value, sub)


def _kw_if(v: FastValidator, value: Any, sub: Any, schema: dict[str, Any]) -> bool:
    branch = schema.get("then", True) if v._check(value, sub) else schema.get("else", True)
    return v._check(value, branch)


_KEYWORDS: dict[str, Callable[[FastValidator, Any, Any, dict[str, Any]], bool]] = {
    "$ref": _kw_ref,
    "type": _kw_type,
    "properties": _kw_properties,
    "patternProperties": _kw_pattern_properties,
    "additionalProperties": _kw_additional,
    "propertyNames": _kw_property_names,
    "required": _kw_required,
    "minProperties": _kw_min_properties,
    "maxProperties": _kw_max_properties,
    "items": _kw_items,
    "minItems": _kw_min_items,
    "maxItems": _kw_max_items,
    "uniqueItems": _kw_unique,
    "enum": _kw_enum,
    "const": _kw_const,
    "pattern": _kw_pattern,
    "minLength": _kw_min_length,
    "maxLength": _kw_max_length,
    "minimum": _kw_minimum,
    "maximum": _kw_maximum,
    "exclusiveMinimum": _kw_exclusive_minimum,
    "exclusiveMaximum": _kw_exclusive_maximum,
    "anyOf": _kw_any_of,
    "oneOf": _kw_one_of,
    "allOf": _kw_all_of,
    "not": _kw_not,
    "if": _kw_if,
}

SUPPORTED_KEYWORDS = frozenset(_KEYWORDS) | _ANNOTATIONS | {"then", "else"}
