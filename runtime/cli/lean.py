"""A click-free parser for the hot verbs (create, start, state, kill, delete, run).

``import click`` costs ~45 ms here, as much as a whole ``runc run``. This parser accepts the
command lines callers actually send (containerd, podman, people), with click's semantics for
them; anything else (help, an unknown or malformed flag, a missing argument, bundled short
flags) returns None and the caller hands the same argv to click, which then decides, so the
two paths can never disagree on what is accepted (tests/unit/test_cli_parsers.py).
"""

from __future__ import annotations

from runtime.cli.options import (
    COMMANDS,
    GLOBAL_OPTIONS,
    HOT_COMMANDS,
    Arg,
    Invocation,
    Opt,
    defaults,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator


def _index(opts: list[Opt]) -> dict[str, Opt]:
    return {name: opt for opt in opts for name in opt.names}


_GLOBAL_INDEX = _index(GLOBAL_OPTIONS)


class _Reject(Exception):
    """Not a command line this parser is sure about; click will decide."""


def parse(argv: list[str]) -> Invocation | None:
    try:
        return _parse(argv)
    except _Reject:
        return None


def _parse(argv: list[str]) -> Invocation:
    globals_ = defaults(GLOBAL_OPTIONS)
    position = 0
    # Global flags come before the verb (click groups do not intersperse).
    while position < len(argv) and argv[position].startswith("-"):
        position = _take_option(argv, position, _GLOBAL_INDEX, globals_)
    if position >= len(argv) or argv[position] not in HOT_COMMANDS:
        raise _Reject
    command = COMMANDS[argv[position]]
    options = defaults(command.options)
    index = _index(command.options)
    positionals: list[str] = []
    rest = iter(range(position + 1, len(argv)))
    only_args = False
    for i in _indices(rest):
        token = argv[i]
        if only_args or token == "-" or not token.startswith("-"):
            positionals.append(token)
            continue
        if token == "--":
            only_args = True
            continue
        after = _take_option(argv, i, index, options)
        _skip(rest, after - i - 1)
    return Invocation(globals_, command.name, options, _bind(command.args, positionals))


def _indices(rest: Iterator[int]) -> Iterator[int]:
    yield from rest


def _skip(rest: Iterator[int], count: int) -> None:
    for _ in range(count):
        next(rest, None)


def _take_option(
    argv: list[str], position: int, index: dict[str, Opt], into: dict[str, object]
) -> int:
    """Consume the option at ``position``; returns the position after it."""
    token = argv[position]
    name, equals, attached = token.partition("=")
    if not token.startswith("--"):
        if len(token) != 2:
            raise _Reject  # -abc or -bVALUE: leave click's rules to click
        name, equals, attached = token, "", ""
    opt = index.get(name)
    if opt is None:
        raise _Reject
    if not opt.takes_value:
        if equals:
            raise _Reject
        into[opt.dest] = True
        return position + 1
    if equals:
        value, after = attached, position + 1
    else:
        if position + 1 >= len(argv):
            raise _Reject
        value, after = argv[position + 1], position + 2
    into[opt.dest] = _convert(opt, value)
    return after


def _convert(opt: Opt, value: str) -> object:
    if opt.kind == "int":
        text = value.strip()
        digits = text[1:] if text[:1] in "+-" else text
        if not digits.isdigit() or not digits.isascii():
            raise _Reject
        return int(text)
    if opt.kind == "choice" and value not in opt.choices:
        raise _Reject
    return value


def _bind(args: list[Arg], positionals: list[str]) -> dict[str, object]:
    bound: dict[str, object] = {}
    remaining = list(positionals)
    for arg in args:
        if arg.variadic:
            bound[arg.dest] = tuple(remaining)
            remaining = []
        elif remaining:
            bound[arg.dest] = remaining.pop(0)
        elif arg.required:
            raise _Reject
        else:
            bound[arg.dest] = None
    if remaining:
        raise _Reject
    return bound
