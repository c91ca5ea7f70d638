"""Basic and Bearer authorizers: the Decision each request gets, the challenge it carries."""

from __future__ import annotations

import base64
import time
from typing import TYPE_CHECKING

import pytest

from registryd.auth import Access, build_authorizer
from registryd.auth.access import AccessRules, Rule, expand_actions
from registryd.auth.basic import BasicAuthorizer
from registryd.auth.bearer import BearerAuthorizer
from registryd.auth.errors import AuthConfigError
from registryd.auth.htpasswd import Htpasswd
from registryd.auth.tokens import TokenIssuer, default_key
from tests.support.registryd import basic_auth as basic
from tests.support.registryd import write_htpasswd

if TYPE_CHECKING:
    from pathlib import Path


def repo(name: str, *actions: str) -> Access:
    return Access("repository", name, frozenset(actions))


USERS = {"alice": "wonderland", "bob": "builder"}
RULES = AccessRules(
    [
        Rule("alice", "alice/*", expand_actions(["*"])),
        Rule("*", "*", expand_actions(["pull"])),
        Rule("anonymous", "public/*", expand_actions(["pull"])),
    ]
)


@pytest.fixture(scope="module")
def htpasswd(tmp_path_factory: pytest.TempPathFactory) -> str:
    return write_htpasswd(tmp_path_factory.mktemp("auth") / "htpasswd", USERS)


@pytest.fixture
def basic_auth(htpasswd: str) -> BasicAuthorizer:
    return BasicAuthorizer(Htpasswd(htpasswd), RULES, "my realm")


def test_basic_without_credentials(basic_auth: BasicAuthorizer) -> None:
    base = basic_auth.authorize({}, [])  # GET /v2/ asks for an identity
    assert (base.allowed, base.status, base.code) == (False, 401, "UNAUTHORIZED")
    assert base.challenge == 'Basic realm="my realm"'
    assert basic_auth.authorize({}, [repo("alice/app", "pull")]).status == 401
    public = basic_auth.authorize({}, [repo("public/x", "pull")])
    assert public.allowed and public.account is None
    assert basic_auth.authorize({}, [repo("public/x", "pull", "push")]).status == 401


def test_basic_empty_credentials_are_anonymous(basic_auth: BasicAuthorizer) -> None:
    """containers/image answers a Basic challenge with ``Basic Og==`` (":") when it has no
    credentials: that is an anonymous client, not a wrong password."""
    empty = {"Authorization": "Basic Og=="}
    assert basic_auth.authorize(empty, [repo("public/x", "pull")]) == basic_auth.authorize(
        {}, [repo("public/x", "pull")]
    )
    refused = basic_auth.authorize(empty, [repo("alice/x", "pull")])
    assert (refused.status, refused.message) == (401, "authentication required")
    no_user = {"Authorization": "Basic " + base64.b64encode(b":pw").decode()}
    assert (
        basic_auth.authorize(no_user, [repo("public/x", "pull")]).message == "invalid credentials"
    )


def test_basic_good_credentials(basic_auth: BasicAuthorizer) -> None:
    assert basic_auth.authorize(basic("alice", "wonderland"), []).account == "alice"
    push = basic_auth.authorize(basic("alice", "wonderland"), [repo("alice/app", "pull", "push")])
    assert push.allowed and push.account == "alice" and push.status == 200
    # lower-case header names, as some servers hand them over
    lowered = {"authorization": basic("bob", "builder")["Authorization"]}
    assert basic_auth.authorize(lowered, [repo("alice/app", "pull")]).allowed


def test_basic_denied_is_403_without_challenge(basic_auth: BasicAuthorizer) -> None:
    refused = basic_auth.authorize(basic("bob", "builder"), [repo("alice/app", "pull", "push")])
    assert (refused.allowed, refused.status, refused.code) == (False, 403, "DENIED")
    assert refused.account == "bob" and refused.challenge is None
    mount = [repo("bob/app", "pull", "push"), repo("alice/app", "pull")]
    assert basic_auth.authorize(basic("bob", "builder"), mount).status == 403


