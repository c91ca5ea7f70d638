"""Discovery: tags list (end-8a/8b), catalog, referrers (end-12a/12b).

Lists are sorted in Go's ``sort.Strings`` order (Python's str order: code points) and paged
with ``n``/``last``; when a page is full and more remain, ``Link: <next>; rel="next"`` points
at the next page. ``n=0`` answers an empty list without a Link, as the spec requires.
"""

from __future__ import annotations

from urllib.parse import urlencode

from registryd.api.common import Request, Response, json_response
from registryd.errors import ApiError
from registryd.manifests import OCI_INDEX
from registryd.names import parse_digest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from registryd.app import Registry

MAX_PAGE = 10_000  # largest n honoured; a bigger n gets this many and a Link


def tags(registry: Registry, request: Request, name: str) -> Response:
    storage = registry.storage
    if not storage.repo_exists(name):
        raise ApiError("NAME_UNKNOWN", "repository name not known to registry", {"name": name})
    page, link = paginate(storage.tags(name), request, f"/v2/{name}/tags/list")
    return json_response(200, {"name": name, "tags": page}, link)


def catalog(registry: Registry, request: Request) -> Response:
    page, link = paginate(registry.storage.repositories(), request, "/v2/_catalog")
    return json_response(200, {"repositories": page}, link)


def referrers(registry: Registry, request: Request, name: str, reference: str) -> Response:
    subject = parse_digest(reference)
    found = registry.storage.referrers(name, subject)
    headers = {}
    wanted = request.arg("artifactType")
    if wanted is not None:
        found = [d for d in found if d.get("artifactType") == wanted]
        headers["OCI-Filters-Applied"] = "artifactType"
    found.sort(key=lambda d: str(d.get("digest")))
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": found}
    return json_response(200, index, headers, content_type=OCI_INDEX)


def paginate(items: list[str], request: Request, path: str) -> tuple[list[str], dict[str, str]]:
    count = page_size(request.arg("n"))
    last = request.arg("last")
    if last is not None:
        items = [item for item in items if item > last]
    if count is None:
        return items, {}
    page = items[:count]
    if count == 0 or len(items) <= count:
        return page, {}
    query = urlencode({"n": count, "last": page[-1]})
    return page, {"Link": f'<{path}?{query}>; rel="next"'}


def page_size(text: str | None) -> int | None:
    if text is None or text == "":
        return None
    if not text.isascii() or not text.isdigit():
        message = "n must be a non-negative integer"
        raise ApiError("UNSUPPORTED", message, {"n": text[:50]}, status=400)
    return min(int(text), MAX_PAGE)
