"""registryd's storage, upload sessions and gc on a real directory (tmp_path), no socket:
atomic writes, sessions that survive a "restart" (a new Uploads object), expiry, gc marking
and sweeping with its grace period."""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from pathlib import Path

import pytest

from registryd.body import BodyReader, IncompleteBody
from registryd.errors import ApiError
from registryd.gc import collect, mark
from registryd.manifests import OCI_INDEX, OCI_MANIFEST
from registryd.names import Digest, parse_digest
from registryd.ranges import ByteRange
from registryd.storage import Storage
from registryd.uploads import Uploads


def digest_of(data: bytes, algorithm: str = "sha256") -> Digest:
    return Digest(algorithm, hashlib.new(algorithm, data).hexdigest())


def body(data: bytes) -> BodyReader:
    return BodyReader(io.BytesIO(data), len(data))


@pytest.fixture
def storage(tmp_path: Path) -> Storage:
    s = Storage(str(tmp_path / "root"))
    s.create()
    return s


def files_under(path: str) -> set[str]:
    found = set()
    for directory, _dirs, names in os.walk(path):
        for name in names:
            found.add(os.path.relpath(os.path.join(directory, name), path))
    return found


def test_layout(storage: Storage) -> None:
    d = digest_of(b"x")
    storage.put_blob_bytes(b"x", d)
    storage.link_layer("a/b", d)
    storage.link_manifest("a/b", d, OCI_MANIFEST)
    storage.set_tag("a/b", "v1", d)
    assert files_under(storage.root) == {
        "_lock",
        f"blobs/sha256/{d.hex[:2]}/{d.hex}",
        f"repositories/a/b/_layers/sha256/{d.hex}",
        f"repositories/a/b/_manifests/revisions/sha256/{d.hex}",
        "repositories/a/b/_manifests/tags/v1",
    }
    assert storage.resolve_tag("a/b", "v1") == d
    assert storage.manifest_type("a/b", d) == OCI_MANIFEST
    assert storage.repositories() == ["a/b"]
    assert os.listdir(storage.tmp) == []  # temp files were renamed, none left behind


def test_session_survives_a_restart_and_rehashes(storage: Storage) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    uploads = Uploads(storage, 3600)
    session = uploads.start("app")
    assert uploads.append(session, body(data[:1000]), ByteRange(0, 999)) == 1000
    restarted = Uploads(storage, 3600)  # no hash state in memory any more
    again = restarted.get("app", session.id)
    assert again.size() == 1000 and again.hashed == -1
    assert restarted.append(again, body(data[1000:]), None) == len(data)
    restarted.complete(again, digest_of(data), body(b""), None)
    with open(storage.blob_path(digest_of(data)), "rb") as f:
        assert f.read() == data
    assert storage.has_layer("app", digest_of(data))
    with pytest.raises(ApiError):
        restarted.get("app", session.id)


def test_ranged_chunk_is_all_or_nothing_streamed_keeps_what_arrived(storage: Storage) -> None:
    uploads = Uploads(storage, 3600)
    session = uploads.start("app")
    cut = BodyReader(io.BytesIO(b"01234"), 10)  # the client promised 10, sent 5, hung up
    with pytest.raises(IncompleteBody):
        uploads.append(session, cut, ByteRange(0, 9))
    assert session.size() == 0
    streamed = BodyReader(io.BytesIO(b"01234"), 10)
    with pytest.raises(IncompleteBody):
        uploads.append(session, streamed, None)
    assert session.size() == 5  # resumable from offset 5
    uploads.append(session, body(b"56789"), ByteRange(5, 9))
    uploads.complete(session, digest_of(b"0123456789"), body(b""), None)
    assert storage.blob_size(digest_of(b"0123456789")) == 10


def test_digest_mismatch_removes_the_session(storage: Storage) -> None:
    uploads = Uploads(storage, 3600)
    session = uploads.start("app")
    uploads.append(session, body(b"abc"), None)
    with pytest.raises(ApiError) as caught:
        uploads.complete(session, digest_of(b"abd"), body(b""), None)
    assert caught.value.code == "DIGEST_INVALID"
    assert os.listdir(storage.uploads) == [] and list(storage.iter_blobs()) == []


def test_sha512_is_verified(storage: Storage) -> None:
    uploads = Uploads(storage, 3600)
    session = uploads.start("app")
    uploads.complete(session, digest_of(b"abc", "sha512"), body(b"abc"), None)
    assert storage.blob_size(digest_of(b"abc", "sha512")) == 3


