"""Image archives in and out of the store: OCI image layouts (a directory or a tarball) and
docker-archive tarballs.

``load(store, path_or_stream, name=None)`` reads what these tools write:

- **OCI layout** (``oci-layout``, ``index.json``, ``blobs/<alg>/<hex>``), as a directory or a
  tar (``skopeo copy ... oci-archive:``, ``ctr images export``, ``podman save --format
  oci-archive``, ``docker save`` since 25, umoci layouts tarred up). Blobs are stored as they
  are, under their own digests.
- **docker-archive** (``manifest.json``, ``<config>.json``, layer tars; ``docker save``,
  ``podman save --format docker-archive``, ``skopeo copy ... docker-archive:``). When the tar
  holds an OCI layout too (docker 25+), the layout is used.

docker-archive conversion (a format decision)
    The image becomes an **OCI image manifest** in the store; the config blob is kept byte for
    byte (so the image id, the config digest, is docker's and podman's). Layers are **not
    recompressed**: an uncompressed layer tar becomes ``application/vnd.oci.image.layer.v1.tar``
    whose digest *is* its diff_id (verified against the config's ``rootfs.diff_ids`` by the
    same hash that verifies the blob); a gzip or zstd layer (some tools write them) stays
    compressed as ``...tar+gzip``/``+zstd`` and its diff_id is verified by decompressing while
    it streams in. Why: loading costs no CPU, the same archive always loads to the same
    manifest digest, and ``save --format docker-archive`` gives back the same layer files. The
    cost is disk (and a push sends what is stored); the manifest JSON is written compactly
    with keys in the OCI order.

Names (another decision, documented in ``pyrun image load --help``)
    An index entry is named by ``io.containerd.image.name``, else by its
    ``org.opencontainers.image.ref.name`` when that is a full reference (has a ``/`` or ``:``);
    a docker-archive image by its ``RepoTags``. A ref.name that is a bare tag (``latest``, as
    umoci and ``skopeo copy ... oci:DIR:TAG`` write) becomes ``<--name>:TAG``, or without
    ``--name`` ``localhost/<dir or file name>:TAG`` (podman's way, lowercased and made a valid
    repository). An image without any name is ``<base>:latest`` when it is the only one, else
    ``<base>@<digest>``. ``--name`` with a tag (or digest) names the archive's only image
    exactly; without one it is the repository each image's own tag is put on.

Verification and atomicity
    Everything is checked before anything is stored: every JSON document (index, manifests,
    configs) is read, its digest and size verified and its structure parsed; every blob it
    names must be in the archive with the size the descriptor says (an index's child manifest
    may be missing, as in ``ctr images export`` of one platform, as long as one is there).
    Then, in a store lease (gc waits), blobs stream through ``Store.ingest`` in digest order,
    each verified (digest and size) without being published; only when every one passed are
    they committed, then the documents, then the names. A corrupt archive leaves the store as
    it was: no partial blob, no blob at all. Nothing is read whole into memory but JSON
    documents (at most 32 MiB each).

Input handling
    A tar must be seekable and uncompressed to be read in place (random access by member, a
    header scan first). A compressed tarball (gzip, zstd, xz, bzip2, as ``docker save | gzip``
    makes) or a non-seekable stream (stdin, a pipe) is first copied, decompressing, into an
    anonymous temporary file in the store's ingest directory. Member names are normalised and
    only ever looked up, never extracted, so no path in an archive reaches the file system;
    in a layout directory every path must resolve inside it.

``save(store, names, path, format)`` writes ``oci-archive`` (a tar of an OCI layout),
``oci-dir`` (a layout directory; an existing layout is added to, entries of the same name
replaced) or ``docker-archive``. Index entries carry the full name both as
``org.opencontainers.image.ref.name`` (what podman and skopeo read; umoci accepts it) and
``io.containerd.image.name`` (what ``ctr images import`` reads). An image chosen by id gets
no name (as ``docker save ID``). A docker-archive holds uncompressed layers named
``<diff_id hex>.tar``, ``<config hex>.json`` and ``manifest.json`` with full names in
``RepoTags`` (as skopeo and podman write them; no legacy ``repositories``/v1 ``json`` files);
an index is saved as the manifest for this host's platform. Every blob is re-verified (size,
digest; layers of a docker-archive also their diff_id) as it is copied out; the tar is written
to a temp file beside the target and renamed into place, so a failure leaves no half archive.
Tars are deterministic: mtime 0, uid/gid 0, sorted members.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import posixpath
import re
import tarfile
import tempfile
import zlib
from typing import Protocol, cast

from imagetools import manifest as mf
from imagetools.errors import ArchiveError, BlobMismatch, ImageError, InvalidReference, StoreError
from imagetools.reference import Reference
from imagetools.store import REF_ANNOTATION, digest_of, split_digest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from typing import IO, Any

    from imagetools.store import Ingest, Store

CONTAINERD_NAME = "io.containerd.image.name"
LAYOUT_VERSION = "1.0.0"
FORMATS = ("oci-archive", "docker-archive", "oci-dir")
MAX_DOCUMENT = 32 << 20
_CHUNK = 1 << 20
_LINK_HOPS = 16
_NAMED_BLOB = re.compile(r"(?:^|/)(?:blobs/sha256/)?([0-9a-f]{64})(?:\.json|\.tar)?$")

_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"BZh", "bzip2"),
)


def _compression(head: bytes) -> str | None:
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return None


def _zstandard() -> Any:
    import importlib

    try:
        return importlib.import_module("zstandard")
    except ModuleNotFoundError:
        raise ImageError(
            "zstd-compressed data needs the 'zstandard' module, which is not installed"
        ) from None


class _Gunzip:
    """Streaming gunzip of one or more concatenated gzip members (what ``gzip -c a b``
    and some parallel compressors write); zero padding after the last one is ignored."""

    def __init__(self) -> None:
        self.inflater = zlib.decompressobj(wbits=47)

    @property
    def eof(self) -> bool:
        return self.inflater.eof

    def decompress(self, data: bytes) -> bytes:
        out = []
        while data:
            out.append(self.inflater.decompress(data))
            if not self.inflater.eof:
                break
            data = self.inflater.unused_data
            if not data.strip(b"\0"):
                break
            self.inflater = zlib.decompressobj(wbits=47)
        return b"".join(out)


def _decompressor(kind: str) -> Any:
    """An object with ``decompress(bytes) -> bytes`` for a streaming decompression."""
    if kind == "gzip":
        return _Gunzip()
    if kind == "zstd":
        return _zstandard().ZstdDecompressor().decompressobj()
    import bz2
    import lzma

    return bz2.BZ2Decompressor() if kind == "bzip2" else lzma.LZMADecompressor()


# -- sources: what an archive is read through ----------------------------------------------------
class _Source:
    """An archive's files by name: a layout directory or a tar (random access)."""

    label: str

    def size(self, name: str) -> int | None:
        """The size of the regular file ``name``, or None if there is none."""
        raise NotImplementedError

    def open(self, name: str) -> IO[bytes]:
        raise NotImplementedError

    def read(self, name: str, limit: int = MAX_DOCUMENT) -> bytes:
        size = self.size(name)
        if size is None:
            raise ArchiveError(f"{self.label}: {name} is missing")
        if size > limit:
            raise ArchiveError(f"{self.label}: {name} is {size} bytes, more than {limit}")
        with self.open(name) as handle:
            data = handle.read(size + 1)
        if len(data) != size:
            raise ArchiveError(f"{self.label}: {name} is truncated")
        return data

    def head(self, name: str, count: int = 8) -> bytes:
        with self.open(name) as handle:
            return handle.read(count)

    def close(self) -> None:
        pass


