"""Image config -> runtime config (imagetools/convert.py) and the unpack plumbing that needs
no root: resolving a stored image, refusing to overwrite a bundle, cleaning up after a bad
layer."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from imagetools.convert import DEFAULT_PATH, ConversionError, resolve_user, runtime_config
from imagetools.errors import ImageError, UnpackError
from imagetools.store import Store
from imagetools.unpack import unpack
from runtime.lifecycle.specgen import default_config
from tests.support.layers import directory, file, put_image, sha256, tar

PASSWD = """root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
# a comment
app:x:1000:1000:App:/home/app:/bin/sh
nohome:x:1001:1001::
"""
GROUP = """root:x:0:
wheel:x:10:root,app
audio:x:29:app
staff:x:50:
app:x:1000:
"""


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "rootfs"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text(PASSWD)
    (root / "etc/group").write_text(GROUP)
    return root


def convert(config: dict[str, Any], rootfs: Path | None = None, **kw: Any) -> dict[str, Any]:
    image = {"os": "linux", "architecture": "amd64", "config": config}
    return runtime_config(image, str(rootfs) if rootfs else None, **kw)


@pytest.mark.parametrize(
    ("entrypoint", "cmd", "args"),
    [
        (None, ["sh"], ["sh"]),
        (["/entry", "-x"], None, ["/entry", "-x"]),
        (["/entry"], ["a", "b"], ["/entry", "a", "b"]),
        ([], ["sh", "-c", "true"], ["sh", "-c", "true"]),
    ],
)
def test_args_are_entrypoint_then_cmd(
    entrypoint: list[str] | None, cmd: list[str] | None, args: list[str]
) -> None:
    assert convert({"Entrypoint": entrypoint, "Cmd": cmd})["process"]["args"] == args


def test_no_command_is_a_clear_error() -> None:
    with pytest.raises(ConversionError, match="neither Entrypoint nor Cmd"):
        convert({"Entrypoint": None, "Cmd": []})


def test_env_cwd_and_the_runtime_profile() -> None:
    config = convert({"Cmd": ["sh"], "Env": ["A=1", "PATH=/bin"], "WorkingDir": "/srv"})
    process = config["process"]
    assert process["env"] == ["A=1", "PATH=/bin", "HOME=/"]
    assert process["cwd"] == "/srv"
    assert process["terminal"] is False
    assert config["root"] == {"path": "rootfs", "readonly": False}
    base = default_config(False)
    for key in ("capabilities", "rlimits", "noNewPrivileges"):
        assert process[key] == base["process"][key]
    assert config["mounts"] == base["mounts"]
    assert config["linux"] == base["linux"]  # masked paths, seccomp, devices
    assert config["hostname"] == base["hostname"]
    defaults = convert({"Cmd": ["sh"]})["process"]
    assert defaults["env"] == [f"PATH={DEFAULT_PATH}", "HOME=/"]
    assert defaults["cwd"] == "/"
    assert convert({"Cmd": ["sh"], "WorkingDir": "rel"})["process"]["cwd"] == "/rel"
    with pytest.raises(ConversionError, match="not NAME=value"):
        convert({"Cmd": ["sh"], "Env": ["JUSTNAME"]})


def test_rootless_profile() -> None:
    config = convert({"Cmd": ["sh"]}, rootless=True)
    assert {"type": "user"} in config["linux"]["namespaces"]
    assert config["linux"]["uidMappings"][0]["hostID"] == os.geteuid()


@pytest.mark.parametrize(
    ("spec", "uid", "gid", "extra", "home"),
    [
        ("", 0, 0, [10], "/root"),
        ("root", 0, 0, [10], "/root"),
        ("app", 1000, 1000, [10, 29], "/home/app"),
        ("1000", 1000, 1000, [10, 29], "/home/app"),
        ("app:staff", 1000, 50, [], "/home/app"),
        ("app:50", 1000, 50, [], "/home/app"),
        ("app:4321", 1000, 4321, [], "/home/app"),
        ("1000:audio", 1000, 29, [], "/home/app"),
        ("4242", 4242, 0, [], "/"),
        ("4242:4343", 4242, 4343, [], "/"),
        ("nohome", 1001, 1001, [], "/"),
    ],
)
def test_users_like_docker(
    rootfs: Path, spec: str, uid: int, gid: int, extra: list[int], home: str
) -> None:
    user = resolve_user(spec, str(rootfs))
    assert (user.uid, user.gid, user.additional_gids, user.home) == (uid, gid, extra, home)
    process = convert({"Cmd": ["sh"], "User": spec}, rootfs)["process"]
    assert process["user"]["uid"] == uid and process["user"]["gid"] == gid
    assert process["user"].get("additionalGids", []) == extra
    assert f"HOME={home}" in process["env"]


def test_unknown_users_and_groups_are_errors(rootfs: Path, tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match="unable to find user nobody in the image"):
        resolve_user("nobody", str(rootfs))
    with pytest.raises(ConversionError, match="unable to find group nogroup"):
        resolve_user("app:nogroup", str(rootfs))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConversionError, match=r"user app \(the image has no /etc/passwd\)"):
        resolve_user("app", str(empty))
    assert resolve_user("7:8", str(empty)).uid == 7
    with pytest.raises(ConversionError, match="out of range"):
        resolve_user("99999999999", str(empty))


def test_annotations_labels_ports_volumes_stop_signal() -> None:
    image = {
        "os": "linux",
        "architecture": "arm64",
        "variant": "v8",
        "author": "someone",
        "created": "2024-01-01T00:00:00Z",
        "config": {
            "Cmd": ["sh"],
            "Labels": {"a": "1", "org.opencontainers.image.author": "label wins"},
            "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
            "Volumes": {"/data": {}, "/logs": {}},
            "StopSignal": "SIGQUIT",
        },
    }
    annotations = runtime_config(image, None, annotations={"io.pyrun.image.name": "x"})[
        "annotations"
    ]
    assert annotations == {
        "org.opencontainers.image.os": "linux",
        "org.opencontainers.image.architecture": "arm64",
        "org.opencontainers.image.variant": "v8",
        "org.opencontainers.image.author": "label wins",
        "org.opencontainers.image.created": "2024-01-01T00:00:00Z",
        "org.opencontainers.image.stopSignal": "SIGQUIT",
        "org.opencontainers.image.exposedPorts": "53/udp,80/tcp",
        "io.pyrun.image.volumes": "/data,/logs",
        "a": "1",
        "io.pyrun.image.name": "x",
    }


def test_other_os_is_refused() -> None:
    with pytest.raises(ConversionError, match="os 'windows' is not linux"):
        runtime_config({"os": "windows", "config": {"Cmd": ["x"]}}, None)


# -- unpack from a store (rootless, so no root needed) -------------------------------------------


def test_unpack_writes_rootfs_and_config_and_refuses_to_overwrite(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "store"))
    layers = [
        tar(
            directory("etc"), file("etc/passwd", PASSWD.encode()), file("etc/group", GROUP.encode())
        ),
        tar(file("hello", b"hi"), file("etc/.wh.group")),
    ]
    put_image(
        store, "localhost/t:1", layers, {"Cmd": ["cat", "/hello"], "User": "app"}, created=None
    )
    bundle = tmp_path / "bundle"
    assert unpack(store, "localhost/t:1", bundle, rootless=True) == bundle
    assert (bundle / "rootfs/hello").read_bytes() == b"hi"
    assert not (bundle / "rootfs/etc/group").exists()
    config = json.loads((bundle / "config.json").read_text())
    assert config["process"]["args"] == ["cat", "/hello"]
    assert config["process"]["user"] == {"uid": 1000, "gid": 1000}  # no /etc/group left
    assert config["annotations"]["io.pyrun.image.name"] == "localhost/t:1"
    with pytest.raises(ImageError, match=r"config\.json exists\. Remove it first or use --force"):
        unpack(store, "localhost/t:1", bundle, rootless=True)
    (bundle / "rootfs/stale").write_text("x")
    unpack(store, "localhost/t:1", bundle, rootless=True, force=True)
    assert not (bundle / "rootfs/stale").exists()


def test_unpack_with_a_wrong_diff_id_leaves_no_rootfs(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "store"))
    put_image(store, "localhost/bad:1", [tar(file("a"))], {"Cmd": ["x"]}, created=None)
    descriptor = store.resolve("localhost/bad:1")
    manifest = store.read_json(descriptor["digest"])
    config = store.read_json(manifest["config"]["digest"])
    config["rootfs"]["diff_ids"] = [sha256(b"lie")]
    blob = json.dumps(config).encode()
    manifest["config"] = {**manifest["config"], "digest": store.write_blob(blob), "size": len(blob)}
    data = json.dumps(manifest).encode()
    store.set_ref(
        "localhost/bad:1", {**descriptor, "digest": store.write_blob(data), "size": len(data)}
    )
    bundle = tmp_path / "bundle"
    with pytest.raises(UnpackError, match=f"the image config says {sha256(b'lie')}"):
        unpack(store, "localhost/bad:1", bundle, rootless=True)
    assert not (bundle / "rootfs").exists()
    assert not (bundle / "config.json").exists()


def test_unpack_unknown_image(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "store"))
    with pytest.raises(ImageError, match="is not in the store"):
        unpack(store, "busybox", tmp_path / "b", rootless=True)
