"""Image management on the store: find, list, inspect, tag, remove, gc.

``find`` resolves what a user types the way docker does: an exact store name, then the
reference with docker's defaults (``busybox`` -> ``docker.io/library/busybox:latest``,
``repo@sha256:...``), then an image id: a prefix of the config digest (docker's and podman's
image id) or of the manifest digest. An id that matches two images is an error.

``inspect`` gives the JSON ``skopeo inspect`` prints (skopeo 1.9's fields, in its order and
Go's encoding: 4-space indent, RFC 3339 times with trailing zeros trimmed, ``<>&`` escaped),
plus ``Name`` and ``LayersData`` as newer skopeo has them. ``RepoTags`` are the tags the store
holds for the repository (skopeo lists the registry's). ``Digest`` is the digest a registry
knows the image by: the index's when a pull chose a platform from one. ``--config`` prints
the config as skopeo does (its OCI fields in the image-spec's order); ``--raw`` the stored
bytes.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from imagetools import manifest as mf
from imagetools.errors import ImageError, ImageNotFound, InvalidReference, StoreError
from imagetools.reference import Reference
from imagetools.store import INDEX_ANNOTATION, REF_ANNOTATION

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from imagetools.store import Store

_HEX = re.compile(r"^(?:sha256:)?([0-9a-f]{1,64})$")


@dataclass
class Found:
    """An image the user named: ``name`` is the store name used (None when chosen by id),
    ``names`` every store name of the same manifest."""

    descriptor: dict[str, Any]
    name: str | None
    names: list[str] = field(default_factory=list)

    @property
    def by_id(self) -> bool:
        return self.name is None


def _plain(descriptor: dict[str, Any]) -> dict[str, Any]:
    """The descriptor without the store's own name annotation."""
    entry = dict(descriptor)
    annotations = {k: v for k, v in entry.get("annotations", {}).items() if k != REF_ANNOTATION}
    entry.pop("annotations", None)
    if annotations:
        entry["annotations"] = annotations
    return entry


def find(store: Store, text: str) -> Found:
    refs = store.refs()

    def found(name: str | None, descriptor: dict[str, Any]) -> Found:
        same = [n for n, d in refs if d["digest"] == descriptor["digest"]]
        return Found(_plain(descriptor), name, same)

    for name, descriptor in refs:
        if name == text:
            return found(name, descriptor)
    try:
        ref: Reference | None = Reference.parse(text)
    except InvalidReference:
        ref = None
    if ref is not None:
        wanted = str(ref)
        for name, descriptor in refs:
            if name == wanted:
                return found(name, descriptor)
        if ref.digest:
            # repo@digest (a tag beside the digest says nothing: the digest wins, as in
            # docker): an image of that repository with that manifest, or pulled from that
            # index (a multi-arch tag's digest is the index's).
            for name, descriptor in refs:
                index = (descriptor.get("annotations") or {}).get(INDEX_ANNOTATION)
                if ref.digest in (descriptor["digest"], index) and _repository(name) == ref.name:
                    return found(f"{ref.name}@{ref.digest}", descriptor)
    match = _HEX.match(text)
    if match:
        prefix = match.group(1)
        hits: dict[str, dict[str, Any]] = {}
        ids: set[str | None] = set()  # the image id (config) each hit matched by, or None
        for _, descriptor in refs:
            digest = descriptor["digest"]
            if digest.partition(":")[2].startswith(prefix):
                hits[digest] = descriptor
                ids.add(None)
                continue
            config = _config_digest(store, descriptor)
            if config and config.partition(":")[2].startswith(prefix):
                hits[digest] = descriptor
                ids.add(config)
        if len(hits) > 1 and (len(ids) > 1 or None in ids):
            raise StoreError(f"{text!r} is ambiguous: it matches {len(hits)} images")
        if hits:
            # One image id may be several manifests (the same config, layers stored
            # compressed in one and not in another): all their names belong to it.
            result = found(None, next(iter(hits.values())))
            result.names = [n for n, d in refs if d["digest"] in hits]
            return result
    raise ImageNotFound(f"image {text} is not in the store ({store.root})")


