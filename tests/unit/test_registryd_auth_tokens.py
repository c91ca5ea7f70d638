"""JWT access and refresh tokens: claims, signature, expiry, audience, keys, kid."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import time
from typing import TYPE_CHECKING

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from registryd.auth import Access
from registryd.auth.errors import AuthConfigError
from registryd.auth.tokens import (
    LEEWAY,
    InvalidToken,
    SigningKey,
    TokenIssuer,
    default_key,
    load_key,
    signing_key,
    thumbprint,
)

if TYPE_CHECKING:
    from pathlib import Path

PULL = Access("repository", "alice/app", frozenset({"pull"}))
PUSH = Access("repository", "alice/app", frozenset({"pull", "push"}))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def write_key(path: Path, private: object) -> str:
    pem = private.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    path.write_bytes(pem)
    return str(path)


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> SigningKey:
    return default_key(str(tmp_path_factory.mktemp("root")))


def issuer(key: SigningKey, **kw: object) -> TokenIssuer:
    args: dict[str, object] = {"issuer": "registryd", "service": "registryd", "expiration": 300}
    args.update(kw)
    return TokenIssuer(key, **args)  # type: ignore[arg-type]


def test_issue_and_verify(key: SigningKey) -> None:
    tokens = issuer(key)
    before = int(time.time())
    issued = tokens.issue("alice", [PUSH])
    header = jwt.get_unverified_header(issued.token)
    assert header == {"alg": "ES256", "typ": "JWT", "kid": key.kid}
    claims = jwt.decode(issued.token, options={"verify_signature": False})
    assert (
        claims["iss"] == "registryd" and claims["sub"] == "alice" and claims["aud"] == "registryd"
    )
    assert before <= claims["iat"] == claims["nbf"] == issued.issued_at <= int(time.time())
    assert claims["exp"] - claims["iat"] == 300 == issued.expires_in
    assert len(claims["jti"]) >= 16
    assert claims["access"] == [
        {"type": "repository", "name": "alice/app", "actions": ["pull", "push"]}
    ]
    verified = tokens.verify(issued.token)
    assert verified.subject == "alice" and verified.access == (PUSH,)
    assert tokens.issue("alice", [PUSH]).token != issued.token  # a fresh jti each time


def test_anonymous_token_has_empty_subject(key: SigningKey) -> None:
    tokens = issuer(key)
    claims = tokens.verify(tokens.issue("", []).token)
    assert claims.subject == "" and claims.access == ()


def test_expired_and_not_yet_valid(key: SigningKey) -> None:
    now = time.time()
    stale = issuer(key, clock=lambda: now - 300 - LEEWAY - 5).issue("alice", [PULL]).token
    with pytest.raises(InvalidToken, match="expired"):
        issuer(key).verify(stale)
    skewed = issuer(key, clock=lambda: now - 300 - LEEWAY + 5).issue("alice", [PULL]).token
    assert issuer(key).verify(skewed).subject == "alice"  # within the leeway
    future = issuer(key, clock=lambda: now + 3600).issue("alice", [PULL]).token
    with pytest.raises(InvalidToken, match="not yet valid"):
        issuer(key).verify(future)


def test_wrong_audience_and_issuer(key: SigningKey) -> None:
    token = issuer(key, service="other-registry").issue("alice", [PULL]).token
    with pytest.raises(InvalidToken, match="another service"):
        issuer(key).verify(token)
    token = issuer(key, issuer="someone-else").issue("alice", [PULL]).token
    with pytest.raises(InvalidToken, match="another issuer"):
        issuer(key).verify(token)


def test_wrong_key(key: SigningKey, tmp_path: Path) -> None:
    other = default_key(str(tmp_path))
    assert other.kid != key.kid
    token = issuer(other).issue("alice", [PULL]).token
    with pytest.raises(InvalidToken, match="unknown key"):
        issuer(key).verify(token)
    # our kid in the header, someone else's signature
    forged = jwt.encode(
        jwt.decode(token, options={"verify_signature": False}),
        other.private,
        algorithm="ES256",
        headers={"kid": key.kid},
    )
    with pytest.raises(InvalidToken, match="signature"):
        issuer(key).verify(forged)


def test_tampered_and_unsigned(key: SigningKey) -> None:
    tokens = issuer(key)
    head, payload, signature = tokens.issue("bob", [PULL]).token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["access"][0]["actions"] = ["pull", "push", "delete"]
    tampered = ".".join([head, b64(json.dumps(claims).encode()), signature])
    with pytest.raises(InvalidToken, match="signature"):
        tokens.verify(tampered)
    unsigned = jwt.encode(claims, key=None, algorithm="none", headers={"kid": key.kid})
    with pytest.raises(InvalidToken, match="malformed"):
        tokens.verify(unsigned)
    for garbage in ("", "abc", "a.b.c", head + "." + payload):
        with pytest.raises(InvalidToken):
            tokens.verify(garbage)


def test_malformed_access_claim(key: SigningKey) -> None:
    tokens = issuer(key)
    now = int(time.time())
    base = {"iss": "registryd", "sub": "x", "aud": "registryd", "iat": now, "nbf": now}
    for access in (
        {"type": "repository"},
        [{"type": "repository", "name": 3, "actions": []}],
        None,
    ):
        claims = dict(base, exp=now + 60, access=access)
        token = jwt.encode(claims, key.private, algorithm="ES256", headers={"kid": key.kid})
        with pytest.raises(InvalidToken):
            tokens.verify(token)
    token = jwt.encode(dict(base, exp=now + 60), key.private, "ES256", headers={"kid": key.kid})
    with pytest.raises(InvalidToken, match="access"):
        tokens.verify(token)  # no access claim at all


def test_refresh_tokens_are_not_access_tokens(key: SigningKey) -> None:
    tokens = issuer(key)
    refresh = tokens.issue_refresh("alice", "fpr123")
    assert tokens.verify_refresh(refresh) == ("alice", "fpr123")
    with pytest.raises(InvalidToken):
        tokens.verify(refresh)
    with pytest.raises(InvalidToken, match="not a refresh token"):
        tokens.verify_refresh(tokens.issue("alice", [PULL]).token)
    with pytest.raises(InvalidToken, match="another service"):
        issuer(key, service="other").verify_refresh(refresh)


def test_default_key_generated_once_0600(tmp_path: Path) -> None:
    first = default_key(str(tmp_path))
    path = tmp_path / "_auth" / "token-key.pem"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "_auth").stat().st_mode) == 0o700
    assert default_key(str(tmp_path)).kid == first.kid
    assert os.listdir(tmp_path / "_auth") == ["token-key.pem"]
    assert first.algorithm == "ES256"


def test_configured_keys(tmp_path: Path) -> None:
    rsa_key = load_key(write_key(tmp_path / "rsa.pem", rsa.generate_private_key(65537, 2048)))
    assert rsa_key.algorithm == "RS256"
    tokens = issuer(rsa_key)
    assert tokens.verify(tokens.issue("u", [PULL]).token).subject == "u"
    p384 = load_key(write_key(tmp_path / "ec.pem", ec.generate_private_key(ec.SECP384R1())))
    assert p384.algorithm == "ES384"
    assert signing_key(str(tmp_path / "ec.pem"), str(tmp_path / "unused")).kid == p384.kid
    assert not (tmp_path / "unused").exists()


def test_unusable_keys(tmp_path: Path) -> None:
    with pytest.raises(AuthConfigError, match="No such file"):
        load_key(str(tmp_path / "absent.pem"))
    (tmp_path / "junk.pem").write_text("not a key")
    with pytest.raises(AuthConfigError, match="not an unencrypted PEM key"):
        load_key(str(tmp_path / "junk.pem"))
    small = write_key(tmp_path / "small.pem", rsa.generate_private_key(65537, 1024))
    with pytest.raises(AuthConfigError, match="at least 2048"):
        load_key(small)


def canonical_thumbprint(jwk_json: str, members: list[str]) -> str:
    jwk = json.loads(jwk_json)
    canonical = json.dumps({m: jwk[m] for m in members}, sort_keys=True, separators=(",", ":"))
    return b64(hashlib.sha256(canonical.encode()).digest())


def test_kid_is_the_rfc7638_thumbprint(key: SigningKey) -> None:
    public = key.private.public_key()
    assert key.kid == canonical_thumbprint(ECAlgorithm.to_jwk(public), ["crv", "kty", "x", "y"])
    rsa_public = rsa.generate_private_key(65537, 2048).public_key()
    expected = canonical_thumbprint(RSAAlgorithm.to_jwk(rsa_public), ["e", "kty", "n"])
    assert thumbprint(rsa_public) == expected


def test_rfc7638_known_answer() -> None:
    """The RSA example of RFC 7638 section 3.1."""
    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_B"
        "JECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_F"
        "DW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4"
        "vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    )
    modulus = int.from_bytes(base64.urlsafe_b64decode(n + "=="), "big")
    public = rsa.RSAPublicNumbers(65537, modulus).public_key()
    assert thumbprint(public) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_a_remembered_token_still_expires(key: SigningKey, monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = issuer(key, expiration=60)
    issued = tokens.issue("alice", [PULL]).token
    assert tokens.verify(issued).subject == "alice"
    assert tokens.verify(issued).subject == "alice"  # from the cache
    later = time.time() + 60 + LEEWAY + 1
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(InvalidToken, match="expired"):
        tokens.verify(issued)
