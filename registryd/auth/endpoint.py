"""The token endpoint (distribution's spec/auth/token.md and oauth.md).

``GET <path>?service=S&scope=A&scope=B[&offline_token=true][&account=U][&client_id=C]``
    Credentials by ``Authorization: Basic`` (wrong ones: 401 with the Basic challenge), or
    none: an anonymous token. Answers ``{"token", "access_token", "expires_in",
    "issued_at"}`` (+ ``refresh_token`` with ``offline_token=true``, for a user).

``POST <path>`` (``application/x-www-form-urlencoded``, OAuth2)
    ``grant_type=password`` with ``username``/``password``, or ``grant_type=refresh_token``
    with ``refresh_token``; ``service`` and ``client_id`` required, ``scope`` one
    space-separated list, ``access_type=offline`` asks for a refresh token (a refresh grant
    returns the one it used). Answers ``{"access_token", "scope", "expires_in",
    "issued_at"}`` (+ ``refresh_token``).

The token carries requested ∩ granted (access.py), never more; asking for what one may not do
is not an error (the registry refuses the request later). Unknown resource types are dropped.
Errors use the registry's JSON shape: 401 UNAUTHORIZED for refused credentials (the same for an
unknown user and a wrong password), 400 for a malformed request.
"""

from __future__ import annotations

import datetime
import json
import urllib.parse
from typing import TYPE_CHECKING, Any

from registryd.auth.basic import authenticate, is_anonymous
from registryd.auth.challenge import MSG_UNAUTHORIZED, UNAUTHORIZED, basic, header
from registryd.auth.errors import ScopeError
from registryd.auth.scopes import format_scopes, parse_scopes
from registryd.auth.tokens import InvalidToken

if TYPE_CHECKING:
    from collections.abc import Mapping

    from registryd.auth import Access
    from registryd.auth.access import AccessRules
    from registryd.auth.htpasswd import Htpasswd
    from registryd.auth.tokens import Issued, TokenIssuer

Response = tuple[int, dict[str, str], bytes]

_JSON = {"Content-Type": "application/json", "Cache-Control": "no-store", "Pragma": "no-cache"}
_TRUE = {"1", "t", "true", "yes", "on"}
_FALSE = {"", "0", "f", "false", "no", "off"}
MAX_FORM = 64 * 1024


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str, challenge: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.challenge = status, code, message, challenge


def _error(status: int, code: str, message: str, challenge: str | None = None) -> Response:
    headers = dict(_JSON)
    if challenge:
        headers["WWW-Authenticate"] = challenge
    body = {"errors": [{"code": code, "message": message, "detail": None}]}
    return status, headers, json.dumps(body).encode()


def _first(values: Mapping[str, list[str]], name: str) -> str:
    found = values.get(name)
    return found[0] if found else ""