def test_basic_wrong_credentials_do_not_reveal_users(basic_auth: BasicAuthorizer) -> None:
    wrong_password = basic_auth.authorize(basic("alice", "nope"), [repo("public/x", "pull")])
    unknown_user = basic_auth.authorize(basic("mallory", "nope"), [repo("public/x", "pull")])
    assert wrong_password == unknown_user
    assert (wrong_password.status, wrong_password.code) == (401, "UNAUTHORIZED")
    assert wrong_password.challenge == 'Basic realm="my realm"'


@pytest.mark.parametrize(
    "value",
    [
        "Basic",
        "Basic !!!",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Digest abc",
        "Basic " + base64.b64encode(b":pw").decode(),
        "Basic " + base64.b64encode(b"\xff:x").decode(),
    ],
)
def test_basic_malformed_header(basic_auth: BasicAuthorizer, value: str) -> None:
    decision = basic_auth.authorize({"Authorization": value}, [repo("public/x", "pull")])
    assert decision.status == 401 and decision.challenge == 'Basic realm="my realm"'


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> TokenIssuer:
    return TokenIssuer(default_key(str(tmp_path_factory.mktemp("root"))), "registryd", "svc", 300)


@pytest.fixture
def bearer_auth(tokens: TokenIssuer) -> BearerAuthorizer:
    return BearerAuthorizer(tokens, RULES, "http://127.0.0.1:5000/token")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


REALM = 'Bearer realm="http://127.0.0.1:5000/token",service="svc"'


def test_bearer_without_token_names_the_scope(bearer_auth: BearerAuthorizer) -> None:
    base = bearer_auth.authorize({}, [])
    assert (base.status, base.code, base.challenge) == (401, "UNAUTHORIZED", REALM)
    push = bearer_auth.authorize({}, [repo("alice/app", "push", "pull")])
    assert push.challenge == REALM + ',scope="repository:alice/app:pull,push"'
    mount = bearer_auth.authorize(
        basic("alice", "x"), [repo("dst", "pull", "push"), repo("src", "pull")]
    )
    assert mount.challenge == REALM + ',scope="repository:dst:pull,push repository:src:pull"'
    catalog = bearer_auth.authorize({}, [Access("registry", "catalog", frozenset({"*"}))])
    assert catalog.challenge == REALM + ',scope="registry:catalog:*"'


def test_bearer_valid_token(bearer_auth: BearerAuthorizer, tokens: TokenIssuer) -> None:
    token = tokens.issue("alice", [repo("alice/app", "pull", "push")]).token
    assert bearer_auth.authorize(bearer(token), []).account == "alice"
    decision = bearer_auth.authorize(bearer(token), [repo("alice/app", "push")])
    assert decision.allowed and decision.account == "alice"
    anonymous = tokens.issue("", [repo("public/x", "pull")]).token
    decision = bearer_auth.authorize(bearer(anonymous), [repo("public/x", "pull")])
    assert decision.allowed and decision.account is None
    assert bearer_auth.authorize(bearer(anonymous), []).allowed  # any valid token answers /v2/
    star = tokens.issue("alice", [repo("alice/app", "*")]).token
    assert bearer_auth.authorize(bearer(star), [repo("alice/app", "delete")]).allowed


def test_bearer_insufficient_scope(bearer_auth: BearerAuthorizer, tokens: TokenIssuer) -> None:
    pull_only = tokens.issue("alice", [repo("alice/app", "pull")]).token
    # the rules would grant push: a new token can carry it
    more = bearer_auth.authorize(bearer(pull_only), [repo("alice/app", "pull", "push")])
    assert (more.status, more.code) == (401, "UNAUTHORIZED")
    assert more.challenge == (
        REALM + ',scope="repository:alice/app:pull,push",error="insufficient_scope"'
    )
    # another repository entirely: same answer when the rules would grant it
    other = bearer_auth.authorize(bearer(pull_only), [repo("alice/other", "pull")])
    assert other.status == 401 and "insufficient_scope" in (other.challenge or "")
    # bob may never push alice/app: 403, no challenge to loop on
    bob = tokens.issue("bob", [repo("alice/app", "pull")]).token
    denied = bearer_auth.authorize(bearer(bob), [repo("alice/app", "pull", "push")])
    assert (denied.status, denied.code, denied.account, denied.challenge) == (
        403,
        "DENIED",
        "bob",
        None,
    )
    # an anonymous token short of scope: credentials might help, so 401
    anonymous = tokens.issue("", []).token
    refused = bearer_auth.authorize(bearer(anonymous), [repo("alice/app", "pull")])
    assert refused.status == 401 and "insufficient_scope" in (refused.challenge or "")


