"""What a pushed manifest is: its media type, the descriptors it references, its subject.

Pure (no I/O): the manifest route checks the result against the repository. The registry
stores the bytes exactly as pushed; this module only reads them. Accepted: OCI image manifest
and index, Docker schema2 manifest and manifest list (schemaVersion 2). Docker schema1 is
refused, as distribution 3 does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from registryd.errors import ApiError
from registryd.names import Digest, maybe_digest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = (
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
IMAGE_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
MANIFEST_TYPES = IMAGE_TYPES + INDEX_TYPES


@dataclass(frozen=True)
class Reference:
    digest: Digest
    size: int
    media_type: str
    foreign: bool = False  # has "urls": the content may live elsewhere (non-distributable)


@dataclass
class Manifest:
    media_type: str
    blobs: list[Reference] = field(default_factory=list)  # config + layers
    children: list[Reference] = field(default_factory=list)  # an index's manifests
    subject: Digest | None = None
    artifact_type: str | None = None
    config_type: str | None = None
    annotations: dict[str, str] | None = None

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES

    def referrer_descriptor(self, digest: Digest, size: int) -> dict[str, Any]:
        """This manifest as a referrers-API descriptor (distribution-spec "Listing Referrers")."""
        descriptor: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": str(digest),
            "size": size,
        }
        artifact_type = self.artifact_type or (None if self.is_index else self.config_type)
        if artifact_type:
            descriptor["artifactType"] = artifact_type
        if self.annotations:
            descriptor["annotations"] = self.annotations
        return descriptor


def parse(body: bytes, content_type: str | None) -> Manifest:
    """Validate ``body``; MANIFEST_INVALID names the first problem."""
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError) as err:
        raise invalid(f"not valid JSON: {err}") from None
    if not isinstance(document, dict):
        raise invalid("a manifest is a JSON object")
    declared = content_type.split(";", 1)[0].strip().lower() if content_type else ""
    media_type = document.get("mediaType")
    if media_type is not None and not isinstance(media_type, str):
        raise invalid("mediaType must be a string")
    if document.get("schemaVersion") == 1 or declared in DOCKER_SCHEMA1:
        raise invalid("Docker schema1 manifests are not supported; push schema2 or OCI")
    if media_type and declared and declared in MANIFEST_TYPES and media_type != declared:
        raise invalid(f"mediaType {media_type!r} does not match Content-Type {declared!r}")
    kind = media_type or (declared if declared in MANIFEST_TYPES else _infer(document))
    if kind not in MANIFEST_TYPES:
        raise invalid(f"unsupported manifest media type {kind!r}")
    if document.get("schemaVersion") != 2:
        raise invalid("schemaVersion must be 2")
    manifest = Manifest(kind)
    if kind in INDEX_TYPES:
        manifest.children = _descriptors(document.get("manifests"), "manifests")
    else:
        config = document.get("config")
        if not isinstance(config, dict):
            raise invalid("config must be a descriptor")
        manifest.blobs = [_descriptor(config, "config")]
        manifest.config_type = manifest.blobs[0].media_type
        manifest.blobs += _descriptors(document.get("layers"), "layers")
    if "subject" in document:
        subject = document["subject"]
        if not isinstance(subject, dict):
            raise invalid("subject must be a descriptor")
        manifest.subject = _descriptor(subject, "subject").digest
    artifact_type = document.get("artifactType")
    if artifact_type is not None:
        if not isinstance(artifact_type, str):
            raise invalid("artifactType must be a string")
        manifest.artifact_type = artifact_type
    annotations = document.get("annotations")
    if annotations is not None:
        if not isinstance(annotations, dict) or not all(
            isinstance(v, str) for v in annotations.values()
        ):
            raise invalid("annotations must map strings to strings")
        manifest.annotations = annotations
    return manifest


def references(body: bytes) -> tuple[list[Digest], Digest | None]:
    """Every digest a stored manifest references, and its subject (for gc); lenient."""
    try:
        document = json.loads(body)
    except ValueError:
        return [], None
    if not isinstance(document, dict):
        return [], None
    found = []
    items: list[Any] = [document.get("config")]
    for key in ("layers", "manifests"):
        value = document.get(key)
        if isinstance(value, list):
            items.extend(value)
    for item in items:
        if isinstance(item, dict):
            digest = maybe_digest(str(item.get("digest", "")))
            if digest is not None:
                found.append(digest)
    subject = document.get("subject")
    subject_digest = None
    if isinstance(subject, dict):
        subject_digest = maybe_digest(str(subject.get("digest", "")))
    return found, subject_digest


def invalid(message: str) -> ApiError:
    return ApiError("MANIFEST_INVALID", f"manifest invalid: {message}")


def _infer(document: dict[str, Any]) -> str:
    if "manifests" in document:
        return OCI_INDEX
    if "config" in document:
        return OCI_MANIFEST
    return ""


def _descriptors(value: Any, where: str) -> list[Reference]:
    if value is None:
        if where == "layers":
            return []
        raise invalid(f"{where} is required")
    if not isinstance(value, list):
        raise invalid(f"{where} must be an array")
    return [_descriptor(item, f"{where}[{i}]") for i, item in enumerate(value)]


def _descriptor(value: Any, where: str) -> Reference:
    if not isinstance(value, dict):
        raise invalid(f"{where} must be a descriptor object")
    media_type = value.get("mediaType")
    if not isinstance(media_type, str) or not media_type:
        raise invalid(f"{where}.mediaType must be a non-empty string")
    digest = maybe_digest(str(value.get("digest", "")))
    if digest is None:
        raise invalid(f"{where}.digest is not a valid digest")
    size = value.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise invalid(f"{where}.size must be a non-negative integer")
    urls = value.get("urls")
    return Reference(digest, size, media_type, foreign=bool(urls))
