"""The lean parser (hot verbs) and click (everything) must read command lines identically.

The lean parser may decline a line (returns None, click then decides), but whatever it accepts
must parse to exactly what click gives; and the lines real callers send must stay on the lean
path.
"""

from __future__ import annotations

from typing import Any

import click
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from runtime.cli.full import build_cli
from runtime.cli.lean import parse
from runtime.cli.options import COMMANDS, GLOBAL_OPTIONS, HOT_COMMANDS, Invocation


def click_parse(argv: list[str]) -> tuple[Any, ...] | None:
    """What click makes of argv: the invocation's tuple, or None if it is a usage error."""
    captured: list[Invocation] = []
    cli = build_cli(captured.append)
    try:
        cli.main(args=list(argv), prog_name="pyrun", standalone_mode=False)
    except click.exceptions.Exit:
        return None
    except click.ClickException:
        return None
    if not captured:
        return None
    return captured[0].as_tuple()


CALLER_LINES = [
    # containerd's runc shim (go-runc)
    [
        "--root",
        "/run/containerd/runc/default",
        "--log",
        "/b/log.json",
        "--log-format",
        "json",
        "create",
        "--bundle",
        "/b",
        "--pid-file",
        "/b/init.pid",
        "c1",
    ],
    ["--root", "/r", "--log", "/b/log.json", "--log-format", "json", "start", "c1"],
    ["--root", "/r", "--log", "/b/log.json", "--log-format", "json", "kill", "c1", "9"],
    ["--root", "/r", "--log", "/b/log.json", "--log-format", "json", "kill", "--all", "c1", "15"],
    ["--root", "/r", "--log", "/b/log.json", "--log-format", "json", "delete", "c1"],
    ["--root", "/r", "delete", "--force", "c1"],
    [
        "--root",
        "/r",
        "--systemd-cgroup",
        "create",
        "--bundle",
        "/b",
        "--pid-file",
        "/p",
        "--console-socket",
        "/s.sock",
        "--no-pivot",
        "--no-new-keyring",
        "--preserve-fds",
        "2",
        "c",
    ],
    # conmon / podman
    [
        "--root=/run/pyrun",
        "--log-format=json",
        "--log=/l",
        "create",
        "--bundle",
        "/b",
        "--pid-file",
        "/p",
        "c",
    ],
    ["--root", "/r", "state", "c"],
    ["--root", "/r", "kill", "c", "KILL"],
    ["--root", "/r", "kill", "c", "SIGTERM"],
    # people
    ["run", "bundles/examples/hello"],
    ["run", "-d", "--bundle", "/b", "x"],
    ["run", "--detach", "-b", "/b", "x"],
    ["delete", "-f", "x"],
    ["kill", "-a", "x"],
    ["create", "-b", "/b", "x"],
    ["--debug", "run", "x"],
    ["delete", "x", "--force"],
    ["create", "x", "--bundle=/b"],
]


@pytest.mark.parametrize("argv", CALLER_LINES, ids=lambda a: " ".join(a))
def test_caller_lines_stay_on_the_lean_path_and_agree_with_click(argv: list[str]) -> None:
    lean = parse(argv)
    assert lean is not None, "a line real callers send fell back to click"
    assert lean.as_tuple() == click_parse(argv)


REJECTED_BY_BOTH = [
    [],
    ["create"],
    ["kill"],
    ["start", "a", "b"],
    ["create", "--bundle"],
    ["create", "--preserve-fds", "x", "c"],
    ["--log-format", "xml", "state", "c"],
    ["delete", "--force=yes", "c"],
    ["create", "--nope", "c"],
    ["--nope", "state", "c"],
    ["bogus"],
]


@pytest.mark.parametrize("argv", REJECTED_BY_BOTH, ids=lambda a: " ".join(a) or "(empty)")
def test_bad_lines_are_rejected_by_both(argv: list[str]) -> None:
    assert parse(argv) is None
    assert click_parse(argv) is None


def _option_tokens(opts: list[Any]) -> st.SearchStrategy[list[str]]:
    def one(opt: Any) -> st.SearchStrategy[list[str]]:
        name = st.sampled_from(opt.names)
        if not opt.takes_value:
            return st.builds(lambda n: [n], name) | st.just([opt.names[0] + "=x"])
        if opt.kind == "int":
            value = st.sampled_from(["0", "3", "-1", "+2", " 4", "x", "1_0", ""])
        elif opt.kind == "choice":
            value = st.sampled_from([*opt.choices, "bad"])
        else:
            value = st.sampled_from(["/a", "b c", "-x", "", "--", "d=e"])
        separate = st.builds(lambda n, v: [n, v], name, value)
        joined = st.builds(lambda v: [opt.names[0] + "=" + v], value)
        attached = st.builds(lambda v: [opt.names[-1] + v], value)
        return separate | joined | attached

    return st.one_of([one(opt) for opt in opts])


noise = st.sampled_from(
    ["c1", "9", "KILL", "-", "--", "-ab", "-h", "--help", "/tmp/x", "extra", "-9", "--unknown"]
)


@settings(max_examples=1500, deadline=None)
@given(data=st.data())
def test_whatever_lean_accepts_click_parses_the_same(data: st.DataObject) -> None:
    command = data.draw(st.sampled_from([*sorted(HOT_COMMANDS), "list", "spec"]))
    cmd = COMMANDS[command]
    argv: list[str] = []
    for _ in range(data.draw(st.integers(0, 3))):
        argv += data.draw(_option_tokens(GLOBAL_OPTIONS))
    argv.append(command)
    pieces = data.draw(
        st.lists(
            (_option_tokens(cmd.options) if cmd.options else st.just([]))
            | st.builds(lambda t: [t], noise),
            max_size=5,
        )
    )
    for piece in pieces:
        argv += piece
    lean = parse(argv)
    if lean is not None:
        assert lean.as_tuple() == click_parse(argv), argv


def test_global_option_table_matches_click_help() -> None:
    cli = build_cli(lambda inv: None)
    names = {n for p in cli.params for n in getattr(p, "opts", [])}
    for opt in GLOBAL_OPTIONS:
        assert set(opt.names) <= names
