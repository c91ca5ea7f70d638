"""Blobs: GET/HEAD with Range (end-2), DELETE (end-10).

A blob is served when this repository links it (a layer or config pushed or mounted here, or
a manifest of this repository fetched by digest). The file is opened once and sent from that
fd with sendfile, so a gc that removes it meanwhile cannot cut the response short. In
pull-through cache mode a blob not linked here is first fetched (registryd.proxy); a HEAD of
one only asks the upstream.
"""

from __future__ import annotations

import os

from registryd.api.common import FileRange, Request, Response, empty
from registryd.errors import ApiError
from registryd.names import Digest, parse_digest
from registryd.ranges import Unsatisfiable, parse_range

TYPE_CHECKING = False
if TYPE_CHECKING:
    from registryd.app import Registry


def get(registry: Registry, request: Request, name: str, reference: str) -> Response:
    digest = parse_digest(reference)
    storage = registry.storage
    cache = registry.cache
    upstream_size = None
    if not storage.has_layer(name, digest) and storage.manifest_type(name, digest) is None:
        if cache is None:
            raise unknown(digest)
        if request.method == "HEAD":
            upstream_size = cache.head_blob(name, digest)
        else:
            cache.blob(name, digest)
    headers = {
        "Content-Type": "application/octet-stream",
        "Docker-Content-Digest": str(digest),
        "Accept-Ranges": "bytes",
        "ETag": f'"{digest}"',
        "Cache-Control": "max-age=31536000",
    }
    if upstream_size is not None:
        headers["Content-Length"] = str(upstream_size)
        return Response(200, headers)
    if request.method == "HEAD":
        size = storage.blob_size(digest)
        if size is None:
            raise unknown(digest)
        # A client asking whether a blob exists is about to use it: gc's grace restarts.
        if not registry.config.readonly:
            storage.touch_blob(digest)
        headers["Content-Length"] = str(size)
        return Response(200, headers)
    fd = storage.open_blob(digest)
    if fd is None:
        raise unknown(digest)
    sent = False
    try:
        size = os.fstat(fd).st_size
        try:
            wanted = parse_range(request.headers.get("Range"), size)
        except Unsatisfiable:
            headers["Content-Range"] = f"bytes */{size}"
            raise ApiError(
                "SIZE_INVALID", "requested range not satisfiable", status=416, headers=headers
            ) from None
        sent = True
        if wanted is None:
            return Response(200, headers, file=FileRange(fd, 0, size))
        headers["Content-Range"] = f"bytes {wanted.start}-{wanted.end}/{size}"
        return Response(206, headers, file=FileRange(fd, wanted.start, wanted.length))
    finally:
        if not sent:
            os.close(fd)


def delete(registry: Registry, request: Request, name: str, reference: str) -> Response:
    digest = parse_digest(reference)
    if not registry.storage.unlink_layer(name, digest):
        raise unknown(digest)
    return empty(202, {"Docker-Content-Digest": str(digest)})


def unknown(digest: Digest) -> ApiError:
    return ApiError("BLOB_UNKNOWN", "blob unknown to registry", {"digest": str(digest)})
