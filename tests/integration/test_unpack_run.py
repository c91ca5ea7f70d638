"""`pyrun image unpack REF BUNDLE` then `pyrun run`: a busybox image made in memory (two
layers, a whiteout, a user looked up in the image's /etc/passwd) runs as its config says."""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from imagetools.store import Store
from tests.conftest import PYRUN, Runtime
from tests.support.imagecli import image_cli
from tests.support.layers import (
    GZIP,
    PLAIN,
    ZSTD,
    chardev,
    directory,
    file,
    gz,
    put_image,
    sha256,
    tar,
    whiteout,
)

pytestmark = pytest.mark.root
if os.geteuid() != 0:
    pytest.skip("needs root (containers, chown)", allow_module_level=True)

PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n"
GROUP = "root:x:0:\nwheel:x:10:app\napp:x:1000:\n"


def busybox_layer(rootfs: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        archive.add(str(rootfs), arcname=".", recursive=True)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def base_layer(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    from tests.conftest import REPO

    rootfs = tmp_path_factory.mktemp("busybox") / "rootfs"
    os.system(f"{REPO}/bundles/build-rootfs {rootfs}")
    return busybox_layer(rootfs)


def app_layer() -> bytes:
    return tar(
        file("etc/passwd", PASSWD.encode()),
        file("etc/group", GROUP.encode()),
        directory("home/app", mode=0o750, uid=1000, gid=1000),
        file("home/app/hello", b"hello from the image\n", uid=1000, gid=1000),
        whiteout("etc/hostname"),
        chardev("dev/kmsg-copy", 1, 11),
    )


CONFIG = {
    "Entrypoint": ["/bin/sh", "-c"],
    "Cmd": ['echo "$(id -u):$(id -g):$(id -G) $PWD $GREETING $HOME"; cat hello; ls /etc'],
    "Env": ["GREETING=hi", "PATH=/bin:/usr/bin"],
    "WorkingDir": "/home/app",
    "User": "app",
    "Labels": {"org.example": "yes"},
    "ExposedPorts": {"8080/tcp": {}},
}


@pytest.mark.parametrize("media", [GZIP, ZSTD, PLAIN])
def test_unpack_then_run(tmp_path: Path, pyrun: Runtime, base_layer: bytes, media: str) -> None:
    store_root = tmp_path / "store"
    put_image(
        Store(str(store_root)),
        "localhost/app:1",
        [base_layer, app_layer()],
        CONFIG,
        media=media,
        created=None,
    )
    bundle = tmp_path / "bundle"
    result = image_cli(store_root, "unpack", "--snapshotter", "vfs", "localhost/app:1", str(bundle))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(bundle)
    assert result.stderr == ""
    config = json.loads((bundle / "config.json").read_text())
    assert config["process"]["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [10]}
    assert config["annotations"]["org.example"] == "yes"
    assert config["annotations"]["org.opencontainers.image.exposedPorts"] == "8080/tcp"
    assert not (bundle / "rootfs/etc/hostname").exists()
    assert os.major(os.lstat(bundle / "rootfs/dev/kmsg-copy").st_rdev) == 1
    run = pyrun.ok("run", "--bundle", str(bundle), pyrun.id())
    lines = run.stdout.splitlines()
    assert lines[0] == "1000:1000:1000 10 /home/app hi /home/app"
    assert lines[1] == "hello from the image"
    assert "hostname" not in lines[2:] and "passwd" in lines[2:]


def test_unpack_refuses_an_existing_bundle_and_force_replaces_it(
    tmp_path: Path, base_layer: bytes
) -> None:
    store_root = tmp_path / "store"
    put_image(Store(str(store_root)), "localhost/bb:1", [base_layer], {"Cmd": ["sh"]}, created=None)
    bundle = tmp_path / "bundle"
    args = ("unpack", "--snapshotter", "vfs", "localhost/bb:1", str(bundle))
    assert image_cli(store_root, *args).returncode == 0
    again = image_cli(store_root, *args)
    assert again.returncode == 1
    assert (
        again.stderr == f"pyrun: File {bundle}/config.json exists. Remove it first or use --force\n"
    )
    (bundle / "rootfs/marker").write_text("old")
    assert image_cli(store_root, *args, "--force").returncode == 0
    assert not (bundle / "rootfs/marker").exists()


def test_rootless_unpack_warns_about_devices(tmp_path: Path) -> None:
    store_root = tmp_path / "store"
    layer = tar(directory("dev"), chardev("dev/null", 1, 3), file("bin/true", b""))
    put_image(
        Store(str(store_root)), "localhost/dev:1", [layer], {"Cmd": ["/bin/true"]}, created=None
    )
    bundle = tmp_path / "bundle"
    result = image_cli(
        store_root, "unpack", "--snapshotter", "vfs", "--rootless", "localhost/dev:1", str(bundle)
    )
    assert result.returncode == 0, result.stderr
    assert "pyrun: warning: layer sha256:" in result.stderr
    assert "dev/null: character device 1:3 cannot be created without privileges" in result.stderr
    assert (bundle / "rootfs/dev/null").stat().st_size == 0
    config = json.loads((bundle / "config.json").read_text())
    assert {"type": "user"} in config["linux"]["namespaces"]


def test_bad_layers_fail_cleanly(tmp_path: Path) -> None:
    store_root = tmp_path / "store"
    store = Store(str(store_root))
    evil = tar(file("../../escape", b"x"))
    put_image(store, "localhost/evil:1", [evil], {"Cmd": ["x"]}, created=None)
    bundle = tmp_path / "bundle"
    result = image_cli(
        store_root, "unpack", "--snapshotter", "vfs", "localhost/evil:1", str(bundle)
    )
    assert result.returncode == 1
    digest = sha256(gz(evil))
    assert result.stderr == (
        f"pyrun: layer {digest}: entry '../../escape': the name climbs out of the root (../)\n"
    )
    assert not bundle.exists()  # made by the unpack, removed with what failed
    assert not (tmp_path / "escape").exists()
    no_cmd = tar(file("f"))
    put_image(store, "localhost/nocmd:1", [no_cmd], {}, created=None)
    result = image_cli(
        store_root, "unpack", "--snapshotter", "vfs", "localhost/nocmd:1", str(bundle)
    )
    assert result.returncode == 1
    assert "neither Entrypoint nor Cmd" in result.stderr
    assert not (bundle / "config.json").exists() and not (bundle / "rootfs").exists()


def test_pyrun_binary_exists() -> None:
    assert os.path.exists(PYRUN)
