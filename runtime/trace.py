"""Phase timestamps for performance work: PYRUN_TRACE=1 prints them to stderr.

Free when off (one dict lookup at import). Each line: wall-clock milliseconds (mod 100 s), the
process (P parent, C1 bootstrap, C2 init) and the phase, so the three processes' lines can be
merged into one timeline.
"""

from __future__ import annotations

import os
import time

ENABLED = bool(os.environ.get("PYRUN_TRACE"))


def mark(role: str, phase: str) -> None:
    if ENABLED:
        stamp = (time.time() % 100) * 1000
        os.write(2, f"trace {stamp:9.2f} {role:2} {phase}\n".encode())
