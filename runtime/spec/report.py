"""The full error report, written by the reference validator (jsonschema).

Only reached when the fast check says "invalid" (or for ``pyrun validate``): it lists EVERY
violation, each as ``<json path>[ (line N)]: <what is wrong>``.
"""

from __future__ import annotations

from runtime.spec.document import Document, format_path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from jsonschema.exceptions import ValidationError

    from runtime.spec.document import Path


def schema_problems(document: Document, schema: dict[str, Any]) -> list[tuple[Path, str]]:
    """Every schema violation as (json path, message), in document order."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(schema)
    problems: list[tuple[Path, str]] = []
    for error in validator.iter_errors(document.data):
        problems.extend(_describe(error))
    problems.sort(key=lambda item: _sort_key(item[0]))
    return _unique(problems)


def render_all(document: Document, problems: list[tuple[Path, str]]) -> list[str]:
    """Rendered problems; for YAML sorted by line, so the report reads top to bottom."""
    if document.lines:
        problems = sorted(problems, key=lambda item: document.line_of(item[0]) or 0)
    return [_render(document, path, message) for path, message in _unique(problems)]


def _describe(error: ValidationError) -> list[tuple[Path, str]]:
    path: Path = tuple(error.absolute_path)
    validator = error.validator
    if validator == "required":
        # "'args' is a required property" at process -> "process.args: is required"
        missing = _quoted_name(error.message)
        if missing is not None:
            return [((*path, missing), "is required")]
    if validator in ("anyOf", "oneOf") and error.context:
        # Report the alternative that got furthest, not "is not valid under any of ...".
        from jsonschema.exceptions import best_match

        best = best_match(error.context)
        if best is not None:
            return _describe(best)
    if validator == "additionalProperties" and error.validator_value is False:
        return [(path, error.message)]
    return [(path, error.message)]


def _quoted_name(message: str) -> str | None:
    if message.startswith("'") and "' is a required property" in message:
        return message[1 : message.index("' is a required property")]
    return None


def _sort_key(path: Path) -> tuple[tuple[int, str], ...]:
    return tuple((0, f"{p:09d}") if isinstance(p, int) else (1, p) for p in path)


def _unique(items: list[tuple[Path, str]]) -> list[tuple[Path, str]]:
    seen: set[tuple[Path, str]] = set()
    out = []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def _render(document: Document, path: Path, message: str) -> str:
    line = document.line_of(path)
    where = f" (line {line})" if line is not None else ""
    return f"{format_path(path)}{where}: {message}"
