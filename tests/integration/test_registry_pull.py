"""`pyrun image pull` from a real docker-registry (distribution 2.8.2) fed by skopeo: OCI and
Docker schema2 manifests, by tag and by digest, indexes with two platforms, the insecure
flag, parallel downloads and layers already in the store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.imagecli import image_cli, stored_blobs, stored_names
from tests.support.oci_images import RegistryImages
from tests.support.proxy import Proxy

DOCKER_V2 = "application/vnd.docker.distribution.manifest.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def _short(digest: str) -> str:
    return digest.split(":", 1)[1][:12]


def test_pull_by_tag_stores_verified_blobs_and_names_the_manifest(
    registry_images: RegistryImages, tmp_path: Path, env: dict[str, str]
) -> None:
    root = tmp_path / "store"
    ref = registry_images.ref("busybox:latest")
    result = image_cli(root, "pull", "--tls-verify=false", ref, env=env)
    assert result.returncode == 0, result
    digest = registry_images.digests["busybox:latest"]
    assert result.stdout.strip() == digest
    manifest = registry_images.images.manifest("latest")
    blobs = [manifest["config"]["digest"]] + [d["digest"] for d in manifest["layers"]]
    assert sorted(result.stderr.split("\n")[:-1]) == sorted(f"{_short(b)}: done" for b in blobs)

    named = stored_names(root)[ref]
    assert named["digest"] == digest and named["mediaType"] == OCI_MANIFEST
    assert (
        named["annotations"]["io.pyrun.image.source"] == f"{registry_images.registry.host}/busybox"
    )
    assert named["platform"] == {"architecture": "amd64", "os": "linux"}
    assert stored_blobs(root) == {digest, *blobs}
    for blob in blobs:  # byte for byte what umoci wrote
        stored = (root / "blobs" / "sha256" / blob.split(":")[1]).read_bytes()
        assert stored == registry_images.images.blob(blob)

    again = image_cli(root, "pull", "--tls-verify=false", ref, env=env)
    assert again.returncode == 0, again
    assert sorted(again.stderr.split("\n")[:-1]) == sorted(f"{_short(b)}: skipped" for b in blobs)


def test_pull_by_digest_and_schema2(
    registry_images: RegistryImages, tmp_path: Path, env: dict[str, str]
) -> None:
    root = tmp_path / "store"
    v2s2 = registry_images.digests["busybox:v2s2"]
    by_digest = registry_images.ref(f"busybox@{v2s2}")
    result = image_cli(root, "pull", "-q", "--tls-verify=false", by_digest, env=env)
    assert result.returncode == 0, result
    assert result.stdout.strip() == v2s2 and result.stderr == ""
    named = stored_names(root)[by_digest]
    assert named["mediaType"] == DOCKER_V2
    manifest = json.loads((root / "blobs" / "sha256" / v2s2.split(":")[1]).read_bytes())
    assert manifest["mediaType"] == DOCKER_V2
    assert manifest["layers"][0]["mediaType"] == "application/vnd.docker.image.rootfs.diff.tar.gzip"
    # The same layer bytes as the OCI image: one blob in the store serves both.
    oci_layer = registry_images.images.manifest("latest")["layers"][0]["digest"]
    assert manifest["layers"][0]["digest"] == oci_layer

    # A digest the registry does not have: the registry's own error, named.
    missing = registry_images.ref("busybox@sha256:" + "0" * 64)
    result = image_cli(root, "pull", "--tls-verify=false", missing, env=env)
    assert result.returncode == 1
    assert "HTTP 404: MANIFEST_UNKNOWN" in result.stderr, result


def test_names_with_digests_pull_inspect_and_remove_like_docker(
    registry_images: RegistryImages, tmp_path: Path, env: dict[str, str]
) -> None:
    """repo:tag@digest pulls the digest (the tag says nothing) and names it repo@digest;
    inspect and rm take repo@digest; a tag may not carry a digest; rm by a digest nothing
    has is an error, not a silent success."""
    root = tmp_path / "store"
    digest = registry_images.digests["busybox:latest"]
    repository = registry_images.ref("busybox")
    pulled = image_cli(
        root, "pull", "-q", "--tls-verify=false", f"{repository}:ignored@{digest}", env=env
    )
    assert pulled.returncode == 0 and pulled.stdout.strip() == digest, pulled
    assert list(stored_names(root)) == [f"{repository}@{digest}"]
    inspected = image_cli(root, "inspect", f"{repository}@{digest}", env=env)
    assert inspected.returncode == 0 and json.loads(inspected.stdout)["Digest"] == digest

    assert image_cli(root, "tag", f"{repository}@{digest}", "localhost/mine:1").returncode == 0
    refused = image_cli(root, "tag", "localhost/mine:1", f"localhost/mine@{digest}")
    assert refused.returncode == 1
    assert "refusing to create a tag with a digest reference" in refused.stderr
    nothing = image_cli(root, "rm", f"{repository}@sha256:{'0' * 64}")
    assert nothing.returncode == 1 and "is not in the store" in nothing.stderr
    removed = image_cli(root, "rm", f"{repository}@{digest}")
    assert removed.returncode == 0, removed
    assert list(stored_names(root)) == ["localhost/mine:1"]  # another repository's name stays


def test_pull_index_selects_the_platform(
    registry_images: RegistryImages, tmp_path: Path, env: dict[str, str]
) -> None:
    images = registry_images.images
    ref = registry_images.ref("multiarch:latest")
    index_digest = registry_images.digests["multiarch:latest"]
    root = tmp_path / "store"

    result = image_cli(root, "pull", "--tls-verify=false", ref, env=env)  # this host: amd64
    assert result.returncode == 0, result
    assert result.stdout.strip() == images.manifests["latest"]
    named = stored_names(root)[ref]
    assert named["annotations"]["io.pyrun.image.index"] == index_digest
    assert named["annotations"]["io.pyrun.image.index.mediaType"].endswith("image.index.v1+json")
    assert named["platform"] == {"architecture": "amd64", "os": "linux"}
    # The index is kept with the name: --raw shows what skopeo shows, gc leaves it.
    raw = image_cli(root, "inspect", "--raw", ref, env=env)
    assert raw.returncode == 0 and raw.stdout.encode() == registry_images.registry.inspect(
        "multiarch:latest", raw=True
    )
    assert image_cli(root, "gc", env=env).returncode == 0
    assert index_digest in stored_blobs(root)
    inspected = json.loads(image_cli(root, "inspect", ref, env=env).stdout)
    assert inspected["Digest"] == registry_images.registry.inspect("multiarch:latest")["Digest"]
    by_index = image_cli(root, "inspect", f"{ref.rsplit(':', 1)[0]}@{index_digest}", env=env)
    assert by_index.returncode == 0 and json.loads(by_index.stdout)["Digest"] == index_digest

    for platform in ("linux/arm64", "linux/arm64/v8", "linux/aarch64"):
        result = image_cli(root, "pull", "--platform", platform, "--tls-verify=false", ref, env=env)
        assert result.returncode == 0, result
        assert result.stdout.strip() == images.manifests["arm64"]
        named = stored_names(root)[ref]
        assert named["platform"] == {"architecture": "arm64", "os": "linux", "variant": "v8"}

    result = image_cli(
        root, "pull", "--platform", "linux/s390x", "--tls-verify=false", ref, env=env
    )
    assert result.returncode == 1
    assert "no manifest for platform linux/s390x in the index" in result.stderr
    assert "linux/amd64, linux/arm64/v8" in result.stderr

    # A single-platform image asked for another platform: refused before the layers come.
    result = image_cli(
        tmp_path / "other",
        "pull",
        "--platform",
        "linux/arm64",
        "--tls-verify=false",
        registry_images.ref("busybox:latest"),
        env=env,
    )
    assert result.returncode == 1
    assert "is for linux/amd64, not the platform linux/arm64/v8" in result.stderr


def test_plain_http_needs_the_insecure_flag_or_registries_conf(
    registry_images: RegistryImages, tmp_path: Path, env: dict[str, str]
) -> None:
    root = tmp_path / "store"
    ref = registry_images.ref("busybox:latest")
    result = image_cli(root, "pull", ref, env=env)
    assert result.returncode == 1
    assert "TLS handshake failed" in result.stderr
    assert "--tls-verify=false" in result.stderr
    assert stored_names(root) == {}

    conf = Path(env["XDG_CONFIG_HOME"]) / "pyrun" / "registries.conf"
    conf.parent.mkdir(parents=True)
    conf.write_text(
        f'[[registry]]\nlocation = "{registry_images.registry.host}"\ninsecure = true\n'
    )
    result = image_cli(root, "pull", "-q", ref, env=env)
    assert result.returncode == 0, result
    # --tls-verify=true overrides the file.
    result = image_cli(root, "pull", "--tls-verify=true", ref, env=env)
    assert result.returncode == 1 and "TLS handshake failed" in result.stderr


def test_pull_through_mirrors_in_registries_conf(
    registry_images: RegistryImages, tmp_path: Path, env: dict[str, str]
) -> None:
    """example.invalid does not exist; its mirrors do: one without the image (passed over),
    then the real one. The image keeps the name that was asked for."""
    host = registry_images.registry.host
    conf = Path(env["XDG_CONFIG_HOME"]) / "pyrun" / "registries.conf"
    conf.parent.mkdir(parents=True)
    mirrors = (
        '[[registry]]\nprefix = "example.invalid"\nlocation = "example.invalid"\n'
        f'[[registry.mirror]]\nlocation = "{host}/elsewhere"\ninsecure = true\n'
        f'[[registry.mirror]]\nlocation = "{host}"\ninsecure = true\n'
    )
    conf.write_text(mirrors)
    root = tmp_path / "store"
    result = image_cli(root, "pull", "-q", "example.invalid/busybox:latest", env=env)
    assert result.returncode == 0, result
    assert result.stdout.strip() == registry_images.images.manifests["latest"]
    named = stored_names(root)["example.invalid/busybox:latest"]
    assert named["annotations"]["io.pyrun.image.source"] == f"{host}/busybox"

    # A digest-only mirror is not asked for a tag: the registry itself fails, and says which
    # mirrors were tried.
    conf.write_text(mirrors + 'pull-from-mirror = "digest-only"\n')
    result = image_cli(tmp_path / "other", "pull", "-q", "example.invalid/busybox:1", env=env)
    assert result.returncode == 1
    assert "https://example.invalid" in result.stderr
    assert f"mirrors tried first: {host}/elsewhere/busybox:" in result.stderr
    assert "MANIFEST_UNKNOWN" in result.stderr or "NAME_UNKNOWN" in result.stderr
    by_digest = f"example.invalid/busybox@{registry_images.images.manifests['latest']}"
    result = image_cli(tmp_path / "other", "pull", "-q", by_digest, env=env)
    assert result.returncode == 0, result


def _max_overlap(intervals: list[tuple[float, float]]) -> int:
    events = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals])
    current = best = 0
    for _, step in events:
        current += step
        best = max(best, current)
    return best


def test_layers_in_parallel_and_present_layers_not_requested(
    registry_images: RegistryImages, tmp_path: Path, env: dict[str, str]
) -> None:
    images = registry_images.images
    root = tmp_path / "store"
    with Proxy(registry_images.registry.host) as proxy:
        base = f"{proxy.host}/busybox:latest"
        assert image_cli(root, "pull", "-q", "--tls-verify=false", base, env=env).returncode == 0
        proxy.clear()
        proxy.throttle = 0.02  # 64 KiB per 20 ms: each 1.5 MiB layer takes ~0.5 s
        result = image_cli(root, "pull", "--tls-verify=false", f"{proxy.host}/layers", env=env)
        assert result.returncode == 0, result

    manifest = images.manifest("layers")
    shared = manifest["layers"][0]["digest"]  # busybox's layer, pulled with busybox
    assert shared == images.manifest("latest")["layers"][0]["digest"]
    assert f"{_short(shared)}: skipped" in result.stderr
    gets = [r for r in proxy.requests if r.method == "GET" and "/blobs/" in r.path]
    assert not [r for r in gets if shared in r.path], "a layer in the store was fetched again"
    fetched = {r.path.rsplit("/", 1)[1] for r in gets}
    assert fetched == {d["digest"] for d in manifest["layers"][1:]} | {manifest["config"]["digest"]}
    layer_gets = [(r.start, r.end) for r in gets if r.sent > 1 << 20]
    assert len(layer_gets) == 4
    assert _max_overlap(layer_gets) >= 3, layer_gets


def test_the_click_free_pull_answers_like_the_command(
    registry_images: RegistryImages,
    tmp_path: Path,
    env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from imagetools.quick import main

    for key in ("HOME", "XDG_CONFIG_HOME", "DOCKER_CONFIG"):
        monkeypatch.setenv(key, env[key])
    ref = registry_images.ref("busybox:latest")
    for args in (["pull", ref], ["pull", "-q", "--tls-verify=false", ref]):
        root = tmp_path / f"store{len(args)}"
        command = image_cli(root, *args, env=env)
        code = main(["--root", str(tmp_path / f"quick{len(args)}"), *args])
        out, err = capsys.readouterr()
        assert (code, out, err) == (command.returncode, command.stdout, command.stderr)
