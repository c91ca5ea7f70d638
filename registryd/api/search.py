"""``GET /v1/search?q=&n=&page=``: Docker's (registry v1) search, which ``docker search`` and
``podman search`` read: ``{"num_pages", "num_results", "page_size", "page", "query",
"results": [{"name", "description", "star_count", "is_official", "is_automated"}]}``.

A repository matches when the term is in its name or description (case-insensitive). Only
repositories the caller may pull are listed. The description is the image's
``org.opencontainers.image.description`` (manifest annotation, else config label) of the tag
``latest``, or of the last tag when there is no ``latest``.
"""

from __future__ import annotations

import json
import math
from typing import Any

from registryd.api.common import Request, Response, json_response
from registryd.errors import ApiError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from registryd.app import Registry
    from registryd.storage import Storage

DESCRIPTION = "org.opencontainers.image.description"
DEFAULT_PAGE = 25
MAX_PAGE = 100


def search(registry: Registry, request: Request) -> Response:
    term = (request.arg("q") or "").strip()
    size = _number(request.arg("n"), DEFAULT_PAGE, "n")
    size = min(max(size, 1), MAX_PAGE)
    page = max(_number(request.arg("page"), 1, "page"), 1)
    storage = registry.storage
    matches = []
    needle = term.lower()
    for name in storage.repositories():
        if not registry.may_pull(request, name):
            continue
        description = describe(storage, name)
        if needle in name or needle in description.lower():
            matches.append(_result(name, description))
    results = matches[(page - 1) * size : page * size]
    document = {
        "num_pages": max(1, math.ceil(len(matches) / size)),
        "num_results": len(matches),
        "page_size": size,
        "page": page,
        "query": term,
        "results": results,
    }
    return json_response(200, document)


def describe(storage: Storage, name: str) -> str:
    tags = storage.tags(name)
    if not tags:
        return ""
    digest = storage.resolve_tag(name, "latest" if "latest" in tags else tags[-1])
    found = storage.read_manifest(name, digest) if digest is not None else None
    if found is None:
        return ""
    try:
        manifest = json.loads(found[0])
        text = (manifest.get("annotations") or {}).get(DESCRIPTION)
        if text is None:
            text = _config_label(storage, manifest)
    except (ValueError, AttributeError, TypeError):
        return ""
    return str(text or "")


def _config_label(storage: Storage, manifest: dict[str, Any]) -> Any:
    from registryd.names import maybe_digest

    config = manifest.get("config") or {}
    digest = maybe_digest(str(config.get("digest", "")))
    if digest is None or (storage.blob_size(digest) or 0) > 1 << 20:
        return None
    fd = storage.open_blob(digest)
    if fd is None:
        return None
    with open(fd, "rb") as f:
        document = json.loads(f.read())
    return ((document.get("config") or {}).get("Labels") or {}).get(DESCRIPTION)


def _result(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "description": description,
        "star_count": 0,
        "is_official": False,
        "is_automated": False,
        "is_trusted": False,
    }


def _number(text: str | None, default: int, what: str) -> int:
    if text is None or text == "":
        return default
    if not text.isascii() or not text.isdigit():
        raise ApiError("UNSUPPORTED", f"{what} must be a positive integer", status=400)
    return int(text)
