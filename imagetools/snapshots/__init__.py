"""Snapshotters, Docker's graphdrivers on OCI terms: layer snapshots shared by images, bundle
snapshots (overlay mounts or recorded vfs copies), their release, gc and commit's changesets.

The public calls (the rest is internal)::

    prepare(store, image, bundle, snapshotter=, rootless=, force=, warn=, limit=) -> rootfs
        imagetools.unpack's hook for --snapshotter overlay
    snapshot_annotations(store, image, bundle, snapshotter, rootfs) -> {name: value}
        after unpack: names the bundle's snapshot in its config.json (records a vfs one)
    abandon(store, bundle)                              unpack failed after that: undo it
    default_snapshotter(store) -> "overlay" | "vfs"
    release_container(annotations, bundle) -> bool      pyrun delete
    remount(annotations, bundle) -> bool                pyrun create: an overlay a reboot took
    in_use(store, descriptor) -> [bundle snapshots]     pyrun image rm refuses while any (no -f)
    release_image(store, digest) -> [chain ids]         pyrun image rm, after remove_ref
    gc(store, dry_run) -> [what went]                   pyrun image gc
    protected_blobs(store) -> {digest}                  Store.gc keeps these
    usage(store) -> InUse
    listing(store) -> [rows]; remove(store, id)         pyrun image snapshots [rm]

Modules: layout (paths, lock, metadata), chain (ChainIDs), overlay (probe, mount), tmp (work
dirs), layers (layer snapshots), bundles (bundle snapshots), changes + tarwriter (commit's
changeset; imagetools.commit builds the image), maintenance (in use, rm, gc, listing), quick
(``pyrun image unpack`` without click, for an image whose layers are already snapshots).
Importing this package imports no more than os and the C JSON codec: ``pyrun delete`` comes
through here.
"""

from __future__ import annotations

from imagetools.snapshots.bundles import (
    ROOT_ANNOTATION,
    SNAPSHOT_ANNOTATION,
    abandon,
    prepare,
    release_container,
    remount,
    snapshot_annotations,
)
from imagetools.snapshots.maintenance import (
    InUse,
    gc,
    in_use,
    listing,
    protected_blobs,
    release_image,
    usage,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from imagetools.store import Store

__all__ = [
    "ROOT_ANNOTATION",
    "SNAPSHOT_ANNOTATION",
    "InUse",
    "abandon",
    "default_snapshotter",
    "gc",
    "in_use",
    "listing",
    "prepare",
    "protected_blobs",
    "release_container",
    "release_image",
    "remount",
    "remove",
    "snapshot_annotations",
    "usage",
]


def default_snapshotter(store: Store) -> str:
    """overlay where this kernel mounts one on the store's filesystem (probed once, cached
    in the store), else vfs."""
    from imagetools.snapshots import overlay
    from imagetools.snapshots.bundles import layout_of

    return "overlay" if overlay.support(layout_of(store)) is not None else "vfs"


def remove(store: Store, snapshot_id: str) -> dict[str, object]:
    """``pyrun image snapshots rm ID``: unmount and remove a bundle snapshot (layer
    snapshots go with ``image rm`` / ``image gc``). Returns its metadata."""
    from imagetools.errors import SnapshotError
    from imagetools.snapshots.bundles import layout_of, load, teardown

    layout = layout_of(store)
    meta = load(layout, snapshot_id)
    if meta is None:
        raise SnapshotError(f"no bundle snapshot {snapshot_id} in {layout.store_root}")
    teardown(layout, meta)
    return meta
