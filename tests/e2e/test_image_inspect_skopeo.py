"""pyrun's image store against the real tools: skopeo reads the same images, podman and
containerd take what pyrun saves and give pyrun what they save.

- ``pyrun image inspect`` after a load prints what ``skopeo inspect oci:DIR:TAG`` prints, byte
  for byte once pyrun's extra fields (Name, LayersData; RepoTags, which skopeo leaves empty
  for a layout) are set aside; ``--config`` and ``--raw`` (manifest and config) are byte-equal.
- Against the test registry (tests/support/registry.py, oci_images.py): after ``pyrun image
  pull``, inspect agrees with ``skopeo inspect docker://`` on everything it prints, including
  Name, the registry's tags and, for a multi-platform image, the index digest.
- podman 4.3 (its own storage in a temp dir, vfs) loads pyrun's oci-archive and docker-archive
  with the image id pyrun shows; pyrun loads podman's saves with the same config and layers.
- containerd 1.6 (its own root and socket in a temp dir): ``ctr images import`` of pyrun's
  oci-archive gives the same name and manifest digest; pyrun loads ``ctr images export``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from imagetools.images import go_json
from tests.conftest import PYRUN
from tests.e2e.conftest import CONTAINERD_CONFIG, stop_daemon
from tests.support.oci_images import Archives, needs_archive_tools

pytestmark = needs_archive_tools


def pyrun(root: Path, *args: str) -> bytes:
    result = subprocess.run(
        [PYRUN, "image", "--root", str(root), *args], capture_output=True, timeout=120
    )
    assert result.returncode == 0, (args, result.stderr.decode())
    return result.stdout


def skopeo(*args: str) -> bytes:
    result = subprocess.run(["skopeo", *args], capture_output=True, timeout=120)
    assert result.returncode == 0, (args, result.stderr.decode())
    return result.stdout


def as_skopeo_prints_a_layout(info: dict[str, Any]) -> bytes:
    view = {k: v for k, v in info.items() if k not in ("Name", "LayersData")}
    view["RepoTags"] = []
    return (go_json(view) + "\n").encode()


# -- skopeo: OCI layouts ------------------------------------------------------------------------
@pytest.mark.parametrize("tag", ["latest", "multi"])
def test_inspect_is_skopeos_for_a_layout(archives: Archives, tmp_path: Path, tag: str) -> None:
    root = tmp_path / "store"
    pyrun(root, "load", "-i", str(archives.layout), "--name", "example.com/img")
    ref = f"example.com/img:{tag}"
    source = f"oci:{archives.layout}:{tag}"
    ours = json.loads(pyrun(root, "inspect", ref))
    assert as_skopeo_prints_a_layout(ours) == skopeo("inspect", source)
    assert pyrun(root, "inspect", "--config", ref) == skopeo("inspect", "--config", source)
    assert pyrun(root, "inspect", "--raw", ref) == skopeo("inspect", "--raw", source)
    assert pyrun(root, "inspect", "--raw", "--config", ref) == skopeo(
        "inspect", "--raw", "--config", source
    )
    assert ours["Name"] == "example.com/img"
    assert ours["RepoTags"] == ["latest", "multi"]
    manifest = archives.manifest(tag)
    assert ours["LayersData"] == [
        {"MIMEType": d["mediaType"], "Digest": d["digest"], "Size": d["size"], "Annotations": None}
        for d in manifest["layers"]
    ]
    # The image id and a digest prefix find the same image.
    by_id = json.loads(pyrun(root, "inspect", manifest["config"]["digest"][7:19]))
    assert by_id["Digest"] == ours["Digest"]


def test_inspect_of_a_docker_archive_is_skopeos_but_for_the_manifest(
    archives: Archives, tmp_path: Path
) -> None:
    """skopeo makes up a schema2 manifest for a docker-archive; pyrun stores an OCI one (see
    imagetools/archive.py): the config and everything read from it agree."""
    root = tmp_path / "store"
    pyrun(root, "load", "-i", str(archives.multi_docker))
    source = f"docker-archive:{archives.multi_docker}"
    ours = json.loads(pyrun(root, "inspect", "localhost/multi:1"))
    theirs = json.loads(skopeo("inspect", source))
    assert {**ours, "Digest": "", "Name": "", "RepoTags": [], "LayersData": None} == {
        **theirs,
        "Digest": "",
        "Name": "",
        "RepoTags": [],
        "LayersData": None,
    }
    assert pyrun(root, "inspect", "--config", "localhost/multi:1") == skopeo(
        "inspect", "--config", source
    )
    assert pyrun(root, "inspect", "--raw", "--config", "localhost/multi:1") == skopeo(
        "inspect", "--raw", "--config", source
    )


# -- skopeo: the registry -------------------------------------------------------------------------
def test_inspect_after_pull_is_skopeos_against_the_registry(
    registry_images: Any, tmp_path: Path
) -> None:
    root = tmp_path / "store"
    for repo_tag in ("busybox:latest", "busybox:v2s2", "multiarch:latest"):
        pyrun(root, "pull", "-q", "--tls-verify=false", registry_images.ref(repo_tag))
    for repo_tag in ("busybox:latest", "busybox:v2s2", "multiarch:latest"):
        ref = registry_images.ref(repo_tag)
        ours = json.loads(pyrun(root, "inspect", ref))
        theirs = registry_images.registry.inspect(repo_tag)
        assert {k: v for k, v in ours.items() if k != "LayersData"} == theirs, repo_tag
        assert ours["Digest"] == registry_images.digests[repo_tag]
        flags = ["--tls-verify=false", f"docker://{ref}"]
        assert pyrun(root, "inspect", "--config", ref) == skopeo("inspect", "--config", *flags)
        # For the multi-arch tag, both show the index (pull keeps it with the name).
        assert pyrun(root, "inspect", "--raw", ref) == skopeo("inspect", "--raw", *flags)
    # The platform manifest the name points at is the registry's, byte for byte.
    multiarch = registry_images.ref("multiarch:latest")
    platform = json.loads(pyrun(root, "ls", "--format", "json"))
    (digest,) = [row["Digest"] for row in platform if row["Name"] == multiarch]
    by_digest = f"docker://{multiarch.rsplit(':', 1)[0]}@{digest}"
    stored = (root / "blobs" / "sha256" / digest.partition(":")[2]).read_bytes()
    assert stored == skopeo("inspect", "--raw", "--tls-verify=false", by_digest)


# -- podman --------------------------------------------------------------------------------------
SHARED_DIRS = ("/var/lib/containers", "/run/containers")


class Podman:
    """podman with storage, run root and tmp dirs of its own (vfs: no mounts to clean)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        for name in ("root", "runroot", "tmp", "libpod"):
            (base / name).mkdir(parents=True, exist_ok=True)
        self.env = {**os.environ, "TMPDIR": str(base / "tmp")}

    def __call__(self, *args: str) -> str:
        argv = [
            "podman",
            "--root",
            str(self.base / "root"),
            "--runroot",
            str(self.base / "runroot"),
            "--storage-driver",
            "vfs",
            "--events-backend",
            "file",
            "--tmpdir",
            str(self.base / "libpod"),
            *args,
        ]
        result = subprocess.run(argv, capture_output=True, text=True, env=self.env, timeout=120)
        assert result.returncode == 0, (args, result.stderr)
        return result.stdout


