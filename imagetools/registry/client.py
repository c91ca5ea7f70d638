"""A client of the distribution API v2 (OCI distribution-spec v1.1) for one registry.

Every request goes through ``request``: the registry's base URL (HTTPS; an insecure registry
is probed over HTTPS without verification, then plain HTTP), the authorization the registry
asked for (auth.py), and errors turned into ``RegistryHTTPError`` with the registry's own
error codes. Blob downloads stream into the store's ``Ingest`` and resume with ``Range`` from
its offset when the connection breaks (206 appends, 200 starts over).
"""

from __future__ import annotations

import json
import time
import urllib.parse

from imagetools.errors import AuthError, BlobMismatch, RegistryError
from imagetools.manifest import ACCEPT_HEADER, MAX_MANIFEST_SIZE, Descriptor
from imagetools.reference import DEFAULT_REGISTRY, DOCKER_HUB_API
from imagetools.registry import credentials as creds
from imagetools.registry.auth import Authenticator
from imagetools.registry.config import is_insecure
from imagetools.registry.transport import (
    RETRIES,
    ConnectionFailed,
    HTTPTransport,
    TLSFailed,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from imagetools.registry.transport import Body, Response, Transport
    from imagetools.store import Ingest

USER_AGENT = "pyrun/0.1 (imagetools)"
READ_SIZE = 1 << 20
RESUME_BACKOFF = 0.2  # seconds, doubled per broken connection of one blob


class RegistryHTTPError(RegistryError):
    """The registry answered with an error status; ``codes`` are its JSON error codes."""

    def __init__(self, message: str, status: int, codes: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.codes = codes


class Interrupted(RegistryError):
    """A transfer stopped because another one failed (or the user interrupted)."""


def pull_scope(repository: str) -> str:
    return f"repository:{repository}:pull"


def push_scope(repository: str) -> str:
    return f"repository:{repository}:pull,push"


class RegistryClient:
    """One registry (``127.0.0.1:5000``, ``docker.io`` …), shared by the threads of a pull or
    push: connections are pooled, tokens cached."""

    def __init__(
        self,
        registry: str,
        *,
        tls_verify: bool | None = None,
        transport: Transport | None = None,
        credentials: Callable[[], creds.Credentials | None] | None = None,
        pool_size: int = 8,
        cert_dir: str | None = None,
    ) -> None:
        self.registry = registry
        self.host = DOCKER_HUB_API if registry == DEFAULT_REGISTRY else registry
        if tls_verify is None:
            tls_verify = not is_insecure(registry)
        self.tls_verify = tls_verify
        self.transport: Transport = transport or HTTPTransport(
            verify=tls_verify, host=self.host, pool_size=pool_size, cert_dir=cert_dir
        )
        self.auth = Authenticator(
            registry, self.transport, credentials or (lambda: creds.lookup(registry))
        )
        self._base: str | None = None
        self.requests = 0

    # -- plumbing -------------------------------------------------------------------------
    def base(self) -> str:
        """``https://host``; for an insecure registry, ``http://host`` if HTTPS fails."""
        if self._base is None:
            if self.tls_verify:
                self._base = f"https://{self.host}"
            else:
                try:
                    response = self.transport.request(
                        "GET", f"https://{self.host}/v2/", {"User-Agent": USER_AGENT}
                    )
                    response.close()
                    self._base = f"https://{self.host}"
                except ConnectionFailed:
                    self._base = f"http://{self.host}"
        return self._base

    def url(self, path: str) -> str:
        return path if "://" in path else self.base() + path

    def request(
        self,
        method: str,
        path: str,
        scopes: tuple[str, ...],
        *,
        headers: Mapping[str, str] | None = None,
        body: Body = None,
        stream: bool = False,
        ok: tuple[int, ...] = (200,),
    ) -> Response:
        url = self.url(path)
        rewind = body if body is not None and not isinstance(body, bytes) else None
        position = rewind.tell() if rewind is not None else None
        for attempt in range(2):
            sent = {"User-Agent": USER_AGENT, **(headers or {})}
            authorization = self.auth.headers(scopes)
            sent.update(authorization)
            if attempt and rewind is not None and position is not None:
                rewind.seek(position)
            self.requests += 1
            try:
                response = self.transport.request(method, url, sent, body, stream)
            except TLSFailed as err:
                if self.tls_verify:
                    raise TLSFailed(
                        f"{err.message}; if {self.registry} serves plain HTTP or a self-signed"
                        " certificate, pass --tls-verify=false or list it as insecure in"
                        " registries.conf"
                    ) from None
                raise
            if response.status != 401:
                break
            challenge = response.headers.get("WWW-Authenticate")
            response.close()
            self.auth.challenged(challenge, scopes, sent=bool(authorization), final=attempt == 1)
        if response.status not in ok:
            error = self._error(method, url, response)
            response.close()
            raise error
        return response

    def _error(self, method: str, url: str, response: Response) -> RegistryHTTPError:
        try:
            body = response.read(64 << 10)
        except RegistryError:
            body = b""
        codes: list[str] = []
        details: list[str] = []
        try:
            for entry in json.loads(body).get("errors", []):
                code = str(entry.get("code", ""))
                codes.append(code)
                text = f"{code}: {entry.get('message', '')}".strip(": ")
                detail = entry.get("detail")
                if detail and not isinstance(detail, dict | list):
                    text += f" ({detail})"
                details.append(text)
        except (ValueError, AttributeError, TypeError):
            snippet = body[:200].decode(errors="replace").strip()
            if snippet:
                details.append(snippet)
        path = "/" + url.split("://", 1)[-1].partition("/")[2]
        message = f"{self.registry}: {method} {path}: HTTP {response.status}"
        if details:
            message += ": " + "; ".join(details)
        if response.status in (401, 403):
            return _AuthHTTPError(message, response.status, tuple(codes))
        return RegistryHTTPError(message, response.status, tuple(codes))

    def resolve_location(self, location: str | None) -> str:
        if not location:
            raise RegistryError(f"{self.registry}: an upload answer without a Location header")
        return urllib.parse.urljoin(self.base() + "/", location)

    # -- manifests --------------------------------------------------------------------------
    def get_manifest(self, repository: str, reference: str) -> tuple[bytes, str, str | None]:
        """(body, Content-Type, Docker-Content-Digest) of a manifest or index."""
        response = self.request(
            "GET",
            f"/v2/{repository}/manifests/{reference}",
            (pull_scope(repository),),
            headers={"Accept": ACCEPT_HEADER},
        )
        body = response.read(MAX_MANIFEST_SIZE)
        return (
            body,
            response.headers.get("Content-Type", ""),
            response.headers.get("Docker-Content-Digest"),
        )

    def manifest_exists(self, repository: str, reference: str) -> bool:
        response = self.request(
            "HEAD",
            f"/v2/{repository}/manifests/{reference}",
            (pull_scope(repository),),
            headers={"Accept": ACCEPT_HEADER},
            ok=(200, 404),
        )
        response.close()
        return response.status == 200

    def put_manifest(
        self, repository: str, reference: str, data: bytes, media_type: str
    ) -> str | None:
        response = self.request(
            "PUT",
            f"/v2/{repository}/manifests/{reference}",
            (push_scope(repository),),
            headers={"Content-Type": media_type, "Content-Length": str(len(data))},
            body=data,
            ok=(200, 201, 202),
        )
        response.close()
        return response.headers.get("Docker-Content-Digest")

    # -- blobs: pull ------------------------------------------------------------------------
    def blob_exists(self, repository: str, digest: str, scope: str | None = None) -> bool:
        response = self.request(
            "HEAD",
            f"/v2/{repository}/blobs/{digest}",
            (scope or pull_scope(repository),),
            ok=(200, 404),
        )
        response.close()
        return response.status == 200

    def fetch_blob(
        self,
        repository: str,
        descriptor: Descriptor,
        ingest: Ingest,
        progress: Callable[[int], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
        url: str | None = None,
    ) -> int:
        """Stream a blob into ``ingest`` (not committed: the caller verifies). Resumes from
        ``ingest.offset`` with Range, also after a broken connection (up to RETRIES times).
        ``url``: a foreign layer's own URL instead of the registry. Returns the offset the
        first request started from (non-zero: an earlier pull was resumed)."""
        started_at = ingest.offset
        failures = 0
        path = f"/v2/{repository}/blobs/{descriptor.digest}"
        scopes = (pull_scope(repository),)
        while True:
            if ingest.offset == descriptor.size:
                return started_at
            headers = {"Accept": "*/*"}
            offset = ingest.offset
            if offset:
                headers["Range"] = f"bytes={offset}-"
            if url:
                # A foreign layer's own server: never send it the registry's credentials.
                headers["User-Agent"] = USER_AGENT
                response = self.transport.request("GET", url, headers, None, True)
                if response.status not in (200, 206, 416):
                    error = self._error("GET", url, response)
                    response.close()
                    raise error
            else:
                response = self.request(
                    "GET", path, scopes, headers=headers, stream=True, ok=(200, 206, 416)
                )
            try:
                if not self._accept_blob_answer(response, descriptor, ingest, offset):
                    failures += 1
                    if failures > RETRIES:
                        raise RegistryError(f"blob {descriptor.digest}: the registry cannot resume")
                    continue
                if progress is not None:
                    progress(ingest.offset)
                for chunk in response.chunks(READ_SIZE):
                    if cancelled is not None and cancelled():
                        raise Interrupted(f"blob {descriptor.digest}: interrupted")
                    ingest.write(chunk)
                    if progress is not None:
                        progress(ingest.offset)
                return started_at
            except ConnectionFailed as err:
                failures += 1
                if failures > RETRIES:
                    raise ConnectionFailed(
                        f"blob {descriptor.digest}: {err.message} ({failures} tries, stopped at"
                        f" byte {ingest.offset} of {descriptor.size})"
                    ) from None
                time.sleep(RESUME_BACKOFF * 2 ** (failures - 1))
            finally:
                response.close()

    @staticmethod
    def _accept_blob_answer(
        response: Response, descriptor: Descriptor, ingest: Ingest, offset: int
    ) -> bool:
        """Check a blob answer against what was asked; False: ask again."""
        if response.status == 416:
            ingest.restart()  # what we have is not a prefix the server knows
            return False
        if response.status == 206:
            content_range = response.headers.get("Content-Range", "")
            unit, _, spec = content_range.partition(" ")
            start, _, rest = spec.partition("-")
            total = rest.partition("/")[2]
            if unit != "bytes" or not start.isdigit() or int(start) != offset:
                ingest.restart()
                return False
            if total.isdigit() and int(total) != descriptor.size:
                raise BlobMismatch(
                    f"blob {descriptor.digest}: the registry has {total} bytes, the manifest"
                    f" says {descriptor.size}"
                )
            return True
        if offset:
            ingest.restart()  # 200 to a Range request: the whole blob again
        length = response.headers.get("Content-Length")
        if length is not None and length.isdigit() and int(length) != descriptor.size:
            raise BlobMismatch(
                f"blob {descriptor.digest}: the registry has {length} bytes, the manifest says"
                f" {descriptor.size}"
            )
        return True

    # -- blobs: push ------------------------------------------------------------------------
    def mount_blob(self, repository: str, digest: str, source: str) -> str | None:
        """Cross-repository mount; None if mounted, else the upload session it opened."""
        query = urllib.parse.urlencode({"mount": digest, "from": source})
        response = self.request(
            "POST",
            f"/v2/{repository}/blobs/uploads/?{query}",
            (push_scope(repository), pull_scope(source)),
            headers={"Content-Length": "0"},
            ok=(201, 202),
        )
        response.close()
        if response.status == 201:
            return None
        return self.resolve_location(response.headers.get("Location"))

    def start_upload(self, repository: str) -> str:
        response = self.request(
            "POST",
            f"/v2/{repository}/blobs/uploads/",
            (push_scope(repository),),
            headers={"Content-Length": "0"},
            ok=(202,),
        )
        response.close()
        return self.resolve_location(response.headers.get("Location"))

    def upload_chunk(self, repository: str, location: str, data: bytes, start: int) -> str:
        """PATCH one chunk at ``start``; returns the session's next location."""
        response = self.request(
            "PATCH",
            location,
            (push_scope(repository),),
            headers={
                "Content-Type": "application/octet-stream",
                "Content-Length": str(len(data)),
                "Content-Range": f"{start}-{start + len(data) - 1}",
            },
            body=data,
            ok=(202,),
        )
        response.close()
        return self.resolve_location(response.headers.get("Location") or location)

    def finish_upload(
        self,
        repository: str,
        location: str,
        digest: str,
        body: Body = None,
        size: int = 0,
    ) -> None:
        """PUT ``?digest=``, with the whole blob (monolithic) or nothing (after chunks)."""
        separator = "&" if "?" in location else "?"
        url = f"{location}{separator}{urllib.parse.urlencode({'digest': digest})}"
        response = self.request(
            "PUT",
            url,
            (push_scope(repository),),
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
            body=body if body is not None else b"",
            ok=(201, 204),
        )
        response.close()

    # -- login ------------------------------------------------------------------------------
    def check_login(self) -> None:
        """GET /v2/ with the credentials; AuthError if the registry refuses them."""
        response = self.request("GET", "/v2/", ())
        response.close()


class _AuthHTTPError(RegistryHTTPError, AuthError):
    """A 401/403 the authentication flow could not fix."""
