"""The registry client without a network: WWW-Authenticate parsing, scopes, the token flow and
its cache, credentials files and helpers, registries.conf, error messages, and blob downloads
that resume, all over a fake transport."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import urllib.parse
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from imagetools.errors import AuthError, BlobMismatch, RegistryError
from imagetools.manifest import Descriptor
from imagetools.registry import credentials
from imagetools.registry.auth import Authenticator, merge_scopes, parse_challenges
from imagetools.registry.client import RegistryClient, RegistryHTTPError
from imagetools.registry.config import endpoints, is_insecure
from imagetools.registry.transport import BufferedResponse, ConnectionFailed, Headers
from imagetools.store import Store
from tests.support.fake_transport import FakeTransport, Handler, Sent, answer, fake_client


# -- a fake transport (tests/support/fake_transport.py) and a body that breaks -------------------
class StreamResponse(BufferedResponse):
    """A body that breaks after ``break_after`` bytes (a dropped connection)."""

    def __init__(
        self, status: int, headers: Mapping[str, str], body: bytes, break_after: int
    ) -> None:
        super().__init__(status, headers, body)
        self.break_after = break_after

    def chunks(self, size: int) -> Iterator[bytes]:
        yield self.body[: self.break_after]
        raise ConnectionFailed("connection reset by peer")


# -- challenges and scopes ------------------------------------------------------------------------
def test_parse_challenges() -> None:
    (bearer,) = parse_challenges(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
        'scope="repository:library/busybox:pull repository:a/b:pull,push",'
        'error="insufficient_scope"'
    )
    assert bearer.scheme == "bearer"
    assert bearer.params == {
        "realm": "https://auth.docker.io/token",
        "service": "registry.docker.io",
        "scope": "repository:library/busybox:pull repository:a/b:pull,push",
        "error": "insufficient_scope",
    }
    basic, other = parse_challenges('Basic realm="Registry Realm", Bearer realm=http://x/t , x=1')
    assert (basic.scheme, basic.params) == ("basic", {"realm": "Registry Realm"})
    assert (other.scheme, other.params) == ("bearer", {"realm": "http://x/t", "x": "1"})
    (escaped,) = parse_challenges(r'Basic realm="a \"quoted\" realm"')
    assert escaped.params["realm"] == 'a "quoted" realm'
    assert parse_challenges("") == []
    assert [c.scheme for c in parse_challenges("Negotiate")] == ["negotiate"]


def test_merge_scopes() -> None:
    assert merge_scopes(
        ["repository:a:pull", "repository:a:push", "repository:b:pull repository:a:pull"]
    ) == ["repository:a:pull,push", "repository:b:pull"]
    assert merge_scopes(["registry:catalog:*"]) == ["registry:catalog:*"]


# -- the token flow -------------------------------------------------------------------------------
class TokenRegistry:
    """A registry that wants bearer tokens and a token server that issues them."""

    def __init__(self, users: dict[str, str] | None = None) -> None:
        self.users = users or {}
        self.issued = 0

    def __call__(self, sent: Sent) -> BufferedResponse:
        if sent.url.startswith("https://auth.example/token"):
            header = sent.headers.get("Authorization", "")
            if header:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
                if self.users.get(user) != password:
                    return answer(401, b'{"details":"bad"}')
            self.issued += 1
            body = {"token": f"T{self.issued}", "expires_in": 300}
            return answer(200, json.dumps(body).encode())
        if sent.headers.get("Authorization", "").startswith("Bearer T"):
            return answer(200, b"{}", Content_Type="application/json")
        challenge = (
            'Bearer realm="https://auth.example/token",service="reg.example",'
            'scope="repository:a/b:pull"'
        )
        return answer(401, b"", WWW_Authenticate=challenge)


def test_bearer_flow_and_token_cache() -> None:
    registry = TokenRegistry({"u": "p"})
    client, transport = fake_client(registry, credentials.Credentials("u", "p"))
    client.request("GET", "/v2/a/b/manifests/latest", ("repository:a/b:pull",))
    first, token_request, retried = transport.sent
    assert first.url == "https://reg.example/v2/a/b/manifests/latest"
    assert "Authorization" not in first.headers
    assert token_request.url == (
        "https://auth.example/token?service=reg.example&scope=repository%3Aa%2Fb%3Apull&account=u"
    )
    assert token_request.headers["Authorization"] == "Basic " + base64.b64encode(b"u:p").decode()
    assert retried.headers["Authorization"] == "Bearer T1"
    # The next requests of the same scope reuse the token: no 401, no token request.
    client.request("GET", "/v2/a/b/blobs/x", ("repository:a/b:pull",))
    assert len(transport.sent) == 4 and transport.sent[-1].headers["Authorization"] == "Bearer T1"
    # A scope the token does not cover gets a new token up front.
    client.request("GET", "/v2/c/blobs/x", ("repository:c:pull",))
    assert registry.issued == 2 and "scope=repository%3Ac%3Apull" in transport.sent[-2].url


def test_token_expiry_uses_the_clock() -> None:
    now = [1000.0]
    registry = TokenRegistry()
    transport = FakeTransport(registry)
    auth = Authenticator("reg.example", transport, lambda: None, clock=lambda: now[0])
    auth.challenged('Bearer realm="https://auth.example/token"', ["repository:a:pull"], sent=False)
    assert auth.headers(["repository:a:pull"]) == {"Authorization": "Bearer T1"}
    now[0] += 290  # expires_in 300, renewed 5 s early
    assert auth.headers(["repository:a:pull"]) == {"Authorization": "Bearer T1"}
    now[0] += 10
    assert auth.headers(["repository:a:pull"]) == {"Authorization": "Bearer T2"}


def test_bearer_refusals_are_clear() -> None:
    client, _ = fake_client(TokenRegistry({"u": "p"}), credentials.Credentials("u", "wrong"))
    with pytest.raises(AuthError, match="the token server refused the credentials of user 'u'"):
        client.request("GET", "/v2/a/b/manifests/latest", ("repository:a/b:pull",))

    def never(sent: Sent) -> BufferedResponse:
        if sent.url.startswith("https://auth.example"):
            return answer(200, b'{"access_token": "weak"}')
        challenge = 'Bearer realm="https://auth.example/token",error="insufficient_scope"'
        return answer(401, b"", WWW_Authenticate=challenge)

    client, transport = fake_client(never)
    with pytest.raises(AuthError, match=r"repository:a/b:pull denied: .*pyrun image login"):
        client.request("GET", "/v2/a/b/manifests/latest", ("repository:a/b:pull",))
    # Two tries per request: anonymous, then with a fresh token.
    tokens = [s.url.split("?")[0] for s in transport.sent].count("https://auth.example/token")
    assert tokens == 1 and len(transport.sent) == 3
    # A request that already carried a cached token gets one fresh token, then gives up.
    with pytest.raises(AuthError, match="denied"):
        client.request("GET", "/v2/a/b/manifests/latest", ("repository:a/b:pull",))
    assert [s.url.split("?")[0] for s in transport.sent[3:]] == [
        "https://reg.example/v2/a/b/manifests/latest",
        "https://auth.example/token",
        "https://reg.example/v2/a/b/manifests/latest",
    ]
    assert transport.sent[3].headers["Authorization"] == "Bearer weak"
    client, _ = fake_client(never, credentials.Credentials("u", "p"))
    with pytest.raises(AuthError, match="user 'u' may not repository:a/b:pull"):
        client.request("GET", "/v2/a/b/manifests/latest", ("repository:a/b:pull",))


class OAuthRegistry(TokenRegistry):
    """TokenRegistry whose token server also takes the OAuth2 refresh_token grant and
    rotates refresh tokens (R1 -> R2 -> ...)."""

    def __init__(self) -> None:
        super().__init__()
        self.refresh = "R1"

    def __call__(self, sent: Sent) -> BufferedResponse:
        if sent.method == "POST" and sent.url == "https://auth.example/token":
            form = urllib.parse.parse_qs(sent.body.decode())
            if form.get("refresh_token") != [self.refresh] or form.get("client_id") != ["pyrun"]:
                return answer(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}')
            assert form["grant_type"] == ["refresh_token"] and form["service"] == ["reg.example"]
            assert sent.headers["Content-Type"] == "application/x-www-form-urlencoded"
            self.issued += 1
            self.refresh = f"R{self.issued + 1}"
            body = {"access_token": f"T{self.issued}", "refresh_token": self.refresh}
            return answer(200, json.dumps(body).encode())
        return super().__call__(sent)


def test_identity_tokens_use_the_oauth_refresh_grant() -> None:
    registry = OAuthRegistry()
    creds = credentials.Credentials("<token>", "", identity_token="R1")
    client, transport = fake_client(registry, creds)
    client.request("GET", "/v2/a/b/manifests/latest", ("repository:a/b:pull",))
    token_request = transport.sent[1]
    assert token_request.method == "POST" and "Authorization" not in token_request.headers
    form = urllib.parse.parse_qs(token_request.body.decode())
    assert form["scope"] == ["repository:a/b:pull"]
    assert transport.sent[2].headers["Authorization"] == "Bearer T1"
    # The rotated refresh token is the one used next.
    client.request("GET", "/v2/c/blobs/x", ("repository:c:pull",))
    assert registry.issued == 2 and creds.identity_token == "R3"

    client, _ = fake_client(OAuthRegistry(), credentials.Credentials("<token>", "", "stale"))
    with pytest.raises(AuthError, match=r"refused the identity token \(401\): run `pyrun image"):
        client.request("GET", "/v2/a/b/manifests/latest", ("repository:a/b:pull",))

    def basic_only(sent: Sent) -> BufferedResponse:
        return answer(401, WWW_Authenticate='Basic realm="r"')

    client, transport = fake_client(basic_only, credentials.Credentials("u", "", "R1"))
    with pytest.raises(AuthError, match=r"asks for a password .* an identity token"):
        client.check_login()
    assert len(transport.sent) == 1


def test_basic_auth() -> None:
    def handler(sent: Sent) -> BufferedResponse:
        if sent.headers.get("Authorization") == "Basic " + base64.b64encode(b"u:p").decode():
            return answer(200)
        return answer(401, WWW_Authenticate='Basic realm="r"')

    client, transport = fake_client(handler, credentials.Credentials("u", "p"))
    client.check_login()
    client.check_login()
    assert [bool(s.headers.get("Authorization")) for s in transport.sent] == [False, True, True]
    client, _ = fake_client(handler, credentials.Credentials("u", "bad"))
    with pytest.raises(AuthError, match=r"reg\.example refused the credentials of user 'u'"):
        client.check_login()
    client, _ = fake_client(handler)
    with pytest.raises(AuthError, match="requires authentication: run `pyrun image login reg"):
        client.check_login()


def test_registry_errors_carry_codes_and_messages() -> None:
    body = json.dumps(
        {"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown", "detail": "x"}]}
    ).encode()
    client, _ = fake_client(lambda sent: answer(404, body))
    with pytest.raises(RegistryHTTPError) as caught:
        client.get_manifest("a/b", "v1")
    assert caught.value.status == 404 and caught.value.codes == ("MANIFEST_UNKNOWN",)
    assert str(caught.value.message) == (
        "reg.example: GET /v2/a/b/manifests/v1: HTTP 404: MANIFEST_UNKNOWN: manifest unknown (x)"
    )
    client, _ = fake_client(lambda sent: answer(502, b"<html>bad gateway</html>"))
    with pytest.raises(RegistryError, match="HTTP 502: <html>bad gateway</html>"):
        client.get_manifest("a/b", "v1")


def test_insecure_registries_fall_back_to_http() -> None:
    def handler(sent: Sent) -> BufferedResponse:
        if sent.url.startswith("https://"):
            raise ConnectionFailed("TLS handshake failed")
        return answer(200)

    transport = FakeTransport(handler)
    client = RegistryClient(
        "reg.example", tls_verify=False, transport=transport, credentials=lambda: None
    )
    client.check_login()
    assert [s.url for s in transport.sent] == ["https://reg.example/v2/", "http://reg.example/v2/"]


# -- blobs that resume ----------------------------------------------------------------------------
BLOB = bytes(range(256)) * 4000
BLOB_DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()


def _descriptor(size: int = len(BLOB), digest: str = BLOB_DIGEST) -> Descriptor:
    return Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", digest, size)


def _blob_server(break_first: int | None, range_ok: bool = True) -> Handler:
    calls = [0]

    def handler(sent: Sent) -> BufferedResponse:
        calls[0] += 1
        wanted = sent.headers.get("Range")
        if wanted and range_ok:
            start = int(wanted.removeprefix("bytes=").rstrip("-"))
            rest = BLOB[start:]
            return answer(
                206,
                rest,
                Content_Length=str(len(rest)),
                Content_Range=f"bytes {start}-{len(BLOB) - 1}/{len(BLOB)}",
            )
        if calls[0] == 1 and break_first is not None:
            return StreamResponse(
                200, Headers({"Content-Length": str(len(BLOB))}), BLOB, break_first
            )
        return answer(200, BLOB, Content_Length=str(len(BLOB)))

    return handler


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    from imagetools.registry import client as module

    monkeypatch.setattr(module, "RESUME_BACKOFF", 0.0)


def test_a_broken_download_resumes_with_range(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    client, transport = fake_client(_blob_server(break_first=300_000))
    ingest = store.ingest(BLOB_DIGEST, len(BLOB))
    seen: list[int] = []
    assert client.fetch_blob("a", _descriptor(), ingest, seen.append) == 0
    ingest.commit()
    assert store.read_blob(BLOB_DIGEST) == BLOB
    assert [s.headers.get("Range") for s in transport.sent] == [None, "bytes=300000-"]
    assert seen[0] == 0 and seen[-1] == len(BLOB) and 300_000 in seen


def test_a_server_without_range_starts_over(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    client, transport = fake_client(_blob_server(break_first=300_000, range_ok=False))
    ingest = store.ingest(BLOB_DIGEST, len(BLOB))
    client.fetch_blob("a", _descriptor(), ingest)
    ingest.commit()
    assert store.read_blob(BLOB_DIGEST) == BLOB
    assert [s.headers.get("Range") for s in transport.sent] == [None, "bytes=300000-"]


def test_an_earlier_partial_file_is_continued(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    first = store.ingest(BLOB_DIGEST, len(BLOB))
    first.write(BLOB[:123_456])
    first.close()
    client, transport = fake_client(_blob_server(break_first=None))
    ingest = store.ingest(BLOB_DIGEST, len(BLOB))
    assert client.fetch_blob("a", _descriptor(), ingest) == 123_456
    ingest.commit()
    assert store.read_blob(BLOB_DIGEST) == BLOB
    assert [s.headers.get("Range") for s in transport.sent] == ["bytes=123456-"]


def test_sizes_that_disagree_are_refused_before_writing(tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    client, _ = fake_client(_blob_server(break_first=None))
    ingest = store.ingest(BLOB_DIGEST, len(BLOB) + 1)
    with pytest.raises(
        BlobMismatch, match=f"the registry has {len(BLOB)} bytes, the manifest says"
    ):
        client.fetch_blob("a", _descriptor(len(BLOB) + 1), ingest)
    assert ingest.offset == 0
    ingest.close()


def test_endless_breakage_gives_up_with_the_position(tmp_path: Path) -> None:
    store = Store(str(tmp_path))

    def handler(sent: Sent) -> BufferedResponse:
        start = int((sent.headers.get("Range") or "bytes=0-").removeprefix("bytes=").rstrip("-"))
        rest = BLOB[start:]
        headers = {"Content-Length": str(len(rest))}
        if start:
            headers["Content-Range"] = f"bytes {start}-{len(BLOB) - 1}/{len(BLOB)}"
        return StreamResponse(206 if start else 200, Headers(headers), rest, 1000)

    client, transport = fake_client(handler)
    ingest = store.ingest(BLOB_DIGEST, len(BLOB))
    with pytest.raises(ConnectionFailed, match=f"6 tries, stopped at byte 6000 of {len(BLOB)}"):
        client.fetch_blob("a", _descriptor(), ingest)
    ingest.close()
    assert len(transport.sent) == 6


# -- credentials and registries.conf --------------------------------------------------------------
@pytest.fixture
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    monkeypatch.delenv("REGISTRY_AUTH_FILE", raising=False)
    (tmp_path / "docker").mkdir()
    return tmp_path


def test_save_lookup_remove(config_home: Path) -> None:
    assert credentials.lookup("reg.example:5000") is None
    path = credentials.save("https://reg.example:5000/v2/", credentials.Credentials("u", "p:w"))
    assert path == f"{config_home}/config/pyrun/auth.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert json.loads(Path(path).read_text()) == {
        "auths": {"reg.example:5000": {"auth": base64.b64encode(b"u:p:w").decode()}}
    }
    assert credentials.lookup("reg.example:5000") == credentials.Credentials("u", "p:w")
    assert credentials.remove("reg.example:5000") is True
    assert credentials.remove("reg.example:5000") is False
    assert credentials.lookup("reg.example:5000") is None


def test_docker_config_spellings_and_helpers(config_home: Path) -> None:
    docker = config_home / "docker" / "config.json"
    hub = base64.b64encode(b"hubuser:hubpass").decode()
    docker.write_text(json.dumps({"auths": {"https://index.docker.io/v1/": {"auth": hub}}}))
    assert credentials.lookup("docker.io") == credentials.Credentials("hubuser", "hubpass")
    docker.write_text(json.dumps({"auths": {"r.example": {"username": "a", "password": "b"}}}))
    assert credentials.lookup("r.example") == credentials.Credentials("a", "b")
    docker.write_text(json.dumps({"auths": {"r.example": {"auth": "!!"}}}))
    with pytest.raises(AuthError, match=r"the auth entry of r\.example is not base64"):
        credentials.lookup("r.example")
    docker.write_text(json.dumps({"credsStore": "pyrun-absent-helper"}))
    with pytest.raises(AuthError, match="docker-credential-pyrun-absent-helper is not installed"):
        credentials.lookup("r.example")
    # docker login's identity tokens: with the user in "auth" (no password), or alone.
    user_only = base64.b64encode(b"alice:").decode()
    docker.write_text(
        json.dumps({"auths": {"r.example": {"auth": user_only, "identitytoken": "R1"}}})
    )
    assert credentials.lookup("r.example") == credentials.Credentials("alice", "", "R1")
    docker.write_text(json.dumps({"auths": {"r.example": {"identitytoken": "R2"}}}))
    assert credentials.lookup("r.example") == credentials.Credentials("<token>", "", "R2")
    assert "R2" not in repr(credentials.lookup("r.example"))
    # pyrun's own file wins over docker's.
    credentials.save("r.example", credentials.Credentials("own", "x"))
    assert credentials.lookup("r.example") == credentials.Credentials("own", "x")


def test_normalize_key() -> None:
    assert credentials.normalize_key("https://index.docker.io/v1/") == "docker.io"
    assert credentials.normalize_key("registry-1.docker.io") == "docker.io"
    assert credentials.normalize_key("http://host:5000/v2/") == "host:5000"


def test_registries_conf(tmp_path: Path) -> None:
    conf = tmp_path / "registries.conf"
    conf.write_text(
        '[[registry]]\nlocation = "127.0.0.1:5000"\ninsecure = true\n\n'
        '[[registry]]\nlocation = "*.lab.example"\ninsecure = true\n\n'
        '[[registry]]\nlocation = "secure.example"\n'
    )
    files = [str(tmp_path / "missing.conf"), str(conf)]
    assert is_insecure("127.0.0.1:5000", files)
    assert not is_insecure("127.0.0.1:5001", files)
    assert not is_insecure("localhost:5000", files)  # not insecure by default, unlike docker
    assert is_insecure("a.lab.example:443", files)
    assert not is_insecure("secure.example", files)
    conf.write_text('[[registry]]\nlocation = "x"\ninsecure = "yes"\n')
    with pytest.raises(RegistryError, match=r"registry\[0\]\.insecure: not a boolean"):
        is_insecure("x", files)
    conf.write_text("[[registry]\n")
    with pytest.raises(RegistryError, match=r"registries\.conf"):
        is_insecure("x", files)


def test_registries_conf_mirrors(tmp_path: Path) -> None:
    conf = tmp_path / "registries.conf"
    conf.write_text(
        '[[registry]]\nprefix = "docker.io"\nlocation = "docker.io"\n'
        '[[registry.mirror]]\nlocation = "m1.corp:5000/hub"\ninsecure = true\n'
        '[[registry.mirror]]\nlocation = "m2.corp"\npull-from-mirror = "digest-only"\n\n'
        '[[registry]]\nprefix = "docker.io/library"\nlocation = "docker.io/library"\n'
        '[[registry.mirror]]\nlocation = "official.corp/lib"\n\n'
        '[[registry]]\nprefix = "example.com/foo"\nlocation = "internal:5000/bar"\n'
        "insecure = true\n"
    )
    files = [str(conf)]

    def places(registry: str, repository: str, by_digest: bool = False) -> list[tuple[Any, ...]]:
        found = endpoints(registry, repository, by_digest, files)
        return [(e.registry, e.repository, e.insecure, e.mirror) for e in found]

    assert places("docker.io", "alice/app") == [
        ("m1.corp:5000", "hub/alice/app", True, True),
        ("docker.io", "alice/app", False, False),
    ]
    assert places("docker.io", "alice/app", by_digest=True) == [
        ("m1.corp:5000", "hub/alice/app", True, True),
        ("m2.corp", "alice/app", False, True),
        ("docker.io", "alice/app", False, False),
    ]
    # The longest prefix wins; a location elsewhere rewrites the name.
    assert places("docker.io", "library/busybox") == [
        ("official.corp", "lib/busybox", False, True),
        ("docker.io", "library/busybox", False, False),
    ]
    assert places("example.com", "foo/x/y") == [("internal:5000", "bar/x/y", True, False)]
    assert places("example.com", "foobar/x") == [("example.com", "foobar/x", False, False)]
    assert places("quay.io", "a/b") == [("quay.io", "a/b", False, False)]

    conf.write_text(
        '[[registry]]\nlocation = "r"\n[[registry.mirror]]\nlocation = "m"\n'
        'pull-from-mirror = "sometimes"\n'
    )
    with pytest.raises(
        RegistryError, match=r"registry\[0\]\.mirror\[0\]\.pull-from-mirror: one of"
    ):
        endpoints("r", "x", False, files)