@pytest.fixture
def podman() -> Iterator[Podman]:
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (make setup)")
    existed = {path: os.path.exists(path) for path in SHARED_DIRS}
    base = Path(tempfile.mkdtemp(prefix="pyrun-pm-", dir="/tmp"))  # run root: < 50 chars
    try:
        yield Podman(base)
    finally:
        shutil.rmtree(base, ignore_errors=True)
        for path, was in existed.items():
            if not was:
                shutil.rmtree(path, ignore_errors=True)


def test_podman_loads_pyrun_saves_and_pyrun_loads_podman_saves(
    archives: Archives, tmp_path: Path, podman: Podman
) -> None:
    root = tmp_path / "store"
    pyrun(root, "load", "-i", str(archives.multi_oci), "--name", "localhost/multi:oci")
    pyrun(root, "load", "-i", str(archives.multi_docker))  # localhost/multi:1
    image_id = archives.manifest("multi")["config"]["digest"]
    oci, docker = tmp_path / "pyrun-oci.tar", tmp_path / "pyrun-docker.tar"
    pyrun(root, "save", "-o", str(oci), "localhost/multi:oci")
    pyrun(root, "save", "-o", str(docker), "--format", "docker-archive", "localhost/multi:1")
    assert "Loaded image: localhost/multi:oci" in podman("load", "-i", str(oci))
    assert "Loaded image: localhost/multi:1" in podman("load", "-i", str(docker))
    listed = json.loads(podman("images", "--format", "json"))
    names = {name: entry["Id"] for entry in listed for name in entry.get("Names") or []}
    assert names == {"localhost/multi:oci": image_id[7:], "localhost/multi:1": image_id[7:]}
    short = pyrun(root, "ls", "-q").decode().split()
    assert short == [image_id[7:19]]

    # And back: podman's saves load into a new store as the same image.
    other = tmp_path / "other"
    for fmt in ("oci-archive", "docker-archive"):
        saved = tmp_path / f"podman-{fmt}.tar"
        podman("save", "--format", fmt, "-o", str(saved), "localhost/multi:oci")
        out = pyrun(other, "load", "-i", str(saved)).decode()
        assert out == "Loaded image: localhost/multi:oci\n", fmt
        info = json.loads(pyrun(other, "inspect", "localhost/multi:oci"))
        assert json.loads(pyrun(other, "inspect", "--raw", "--config", "localhost/multi:oci")) == (
            json.loads(archives.blob(image_id))
        )
        assert len(info["Layers"]) == 3


