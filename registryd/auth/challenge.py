"""WWW-Authenticate values (RFC 7235 quoting) and the Decisions that refuse a request."""

from __future__ import annotations

from typing import TYPE_CHECKING

from registryd.auth import Decision

if TYPE_CHECKING:
    from collections.abc import Mapping

UNAUTHORIZED = "UNAUTHORIZED"
DENIED = "DENIED"
MSG_UNAUTHORIZED = "authentication required"
MSG_DENIED = "requested access to the resource is denied"


def quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def basic(realm: str) -> str:
    return f"Basic realm={quote(realm)}"


def bearer(realm: str, service: str, scope: str = "", error: str = "") -> str:
    """``scope`` is the space-separated list of what the request needs; ``error`` is RFC
    6750's ``invalid_token`` or ``insufficient_scope``."""
    value = f"Bearer realm={quote(realm)},service={quote(service)}"
    if scope:
        value += f",scope={quote(scope)}"
    if error:
        value += f",error={quote(error)}"
    return value


def unauthorized(challenge: str, message: str = MSG_UNAUTHORIZED) -> Decision:
    return Decision(False, None, 401, UNAUTHORIZED, message, challenge)


def denied(account: str | None) -> Decision:
    return Decision(False, account, 403, DENIED, MSG_DENIED)


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A request header, whatever the mapping's case handling."""
    value = headers.get(name)
    if value is None:
        value = headers.get(name.lower())
    if value is None:
        lowered = name.lower()
        for key, candidate in headers.items():
            if key.lower() == lowered:
                return candidate
    return value
