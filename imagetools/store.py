"""The graph: images kept as one OCI image layout on disk, shared by every image.

::

    <root>/oci-layout            {"imageLayoutVersion": "1.0.0"}
    <root>/index.json            one descriptor per name (annotation
                                 org.opencontainers.image.ref.name = the full reference,
                                 e.g. docker.io/library/busybox:latest)
    <root>/blobs/<alg>/<hex>     content-addressed: manifests, indexes, configs, layers
    <root>/ingest/<alg>-<hex>    a blob being written (kept between runs: a pull resumes it)
    <root>/snapshots/...         owned by the snapshotters
    <root>/lock                  flock: the gc lock (leases hold it shared, gc exclusive)
    <root>/index.lock            flock: exclusive while index.json is read, changed, replaced

Every blob is verified against its digest (and size, when known) before it is renamed into
``blobs/``: a partial or wrong blob is never visible. index.json is replaced atomically under
the index lock, so concurrent pyrun processes never lose each other's names.

Locking (concurrent pyrun processes, and threads of one)
--------------------------------------------------------
gc deletes what no name reaches, so it must never run between "this blob is in the store"
and "a name reaches it": a load or pull that finds a layer already present, or has just
committed one, has not named it yet. That window is a *lease*::

    load / pull / commit / tag                     gc
    ----------------------                         --
    with store.lease():        flock(lock, SH)     flock(lock, EX)   waits for every lease
        has_blob? / ingest -> commit                 flock(index.lock, EX)
        set_ref(name, desc)    flock(index.lock, EX)   reachable(refs) -> unlink the rest
                                                     unlink abandoned ingest files
                               unlock lock          unlock both

- Every ``Ingest`` holds the gc lock shared for its own lifetime, so a blob being written is
  safe even for callers that take no lease; the lease covers the gap until ``set_ref``.
- ``lease()`` is re-entrant within a thread; ``gc()`` inside the same thread's lease raises
  instead of waiting for itself. Leases never block each other, only gc.
- Lock order is always ``lock`` then ``index.lock``; ``set_ref``/``remove_ref`` take only
  ``index.lock`` and refuse a descriptor whose blob is not in the store (never a dangling
  name, even from a caller that took no lease).
- Two writers of the same blob: the per-file flock on ``ingest/<alg>-<hex>`` serialises them;
  the second, once it holds the lock, checks that the file is still the one at that path (the
  first may have renamed it into ``blobs/``) and, if the blob arrived meanwhile, its ingest is
  ``complete``: writes are counted, not stored, and ``commit`` returns at once.

Modes (whatever the umask): the root 0711 when the store creates it (traversable, not
listable), ``blobs/`` 0755, blob files 0444 (content never changes), ``ingest/`` 0700 and
partial files 0600, index.json, oci-layout and the lock files 0644.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import threading
from contextlib import contextmanager

from imagetools.atomic import write_atomic
from imagetools.errors import BlobMismatch, ImageNotFound, StoreError
from imagetools.paths import DEFAULT_ROOT

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from typing import Any, BinaryIO

REF_ANNOTATION = "org.opencontainers.image.ref.name"
# On a name's descriptor (set by pull): the index the platform manifest was chosen from; its
# blob is kept for as long as the name (``inspect --raw`` shows it, as skopeo does).
INDEX_ANNOTATION = "io.pyrun.image.index"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
ALGORITHMS = ("sha256", "sha512")
_CHUNK = 1 << 20

ROOT_MODE = 0o711
DIR_MODE = 0o755
BLOB_MODE = 0o444
INGEST_DIR_MODE = 0o700
INGEST_MODE = 0o600
FILE_MODE = 0o644

# Per thread: {store key: [lease depth, lease fd, exclusive depth]}.
_HELD = threading.local()


def _held(key: str) -> list[int]:
    table: dict[str, list[int]] | None = getattr(_HELD, "table", None)
    if table is None:
        table = _HELD.table = {}
    return table.setdefault(key, [0, -1, 0])


def split_digest(digest: str) -> tuple[str, str]:
    """ "sha256:ab12..." -> ("sha256", "ab12..."), refusing anything that is not a digest."""
    algorithm, _, encoded = digest.partition(":")
    size = {"sha256": 64, "sha512": 128}.get(algorithm)
    if size is None or len(encoded) != size or not all(c in "0123456789abcdef" for c in encoded):
        raise StoreError(f"invalid digest {digest!r}")
    return algorithm, encoded


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def _mkdir(path: str, mode: int) -> None:
    """Create one directory with exactly ``mode`` (not the umask's idea of it)."""
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        return
    os.chmod(path, mode)


class Ingest:
    """A blob being written: resumable (``offset`` bytes are already there), verified on
    ``commit``. Holds an exclusive lock on its partial file, so two pulls of the same blob
    never interleave: the second waits and then finds the blob in place (``complete``).
    Holds the store's gc lock shared while it lives (see the module docstring)."""

    def __init__(self, store: Store, digest: str, size: int | None) -> None:
        self.store = store
        self.digest = digest
        self.size = size
        algorithm, encoded = split_digest(digest)
        self.path = f"{store.root}/ingest/{algorithm}-{encoded}"
        self.hasher = hashlib.new(algorithm)
        self.offset = 0
        self.complete = False
        self.fd = -1
        self._lease_fd = store._lease_fd()
        try:
            self.fd = self._open()
        except BaseException:
            self.close()
            raise
        if self.fd < 0:
            self.complete = True
            self.offset = size if size is not None else store.blob_size(digest)
            return
        # Rebuild the hash of what an earlier, interrupted attempt wrote.
        while True:
            chunk = os.pread(self.fd, _CHUNK, self.offset)
            if not chunk:
                break
            self.hasher.update(chunk)
            self.offset += len(chunk)
        if size is not None and self.offset > size:
            self.restart()

    def _open(self) -> int:
        """The locked partial file, or -1 when the blob is already in the store."""
        _mkdir(f"{self.store.root}/ingest", INGEST_DIR_MODE)
        while True:
            if self.store.has_blob(self.digest, self.size):
                return -1
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, INGEST_MODE)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                mine = os.fstat(fd)
                there = os.stat(self.path)
            except FileNotFoundError:
                os.close(fd)  # committed or removed while we waited: look again
                continue
            except BaseException:
                os.close(fd)
                raise
            if (mine.st_dev, mine.st_ino) == (there.st_dev, there.st_ino):
                return fd
            os.close(fd)

    def restart(self) -> None:
        """Throw away what is there (the server cannot resume, or it was wrong)."""
        if self.fd >= 0:
            os.ftruncate(self.fd, 0)
        self.hasher = hashlib.new(self.digest.partition(":")[0])
        self.offset = 0

    def write(self, data: bytes | memoryview) -> None:
        if self.size is not None and self.offset + len(data) > self.size:
            raise BlobMismatch(
                f"blob {self.digest}: more than the {self.size} bytes its descriptor announces"
            )
        if self.complete:
            self.offset += len(data)  # the store has it, verified: nothing to keep
            return
        view = memoryview(data)
        while view:
            written = os.pwrite(self.fd, view, self.offset)
            self.hasher.update(view[:written])
            self.offset += written
            view = view[written:]

    def verify(self) -> None:
        """Check size and digest without publishing; a mismatch discards the data (it can
        never become right) and raises BlobMismatch."""
        if self.complete:
            return
        actual = f"{self.digest.partition(':')[0]}:{self.hasher.hexdigest()}"
        if self.size is not None and self.offset != self.size:
            self.abort()
            raise BlobMismatch(
                f"blob {self.digest}: got {self.offset} bytes, the descriptor says {self.size}"
            )
        if actual != self.digest:
            self.abort()
            raise BlobMismatch(f"blob {self.digest}: the content's digest is {actual}")

    def commit(self) -> str:
        """Verify and move into blobs/ (read-only, fsynced)."""
        if self.complete:
            self.close()
            return self.digest
        self.verify()
        target = self.store.blob_path(self.digest)
        directory = os.path.dirname(target)
        _mkdir(directory, DIR_MODE)
        os.fchmod(self.fd, BLOB_MODE)
        os.fsync(self.fd)
        os.rename(self.path, target)
        _fsync_dir(directory)
        self.close()
        return self.digest

    def abort(self) -> None:
        """Discard the partial file (nothing to resume) and release the locks."""
        if self.fd >= 0:
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
        self.close()

    _discard = abort

    def close(self) -> None:
        """Keep the partial file for a later resume; release the locks."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self._lease_fd >= 0:
            os.close(self._lease_fd)
            self._lease_fd = -1

    def __enter__(self) -> Ingest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Store:
    def __init__(self, root: str = DEFAULT_ROOT) -> None:
        self.root = root.rstrip("/") or "/"
        try:
            if not os.path.isdir(self.root):
                parent = os.path.dirname(self.root)
                if parent:
                    os.makedirs(parent, exist_ok=True)
                _mkdir(self.root, ROOT_MODE)
            _mkdir(f"{self.root}/blobs", DIR_MODE)
            _mkdir(f"{self.root}/blobs/sha256", DIR_MODE)
            if not os.path.exists(f"{self.root}/oci-layout"):
                self._write_atomic("oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
            if not os.path.exists(f"{self.root}/index.json"):
                empty = {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": []}
                self._write_atomic("index.json", json.dumps(empty).encode())
        except OSError as err:
            raise StoreError(f"image store {self.root}: {(err.strerror or '').lower()}") from None
        self._key = os.path.realpath(self.root)

    # -- locking ------------------------------------------------------------------------------
    def _lock_file(self, name: str) -> int:
        fd = os.open(f"{self.root}/{name}", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        try:
            if os.fstat(fd).st_mode & 0o777 != FILE_MODE:
                os.fchmod(fd, FILE_MODE)
        except OSError:
            pass  # someone else's lock file: the lock still works
        return fd

    @contextmanager
    def lock(self, exclusive: bool = True) -> Iterator[None]:
        """The gc lock itself: exclusive keeps every lease and ingest out (gc does this);
        shared is a lease that does not nest (prefer ``lease()``)."""
        fd = self._lock_file("lock")
        held = _held(self._key)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            if exclusive:
                held[2] += 1
            try:
                yield
            finally:
                if exclusive:
                    held[2] -= 1
        finally:
            os.close(fd)

    @contextmanager
    def lease(self) -> Iterator[None]:
        """Keep gc out while blobs are found or added and then named (see the module
        docstring). Re-entrant within a thread; leases of other threads and processes do
        not wait for each other."""
        held = _held(self._key)
        if held[0] == 0 and held[2] == 0:
            held[1] = self._hold_shared()
        held[0] += 1
        try:
            yield
        finally:
            held[0] -= 1
            if held[0] == 0 and held[1] >= 0:
                os.close(held[1])
                held[1] = -1

    def _lease_fd(self) -> int:
        """A shared hold of the gc lock for one ingest (-1: this thread already excludes
        gc, by its exclusive lock)."""
        if _held(self._key)[2]:
            return -1
        return self._hold_shared()

    def _hold_shared(self) -> int:
        """An fd that holds the gc lock shared (closed again if taking the lock fails)."""
        fd = self._lock_file("lock")
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
        except BaseException:
            os.close(fd)
            raise
        return fd

    @contextmanager
    def _index_lock(self) -> Iterator[None]:
        fd = self._lock_file("index.lock")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
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

    def check_blob(self, digest: str, size: int | None) -> None:
        """The blob is there with the size its descriptor says: ImageNotFound if it is
        missing, BlobMismatch (naming the file) if it was truncated or grew on disk."""
        actual = self.blob_size(digest)
        if size is not None and actual != size:
            raise BlobMismatch(self._corrupt(digest, f"{actual} bytes on disk, {size} expected"))

    def _corrupt(self, digest: str, why: str) -> str:
        return (
            f"blob {digest} in the store is corrupt ({self.blob_path(digest)}: {why}):"
            " remove the image and load or pull it again"
        )

    def open_blob(self, digest: str, size: int | None = None) -> BinaryIO:
        """The blob for reading; with ``size``, a file of another size is BlobMismatch."""
        try:
            handle = open(self.blob_path(digest), "rb")  # noqa: SIM115 - returned open
        except FileNotFoundError:
            raise ImageNotFound(f"blob {digest} is not in the store") from None
        if size is not None:
            actual = os.fstat(handle.fileno()).st_size
            if actual != size:
                handle.close()
                raise BlobMismatch(
                    self._corrupt(digest, f"{actual} bytes on disk, {size} expected")
                )
        return handle

    def read_blob(self, digest: str) -> bytes:
        """A small blob (manifest, config), re-verified: the store is on disk, disks rot."""
        with self.open_blob(digest) as handle:
            data = handle.read()
        algorithm = digest.partition(":")[0]
        actual = digest_of(data, algorithm)
        if actual != digest:
            raise BlobMismatch(self._corrupt(digest, f"{len(data)} bytes of digest {actual}"))
        return data

    def read_json(self, digest: str) -> Any:
        return json.loads(self.read_blob(digest))

    def write_blob(self, data: bytes, expected: str | None = None) -> str:
        digest = expected or digest_of(data)
        if self.has_blob(digest, len(data)):
            return digest
        ingest = self.ingest(digest, len(data))
        try:
            ingest.restart()
            ingest.write(data)
            return ingest.commit()
        finally:
            ingest.close()

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
        """index.json, checked: a file that is not an OCI index is a StoreError naming it
        (never silently replaced: it holds every name)."""
        path = f"{self.root}/index.json"
        try:
            with open(path, "rb") as handle:
                raw = handle.read()
        except FileNotFoundError:
            raise StoreError(f"image store index {path} is missing") from None
        try:
            data = json.loads(raw)
        except ValueError as err:  # JSONDecodeError, UnicodeDecodeError
            raise StoreError(
                f"image store index {path} is corrupt ({err}): repair or remove it"
                " (its blobs stay; the names it held are lost)"
            ) from None
        problem = None
        if not isinstance(data, dict):
            problem = "not a JSON object"
        elif not isinstance(data.get("manifests", []), list):
            problem = "'manifests' is not a list"
        else:
            for position, entry in enumerate(data.get("manifests", [])):
                if not isinstance(entry, dict) or not isinstance(entry.get("digest"), str):
                    problem = f"manifests[{position}] is not a descriptor"
                    break
                if not isinstance(entry.get("annotations", {}), dict):
                    problem = f"manifests[{position}].annotations is not an object"
                    break
        if problem:
            raise StoreError(f"image store index {path} is corrupt: {problem}")
        result: dict[str, Any] = data
        return result

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
        refs = self.refs()
        for ref, descriptor in refs:
            if ref == name:
                return descriptor
        if name.startswith(("sha256:", "sha512:")) or all(c in "0123456789abcdef" for c in name):
            wanted = name if ":" in name else f"sha256:{name}"
            matches = {d["digest"]: d for _, d in refs if d["digest"].startswith(wanted)}
            if len(matches) == 1:
                return next(iter(matches.values()))
            if len(matches) > 1:
                raise StoreError(f"{name!r} matches more than one image")
        raise ImageNotFound(f"image {name} is not in the store ({self.root})")

    def set_ref(self, name: str, descriptor: dict[str, Any]) -> None:
        """Name a manifest or index that is in the store (refused otherwise: a name never
        dangles). Callers that found or added its blobs hold a ``lease()`` until this
        returns, so gc cannot take them in between."""
        entry = dict(descriptor)
        entry["annotations"] = dict(entry.get("annotations", {}), **{REF_ANNOTATION: name})
        with self._index_lock():
            if not self.has_blob(entry["digest"]):
                raise ImageNotFound(
                    f"cannot name {name}: its manifest {entry['digest']} is not in the store"
                )
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
        with self._index_lock():
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
            index = (descriptor.get("annotations") or {}).get(INDEX_ANNOTATION)
            if isinstance(index, str):
                seen.add(index)  # the blob alone: its other platforms are not ours to keep
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
        """Remove blobs no name reaches and abandoned partial files; returns what went.
        Waits for every lease and ingest of other threads and processes to end."""
        if _held(self._key)[0]:
            raise StoreError("gc inside a lease of the same thread would wait for itself")
        with self.lock(), self._index_lock():
            keep = self.reachable(d for _, d in self.refs()) | self._snapshot_blobs()
            removed = [digest for digest in self.blobs() if digest not in keep]
            if not dry_run:
                for digest in removed:
                    try:
                        os.unlink(self.blob_path(digest))
                    except FileNotFoundError:
                        pass
            removed += self._gc_ingest(dry_run)
        return sorted(removed)

    def _snapshot_blobs(self) -> set[str]:
        """Blobs of the images bundle snapshots were made from: a commit of such a bundle
        refers to them, even after the image lost its name."""
        if not os.path.isdir(f"{self.root}/snapshots/bundles"):
            return set()
        from imagetools.snapshots import protected_blobs

        return protected_blobs(self)

    def _gc_ingest(self, dry_run: bool = False) -> list[str]:
        """Partial downloads no live pull holds (its flock); ``dry_run``: only named."""
        removed = []
        try:
            names = os.listdir(f"{self.root}/ingest")
        except FileNotFoundError:
            return []
        for name in names:
            path = f"{self.root}/ingest/{name}"
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as err:
                    if err.errno in (errno.EAGAIN, errno.EACCES):
                        continue  # a pull is writing it right now
                    raise
                if not dry_run:
                    os.unlink(path)
                removed.append(f"ingest/{name}")
            finally:
                os.close(fd)
        return removed

    # -- helpers ----------------------------------------------------------------------------
    def _write_atomic(self, name: str, data: bytes) -> None:
        path = f"{self.root}/{name}"
        temp = f"{path}.tmp{os.getpid()}-{threading.get_ident()}"
        write_atomic(path, data, FILE_MODE, temp=temp, exact_mode=True)
        _fsync_dir(self.root)
