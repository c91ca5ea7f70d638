"""``push``: a stored image to a registry, under its own name or another one.

::

    for every blob of the image (configs and layers, in parallel):
        HEAD blobs/<digest>          200 → "exists", nothing sent
        POST blobs/uploads/?mount=<digest>&from=<repo>
                                     when the blob came from another repository of the same
                                     registry: 201 → "mounted from <repo>"; 202 → the registry
                                     could not, and the session it opened is used to upload
        POST blobs/uploads/ + PUT ?digest=          size <= MONOLITHIC_MAX: one request
        POST + PATCH (Content-Range) ... + PUT ?digest=   larger: CHUNK_SIZE pieces
    then the manifests (an index's children by digest first), with their own Content-Type

Where blobs came from: ``pull`` records ``registry/repository`` in the annotation
``io.pyrun.image.source`` of the name it writes (pull.py). A blob is mounted from the first
repository of the destination registry, other than the destination, that a stored name with
such an annotation reaches. Foreign (non-distributable) layers are never pushed: the registry
does not need them, clients fetch them from their URLs.
"""

from __future__ import annotations

import threading

from imagetools.errors import BlobMismatch, ImageError, ImageNotFound, RegistryError
from imagetools.manifest import Descriptor, Index, Manifest, ManifestError, is_foreign, parse
from imagetools.parallel import run_all
from imagetools.progress import NullProgress
from imagetools.pull import SOURCE_ANNOTATION
from imagetools.reference import Reference
from imagetools.registry.client import (
    RegistryClient,
    RegistryHTTPError,
    pull_scope,
    push_scope,
)
from imagetools.registry.transport import ConnectionFailed

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from imagetools.progress import Progress
    from imagetools.store import Store

PARALLEL = 4
MONOLITHIC_MAX = 16 << 20
CHUNK_SIZE = 16 << 20
UPLOAD_TRIES = 3


def resolve_name(store: Store, name: str) -> tuple[str, dict[str, Any]]:
    """A stored image by reference (with docker's defaults) or digest/id prefix."""
    try:
        full = str(Reference.parse(name))
    except ImageError:
        full = name
    try:
        return full, store.resolve(full)
    except ImageNotFound:
        return full, store.resolve(name)


def push(
    store: Store,
    source: str,
    destination: str | None = None,
    tls_verify: bool | None = None,
    progress: Progress | None = None,
    client: RegistryClient | None = None,
    parallel: int = PARALLEL,
    monolithic_max: int = MONOLITHIC_MAX,
    chunk_size: int = CHUNK_SIZE,
    cert_dir: str | None = None,
) -> dict[str, Any]:
    """Push the stored image ``source`` to ``destination`` (default: its own name); returns
    the descriptor of what the destination now names. ``cert_dir`` as for pull."""
    _, top = resolve_name(store, source)
    if destination is None:
        destination = source
    dest = Reference.parse(destination)
    if dest.digest is not None and dest.digest != top["digest"]:
        raise ImageError(f"{destination}: the image's digest is {top['digest']}")
    client = client or RegistryClient(
        dest.registry, tls_verify=tls_verify, pool_size=parallel, cert_dir=cert_dir
    )
    progress = progress or NullProgress()

    manifests, blobs = _walk(store, Descriptor.from_json(top, "descriptor"))
    sources = _mount_sources(store, dest, {b.digest for b in blobs})
    client.auth.add_scope(push_scope(dest.repository))
    for repository in sorted(set(sources.values())):
        client.auth.add_scope(pull_scope(repository))
    # One request first: the upload threads then start with the registry's scheme known (and a
    # token for every scope above), instead of each collecting its own 401.
    client.check_login()

    _push_blobs(
        store,
        client,
        dest.repository,
        blobs,
        sources,
        progress,
        parallel,
        monolithic_max,
        chunk_size,
    )

    # Children first (by digest): the registry checks that what an index names exists.
    for descriptor, data in manifests[:-1]:
        if not client.manifest_exists(dest.repository, descriptor.digest):
            _put_manifest(client, dest.repository, descriptor.digest, descriptor, data)
        progress.finish(descriptor.short, "manifest pushed")
    descriptor, data = manifests[-1]
    _put_manifest(client, dest.repository, dest.digest or dest.tag or "latest", descriptor, data)
    return descriptor.to_json()


