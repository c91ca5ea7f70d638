"""The filesystem under the storage root; the only module that knows its layout::

    blobs/<alg>/<hex[:2]>/<hex>                       content, shared by all repositories
    repositories/<name>/_layers/<alg>/<hex>           link: the blob is in this repository
    repositories/<name>/_manifests/revisions/<alg>/<hex>  a manifest of it; holds the media type
    repositories/<name>/_manifests/tags/<tag>         holds the digest the tag points to
    repositories/<name>/_referrers/<alg>/<hex>/<alg>-<hex>  a referrer's descriptor (JSON)
    uploads/<id>/{data,info.json}                     upload sessions (registryd.uploads)
    tmp/                                              half-written files, renamed into place
    _lock                                             flock: the server shares it, gc excludes

Repository path components cannot begin with "_" (the name grammar), so the control
directories never collide with a repository. Every write is a new file renamed into place
(rename(2) is atomic): a reader sees the old content or the new, never a partial file. Blobs
are renamed in only after their digest was verified (registryd.uploads).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import uuid

from registryd.names import Digest, maybe_digest

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any


class Storage:
    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.blobs = os.path.join(self.root, "blobs")
        self.repos = os.path.join(self.root, "repositories")
        self.uploads = os.path.join(self.root, "uploads")
        self.tmp = os.path.join(self.root, "tmp")
        self.lock_path = os.path.join(self.root, "_lock")

    def create(self) -> None:
        for path in (self.blobs, self.repos, self.uploads, self.tmp):
            os.makedirs(path, mode=0o755, exist_ok=True)
        fd = os.open(self.lock_path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        os.close(fd)

    # -- locking (gc) ------------------------------------------------------------------------

    @contextlib.contextmanager
    def shared_lock(self) -> Iterator[None]:
        """Held while a blob or manifest is linked, so gc's final check sees it."""
        with self._flock(fcntl.LOCK_SH):
            yield

    @contextlib.contextmanager
    def exclusive_lock(self) -> Iterator[None]:
        with self._flock(fcntl.LOCK_EX):
            yield

    @contextlib.contextmanager
    def _flock(self, mode: int) -> Iterator[None]:
        # One open file description per holder: flock locks of separate opens (threads of
        # the server, the gc process) exclude each other as they should.
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, mode)
            yield
        finally:
            os.close(fd)

    # -- blobs -------------------------------------------------------------------------------

    def blob_path(self, digest: Digest) -> str:
        return os.path.join(self.blobs, digest.algorithm, digest.hex[:2], digest.hex)

    def blob_size(self, digest: Digest) -> int | None:
        try:
            return os.stat(self.blob_path(digest)).st_size
        except FileNotFoundError:
            return None

    def open_blob(self, digest: Digest) -> int | None:
        """A read-only fd of the blob (stays valid if gc removes the file meanwhile)."""
        try:
            return os.open(self.blob_path(digest), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None

    def touch_blob(self, digest: Digest) -> bool:
        """Mark a blob as just used (gc spares blobs younger than its grace period)."""
        try:
            os.utime(self.blob_path(digest))
            return True
        except FileNotFoundError:
            return False

    def commit_blob(self, source: str, digest: Digest) -> None:
        """Move a verified file into the blob store (the caller holds shared_lock)."""
        target = self.blob_path(digest)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        # Same content either way: if a concurrent upload of it won, keep that one (fresh
        # mtime) and drop ours.
        if os.path.exists(target):
            os.utime(target)
            os.unlink(source)
            return
        os.rename(source, target)

    def put_blob_bytes(self, data: bytes, digest: Digest) -> None:
        """Store small verified content (a manifest) as a blob (caller holds shared_lock)."""
        target = self.blob_path(digest)
        if os.path.exists(target):
            os.utime(target)
            return
        os.makedirs(os.path.dirname(target), exist_ok=True)
        self.write_atomic(target, data)

    def iter_blobs(self) -> Iterator[tuple[Digest, str]]:
        for algorithm in _listdir(self.blobs):
            base = os.path.join(self.blobs, algorithm)
            for prefix in _listdir(base):
                for name in _listdir(os.path.join(base, prefix)):
                    digest = maybe_digest(f"{algorithm}:{name}")
                    if digest is not None:
                        yield digest, os.path.join(base, prefix, name)

    def remove_blob(self, digest: Digest) -> bool:
        try:
            os.unlink(self.blob_path(digest))
            return True
        except FileNotFoundError:
            return False

    # -- repositories ------------------------------------------------------------------------

    def repo_dir(self, name: str) -> str:
        return os.path.join(self.repos, name)

    def repo_exists(self, name: str) -> bool:
        return os.path.isdir(os.path.join(self.repos, name, "_manifests"))

    def repositories(self) -> list[str]:
        """Every repository that holds (or held) a manifest, in lexical order."""
        names = []
        for path, dirs, _files in os.walk(self.repos):
            if "_manifests" in dirs:
                names.append(os.path.relpath(path, self.repos))
            dirs[:] = [d for d in dirs if not d.startswith("_")]
        return sorted(names)

    # layers: "this blob belongs to this repository"

    def _layer_link(self, name: str, digest: Digest) -> str:
        return os.path.join(self.repos, name, "_layers", digest.algorithm, digest.hex)

    def has_layer(self, name: str, digest: Digest) -> bool:
        return os.path.exists(self._layer_link(name, digest))

    def link_layer(self, name: str, digest: Digest) -> None:
        _touch(self._layer_link(name, digest))

    def unlink_layer(self, name: str, digest: Digest) -> bool:
        return _unlink(self._layer_link(name, digest))

    def layers(self, name: str) -> list[Digest]:
        return self._links(os.path.join(self.repos, name, "_layers"))

    # manifests

    def _revision(self, name: str, digest: Digest) -> str:
        return os.path.join(
            self.repos, name, "_manifests", "revisions", digest.algorithm, digest.hex
        )

    def manifest_type(self, name: str, digest: Digest) -> str | None:
        """The media type the manifest was pushed with, or None if not in the repository."""
        try:
            with open(self._revision(name, digest), encoding="utf-8") as f:
                return f.read().strip() or None
        except (FileNotFoundError, NotADirectoryError):
            return None

    def link_manifest(self, name: str, digest: Digest, media_type: str) -> None:
        path = self._revision(name, digest)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        self.write_atomic(path, media_type.encode())

    def unlink_manifest(self, name: str, digest: Digest) -> bool:
        return _unlink(self._revision(name, digest))

    def manifests(self, name: str) -> list[Digest]:
        return self._links(os.path.join(self.repos, name, "_manifests", "revisions"))

    def read_manifest(self, name: str, digest: Digest) -> tuple[bytes, str] | None:
        media_type = self.manifest_type(name, digest)
        if media_type is None:
            return None
        try:
            with open(self.blob_path(digest), "rb") as f:
                return f.read(), media_type
        except FileNotFoundError:
            return None

    # tags

    def _tags_dir(self, name: str) -> str:
        return os.path.join(self.repos, name, "_manifests", "tags")

    def resolve_tag(self, name: str, tag: str) -> Digest | None:
        try:
            with open(os.path.join(self._tags_dir(name), tag), encoding="utf-8") as f:
                return maybe_digest(f.read().strip())
        except (FileNotFoundError, NotADirectoryError):
            return None

    def set_tag(self, name: str, tag: str, digest: Digest) -> None:
        directory = self._tags_dir(name)
        os.makedirs(directory, exist_ok=True)
        self.write_atomic(os.path.join(directory, tag), str(digest).encode())

    def tag_mtime(self, name: str, tag: str) -> float | None:
        """When the tag was last set (the pull-through cache's freshness clock)."""
        try:
            return os.stat(os.path.join(self._tags_dir(name), tag)).st_mtime
        except (FileNotFoundError, NotADirectoryError):
            return None

    def delete_tag(self, name: str, tag: str) -> bool:
        return _unlink(os.path.join(self._tags_dir(name), tag))

    def tags(self, name: str) -> list[str]:
        return sorted(_listdir(self._tags_dir(name)))

    def tags_of(self, name: str, digest: Digest) -> list[str]:
        return [tag for tag in self.tags(name) if self.resolve_tag(name, tag) == digest]

    # referrers: descriptors of manifests whose subject is a digest, kept under the subject

    def _referrers_dir(self, name: str, subject: Digest) -> str:
        return os.path.join(self.repos, name, "_referrers", subject.algorithm, subject.hex)

    def add_referrer(self, name: str, subject: Digest, descriptor: dict[str, Any]) -> None:
        referrer = maybe_digest(descriptor["digest"])
        assert referrer is not None
        directory = self._referrers_dir(name, subject)
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, f"{referrer.algorithm}-{referrer.hex}")
        self.write_atomic(path, json.dumps(descriptor, sort_keys=True).encode())

    def remove_referrer(self, name: str, subject: Digest, referrer: Digest) -> bool:
        directory = self._referrers_dir(name, subject)
        return _unlink(os.path.join(directory, f"{referrer.algorithm}-{referrer.hex}"))

    def referrers(self, name: str, subject: Digest) -> list[dict[str, Any]]:
        directory = self._referrers_dir(name, subject)
        found = []
        for entry in sorted(_listdir(directory)):
            try:
                with open(os.path.join(directory, entry), "rb") as f:
                    descriptor = json.loads(f.read())
            except (OSError, ValueError):
                continue
            referrer = maybe_digest(str(descriptor.get("digest", "")))
            # A referrer deleted since (or by gc) is not listed.
            if referrer is not None and self.manifest_type(name, referrer) is not None:
                found.append(descriptor)
        return found

    # -- files -------------------------------------------------------------------------------

    def write_atomic(self, path: str, data: bytes, durable: bool = True) -> None:
        """Write ``data`` to a temp file in <root>/tmp, fsync (if ``durable``), rename."""
        tmp = self.temp_path()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        except BaseException:
            os.close(fd)
            _unlink(tmp)
            raise
        os.close(fd)
        try:
            os.rename(tmp, path)
        except BaseException:
            _unlink(tmp)
            raise

    def temp_path(self) -> str:
        return os.path.join(self.tmp, uuid.uuid4().hex)

    def _links(self, base: str) -> list[Digest]:
        found = []
        for algorithm in _listdir(base):
            for name in _listdir(os.path.join(base, algorithm)):
                digest = maybe_digest(f"{algorithm}:{name}")
                if digest is not None:
                    found.append(digest)
        return found


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _touch(path: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    os.close(fd)
    os.utime(path)


def _unlink(path: str) -> bool:
    try:
        os.unlink(path)
        return True
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError as err:
        if err.errno == errno.EISDIR:
            return False
        raise
