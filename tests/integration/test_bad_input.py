"""Bad input through the CLI: every problem reported at once, with its JSON path (and YAML
line), before anything is created; afterwards no state dir, cgroup, process or mount is left.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import Bundles, Runtime, base_config
from tests.integration.test_lifecycle import (
    SLEEPER,
    alive,
    cgroup_dirs,
    processes_in_cgroup,
    refused,
)


def assert_nothing_created(rt: Runtime, container_id: str, *markers: Path) -> None:
    """No state dir, no cgroup dir, no process in the container's cgroup, no mount."""
    assert not os.path.exists(f"{rt.root}/{container_id}")
    assert cgroup_dirs(container_id) == []
    assert processes_in_cgroup(f"/{container_id}") == []
    mountinfo = Path("/proc/self/mountinfo").read_text()
    for marker in markers:
        assert str(marker) not in mountinfo, marker
    listed = rt.ok("list", "--format", "json").stdout.strip()
    assert listed == "null" or container_id not in [s["id"] for s in json.loads(listed)]


# -- an invalid config: every problem, with its path ----------------------------------------

NS_TYPES = "['pid', 'network', 'mount', 'ipc', 'uts', 'user', 'cgroup', 'time']"


def invalid_config(tmp_path: Path) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """A config with five problems, and (JSON path, words) of each."""
    config = base_config(["sh"])
    config["root"]["path"] = str(tmp_path / "no-such-rootfs")
    namespaces = config["linux"]["namespaces"]
    namespaces.append({"type": "bogus"})
    del config["process"]["args"]
    config["process"]["cwd"] = "relative/dir"
    bounding = config["process"]["capabilities"]["bounding"]
    bounding.append("CAP_BOGUS")
    expected = [
        (f"linux.namespaces[{len(namespaces) - 1}].type", "'bogus'"),
        ("process.args", "required"),
        ("process.cwd", "'relative/dir'"),
        (f"process.capabilities.bounding[{len(bounding) - 1}]", "CAP_BOGUS"),
        ("root.path", "no-such-rootfs"),
    ]
    return config, expected


def write_config(bundle: Path, config: dict[str, Any], fmt: str) -> Path:
    bundle.mkdir(exist_ok=True)
    if fmt == "yaml":
        path = bundle / "config.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
    else:
        path = bundle / "config.json"
        path.write_text(json.dumps(config, indent=2))
    return path


def yaml_line(text: str, pattern: str) -> int:
    """The 1-based line of the first line matching ``pattern``."""
    for number, line in enumerate(text.splitlines(), 1):
        if re.search(pattern, line):
            return number
    raise AssertionError(f"{pattern!r} not in the YAML")


def problem_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.startswith("  ")]


@pytest.mark.parametrize("fmt", ["json", "yaml"])
@pytest.mark.parametrize("verb", ["create", "run"])
def test_invalid_config_lists_every_problem_and_creates_nothing(
    pyrun: Runtime, tmp_path: Path, fmt: str, verb: str
) -> None:
    container_id = pyrun.id()
    config, expected = invalid_config(tmp_path)
    bundle = tmp_path / "bundle"
    path = write_config(bundle, config, fmt)
    result = pyrun(verb, "--bundle", str(bundle), container_id)
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    assert f"{path}: 5 problems:" in result.stderr
    problems = problem_lines(result.stderr)
    assert len(problems) == 5, result.stderr
    for json_path, words in expected:
        matching = [
            p for p in problems if p.startswith(json_path + ":") or p.startswith(json_path + " (")
        ]
        assert len(matching) == 1, (json_path, problems)
        assert words in matching[0], (words, matching[0])
    namespace_problem = next(p for p in problems if p.startswith("linux.namespaces"))
    assert NS_TYPES in namespace_problem
    if fmt == "yaml":
        text = path.read_text()
        lines = {
            "process.args": yaml_line(text, r"^process:"),
            "process.cwd": yaml_line(text, r"^\s+cwd: relative/dir"),
            "process.capabilities.bounding": yaml_line(text, r"- CAP_BOGUS"),
            "linux.namespaces": yaml_line(text, r"type: bogus"),
        }
        for prefix, line in lines.items():
            problem = next(p for p in problems if p.startswith(prefix))
            assert f"(line {line})" in problem, (problem, line)
    assert_nothing_created(pyrun, container_id, bundle)


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_validate_reports_the_same_problems(pyrun: Runtime, tmp_path: Path, fmt: str) -> None:
    container_id = pyrun.id()
    config, _ = invalid_config(tmp_path)
    bundle = tmp_path / "bundle"
    path = write_config(bundle, config, fmt)
    created = pyrun("create", "--bundle", str(bundle), container_id)
    for target in (bundle, path):
        result = pyrun("validate", str(target))
        assert result.returncode == 1, result
        assert result.stdout.startswith(f"{path}: 5 problems:")
        assert problem_lines(result.stdout) == problem_lines(created.stderr)
    assert_nothing_created(pyrun, container_id, bundle)


