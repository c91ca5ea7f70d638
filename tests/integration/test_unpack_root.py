"""apply_layer as root: ownership, setuid and file capabilities in the right order, device
nodes, trusted xattrs, overlay-style whiteouts (the overlay snapshotter's mode), and the
chown-through-symlink escape with real owners."""

from __future__ import annotations

import os
import stat
import struct
import tarfile
from pathlib import Path

import pytest

from imagetools.errors import UnpackError
from tests.support.layers import (
    HostWatch,
    Member,
    apply,
    chardev,
    directory,
    fifo,
    file,
    hardlink,
    opaque,
    symlink,
    tar,
    whiteout,
)

pytestmark = pytest.mark.root
if os.geteuid() != 0:
    pytest.skip("needs root (chown, mknod, trusted xattrs)", allow_module_level=True)

# security.capability, VFS_CAP_REVISION_2 with the effective bit: cap_net_raw permitted.
CAPABILITY = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "rootfs"
    path.mkdir()
    return path


def owner(path: Path) -> tuple[int, int]:
    info = os.lstat(path)
    return info.st_uid, info.st_gid


def test_ownership_of_every_kind(root: Path) -> None:
    apply(
        root,
        tar(
            directory("d", uid=100, gid=101),
            file("d/f", b"x", uid=1000, gid=1001),
            symlink("d/l", "f", uid=1002, gid=1003),
            fifo("d/p", uid=1004, gid=1005),
            hardlink("d/h", "d/f", uid=1, gid=1),  # a hardlink keeps its target's owner
        ),
    )
    assert owner(root / "d") == (100, 101)
    assert owner(root / "d/f") == (1000, 1001)
    assert owner(root / "d/l") == (1002, 1003)
    assert owner(root / "d/p") == (1004, 1005)
    assert owner(root / "d/h") == (1000, 1001)
    assert os.lstat(root / "d/h").st_ino == os.lstat(root / "d/f").st_ino


def test_setuid_and_capabilities_survive_the_chown(root: Path) -> None:
    """chown clears setuid/setgid and security.capability: chown, then chmod, then xattrs."""
    apply(
        root,
        tar(
            file("suid", b"x", mode=0o4755, uid=1000, gid=1000),
            file("sgid", b"x", mode=0o2755, uid=0, gid=50),
            file("ping", b"x", mode=0o755, uid=1000),
            directory("shared", mode=0o3777, uid=5, gid=5),
        ),
    )
    assert stat.S_IMODE(os.lstat(root / "suid").st_mode) == 0o4755
    assert stat.S_IMODE(os.lstat(root / "sgid").st_mode) == 0o2755
    assert stat.S_IMODE(os.lstat(root / "shared").st_mode) == 0o3777
    assert owner(root / "ping") == (1000, 0)


def test_binary_xattrs_and_trusted_namespace(root: Path) -> None:
    """security.capability is set after the chown to uid 1000 (which would clear it). tarfile
    writes PAX values as UTF-8: LIBARCHIVE's base64 records carry arbitrary bytes."""
    import base64

    value = base64.b64encode(CAPABILITY).decode()
    apply(
        root,
        tar(
            file(
                "ping",
                b"x",
                uid=1000,
                pax={
                    "LIBARCHIVE.xattr.security.capability": value,
                    "SCHILY.xattr.trusted.note": "t",
                },
            ),
            symlink("link", "ping", pax={"SCHILY.xattr.trusted.onlink": "s"}),
        ),
    )
    assert os.getxattr(root / "ping", "security.capability") == CAPABILITY
    assert os.getxattr(root / "ping", "trusted.note") == b"t"
    assert os.getxattr(root / "link", "trusted.onlink", follow_symlinks=False) == b"s"
    assert b"trusted.onlink" not in b"".join(n.encode() for n in os.listxattr(root / "ping"))


