"""Bundle snapshots: a bundle's rootfs made from layer snapshots, and its release.

overlay: ``BUNDLE/rootfs`` is an overlay mount, lowerdir = the image's layer snapshots (top
first), upperdir/workdir = ``<root>/snapshots/bundles/<id>/{upper,work}``: what the
container writes lands in its own upper dir, never in a layer.

vfs: the rootfs is a full copy (imagetools.unpack); the snapshot records the tree as unpacked
(``base.json``, see changes.scan) so that commit can find what changed.

Either way ``meta.json`` says which bundle owns the snapshot, and the bundle's config.json
names it in its annotations (``io.pyrun.image.snapshot`` = id, ``io.pyrun.image.root`` = the
store). Annotations are user input: ``release`` acts only when the store's own metadata says
the snapshot belongs to exactly that bundle, inside ``<root>/snapshots/bundles/``, and it
unmounts only an overlay whose upperdir is that snapshot's. ``unpack --force`` and
``snapshots rm`` also refuse (changing nothing) while a running container still has the
overlay in its own mount namespace (``overlay.user_elsewhere``); ``pyrun delete`` does not
look (its container has stopped).
"""

from __future__ import annotations

import os

from imagetools.errors import SnapshotError
from imagetools.snapshots.layout import Layout, new_id, read_json, valid_id, write_json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from imagetools.snapshots.layout import BlobStore as Store
    from imagetools.snapshots.layout import ImageLike as ResolvedImage

SNAPSHOT_ANNOTATION = "io.pyrun.image.snapshot"
ROOT_ANNOTATION = "io.pyrun.image.root"
KINDS = ("overlay", "vfs")
_ATTEMPTS = 3
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"  # imagetools.manifest's (imports re)
# Snapshots this process made for a bundle (path -> id): prepared ones wait here for unpack
# to write the bundle's config; ``abandon`` undoes them when that fails.
_PREPARED: dict[str, str] = {}
_MADE: dict[str, str] = {}


def layout_of(store: Store) -> Layout:
    return Layout(os.path.realpath(store.root))


def image_record(store: Store, image: ResolvedImage) -> dict[str, Any]:
    """What a snapshot keeps of its image: enough to commit on top of it and to keep gc
    away from its blobs."""
    return {
        "name": image.name,
        "manifest": {
            "mediaType": image.manifest.get("mediaType") or OCI_MANIFEST,
            "digest": image.manifest_digest,
            "size": store.blob_size(image.manifest_digest),
        },
        "config": image.config_digest,
    }


# -- making ----------------------------------------------------------------------------------


def prepare(
    store: Store,
    image: ResolvedImage,
    bundle: str | os.PathLike[str],
    *,
    snapshotter: str = "overlay",
    rootless: bool = False,
    force: bool = False,
    warn: Callable[[str], None] | None = None,
    limit: int | None = None,
) -> str:
    """imagetools.unpack's hook: mount ``bundle/rootfs`` as an overlay of the image's layer
    snapshots (made first where missing) and the bundle's own upper dir. Returns the rootfs.
    ``limit``: most uncompressed bytes one layer may hold (None: imagetools.layer's default),
    checked for layer snapshots made before too. A failure (Ctrl-C included) leaves no rootfs
    dir this call made."""
    from imagetools.snapshots import overlay

    if snapshotter != "overlay":
        raise SnapshotError(f"unknown snapshotter {snapshotter!r} (overlay or vfs)")
    if rootless:
        raise SnapshotError("the overlay snapshotter needs root: use --snapshotter vfs")
    path = os.path.realpath(bundle)
    layout = layout_of(store)
    options = overlay.support(layout)
    if options is None:
        raise SnapshotError(
            "overlay mounts do not work here (kernel or filesystem): use --snapshotter vfs"
        )
    if any(c in layout.bundles for c in ",:\\\n"):
        raise SnapshotError(
            f"the store path {layout.store_root!r} cannot be named in overlay options"
        )
    rootfs = f"{path}/rootfs"
    if force:
        release_previous(path)
    made = _empty_dir(rootfs, force)
    try:
        return _prepare_mount(store, image, path, rootfs, layout, options, limit)
    except BaseException:
        _undo_prepared(layout, path, rootfs if made else None)
        raise


def _prepare_mount(
    store: Store,
    image: ResolvedImage,
    path: str,
    rootfs: str,
    layout: Layout,
    options: list[str],
    limit: int | None,
) -> str:
    from imagetools.snapshots import layers as layer_snapshots

    layers = [
        layer_snapshots.Layer(
            {"digest": layer.digest, "mediaType": layer.media_type, "size": layer.size},
            layer.diff_id,
            chain,
        )
        for layer, chain in zip(image.layers, _chain(image), strict=True)
    ]
    if not layers:
        raise SnapshotError("an image without layers cannot be an overlay: use --snapshotter vfs")
    record = image_record(store, image)
    for _ in range(_ATTEMPTS):
        links = layer_snapshots.ensure(store, layout, layers, limit=limit)
        with layout.lock():
            if any(
                layer_snapshots.link_of(layout, x.chain_id) != y
                for x, y in zip(layers, links, strict=True)
            ):
                continue  # a gc took a layer between ensure and the lock: make it again
            _mount_new(layout, path, rootfs, record, layers, links, options)
        return rootfs
    raise SnapshotError("layer snapshots were removed while preparing the bundle; try again")


