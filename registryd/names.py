"""The identifiers a request carries, validated before any path is built from them.

Every file name under the storage root derives from a value that passed one of these checks:
repository names follow the distribution-spec grammar (no "..", no leading "/", no uppercase,
at most 255 characters), tags the spec's tag grammar, digests a known algorithm with exactly
its hex length, upload ids our own 32-hex-digit form. Nothing else can reach the filesystem.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from registryd.errors import ApiError

# distribution-spec v1.1, "Pulling manifests": <name> and <reference>.
NAME_RE = re.compile(r"[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*")
TAG_RE = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
NAME_MAX = 255
# Registered algorithms (image-spec descriptor.md): encoded part is lowercase hex of this length.
DIGEST_HEX = {"sha256": 64, "sha512": 128}
DIGEST_RE = re.compile(r"([a-z0-9]+(?:[.+_-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)")
UPLOAD_ID_RE = re.compile(r"[0-9a-f]{32}")


class Digest(NamedTuple):
    algorithm: str
    hex: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def is_name(name: str) -> bool:
    return len(name) <= NAME_MAX and NAME_RE.fullmatch(name) is not None


def check_name(name: str) -> str:
    if not is_name(name):
        raise ApiError("NAME_INVALID", "invalid repository name", {"name": name[:300]})
    return name


def is_tag(reference: str) -> bool:
    return TAG_RE.fullmatch(reference) is not None


def parse_digest(text: str) -> Digest:
    """A digest of a supported algorithm; DIGEST_INVALID (400) otherwise."""
    match = DIGEST_RE.fullmatch(text)
    if match is None:
        raise ApiError("DIGEST_INVALID", "invalid digest", {"digest": text[:300]})
    algorithm, encoded = match.group(1), match.group(2)
    length = DIGEST_HEX.get(algorithm)
    if length is None:
        raise ApiError("DIGEST_INVALID", f"unsupported digest algorithm {algorithm!r}")
    if len(encoded) != length or not _is_lower_hex(encoded):
        raise ApiError("DIGEST_INVALID", f"invalid {algorithm} digest", {"digest": text[:300]})
    return Digest(algorithm, encoded)


def maybe_digest(text: str) -> Digest | None:
    """The digest ``text`` names, or None when it is not one (a tag, garbage)."""
    try:
        return parse_digest(text)
    except ApiError:
        return None


def check_reference(reference: str) -> Digest | str:
    """A manifest reference: a Digest, or a tag (str)."""
    if ":" in reference:
        return parse_digest(reference)
    if is_tag(reference):
        return reference
    raise ApiError("MANIFEST_INVALID", "invalid tag", {"reference": reference[:300]}, status=400)


def check_upload_id(text: str) -> str:
    if UPLOAD_ID_RE.fullmatch(text) is None:
        raise ApiError("BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry")
    return text


def _is_lower_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)
