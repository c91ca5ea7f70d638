"""Layer snapshots: each layer unpacked once, keyed by its ChainID, shared by every image.

A layer is applied alone into ``tmp/<random>/fs`` with overlay whiteouts (a 0/0 character
device for ``.wh.NAME``, ``trusted.overlay.opaque=y`` for ``.wh..wh..opq``), then the whole
``tmp/<random>`` is renamed to ``layers/<chain-hex>``: a killed unpack leaves only a tmp dir,
never a layer directory that looks complete. Stale tmp dirs (no live flock on their
``.lock``) are removed by the next unpack and by gc.

A layer whose hardlink points at a file of a LOWER layer cannot be applied alone. Such a layer
is applied again the way containerd's overlay snapshotter applies every layer: through an
overlay mount of the lower snapshots with the new directory as upper, whiteouts written by the
kernel itself.
"""

from __future__ import annotations

import os

from imagetools.errors import SnapshotError, UnpackError
from imagetools.snapshots.chain import chain_ids
from imagetools.snapshots.layout import Layout, read_json, write_json
from imagetools.snapshots.tmp import TmpDir, remove_stale

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from imagetools.snapshots.layout import BlobStore as Store

# imagetools.layer.DEFAULT_LIMIT (not imported: the fast unpack path comes through here).
DEFAULT_LIMIT = 16 << 30


class Layer:
    """One layer of an image, as the snapshotter needs it."""

    __slots__ = ("chain_id", "descriptor", "diff_id")

    def __init__(self, descriptor: dict[str, Any], diff_id: str, chain_id: str) -> None:
        self.descriptor = descriptor
        self.diff_id = diff_id
        self.chain_id = chain_id


def image_layers(manifest: dict[str, Any], config: dict[str, Any]) -> list[Layer]:
    """Pair the manifest's layer descriptors with the config's diff_ids."""
    descriptors = manifest.get("layers") or []
    diff_ids = (config.get("rootfs") or {}).get("diff_ids") or []
    if len(descriptors) != len(diff_ids):
        raise SnapshotError(
            f"the image has {len(descriptors)} layers but its config lists {len(diff_ids)} diff_ids"
        )
    return [
        Layer(d, diff_id, chain)
        for d, diff_id, chain in zip(descriptors, diff_ids, chain_ids(diff_ids), strict=True)
    ]


def link_of(layout: Layout, chain_id: str) -> str | None:
    """The short lowerdir name of a finished layer snapshot, None if there is none."""
    meta = read_json(f"{layout.layer_dir(chain_id)}/meta.json")
    if not isinstance(meta, dict) or meta.get("chainID") != chain_id:
        return None
    link = meta.get("link")
    return link if isinstance(link, str) and link.isalnum() else None


def ensure(
    store: Store, layout: Layout, layers: list[Layer], limit: int | None = None
) -> list[str]:
    """Make every missing layer snapshot; the links of all of them, bottom layer first.
    Holds no lock while applying (it may take long); each finished layer is published under
    the snapshots lock. ``limit`` (None: the default): most uncompressed bytes one layer may
    hold, as for vfs; a layer snapshot made before whose recorded size is over it is refused
    too (its meta.json keeps the size)."""
    limit = DEFAULT_LIMIT if limit is None else limit
    for directory in (layout.layers, layout.links, layout.tmp):
        os.makedirs(directory, exist_ok=True)
    remove_stale(layout)
    links: list[str] = []
    for position, layer in enumerate(layers):
        link = link_of(layout, layer.chain_id)
        if link is None:
            link = _create(store, layout, layer, layers[:position], links, limit)
        else:
            _check_size(layout, layer, limit)
        _ensure_symlink(layout, layer.chain_id, link)
        links.append(link)
    return links


def _check_size(layout: Layout, layer: Layer, limit: int) -> None:
    """The words apply_layer uses for a layer over ``limit`` (vfs refuses it so)."""
    meta = read_json(f"{layout.layer_dir(layer.chain_id)}/meta.json")
    size = meta.get("size") if isinstance(meta, dict) else None
    if isinstance(size, int) and size > limit:
        raise UnpackError(
            f"layer {layer.descriptor['digest']}: more than {limit} bytes uncompressed (the"
            " limit): refusing a possible decompression bomb"
        )


