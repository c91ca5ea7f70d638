"""A rootfs is untrusted: symlinks in it must never make pyrun mount or create outside it."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from tests.conftest import Bundles, Runtime, base_config


@pytest.fixture
def host_target(tmp_path: Path) -> Path:
    """A host directory a hostile rootfs points its symlinks at."""
    target = Path("/tmp") / f"pyrun-escape-{uuid.uuid4().hex[:8]}"
    target.mkdir()
    yield target
    for child in sorted(target.rglob("*"), reverse=True):
        child.unlink() if not child.is_dir() or child.is_symlink() else child.rmdir()
    target.rmdir()


def _run(pyrun: Runtime, bundles: Bundles, config: dict[str, object], links: dict[str, str]):
    bundle = bundles.make(config=config, own_rootfs=True)
    for name, target in links.items():
        os.symlink(target, bundle / "rootfs" / name)
    result = pyrun("run", "--bundle", str(bundle), pyrun.id())
    return bundle, result


@pytest.mark.parametrize(
    "link_target",
    ["{host}", "../../../../../../../../{host}", "/./{host}", "/../../{host}"],
    ids=["absolute", "relative-dotdot", "slash-dot", "absolute-dotdot"],
)
def test_mount_destination_through_a_symlink_stays_in_the_rootfs(
    pyrun: Runtime, bundles: Bundles, host_target: Path, link_target: str
) -> None:
    # Inside, the mount sits where the symlink resolves *within* the rootfs.
    config = base_config(["sh", "-c", "grep pyrun-escape /proc/self/mountinfo; ls -d /escape/sub"])
    config["mounts"].append(  # type: ignore[attr-defined]
        {"destination": "/escape/sub", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}
    )
    target = link_target.format(host=str(host_target).lstrip("/"))
    bundle, result = _run(pyrun, bundles, config, {"escape": target})
    assert result.returncode == 0, result
    # The host directory the symlink names got nothing; the rootfs got the directory instead.
    assert list(host_target.iterdir()) == []
    inside = bundle / "rootfs" / str(host_target).lstrip("/") / "sub"
    assert inside.is_dir()
    # And the container sees its tmpfs there, reachable through its own symlink.
    assert f"{host_target}/sub" in result.stdout and " - tmpfs " in result.stdout
    assert result.stdout.endswith("/escape/sub\n")


def test_device_path_through_a_symlink_stays_in_the_rootfs(
    pyrun: Runtime, bundles: Bundles, host_target: Path
) -> None:
    config = base_config(["sh", "-c", "ls -l /devlink/mynull"])
    config["linux"]["devices"] = [  # type: ignore[index]
        {"path": "/devlink/mynull", "type": "c", "major": 1, "minor": 3, "fileMode": 0o666}
    ]
    bundle, result = _run(pyrun, bundles, config, {"devlink": str(host_target)})
    assert result.returncode == 0, result
    assert list(host_target.iterdir()) == []
    node = bundle / "rootfs" / str(host_target).lstrip("/") / "mynull"
    assert node.is_char_device()
    assert os.major(node.stat().st_rdev) == 1 and os.minor(node.stat().st_rdev) == 3


def test_proc_destination_symlinked_elsewhere_cannot_leave_the_rootfs(
    pyrun: Runtime, bundles: Bundles, host_target: Path
) -> None:
    """CVE-2019-19921 shape: /proc in the image is a symlink to a host path."""
    config = base_config(["sh", "-c", "cat /proc/self/status | head -1"])
    bundle = bundles.make(config=config, own_rootfs=True)
    os.rmdir(bundle / "rootfs" / "proc")
    os.symlink(str(host_target), bundle / "rootfs" / "proc")
    result = pyrun("run", "--bundle", str(bundle), pyrun.id())
    assert list(host_target.iterdir()) == []
    assert result.returncode == 0, result
    assert result.stdout.startswith("Name:")


def test_symlink_loop_in_a_destination_is_a_clear_error(pyrun: Runtime, bundles: Bundles) -> None:
    config = base_config(["true"])
    config["mounts"].append(  # type: ignore[attr-defined]
        {"destination": "/loop/x", "type": "tmpfs", "source": "tmpfs"}
    )
    bundle = bundles.make(config=config, own_rootfs=True)
    os.symlink("loop2", bundle / "rootfs" / "loop")
    os.symlink("loop", bundle / "rootfs" / "loop2")
    cid = pyrun.id()
    result = pyrun("run", "--bundle", str(bundle), cid)
    assert result.returncode == 1
    assert "too many levels of symbolic links" in result.stderr
    assert pyrun("state", cid).returncode == 1  # nothing left behind
