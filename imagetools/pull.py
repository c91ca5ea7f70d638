"""``pull``: an image from a registry into the store.

::

    GET manifests/<tag|digest>  ──► index/list? ──► select the platform ──► GET manifests/<digest>
          (verified: the digest asked for, or the registry's Docker-Content-Digest)
    config + layers, in parallel (PARALLEL threads), each streamed through Store.ingest:
          skipped without a request when already in blobs/; resumed with Range from what an
          interrupted pull left in ingest/; verified (digest and size) before it enters blobs/
    the manifest blob, then the name (index.json) — so a name never points at a partial image

What the name points at: the **platform manifest**, not the index. A pull fetches one
platform's blobs, so naming the index would leave a name whose other platforms are missing
(push could not send it back, unpack would have to choose again). Like docker's own store,
the name is the manifest that was selected; the index is recorded on the name's descriptor:

    annotations:
      org.opencontainers.image.ref.name  the full reference, e.g. 127.0.0.1:5000/busybox:latest
      io.pyrun.image.source              registry/repository it came from (push uses it to
                                         mount blobs across repositories of that registry)
      io.pyrun.image.index               digest of the index/list the manifest was chosen from
      io.pyrun.image.index.mediaType     its media type
    platform: the selected platform (or the config's os/architecture when there is no index)

The index blob itself is stored too and kept while the name is (Store.reachable follows the
annotation to that one blob): ``inspect`` shows its digest and ``--raw`` its bytes, as skopeo
does for the same reference.

``image_manifest`` reads back a named image (a manifest, or an index from ``load``, resolved to
the platform wanted) for the other commands.
"""

from __future__ import annotations

import threading

from imagetools.errors import BlobMismatch, ImageError, RegistryError
from imagetools.manifest import Descriptor, Index, Manifest, ManifestError, Platform, parse
from imagetools.parallel import run_all
from imagetools.progress import NullProgress
from imagetools.reference import Reference
from imagetools.store import INDEX_ANNOTATION, REF_ANNOTATION, digest_of

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from imagetools.progress import Progress
    from imagetools.registry.client import RegistryClient
    from imagetools.store import Store

PARALLEL = 6
SOURCE_ANNOTATION = "io.pyrun.image.source"
INDEX_TYPE_ANNOTATION = "io.pyrun.image.index.mediaType"
MAX_NESTING = 4


def pull(
    store: Store,
    ref: str | Reference,
    platform: str | Platform | None = None,
    tls_verify: bool | None = None,
    progress: Progress | None = None,
    client: RegistryClient | None = None,
    parallel: int = PARALLEL,
    cert_dir: str | None = None,
) -> dict[str, Any]:
    """Pull ``ref`` into ``store``; returns the descriptor now named ``str(ref)``.
    ``cert_dir``: the registry's CA and client certificates (default: its certs.d dirs)."""
    reference = ref if isinstance(ref, Reference) else Reference.parse(ref)
    wanted = Platform.parse(platform) if isinstance(platform, str) else platform
    progress = progress or NullProgress()
    if client is not None:
        with store.lease():
            return _pull(store, reference, wanted, client, progress, parallel)
    from imagetools.registry.client import RegistryClient
    from imagetools.registry.config import endpoints

    passed_over: list[str] = []
    places = endpoints(reference.registry, reference.repository, reference.digest is not None)
    for place in places:
        source = Reference(place.registry, place.repository, reference.tag, reference.digest)
        client = RegistryClient(
            place.registry,
            tls_verify=tls_verify if tls_verify is not None else not place.insecure,
            pool_size=parallel,
            cert_dir=cert_dir,
        )
        try:
            # The lease keeps gc away from blobs found or fetched until the name reaches them.
            with store.lease():
                return _pull(store, reference, wanted, client, progress, parallel, source)
        except ImageError as err:  # unreachable, refused, no such image, a bad manifest ...
            if not place.mirror:
                if passed_over:
                    err.message += f" (mirrors tried first: {'; '.join(passed_over)})"
                raise
            passed_over.append(f"{source.name}: {err.message}")
    raise AssertionError("endpoints() always ends with the registry itself")


