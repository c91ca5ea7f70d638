"""Layers built in memory for the unpack and snapshot tests (tarfile writes them; pyrun only
reads), ``apply`` (one layer onto a directory), a host-side watch that proves nothing outside a
rootfs changed, and small images: ``manifest_blob`` (a manifest of given blobs), ``put_image``
(written straight into a Store: the layers, a config with their diff_ids, an OCI or Docker
schema2 manifest, a name) and ``busybox_layer()``, a bootable base layer."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import stat
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from imagetools.layer import LayerResult, apply_layer
from imagetools.store import Store

PLAIN = "application/vnd.oci.image.layer.v1.tar"
GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MTIME = 1_600_000_000


@dataclass
class Member:
    name: str
    type: bytes = tarfile.REGTYPE
    data: bytes = b""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime: float = MTIME
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    pax: dict[str, str] = field(default_factory=dict)


def file(name: str, data: bytes = b"", mode: int = 0o644, **kw: Any) -> Member:
    return Member(name, tarfile.REGTYPE, data, mode, **kw)


def directory(name: str, mode: int = 0o755, **kw: Any) -> Member:
    return Member(name, tarfile.DIRTYPE, mode=mode, **kw)


def symlink(name: str, target: str, mode: int = 0o777, **kw: Any) -> Member:
    return Member(name, tarfile.SYMTYPE, mode=mode, linkname=target, **kw)


def hardlink(name: str, target: str, **kw: Any) -> Member:
    return Member(name, tarfile.LNKTYPE, linkname=target, **kw)


def fifo(name: str, mode: int = 0o600, **kw: Any) -> Member:
    return Member(name, tarfile.FIFOTYPE, mode=mode, **kw)


def chardev(name: str, major: int, minor: int, mode: int = 0o666, **kw: Any) -> Member:
    return Member(name, tarfile.CHRTYPE, mode=mode, devmajor=major, devminor=minor, **kw)


def whiteout(path: str) -> Member:
    head, _, base = path.rpartition("/")
    return file(f"{head}/.wh.{base}" if head else f".wh.{base}", mode=0o600)


def opaque(directory_path: str) -> Member:
    return file(f"{directory_path.rstrip('/')}/.wh..wh..opq", mode=0o600)


def tar(*members: Member, fmt: int = tarfile.PAX_FORMAT) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as archive:
        for member in members:
            info = tarfile.TarInfo(member.name)
            info.type = member.type
            info.mode = member.mode
            info.uid = member.uid
            info.gid = member.gid
            info.mtime = member.mtime
            info.linkname = member.linkname
            info.devmajor = member.devmajor
            info.devminor = member.devminor
            info.pax_headers = dict(member.pax)
            if member.type == tarfile.REGTYPE:
                info.size = len(member.data)
                archive.addfile(info, io.BytesIO(member.data))
            else:
                archive.addfile(info)
    return buffer.getvalue()


def gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=1, mtime=0)


def zst(data: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdCompressor().compress(data)


def sha256(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def apply(root: Path, data: bytes, media: str = PLAIN, **kw: Any) -> LayerResult:
    """``apply_layer`` of the layer blob ``data`` (``media``) onto the directory ``root``."""
    return apply_layer(str(root), io.BytesIO(data), media, **kw)


class HostWatch:
    """Everything under ``base`` except ``rootfs``: paths, types, modes, owners, mtimes,
    contents and link counts. ``changes()`` lists what differs from the first look."""

    def __init__(self, base: Path, rootfs: Path, extra: list[str] | None = None) -> None:
        self.base = base
        self.rootfs = rootfs
        self.extra = extra or []
        self.before = self.snapshot()

    def snapshot(self) -> dict[str, tuple[Any, ...]]:
        seen: dict[str, tuple[Any, ...]] = {}
        for dirpath, dirnames, filenames in os.walk(self.base):
            if Path(dirpath) == self.rootfs.parent:
                dirnames[:] = [d for d in dirnames if Path(dirpath, d) != self.rootfs]
            for name in [*dirnames, *filenames, "."]:
                path = os.path.join(dirpath, name)
                seen[os.path.relpath(path, self.base)] = _describe(path)
        for path in self.extra:
            seen[path] = _describe(path)
        return seen

    def changes(self) -> list[str]:
        after = self.snapshot()
        keys = set(self.before) | set(after)
        return sorted(
            f"{key}: {self.before.get(key)} -> {after.get(key)}"
            for key in keys
            if key != "." and self.before.get(key) != after.get(key)
        )


def _describe(path: str) -> tuple[Any, ...]:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return ("missing",)
    content: Any = None
    if stat.S_ISREG(info.st_mode):
        with open(path, "rb") as handle:
            content = hashlib.sha256(handle.read()).hexdigest()
    elif stat.S_ISLNK(info.st_mode):
        content = os.readlink(path)
    return (
        stat.filemode(info.st_mode),
        info.st_uid,
        info.st_gid,
        info.st_nlink,
        info.st_mtime_ns,
        content,
    )


# -- images in a Store ---------------------------------------------------------------------------
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
CREATED = "2024-01-01T00:00:00Z"
_COMPRESS = {GZIP: gz, ZSTD: zst, PLAIN: bytes}


def manifest_blob(
    config: bytes, layers: list[bytes], layer_type: str = PLAIN, *, docker: bool = False
) -> bytes:
    """An image manifest (JSON) of the blobs ``config`` and ``layers`` (as they are stored:
    ``layer_type`` says how they are compressed); ``docker``: Docker schema2 media types."""
    manifest = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
        "config": {
            "mediaType": DOCKER_CONFIG if docker else OCI_CONFIG,
            "digest": sha256(config),
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": DOCKER_LAYER if docker else layer_type,
                "digest": sha256(blob),
                "size": len(blob),
            }
            for blob in layers
        ],
    }
    return json.dumps(manifest).encode()


def put_image(
    store: Store,
    name: str,
    layers: list[bytes],
    config: dict[str, Any] | None = None,
    *,
    media: str = GZIP,
    docker: bool = False,
    created: str | None = CREATED,
) -> dict[str, Any]:
    """Store an image of ``layers`` (plain tars, bottom first; compressed here as ``media``)
    named ``name``; returns its manifest descriptor. ``config`` is the image config's
    "config" (default: Cmd /bin/sh); ``docker``: Docker schema2 media types (gzip layers);
    ``created``: the config's date and a history entry per layer (None: neither)."""
    blobs = [_COMPRESS[media](plain) for plain in layers]
    for blob in blobs:
        store.write_blob(blob)
    document: dict[str, Any] = {"architecture": "amd64", "os": "linux"}
    if created is not None:
        document["created"] = created
    document["config"] = {"Cmd": ["/bin/sh"]} if config is None else config
    document["rootfs"] = {"type": "layers", "diff_ids": [sha256(plain) for plain in layers]}
    if created is not None:
        document["history"] = [{"created": created, "created_by": "test"} for _ in layers]
    config_data = json.dumps(document).encode()
    store.write_blob(config_data)
    data = manifest_blob(config_data, blobs, media, docker=docker)
    media_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
    descriptor = {"mediaType": media_type, "digest": store.write_blob(data), "size": len(data)}
    store.set_ref(name, descriptor)
    return descriptor


_BUSYBOX_LAYER: list[bytes] = []


def busybox_layer() -> bytes:
    """A bootable base layer (plain tar): static busybox with its applets, /etc/passwd and
    the mount points a container needs."""
    if _BUSYBOX_LAYER:
        return _BUSYBOX_LAYER[0]
    import subprocess

    applets = subprocess.run(
        ["/bin/busybox", "--list"], check=True, capture_output=True, text=True
    ).stdout.split()
    with open("/bin/busybox", "rb") as handle:
        binary = handle.read()
    members = [directory(name) for name in ("bin", "etc", "proc", "sys", "dev", "root", "run")]
    members += [directory("tmp", mode=0o1777), file("bin/busybox", binary, mode=0o755)]
    members += [symlink(f"bin/{a}", "busybox") for a in applets if a != "busybox"]
    members += [
        file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/false\n"),
        file("etc/group", b"root:x:0:\nnogroup:x:65534:\n"),
    ]
    _BUSYBOX_LAYER.append(tar(*members))
    return _BUSYBOX_LAYER[0]
