"""registryd with authentication, driven by real clients: skopeo, podman and ``pyrun image``.

Two registryd processes per module, one per mode, with the same users and rules:

- ``basic``: htpasswd only; clients send ``Authorization: Basic`` on every request.
- ``token``: htpasswd + the built-in token endpoint; clients fetch JWTs from ``/token``.

Users (made with ``registryd htpasswd``): alice, bob, admin. Rules (a union of grants)::

    alice  alice/*   pull push delete      alice  public/*  push delete
    bob    bob/*     pull push             *      alice/*   pull
    admin  *         pull push delete      anonymous public/* pull

So alice owns alice/*, bob may only pull it, anonymous clients pull public/* and nothing else,
only admin may read the catalog (pull on every repository). Each test asserts what a client
sees: exit codes and messages of the tools, HTTP statuses, challenges and bodies.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.images import Image, build_busybox_image, missing_tools
from tests.support.imagecli import image_cli, image_env
from tests.support.registry import clear_skopeo_cache
from tests.support.registryd import REGISTRYD, Registryd, basic_auth

USERS = {"alice": "wonderland", "bob": "builder", "admin": "root-of-all"}
ACCESS = [
    {"account": "alice", "repository": "alice/*", "actions": ["*"]},
    {"account": "alice", "repository": "public/*", "actions": ["push", "delete"]},
    {"account": "bob", "repository": "bob/*", "actions": ["pull", "push"]},
    {"account": "*", "repository": "alice/*", "actions": ["pull"]},
    {"account": "admin", "repository": "*", "actions": ["*"]},
    {"account": "anonymous", "repository": "public/*", "actions": ["pull"]},
]
MODES = ("basic", "token")


@dataclass
class Server:
    mode: str
    htpasswd: Path
    daemon: Registryd  # tests/support/registryd.py: the process, its port and log

    @property
    def host(self) -> str:
        return self.daemon.host

    @property
    def url(self) -> str:
        return self.daemon.url

    @property
    def root(self) -> Path:
        return self.daemon.root

    def ref(self, repository: str) -> str:
        return f"docker://{self.host}/{repository}"


def set_password(htpasswd: Path, user: str, password: str) -> None:
    result = subprocess.run(
        [REGISTRYD, "htpasswd", str(htpasswd), user, "--cost", "4"],
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result


def auth_config(mode: str, htpasswd: Path) -> dict[str, Any]:
    config: dict[str, Any] = {"htpasswd": {"path": str(htpasswd)}, "access": ACCESS}
    if mode == "token":
        config["token"] = {"service": "registryd-test"}
    return config


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Image:
    missing = [t for t in [*missing_tools(), "skopeo"] if shutil.which(t) is None]
    if missing:
        pytest.fail(f"missing {missing}: run `make setup`")
    return build_busybox_image(tmp_path_factory.mktemp("auth-image"))


@pytest.fixture(scope="module")
def htpasswd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("auth-users") / "htpasswd"
    for user, password in USERS.items():
        set_password(path, user, password)
    return path


@pytest.fixture(scope="module", params=MODES)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, htpasswd: Path
) -> Iterator[Server]:
    """registryd in this mode on a port of its own, stopped (exit 0 asserted) at the end."""
    mode = request.param
    config = yaml.safe_dump({"auth": auth_config(mode, htpasswd)})
    daemon = Registryd(tmp_path_factory.mktemp(f"registryd-{mode}"), config).start()
    try:
        yield Server(mode, htpasswd, daemon)
    finally:
        daemon.close()


# -- clients ------------------------------------------------------------------------------------


def client_env(tmp_path: Path) -> dict[str, str]:
    """No credentials of the machine: an empty auth file, a private HOME."""
    env = image_env(tmp_path)
    env["REGISTRY_AUTH_FILE"] = str(tmp_path / "auth.json")
    return env


def skopeo(
    env: dict[str, str], *args: str, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    clear_skopeo_cache()  # every copy really talks to the registry (mounts and all)
    return subprocess.run(
        ["skopeo", *args], capture_output=True, text=True, env=env, timeout=timeout
    )


def creds(user: str) -> str:
    return f"{user}:{USERS[user]}"


def push(
    server: Server, image: Image, env: dict[str, str], repository: str, user: str | None
) -> subprocess.CompletedProcess[str]:
    args = ["copy", "-q", "--dest-tls-verify=false"]
    if user is not None:
        args += ["--dest-creds", creds(user)]
    return skopeo(env, *args, f"oci:{image.layout}:latest", server.ref(repository))


def tags(server: Server, env: dict[str, str], repository: str) -> list[str]:
    result = skopeo(
        env, "list-tags", "--tls-verify=false", "--creds", creds("admin"), server.ref(repository)
    )
    if result.returncode != 0:
        return []
    found: list[str] = json.loads(result.stdout)["Tags"]
    return found


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any


def http(
    method: str, url: str, headers: dict[str, str] | None = None, data: bytes | None = None
) -> Answer:
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, out, raw = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as err:
        status, out, raw = err.code, dict(err.headers), err.read()
    body = (
        json.loads(raw)
        if raw and out.get("Content-Type", "").startswith("application/json")
        else raw
    )
    return Answer(status, out, body)


def basic_header(user: str, password: str | None = None) -> dict[str, str]:
    return basic_auth(user, USERS[user] if password is None else password)


def token(server: Server, user: str | None, *scopes: str) -> str:
    query = urllib.parse.urlencode([("service", "registryd-test"), *(("scope", s) for s in scopes)])
    answer = http("GET", f"{server.url}/token?{query}", basic_header(user) if user else {})
    assert answer.status == 200, answer
    value: str = answer.body["token"]
    return value


def credentials(server: Server, user: str | None, *scopes: str) -> dict[str, str]:
    """What a client sends for ``user`` in this mode (Basic, or a token for ``scopes``)."""
    if server.mode == "basic":
        return basic_header(user) if user else {}
    return {"Authorization": f"Bearer {token(server, user, *scopes)}"}


def error_code(answer: Answer) -> str:
    code: str = answer.body["errors"][0]["code"]
    return code


# -- the tests ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pushed(server: Server, image: Image, tmp_path_factory: pytest.TempPathFactory) -> Server:
    """alice/app:v1 and public/busybox:v1, pushed by alice with skopeo."""
    env = client_env(tmp_path_factory.mktemp("pusher"))
    for repository in ("alice/app:v1", "public/busybox:v1"):
        result = push(server, image, env, repository, "alice")
        assert result.returncode == 0, result
    return server


def test_base_endpoint_asks_for_credentials(server: Server) -> None:
    answer = http("GET", f"{server.url}/v2/")
    assert answer.status == 401
    assert error_code(answer) == "UNAUTHORIZED"
    if server.mode == "basic":
        assert answer.headers["WWW-Authenticate"] == 'Basic realm="registryd"'
    else:
        assert answer.headers["WWW-Authenticate"] == (
            f'Bearer realm="{server.url}/token",service="registryd-test"'
        )
    assert http("GET", f"{server.url}/v2/", credentials(server, "bob")).status == 200


def test_skopeo_push_inspect_list_and_pull_with_credentials(
    pushed: Server, image: Image, tmp_path: Path
) -> None:
    env = client_env(tmp_path)
    result = skopeo(
        env, "inspect", "--tls-verify=false", "--creds", creds("bob"), pushed.ref("alice/app:v1")
    )
    assert result.returncode == 0, result
    assert json.loads(result.stdout)["Digest"] == image.manifest
    result = skopeo(
        env, "list-tags", "--tls-verify=false", "--creds", creds("bob"), pushed.ref("alice/app")
    )
    assert result.returncode == 0, result
    assert json.loads(result.stdout)["Tags"] == ["v1"]
    result = skopeo(
        env,
        "copy",
        "-q",
        "--src-tls-verify=false",
        "--src-creds",
        creds("bob"),
        pushed.ref("alice/app:v1"),
        f"oci:{tmp_path / 'pulled'}:v1",
    )
    assert result.returncode == 0, result
    index = json.loads((tmp_path / "pulled" / "index.json").read_text())
    assert index["manifests"][0]["digest"] == image.manifest


def test_skopeo_without_credentials_is_refused(
    pushed: Server, image: Image, tmp_path: Path
) -> None:
    env = client_env(tmp_path)
    result = push(pushed, image, env, "alice/app:anonymous", None)
    assert result.returncode != 0
    assert "unauthorized" in result.stderr or "denied" in result.stderr, result.stderr
    result = skopeo(env, "inspect", "--tls-verify=false", pushed.ref("alice/app:v1"))
    assert result.returncode != 0
    assert "unauthorized" in result.stderr or "denied" in result.stderr, result.stderr
    assert tags(pushed, env, "alice/app") == ["v1"]


def test_wrong_password_is_refused_like_an_unknown_user(
    pushed: Server, image: Image, tmp_path: Path
) -> None:
    env = client_env(tmp_path)
    outputs = []
    for user in ("alice", "mallory"):
        result = skopeo(
            env,
            "inspect",
            "--tls-verify=false",
            "--creds",
            f"{user}:not-the-password",
            pushed.ref("public/busybox:v1"),
        )
        assert result.returncode != 0
        assert "invalid" in result.stderr, result.stderr
        outputs.append(result.stderr.split("msg=", 1)[-1].replace(user, "USER"))
    assert outputs[0] == outputs[1]


def test_pull_only_account_cannot_push(pushed: Server, image: Image, tmp_path: Path) -> None:
    env = client_env(tmp_path)
    result = push(pushed, image, env, "alice/app:from-bob", "bob")
    assert result.returncode != 0
    assert "denied" in result.stderr, result.stderr
    assert tags(pushed, env, "alice/app") == ["v1"]
    result = push(pushed, image, env, "bob/own:v1", "bob")  # bob's own namespace
    assert result.returncode == 0, result
    assert tags(pushed, env, "bob/own") == ["v1"]


def test_anonymous_pulls_public_only(pushed: Server, image: Image, tmp_path: Path) -> None:
    env = client_env(tmp_path)
    result = skopeo(env, "inspect", "--tls-verify=false", pushed.ref("public/busybox:v1"))
    assert result.returncode == 0, result
    assert json.loads(result.stdout)["Digest"] == image.manifest
    result = skopeo(
        env,
        "copy",
        "-q",
        "--src-tls-verify=false",
        pushed.ref("public/busybox:v1"),
        f"oci:{tmp_path / 'anon'}:v1",
    )
    assert result.returncode == 0, result
    result = push(pushed, image, env, "public/busybox:anon", None)
    assert result.returncode != 0


def test_delete_needs_the_delete_action(pushed: Server, image: Image, tmp_path: Path) -> None:
    env = client_env(tmp_path)
    assert push(pushed, image, env, "alice/doomed:v1", "alice").returncode == 0
    result = skopeo(
        env, "delete", "--tls-verify=false", "--creds", creds("bob"), pushed.ref("alice/doomed:v1")
    )
    assert result.returncode != 0 and "denied" in result.stderr, result
    assert tags(pushed, env, "alice/doomed") == ["v1"]
    result = skopeo(
        env,
        "delete",
        "--tls-verify=false",
        "--creds",
        creds("alice"),
        pushed.ref("alice/doomed:v1"),
    )
    assert result.returncode == 0, result
    assert tags(pushed, env, "alice/doomed") == []


def test_catalog_needs_pull_on_everything(pushed: Server) -> None:
    url = f"{pushed.url}/v2/_catalog"
    admin = http("GET", url, credentials(pushed, "admin", "registry:catalog:*"))
    assert admin.status == 200
    assert {"alice/app", "public/busybox"} <= set(admin.body["repositories"])
    bob = http("GET", url, credentials(pushed, "bob", "registry:catalog:*"))
    assert (bob.status, error_code(bob)) == (403, "DENIED")
    anonymous = http("GET", url)
    assert anonymous.status == 401 and "WWW-Authenticate" in anonymous.headers
    if pushed.mode == "token":
        assert anonymous.headers["WWW-Authenticate"].endswith(',scope="registry:catalog:*"')


def test_search_lists_what_the_account_may_pull(pushed: Server) -> None:
    # In token mode too: a listing follows the account's rules (Authorizer.may()), not the
    # scope of the token the request carries.
    def names(user: str | None) -> set[str]:
        answer = http("GET", f"{pushed.url}/v1/search?q=&n=100", credentials(pushed, user))
        assert answer.status == 200, answer
        return {r["name"] for r in answer.body["results"]}

    assert {"alice/app", "public/busybox"} <= names("bob")
    assert names(None) == {"public/busybox"}


def test_mount_from_a_repository_one_may_not_pull_falls_back_to_upload(
    pushed: Server, image: Image, tmp_path: Path
) -> None:
    env = client_env(tmp_path)
    assert push(pushed, image, env, "admin-only/secret:v1", "admin").returncode == 0
    digest = image.config
    for source, mounted in (("admin-only/secret", False), ("alice/app", True)):
        query = urllib.parse.urlencode({"mount": digest, "from": source})
        headers = credentials(
            pushed, "bob", "repository:bob/mounted:pull,push", f"repository:{source}:pull"
        )
        answer = http("POST", f"{pushed.url}/v2/bob/mounted/blobs/uploads/?{query}", headers, b"")
        assert answer.status == (201 if mounted else 202), (source, answer)
        if not mounted:  # an upload session instead: cancel it
            location = urllib.parse.urljoin(pushed.url, answer.headers["Location"])
            assert http("DELETE", location, headers).status == 204


@pytest.mark.parametrize("server", ["token"], indirect=True)
def test_token_endpoint_and_token_checks(pushed: Server) -> None:
    url = f"{pushed.url}/v2/alice/app/tags/list"
    challenge = f'Bearer realm="{pushed.url}/token",service="registryd-test"'
    # wrong credentials at the token endpoint: 401 with the Basic challenge
    refused = http("GET", f"{pushed.url}/token?service=registryd-test", basic_header("bob", "x"))
    assert (refused.status, error_code(refused)) == (401, "UNAUTHORIZED")
    assert refused.headers["WWW-Authenticate"] == 'Basic realm="registryd"'
    # a token for something else: 401 naming the scope needed, insufficient_scope
    other = token(pushed, "bob", "repository:bob/own:pull")
    answer = http("GET", url, {"Authorization": f"Bearer {other}"})
    assert answer.status == 401
    assert answer.headers["WWW-Authenticate"] == (
        challenge + ',scope="repository:alice/app:pull",error="insufficient_scope"'
    )
    # the right scope
    good = token(pushed, "bob", "repository:alice/app:pull")
    assert http("GET", url, {"Authorization": f"Bearer {good}"}).body["tags"] == ["v1"]
    # bob asks for push on alice/app: the token carries pull only; pushing is DENIED
    limited = token(pushed, "bob", "repository:alice/app:pull,push")
    start = http(
        "POST",
        f"{pushed.url}/v2/alice/app/blobs/uploads/",
        {"Authorization": f"Bearer {limited}"},
        b"",
    )
    assert (start.status, error_code(start)) == (403, "DENIED")
    # an expired token, signed with the registry's own key: refused as invalid
    from registryd.auth import Access
    from registryd.auth.tokens import TokenIssuer, load_key

    key = load_key(str(pushed.root / "_auth" / "token-key.pem"))
    past = time.time() - 3600
    stale = TokenIssuer(key, "registryd", "registryd-test", 300, clock=lambda: past).issue(
        "bob", [Access("repository", "alice/app", frozenset({"pull"}))]
    )
    answer = http("GET", url, {"Authorization": f"Bearer {stale.token}"})
    assert answer.status == 401 and answer.body["errors"][0]["message"] == "token expired"
    assert answer.headers["WWW-Authenticate"].endswith('error="invalid_token"')
    # a tampered token: refused
    head, payload, signature = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["access"][0]["actions"] = ["pull", "push", "delete"]
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    forged = f"{head}.{forged_payload}.{signature}"
    assert http("GET", url, {"Authorization": f"Bearer {forged}"}).status == 401
    # OAuth2 POST: password grant with a refresh token, then a refresh grant
    form = {
        "grant_type": "password",
        "username": "bob",
        "password": USERS["bob"],
        "service": "registryd-test",
        "client_id": "tests",
        "access_type": "offline",
        "scope": "repository:alice/app:pull",
    }
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    granted = http("POST", f"{pushed.url}/token", headers, urllib.parse.urlencode(form).encode())
    assert granted.status == 200 and granted.body["scope"] == "repository:alice/app:pull"
    refresh = {
        "grant_type": "refresh_token",
        "refresh_token": granted.body["refresh_token"],
        "service": "registryd-test",
        "client_id": "tests",
        "scope": "repository:alice/app:pull",
    }
    again = http("POST", f"{pushed.url}/token", headers, urllib.parse.urlencode(refresh).encode())
    assert again.status == 200
    assert http("GET", url, {"Authorization": f"Bearer {again.body['access_token']}"}).status == 200


@pytest.mark.parametrize("server", ["basic"], indirect=True)  # both modes read it alike
def test_htpasswd_changes_apply_without_restart(pushed: Server, tmp_path: Path) -> None:
    copy = tmp_path / "htpasswd"
    shutil.copy(pushed.htpasswd, copy)
    # the module's servers share the file: change a copy, then swap it in atomically
    set_password(copy, "carol", "new-user")
    os.replace(copy, pushed.htpasswd)
    answer = http("GET", f"{pushed.url}/v2/", basic_header("alice"))
    assert answer.status == 200
    carol = {"Authorization": "Basic " + base64.b64encode(b"carol:new-user").decode()}
    assert http("GET", f"{pushed.url}/v2/", carol).status == 200
    # carol has no rule of her own: what "*" grants (pull alice/*), nothing more
    assert http("GET", f"{pushed.url}/v2/alice/app/tags/list", carol).status == 200
    denied = http("GET", f"{pushed.url}/v2/bob/own/tags/list", carol)
    assert (denied.status, error_code(denied)) == (403, "DENIED")


# -- podman -------------------------------------------------------------------------------------


class Podman:
    """podman with storage (vfs), config and auth file of its own under ``base``."""

    def __init__(self, base: Path) -> None:
        self.base = base
        # podman refuses a runroot longer than 50 characters: pytest's paths are longer
        self.runroot = Path(tempfile.mkdtemp(prefix="registryd-auth-"))
        (base / "tmp").mkdir(parents=True)
        (base / "storage.conf").write_text(
            f'[storage]\ndriver = "vfs"\ngraphroot = "{base}/root"\nrunroot = "{self.runroot}"\n'
        )
        (base / "containers.conf").write_text(
            '[engine]\nevents_logger = "none"\ncgroup_manager = "cgroupfs"\n'
        )
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("CONTAINER", "PODMAN"))},
            "CONTAINERS_CONF": str(base / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(base / "storage.conf"),
            "REGISTRY_AUTH_FILE": str(base / "auth.json"),
            "TMPDIR": str(base / "tmp"),
            "HOME": str(base),
        }

    def __call__(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        argv = [
            "podman",
            "--root",
            str(self.base / "root"),
            "--runroot",
            str(self.runroot),
        ]
        return subprocess.run(
            [*argv, *args], input=input, capture_output=True, text=True, env=self.env, timeout=180
        )


@pytest.fixture
def podman(tmp_path: Path) -> Iterator[Podman]:
    if shutil.which("podman") is None:
        pytest.fail("podman is missing: run `make setup`")
    engine = Podman(tmp_path / "podman")
    try:
        yield engine
    finally:
        engine("system", "reset", "-f")
        shutil.rmtree(engine.runroot, ignore_errors=True)


def test_podman_login_push_pull(pushed: Server, podman: Podman) -> None:
    host = pushed.host
    login = podman(
        "login", "--tls-verify=false", "-u", "alice", "--password-stdin", host, input=USERS["alice"]
    )
    assert login.returncode == 0 and "Login Succeeded" in login.stdout, login
    assert podman("pull", "-q", "--tls-verify=false", f"{host}/alice/app:v1").returncode == 0
    assert podman("tag", f"{host}/alice/app:v1", f"{host}/alice/by-podman:v1").returncode == 0
    result = podman("push", "-q", "--tls-verify=false", f"{host}/alice/by-podman:v1")
    assert result.returncode == 0, result
    assert podman("rmi", "-a", "-f").returncode == 0
    result = podman("pull", "-q", "--tls-verify=false", f"{host}/alice/by-podman:v1")
    assert result.returncode == 0, result
    assert podman("logout", host).returncode == 0

    login = podman(
        "login", "--tls-verify=false", "-u", "bob", "--password-stdin", host, input=USERS["bob"]
    )
    assert login.returncode == 0, login
    assert podman("tag", f"{host}/alice/by-podman:v1", f"{host}/alice/by-bob:v1").returncode == 0
    result = podman("push", "-q", "--tls-verify=false", f"{host}/alice/by-bob:v1")
    assert result.returncode != 0 and "denied" in result.stderr, result

    wrong = podman(
        "login", "--tls-verify=false", "-u", "bob", "--password-stdin", host, input="nope"
    )
    assert wrong.returncode != 0 and "invalid username/password" in wrong.stderr, wrong


# -- pyrun image --------------------------------------------------------------------------------


def test_pyrun_image_login_pull_push(pushed: Server, tmp_path: Path) -> None:
    env = image_env(tmp_path)
    store = tmp_path / "store"
    host = pushed.host

    def pyrun(*args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        return image_cli(store, *args, env=env, input=input)

    result = pyrun("pull", "-q", "--tls-verify=false", f"{host}/alice/app:v1")
    assert result.returncode != 0, result
    assert "requires authentication" in result.stderr, result
    login = pyrun(
        "login", "--tls-verify=false", "-u", "bob", "--password-stdin", host, input=USERS["bob"]
    )
    assert login.returncode == 0 and "Login Succeeded" in login.stdout, login
    result = pyrun("pull", "-q", "--tls-verify=false", f"{host}/alice/app:v1")
    assert result.returncode == 0, result
    result = pyrun(
        "push", "-q", "--tls-verify=false", f"{host}/alice/app:v1", f"{host}/alice/by-pyrun:v1"
    )
    assert result.returncode != 0 and "DENIED" in result.stderr, result
    login = pyrun(
        "login", "--tls-verify=false", "-u", "alice", "--password-stdin", host, input=USERS["alice"]
    )
    assert login.returncode == 0, login
    result = pyrun(
        "push", "-q", "--tls-verify=false", f"{host}/alice/app:v1", f"{host}/alice/by-pyrun:v1"
    )
    assert result.returncode == 0, result
    wrong = pyrun(
        "login", "--tls-verify=false", "-u", "alice", "--password-stdin", host, input="nope"
    )
    assert wrong.returncode != 0 and "refused the credentials" in wrong.stderr, wrong


@pytest.mark.parametrize("server", ["token"], indirect=True)
def test_pyrun_pulls_with_docker_logins_identity_token(pushed: Server, tmp_path: Path) -> None:
    """What `docker login` keeps for a registry that gives refresh tokens: the user and an
    identitytoken, no password. pyrun trades it for access tokens (OAuth2 refresh grant)."""
    query = urllib.parse.urlencode(
        {"service": "registryd-test", "offline_token": "true", "client_id": "docker"}
    )
    issued = http("GET", f"{pushed.url}/token?{query}", basic_header("bob"))
    assert issued.status == 200 and issued.body["refresh_token"]
    env = image_env(tmp_path)
    docker_config = Path(env["DOCKER_CONFIG"]) / "config.json"
    entry = {"auth": base64.b64encode(b"bob:").decode(), "identitytoken": ""}
    store = tmp_path / "store"
    ref = f"{pushed.host}/alice/app:v1"

    entry["identitytoken"] = issued.body["refresh_token"]
    docker_config.write_text(json.dumps({"auths": {pushed.host: entry}}))
    grants = pushed.daemon.log().count('"POST /token" 200')
    result = image_cli(store, "pull", "-q", "--tls-verify=false", ref, env=env)
    assert result.returncode == 0, result
    assert pushed.daemon.log().count('"POST /token" 200') == grants + 1

    entry["identitytoken"] = issued.body["refresh_token"][:-4] + "AAAA"
    docker_config.write_text(json.dumps({"auths": {pushed.host: entry}}))
    result = image_cli(tmp_path / "other", "pull", "-q", "--tls-verify=false", ref, env=env)
    assert result.returncode == 1
    assert "refused the identity token (401): run `pyrun image login" in result.stderr


def test_pyrun_search_sends_the_login_it_has(pushed: Server, tmp_path: Path) -> None:
    """registryd answers an anonymous search with public repositories only; logged in, pyrun
    search shows what the account may pull (docker search sends its login too)."""
    env = image_env(tmp_path)
    store = tmp_path / "store"
    term = f"{pushed.host}/"

    def found() -> set[str]:
        result = image_cli(store, "search", "--tls-verify=false", term, env=env)
        assert result.returncode == 0, result
        return {line.split()[0] for line in result.stdout.splitlines()[1:]}

    assert found() == {f"{pushed.host}/public/busybox"}
    login = image_cli(
        store, "login", "--tls-verify=false", "-u", "bob", "--password-stdin", pushed.host,
        input=USERS["bob"], env=env,
    )  # fmt: skip
    assert login.returncode == 0, login
    assert {f"{pushed.host}/alice/app", f"{pushed.host}/public/busybox"} <= found()


# -- start-up -----------------------------------------------------------------------------------


def test_a_non_bcrypt_htpasswd_stops_the_start(tmp_path: Path) -> None:
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text("alice:$apr1$salt$hashhashhashhashhash\n")
    config = tmp_path / "registryd.yaml"
    root = tmp_path / "root"
    config.write_text(
        yaml.safe_dump(
            {
                "listen": "127.0.0.1:0",
                "root": str(root),
                "auth": {"htpasswd": {"path": str(htpasswd)}},
            }
        )
    )
    result = subprocess.run(
        [REGISTRYD, "serve", "--config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert f"{htpasswd} line 1: user 'alice' has a MD5 ($apr1$) hash" in result.stderr
    assert not root.exists()