def _pull(
    store: Store,
    reference: Reference,
    wanted: Platform | None,
    client: RegistryClient,
    progress: Progress,
    parallel: int,
    source: Reference | None = None,
) -> dict[str, Any]:
    """Pull what ``source`` (default: ``reference``) names and store it as ``reference``."""
    source = source or reference
    repository = source.repository
    data, media_type, digest = fetch_manifest(
        store, client, repository, source.reference, digest=source.digest
    )
    document = parse(data, media_type)
    index: Descriptor | None = None
    index_data = b""
    chosen: Descriptor | None = None
    for _ in range(MAX_NESTING):
        if not isinstance(document, Index):
            break
        if index is None:
            index, index_data = Descriptor(document.media_type, digest, len(data)), data
        chosen = document.select(wanted)
        data, media_type, digest = fetch_manifest(
            store, client, repository, chosen.digest, digest=chosen.digest, size=chosen.size
        )
        document = parse(data, chosen.media_type)
    if not isinstance(document, Manifest):
        raise ManifestError(f"{reference}: indexes nested more than {MAX_NESTING} deep")

    found = chosen.platform if chosen is not None else None
    blobs = document.blobs
    if chosen is None and wanted is not None:
        # No index to choose from: the config says what the image is for; check it before
        # fetching the layers.
        download_blobs(store, client, repository, (document.config,), progress, parallel)
        found = _config_platform(store, document)
        if found is not None and _mismatch(wanted, found):
            raise ManifestError(
                f"{reference} is for {found}, not the platform {wanted} that was asked for"
            )
        blobs = document.layers
    download_blobs(store, client, repository, blobs, progress, parallel)
    if index is not None:
        store.write_blob(index_data, index.digest)
    store.write_blob(data, digest)
    if found is None and chosen is None:
        found = _config_platform(store, document)

    descriptor: dict[str, Any] = {"mediaType": document.media_type, "digest": digest}
    descriptor["size"] = len(data)
    annotations = {SOURCE_ANNOTATION: source.name}
    if index is not None:
        annotations[INDEX_ANNOTATION] = index.digest
        annotations[INDEX_TYPE_ANNOTATION] = index.media_type
    descriptor["annotations"] = annotations
    if found is not None:
        descriptor["platform"] = found.to_json()
    # A tag beside a digest says nothing (the digest wins, as in docker): the name is the
    # digest's, which the other commands find.
    name = f"{reference.name}@{reference.digest}" if reference.digest else str(reference)
    store.set_ref(name, descriptor)
    annotations[REF_ANNOTATION] = name
    return descriptor


def fetch_manifest(
    store: Store,
    client: RegistryClient,
    repository: str,
    reference: str,
    digest: str | None = None,
    size: int | None = None,
) -> tuple[bytes, str | None, str]:
    """(body, media type, digest) of a manifest; from the store, without a request, when it
    is asked for by a digest the store has. Verified against ``digest`` (or the registry's
    Docker-Content-Digest) and ``size``."""
    if digest is not None and store.has_blob(digest, size):
        try:
            return store.read_blob(digest), None, digest
        except BlobMismatch:
            pass  # a rotten copy: fetch it again
    body, content_type, announced = client.get_manifest(repository, reference)
    where = f"{client.registry}/{repository}@{reference}"
    if size is not None and len(body) != size:
        raise BlobMismatch(f"manifest {where}: {len(body)} bytes, the index says {size}")
    if digest is not None:
        actual = digest_of(body, digest.partition(":")[0])
        if actual != digest:
            raise BlobMismatch(f"manifest {where}: the registry sent content with digest {actual}")
        return body, content_type, digest
    actual = digest_of(body)
    if announced and announced.startswith("sha256:") and announced != actual:
        raise BlobMismatch(
            f"manifest {where}: the registry says its digest is {announced}, the content's is"
            f" {actual}"
        )
    if announced and not announced.startswith("sha256:"):
        algorithm = announced.partition(":")[0]
        try:
            actual_other = digest_of(body, algorithm)
        except ValueError:
            actual_other = announced
        if actual_other != announced:
            raise BlobMismatch(f"manifest {where}: the registry's digest {announced} is wrong")
    return body, content_type, actual