def test_devices_are_created(root: Path) -> None:
    block = Member("dev/loop0", tarfile.BLKTYPE, mode=0o660, devmajor=7, devminor=0, gid=6)
    result = apply(root, tar(directory("dev"), chardev("dev/null", 1, 3, uid=0), block))
    null = os.lstat(root / "dev/null")
    assert (
        stat.S_ISCHR(null.st_mode) and os.major(null.st_rdev) == 1 and os.minor(null.st_rdev) == 3
    )
    assert stat.S_IMODE(null.st_mode) == 0o666
    loop = os.lstat(root / "dev/loop0")
    assert stat.S_ISBLK(loop.st_mode) and os.major(loop.st_rdev) == 7
    assert stat.S_IMODE(loop.st_mode) == 0o660 and loop.st_gid == 6
    assert result.warnings == []


def test_overlay_whiteouts_are_char_devices_and_opaque_xattrs(root: Path) -> None:
    result = apply(
        root,
        tar(
            directory("etc"),
            whiteout("etc/gone"),
            whiteout("etc/mine"),
            file("etc/mine", b"same layer"),  # an entry of this layer wins over its whiteout
            file("etc/kept", b"k"),
            whiteout("etc/kept"),  # ...in either order
            directory("var/cache"),
            opaque("var/cache"),
            file("var/cache/new", b"n"),
            opaque("fresh/dir"),  # its directory did not exist: made, then marked
        ),
        whiteouts="overlay",
    )
    gone = os.lstat(root / "etc/gone")
    assert stat.S_ISCHR(gone.st_mode) and gone.st_rdev == os.makedev(0, 0)
    assert (root / "etc/mine").read_bytes() == b"same layer"
    assert (root / "etc/kept").read_bytes() == b"k"
    assert os.getxattr(root / "var/cache", "trusted.overlay.opaque") == b"y"
    assert os.getxattr(root / "fresh/dir", "trusted.overlay.opaque") == b"y"
    assert sorted(os.listdir(root / "var/cache")) == ["new"]
    assert not any(name.startswith(".wh.") for _, _, files in os.walk(root) for name in files)
    assert result.entries == 10


def test_overlay_whiteouts_can_be_mounted(tmp_path: Path) -> None:
    """The overlay-mode layer really hides the lower files under a kernel overlay mount."""
    lower, upper, work, merged = (tmp_path / n for n in ("lower", "upper", "work", "merged"))
    for path in (lower, upper, work, merged):
        path.mkdir()
    apply(
        lower,
        tar(
            directory("d"),
            file("d/a", b"a"),
            file("d/b", b"b"),
            directory("o"),
            file("o/old", b"o"),
            file("top", b"t"),
        ),
    )
    apply(
        upper,
        tar(whiteout("d/a"), opaque("o"), file("o/new", b"n"), whiteout("top")),
        whiteouts="overlay",
    )
    options = f"lowerdir={lower},upperdir={upper},workdir={work}"
    if os.system(f"mount -t overlay overlay -o {options} {merged} 2>/dev/null") != 0:
        pytest.skip("overlay mounts are not available here")
    try:
        assert sorted(os.listdir(merged / "d")) == ["b"]
        assert sorted(os.listdir(merged / "o")) == ["new"]
        assert not (merged / "top").exists()
    finally:
        os.system(f"umount {merged}")


def test_overlay_mode_still_refuses_bad_whiteouts(root: Path) -> None:
    with pytest.raises(UnpackError, match="a whiteout without a name"):
        apply(root, tar(file("d/.wh.")), whiteouts="overlay")


def test_chown_and_chmod_never_go_through_a_symlink(tmp_path: Path) -> None:
    """CVE-2021-32760 with real owners: host files keep their owner, mode and times."""
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "file").write_text("host")
    os.chmod(canary / "file", 0o600)
    watch = HostWatch(tmp_path, rootfs)
    apply(
        rootfs,
        tar(
            symlink("f", str(canary / "file")),
            symlink("d", str(canary)),
            symlink("dev", str(canary)),
        ),
    )
    apply(
        rootfs,
        tar(
            file("f", b"x", mode=0o4777, uid=4242, gid=4242),
            directory("d", mode=0o777, uid=4242),
            chardev("dev", 1, 3, uid=4242),  # replaces the symlink, never mknod through it
            hardlink("h", "f"),
        ),
    )
    assert owner(rootfs / "f") == (4242, 4242)
    assert stat.S_ISCHR(os.lstat(rootfs / "dev").st_mode)
    assert watch.changes() == []


