"""Authentication against real docker-registries: htpasswd basic auth and bearer tokens from a
token server the tests run; `pyrun image login/logout`; docker's config.json (plain entries and
credential helpers). Good and bad credentials, with the errors a user sees."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.support.imagecli import image_cli, stored_names
from tests.support.oci_images import OCIImages
from tests.support.registry import PASSWORD, USERNAME, Registry


@pytest.fixture(scope="module")
def basic(registry_basic: Registry, oci_images: OCIImages) -> Registry:
    registry_basic.copy_in(oci_images.ref("latest"), "busybox:latest")
    return registry_basic


@pytest.fixture(scope="module")
def token(registry_token: Registry, oci_images: OCIImages) -> Registry:
    registry_token.copy_in(oci_images.ref("latest"), "busybox:latest")
    return registry_token


def test_basic_auth_login_pull_logout(
    basic: Registry, oci_images: OCIImages, tmp_path: Path, env: dict[str, str]
) -> None:
    root = tmp_path / "store"
    host = basic.host
    anonymous = image_cli(root, "pull", "--tls-verify=false", f"{host}/busybox", env=env)
    assert anonymous.returncode == 1
    assert anonymous.stderr == (
        f"pyrun: {host} requires authentication: run `pyrun image login {host}`\n"
    )

    wrong = image_cli(
        root, "login", "--tls-verify=false", host, "-u", USERNAME, "-p", "nope", env=env
    )
    assert wrong.returncode == 1
    assert wrong.stderr == f"pyrun: {host} refused the credentials of user '{USERNAME}'\n"
    auth_file = Path(env["XDG_CONFIG_HOME"]) / "pyrun" / "auth.json"
    assert not auth_file.exists()

    good = image_cli(
        root,
        "login",
        "--tls-verify=false",
        host,
        "-u",
        USERNAME,
        "--password-stdin",
        input=PASSWORD + "\n",
        env=env,
    )
    assert good.returncode == 0, good
    assert good.stdout.startswith("Login Succeeded")
    assert stat.S_IMODE(auth_file.stat().st_mode) == 0o600
    saved = json.loads(auth_file.read_text())
    assert saved == {
        "auths": {host: {"auth": base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()}}
    }

    result = image_cli(root, "pull", "-q", "--tls-verify=false", f"{host}/busybox", env=env)
    assert result.returncode == 0, result
    assert result.stdout.strip() == oci_images.manifests["latest"]

    out = image_cli(root, "logout", host, env=env)
    assert out.returncode == 0 and out.stdout == f"Removed login credentials for {host}\n"
    assert json.loads(auth_file.read_text()) == {"auths": {}}
    again = image_cli(root, "logout", host, env=env)
    assert again.returncode == 1 and "not logged in to" in again.stderr
    refused = image_cli(root, "pull", "--tls-verify=false", f"{host}/busybox", env=env)
    assert refused.returncode == 1 and "requires authentication" in refused.stderr


def test_bearer_tokens_anonymous_good_and_bad(
    token: Registry, oci_images: OCIImages, tmp_path: Path, env: dict[str, str]
) -> None:
    assert token.token_server is not None
    host = token.host
    root = tmp_path / "store"
    anonymous = image_cli(root, "pull", "--tls-verify=false", f"{host}/busybox", env=env)
    assert anonymous.returncode == 1
    assert anonymous.stderr == (
        f"pyrun: {host}: repository:busybox:pull denied: the repository does not exist or"
        f" requires authentication (run `pyrun image login {host}`)\n"
    )

    wrong = image_cli(root, "login", "--tls-verify=false", host, "-u", USERNAME, "-p", "x", env=env)
    assert wrong.returncode == 1
    assert wrong.stderr == (
        f"pyrun: {host}: the token server refused the credentials of user '{USERNAME}' (401)\n"
    )

    login = image_cli(
        root, "login", "--tls-verify=false", host, "-u", USERNAME, "-p", PASSWORD, env=env
    )
    assert login.returncode == 0, login
    token.token_server.requests.clear()
    result = image_cli(root, "pull", "--tls-verify=false", f"{host}/busybox", env=env)
    assert result.returncode == 0, result
    assert stored_names(root)[f"{host}/busybox:latest"]["digest"] == oci_images.manifests["latest"]
    # One token for the manifest and both blobs (cached per scope, shared by the threads).
    assert token.token_server.requests == [(USERNAME, ["repository:busybox:pull"])]


def test_docker_config_entries_and_credential_helpers(
    token: Registry, oci_images: OCIImages, tmp_path: Path, env: dict[str, str]
) -> None:
    host = token.host
    config = Path(env["DOCKER_CONFIG"]) / "config.json"

    def pull() -> subprocess.CompletedProcess[str]:
        return image_cli(
            tmp_path / "store", "pull", "-q", "--tls-verify=false", f"{host}/busybox", env=env
        )

    encoded = base64.b64encode(f"{USERNAME}:wrong".encode()).decode()
    config.write_text(json.dumps({"auths": {f"https://{host}": {"auth": encoded}}}))
    result = pull()
    assert result.returncode == 1
    assert "token server refused the credentials of user 'pyrun'" in result.stderr

    encoded = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
    config.write_text(json.dumps({"auths": {host: {"auth": encoded}}}))
    result = pull()
    assert result.returncode == 0, result

    config.write_text(json.dumps({"credsStore": "pyrun-missing", "auths": {host: {}}}))
    result = pull()
    assert result.returncode == 1
    assert "docker-credential-pyrun-missing is not installed" in result.stderr

    # A helper that answers docker's protocol: the server on stdin, JSON on stdout.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    helper = bindir / "docker-credential-pyrun-test"
    log = tmp_path / "helper.log"
    helper.write_text(
        "#!/bin/sh\n"
        f'read server; echo "$1 $server" >> {log}\n'
        f'echo \'{{"ServerURL":"\'$server\'","Username":"{USERNAME}","Secret":"{PASSWORD}"}}\'\n'
    )
    helper.chmod(0o755)
    env["PATH"] = f"{bindir}{os.pathsep}{env['PATH']}"
    config.write_text(json.dumps({"credHelpers": {host: "pyrun-test"}}))
    result = pull()
    assert result.returncode == 0, result
    assert log.read_text() == f"get {host}\n"
