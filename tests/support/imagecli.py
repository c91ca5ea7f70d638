"""Running ``pyrun image ...`` in the image tests: a store root and an environment of its own.

``image_env(tmp_path)``: HOME, XDG_CONFIG_HOME and DOCKER_CONFIG inside ``tmp_path``, so no
real credentials or registries.conf of the machine leak in; the ``env`` fixture is that for the
test's tmp_path (tests/conftest.py registers this module as a plugin). ``image_cli(root, *args,
env=...)`` runs ``pyrun image --root ROOT ARGS`` and returns the CompletedProcess (text).
``stored_names``, ``stored_blobs``, ``ingest_files``: what a store root holds.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PYRUN
from tests.support.oci_layout import ref_names


def image_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REGISTRY_AUTH_FILE",)}
    home = tmp_path / "home"
    (home / ".docker").mkdir(parents=True, exist_ok=True)
    env["HOME"] = str(home)
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    env["DOCKER_CONFIG"] = str(home / ".docker")
    return env


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return image_env(tmp_path)


def image_cli(
    root: Path,
    *args: str,
    env: dict[str, str] | None = None,
    input: str | None = None,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [PYRUN, "image", "--root", str(root), *args],
        capture_output=True,
        text=True,
        env=env,
        input=input,
        timeout=timeout,
    )


def stored_names(root: Path) -> dict[str, dict[str, Any]]:
    return ref_names(root)


def stored_blobs(root: Path) -> set[str]:
    directory = root / "blobs" / "sha256"
    return {f"sha256:{name}" for name in os.listdir(directory)} if directory.exists() else set()


def ingest_files(root: Path) -> dict[str, int]:
    directory = root / "ingest"
    if not directory.exists():
        return {}
    return {name: (directory / name).stat().st_size for name in os.listdir(directory)}
