"""OCI image layouts in the tests (umoci's, skopeo's, and pyrun's store, which is one too):
reading one, and copying one into a Store.

``ref_names(layout)``: index.json's descriptors that carry a ref name, by that name.
``read_blob(layout, digest)``: a blob's bytes. ``OCILayout``: both, and ``manifest(tag)``, for
classes with a ``layout`` attribute. ``load_layout(store, layout, name, tag)``: every blob into
a Store and one image named (tests only; the real ``pyrun image load`` lives in
imagetools/archive.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from imagetools.store import Store

REF_NAME = "org.opencontainers.image.ref.name"
_CHUNK = 1 << 20


def ref_names(layout: Path) -> dict[str, dict[str, Any]]:
    """The descriptors of ``layout``'s index.json that have a ref name, by that name."""
    index = json.loads((layout / "index.json").read_text())
    return {
        d["annotations"][REF_NAME]: d
        for d in index["manifests"]
        if REF_NAME in d.get("annotations", {})
    }


def blob_path(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / digest.split(":", 1)[1]


def read_blob(layout: Path, digest: str) -> bytes:
    return blob_path(layout, digest).read_bytes()


class OCILayout:
    """Reading the OCI layout at ``self.layout``."""

    layout: Path

    def manifest_digest(self, tag: str) -> str:
        return str(ref_names(self.layout)[tag]["digest"])

    def blob(self, digest: str) -> bytes:
        return read_blob(self.layout, digest)

    def manifest(self, tag: str) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.blob(self.manifest_digest(tag)))
        return result


def load_layout(store: Store, layout: Path, name: str, tag: str | None = None) -> dict[str, Any]:
    """Every blob of ``layout`` into ``store`` (streamed, verified by the store), then the
    layout's image tagged ``tag`` (or its only one) named ``name``; returns its descriptor."""
    for algorithm_dir in sorted((layout / "blobs").iterdir()):
        for blob in sorted(algorithm_dir.iterdir()):
            digest = f"{algorithm_dir.name}:{blob.name}"
            size = blob.stat().st_size
            if store.has_blob(digest, size):
                continue
            ingest = store.ingest(digest, size)
            ingest.restart()
            with blob.open("rb") as handle:
                while chunk := handle.read(_CHUNK):
                    ingest.write(chunk)
            ingest.commit()
    index = json.loads((layout / "index.json").read_text())
    entries = index["manifests"]
    if tag is not None:
        entries = [e for e in entries if e.get("annotations", {}).get(REF_NAME) == tag]
    if len(entries) != 1:
        raise ValueError(f"{layout}: {len(entries)} images match {tag!r}")
    descriptor = {k: v for k, v in entries[0].items() if k != "annotations"}
    store.set_ref(name, descriptor)
    return descriptor
