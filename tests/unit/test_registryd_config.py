"""registryd's config: the embedded defaults, flags over the file, and every schema problem
reported at once with its path and YAML line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from registryd.config import MANIFEST_BYTES, SCHEMA_PATH, load_config
from runtime.errors import SpecError


def write(tmp_path: Path, text: str, name: str = "registryd.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_defaults_need_no_file() -> None:
    config = load_config(None)
    assert (config.host, config.port, config.root) == ("127.0.0.1", 5000, "/var/lib/registryd")
    assert config.manifest_bytes == MANIFEST_BYTES == 4 * 1024 * 1024
    assert config.auth is None and not config.readonly and not config.tls
    assert (config.log_level, config.log_format, config.log_access) == ("info", "text", True)


def test_file_and_flags(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "listen: 0.0.0.0:6000\nroot: /srv/reg\nreadonly: true\n"
        "limits: {manifest_bytes: 8192, upload_expiry: 60}\n"
        "log: {format: json, access: false}\n"
        "tls: {certificate: /c.pem, key: /k.pem}\n",
    )
    config = load_config(path, listen="[::1]:7000")
    assert (config.host, config.port, config.root) == ("::1", 7000, "/srv/reg")
    assert config.readonly and config.tls and config.tls_key == "/k.pem"
    assert (config.manifest_bytes, config.upload_expiry) == (8192, 60)
    assert (config.log_format, config.log_access) == ("json", False)
    assert load_config(path, root="relative").root == str(Path("relative").resolve())


def test_auth_section_in_the_agreed_shape(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
auth:
  htpasswd: {realm: registryd, path: /etc/registryd/htpasswd}
  token:
    realm: http://127.0.0.1:5000/token
    service: registryd
    issuer: registryd
    key: /path/key.pem
    expiration: 300
  access:
    - account: "*"
      repository: "library/*"
      actions: [pull]
""",
    )
    auth = load_config(path).auth
    assert auth is not None and auth["access"][0]["actions"] == ["pull"]


def test_every_problem_at_once_with_lines(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """listen: localhost
readonly: "yes"
limits:
  manifest_bytes: 10
  upload_expiry: 0
log:
  format: xml
colour: blue
auth:
  token: {expiration: 5}
""",
    )
    with pytest.raises(SpecError) as caught:
        load_config(path)
    assert caught.value.source == path
    assert caught.value.problems == [
        "(root) (line 1): Additional properties are not allowed ('colour' was unexpected)",
        "listen (line 1): 'localhost' does not match"
        " '^(\\\\[[0-9A-Fa-f:.]+\\\\]|[A-Za-z0-9.-]*):[0-9]{1,5}$'",
        "readonly (line 2): 'yes' is not of type 'boolean'",
        "limits.manifest_bytes (line 4): 10 is less than the minimum of 1024",
        "limits.upload_expiry (line 5): 0 is less than the minimum of 1",
        "log.format (line 7): 'xml' is not one of ['text', 'json']",
        "auth (line 9): 'htpasswd' is a dependency of 'token'",
    ]


def test_bad_flags_are_reported_like_bad_keys() -> None:
    with pytest.raises(SpecError) as caught:
        load_config(None, listen="127.0.0.1:99999")
    assert caught.value.problems == ["listen: port 99999 is out of range"]


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as caught:
        load_config(str(tmp_path / "missing.yaml"))
    assert caught.value.problems == ["(root): cannot read: no such file or directory"]
    with pytest.raises(SpecError) as caught:
        load_config(write(tmp_path, "listen: [\n", name="config"))
    assert caught.value.problems[0].startswith("(root) (line 2, column 1): invalid YAML")
    with pytest.raises(SpecError) as caught:
        load_config(write(tmp_path, '{"readonly": 1}', name="c.json"))
    assert caught.value.problems == ["readonly: 1 is not of type 'boolean'"]


def test_schema_is_draft_2020_12_and_installed_with_the_package() -> None:
    from jsonschema import Draft202012Validator

    schema = json.loads(SCHEMA_PATH.read_text())
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == "https://pyrun.dev/schema/registryd-config.schema.json"
    assert SCHEMA_PATH.parent.name == "schemas"


