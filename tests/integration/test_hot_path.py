"""The hot verbs stay lean (issue: no jsonschema, yaml, click or other heavy import when the
config is JSON and valid), and the lean and click command-line paths behave the same."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.conftest import PYRUN, VENV_BIN, Bundles, Runtime

# Modules the hot path must never import (with what each costs on this class of machine).
FORBIDDEN = {
    "jsonschema",  # ~120 ms
    "yaml",  # ~25 ms
    "click",  # ~45 ms
    "cgroupspy",  # ~4 ms, only for resources beyond devices
    "typing",  # ~10 ms
    "re",  # ~9 ms with enum
    "enum",
    "json",  # the package; _json (the C scanner) is what we use
    "dataclasses",
    "pathlib",
    "subprocess",
    "contextlib",
    "logging",
    "threading",
    "socket",  # the package; _socket is enough
    "signal",  # the package; _signal is enough
    "datetime",
    "importlib.resources",
}

IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)\s*$")


def imported(stderr: str) -> set[str]:
    return {m.group(1) for line in stderr.splitlines() if (m := IMPORT_LINE.match(line))}


def lean(pyrun: Runtime, *args: str) -> tuple[int, set[str], str, str]:
    python = str(VENV_BIN / "python")
    result = pyrun.shim.run([python, "-IS", "-X", "importtime", PYRUN, "--root", pyrun.root, *args])
    return result.returncode, imported(result.stderr), result.stdout, result.stderr


def test_run_create_start_state_kill_delete_import_nothing_heavy(
    pyrun: Runtime, bundles: Bundles
) -> None:
    bundle = bundles.make(["sleep", "60"])
    run_bundle = bundles.make(["true"])
    cid = pyrun.id()
    seen: dict[str, set[str]] = {}
    steps = [
        ("run", ["run", "--bundle", str(run_bundle), pyrun.id("r")]),
        ("create", ["create", "--bundle", str(bundle), cid]),
        ("start", ["start", cid]),
        ("state", ["state", cid]),
        ("kill", ["kill", cid, "KILL"]),
        ("delete", ["delete", "--force", cid]),
    ]
    for name, args in steps:
        code, modules, _, stderr = lean(pyrun, *args)
        assert code == 0, (name, stderr[-2000:])
        assert modules, "python -X importtime printed nothing: the test would prove nothing"
        seen[name] = modules
    for name, modules in seen.items():
        heavy = sorted(m for m in modules if m.split(".")[0] in FORBIDDEN or m in FORBIDDEN)
        assert not heavy, f"{name} imported {heavy}"
    # The run's children imported the container side (ctypes) and that was counted too.
    assert "ctypes" in seen["run"]


def test_invalid_config_still_gets_the_full_report(pyrun: Runtime, bundles: Bundles) -> None:
    bundle = bundles.make(["true"])
    config = json.loads((bundle / "config.json").read_text())
    config["linux"]["namespaces"].append({"type": "pids"})
    (bundle / "config.json").write_text(json.dumps(config))
    code, modules, _, stderr = lean(pyrun, "create", "--bundle", str(bundle), pyrun.id())
    assert code == 1
    assert "jsonschema" in modules  # the reference validator writes the report
    assert "linux.namespaces[5].type: 'pids' is not one of" in stderr


def _normalise_state(text: str) -> dict[str, object]:
    state = json.loads(text)
    for key in ("pid", "created", "id", "bundle"):
        state.pop(key, None)
    return state


@pytest.mark.parametrize("lean_path", ["1", "0"])
def test_lean_and_click_paths_behave_the_same(
    pyrun: Runtime, bundles: Bundles, lean_path: str, tmp_path: Path
) -> None:
    env = dict(os.environ, PYRUN_LEAN=lean_path)
    bundle = bundles.make(["sleep", "60"])
    cid = pyrun.id()
    pid_file = tmp_path / "pid"
    outputs = []
    for args in (
        ["create", "--bundle", str(bundle), "--pid-file", str(pid_file), cid],
        ["state", cid],
        ["start", cid],
        ["state", cid],
        ["start", cid],
        ["kill", cid, "SIGKILL"],
        ["kill", cid],
        ["delete", cid],
        ["state", cid],
        ["delete", "--force", cid],
    ):
        result = pyrun(*args, env=env)
        stdout = result.stdout
        if args[0] == "state" and result.returncode == 0:
            stdout = json.dumps(_normalise_state(stdout), sort_keys=True)
        outputs.append((args[0], result.returncode, stdout, result.stderr.strip()))
    expected_codes = [0, 0, 0, 0, 1, 0, 1, 0, 1, 0]
    assert [code for _, code, _, _ in outputs] == expected_codes, outputs
    assert outputs[4][3] == "pyrun: cannot start an already running container"
    assert outputs[6][3] == "pyrun: container not running"
    assert outputs[8][3] == f"pyrun: container {cid} does not exist"
    # Identical between the two paths: remember the first and compare with the second.
    _RESULTS[lean_path] = [(a, c, o, e.replace(cid, "ID")) for a, c, o, e in outputs]
    if len(_RESULTS) == 2:
        assert _RESULTS["1"] == _RESULTS["0"]


_RESULTS: dict[str, list[tuple[str, int, str, str]]] = {}
