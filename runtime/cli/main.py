"""Entry point of ``pyrun``: the lean parser for hot verbs, click for everything else."""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> int:
    from runtime.trace import mark

    mark("P", "main")
    args = sys.argv[1:] if argv is None else argv
    warmup = None
    if "create" in args or "run" in args:
        # First of all, before parsing: the cgroup migration warm-up absorbs a kernel wait
        # that the earlier it starts, the less create waits for (cgroups/warmup.py). A wrong
        # guess (`pyrun state run`) costs one no-op fork.
        from runtime.cgroups.warmup import Warmup

        warmup = Warmup.start()
    invocation = None
    if os.environ.get("PYRUN_LEAN", "1") != "0":
        from runtime.cli.lean import parse

        invocation = parse(args)
    if warmup is not None and (invocation is None or invocation.command not in ("create", "run")):
        warmup.wait()
        warmup = None
    if invocation is None:
        from runtime.cli.full import run_click

        return run_click(args)
    head_start = None
    if invocation.command in ("create", "run"):
        from runtime.lifecycle.spawn import HeadStart

        # Before the imports below: the bootstrap child imports in parallel with them.
        head_start = HeadStart(warmup)
    from runtime.cli.edge import dispatch

    return dispatch(invocation, head_start)


def entry() -> None:
    """The console script. Leaves with os._exit once the output is flushed: interpreter
    finalisation (module teardown, GC) costs ~3 ms here and nothing of pyrun needs it (every
    file is closed by then, no atexit handler is registered)."""
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 1  # e.g. stdout closed by the reader: the output was lost
    os._exit(code)


if __name__ == "__main__":
    entry()