def _undo_prepared(layout: Layout, bundle: str, made_rootfs: str | None) -> None:
    """prepare failed (Ctrl-C included): undo the snapshot it had mounted already, if any,
    then remove the rootfs dir it made, if empty (rmdir: never a mount point, never files)."""
    snapshot_id = _PREPARED.pop(bundle, None)
    if snapshot_id is not None and _MADE.get(bundle) == snapshot_id:
        del _MADE[bundle]
        meta = load(layout, snapshot_id)
        if meta is not None and meta["bundle"] == bundle:
            try:
                teardown(layout, meta, keep_rootfs=True, check_users=False)
            except (SnapshotError, OSError):
                pass  # the mount stays (gc or snapshots rm take it); never rmdir'ed under it
    if made_rootfs is not None:
        try:
            os.rmdir(made_rootfs)
        except OSError:
            pass  # not empty, a mount point, or gone


def _chain(image: ResolvedImage) -> list[str]:
    from imagetools.snapshots.chain import chain_ids

    return chain_ids([layer.diff_id for layer in image.layers])


def _mount_new(
    layout: Layout,
    bundle: str,
    rootfs: str,
    record: dict[str, Any],
    layers: list[Any],
    links: list[str],
    options: list[str],
) -> str:
    from imagetools.snapshots import overlay

    snapshot_id = new_id()
    directory = layout.bundle_dir(snapshot_id)
    os.makedirs(layout.bundles, exist_ok=True)
    os.mkdir(directory, 0o700)
    try:
        os.mkdir(f"{directory}/upper")
        os.mkdir(f"{directory}/work")
        # The merged root takes the upper root's attributes: give it the image's.
        _copy_attributes(f"{layout.layer_dir(layers[-1].chain_id)}/fs", f"{directory}/upper")
        meta = {
            "id": snapshot_id,
            "kind": "overlay",
            "bundle": bundle,
            "rootfs": rootfs,
            "image": record,
            "chain": [layer.chain_id for layer in layers],
        }
        # No fsync: the mount does not outlive a reboot either, and gc removes a snapshot
        # whose metadata a power cut emptied.
        write_json(f"{directory}/meta.json", meta, durable=False)
        overlay.mount(
            layout,
            list(reversed(links)),
            f"{directory}/upper",
            f"{directory}/work",
            rootfs,
            options,
        )
        # Recorded at once: from here on a failure (even Ctrl-C) in prepare unmounts it.
        _PREPARED[bundle] = _MADE[bundle] = snapshot_id
    except BaseException:
        if _MADE.get(bundle) != snapshot_id:
            if overlay.mounted_upper(rootfs) == f"{directory}/upper":
                overlay.unmount(rootfs)  # interrupted right after the mount
            _remove_tree(directory)
        raise
    return snapshot_id


def _copy_attributes(source: str, target: str) -> None:
    info = os.lstat(source)
    os.chown(target, info.st_uid, info.st_gid)
    os.chmod(target, info.st_mode & 0o7777)
    os.utime(target, ns=(info.st_atime_ns, info.st_mtime_ns))


def _empty_dir(rootfs: str, force: bool) -> bool:
    """Make sure ``rootfs`` is an empty dir; True when this call made it."""
    if os.path.islink(rootfs) or (os.path.lexists(rootfs) and not os.path.isdir(rootfs)):
        raise SnapshotError(f"{rootfs} exists and is not a directory")
    if not os.path.exists(rootfs):
        os.mkdir(rootfs, 0o755)
        return True
    if os.path.ismount(rootfs):
        raise SnapshotError(f"{rootfs} is a mount point: unmount it first")
    if os.listdir(rootfs):
        if not force:
            raise SnapshotError(f"{rootfs} is not empty. Remove it first or use --force")
        _remove_tree(rootfs, ignore_errors=False)
        os.mkdir(rootfs, 0o755)
        return True
    return False


