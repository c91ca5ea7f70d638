"""registryd as a pull-through cache (``proxy:``) in front of a real upstream: Debian's
docker-registry (distribution 2.8) holding the test images pushed by skopeo.

skopeo and ``pyrun image pull`` through the cache get the upstream's bytes; a cached tag and
digest are served when the upstream is gone (stale tag), a never-cached image is a spec error;
one platform of an index fetches only its child; a corrupt upstream blob is refused and not
stored; concurrent pulls of a missing blob fetch it once; writes are 405 UNSUPPORTED; upstream
basic auth, auth in front of the cache and ``registryd gc`` keep working.

Each test runs its own registryd (storage in tmp_path), stopped by pid.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.imagecli import image_cli, image_env
from tests.support.oci_images import OCIImages, RegistryImages
from tests.support.proxy import Fault, Proxy
from tests.support.registry import Registry, clear_skopeo_cache, free_port, start_registry
from tests.support.registryd import REGISTRYD, Registryd, basic_auth, write_htpasswd

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed"),
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def proxy_config(upstream: str, extra: str = "") -> str:
    return f"proxy:\n  remoteurl: http://{upstream}\n{extra}"


def start_cache(workdir: Path, upstream: str, extra: str = "") -> Registryd:
    return Registryd(workdir, proxy_config(upstream, extra)).start()


@pytest.fixture
def cache(tmp_path: Path, registry_images: RegistryImages) -> Iterator[Registryd]:
    server = start_cache(tmp_path / "cache", registry_images.registry.host)
    try:
        yield server
    finally:
        server.close()


def skopeo(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        ["skopeo", "--insecure-policy", *args], capture_output=True, text=True, timeout=300
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def raw(server: Registryd, repo_ref: str, *creds: str) -> bytes:
    return skopeo(
        "inspect", "--tls-verify=false", *creds, "--raw", f"docker://{server.host}/{repo_ref}"
    ).stdout.encode()


def error_code(body: bytes) -> str:
    return str(json.loads(body)["errors"][0]["code"])


def stored_blob(server: Registryd, digest: str) -> Path:
    hex_ = digest.split(":", 1)[1]
    return server.root / "blobs" / "sha256" / hex_[:2] / hex_


def revisions(server: Registryd, repo: str) -> set[str]:
    directory = server.root / "repositories" / repo / "_manifests" / "revisions" / "sha256"
    return {f"sha256:{n}" for n in os.listdir(directory)} if directory.exists() else set()


def metric(server: Registryd, kind: str, result: str) -> int:
    _status, _headers, body = server.request("GET", "/metrics")
    key = f'registryd_proxy_lookups_total{{kind="{kind}",result="{result}"}} '
    for line in body.decode().splitlines():
        if line.startswith(key):
            return int(line[len(key) :])
    return 0


def test_skopeo_through_the_cache_gets_the_upstreams_bytes(
    cache: Registryd, registry_images: RegistryImages, oci_images: OCIImages, tmp_path: Path
) -> None:
    upstream = registry_images.registry
    for repo_tag in ("busybox:latest", "busybox:v2s2"):
        body = raw(cache, repo_tag)
        assert body == upstream.inspect(repo_tag, raw=True)
        assert sha(body) == registry_images.digests[repo_tag]
    clear_skopeo_cache()
    out = tmp_path / "out"
    skopeo(
        "copy",
        "--src-tls-verify=false",
        f"docker://{cache.host}/busybox:latest",
        f"oci:{out}:copied",
    )
    index = json.loads((out / "index.json").read_text())
    assert index["manifests"][0]["digest"] == registry_images.digests["busybox:latest"]
    # What was served is what is stored now: config and layers, byte for byte.
    manifest = oci_images.manifest("latest")
    for descriptor in [manifest["config"], *manifest["layers"]]:
        assert stored_blob(cache, descriptor["digest"]).read_bytes() == oci_images.blob(
            descriptor["digest"]
        )
    assert os.listdir(cache.root / "tmp") == []
    assert metric(cache, "blob", "miss") == 2
    # A second copy is served from the cache: hits only, no new misses.
    clear_skopeo_cache()
    skopeo(
        "copy", "--src-tls-verify=false", f"docker://{cache.host}/busybox:latest", f"oci:{out}:2"
    )
    assert metric(cache, "blob", "miss") == 2
    assert metric(cache, "manifest", "hit") >= 1
    # Tags and catalog list what is cached.
    status, _h, body = cache.request("GET", "/v2/busybox/tags/list")
    assert status == 200 and json.loads(body)["tags"] == ["latest", "v2s2"]
    status, _h, body = cache.request("GET", "/v2/_catalog")
    assert json.loads(body)["repositories"] == ["busybox"]


def test_unknown_upstream_images_are_spec_errors(cache: Registryd) -> None:
    status, _h, body = cache.request("GET", "/v2/busybox/manifests/no-such-tag")
    assert (status, error_code(body)) == (404, "MANIFEST_UNKNOWN")
    status, _h, body = cache.request("GET", "/v2/no/such/repo/manifests/latest")
    assert status == 404 and error_code(body) in ("NAME_UNKNOWN", "MANIFEST_UNKNOWN")
    missing = sha(b"never pushed")
    status, _h, body = cache.request("GET", f"/v2/busybox/blobs/{missing}")
    assert (status, error_code(body)) == (404, "BLOB_UNKNOWN")
    status, _h, _b = cache.request("HEAD", f"/v2/busybox/blobs/{missing}")
    assert status == 404
    assert not stored_blob(cache, missing).exists()


def test_pyrun_pull_through_the_cache(
    cache: Registryd, registry_images: RegistryImages, oci_images: OCIImages, tmp_path: Path
) -> None:
    env = image_env(tmp_path)
    ref = f"{cache.host}/layers:latest"
    pulled = image_cli(tmp_path / "store", "pull", "--tls-verify=false", "-q", ref, env=env)
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.stdout.strip() == registry_images.digests["layers:latest"]
    for layer in oci_images.manifest("layers")["layers"]:
        assert sha(stored_blob(cache, layer["digest"]).read_bytes()) == layer["digest"]


def test_cached_content_survives_a_dead_upstream(
    tmp_path: Path, registry_images: RegistryImages, oci_images: OCIImages
) -> None:
    upstream = registry_images.registry.host
    # ttl 0: every tag lookup asks the upstream, so the restart below must fall back.
    server = start_cache(tmp_path / "cache", upstream, "  ttl: 0\n")
    env = image_env(tmp_path)
    digest = registry_images.digests["busybox:latest"]
    try:
        ref = f"{server.host}/busybox:latest"
        first = image_cli(tmp_path / "s1", "pull", "--tls-verify=false", "-q", ref, env=env)
        assert first.returncode == 0, first.stderr
        assert server.stop() == 0
        # Same storage root, an upstream where nothing listens.
        server.config = proxy_config(f"127.0.0.1:{free_port()}", "  ttl: 0\n")
        server.start()
        ref = f"{server.host}/busybox:latest"
        again = image_cli(tmp_path / "s2", "pull", "--tls-verify=false", "-q", ref, env=env)
        assert again.returncode == 0, again.stderr
        assert again.stdout.strip() == digest
        assert "serving the cached busybox:latest" in server.log()
        assert metric(server, "manifest", "stale") >= 1
        by_digest = f"{server.host}/busybox@{digest}"
        pulled = image_cli(tmp_path / "s3", "pull", "--tls-verify=false", "-q", by_digest, env=env)
        assert pulled.returncode == 0, pulled.stderr
        # Never cached: a spec error that names the failing upstream.
        status, _h, body = server.request("GET", "/v2/layers/manifests/latest")
        assert status == 502 and error_code(body) == "UNAVAILABLE"
        assert "upstream" in json.loads(body)["errors"][0]["message"]
        layer = oci_images.manifest("layers")["layers"][-1]["digest"]
        status, _h, body = server.request("GET", f"/v2/layers/blobs/{layer}")
        assert status == 502 and error_code(body) == "UNAVAILABLE"
    finally:
        server.close()


def test_one_platform_of_an_index_fetches_only_its_child(
    cache: Registryd, registry_images: RegistryImages, oci_images: OCIImages, tmp_path: Path
) -> None:
    index_digest = registry_images.digests["multiarch:latest"]
    amd64, arm64 = oci_images.manifests["latest"], oci_images.manifests["arm64"]
    env = image_env(tmp_path)
    ref = f"{cache.host}/multiarch:latest"
    pulled = image_cli(
        tmp_path / "store",
        "pull",
        "--tls-verify=false",
        "--platform",
        "linux/arm64/v8",
        "-q",
        ref,
        env=env,
    )
    assert pulled.returncode == 0, pulled.stderr
    assert revisions(cache, "multiarch") == {index_digest, arm64}
    assert not stored_blob(cache, amd64).exists()
    assert raw(cache, "multiarch:latest") == registry_images.registry.inspect(
        "multiarch:latest", raw=True
    )
    # A client that cannot take an index gets this host's child, fetched on demand.
    status, headers, body = cache.request(
        "GET", "/v2/multiarch/manifests/latest", headers={"Accept": OCI_MANIFEST}
    )
    assert status == 200 and headers["Docker-Content-Digest"] == amd64 == sha(body)
    assert revisions(cache, "multiarch") == {index_digest, arm64, amd64}


def test_a_corrupt_upstream_blob_is_refused_and_not_stored(
    tmp_path: Path, proxy: Proxy, oci_images: OCIImages
) -> None:
    layer = oci_images.manifest("latest")["layers"][0]["digest"]
    server = start_cache(tmp_path / "cache", proxy.host)
    try:
        proxy.add(f"GET /v2/busybox/blobs/{layer}", Fault(corrupt_at=1000))
        status, _h, body = server.request("GET", f"/v2/busybox/blobs/{layer}")
        assert (status, error_code(body)) == (502, "DIGEST_INVALID")
        assert not stored_blob(server, layer).exists()
        assert os.listdir(server.root / "tmp") == []
        assert not (server.root / "repositories" / "busybox" / "_layers").exists()
        # The fault was one-off: the next request fetches the good bytes.
        status, headers, body = server.request("GET", f"/v2/busybox/blobs/{layer}")
        assert status == 200 and sha(body) == layer == headers["Docker-Content-Digest"]
        assert stored_blob(server, layer).read_bytes() == body
    finally:
        server.close()


def test_concurrent_pulls_of_a_missing_blob_fetch_it_once(
    tmp_path: Path, proxy: Proxy, oci_images: OCIImages
) -> None:
    layer = oci_images.manifest("latest")["layers"][0]["digest"]
    expected = oci_images.blob(layer)
    server = start_cache(tmp_path / "cache", proxy.host)
    proxy.throttle = 0.02  # per 64 KiB: the requests overlap the download
    results: list[tuple[int, bytes]] = []

    def fetch() -> None:
        status, _h, body = server.request("GET", f"/v2/busybox/blobs/{layer}")
        results.append((status, body))

    try:
        threads = [threading.Thread(target=fetch) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert [status for status, _b in results] == [200] * 6
        assert all(body == expected for _s, body in results)
        assert len(proxy.find("GET", f"/blobs/{layer}")) == 1
    finally:
        server.close()


def test_writes_are_refused(cache: Registryd) -> None:
    for method, path in (
        ("POST", "/v2/busybox/blobs/uploads/"),
        ("PUT", "/v2/busybox/manifests/latest"),
        ("DELETE", "/v2/busybox/manifests/latest"),
        ("DELETE", f"/v2/busybox/blobs/{sha(b'x')}"),
    ):
        status, _h, body = cache.request(method, path, b"{}")
        assert (status, error_code(body)) == (405, "UNSUPPORTED"), (method, path)
    assert os.listdir(cache.root / "uploads") == []


def test_upstream_with_basic_auth(tmp_path: Path, oci_images: OCIImages) -> None:
    with start_registry(tmp_path / "upstream", "htpasswd") as upstream:
        _test_upstream_with_basic_auth(tmp_path, oci_images, upstream)


def _test_upstream_with_basic_auth(
    tmp_path: Path, oci_images: OCIImages, upstream: Registry
) -> None:
    upstream.copy_in(oci_images.ref("latest"), "private/busybox:1")
    assert upstream.creds is not None
    user, password = upstream.creds.split(":", 1)
    good = start_cache(
        tmp_path / "good", upstream.host, f"  username: {user}\n  password: {password}\n"
    )
    anonymous = start_cache(tmp_path / "anonymous", upstream.host)
    try:
        body = raw(good, "private/busybox:1")
        assert sha(body) == oci_images.manifests["latest"]
        layer = oci_images.manifest("latest")["layers"][0]["digest"]
        status, _h, blob = good.request("GET", f"/v2/private/busybox/blobs/{layer}")
        assert status == 200 and sha(blob) == layer
        status, _h, body = anonymous.request("GET", "/v2/private/busybox/manifests/1")
        assert status == 502 and error_code(body) == "UNAVAILABLE"
        assert "credentials" in json.loads(body)["errors"][0]["message"]
    finally:
        good.close()
        anonymous.close()


def test_auth_in_front_of_the_cache(tmp_path: Path, registry_images: RegistryImages) -> None:
    workdir = tmp_path / "cache"
    workdir.mkdir()
    htpasswd = write_htpasswd(workdir / "htpasswd", {"alice": "wonder"})
    extra = f"auth:\n  htpasswd: {{realm: cache, path: {htpasswd}}}\n"
    server = Registryd(workdir, proxy_config(registry_images.registry.host) + extra).start()
    try:
        status, headers, _b = server.request("GET", "/v2/busybox/manifests/latest")
        assert status == 401 and headers["WWW-Authenticate"].startswith("Basic")
        assert revisions(server, "busybox") == set()  # nothing fetched for a refused client
        body = raw(server, "busybox:latest", "--creds", "alice:wonder")
        assert sha(body) == registry_images.digests["busybox:latest"]
        status, _h, _b = server.request(
            "POST", "/v2/busybox/blobs/uploads/", b"", basic_auth("alice", "wonder")
        )
        assert status == 405
    finally:
        server.close()


def test_gc_keeps_what_the_cache_holds(
    cache: Registryd, registry_images: RegistryImages, oci_images: OCIImages, tmp_path: Path
) -> None:
    env = image_env(tmp_path)
    ref = f"{cache.host}/busybox:latest"
    assert (
        image_cli(tmp_path / "s1", "pull", "--tls-verify=false", "-q", ref, env=env).returncode == 0
    )
    manifest = oci_images.manifest("latest")
    wanted = [registry_images.digests["busybox:latest"], manifest["config"]["digest"]]
    wanted += [layer["digest"] for layer in manifest["layers"]]
    result = subprocess.run(
        [REGISTRYD, "gc", "--root", str(cache.root), "--grace", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "0 removed" in result.stdout
    assert all(stored_blob(cache, digest).exists() for digest in wanted)
    again = image_cli(tmp_path / "s2", "pull", "--tls-verify=false", "-q", ref, env=env)
    assert again.returncode == 0 and again.stdout.strip() == wanted[0]


def test_pyrun_uses_the_cache_as_a_registries_conf_mirror(
    cache: Registryd, registry_images: RegistryImages, tmp_path: Path
) -> None:
    env = image_env(tmp_path)
    conf = Path(env["XDG_CONFIG_HOME"]) / "pyrun" / "registries.conf"
    conf.parent.mkdir(parents=True)
    # hub.invalid cannot resolve: the image can only come through the mirror.
    conf.write_text(
        '[[registry]]\nprefix = "hub.invalid"\nlocation = "hub.invalid"\n'
        f'[[registry.mirror]]\nlocation = "{cache.host}"\ninsecure = true\n'
    )
    pulled = image_cli(tmp_path / "store", "pull", "-q", "hub.invalid/busybox:latest", env=env)
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.stdout.strip() == registry_images.digests["busybox:latest"]
    assert metric(cache, "manifest", "miss") >= 1 and metric(cache, "blob", "miss") == 2


def test_the_proxy_flag(tmp_path: Path, registry_images: RegistryImages) -> None:
    upstream = registry_images.registry.host
    server = Registryd(tmp_path / "flag", None, "--proxy", f"http://{upstream}").start()
    try:
        assert sha(raw(server, "busybox:v2s2")) == registry_images.digests["busybox:v2s2"]
        status, _h, body = server.request("POST", "/v2/busybox/blobs/uploads/")
        assert (status, error_code(body)) == (405, "UNSUPPORTED")
        assert f"pull-through cache of http://{upstream}" in server.log()
    finally:
        server.close()
