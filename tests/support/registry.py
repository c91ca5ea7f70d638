"""Real registries for the tests: Debian's ``docker-registry`` (distribution 2.8.2).

Three session fixtures, each a ``Registry`` started on 127.0.0.1 with a free port and its
storage in a temp dir, stopped by pid at the end of the session (plain HTTP, so clients need
``--tls-verify=false``):

- ``registry_open``:  no authentication.
- ``registry_basic``: htpasswd basic auth (bcrypt), user ``USERNAME`` / ``PASSWORD``.
- ``registry_token``: bearer tokens from ``TokenServer``, a stdlib http.server on 127.0.0.1
  that issues RS256 JWTs (x5c: a self-signed certificate the registry's ``auth.token``
  rootcertbundle trusts). ``USERNAME``/``PASSWORD`` get pull and push everywhere; anonymous
  callers get a token with no access; wrong credentials get 401 from the token server.

``Registry``: ``host`` ("127.0.0.1:PORT"), ``storage``, ``log`` (the registry's output,
access log included), ``creds`` ("user:pass" or None), ``token_server``, and
``copy_in(layout_ref, repo_tag, v2s2=False)`` which pushes an OCI layout image with skopeo.
``clear_skopeo_cache()`` removes skopeo's blob-info cache (only the file skopeo makes).
``start_registry(workdir, auth)`` is the context manager behind the fixtures, for a fresh one.

Register the fixtures with ``pytest_plugins = ("tests.support.registry",)`` (tests/conftest.py
does). Needs the test extras: bcrypt and cryptography (imported only when a fixture starts).
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

REGISTRY_BINARY = shutil.which("docker-registry") or "/usr/bin/docker-registry"
USERNAME = "pyrun"
PASSWORD = "s3cret-pass"
SERVICE = "pyrun-test-registry"
ISSUER = "pyrun-test-issuer"
SKOPEO_CACHE = "/var/lib/containers/cache/blob-info-cache-v1.boltdb"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clear_skopeo_cache() -> None:
    """skopeo remembers which blobs it saw where (a bolt db); runs that must really transfer
    start without it. Only that file, which skopeo creates, is removed."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(SKOPEO_CACHE)


# -- the token server ---------------------------------------------------------------------------
def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer:
    """Issues registry tokens; ``requests`` records (username or None, [scopes]) per call."""

    def __init__(self, workdir: Path, users: dict[str, str]) -> None:
        import datetime

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        self.users = users
        self.requests: list[tuple[str | None, list[str]]] = []
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pyrun test token issuer")])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )
        self.cert_path = workdir / "token-cert.pem"
        self.cert_path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self._cert_der = self.cert.public_bytes(serialization.Encoding.DER)
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                server._handle(self)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.realm = f"http://127.0.0.1:{self.port}/token"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def _handle(self, handler: http.server.BaseHTTPRequestHandler) -> None:
        url = urllib.parse.urlsplit(handler.path)
        query = urllib.parse.parse_qs(url.query)
        scopes = [s for value in query.get("scope", []) for s in value.split()]
        user = None
        header = handler.headers.get("Authorization", "")
        if header.startswith("Basic "):
            raw = base64.b64decode(header[6:]).decode()
            name, _, password = raw.partition(":")
            if self.users.get(name) != password:
                self.requests.append((name, scopes))
                handler.send_response(401)
                handler.send_header("Content-Type", "application/json")
                body = b'{"details":"invalid username or password"}'
                handler.send_header("Content-Length", str(len(body)))
                handler.end_headers()
                handler.wfile.write(body)
                return
            user = name
        self.requests.append((user, scopes))
        access = []
        if user is not None:
            for scope in scopes:
                kind, _, rest = scope.partition(":")
                repo, _, actions = rest.rpartition(":")
                access.append({"type": kind, "name": repo, "actions": actions.split(",")})
        token = self.issue(user or "", access)
        body = json.dumps({"token": token, "access_token": token, "expires_in": 300}).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def issue(self, subject: str, access: list[dict[str, Any]]) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(self._cert_der).decode()]}
        claims = {
            "iss": ISSUER,
            "sub": subject,
            "aud": SERVICE,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": uuid.uuid4().hex,
            "access": access,
        }
        signing_input = (
            f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        )
        signature = self.key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# -- the registry ---------------------------------------------------------------------------------
