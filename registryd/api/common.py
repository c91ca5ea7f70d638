"""The request and response every route handler sees; no socket in sight.

A handler takes a ``Request`` (method, path, query, headers, a streaming body) and returns a
``Response`` (status, headers, bytes or an open file range that the server sends with
sendfile) or raises ``ApiError``. The server (registryd.server) does the HTTP.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from registryd.body import BodyReader


class Headers(Mapping[str, str]):
    """Request headers, case-insensitive; repeated headers joined with ", " (RFC 9110 §5.3)."""

    def __init__(self, items: list[tuple[str, str]] | None = None) -> None:
        self._items: dict[str, str] = {}
        for key, value in items or []:
            lower = key.lower()
            previous = self._items.get(lower)
            self._items[lower] = value if previous is None else f"{previous}, {value}"

    def __getitem__(self, key: str) -> str:
        return self._items[key.lower()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


@dataclass
class FileRange:
    """Part of an open file to send; the server closes ``fd`` when done."""

    fd: int
    offset: int
    count: int


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Headers
    body: BodyReader
    remote: str = "-"
    account: str | None = None

    def arg(self, key: str) -> str | None:
        values = self.query.get(key)
        return values[0] if values else None


@dataclass
class Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    file: FileRange | None = None

    @property
    def length(self) -> int:
        return self.file.count if self.file is not None else len(self.body)


def json_response(
    status: int, document: Any, headers: dict[str, str] | None = None, content_type: str = ""
) -> Response:
    body = json.dumps(document).encode()
    merged = {"Content-Type": content_type or "application/json"}
    merged.update(headers or {})
    return Response(status, merged, body)


def empty(status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(status, dict(headers or {}))