@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_validate_accepts_a_valid_bundle(pyrun: Runtime, bundles: Bundles, fmt: str) -> None:
    bundle = bundles.make(SLEEPER, fmt=fmt)
    path = bundle / f"config.{fmt}"
    result = pyrun("validate", str(path if fmt == "yaml" else bundle))
    assert result.returncode == 0, result
    assert result.stdout == f"{path}: valid\n"
    # with the current directory as the default target
    result = pyrun("validate", cwd=str(bundle))
    assert result.returncode == 0, result
    assert result.stdout.endswith("valid\n")


def test_one_problem_is_singular(pyrun: Runtime, bundles: Bundles) -> None:
    config = base_config(["sh"])
    config["process"]["cwd"] = "tmp"
    bundle = bundles.make(config=config)
    result = pyrun("create", "--bundle", str(bundle), pyrun.id())
    assert result.returncode == 1, result
    assert f"{bundle}/config.json: 1 problem:" in result.stderr
    assert problem_lines(result.stderr) == ["process.cwd: must be an absolute path, not 'tmp'"]


# -- malformed documents --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        pytest.param("", 1, 1, id="empty"),
        pytest.param('{"ociVersion": "1.2.0"}\n}\n', 2, 1, id="extra-data"),
        pytest.param(
            '{\n  "ociVersion": "1.2.0",\n  "process": {,\n}\n',
            3,
            15,
            id="stray-comma",
        ),
        pytest.param(
            '{\n  "ociVersion": "1.2.0"\n  "root": {}\n}\n',
            3,
            3,
            id="missing-comma",
        ),
        pytest.param('{\n  "ociVersion": ', 2, 17, id="truncated"),
    ],
)
@pytest.mark.parametrize("verb", ["create", "validate"])
def test_malformed_json_names_line_and_column(
    pyrun: Runtime, tmp_path: Path, text: str, line: int, column: int, verb: str
) -> None:
    container_id = pyrun.id()
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text(text)
    argv = ["validate", str(bundle)]
    if verb == "create":
        argv = ["create", "--bundle", str(bundle), container_id]
    result = pyrun(*argv)
    assert result.returncode == 1, result
    output = result.stderr if verb == "create" else result.stdout
    assert "Traceback" not in result.stderr, result.stderr[-400:]
    assert "invalid JSON" in output, result
    assert f"line {line}, column {column}" in output, result
    assert_nothing_created(pyrun, container_id, bundle)


@pytest.mark.parametrize(
    ("text", "line"),
    [
        pytest.param("ociVersion: 1.2.0\nprocess:\n  args: [sh\n  cwd: /\n", 4, id="flow"),
        pytest.param("ociVersion: 1.2.0\nprocess:\n\targs: [sh]\n", 3, id="tab"),
        pytest.param("ociVersion: 1.2.0\n  root: x\n", 2, id="indent"),
    ],
)
@pytest.mark.parametrize("verb", ["create", "validate"])
def test_malformed_yaml_names_line_and_column(
    pyrun: Runtime, tmp_path: Path, text: str, line: int, verb: str
) -> None:
    container_id = pyrun.id()
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.yaml").write_text(text)
    argv = ["validate", str(bundle)]
    if verb == "create":
        argv = ["create", "--bundle", str(bundle), container_id]
    result = pyrun(*argv)
    assert result.returncode == 1, result
    output = result.stderr if verb == "create" else result.stdout
    assert "Traceback" not in result.stderr
    assert "invalid YAML" in output, result
    assert re.search(rf"\(line {line}, column \d+\)", output), result
    assert_nothing_created(pyrun, container_id, bundle)


