"""The spec layer: bytes -> a validated, defaulted config, or every problem at once.

Pure (rule 1): no os, ctypes, subprocess or socket. Reading the bundle is the caller's job; this
package only reads its own schema files. Order (rule 2): decode -> schema -> semantic checks ->
defaults. The schema check is ``fastcheck`` on the hot path; only an invalid document (or
``report=True``) pays for jsonschema, which then writes the full report.
"""

from __future__ import annotations

from runtime.errors import SpecError
from runtime.spec.document import Document, decode

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from runtime.spec.types import Config

SCHEMA_DIR = __file__.rpartition("/")[0] + "/schemas"
_schemas: dict[str, dict[str, Any]] = {}


def load_schema(name: str) -> dict[str, Any]:
    """One of schema/*.schema.json (config, state, features), parsed once per process."""
    schema = _schemas.get(name)
    if schema is None:
        from runtime import jsonfast

        with open(f"{SCHEMA_DIR}/{name}.schema.json", "rb") as handle:
            schema = _schemas[name] = jsonfast.loads(handle.read())
    return schema


def problems_in(document: Document, *, full_report: bool = False) -> list[str]:
    """Every schema and semantic problem of a decoded config; [] when it is valid."""
    from runtime.spec.fastcheck import FastValidator
    from runtime.spec.semantic import semantic_problems

    schema = load_schema("config")
    found = semantic_problems(document.data)
    if full_report or not FastValidator(schema).is_valid(document.data):
        from runtime.spec.report import schema_problems

        found = schema_problems(document, schema) + found
    if not found:
        return []
    from runtime.spec.report import render_all

    return render_all(document, found)


def parse_config(data: bytes, source: str) -> Config:
    """Decode, validate and default a config; SpecError lists every problem."""
    from runtime.trace import mark

    mark("P", "config read")
    document = decode(data, source)
    mark("P", "config decoded")
    problems = problems_in(document)
    if problems:
        raise SpecError(source, problems)
    from runtime.spec.defaults import apply_defaults

    return apply_defaults(document.data)
