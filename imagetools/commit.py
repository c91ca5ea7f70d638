"""``pyrun image commit BUNDLE REF``: a bundle's changes become a new image (docker commit).

::

    BUNDLE/config.json annotations ──► the bundle snapshot (store metadata must agree)
    overlay: upper dir ─┐
    vfs: rootfs vs base ┴─► changeset ──tar+gzip──► layer blob (diff_id, digest)
    base image config + diff_id + history + -c changes ──► config blob ──► manifest ──► REF

The container may be running, stopped or deleted with ``run --keep``: only the snapshot is
read (an overlay's upper dir needs no mount). The new manifest keeps the base image's media
type family (OCI or Docker schema2) and refers to the base layers' blobs, which gc keeps for
as long as a bundle snapshot uses them.

A bundle that no image made (a rootfs directory and a config, as in bundles/examples) has no
base: its whole rootfs becomes the one layer of a new OCI image (``umoci repack`` / ``docker
import``), and the image config takes the command, environment, working directory and user
of the bundle's ``process``.
"""

from __future__ import annotations

import json
import os

from imagetools.errors import SnapshotError
from runtime.errors import PyrunError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

    from imagetools.store import Store


def commit(
    store: Store,
    bundle: str | os.PathLike[str],
    ref: str,
    *,
    message: str = "",
    author: str = "",
    changes: list[str] | None = None,
) -> dict[str, Any]:
    """Commit and tag; returns the new manifest's descriptor (with the name it got)."""
    from imagetools.instructions import apply_changes
    from imagetools.reference import Reference
    from imagetools.snapshots.bundles import of_bundle
    from imagetools.snapshots.changes import vfs_changes
    from imagetools.snapshots.layout import Layout

    path = os.path.realpath(bundle)
    reference = Reference.parse(ref)
    if reference.digest:
        raise SnapshotError(f"commit needs a tag, not a digest: {ref}")
    name = str(reference)
    found = of_bundle(path)
    scratch_rootfs = ""
    if found is None:
        layout, meta = None, None
        manifest: dict[str, Any] = {"layers": []}
        base_config, scratch_rootfs = _scratch_config(path)
    else:
        layout, meta = found
        if layout.store_root != os.path.realpath(store.root):
            raise SnapshotError(
                f"the bundle's image is in the store {layout.store_root}: use --root"
                f" {layout.store_root}"
            )
        manifest = store.read_json(meta["image"]["manifest"]["digest"])
        base_config = store.read_json(manifest["config"]["digest"])
    settings = apply_changes(base_config.get("config") or {}, list(changes or []))

    with store.lease():
        if layout is None or meta is None:
            everything = vfs_changes(scratch_rootfs, {"entries": [], "scanned_ns": 0})
            layer = _write_changes(store, Layout(store.root), everything)
        else:
            layer = _write_layer(store, layout, meta)
        config = _new_config(base_config, settings, layer.diff_id, path, message, author)
        config_data = json.dumps(config, indent=2).encode()
        config_digest = store.write_blob(config_data)
        docker = manifest.get("mediaType") == _docker_manifest()
        document = _new_manifest(manifest, config_digest, len(config_data), layer, docker)
        data = json.dumps(document, indent=2).encode()
        digest = store.write_blob(data)
        descriptor = {"mediaType": document["mediaType"], "digest": digest, "size": len(data)}
        store.set_ref(name, descriptor)
    return dict(descriptor, name=name)


def _docker_manifest() -> str:
    from imagetools.manifest import DOCKER_MANIFEST

    return DOCKER_MANIFEST


def _released_snapshot(bundle: str) -> bool:
    """The bundle's config names an image snapshot (one that no longer exists: the caller
    found none)."""
    from imagetools.snapshots.bundles import SNAPSHOT_ANNOTATION

    try:
        with open(f"{bundle}/config.json", "rb") as handle:
            annotations = json.load(handle).get("annotations") or {}
    except (OSError, ValueError, AttributeError):
        return False
    return isinstance(annotations, dict) and SNAPSHOT_ANNOTATION in annotations


def _write_layer(store: Store, layout: Any, meta: dict[str, Any]) -> Any:
    """The bundle snapshot's changes as a layer."""
    from imagetools.snapshots.changes import overlay_changes, vfs_changes
    from imagetools.snapshots.layout import read_json

    directory = layout.bundle_dir(meta["id"])
    if meta["kind"] == "overlay":
        changes = overlay_changes(f"{directory}/upper")
    else:
        base = read_json(f"{directory}/base.json")
        if not isinstance(base, dict) or not isinstance(base.get("entries"), list):
            raise SnapshotError(f"bundle snapshot {meta['id']}: its base manifest is unreadable")
        if not os.path.isdir(meta["rootfs"]):
            raise SnapshotError(f"{meta['rootfs']} is gone: nothing to commit")
        changes = vfs_changes(meta["rootfs"], base)
    return _write_changes(store, layout, changes)


