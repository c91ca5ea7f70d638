"""The store's locking with real concurrent processes (no root: temp dirs).

Actors (tests/support/store_actor.py) run one store step per request, so a test sets up an
exact interleaving and sees which step blocks: gc waits for a lease and for a live ingest of
another process; a second writer of one blob waits and then finds it; names set by many
processes at once are all kept. A stress test runs loaders and a gc loop freely and checks
that every name still reaches complete, verified content.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from imagetools.store import Store, digest_of

REPO = Path(__file__).resolve().parents[2]
ACTOR = REPO / "tests" / "support" / "store_actor.py"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


class Actor:
    def __init__(self, root: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(ACTOR), root],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.reply(10) == {"ok": "ready"}

    def send(self, op: str, **fields: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self.proc.stdin.flush()

    def reply(self, timeout: float) -> dict[str, Any] | None:
        """The next reply, or None when none came within timeout (the step blocks)."""
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return None
        line = self.proc.stdout.readline()
        assert line, f"actor died (rc={self.proc.poll()})"
        result: dict[str, Any] = json.loads(line)
        return result

    def call(self, op: str, **fields: Any) -> Any:
        self.send(op, **fields)
        answer = self.reply(20)
        assert answer is not None, f"{op} did not answer"
        assert "error" not in answer, answer
        return answer["ok"]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.send("exit")
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def actors(tmp_path: Path) -> Iterator[Any]:
    started: list[Actor] = []
    root = str(tmp_path / "store")
    Store(root)

    def start() -> Actor:
        actor = Actor(root)
        started.append(actor)
        return actor

    start.root = root  # type: ignore[attr-defined]
    yield start
    for actor in started:
        actor.close()


def manifest_blobs(actor: Actor, tag: str) -> dict[str, Any]:
    """Write a layer, a config and a manifest through ``actor``; the manifest descriptor."""
    layer = actor.call("write_blob", data=f"layer {tag}")
    config_data = json.dumps({"architecture": "amd64", "os": "linux", "tag": tag})
    config = actor.call("write_blob", data=config_data)
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config,
                "size": len(config_data),
            },
            "layers": [
                {
                    "mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer,
                    "size": len(f"layer {tag}"),
                }
            ],
        }
    )
    digest = actor.call("write_blob", data=manifest)
    return {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(manifest)}


def test_gc_waits_for_a_load_between_its_blobs_and_its_name(actors: Any) -> None:
    loader, collector = actors(), actors()
    loader.call("lease")
    descriptor = manifest_blobs(loader, "one")  # committed, not yet named
    collector.send("gc")
    assert collector.reply(0.5) is None, "gc ran while another process held a lease"
    loader.call("set_ref", name="docker.io/library/one:1", descriptor=descriptor)
    loader.call("unlease")
    answer = collector.reply(10)
    assert answer == {"ok": []}, answer  # everything was named by then: nothing to remove
    store = Store(actors.root)
    assert store.reachable([store.resolve("docker.io/library/one:1")]) == set(store.blobs())


def test_without_the_lease_gc_would_have_taken_the_blobs(actors: Any) -> None:
    """The counter-test: the same steps with no lease, gc runs at once and removes the
    unnamed blobs, and the name can then not be set (never a dangling name)."""
    loader, collector = actors(), actors()
    descriptor = manifest_blobs(loader, "two")
    assert len(collector.call("gc")) == 3
    loader.send("set_ref", name="docker.io/library/two:1", descriptor=descriptor)
    answer = loader.reply(10)
    assert answer is not None and "cannot name docker.io/library/two:1" in answer["error"]
    assert Store(actors.root).refs() == []


def test_gc_waits_for_a_live_ingest_of_another_process(actors: Any) -> None:
    writer, collector = actors(), actors()
    data = "z" * 10_000
    digest = digest_of(data.encode())
    assert writer.call("ingest", digest=digest, size=len(data), data=data[:3000]) == {
        "complete": False,
        "offset": 3000,
    }
    collector.send("gc")
    assert collector.reply(0.5) is None, "gc ran while an ingest was being written"
    writer.call("ingest_write", data=data[3000:])
    assert writer.call("ingest_commit") == digest
    assert collector.reply(10) == {"ok": [digest]}  # unnamed, so it goes: but whole
    assert os.listdir(f"{actors.root}/ingest") == []


def test_a_second_process_writing_the_same_blob_waits_then_finds_it(actors: Any) -> None:
    first, second = actors(), actors()
    data = "y" * 50_000
    digest = digest_of(data.encode())
    first.call("ingest", digest=digest, size=len(data), data=data[:20_000])
    second.send("ingest", digest=digest, size=len(data), data=data)
    assert second.reply(0.5) is None, "two writers of one blob at once"
    first.call("ingest_write", data=data[20_000:])
    assert first.call("ingest_commit") == digest
    answer = second.reply(10)
    assert answer == {"ok": {"complete": True, "offset": len(data)}}, answer
    assert second.call("ingest_commit") == digest
    store = Store(actors.root)
    assert store.read_blob(digest) == data.encode()  # not truncated by the second writer
    assert os.listdir(f"{actors.root}/ingest") == []


def test_names_set_by_many_processes_at_once_are_all_kept(actors: Any) -> None:
    first = actors()
    descriptor = manifest_blobs(first, "shared")
    script = textwrap.dedent(
        """
        import json, sys
        sys.path.insert(0, sys.argv[1])
        from imagetools.store import Store
        store = Store(sys.argv[2])
        descriptor = json.loads(sys.argv[4])
        for i in range(25):
            store.set_ref(f"docker.io/library/p{sys.argv[3]}:{i}", descriptor)
        """
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(REPO), actors.root, str(n), json.dumps(descriptor)]
        )
        for n in range(8)
    ]
    assert [p.wait(60) for p in procs] == [0] * 8
    names = {name for name, _ in Store(actors.root).refs()}
    assert names == {f"docker.io/library/p{n}:{i}" for n in range(8) for i in range(25)}


STRESS = """
import json, os, random, sys, time
sys.path.insert(0, sys.argv[1])
from imagetools.store import Store
store = Store(sys.argv[2])
worker, rounds = int(sys.argv[3]), int(sys.argv[4])
shared = b"S" * 300_000                      # every image has this layer: one blob, many writers
names = []
for i in range(rounds):
    own = os.urandom(200_000)
    with store.lease():
        layers = [store.write_blob(shared), store.write_blob(own)]
        config = json.dumps({"architecture": "amd64", "os": "linux", "w": worker, "i": i}).encode()
        manifest = json.dumps({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": store.write_blob(config), "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d,
                        "size": n} for d, n in zip(layers, (len(shared), len(own)))],
        }).encode()
        digest = store.write_blob(manifest)
        name = f"docker.io/library/w{worker}:{i}"
        store.set_ref(name, {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                             "digest": digest, "size": len(manifest)})
    names.append(name)
    if i % 3 == 2:                          # drop an older one: gc has work to do
        store.remove_ref(names.pop(0))
