"""``pyrun image ...`` without click, for the commands whose speed is a target (issue 4):
``unpack`` of an already-unpacked image with the overlay snapshotter, and ``pull``.

``import click`` and the full CLI cost ~45 ms of CPU before any work. runtime/cli/main.py
hands every ``pyrun image ARGS`` here first. Only the plain shapes are taken::

    image [--root R] unpack [--snapshotter overlay] REF BUNDLE
    image [--root R] pull [--platform P] [--tls-verify[=]BOOL] [-q|--quiet] REF

Anything else (help, other commands, unknown options) returns None before any side effect
and the caller runs click, which then also says what is wrong.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable


def split(args: list[str]) -> tuple[str | None, str, list[str]] | None:
    """``[--root R] VERB REST...`` -> (R, VERB, REST), or None for any other shape."""
    root: str | None = None
    words = list(args)
    if words[:1] == ["--root"] and len(words) > 2:
        root, words = words[1], words[2:]
    elif words[:1] and words[0].startswith("--root="):
        root, words = words[0].partition("=")[2], words[1:]
    if not words or root == "" or words[0].startswith("-"):
        return None
    return root, words[0], words[1:]


def main(args: list[str]) -> int | None:
    """The exit code, or None: not handled here, nothing done."""
    routed = split(args)
    if routed is None:
        return None
    root, verb, rest = routed
    handler: Callable[[str | None, list[str]], int | None]
    if verb == "unpack":
        from imagetools.snapshots.quick import main as handler
    elif verb == "pull":
        from imagetools.registry.quick import main as handler
    else:
        return None
    try:
        return handler(root, rest)
    except KeyboardInterrupt:  # Ctrl-C: what was fetched stays in ingest/ for the next pull
        from runtime.cli.edge import _report

        _report("interrupted")
        return 130