def download_blobs(
    store: Store,
    client: RegistryClient,
    repository: str,
    blobs: tuple[Descriptor, ...],
    progress: Progress,
    parallel: int = PARALLEL,
) -> None:
    """Fetch every blob not yet in the store, ``parallel`` at a time; the first failure
    stops the others (their partial data stays in ingest/ for the next pull)."""
    unique = list({blob.digest: blob for blob in blobs}.values())
    missing = []
    for blob in unique:
        if store.has_blob(blob.digest, blob.size):
            progress.start(blob.short, blob.size)
            progress.finish(blob.short, "skipped")
        else:
            missing.append(blob)
    run_all(
        lambda blob, stop: _download(store, client, repository, blob, progress, stop),
        missing,
        parallel,
        "pull",
    )


def _download(
    store: Store,
    client: RegistryClient,
    repository: str,
    blob: Descriptor,
    progress: Progress,
    stop: threading.Event,
) -> None:
    key = blob.short

    def report(completed: int) -> None:
        progress.update(key, completed)

    for attempt in range(2):
        if stop.is_set():
            from imagetools.registry.client import Interrupted

            raise Interrupted(f"blob {blob.digest}: interrupted")
        ingest = store.ingest(blob.digest, blob.size)
        resumed = 0
        try:
            if ingest.complete:
                progress.start(key, blob.size)
                progress.finish(key, "skipped")  # another pull finished it meanwhile
                return
            resumed = ingest.offset
            progress.start(key, blob.size, resumed)
            if blob.urls and _foreign(client, repository, blob, ingest, report, stop):
                pass
            else:
                client.fetch_blob(repository, blob, ingest, report, stop.is_set)
            ingest.commit()
            progress.finish(key, "done")
            return
        except BlobMismatch:
            if resumed and attempt == 0:
                continue  # what an earlier pull left was wrong: it is gone, start over
            raise
        finally:
            ingest.close()


def _foreign(
    client: RegistryClient,
    repository: str,
    blob: Descriptor,
    ingest: Any,
    report: Any,
    stop: threading.Event,
) -> bool:
    """A non-distributable layer from its own URLs (http/https only); False: none worked,
    try the registry."""
    for url in blob.urls:
        if not url.startswith(("https://", "http://")):
            continue
        try:
            client.fetch_blob(repository, blob, ingest, report, stop.is_set, url=url)
            return True
        except RegistryError:
            ingest.restart()
    return False


def _config_platform(store: Store, manifest: Manifest) -> Platform | None:
    try:
        config = store.read_json(manifest.config.digest)
    except (ImageError, ValueError):
        return None
    if not isinstance(config, dict):
        return None
    if not isinstance(config.get("os"), str) or not isinstance(config.get("architecture"), str):
        return None
    return Platform(
        config["os"], config["architecture"], str(config.get("variant", "") or "")
    ).normalized()


def _mismatch(wanted: Platform, found: Platform) -> bool:
    from imagetools.manifest import match_rank

    return match_rank(wanted, found) is None


def image_manifest(
    store: Store, descriptor: dict[str, Any], platform: str | Platform | None = None
) -> tuple[Descriptor, Manifest]:
    """The image manifest a stored descriptor stands for: itself, or for an index the entry
    for ``platform`` (default: this host) among those in the store."""
    wanted = Platform.parse(platform) if isinstance(platform, str) else platform
    current = Descriptor.from_json(descriptor, "descriptor")
    for _ in range(MAX_NESTING):
        document = parse(store.read_blob(current.digest), current.media_type)
        if isinstance(document, Manifest):
            return current, document
        present = tuple(d for d in document.manifests if store.has_blob(d.digest))
        current = Index(document.media_type, present, document.annotations, document.raw).select(
            wanted
        )
    raise ManifestError(f"{descriptor.get('digest')}: indexes nested more than {MAX_NESTING} deep")