def record_vfs(
    store: Store, image: ResolvedImage, bundle: str | os.PathLike[str], rootfs: str
) -> str:
    """After a vfs unpack: remember the tree as unpacked, for commit. Returns the id."""
    from imagetools.snapshots.changes import scan

    path = os.path.realpath(bundle)
    layout = layout_of(store)
    release_previous(path, keep_rootfs=True)
    snapshot_id = new_id()
    directory = layout.bundle_dir(snapshot_id)
    os.makedirs(layout.bundles, exist_ok=True)
    os.mkdir(directory, 0o700)
    try:
        write_json(f"{directory}/base.json", scan(rootfs), pretty=False)
        meta = {
            "id": snapshot_id,
            "kind": "vfs",
            "bundle": path,
            "rootfs": os.path.realpath(rootfs),
            "image": image_record(store, image),
            "chain": _chain(image),
        }
        write_json(f"{directory}/meta.json", meta)
    except BaseException:
        _remove_tree(directory)
        raise
    return snapshot_id


def snapshot_annotations(
    store: Store,
    image: ResolvedImage,
    bundle: str | os.PathLike[str],
    snapshotter: str,
    rootfs: str | os.PathLike[str],
) -> dict[str, str]:
    """imagetools.unpack's second hook, once the rootfs is there: the annotations that
    name the bundle's snapshot in its config.json (a vfs snapshot is recorded now)."""
    path = os.path.realpath(bundle)
    if snapshotter == "vfs":
        snapshot_id = _MADE[path] = record_vfs(store, image, path, str(rootfs))
    else:
        try:
            snapshot_id = _PREPARED.pop(path)
        except KeyError:
            raise SnapshotError(f"no snapshot was prepared for {path}") from None
    return {SNAPSHOT_ANNOTATION: snapshot_id, ROOT_ANNOTATION: layout_of(store).store_root}


def abandon(store: Store, bundle: str | os.PathLike[str]) -> None:
    """Undo the snapshot this process made for ``bundle`` (its unpack failed later)."""
    path = os.path.realpath(bundle)
    _PREPARED.pop(path, None)
    snapshot_id = _MADE.pop(path, None)
    if snapshot_id is None:
        return
    layout = layout_of(store)
    meta = load(layout, snapshot_id)
    if meta is not None and meta["bundle"] == path:
        teardown(layout, meta, keep_rootfs=meta["kind"] == "vfs", check_users=False)


# -- finding and releasing -----------------------------------------------------------------


def load(layout: Layout, snapshot_id: str) -> dict[str, Any] | None:
    """The snapshot's metadata when it is one of ours in this store, else None."""
    if not valid_id(snapshot_id):
        return None
    directory = layout.bundle_dir(snapshot_id)
    if os.path.realpath(directory) != directory:
        return None  # a symlink on the way: not a directory we made
    meta = read_json(f"{directory}/meta.json")
    if not isinstance(meta, dict) or meta.get("id") != snapshot_id:
        return None
    if meta.get("kind") not in KINDS or not isinstance(meta.get("bundle"), str):
        return None
    if meta.get("rootfs") != f"{meta['bundle']}/rootfs" and meta.get("kind") == "overlay":
        return None
    return meta


def of_bundle(bundle: str | os.PathLike[str]) -> tuple[Layout, dict[str, Any]] | None:
    """The snapshot that ``bundle``'s config.json names, if the store agrees it is this
    bundle's; None otherwise."""
    path = os.path.realpath(bundle)
    config = read_json(f"{path}/config.json")
    notes = config.get("annotations") if isinstance(config, dict) else None
    if not isinstance(notes, dict):
        return None
    return _checked(notes, path)


def _checked(notes: dict[str, Any], bundle: str) -> tuple[Layout, dict[str, Any]] | None:
    snapshot_id, root = notes.get(SNAPSHOT_ANNOTATION), notes.get(ROOT_ANNOTATION)
    if not isinstance(snapshot_id, str) or not isinstance(root, str) or not root.startswith("/"):
        return None
    if not os.path.isfile(f"{root}/oci-layout"):
        return None  # not an image store
    layout = Layout(os.path.realpath(root))
    meta = load(layout, snapshot_id)
    if meta is None or meta["bundle"] != bundle:
        return None
    return layout, meta


def release_container(notes: dict[str, Any], bundle: str) -> bool:
    """``pyrun delete``: release the snapshot the container's annotations name, if it is
    really this bundle's. False when there was nothing (of ours) to release."""
    found = _checked(notes, os.path.realpath(bundle))
    if found is None:
        return False
    layout, meta = found
    teardown(layout, meta, check_users=False)  # the container has stopped: no scan of /proc
    return True


