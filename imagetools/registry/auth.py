"""Registry authentication: the WWW-Authenticate challenge, basic credentials and bearer tokens.

The flow (distribution's token spec, what docker and skopeo do)::

    client                         registry                     token server (realm)
      │ GET /v2/<name>/manifests/t    │                               │
      │──────────────────────────────►│                               │
      │ 401 WWW-Authenticate: Bearer realm=R,service=S,               │
      │     scope="repository:<name>:pull"                            │
      │◄──────────────────────────────│                               │
      │ GET R?service=S&scope=repository:<name>:pull (+ Basic user:pass, if logged in)
      │──────────────────────────────────────────────────────────────►│
      │ 200 {"token"|"access_token": T, "expires_in": 300}            │
      │◄──────────────────────────────────────────────────────────────│
      │ GET /v2/<name>/manifests/t  Authorization: Bearer T           │
      │──────────────────────────────►│ 200 …                         │

With an identity token (an OAuth2 refresh token from docker's config or a credential helper)
the token request is the OAuth2 form instead: ``POST R`` with ``grant_type=refresh_token``,
``refresh_token``, ``service``, ``scope`` and ``client_id``; a new refresh token in the answer
replaces the old one for the rest of the process.

A ``Basic`` challenge is answered with the credentials directly. Tokens are cached per set of
scopes until they expire; a request whose scopes are covered by a cached token reuses it (the
download threads of one pull share one token). Credentials are looked up only when a challenge
asks for them, so an unused broken credential helper never gets in the way.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.parse

from imagetools.errors import AuthError, RegistryError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from imagetools.registry.credentials import Credentials
    from imagetools.registry.transport import Response, Transport

DEFAULT_TOKEN_LIFETIME = 60  # seconds, the spec's default for a token without expires_in
EXPIRY_MARGIN = 5
CLIENT_ID = "pyrun"  # OAuth2 client_id, required by the spec's token POST


class Challenge:
    __slots__ = ("params", "scheme")

    def __init__(self, scheme: str, params: dict[str, str]) -> None:
        self.scheme = scheme.lower()
        self.params = params

    def __repr__(self) -> str:
        return f"Challenge({self.scheme!r}, {self.params!r})"


def parse_challenges(header: str) -> list[Challenge]:
    """``Bearer realm="…",service="…",scope="a b"`` (RFC 7235: several challenges may share
    one header, parameters may be tokens or quoted strings with backslash escapes)."""
    challenges: list[Challenge] = []
    i, n = 0, len(header)

    def skip_space(j: int) -> int:
        while j < n and header[j] in " \t":
            j += 1
        return j

    def read_token(j: int) -> tuple[str, int]:
        start = j
        while j < n and header[j] not in ' \t,="':
            j += 1
        return header[start:j], j

    while i < n:
        i = skip_space(i)
        while i < n and header[i] == ",":
            i = skip_space(i + 1)
        if i >= n:
            break
        scheme, i = read_token(i)
        if not scheme:
            break
        challenge = Challenge(scheme, {})
        challenges.append(challenge)
        while True:
            j = skip_space(i)
            while j < n and header[j] == ",":
                j = skip_space(j + 1)
            name, k = read_token(j)
            k2 = skip_space(k)
            if not name or k2 >= n or header[k2] != "=":
                i = j  # not a parameter: the next challenge's scheme (or the end)
                break
            k2 = skip_space(k2 + 1)
            if k2 < n and header[k2] == '"':
                k2 += 1
                value = []
                while k2 < n and header[k2] != '"':
                    if header[k2] == "\\" and k2 + 1 < n:
                        k2 += 1
                    value.append(header[k2])
                    k2 += 1
                i = k2 + 1
                challenge.params[name.lower()] = "".join(value)
            else:
                value_text, i = read_token(k2)
                challenge.params[name.lower()] = value_text
    return challenges


def merge_scopes(scopes: Iterable[str]) -> list[str]:
    """Merge ``repository:a:pull`` and ``repository:a:push`` into ``repository:a:pull,push``;
    sorted, so equal sets give equal token requests."""
    merged: dict[tuple[str, str], set[str]] = {}
    for scope in scopes:
        for item in scope.split():
            kind, _, rest = item.partition(":")
            name, _, actions = rest.rpartition(":")
            if not name:
                name, actions = rest, ""
            merged.setdefault((kind, name), set()).update(a for a in actions.split(",") if a)
    return [
        f"{kind}:{name}:{','.join(sorted(actions))}"
        for (kind, name), actions in sorted(merged.items())
    ]


def _covers(have: frozenset[str], want: Iterable[str]) -> bool:
    granted: dict[tuple[str, str], set[str]] = {}
    for scope in have:
        kind, _, rest = scope.partition(":")
        name, _, actions = rest.rpartition(":")
        granted.setdefault((kind, name), set()).update(actions.split(","))
    for scope in merge_scopes(want):
        kind, _, rest = scope.partition(":")
        name, _, actions = rest.rpartition(":")
        if not set(actions.split(",")) <= granted.get((kind, name), set()):
            return False
    return True


class Authenticator:
    """The authorization state of one registry, shared by every thread talking to it."""

    def __init__(
        self,
        registry: str,
        transport: Transport,
        credentials: Callable[[], Credentials | None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.registry = registry
        self.transport = transport
        self._lookup = credentials
        self._credentials: Credentials | None = None
        self._looked_up = False
        self.clock = clock
        self.scheme: str | None = None  # learned from the first challenge
        self.realm = ""
        self.service = ""
        self.extra_scopes: set[str] = set()
        self.tokens: dict[frozenset[str], tuple[str, float]] = {}
        self.token_requests = 0
        self._lock = threading.Lock()

    # -- credentials ------------------------------------------------------------------------
    def credentials(self) -> Credentials | None:
        if not self._looked_up:
            self._credentials = self._lookup()
            self._looked_up = True
        return self._credentials

    def add_scope(self, scope: str) -> None:
        """A scope every token should carry (push: the source repositories of mounts)."""
        self.extra_scopes.add(scope)

    # -- headers ----------------------------------------------------------------------------
    def headers(self, scopes: Iterable[str]) -> dict[str, str]:
        """The Authorization header for a request needing ``scopes``, if any is known yet."""
        if self.scheme == "basic":
            creds = self.credentials()
            usable = creds is not None and not creds.identity_token
            return {"Authorization": creds.basic_header()} if usable and creds else {}
        if self.scheme == "bearer":
            token = self._token(set(scopes))
            return {"Authorization": f"Bearer {token}"} if token else {}
        return {}

    def challenged(
        self, header: str | None, scopes: Iterable[str], sent: bool, final: bool = False
    ) -> None:
        """Handle a 401 so that sending the request again may succeed, or raise AuthError
        saying why it cannot. ``sent``: the refused request carried an Authorization header;
        ``final``: it was already a second try (the client tries at most twice)."""
        challenges = parse_challenges(header or "")
        by_scheme = {c.scheme: c for c in challenges}
        wanted = set(scopes)
        bearer = by_scheme.get("bearer")
        if bearer is not None and bearer.params.get("realm"):
            with self._lock:
                self.scheme = "bearer"
                self.realm = bearer.params["realm"]
                self.service = bearer.params.get("service", "")
            asked = set(bearer.params.get("scope", "").split())
            if final:
                raise self._refused(bearer.params.get("error", ""), wanted | asked)
            # A token we sent was refused (expired early, a scope short): one fresh one.
            self._token(wanted | asked, force=sent)
            return
        if "basic" in by_scheme:
            self.scheme = "basic"
            creds = self.credentials()
            if creds is not None and creds.identity_token:
                raise AuthError(
                    f"{self.registry} asks for a password (Basic auth), but its credentials are"
                    f" an identity token: run `pyrun image login {self.registry}`"
                )
            if creds is None:
                raise AuthError(
                    f"{self.registry} requires authentication: run `pyrun image login"
                    f" {self.registry}`"
                )
            if sent or final:
                raise self._refused("", wanted)
            return
        raise AuthError(
            f"{self.registry} refused the request (401) without a usable challenge"
            f" ({header or 'no WWW-Authenticate header'})"
        )

    def _refused(self, error: str, scopes: Iterable[str]) -> AuthError:
        creds = self.credentials()
        what = " ".join(merge_scopes(scopes)) or "access"
        if creds is None:
            return AuthError(
                f"{self.registry}: {what} denied: the repository does not exist or requires"
                f" authentication (run `pyrun image login {self.registry}`)"
            )
        if error == "insufficient_scope" or self.scheme == "bearer":
            return AuthError(f"{self.registry}: user {creds.username!r} may not {what}")
        return AuthError(f"{self.registry} refused the credentials of user {creds.username!r}")

    # -- tokens -----------------------------------------------------------------------------
    def _token(self, scopes: set[str], force: bool = False) -> str:
        wanted = frozenset(merge_scopes(scopes | self.extra_scopes))
        with self._lock:
            now = self.clock()
            if not force:
                for have, (token, expires) in self.tokens.items():
                    if expires > now and _covers(have, wanted):
                        return token
            token, lifetime = self._fetch_token(sorted(wanted))
            self.tokens[wanted] = (token, now + max(lifetime - EXPIRY_MARGIN, 1))
            return token

    def _fetch_token(self, scopes: list[str]) -> tuple[str, float]:
        if not self.realm.startswith(("https://", "http://")):
            raise AuthError(f"{self.registry}: token realm {self.realm!r} is not an HTTP URL")
        creds = self.credentials()
        self.token_requests += 1
        if creds is not None and creds.identity_token:
            response = self._oauth_refresh(creds, scopes)
        else:
            response = self._token_get(creds, scopes)
        body = response.read(1 << 20)
        if response.status in (401, 403):
            if creds is None:
                raise AuthError(
                    f"{self.registry} requires authentication: run `pyrun image login"
                    f" {self.registry}`"
                )
            if creds.identity_token:
                raise AuthError(
                    f"{self.registry}: the token server refused the identity token"
                    f" ({response.status}): run `pyrun image login {self.registry}`"
                )
            raise AuthError(
                f"{self.registry}: the token server refused the credentials of user"
                f" {creds.username!r} ({response.status})"
            )
        if response.status != 200:
            raise RegistryError(
                f"{self.registry}: token server {self.realm} answered {response.status}:"
                f" {body[:200].decode(errors='replace')}"
            )
        try:
            answer = json.loads(body)
            token = answer.get("token") or answer.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"{self.registry}: token server {self.realm} sent no token")
        refresh = answer.get("refresh_token")
        if creds is not None and creds.identity_token and isinstance(refresh, str) and refresh:
            creds.identity_token = refresh  # a rotating server: the old one may now be spent
        lifetime = answer.get("expires_in")
        if not isinstance(lifetime, int | float) or lifetime <= 0:
            lifetime = DEFAULT_TOKEN_LIFETIME
        return token, float(lifetime)

    def _token_get(self, creds: Credentials | None, scopes: list[str]) -> Response:
        """distribution's token spec: GET realm?service=&scope=…, Basic credentials if any."""
        query: list[tuple[str, str]] = []
        if self.service:
            query.append(("service", self.service))
        query += [("scope", scope) for scope in scopes]
        headers = {"Accept": "application/json"}
        if creds is not None:
            query.append(("account", creds.username))
            headers["Authorization"] = creds.basic_header()
        separator = "&" if "?" in self.realm else "?"
        url = self.realm + (separator + urllib.parse.urlencode(query) if query else "")
        return self.transport.request("GET", url, headers)

    def _oauth_refresh(self, creds: Credentials, scopes: list[str]) -> Response:
        """distribution's OAuth2 spec: POST realm, grant_type=refresh_token (what docker
        does with an identity token)."""
        form = {
            "grant_type": "refresh_token",
            "refresh_token": creds.identity_token,
            "service": self.service,
            "client_id": CLIENT_ID,
            "scope": " ".join(scopes),
        }
        data = urllib.parse.urlencode(form).encode()
        headers = {
            "Accept": "application/json",
            "Content-Type": "application/x-www-form-urlencoded",
            "Content-Length": str(len(data)),
        }
        return self.transport.request("POST", self.realm, headers, data)


def basic_header(username: str, password: str) -> str:
    raw = f"{username}:{password}".encode()
    return "Basic " + base64.b64encode(raw).decode()