def _walk(store: Store, top: Descriptor) -> tuple[list[tuple[Descriptor, bytes]], list[Descriptor]]:
    """Manifests in push order (children, then the top) and the unique blobs they need."""
    manifests: list[tuple[Descriptor, bytes]] = []
    blobs: dict[str, Descriptor] = {}

    def visit(descriptor: Descriptor, depth: int) -> None:
        if depth > 4:
            raise ManifestError(f"{top.digest}: indexes nested too deep")
        try:
            data = store.read_blob(descriptor.digest)
        except ImageNotFound:
            raise ImageNotFound(
                f"{descriptor.digest} ({descriptor.media_type}) is not in the store: an image"
                " pulled for one platform cannot be pushed as its whole index"
            ) from None
        document = parse(data, descriptor.media_type)
        if isinstance(document, Index):
            for child in document.manifests:
                visit(child, depth + 1)
        elif isinstance(document, Manifest):
            for blob in document.blobs:
                if is_foreign(blob.media_type):
                    continue
                if not store.has_blob(blob.digest, blob.size):
                    raise ImageNotFound(f"blob {blob.digest} of {descriptor.digest} is missing")
                blobs.setdefault(blob.digest, blob)
        manifests.append((descriptor, data))

    visit(top, 0)
    return manifests, list(blobs.values())


def _mount_sources(store: Store, dest: Reference, wanted: set[str]) -> dict[str, str]:
    """blob digest -> a repository of dest's registry it can be mounted from."""
    found: dict[str, str] = {}
    for _, descriptor in store.refs():
        source = descriptor.get("annotations", {}).get(SOURCE_ANNOTATION, "")
        registry, _, repository = source.partition("/")
        if registry != dest.registry or not repository or repository == dest.repository:
            continue
        for digest in store.reachable([descriptor]) & wanted:
            found.setdefault(digest, repository)
    return found


def _push_blobs(
    store: Store,
    client: RegistryClient,
    repository: str,
    blobs: list[Descriptor],
    sources: dict[str, str],
    progress: Progress,
    parallel: int,
    monolithic_max: int,
    chunk_size: int,
) -> None:
    run_all(
        lambda blob, stop: _push_blob(
            store,
            client,
            repository,
            blob,
            sources.get(blob.digest),
            progress,
            stop,
            monolithic_max,
            chunk_size,
        ),
        blobs,
        parallel,
        "push",
    )


def _push_blob(
    store: Store,
    client: RegistryClient,
    repository: str,
    blob: Descriptor,
    source: str | None,
    progress: Progress,
    stop: threading.Event,
    monolithic_max: int,
    chunk_size: int,
) -> None:
    key = blob.short
    if stop.is_set():
        return
    progress.start(key, blob.size)
    if client.blob_exists(repository, blob.digest, push_scope(repository)):
        progress.finish(key, "exists")
        return
    for attempt in range(1, UPLOAD_TRIES + 1):
        try:
            location = None
            if source is not None and attempt == 1:
                location = client.mount_blob(repository, blob.digest, source)
                if location is None:
                    progress.finish(key, f"mounted from {source}")
                    return
            if location is None:
                location = client.start_upload(repository)
            _upload(
                store,
                client,
                repository,
                blob,
                location,
                progress,
                stop,
                monolithic_max,
                chunk_size,
            )
            progress.finish(key, "pushed")
            return
        except (ConnectionFailed, RegistryHTTPError) as err:
            status = getattr(err, "status", 500)
            if attempt == UPLOAD_TRIES or status < 500 or stop.is_set():
                raise


def _upload(
    store: Store,
    client: RegistryClient,
    repository: str,
    blob: Descriptor,
    location: str,
    progress: Progress,
    stop: threading.Event,
    monolithic_max: int,
    chunk_size: int,
) -> None:
    with store.open_blob(blob.digest) as handle:
        if blob.size <= monolithic_max:
            client.finish_upload(repository, location, blob.digest, handle, blob.size)
            return
        offset = 0
        while offset < blob.size:
            if stop.is_set():
                from imagetools.registry.client import Interrupted

                raise Interrupted(f"blob {blob.digest}: interrupted")
            data = handle.read(chunk_size)
            if not data:
                raise BlobMismatch(f"blob {blob.digest} in the store is shorter than {blob.size}")
            location = client.upload_chunk(repository, location, data, offset)
            offset += len(data)
            progress.update(blob.short, offset)
        client.finish_upload(repository, location, blob.digest)


def _put_manifest(
    client: RegistryClient, repository: str, reference: str, descriptor: Descriptor, data: bytes
) -> None:
    answered = client.put_manifest(repository, reference, data, descriptor.media_type)
    if answered and answered.startswith("sha256:") and answered != descriptor.digest:
        raise RegistryError(
            f"{client.registry}/{repository}:{reference}: the registry stored digest {answered},"
            f" expected {descriptor.digest}"
        )
