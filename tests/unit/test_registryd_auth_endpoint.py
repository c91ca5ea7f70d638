"""The token endpoint: GET with Basic or anonymous, POST OAuth2 password/refresh grants."""

from __future__ import annotations

import datetime
import json
import urllib.parse
from typing import TYPE_CHECKING, Any

import jwt
import pytest

from registryd.auth import build_token_endpoint
from registryd.auth.endpoint import TokenService
from registryd.auth.htpasswd import add_user
from tests.support.registryd import basic_auth as basic
from tests.support.registryd import write_htpasswd

if TYPE_CHECKING:
    from pathlib import Path

CONFIG_ACCESS = [
    {"account": "alice", "repository": "alice/*", "actions": ["*"]},
    {"account": "*", "repository": "*", "actions": ["pull"]},
    {"account": "anonymous", "repository": "public/*", "actions": ["pull"]},
]


@pytest.fixture
def htpasswd(tmp_path: Path) -> str:
    return write_htpasswd(tmp_path / "htpasswd", {"alice": "wonderland", "bob": "builder"})


@pytest.fixture
def endpoint(htpasswd: str, tmp_path: Path) -> TokenService:
    config = {
        "htpasswd": {"path": htpasswd, "realm": "R"},
        "token": {"service": "svc"},
        "access": CONFIG_ACCESS,
    }
    built = build_token_endpoint(config, str(tmp_path / "root"), "http://127.0.0.1:5000")
    assert isinstance(built, TokenService)
    return built


def get(
    endpoint: TokenService, query: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    status, out_headers, body = endpoint.handle(
        "GET", urllib.parse.parse_qs(query), headers or {}, b""
    )
    return status, out_headers, json.loads(body)


def post(
    endpoint: TokenService,
    form: dict[str, str],
    content_type: str = "application/x-www-form-urlencoded",
) -> tuple[int, dict[str, str], Any]:
    headers = {"Content-Type": content_type}
    status, out_headers, body = endpoint.handle(
        "POST", {}, headers, urllib.parse.urlencode(form).encode()
    )
    return status, out_headers, json.loads(body)


def claims(token: str) -> dict[str, Any]:
    decoded: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    return decoded


def test_anonymous_get(endpoint: TokenService) -> None:
    status, headers, answer = get(
        endpoint, "service=svc&scope=repository:public/x:pull,push&scope=repository:alice/app:pull"
    )
    assert status == 200
    assert headers["Content-Type"] == "application/json" and headers["Cache-Control"] == "no-store"
    assert answer["token"] == answer["access_token"]
    assert answer["expires_in"] == 300
    issued = datetime.datetime.strptime(answer["issued_at"], "%Y-%m-%dT%H:%M:%SZ")
    assert issued.year >= 2024
    assert "refresh_token" not in answer
    body = claims(answer["token"])
    assert body["sub"] == "" and body["aud"] == "svc"
    assert body["access"] == [{"type": "repository", "name": "public/x", "actions": ["pull"]}]
    assert endpoint.issuer.verify(answer["token"]).subject == ""


def test_empty_basic_credentials_get_an_anonymous_token(endpoint: TokenService) -> None:
    status, _, answer = get(
        endpoint, "scope=repository:public/x:pull", {"Authorization": "Basic Og=="}
    )
    assert status == 200 and claims(answer["token"])["sub"] == ""
    assert claims(answer["token"])["access"][0]["name"] == "public/x"


def test_authenticated_get_intersects(endpoint: TokenService) -> None:
    query = (
        "service=svc&account=alice&client_id=test"
        "&scope=repository:alice/app:pull,push,delete repository:bob/app:pull,push"
        "&scope=registry:catalog:*&scope=namespace:alice:pull"
    )
    status, _, answer = get(endpoint, query, basic("alice", "wonderland"))
    assert status == 200
    body = claims(answer["token"])
    assert body["sub"] == "alice"
    assert body["access"] == [
        {"type": "repository", "name": "alice/app", "actions": ["pull", "push", "delete"]},
        {"type": "repository", "name": "bob/app", "actions": ["pull"]},
        # the catalog: alice may pull every repository (rule "*" on "*"); namespace: unknown
        {"type": "registry", "name": "catalog", "actions": ["*"]},
    ]


def test_get_without_scope_and_service(endpoint: TokenService) -> None:
    status, _, answer = get(endpoint, "", basic("bob", "builder"))  # what `login` asks
    assert status == 200 and claims(answer["token"])["access"] == []


def test_get_wrong_credentials(endpoint: TokenService) -> None:
    answers = [
        get(endpoint, "service=svc&scope=repository:public/x:pull", basic(user, "wrong"))
        for user in ("alice", "nobody")
    ]
    assert answers[0] == answers[1]  # an unknown user looks like a wrong password
    status, headers, body = answers[0]
    assert status == 401
    assert headers["WWW-Authenticate"] == 'Basic realm="R"'
    assert body["errors"][0]["code"] == "UNAUTHORIZED"


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("service=other", "unknown service"),
        ("service=svc&scope=repository:UPPER:pull", "invalid resource name"),
        ("service=svc&scope=repository", "not type:name:actions"),
        ("service=svc&offline_token=maybe", "not a boolean"),
    ],
)
def test_get_bad_requests(endpoint: TokenService, query: str, message: str) -> None:
    status, _, body = get(endpoint, query)
    assert status == 400
    assert message in body["errors"][0]["message"]