def test_auth_without_the_auth_module_refuses_to_serve(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import sys

    from registryd.errors import RegistrydError
    from registryd.serve import build_auth

    path = write(tmp_path, "auth:\n  htpasswd: {path: /etc/htpasswd}\n")
    config = load_config(path)
    monkeypatch.setitem(sys.modules, "registryd.auth", None)  # import fails
    with pytest.raises(RegistrydError) as caught:
        build_auth(config, "http://127.0.0.1:5000")
    assert "auth support not available" in caught.value.message
    assert build_auth(load_config(None), "http://127.0.0.1:5000") == (None, None)


def test_search_terms_and_table() -> None:
    from imagetools.cli.search import split_term, table

    assert split_term("127.0.0.1:5000/busy") == ("127.0.0.1:5000", "busy")
    assert split_term("localhost/a/b") == ("localhost", "a/b")
    assert split_term("library/busybox") == ("docker.io", "library/busybox")
    assert split_term("busybox") == ("docker.io", "busybox")
    assert table([("a/b", "desc", "3", "[OK]"), ("c", "", "0", "")]) == [
        "NAME   DESCRIPTION   STARS   OFFICIAL",
        "a/b    desc          3       [OK]",
        "c                    0",
    ]


def test_proxy_section_and_its_defaults(tmp_path: Path) -> None:
    from registryd.config import PROXY_TTL, ProxyConfig

    path = write(
        tmp_path,
        "proxy:\n  remoteurl: https://registry-1.docker.io/\n  username: bob\n"
        "  password: hunter2\n  ttl: 60\n  tls_verify: false\n",
    )
    proxy = load_config(path).proxy
    assert proxy == ProxyConfig("https://registry-1.docker.io", "bob", "hunter2", 60, False)
    assert (proxy.host, proxy.https) == ("registry-1.docker.io", True)
    assert "hunter2" not in repr(proxy)
    assert load_config(None).proxy is None
    plain = load_config(write(tmp_path, "proxy: {remoteurl: 'http://127.0.0.1:5000'}\n"))
    assert plain.proxy == ProxyConfig("http://127.0.0.1:5000")
    assert (plain.proxy.ttl, plain.proxy.tls_verify, plain.proxy.username) == (
        PROXY_TTL,
        True,
        None,
    )
    assert (plain.proxy.host, plain.proxy.https) == ("127.0.0.1:5000", False)


def test_proxy_flag_sets_the_remote_url(tmp_path: Path) -> None:
    config = load_config(None, proxy="http://[::1]:5000")
    assert config.proxy is not None and config.proxy.remoteurl == "http://[::1]:5000"
    path = write(tmp_path, "proxy: {remoteurl: 'https://a.example', ttl: 5}\n")
    merged = load_config(path, proxy="https://b.example")
    assert merged.proxy is not None
    assert (merged.proxy.remoteurl, merged.proxy.ttl) == ("https://b.example", 5)
    with pytest.raises(SpecError) as caught:
        load_config(None, proxy="registry-1.docker.io")
    assert caught.value.problems[0].startswith("proxy.remoteurl: 'registry-1.docker.io'")


def test_proxy_problems_all_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "proxy:\n  remoteurl: ftp://mirror/path\n  username: bob\n  ttl: -1\n  tls_verify: 1\n"
        "  cache: yes\n",
    )
    with pytest.raises(SpecError) as caught:
        load_config(path)
    problems = caught.value.problems
    assert len(problems) == 5, problems
    assert problems[0] == (
        "proxy (line 1): Additional properties are not allowed ('cache' was unexpected)"
    )
    assert problems[1].startswith("proxy (line 1): 'password' is a dependency of 'username'")
    assert problems[2].startswith("proxy.remoteurl (line 2): 'ftp://mirror/path' does not match")
    assert problems[3] == "proxy.ttl (line 4): -1 is less than the minimum of 0"
    assert problems[4] == "proxy.tls_verify (line 5): 1 is not of type 'boolean'"
    with pytest.raises(SpecError) as caught:
        load_config(write(tmp_path, "proxy: {ttl: 5}\n"))
    assert caught.value.problems == ["proxy.remoteurl (line 1): is required"]


def test_plain_registryd_does_not_load_the_registry_client() -> None:
    import subprocess
    import sys

    code = (
        "import sys, registryd.serve, registryd.app, registryd.config, registryd.cli\n"
        "assert not [m for m in sys.modules if m.startswith(('imagetools', 'registryd.proxy'))]"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_proxy_remote_url_is_the_upstream_origin() -> None:
    from registryd.config import ProxyConfig
    from registryd.proxy import Upstream

    # docker.io is the client's alias of Docker Hub's API host; the scheme is never probed.
    assert Upstream(ProxyConfig("https://docker.io")).base() == "https://registry-1.docker.io"
    plain = Upstream(ProxyConfig("http://127.0.0.1:5000", tls_verify=False))
    assert plain.url("/v2/") == "http://127.0.0.1:5000/v2/"
    assert plain.tls_verify is False
