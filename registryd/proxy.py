"""Pull-through cache mode (``proxy:``): what a pull asks for and the storage lacks is fetched
from the upstream registry, verified, stored like pushed content, then served by the usual
handlers (so Range, sendfile, Accept negotiation and gc work unchanged).

- Manifests by digest and blobs are immutable: a local copy is always good. A miss is fetched,
  its digest checked, and only then written (blobs land in ``tmp/`` and are renamed in).
- Tags: a cached tag younger than ``ttl`` is served as is; an older one is checked with a HEAD
  (the digest), and the manifest fetched by that digest only when it is new. If the upstream
  cannot answer, the stale tag is served with a warning. The upstream is always asked with
  every manifest type pyrun knows, so the cached tag is what the tag really is (an index stays
  an index); a client that cannot take an index gets its platform's child, fetched on demand.
- One fetch per missing object: concurrent requests for it wait on a per-key lock and then
  find it stored. Repositories are linked only after the upstream confirmed it has the object
  in that repository, so a blob cached for one repository never leaks into another.

The upstream client is pyrun's own (imagetools.registry.client: auth, retries, redirects,
proxies); this module is imported only in proxy mode, so a plain registryd never loads it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time

from imagetools.errors import AuthError, RegistryError
from imagetools.manifest import ACCEPT_HEADER
from imagetools.registry.client import RegistryClient, RegistryHTTPError, pull_scope
from imagetools.registry.credentials import Credentials
from registryd.errors import ApiError
from registryd.manifests import parse
from registryd.names import Digest, maybe_digest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator

    from registryd.config import ProxyConfig
    from registryd.metrics import Metrics
    from registryd.storage import Storage

log = logging.getLogger("registryd")

READ_SIZE = 1 << 20


class Upstream(RegistryClient):
    """pyrun's registry client, pinned to the configured scheme (no HTTPS-then-HTTP probe)."""

    def __init__(self, settings: ProxyConfig) -> None:
        username, password = settings.username, settings.password
        credentials = Credentials(username, password or "") if username else None
        super().__init__(
            settings.host,
            tls_verify=settings.tls_verify,
            credentials=lambda: credentials,
            pool_size=16,
        )
        # self.host is the API host (docker.io -> registry-1.docker.io).
        self._origin = f"{'https' if settings.https else 'http'}://{self.host}"

    def base(self) -> str:
        return self._origin


