"""Bearer tokens: JWTs the registry signs (token endpoint) and verifies (every request).

An access token, as distribution's spec/auth/jwt.md describes it::

    header  {"alg": "ES256", "typ": "JWT", "kid": "<RFC 7638 thumbprint of the key>"}
    claims  {"iss", "sub" ("" = anonymous), "aud": service, "exp", "nbf", "iat", "jti",
             "access": [{"type": "repository", "name": "a/b", "actions": ["pull"]}]}

Verification checks the signature with the one algorithm of our key (no algorithm
confusion), ``iss``, ``aud``, ``exp``/``nbf`` with a small leeway, and the shape of
``access``. A refresh token is a JWT of the same key with ``token_use: refresh``, no
``access`` and no expiry; it carries the user's htpasswd fingerprint, so a password change
(or removing the user) revokes it. Access verification refuses refresh tokens and vice versa.

The signing key is the configured PEM file (EC P-256/384/521, RSA ≥ 2048, Ed25519), or one
generated once under ``<root>/_auth/token-key.pem`` (0600) and reused by every process.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import json
import os
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from registryd.auth import Access
from registryd.auth.errors import AuthConfigError

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

LEEWAY = 10  # seconds of clock skew tolerated on exp/nbf
VERIFIED_CACHE = 4096  # verified access tokens remembered (until they expire)
REFRESH_USE = "refresh"
KEY_DIR = "_auth"
KEY_FILE = "token-key.pem"


class InvalidToken(Exception):
    """The token is not one this registry issued, or no longer valid; str() says why."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _int_bytes(value: int, size: int | None = None) -> bytes:
    return value.to_bytes(size or max(1, (value.bit_length() + 7) // 8), "big")


@dataclass(frozen=True)
class SigningKey:
    private: Any  # a cryptography private key
    algorithm: str  # the one JWS algorithm this key signs and verifies with
    kid: str


def thumbprint(public: Any) -> str:
    """The RFC 7638 JWK thumbprint: SHA-256 of the key's required members, sorted, compact."""
    if isinstance(public, ec.EllipticCurvePublicKey):
        numbers = public.public_numbers()
        size = (public.curve.key_size + 7) // 8
        crv = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}[public.curve.name]
        members = {
            "crv": crv,
            "kty": "EC",
            "x": _b64(_int_bytes(numbers.x, size)),
            "y": _b64(_int_bytes(numbers.y, size)),
        }
    elif isinstance(public, rsa.RSAPublicKey):
        numbers_rsa = public.public_numbers()
        members = {
            "e": _b64(_int_bytes(numbers_rsa.e)),
            "kty": "RSA",
            "n": _b64(_int_bytes(numbers_rsa.n)),
        }
    elif isinstance(public, ed25519.Ed25519PublicKey):
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        members = {"crv": "Ed25519", "kty": "OKP", "x": _b64(raw)}
    else:
        raise AuthConfigError(f"unsupported signing key type {type(public).__name__}")
    canonical = json.dumps(members, sort_keys=True, separators=(",", ":")).encode()
    return _b64(hashlib.sha256(canonical).digest())


def _algorithm(private: Any, where: str) -> str:
    if isinstance(private, ec.EllipticCurvePrivateKey):
        algorithms = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
        if private.curve.name not in algorithms:
            raise AuthConfigError(f"{where}: unsupported EC curve {private.curve.name}")
        return algorithms[private.curve.name]
    if isinstance(private, rsa.RSAPrivateKey):
        if private.key_size < 2048:
            raise AuthConfigError(f"{where}: RSA key of {private.key_size} bits (at least 2048)")
        return "RS256"
    if isinstance(private, ed25519.Ed25519PrivateKey):
        return "EdDSA"
    raise AuthConfigError(f"{where}: unsupported key type {type(private).__name__}")


def load_key(path: str) -> SigningKey:
    """A PEM private key file (PKCS#8, SEC1 or PKCS#1, unencrypted)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise AuthConfigError(f"token signing key {path}: {err.strerror}") from err
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as err:
        raise AuthConfigError(f"token signing key {path}: not an unencrypted PEM key") from err
    return SigningKey(private, _algorithm(private, path), thumbprint(private.public_key()))


def default_key(root: str) -> SigningKey:
    """``<root>/_auth/token-key.pem``: loaded, or generated (EC P-256) the first time.

    Created 0600 through a temp file and link(2), so concurrent first starts agree on one
    key: whoever links second loads the winner's key."""
    directory = os.path.join(root, KEY_DIR)
    path = os.path.join(directory, KEY_FILE)
    if os.path.exists(path):
        return load_key(path)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        tmp = os.path.join(directory, f".{KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
                f.flush()
                os.fsync(f.fileno())
            try:
                os.link(tmp, path)
            except OSError as err:
                if err.errno != errno.EEXIST:
                    raise
        finally:
            os.unlink(tmp)
    except OSError as err:
        raise AuthConfigError(f"token signing key {path}: {err.strerror}") from err
    return load_key(path)


def signing_key(configured: str | None, root: str) -> SigningKey:
    return load_key(configured) if configured else default_key(root)


@dataclass(frozen=True)
class Claims:
    subject: str  # "" = anonymous
    access: tuple[Access, ...]
    expires: int
    token_id: str


@dataclass(frozen=True)
class Issued:
    token: str
    issued_at: int
    expires_in: int
    access: tuple[Access, ...]


def _access_claim(access: Sequence[Access]) -> list[dict[str, Any]]:
    from registryd.auth.scopes import sorted_actions

    return [{"type": a.type, "name": a.name, "actions": sorted_actions(a.actions)} for a in access]


def _parse_access(value: Any) -> tuple[Access, ...]:
    if not isinstance(value, list):
        raise InvalidToken("malformed access claim")
    out = []
    for entry in value:
        if not isinstance(entry, dict):
            raise InvalidToken("malformed access claim")
        kind, name, actions = entry.get("type"), entry.get("name"), entry.get("actions")
        if (
            not isinstance(kind, str)
            or not isinstance(name, str)
            or not isinstance(actions, list)
            or not all(isinstance(a, str) for a in actions)
        ):
            raise InvalidToken("malformed access claim")
        out.append(Access(kind, name, frozenset(actions)))
    return tuple(out)


class TokenIssuer:
    """Issues and verifies this registry's tokens (one key, one issuer, one audience)."""

    def __init__(
        self,
        key: SigningKey,
        issuer: str,
        service: str,
        expiration: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.key = key
        self.issuer = issuer
        self.service = service
        self.expiration = expiration
        self.clock = clock
        self._public = key.private.public_key()
        self._verified: dict[str, Claims] = {}

    def _sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(
            claims, self.key.private, algorithm=self.key.algorithm, headers={"kid": self.key.kid}
        )

    def issue(self, subject: str, access: Sequence[Access]) -> Issued:
        now = int(self.clock())
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + self.expiration,
            "nbf": now,
            "iat": now,
            "jti": secrets.token_urlsafe(16),
            "access": _access_claim(access),
        }
        return Issued(self._sign(claims), now, self.expiration, tuple(access))

    def issue_refresh(self, subject: str, fingerprint: str) -> str:
        now = int(self.clock())
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "iat": now,
            "jti": secrets.token_urlsafe(16),
            "token_use": REFRESH_USE,
            "fpr": fingerprint,
        }
        return self._sign(claims)

    def _decode(self, token: str, required: list[str]) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
            if header.get("kid") != self.key.kid:
                raise InvalidToken("token signed by an unknown key")
            claims: dict[str, Any] = jwt.decode(
                token,
                self._public,
                algorithms=[self.key.algorithm],
                audience=self.service,
                issuer=self.issuer,
                leeway=LEEWAY,
                options={"require": required},
            )
        except jwt.ExpiredSignatureError as err:
            raise InvalidToken("token expired") from err
        except jwt.ImmatureSignatureError as err:
            raise InvalidToken("token not yet valid") from err
        except jwt.InvalidAudienceError as err:
            raise InvalidToken("token issued for another service") from err
        except jwt.InvalidIssuerError as err:
            raise InvalidToken("token from another issuer") from err
        except jwt.InvalidSignatureError as err:
            raise InvalidToken("token signature invalid") from err
        except jwt.PyJWTError as err:
            raise InvalidToken(f"malformed token: {err}") from err
        if not isinstance(claims.get("sub"), str):
            raise InvalidToken("malformed token: sub")
        return claims

    def verify(self, token: str) -> Claims:
        """An access token's claims. Raises InvalidToken.

        A token verified once is remembered until it expires: clients send the same token
        on every request, and a signature check costs ~0.3 ms where a lookup costs nothing."""
        known = self._verified.get(token)
        if known is not None:
            if time.time() <= known.expires + LEEWAY:
                return known
            self._verified.pop(token, None)
            raise InvalidToken("token expired")
        claims = self._verify(token)
        if len(self._verified) >= VERIFIED_CACHE:
            self._verified.clear()
        self._verified[token] = claims
        return claims

    def _verify(self, token: str) -> Claims:
        claims = self._decode(token, ["iss", "sub", "aud", "exp", "nbf", "iat", "access"])
        if claims.get("token_use") is not None:
            raise InvalidToken("a refresh token is not an access token")
        access = _parse_access(claims["access"])
        return Claims(claims["sub"], access, int(claims["exp"]), str(claims.get("jti", "")))

    def verify_refresh(self, token: str) -> tuple[str, str]:
        """A refresh token's (subject, fingerprint). Raises InvalidToken."""
        claims = self._decode(token, ["iss", "sub", "aud", "iat"])
        fingerprint = claims.get("fpr")
        if claims.get("token_use") != REFRESH_USE or not isinstance(fingerprint, str):
            raise InvalidToken("not a refresh token")
        return claims["sub"], fingerprint
