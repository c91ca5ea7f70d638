"""``pyrun image unpack REF BUNDLE``: an image of the store becomes a runtime bundle.

::

    name or descriptor ──store──► index ──platform──► manifest ──► config (rootfs.diff_ids)
                                                          │
                         layers, in order ───────────────►┴─► apply_layer(bundle/rootfs)
                         (blob digest and diff_id checked while streaming)
    config ──convert.runtime_config──► bundle/config.json   (written last, atomically)

``snapshotter="vfs"`` (here) applies every layer into ``bundle/rootfs``. Any other snapshotter is
handed to ``imagetools.snapshots.prepare`` (the snapshot engineer's hook, contract below), which
returns the directory where the image's tree can be read; the config is written the same way.

A failed vfs unpack removes the rootfs it created; config.json is never left half-written.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from imagetools.atomic import write_atomic
from imagetools.errors import ImageError, ImageNotFound, UnpackError
from imagetools.layer import DEFAULT_LIMIT, MEDIA_TYPES, apply_layer

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any

    from imagetools.store import Store

# pyrun's own annotations on the bundle's config: which image it came from (commit uses them).
IMAGE_NAME = "io.pyrun.image.name"
IMAGE_MANIFEST = "io.pyrun.image.manifest"
IMAGE_CONFIG = "io.pyrun.image.config"
_MAX_NESTING = 4


@dataclass
class Layer:
    digest: str  # of the blob as stored (compressed)
    media_type: str
    size: int
    diff_id: str  # from the image config's rootfs.diff_ids


@dataclass
class ResolvedImage:
    """An image of the store, down to one platform's manifest."""

    name: str | None
    manifest_digest: str
    manifest: dict[str, Any]
    config_digest: str
    config: dict[str, Any]
    layers: list[Layer] = field(default_factory=list)


def resolve_image(
    store: Store, ref_or_descriptor: str | dict[str, Any], platform: str | None = None
) -> ResolvedImage:
    """Find the image (a name, a digest, or a descriptor), choose the platform's manifest of an
    index, read its config, pair the layers with their diff_ids."""
    from imagetools import manifest as manifests

    if isinstance(ref_or_descriptor, dict):
        name = None
        descriptor = ref_or_descriptor
    else:
        name = ref_or_descriptor
        descriptor = _lookup(store, ref_or_descriptor)
    wanted = manifests.Platform.parse(platform) if platform else None
    for _ in range(_MAX_NESTING):
        digest = descriptor["digest"]
        document = manifests.parse(store.read_blob(digest), descriptor.get("mediaType"))
        if isinstance(document, manifests.Index):
            descriptor = document.select(wanted).to_json()
            continue
        break
    else:
        raise ImageError(f"image {name or digest}: indexes nested more than {_MAX_NESTING} deep")
    config = store.read_json(document.config.digest)
    if not isinstance(config, dict):
        raise ImageError(f"image config {document.config.digest}: not a JSON object")
    if wanted is not None:
        _check_platform(config, wanted, name or digest)
    rootfs = config.get("rootfs") or {}
    diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(diff_ids, list) or len(diff_ids) != len(document.layers):
        count = len(diff_ids) if isinstance(diff_ids, list) else "no"
        raise ImageError(
            f"image {name or digest}: the config lists {count} diff_ids for"
            f" {len(document.layers)} layers"
        )
    layers = []
    for layer, diff_id in zip(document.layers, diff_ids, strict=True):
        if layer.media_type not in MEDIA_TYPES:
            raise UnpackError(
                f"layer {layer.digest}: media type {layer.media_type!r} cannot be unpacked"
            )
        layers.append(Layer(layer.digest, layer.media_type, layer.size, str(diff_id)))
    return ResolvedImage(name, digest, document.raw, document.config.digest, config, layers)


def _lookup(store: Store, name: str) -> dict[str, Any]:
    """A name as given, else with docker's defaults (busybox: docker.io/library/busybox:latest)."""
    try:
        return store.resolve(name)
    except ImageNotFound:
        from imagetools.reference import Reference

        try:
            full = str(Reference.parse(name))
        except ImageError:
            raise ImageNotFound(f"image {name} is not in the store ({store.root})") from None
        if full == name:
            raise
        return store.resolve(full)


def _check_platform(config: dict[str, Any], wanted: Any, name: str) -> None:
    from imagetools import manifest as manifests

    if not config.get("os") or not config.get("architecture"):
        return
    have = manifests.Platform(
        str(config["os"]), str(config["architecture"]), str(config.get("variant") or "")
    )
    if manifests.match_rank(wanted, have) is None:
        raise ImageError(f"image {name} is {have.normalized()}, not {wanted}")


