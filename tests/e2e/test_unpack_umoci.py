"""Differential: `pyrun image unpack` and `umoci unpack` of the same OCI image (built offline by
umoci: busybox, then a layer with every kind of entry, a whiteout layer, an opaque layer) make
the same tree: paths, types, modes, owners, symlink targets, contents, device numbers, xattrs
(but umoci's own), mtimes and hardlink groups. A zstd copy of the image (skopeo; umoci 0.4
cannot read zstd) unpacks to the same tree as the gzip original. The bundle then runs."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

from imagetools.store import Store
from tests.conftest import Runtime
from tests.e2e.images import build_busybox_image
from tests.support.imagecli import image_cli
from tests.support.oci_layout import load_layout

pytestmark = pytest.mark.root
if os.geteuid() != 0:
    pytest.skip("needs root (umoci unpack keeps owners, devices)", allow_module_level=True)

CAPABILITY = struct.pack("<IIIII", 0x02000001, 1 << 13, 0, 0, 0)
IGNORED_XATTRS = ("user.rootlesscontainers", "security.selinux")
T = 1_500_000_000


def _run(argv: list[str]) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{argv}: {result.stderr}"
    return result.stdout


def _stage(root: Path) -> None:
    """Every kind of entry umoci insert will put into a layer."""
    root.mkdir()
    (root / "plain").write_bytes(b"plain file\n")
    (root / "secret").write_bytes(b"0600\n")
    os.chmod(root / "secret", 0o600)
    (root / "suid").write_bytes(b"#!/bin/sh\n")
    os.chown(root / "suid", 1000, 1000)
    os.chmod(root / "suid", 0o4755)
    (root / "sgid").write_bytes(b"sgid\n")
    os.chown(root / "sgid", 0, 50)
    os.chmod(root / "sgid", 0o2711)
    (root / "ping").write_bytes(b"\x7fELF fake")
    os.chown(root / "ping", 1000, 0)
    os.setxattr(root / "ping", "security.capability", CAPABILITY)
    (root / "tagged").write_bytes(b"x")
    os.setxattr(root / "tagged", "user.colour", b"blue")
    os.setxattr(root / "tagged", "trusted.level", b"\x00\x01binary")
    (root / "big").write_bytes(os.urandom(3 << 20))
    os.link(root / "big", root / "big-hardlink")
    (root / "sub").mkdir()
    os.link(root / "plain", root / "sub/plain-hardlink")
    os.mkdir(root / "sticky", 0o1777)
    os.chmod(root / "sticky", 0o1777)
    os.mkdir(root / "owned")
    os.chown(root / "owned", 4242, 4343)
    os.symlink("/etc/passwd", root / "abs-link")
    os.symlink("../plain", root / "sub/rel-link")
    os.symlink("nowhere/at/all", root / "dangling")
    os.lchown(root / "dangling", 7, 8)
    os.mknod(root / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(root / "loop9", 0o660 | stat.S_IFBLK, os.makedev(7, 9))
    os.mkfifo(root / "fifo", 0o620)
    (root / "remove-me").write_text("whited out later\n")
    (root / "remove-dir").mkdir()
    (root / "remove-dir/inner").write_text("x")
    (root / "opq").mkdir()
    (root / "opq/lower-child").write_text("hidden by the opaque layer\n")
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in dirnames + filenames + ["."]:
            os.utime(
                os.path.join(dirpath, name), ns=(T * 10**9, T * 10**9 + 5), follow_symlinks=False
            )


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    for tool in ("umoci", "skopeo"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: run `make setup`")
    work = tmp_path_factory.mktemp("umoci-image")
    busybox = build_busybox_image(work)
    layout = busybox.layout
    ref = f"{layout}:latest"
    staged = work / "staged"
    _stage(staged)
    _run(["umoci", "insert", "--image", ref, str(staged), "/opt/stuff"])
    _run(["umoci", "insert", "--image", ref, "--whiteout", "/opt/stuff/remove-me"])
    _run(["umoci", "insert", "--image", ref, "--whiteout", "/opt/stuff/remove-dir"])
    fresh = work / "fresh"
    fresh.mkdir()
    (fresh / "upper-child").write_text("kept\n")
    _run(["umoci", "insert", "--image", ref, "--opaque", str(fresh), "/opt/stuff/opq"])
    _run(["umoci", "config", "--image", ref, "--config.entrypoint", "/bin/sh",
          "--config.cmd", "-c", "--config.cmd", "cat /opt/stuff/plain; ls /opt/stuff/opq",
          "--config.workingdir", "/opt/stuff"])  # fmt: skip
    zstd = work / "zstd"
    _run(["skopeo", "copy", "--quiet", "--dest-compress", "--dest-compress-format", "zstd",
          f"oci:{ref}", f"oci:{zstd}:latest"])  # fmt: skip
    umoci_bundle = work / "umoci-bundle"
    _run(["umoci", "unpack", "--image", ref, str(umoci_bundle)])
    return {"layout": layout, "zstd": zstd, "umoci": umoci_bundle / "rootfs", "work": work}


def snapshot(root: Path) -> dict[str, Any]:
    """Everything umoci and pyrun must agree on, path by path, plus the hardlink groups."""
    entries: dict[str, Any] = {}
    inodes: dict[int, list[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            info = os.lstat(path)
            kind = stat.S_IFMT(info.st_mode)
            detail: Any = None
            if stat.S_ISREG(info.st_mode):
                with open(path, "rb") as handle:
                    detail = hashlib.sha256(handle.read()).hexdigest()
            elif stat.S_ISLNK(info.st_mode):
                detail = os.readlink(path)
            elif stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode):
                detail = (os.major(info.st_rdev), os.minor(info.st_rdev))
            xattrs = {
                key: os.getxattr(path, key, follow_symlinks=False)
                for key in sorted(os.listxattr(path, follow_symlinks=False))
                if key not in IGNORED_XATTRS
            }
            entries[rel] = {
                "type": kind,
                "mode": oct(stat.S_IMODE(info.st_mode)) if kind != stat.S_IFLNK else None,
                "owner": (info.st_uid, info.st_gid),
                "detail": detail,
                "xattrs": xattrs,
                "mtime": info.st_mtime_ns,
            }
            if not stat.S_ISDIR(info.st_mode) and info.st_nlink > 1:
                inodes.setdefault(info.st_ino, []).append(rel)
    groups = sorted(sorted(group) for group in inodes.values())
    return {"entries": entries, "hardlinks": groups}


# Directories no layer has an entry for: both tools make them at unpack time ("now").
IMPLICIT = {"opt"}


def diff(ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    problems = []
    for path in sorted(set(ours["entries"]) | set(theirs["entries"])):
        a, b = ours["entries"].get(path), theirs["entries"].get(path)
        if path in IMPLICIT and a and b:
            a, b = {**a, "mtime": None}, {**b, "mtime": None}
        if a != b:
            problems.append(f"{path}: pyrun {a} != umoci {b}")
    if ours["hardlinks"] != theirs["hardlinks"]:
        problems.append(f"hardlinks: pyrun {ours['hardlinks']} != umoci {theirs['hardlinks']}")
    return problems


def unpack_with_pyrun(tmp_path: Path, layout: Path, name: str) -> tuple[Path, str]:
    store_root = tmp_path / "store"
    load_layout(Store(str(store_root)), layout, name, "latest")
    bundle = tmp_path / "bundle"
    result = image_cli(store_root, "unpack", "--snapshotter", "vfs", name, str(bundle))
    assert result.returncode == 0, result.stderr
    return bundle, result.stderr


def test_same_tree_as_umoci(tmp_path: Path, image: dict[str, Any]) -> None:
    bundle, stderr = unpack_with_pyrun(tmp_path, image["layout"], "localhost/diff:latest")
    assert stderr == ""
    ours, theirs = snapshot(bundle / "rootfs"), snapshot(image["umoci"])
    problems = diff(ours, theirs)
    assert not problems, "\n".join(problems)
    # The differential saw what it is meant to: every kind, the whiteouts and the opaque dir.
    stuff = {k: v for k, v in ours["entries"].items() if k.startswith("opt/stuff/")}
    assert "opt/stuff/remove-me" not in stuff and "opt/stuff/remove-dir" not in stuff
    assert "opt/stuff/opq/lower-child" not in stuff and "opt/stuff/opq/upper-child" in stuff
    assert stuff["opt/stuff/ping"]["xattrs"] == {"security.capability": CAPABILITY}
    assert stuff["opt/stuff/suid"]["mode"] == "0o4755"
    assert stuff["opt/stuff/null"]["detail"] == (1, 3)
    assert ["opt/stuff/big", "opt/stuff/big-hardlink"] in ours["hardlinks"]
    assert stuff["opt/stuff/tagged"]["xattrs"]["trusted.level"] == b"\x00\x01binary"


def test_zstd_copy_gives_the_gzip_tree(tmp_path: Path, image: dict[str, Any]) -> None:
    index = json.loads((image["zstd"] / "index.json").read_text())
    manifest_digest = index["manifests"][0]["digest"].split(":")[1]
    manifest = json.loads((image["zstd"] / "blobs/sha256" / manifest_digest).read_text())
    assert {layer["mediaType"] for layer in manifest["layers"]} == {
        "application/vnd.oci.image.layer.v1.tar+zstd"
    }
    bundle, _ = unpack_with_pyrun(tmp_path, image["zstd"], "localhost/zstd:latest")
    problems = diff(snapshot(bundle / "rootfs"), snapshot(image["umoci"]))
    assert not problems, "\n".join(problems)


def test_the_unpacked_bundle_runs(tmp_path: Path, image: dict[str, Any], pyrun: Runtime) -> None:
    bundle, _ = unpack_with_pyrun(tmp_path, image["layout"], "localhost/run:latest")
    config = json.loads((bundle / "config.json").read_text())
    assert config["process"]["args"] == ["/bin/sh", "-c", "cat /opt/stuff/plain; ls /opt/stuff/opq"]
    assert config["process"]["cwd"] == "/opt/stuff"
    result = pyrun.ok("run", "--bundle", str(bundle), pyrun.id())
    assert result.stdout == "plain file\nupper-child\n"
