"""The config's ``auth`` section, checked and typed (the JSON Schema checked its shape first;
these are the checks a schema cannot make, and defaults that depend on the base URL)::

    auth:
      htpasswd: {realm: registryd, path: /etc/registryd/htpasswd}
      token:    {realm: <base url>/token, service: registryd, issuer: registryd,
                 key: <root>/_auth/token-key.pem, expiration: 300, path: /token}
      access:   [{account: "*", repository: "library/*", actions: [pull]}, ...]
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from registryd.auth.access import REPOSITORY_ACTIONS, Rule, expand_actions
from registryd.auth.errors import AuthConfigError

if TYPE_CHECKING:
    from collections.abc import Mapping

DEFAULT_REALM = "registryd"
DEFAULT_SERVICE = "registryd"
DEFAULT_ISSUER = "registryd"
DEFAULT_EXPIRATION = 300
MIN_EXPIRATION = 60  # the token spec: never hand out a token with less than 60 s to live
DEFAULT_TOKEN_PATH = "/token"


@dataclass(frozen=True)
class HtpasswdSettings:
    realm: str
    path: str


@dataclass(frozen=True)
class TokenSettings:
    realm: str  # the URL clients fetch tokens from
    service: str  # the audience
    issuer: str
    key: str | None  # None: generated under <root>/_auth/
    expiration: int
    path: str  # where registryd serves the endpoint


@dataclass(frozen=True)
class AuthSettings:
    htpasswd: HtpasswdSettings
    token: TokenSettings | None
    rules: tuple[Rule, ...] | None  # None: the default policy


def _string(section: Mapping[str, Any], key: str, where: str, default: str | None) -> str:
    value = section.get(key, default)
    if not isinstance(value, str) or not value:
        raise AuthConfigError(f"{where}.{key}: expected a non-empty string")
    return value


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise AuthConfigError(f"{where}: expected a mapping")
    return value


def _token(section: Mapping[str, Any], base_url: str) -> TokenSettings:
    where = "auth.token"
    realm = section.get("realm")
    path = section.get("path")
    if realm is not None:
        realm = _string(section, "realm", where, None)
        if path is None:
            path = urllib.parse.urlsplit(realm).path or DEFAULT_TOKEN_PATH
    path = path or DEFAULT_TOKEN_PATH
    if not isinstance(path, str) or not path.startswith("/") or path.startswith("/v2"):
        raise AuthConfigError(f"{where}.path: expected an absolute path outside /v2/")
    if realm is None:
        realm = base_url.rstrip("/") + path
    expiration = section.get("expiration", DEFAULT_EXPIRATION)
    if isinstance(expiration, bool) or not isinstance(expiration, int):
        raise AuthConfigError(f"{where}.expiration: expected seconds (an integer)")
    if expiration < MIN_EXPIRATION:
        raise AuthConfigError(f"{where}.expiration: at least {MIN_EXPIRATION} seconds")
    key = section.get("key")
    if key is not None:
        key = _string(section, "key", where, None)
    return TokenSettings(
        realm=realm,
        service=_string(section, "service", where, DEFAULT_SERVICE),
        issuer=_string(section, "issuer", where, DEFAULT_ISSUER),
        key=key,
        expiration=expiration,
        path=path,
    )


def _rules(value: Any) -> tuple[Rule, ...]:
    if not isinstance(value, list):
        raise AuthConfigError("auth.access: expected a list of rules")
    rules = []
    for i, entry in enumerate(value):
        where = f"auth.access[{i}]"
        entry = _mapping(entry, where)
        actions = entry.get("actions")
        if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
            raise AuthConfigError(f"{where}.actions: expected a list of actions")
        unknown = set(actions) - REPOSITORY_ACTIONS - {"*"}
        if unknown:
            raise AuthConfigError(
                f"{where}.actions: unknown {sorted(unknown)} (pull, push, delete or *)"
            )
        rules.append(
            Rule(
                account=_string(entry, "account", where, None),
                repository=_string(entry, "repository", where, None),
                actions=expand_actions(actions),
            )
        )
    return tuple(rules)


def load_settings(config: Mapping[str, Any] | None, base_url: str) -> AuthSettings | None:
    """None for no auth section (an open registry). Raises AuthConfigError."""
    if config is None:
        return None
    config = _mapping(config, "auth")
    unknown = set(config) - {"htpasswd", "token", "access"}
    if unknown:
        raise AuthConfigError(f"auth: unknown keys {sorted(unknown)}")
    if "htpasswd" not in config:
        raise AuthConfigError(
            "auth.htpasswd is required (the users' passwords, for basic and token auth alike)"
        )
    section = _mapping(config["htpasswd"], "auth.htpasswd")
    htpasswd = HtpasswdSettings(
        realm=_string(section, "realm", "auth.htpasswd", DEFAULT_REALM),
        path=_string(section, "path", "auth.htpasswd", None),
    )
    token = None
    if "token" in config:  # a bare `token:` turns it on with every default
        token = _token(_mapping(config["token"] or {}, "auth.token"), base_url)
    rules = None if config.get("access") is None else _rules(config["access"])
    return AuthSettings(htpasswd, token, rules)
