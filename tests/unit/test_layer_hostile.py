"""Hostile layers: every past escape (images-and-registry.md) gets a clear error or the
documented safe outcome, and NOTHING outside the rootfs changes. Each test lays out

    tmp/rootfs/          where the layer goes
    tmp/canary/          a host directory next to it: secret (0600), dir/, the watch's eye
    tmp/                 everything here but rootfs is watched (paths, modes, owners, mtimes,
                         contents, link counts), and so is /etc/shadow
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from imagetools.convert import ConversionError, resolve_user, runtime_config
from imagetools.errors import UnpackError
from imagetools.layer import LayerResult
from tests.support.layers import (
    GZIP,
    PLAIN,
    HostWatch,
    apply,
    directory,
    file,
    gz,
    hardlink,
    symlink,
    tar,
)


class Host:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.rootfs = base / "rootfs"
        self.rootfs.mkdir()
        self.canary = base / "canary"
        (self.canary / "dir").mkdir(parents=True)
        self.secret = self.canary / "secret"
        self.secret.write_text("host secret\n")
        self.secret.chmod(0o600)
        os.utime(self.secret, (1_000_000_000, 1_000_000_000))
        (base / "hostpasswd").write_text("evil:x:4242:4242::/evil:/bin/sh\n")
        extra = ["/etc/shadow"] if os.path.exists("/etc/shadow") else []
        self.watch = HostWatch(base, self.rootfs, extra)

    def apply(self, data: bytes, media: str = PLAIN, **kw: object) -> LayerResult:
        kw.setdefault("rootless", os.geteuid() != 0)
        return apply(self.rootfs, data, media, **kw)

    def assert_host_untouched(self) -> None:
        assert self.watch.changes() == []


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return Host(tmp_path)


def test_dotdot_names_are_refused(host: Host) -> None:
    for name in ("../canary/pwned", "../../x", "a/../../canary/secret", "./../rootfs-sibling"):
        with pytest.raises(UnpackError, match=f"entry '{name}': the name climbs out"):
            host.apply(tar(file(name, b"pwned")))
    with pytest.raises(UnpackError, match="climbs out"):
        host.apply(gz(tar(directory("ok"), symlink("../../canary/dir/x", "y"))), GZIP)
    host.assert_host_untouched()
    assert {p.name for p in host.base.iterdir()} == {"rootfs", "canary", "hostpasswd"}


def test_absolute_names_land_inside_the_root(host: Host) -> None:
    host.apply(tar(file(f"{host.canary}/pwned", b"inside"), file("/etc/abs", b"a")))
    assert (host.rootfs / str(host.canary).lstrip("/") / "pwned").read_bytes() == b"inside"
    assert (host.rootfs / "etc/abs").read_bytes() == b"a"
    host.assert_host_untouched()


@pytest.mark.parametrize(
    "target",
    [
        "{canary}",  # absolute, to the host directory (CVE-2014-9356)
        "../canary",  # relative, one level up
        "../../../../../../../../../../{canary}",  # relative, far up
        "/../../{canary}",
        "/.",  # CVE-2021-29136: "/." then entries through it
        "..",
    ],
)
def test_symlink_then_entries_through_it_stay_inside(host: Host, target: str) -> None:
    link = target.format(canary=str(host.canary).lstrip("/"))
    if target.startswith("{"):
        link = str(host.canary)
    host.apply(
        tar(
            symlink("evil", link),
            file("evil/pwned", b"x"),
            directory("evil/dir/newdir"),
            file("evil/secret", b"overwritten?", mode=0o777),
            symlink("evil/dir/l", "/"),
            hardlink("evil/hard", "evil/secret"),
        )
    )
    host.assert_host_untouched()
    # Everything went below the rootfs, where the symlink resolves when the rootfs is "/".
    assert any(p.name == "pwned" for p in host.rootfs.rglob("pwned"))


def test_symlink_chains_and_loops(host: Host) -> None:
    host.apply(
        tar(
            symlink("a", "b"),
            symlink("b", "/c/../a/../../.."),
            symlink("c", str(host.base)),
            file("a/x", b"1"),
        )
    )
    host.assert_host_untouched()
    with pytest.raises(UnpackError, match="too many levels of symbolic links"):
        host.apply(tar(symlink("l1", "l2"), symlink("l2", "l1"), file("l1/x")))
    host.assert_host_untouched()


def test_entries_replacing_the_root_are_refused(host: Host) -> None:
    for entry in (
        symlink(".", str(host.canary)),
        symlink("/", "/etc"),
        file("./"),
        symlink("/.", "/"),
        hardlink(".", "etc/passwd"),
    ):
        with pytest.raises(UnpackError, match="would replace the root directory"):
            host.apply(tar(entry, file("after", b"x")))
    assert stat.S_ISDIR(os.lstat(host.rootfs).st_mode)
    host.assert_host_untouched()


def test_hardlinks_to_host_files_are_refused_or_stay_inside(host: Host) -> None:
    for link in ("/etc/shadow", str(host.secret), "etc/shadow"):
        with pytest.raises(UnpackError, match="does not exist"):
            host.apply(tar(hardlink("x", link)))
    for link in ("../canary/secret", "../../../../etc/shadow"):
        with pytest.raises(UnpackError, match="climbs out of the root"):
            host.apply(tar(hardlink("x", link)))
    # Through symlinks: absolute to the host's /etc, relative far up, then the /. trick.
    with pytest.raises(UnpackError, match="does not exist"):
        host.apply(tar(symlink("hostetc", "/etc"), hardlink("x", "hostetc/shadow")))
    with pytest.raises(UnpackError, match="does not exist"):
        host.apply(tar(symlink("up", "../../../../.."), hardlink("x", f"up{host.secret}")))
    # With an image's own etc/shadow, the link is to that one.
    host.apply(
        tar(
            directory("etc"),
            file("etc/shadow", b"image"),
            symlink("hostetc", "/etc"),
            hardlink("x", "hostetc/shadow"),
            hardlink("y", "/etc/shadow"),
        )
    )
    inode = os.lstat(host.rootfs / "etc/shadow").st_ino
    assert os.lstat(host.rootfs / "x").st_ino == inode == os.lstat(host.rootfs / "y").st_ino
    host.assert_host_untouched()


def test_hardlink_through_a_symlinked_last_component_links_the_symlink(host: Host) -> None:
    host.apply(tar(symlink("s", str(host.secret)), hardlink("h", "s")))
    assert os.readlink(host.rootfs / "h") == str(host.secret)
    assert os.lstat(host.secret).st_nlink == 1
    host.assert_host_untouched()


def test_no_chmod_chown_or_utime_through_a_symlink(host: Host) -> None:
    """CVE-2021-32760: a symlink to a host file, then entries of the same name with other
    modes (setuid), owners and times: the symlink is replaced, the host file untouched."""
    layer1 = tar(
        symlink("f", str(host.secret)),
        symlink("d", str(host.canary / "dir")),
        symlink("rel", "../canary/secret"),
    )
    host.apply(layer1)
    layer2 = tar(
        file("f", b"mine", mode=0o4777, uid=1234, gid=1234),
        directory("d", mode=0o777, uid=1234),
        symlink("rel", "/etc", mode=0o777),  # a symlink's mode is never applied
        directory("./", mode=0o755),
    )
    host.apply(layer2)
    info = os.lstat(host.rootfs / "f")
    assert stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o4777
    assert stat.S_ISDIR(os.lstat(host.rootfs / "d").st_mode)
    host.assert_host_untouched()


def test_whiteouts_never_reach_outside(host: Host) -> None:
    host.apply(tar(symlink("evil", str(host.canary)), symlink("up", "../..")))
    host.apply(
        tar(
            file("evil/.wh.secret"),
            file("evil/.wh.dir"),
            file("up/canary/.wh.secret"),
            file(".wh.evil"),
            file("x/.wh..wh..opq"),
        )
    )
    assert not os.path.lexists(host.rootfs / "evil")
    host.assert_host_untouched()


def test_symlinked_passwd_is_read_inside_the_image(host: Host) -> None:
    """CVE-2024-9676: /etc/passwd a symlink to the host's file: the user is not found."""
    for target in (str(host.base / "hostpasswd"), "../../../../../../../../hostpasswd"):
        rootfs = host.base / f"r{len(target)}"
        rootfs.mkdir()
        apply(rootfs, tar(directory("etc"), symlink("etc/passwd", target)), rootless=True)
        with pytest.raises(ConversionError, match="unable to find user evil"):
            resolve_user("evil", str(rootfs))
        image = {"config": {"User": "evil", "Cmd": ["sh"]}}
        with pytest.raises(ConversionError, match="unable to find user evil"):
            runtime_config(image, str(rootfs))
        assert resolve_user("4242", str(rootfs)).gid == 0  # numeric: no host lookup either


def test_layers_that_fail_midway_leave_the_host_alone(host: Host) -> None:
    blob = gz(tar(symlink("evil", str(host.canary)), file("evil/a", os.urandom(300_000))))
    with pytest.raises(UnpackError, match="truncated"):
        host.apply(blob[: len(blob) // 2], GZIP)
    host.assert_host_untouched()
