"""Timestamps in the forms callers parse, without importing datetime."""

from __future__ import annotations

import time


def rfc3339_nano(ns: int | None = None) -> str:
    """Go's time.RFC3339Nano in UTC: fraction without trailing zeros, e.g. ...T23:03:23.5Z."""
    ns = time.time_ns() if ns is None else ns
    seconds, fraction = divmod(ns, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    if fraction:
        text += "." + f"{fraction:09d}".rstrip("0")
    return text + "Z"


def rfc3339(ns: int | None = None) -> str:
    """Second precision, for log lines: 2026-11-27T23:03:23Z."""
    ns = time.time_ns() if ns is None else ns
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns // 1_000_000_000))
