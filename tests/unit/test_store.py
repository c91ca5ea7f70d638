"""The store (imagetools/store.py) on temp dirs: modes, verified ingest, resume, a second
writer of the same blob, names, gc reachability, corrupt index.json, truncated blobs, the
lease and gc in one process. Cross-process locking: test_store_concurrency.py."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from imagetools.errors import BlobMismatch, ImageNotFound, StoreError
from imagetools.store import Store, digest_of

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def mode(path: Path | str) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def make_image(store: Store, tag: str, layers: list[bytes] | None = None) -> dict[str, Any]:
    """A manifest with a config and layers written to the store; its descriptor."""
    layer_descriptors = []
    for data in layers if layers is not None else [f"layer of {tag}".encode()]:
        digest = store.write_blob(data)
        layer_descriptors.append(
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": digest,
                "size": len(data),
            }
        )
    config = json.dumps({"architecture": "amd64", "os": "linux", "tag": tag}).encode()
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": store.write_blob(config),
            "size": len(config),
        },
        "layers": layer_descriptors,
    }
    data = json.dumps(manifest).encode()
    return {"mediaType": OCI_MANIFEST, "digest": store.write_blob(data), "size": len(data)}


def blobs_of(store: Store) -> set[str]:
    return set(store.blobs())


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(str(tmp_path / "store"))


# -- modes --------------------------------------------------------------------------------------
def test_modes_do_not_depend_on_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        store = Store(str(tmp_path / "s"))
        digest = store.write_blob(b"content")
        ingest = store.ingest(digest_of(b"partial data"), 12)
        ingest.write(b"partial")
        ingest.close()
        store.set_ref("docker.io/library/x:1", make_image(store, "x"))
    finally:
        os.umask(old)
    root = tmp_path / "s"
    assert mode(root) == 0o711
    assert mode(root / "blobs") == 0o755
    assert mode(root / "blobs" / "sha256") == 0o755
    assert mode(store.blob_path(digest)) == 0o444
    assert mode(root / "ingest") == 0o700
    (partial,) = os.listdir(root / "ingest")
    assert mode(root / "ingest" / partial) == 0o600
    for name in ("index.json", "oci-layout", "lock", "index.lock"):
        assert mode(root / name) == 0o644, name


def test_an_existing_root_keeps_its_mode(tmp_path: Path) -> None:
    root = tmp_path / "mine"
    root.mkdir(mode=0o750)
    os.chmod(root, 0o750)
    Store(str(root))
    assert mode(root) == 0o750


# -- blobs ------------------------------------------------------------------------------------
def test_write_and_read_back(store: Store) -> None:
    digest = store.write_blob(b"hello")
    assert digest == "sha256:" + hashlib.sha256(b"hello").hexdigest()
    assert store.read_blob(digest) == b"hello"
    assert store.has_blob(digest, 5) and not store.has_blob(digest, 6)
    assert store.write_blob(b"hello") == digest  # present: nothing rewritten
    assert os.listdir(f"{store.root}/ingest") == []


@pytest.mark.parametrize(
    ("data", "size", "words"),
    [
        (b"evil", 4, "the content's digest is"),
        (b"good", 3, "more than the 3 bytes"),
        (b"go", 4, "got 2 bytes, the descriptor says 4"),
    ],
)
def test_a_wrong_blob_never_enters(store: Store, data: bytes, size: int, words: str) -> None:
    digest = digest_of(b"good")
    ingest = store.ingest(digest, size)
    with pytest.raises(BlobMismatch, match=words):
        ingest.write(data)
        ingest.commit()
    ingest.close()
    assert blobs_of(store) == set()
    if "more than" not in words:  # commit discards what can never become right
        assert os.listdir(f"{store.root}/ingest") == []


def test_verify_then_commit_publishes_only_at_commit(store: Store) -> None:
    digest = digest_of(b"abc")
    ingest = store.ingest(digest, 3)
    ingest.write(b"abc")
    ingest.verify()
    assert not store.has_blob(digest)
    assert ingest.commit() == digest
    assert store.read_blob(digest) == b"abc"


def test_abort_leaves_nothing(store: Store) -> None:
    ingest = store.ingest(digest_of(b"abc"), 3)
    ingest.write(b"ab")
    ingest.abort()
    assert os.listdir(f"{store.root}/ingest") == []
    assert blobs_of(store) == set()


def test_an_interrupted_ingest_resumes(store: Store) -> None:
    data = b"0123456789" * 1000
    digest = digest_of(data)
    first = store.ingest(digest, len(data))
    first.write(data[:4000])
    first.close()  # interrupted: the partial file stays
    second = store.ingest(digest, len(data))
    assert second.offset == 4000
    second.write(data[4000:])
    assert second.commit() == digest
    assert store.read_blob(digest) == data


def test_an_ingest_of_a_blob_that_is_there_is_complete(store: Store) -> None:
    digest = store.write_blob(b"there")
    ingest = store.ingest(digest, 5)
    assert ingest.complete and ingest.offset == 5
    ingest.restart()
    ingest.write(b"xxxxx")  # not stored, not checked: the store has it verified
    assert ingest.commit() == digest
    assert store.read_blob(digest) == b"there"
    assert os.listdir(f"{store.root}/ingest") == []


def test_a_second_writer_waits_and_finds_the_blob(store: Store) -> None:
    """The second ingest of one blob blocks on the first's lock; once the first committed
    (renamed its partial file into blobs/), the second must not take that file for its own
    partial file (it would truncate the published blob)."""
    data = b"x" * 100_000
    digest = digest_of(data)
    first = store.ingest(digest, len(data))
    first.write(data[:50_000])
    outcome: dict[str, Any] = {}

    def second() -> None:
        ingest = store.ingest(digest, len(data))
        outcome["complete"] = ingest.complete
        ingest.restart()
        ingest.write(data)
        outcome["digest"] = ingest.commit()

    thread = threading.Thread(target=second)
    thread.start()
    time.sleep(0.2)
    assert thread.is_alive(), "the second writer must wait for the first's lock"
    first.write(data[50_000:])
    first.commit()
    thread.join(5)
    assert outcome == {"complete": True, "digest": digest}
    assert store.read_blob(digest) == data
    assert mode(store.blob_path(digest)) == 0o444


def test_a_truncated_blob_is_reported_with_its_file(store: Store) -> None:
    digest = store.write_blob(b"a layer that rots on disk")
    path = store.blob_path(digest)
    os.chmod(path, 0o644)
    with open(path, "r+b") as handle:
        handle.truncate(5)
    with pytest.raises(BlobMismatch, match=rf"{path}: 5 bytes on disk, 25 expected"):
        store.open_blob(digest, 25)
    with pytest.raises(BlobMismatch, match="corrupt"):
        store.check_blob(digest, 25)
    with pytest.raises(BlobMismatch, match=f"{path}"):
        store.read_blob(digest)
    with pytest.raises(ImageNotFound):
        store.check_blob(digest_of(b"absent"), 6)
    # A load or pull of the same blob repairs it: has_blob(size) is false, the ingest
    # rewrites it.
    assert not store.has_blob(digest, 25)
    store.write_blob(b"a layer that rots on disk")
    assert store.read_blob(digest) == b"a layer that rots on disk"


# -- names ------------------------------------------------------------------------------------
def test_set_resolve_remove(store: Store) -> None:
    descriptor = make_image(store, "a")
    store.set_ref("docker.io/library/a:1", descriptor)
    store.set_ref("docker.io/library/a:1", descriptor)  # replaced, not duplicated
    store.set_ref("docker.io/library/a:2", descriptor)
    assert [n for n, _ in store.refs()] == ["docker.io/library/a:1", "docker.io/library/a:2"]
    assert store.resolve("docker.io/library/a:2")["digest"] == descriptor["digest"]
    assert store.resolve(descriptor["digest"][7:19])["digest"] == descriptor["digest"]
    store.remove_ref("docker.io/library/a:1")
    with pytest.raises(ImageNotFound):
        store.remove_ref("docker.io/library/a:1")
    assert mode(f"{store.root}/index.json") == 0o644


def test_set_ref_refuses_a_manifest_that_is_not_there(store: Store) -> None:
    missing = {"mediaType": OCI_MANIFEST, "digest": digest_of(b"nothing"), "size": 7}
    with pytest.raises(ImageNotFound, match=r"cannot name docker\.io/library/x:1"):
        store.set_ref("docker.io/library/x:1", missing)
    assert store.refs() == []


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b'{"schemaVersion": 2, "manifests": [', "corrupt .*line 1 column"),
        (b"\xff\xfe garbage", "corrupt"),
        (b"[]", "not a JSON object"),
        (b'{"manifests": {}}', "'manifests' is not a list"),
        (b'{"manifests": [{"size": 3}]}', r"manifests\[0\] is not a descriptor"),
    ],
)
def test_a_corrupt_index_is_an_error_naming_the_file(
    store: Store, content: bytes, words: str
) -> None:
    descriptor = make_image(store, "a")
    path = f"{store.root}/index.json"
    with open(path, "wb") as handle:
        handle.write(content)
    for action in (store.refs, lambda: store.set_ref("docker.io/library/a:1", descriptor)):
        with pytest.raises(StoreError, match=words) as info:
            action()
        assert path in str(info.value)
    with open(path, "rb") as handle:
        assert handle.read() == content  # never replaced: it held every name


# -- gc ---------------------------------------------------------------------------------------
def test_gc_keeps_what_names_reach(store: Store) -> None:
    shared = b"a layer two images share"
    kept = make_image(store, "kept", [shared, b"kept's own layer"])
    gone = make_image(store, "gone", [shared, b"gone's own layer"])
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [dict(kept, platform={"architecture": "amd64", "os": "linux"})],
    }
    data = json.dumps(index).encode()
    indexed = {"mediaType": OCI_INDEX, "digest": store.write_blob(data), "size": len(data)}
    store.set_ref("docker.io/library/kept:1", kept)
    store.set_ref("docker.io/library/gone:1", gone)
    store.set_ref("docker.io/library/multi:1", indexed)
    stray = store.write_blob(b"nobody's blob")
    abandoned = store.ingest(digest_of(b"never finished"), 14)
    abandoned.write(b"never")
    abandoned.close()  # a pull killed halfway: its partial file stays for a resume

    store.remove_ref("docker.io/library/gone:1")
    expected_gone = {gone["digest"], digest_of(b"gone's own layer"), stray}
    expected_gone.add(json.loads(store.read_blob(gone["digest"]))["config"]["digest"])
    partial = f"ingest/{os.path.basename(abandoned.path)}"
    assert set(store.gc(dry_run=True)) == expected_gone | {partial}  # named, as gc will
    assert expected_gone <= blobs_of(store)  # dry run: nothing went
    assert os.listdir(f"{store.root}/ingest") == [os.path.basename(abandoned.path)]

    removed = store.gc()
    assert set(removed) == expected_gone | {f"ingest/{os.path.basename(abandoned.path)}"}
    assert os.listdir(f"{store.root}/ingest") == []
    assert blobs_of(store) == store.reachable(d for _, d in store.refs())
    assert digest_of(shared) in blobs_of(store)
    assert indexed["digest"] in blobs_of(store)


def test_gc_inside_a_lease_of_the_same_thread_refuses(store: Store) -> None:
    with (
        store.lease(),
        store.lease(),  # re-entrant
        pytest.raises(StoreError, match="would wait for itself"),
    ):
        store.gc()
    assert store.gc() == []


def test_gc_waits_for_a_lease_of_another_thread(store: Store) -> None:
    events: list[str] = []
    entered = threading.Event()
    release = threading.Event()

    def load() -> None:
        with store.lease():
            descriptor = make_image(store, "fresh")
            entered.set()
            release.wait(5)
            store.set_ref("docker.io/library/fresh:1", descriptor)
            events.append("named")

    thread = threading.Thread(target=load)
    thread.start()
    entered.wait(5)
    collector = threading.Thread(target=lambda: events.append(f"gc {len(store.gc())}"))
    collector.start()
    time.sleep(0.3)
    assert events == [], "gc ran while a lease was held"
    release.set()
    thread.join(5)
    collector.join(5)
    assert events == ["named", "gc 0"]
    descriptor = store.resolve("docker.io/library/fresh:1")
    assert store.reachable([descriptor]) <= blobs_of(store)