def test_duplicate_yaml_keys_are_reported(pyrun: Runtime, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    text = yaml.safe_dump(base_config(["sh"]), sort_keys=False) + "hostname: again\n"
    (bundle / "config.yaml").write_text(text)
    result = pyrun("validate", str(bundle))
    assert result.returncode == 1, result
    assert "hostname" in result.stdout
    assert f"line {len(text.splitlines())}" in result.stdout


@pytest.mark.parametrize("bundle_state", ["missing-dir", "no-config"])
def test_a_bundle_without_config_is_refused(
    pyrun: Runtime, tmp_path: Path, bundle_state: str
) -> None:
    container_id = pyrun.id()
    bundle = tmp_path / "bundle"
    if bundle_state == "no-config":
        bundle.mkdir()
    result = pyrun("create", "--bundle", str(bundle), container_id)
    assert result.returncode == 1, result
    assert str(bundle) in result.stderr
    assert "Traceback" not in result.stderr
    assert_nothing_created(pyrun, container_id)


# -- container ids --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad_id", "verb"),
    [
        ("../x", "create"),
        ("../x", "run"),
        ("a/b", "create"),
        ("", "create"),
        ("..", "create"),
        ("a b", "run"),
    ],
)
def test_invalid_container_ids_are_refused(
    pyrun: Runtime, runc: Runtime, bundles: Bundles, bad_id: str, verb: str
) -> None:
    bundle = str(bundles.make(SLEEPER))
    for rt in (pyrun, runc):
        result = rt(verb, "--bundle", bundle, bad_id)
        assert result.returncode != 0, result
        assert "container id" in result.stderr.lower(), result
        assert "Traceback" not in result.stderr
        # nothing under the root, nothing beside it
        entries = os.listdir(rt.root) if os.path.isdir(rt.root) else []
        assert entries == [], entries
        assert not os.path.exists(os.path.join(rt.root, "..", "x"))
    assert pyrun.ok("list", "--format", "json").stdout.strip() == "null"


def test_a_traversing_id_touches_nothing_outside_the_root(pyrun: Runtime, bundles: Bundles) -> None:
    # A real container gives the root a directory; "../<name>" names a sibling of the root.
    container_id = pyrun.id()
    pyrun.ok("create", "--bundle", str(bundles.make(SLEEPER)), container_id)
    victim = Path(f"{pyrun.root}-victim")
    victim.mkdir()
    (victim / "state.json").write_text(json.dumps({"id": "victim", "pid": 1}))
    try:
        for verb in (["state"], ["start"], ["kill"], ["delete"], ["delete", "--force"]):
            result = pyrun(*verb, f"../{victim.name}")
            assert result.returncode != 0, result
            assert "invalid container id" in result.stderr, result
            assert (victim / "state.json").exists()
    finally:
        (victim / "state.json").unlink(missing_ok=True)
        victim.rmdir()
    assert pyrun.state(container_id)["status"] == "created"
    pyrun.ok("delete", container_id)


# -- signals --------------------------------------------------------------------------------


def test_unknown_signals_are_refused_and_the_container_untouched(
    pyrun: Runtime, runc: Runtime, bundles: Bundles
) -> None:
    bundle = str(bundles.make(SLEEPER))
    for rt in (pyrun, runc):
        container_id = rt.id()
        rt.ok("create", "--bundle", bundle, container_id)
        before = rt.state(container_id)
        for name in ("FOO", "SIGFOO", "RTMIN+99", "1.5"):
            result = rt("kill", container_id, name)
            assert result.returncode != 0, result
            assert "Traceback" not in result.stderr
            assert "signal" in result.stderr and name in result.stderr, result
        after = rt.state(container_id)
        assert after == before and alive(after["pid"])
        rt.ok("delete", container_id)