def _clean(name: str) -> str | None:
    """A member name made relative and normal; None for one that leaves the archive."""
    name = posixpath.normpath("/" + name.replace("\\", "/")).lstrip("/")
    return name or None


class _DirSource(_Source):
    def __init__(self, path: str) -> None:
        self.label = path
        self.root = os.path.realpath(path)

    def _path(self, name: str) -> str | None:
        clean = _clean(name)
        if clean is None:
            return None
        full = os.path.realpath(os.path.join(self.root, clean))
        if not full.startswith(self.root + os.sep):
            raise ArchiveError(f"{self.label}: {name} leads outside the layout")
        return full

    def size(self, name: str) -> int | None:
        path = self._path(name)
        if path is None or not os.path.isfile(path):
            return None
        return os.stat(path).st_size

    def open(self, name: str) -> IO[bytes]:
        path = self._path(name)
        if path is None:
            raise ArchiveError(f"{self.label}: {name} is missing")
        try:
            return open(path, "rb")
        except OSError as err:
            raise ArchiveError(f"{self.label}: {name}: {(err.strerror or '').lower()}") from None


class _TarSource(_Source):
    """A seekable, uncompressed tar: member headers scanned once, data read in place."""

    def __init__(self, fileobj: IO[bytes], label: str, owned: bool = True) -> None:
        self.label = label
        self.fileobj = fileobj
        self.owned = owned
        try:
            end = fileobj.seek(0, os.SEEK_END)
            fileobj.seek(0)
            self.tar = tarfile.open(fileobj=fileobj, mode="r:")  # noqa: SIM115 - kept open
            members = self.tar.getmembers()
        except (tarfile.TarError, OSError, EOFError) as err:
            if "unexpected end of data" in str(err):
                raise ArchiveError(f"{label}: the archive is truncated ({err})") from None
            raise ArchiveError(f"{label}: not a readable tar archive ({err})") from None
        self.members: dict[str, tarfile.TarInfo] = {}
        for member in members:
            name = _clean(member.name)
            if name is None:
                continue
            if member.isreg() and member.offset_data + member.size > end:
                raise ArchiveError(
                    f"{label}: the archive is truncated ({name} needs"
                    f" {member.offset_data + member.size - end} more bytes)"
                )
            self.members[name] = member

    def _regular(self, name: str) -> tarfile.TarInfo | None:
        clean = _clean(name)
        for _ in range(_LINK_HOPS):
            if clean is None:
                return None
            member = self.members.get(clean)
            if member is None:
                return None
            if member.isreg():
                return member
            if member.issym():
                base = posixpath.dirname(clean)
                target = member.linkname
                clean = _clean(target if target.startswith("/") else posixpath.join(base, target))
            elif member.islnk():
                clean = _clean(member.linkname)
            else:
                return None
        raise ArchiveError(f"{self.label}: {name}: too many levels of links")

    def size(self, name: str) -> int | None:
        member = self._regular(name)
        return None if member is None else member.size

    def open(self, name: str) -> IO[bytes]:
        member = self._regular(name)
        if member is None:
            raise ArchiveError(f"{self.label}: {name} is missing")
        handle = self.tar.extractfile(member)
        assert handle is not None
        return handle

    def close(self) -> None:
        self.tar.close()
        if self.owned:
            self.fileobj.close()