def test_bearer_invalid_tokens(bearer_auth: BearerAuthorizer, tokens: TokenIssuer) -> None:
    now = time.time()
    expired = TokenIssuer(tokens.key, "registryd", "svc", 300, clock=lambda: now - 1000)
    token = expired.issue("alice", [repo("alice/app", "pull")]).token
    decision = bearer_auth.authorize(bearer(token), [repo("alice/app", "pull")])
    assert (decision.status, decision.code, decision.message) == (
        401,
        "UNAUTHORIZED",
        "token expired",
    )
    assert decision.challenge == (
        REALM + ',scope="repository:alice/app:pull",error="invalid_token"'
    )
    for value in ("Bearer", "Bearer not-a-jwt", "Basic " + base64.b64encode(b"a:b").decode()):
        refused = bearer_auth.authorize({"Authorization": value}, [repo("public/x", "pull")])
        assert refused.status == 401 and (refused.challenge or "").startswith(REALM)


def test_build_authorizer_modes(htpasswd: str, tmp_path: Path) -> None:
    assert build_authorizer(None, str(tmp_path), "http://127.0.0.1:1") is None
    plain = build_authorizer({"htpasswd": {"path": htpasswd}}, str(tmp_path), "http://h:1")
    assert isinstance(plain, BasicAuthorizer)
    assert plain.authorize({}, []).challenge == 'Basic realm="registryd"'
    config = {"htpasswd": {"path": htpasswd}, "token": {}}
    tokened = build_authorizer(config, str(tmp_path), "http://127.0.0.1:5000/")
    assert isinstance(tokened, BearerAuthorizer)
    assert tokened.authorize({}, []).challenge == (
        'Bearer realm="http://127.0.0.1:5000/token",service="registryd"'
    )
    assert (tmp_path / "_auth" / "token-key.pem").exists()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "auth.htpasswd is required"),
        ({"token": {}}, "auth.htpasswd is required"),
        ({"htpasswd": {}}, "auth.htpasswd.path"),
        ({"htpasswd": {"path": "@"}, "token": {"expiration": 30}}, "at least 60"),
        ({"htpasswd": {"path": "@"}, "token": {"path": "/v2/token"}}, "outside /v2/"),
        (
            {
                "htpasswd": {"path": "@"},
                "access": [{"account": "a", "repository": "*", "actions": ["pull", "admin"]}],
            },
            "unknown",
        ),
        (
            {"htpasswd": {"path": "@"}, "access": [{"account": "a", "actions": ["pull"]}]},
            "repository",
        ),
        ({"htpasswd": {"path": "@"}, "ldap": {}}, "unknown keys"),
        ({"htpasswd": {"path": "/nonexistent/htpasswd"}}, "No such file"),
    ],
)
def test_build_authorizer_refuses(
    htpasswd: str, tmp_path: Path, config: dict[str, object], message: str
) -> None:
    section = config.get("htpasswd")
    if isinstance(section, dict) and section.get("path") == "@":
        section["path"] = htpasswd
    with pytest.raises(AuthConfigError, match=message):
        build_authorizer(config, str(tmp_path), "http://127.0.0.1:1")


def test_may_follows_the_rules_not_the_token_scope(
    bearer_auth: BearerAuthorizer, basic_auth: BasicAuthorizer, tokens: TokenIssuer
) -> None:
    """Listings (search) ask what the account may pull, whatever its token was issued for."""
    unscoped = bearer(tokens.issue("bob", []).token)
    assert bearer_auth.may(unscoped, [repo("alice/app", "pull")])
    assert not bearer_auth.may(unscoped, [repo("alice/app", "push")])
    assert bearer_auth.may({}, [repo("public/x", "pull")])
    assert not bearer_auth.may({}, [repo("alice/app", "pull")])
    assert not bearer_auth.may({"Authorization": "Bearer junk"}, [repo("public/x", "pull")])
    assert basic_auth.may(basic("bob", "builder"), [repo("alice/app", "pull")])
    assert not basic_auth.may(basic("bob", "wrong"), [repo("public/x", "pull")])
