"""Manifests, indexes and platforms: media types, parsing with validation, platform selection.

Pure: no I/O. ``parse(data, media_type)`` turns registry or store bytes into a ``Manifest``
(OCI image manifest, Docker schema2) or an ``Index`` (OCI index, Docker manifest list), or
raises ManifestError naming the field that is wrong (``manifests[1].digest: ...``).

Platforms are ``os/arch[/variant]`` with Go's names (amd64, arm64, arm, 386, ppc64le, s390x,
riscv64 ...). Normalisation and matching follow containerd's ``platforms`` package:
``aarch64`` is ``arm64``, arm64 without a variant is ``v8``, arm without one is ``v7``; a
wanted ``arm/v7`` also takes ``v6`` and ``v5`` (older ARM code runs on newer cores), the best
(highest) one first, and a wanted ``arm64`` falls back to nothing else (no 32-bit mode
assumed). Index entries whose os is ``unknown`` (buildkit's attestation manifests) never match.
"""

from __future__ import annotations

import json
import os
import re

from imagetools.errors import ImageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# -- media types ------------------------------------------------------------------------------
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_NONDIST_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
LAYER_TYPES = (
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    OCI_LAYER_NONDIST,
    OCI_LAYER_NONDIST_GZIP,
    OCI_LAYER_NONDIST_ZSTD,
    DOCKER_LAYER,
    DOCKER_FOREIGN_LAYER,
)
# Layers a registry need not hold (Windows base layers and the like): fetched from their
# ``urls`` when the registry does not have them, never pushed.
FOREIGN_LAYER_TYPES = (
    DOCKER_FOREIGN_LAYER,
    OCI_LAYER_NONDIST,
    OCI_LAYER_NONDIST_GZIP,
    OCI_LAYER_NONDIST_ZSTD,
)

# What a pull asks for, best first (the q-values keep old registries that sort by them happy).
ACCEPT = (
    OCI_INDEX,
    DOCKER_LIST,
    OCI_MANIFEST,
    DOCKER_MANIFEST,
)
ACCEPT_HEADER = ", ".join(ACCEPT)

_DIGEST = re.compile(r"^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128})$")
MAX_MANIFEST_SIZE = 4 << 20  # distribution's limit for a manifest body


class ManifestError(ImageError):
    """A manifest or index that cannot be used; the message names the field."""


def compression(media_type: str) -> str | None:
    """'gzip', 'zstd' or None (plain tar) for a layer media type."""
    if media_type.endswith("+gzip") or media_type.endswith(".tar.gzip"):
        return "gzip"
    if media_type.endswith("+zstd"):
        return "zstd"
    return None


def is_foreign(media_type: str) -> bool:
    return media_type in FOREIGN_LAYER_TYPES


# -- platforms --------------------------------------------------------------------------------
_ARCH_ALIASES = {
    "x86_64": ("amd64", ""),
    "x86-64": ("amd64", ""),
    "amd64": ("amd64", ""),
    "aarch64": ("arm64", ""),
    "arm64": ("arm64", ""),
    "armhf": ("arm", "v7"),
    "armel": ("arm", "v6"),
    "armv8l": ("arm", "v8"),
    "armv7l": ("arm", "v7"),
    "armv7": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "armv6": ("arm", "v6"),
    "armv5tel": ("arm", "v5"),
    "armv5l": ("arm", "v5"),
    "i386": ("386", ""),
    "i486": ("386", ""),
    "i586": ("386", ""),
    "i686": ("386", ""),
    "ppc64le": ("ppc64le", ""),
    "ppc64": ("ppc64", ""),
    "s390x": ("s390x", ""),
    "riscv64": ("riscv64", ""),
    "mips64": ("mips64", ""),
    "mips64el": ("mips64le", ""),
    "loongarch64": ("loong64", ""),
}
_ARM_VARIANTS = ("v8", "v7", "v6", "v5")


