"""registryd with the real clients, unchanged: skopeo (copy both ways, OCI and Docker schema2,
an index with --all, inspect, list-tags, delete), podman (push, pull) and ``pyrun image``
(an image pushed by skopeo, pulled by pyrun, unpacked and run with ``pyrun run``).

Each test starts its own registryd on a free port with its storage in tmp_path.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.conftest import Runtime
from tests.support.imagecli import image_cli, image_env
from tests.support.oci_images import OCIImages
from tests.support.registry import clear_skopeo_cache
from tests.support.registryd import Registryd, registryd_fixture

pytestmark = pytest.mark.root
registryd = registryd_fixture

SKOPEO = shutil.which("skopeo")
PODMAN = shutil.which("podman")
needs_skopeo = pytest.mark.skipif(SKOPEO is None, reason="skopeo is not installed")
needs_podman = pytest.mark.skipif(PODMAN is None, reason="podman is not installed")


def skopeo(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    assert SKOPEO is not None
    result = subprocess.run(
        [SKOPEO, "--insecure-policy", *args], capture_output=True, text=True, timeout=300
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def push(images: OCIImages, tag: str, server: Registryd, repo_tag: str, *extra: str) -> None:
    clear_skopeo_cache()
    skopeo(
        "copy",
        "--dest-tls-verify=false",
        *extra,
        f"oci:{images.ref(tag)}",
        f"docker://{server.host}/{repo_tag}",
    )


def raw_manifest(server: Registryd, repo_tag: str) -> bytes:
    return skopeo(
        "inspect", "--tls-verify=false", "--raw", f"docker://{server.host}/{repo_tag}"
    ).stdout.encode()


@needs_skopeo
def test_skopeo_round_trip_oci(registryd: Registryd, oci_images: OCIImages, tmp_path: Path) -> None:
    push(oci_images, "layers", registryd, "lib/layers:1")
    # Stored byte for byte: the registry's digest is the layout's digest.
    raw = raw_manifest(registryd, "lib/layers:1")
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == oci_images.manifests["layers"]
    info = json.loads(
        skopeo("inspect", "--tls-verify=false", f"docker://{registryd.host}/lib/layers:1").stdout
    )
    assert info["Digest"] == oci_images.manifests["layers"]
    assert info["RepoTags"] == ["1"]
    assert info["Layers"] == [d["digest"] for d in oci_images.manifest("layers")["layers"]]
    config = json.loads(
        skopeo(
            "inspect", "--tls-verify=false", "--config", f"docker://{registryd.host}/lib/layers:1"
        ).stdout
    )
    assert (
        config["rootfs"]["diff_ids"]
        == json.loads(oci_images.blob(oci_images.manifest("layers")["config"]["digest"]))["rootfs"][
            "diff_ids"
        ]
    )
    clear_skopeo_cache()
    out = tmp_path / "pulled"
    skopeo(
        "copy", "--src-tls-verify=false", f"docker://{registryd.host}/lib/layers:1", f"oci:{out}:x"
    )
    for layer in oci_images.manifest("layers")["layers"]:
        blob = out / "blobs" / "sha256" / layer["digest"].split(":")[1]
        assert blob.read_bytes() == oci_images.blob(layer["digest"])


@needs_skopeo
def test_skopeo_docker_schema2(registryd: Registryd, oci_images: OCIImages) -> None:
    push(oci_images, "latest", registryd, "busybox:v2s2", "--format", "v2s2")
    status, headers, body = registryd.request(
        "GET",
        "/v2/busybox/manifests/v2s2",
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json"},
    )
    assert status == 200
    assert headers["Content-Type"] == "application/vnd.docker.distribution.manifest.v2+json"
    assert json.loads(body)["mediaType"] == headers["Content-Type"]
    assert headers["Docker-Content-Digest"] == "sha256:" + hashlib.sha256(body).hexdigest()


@needs_skopeo
def test_skopeo_index_with_all(registryd: Registryd, oci_images: OCIImages, tmp_path: Path) -> None:
    push(oci_images, "multiarch", registryd, "multi:1", "--all")
    raw = raw_manifest(registryd, "multi:1")
    assert json.loads(raw)["mediaType"] == "application/vnd.oci.image.index.v1+json"
    clear_skopeo_cache()
    skopeo(
        "copy",
        "--all",
        "--src-tls-verify=false",
        f"docker://{registryd.host}/multi:1",
        f"oci:{tmp_path / 'out'}:m",
    )
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert index["manifests"][0]["digest"] == oci_images.manifests["multiarch"]


@needs_skopeo
def test_skopeo_list_tags_and_delete(registryd: Registryd, oci_images: OCIImages) -> None:
    for tag in ("b", "a", "c"):
        push(oci_images, "latest", registryd, f"app:{tag}")
    tags = json.loads(
        skopeo("list-tags", "--tls-verify=false", f"docker://{registryd.host}/app").stdout
    )
    assert tags["Tags"] == ["a", "b", "c"]
    skopeo("delete", "--tls-verify=false", f"docker://{registryd.host}/app:a")
    # skopeo deletes by digest: the manifest and every tag pointing at it are gone.
    gone = skopeo("inspect", "--tls-verify=false", f"docker://{registryd.host}/app:b", check=False)
    assert gone.returncode != 0 and "manifest unknown" in gone.stderr
    tags = json.loads(
        skopeo("list-tags", "--tls-verify=false", f"docker://{registryd.host}/app").stdout
    )
    assert tags["Tags"] == []


@needs_skopeo
def test_skopeo_mounts_across_repositories(registryd: Registryd, oci_images: OCIImages) -> None:
    push(oci_images, "layers", registryd, "one/layers:1")
    # With its blob-info cache kept, skopeo mounts the known blobs from one/layers.
    skopeo(
        "copy",
        "--dest-tls-verify=false",
        f"oci:{oci_images.ref('layers')}",
        f"docker://{registryd.host}/two/layers:1",
    )
    mounts = [
        line
        for line in registryd.log().splitlines()
        if '"POST /v2/two/layers/blobs/uploads/?from=one%2Flayers&mount=sha256%3A' in line
    ]
    assert mounts and all('" 201 ' in line for line in mounts)
    assert raw_manifest(registryd, "two/layers:1") == raw_manifest(registryd, "one/layers:1")


class Podman:
    """podman with storage (vfs), config and temp dirs of its own under ``base``."""

    def __init__(self, base: Path) -> None:
        assert PODMAN is not None
        (base / "tmp").mkdir(parents=True)
        self.runroot = Path(tempfile.mkdtemp(prefix="registryd-"))  # podman wants <= 50 chars
        (base / "storage.conf").write_text(
            f'[storage]\ndriver = "vfs"\ngraphroot = "{base}/root"\nrunroot = "{self.runroot}"\n'
        )
        (base / "containers.conf").write_text('[engine]\nevents_logger = "none"\n')
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("CONTAINER", "PODMAN"))},
            "CONTAINERS_CONF": str(base / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(base / "storage.conf"),
            "TMPDIR": str(base / "tmp"),
            "HOME": str(base),
        }
        self.argv = [PODMAN, "--root", str(base / "root"), "--runroot", str(self.runroot)]

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*self.argv, *args], capture_output=True, text=True, env=self.env, timeout=300
        )
        assert result.returncode == 0, result.stderr
        return result

    def close(self) -> None:
        subprocess.run(
            [*self.argv, "system", "reset", "-f"], capture_output=True, env=self.env, timeout=120
        )
        shutil.rmtree(self.runroot, ignore_errors=True)


@needs_podman
@needs_skopeo
def test_podman_pull_and_push(registryd: Registryd, oci_images: OCIImages, tmp_path: Path) -> None:
    push(oci_images, "latest", registryd, "busybox:1")
    podman = Podman(tmp_path / "podman")
    try:
        podman("pull", "-q", "--tls-verify=false", f"{registryd.host}/busybox:1")
        podman("tag", f"{registryd.host}/busybox:1", f"{registryd.host}/copies/busybox:2")
        podman("push", "-q", "--tls-verify=false", f"{registryd.host}/copies/busybox:2")
        info = json.loads(
            skopeo(
                "inspect", "--tls-verify=false", f"docker://{registryd.host}/copies/busybox:2"
            ).stdout
        )
        assert info["Os"] == "linux" and len(info["Layers"]) == 1
        podman("rmi", "-a", "-f")
        podman("pull", "-q", "--tls-verify=false", f"{registryd.host}/copies/busybox:2")
        podman("rmi", "-a", "-f")
    finally:
        podman.close()


@needs_skopeo
def test_search_with_pyrun_and_podman(
    registryd: Registryd, oci_images: OCIImages, tmp_path: Path
) -> None:
    for repo in ("library/busybox:latest", "tools/busy-extra:1", "other/thing:1"):
        push(oci_images, "latest", registryd, repo)
    env = image_env(tmp_path)
    found = image_cli(
        tmp_path / "store", "search", "--tls-verify=false", f"{registryd.host}/busy", env=env
    )
    assert found.returncode == 0, found.stderr
    host = registryd.host
    width = len(f"{host}/tools/busy-extra")
    assert found.stdout.splitlines() == [
        f"{'NAME'.ljust(width)}   DESCRIPTION   STARS   OFFICIAL",
        f"{(host + '/library/busybox').ljust(width)}   {''.ljust(11)}   0",
        f"{host}/tools/busy-extra   {''.ljust(11)}   0",
    ]
    limited = image_cli(
        tmp_path / "store", "search", "--tls-verify=false", "--limit", "1", f"{host}/busy", env=env
    )
    assert len(limited.stdout.splitlines()) == 2
    if PODMAN is not None:
        podman = Podman(tmp_path / "podman")
        try:
            result = podman("search", "--tls-verify=false", "--format", "{{.Name}}", f"{host}/busy")
            assert result.stdout.splitlines() == [
                f"{host}/library/busybox",
                f"{host}/tools/busy-extra",
            ]
        finally:
            podman.close()


@needs_skopeo
def test_pushed_by_skopeo_pulled_by_pyrun_runs(
    registryd: Registryd, oci_images: OCIImages, tmp_path: Path, pyrun: Runtime
) -> None:
    push(oci_images, "latest", registryd, "library/busybox:1")
    env = image_env(tmp_path)
    store = tmp_path / "store"
    ref = f"{registryd.host}/library/busybox:1"
    pulled = image_cli(store, "pull", "--tls-verify=false", "-q", ref, env=env)
    assert pulled.returncode == 0, pulled.stderr
    assert pulled.stdout.strip() == oci_images.manifests["latest"]
    bundle = tmp_path / "bundle"
    unpacked = image_cli(store, "unpack", "--snapshotter", "vfs", ref, str(bundle), env=env)
    assert unpacked.returncode == 0, unpacked.stderr
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["args"] = ["/bin/sh", "-c", "echo hello from registryd"]
    (bundle / "config.json").write_text(json.dumps(config))
    run = pyrun.ok("run", "--bundle", str(bundle), pyrun.id())
    assert run.stdout == "hello from registryd\n"


@needs_skopeo
def test_pyrun_push_then_skopeo_pull(
    registryd: Registryd, oci_images: OCIImages, tmp_path: Path
) -> None:
    push(oci_images, "layers", registryd, "src/layers:1")
    env = image_env(tmp_path)
    store = tmp_path / "store"
    source = f"{registryd.host}/src/layers:1"
    assert image_cli(store, "pull", "--tls-verify=false", "-q", source, env=env).returncode == 0
    dest = f"{registryd.host}/dst/layers:2"
    pushed = image_cli(store, "push", "--tls-verify=false", "-q", source, dest, env=env)
    assert pushed.returncode == 0, pushed.stderr
    assert raw_manifest(registryd, "dst/layers:2") == raw_manifest(registryd, "src/layers:1")
    assert os.listdir(registryd.root / "uploads") == []
