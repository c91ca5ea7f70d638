"""Where the image store lives by default (click-free: the quick paths and the CLI share it)."""

from __future__ import annotations

import os

DEFAULT_ROOT = "/var/lib/pyrun/images"


def default_root() -> str:
    """/var/lib/pyrun/images for root; $XDG_DATA_HOME/pyrun/images for users."""
    if os.geteuid() == 0:
        return DEFAULT_ROOT
    data = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return f"{data}/pyrun/images"
