"""Bytes -> a JSON-shaped document, remembering YAML line numbers for the error report.

JSON goes through ``runtime.jsonfast`` (no ``json``/``re`` import on the hot path). YAML is for
people writing bundles by hand: it is composed into nodes first, so that every JSON path can be
mapped back to the line it came from, and duplicate keys (which PyYAML would silently collapse)
are reported.
"""

from __future__ import annotations

from runtime.errors import SpecError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    import yaml

    Path = tuple[str | int, ...]  # a JSON path, e.g. ("linux", "namespaces", 2, "type")


class Document:
    """A decoded config plus where each value came from (YAML only)."""

    def __init__(self, data: Any, source: str, lines: dict[Path, int] | None = None) -> None:
        self.data = data
        self.source = source
        self.lines = lines or {}

    def line_of(self, path: Path) -> int | None:
        """The 1-based line of ``path``, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            line = self.lines.get(tuple(path[:end]))
            if line is not None:
                return line
        return None


def is_yaml(source: str) -> bool:
    return source.endswith((".yaml", ".yml"))


def decode(data: bytes, source: str) -> Document:
    """Decode ``data`` (JSON, or YAML when ``source`` ends in .yaml/.yml)."""
    if is_yaml(source):
        return _decode_yaml(data, source)
    from runtime import jsonfast

    try:
        return Document(jsonfast.loads(data), source)
    except UnicodeDecodeError as err:
        problem = f"(root): not UTF-8 text ({err.reason} at byte {err.start})"
        raise SpecError(source, [problem]) from None
    except ValueError as err:
        lineno = getattr(err, "lineno", None)
        where = f" (line {lineno}, column {getattr(err, 'colno', '?')})" if lineno else ""
        message = getattr(err, "msg", str(err))
        raise SpecError(source, [f"(root){where}: invalid JSON: {message}"]) from None


# A config has hundreds of values, a big seccomp profile a few thousand; aliases could make a
# few lines expand to billions ("billion laughs"), so the expanded tree is bounded.
MAX_YAML_NODES = 100_000


def _decode_yaml(data: bytes, source: str) -> Document:
    import yaml

    loader_class = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        node = yaml.compose(data, Loader=loader_class)
    except yaml.reader.ReaderError as err:
        reason = err.reason if isinstance(err.reason, str) else "invalid text"
        problem = f"(root): not UTF-8 text ({reason} at byte {err.position})"
        raise SpecError(source, [problem]) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(err, "problem", None) or str(err)
        raise SpecError(source, [f"(root){where}: invalid YAML: {problem}"]) from None
    if node is None:
        return Document(None, source)
    lines: dict[Path, int] = {}
    duplicates: list[str] = []
    try:
        _index(node, (), lines, duplicates, [0], set())
    except SpecError as err:
        raise SpecError(source, err.problems) from None
    if duplicates:
        raise SpecError(source, duplicates)
    constructor = loader_class("")
    try:
        value = constructor.construct_document(node)
    except yaml.YAMLError as err:
        raise SpecError(source, [f"(root): invalid YAML: {err}"]) from None
    return Document(_jsonable(value), source, lines)


def _index(
    node: yaml.Node,
    path: Path,
    lines: dict[Path, int],
    duplicates: list[str],
    count: list[int],
    ancestors: set[int],
) -> None:
    """Map every JSON path to its line; refuse alias cycles and oversized expansions."""
    import yaml

    count[0] += 1
    if count[0] > MAX_YAML_NODES:
        problem = f"(root): more than {MAX_YAML_NODES} values once aliases are expanded"
        raise SpecError("", [problem])
    if id(node) in ancestors:
        line = node.start_mark.line + 1
        raise SpecError("", [f"{format_path(path)} (line {line}): an alias refers to itself"])
    lines[path] = node.start_mark.line + 1
    if not isinstance(node, yaml.MappingNode | yaml.SequenceNode):
        return
    ancestors.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in seen:
                where = format_path((*path, key))
                duplicates.append(
                    f"{where} (line {line}): duplicate key, first at line {seen[key]}"
                )
                continue
            seen[key] = line
            _index(value_node, (*path, key), lines, duplicates, count, ancestors)
            lines[(*path, key)] = line
    else:
        for index, item in enumerate(node.value):
            _index(item, (*path, index), lines, duplicates, count, ancestors)
    ancestors.discard(id(node))


def _jsonable(value: Any) -> Any:
    """YAML can produce dates, sets and non-string keys; the spec is JSON, so normalise."""
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, str) else k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def format_path(path: Path) -> str:
    """("linux", "namespaces", 2, "type") -> "linux.namespaces[2].type"; () -> "(root)"."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not part or not part.replace("_", "a").replace("-", "a").isalnum():
            out += f'["{part}"]'  # map keys such as sysctl's "net.ipv4.ip_forward"
        else:
            out += f".{part}" if out else str(part)
    return out or "(root)"