def test_unknown_signal_words_match_runc(pyrun: Runtime, runc: Runtime, bundles: Bundles) -> None:
    bundle = str(bundles.make(SLEEPER))
    for rt in (pyrun, runc):
        container_id = rt.id()
        rt.ok("create", "--bundle", bundle, container_id)
        refused(rt("kill", container_id, "FOO"), "unknown signal")
        rt.ok("delete", container_id)


def test_an_out_of_range_signal_number_is_refused(pyrun: Runtime, bundles: Bundles) -> None:
    container_id = pyrun.id()
    pyrun.ok("create", "--bundle", str(bundles.make(SLEEPER)), container_id)
    for number in ("65", "99", "4294967305"):
        result = pyrun("kill", container_id, number)
        assert result.returncode != 0, result
        assert "signal" in result.stderr and number in result.stderr, result
    assert pyrun.state(container_id)["status"] == "created"
    pyrun.ok("delete", container_id)


# -- the process binary ---------------------------------------------------------------------


MISSING_BINARY = {
    # runc's logrus text escapes the quotes: compare the words, and pyrun's exact line.
    "no-such-binary": (
        ["executable file not found in $PATH", "no-such-binary"],
        'exec: "no-such-binary": executable file not found in $PATH',
    ),
    "/no/such/binary": (
        ["/no/such/binary", "no such file or directory"],
        'exec: "/no/such/binary": ',
    ),
}


@pytest.mark.parametrize("program", sorted(MISSING_BINARY))
@pytest.mark.parametrize("verb", ["create", "run"])
def test_a_missing_binary_fails_create_and_leaves_nothing(
    pyrun: Runtime, runc: Runtime, bundles: Bundles, program: str, verb: str
) -> None:
    words, exact = MISSING_BINARY[program]
    bundle = bundles.make([program, "arg"])
    for rt in (pyrun, runc):
        container_id = rt.id()
        result = rt(verb, "--bundle", str(bundle), container_id)
        assert result.returncode == 1, result
        for word in ["unable to start container process", *words]:
            assert word in result.stderr, result
        if rt is pyrun:
            assert exact in result.stderr, result
        refused(rt("state", container_id), "does not exist")
        assert not os.path.exists(f"{rt.root}/{container_id}")
        assert processes_in_cgroup(f"/{container_id}") == []
    assert all(cgroup_dirs(i) == [] for i in pyrun.ids)
    assert pyrun.ok("list", "--format", "json").stdout.strip() == "null"


# -- the command line itself ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["create", "--no-such-flag", "x"], "No such option"),
        (["create"], "Missing argument"),
        (["kill"], "Missing argument"),
        (["no-such-verb"], "No such command"),
        (["--log-format", "xml", "state", "x"], "xml"),
        (["create", "--preserve-fds", "many", "x"], "many"),
    ],
    ids=["unknown-flag", "create-no-id", "kill-no-id", "unknown-verb", "bad-choice", "bad-int"],
)
def test_usage_errors_exit_2(pyrun: Runtime, argv: list[str], words: str) -> None:
    result = pyrun(*argv)
    assert result.returncode == 2, result
    assert words in result.stderr, result
    assert "Traceback" not in result.stderr
    assert not os.path.isdir(pyrun.root) or os.listdir(pyrun.root) == []


def test_a_usage_error_is_also_logged_for_callers(pyrun: Runtime, tmp_path: Path) -> None:
    """containerd reports the last error line of --log; a refused command line gets one too."""
    log = tmp_path / "log.json"
    result = pyrun("no-such-verb", "x", global_args=["--log", str(log), "--log-format", "json"])
    assert result.returncode == 2
    assert "No such command 'no-such-verb'" in result.stderr
    lines = log.read_text().splitlines()
    assert len(lines) == 1
    entry = json.loads(lines[0])
    assert entry["level"] == "error" and "no-such-verb" in entry["msg"]