def remount(notes: dict[str, Any], bundle: str) -> bool:
    """``pyrun create``: mount the overlay of a bundle whose annotations name one of our
    snapshots and whose rootfs has lost it (a reboot, a manual umount). True if mounted now."""
    found = _checked(notes, os.path.realpath(bundle))
    if found is None or found[1]["kind"] != "overlay":
        return False
    from imagetools.snapshots import layers as layer_snapshots
    from imagetools.snapshots import overlay

    layout, meta = found
    directory = layout.bundle_dir(meta["id"])
    upper = f"{directory}/upper"
    stack = overlay.mount_stack(meta["rootfs"])
    if stack and stack[-1] == upper:
        return False
    elsewhere = overlay.mounts_of_upper(upper)
    if elsewhere:
        raise SnapshotError(
            f"snapshot {meta['id']} is mounted on {', '.join(elsewhere)}, not on"
            f" {meta['rootfs']}: unmount it there first"
        )
    options = overlay.support(layout)
    if options is None:
        raise SnapshotError(f"{meta['rootfs']}: overlay mounts are not available here")
    with layout.lock():
        links = [layer_snapshots.link_of(layout, chain) for chain in meta["chain"]]
        if any(link is None for link in links):
            raise SnapshotError(
                f"{bundle}: the image layers of snapshot {meta['id']} are gone; unpack the"
                " image again"
            )
        overlay.mount(
            layout,
            [link for link in reversed(links) if link],
            upper,
            f"{directory}/work",
            meta["rootfs"],
            options,
        )
    return True


def release_previous(bundle: str, keep_rootfs: bool = False) -> None:
    """Before unpacking into a bundle again (--force): release what it had."""
    found = of_bundle(bundle)
    if found is not None:
        teardown(found[0], found[1], keep_rootfs=keep_rootfs)


def teardown(
    layout: Layout, meta: dict[str, Any], keep_rootfs: bool = False, check_users: bool = True
) -> None:
    """Unmount (overlay) and remove the snapshot's own dirs. The bundle's emptied rootfs dir
    goes too; a vfs rootfs (the user's files) stays. ``check_users``: first look for a
    running container's copy of the overlay in another mount namespace and refuse, changing
    nothing (``pyrun delete`` and an unpack undoing its own new snapshot skip the scan: no
    container runs there)."""
    from imagetools.snapshots import overlay

    directory = layout.bundle_dir(meta["id"])
    if meta["kind"] == "overlay":
        rootfs = meta["rootfs"]
        upper = f"{directory}/upper"
        if check_users:
            refuse_if_used(layout, meta)
        stack = overlay.mount_stack(rootfs)
        while stack and stack[-1] == upper:
            overlay.unmount(rootfs)
            stack.pop()
        if upper in stack:
            raise SnapshotError(f"{rootfs}: another mount covers the snapshot's overlay")
        elsewhere = overlay.mounts_of_upper(upper)
        if elsewhere:
            raise SnapshotError(
                f"snapshot {meta['id']} is still mounted on {', '.join(elsewhere)} (a moved"
                " bundle?): unmount it first"
            )
        if not keep_rootfs:
            try:
                os.rmdir(rootfs)
            except OSError:
                pass  # not empty or already gone: not ours to remove
    _remove_tree(directory)


def refuse_if_used(layout: Layout, meta: dict[str, Any]) -> None:
    """SnapshotError when a process in another mount namespace (a running container) still
    has the overlay of snapshot ``meta`` mounted: releasing it would take its writable layer."""
    if meta["kind"] != "overlay":
        return
    from imagetools.snapshots import overlay

    pid = overlay.user_elsewhere(f"{layout.bundle_dir(meta['id'])}/upper")
    if pid is not None:
        raise SnapshotError(
            f"snapshot {meta['id']} of {meta['bundle']} is in use by a running container"
            f" (pid {pid}): stop it first"
        )


def is_live(layout: Layout, meta: dict[str, Any]) -> bool:
    """Whether a bundle snapshot is still in use. overlay: mounted (on its bundle's rootfs,
    or anywhere: a bundle that was moved keeps its mount), or its bundle's config.json still
    names it (unmounted by a reboot: create mounts it again), or a running container still
    has it mounted in its own mount namespace; vfs: its rootfs is there."""
    if meta["kind"] == "overlay":
        from imagetools.snapshots import overlay

        upper = f"{layout.bundle_dir(meta['id'])}/upper"
        if overlay.mounts_of_upper(upper):
            return True
        named = of_bundle(meta["bundle"])
        if named is not None and named[1]["id"] == meta["id"]:
            return True
        return overlay.user_elsewhere(upper) is not None
    return os.path.isdir(meta["bundle"]) and os.path.isdir(meta["rootfs"])


def bundle_snapshots(layout: Layout) -> list[dict[str, Any]]:
    """Every bundle snapshot of the store (unreadable ones left out)."""
    try:
        names = sorted(os.listdir(layout.bundles))
    except FileNotFoundError:
        return []
    found = []
    for name in names:
        meta = load(layout, name)
        if meta is not None:
            found.append(meta)
    return found


def _remove_tree(path: str, ignore_errors: bool = True) -> None:
    import shutil  # only here: it costs ~5 ms (fnmatch, re, bz2, lzma) on the fast path

    shutil.rmtree(path, ignore_errors=ignore_errors)