def _repository(name: str) -> str:
    try:
        return Reference.parse(name).name
    except InvalidReference:
        return name


def _config_digest(store: Store, descriptor: dict[str, Any]) -> str | None:
    try:
        return platform_manifest(store, descriptor)[1].config.digest
    except (ImageError, ValueError):
        return None


def platform_manifest(store: Store, descriptor: dict[str, Any]) -> tuple[str, mf.Manifest]:
    """(digest, manifest) of the image: an index resolved to this host's platform among the
    manifests the store holds."""
    digest, media = descriptor["digest"], descriptor.get("mediaType")
    for _ in range(8):
        document = mf.parse(store.read_blob(digest), media)
        if isinstance(document, mf.Manifest):
            return digest, document
        present = tuple(e for e in document.manifests if store.has_blob(e.digest))
        choice = mf.Index(document.media_type, present, {}, {}).select()
        digest, media = choice.digest, choice.media_type
    raise ImageError(f"image {descriptor['digest']}: indexes nested too deep")


# -- ls -----------------------------------------------------------------------------------------
def list_images(store: Store) -> list[dict[str, Any]]:
    """One row per name: Name, Repository, Tag, Digest, ID (config digest), Created (RFC
    3339 or ""), Size (bytes the image's config and layers take in the store). Newest
    first, then by name; an image whose blobs cannot be read still gets its row."""
    rows = []
    for name, descriptor in store.refs():
        try:
            ref = Reference.parse(name)
            repository, tag = ref.name, ref.tag or "<none>"
        except InvalidReference:
            repository, tag = name, "<none>"
        row: dict[str, Any] = {
            "Name": name,
            "Repository": repository,
            "Tag": tag,
            "Digest": descriptor["digest"],
            "ID": "",
            "Created": "",
            "Size": 0,
        }
        try:
            _, image = platform_manifest(store, descriptor)
            config = store.read_json(image.config.digest)
            row["ID"] = image.config.digest
            created = config.get("created") if isinstance(config, dict) else None
            row["Created"] = go_time(created) if isinstance(created, str) else ""
            row["Size"] = image.config.size + sum(layer.size for layer in image.layers)
        except (ImageError, ValueError):
            pass
        rows.append(row)
    rows.sort(key=lambda r: r["Name"])
    rows.sort(key=lambda r: r["Created"], reverse=True)
    return rows


# -- inspect ------------------------------------------------------------------------------------
def inspect(store: Store, text: str) -> dict[str, Any]:
    """skopeo inspect's JSON for the image (see the module docstring). A missing or truncated
    layer blob is an error naming it: the image could not be unpacked or pushed."""
    found = find(store, text)
    descriptor = found.descriptor
    _, image = platform_manifest(store, descriptor)
    config = store.read_json(image.config.digest)
    if not isinstance(config, dict):
        raise ImageError(f"image {text}: its config {image.config.digest} is not an object")
    for layer in image.layers:
        if mf.is_foreign(layer.media_type) and not store.has_blob(layer.digest):
            continue
        store.check_blob(layer.digest, layer.size)
    inner: dict[str, Any] = config["config"] if isinstance(config.get("config"), dict) else {}
    name = found.name or (found.names[0] if found.names else None)
    repository = _repository(name) if name else None
    tags = sorted(
        {
            ref.tag
            for ref in (_parsed(n) for n, _ in store.refs())
            if ref is not None and ref.tag and ref.name == repository
        }
    )
    info: dict[str, Any] = {}
    if repository:
        info["Name"] = repository
    info["Digest"] = descriptor.get("annotations", {}).get(INDEX_ANNOTATION, descriptor["digest"])
    info["RepoTags"] = tags
    created = config.get("created")
    if isinstance(created, str) and created:
        info["Created"] = go_time(created)
    info["DockerVersion"] = config.get("docker_version") or ""
    info["Labels"] = inner.get("Labels") or None
    info["Architecture"] = config.get("architecture", "")
    if config.get("variant"):
        info["Variant"] = config["variant"]
    info["Os"] = config.get("os", "")
    info["Layers"] = [layer.digest for layer in image.layers]
    info["LayersData"] = [
        {
            "MIMEType": layer.media_type,
            "Digest": layer.digest,
            "Size": layer.size,
            "Annotations": layer.annotations or None,
        }
        for layer in image.layers
    ]
    info["Env"] = inner.get("Env") or None
    return info


