"""Pulls that go wrong, through a fault-injecting proxy in front of a real docker-registry:
5xx answers and dropped connections are retried (blobs resume with Range), corrupt, short and
mis-announced blobs are clear errors that leave nothing in blobs/, and a pull killed halfway
is resumed by the next one."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from imagetools.registry import client as client_module
from imagetools.registry.transport import ConnectionFailed
from tests.conftest import PYRUN
from tests.support.imagecli import image_cli, ingest_files, stored_blobs, stored_names
from tests.support.oci_images import RegistryImages
from tests.support.proxy import Fault, Proxy


def _layer(registry_images: RegistryImages, number: int) -> dict[str, object]:
    layer: dict[str, object] = registry_images.images.manifest("layers")["layers"][number]
    return layer


def test_5xx_answers_are_retried(
    registry_images: RegistryImages, proxy: Proxy, tmp_path: Path, env: dict[str, str]
) -> None:
    layer = str(_layer(registry_images, 2)["digest"])
    proxy.add("GET /v2/layers/manifests/latest", Fault(status=503))
    proxy.add(f"GET /v2/layers/blobs/{layer}", Fault(status=500), times=2)
    root = tmp_path / "store"
    result = image_cli(root, "pull", "-q", "--tls-verify=false", f"{proxy.host}/layers", env=env)
    assert result.returncode == 0, result
    assert [r.status for r in proxy.find("GET", "/manifests/latest")] == [503, 200]
    assert [r.status for r in proxy.find("GET", layer)] == [500, 500, 200]
    assert layer in stored_blobs(root)


def test_a_dropped_connection_resumes_with_range(
    registry_images: RegistryImages, proxy: Proxy, tmp_path: Path, env: dict[str, str]
) -> None:
    layer = str(_layer(registry_images, 3)["digest"])
    proxy.add(f"GET /v2/layers/blobs/{layer}", Fault(drop_after=700_000))
    root = tmp_path / "store"
    result = image_cli(root, "pull", "-q", "--tls-verify=false", f"{proxy.host}/layers", env=env)
    assert result.returncode == 0, result
    first, second = proxy.find("GET", layer)
    assert first.sent == 700_000 and "Range" not in first.headers
    assert second.headers.get("Range") == "bytes=700000-" and second.status == 206
    assert layer in stored_blobs(root) and ingest_files(root) == {}


def test_a_corrupt_byte_is_a_digest_error_and_nothing_is_stored(
    registry_images: RegistryImages, proxy: Proxy, tmp_path: Path, env: dict[str, str]
) -> None:
    layer = str(_layer(registry_images, 1)["digest"])
    proxy.add(f"GET /v2/layers/blobs/{layer}", Fault(corrupt_at=12345))
    root = tmp_path / "store"
    result = image_cli(root, "pull", "--tls-verify=false", f"{proxy.host}/layers", env=env)
    assert result.returncode == 1
    assert f"pyrun: blob {layer}: the content's digest is sha256:" in result.stderr
    assert layer not in stored_blobs(root)
    # A wrong blob is thrown away, never resumed (the others stopped with it may be).
    assert layer.replace(":", "-") not in ingest_files(root)
    assert stored_names(root) == {}


def test_a_truncated_blob_is_refused(
    registry_images: RegistryImages, proxy: Proxy, tmp_path: Path, env: dict[str, str]
) -> None:
    layer = _layer(registry_images, 1)
    proxy.add(f"GET /v2/layers/blobs/{layer['digest']}", Fault(truncate_to=1000))
    root = tmp_path / "store"
    result = image_cli(root, "pull", "--tls-verify=false", f"{proxy.host}/layers", env=env)
    assert result.returncode == 1
    assert (
        f"blob {layer['digest']}: the registry has 1000 bytes, the manifest says {layer['size']}"
        in result.stderr
    )
    assert layer["digest"] not in stored_blobs(root) and stored_names(root) == {}


@pytest.mark.parametrize("delta", [-10, 10])
def test_a_manifest_that_lies_about_a_size(
    registry_images: RegistryImages, tmp_path: Path, env: dict[str, str], delta: int
) -> None:
    from imagetools.registry.client import RegistryClient

    manifest = registry_images.images.manifest("layers")
    manifest["layers"][2]["size"] += delta
    liar = json.dumps(manifest).encode()
    client = RegistryClient(registry_images.registry.host, tls_verify=False)
    media_type = "application/vnd.oci.image.manifest.v1+json"
    client.put_manifest("layers", f"liar{delta + 10}", liar, media_type)
    root = tmp_path / "store"
    ref = f"{registry_images.registry.host}/layers:liar{delta + 10}"
    result = image_cli(root, "pull", "--tls-verify=false", ref, env=env)
    assert result.returncode == 1
    layer = manifest["layers"][2]
    assert (
        f"blob {layer['digest']}: the registry has {layer['size'] - delta} bytes, the manifest"
        f" says {layer['size']}" in result.stderr
    ), result.stderr
    assert layer["digest"] not in stored_blobs(root) and stored_names(root) == {}


def test_a_connection_that_keeps_breaking_fails_and_the_next_pull_resumes(
    registry_images: RegistryImages,
    proxy: Proxy,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from imagetools.progress import LineProgress
    from imagetools.pull import pull
    from imagetools.store import Store

    monkeypatch.setattr(client_module, "RESUME_BACKOFF", 0.0)
    layer = str(_layer(registry_images, 4)["digest"])
    for _ in range(10):
        proxy.add(f"GET /v2/layers/blobs/{layer}", Fault(drop_after=100_000))
    store = Store(str(tmp_path / "store"))
    ref = f"{proxy.host}/layers:latest"
    with pytest.raises(ConnectionFailed, match=r"6 tries, stopped at byte 600000 of 1\d+"):
        pull(store, ref, tls_verify=False)
    assert layer not in stored_blobs(tmp_path / "store")
    assert list(ingest_files(tmp_path / "store").values()) == [600_000]

    proxy.clear()
    lines: list[str] = []

    class Capture:
        def write(self, text: str) -> None:
            lines.append(text)

        def flush(self) -> None:
            pass

    pull(store, ref, tls_verify=False, progress=LineProgress(Capture()))  # type: ignore[arg-type]
    assert f"{layer.split(':')[1][:12]}: resumed at 600000\n" in lines
    (request,) = proxy.find("GET", layer)
    assert request.headers["Range"] == "bytes=600000-" and request.status == 206
    assert layer in stored_blobs(tmp_path / "store") and ingest_files(tmp_path / "store") == {}


def test_a_pull_killed_halfway_is_resumed(
    registry_images: RegistryImages, proxy: Proxy, tmp_path: Path, env: dict[str, str]
) -> None:
    root = tmp_path / "store"
    ref = f"{proxy.host}/layers:latest"
    proxy.throttle = 0.05  # 64 KiB per 50 ms: a layer takes ~1.2 s
    process = subprocess.Popen(
        [PYRUN, "image", "--root", str(root), "pull", "--tls-verify=false", ref],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            partial = ingest_files(root)
            if sum(1 for size in partial.values() if size >= 256 << 10) >= 2:
                break
            time.sleep(0.02)
        else:
            pytest.fail(f"no partial download appeared: {ingest_files(root)}")
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    partial = {name: size for name, size in ingest_files(root).items() if size}
    assert stored_names(root) == {}
    assert not {f"sha256:{name.split('-', 1)[1]}" for name in partial} & stored_blobs(root)
    dry = image_cli(root, "gc", "--dry-run", env=env)  # names the partial files, keeps them
    assert {f"Would delete: ingest/{name}" for name in partial} <= set(dry.stdout.splitlines())
    assert "0 B would be reclaimed" not in dry.stderr
    assert {n: s for n, s in ingest_files(root).items() if s} == partial

    proxy.clear()
    result = image_cli(root, "pull", "--tls-verify=false", ref, env=env)
    assert result.returncode == 0, result
    assert stored_names(root)[ref]["digest"] == registry_images.digests["layers:latest"]
    resumed = [line for line in result.stderr.splitlines() if ": resumed at " in line]
    assert len(resumed) >= 2, result.stderr
    for name, size in partial.items():
        digest = f"sha256:{name.split('-', 1)[1]}"
        (request,) = proxy.find("GET", digest)
        # What the killed pull had written (at least; it may have flushed more after we looked).
        start = int(request.headers["Range"].removeprefix("bytes=").rstrip("-"))
        assert start >= size and request.status == 206
        assert f"{digest.split(':')[1][:12]}: resumed at {start}" in result.stderr
    assert ingest_files(root) == {}


def test_four_pulls_of_one_image_at_once_share_the_store(
    registry_images: RegistryImages, proxy: Proxy, tmp_path: Path, env: dict[str, str]
) -> None:
    """Four processes pull the same image into one store while the downloads overlap: all
    succeed, each blob is stored once and verified, no ingest file is left."""
    root = tmp_path / "store"
    ref = f"{proxy.host}/layers:latest"
    proxy.throttle = 0.01
    argv = [PYRUN, "image", "--root", str(root), "pull", "-q", "--tls-verify=false", ref]
    pulls = [
        subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    results = [(p.wait(timeout=120), *p.communicate()) for p in pulls]
    digest = registry_images.digests["layers:latest"]
    assert [r[:2] for r in results] == [(0, digest + "\n")] * 4, results
    assert stored_names(root)[ref]["digest"] == digest
    assert ingest_files(root) == {}
    manifest = json.loads((root / "blobs/sha256" / digest.split(":")[1]).read_bytes())
    for layer in manifest["layers"]:
        blob = root / "blobs/sha256" / layer["digest"].split(":")[1]
        assert blob.stat().st_size == layer["size"]
        assert "sha256:" + hashlib.sha256(blob.read_bytes()).hexdigest() == layer["digest"]


def test_ctrl_c_stops_a_pull_with_one_line_and_the_next_pull_resumes(
    registry_images: RegistryImages, proxy: Proxy, tmp_path: Path, env: dict[str, str]
) -> None:
    root = tmp_path / "store"
    ref = f"{proxy.host}/layers:latest"
    proxy.throttle = 0.05
    process = subprocess.Popen(
        [PYRUN, "image", "--root", str(root), "pull", "--tls-verify=false", ref],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any(ingest_files(root).values()):
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    _out, err = process.communicate(timeout=30)
    assert process.returncode == 130, err
    assert err.splitlines()[-1] == "pyrun: interrupted" and "Traceback" not in err
    assert stored_names(root) == {}
    proxy.clear()
    result = image_cli(root, "pull", "-q", "--tls-verify=false", ref, env=env)
    assert result.returncode == 0, result
