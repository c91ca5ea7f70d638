"""Byte ranges: the ``Range`` of a blob GET (RFC 9110 §14) and the ``Content-Range`` of an
upload chunk (distribution-spec: ``<start>-<end>``, inclusive on both ends).
"""

from __future__ import annotations

from typing import NamedTuple


class ByteRange(NamedTuple):
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1


class Unsatisfiable(Exception):
    """A well-formed Range that selects nothing of the blob: answer 416."""


def parse_range(header: str | None, size: int) -> ByteRange | None:
    """The one range to send, or None for the whole blob.

    Malformed headers, other units and multi-range requests are ignored (RFC 9110 lets a
    server answer those with 200 and the full body); a single range that starts past the end
    raises Unsatisfiable.
    """
    if not header:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    first, last = first.strip(), last.strip()
    if not _digits(first) and not (first == "" and _digits(last)):
        return None
    if last and not _digits(last):
        return None
    if first == "":  # suffix: the last N bytes
        count = int(last)
        if count == 0 or size == 0:
            raise Unsatisfiable
        return ByteRange(max(0, size - count), size - 1)
    start = int(first)
    if last and int(last) < start:
        return None  # invalid: ignored
    if start >= size:
        raise Unsatisfiable
    end = int(last) if last else size - 1
    return ByteRange(start, min(end, size - 1))


def parse_content_range(header: str) -> ByteRange | None:
    """An upload chunk's range; None when malformed.

    The spec's form is ``<start>-<end>``; the RFC 9110 form ``bytes <start>-<end>/<total|*>``
    some clients send is accepted too.
    """
    text = header.strip()
    if text.lower().startswith("bytes"):
        text = text[5:].lstrip(" =")
        text = text.partition("/")[0]
    first, dash, last = text.partition("-")
    if not dash or not _digits(first) or not _digits(last):
        return None
    start, end = int(first), int(last)
    if end < start:
        return None
    return ByteRange(start, end)


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 19