def _write_changes(store: Store, layout: Any, changes: Iterable[Any]) -> Any:
    """The changeset as a gzip layer, written in a tmp dir, then ingested (verified)."""
    from imagetools.snapshots.tarwriter import write_layer
    from imagetools.snapshots.tmp import TmpDir

    with TmpDir(layout) as work:
        blob_path = f"{work}/layer.tar.gz"
        with open(blob_path, "wb") as out:
            try:
                layer = write_layer(changes, out)
            except OSError as err:
                raise SnapshotError(
                    f"cannot read {err.filename or 'a file'} of the bundle: {err.strerror}"
                ) from None
        _ingest_file(store, blob_path, layer.digest, layer.size)
    return layer


def _scratch_config(bundle: str) -> tuple[dict[str, Any], str]:
    """The image config of a bundle no image made (this host's platform, the bundle's
    process as the container config, no layers yet) and its rootfs."""
    from imagetools.manifest import host_platform
    from runtime.lifecycle.bundle import load_bundle

    if _released_snapshot(bundle):
        raise SnapshotError(
            f"{bundle} was unpacked from an image and its snapshot is released (pyrun delete):"
            " nothing to commit; commit before deleting the container (pyrun run --keep)"
        )
    try:
        config, rootfs = load_bundle(bundle)
    except PyrunError as err:
        raise SnapshotError(f"cannot commit {bundle}: {err.message}") from None
    process: dict[str, Any] = dict(config.get("process") or {})
    user = process.get("user") or {}
    settings: dict[str, Any] = {
        "User": f"{user.get('uid', 0)}:{user.get('gid', 0)}",
        "Env": list(process.get("env") or []),
        "Cmd": list(process.get("args") or []),
        "WorkingDir": process.get("cwd") or "/",
    }
    platform = host_platform().to_json()
    image = {**platform, "config": settings, "rootfs": {"type": "layers", "diff_ids": []}}
    return image, rootfs


def _ingest_file(store: Store, path: str, digest: str, size: int) -> None:
    ingest = store.ingest(digest, size)
    try:
        if not ingest.complete:
            ingest.restart()
            with open(path, "rb") as handle:
                while chunk := handle.read(1 << 20):
                    ingest.write(chunk)
        ingest.commit()
    finally:
        ingest.close()


def _new_config(
    base: dict[str, Any],
    settings: dict[str, Any],
    diff_id: str,
    bundle: str,
    message: str,
    author: str,
) -> dict[str, Any]:
    from runtime.timefmt import rfc3339_nano

    config: dict[str, Any] = json.loads(json.dumps(base))
    now = rfc3339_nano()
    config["created"] = now
    config["config"] = settings
    if author:
        config["author"] = author
    rootfs = config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
    rootfs.setdefault("type", "layers")
    rootfs["diff_ids"] = [*rootfs.get("diff_ids", []), diff_id]
    entry: dict[str, Any] = {"created": now, "created_by": _created_by(bundle)}
    if author:
        entry["author"] = author
    if message:
        entry["comment"] = message
    config["history"] = [*config.get("history", []), entry]
    return config


def _created_by(bundle: str) -> str:
    """The bundle's command, as docker records the container's (falls back to the tool)."""
    try:
        with open(f"{bundle}/config.json", "rb") as handle:
            args = json.load(handle)["process"]["args"]
        if isinstance(args, list) and all(isinstance(a, str) for a in args) and args:
            return " ".join(args)
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return "pyrun image commit"


def _new_manifest(
    base: dict[str, Any], config_digest: str, config_size: int, layer: Any, docker: bool
) -> dict[str, Any]:
    from imagetools import manifest as media

    config_type = base.get("config", {}).get("mediaType") or (
        media.DOCKER_CONFIG if docker else media.OCI_CONFIG
    )
    layer_type = media.DOCKER_LAYER if docker else media.OCI_LAYER_GZIP
    return {
        "schemaVersion": 2,
        "mediaType": media.DOCKER_MANIFEST if docker else media.OCI_MANIFEST,
        "config": {"mediaType": config_type, "digest": config_digest, "size": config_size},
        "layers": [
            *base.get("layers", []),
            {"mediaType": layer_type, "digest": layer.digest, "size": layer.size},
        ],
    }
