"""User namespaces (as root, with mappings) and rootless containers run by a real user."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PYRUN, REPO, RUNC, Bundles, Runtime, Shim, base_config

MAPPED = [{"containerID": 0, "hostID": 200000, "size": 65536}]


def _userns_config(args: list[str]) -> dict[str, Any]:
    config = base_config(args)
    config["root"]["readonly"] = False  # type: ignore[index]
    config["linux"]["namespaces"].append({"type": "user"})  # type: ignore[index]
    config["linux"]["uidMappings"] = MAPPED  # type: ignore[index]
    config["linux"]["gidMappings"] = MAPPED  # type: ignore[index]
    return config


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        os.lchown(dirpath, uid, gid)
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), uid, gid)


SCRIPT = "id; cat /proc/self/uid_map /proc/self/gid_map; ls -ln /etc/passwd; touch /tmp/made-here"


@pytest.fixture
def open_bundles(bundles: Bundles) -> Iterator[Bundles]:
    """Bundles in a directory every uid may traverse: the mapped root (host uid 200000) must
    reach its rootfs, and pytest's own tmp dirs are 0700."""
    base = Path("/tmp") / f"pyrun-userns-{uuid.uuid4().hex[:8]}"
    base.mkdir(mode=0o755)
    try:
        yield Bundles(base, bundles.rootfs)
    finally:
        shutil.rmtree(base)


def test_mapped_root_owns_the_rootfs_and_creates_files_as_the_host_id(
    pyrun: Runtime, runc: Runtime, open_bundles: Bundles
) -> None:
    outputs = {}
    for runtime in (runc, pyrun):
        bundle = open_bundles.make(config=_userns_config(["sh", "-c", SCRIPT]), own_rootfs=True)
        _chown_tree(bundle / "rootfs", 200000, 200000)
        result = runtime("run", "--bundle", str(bundle), runtime.id("u"))
        assert result.returncode == 0, result
        outputs[runtime.binary] = result.stdout
        made = (bundle / "rootfs" / "tmp" / "made-here").stat()
        assert (made.st_uid, made.st_gid) == (200000, 200000)
    lines = outputs[PYRUN].splitlines()
    assert lines[0] == "uid=0(root) gid=0(root)"
    assert lines[1].split() == ["0", "200000", "65536"]
    assert lines[2].split() == ["0", "200000", "65536"]
    assert lines[3].split()[2:4] == ["0", "0"]  # owner and group of /etc/passwd inside
    assert outputs[RUNC] == outputs[PYRUN]


def test_unmapped_host_files_show_as_nobody(pyrun: Runtime, open_bundles: Bundles) -> None:
    config = _userns_config(["ls", "-ln", "/etc/passwd"])
    bundle = open_bundles.make(config=config, own_rootfs=True)
    result = pyrun("run", "--bundle", str(bundle), pyrun.id())  # rootfs still owned by host 0
    assert result.returncode == 0, result
    assert result.stdout.split()[2:4] == ["65534", "65534"]


# -- rootless --------------------------------------------------------------------------------


class User:
    def __init__(self, name: str, uid: int, gid: int, home: Path) -> None:
        self.name, self.uid, self.gid, self.home = name, uid, gid, home
        self.xdg = home / "xdg"

    def run(self, shim: Shim, *argv: str, root: str | None = None) -> Any:
        pyrun_args = [PYRUN, *(["--root", root] if root else []), *argv]
        return shim.run(
            [
                "runuser",
                "-u",
                self.name,
                "--",
                "env",
                f"HOME={self.home}",
                f"XDG_RUNTIME_DIR={self.xdg}",
                *pyrun_args,
            ]
        )


