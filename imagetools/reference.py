"""Image references with docker's defaults (distribution/reference's grammar).

``busybox`` -> docker.io/library/busybox:latest; ``library/busybox:1.36``;
``host:5000/a/b@sha256:...``; ``localhost/x`` (a first part with a dot, a colon or exactly
"localhost" is a registry). A reference may have a tag, a digest or both.
"""

from __future__ import annotations

import re

from imagetools.errors import InvalidReference

DEFAULT_REGISTRY = "docker.io"
DEFAULT_TAG = "latest"
# The registry docker.io's API lives at (what docker's client talks to).
DOCKER_HUB_API = "registry-1.docker.io"

# \Z, not $ (which also matches before a final newline); ASCII only, as docker's grammar.
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_PATH = re.compile(rf"{_COMPONENT}(?:/{_COMPONENT})*\Z")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")
_DIGEST = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}\Z")
# The registered algorithms (image-spec): their encoded part is lowercase hex of one length.
_DIGEST_HEX = {"sha256": 64, "sha512": 128}
_HOST = re.compile(
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*"
    r"[a-zA-Z0-9])?))*(?::[0-9]+)?\Z|\[[0-9a-fA-F:]+\](?::[0-9]+)?\Z"
)
_MAX_NAME = 255


def _registered(digest: str) -> bool:
    """sha256 and sha512 with their exact lowercase-hex length; other algorithms are not
    supported (docker: "unsupported digest algorithm")."""
    algorithm, _, encoded = digest.partition(":")
    length = _DIGEST_HEX.get(algorithm)
    return length == len(encoded) and all(c in "0123456789abcdef" for c in encoded)


class Reference:
    __slots__ = ("digest", "registry", "repository", "tag")

    def __init__(
        self, registry: str, repository: str, tag: str | None = None, digest: str | None = None
    ) -> None:
        self.registry = registry
        self.repository = repository
        self.tag = tag
        self.digest = digest

    @classmethod
    def parse(cls, text: str) -> Reference:
        """Parse with docker's defaults; InvalidReference says what is wrong."""
        original = text
        if not text or text != text.strip():
            raise InvalidReference(f"invalid reference {original!r}: empty or padded")
        digest = None
        if "@" in text:
            text, _, digest = text.partition("@")
            if not _DIGEST.match(digest) or not _registered(digest):
                raise InvalidReference(f"invalid reference {original!r}: bad digest {digest!r}")
        tag = None
        last = text.rpartition("/")[2]
        if ":" in last:
            text, _, tag = text.rpartition(":")
            if not _TAG.match(tag):
                raise InvalidReference(f"invalid reference {original!r}: bad tag {tag!r}")
        first, slash, rest = text.partition("/")
        if slash and (
            "." in first or ":" in first or first == "localhost" or first != first.lower()
        ):
            registry, path = first, rest
            if not _HOST.match(registry):
                raise InvalidReference(f"invalid reference {original!r}: bad registry {registry!r}")
        else:
            registry, path = DEFAULT_REGISTRY, text
        if registry in ("index.docker.io", DOCKER_HUB_API):
            registry = DEFAULT_REGISTRY
        if registry == DEFAULT_REGISTRY and "/" not in path:
            path = f"library/{path}"
        if not path or not _PATH.match(path):
            raise InvalidReference(
                f"invalid reference {original!r}: repository {path!r} must be lowercase letters,"
                " digits and separators (. _ __ -) in /-separated parts"
            )
        if len(f"{registry}/{path}") > _MAX_NAME:
            raise InvalidReference(f"invalid reference {original!r}: name longer than 255")
        if tag is None and digest is None:
            tag = DEFAULT_TAG
        return cls(registry, path, tag, digest)

    @property
    def name(self) -> str:
        """registry/repository, e.g. docker.io/library/busybox."""
        return f"{self.registry}/{self.repository}"

    @property
    def api_host(self) -> str:
        """The host the registry's API is served from."""
        return DOCKER_HUB_API if self.registry == DEFAULT_REGISTRY else self.registry

    @property
    def reference(self) -> str:
        """What to ask the registry for: the digest if there is one, else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def with_digest(self, digest: str) -> Reference:
        return Reference(self.registry, self.repository, self.tag, digest)

    def __str__(self) -> str:
        text = self.name
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text

    def __repr__(self) -> str:
        return f"Reference({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Reference) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))
