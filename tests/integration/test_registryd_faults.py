"""registryd under bad input and faults (issue 5's list): wrong digests, short and overlong
bodies, out-of-order chunks, malformed and oversized manifests, manifests naming missing
blobs, invalid names, concurrent pushes of one blob and one tag, a client that disconnects
mid-upload, a registryd killed mid-upload and restarted. Each gets the spec's error, nothing
corrupt is ever served, and nothing is written outside the storage root."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.support.registryd import Registryd, registryd_fixture

pytestmark = pytest.mark.root
registryd = registryd_fixture

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def codes(body: bytes) -> list[str]:
    return [e["code"] for e in json.loads(body)["errors"]]


def blob_files(server: Registryd) -> dict[str, bytes]:
    found = {}
    for directory, _dirs, files in os.walk(server.root / "blobs"):
        for name in files:
            found[name] = (Path(directory) / name).read_bytes()
    return found


def assert_store_is_sound(server: Registryd) -> None:
    """Every blob file's content matches its name; no half-written file is left in tmp/."""
    for name, data in blob_files(server).items():
        assert hashlib.sha256(data).hexdigest() == name
    assert os.listdir(server.root / "tmp") == []


def start_upload(server: Registryd, name: str = "faults") -> str:
    status, headers, _ = server.request("POST", f"/v2/{name}/blobs/uploads/")
    assert status == 202
    return headers["Location"]


def open_socket(server: Registryd) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=30)


def read_reply(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_wrong_digests(registryd: Registryd) -> None:
    status, _h, body = registryd.request(
        "POST", f"/v2/faults/blobs/uploads/?digest={sha(b'other')}", b"content"
    )
    assert (status, codes(body)) == (400, ["DIGEST_INVALID"])
    location = start_upload(registryd)
    registryd.request("PATCH", location, b"content")
    status, _h, body = registryd.request("PUT", f"{location}?digest={sha(b'contents')}")
    assert (status, codes(body)) == (400, ["DIGEST_INVALID"])
    for bad in ("sha256:abc", "md5:" + "0" * 32, "sha256:" + "G" * 64, "nonsense"):
        status, _h, body = registryd.request(
            "POST", f"/v2/faults/blobs/uploads/?digest={bad}", b"content"
        )
        assert (status, codes(body)) == (400, ["DIGEST_INVALID"]), bad
        status, _h, _b = registryd.request("GET", f"/v2/faults/blobs/{bad}")
        assert status == 400
    assert registryd.request("HEAD", f"/v2/faults/blobs/{sha(b'content')}")[0] == 404
    assert blob_files(registryd) == {}
    assert_store_is_sound(registryd)


def test_short_body_then_hang_up_leaves_nothing(registryd: Registryd) -> None:
    data = os.urandom(100_000)
    with open_socket(registryd) as sock:
        sock.sendall(
            f"POST /v2/faults/blobs/uploads/?digest={sha(data)} HTTP/1.1\r\nHost: x\r\n"
            f"Content-Length: {len(data)}\r\n\r\n".encode()
            + data[:50_000]
        )
        sock.shutdown(socket.SHUT_WR)
        assert sock.recv(65536) == b""  # no answer: the request never ended
    time.sleep(0.5)
    assert registryd.request("HEAD", f"/v2/faults/blobs/{sha(data)}")[0] == 404
    assert blob_files(registryd) == {}
    assert os.listdir(registryd.root / "uploads") == []  # a monolithic upload leaves no session
    assert "499" in registryd.log()


def test_overlong_body(registryd: Registryd) -> None:
    data = b"0123456789"
    with open_socket(registryd) as sock:
        # Content-Length says 5: the registry hashes 5 bytes, and the rest is not a request.
        sock.sendall(
            f"POST /v2/faults/blobs/uploads/?digest={sha(data)} HTTP/1.1\r\nHost: x\r\n"
            "Content-Length: 5\r\n\r\n".encode()
            + data
        )
        reply = read_reply(sock)
    assert reply.startswith(b"HTTP/1.1 400 ")
    assert b"DIGEST_INVALID" in reply
    assert blob_files(registryd) == {}


def test_out_of_order_chunks(registryd: Registryd) -> None:
    location = start_upload(registryd)
    status, headers, _ = registryd.request("PATCH", location, b"abc", {"Content-Range": "3-5"})
    assert status == 416 and headers["Range"] == "0-0" and headers["Location"] == location
    assert registryd.request("PATCH", location, b"abc", {"Content-Range": "0-2"})[0] == 202
    status, headers, body = registryd.request("PATCH", location, b"abc", {"Content-Range": "0-2"})
    assert status == 416 and codes(body) == ["BLOB_UPLOAD_INVALID"]
    assert headers["Range"] == "0-2"
    status, headers, _ = registryd.request("PATCH", location, b"x", {"Content-Range": "garbage"})
    assert status == 416
    status, headers, _ = registryd.request("GET", location)
    assert (status, headers["Range"]) == (204, "0-2")
    status, _h, _b = registryd.request(
        "PUT", f"{location}?digest={sha(b'abcdef')}", b"def", {"Content-Range": "3-5"}
    )
    assert status == 201


def push_blob(server: Registryd, data: bytes, name: str = "faults") -> str:
    status, _h, body = server.request("POST", f"/v2/{name}/blobs/uploads/?digest={sha(data)}", data)
    assert status == 201, body
    return sha(data)


def manifest_for(config: str, config_size: int, layers: list[tuple[str, int]]) -> bytes:
    return json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": CONFIG_TYPE, "digest": config, "size": config_size},
            "layers": [
                {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": s}
                for d, s in layers
            ],
        }
    ).encode()


def test_malformed_oversized_and_dangling_manifests(tmp_path: Path) -> None:
    server = Registryd(tmp_path / "r", "limits:\n  manifest_bytes: 2048\n").start()
    try:
        config = push_blob(server, b"{}")
        put = {"Content-Type": OCI_MANIFEST}
        for body in (
            b"",
            b"{",
            b"[1]",
            b'{"schemaVersion": 1}',
            b"\xff" * 10,
            json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST}).encode(),
        ):
            status, _h, reply = server.request("PUT", "/v2/faults/manifests/bad", body, put)
            assert (status, codes(reply)) == (400, ["MANIFEST_INVALID"]), body
        big = manifest_for(config, 2, []) + b" " * 4096
        status, _h, reply = server.request("PUT", "/v2/faults/manifests/big", big, put)
        assert status == 413 and codes(reply) == ["MANIFEST_INVALID"]
        missing = sha(b"never pushed")
        dangling = manifest_for(config, 2, [(missing, 12)])
        status, _h, reply = server.request("PUT", "/v2/faults/manifests/dangling", dangling, put)
        assert status == 400
        assert json.loads(reply)["errors"] == [
            {
                "code": "MANIFEST_BLOB_UNKNOWN",
                "message": "manifest references a manifest or blob unknown to registry",
                "detail": {"digest": missing},
            }
        ]
        wrong_size = manifest_for(config, 3, [])
        status, _h, reply = server.request("PUT", "/v2/faults/manifests/size", wrong_size, put)
        assert status == 400 and "manifest says 3" in json.loads(reply)["errors"][0]["message"]
        # Another repository's blob is not this repository's.
        other = push_blob(server, b"elsewhere", name="other")
        status, _h, reply = server.request(
            "PUT", "/v2/faults/manifests/x", manifest_for(config, 2, [(other, 9)]), put
        )
        assert codes(reply) == ["MANIFEST_BLOB_UNKNOWN"]
        status, _h, reply = server.request("GET", "/v2/faults/tags/list")
        assert (status, codes(reply)) == (404, ["NAME_UNKNOWN"])  # no manifest ever landed
    finally:
        assert server.stop() == 0


@pytest.mark.parametrize(
    "path",
    [
        "/v2/../x/tags/list",
        "/v2/a/../../x/tags/list",
        "/v2/%2e%2e/x/tags/list",
        "/v2/Upper/tags/list",
        "/v2/" + "a" * 256 + "/tags/list",
        "/v2/a//b/tags/list",
        "/v2/_x/tags/list",
        "/v2/a/_manifests/tags/list",
    ],
)
def test_invalid_names(registryd: Registryd, path: str) -> None:
    status, _h, body = registryd.request("GET", path)
    assert (status, codes(body)) == (400, ["NAME_INVALID"])
    status, _h, body = registryd.request("POST", path.replace("/tags/list", "/blobs/uploads/"))
    assert (status, codes(body)) == (400, ["NAME_INVALID"])
    assert os.listdir(registryd.root / "repositories") == []
    assert os.listdir(registryd.root / "uploads") == []


def test_concurrent_pushes_of_one_blob(registryd: Registryd) -> None:
    data = os.urandom(2 * 1024 * 1024)
    results: list[int] = []

    def upload(index: int) -> None:
        location = start_upload(registryd, f"same/r{index % 3}")
        registryd.request("PATCH", location, data[: len(data) // 2])
        status, _h, _b = registryd.request(
            "PUT", f"{location}?digest={sha(data)}", data[len(data) // 2 :]
        )
        results.append(status)

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [201] * 8
    assert blob_files(registryd) == {sha(data)[7:]: data}
    assert os.listdir(registryd.root / "uploads") == []
    for index in range(3):
        status, _h, body = registryd.request("GET", f"/v2/same/r{index}/blobs/{sha(data)}")
        assert status == 200 and body == data
    assert_store_is_sound(registryd)


def test_concurrent_pushes_of_one_tag(registryd: Registryd) -> None:
    config = push_blob(registryd, b"{}")
    layers = [push_blob(registryd, f"layer {i}".encode()) for i in range(10)]
    bodies = [manifest_for(config, 2, [(d, 7)]) for d in layers]
    statuses: list[int] = []
    done = threading.Event()
    served: list[bool] = []

    def push(body: bytes) -> None:
        statuses.append(
            registryd.request(
                "PUT", "/v2/faults/manifests/race", body, {"Content-Type": OCI_MANIFEST}
            )[0]
        )

    def read() -> None:
        while not done.is_set():
            status, headers, body = registryd.request("GET", "/v2/faults/manifests/race")
            if status == 200:
                served.append(sha(body) == headers["Docker-Content-Digest"] and body in bodies)

    reader = threading.Thread(target=read)
    reader.start()
    threads = [threading.Thread(target=push, args=(b,)) for b in bodies]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    reader.join()
    assert statuses == [201] * 10
    assert served and all(served)  # never a torn or mismatched manifest
    status, _headers, body = registryd.request("GET", "/v2/faults/manifests/race")
    assert status == 200 and body in bodies
    assert_store_is_sound(registryd)


def test_client_disconnect_mid_upload_then_resume(registryd: Registryd) -> None:
    data = os.urandom(3 * 1024 * 1024)
    location = start_upload(registryd)
    with open_socket(registryd) as sock:
        sock.sendall(
            f"PATCH {location} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        for i in range(0, len(data) // 2, 65536):
            piece = data[i : i + 65536]
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
    # The connection is gone; what arrived is kept, and nothing is visible as a blob.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status, headers, _ = registryd.request("GET", location)
        if headers.get("Range") == f"0-{len(data) // 2 - 1}":
            break
        time.sleep(0.1)
    assert (status, headers["Range"]) == (204, f"0-{len(data) // 2 - 1}")
    assert registryd.request("HEAD", f"/v2/faults/blobs/{sha(data)}")[0] == 404
    assert blob_files(registryd) == {}
    offset = int(headers["Range"].split("-")[1]) + 1
    status, headers, _ = registryd.request(
        "PATCH", location, data[offset:], {"Content-Range": f"{offset}-{len(data) - 1}"}
    )
    assert status == 202
    assert registryd.request("PUT", f"{location}?digest={sha(data)}")[0] == 201
    assert registryd.request("GET", f"/v2/faults/blobs/{sha(data)}")[2] == data


def test_killed_mid_upload_and_restarted(registryd: Registryd) -> None:
    data = os.urandom(4 * 1024 * 1024)
    location = start_upload(registryd)
    first = data[: len(data) // 2]
    registryd.request("PATCH", location, first, {"Content-Range": f"0-{len(first) - 1}"})
    sock = open_socket(registryd)
    sock.sendall(
        f"PATCH {location} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(data) - len(first)}\r\n"
        "\r\n".encode()
        + data[len(first) : len(first) + 100_000]
    )
    time.sleep(0.5)
    registryd.kill()  # SIGKILL in the middle of the second PATCH
    sock.close()
    registryd.start()  # same root
    status, headers, _ = registryd.request("GET", location)
    assert status == 204
    offset = int(headers["Range"].split("-")[1]) + 1
    assert len(first) <= offset <= len(first) + 100_000
    assert registryd.request("HEAD", f"/v2/faults/blobs/{sha(data)}")[0] == 404
    status, _h, _b = registryd.request(
        "PATCH", location, data[offset:], {"Content-Range": f"{offset}-{len(data) - 1}"}
    )
    assert status == 202
    assert registryd.request("PUT", f"{location}?digest={sha(data)}")[0] == 201
    assert registryd.request("GET", f"/v2/faults/blobs/{sha(data)}")[2] == data
    assert_store_is_sound(registryd)


def test_nothing_is_written_outside_the_root(tmp_path: Path) -> None:
    workdir = tmp_path / "work"
    server = Registryd(workdir).start()
    try:
        config = push_blob(server, b"{}", name="ok")
        server.request(
            "PUT",
            "/v2/ok/manifests/v1",
            manifest_for(config, 2, []),
            {"Content-Type": OCI_MANIFEST},
        )
        for path in (
            "/v2/../../etc/tags/list",
            "/v2/a/blobs/uploads/..%2F..%2Fx",
            "/v2/a/manifests/..%2F..%2Fx",
            f"/v2/a/blobs/sha256:..%2F{'a' * 61}",
        ):
            for method in ("GET", "PUT", "PATCH", "DELETE"):
                server.request(method, path, b"x")
        location = start_upload(server)
        server.request("PATCH", location, b"partial")
    finally:
        assert server.stop() == 0
    # The process's HOME and cwd stayed empty; only the root and the log exist.
    assert sorted(os.listdir(workdir)) == ["home", "registryd.log", "root"]
    assert os.listdir(workdir / "home") == []
    assert sorted(os.listdir(workdir / "root")) == [
        "_lock",
        "blobs",
        "repositories",
        "tmp",
        "uploads",
    ]
    assert os.listdir(workdir / "root" / "repositories") == ["ok"]
    assert len(os.listdir(workdir / "root" / "uploads")) == 1  # the partial upload, resumable
