"""`pyrun image push` to a real docker-registry, checked by skopeo: digests agree, existing
blobs are skipped after a HEAD, blobs pulled from another repository of the same registry are
mounted, large blobs go up in chunks, and an index goes up with its manifests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from imagetools.push import push
from imagetools.store import Store
from tests.support.imagecli import image_cli, stored_blobs
from tests.support.oci_images import RegistryImages
from tests.support.proxy import Proxy


def _blob_requests(proxy: Proxy) -> list[str]:
    return [
        f"{r.method} {r.path.split('?')[0].rsplit('/', 1)[-1]} {r.status}"
        for r in proxy.requests
        if "/blobs/" in r.path
    ]


def test_push_mounts_then_skips_and_skopeo_agrees(
    registry_images: RegistryImages, proxy: Proxy, tmp_path: Path, env: dict[str, str]
) -> None:
    root = tmp_path / "store"
    source = f"{proxy.host}/busybox:latest"
    assert image_cli(root, "pull", "-q", "--tls-verify=false", source, env=env).returncode == 0
    digest = registry_images.digests["busybox:latest"]
    manifest = registry_images.images.manifest("latest")
    blobs = [manifest["config"]["digest"], manifest["layers"][0]["digest"]]
    proxy.clear()

    dest = f"{proxy.host}/pushed/busybox:v1"
    result = image_cli(root, "push", "--tls-verify=false", source, dest, env=env)
    assert result.returncode == 0, result
    assert result.stdout.strip() == digest
    for blob in blobs:
        assert f"{blob.split(':')[1][:12]}: mounted from busybox" in result.stderr
    mounts = [r for r in proxy.find("POST") if "mount=" in r.path]
    assert sorted(r.status for r in mounts) == [201, 201]
    assert all("from=busybox" in r.path for r in mounts)
    assert not proxy.find("PATCH") and not [r for r in proxy.find("PUT") if "/blobs/" in r.path]
    (put,) = proxy.find("PUT", "/manifests/")
    assert put.path == "/v2/pushed/busybox/manifests/v1" and put.status == 201
    assert put.headers["Content-Type"] == "application/vnd.oci.image.manifest.v1+json"
    # The registry's own log says the same.
    log = "\n".join(registry_images.registry.access_log())
    assert "POST /v2/pushed/busybox/blobs/uploads/?mount=" in log

    inspected = registry_images.registry.inspect("pushed/busybox:v1")
    assert inspected["Digest"] == digest
    assert inspected["Layers"] == [manifest["layers"][0]["digest"]]

    # Everything is there now: HEAD 200 for each blob, nothing uploaded, the manifest again.
    proxy.clear()
    result = image_cli(root, "push", "--tls-verify=false", source, dest, env=env)
    assert result.returncode == 0, result
    assert sorted(_blob_requests(proxy)) == sorted(f"HEAD {b} 200" for b in blobs)
    for blob in blobs:
        assert f"{blob.split(':')[1][:12]}: exists" in result.stderr
    assert not proxy.find("POST") and not proxy.find("PATCH")


def test_push_uploads_monolithic_and_chunked(
    registry_images: RegistryImages, proxy: Proxy, tmp_path: Path
) -> None:
    # Pulled straight from the registry, pushed through the proxy: a different registry name,
    # so nothing can be mounted and every blob is uploaded.
    store = Store(str(tmp_path / "store"))
    from imagetools.pull import pull

    source = registry_images.ref("layers:latest")
    pull(store, source, tls_verify=False)
    dest = f"{proxy.host}/uploaded/layers:latest"
    chunk = 512 << 10
    pushed = push(store, source, dest, tls_verify=False, monolithic_max=chunk, chunk_size=chunk)
    digest = registry_images.digests["layers:latest"]
    assert pushed["digest"] == digest
    manifest = registry_images.images.manifest("layers")
    starts = [r for r in proxy.find("POST", "/uploaded/layers/blobs/uploads/")]
    assert len(starts) == 1 + len(manifest["layers"]) and not any(
        "mount=" in r.path for r in starts
    )
    patches = proxy.find("PATCH")
    big = [d for d in manifest["layers"] if d["size"] > chunk]
    assert len(big) == 5  # busybox's (1 MiB) and the four random ones; the config is small
    # Each large layer in ceil(size / chunk) pieces, in order, with Content-Range.
    expected = sum(-(-d["size"] // chunk) for d in big)
    assert len(patches) == expected
    ranges = sorted(
        r.headers["Content-Range"] for r in patches if r.headers["Content-Range"].startswith("0-")
    )
    assert ranges == [f"0-{chunk - 1}"] * 5
    assert all(r.status == 202 for r in patches)
    finishes = [r for r in proxy.find("PUT") if "digest=" in r.path]
    assert len(finishes) == 1 + len(manifest["layers"]) and all(r.status == 201 for r in finishes)

    inspected = registry_images.registry.inspect("uploaded/layers:latest")
    assert inspected["Digest"] == digest
    assert inspected["Layers"] == [d["digest"] for d in manifest["layers"]]
    # And back: the registry holds exactly the bytes.
    again = Store(str(tmp_path / "again"))
    pull(again, f"{registry_images.registry.host}/uploaded/layers:latest", tls_verify=False)
    assert stored_blobs(tmp_path / "again") == stored_blobs(tmp_path / "store")


def test_push_an_index_with_its_manifests(
    registry_images: RegistryImages, tmp_path: Path, env: dict[str, str]
) -> None:
    images = registry_images.images
    store = Store(str(tmp_path / "store"))
    # The layout's blobs into the store, the name on the index (what `load` of a multi-platform
    # layout gives), written here so this test needs nothing but the store.
    for path in (images.layout / "blobs" / "sha256").iterdir():
        store.write_blob(path.read_bytes(), f"sha256:{path.name}")
    index = images.manifests["multiarch"]
    data = images.blob(index)
    host = registry_images.registry.host
    store.set_ref(
        f"{host}/local/multiarch:latest",
        {
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": index,
            "size": len(data),
        },
    )
    result = image_cli(
        tmp_path / "store",
        "push",
        "--tls-verify=false",
        f"{host}/local/multiarch:latest",
        f"{host}/pushed/multiarch:v1",
        env=env,
    )
    assert result.returncode == 0, result
    assert result.stdout.strip() == index
    raw = registry_images.registry.inspect("pushed/multiarch:v1", raw=True)
    assert raw == data and "sha256:" + hashlib.sha256(raw).hexdigest() == index
    for entry in json.loads(data)["manifests"]:
        child = registry_images.registry.inspect(f"pushed/multiarch@{entry['digest']}", raw=True)
        assert "sha256:" + hashlib.sha256(child).hexdigest() == entry["digest"]


def test_push_of_an_unknown_image(
    registry_images: RegistryImages, tmp_path: Path, env: dict[str, str]
) -> None:
    root = tmp_path / "store"
    result = image_cli(
        root, "push", "--tls-verify=false", registry_images.ref("nothing:here"), env=env
    )
    assert result.returncode == 1
    assert result.stderr == (
        f"pyrun: image {registry_images.ref('nothing:here')} is not in the store ({root})\n"
    )