def _rfc3339(when: int) -> str:
    stamp = datetime.datetime.fromtimestamp(when, datetime.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


class TokenService:
    def __init__(
        self, users: Htpasswd, rules: AccessRules, issuer: TokenIssuer, realm: str, path: str
    ) -> None:
        self.users = users
        self.rules = rules
        self.issuer = issuer
        self.basic_challenge = basic(realm)
        self.path = path

    def handle(
        self, method: str, query: Mapping[str, list[str]], headers: Mapping[str, str], body: bytes
    ) -> Response:
        try:
            if method in ("GET", "HEAD"):
                return self._get(query, headers)
            if method == "POST":
                return self._post(headers, body)
        except _Refused as refused:
            return _error(refused.status, refused.code, refused.message, refused.challenge)
        status, extra, payload = _error(405, "UNSUPPORTED", f"method {method} not allowed")
        extra["Allow"] = "GET, POST"
        return status, extra, payload

    def _service(self, service: str) -> None:
        if service and service != self.issuer.service:
            raise _Refused(400, "UNSUPPORTED", f"unknown service {service!r}")

    def _scopes(self, values: list[str]) -> list[Access]:
        try:
            return parse_scopes(values)
        except ScopeError as err:
            raise _Refused(400, "UNSUPPORTED", str(err)) from err

    def _issue(self, account: str | None, wanted: list[Access]) -> Issued:
        return self.issuer.issue(account or "", self.rules.intersect(account, wanted))

    def _refresh_for(self, account: str) -> str:
        fingerprint = self.users.fingerprint(account)
        if fingerprint is None:  # the user vanished between the check and now
            raise _Refused(401, UNAUTHORIZED, MSG_UNAUTHORIZED, self.basic_challenge)
        return self.issuer.issue_refresh(account, fingerprint)

    def _get(self, query: Mapping[str, list[str]], headers: Mapping[str, str]) -> Response:
        self._service(_first(query, "service"))
        offline = _first(query, "offline_token").lower()
        if offline not in _TRUE | _FALSE:
            raise _Refused(400, "UNSUPPORTED", f"offline_token={offline!r} is not a boolean")
        wanted = self._scopes(query.get("scope", []))
        value = header(headers, "Authorization")
        account = None
        if not is_anonymous(value):
            account = authenticate(self.users, value)
            if account is None:
                raise _Refused(401, UNAUTHORIZED, "invalid credentials", self.basic_challenge)
        issued = self._issue(account, wanted)
        answer: dict[str, Any] = {
            "token": issued.token,
            "access_token": issued.token,
            "expires_in": issued.expires_in,
            "issued_at": _rfc3339(issued.issued_at),
        }
        if offline in _TRUE and account is not None:
            answer["refresh_token"] = self._refresh_for(account)
        return 200, dict(_JSON), json.dumps(answer).encode()

    def _post(self, headers: Mapping[str, str], body: bytes) -> Response:
        kind = (header(headers, "Content-Type") or "").split(";")[0].strip().lower()
        if kind != "application/x-www-form-urlencoded":
            raise _Refused(400, "UNSUPPORTED", "expected an application/x-www-form-urlencoded body")
        if len(body) > MAX_FORM:
            raise _Refused(400, "UNSUPPORTED", "form too large")
        try:
            form = urllib.parse.parse_qs(
                body.decode("utf-8"), keep_blank_values=True, strict_parsing=False
            )
        except UnicodeDecodeError as err:
            raise _Refused(400, "UNSUPPORTED", "form is not UTF-8") from err
        for field in ("grant_type", "service", "client_id"):
            if not _first(form, field):
                raise _Refused(400, "UNSUPPORTED", f"missing {field}")
        self._service(_first(form, "service"))
        access_type = _first(form, "access_type")
        if access_type not in ("", "online", "offline"):
            raise _Refused(400, "UNSUPPORTED", f"unknown access_type {access_type!r}")
        wanted = self._scopes([_first(form, "scope")])
        grant = _first(form, "grant_type")
        refresh = ""
        if grant == "password":
            username, password = _first(form, "username"), _first(form, "password")
            if not username or not password:
                raise _Refused(400, "UNSUPPORTED", "missing username or password")
            if not self.users.check(username, password.encode("utf-8")):
                raise _Refused(401, UNAUTHORIZED, "invalid credentials")
            account = username
            if access_type == "offline":
                refresh = self._refresh_for(account)
        elif grant == "refresh_token":
            refresh = _first(form, "refresh_token")
            if not refresh:
                raise _Refused(400, "UNSUPPORTED", "missing refresh_token")
            try:
                account, fingerprint = self.issuer.verify_refresh(refresh)
            except InvalidToken as err:
                raise _Refused(401, UNAUTHORIZED, "invalid refresh token") from err
            if not account or self.users.fingerprint(account) != fingerprint:
                raise _Refused(401, UNAUTHORIZED, "invalid refresh token")
        else:
            raise _Refused(400, "UNSUPPORTED", f"unsupported grant_type {grant!r}")
        issued = self._issue(account, wanted)
        answer: dict[str, Any] = {
            "access_token": issued.token,
            "scope": format_scopes(issued.access),
            "expires_in": issued.expires_in,
            "issued_at": _rfc3339(issued.issued_at),
        }
        if refresh:
            answer["refresh_token"] = refresh
        return 200, dict(_JSON), json.dumps(answer).encode()