@pytest.fixture
def user() -> Iterator[User]:
    """A real unprivileged user, made for the test and removed after it (with its subuids)."""
    name = f"pyrt{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "-m", "-s", "/bin/sh", name], check=True)
    uid = -1
    try:
        info = subprocess.run(["id", "-u", name], check=True, capture_output=True, text=True)
        uid = int(info.stdout)
        gid = int(subprocess.run(["id", "-g", name], capture_output=True, text=True).stdout)
        home = Path(f"/home/{name}")
        (home / "xdg").mkdir(mode=0o700)
        os.chown(home / "xdg", uid, gid)
        yield User(name, uid, gid, home)
    finally:
        _kill_processes_of(uid)  # the user exists only for this test: all its processes are ours
        subprocess.run(["userdel", "-r", name], check=False, capture_output=True)


def _kill_processes_of(uid: int) -> None:
    """By pid, found through /proc (never by name)."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid == uid:
                os.kill(int(entry), 9)
        except (FileNotFoundError, ProcessLookupError):
            continue


def _rootless_bundle(user: User, bundles: Bundles, args: list[str]) -> Path:
    bundle = user.home / "bundle"
    bundle.mkdir()
    shutil.copytree(bundles.rootfs, bundle / "rootfs", symlinks=True)
    subprocess.run(["chown", "-R", f"{user.uid}:{user.gid}", str(bundle)], check=True)
    spec = subprocess.run(
        ["runuser", "-u", user.name, "--", PYRUN, "spec", "--rootless", "--bundle", str(bundle)],
        capture_output=True,
        text=True,
    )
    assert spec.returncode == 0, spec.stderr
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["args"] = args
    (bundle / "config.json").write_text(json.dumps(config))
    return bundle


def test_rootless_run_as_a_real_unprivileged_user(user: User, bundles: Bundles, shim: Shim) -> None:
    bundle = _rootless_bundle(user, bundles, ["sh", "-c", "id -u; cat /proc/self/uid_map"])
    result = user.run(shim, "run", "--bundle", str(bundle), "rl1")
    assert result.returncode == 0, result
    lines = result.stdout.splitlines()
    assert lines[0] == "0"
    assert lines[1].split() == ["0", str(user.uid), "1"]
    assert not (user.xdg / "pyrun" / "rl1").exists()  # the default root was $XDG_RUNTIME_DIR


def test_rootless_lifecycle_state_lives_under_xdg_runtime_dir(
    user: User, bundles: Bundles, shim: Shim
) -> None:
    bundle = _rootless_bundle(user, bundles, ["sleep", "60"])
    assert user.run(shim, "create", "--bundle", str(bundle), "rl2").returncode == 0
    state_dir = user.xdg / "pyrun" / "rl2"
    assert (state_dir / "state.json").is_file()
    assert state_dir.stat().st_uid == user.uid
    state = json.loads(user.run(shim, "state", "rl2").stdout)
    assert state["status"] == "created"
    with open(f"/proc/{state['pid']}/status") as handle:
        uids = next(line for line in handle if line.startswith("Uid:")).split()[1:]
    assert uids == [str(user.uid)] * 4  # the container's root is the user on the host
    assert user.run(shim, "start", "rl2").returncode == 0
    assert json.loads(user.run(shim, "state", "rl2").stdout)["status"] == "running"
    assert user.run(shim, "kill", "rl2", "KILL").returncode == 0
    result = user.run(shim, "delete", "--force", "rl2")
    assert result.returncode == 0, result
    assert not state_dir.exists()


def test_rootless_limits_that_cannot_be_enforced_are_refused(
    user: User, bundles: Bundles, shim: Shim
) -> None:
    bundle = _rootless_bundle(user, bundles, ["true"])
    config = json.loads((bundle / "config.json").read_text())
    config["linux"]["resources"] = {"memory": {"limit": 64 * 1024 * 1024}}
    (bundle / "config.json").write_text(json.dumps(config))
    result = user.run(shim, "run", "--bundle", str(bundle), "rl3")
    assert result.returncode == 1
    assert "linux.resources.memory: cannot be applied: running as uid" in result.stderr
    assert not (user.xdg / "pyrun" / "rl3").exists()


def test_rootless_with_subordinate_ids_goes_through_newuidmap(
    user: User, bundles: Bundles, shim: Shim
) -> None:
    subuid = next(
        line.split(":")
        for line in Path("/etc/subuid").read_text().splitlines()
        if line.startswith(f"{user.name}:")
    )
    start, count = int(subuid[1]), int(subuid[2])
    bundle = _rootless_bundle(user, bundles, ["sh", "-c", "cat /proc/self/uid_map; id"])
    config = json.loads((bundle / "config.json").read_text())
    maps = [
        {"containerID": 0, "hostID": user.uid, "size": 1},
        {"containerID": 1, "hostID": start, "size": count},
    ]
    config["linux"]["uidMappings"] = maps
    config["linux"]["gidMappings"] = [
        {"containerID": 0, "hostID": user.gid, "size": 1},
        {"containerID": 1, "hostID": start, "size": count},
    ]
    (bundle / "config.json").write_text(json.dumps(config))
    result = user.run(shim, "run", "--bundle", str(bundle), "rl4")
    assert result.returncode == 0, result
    lines = [line.split() for line in result.stdout.splitlines()[:2]]
    assert lines == [["0", str(user.uid), "1"], ["1", str(start), str(count)]]


def test_rootless_differential_with_runc(user: User, bundles: Bundles, shim: Shim) -> None:
    script = "id; hostname; ls /dev | tr '\\n' ' '; grep -c . /proc/self/mountinfo"
    bundle = _rootless_bundle(user, bundles, ["sh", "-c", script])
    ours = user.run(shim, "run", "--bundle", str(bundle), "rl5")
    theirs = shim.run(
        [
            "runuser",
            "-u",
            user.name,
            "--",
            "env",
            f"XDG_RUNTIME_DIR={user.xdg}",
            RUNC,
            "run",
            "--bundle",
            str(bundle),
            "rl5r",
        ]
    )
    assert theirs.returncode == ours.returncode == 0, (ours, theirs)
    our_lines, their_lines = ours.stdout.splitlines(), theirs.stdout.splitlines()
    assert our_lines[:2] == their_lines[:2]  # id, hostname
    assert our_lines[2] == their_lines[2]  # /dev entries


def test_rootless_image_load_unpack_and_run_in_the_users_own_store(
    user: User, shim: Shim, tmp_path: Path
) -> None:
    """What a user without root does with an image: it goes to ~/.local/share/pyrun/images,
    unpacks as vfs (overlay needs root: said so), and runs rootless."""
    store = tmp_path / "store"
    example = REPO / "bundles" / "examples" / "hello"
    image = ["image", "--root", str(store)]
    made = shim.run([PYRUN, *image, "commit", str(example), "localhost/hello:1"])
    assert made.returncode == 0, made
    archive = user.home / "hello.tar"
    saved = shim.run([PYRUN, *image, "save", "-o", str(archive), "localhost/hello:1"])
    assert saved.returncode == 0, saved
    os.chown(archive, user.uid, user.gid)

    loaded = user.run(shim, "image", "load", "-i", str(archive))
    assert loaded.returncode == 0 and "Loaded image: localhost/hello:1" in loaded.stdout, loaded
    own_store = user.home / ".local/share/pyrun/images"
    assert (own_store / "index.json").is_file() and own_store.stat().st_uid == user.uid
    refused = user.home / "refused"
    overlay = user.run(
        shim, "image", "unpack", "--snapshotter", "overlay", "localhost/hello:1", str(refused)
    )
    assert overlay.returncode == 1 and "overlay snapshotter needs root" in overlay.stderr
    assert not refused.exists()
    bundle = user.home / "hello"
    unpacked = user.run(shim, "image", "unpack", "localhost/hello:1", str(bundle))
    assert unpacked.returncode == 0, unpacked
    assert (bundle / "rootfs/bin/busybox").stat().st_uid == user.uid
    ran = user.run(shim, "run", "--bundle", str(bundle), "rl6")
    assert ran.returncode == 0, ran
    assert ran.stdout.startswith("Hello from a pyrun container!\n")