class Cache:
    def __init__(self, settings: ProxyConfig, storage: Storage, metrics: Metrics) -> None:
        self.settings = settings
        self.storage = storage
        self.metrics = metrics
        self.upstream = Upstream(settings)
        self._locks = _KeyedLocks()

    # -- manifests ---------------------------------------------------------------------------

    def manifest(self, name: str, ref: Digest | str) -> None:
        """Make ``name``'s manifest ``ref`` (digest or tag) present in the storage, or raise
        the ApiError a client should see."""
        if isinstance(ref, Digest):
            self._manifest_by_digest(name, ref)
        else:
            self._manifest_by_tag(name, ref)

    def _has_manifest(self, name: str, digest: Digest) -> bool:
        storage = self.storage
        return storage.manifest_type(name, digest) is not None and (
            storage.blob_size(digest) is not None
        )

    def _manifest_by_digest(self, name: str, digest: Digest) -> None:
        if self._has_manifest(name, digest):
            self.metrics.cached("manifest", "hit")
            return
        with self._locks.hold(f"{name}@{digest}"):
            if self._has_manifest(name, digest):  # fetched while we waited
                self.metrics.cached("manifest", "hit")
                return
            self.metrics.cached("manifest", "miss")
            try:
                self._fetch_manifest(name, str(digest), digest)
            except RegistryError as err:
                raise self._api_error(err, "manifest", name, str(digest)) from None

    def _manifest_by_tag(self, name: str, tag: str) -> None:
        storage = self.storage
        cached = storage.resolve_tag(name, tag)
        usable = cached is not None and self._has_manifest(name, cached)
        if usable and self._fresh(name, tag):
            self.metrics.cached("manifest", "hit")
            return
        with self._locks.hold(f"{name}:{tag}"):
            cached = storage.resolve_tag(name, tag)
            usable = cached is not None and self._has_manifest(name, cached)
            if usable and self._fresh(name, tag):  # refreshed while we waited
                self.metrics.cached("manifest", "hit")
                return
            try:
                digest = self._head_manifest(name, tag)
                if digest is not None and self._has_manifest(name, digest):
                    self.metrics.cached("manifest", "hit")
                else:
                    self.metrics.cached("manifest", "miss")
                    reference = str(digest) if digest is not None else tag
                    digest = self._fetch_manifest(name, reference, digest)
            except RegistryError as err:
                not_found = isinstance(err, RegistryHTTPError) and err.status == 404
                if usable and not not_found:
                    log.warning("upstream failed, serving the cached %s:%s: %s", name, tag, err)
                    self.metrics.cached("manifest", "stale")
                    return
                raise self._api_error(err, "manifest", name, tag) from None
            with storage.shared_lock():
                storage.set_tag(name, tag, digest)  # also restarts the ttl clock

    def _fresh(self, name: str, tag: str) -> bool:
        mtime = self.storage.tag_mtime(name, tag)
        return mtime is not None and time.time() - mtime < self.settings.ttl

    def _head_manifest(self, name: str, tag: str) -> Digest | None:
        """The digest the upstream's tag points to now (None: it did not say)."""
        response = self.upstream.request(
            "HEAD",
            f"/v2/{name}/manifests/{tag}",
            (pull_scope(name),),
            headers={"Accept": ACCEPT_HEADER},
        )
        response.close()
        return maybe_digest(response.headers.get("Docker-Content-Digest", ""))

    def _fetch_manifest(self, name: str, reference: str, expected: Digest | None) -> Digest:
        """GET a manifest, check its digest (``expected``, else the one the upstream
        announced), validate it and store it in ``name``; its digest."""
        body, content_type, announced = self.upstream.get_manifest(name, reference)
        wanted = expected or maybe_digest(announced or "")
        algorithm = wanted.algorithm if wanted is not None else "sha256"
        digest = Digest(algorithm, hashlib.new(algorithm, body).hexdigest())
        if wanted is not None and digest != wanted:
            raise _mismatch("manifest", name, reference, wanted, digest)
        try:
            manifest = parse(body, content_type)
        except ApiError as err:  # the upstream's content, not the client's fault
            raise ApiError(err.code, f"upstream {err.message}", err.detail, status=502) from None
        storage = self.storage
        with storage.shared_lock():
            storage.put_blob_bytes(body, digest)
            storage.link_manifest(name, digest, manifest.media_type)
            if manifest.subject is not None:
                descriptor = manifest.referrer_descriptor(digest, len(body))
                storage.add_referrer(name, manifest.subject, descriptor)
        log.info("cached manifest %s@%s (%s)", name, digest, manifest.media_type)
        return digest

    # -- blobs -------------------------------------------------------------------------------

    def blob(self, name: str, digest: Digest) -> None:
        """Make blob ``digest`` present and linked in ``name``, or raise the ApiError."""
        storage = self.storage
        with self._locks.hold(str(digest)):
            if storage.has_layer(name, digest) and storage.blob_size(digest) is not None:
                self.metrics.cached("blob", "hit")
                return
            self.metrics.cached("blob", "miss")
            try:
                if storage.blob_size(digest) is not None:
                    # Stored for another repository: link it once the upstream says this
                    # repository has it too (a HEAD, not a second download).
                    self.stat_blob(name, digest)
                    with storage.shared_lock():
                        if storage.touch_blob(digest):
                            storage.link_layer(name, digest)
                            return
                self._fetch_blob(name, digest)
            except RegistryError as err:
                raise self._api_error(err, "blob", name, str(digest)) from None

    def stat_blob(self, name: str, digest: Digest) -> int:
        """The blob's size upstream (a HEAD; nothing is stored)."""
        response = self.upstream.request(
            "HEAD", f"/v2/{name}/blobs/{digest}", (pull_scope(name),), headers={"Accept": "*/*"}
        )
        response.close()
        length = response.headers.get("Content-Length", "")
        if not length.isdigit():
            raise RegistryError(f"{self.settings.host}: HEAD of blob {digest}: no Content-Length")
        return int(length)

    def head_blob(self, name: str, digest: Digest) -> int:
        """``stat_blob`` with its errors as ApiErrors (for HEAD of a blob not cached)."""
        self.metrics.cached("blob", "miss")
        try:
            return self.stat_blob(name, digest)
        except RegistryError as err:
            raise self._api_error(err, "blob", name, str(digest)) from None

    def _fetch_blob(self, name: str, digest: Digest) -> None:
        """Download into tmp/, hashing as it streams; renamed into the store only if the
        digest matches, so no partial or wrong blob is ever visible."""
        storage = self.storage
        response = self.upstream.request(
            "GET",
            f"/v2/{name}/blobs/{digest}",
            (pull_scope(name),),
            headers={"Accept": "*/*"},
            stream=True,
        )
        temp = storage.temp_path()
        hasher = hashlib.new(digest.algorithm)
        size = 0
        try:
            with open(temp, "xb", buffering=0) as out:
                for chunk in response.chunks(READ_SIZE):
                    view = memoryview(chunk)
                    while view:
                        view = view[out.write(view) :]
                    hasher.update(chunk)
                    size += len(chunk)
                os.fsync(out.fileno())
            actual = Digest(digest.algorithm, hasher.hexdigest())
            if actual != digest:
                raise _mismatch("blob", name, str(digest), digest, actual)
            with storage.shared_lock():
                storage.commit_blob(temp, digest)
                storage.link_layer(name, digest)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise
        finally:
            response.close()
        log.info("cached blob %s in %s (%d bytes)", digest, name, size)

    # -- errors ------------------------------------------------------------------------------

    def _api_error(self, err: RegistryError, kind: str, name: str, reference: str) -> ApiError:
        """What the client sees when the upstream could not give us the object."""
        detail = {"upstream": self.settings.remoteurl, "reason": err.message[:500]}
        if isinstance(err, _Mismatch):
            return ApiError("DIGEST_INVALID", err.message, detail, status=502)
        if isinstance(err, RegistryHTTPError):
            if err.status == 404:
                if "NAME_UNKNOWN" in err.codes:
                    message = "repository name not known to registry"
                    return ApiError("NAME_UNKNOWN", message, {"name": name})
                if kind == "blob":
                    return ApiError("BLOB_UNKNOWN", "blob unknown to registry", detail)
                return ApiError("MANIFEST_UNKNOWN", "manifest unknown", detail)
            if err.status == 429:
                return ApiError("TOOMANYREQUESTS", "the upstream registry limits requests", detail)
        if isinstance(err, AuthError):
            message = (
                "the upstream registry refused access: the repository does not exist there or"
                " needs credentials the cache does not have (proxy.username/password)"
            )
            return ApiError("UNAVAILABLE", message, detail, status=502)
        message = f"{kind} {name}:{reference} is not cached and the upstream registry failed"
        return ApiError("UNAVAILABLE", message, detail, status=502)


class _Mismatch(RegistryError):
    """The upstream sent content whose digest is not the one asked for or announced."""


def _mismatch(kind: str, name: str, reference: str, wanted: Digest, actual: Digest) -> _Mismatch:
    return _Mismatch(
        f"upstream {kind} {name}@{reference}: expected {wanted}, the content is {actual}"
    )


class _KeyedLocks:
    """A lock per key (a digest, a tag), forgotten when no one holds or waits for it."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, tuple[threading.Lock, list[int]]] = {}

    @contextlib.contextmanager
    def hold(self, key: str) -> Iterator[None]:
        with self._guard:
            lock, users = self._locks.setdefault(key, (threading.Lock(), [0]))
            users[0] += 1
        try:
            with lock:
                yield
        finally:
            with self._guard:
                users[0] -= 1
                if not users[0]:
                    del self._locks[key]
