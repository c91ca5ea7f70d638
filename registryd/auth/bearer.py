"""Bearer authentication: the request's JWT (from our token endpoint) must cover it.

No token: 401 with a challenge naming the realm, the service and the scopes the request
needs (a client fetches a token for exactly those). An invalid token (signature, issuer,
audience, expiry): 401 ``error="invalid_token"``. A valid token short of scope: 401
``error="insufficient_scope"`` when a new token could carry it, 403 DENIED when the token's
(authenticated) subject is refused by the rules anyway, so a client does not loop. The base
endpoint ``/v2/`` (nothing wanted) accepts any valid token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from registryd.auth import Access, Decision
from registryd.auth.challenge import bearer, denied, header, unauthorized
from registryd.auth.scopes import format_scopes
from registryd.auth.tokens import InvalidToken

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from registryd.auth.access import AccessRules
    from registryd.auth.tokens import TokenIssuer


def bearer_token(value: str | None) -> str | None:
    if not value:
        return None
    scheme, _, token = value.strip().partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def covers(granted: Sequence[Access], wanted: Access) -> bool:
    held: set[str] = set()
    for access in granted:
        if access.type == wanted.type and access.name == wanted.name:
            held |= access.actions
    return "*" in held or wanted.actions <= held


class BearerAuthorizer:
    def __init__(self, issuer: TokenIssuer, rules: AccessRules, realm: str) -> None:
        self.issuer = issuer
        self.rules = rules
        self.realm = realm

    def _challenge(self, wanted: Sequence[Access], error: str = "") -> str:
        return bearer(self.realm, self.issuer.service, format_scopes(wanted), error)

    def authorize(self, headers: Mapping[str, str], wanted: Sequence[Access]) -> Decision:
        token = bearer_token(header(headers, "Authorization"))
        if token is None:
            return unauthorized(self._challenge(wanted))
        try:
            claims = self.issuer.verify(token)
        except InvalidToken as err:
            return unauthorized(self._challenge(wanted, "invalid_token"), str(err))
        account = claims.subject or None
        missing = [a for a in wanted if not covers(claims.access, a)]
        if not missing:
            return Decision(True, account)
        if account is not None and not self.rules.allows(account, missing):
            return denied(account)
        return unauthorized(
            self._challenge(wanted, "insufficient_scope"), "insufficient scope in token"
        )

    def may(self, headers: Mapping[str, str], wanted: Sequence[Access]) -> bool:
        token = bearer_token(header(headers, "Authorization"))
        account = None
        if token is not None:
            try:
                account = self.issuer.verify(token).subject or None
            except InvalidToken:
                return False
        return self.rules.allows(account, wanted)