def _open_source(store: Store, source: str | os.PathLike[str] | IO[bytes]) -> _Source:
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        if os.path.isdir(path):
            return _DirSource(path)
        try:
            handle: IO[bytes] = open(path, "rb")  # noqa: SIM115 - owned by the source
        except OSError as err:
            raise ArchiveError(f"{path}: {(err.strerror or '').lower()}") from None
        label, owned = path, True
    else:
        handle, owned = source, False  # the caller's: read, never closed here
        label = getattr(source, "name", None) or "<stream>"
        if not isinstance(label, str):
            label = "<stream>"
    try:
        try:
            seekable = handle.seekable()
        except (OSError, ValueError):
            seekable = False
        if seekable:
            start = handle.tell()
            kind = _compression(handle.read(8))
            handle.seek(start)
            if kind is None and start == 0:
                return _TarSource(handle, label, owned)
        spooled = _spool(store, handle, label)
    except BaseException:
        if owned:
            handle.close()
        raise
    if owned:
        handle.close()
    return _TarSource(spooled, label)


def _spool(store: Store, handle: IO[bytes], label: str) -> IO[bytes]:
    """Copy (and decompress) a stream into an anonymous file in the store's ingest dir."""
    os.makedirs(f"{store.root}/ingest", mode=0o700, exist_ok=True)
    spool = tempfile.TemporaryFile(dir=f"{store.root}/ingest")  # noqa: SIM115 - returned
    try:
        first = handle.read(_CHUNK)
        kind = _compression(first)
        decoder = _decompressor(kind) if kind else None
        chunk = first
        while chunk:
            spool.write(decoder.decompress(chunk) if decoder else chunk)
            chunk = handle.read(_CHUNK)
        if decoder is not None and hasattr(decoder, "eof") and not decoder.eof:
            raise ArchiveError(f"{label}: the {kind} stream is truncated")
    except (OSError, EOFError, zlib.error, ValueError) as err:
        spool.close()
        raise ArchiveError(f"{label}: cannot read the archive ({err})") from None
    except BaseException:
        spool.close()
        raise
    spool.seek(0)
    return spool


# -- what a load will store ----------------------------------------------------------------------
class _Plan:
    def __init__(self, source: _Source) -> None:
        self.source = source
        # digest -> (size, member, diff_id and compression to verify, or None)
        self.blobs: dict[str, tuple[int, str, tuple[str, str] | None]] = {}
        self.documents: dict[str, bytes] = {}  # children before parents
        self.images: list[_Image] = []

    def blob(self, digest: str, size: int, member: str, diff: tuple[str, str] | None) -> None:
        self.blobs.setdefault(digest, (size, member, diff))


class _Image:
    def __init__(self, descriptor: dict[str, Any], full: list[str], tag: str | None) -> None:
        self.descriptor = descriptor
        self.full = full  # full references the archive gives it
        self.tag = tag  # a bare tag (ref.name "latest")


def _document(source: _Source, member: str, digest: str, size: int | None, where: str) -> bytes:
    data = source.read(member)
    if size is not None and len(data) != size:
        raise BlobMismatch(f"{source.label}: {member} is {len(data)} bytes, {where} says {size}")
    actual = digest_of(data, digest.partition(":")[0])
    if actual != digest:
        raise BlobMismatch(f"{source.label}: {member} is corrupt: its digest is {actual}")
    return data


