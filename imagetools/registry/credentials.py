"""Registry credentials: pyrun's own auth file, then docker's config.

Files (docker's config.json "auths" format, which podman and skopeo share)::

    $REGISTRY_AUTH_FILE, else $XDG_CONFIG_HOME/pyrun/auth.json (~/.config/pyrun/auth.json)
        {"auths": {"registry.example.com:5000": {"auth": base64("user:password")}}}
        written by `pyrun image login` (mode 0600, atomically), read first
    $DOCKER_CONFIG/config.json, else ~/.docker/config.json            (read only)
        "credHelpers": {"host": "NAME"}  → `docker-credential-NAME get` for that host
        "credsStore": "NAME"             → `docker-credential-NAME get` for every host
        "auths": {"host": {"auth": …}}   → plain entries (also "username"/"password")

Keys may be written as ``host``, ``https://host`` or ``https://host/v1/``; Docker Hub is
``docker.io`` in pyrun's file and ``https://index.docker.io/v1/`` in docker's. A helper that is
named but not installed is an error that says so; a helper that has no entry ("credentials not
found") means anonymous.

An entry with ``"identitytoken"`` (what ``docker login`` keeps for registries that hand out
OAuth2 refresh tokens), or a helper answering with the user ``<token>``, gives credentials
with no password: only a bearer token server accepts them (a refresh_token grant).
"""

from __future__ import annotations

import base64
import binascii
import json
import os

from imagetools.atomic import write_atomic
from imagetools.errors import AuthError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

DOCKER_HUB_KEYS = (
    "docker.io",
    "https://index.docker.io/v1/",
    "index.docker.io",
    "registry-1.docker.io",
    "https://registry-1.docker.io",
)


class Credentials:
    """A user and password, or an identity token (an OAuth2 refresh token, no password)."""

    __slots__ = ("identity_token", "password", "username")

    def __init__(self, username: str, password: str, identity_token: str = "") -> None:
        self.username = username
        self.password = password
        self.identity_token = identity_token

    def _key(self) -> tuple[str, str, str]:
        return (self.username, self.password, self.identity_token)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Credentials) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        if self.identity_token:
            return f"Credentials({self.username!r}, identity_token='***')"
        return f"Credentials({self.username!r}, '***')"

    def basic_header(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def auth_file() -> str:
    explicit = os.environ.get("REGISTRY_AUTH_FILE")
    if explicit:
        return explicit
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return f"{config}/pyrun/auth.json"


def docker_config_file() -> str:
    directory = os.environ.get("DOCKER_CONFIG") or os.path.expanduser("~/.docker")
    return f"{directory}/config.json"


def normalize_key(key: str) -> str:
    """``https://host:5000/v2/`` → ``host:5000``; Docker Hub's spellings → docker.io."""
    text = key.strip()
    for prefix in ("https://", "http://"):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    host = text.split("/", 1)[0]
    if key in DOCKER_HUB_KEYS or host in ("index.docker.io", "registry-1.docker.io"):
        return "docker.io"
    return host


def _read(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        raise AuthError(f"{path}: cannot read credentials: {err}") from None
    if not isinstance(data, dict):
        raise AuthError(f"{path}: not a JSON object")
    return data


def _entry(path: str, auths: Any, registry: str) -> Credentials | None:
    if not isinstance(auths, dict):
        return None
    for key, entry in auths.items():
        if normalize_key(key) != registry or not isinstance(entry, dict):
            continue
        user, password, given = "", "", False
        if entry.get("auth"):
            try:
                raw = base64.b64decode(entry["auth"], validate=True).decode()
            except (binascii.Error, UnicodeDecodeError, ValueError):
                raise AuthError(f"{path}: the auth entry of {key} is not base64") from None
            user, colon, password = raw.partition(":")
            if not colon:
                raise AuthError(f"{path}: the auth entry of {key} is not user:password")
            given = True
        elif entry.get("username"):
            user, password = str(entry["username"]), str(entry.get("password") or "")
            given = bool(password)
        token = entry.get("identitytoken")
        if token:
            # docker prefers the identity token; "auth" then holds the user and no password.
            return Credentials(user or "<token>", "", identity_token=str(token))
        if given:
            return Credentials(user, password)
    return None


def _helper(name: str, registry: str, path: str) -> Credentials | None:
    import shutil
    import subprocess

    program = f"docker-credential-{name}"
    binary = shutil.which(program)
    if binary is None:
        raise AuthError(
            f"{path} names the credential helper {name!r}, but {program} is not installed"
            f" (install it, or run `pyrun image login {registry}`)"
        )
    server = "https://index.docker.io/v1/" if registry == "docker.io" else registry
    try:
        result = subprocess.run(
            [binary, "get"], input=server.encode(), capture_output=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise AuthError(f"{program} get: {err}") from None
    output = (result.stdout or result.stderr).decode(errors="replace").strip()
    if result.returncode != 0:
        if "not found" in output.lower():
            return None
        raise AuthError(f"{program} get {server}: {output or f'exit {result.returncode}'}")
    try:
        answer = json.loads(output)
        username, secret = answer["Username"], answer["Secret"]
    except (ValueError, KeyError, TypeError):
        raise AuthError(f"{program} get {server}: unexpected answer") from None
    if username == "<token>":
        return Credentials("<token>", "", identity_token=str(secret))
    return Credentials(str(username), str(secret))


def lookup(registry: str) -> Credentials | None:
    """The credentials for ``registry`` (a host[:port], docker.io for Docker Hub), or None."""
    registry = normalize_key(registry)
    own = auth_file()
    found = _entry(own, _read(own).get("auths"), registry)
    if found is not None:
        return found
    path = docker_config_file()
    config = _read(path)
    helpers = config.get("credHelpers")
    if isinstance(helpers, dict):
        for key, name in helpers.items():
            if normalize_key(key) == registry and isinstance(name, str) and name:
                return _helper(name, registry, path)
    store = config.get("credsStore")
    if isinstance(store, str) and store:
        found = _helper(store, registry, path)
        if found is not None:
            return found
    return _entry(path, config.get("auths"), registry)


def save(registry: str, credentials: Credentials) -> str:
    """Store ``credentials`` in pyrun's auth file (0600, atomic); returns its path."""
    registry = normalize_key(registry)
    path = auth_file()
    config = _read(path)
    auths = config.get("auths")
    if not isinstance(auths, dict):
        auths = config["auths"] = {}
    for key in [k for k in auths if normalize_key(k) == registry]:
        del auths[key]
    raw = f"{credentials.username}:{credentials.password}".encode()
    auths[registry] = {"auth": base64.b64encode(raw).decode()}
    _write(path, config)
    return path


def remove(registry: str) -> bool:
    """Forget ``registry``'s credentials in pyrun's auth file; False if there were none."""
    registry = normalize_key(registry)
    path = auth_file()
    config = _read(path)
    auths = config.get("auths")
    if not isinstance(auths, dict):
        return False
    keys = [k for k in auths if normalize_key(k) == registry]
    if not keys:
        return False
    for key in keys:
        del auths[key]
    _write(path, config)
    return True


def _write(path: str, config: dict[str, Any]) -> None:
    directory = os.path.dirname(path) or "."
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        write_atomic(path, (json.dumps(config, indent=2) + "\n").encode(), 0o600, exact_mode=True)
    except OSError as err:
        raise AuthError(f"{path}: cannot write credentials: {err.strerror or err}") from None