def test_get_offline_token(endpoint: TokenService) -> None:
    _, _, answer = get(endpoint, "service=svc&offline_token=true", basic("bob", "builder"))
    assert endpoint.issuer.verify_refresh(answer["refresh_token"])[0] == "bob"
    _, _, anonymous = get(endpoint, "service=svc&offline_token=true")
    assert "refresh_token" not in anonymous


def password_form(**extra: str) -> dict[str, str]:
    form = {
        "grant_type": "password",
        "service": "svc",
        "client_id": "tests",
        "username": "alice",
        "password": "wonderland",
    }
    form.update(extra)
    return form


def test_post_password_grant(endpoint: TokenService) -> None:
    status, headers, answer = post(
        endpoint, password_form(scope="repository:alice/app:push repository:x:push,pull")
    )
    assert status == 200 and headers["Cache-Control"] == "no-store"
    assert answer["scope"] == "repository:alice/app:push repository:x:pull"
    assert answer["expires_in"] == 300 and "issued_at" in answer
    assert "refresh_token" not in answer
    assert claims(answer["access_token"])["sub"] == "alice"


def test_post_refresh_grant(endpoint: TokenService, htpasswd: str) -> None:
    _, _, first = post(endpoint, password_form(access_type="offline"))
    refresh = first["refresh_token"]
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh,
        "service": "svc",
        "client_id": "tests",
        "scope": "repository:alice/app:pull",
    }
    status, _, answer = post(endpoint, form)
    assert status == 200
    assert answer["refresh_token"] == refresh
    assert claims(answer["access_token"])["sub"] == "alice"
    assert answer["scope"] == "repository:alice/app:pull"
    # an access token is no refresh token
    status, _, body = post(endpoint, dict(form, refresh_token=answer["access_token"]))
    assert status == 401 and body["errors"][0]["code"] == "UNAUTHORIZED"
    # a password change revokes refresh tokens
    add_user(htpasswd, "alice", "changed", cost=4)
    status, _, body = post(endpoint, form)
    assert status == 401 and body["errors"][0]["message"] == "invalid refresh token"


def test_post_wrong_password(endpoint: TokenService) -> None:
    wrong = post(endpoint, password_form(password="nope"))
    unknown = post(endpoint, password_form(username="mallory", password="nope"))
    assert wrong == unknown
    assert wrong[0] == 401 and wrong[2]["errors"][0]["code"] == "UNAUTHORIZED"


@pytest.mark.parametrize(
    ("form", "message"),
    [
        (password_form(grant_type=""), "missing grant_type"),
        (password_form(client_id=""), "missing client_id"),
        (password_form(service=""), "missing service"),
        (password_form(service="other"), "unknown service"),
        (password_form(grant_type="authorization_code"), "unsupported grant_type"),
        (password_form(access_type="forever"), "unknown access_type"),
        (password_form(password=""), "missing username or password"),
        (password_form(scope="repository:a"), "not type:name:actions"),
        (
            {"grant_type": "refresh_token", "service": "svc", "client_id": "t"},
            "missing refresh_token",
        ),
    ],
)
def test_post_bad_requests(endpoint: TokenService, form: dict[str, str], message: str) -> None:
    status, _, body = post(endpoint, form)
    assert status == 400
    assert message in body["errors"][0]["message"]


def test_post_needs_a_form(endpoint: TokenService) -> None:
    status, _, body = post(endpoint, password_form(), content_type="application/json")
    assert status == 400 and "x-www-form-urlencoded" in body["errors"][0]["message"]
    status, headers, _ = endpoint.handle("PUT", {}, {}, b"")
    assert status == 405 and headers["Allow"] == "GET, POST"


def test_build_token_endpoint(htpasswd: str, tmp_path: Path) -> None:
    base = {"htpasswd": {"path": htpasswd}}
    assert build_token_endpoint(None, str(tmp_path), "http://h:1") is None
    assert build_token_endpoint(base, str(tmp_path), "http://h:1") is None  # basic only
    default = build_token_endpoint(dict(base, token={}), str(tmp_path), "http://h:1")
    assert default is not None and default.path == "/token"
    from_realm = build_token_endpoint(
        dict(base, token={"realm": "https://reg.example/auth/issue"}), str(tmp_path), "http://h:1"
    )
    assert from_realm is not None and from_realm.path == "/auth/issue"