def _parsed(name: str) -> Reference | None:
    try:
        return Reference.parse(name)
    except InvalidReference:
        return None


def raw_manifest(store: Store, text: str) -> bytes:
    """The manifest (or index) bytes as a registry would serve them (``--raw``)."""
    descriptor = find(store, text).descriptor
    index = descriptor.get("annotations", {}).get(INDEX_ANNOTATION)
    if index and store.has_blob(index):
        return store.read_blob(index)
    return store.read_blob(descriptor["digest"])


def raw_config(store: Store, text: str) -> bytes:
    _, image = platform_manifest(store, find(store, text).descriptor)
    return store.read_blob(image.config.digest)


_IMAGE_FIELDS = ("author", "architecture", "variant", "os", "os.version", "os.features")
_CONFIG_FIELDS = (
    "User",
    "ExposedPorts",
    "Env",
    "Entrypoint",
    "Cmd",
    "Volumes",
    "WorkingDir",
    "Labels",
    "StopSignal",
    "ArgsEscaped",
)
_HISTORY_FIELDS = ("created_by", "author", "comment", "empty_layer")
_ALWAYS = ("architecture", "os")


def oci_config(config: dict[str, Any]) -> dict[str, Any]:
    """The config as skopeo --config shows it: the OCI image-spec's fields in its struct
    order, empty ones left out (Go's omitempty), maps sorted."""
    out: dict[str, Any] = {}
    if isinstance(config.get("created"), str):
        out["created"] = go_time(config["created"])
    for key in _IMAGE_FIELDS:
        value = config.get(key)
        if value or key in _ALWAYS:
            out[key] = value if value is not None else ""
    inner: dict[str, Any] = config["config"] if isinstance(config.get("config"), dict) else {}
    view: dict[str, Any] = {}
    for key in _CONFIG_FIELDS:
        value = inner.get(key)
        if not value:
            continue
        if key in ("ExposedPorts", "Volumes"):
            value = {k: {} for k in sorted(value)}
        elif key == "Labels":
            value = dict(sorted(value.items()))
        view[key] = value
    out["config"] = view
    rootfs: dict[str, Any] = config["rootfs"] if isinstance(config.get("rootfs"), dict) else {}
    out["rootfs"] = {"type": rootfs.get("type", ""), "diff_ids": rootfs.get("diff_ids")}
    history = []
    for entry in config.get("history") or []:
        item: dict[str, Any] = {}
        if isinstance(entry.get("created"), str):
            item["created"] = go_time(entry["created"])
        for key in _HISTORY_FIELDS:
            if entry.get(key):
                item[key] = entry[key]
        history.append(item)
    if history:
        out["history"] = history
    return out


_TIME = re.compile(r"^(\d{4}-\d\d-\d\d)[Tt](\d\d:\d\d:\d\d)(?:\.(\d+))?(?:([Zz])|([+-]\d\d:\d\d))$")


def go_time(text: str) -> str:
    """An RFC 3339 time as Go's time.Time marshals it (RFC3339Nano: fraction without
    trailing zeros, "Z" for a zero offset); text that is not such a time as it is."""
    match = _TIME.match(text)
    if not match:
        return text
    date, clock, fraction, _, offset = match.groups()
    fraction = (fraction or "")[:9].rstrip("0")
    zone = "Z" if offset in (None, "+00:00", "-00:00") else offset
    return f"{date}T{clock}{'.' + fraction if fraction else ''}{zone}"