ROOTLESS_SCRIPT = """
import io, os, sys
sys.path.insert(0, {repo!r})
from imagetools.layer import apply_layer
from tests.support.layers import PLAIN, chardev, directory, file, tar
root = {root!r}
os.mkdir(root)
first = tar(directory("ro", mode=0o555), file("ro/a", b"a", mode=0o444),
            directory("locked", mode=0o000), file("locked/x", b"x", mode=0), chardev("null", 1, 3))
second = tar(file("ro/b", b"b"), file("ro/.wh.a"), file("locked/y", b"y"))
warnings = []
for layer in (first, second):
    warnings += apply_layer(root, io.BytesIO(layer), PLAIN, rootless=True).warnings
print(len(warnings))
"""


def test_an_unprivileged_user_writes_into_read_only_directories_of_lower_layers() -> None:
    """Rootless for real (uid 65534): a 0555 and a 0000 directory of the first layer take the
    second layer's files, and keep their modes in the end."""
    import shutil
    import subprocess
    import sys
    import tempfile

    from tests.conftest import REPO

    base = Path(tempfile.mkdtemp(prefix="pyrun-rootless-"))
    try:
        os.chmod(base, 0o755)
        os.chown(base, 65534, 65534)
        root = base / "rootfs"
        script = ROOTLESS_SCRIPT.format(repo=str(REPO), root=str(root))
        result = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable,
             "-c", script],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert result.stdout == "1\n"  # the device placeholder's warning
        assert stat.S_IMODE(os.lstat(root / "ro").st_mode) == 0o555
        assert stat.S_IMODE(os.lstat(root / "locked").st_mode) == 0o000
        assert sorted(os.listdir(root / "ro")) == ["b"]
        assert sorted(os.listdir(root / "locked")) == ["x", "y"]
        assert os.lstat(root / "ro/b").st_uid == 65534
    finally:
        shutil.rmtree(base)


def test_overlay_layer_with_lowers_matches_the_vfs_tree(tmp_path: Path) -> None:
    """lowers=: a layer without entries for its parents gets them as the lowers have them (a
    symlinked lib copied up and followed, a 1777 tmp kept 1777), so the overlay mount shows
    what applying both layers in one directory gives."""
    first = tar(
        directory("usr", mode=0o755),
        directory("usr/lib", mode=0o750, uid=5, gid=6, mtime=1_000_000),
        symlink("lib", "usr/lib"),
        directory("tmp", mode=0o1777),
        directory("etc"),
        file("etc/old", b"o"),
    )
    second = tar(file("lib/x.so", b"so"), file("tmp/new", b"n"), whiteout("etc/old"))
    vfs, lower, upper, work, merged = (
        tmp_path / n for n in ("vfs", "lower", "upper", "work", "merged")
    )
    for path in (vfs, lower, upper, work, merged):
        path.mkdir()
    apply(vfs, first)
    apply(vfs, second)
    apply(lower, first, whiteouts="overlay")
    apply(upper, second, whiteouts="overlay", lowers=[str(lower)])
    assert os.readlink(upper / "lib") == "usr/lib"
    info = os.lstat(upper / "usr/lib")
    assert (stat.S_IMODE(info.st_mode), info.st_uid, info.st_gid) == (0o750, 5, 6)
    assert info.st_mtime == 1_000_000
    assert stat.S_IMODE(os.lstat(upper / "tmp").st_mode) == 0o1777
    assert os.lstat(upper / "etc/old").st_rdev == 0
    options = f"lowerdir={lower},upperdir={upper},workdir={work}"
    if os.system(f"mount -t overlay overlay -o {options} {merged} 2>/dev/null") != 0:
        pytest.skip("overlay mounts are not available here")
    try:
        for path in ("usr", "usr/lib", "usr/lib/x.so", "lib", "tmp", "tmp/new", "etc"):
            a, b = os.lstat(vfs / path), os.lstat(merged / path)
            assert (a.st_mode, a.st_uid, a.st_gid) == (b.st_mode, b.st_uid, b.st_gid), path
        assert sorted(os.listdir(merged / "etc")) == sorted(os.listdir(vfs / "etc")) == []
        assert sorted(os.listdir(merged / "usr/lib")) == ["x.so"]
    finally:
        os.system(f"umount {merged}")