class _Value:
    """A small immutable value (dataclasses cost ~10 ms to import and build on each run)."""

    __slots__: tuple[str, ...] = ()

    def _key(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(tuple(v if not isinstance(v, dict) else None for v in self._key()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _set(self, **values: Any) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)


class Platform(_Value):
    __slots__ = ("architecture", "os", "os_version", "variant")
    os: str
    architecture: str
    variant: str
    os_version: str

    def __init__(self, os: str, architecture: str, variant: str = "", os_version: str = "") -> None:
        self._set(os=os, architecture=architecture, variant=variant, os_version=os_version)

    @classmethod
    def parse(cls, text: str) -> Platform:
        """``os/arch[/variant]`` (docker's --platform), normalised."""
        parts = text.strip().lower().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise ImageError(
                f"invalid platform {text!r}: expected os/arch or os/arch/variant (linux/arm64)"
            )
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else "").normalized()

    @classmethod
    def from_json(cls, value: Any, where: str = "platform") -> Platform:
        if not isinstance(value, dict):
            raise ManifestError(f"{where}: must be an object")
        for key in ("os", "architecture"):
            if not isinstance(value.get(key), str) or not value[key]:
                raise ManifestError(f"{where}.{key}: must be a non-empty string")
        variant = value.get("variant", "")
        if not isinstance(variant, str):
            raise ManifestError(f"{where}.variant: must be a string")
        version = value.get("os.version", "")
        return cls(value["os"], value["architecture"], variant, str(version))

    def normalized(self) -> Platform:
        arch, variant = self.architecture.lower(), self.variant.lower()
        alias = _ARCH_ALIASES.get(arch)
        if alias is not None:
            arch, implied = alias
            variant = variant or implied
        if arch == "arm64" and variant in ("", "8"):
            variant = "v8"
        elif arch == "arm":
            if variant == "":
                variant = "v7"
            elif variant.isdigit():
                variant = f"v{variant}"
        elif arch == "amd64" and variant == "v1":
            variant = ""
        return Platform(self.os.lower(), arch, variant, self.os_version)

    def to_json(self) -> dict[str, str]:
        data = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            data["variant"] = self.variant
        if self.os_version:
            data["os.version"] = self.os_version
        return data

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text


def host_platform() -> Platform:
    """This machine, in Go's names (os.uname: x86_64 -> linux/amd64, aarch64 ->
    linux/arm64/v8, armv7l -> linux/arm/v7)."""
    uname = os.uname()
    arch, variant = _ARCH_ALIASES.get(uname.machine.lower(), (uname.machine.lower(), ""))
    return Platform(uname.sysname.lower(), arch, variant).normalized()


def match_rank(wanted: Platform, candidate: Platform) -> int | None:
    """How well ``candidate`` serves ``wanted``: 0 is exact, higher is a worse fallback,
    None does not run at all."""
    have = candidate.normalized()
    want = wanted.normalized()
    if have.os != want.os or have.architecture != want.architecture:
        return None
    if have.variant == want.variant:
        return 0
    if want.architecture == "arm" and want.variant in _ARM_VARIANTS:
        wanted_at = _ARM_VARIANTS.index(want.variant)
        if have.variant in _ARM_VARIANTS and _ARM_VARIANTS.index(have.variant) > wanted_at:
            return _ARM_VARIANTS.index(have.variant) - wanted_at
    if want.variant == "" and want.architecture != "arm":
        return 1  # no variant asked for: any one will do
    return None


# -- documents --------------------------------------------------------------------------------
class Descriptor(_Value):
    __slots__ = (
        "annotations",
        "artifact_type",
        "digest",
        "media_type",
        "platform",
        "size",
        "urls",
    )
    media_type: str
    digest: str
    size: int
    urls: tuple[str, ...]
    annotations: dict[str, str]
    platform: Platform | None
    artifact_type: str

    def __init__(
        self,
        media_type: str,
        digest: str,
        size: int,
        urls: tuple[str, ...] = (),
        annotations: dict[str, str] | None = None,
        platform: Platform | None = None,
        artifact_type: str = "",
    ) -> None:
        self._set(
            media_type=media_type,
            digest=digest,
            size=size,
            urls=urls,
            annotations=annotations or {},
            platform=platform,
            artifact_type=artifact_type,
        )

    @classmethod
    def from_json(cls, value: Any, where: str) -> Descriptor:
        if not isinstance(value, dict):
            raise ManifestError(f"{where}: must be an object (a descriptor)")
        media = value.get("mediaType")
        if not isinstance(media, str) or not media:
            raise ManifestError(f"{where}.mediaType: must be a non-empty string")
        digest = value.get("digest")
        if not isinstance(digest, str) or not _DIGEST.match(digest):
            raise ManifestError(
                f"{where}.digest: {digest!r} is not a sha256/sha512 digest (algorithm:hex)"
            )
        size = value.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ManifestError(f"{where}.size: {size!r} is not a non-negative integer")
        urls = value.get("urls", [])
        if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
            raise ManifestError(f"{where}.urls: must be a list of strings")
        annotations = value.get("annotations") or {}
        if not isinstance(annotations, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()
        ):
            raise ManifestError(f"{where}.annotations: must map strings to strings")
        platform = None
        if value.get("platform") is not None:
            platform = Platform.from_json(value["platform"], f"{where}.platform")
        artifact = value.get("artifactType", "")
        return cls(media, digest, size, tuple(urls), annotations, platform, str(artifact))

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.urls:
            data["urls"] = list(self.urls)
        if self.annotations:
            data["annotations"] = dict(self.annotations)
        if self.platform is not None:
            data["platform"] = self.platform.to_json()
        if self.artifact_type:
            data["artifactType"] = self.artifact_type
        return data

    @property
    def short(self) -> str:
        """The first 12 hex digits, as docker shows layers."""
        return self.digest.partition(":")[2][:12]


class Manifest(_Value):
    __slots__ = ("annotations", "config", "layers", "media_type", "raw")
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: dict[str, str]
    raw: dict[str, Any]

    def __init__(
        self,
        media_type: str,
        config: Descriptor,
        layers: tuple[Descriptor, ...],
        annotations: dict[str, str],
        raw: dict[str, Any],
    ) -> None:
        self._set(
            media_type=media_type, config=config, layers=layers, annotations=annotations, raw=raw
        )

    @property
    def blobs(self) -> tuple[Descriptor, ...]:
        return (self.config, *self.layers)


class Index(_Value):
    __slots__ = ("annotations", "manifests", "media_type", "raw")
    media_type: str
    manifests: tuple[Descriptor, ...]
    annotations: dict[str, str]
    raw: dict[str, Any]

    def __init__(
        self,
        media_type: str,
        manifests: tuple[Descriptor, ...],
        annotations: dict[str, str],
        raw: dict[str, Any],
    ) -> None:
        self._set(media_type=media_type, manifests=manifests, annotations=annotations, raw=raw)

    def select(self, wanted: Platform | None = None) -> Descriptor:
        """The manifest for ``wanted`` (default: this host), or ManifestError listing what
        the index offers."""
        wanted = (wanted or host_platform()).normalized()
        best: tuple[int, int, Descriptor] | None = None
        for position, entry in enumerate(self.manifests):
            if entry.platform is None or entry.media_type not in (*MANIFEST_TYPES, *INDEX_TYPES):
                continue
            rank = match_rank(wanted, entry.platform)
            if rank is not None and (best is None or (rank, position) < best[:2]):
                best = (rank, position, entry)
        if best is None:
            offered = sorted(
                {str(e.platform.normalized()) for e in self.manifests if e.platform is not None}
                - {"unknown/unknown"}
            )
            raise ManifestError(
                f"no manifest for platform {wanted} in the index (it has:"
                f" {', '.join(offered) or 'no platforms'}); choose one with --platform"
            )
        return best[2]


def parse(data: bytes, media_type: str | None = None) -> Manifest | Index:
    """Parse and validate a manifest or index. ``media_type`` is what the registry's
    Content-Type or the referring descriptor said; the document's own ``mediaType`` field
    wins when there is one, and they must agree."""
    if len(data) > MAX_MANIFEST_SIZE:
        raise ManifestError(f"manifest is {len(data)} bytes, more than the {MAX_MANIFEST_SIZE}")
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as err:
        raise ManifestError(f"manifest is not JSON: {err}") from None
    if not isinstance(document, dict):
        raise ManifestError("manifest: must be a JSON object")
    announced = (media_type or "").split(";")[0].strip()
    if announced in ("application/json", "text/plain", "application/octet-stream"):
        announced = ""
    inner = document.get("mediaType")
    if inner is not None and not isinstance(inner, str):
        raise ManifestError("mediaType: must be a string")
    version = document.get("schemaVersion")
    if version == 1 or announced in (DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED):
        raise ManifestError(
            "Docker schema 1 manifests are not supported (deprecated since 2017): push the"
            " image again with a current client"
        )
    if version != 2:
        raise ManifestError(f"schemaVersion: {version!r}, expected 2")
    if inner and announced and inner != announced:
        raise ManifestError(
            f"mediaType: the document says {inner}, the registry or descriptor {announced}"
        )
    kind = inner or announced
    if not kind:
        # OCI allows leaving mediaType out: tell the two kinds apart by their fields.
        kind = OCI_INDEX if "manifests" in document else OCI_MANIFEST
    if kind in INDEX_TYPES:
        return _parse_index(document, kind)
    if kind in MANIFEST_TYPES:
        return _parse_manifest(document, kind)
    raise ManifestError(f"mediaType: {kind!r} is not an image manifest or index")


def _annotations(document: dict[str, Any]) -> dict[str, str]:
    value = document.get("annotations") or {}
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ManifestError("annotations: must map strings to strings")
    return value


def _parse_manifest(document: dict[str, Any], kind: str) -> Manifest:
    if "manifests" in document:
        raise ManifestError("manifests: an image manifest has layers, not manifests")
    if "config" not in document:
        raise ManifestError("config: missing")
    config = Descriptor.from_json(document["config"], "config")
    layers = document.get("layers")
    if not isinstance(layers, list):
        raise ManifestError("layers: must be a list")
    parsed = tuple(Descriptor.from_json(d, f"layers[{i}]") for i, d in enumerate(layers))
    if config.media_type in (OCI_CONFIG, DOCKER_CONFIG):
        for i, layer in enumerate(parsed):
            if layer.media_type not in LAYER_TYPES:
                raise ManifestError(
                    f"layers[{i}].mediaType: {layer.media_type!r} is not a layer type"
                    f" ({', '.join(LAYER_TYPES[:3])} ...)"
                )
    # Other config types are OCI artifacts: stored and pushed as they are, never unpacked.
    return Manifest(kind, config, parsed, _annotations(document), document)


def _parse_index(document: dict[str, Any], kind: str) -> Index:
    if "layers" in document or "config" in document:
        raise ManifestError("config/layers: an index has manifests, not layers")
    manifests = document.get("manifests")
    if not isinstance(manifests, list):
        raise ManifestError("manifests: must be a list")
    parsed = tuple(Descriptor.from_json(d, f"manifests[{i}]") for i, d in enumerate(manifests))
    if kind == DOCKER_LIST:
        for i, entry in enumerate(parsed):
            if entry.platform is None:
                raise ManifestError(f"manifests[{i}].platform: missing (required in a list)")
    return Index(kind, parsed, _annotations(document), document)


def is_index_type(media_type: str) -> bool:
    return media_type in INDEX_TYPES
