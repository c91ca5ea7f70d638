"""JSON for the hot path, straight on CPython's C scanner and encoder (``_json``).

``import json`` pulls in ``re`` and ``enum`` (about 11 ms on this class of machine, a quarter of a
whole ``pyrun run``); the work itself is done by ``_json`` either way. Output and errors match the
``json`` module: a syntax error raises ``json.JSONDecodeError`` (imported only then).
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False  # typing costs ~10 ms to import; mypy still reads the block below
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

_WHITESPACE = " \t\n\r"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class _DecoderContext:
    """The attributes ``_json.make_scanner`` reads from a ``json.JSONDecoder``."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_reject_constant)
    memo: dict[str, str] = {}


_scan_once: Callable[[str, int], tuple[Any, int]] = _json.make_scanner(
    _DecoderContext()  # type: ignore[arg-type]  # duck-types json.JSONDecoder
)


def _decode_error(message: str, doc: str, pos: int) -> Exception:
    from json import JSONDecodeError

    return JSONDecodeError(message, doc, pos)


def loads(data: bytes | str) -> Any:
    """Parse one JSON document; raises ``json.JSONDecodeError`` like ``json.loads``."""
    text = data.decode("utf-8-sig") if isinstance(data, bytes | bytearray) else data
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _scan_once(text, start)
    except StopIteration as stop:
        raise _decode_error("Expecting value", text, stop.value) from None
    except SystemError:
        # The C scanner raises its errors as json.decoder.JSONDecodeError, but only finds that
        # class if json.decoder is already imported; otherwise it returns an error without an
        # exception. Import it (only now, on a syntax error) and scan again for the real one.
        import json.decoder  # noqa: F401

        value, end = _scan_once(text, start)
    finally:
        _DecoderContext.memo.clear()
    rest = text[end:]
    if rest.strip(_WHITESPACE):
        raise _decode_error("Extra data", text, end + len(rest) - len(rest.lstrip(_WHITESPACE)))
    return value


_encode_compact = _json.make_encoder(
    None,
    None,  # type: ignore[arg-type]  # no default(): unknown types are an error
    _json.encode_basestring_ascii,
    None,
    ":",
    ",",
    False,
    False,
    False,
)


def dumps(value: Any, indent: int | None = None) -> str:
    """Serialize like ``json.dumps`` (ASCII, no NaN); ``indent`` gives the pretty form."""
    if indent is None:
        return "".join(_encode_compact(value, 0))
    parts: list[str] = []
    _pretty(value, parts, " " * indent, "\n")
    return "".join(parts)


def _key(key: Any) -> str:
    """Object keys as json writes them: true/false/null, numbers by repr, strings as-is."""
    if isinstance(key, str):
        return key
    if key is True:
        return "true"
    if key is False:
        return "false"
    if key is None:
        return "null"
    return "".join(_encode_compact(key, 0))


def _pretty(value: Any, out: list[str], step: str, newline: str) -> None:
    if isinstance(value, dict) and value:
        inner = newline + step
        out.append("{")
        first = True
        for key, item in value.items():
            out.append(inner if first else "," + inner)
            first = False
            out.append(_json.encode_basestring_ascii(_key(key)) + ": ")
            _pretty(item, out, step, inner)
        out.append(newline + "}")
    elif isinstance(value, list | tuple) and value:
        inner = newline + step
        out.append("[")
        for index, item in enumerate(value):
            out.append(inner if index == 0 else "," + inner)
            _pretty(item, out, step, inner)
        out.append(newline + "]")
    else:
        out.append("".join(_encode_compact(value, 0)))
