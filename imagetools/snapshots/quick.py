"""The fast path of ``pyrun image unpack --snapshotter overlay REF BUNDLE`` (issue 4: a new
bundle of an already-unpacked image in < 50 ms, process start included).

``import click`` alone costs ~45 ms here, and the full unpack path imports json, re,
dataclasses, pathlib and the store's locking on top. This path does the common case with
none of them: REF named exactly in the store's index.json, an image manifest (no index to
choose a platform from), every layer snapshot already made, a bundle without config. Then:
verify and read manifest and config, mount the overlay (bundles.prepare), convert the image
config (imagetools.convert, as unpack does) and write config.json with the same annotations.

Anything else returns None BEFORE any side effect, and the caller runs the full path
(tests/integration/test_snapshots.py checks that both write the same config).

imagetools/quick.py hands ``pyrun image [--root R] unpack ...`` here first; this takes only
``[--snapshotter overlay] REF BUNDLE`` (``--opt=value`` too). Any other word, option or help
goes to click. (Not under imagetools/cli: that package imports click.)
"""

from __future__ import annotations

import os

from imagetools.atomic import write_atomic
from imagetools.errors import BlobMismatch, ImageNotFound
from runtime import jsonfast

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO

# imagetools.unpack's annotation names and manifest media types (not imported: see above).
IMAGE_NAME = "io.pyrun.image.name"
IMAGE_MANIFEST = "io.pyrun.image.manifest"
IMAGE_CONFIG = "io.pyrun.image.config"
REF_ANNOTATION = "org.opencontainers.image.ref.name"
_MANIFESTS = (
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
_LAYERS = (
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
)


class _Store:
    """The little of imagetools.store.Store the overlay snapshotter reads."""

    def __init__(self, root: str) -> None:
        self.root = root

    def blob_path(self, digest: str) -> str:
        algorithm, _, encoded = digest.partition(":")
        if algorithm != "sha256" or len(encoded) != 64:
            raise ImageNotFound(f"blob {digest} is not in the store")
        return f"{self.root}/blobs/sha256/{encoded}"

    def blob_size(self, digest: str) -> int:
        return os.stat(self.blob_path(digest)).st_size

    def open_blob(self, digest: str, size: int | None = None) -> BinaryIO:
        return open(self.blob_path(digest), "rb")

    def read_verified(self, digest: str) -> Any:
        from _sha256 import sha256

        with open(self.blob_path(digest), "rb") as handle:
            data = handle.read()
        if f"sha256:{sha256(data).hexdigest()}" != digest:
            raise BlobMismatch(f"blob {digest} in the store is corrupt")
        return jsonfast.loads(data)


class _Layer:
    __slots__ = ("diff_id", "digest", "media_type", "size")

    def __init__(self, digest: str, media_type: str, size: int, diff_id: str) -> None:
        self.digest = digest
        self.media_type = media_type
        self.size = size
        self.diff_id = diff_id


class _Image:
    """imagetools.unpack.ResolvedImage's fields."""

    def __init__(
        self,
        name: str,
        manifest_digest: str,
        manifest: dict[str, Any],
        config_digest: str,
        config: dict[str, Any],
        layers: list[_Layer],
    ) -> None:
        self.name: str | None = name
        self.manifest_digest = manifest_digest
        self.manifest = manifest
        self.config_digest = config_digest
        self.config = config
        self.layers = layers


def _resolve(store: _Store, ref: str) -> _Image | None:
    try:
        with open(f"{store.root}/index.json", "rb") as handle:
            index = jsonfast.loads(handle.read())
    except (OSError, ValueError):
        return None
    found = [
        d
        for d in index.get("manifests", [])
        if isinstance(d, dict) and (d.get("annotations") or {}).get(REF_ANNOTATION) == ref
    ]
    if len(found) != 1 or found[0].get("mediaType") not in _MANIFESTS:
        return None
    try:
        manifest = store.read_verified(found[0]["digest"])
        config_digest = manifest["config"]["digest"]
        config = store.read_verified(config_digest)
        diff_ids = config["rootfs"]["diff_ids"]
        descriptors = manifest["layers"]
    except (OSError, ValueError, KeyError, TypeError, ImageNotFound, BlobMismatch):
        return None  # the full path says what is wrong
    if not isinstance(diff_ids, list) or len(diff_ids) != len(descriptors) or not diff_ids:
        return None
    layers = []
    for descriptor, diff_id in zip(descriptors, diff_ids, strict=True):
        if descriptor.get("mediaType") not in _LAYERS or not isinstance(diff_id, str):
            return None
        layers.append(
            _Layer(descriptor["digest"], descriptor["mediaType"], descriptor["size"], diff_id)
        )
    return _Image(ref, found[0]["digest"], manifest, config_digest, config, layers)


def _layers_ready(root: str, image: _Image) -> bool:
    from imagetools.snapshots.chain import chain_ids
    from imagetools.snapshots.layers import link_of
    from imagetools.snapshots.layout import Layout

    layout = Layout(os.path.realpath(root))
    chains = chain_ids([layer.diff_id for layer in image.layers])
    return all(link_of(layout, chain) is not None for chain in chains)


def _bundle_fresh(bundle: str) -> bool:
    if any(os.path.lexists(f"{bundle}/{n}") for n in ("config.json", "config.yaml", "config.yml")):
        return False
    try:
        return not os.listdir(f"{bundle}/rootfs")
    except FileNotFoundError:
        return True
    except OSError:
        return False


def unpack_overlay(root: str, ref: str, bundle: str) -> bool:
    """Unpack ``ref`` into ``bundle`` with the overlay snapshotter if this is the simple case;
    False (nothing done) when the full path must do it."""
    from imagetools.snapshots.overlay import support

    store = _Store(root.rstrip("/") or "/")
    image = _resolve(store, ref)
    if image is None or not _layers_ready(store.root, image) or not _bundle_fresh(bundle):
        return False
    from imagetools.snapshots.bundles import layout_of

    if support(layout_of(store)) is None:
        return False
    from imagetools.convert import runtime_config
    from imagetools.snapshots.bundles import abandon, prepare, snapshot_annotations

    created = not os.path.lexists(bundle)
    os.makedirs(bundle, exist_ok=True)
    try:
        rootfs = prepare(store, image, bundle, snapshotter="overlay")
        try:
            notes = {IMAGE_MANIFEST: image.manifest_digest, IMAGE_CONFIG: image.config_digest}
            notes[IMAGE_NAME] = ref
            notes.update(snapshot_annotations(store, image, bundle, "overlay", rootfs))
            config = runtime_config(image.config, rootfs, rootless=False, annotations=notes)
            _write_config(f"{bundle}/config.json", config)
        except BaseException:
            abandon(store, bundle)
            raise
    except BaseException:
        if created:
            try:
                os.rmdir(bundle)  # what failed cleaned up after itself; an empty dir is ours
            except OSError:
                pass
        raise
    return True


def _write_config(path: str, config: dict[str, Any]) -> None:
    temp = f"{os.path.dirname(path)}/.config.json.tmp{os.getpid()}"
    write_atomic(path, (jsonfast.dumps(config, indent=1) + "\n").encode(), temp=temp)


# -- the command line ---------------------------------------------------------------------------


def main(root: str | None, args: list[str]) -> int | None:
    """The exit code, or None: run the full command line instead."""
    parsed = _parse(args)
    if parsed is None:
        return None
    snapshotter, ref, bundle = parsed
    if root is None:
        from imagetools.paths import default_root

        root = default_root()
    if snapshotter is None and not _overlay_cached(root):
        return None
    from runtime.errors import PyrunError

    try:
        if not unpack_overlay(root, ref, bundle):
            return None
    except PyrunError as err:
        from runtime.cli.edge import _report

        _report(err.message)
        return err.exit_code
    os.write(1, f"{_as_pathlib_prints(bundle)}\n".encode())
    return 0


def _parse(args: list[str]) -> tuple[str | None, str, str] | None:
    """The words after ``unpack``."""
    snapshotter: str | None = None
    positional: list[str] = []
    rest = _split_equals(args)
    while rest:
        word = rest.pop(0)
        if word == "--snapshotter" and rest and snapshotter is None:
            snapshotter = rest.pop(0)
            if snapshotter != "overlay":
                return None
        elif word.startswith("-") or not word:
            return None
        else:
            positional.append(word)
    if len(positional) != 2:
        return None
    return snapshotter, positional[0], positional[1]


def _split_equals(args: list[str]) -> list[str]:
    words = []
    for arg in args:
        name, equals, value = arg.partition("=")
        if equals and name == "--snapshotter":
            words += [name, value]
        else:
            words.append(arg)
    return words


def _overlay_cached(root: str) -> bool:
    """The store's cached overlay probe says yes for this kernel (no probe here: the full
    path makes it)."""
    from imagetools.snapshots.layout import read_json

    cached = read_json(f"{os.path.realpath(root)}/snapshots/overlay.json")
    return (
        isinstance(cached, dict)
        and cached.get("kernel") == os.uname().release
        and cached.get("supported") is True
    )


def _as_pathlib_prints(path: str) -> str:
    """str(pathlib.Path(path)), as the full path prints the bundle."""
    text = "/".join(p for p in path.split("/") if p not in ("", "."))
    if path.startswith("//") and not path.startswith("///"):
        return "//" + text  # POSIX leaves a leading "//" to the implementation: pathlib keeps it
    if path.startswith("/"):
        return "/" + text
    return text or "."
