"""registryd's authentication and authorization: who is asking, and may they do it.

The config's ``auth`` section picks the mode (no section: an open registry, no checks)::

    htpasswd only   Basic: every request carries ``Authorization: Basic``, checked against a
                    bcrypt htpasswd file (reloaded when it changes).
    htpasswd+token  Bearer: a request carries a JWT that the built-in token endpoint issued and
                    signed; the token's ``access`` claim must cover the request. The endpoint
                    checks the Basic credentials (or issues an anonymous token).

Who may do what comes from ``auth.access`` (access.py): the actions an account holds on a
repository are the UNION of every matching rule (rules only grant, never deny, so their order
does not matter). Without rules every authenticated account may do everything and anonymous
clients nothing.

Core (the HTTP server) decides which :class:`Access` each route needs and calls
``authorize(headers, wanted)``; a :class:`Decision` says allowed or how to refuse: 401 with a
challenge (no or bad credentials, or a token that needs more scope) or 403 (an authenticated
account the rules refuse). Modules: scopes (the scope grammar), htpasswd, access (rules),
tokens (JWT issue/verify), challenge (WWW-Authenticate values), basic and bearer (the two
authorizers), endpoint (the token endpoint), settings (the config section, typed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from registryd.auth.settings import TokenSettings
    from registryd.auth.tokens import TokenIssuer


@dataclass(frozen=True)
class Access:
    """One requested or granted access, as in a token scope ``type:name:actions``."""

    type: str  # "repository" | "registry"
    name: str  # repository name, or "catalog" for type registry
    actions: frozenset[str]  # {"pull", "push", "delete"} or {"*"}


@dataclass(frozen=True)
class Decision:
    allowed: bool
    account: str | None  # who (for the access log); None = anonymous
    status: int = 200  # 401 (no/invalid credentials) or 403 (authenticated but not allowed)
    code: str = ""  # "UNAUTHORIZED" | "DENIED"
    message: str = ""
    challenge: str | None = None  # WWW-Authenticate value to send with 401


class Authorizer(Protocol):
    def authorize(self, headers: Mapping[str, str], wanted: Sequence[Access]) -> Decision: ...

    def may(self, headers: Mapping[str, str], wanted: Sequence[Access]) -> bool:
        """Whether the identity these credentials prove may do ``wanted`` under the rules,
        whatever a bearer token's scope (False for bad credentials). For listings (search):
        a token is scoped to the repositories it was asked for, the account is not."""
        ...


class TokenEndpoint(Protocol):
    """Served by registryd at ``path`` (auth.token.path, default /token), GET and POST."""

    path: str

    def handle(
        self, method: str, query: Mapping[str, list[str]], headers: Mapping[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]: ...


def build_authorizer(
    auth_config: Mapping[str, Any] | None, root: str, base_url: str
) -> Authorizer | None:
    """The authorizer for this config; None when there is no auth section (open registry).

    Raises AuthConfigError (a PyrunError) for a config or htpasswd file that cannot be used."""
    from registryd.auth.settings import load_settings

    settings = load_settings(auth_config, base_url)
    if settings is None:
        return None
    from registryd.auth.access import AccessRules
    from registryd.auth.htpasswd import Htpasswd

    users = Htpasswd(settings.htpasswd.path)
    rules = AccessRules(settings.rules)
    if settings.token is None:
        from registryd.auth.basic import BasicAuthorizer

        return BasicAuthorizer(users, rules, settings.htpasswd.realm)
    from registryd.auth.bearer import BearerAuthorizer

    return BearerAuthorizer(_issuer(settings.token, root), rules, settings.token.realm)


def build_token_endpoint(
    auth_config: Mapping[str, Any] | None, root: str, base_url: str
) -> TokenEndpoint | None:
    """The token endpoint when the config has ``auth.token``; None otherwise."""
    from registryd.auth.settings import load_settings

    settings = load_settings(auth_config, base_url)
    if settings is None or settings.token is None:
        return None
    from registryd.auth.access import AccessRules
    from registryd.auth.endpoint import TokenService
    from registryd.auth.htpasswd import Htpasswd

    return TokenService(
        Htpasswd(settings.htpasswd.path),
        AccessRules(settings.rules),
        _issuer(settings.token, root),
        realm=settings.htpasswd.realm,
        path=settings.token.path,
    )


def _issuer(token: TokenSettings, root: str) -> TokenIssuer:
    from registryd.auth.tokens import TokenIssuer, signing_key

    key = signing_key(token.key, root)
    return TokenIssuer(key, token.issuer, token.service, token.expiration)


__all__ = [
    "Access",
    "Authorizer",
    "Decision",
    "TokenEndpoint",
    "build_authorizer",
    "build_token_endpoint",
]
