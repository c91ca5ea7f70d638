"""Snapshotters and commit on real mounts (root): overlay bundles from shared layer snapshots,
their release by ``pyrun delete``, ``image rm``/``gc``/``snapshots``, and ``image commit``
round trips (overlay and vfs) checked against the expected tree and against umoci.

Every store lives under the test's tmp_path; the ``store`` fixture's finalizer unmounts what a
failing test may have left there (the leak check then finds nothing).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from imagetools.store import Store
from tests.conftest import PYRUN, REPO, Bundles, Runtime
from tests.support.imagecli import image_cli, stored_names
from tests.support.layers import (
    busybox_layer,
    directory,
    file,
    hardlink,
    opaque,
    put_image,
    symlink,
    tar,
    whiteout,
)

SNAPSHOT = "io.pyrun.image.snapshot"
ROOT = "io.pyrun.image.root"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="overlay mounts need root")


# -- fixtures and observations ---------------------------------------------------------------


def mounts_under(path: Path) -> list[str]:
    """Mount points at or below ``path``, deepest (latest) first."""
    found = []
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            point = line.split(" ")[4].replace("\\040", " ")
            if point == str(path) or point.startswith(f"{path}/"):
                found.append(point)
    return list(reversed(found))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    yield Store(str(tmp_path / "store"))
    for point in mounts_under(tmp_path):
        subprocess.run(["umount", "-l", point], check=False)


def overlay_mount(rootfs: Path) -> dict[str, str] | None:
    """The super options of the overlay on ``rootfs`` (the top mount), None if there is none."""
    found = None
    with open("/proc/self/mountinfo") as handle:
        for line in handle:
            fields, _, tail = line.rstrip("\n").partition(" - ")
            if fields.split(" ")[4] != str(rootfs):
                continue
            kind, _source, options = tail.split(" ", 2)
            found = None
            if kind == "overlay":
                found = dict(o.partition("=")[::2] for o in options.split(","))
    return found


def annotations(bundle: Path) -> dict[str, str]:
    return dict(json.loads((bundle / "config.json").read_text())["annotations"])


def snapshot_dir(store: Store, bundle: Path) -> Path:
    return Path(store.root) / "snapshots" / "bundles" / annotations(bundle)[SNAPSHOT]


def layer_dirs(store: Store) -> list[Path]:
    base = Path(store.root) / "snapshots" / "layers"
    return sorted(base.iterdir()) if base.exists() else []


def set_args(bundle: Path, args: list[str]) -> None:
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["args"] = args
    config["process"]["terminal"] = False
    (bundle / "config.json").write_text(json.dumps(config))


def unpack(store: Store, ref: str, bundle: Path, snapshotter: str = "overlay") -> Path:
    result = image_cli(Path(store.root), "unpack", "--snapshotter", snapshotter, ref, str(bundle))
    assert result.returncode == 0, result.stderr
    return bundle


def base_image(store: Store, name: str = "localhost/snap/base:1") -> dict[str, Any]:
    """busybox + a layer of files + a layer that deletes and makes a directory opaque."""
    files = tar(
        directory("etc/app"),
        file("etc/app/a.conf", b"a"),
        file("etc/app/b.conf", b"b"),
        directory("srv"),
        file("srv/old", b"old"),
        file("srv/keep", b"keep"),
        directory("data"),
        file("data/one", b"1"),
    )
    changes = tar(
        whiteout("etc/app/b.conf"),
        opaque("data"),
        file("data/two", b"2"),
        file("etc/motd", b"hello from the image\n"),
    )
    return put_image(store, name, [busybox_layer(), files, changes])


def tree(root: Path) -> dict[str, tuple[Any, ...]]:
    """Everything an image round trip must keep, per path (times of files in seconds)."""
    result: dict[str, tuple[Any, ...]] = {}
    inodes: dict[int, list[str]] = {}
    for directory_path, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(directory_path, name)
            relative = os.path.relpath(path, root)
            info = os.lstat(path)
            mode = info.st_mode
            xattrs = {
                x: os.getxattr(path, x, follow_symlinks=False)
                for x in os.listxattr(path, follow_symlinks=False)
                if x.startswith("user.")
            }
            entry: tuple[Any, ...] = (stat.S_IFMT(mode), info.st_uid, info.st_gid, xattrs)
            if stat.S_ISLNK(mode):
                entry += (os.readlink(path),)
            else:
                entry += (stat.S_IMODE(mode),)
            if stat.S_ISREG(mode):
                entry += (hashlib.sha256(Path(path).read_bytes()).hexdigest(), int(info.st_mtime))
                if info.st_nlink > 1:
                    inodes.setdefault(info.st_ino, []).append(relative)
            if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                entry += (info.st_rdev,)
            result[relative] = entry
    for group in inodes.values():
        for member in group:
            result[member] += (tuple(sorted(group)),)
    return result


# -- overlay bundles -------------------------------------------------------------------------


def test_overlay_bundle_runs_and_writes_only_its_upper_dir(
    store: Store, tmp_path: Path, pyrun: Runtime
) -> None:
    base_image(store)
    bundle = unpack(store, "localhost/snap/base:1", tmp_path / "bundle")
    notes = annotations(bundle)
    assert notes[ROOT] == os.path.realpath(store.root)
    snap = snapshot_dir(store, bundle)
    options = overlay_mount(bundle / "rootfs")
    assert options is not None, "rootfs is not an overlay mount"
    assert options["upperdir"] == f"{snap}/upper"
    assert options["workdir"] == f"{snap}/work"
    # lowerdir: the three layer snapshots, top first, by their short links.
    lowers = options["lowerdir"].split(":")
    assert len(lowers) == 3
    meta = json.loads((snap / "meta.json").read_text())
    assert meta["bundle"] == str(bundle) and meta["kind"] == "overlay"
    snapshots_dir = Path(store.root) / "snapshots"
    targets = [os.path.realpath(snapshots_dir / lower) for lower in lowers]
    expected = [str(snapshots_dir / "layers" / c.partition(":")[2] / "fs") for c in meta["chain"]]
    assert targets == list(reversed(expected))
    # The image's tree: whiteout and opaque dir applied.
    rootfs = bundle / "rootfs"
    assert (rootfs / "etc/app/a.conf").read_text() == "a"
    assert not (rootfs / "etc/app/b.conf").exists()
    assert sorted(os.listdir(rootfs / "data")) == ["two"]

    set_args(bundle, ["sh", "-c", "cat /etc/motd; echo written > /root/new; rm /srv/old"])
    cid = pyrun.id()
    result = pyrun.ok("run", "--keep", "--bundle", str(bundle), cid)
    assert result.stdout == "hello from the image\n"
    assert pyrun.state(cid)["status"] == "stopped"
    # The container's writes are in the bundle's upper dir, never in a layer snapshot.
    assert (snap / "upper/root/new").read_text() == "written\n"
    whiteout_node = os.lstat(snap / "upper/srv/old")
    assert stat.S_ISCHR(whiteout_node.st_mode) and whiteout_node.st_rdev == 0
    for layer in layer_dirs(store):
        assert not (layer / "fs/root/new").exists()
    assert any((layer / "fs/srv/old").exists() for layer in layer_dirs(store))

    pyrun.ok("delete", cid)
    assert overlay_mount(bundle / "rootfs") is None
    assert not snap.exists()
    assert not (bundle / "rootfs").exists()  # the emptied mount point goes too
    assert len(layer_dirs(store)) == 3  # layers stay for the next bundle


def test_run_without_keep_releases_the_snapshot(
    store: Store, tmp_path: Path, pyrun: Runtime
) -> None:
    base_image(store)
    bundle = unpack(store, "localhost/snap/base:1", tmp_path / "bundle")
    snap = snapshot_dir(store, bundle)
    set_args(bundle, ["true"])
    pyrun.ok("run", "--bundle", str(bundle), pyrun.id())
    assert overlay_mount(bundle / "rootfs") is None
    assert not snap.exists()


def test_a_bundle_whose_overlay_is_gone_keeps_its_snapshot_and_runs_again(
    store: Store, tmp_path: Path, pyrun: Runtime
) -> None:
    """A reboot unmounts every overlay; the bundle and its changes are still there. gc keeps
    a snapshot its bundle still names, and create mounts it again (containerd does the same
    for its snapshots)."""
    base_image(store)
    bundle = unpack(store, "localhost/snap/base:1", tmp_path / "bundle")
    snap = snapshot_dir(store, bundle)
    (bundle / "rootfs/etc/motd").write_text("changed before the reboot\n")
    subprocess.run(["umount", str(bundle / "rootfs")], check=True)  # what a reboot does
    assert overlay_mount(bundle / "rootfs") is None

    collected = image_cli(Path(store.root), "gc")
    assert collected.returncode == 0, collected.stderr
    assert snap.exists() and (snap / "upper/etc/motd").exists()
    set_args(bundle, ["cat", "/etc/motd", "/data/two"])
    result = pyrun.ok("run", "--keep", "--bundle", str(bundle), container := pyrun.id())
    assert result.stdout == "changed before the reboot\n2"
    assert overlay_mount(bundle / "rootfs") is not None
    pyrun.ok("delete", container)
    assert overlay_mount(bundle / "rootfs") is None and not snap.exists()

    # A bundle removed while unmounted: nothing names the snapshot any more, gc takes it.
    again = unpack(store, "localhost/snap/base:1", tmp_path / "again")
    gone = snapshot_dir(store, again)
    subprocess.run(["umount", str(again / "rootfs")], check=True)
    shutil.rmtree(again)
    assert image_cli(Path(store.root), "gc").returncode == 0
    assert not gone.exists()


def test_four_overlay_unpacks_at_once_make_each_layer_snapshot_once(
    store: Store, tmp_path: Path
) -> None:
    many = tar(*[file(f"many/{i:04d}", b"y" * 300) for i in range(3000)])
    put_image(store, "localhost/snap/busy:1", [busybox_layer(), many])
    unpack = [PYRUN, "image", "--root", store.root, "unpack", "--snapshotter", "overlay"]
    unpacks = [
        subprocess.Popen(
            [*unpack, "localhost/snap/busy:1", str(tmp_path / f"b{n}")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    results = [(p.wait(timeout=120), p.communicate()[1]) for p in unpacks]
    assert [code for code, _ in results] == [0] * 4, results
    assert len(layer_dirs(store)) == 2
    assert not [p for p in (Path(store.root) / "snapshots/tmp").iterdir() if p.is_dir()]
    for n in range(4):
        assert len(os.listdir(tmp_path / f"b{n}/rootfs/many")) == 3000
        assert overlay_mount(tmp_path / f"b{n}/rootfs") is not None


def test_bundles_of_one_image_share_layer_snapshots(store: Store, tmp_path: Path) -> None:
    base_image(store)
    first = unpack(store, "localhost/snap/base:1", tmp_path / "one")
    second = unpack(store, "localhost/snap/base:1", tmp_path / "two")
    assert len(layer_dirs(store)) == 3  # unpacked once
    a = os.stat(first / "rootfs/bin/busybox")
    b = os.stat(second / "rootfs/bin/busybox")
    in_layer = [layer / "fs/bin/busybox" for layer in layer_dirs(store)]
    (original,) = [p for p in in_layer if p.exists()]
    assert a.st_ino == b.st_ino == os.stat(original).st_ino
    assert snapshot_dir(store, first) != snapshot_dir(store, second)
    # Writes stay apart.
    (first / "rootfs/etc/motd").write_text("changed\n")
    assert (second / "rootfs/etc/motd").read_text() == "hello from the image\n"
    for bundle in (first, second):
        removed = image_cli(Path(store.root), "snapshots", "rm", annotations(bundle)[SNAPSHOT])
        assert removed.returncode == 0, removed.stderr
    assert mounts_under(tmp_path) == []


def test_default_snapshotter_is_overlay_and_the_probe_is_cached(
    store: Store, tmp_path: Path
) -> None:
    base_image(store)
    result = image_cli(Path(store.root), "unpack", "localhost/snap/base:1", str(tmp_path / "b"))
    assert result.returncode == 0, result.stderr
    assert overlay_mount(tmp_path / "b/rootfs") is not None
    probe = json.loads((Path(store.root) / "snapshots/overlay.json").read_text())
    assert probe["supported"] is True and probe["kernel"] == os.uname().release
    assert "index=off" in probe["options"]
    assert not list((Path(store.root) / "snapshots/tmp").glob("probe-*"))


def test_sixty_layers_fit_in_one_mount(store: Store, tmp_path: Path) -> None:
    layers = [busybox_layer()] + [tar(file(f"layer{i:02d}", str(i).encode())) for i in range(59)]
    put_image(store, "localhost/snap/tall:1", layers)
    cwd = os.getcwd()
    bundle = unpack(store, "localhost/snap/tall:1", tmp_path / "tall")
    options = overlay_mount(bundle / "rootfs")
    assert options is not None and len(options["lowerdir"].split(":")) == 60
    assert os.getcwd() == cwd
    for i in range(59):
        assert (bundle / f"rootfs/layer{i:02d}").read_text() == str(i)


def test_an_image_too_tall_for_one_page_of_options_says_use_vfs(
    store: Store, tmp_path: Path
) -> None:
    layers = [tar(file(f"f{i}", b"x")) for i in range(300)]
    put_image(store, "localhost/snap/huge:1", layers)
    result = image_cli(
        Path(store.root), "unpack", "--snapshotter", "overlay", "localhost/snap/huge:1",
        str(tmp_path / "huge"),
    )  # fmt: skip
    assert result.returncode == 1
    assert "do not fit in one overlay mount" in result.stderr and "vfs" in result.stderr
    assert mounts_under(tmp_path) == []
    assert not (tmp_path / "huge/config.json").exists()


def test_a_hardlink_into_a_lower_layer_is_applied_through_the_lowers(
    store: Store, tmp_path: Path
) -> None:
    lower = tar(directory("d"), file("d/target", b"shared", mode=0o640))
    upper = tar(hardlink("d/link", "d/target"), file("d/more", b"m"))
    put_image(store, "localhost/snap/links:1", [busybox_layer(), lower, upper])
    bundle = unpack(store, "localhost/snap/links:1", tmp_path / "b")
    rootfs = bundle / "rootfs"
    assert (rootfs / "d/link").read_bytes() == b"shared"
    assert os.stat(rootfs / "d/link").st_ino == os.stat(rootfs / "d/target").st_ino


def test_a_layer_without_its_parents_entries_sees_them_as_the_lowers_have_them(
    store: Store, tmp_path: Path
) -> None:
    """A layer writing lib/x where a lower has lib -> usr/lib, and etc/conf where a lower has
    etc 0700 owned by 1000: overlay gives the tree vfs gives (the link is followed, not
    shadowed by a new directory; etc keeps its owner and mode)."""
    lower = tar(
        directory("usr"),
        directory("usr/lib"),
        symlink("lib", "usr/lib"),
        directory("private", mode=0o700, uid=1000, gid=1000),
    )
    upper = tar(file("lib/libx.so", b"x"), file("private/conf", b"c"))
    put_image(store, "localhost/snap/parents:1", [busybox_layer(), lower, upper])
    overlay = unpack(store, "localhost/snap/parents:1", tmp_path / "overlay")
    vfs = unpack(store, "localhost/snap/parents:1", tmp_path / "vfs", snapshotter="vfs")
    assert os.readlink(overlay / "rootfs/lib") == "usr/lib"
    assert (overlay / "rootfs/usr/lib/libx.so").read_bytes() == b"x"
    private = os.stat(overlay / "rootfs/private")
    assert (private.st_uid, stat.S_IMODE(private.st_mode)) == (1000, 0o700)
    assert tree(overlay / "rootfs") == tree(vfs / "rootfs")


# -- the layer snapshot of a killed unpack is never used -----------------------------------------

_UNPACK = """
import sys
sys.path.insert(0, {repo!r})
from imagetools.store import Store
from imagetools.unpack import unpack
unpack(Store({root!r}), "localhost/snap/big:1", {bundle!r}, snapshotter="overlay")
"""


def test_a_killed_layer_unpack_leaves_nothing_that_is_reused(store: Store, tmp_path: Path) -> None:
    many = tar(*[file(f"many/{i:05d}", b"x" * 700) for i in range(20000)])
    put_image(store, "localhost/snap/big:1", [busybox_layer(), many])
    script = _UNPACK.format(repo=str(REPO), root=store.root, bundle=str(tmp_path / "b1"))
    child = subprocess.Popen([sys.executable, "-c", script])
    tmp = Path(store.root) / "snapshots/tmp"
    deadline = time.monotonic() + 60
    killed = False
    while time.monotonic() < deadline and child.poll() is None:
        partial = [d for d in tmp.glob("*/fs/many") if d.is_dir()] if tmp.exists() else []
        if partial and len(os.listdir(partial[0])) > 100:
            child.send_signal(signal.SIGKILL)
            killed = True
            break
        time.sleep(0.005)
    child.wait()
    assert killed, "the unpack finished before it could be killed"
    layers = layer_dirs(store)
    assert len(layers) == 1  # busybox finished; the big layer is only a tmp dir
    assert [p for p in tmp.iterdir() if p.is_dir()], "the killed unpack left no tmp dir?"
    assert mounts_under(tmp_path) == []

    bundle = unpack(store, "localhost/snap/big:1", tmp_path / "b2")
    assert len(os.listdir(bundle / "rootfs/many")) == 20000
    assert len(layer_dirs(store)) == 2
    assert [p.name for p in tmp.iterdir()] == []  # the leftover was cleaned up


# -- pyrun delete and forged annotations ---------------------------------------------------------


def test_a_forged_annotation_releases_nothing(
    store: Store, tmp_path: Path, pyrun: Runtime, bundles: Bundles
) -> None:
    base_image(store)
    victim = unpack(store, "localhost/snap/base:1", tmp_path / "victim")
    victim_snap = snapshot_dir(store, victim)
    # A bundle of someone else's claiming the victim's snapshot.
    claims = [
        {SNAPSHOT: victim_snap.name, ROOT: store.root},
        {SNAPSHOT: "../../../../tmp", ROOT: store.root},
        {SNAPSHOT: victim_snap.name, ROOT: "/etc"},
    ]
    # A fake store whose snapshots dir is a symlink to a dir with forged metadata.
    fake = tmp_path / "fake"
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "bundles/0123456789abcdef/upper").mkdir(parents=True)
    fake.mkdir()
    (fake / "oci-layout").write_text("{}")
    (fake / "snapshots").symlink_to(elsewhere)
    for number, claim in enumerate([*claims, {SNAPSHOT: "0123456789abcdef", ROOT: str(fake)}]):
        bundle = bundles.make(["true"], own_rootfs=True, name=f"forger{number}")
        config = json.loads((bundle / "config.json").read_text())
        config["annotations"] = claim
        (bundle / "config.json").write_text(json.dumps(config))
        meta = {"id": "0123456789abcdef", "kind": "overlay", "bundle": str(bundle)}
        meta["rootfs"] = f"{bundle}/rootfs"
        (elsewhere / "bundles/0123456789abcdef/meta.json").write_text(json.dumps(meta))
        pyrun.ok("run", "--bundle", str(bundle), pyrun.id(f"f{number}"))
        assert (bundle / "rootfs/bin/busybox").exists()
    assert overlay_mount(victim / "rootfs") is not None
    assert (victim_snap / "meta.json").exists()
    assert (elsewhere / "bundles/0123456789abcdef/upper").is_dir()


# -- image rm, gc, snapshots ---------------------------------------------------------------------


def test_image_rm_and_gc_keep_what_bundles_use(store: Store, tmp_path: Path) -> None:
    root = Path(store.root)
    shared = busybox_layer()
    put_image(store, "localhost/snap/a:1", [shared, tar(file("a", b"a"))])
    put_image(store, "localhost/snap/b:1", [shared, tar(file("b", b"b"))])
    bundle = unpack(store, "localhost/snap/a:1", tmp_path / "a")
    unpack(store, "localhost/snap/b:1", tmp_path / "b")
    image_cli(root, "snapshots", "rm", annotations(tmp_path / "b")[SNAPSHOT])
    assert len(layer_dirs(store)) == 3

    refused = image_cli(root, "rm", "localhost/snap/a:1")
    assert refused.returncode == 1 and "in use by a bundle snapshot" in refused.stderr
    assert "localhost/snap/a:1" in stored_names(root)

    # b's own layer goes with its name; the shared one stays (a uses it).
    assert image_cli(root, "rm", "localhost/snap/b:1").returncode == 0
    assert len(layer_dirs(store)) == 2

    # Forced: the name goes, the layers and blobs the bundle uses stay, also through gc.
    assert image_cli(root, "rm", "-f", "localhost/snap/a:1").returncode == 0
    assert image_cli(root, "gc").returncode == 0
    assert len(layer_dirs(store)) == 2
    manifest = json.loads((bundle / "config.json").read_text())["annotations"]
    digest = manifest["io.pyrun.image.manifest"]
    assert store.has_blob(digest)
    assert (bundle / "rootfs/a").read_text() == "a"

    listing = image_cli(root, "snapshots").stdout
    assert annotations(bundle)[SNAPSHOT] in listing and str(bundle) in listing

    # Once the bundle snapshot is gone, gc takes the layers and the blobs.
    assert image_cli(root, "snapshots", "rm", annotations(bundle)[SNAPSHOT]).returncode == 0
    gc = image_cli(root, "gc")
    assert gc.returncode == 0, gc.stderr
    assert layer_dirs(store) == []
    assert not store.has_blob(digest)
    assert os.listdir(root / "snapshots/l") == []


def test_gc_removes_bundle_snapshots_whose_bundle_is_gone_and_keeps_unmounted_ones(
    store: Store, tmp_path: Path
) -> None:
    root = Path(store.root)
    base_image(store)
    gone = unpack(store, "localhost/snap/base:1", tmp_path / "gone")
    unmounted = unpack(store, "localhost/snap/base:1", tmp_path / "unmounted")
    live = unpack(store, "localhost/snap/base:1", tmp_path / "live")
    moved = unpack(store, "localhost/snap/base:1", tmp_path / "moved")
    moved_snap = snapshot_dir(store, moved)
    moved.rename(tmp_path / "moved-away")  # its mount goes with it: still in use
    gone_snap, unmounted_snap = snapshot_dir(store, gone), snapshot_dir(store, unmounted)
    subprocess.run(["umount", str(gone / "rootfs")], check=True)
    shutil.rmtree(gone)
    subprocess.run(["umount", str(unmounted / "rootfs")], check=True)
    dry = image_cli(root, "gc", "--dry-run")
    assert gone_snap.name in dry.stdout and gone_snap.exists()
    result = image_cli(root, "gc")
    assert result.returncode == 0, result.stderr
    assert not gone_snap.exists()
    assert unmounted_snap.exists()  # its bundle still names it: create mounts it again
    assert snapshot_dir(store, live).exists() and overlay_mount(live / "rootfs") is not None
    assert moved_snap.exists() and overlay_mount(tmp_path / "moved-away/rootfs") is not None
    refused = image_cli(root, "snapshots", "rm", moved_snap.name)
    assert refused.returncode == 1 and "still mounted on" in refused.stderr
    assert (tmp_path / "moved-away/rootfs/etc/motd").exists()
    assert len(layer_dirs(store)) == 3


# -- commit --------------------------------------------------------------------------------------


def _change_tree(rootfs: Path) -> None:
    """Deletions, an opaque dir, hardlinks, symlinks, xattrs, owners and modes, a fifo."""
    (rootfs / "etc/app/a.conf").unlink()
    (rootfs / "srv/keep").write_text("kept and changed")
    shutil.rmtree(rootfs / "data")
    (rootfs / "data").mkdir(mode=0o750)
    (rootfs / "data/fresh").write_text("fresh")
    (rootfs / "new/deep").mkdir(parents=True)
    (rootfs / "new/deep/file").write_text("deep")
    os.link(rootfs / "new/deep/file", rootfs / "new/hard")
    os.link(rootfs / "bin/busybox", rootfs / "new/busybox-link")  # a lower file, linked
    os.symlink("/etc/motd", rootfs / "new/abs-link")
    os.symlink("../srv/keep", rootfs / "new/rel-link")
    os.setxattr(rootfs / "srv/keep", "user.origin", b"commit-test")
    os.chown(rootfs / "new/deep", 1000, 1000)
    os.chmod(rootfs / "new/deep/file", 0o4750)
    os.mkfifo(rootfs / "new/fifo", 0o600)
    os.chmod(rootfs / "etc/motd", 0o600)


def _umoci_tree(store: Store, name: str, target: Path) -> dict[str, tuple[Any, ...]]:
    result = subprocess.run(
        ["umoci", "unpack", "--image", f"{store.root}:{name}", str(target)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    return tree(target / "rootfs")


@pytest.mark.parametrize("snapshotter", ["overlay", "vfs"])
def test_commit_round_trip_matches_the_bundle_and_umoci(
    store: Store, tmp_path: Path, snapshotter: str
) -> None:
    root = Path(store.root)
    base_image(store)
    bundle = unpack(store, "localhost/snap/base:1", tmp_path / "work", snapshotter)
    _change_tree(bundle / "rootfs")
    expected = tree(bundle / "rootfs")
    result = image_cli(
        root, "commit", "-m", "the message", "-a", "Tester <t@example.com>",
        "-c", 'CMD ["/bin/cat", "/etc/motd"]', "-c", "ENV STAGE=committed",
        str(bundle), "localhost/snap/committed:1",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    digest = result.stdout.strip()
    assert stored_names(root)["localhost/snap/committed:1"]["digest"] == digest

    manifest = store.read_json(digest)
    base = store.read_json(stored_names(root)["localhost/snap/base:1"]["digest"])
    assert manifest["mediaType"] == base["mediaType"]
    assert manifest["layers"][:3] == base["layers"]
    assert manifest["layers"][3]["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    config = store.read_json(manifest["config"]["digest"])
    assert len(config["rootfs"]["diff_ids"]) == 4
    assert config["config"]["Cmd"] == ["/bin/cat", "/etc/motd"]
    assert "STAGE=committed" in config["config"]["Env"]
    assert config["author"] == "Tester <t@example.com>"
    assert config["history"][-1]["comment"] == "the message"
    assert config["history"][-1]["author"] == "Tester <t@example.com>"

    fresh = unpack(store, "localhost/snap/committed:1", tmp_path / "fresh", "vfs")
    got = tree(fresh / "rootfs")
    assert got == expected
    assert not (fresh / "rootfs/etc/app/a.conf").exists()
    assert sorted(os.listdir(fresh / "rootfs/data")) == ["fresh"]
    assert _umoci_tree(store, "localhost/snap/committed:1", tmp_path / "umoci") == expected


def test_commit_after_run_keep_then_delete_releases(
    store: Store, tmp_path: Path, pyrun: Runtime
) -> None:
    root = Path(store.root)
    put_image(store, "localhost/snap/dock:1", [busybox_layer()], docker=True)
    bundle = unpack(store, "localhost/snap/dock:1", tmp_path / "b")
    set_args(bundle, ["sh", "-c", "echo from-container > /root/out; rm /etc/group"])
    cid = pyrun.id()
    pyrun.ok("run", "--keep", "--bundle", str(bundle), cid)
    result = image_cli(root, "commit", str(bundle), "localhost/snap/dock:2")
    assert result.returncode == 0, result.stderr
    manifest = store.read_json(result.stdout.strip())
    assert manifest["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert manifest["layers"][-1]["mediaType"] == (
        "application/vnd.docker.image.rootfs.diff.tar.gzip"
    )
    config = store.read_json(manifest["config"]["digest"])
    assert config["history"][-1]["created_by"].startswith("sh -c echo from-container")

    pyrun.ok("delete", cid)
    again = image_cli(root, "commit", str(bundle), "localhost/snap/dock:3")
    assert again.returncode == 1 and "its snapshot is released" in again.stderr

    fresh = unpack(store, "localhost/snap/dock:2", tmp_path / "fresh")
    assert (fresh / "rootfs/root/out").read_text() == "from-container\n"
    assert not (fresh / "rootfs/etc/group").exists()


def test_commit_of_a_bundle_no_image_made_is_a_one_layer_image_of_its_rootfs(
    store: Store, bundles: Bundles, tmp_path: Path, pyrun: Runtime
) -> None:
    bundle = bundles.make(["/bin/sh", "-c", "echo from-scratch; pwd; id -u"], own_rootfs=True)
    config = json.loads((bundle / "config.json").read_text())
    config["process"].update(cwd="/tmp", env=["PATH=/bin", "GREETING=hi"])
    (bundle / "config.json").write_text(json.dumps(config))
    (bundle / "rootfs/etc/marker").write_text("kept\n")
    os.symlink("marker", bundle / "rootfs/etc/marker-link")

    result = image_cli(Path(store.root), "commit", "-m", "from scratch", str(bundle), "x/y:1")
    assert result.returncode == 0, result.stderr
    descriptor = store.resolve("docker.io/x/y:1")
    manifest = store.read_json(descriptor["digest"])
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert len(manifest["layers"]) == 1
    image = store.read_json(manifest["config"]["digest"])
    assert image["config"] == {
        "User": "0:0",
        "Env": ["PATH=/bin", "GREETING=hi"],
        "Cmd": ["/bin/sh", "-c", "echo from-scratch; pwd; id -u"],
        "WorkingDir": "/tmp",
    }
    assert image["history"][-1]["comment"] == "from scratch"
    assert len(image["rootfs"]["diff_ids"]) == 1

    fresh = unpack(store, "x/y:1", tmp_path / "fresh", snapshotter="vfs")
    assert tree(fresh / "rootfs") == tree(bundle / "rootfs")
    ran = pyrun("run", "--bundle", str(fresh), pyrun.id("scratch"))
    assert (ran.returncode, ran.stdout) == (0, "from-scratch\n/tmp\n0\n"), ran


def test_commit_of_a_bundle_without_a_valid_config_says_why(store: Store, bundles: Bundles) -> None:
    bundle = bundles.make(["true"], own_rootfs=True)
    (bundle / "config.json").write_text('{"ociVersion": 1}')
    result = image_cli(Path(store.root), "commit", str(bundle), "localhost/snap/x:1")
    assert result.returncode == 1
    assert "cannot commit" in result.stderr and "ociVersion" in result.stderr
    assert "localhost/snap/x:1" not in stored_names(Path(store.root))
    assert [p for p in (Path(store.root) / "blobs").rglob("*") if p.is_file()] == []


def _layer_members(store: Store, manifest_digest: str) -> tuple[str, dict[str, bytes | None]]:
    """The digest of the image's last layer and its members (name -> a file's contents)."""
    import io
    import tarfile

    layer = store.read_json(manifest_digest)["layers"][-1]
    members: dict[str, bytes | None] = {}
    with tarfile.open(fileobj=io.BytesIO(store.read_blob(layer["digest"]))) as archive:
        for member in archive:
            data = archive.extractfile(member) if member.isfile() else None
            members[member.name] = data.read() if data else None
    return layer["digest"], members


def test_vfs_commit_writes_only_what_changed_since_the_unpack(store: Store, tmp_path: Path) -> None:
    root = Path(store.root)
    base_image(store)
    layers = []
    for attempt in ("one", "two"):
        bundle = unpack(store, "localhost/snap/base:1", tmp_path / attempt, "vfs")
        added = bundle / "rootfs/added"
        added.write_text("x\n")  # right after the unpack: in the scan's fresh window
        os.utime(added, (1_700_000_000, 1_700_000_000))
        result = image_cli(root, "commit", str(bundle), f"localhost/snap/vfs:{attempt}")
        assert result.returncode == 0, result.stderr
        digest, members = _layer_members(store, result.stdout.strip())
        assert members == {"added": b"x\n"}
        layers.append(digest)
    assert layers[0] == layers[1]  # the same change, the same layer


def test_vfs_commit_sees_a_same_size_rewrite_with_its_mtime_put_back(
    store: Store, tmp_path: Path
) -> None:
    base_image(store)
    bundle = unpack(store, "localhost/snap/base:1", tmp_path / "b", "vfs")
    motd = bundle / "rootfs/etc/motd"
    before = os.lstat(motd)
    motd.write_text("HELLO FROM THE IMAGE\n")  # same size
    os.utime(motd, ns=(before.st_atime_ns, before.st_mtime_ns))  # touch -r
    assert os.lstat(motd).st_size == before.st_size
    result = image_cli(Path(store.root), "commit", str(bundle), "localhost/snap/motd:1")
    assert result.returncode == 0, result.stderr
    _, members = _layer_members(store, result.stdout.strip())
    assert members == {"etc": None, "etc/motd": b"HELLO FROM THE IMAGE\n"}


# -- the fast command path -----------------------------------------------------------------------

HEAVY = ("click", "json", "re", "dataclasses", "pathlib", "hashlib", "yaml", "jsonschema")


def _imported(stderr: str) -> set[str]:
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


def test_fast_unpack_imports_nothing_heavy_and_writes_what_the_full_path_writes(
    store: Store, tmp_path: Path
) -> None:
    from tests.conftest import PYRUN, VENV_BIN

    base_image(store)
    unpack(store, "localhost/snap/base:1", tmp_path / "first")  # makes the layer snapshots
    argv = [str(VENV_BIN / "python"), "-IS", "-X", "importtime", PYRUN, "image", "--root"]
    argv += [store.root, "unpack", "--snapshotter", "overlay", "localhost/snap/base:1"]
    fast = subprocess.run([*argv, str(tmp_path / "fast/")], capture_output=True, text=True)
    assert fast.returncode == 0, fast.stderr[-2000:]
    assert fast.stdout == f"{tmp_path}/fast\n"  # as pathlib prints it, like the full path
    modules = _imported(fast.stderr)
    assert "imagetools.snapshots.quick" in modules
    heavy = sorted(m for m in modules if m.split(".")[0] in HEAVY)
    assert not heavy, f"the fast path imported {heavy}"
    # --force is not the fast path's: click and imagetools.unpack do it.
    full = subprocess.run(
        [*argv[4:], "--force", str(tmp_path / "full")], capture_output=True, text=True
    )
    assert full.returncode == 0, full.stderr
    configs = []
    for name in ("fast", "full"):
        config = json.loads((tmp_path / name / "config.json").read_text())
        assert config["annotations"].pop(SNAPSHOT) != ""
        configs.append(config)
        assert overlay_mount(tmp_path / name / "rootfs") is not None
    assert configs[0] == configs[1]


def test_fast_unpack_falls_back_when_layers_are_missing(store: Store, tmp_path: Path) -> None:
    base_image(store)
    result = image_cli(Path(store.root), "unpack", "--snapshotter", "overlay",
                       "localhost/snap/base:1", str(tmp_path / "b"))  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert len(layer_dirs(store)) == 3
    assert (tmp_path / "b/rootfs/etc/motd").exists()
    again = image_cli(Path(store.root), "unpack", "--snapshotter", "overlay",
                      "localhost/snap/base:1", str(tmp_path / "b"))  # fmt: skip
    assert again.returncode == 1 and "exists" in again.stderr  # the full path's words


# -- releasing a bundle whose container runs; --force and --limit ----------------------------


def _stop(pyrun: Runtime, cid: str) -> None:
    """Kill the container this test started and wait until it is stopped."""
    pyrun("kill", cid, "KILL")
    deadline = time.monotonic() + 30
    while pyrun.state(cid)["status"] != "stopped":
        assert time.monotonic() < deadline, "the container did not stop"
        time.sleep(0.05)


def test_a_running_containers_snapshot_is_neither_replaced_nor_removed(
    store: Store, tmp_path: Path, pyrun: Runtime
) -> None:
    """The container's copy of its overlay lives in its own mount namespace (after
    pivot_root), which the host's mountinfo does not show: unpack --force and snapshots rm
    look there too, refuse, and change nothing."""
    root = Path(store.root)
    base_image(store)
    bundle = unpack(store, "localhost/snap/base:1", tmp_path / "bundle")
    snap = snapshot_dir(store, bundle)
    set_args(bundle, ["sleep", "300"])
    cid = pyrun.id()
    pyrun.ok("run", "-d", "--bundle", str(bundle), cid)
    pid = pyrun.state(cid)["pid"]
    words = f"snapshot {snap.name} of {bundle} is in use by a running container (pid {pid})"
    for args in (
        ("unpack", "--force", "--snapshotter", "overlay", "localhost/snap/base:1", str(bundle)),
        ("unpack", "--force", "--snapshotter", "vfs", "localhost/snap/base:1", str(bundle)),
        ("snapshots", "rm", snap.name),
    ):
        refused = image_cli(root, *args)
        assert refused.returncode == 1, (args, refused.stderr)
        assert refused.stderr == f"pyrun: {words}: stop it first\n", args
        assert (snap / "upper").is_dir() and (snap / "meta.json").exists()
        assert annotations(bundle)[SNAPSHOT] == snap.name
        options = overlay_mount(bundle / "rootfs")
        assert options is not None and options["upperdir"] == f"{snap}/upper"
    wrote = pyrun("exec", cid, "sh", "-c", "echo x >/f && cat /f")
    assert (wrote.returncode, wrote.stdout) == (0, "x\n"), wrote
    assert (snap / "upper/f").read_text() == "x\n"

    _stop(pyrun, cid)  # stopped, not deleted: its namespace is gone, the host mount stays
    again = image_cli(root, "unpack", "--force", "localhost/snap/base:1", str(bundle))
    assert again.returncode == 0, again.stderr
    assert not snap.exists()
    fresh = snapshot_dir(store, bundle)
    assert fresh != snap and not (bundle / "rootfs/f").exists()
    pyrun.ok("delete", cid)  # the container's annotations name the old snapshot: gone already
    assert overlay_mount(bundle / "rootfs") is not None and fresh.exists()
    removed = image_cli(root, "snapshots", "rm", fresh.name)
    assert removed.returncode == 0, removed.stderr
    assert mounts_under(tmp_path) == [] and not fresh.exists()


def test_vfs_unpack_force_replaces_an_overlay_bundle(store: Store, tmp_path: Path) -> None:
    root = Path(store.root)
    base_image(store)
    bundle = unpack(store, "localhost/snap/base:1", tmp_path / "bundle")
    old = snapshot_dir(store, bundle)
    (bundle / "rootfs/etc/motd").write_text("changed\n")
    result = image_cli(
        root, "unpack", "--force", "--snapshotter", "vfs", "localhost/snap/base:1", str(bundle)
    )
    assert result.returncode == 0, result.stderr
    assert mounts_under(tmp_path) == []
    assert not old.exists()
    new = snapshot_dir(store, bundle)
    assert json.loads((new / "meta.json").read_text())["kind"] == "vfs"
    assert (bundle / "rootfs/etc/motd").read_text() == "hello from the image\n"
    assert sorted(os.listdir(bundle / "rootfs/data")) == ["two"]
    # And back to overlay.
    back = image_cli(root, "unpack", "--force", "localhost/snap/base:1", str(bundle))
    assert back.returncode == 0, back.stderr
    assert overlay_mount(bundle / "rootfs") is not None and not new.exists()
    assert image_cli(root, "snapshots", "rm", annotations(bundle)[SNAPSHOT]).returncode == 0
    assert mounts_under(tmp_path) == []


def test_overlay_unpack_keeps_to_the_limit_as_vfs_does(store: Store, tmp_path: Path) -> None:
    root = Path(store.root)
    base_image(store)
    ref = "localhost/snap/base:1"
    target = tmp_path / "o"

    def refused(snapshotter: str) -> str:
        result = image_cli(root, "unpack", "--snapshotter", snapshotter, "--limit=1000", ref,
                           str(target))  # fmt: skip
        assert result.returncode == 1, result.stderr
        assert not target.exists()
        assert mounts_under(tmp_path) == []
        assert not list((root / "snapshots/bundles").glob("*"))
        assert not list((root / "snapshots/tmp").glob("*"))
        return result.stderr

    words = refused("vfs")
    assert "refusing a possible decompression bomb" in words
    assert refused("overlay") == words  # while making the layer snapshots
    assert layer_dirs(store) == []
    made = unpack(store, ref, tmp_path / "ok")  # no --limit: the layer snapshots are made
    assert image_cli(root, "snapshots", "rm", annotations(made)[SNAPSHOT]).returncode == 0
    assert len(layer_dirs(store)) == 3
    assert refused("overlay") == words  # made before: their recorded sizes count
    big = image_cli(root, "unpack", "--limit", str(64 << 20), ref, str(target))
    assert big.returncode == 0, big.stderr
    assert overlay_mount(target / "rootfs") is not None


def test_ctrl_c_during_an_overlay_unpack_leaves_no_bundle(store: Store, tmp_path: Path) -> None:
    many = tar(*[file(f"many/{i:05d}", b"x" * 700) for i in range(20000)])
    put_image(store, "localhost/snap/big:1", [busybox_layer(), many])
    bundle = tmp_path / "b1"
    argv = [PYRUN, "image", "--root", store.root, "unpack", "--snapshotter", "overlay"]
    child = subprocess.Popen(
        [*argv, "localhost/snap/big:1", str(bundle)], stderr=subprocess.PIPE, text=True
    )
    tmp = Path(store.root) / "snapshots/tmp"
    deadline = time.monotonic() + 60
    interrupted = False
    while time.monotonic() < deadline and child.poll() is None:
        partial = [d for d in tmp.glob("*/fs/many") if d.is_dir()] if tmp.exists() else []
        if partial and len(os.listdir(partial[0])) > 100:
            child.send_signal(signal.SIGINT)
            interrupted = True
            break
        time.sleep(0.005)
    _, stderr = child.communicate(timeout=60)
    assert interrupted, "the unpack finished before it could be interrupted"
    assert (child.returncode, stderr) == (130, "pyrun: interrupted\n")
    assert not bundle.exists()
    assert [p.name for p in tmp.iterdir()] == []
    assert len(layer_dirs(store)) == 1  # busybox finished; the big layer went with its tmp dir
    assert not list((Path(store.root) / "snapshots/bundles").glob("*"))
    assert mounts_under(tmp_path) == []
