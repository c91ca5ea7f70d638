"""What uses which snapshot, and removing what nothing uses (``image rm``, ``image gc``).

A layer snapshot is in use while a name in the store reaches an image with that chain id, or
a bundle snapshot stacks it. A bundle snapshot is live while its bundle exists and (overlay)
its rootfs is mounted from its upper dir; gc removes the others (and their upper dirs: like
``docker rm``, the container's changes go with it). Blobs of an image a bundle snapshot was
made from stay in the store (``protected_blobs``): commit writes a manifest that refers to
them.
"""

from __future__ import annotations

import os

from imagetools.errors import ImageError
from imagetools.snapshots import bundles
from imagetools.snapshots.layout import Layout, read_json, valid_id

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from imagetools.store import Store

_MAX_NESTING = 4
_UNREADABLE = (ImageError, OSError, ValueError)


class InUse:
    """Chain ids and manifest digests that bundle snapshots use, and the snapshots."""

    def __init__(self, snapshots: list[dict[str, Any]], live: list[dict[str, Any]]) -> None:
        self.snapshots = snapshots
        self.live = live
        self.chains = {chain for meta in snapshots for chain in meta.get("chain") or []}
        self.manifests = {_manifest_digest(meta) for meta in snapshots}


def _manifest_digest(meta: dict[str, Any]) -> str:
    return str(((meta.get("image") or {}).get("manifest") or {}).get("digest", ""))


def usage(store: Store) -> InUse:
    """Every bundle snapshot, the live ones, and what they use."""
    layout = bundles.layout_of(store)
    snapshots = bundles.bundle_snapshots(layout)
    return InUse(snapshots, [meta for meta in snapshots if bundles.is_live(layout, meta)])


def in_use(store: Store, descriptor: dict[str, Any]) -> list[dict[str, Any]]:
    """The live bundle snapshots made from the image ``descriptor`` names (a manifest, or an
    index: any of its manifests). ``image rm`` refuses to remove its last name while there
    are any."""
    manifests = set(image_manifests(store, descriptor)) | {descriptor.get("digest")}
    return [meta for meta in usage(store).live if _manifest_digest(meta) in manifests]


def protected_blobs(store: Store) -> set[str]:
    """Every blob an image of a bundle snapshot needs (manifest, config, layers)."""
    layout = bundles.layout_of(store)
    descriptors = [
        (meta.get("image") or {}).get("manifest") or {} for meta in bundles.bundle_snapshots(layout)
    ]
    return store.reachable(d for d in descriptors if d.get("digest"))


# -- images and their chains -------------------------------------------------------------------


