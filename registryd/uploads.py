"""Upload sessions: ``<root>/uploads/<id>/data`` plus ``info.json`` (repository, start time).

The session's offset IS the size of its data file, so it survives a restart (and a SIGKILL)
with no state to reconcile. The running sha256 lives in memory only (hash objects cannot be
saved); after a restart, or after a failed chunk, the data so far is hashed again on the next
use. A blob becomes visible only at the closing PUT, after its digest (sha256 or sha512) was
verified and the data fsynced: it is renamed into the blob store, never copied.

A chunk sent with Content-Range is all or nothing (cut back on a short or failed body, so a
retry of the same range works); a streamed PATCH without it keeps what arrived, so a client
that lost its connection resumes from the offset GET reports.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
import uuid

from registryd.body import IncompleteBody
from registryd.errors import ApiError
from registryd.names import Digest, check_upload_id

TYPE_CHECKING = False
if TYPE_CHECKING:
    from registryd.body import BodyReader
    from registryd.ranges import ByteRange
    from registryd.storage import Storage

BUFFER = 1 << 20  # per read/write/hash step: big enough that Python's overhead vanishes


class Session:
    def __init__(self, upload_id: str, name: str, directory: str) -> None:
        self.id = upload_id
        self.name = name
        self.directory = directory
        self.data = os.path.join(directory, "data")
        self.lock = threading.Lock()
        self.hasher = hashlib.sha256()
        self.hashed = 0  # bytes of data the hasher has seen; -1: stale

    def size(self) -> int:
        try:
            return os.stat(self.data).st_size
        except FileNotFoundError:
            raise ApiError("BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry") from None


class Uploads:
    def __init__(self, storage: Storage, expiry: float, max_body: int | None = None) -> None:
        self.storage = storage
        self.expiry = expiry
        self.max_body = max_body
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()
        self.active = 0  # bodies being received now (metrics)

    # -- sessions ----------------------------------------------------------------------------

    def start(self, name: str) -> Session:
        upload_id = uuid.uuid4().hex
        directory = os.path.join(self.storage.uploads, upload_id)
        os.makedirs(directory)
        info = {"name": name, "started": time.time()}
        # Not fsynced: a session lost to a power cut is just an unknown upload to restart.
        info_path = os.path.join(directory, "info.json")
        self.storage.write_atomic(info_path, json.dumps(info).encode(), durable=False)
        os.close(os.open(os.path.join(directory, "data"), os.O_WRONLY | os.O_CREAT, 0o600))
        session = Session(upload_id, name, directory)
        with self._lock:
            self._sessions[upload_id] = session
        return session

    def get(self, name: str, upload_id: str) -> Session:
        check_upload_id(upload_id)
        with self._lock:
            session = self._sessions.get(upload_id)
            if session is None:
                session = self._load(upload_id)
                if session is not None:
                    self._sessions[upload_id] = session
        if session is None or session.name != name:
            raise ApiError("BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry")
        return session

    def _load(self, upload_id: str) -> Session | None:
        """A session from disk (after a restart): its hash is rebuilt on first use."""
        directory = os.path.join(self.storage.uploads, upload_id)
        try:
            with open(os.path.join(directory, "info.json"), "rb") as f:
                info = json.loads(f.read())
        except (OSError, ValueError):
            return None
        if not os.path.exists(os.path.join(directory, "data")):
            return None
        session = Session(upload_id, str(info.get("name", "")), directory)
        session.hashed = -1
        return session

    def cancel(self, session: Session) -> None:
        with self._lock:
            self._sessions.pop(session.id, None)
        shutil.rmtree(session.directory, ignore_errors=True)

    # -- data --------------------------------------------------------------------------------

    def append(self, session: Session, body: BodyReader, chunk: ByteRange | None) -> int:
        """Add a PATCH body at the session's offset; the new size."""
        with session.lock:
            return self._append_locked(session, body, chunk)

    def _append_locked(self, session: Session, body: BodyReader, chunk: ByteRange | None) -> int:
        offset = session.size()
        if chunk is not None:
            if chunk.start != offset:
                raise out_of_order(session, offset)
            if body.length is not None and body.length != chunk.length:
                raise ApiError(
                    "SIZE_INVALID",
                    "Content-Range and Content-Length disagree",
                    {"range": f"{chunk.start}-{chunk.end}", "length": body.length},
                )
        if self.max_body is not None and body.length is not None and body.length > self.max_body:
            raise ApiError("SIZE_INVALID", "request body too large", status=413)
        self._sync_hash(session, offset)
        before = session.hasher.copy()
        self.active += 1
        try:
            written = self._copy(session, body)
        except BaseException:
            if chunk is not None:
                self._cut(session, offset, before)
            raise
        finally:
            self.active -= 1
        if chunk is not None and written != chunk.length:
            self._cut(session, offset, before)
            raise ApiError(
                "SIZE_INVALID",
                "chunk length does not match its Content-Range",
                {"range": f"{chunk.start}-{chunk.end}", "received": written},
            )
        return offset + written

    def _copy(self, session: Session, body: BodyReader) -> int:
        buffer = bytearray(BUFFER)
        view = memoryview(buffer)
        hasher = session.hasher
        written = 0
        limit = self.max_body
        with open(session.data, "ab", buffering=0) as out:
            while True:
                try:
                    n = body.readinto(view)
                except IncompleteBody as err:
                    if err.received:  # keep what arrived (the caller may cut it back)
                        _write_all(out, view[: err.received])
                        hasher.update(view[: err.received])
                        session.hashed += err.received
                    raise
                if not n:
                    return written
                _write_all(out, view[:n])
                hasher.update(view[:n])
                session.hashed += n
                written += n
                if limit is not None and written > limit:
                    raise ApiError("SIZE_INVALID", "request body too large", status=413)

    def _cut(self, session: Session, offset: int, hasher: hashlib._Hash) -> None:
        os.truncate(session.data, offset)
        session.hasher = hasher
        session.hashed = offset

    def _sync_hash(self, session: Session, size: int) -> None:
        if session.hashed == size:
            return
        session.hasher = _hash_file(session.data, "sha256")
        session.hashed = size

    # -- closing -----------------------------------------------------------------------------

    def complete(
        self, session: Session, digest: Digest, body: BodyReader, chunk: ByteRange | None
    ) -> int:
        """Take the last chunk, verify the whole blob, move it into the store; its size."""
        with session.lock:
            if not body.done or chunk is not None:
                self._append_locked(session, body, chunk)
            size = session.size()
            if digest.algorithm == "sha256":
                self._sync_hash(session, size)
                actual = session.hasher.hexdigest()
            else:
                actual = _hash_file(session.data, digest.algorithm).hexdigest()
            if actual != digest.hex:
                self.cancel(session)
                raise ApiError(
                    "DIGEST_INVALID",
                    "provided digest did not match uploaded content",
                    {"expected": str(digest), "actual": f"{digest.algorithm}:{actual}"},
                )
            fd = os.open(session.data, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            with self.storage.shared_lock():
                self.storage.commit_blob(session.data, digest)
                self.storage.link_layer(session.name, digest)
            self.cancel(session)
            return size

    # -- expiry ------------------------------------------------------------------------------

    def expire(self, now: float | None = None) -> list[str]:
        """Remove sessions idle longer than the expiry (never one in use); their ids."""
        now = time.time() if now is None else now
        removed = []
        for upload_id in _listdir(self.storage.uploads):
            directory = os.path.join(self.storage.uploads, upload_id)
            with self._lock:
                session = self._sessions.get(upload_id)
                if session is not None and session.lock.locked():
                    continue
                if now - _last_activity(directory) < self.expiry:
                    continue
                self._sessions.pop(upload_id, None)
            shutil.rmtree(directory, ignore_errors=True)
            removed.append(upload_id)
        return removed

    def count(self) -> int:
        return len(_listdir(self.storage.uploads))


def out_of_order(session: Session, offset: int) -> ApiError:
    return ApiError(
        "BLOB_UPLOAD_INVALID",
        "chunk out of order: expected a range starting at the current offset",
        {"offset": offset},
        status=416,
        headers={
            "Location": upload_location(session),
            "Range": f"0-{max(offset - 1, 0)}",
            "Docker-Upload-UUID": session.id,
        },
    )


def upload_location(session: Session) -> str:
    return f"/v2/{session.name}/blobs/uploads/{session.id}"


def _write_all(out: object, view: memoryview) -> None:
    write = out.write  # type: ignore[attr-defined]
    while view:
        view = view[write(view) :]


def _hash_file(path: str, algorithm: str) -> hashlib._Hash:
    hasher = hashlib.new(algorithm)
    buffer = bytearray(BUFFER)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(view):
            hasher.update(view[:n])
    return hasher


def _last_activity(directory: str) -> float:
    latest = 0.0
    for name in ("data", "info.json", ""):
        try:
            latest = max(latest, os.stat(os.path.join(directory, name)).st_mtime)
        except OSError:
            continue
    return latest


def _listdir(path: str) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []
