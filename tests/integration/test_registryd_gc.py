"""``registryd gc`` on a registry that keeps serving: dry run, sweep, the grace period that
protects a push whose manifest has not arrived yet, --delete-untagged, and its errors."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest

from tests.support.layers import manifest_blob
from tests.support.registryd import REGISTRYD, Registryd, registryd_fixture

pytestmark = pytest.mark.root
registryd = registryd_fixture

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_blob(server: Registryd, name: str, data: bytes) -> str:
    status, _h, _b = server.request("POST", f"/v2/{name}/blobs/uploads/?digest={sha(data)}", data)
    assert status == 201
    return sha(data)


def push_image(server: Registryd, name: str, tag: str | None, seed: bytes) -> tuple[str, str]:
    config = b'{"seed": "%s"}' % seed
    layer = b"layer " + seed
    push_blob(server, name, config)
    layer_digest = push_blob(server, name, layer)
    body = manifest_blob(config, [layer])
    reference = tag or sha(body)
    status, _h, _b = server.request(
        "PUT", f"/v2/{name}/manifests/{reference}", body, {"Content-Type": OCI_MANIFEST}
    )
    assert status == 201
    return sha(body), layer_digest


def gc(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [REGISTRYD, "gc", "--root", str(root), *args], capture_output=True, text=True, timeout=120
    )


def age_blobs(root: Path, seconds: float = 3600) -> None:
    past = os.stat(root).st_mtime - seconds
    for directory, _dirs, files in os.walk(root / "blobs"):
        for name in files:
            os.utime(Path(directory) / name, (past, past))


def test_gc_sweeps_what_was_deleted_while_serving(registryd: Registryd) -> None:
    kept, kept_layer = push_image(registryd, "app", "v1", b"a")
    gone, gone_layer = push_image(registryd, "app", "v2", b"b")
    assert registryd.request("DELETE", f"/v2/app/manifests/{gone}")[0] == 202
    age_blobs(registryd.root)
    dry = gc(registryd.root, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert f"would remove blob {gone_layer} (7 bytes)" in lines
    assert f"would remove blob {gone} ({_size(registryd, gone)} bytes)" in lines
    assert lines[-1] == (
        f"3 blobs in use, 3 to remove ({_size(registryd, gone) + 7 + 13} bytes),"
        " 0 spared (younger than the grace period)"
    )
    # Dry: untouched. (A GET: a HEAD would restart the blob's grace period, as a pusher's
    # "does it exist?" check must.)
    assert registryd.request("GET", f"/v2/app/blobs/{gone_layer}")[0] == 200
    swept = gc(registryd.root)
    assert swept.returncode == 0, swept.stderr
    assert f"removed blob {gone_layer} (7 bytes)" in swept.stdout.splitlines()
    assert registryd.request("HEAD", f"/v2/app/blobs/{gone_layer}")[0] == 404
    status, headers, _ = registryd.request("GET", "/v2/app/manifests/v1")
    assert status == 200 and headers["Docker-Content-Digest"] == kept
    assert registryd.request("GET", f"/v2/app/blobs/{kept_layer}")[2] == b"layer a"


def _size(server: Registryd, digest: str) -> int:
    hexa = digest.split(":")[1]
    return (server.root / "blobs" / "sha256" / hexa[:2] / hexa).stat().st_size


def test_gc_spares_a_push_in_progress(registryd: Registryd) -> None:
    # Blobs are in, the manifest is not yet: gc must not take them.
    push_blob(registryd, "inflight", b"fresh layer")
    push_blob(registryd, "inflight", b"{}")
    location = registryd.request("POST", "/v2/inflight/blobs/uploads/")[1]["Location"]
    registryd.request("PATCH", location, b"half")
    result = gc(registryd.root)
    assert result.returncode == 0, result.stderr
    assert "2 spared" in result.stdout.splitlines()[-1]
    body = manifest_blob(b"{}", [b"fresh layer"])
    status, _h, _b = registryd.request(
        "PUT", "/v2/inflight/manifests/v1", body, {"Content-Type": OCI_MANIFEST}
    )
    assert status == 201
    assert registryd.request("GET", location)[0] == 204  # the open session survived too


def test_gc_delete_untagged(registryd: Registryd) -> None:
    push_image(registryd, "app", "v1", b"a")
    untagged, layer = push_image(registryd, "app", None, b"u")
    age_blobs(registryd.root)
    kept = gc(registryd.root)
    assert registryd.request("GET", f"/v2/app/manifests/{untagged}")[0] == 200
    assert "0 removed" in kept.stdout
    result = gc(registryd.root, "--delete-untagged")
    assert result.returncode == 0, result.stderr
    assert f"removed manifest app@{untagged}" in result.stdout.splitlines()
    assert registryd.request("GET", f"/v2/app/manifests/{untagged}")[0] == 404
    assert registryd.request("HEAD", f"/v2/app/blobs/{layer}")[0] == 404
    assert registryd.request("GET", "/v2/app/manifests/v1")[0] == 200


def test_gc_refuses_a_directory_that_is_not_a_store(tmp_path: Path) -> None:
    result = gc(tmp_path)
    assert result.returncode == 1
    assert result.stderr == f"registryd: {tmp_path} is not a registryd storage root (no blobs/)\n"
