"""registryd's HTTP as a client sees it: keep-alive, chunked request bodies, Expect:
100-continue, HEAD, Range, the distribution-spec endpoints over a real socket, TLS, read-only
mode, the JSON access log, /metrics, a graceful stop that finishes an upload in flight, and
the command line refusing a bad config before anything starts."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from tests.support.imagecli import image_cli, image_env
from tests.support.layers import manifest_blob
from tests.support.oci_images import OCIImages
from tests.support.registry import clear_skopeo_cache
from tests.support.registryd import REGISTRYD, Registryd, registryd_fixture
from tests.support.tls import self_signed

pytestmark = pytest.mark.root
registryd = registryd_fixture

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def codes(body: bytes) -> list[str]:
    return [e["code"] for e in json.loads(body)["errors"]]


def raw_exchange(server: Registryd, data: bytes, read_until_close: bool = True) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(data)
        if not read_until_close:
            return sock.recv(65536)
        sock.shutdown(socket.SHUT_WR)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
        return out


def test_base_endpoint_and_headers(registryd: Registryd) -> None:
    status, headers, body = registryd.request("GET", "/v2/")
    assert (status, body) == (200, b"{}")
    assert headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert headers["Content-Length"] == "2" and "Date" in headers


def test_keep_alive_serves_many_requests_on_one_connection(registryd: Registryd) -> None:
    conn = registryd.connection()
    for _ in range(50):
        status, _headers, _body = registryd.request("GET", "/v2/", conn=conn)
        assert status == 200
    status, _h, body = registryd.request("GET", "/v2/nope/tags/list", conn=conn)
    assert status == 404 and codes(body) == ["NAME_UNKNOWN"]
    status, _headers, body = registryd.request("HEAD", "/v2/nope/tags/list", conn=conn)
    assert status == 405 and body == b""
    assert registryd.request("GET", "/v2/", conn=conn)[0] == 200  # still in step after HEAD
    conn.close()


def test_chunked_patch_then_put(registryd: Registryd) -> None:
    data = os.urandom(3 * 1024 * 1024 + 123)
    status, headers, _ = registryd.request("POST", "/v2/chunky/blobs/uploads/")
    assert status == 202
    location = headers["Location"]
    conn = registryd.connection()
    pieces = (data[i : i + 32768] for i in range(0, len(data), 32768))  # Go's chunk size
    conn.request(
        "PATCH",
        location,
        body=pieces,
        encode_chunked=True,
        headers={"Transfer-Encoding": "chunked"},
    )
    response = conn.getresponse()
    response.read()
    assert response.status == 202 and response.getheader("Range") == f"0-{len(data) - 1}"
    status, headers, _ = registryd.request("PUT", f"{location}?digest={sha(data)}", conn=conn)
    assert status == 201 and headers["Docker-Content-Digest"] == sha(data)
    status, headers, body = registryd.request("GET", f"/v2/chunky/blobs/{sha(data)}", conn=conn)
    assert status == 200 and body == data
    status, headers, body = registryd.request(
        "GET", f"/v2/chunky/blobs/{sha(data)}", headers={"Range": "bytes=-100"}, conn=conn
    )
    assert status == 206 and body == data[-100:]
    assert headers["Content-Range"] == f"bytes {len(data) - 100}-{len(data) - 1}/{len(data)}"
    conn.close()


def test_expect_100_continue(registryd: Registryd) -> None:
    data = b"expected body"
    head = (
        f"POST /v2/cont/blobs/uploads/?digest={sha(data)} HTTP/1.1\r\nHost: x\r\n"
        f"Content-Length: {len(data)}\r\nExpect: 100-continue\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", registryd.port), timeout=30) as sock:
        sock.sendall(head)
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(data)
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 201 Created\r\n")
    # Refused before the body is read: no 100 Continue, the final answer straight away.
    bad = (
        b"POST /v2/UPPER/blobs/uploads/ HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Expect: 100-continue\r\n\r\n"
    )
    reply = raw_exchange(registryd, bad, read_until_close=False)
    assert reply.startswith(b"HTTP/1.1 400 Bad Request\r\n") and b"Connection: close" in reply


def test_push_pull_manifest_over_http(registryd: Registryd) -> None:
    config = b'{"architecture":"amd64","os":"linux"}'
    layer = os.urandom(1000)
    for blob in (config, layer):
        status, _h, _b = registryd.request(
            "POST", f"/v2/web/app/blobs/uploads/?digest={sha(blob)}", blob
        )
        assert status == 201
    manifest = manifest_blob(config, [layer])
    status, headers, _ = registryd.request(
        "PUT", "/v2/web/app/manifests/v1", manifest, {"Content-Type": OCI_MANIFEST}
    )
    assert status == 201 and headers["Location"] == f"/v2/web/app/manifests/{sha(manifest)}"
    status, headers, body = registryd.request("HEAD", "/v2/web/app/manifests/v1")
    assert status == 200 and body == b"" and headers["Content-Length"] == str(len(manifest))
    status, headers, body = registryd.request("GET", f"/v2/web/app/manifests/{sha(manifest)}")
    assert body == manifest and headers["Content-Type"] == OCI_MANIFEST
    status, _h, body = registryd.request("GET", "/v2/_catalog")
    assert json.loads(body) == {"repositories": ["web/app"]}


def test_metrics_endpoint(registryd: Registryd) -> None:
    registryd.request("GET", "/v2/")
    registryd.request("POST", f"/v2/m/blobs/uploads/?digest={sha(b'abc')}", b"abc")
    status, headers, body = registryd.request("GET", "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = body.decode()
    assert 'registryd_http_requests_total{method="GET",status="200"}' in text
    assert 'registryd_http_requests_total{method="POST",status="201"} 1' in text
    assert "registryd_http_request_bytes_total 3" in text
    assert "registryd_blobs 1" in text and "registryd_blob_bytes 3" in text


def test_read_only_and_json_access_log(tmp_path: Path) -> None:
    server = Registryd(tmp_path / "r", "readonly: true\nlog:\n  format: json\n").start()
    try:
        status, _h, body = server.request("POST", "/v2/a/blobs/uploads/")
        assert status == 405 and codes(body) == ["UNSUPPORTED"]
        assert server.request("GET", "/v2/a/tags/list")[0] == 404
    finally:
        assert server.stop() == 0
    entries = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    access = [e for e in entries if e.get("logger") == "registryd.access"]
    assert [(e["method"], e["path"], e["status"]) for e in access] == [
        ("POST", "/v2/a/blobs/uploads/", 405),
        ("GET", "/v2/a/tags/list", 404),
    ]
    assert access[0]["remote"] == "127.0.0.1" and access[0]["account"] is None
    assert isinstance(access[0]["duration_ms"], float) and access[0]["bytes_out"] > 0


def test_graceful_stop_finishes_the_upload_in_flight(tmp_path: Path) -> None:
    server = Registryd(tmp_path / "r").start()
    data = os.urandom(200_000)
    head = (
        f"POST /v2/slow/blobs/uploads/?digest={sha(data)} HTTP/1.1\r\nHost: x\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(head + data[:1000])
        time.sleep(0.5)
        assert server.process is not None
        server.process.terminate()  # SIGTERM while the body is still arriving
        time.sleep(0.5)
        sock.sendall(data[1000:])
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 201 Created\r\n")
    assert b"Connection: close" in reply
    assert server.process.wait(timeout=30) == 0
    server.process = None
    blob = server.root / "blobs" / "sha256" / sha(data)[7:9] / sha(data)[7:]
    assert blob.read_bytes() == data


def test_tls(tmp_path: Path, oci_images: OCIImages) -> None:
    certs = tmp_path / "certs"
    self_signed(certs)
    config = f"tls:\n  certificate: {certs / 'ca.crt'}\n  key: {certs / 'key.pem'}\n"
    server = Registryd(tmp_path / "r", config).start()
    try:
        assert server.url.startswith("https://")
        context = ssl.create_default_context(cafile=str(certs / "ca.crt"))
        conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=context, timeout=30)
        assert server.request("GET", "/v2/", conn=conn)[0] == 200
        data = os.urandom(3 * 1024 * 1024 + 5)
        path = f"/v2/tls/blob/blobs/uploads/?digest={sha(data)}"
        assert server.request("POST", path, data, conn=conn)[0] == 201
        status, _h, body = server.request("GET", f"/v2/tls/blob/blobs/{sha(data)}", conn=conn)
        assert status == 200 and body == data
        status, _h, body = server.request(
            "GET", f"/v2/tls/blob/blobs/{sha(data)}", headers={"Range": "bytes=10-"}, conn=conn
        )
        assert status == 206 and body == data[10:]
        conn.close()
        if shutil.which("skopeo"):
            clear_skopeo_cache()
            result = subprocess.run(
                [
                    "skopeo",
                    "--insecure-policy",
                    "copy",
                    "--dest-cert-dir",
                    str(certs),
                    f"oci:{oci_images.ref('layers')}",
                    f"docker://{server.host}/tls/layers:1",
                ],
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert result.returncode == 0, result.stderr
            result = subprocess.run(
                [
                    "skopeo",
                    "inspect",
                    "--raw",
                    "--cert-dir",
                    str(certs),
                    f"docker://{server.host}/tls/layers:1",
                ],
                capture_output=True,
                timeout=120,
            )
            assert sha(result.stdout) == oci_images.manifests["layers"]
    finally:
        assert server.stop() == 0


def test_pyrun_image_over_verified_tls(tmp_path: Path, oci_images: OCIImages) -> None:
    """pyrun's registry client against registryd's TLS: refused without the CA, trusted with
    --cert-dir (pull, push, login), unverified with --tls-verify=false."""
    certs = tmp_path / "certs"
    self_signed(certs)
    config = f"tls:\n  certificate: {certs / 'ca.crt'}\n  key: {certs / 'key.pem'}\n"
    server = Registryd(tmp_path / "r", config).start()
    env = image_env(tmp_path)
    store = tmp_path / "store"
    ref = f"{server.host}/tls/layers:1"
    try:
        clear_skopeo_cache()
        source = f"oci:{oci_images.ref('layers')}"
        copied = subprocess.run(
            [
                "skopeo",
                "--insecure-policy",
                "copy",
                "--dest-cert-dir",
                str(certs),
                source,
                "docker://" + ref,
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert copied.returncode == 0, copied.stderr

        refused = image_cli(store, "pull", "-q", ref, env=env)
        assert refused.returncode == 1
        assert "certificate verify failed" in refused.stderr
        assert "--tls-verify=false" in refused.stderr
        pulled = image_cli(store, "pull", "-q", "--cert-dir", str(certs), ref, env=env)
        assert pulled.returncode == 0, pulled.stderr
        assert pulled.stdout.strip() == oci_images.manifests["layers"]
        again = f"{server.host}/tls/again:1"
        pushed = image_cli(store, "push", "-q", "--cert-dir", str(certs), ref, again, env=env)
        assert pushed.returncode == 0, pushed.stderr
        login = image_cli(
            store, "login", "--cert-dir", str(certs), "-u", "u", "-p", "p", server.host, env=env
        )
        assert login.returncode == 0, login.stderr  # no auth configured: any login works
        unverified = image_cli(
            tmp_path / "other", "pull", "-q", "--tls-verify=false", again, env=env
        )
        assert unverified.returncode == 0, unverified.stderr

        missing = image_cli(store, "pull", "--cert-dir", str(tmp_path / "none"), ref, env=env)
        assert missing.returncode == 1 and "no such directory" in missing.stderr
        (certs / "client.cert").write_bytes((certs / "ca.crt").read_bytes())
        lonely = image_cli(store, "pull", "--cert-dir", str(certs), ref, env=env)
        assert lonely.returncode == 1
        assert f"{certs}/client.cert: found without its key {certs}/client.key" in lonely.stderr
    finally:
        assert server.stop() == 0


def test_bad_config_starts_nothing(tmp_path: Path) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("listen: nowhere\nlimits:\n  manifest_bytes: -1\nextra: 1\n")
    root = tmp_path / "root"
    result = subprocess.run(
        [REGISTRYD, "serve", "--config", str(config), "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == f"registryd: {config}: 3 problems:"
    assert (
        lines[1]
        == "  (root) (line 1): Additional properties are not allowed ('extra' was unexpected)"
    )
    assert lines[2].startswith("  listen (line 1): 'nowhere' does not match")
    assert lines[3] == "  limits.manifest_bytes (line 3): -1 is less than the minimum of 1024"
    assert not root.exists()


def test_tls_files_missing_and_port_taken(tmp_path: Path, registryd: Registryd) -> None:
    config = tmp_path / "tls.yaml"
    config.write_text("tls: {certificate: /nonexistent.pem, key: /nonexistent.key}\n")
    result = subprocess.run(
        [
            REGISTRYD,
            "serve",
            "--config",
            str(config),
            "--root",
            str(tmp_path / "a"),
            "--listen",
            "127.0.0.1:0",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("registryd: tls: cannot load /nonexistent.pem")
    result = subprocess.run(
        [REGISTRYD, "serve", "--root", str(tmp_path / "b"), "--listen", registryd.host],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr == f"registryd: cannot listen on {registryd.host}: address in use\n"
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
