"""Basic authentication: every request carries ``Authorization: Basic`` (htpasswd only).

No credentials (see is_anonymous): allowed when the anonymous rules grant everything wanted
(never for the base endpoint ``/v2/``, which asks for an identity), else 401 with the Basic
challenge. Wrong credentials: 401, the same answer for an unknown user and a wrong password.
Right credentials the rules do not cover: 403 DENIED.
"""

from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING

from registryd.auth import Access, Decision
from registryd.auth.challenge import basic, denied, header, unauthorized

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from registryd.auth.access import AccessRules
    from registryd.auth.htpasswd import Htpasswd


def basic_credentials(value: str | None) -> tuple[str, bytes] | None:
    """(user, password) from an ``Authorization: Basic`` value; None when absent or not Basic
    or malformed."""
    if not value:
        return None
    scheme, _, encoded = value.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        raw = base64.b64decode(encoded.strip(), validate=True)
        user_bytes, sep, password = raw.partition(b":")
        user = user_bytes.decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    if not sep:
        return None
    return user, password


def is_anonymous(value: str | None) -> bool:
    """No credentials: no header, or the empty ``Basic Og==`` (":") that containers/image
    (skopeo, podman) sends after a Basic challenge when it has none."""
    return not value or basic_credentials(value) == ("", b"")


def authenticate(users: Htpasswd, value: str | None) -> str | None:
    """The account these credentials prove; None for absent or wrong ones."""
    credentials = basic_credentials(value)
    if credentials is None or not credentials[0]:
        return None
    user, password = credentials
    return user if users.check(user, password) else None


class BasicAuthorizer:
    def __init__(self, users: Htpasswd, rules: AccessRules, realm: str) -> None:
        self.users = users
        self.rules = rules
        self.challenge = basic(realm)

    def authorize(self, headers: Mapping[str, str], wanted: Sequence[Access]) -> Decision:
        value = header(headers, "Authorization")
        if is_anonymous(value):
            if wanted and self.rules.allows(None, wanted):
                return Decision(True, None)
            return unauthorized(self.challenge)
        account = authenticate(self.users, value)
        if account is None:
            return unauthorized(self.challenge, "invalid credentials")
        if self.rules.allows(account, wanted):
            return Decision(True, account)
        return denied(account)

    def may(self, headers: Mapping[str, str], wanted: Sequence[Access]) -> bool:
        return self.authorize(headers, wanted).allowed
