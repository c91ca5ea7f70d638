"""A busybox OCI image built offline (no registry, no network) for the caller tests.

``build_busybox_image(workdir)`` makes an OCI image layout with umoci and a tarball of it:

    umoci init --layout L            umoci new --image L:latest
    umoci unpack --image L:latest U  (its empty rootfs is replaced by bundles/build-rootfs:
                                      Debian's static busybox with its applet symlinks)
    umoci repack --image L:latest U  umoci config --image L:latest --config.cmd sh ...
    umoci gc --layout L              tar -C L -cf busybox-oci.tar .

The tarball is an OCI layout, which both ``ctr images import --base-name NAME`` and ``podman
load -i`` accept. Its one manifest carries the ref name ``latest``: containerd names the image
``NAME:latest``; podman names it ``localhost/latest:latest`` (callers re-tag it).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD_ROOTFS = REPO / "bundles" / "build-rootfs"
TOOLS = ("umoci", "tar")
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class Image:
    layout: Path  # OCI image layout directory
    tarball: Path  # tar of the layout, for `ctr images import` and `podman load`
    manifest: str  # digest of the image manifest ("sha256:...")
    config: str  # digest of the image config, podman's image id
    tag: str = "latest"


def run(argv: list[str]) -> str:
    """``argv``'s stdout; a failure raises RuntimeError with its stderr."""
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"{argv} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


def missing_tools(tools: Iterable[str] = TOOLS) -> list[str]:
    return [tool for tool in tools if shutil.which(tool) is None]


def build_busybox_image(workdir: Path) -> Image:
    layout = workdir / "layout"
    unpacked = workdir / "unpacked"
    ref = f"{layout}:latest"
    run(["umoci", "init", "--layout", str(layout)])
    run(["umoci", "new", "--image", ref])
    run(["umoci", "unpack", "--image", ref, str(unpacked)])
    shutil.rmtree(unpacked / "rootfs")
    run([str(BUILD_ROOTFS), str(unpacked / "rootfs")])
    run(["umoci", "repack", "--image", ref, str(unpacked)])
    run(
        [
            "umoci",
            "config",
            "--image",
            ref,
            "--config.cmd",
            "sh",
            "--config.env",
            f"PATH={IMAGE_PATH}",
            "--config.workingdir",
            "/",
            "--author",
            "pyrun e2e tests",
        ]
    )
    run(["umoci", "gc", "--layout", str(layout)])
    shutil.rmtree(unpacked)
    tarball = workdir / "busybox-oci.tar"
    run(["tar", "-C", str(layout), "-cf", str(tarball), "."])

    index = json.loads((layout / "index.json").read_text())
    (entry,) = index["manifests"]
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == "latest", entry
    blob = layout / "blobs" / "sha256" / entry["digest"].split(":", 1)[1]
    manifest = json.loads(blob.read_text())
    return Image(
        layout=layout,
        tarball=tarball,
        manifest=entry["digest"],
        config=manifest["config"]["digest"],
    )
