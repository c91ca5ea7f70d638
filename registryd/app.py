"""The registry application: route → read-only check → auth → handler → response.

Everything between the HTTP parser and the storage. Order of checks for a request:

1. the route (unknown path 404, wrong method 405) and the names in it (NAME_INVALID 400);
2. read-only and pull-through cache mode: writes answer 405 UNSUPPORTED before anyone is
   asked for credentials;
3. auth (when configured): the Access the route needs → 401 with a challenge or 403;
4. the handler, whose ApiError becomes the spec's JSON error body.
"""

from __future__ import annotations

import logging
import re
import traceback
from dataclasses import dataclass
from typing import TYPE_CHECKING

from registryd.api import blobs, discovery, manifests, push, search
from registryd.api.common import Request, Response, json_response
from registryd.body import BadBody, IncompleteBody, TooLarge
from registryd.errors import ApiError
from registryd.names import check_name

if TYPE_CHECKING:
    from collections.abc import Callable

    from registryd.auth import Access, Authorizer, TokenEndpoint
    from registryd.config import Config
    from registryd.metrics import Metrics
    from registryd.names import Digest
    from registryd.proxy import Cache
    from registryd.storage import Storage
    from registryd.uploads import Uploads

log = logging.getLogger("registryd")

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
TOKEN_BODY_LIMIT = 64 * 1024


@dataclass(frozen=True)
class Route:
    pattern: re.Pattern[str]
    # method -> (handler, action the auth check needs: pull/push/delete, or "" for none)
    methods: dict[str, tuple[Callable[..., Response], str]]


def _route(pattern: str, **methods: tuple[Callable[..., Response], str]) -> Route:
    return Route(re.compile(pattern), methods)


NAME = r"(?P<name>.+)"
ROUTES = (
    _route(r"/v2/?", GET=(lambda r, q: base(), "base"), HEAD=(lambda r, q: base(), "base")),
    _route(r"/v2/_catalog", GET=(discovery.catalog, "catalog")),
    _route(rf"/v2/{NAME}/blobs/uploads/?", POST=(push.start, "push")),
    _route(
        rf"/v2/{NAME}/blobs/uploads/(?P<upload_id>[^/]+)",
        GET=(push.status, "push"),
        PATCH=(push.patch, "push"),
        PUT=(push.put, "push"),
        DELETE=(push.cancel, "push"),
    ),
    _route(
        rf"/v2/{NAME}/blobs/(?P<reference>[^/]+)",
        GET=(blobs.get, "pull"),
        HEAD=(blobs.get, "pull"),
        DELETE=(blobs.delete, "delete"),
    ),
    _route(
        rf"/v2/{NAME}/manifests/(?P<reference>[^/]+)",
        GET=(manifests.get, "pull"),
        HEAD=(manifests.get, "pull"),
        PUT=(manifests.put, "push"),
        DELETE=(manifests.delete, "delete"),
    ),
    _route(rf"/v2/{NAME}/tags/list", GET=(discovery.tags, "pull")),
    _route(rf"/v2/{NAME}/referrers/(?P<reference>[^/]+)", GET=(discovery.referrers, "pull")),
    _route(r"/v1/search", GET=(search.search, "identify")),
)


def base() -> Response:
    return json_response(200, {})