def test_expiry_spares_fresh_sessions(storage: Storage) -> None:
    uploads = Uploads(storage, 60)
    old = uploads.start("app")
    fresh = uploads.start("app")
    past = time.time() - 120
    for name in ("data", "info.json", ""):
        os.utime(os.path.join(old.directory, name), (past, past))
    assert uploads.expire() == [old.id]
    assert os.listdir(storage.uploads) == [fresh.id]


# -- gc ------------------------------------------------------------------------------------------


def manifest(
    storage: Storage, repo: str, tag: str | None, blobs: list[bytes], **extra: object
) -> Digest:
    layers = []
    for data in blobs:
        d = digest_of(data)
        storage.put_blob_bytes(data, d)
        storage.link_layer(repo, d)
        layers.append(
            {"mediaType": "application/octet-stream", "digest": str(d), "size": len(data)}
        )
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": layers[0],
        "layers": layers[1:],
        **extra,
    }
    raw = json.dumps(document).encode()
    d = digest_of(raw)
    storage.put_blob_bytes(raw, d)
    storage.link_manifest(repo, d, OCI_MANIFEST)
    if tag:
        storage.set_tag(repo, tag, d)
    return d


def age(storage: Storage, seconds: float = 3600) -> None:
    past = time.time() - seconds
    for _digest, path in storage.iter_blobs():
        os.utime(path, (past, past))


def test_gc_sweeps_unreferenced_blobs_only(storage: Storage) -> None:
    kept = manifest(storage, "app", "v1", [b"config", b"layer"])
    orphan = digest_of(b"orphan")
    storage.put_blob_bytes(b"orphan", orphan)
    storage.link_layer("app", orphan)
    age(storage)
    dry = collect(storage, dry_run=True)
    assert dry.blobs == [(str(orphan), 6)] and storage.blob_size(orphan) == 6
    report = collect(storage)
    assert report.blobs == [(str(orphan), 6)]
    assert storage.blob_size(orphan) is None and not storage.has_layer("app", orphan)
    assert storage.blob_size(kept) is not None
    assert storage.blob_size(digest_of(b"layer")) == 5


def test_gc_grace_spares_recent_blobs(storage: Storage) -> None:
    orphan = digest_of(b"just pushed")
    storage.put_blob_bytes(b"just pushed", orphan)
    report = collect(storage, grace=600)
    assert report.blobs == [] and report.spared == 1
    assert collect(storage, grace=0).blobs == [(str(orphan), 11)]


def test_gc_keeps_untagged_by_default_and_can_delete_them(storage: Storage) -> None:
    tagged = manifest(storage, "app", "v1", [b"c1", b"l1"])
    untagged = manifest(storage, "app", None, [b"c2", b"l2"])
    subject = {"mediaType": OCI_MANIFEST, "digest": str(tagged), "size": 1}
    signature = manifest(storage, "app", None, [b"c3"], subject=subject)
    storage.add_referrer("app", tagged, {"digest": str(signature), "mediaType": OCI_MANIFEST})
    age(storage)
    marked, doomed = mark(storage, delete_untagged=False)
    assert untagged in marked and doomed == []
    report = collect(storage, delete_untagged=True)
    assert report.manifests == [("app", str(untagged))]
    assert storage.manifest_type("app", untagged) is None
    assert storage.blob_size(digest_of(b"l2")) is None
    assert storage.manifest_type("app", signature) == OCI_MANIFEST  # a referrer of a kept image
    assert storage.blob_size(digest_of(b"c3")) == 2


def test_gc_follows_index_children(storage: Storage) -> None:
    child = manifest(storage, "multi", None, [b"cc", b"ll"])
    index = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX,
            "manifests": [{"mediaType": OCI_MANIFEST, "digest": str(child), "size": 1}],
        }
    ).encode()
    d = digest_of(index)
    storage.put_blob_bytes(index, d)
    storage.link_manifest("multi", d, OCI_INDEX)
    storage.set_tag("multi", "all", d)
    age(storage)
    assert collect(storage, delete_untagged=True).blobs == []
    assert storage.manifest_type("multi", child) == OCI_MANIFEST


def test_parse_digest_roundtrip_for_blob_paths(storage: Storage) -> None:
    d = parse_digest("sha256:" + "ab" * 32)
    assert storage.blob_path(d).endswith("/blobs/sha256/ab/" + "ab" * 32)
