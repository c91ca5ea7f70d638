"""The graph: images kept as one OCI image layout on disk, shared by every image.

::

    <root>/oci-layout            {"imageLayoutVersion": "1.0.0"}
    <root>/index.json            one descriptor per name (annotation
                                 org.opencontainers.image.ref.name = the full reference,
                                 e.g. docker.io/library/busybox:latest)
    <root>/blobs/<alg>/<hex>     content-addressed: manifests, indexes, configs, layers
    <root>/ingest/<alg>-<hex>    a blob being written (kept between runs: a pull resumes it)
    <root>/snapshots/...         owned by the snapshotters
    <root>/lock                  flock: exclusive for index.json changes and gc

Every blob is verified against its digest (and size, when known) before it is renamed into
``blobs/``: a partial or wrong blob is never visible. index.json is replaced atomically under
the lock, so concurrent pyrun processes never lose each other's names.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
from contextlib import contextmanager

from imagetools.errors import BlobMismatch, ImageNotFound, StoreError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import Any, BinaryIO

DEFAULT_ROOT = "/var/lib/pyrun/images"
REF_ANNOTATION = "org.opencontainers.image.ref.name"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
ALGORITHMS = ("sha256", "sha512")
_CHUNK = 1 << 20


def split_digest(digest: str) -> tuple[str, str]:
    """ "sha256:ab12..." -> ("sha256", "ab12..."), refusing anything that is not a digest."""
    algorithm, _, encoded = digest.partition(":")
    size = {"sha256": 64, "sha512": 128}.get(algorithm)
    if size is None or len(encoded) != size or not all(c in "0123456789abcdef" for c in encoded):
        raise StoreError(f"invalid digest {digest!r}")
    return algorithm, encoded


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


class Ingest:
    """A blob being written: resumable (``offset`` bytes are already there), verified on
    ``commit``. Holds an exclusive lock on its partial file, so two pulls of the same blob
    never interleave: the second waits and then finds the blob in place."""

    def __init__(self, store: Store, digest: str, size: int | None) -> None:
        self.store = store
        self.digest = digest
        self.size = size
        algorithm, encoded = split_digest(digest)
        self.path = f"{store.root}/ingest/{algorithm}-{encoded}"
        os.makedirs(f"{store.root}/ingest", exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        self.hasher = hashlib.new(algorithm)
        self.offset = 0
        # Rebuild the hash of what an earlier, interrupted attempt wrote.
        while True:
            chunk = os.pread(self.fd, _CHUNK, self.offset)
            if not chunk:
                break
            self.hasher.update(chunk)
            self.offset += len(chunk)
        if size is not None and self.offset > size:
            self.restart()

    def restart(self) -> None:
        """Throw away what is there (the server cannot resume, or it was wrong)."""
        os.ftruncate(self.fd, 0)
        self.hasher = hashlib.new(self.digest.partition(":")[0])
        self.offset = 0

    def write(self, data: bytes | memoryview) -> None:
        if self.size is not None and self.offset + len(data) > self.size:
            raise BlobMismatch(
                f"blob {self.digest}: more than the {self.size} bytes its descriptor announces"
            )
        view = memoryview(data)
        while view:
            written = os.pwrite(self.fd, view, self.offset)
            self.hasher.update(view[:written])
            self.offset += written
            view = view[written:]

    def commit(self) -> str:
        """Verify and move into blobs/. A mismatch discards the data (it can never become
        right) and raises BlobMismatch."""
        actual = f"{self.digest.partition(':')[0]}:{self.hasher.hexdigest()}"
        if self.size is not None and self.offset != self.size:
            self._discard()
            raise BlobMismatch(
                f"blob {self.digest}: got {self.offset} bytes, the descriptor says {self.size}"
            )
        if actual != self.digest:
            self._discard()
            raise BlobMismatch(f"blob {self.digest}: the content's digest is {actual}")
        target = self.store.blob_path(self.digest)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.fsync(self.fd)
        os.rename(self.path, target)
        self.close()
        return self.digest

    def _discard(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self.close()

    def close(self) -> None:
        """Keep the partial file for a later resume; release the lock."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Store:
    def __init__(self, root: str = DEFAULT_ROOT) -> None:
        self.root = root.rstrip("/") or "/"
        try:
            os.makedirs(f"{self.root}/blobs/sha256", exist_ok=True)
            if not os.path.exists(f"{self.root}/oci-layout"):
                self._write_atomic("oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
            if not os.path.exists(f"{self.root}/index.json"):
                empty = {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": []}
                self._write_atomic("index.json", json.dumps(empty).encode())
        except OSError as err:
            raise StoreError(f"image store {self.root}: {(err.strerror or '').lower()}") from None

    # -- locking ------------------------------------------------------------------------------
    @contextmanager
    def lock(self, exclusive: bool = True) -> Iterator[None]:
        fd = os.open(f"{self.root}/lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)

    # -- blobs ------------------------------------------------------------------------------
    def blob_path(self, digest: str) -> str:
        algorithm, encoded = split_digest(digest)
        return f"{self.root}/blobs/{algorithm}/{encoded}"

    def has_blob(self, digest: str, size: int | None = None) -> bool:
        try:
            info = os.stat(self.blob_path(digest))
        except FileNotFoundError:
            return False
        return size is None or info.st_size == size

    def blob_size(self, digest: str) -> int:
        try:
            return os.stat(self.blob_path(digest)).st_size
        except FileNotFoundError:
            raise ImageNotFound(f"blob {digest} is not in the store") from None

    def open_blob(self, digest: str) -> BinaryIO:
        try:
            return open(self.blob_path(digest), "rb")
        except FileNotFoundError:
            raise ImageNotFound(f"blob {digest} is not in the store") from None

    def read_blob(self, digest: str) -> bytes:
        """A small blob (manifest, config), re-verified: the store is on disk, disks rot."""
        with self.open_blob(digest) as handle:
            data = handle.read()
        algorithm = digest.partition(":")[0]
        if digest_of(data, algorithm) != digest:
            raise BlobMismatch(f"blob {digest} in {self.root} is corrupt")
        return data

    def read_json(self, digest: str) -> Any:
        return json.loads(self.read_blob(digest))

    def write_blob(self, data: bytes, expected: str | None = None) -> str:
        digest = expected or digest_of(data)
        if self.has_blob(digest, len(data)):
            return digest
        ingest = self.ingest(digest, len(data))
        ingest.restart()
        ingest.write(data)
        return ingest.commit()

    def ingest(self, digest: str, size: int | None = None) -> Ingest:
        return Ingest(self, digest, size)

    def blobs(self) -> Iterator[str]:
        for algorithm in ALGORITHMS:
            try:
                names = os.listdir(f"{self.root}/blobs/{algorithm}")
            except FileNotFoundError:
                continue
            for name in names:
                yield f"{algorithm}:{name}"

    # -- names ----------------------------------------------------------------------------
    def index(self) -> dict[str, Any]:
        with open(f"{self.root}/index.json", "rb") as handle:
            data: dict[str, Any] = json.load(handle)
        return data

    def refs(self) -> list[tuple[str, dict[str, Any]]]:
        """(name, descriptor) of every named image, in index order."""
        found = []
        for descriptor in self.index().get("manifests", []):
            name = descriptor.get("annotations", {}).get(REF_ANNOTATION)
            if name:
                found.append((name, descriptor))
        return found

    def resolve(self, name: str) -> dict[str, Any]:
        """The descriptor named ``name`` (a full reference), or of the manifest/index whose
        digest is ``name``, or an unambiguous digest prefix (like docker's image ids)."""
        for ref, descriptor in self.refs():
            if ref == name:
                return descriptor
        if name.startswith(("sha256:", "sha512:")) or all(c in "0123456789abcdef" for c in name):
            wanted = name if ":" in name else f"sha256:{name}"
            matches = {d["digest"]: d for _, d in self.refs() if d["digest"].startswith(wanted)}
            if len(matches) == 1:
                return next(iter(matches.values()))
            if len(matches) > 1:
                raise StoreError(f"{name!r} matches more than one image")
        raise ImageNotFound(f"image {name} is not in the store ({self.root})")

    def set_ref(self, name: str, descriptor: dict[str, Any]) -> None:
        entry = dict(descriptor)
        entry["annotations"] = dict(entry.get("annotations", {}), **{REF_ANNOTATION: name})
        with self.lock():
            index = self.index()
            manifests = [
                d
                for d in index.get("manifests", [])
                if d.get("annotations", {}).get(REF_ANNOTATION) != name
            ]
            manifests.append(entry)
            index["manifests"] = manifests
            self._write_atomic("index.json", json.dumps(index, indent=2).encode())

    def remove_ref(self, name: str) -> dict[str, Any]:
        with self.lock():
            index = self.index()
            kept: list[dict[str, Any]] = []
            removed: dict[str, Any] | None = None
            for descriptor in index.get("manifests", []):
                if descriptor.get("annotations", {}).get(REF_ANNOTATION) == name:
                    removed = descriptor
                else:
                    kept.append(descriptor)
            if removed is None:
                raise ImageNotFound(f"image {name} is not in the store ({self.root})")
            index["manifests"] = kept
            self._write_atomic("index.json", json.dumps(index, indent=2).encode())
        return removed

    # -- reachability and gc ------------------------------------------------------------------
    def reachable(self, descriptors: Iterable[dict[str, Any]]) -> set[str]:
        """Every blob the descriptors reach: indexes -> manifests -> config and layers."""
        seen: set[str] = set()
        pending = list(descriptors)
        while pending:
            descriptor = pending.pop()
            digest = descriptor.get("digest")
            if not digest or digest in seen:
                continue
            seen.add(digest)
            media = descriptor.get("mediaType", "")
            if not ("manifest" in media or "index" in media) or not self.has_blob(digest):
                continue
            try:
                document = self.read_json(digest)
            except (ValueError, StoreError):
                continue
            pending += document.get("manifests", [])
            if "config" in document:
                pending.append(document["config"])
            pending += document.get("layers", [])
            if "subject" in document:
                pending.append(document["subject"])
        return seen

    def gc(self, dry_run: bool = False) -> list[str]:
        """Remove blobs no name reaches and abandoned partial files; returns what went."""
        with self.lock():
            keep = self.reachable(d for _, d in self.refs())
            removed = [digest for digest in self.blobs() if digest not in keep]
            if not dry_run:
                for digest in removed:
                    try:
                        os.unlink(self.blob_path(digest))
                    except FileNotFoundError:
                        pass
                removed += self._gc_ingest()
        return sorted(removed)

    def _gc_ingest(self) -> list[str]:
        removed = []
        try:
            names = os.listdir(f"{self.root}/ingest")
        except FileNotFoundError:
            return []
        for name in names:
            path = f"{self.root}/ingest/{name}"
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as err:
                    if err.errno in (errno.EAGAIN, errno.EACCES):
                        continue  # a pull is writing it right now
                    raise
                os.unlink(path)
                removed.append(f"ingest/{name}")
            finally:
                os.close(fd)
        return removed

    # -- helpers ----------------------------------------------------------------------------
    def _write_atomic(self, name: str, data: bytes) -> None:
        path = f"{self.root}/{name}"
        temp = f"{path}.tmp{os.getpid()}"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(temp, path)
