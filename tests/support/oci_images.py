"""Test images built offline with umoci (and skopeo) from tests/e2e/images.py's busybox image
(Debian's static busybox), and, on demand, pushed to the open test registry with skopeo.

``oci_images`` (session): one OCI layout with

- ``latest``     busybox, one layer
- ``layers``     busybox + 4 layers of incompressible data (RANDOM_LAYER bytes each), so
                 downloads take long enough to overlap, be throttled, or be killed halfway
- ``arm64``      busybox with architecture arm64 in its config
- ``multiarch``  an OCI index written here: latest as linux/amd64, arm64 as linux/arm64/v8

``registry_images`` (session): those pushed to ``registry_open`` by ``skopeo copy`` as
``busybox:latest`` (OCI), ``busybox:v2s2`` (Docker schema2), ``layers:latest`` and
``multiarch:latest`` (``--all``); ``digests`` maps each to its manifest digest there.
``proxy``: a fault-injecting ``Proxy`` (tests/support/proxy.py) in front of that registry.

``archives`` (module): ``build_archives(workdir)``'s image archives for the load/save tests
(mark the module with ``needs_archive_tools``):

    layout/            OCI layout: tag "latest" (1 gzip layer), tag "multi" (3 layers: busybox,
                       an inserted /etc/motd, a whiteout of /bin/vi; labels, an entrypoint)
    multi-oci.tar      skopeo copy oci:layout:multi oci-archive:multi-oci.tar:multi
    multi-docker.tar   ... oci:layout:multi docker-archive:multi-docker.tar:localhost/multi:1
    busybox-docker.tar ... oci:layout:latest docker-archive:...:docker.io/library/busybox:1
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.images import build_busybox_image, missing_tools, run
from tests.support.oci_layout import REF_NAME, OCILayout, blob_path, ref_names
from tests.support.proxy import Proxy
from tests.support.registry import Registry

RANDOM_LAYER = 1536 << 10
INDEX = "application/vnd.oci.image.index.v1+json"
ARCHIVE_TOOLS = ("umoci", "skopeo", "tar")


@dataclass
class OCIImages(OCILayout):
    layout: Path
    manifests: dict[str, str]  # tag -> manifest digest in the layout

    def ref(self, tag: str) -> str:
        return f"{self.layout}:{tag}"


@dataclass
class RegistryImages:
    registry: Registry
    images: OCIImages
    digests: dict[str, str] = field(default_factory=dict)  # "repo:tag" -> digest there

    def ref(self, repo_tag: str) -> str:
        return f"{self.registry.host}/{repo_tag}"


def _tags(layout: Path) -> dict[str, str]:
    return {name: d["digest"] for name, d in ref_names(layout).items()}


def build_test_images(workdir: Path) -> OCIImages:
    missing = missing_tools()
    if missing:
        pytest.fail(f"missing {missing}: run `make setup`")
    base = build_busybox_image(workdir)
    layout = base.layout
    previous = "latest"
    rng = random.Random(4)
    for number in range(4):
        source = workdir / f"data{number}"
        source.mkdir()
        (source / "payload.bin").write_bytes(rng.randbytes(RANDOM_LAYER))
        run(
            [
                "umoci",
                "insert",
                "--image",
                f"{layout}:{previous}",
                "--tag",
                "layers",
                str(source),
                f"/data{number}",
            ]
        )
        previous = "layers"
    run(
        [
            "umoci",
            "config",
            "--image",
            f"{layout}:latest",
            "--tag",
            "arm64",
            "--architecture",
            "arm64",
        ]
    )
    tags = _tags(layout)

    def descriptor(tag: str, platform: dict[str, str]) -> dict[str, Any]:
        digest = tags[tag]
        return {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest,
            "size": blob_path(layout, digest).stat().st_size,
            "platform": platform,
        }

    index = {
        "schemaVersion": 2,
        "mediaType": INDEX,
        "manifests": [
            descriptor("latest", {"architecture": "amd64", "os": "linux"}),
            descriptor("arm64", {"architecture": "arm64", "os": "linux", "variant": "v8"}),
        ],
    }
    data = json.dumps(index, indent=2).encode()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blob_path(layout, digest).write_bytes(data)
    top = json.loads((layout / "index.json").read_text())
    top["manifests"].append(
        {
            "mediaType": INDEX,
            "digest": digest,
            "size": len(data),
            "annotations": {REF_NAME: "multiarch"},
        }
    )
    (layout / "index.json").write_text(json.dumps(top))
    return OCIImages(layout, _tags(layout))


@pytest.fixture(scope="session")
def oci_images(tmp_path_factory: pytest.TempPathFactory) -> OCIImages:
    return build_test_images(tmp_path_factory.mktemp("oci-images"))


@pytest.fixture(scope="session")
def registry_images(registry_open: Registry, oci_images: OCIImages) -> Iterator[RegistryImages]:
    pushed = RegistryImages(registry_open, oci_images)
    for tag, repo_tag, v2s2, everything in (
        ("latest", "busybox:latest", False, False),
        ("latest", "busybox:v2s2", True, False),
        ("layers", "layers:latest", False, False),
        ("multiarch", "multiarch:latest", False, True),
    ):
        registry_open.copy_in(oci_images.ref(tag), repo_tag, v2s2=v2s2, all=everything)
        raw = registry_open.inspect(repo_tag, raw=True)
        pushed.digests[repo_tag] = "sha256:" + hashlib.sha256(raw).hexdigest()
    yield pushed


@pytest.fixture
def proxy(registry_images: RegistryImages) -> Iterator[Proxy]:
    with Proxy(registry_images.registry.host) as running:
        yield running


# -- image archives ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Archives(OCILayout):
    layout: Path
    multi_oci: Path
    multi_docker: Path
    busybox_docker: Path


needs_archive_tools = pytest.mark.skipif(
    bool(missing_tools(ARCHIVE_TOOLS)),
    reason=f"needs {', '.join(missing_tools(ARCHIVE_TOOLS))} (make setup)",
)


def skopeo_copy(source: str, target: str) -> None:
    run(["skopeo", "copy", "-q", source, target])


def build_archives(workdir: Path) -> Archives:
    image = build_busybox_image(workdir)
    layout = image.layout
    multi = f"{layout}:multi"
    run(["umoci", "tag", "--image", f"{layout}:latest", "multi"])
    motd = workdir / "motd"
    motd.write_text("built by the imagetools tests\n")
    run(["umoci", "insert", "--image", multi, str(motd), "/etc/motd"])
    run(["umoci", "insert", "--image", multi, "--whiteout", "/bin/vi"])
    run(
        [
            "umoci",
            "config",
            "--image",
            multi,
            "--config.label",
            "org.example.purpose=tests & <checks>",
            "--config.label",
            "version=1",
            "--config.entrypoint",
            "/bin/sh",
            "--config.exposedports",
            "8080/tcp",
        ]
    )
    run(["umoci", "gc", "--layout", str(layout)])
    archives = Archives(
        layout=layout,
        multi_oci=workdir / "multi-oci.tar",
        multi_docker=workdir / "multi-docker.tar",
        busybox_docker=workdir / "busybox-docker.tar",
    )
    skopeo_copy(f"oci:{multi}", f"oci-archive:{archives.multi_oci}:multi")
    skopeo_copy(f"oci:{multi}", f"docker-archive:{archives.multi_docker}:localhost/multi:1")
    skopeo_copy(
        f"oci:{layout}:latest",
        f"docker-archive:{archives.busybox_docker}:docker.io/library/busybox:1",
    )
    return archives


@pytest.fixture(scope="module")
def archives(tmp_path_factory: pytest.TempPathFactory) -> Archives:
    return build_archives(tmp_path_factory.mktemp("archives"))