def _json(source: _Source, member: str, data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError as err:
        raise ArchiveError(f"{source.label}: {member} is not JSON ({err})") from None


def _blob_member(digest: str) -> str:
    algorithm, encoded = split_digest(digest)
    return f"blobs/{algorithm}/{encoded}"


# -- OCI layouts -----------------------------------------------------------------------------------
def _plan_oci(source: _Source) -> _Plan:
    plan = _Plan(source)
    layout = _json(source, "oci-layout", source.read("oci-layout"))
    version = layout.get("imageLayoutVersion") if isinstance(layout, dict) else None
    if version != LAYOUT_VERSION:
        raise ArchiveError(
            f"{source.label}: oci-layout: imageLayoutVersion {version!r}, expected {LAYOUT_VERSION}"
        )
    index = _json(source, "index.json", source.read("index.json"))
    try:
        parsed = mf.parse(json.dumps(index).encode(), mf.OCI_INDEX)
    except mf.ManifestError as err:
        raise ArchiveError(f"{source.label}: index.json: {err}") from None
    assert isinstance(parsed, mf.Index)
    if not parsed.manifests:
        raise ArchiveError(f"{source.label}: index.json lists no image")
    for position, entry in enumerate(parsed.manifests):
        where = f"index.json manifests[{position}]"
        _walk(plan, entry, where, required=True)
        annotations = dict(entry.annotations)
        tag = None
        containerd = annotations.pop(CONTAINERD_NAME, "")
        ref_name = annotations.pop(REF_ANNOTATION, "")
        if ref_name and not any(c in ref_name for c in "/:@"):
            tag = None if containerd else ref_name  # a bare tag
            ref_name = ""
        names = [text for text in (containerd, ref_name) if text]
        full = _full_names(names, f"{source.label}: {where}")
        descriptor = mf.Descriptor(
            entry.media_type, entry.digest, entry.size, entry.urls, annotations, entry.platform
        ).to_json()
        plan.images.append(_Image(descriptor, full, tag))
    return plan


def _walk(plan: _Plan, descriptor: mf.Descriptor, where: str, required: bool) -> bool:
    """Check what ``descriptor`` reaches and add it to the plan, children first. False when
    the blob is not in the archive and need not be."""
    source = plan.source
    member = _blob_member(descriptor.digest)
    size = source.size(member)
    if size is None:
        if required:
            raise ArchiveError(
                f"{source.label}: {where} names blob {descriptor.digest}, which the archive"
                " does not hold"
            )
        return False
    if size != descriptor.size:
        raise BlobMismatch(
            f"{source.label}: {member} is {size} bytes, {where} says {descriptor.size}"
        )
    kind = descriptor.media_type
    if kind not in (*mf.MANIFEST_TYPES, *mf.INDEX_TYPES):
        plan.blob(descriptor.digest, size, member, None)
        return True
    if descriptor.digest in plan.documents:
        return True
    data = _document(source, member, descriptor.digest, descriptor.size, where)
    try:
        document = mf.parse(data, kind)
    except mf.ManifestError as err:
        raise ArchiveError(f"{source.label}: {member} ({where}): {err}") from None
    if isinstance(document, mf.Index):
        present = [
            _walk(plan, child, f"{member} manifests[{i}]", required=False)
            for i, child in enumerate(document.manifests)
        ]
        if document.manifests and not any(present):
            raise ArchiveError(
                f"{source.label}: {where}: the index {descriptor.digest} names"
                f" {len(present)} manifests and the archive holds none of them"
            )
    else:
        _walk(plan, document.config, f"{member} config", required=True)
        for i, layer in enumerate(document.layers):
            optional = mf.is_foreign(layer.media_type) and bool(layer.urls)
            _walk(plan, layer, f"{member} layers[{i}]", required=not optional)
    plan.documents[descriptor.digest] = data
    return True


# -- docker-archive ------------------------------------------------------------------------------
def _plan_docker(source: _Source) -> _Plan:
    plan = _Plan(source)
    entries = _json(source, "manifest.json", source.read("manifest.json"))
    if not isinstance(entries, list) or not entries:
        raise ArchiveError(f"{source.label}: manifest.json: expected a non-empty list of images")
    for position, entry in enumerate(entries):
        where = f"manifest.json[{position}]"
        if not isinstance(entry, dict):
            raise ArchiveError(f"{source.label}: {where}: not an object")
        config_member = entry.get("Config")
        layer_members = entry.get("Layers")
        tags = entry.get("RepoTags") or []
        if not isinstance(config_member, str) or not config_member:
            raise ArchiveError(f"{source.label}: {where}.Config: missing")
        if not isinstance(layer_members, list) or not all(
            isinstance(m, str) and m for m in layer_members
        ):
            raise ArchiveError(f"{source.label}: {where}.Layers: must be a list of file names")
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise ArchiveError(f"{source.label}: {where}.RepoTags: must be a list of names")
        config_bytes = source.read(config_member)
        config_digest = digest_of(config_bytes)
        named = _NAMED_BLOB.search(config_member)
        if named and f"sha256:{named.group(1)}" != config_digest:
            raise BlobMismatch(
                f"{source.label}: {config_member} is corrupt: its digest is {config_digest}"
            )
        config = _json(source, config_member, config_bytes)
        rootfs = config.get("rootfs") if isinstance(config, dict) else None
        diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
        if not isinstance(diff_ids, list) or not all(
            isinstance(d, str) and d.startswith("sha256:") for d in diff_ids
        ):
            raise ArchiveError(f"{source.label}: {config_member}: no rootfs.diff_ids")
        if len(diff_ids) != len(layer_members):
            raise ArchiveError(
                f"{source.label}: {where} lists {len(layer_members)} layers, its config"
                f" {len(diff_ids)} diff_ids"
            )
        layers = [_docker_layer(plan, m, d) for m, d in zip(layer_members, diff_ids, strict=True)]
        config_descriptor = {
            "mediaType": mf.OCI_CONFIG,
            "digest": config_digest,
            "size": len(config_bytes),
        }
        document = {
            "schemaVersion": 2,
            "mediaType": mf.OCI_MANIFEST,
            "config": config_descriptor,
            "layers": layers,
        }
        data = json.dumps(document, separators=(",", ":")).encode()
        digest = digest_of(data)
        plan.documents.setdefault(config_digest, config_bytes)
        plan.documents.setdefault(digest, data)
        full = _full_names(tags, f"{source.label}: {where}.RepoTags")
        descriptor = {"mediaType": mf.OCI_MANIFEST, "digest": digest, "size": len(data)}
        plan.images.append(_Image(descriptor, full, None))
    return plan


def _full_names(names: Iterable[str], where: str) -> list[str]:
    """``names`` with docker's defaults filled in, each once, in order; a name that is not a
    reference is an ArchiveError that says ``where`` it was."""
    full: list[str] = []
    for name in names:
        try:
            normalized = str(Reference.parse(name))
        except InvalidReference as err:
            raise ArchiveError(f"{where}: {err}") from None
        if normalized not in full:
            full.append(normalized)
    return full


def _docker_layer(plan: _Plan, member: str, diff_id: str) -> dict[str, Any]:
    source = plan.source
    size = source.size(member)
    if size is None:
        raise ArchiveError(f"{source.label}: layer {member} is missing from the archive")
    split_digest(diff_id)
    kind = _compression(source.head(member))
    named = _NAMED_BLOB.search(member)
    if kind is None:
        if named and f"sha256:{named.group(1)}" != diff_id:
            raise BlobMismatch(
                f"{source.label}: layer {member} is named for another digest than its"
                f" diff_id {diff_id}"
            )
        plan.blob(diff_id, size, member, None)
        return {"mediaType": mf.OCI_LAYER, "digest": diff_id, "size": size}
    if kind not in ("gzip", "zstd"):
        raise ArchiveError(f"{source.label}: layer {member} is {kind}-compressed (unsupported)")
    if named and not member.endswith(".tar"):
        digest = f"sha256:{named.group(1)}"
    else:
        hasher = hashlib.sha256()
        with source.open(member) as handle:
            for chunk in iter(lambda: handle.read(_CHUNK), b""):
                hasher.update(chunk)
        digest = f"sha256:{hasher.hexdigest()}"
    plan.blob(digest, size, member, (diff_id, kind))
    media = mf.OCI_LAYER_GZIP if kind == "gzip" else mf.OCI_LAYER_ZSTD
    return {"mediaType": media, "digest": digest, "size": size}


# -- names -----------------------------------------------------------------------------------------
def base_name(path: str | None) -> str | None:
    """``localhost/<stem>`` for an archive at ``path`` (podman's way), or None."""
    if not path:
        return None
    stem = os.path.basename(os.path.normpath(path)).lower()
    while True:
        for suffix in (".gz", ".tgz", ".zst", ".xz", ".bz2", ".tar", ".oci"):
            if stem.endswith(suffix) and len(stem) > len(suffix):
                stem = stem[: -len(suffix)]
                break
        else:
            break
    stem = re.sub(r"[^a-z0-9]+", "-", stem).strip("-")
    if not stem:
        return None
    try:
        return Reference.parse(f"localhost/{stem}").name
    except InvalidReference:
        return None


def _tag_of(image: _Image) -> str | None:
    if image.tag:
        return image.tag
    for full in image.full:
        tag = Reference.parse(full).tag
        if tag:
            return tag
    return None


def _assign_names(plan: _Plan, name: str | None, base: str | None) -> list[tuple[str, _Image]]:
    label = plan.source.label
    named: list[tuple[str, _Image]] = []
    if name:
        wanted = Reference.parse(name)
        explicit = "@" in name or ":" in name.rpartition("/")[2]
        if explicit and len(plan.images) > 1:
            raise ArchiveError(
                f"{label} holds {len(plan.images)} images: --name must be a repository"
                " without a tag (each image keeps its own tag)"
            )
        for image in plan.images:
            if explicit:
                named.append((str(wanted), image))
                continue
            tag = _tag_of(image)
            if tag is None and len(plan.images) > 1:
                named.append((f"{wanted.name}@{image.descriptor['digest']}", image))
            else:
                named.append((f"{wanted.name}:{tag or 'latest'}", image))
        return named
    unnamed = [image for image in plan.images if not image.full and not image.tag]
    for image in plan.images:
        if image.full:
            named += [(full, image) for full in image.full]
            continue
        if base is None:
            what = f"only by the tag {image.tag!r}" if image.tag else "without a name"
            raise ArchiveError(f"{label} names an image {what}: give --name REPOSITORY[:TAG]")
        if image.tag:
            named.append((f"{base}:{image.tag}", image))
        elif len(unnamed) == 1:
            named.append((f"{base}:latest", image))
        else:
            named.append((f"{base}@{image.descriptor['digest']}", image))
    return named


# -- load ------------------------------------------------------------------------------------------
def load(
    store: Store, source: str | os.PathLike[str] | IO[bytes], name: str | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """Load an OCI layout (directory or tar) or a docker-archive into ``store``; returns the
    (name, descriptor) pairs it set, in the archive's order. See the module docstring."""
    archive = _open_source(store, source)
    try:
        if archive.size("index.json") is not None and archive.size("oci-layout") is not None:
            plan = _plan_oci(archive)
        elif archive.size("manifest.json") is not None:
            plan = _plan_docker(archive)
        else:
            raise ArchiveError(
                f"{archive.label}: neither an OCI image layout (oci-layout, index.json) nor a"
                " docker-archive (manifest.json)"
            )
        path = os.fspath(source) if isinstance(source, (str, os.PathLike)) else None
        names = _assign_names(plan, name, base_name(path))
        with store.lease():
            _store_blobs(store, plan)
            for digest, data in plan.documents.items():
                store.write_blob(data, digest)
            for ref, image in names:
                store.set_ref(ref, image.descriptor)
        return [(ref, image.descriptor) for ref, image in names]
    finally:
        archive.close()


def _store_blobs(store: Store, plan: _Plan) -> None:
    """Every blob written and verified first, then all committed (sorted: two loads take the
    ingest locks in the same order)."""
    source = plan.source
    ingests: list[Ingest] = []
    try:
        for digest in sorted(plan.blobs):
            size, member, diff = plan.blobs[digest]
            ingest = store.ingest(digest, size)
            ingests.append(ingest)
            if ingest.complete:
                continue
            ingest.restart()
            decoder = _decompressor(diff[1]) if diff else None
            uncompressed = hashlib.sha256()
            try:
                with source.open(member) as handle:
                    while chunk := handle.read(_CHUNK):
                        ingest.write(chunk)
                        if decoder is not None:
                            uncompressed.update(decoder.decompress(chunk))
                ingest.verify()
            except BlobMismatch as err:
                raise BlobMismatch(f"{source.label}: {member} is corrupt ({err})") from None
            except (OSError, tarfile.TarError, EOFError) as err:
                raise ArchiveError(f"{source.label}: {member}: cannot read ({err})") from None
            except zlib.error as err:
                kind = diff[1] if diff else "compressed"
                raise BlobMismatch(f"{source.label}: {member}: bad {kind} data ({err})") from None
            if diff is not None:
                actual = f"sha256:{uncompressed.hexdigest()}"
                if actual != diff[0]:
                    raise BlobMismatch(
                        f"{source.label}: layer {member}: its uncompressed digest is {actual},"
                        f" the config's diff_id {diff[0]}"
                    )
        for ingest in ingests:
            ingest.commit()
    finally:
        for ingest in ingests:
            if ingest.fd >= 0:
                ingest.abort()
            else:
                ingest.close()


# -- save ------------------------------------------------------------------------------------------
class _Readable(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


class _Writer:
    """Where a saved archive goes: a tar (file or stream) or a layout directory."""

    def add(self, name: str, size: int, handle: _Readable) -> None:
        raise NotImplementedError

    def add_bytes(self, name: str, data: bytes) -> None:
        self.add(name, len(data), io.BytesIO(data))

    def has(self, name: str, size: int) -> bool:
        return False


class _TarWriter(_Writer):
    def __init__(self, fileobj: IO[bytes], stream: bool) -> None:
        self.tar = tarfile.open(fileobj=fileobj, mode="w|" if stream else "w:")  # noqa: SIM115
        self.dirs: set[str] = set()

    def _info(self, name: str, kind: bytes, size: int, mode: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.size = size
        info.mode = mode
        info.mtime = 0
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    def add(self, name: str, size: int, handle: _Readable) -> None:
        parent = posixpath.dirname(name)
        parts: list[str] = []
        while parent and parent not in self.dirs:
            parts.append(parent)
            parent = posixpath.dirname(parent)
        for directory in reversed(parts):
            self.tar.addfile(self._info(directory, tarfile.DIRTYPE, 0, 0o755))
            self.dirs.add(directory)
        self.tar.addfile(self._info(name, tarfile.REGTYPE, size, 0o644), cast("IO[bytes]", handle))

    def close(self) -> None:
        self.tar.close()


class _DirWriter(_Writer):
    def __init__(self, root: str) -> None:
        self.root = root

    def has(self, name: str, size: int) -> bool:
        try:
            return os.stat(f"{self.root}/{name}").st_size == size
        except FileNotFoundError:
            return False

    def add(self, name: str, size: int, handle: _Readable) -> None:
        path = f"{self.root}/{name}"
        os.makedirs(os.path.dirname(path), exist_ok=True)
        temp = f"{path}.tmp{os.getpid()}"
        with open(temp, "wb") as out:
            copied = _copy(handle, out, size)
            out.flush()
            os.fsync(out.fileno())
        if copied != size:
            os.unlink(temp)
            raise StoreError(f"{name}: copied {copied} of {size} bytes")
        os.chmod(temp, 0o644)
        os.rename(temp, path)


def _copy(source: _Readable, target: IO[bytes], size: int) -> int:
    copied = 0
    while copied < size:
        chunk = source.read(min(_CHUNK, size - copied))
        if not chunk:
            break
        target.write(chunk)
        copied += len(chunk)
    return copied


class _Verified:
    """A blob read through its hash: ``check()`` after the last byte."""

    def __init__(self, handle: IO[bytes], digest: str, store: Store) -> None:
        self.handle = handle
        self.digest = digest
        self.store = store
        self.hasher = hashlib.new(digest.partition(":")[0])

    def read(self, size: int = -1, /) -> bytes:
        data = self.handle.read(size)
        self.hasher.update(data)
        return data

    def check(self) -> None:
        actual = f"{self.digest.partition(':')[0]}:{self.hasher.hexdigest()}"
        if actual != self.digest:
            raise BlobMismatch(
                self.store._corrupt(self.digest, f"its content's digest is {actual}")
            )


def _add_blob(store: Store, writer: _Writer, member: str, digest: str, size: int) -> None:
    if writer.has(member, size):
        return
    with store.open_blob(digest, size) as handle:
        verified = _Verified(handle, digest, store)
        writer.add(member, size, verified)
        verified.check()


def _selected(store: Store, names: Sequence[str]) -> list[tuple[list[str], dict[str, Any]]]:
    """(names to record, descriptor) per argument, images given twice merged."""
    from imagetools.images import find

    chosen: dict[str, tuple[list[str], dict[str, Any]]] = {}
    for text in names:
        found = find(store, text)
        digest = found.descriptor["digest"]
        recorded, _ = chosen.setdefault(digest, ([], found.descriptor))
        for ref in [] if found.by_id else [found.name]:
            if ref and ref not in recorded:
                recorded.append(ref)
    return list(chosen.values())


def _closure(store: Store, descriptor: dict[str, Any]) -> list[tuple[str, int]]:
    """The blobs to write for one image, children first; missing children of an index are
    left out, anything else missing is an error."""
    out: dict[str, int] = {}

    def visit(entry: mf.Descriptor, required: bool) -> bool:
        if not store.has_blob(entry.digest):
            if required:
                raise StoreError(
                    f"blob {entry.digest} ({entry.media_type}) is not in the store: the image"
                    " is incomplete (pull or load it again)"
                )
            return False
        if entry.media_type in (*mf.MANIFEST_TYPES, *mf.INDEX_TYPES):
            document = mf.parse(store.read_blob(entry.digest), entry.media_type)
            if isinstance(document, mf.Index):
                present = [visit(child, False) for child in document.manifests]
                if document.manifests and not any(present):
                    raise StoreError(f"no manifest of the index {entry.digest} is in the store")
            else:
                visit(document.config, True)
                for layer in document.layers:
                    visit(layer, not (mf.is_foreign(layer.media_type) and layer.urls))
        else:
            store.check_blob(entry.digest, entry.size)
        out[entry.digest] = entry.size
        return True

    visit(mf.Descriptor.from_json(descriptor, "descriptor"), True)
    return list(out.items())


def save(
    store: Store,
    names: Sequence[str],
    path: str | os.PathLike[str] | IO[bytes],
    format: str = "oci-archive",
) -> list[str]:
    """Write the images ``names`` (store names, references or ids) to ``path`` (a file, a
    directory for oci-dir, or a binary stream); returns the names recorded."""
    if format not in FORMATS:
        raise ImageError(f"unknown archive format {format!r} (one of {', '.join(FORMATS)})")
    if not names:
        raise ImageError("save: no image given")
    selected = _selected(store, names)
    if format == "oci-dir":
        if not isinstance(path, (str, os.PathLike)):
            raise ImageError("oci-dir needs a directory path, not a stream")
        _save_oci_dir(store, selected, os.fspath(path))
    else:
        try:
            with _output(store, path) as writer:
                if format == "oci-archive":
                    _write_oci(store, selected, writer, {})
                else:
                    _write_docker(store, selected, writer)
        except OSError as err:
            where = os.fspath(path) if isinstance(path, (str, os.PathLike)) else "the output"
            reason = (err.strerror or str(err)).lower()
            raise ArchiveError(f"cannot write {where}: {reason}") from None
    return [ref for recorded, _ in selected for ref in recorded]


class _output:
    """A _TarWriter to ``path`` via a temp file renamed on success (or to a stream)."""

    def __init__(self, store: Store, path: str | os.PathLike[str] | IO[bytes]) -> None:
        self.path = os.fspath(path) if isinstance(path, (str, os.PathLike)) else None
        self.stream = None if self.path is not None else path
        self.temp: str | None = None
        self.handle: IO[bytes] | None = None

    def __enter__(self) -> _TarWriter:
        if self.path is None:
            assert self.stream is not None and not isinstance(self.stream, (str, os.PathLike))
            self.writer = _TarWriter(self.stream, stream=True)
            return self.writer
        directory = os.path.dirname(os.path.abspath(self.path))
        fd, self.temp = tempfile.mkstemp(
            prefix=f".{os.path.basename(self.path)}.", suffix=".tmp", dir=directory
        )
        self.handle = os.fdopen(fd, "wb")
        self.writer = _TarWriter(self.handle, stream=False)
        return self.writer

    def __exit__(self, kind: object, value: object, tb: object) -> None:
        try:
            if kind is None:
                self.writer.close()
                if self.handle is not None:
                    self.handle.flush()
                    os.fsync(self.handle.fileno())
        finally:
            if self.handle is not None:
                self.handle.close()
            if self.temp is not None:
                if kind is None:
                    assert self.path is not None
                    os.chmod(self.temp, 0o644)
                    os.rename(self.temp, self.path)
                else:
                    os.unlink(self.temp)


def _index_entries(selected: list[tuple[list[str], dict[str, Any]]]) -> list[dict[str, Any]]:
    entries = []
    for recorded, descriptor in selected:
        base = {k: v for k, v in descriptor.items() if k != "annotations"}
        annotations = {
            k: v
            for k, v in descriptor.get("annotations", {}).items()
            if k not in (REF_ANNOTATION, CONTAINERD_NAME) and not k.startswith("io.pyrun.")
        }
        for ref in recorded or [""]:
            entry = dict(base)
            named = dict(annotations)
            if ref:
                named[CONTAINERD_NAME] = ref
                named[REF_ANNOTATION] = ref
            if named:
                entry["annotations"] = dict(sorted(named.items()))
            entries.append(entry)
    return entries


def _write_oci(
    store: Store,
    selected: list[tuple[list[str], dict[str, Any]]],
    writer: _Writer,
    existing: dict[str, Any],
) -> None:
    blobs: dict[str, int] = {}
    for _, descriptor in selected:
        for digest, size in _closure(store, descriptor):
            blobs.setdefault(digest, size)
    entries = _index_entries(selected)
    new_names = {e.get("annotations", {}).get(REF_ANNOTATION) for e in entries} - {None}
    kept = [
        e
        for e in existing.get("manifests", [])
        if e.get("annotations", {}).get(REF_ANNOTATION) not in new_names
    ]
    index = {"schemaVersion": 2, "mediaType": mf.OCI_INDEX, "manifests": kept + entries}
    layout = json.dumps({"imageLayoutVersion": LAYOUT_VERSION}).encode()
    if isinstance(writer, _TarWriter):
        writer.add_bytes("oci-layout", layout)
        writer.add_bytes("index.json", json.dumps(index).encode())
    for digest in sorted(blobs):
        _add_blob(store, writer, _blob_member(digest), digest, blobs[digest])
    if isinstance(writer, _DirWriter):
        # Blobs first, then the names: a reader never sees an entry whose blobs are missing.
        writer.add_bytes("oci-layout", layout)
        writer.add_bytes("index.json", json.dumps(index).encode())


def _save_oci_dir(
    store: Store, selected: list[tuple[list[str], dict[str, Any]]], path: str
) -> None:
    existing: dict[str, Any] = {}
    if os.path.isdir(path) and os.listdir(path):
        if not os.path.exists(f"{path}/oci-layout"):
            raise ImageError(f"{path} is a directory that is not empty and not an OCI layout")
        try:
            with open(f"{path}/index.json", "rb") as handle:
                existing = json.load(handle)
        except (OSError, ValueError) as err:
            raise ArchiveError(f"{path}/index.json: cannot read it ({err})") from None
    elif os.path.exists(path) and not os.path.isdir(path):
        raise ImageError(f"{path} exists and is not a directory")
    os.makedirs(path, exist_ok=True)
    _write_oci(store, selected, _DirWriter(path), existing)


def _write_docker(
    store: Store, selected: list[tuple[list[str], dict[str, Any]]], writer: _TarWriter
) -> None:
    from imagetools.images import platform_manifest

    # One entry per image (config and layers), as docker save does: names of the same
    # image in any number of store manifests become one entry's RepoTags.
    entries: dict[tuple[str, ...], dict[str, Any]] = {}
    written: set[str] = set()
    layer_files: dict[str, str] = {}
    for recorded, descriptor in selected:
        _, image = platform_manifest(store, descriptor)
        config_bytes = store.read_blob(image.config.digest)
        config = json.loads(config_bytes)
        diff_ids = config.get("rootfs", {}).get("diff_ids", [])
        if len(diff_ids) != len(image.layers):
            raise ImageError(
                f"image {descriptor['digest']}: {len(image.layers)} layers but"
                f" {len(diff_ids)} diff_ids in its config"
            )
        files = []
        for layer, diff_id in zip(image.layers, diff_ids, strict=True):
            member = f"{split_digest(diff_id)[1]}.tar"
            if member not in layer_files:
                _add_layer(store, writer, member, layer, diff_id)
                layer_files[member] = diff_id
            files.append(member)
        config_member = f"{split_digest(image.config.digest)[1]}.json"
        if config_member not in written:
            writer.add_bytes(config_member, config_bytes)
            written.add(config_member)
        key = (config_member, *files)
        entry = entries.setdefault(key, {"Config": config_member, "RepoTags": [], "Layers": files})
        for ref in recorded:
            if Reference.parse(ref).tag and ref not in entry["RepoTags"]:
                entry["RepoTags"].append(ref)
    for entry in entries.values():
        entry["RepoTags"] = entry["RepoTags"] or None
    writer.add_bytes("manifest.json", json.dumps(list(entries.values())).encode())


def _add_layer(
    store: Store, writer: _TarWriter, member: str, layer: mf.Descriptor, diff_id: str
) -> None:
    """A layer as an uncompressed tar, verified against its blob digest and its diff_id."""
    with store.open_blob(layer.digest, layer.size) as handle:
        kind = _compression(handle.read(8))
        handle.seek(0)
        if kind is None:
            if layer.digest != diff_id:
                raise ImageError(
                    f"layer {layer.digest} is an uncompressed tar but its diff_id is {diff_id}"
                )
            verified = _Verified(handle, layer.digest, store)
            writer.add(member, layer.size, verified)
            verified.check()
            return
        if kind not in ("gzip", "zstd"):
            raise ImageError(f"layer {layer.digest} is {kind}-compressed (unsupported)")
        decoder = _decompressor(kind)
        compressed = _Verified(handle, layer.digest, store)
        uncompressed = hashlib.sha256()
        os.makedirs(f"{store.root}/ingest", mode=0o700, exist_ok=True)
        with tempfile.TemporaryFile(dir=f"{store.root}/ingest") as spool:
            try:
                for chunk in iter(lambda: compressed.read(_CHUNK), b""):
                    data = decoder.decompress(chunk)
                    uncompressed.update(data)
                    spool.write(data)
            except zlib.error as err:
                why = f"bad {kind} data ({err})"
                raise BlobMismatch(store._corrupt(layer.digest, why)) from None
            compressed.check()
            actual = f"sha256:{uncompressed.hexdigest()}"
            if actual != diff_id:
                raise BlobMismatch(
                    store._corrupt(layer.digest, f"uncompressed digest {actual}, not {diff_id}")
                )
            size = spool.tell()
            spool.seek(0)
            writer.add(member, size, spool)