def go_json(value: Any, indent: int = 4) -> str:
    """JSON as Go's json.MarshalIndent writes it (HTML characters escaped, UTF-8 kept)."""
    text = json.dumps(value, indent=indent, ensure_ascii=False)
    for char, escaped in (
        ("&", "\\u0026"),
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escaped)
    return text


# -- tag, rm, gc --------------------------------------------------------------------------------
def tag(store: Store, source: str, target: str) -> str:
    """Give the image ``source`` the name ``target`` (docker's defaults); returns it."""
    parsed = Reference.parse(target)
    if parsed.digest is not None:
        raise ImageError(f"refusing to create a tag with a digest reference: {target}")
    name = str(parsed)
    with store.lease():  # the image cannot be gc'd between finding and naming it
        found = find(store, source)
        store.set_ref(name, found.descriptor)
    return name


def _snapshot_hook(name: str) -> Any:
    """``imagetools.snapshot(s).<name>`` when the snapshotters provide it, else None."""
    import importlib

    for module in ("imagetools.snapshot", "imagetools.snapshots"):
        try:
            hook = getattr(importlib.import_module(module), name, None)
        except ModuleNotFoundError as err:
            if err.name not in (module, "imagetools.snapshot"):
                raise
            continue
        if hook is not None:
            return hook
    return None


@dataclass
class Removal:
    names: list[str]  # the names removed
    snapshots: list[str]  # layer snapshots released with the image's last name


def remove(store: Store, text: str, force: bool = False) -> Removal:
    """Remove the name ``text`` (or, for an id, every name of that image; more than one
    needs ``force``, as in docker). Refused while a bundle snapshot uses the image and this
    was its last name, unless ``force``. Blobs stay until gc; the image's layer snapshots
    nothing else uses go with its last name (the snapshotters' release_image)."""
    found = find(store, text)
    targets = found.names if found.by_id else [found.name or text]
    if found.name is not None and not any(found.name == name for name, _ in store.refs()):
        # repo@digest names no store entry: it stands for that repository's names of it.
        repository = _repository(found.name)
        targets = [name for name in found.names if _repository(name) == repository]
    repositories = {_repository(name) for name in targets}
    if found.by_id and len(repositories) > 1 and not force:
        raise ImageError(
            f"conflict: unable to delete {text} (must be forced) - image is referenced in"
            f" multiple repositories ({', '.join(targets)})"
        )
    remaining = [n for n in found.names if n not in targets]
    if not remaining and not force:
        in_use = _snapshot_hook("in_use")
        users = in_use(store, found.descriptor) if in_use is not None else None
        if users:
            raise ImageError(
                f"image {text} is in use by a bundle snapshot ({len(users)} in all): delete"
                " the bundle first, or force the removal with -f"
            )
    removal = Removal([], [])
    digests = {d["digest"] for n, d in store.refs() if n in targets}
    for name in targets:
        try:
            store.remove_ref(name)
        except ImageNotFound:
            continue  # removed by another process meanwhile
        removal.names.append(name)
    release = _snapshot_hook("release_image")
    if release is not None:
        left = {d["digest"] for _, d in store.refs()}
        for digest in sorted(digests - left):
            removal.snapshots += release(store, digest)
    return removal


def gc(store: Store, dry_run: bool = False) -> tuple[list[str], Any]:
    """Blobs no name reaches and abandoned ingest files (Store.gc), then the snapshots of
    images that are gone (the snapshotters' gc, when they have one). Returns both results."""
    removed = store.gc(dry_run=dry_run)
    snapshots = None
    hook = _snapshot_hook("gc")
    if hook is not None:
        import inspect as introspect

        if "dry_run" in introspect.signature(hook).parameters:
            snapshots = hook(store, dry_run=dry_run)
        elif not dry_run:
            snapshots = hook(store)
    return removed, snapshots
