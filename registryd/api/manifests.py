"""Manifests: GET/HEAD (end-3) with Accept negotiation, PUT (end-7), DELETE (end-9).

Stored byte for byte as pushed and served with the media type they were pushed with. Deleting
by tag removes just the tag (the spec's "Deleting tags"); deleting by digest removes the
manifest, every tag pointing to it and its referrers entry, as distribution does. In
pull-through cache mode registryd.proxy first makes the manifest present (and, for a client
that cannot take an index, its platform's child).
"""

from __future__ import annotations

import hashlib
import platform

from registryd.api.common import Request, Response, empty
from registryd.body import TooLarge
from registryd.errors import ApiError, ManifestBlobsUnknown
from registryd.manifests import INDEX_TYPES, Manifest, invalid, parse, references
from registryd.names import Digest, check_reference, is_tag, maybe_digest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from registryd.app import Registry
    from registryd.storage import Storage

# Go's GOARCH for this machine: what a client that cannot take an index gets instead.
GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le"}.get(
    platform.machine(), platform.machine()
)


def get(registry: Registry, request: Request, name: str, reference: str) -> Response:
    ref = check_reference(reference)
    storage = registry.storage
    if registry.cache is not None:
        registry.cache.manifest(name, ref)
    digest = _resolve(storage, name, ref)
    found = storage.read_manifest(name, digest)
    if found is None:
        raise unknown(name, reference, storage)
    body, media_type = found
    accepted = accept_list(request.headers.get("Accept"))
    if accepted and not _acceptable(media_type, accepted):
        # A client that cannot read an index gets this platform's image, as distribution does.
        child = None
        if media_type in INDEX_TYPES:
            child = _platform_child(registry, name, body, accepted)
        if child is None or isinstance(ref, Digest):
            raise ApiError(
                "MANIFEST_UNKNOWN",
                f"manifest is {media_type}, which the Accept header does not allow",
                {"mediaType": media_type},
            )
        digest, (body, media_type) = child
    headers = {
        "Content-Type": media_type,
        "Docker-Content-Digest": str(digest),
        "ETag": f'"{digest}"',
        "Content-Length": str(len(body)),
    }
    return Response(200, headers, body)


def put(registry: Registry, request: Request, name: str, reference: str) -> Response:
    ref = check_reference(reference)
    limit = registry.config.manifest_bytes
    try:
        body = request.body.read(limit)
    except TooLarge:
        raise ApiError(
            "MANIFEST_INVALID",
            f"manifest too large (the limit is {limit} bytes)",
            {"limit": limit},
            status=413,
        ) from None
    algorithm = ref.algorithm if isinstance(ref, Digest) else "sha256"
    digest = Digest(algorithm, hashlib.new(algorithm, body).hexdigest())
    if isinstance(ref, Digest) and ref != digest:
        raise ApiError(
            "DIGEST_INVALID",
            "manifest digest does not match the reference",
            {"reference": str(ref), "actual": str(digest)},
        )
    manifest = parse(body, request.headers.get("Content-Type"))
    tags = [ref] if isinstance(ref, str) else []
    for tag in request.query.get("tag", []):
        if not is_tag(tag):
            raise ApiError("MANIFEST_INVALID", "invalid tag", {"tag": tag[:300]})
        tags.append(tag)
    storage = registry.storage
    with storage.shared_lock():
        _check_references(storage, name, manifest)
        storage.put_blob_bytes(body, digest)
        storage.link_manifest(name, digest, manifest.media_type)
        if manifest.subject is not None:
            descriptor = manifest.referrer_descriptor(digest, len(body))
            storage.add_referrer(name, manifest.subject, descriptor)
        for tag in tags:
            storage.set_tag(name, tag, digest)
    headers = {"Location": f"/v2/{name}/manifests/{digest}", "Docker-Content-Digest": str(digest)}
    if manifest.subject is not None:
        headers["OCI-Subject"] = str(manifest.subject)
    return empty(201, headers)


def delete(registry: Registry, request: Request, name: str, reference: str) -> Response:
    ref = check_reference(reference)
    storage = registry.storage
    if isinstance(ref, str):
        if not storage.delete_tag(name, ref):
            raise unknown(name, reference, storage)
        return empty(202)
    found = storage.read_manifest(name, ref)
    if found is None:
        raise unknown(name, reference, storage)
    _children, subject = references(found[0])
    with storage.shared_lock():
        for tag in storage.tags_of(name, ref):
            storage.delete_tag(name, tag)
        storage.unlink_manifest(name, ref)
        if subject is not None:
            storage.remove_referrer(name, subject, ref)
    return empty(202)


def unknown(name: str, reference: str, storage: Storage) -> ApiError:
    if not storage.repo_exists(name):
        return ApiError("NAME_UNKNOWN", "repository name not known to registry", {"name": name})
    return ApiError("MANIFEST_UNKNOWN", "manifest unknown", {"reference": reference})


def accept_list(header: str | None) -> list[str]:
    """Media types of an Accept header (q=0 entries dropped, parameters ignored)."""
    if not header:
        return []
    types = []
    for item in header.split(","):
        media_type, *params = (part.strip() for part in item.split(";"))
        if any(p.replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000") for p in params):
            continue
        if media_type:
            types.append(media_type.lower())
    return types


def _acceptable(media_type: str, accepted: list[str]) -> bool:
    major = media_type.split("/", 1)[0]
    return any(a in (media_type, "*/*", f"{major}/*") for a in accepted)


def _resolve(storage: Storage, name: str, ref: Digest | str) -> Digest:
    if isinstance(ref, Digest):
        return ref
    digest = storage.resolve_tag(name, ref)
    if digest is None:
        raise unknown(name, ref, storage)
    return digest


def _platform_child(
    registry: Registry, name: str, body: bytes, accepted: list[str]
) -> tuple[Digest, tuple[bytes, str]] | None:
    import json

    try:
        manifests = json.loads(body).get("manifests") or []
    except (ValueError, AttributeError):
        return None
    for item in manifests:
        if not isinstance(item, dict):
            continue
        platform_ = item.get("platform") or {}
        if platform_.get("os") != "linux" or platform_.get("architecture") != GOARCH:
            continue
        digest = maybe_digest(str(item.get("digest", "")))
        if digest is None:
            continue
        if registry.cache is not None:
            registry.cache.manifest(name, digest)
        found = registry.storage.read_manifest(name, digest)
        if found is not None and _acceptable(found[1], accepted):
            return digest, found
    return None


def _check_references(storage: Storage, name: str, manifest: Manifest) -> None:
    """Config, layers and an index's manifests must be in this repository (the subject not)."""
    missing = []
    for blob in manifest.blobs:
        size = storage.blob_size(blob.digest) if storage.has_layer(name, blob.digest) else None
        if size is None:
            if not blob.foreign:
                missing.append(str(blob.digest))
        elif size != blob.size:
            raise invalid(f"{blob.digest} is {size} bytes, the manifest says {blob.size}")
    for child in manifest.children:
        if storage.manifest_type(name, child.digest) is None:
            missing.append(str(child.digest))
    if missing:
        raise ManifestBlobsUnknown(missing)