class Registry:
    def __init__(
        self,
        config: Config,
        storage: Storage,
        uploads: Uploads,
        metrics: Metrics,
        authorizer: Authorizer | None = None,
        token_endpoint: TokenEndpoint | None = None,
    ) -> None:
        self.config = config
        self.storage = storage
        self.uploads = uploads
        self.metrics = metrics
        self.authorizer = authorizer
        self.token_endpoint = token_endpoint
        self.cache: Cache | None = None  # pull-through cache mode (registryd.proxy)

    def handle(self, request: Request) -> Response:
        try:
            return self._handle(request)
        except ApiError as err:
            return error_response(err)
        except TooLarge:
            return error_response(ApiError("SIZE_INVALID", "request body too large", status=413))
        except (IncompleteBody, BadBody):
            raise  # the connection is lost or out of step: the server closes it
        except Exception:
            log.error("internal error on %s %s\n%s", request.method, request.path, _trace())
            return json_response(
                500, {"errors": [{"code": "UNKNOWN", "message": "internal server error"}]}
            )

    def _handle(self, request: Request) -> Response:
        path = request.path
        if path == "/metrics" and request.method in ("GET", "HEAD"):
            body = self.metrics.render(self.storage, self.uploads)
            from registryd.metrics import CONTENT_TYPE

            return Response(200, {"Content-Type": CONTENT_TYPE}, body)
        endpoint = self.token_endpoint
        if endpoint is not None and path == endpoint.path:
            body = request.body.read(TOKEN_BODY_LIMIT) if request.method == "POST" else b""
            status, headers, payload = endpoint.handle(
                request.method, request.query, request.headers, body
            )
            return Response(status, dict(headers), payload)
        handler, action, params = self._match(request)
        name = params.get("name")
        if name is not None:
            check_name(name)
        if self.config.readonly and request.method in WRITES:
            raise ApiError("UNSUPPORTED", "the registry is in read-only mode", status=405)
        if self.cache is not None and request.method in WRITES:
            message = "the registry is a pull-through cache: pushes and deletes are not supported"
            raise ApiError("UNSUPPORTED", message, status=405)
        self._authorize(request, action, name)
        return handler(self, request, **params)

    def _match(self, request: Request) -> tuple[Callable[..., Response], str, dict[str, str]]:
        allowed: set[str] = set()
        for route in ROUTES:
            match = route.pattern.fullmatch(request.path)
            if match is None:
                continue
            entry = route.methods.get(request.method)
            if entry is None:
                allowed.update(route.methods)
                continue
            handler, action = entry
            return handler, action, {k: v for k, v in match.groupdict().items() if v is not None}
        if allowed:
            raise ApiError(
                "UNSUPPORTED",
                f"method {request.method} not allowed here",
                status=405,
                headers={"Allow": ", ".join(sorted(allowed))},
            )
        raise ApiError("UNSUPPORTED", "no such endpoint", {"path": request.path[:300]}, status=404)

    # -- auth --------------------------------------------------------------------------------

    def _authorize(self, request: Request, action: str, name: str | None) -> None:
        if self.authorizer is None:
            return
        from registryd.auth import Access

        wanted: list[Access] = []
        if action == "catalog":
            wanted = [Access("registry", "catalog", frozenset({"*"}))]
        elif action in ("pull", "push", "delete") and name is not None:
            # A push needs pull too, as distribution asks: clients read back what they push.
            actions = {"pull", "push"} if action == "push" else {action}
            wanted = [Access("repository", name, frozenset(actions))]
        decision = self.authorizer.authorize(request.headers, wanted)
        request.account = decision.account
        if action == "identify":
            # search filters per repository: only bad credentials are refused here.
            if decision.allowed or "Authorization" not in request.headers:
                return
        elif decision.allowed:  # (for /v2/, nothing wanted: the authorizer wants an identity)
            return
        headers = {"WWW-Authenticate": decision.challenge} if decision.challenge else {}
        status = decision.status if decision.status in (401, 403) else 401
        if status == 401:
            code, message = "UNAUTHORIZED", "authentication required"
        else:
            code, message = "DENIED", "requested access to the resource is denied"
        code, message = decision.code or code, decision.message or message
        raise ApiError(code, message, status=status, headers=headers)

    def can_pull(self, request: Request, name: str) -> bool:
        """This request may pull ``name`` (for a bearer token: within its scope)."""
        if self.authorizer is None:
            return True
        from registryd.auth import Access

        wanted = [Access("repository", name, frozenset({"pull"}))]
        return self.authorizer.authorize(request.headers, wanted).allowed

    def may_pull(self, request: Request, name: str) -> bool:
        """The caller's account may pull ``name`` under the rules, whatever a token's scope:
        for listings (search) and anonymous mounts, which no token is scoped for."""
        if self.authorizer is None:
            return True
        from registryd.auth import Access

        wanted = [Access("repository", name, frozenset({"pull"}))]
        return self.authorizer.may(request.headers, wanted)

    def mount(self, request: Request, name: str, digest: Digest, source: str | None) -> bool:
        """Link an existing blob into ``name`` (cross-repository or anonymous mount)."""
        storage = self.storage
        if source is not None:
            if not storage.has_layer(source, digest) or not self.can_pull(request, source):
                return False
        elif storage.blob_size(digest) is None:
            return False
        elif self.authorizer is not None and not any(
            storage.has_layer(repo, digest) and self.may_pull(request, repo)
            for repo in storage.repositories()
        ):
            # Without "from", mount only what the caller could have pulled anyway.
            return False
        with storage.shared_lock():
            if not storage.touch_blob(digest):
                return False
            storage.link_layer(name, digest)
        return True


def error_response(err: ApiError) -> Response:
    headers = {"Content-Type": "application/json"}
    headers.update(err.headers)
    return Response(err.status, headers, err.body())


def _trace() -> str:
    return traceback.format_exc(limit=20)
