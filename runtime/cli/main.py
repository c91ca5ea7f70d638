"""Entry point of ``pyrun``: the lean parser for hot verbs, click for everything else."""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> int:
    from runtime.trace import mark

    mark("P", "main")
    args = sys.argv[1:] if argv is None else argv
    head_start = None
    if "create" in args or "run" in args:
        # First of all, before parsing: the bootstrap child (it imports the container side
        # in parallel with everything below) and the cgroup migration warm-up (it absorbs a
        # kernel wait, cgroups/warmup.py). A wrong guess (`pyrun state run`) costs one fork.
        from runtime.cgroups.warmup import Warmup

        warmup = Warmup.start()  # the kernel's grace period: the sooner the better
        from runtime.lifecycle.spawn import HeadStart

        head_start = HeadStart(warmup)
    invocation = None
    if os.environ.get("PYRUN_LEAN", "1") != "0":
        from runtime.cli.lean import parse

        invocation = parse(args)
    if head_start is not None and (
        invocation is None or invocation.command not in ("create", "run")
    ):
        head_start.finish()
        head_start = None
    if invocation is None:
        if args[:1] == ["image"]:
            # `image unpack` (overlay) and `image pull` without click where they can.
            from imagetools.quick import main as image_fast

            code = image_fast(args[1:])
            if code is not None:
                return code
        from runtime.cli.full import run_click

        return run_click(args)
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