def image_manifests(store: Store, descriptor: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """digest -> image manifest, for a manifest or (nested) index descriptor; what cannot
    be read is left out."""
    found: dict[str, dict[str, Any]] = {}
    pending = [(descriptor, 0)]
    while pending:
        current, depth = pending.pop()
        digest = current.get("digest")
        if not isinstance(digest, str) or digest in found or depth > _MAX_NESTING:
            continue
        try:
            document = store.read_json(digest)
        except _UNREADABLE:
            continue  # a missing or corrupt blob: nothing to count
        if not isinstance(document, dict):
            continue
        if isinstance(document.get("manifests"), list):
            pending += [(d, depth + 1) for d in document["manifests"] if isinstance(d, dict)]
        elif isinstance(document.get("config"), dict):
            found[digest] = document
    return found


def image_chains(store: Store, descriptor: dict[str, Any]) -> dict[str, list[str]]:
    """manifest digest -> the chain ids of its layers."""
    from imagetools.snapshots.chain import chain_ids

    chains = {}
    for digest, manifest in image_manifests(store, descriptor).items():
        try:
            config = store.read_json(manifest["config"]["digest"])
            diff_ids = config["rootfs"]["diff_ids"]
        except (*_UNREADABLE, KeyError, TypeError):
            continue  # an unreadable config: it has no snapshots to count
        if isinstance(diff_ids, list) and all(isinstance(d, str) for d in diff_ids):
            chains[digest] = chain_ids(diff_ids)
    return chains


def named_chains(store: Store) -> dict[str, list[str]]:
    """chain id -> the names whose images have that layer stack."""
    named: dict[str, list[str]] = {}
    for name, descriptor in store.refs():
        for chains in image_chains(store, descriptor).values():
            for chain in chains:
                named.setdefault(chain, []).append(name)
    return named


# -- image rm ------------------------------------------------------------------------------------


def release_image(store: Store, digest: str) -> list[str]:
    """After a name was removed: remove the layer snapshots of the image it named (the
    manifest or index ``digest``) that no other name and no bundle snapshot uses. Returns
    the chain ids removed."""
    layout = bundles.layout_of(store)
    candidates = {
        chain for chains in image_chains(store, {"digest": digest}).values() for chain in chains
    }
    if not candidates:
        return []
    with layout.lock():
        keep = set(named_chains(store)) | usage(store).chains
        return [chain for chain in sorted(candidates - keep) if _remove_layer(layout, chain)]


def _remove_layer(layout: Layout, chain_id: str) -> bool:
    """Remove a layer snapshot and its short link; caller holds the snapshots lock."""
    import shutil

    directory = layout.layer_dir(chain_id)
    if not os.path.isdir(directory):
        return False
    meta = read_json(f"{directory}/meta.json")
    link = meta.get("link") if isinstance(meta, dict) else None
    if isinstance(link, str) and link.isalnum():
        path = f"{layout.links}/{link}"
        try:
            if os.readlink(path) == f"../layers/{chain_id.partition(':')[2]}/fs":
                os.unlink(path)
        except OSError:
            pass
    # Rename first: a half-removed layer never looks complete to a concurrent reader.
    doomed = f"{layout.tmp}/removing-{os.urandom(6).hex()}"
    os.makedirs(layout.tmp, exist_ok=True)
    os.rename(directory, doomed)
    shutil.rmtree(doomed, ignore_errors=True)
    return True


# -- gc ------------------------------------------------------------------------------------------


def gc(store: Store, dry_run: bool = False) -> list[str]:
    """Remove bundle snapshots that are not live, layer snapshots nothing uses, and leftovers
    of killed unpacks. Returns what went (or would go): ``bundle <id> (<bundle path>)``,
    ``layer <chain id>``, ``tmp <path>``."""
    from imagetools.snapshots.tmp import remove_stale

    layout = bundles.layout_of(store)
    if not os.path.isdir(layout.dir):
        return []
    removed: list[str] = []
    with layout.lock():
        if not dry_run:
            removed += [f"tmp {path}" for path in remove_stale(layout)]
        kept: list[dict[str, Any]] = []
        for name in _listdir(layout.bundles):
            meta = bundles.load(layout, name)
            if meta is not None and bundles.is_live(layout, meta):
                kept.append(meta)
                continue
            removed.append(f"bundle {name}" + (f" ({meta['bundle']})" if meta else ""))
            if dry_run:
                continue
            if meta is not None:
                bundles.teardown(layout, meta, check_users=False)  # is_live looked
            elif valid_id(name):
                _remove_half_made(layout, name)
        keep = set(named_chains(store)) | {c for meta in kept for c in meta.get("chain") or []}
        for encoded in _listdir(layout.layers):
            chain = f"sha256:{encoded}"
            meta = read_json(f"{layout.layers}/{encoded}/meta.json")
            if isinstance(meta, dict) and meta.get("chainID") == chain and chain in keep:
                continue
            removed.append(f"layer {chain}")
            if not dry_run:
                _remove_layer(layout, chain)
        if not dry_run:
            for link in _listdir(layout.links):
                path = f"{layout.links}/{link}"
                if os.path.islink(path) and not os.path.exists(path):
                    os.unlink(path)
    return removed


def _remove_half_made(layout: Layout, name: str) -> None:
    """A bundle snapshot dir without metadata (killed before it was written; it was never
    mounted: the metadata is written before the mount)."""
    import shutil

    shutil.rmtree(layout.bundle_dir(name), ignore_errors=True)


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except FileNotFoundError:
        return []


# -- listing -------------------------------------------------------------------------------------


def listing(store: Store, sizes: bool = True) -> list[dict[str, Any]]:
    """Every snapshot for ``pyrun image snapshots``: id, kind, image, bundle, size, live."""
    layout = bundles.layout_of(store)
    rows: list[dict[str, Any]] = []
    names = named_chains(store)
    for encoded in _listdir(layout.layers):
        chain = f"sha256:{encoded}"
        meta = read_json(f"{layout.layers}/{encoded}/meta.json")
        if not isinstance(meta, dict):
            continue
        rows.append(
            {
                "id": chain,
                "kind": "layer",
                "image": ", ".join(sorted(set(names.get(chain, [])))),
                "bundle": "",
                "size": _size(f"{layout.layers}/{encoded}/fs") if sizes else None,
                "live": chain in names,
            }
        )
    for meta in bundles.bundle_snapshots(layout):
        image = meta.get("image") or {}
        own = (
            f"{layout.bundle_dir(meta['id'])}/upper"
            if meta["kind"] == "overlay"
            else meta["rootfs"]
        )
        rows.append(
            {
                "id": meta["id"],
                "kind": meta["kind"],
                "image": image.get("name") or _manifest_digest(meta),
                "bundle": meta["bundle"],
                "size": _size(own) if sizes else None,
                "live": bundles.is_live(layout, meta),
            }
        )
    return rows


def _size(path: str) -> int:
    """Bytes of the files below ``path`` (hardlinks counted once)."""
    total = 0
    seen: set[tuple[int, int]] = set()
    for directory, _dirs, files in os.walk(path):
        for name in files:
            try:
                info = os.lstat(f"{directory}/{name}")
            except OSError:
                continue
            key = (info.st_dev, info.st_ino)
            if key not in seen:
                seen.add(key)
                total += info.st_size
    return total