# -- containerd ----------------------------------------------------------------------------------
class Containerd:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.address = str(base / "containerd.sock")
        self.namespace = f"pyrun-images-{uuid.uuid4().hex[:8]}"
        config = CONTAINERD_CONFIG.format(
            root=base / "root", state=base / "state", address=self.address, opt=base / "opt"
        )
        (base / "config.toml").write_text(config)
        with open(base / "containerd.log", "wb") as log:
            self.proc = subprocess.Popen(
                ["containerd", "--config", str(base / "config.toml")],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if os.path.exists(self.address) and self.ctr_result("version").returncode == 0:
                return
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"containerd did not start: {(base / 'containerd.log').read_text()[-2000:]}")

    def ctr_result(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = ["ctr", "-a", self.address, "-n", self.namespace, *args]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60)

    def ctr(self, *args: str) -> str:
        result = self.ctr_result(*args)
        assert result.returncode == 0, (args, result.stderr)
        return result.stdout

    def stop(self) -> None:
        stop_daemon(self.proc)


@pytest.fixture
def containerd(tmp_path: Path) -> Iterator[Containerd]:
    if shutil.which("containerd") is None or shutil.which("ctr") is None:
        pytest.skip("containerd is not installed (make setup)")
    base = tmp_path / "containerd"
    base.mkdir()
    daemon = Containerd(base)
    yield daemon
    daemon.stop()
    with open("/proc/self/mounts") as mounts:
        assert str(base) not in mounts.read(), "containerd left a mount"


def test_containerd_imports_pyrun_saves_and_pyrun_loads_ctr_exports(
    archives: Archives, tmp_path: Path, containerd: Containerd
) -> None:
    root = tmp_path / "store"
    pyrun(root, "load", "-i", str(archives.layout), "--name", "docker.io/library/img")
    saved = tmp_path / "pyrun.tar"
    pyrun(root, "save", "-o", str(saved), "img:multi", "img:latest")
    containerd.ctr("images", "import", "--no-unpack", str(saved))
    listed = {
        line.split()[0]: line.split()[2] for line in containerd.ctr("images", "ls").splitlines()[1:]
    }
    assert listed == {
        "docker.io/library/img:multi": archives.manifest_digest("multi"),
        "docker.io/library/img:latest": archives.manifest_digest("latest"),
    }
    exported = tmp_path / "ctr.tar"
    containerd.ctr(
        "images",
        "export",
        "--platform",
        "linux/amd64",
        str(exported),
        "docker.io/library/img:multi",
    )
    other = tmp_path / "other"
    assert (
        pyrun(other, "load", "-i", str(exported)) == b"Loaded image: docker.io/library/img:multi\n"
    )
    assert json.loads(pyrun(other, "inspect", "img:multi"))["Digest"] == archives.manifest_digest(
        "multi"
    )