@dataclass
class Registry:
    host: str
    storage: Path
    log: Path
    process: subprocess.Popen[bytes]
    creds: str | None = None
    token_server: TokenServer | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def copy_in(
        self, layout_ref: str, repo_tag: str, v2s2: bool = False, all: bool = False
    ) -> None:
        """``skopeo copy oci:<layout_ref> docker://<host>/<repo_tag>`` (its blob cache cleared
        first, so the registry really receives every blob)."""
        clear_skopeo_cache()
        argv = ["skopeo", "copy", "--quiet", "--dest-tls-verify=false"]
        if self.creds:
            argv += ["--dest-creds", self.creds]
        if v2s2:
            argv += ["--format", "v2s2"]
        if all:
            argv += ["--all"]
        argv += [f"oci:{layout_ref}", f"docker://{self.host}/{repo_tag}"]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{argv}: {result.stderr.strip()}")

    def inspect(self, repo_ref: str, raw: bool = False) -> Any:
        """``skopeo inspect`` of an image in this registry (``--raw``: the manifest bytes)."""
        argv = ["skopeo", "inspect", "--tls-verify=false"]
        if self.creds:
            argv += ["--creds", self.creds]
        if raw:
            argv += ["--raw"]
        argv += [f"docker://{self.host}/{repo_ref}"]
        result = subprocess.run(argv, capture_output=True, timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"{argv}: {result.stderr.decode().strip()}")
        return result.stdout if raw else json.loads(result.stdout)

    def access_log(self) -> list[str]:
        """The registry's access-log lines ("METHOD /path HTTP/1.1" status ...)."""
        return [
            line for line in self.log.read_text().splitlines() if '" ' in line and "HTTP/1" in line
        ]


def _config(workdir: Path, port: int, auth: dict[str, Any] | None) -> Path:
    config: dict[str, Any] = {
        "version": 0.1,
        "log": {"level": "info", "accesslog": {"disabled": False}},
        "storage": {
            "filesystem": {"rootdirectory": str(workdir / "storage")},
            "delete": {"enabled": True},
            "maintenance": {"uploadpurging": {"enabled": False}},
        },
        "http": {"addr": f"127.0.0.1:{port}", "secret": uuid.uuid4().hex},
    }
    if auth:
        config["auth"] = auth
    path = workdir / "config.yml"
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    return path


def _wait_ready(host: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {log.read_text()[-2000:]}")
        try:
            urllib.request.urlopen(f"http://{host}/v2/", timeout=1)
            return
        except urllib.error.HTTPError:
            return  # 401: up, and asking for credentials
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"docker-registry did not start: {log.read_text()[-2000:]}")


@contextlib.contextmanager
def start_registry(workdir: Path, auth: str | None = None) -> Iterator[Registry]:
    """A docker-registry in ``workdir``: ``auth`` None, "htpasswd" or "token"."""
    if not os.path.exists(REGISTRY_BINARY):
        pytest.fail("docker-registry is missing: run `make setup`")
    workdir.mkdir(parents=True, exist_ok=True)
    token_server = None
    settings: dict[str, Any] | None = None
    if auth == "htpasswd":
        import bcrypt

        hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=5)).decode()
        (workdir / "htpasswd").write_text(f"{USERNAME}:{hashed}\n")
        settings = {"htpasswd": {"realm": "pyrun-test", "path": str(workdir / "htpasswd")}}
    elif auth == "token":
        token_server = TokenServer(workdir, {USERNAME: PASSWORD})
        settings = {
            "token": {
                "realm": token_server.realm,
                "service": SERVICE,
                "issuer": ISSUER,
                "rootcertbundle": str(token_server.cert_path),
            }
        }
    elif auth is not None:
        raise ValueError(f"unknown auth {auth!r}")
    log = workdir / "registry.log"
    process = None
    try:
        for _ in range(3):
            port = free_port()
            config = _config(workdir, port, settings)
            with open(log, "wb") as out:
                process = subprocess.Popen(
                    [REGISTRY_BINARY, "serve", str(config)],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            host = f"127.0.0.1:{port}"
            try:
                _wait_ready(host, process, log)
                break
            except RuntimeError:
                process.kill()
                process.wait()
                if "address already in use" not in log.read_text():
                    raise
        assert process is not None
        creds = f"{USERNAME}:{PASSWORD}" if auth else None
        yield Registry(host, workdir / "storage", log, process, creds, token_server)
    finally:
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if token_server is not None:
            token_server.close()


@pytest.fixture(scope="session")
def registry_open(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with start_registry(tmp_path_factory.mktemp("registry-open")) as registry:
        yield registry


@pytest.fixture(scope="session")
def registry_basic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with start_registry(tmp_path_factory.mktemp("registry-basic"), "htpasswd") as registry:
        yield registry


@pytest.fixture(scope="session")
def registry_token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with start_registry(tmp_path_factory.mktemp("registry-token"), "token") as registry:
        yield registry