def _create(
    store: Store,
    layout: Layout,
    layer: Layer,
    lowers: list[Layer],
    lower_links: list[str],
    limit: int,
) -> str:
    import shutil

    # The lower snapshots, topmost first: a directory or symlink this layer goes through
    # without an entry of its own is taken as they have it (what the merged view shows).
    lower_trees = [f"{layout.layer_dir(lower.chain_id)}/fs" for lower in reversed(lowers)]
    with TmpDir(layout) as work:
        try:
            size = _apply(store, layout, layer, f"{work}/fs", True, limit=limit, lowers=lower_trees)
        except UnpackError as err:
            if not lowers or "decompression bomb" in str(err):
                raise
            # Maybe a hardlink into a lower layer: apply through the lowers instead.
            shutil.rmtree(f"{work}/fs")
            size = _apply_on_lowers(store, layout, layer, work, lower_links, limit)
        with layout.lock():
            link = _link_name(layout, layer.chain_id)
            write_json(
                f"{work}/meta.json",
                {"chainID": layer.chain_id, "diffID": layer.diff_id, "link": link, "size": size},
            )
            try:
                os.rename(work, layout.layer_dir(layer.chain_id))
            except OSError as err:
                if err.errno not in (17, 39):  # EEXIST, ENOTEMPTY: another process made it
                    raise
                link = link_of(layout, layer.chain_id) or link
            _ensure_symlink(layout, layer.chain_id, link)
        return link


def _apply(
    store: Store,
    layout: Layout,
    layer: Layer,
    target: str,
    overlay_whiteouts: bool,
    *,
    limit: int,
    lowers: list[str] | None = None,
) -> int:
    """Apply the layer to ``target``; its uncompressed size."""
    from imagetools.layer import apply_layer

    descriptor = layer.descriptor
    if not os.path.isdir(target):
        os.mkdir(target)
        os.chmod(target, 0o755)  # not the umask's idea: the root of a layer without "./"
    with store.open_blob(descriptor["digest"], descriptor.get("size")) as stream:
        result = apply_layer(
            target,
            stream,
            descriptor["mediaType"],
            whiteouts="overlay" if overlay_whiteouts else "delete",
            limit=limit,
            expected_diff_id=layer.diff_id,
            digest=descriptor["digest"],
            lowers=lowers or (),
        )
    return result.size


def _apply_on_lowers(
    store: Store, layout: Layout, layer: Layer, work: str, lower_links: list[str], limit: int
) -> int:
    """containerd's way: the layer applied on a mount of its lowers; the kernel writes the
    whiteouts and copies up what a hardlink needs into the new upper (``fs``)."""
    from imagetools.snapshots import overlay

    options = overlay.support(layout)
    if options is None:
        raise SnapshotError("overlay mounts are not available here: use --snapshotter vfs")
    for name in ("fs", "work", "merged"):
        os.mkdir(f"{work}/{name}", 0o755)
    overlay.mount(
        layout, list(reversed(lower_links)), f"{work}/fs", f"{work}/work", f"{work}/merged", options
    )
    try:
        size = _apply(store, layout, layer, f"{work}/merged", False, limit=limit)
    finally:
        overlay.unmount(f"{work}/merged")
    os.rmdir(f"{work}/merged")
    _remove_tree(f"{work}/work")
    return size


def _remove_tree(path: str) -> None:
    """overlay's work dir holds a 000-mode 'work' subdir; rmtree copes as root."""
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def _link_name(layout: Layout, chain_id: str) -> str:
    """A short name under l/ no live layer uses (12 hex digits of the chain id, more on a
    clash); caller holds the snapshots lock."""
    encoded = chain_id.partition(":")[2]
    wanted = f"../layers/{encoded}/fs"
    for length in range(12, len(encoded) + 1, 4):
        name = encoded[:length]
        path = f"{layout.links}/{name}"
        try:
            if os.readlink(path) == wanted or not os.path.exists(path):
                return name  # ours, or dangling (its layer was removed)
        except FileNotFoundError:
            return name
    raise SnapshotError(f"no free link name for layer {chain_id}")


def _ensure_symlink(layout: Layout, chain_id: str, link: str) -> None:
    """l/<link> -> ../layers/<hex>/fs (a crash between the rename and this leaves it out)."""
    path = f"{layout.links}/{link}"
    wanted = f"../layers/{chain_id.partition(':')[2]}/fs"
    try:
        if os.readlink(path) == wanted:
            return
        if os.path.exists(path):
            raise SnapshotError(f"{path} belongs to another layer: the snapshots are corrupt")
        os.unlink(path)  # dangling: a leftover of a removed layer
    except FileNotFoundError:
        pass
    os.symlink(wanted, path)
