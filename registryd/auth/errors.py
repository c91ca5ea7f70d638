"""The auth errors: a config or htpasswd file that cannot be used, a malformed scope.

    RegistrydError (registryd/errors.py)
    └── AuthConfigError      the auth section, the htpasswd file or the signing key

Both are raised at load time or inside the token endpoint; nothing here reaches a registry
client as an exception (authorizers answer with a Decision instead)."""

from __future__ import annotations

from registryd.errors import RegistrydError


class AuthConfigError(RegistrydError):
    """The ``auth`` section, the htpasswd file or the signing key cannot be used."""


class ScopeError(ValueError):
    """A scope string that does not follow the resource scope grammar."""