print(json.dumps(names))
"""

GC_LOOP = """
import sys, time
sys.path.insert(0, sys.argv[1])
from imagetools.store import Store
store = Store(sys.argv[2])
removed = 0
while True:
    removed += len(store.gc())
    if sys.stdin.readline().strip() == "stop":
        break
print(removed)
"""


def test_loads_and_gc_running_freely_never_break_an_image(tmp_path: Path) -> None:
    root = str(tmp_path / "store")
    Store(root)
    collector = subprocess.Popen(
        [sys.executable, "-c", GC_LOOP, str(REPO), root],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    loaders = [
        subprocess.Popen(
            [sys.executable, "-c", STRESS, str(REPO), root, str(n), "20"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    assert collector.stdin is not None
    kept: list[str] = []
    while any(p.poll() is None for p in loaders):
        collector.stdin.write("again\n")  # one gc per line: gc runs all the time
        collector.stdin.flush()
        for loader in loaders:
            try:
                loader.wait(0.02)
            except subprocess.TimeoutExpired:
                pass
    for loader in loaders:
        out, _ = loader.communicate(timeout=30)
        assert loader.returncode == 0
        kept += json.loads(out)
    collector.stdin.write("stop\n")
    collector.stdin.flush()
    gc_out, _ = collector.communicate(timeout=30)
    assert collector.returncode == 0
    assert int(gc_out) > 0, "gc never removed anything: it did not run alongside"

    store = Store(root)
    assert sorted(n for n, _ in store.refs()) == sorted(kept)
    for _, descriptor in store.refs():
        for digest in store.reachable([descriptor]):
            store.read_blob(digest)  # present and verified
    store.gc()
    assert set(store.blobs()) == store.reachable(d for _, d in store.refs())
    assert os.listdir(f"{root}/ingest") == []


def test_gc_waits_for_an_unpack_until_its_layers_are_applied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`image rm` and `image gc` while an unpack applies the layers: gc waits for it."""
    import threading
    import time

    from imagetools import unpack as unpack_module
    from tests.support.layers import file, put_image, tar

    store = Store(str(tmp_path / "store"))
    layers = [tar(file("a", b"first")), tar(file("b", b"second"))]
    manifest = put_image(store, "localhost/busy:1", layers)
    real_apply = unpack_module.apply_layer
    seen: dict[str, Any] = {}

    def apply_while_gc_runs(*args: Any, **kwargs: Any) -> Any:
        if not seen:
            store.remove_ref("localhost/busy:1")
            collector = threading.Thread(target=lambda: seen.update(removed=store.gc()))
            seen["gc"] = collector
            collector.start()
            time.sleep(0.3)
            seen["waited"] = collector.is_alive()
        return real_apply(*args, **kwargs)

    monkeypatch.setattr(unpack_module, "apply_layer", apply_while_gc_runs)
    bundle = unpack_module.unpack(store, "localhost/busy:1", tmp_path / "b", rootless=True)
    seen["gc"].join(10)
    assert seen["waited"] is True
    assert (bundle / "rootfs/a").read_bytes() == b"first"
    assert (bundle / "rootfs/b").read_bytes() == b"second"
    # The bundle's snapshot record keeps its image's blobs (for commit) after the name went.
    assert seen["removed"] == [] and manifest["digest"] in set(store.blobs())
