"""Blob uploads: POST (session, monolithic ``?digest=``, mount) end-4a/4b/11, PATCH end-5,
PUT end-6, GET status end-13, DELETE cancel end-14.

Locations are relative paths (the spec allows it; Go's http.Response.Location resolves them),
so a registry behind a proxy or port mapping never advertises the wrong host. ``Range`` is
``0-<last byte>``; an empty session reports ``0-0`` as distribution does.
"""

from __future__ import annotations

from registryd.api.common import Request, Response, empty
from registryd.errors import ApiError
from registryd.names import Digest, check_name, parse_digest
from registryd.ranges import parse_content_range
from registryd.uploads import Session, out_of_order, upload_location

TYPE_CHECKING = False
if TYPE_CHECKING:
    from registryd.app import Registry
    from registryd.ranges import ByteRange


def start(registry: Registry, request: Request, name: str) -> Response:
    mount = request.arg("mount")
    if mount is not None:
        digest = parse_digest(mount)
        source = request.arg("from")
        if source is not None:
            check_name(source)
        if registry.mount(request, name, digest, source):
            return blob_created(name, digest)
        # Not mountable here: the spec's fallback is an ordinary upload session.
    requested = request.arg("digest")
    uploads = registry.uploads
    if requested is not None:
        digest = parse_digest(requested)
        session = uploads.start(name)
        try:
            uploads.complete(session, digest, request.body, None)
        except BaseException:
            uploads.cancel(session)
            raise
        return blob_created(name, digest)
    session = uploads.start(name)
    return empty(202, progress(session, 0))


def patch(registry: Registry, request: Request, name: str, upload_id: str) -> Response:
    session = registry.uploads.get(name, upload_id)
    chunk = _chunk(request, session)
    size = registry.uploads.append(session, request.body, chunk)
    return empty(202, progress(session, size))


def put(registry: Registry, request: Request, name: str, upload_id: str) -> Response:
    requested = request.arg("digest")
    if requested is None:
        raise ApiError("DIGEST_INVALID", "the closing PUT needs ?digest=<digest of the blob>")
    digest = parse_digest(requested)
    session = registry.uploads.get(name, upload_id)
    chunk = _chunk(request, session)
    registry.uploads.complete(session, digest, request.body, chunk)
    return blob_created(name, digest)


def status(registry: Registry, request: Request, name: str, upload_id: str) -> Response:
    session = registry.uploads.get(name, upload_id)
    return empty(204, progress(session, session.size()))


def cancel(registry: Registry, request: Request, name: str, upload_id: str) -> Response:
    session = registry.uploads.get(name, upload_id)
    registry.uploads.cancel(session)
    return empty(204)


def progress(session: Session, size: int) -> dict[str, str]:
    return {
        "Location": upload_location(session),
        "Range": f"0-{max(size - 1, 0)}",
        "Docker-Upload-UUID": session.id,
    }


def blob_created(name: str, digest: Digest) -> Response:
    return empty(
        201, {"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": str(digest)}
    )


def _chunk(request: Request, session: Session) -> ByteRange | None:
    header = request.headers.get("Content-Range")
    if header is None:
        return None
    chunk = parse_content_range(header)
    if chunk is None:
        raise out_of_order(session, session.size())
    return chunk
