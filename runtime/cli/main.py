"""Entry point of ``pyrun``: the lean parser for hot verbs, click for everything else."""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> int:
    from runtime.trace import mark

    mark("P", "main")
    args = sys.argv[1:] if argv is None else argv
    invocation = None
    if os.environ.get("PYRUN_LEAN", "1") != "0":
        from runtime.cli.lean import parse

        invocation = parse(args)
    if invocation is None:
        from runtime.cli.full import run_click

        return run_click(args)
    head_start = None
    if invocation.command in ("create", "run"):
        from runtime.lifecycle.spawn import HeadStart

        head_start = HeadStart()  # before the imports below: it runs in parallel with them
    from runtime.cli.edge import dispatch

    return dispatch(invocation, head_start)


def entry() -> None:
    sys.exit(main())


if __name__ == "__main__":
    entry()