def unpack(
    store: Store,
    ref_or_descriptor: str | dict[str, Any],
    bundle: str | os.PathLike[str],
    *,
    platform: str | None = None,
    snapshotter: str = "vfs",
    rootless: bool | None = None,
    force: bool = False,
    limit: int = DEFAULT_LIMIT,
    warn: Callable[[str], None] | None = None,
) -> Path:
    """Unpack the image into ``bundle`` (rootfs/ and config.json); returns the bundle's path.
    An existing config.json (or a non-empty rootfs) is refused unless ``force``.
    ``rootless`` (default: not root): no chown, devices become placeholder files.
    Holds a store lease throughout: an ``image rm`` + ``gc`` meanwhile cannot take the blobs
    from under the layers being applied."""
    with _lease(store):
        from imagetools.convert import check as check_config

        if rootless is None:
            rootless = os.geteuid() != 0
        image = resolve_image(store, ref_or_descriptor, platform)
        check_config(image.config)  # no command, a bad Env ...: refused before anything is written
        path = Path(bundle)
        if not force:
            for other in ("config.json", "config.yaml", "config.yml"):
                if (path / other).exists():
                    raise ImageError(f"File {path / other} exists. Remove it first or use --force")
        created = not os.path.lexists(path)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ImageError(f"bundle {path}: {(err.strerror or '').lower()}") from None
        try:
            return _fill_bundle(store, image, path, snapshotter, rootless, force, limit, warn)
        except BaseException:
            if created:
                with contextlib.suppress(OSError):
                    os.rmdir(path)  # what failed cleaned up after itself; an empty dir is ours
            raise


def _fill_bundle(
    store: Store,
    image: ResolvedImage,
    path: Path,
    snapshotter: str,
    rootless: bool,
    force: bool,
    limit: int,
    warn: Callable[[str], None] | None,
) -> Path:
    """rootfs (vfs or a snapshotter's) and config.json in the bundle directory ``path``."""
    from imagetools.convert import runtime_config

    config_path = path / "config.json"
    if snapshotter != "vfs":
        # The snapshot engineer's hook: prepare(store, image, bundle, snapshotter=, rootless=,
        # force=, warn=, limit=) makes the bundle's rootfs (e.g. an overlay of the layers, each
        # unpacked once with apply_layer(..., whiteouts="overlay")) and returns the directory
        # where the image's tree can be read (for /etc/passwd).
        import importlib

        prepare = importlib.import_module("imagetools.snapshots").prepare

        rootfs = prepare(
            store,
            image,
            path,
            snapshotter=snapshotter,
            rootless=rootless,
            force=force,
            warn=warn,
            limit=limit,
        )
    else:
        rootfs = path / "rootfs"
        if force:
            # What the bundle had (an overlay mounted on rootfs, a vfs record) goes first, as
            # for overlay; refused (nothing changed) while a running container uses it.
            from imagetools.snapshots.bundles import release_previous

            release_previous(str(path), keep_rootfs=True)
        _fresh_rootfs(rootfs, force)
        try:
            apply_image(store, image, rootfs, rootless=rootless, limit=limit, warn=warn)
        except BaseException:
            shutil.rmtree(rootfs, ignore_errors=True)
            raise
    annotations = {IMAGE_MANIFEST: image.manifest_digest, IMAGE_CONFIG: image.config_digest}
    if image.name:
        annotations[IMAGE_NAME] = image.name
    from imagetools import snapshots

    try:
        # The snapshotters' second hook: the annotations naming the bundle's snapshot (a vfs
        # one is recorded now, for commit); a failure from here on releases it again.
        annotations.update(snapshots.snapshot_annotations(store, image, path, snapshotter, rootfs))
        config = runtime_config(
            image.config, str(rootfs), rootless=rootless, annotations=annotations
        )
        data = (json.dumps(config, indent="\t") + "\n").encode()
        temp = config_path.with_name(f".{config_path.name}.tmp{os.getpid()}")
        write_atomic(str(config_path), data, temp=str(temp))
    except BaseException:
        snapshots.abandon(store, path)
        raise
    return path


@contextlib.contextmanager
def _lease(store: Store) -> Iterator[None]:
    """``store.lease()``, or nothing where the gc lock cannot be opened (no store at all, or
    one this user may read but not lock): lookups then fail or proceed as they would."""
    try:
        lease = store.lease()
        lease.__enter__()
    except OSError:
        yield
        return
    try:
        yield
    finally:
        lease.__exit__(None, None, None)


def apply_image(
    store: Store,
    image: ResolvedImage,
    rootfs: str | os.PathLike[str],
    *,
    rootless: bool = False,
    limit: int = DEFAULT_LIMIT,
    warn: Callable[[str], None] | None = None,
) -> None:
    """Apply every layer of ``image`` in order into ``rootfs`` (whiteouts deleting)."""
    for layer in image.layers:
        with store.open_blob(layer.digest) as blob:
            result = apply_layer(
                str(rootfs),
                blob,
                layer.media_type,
                rootless=rootless,
                limit=limit,
                expected_diff_id=layer.diff_id,
                digest=layer.digest,
            )
        if warn is not None:
            for message in result.warnings:
                warn(message)


def _fresh_rootfs(rootfs: Path, force: bool) -> None:
    if os.path.lexists(rootfs):
        if rootfs.is_symlink() or not rootfs.is_dir():
            raise ImageError(f"{rootfs} exists and is not a directory")
        if any(os.scandir(rootfs)):
            if not force:
                raise ImageError(f"{rootfs} is not empty. Remove it first or use --force")
            if os.path.ismount(rootfs):
                raise ImageError(f"{rootfs} is a mount point: unmount it first")
            shutil.rmtree(rootfs)
        else:
            return
    try:
        rootfs.mkdir(mode=0o755)
    except OSError as err:
        raise ImageError(f"{rootfs}: {(err.strerror or '').lower()}") from None
