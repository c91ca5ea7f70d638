"""pull and push against an in-memory registry behind a fake transport (no sockets): what is
requested, what is skipped, what ends up named, foreign layers, and lying registries."""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from imagetools import manifest as m
from imagetools.errors import BlobMismatch
from imagetools.pull import image_manifest, pull
from imagetools.push import push
from imagetools.registry.client import RegistryClient
from imagetools.registry.transport import BufferedResponse, Headers
from imagetools.store import Store
from tests.support.fake_transport import Sent, fake_client


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class FakeDistribution:
    """Just enough of the distribution API, for one registry host ``reg.example``."""

    def __init__(self) -> None:
        self.blobs: dict[str, bytes] = {}
        self.repo_blobs: dict[str, set[str]] = {}
        self.manifests: dict[tuple[str, str], tuple[bytes, str]] = {}
        self.uploads: dict[str, bytearray] = {}
        self.log: list[str] = []
        self.external: dict[str, bytes] = {}  # foreign-layer URLs
        self.wrong_digest_header = False

    def add_blob(self, repo: str, data: bytes) -> dict[str, Any]:
        digest = _digest(data)
        self.blobs[digest] = data
        self.repo_blobs.setdefault(repo, set()).add(digest)
        return {"digest": digest, "size": len(data)}

    def add_manifest(self, repo: str, tags: list[str], document: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(document).encode()
        digest = _digest(data)
        for ref in [*tags, digest]:
            self.manifests[(repo, ref)] = (data, document["mediaType"])
        return {"mediaType": document["mediaType"], "digest": digest, "size": len(data)}

    def __call__(self, sent: Sent) -> BufferedResponse:
        method, url, headers, body = sent.method, sent.url, sent.headers, sent.body
        parts = urllib.parse.urlsplit(url)
        self.log.append(f"{method} {parts.path}{'?' + parts.query if parts.query else ''}")
        if parts.netloc != "reg.example":
            data = self.external[url]
            return BufferedResponse(200, Headers({"Content-Length": str(len(data))}), data)
        assert "Authorization" not in headers
        if parts.path == "/v2/":
            return BufferedResponse(200, Headers(), b"{}")
        path = parts.path.removeprefix("/v2/")
        query = urllib.parse.parse_qs(parts.query)
        if "/manifests/" in path:
            repo, _, ref = path.partition("/manifests/")
            if method == "PUT":
                data = body if isinstance(body, bytes) else body.read()
                self.manifests[(repo, ref)] = (data, headers["Content-Type"])
                self.manifests[(repo, _digest(data))] = (data, headers["Content-Type"])
                return BufferedResponse(201, Headers({"Docker-Content-Digest": _digest(data)}))
            if (repo, ref) not in self.manifests:
                return BufferedResponse(404, Headers(), b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
            data, media_type = self.manifests[(repo, ref)]
            digest = "sha256:" + "0" * 64 if self.wrong_digest_header else _digest(data)
            answer = Headers({"Content-Type": media_type, "Docker-Content-Digest": digest})
            return BufferedResponse(200, answer, b"" if method == "HEAD" else data)
        if "/blobs/uploads/" in path:
            repo = path.partition("/blobs/uploads/")[0]
            if method == "POST":
                if "mount" in query and query["mount"][0] in self.repo_blobs.get(
                    query["from"][0], set()
                ):
                    self.repo_blobs.setdefault(repo, set()).add(query["mount"][0])
                    return BufferedResponse(201, Headers())
                session = f"s{len(self.uploads)}"
                self.uploads[session] = bytearray()
                location = f"/v2/{repo}/blobs/uploads/{session}"
                return BufferedResponse(202, Headers({"Location": location}))
            session = path.rpartition("/")[2]
            data = body if isinstance(body, bytes) else (body.read() if body else b"")
            self.uploads[session] += data
            if method == "PATCH":
                return BufferedResponse(202, Headers({"Location": parts.path}))
            digest = query["digest"][0]
            assert _digest(bytes(self.uploads[session])) == digest
            self.blobs[digest] = bytes(self.uploads[session])
            self.repo_blobs.setdefault(repo, set()).add(digest)
            return BufferedResponse(201, Headers())
        repo, _, digest = path.partition("/blobs/")
        if digest not in self.repo_blobs.get(repo, set()):
            return BufferedResponse(404, Headers())
        data = self.blobs[digest]
        answer = Headers({"Content-Length": str(len(data))})
        return BufferedResponse(200, answer, b"" if method == "HEAD" else data)


def _client(registry: FakeDistribution) -> RegistryClient:
    return fake_client(registry)[0]


def _image(registry: FakeDistribution, repo: str, arch: str, payload: bytes) -> dict[str, Any]:
    config = json.dumps(
        {"architecture": arch, "os": "linux", "rootfs": {"type": "layers"}}
    ).encode()
    document = {
        "schemaVersion": 2,
        "mediaType": m.OCI_MANIFEST,
        "config": {"mediaType": m.OCI_CONFIG, **registry.add_blob(repo, config)},
        "layers": [
            {"mediaType": m.OCI_LAYER_GZIP, **registry.add_blob(repo, b"shared layer")},
            {"mediaType": m.OCI_LAYER_GZIP, **registry.add_blob(repo, payload)},
        ],
    }
    return document


@pytest.fixture
def registry() -> FakeDistribution:
    fake = FakeDistribution()
    amd = fake.add_manifest("app", [], _image(fake, "app", "amd64", b"amd64 layer"))
    arm = fake.add_manifest("app", [], _image(fake, "app", "arm64", b"arm64 layer"))
    index = {
        "schemaVersion": 2,
        "mediaType": m.OCI_INDEX,
        "manifests": [
            {**amd, "platform": {"architecture": "amd64", "os": "linux"}},
            {**arm, "platform": {"architecture": "arm64", "os": "linux", "variant": "v8"}},
        ],
    }
    fake.add_manifest("app", ["v1"], index)
    return fake


def test_pull_an_index_names_the_platform_manifest(
    registry: FakeDistribution, tmp_path: Path
) -> None:
    store = Store(str(tmp_path))
    descriptor = pull(store, "reg.example/app:v1", platform="linux/arm64", client=_client(registry))
    index_digest = _digest(registry.manifests[("app", "v1")][0])
    arm = json.loads(registry.manifests[("app", "v1")][0])["manifests"][1]
    assert descriptor["digest"] == arm["digest"]
    assert descriptor["annotations"] == {
        "io.pyrun.image.source": "reg.example/app",
        "io.pyrun.image.index": index_digest,
        "io.pyrun.image.index.mediaType": m.OCI_INDEX,
        "org.opencontainers.image.ref.name": "reg.example/app:v1",
    }
    assert descriptor["platform"] == {"architecture": "arm64", "os": "linux", "variant": "v8"}
    assert store.resolve("reg.example/app:v1")["digest"] == arm["digest"]
    assert registry.log[:2] == [
        "GET /v2/app/manifests/v1",
        f"GET /v2/app/manifests/{arm['digest']}",
    ]
    assert len([line for line in registry.log if "/blobs/" in line]) == 3
    _, parsed = image_manifest(store, store.resolve("reg.example/app:v1"))
    assert all(store.has_blob(b.digest, b.size) for b in parsed.blobs)

    # The other platform: the shared layer is not fetched again.
    registry.log.clear()
    pull(store, "reg.example/app:v1", platform="linux/amd64", client=_client(registry))
    shared = _digest(b"shared layer")
    assert [line for line in registry.log if shared in line] == []
    assert len([line for line in registry.log if "/blobs/" in line]) == 2

    # By digest with everything in the store: not a single request.
    registry.log.clear()
    amd_digest = store.resolve("reg.example/app:v1")["digest"]
    pull(store, f"reg.example/app@{amd_digest}", client=_client(registry))
    assert registry.log == []
    assert store.resolve(f"reg.example/app@{amd_digest}")["digest"] == amd_digest


def test_image_manifest_resolves_a_stored_index(registry: FakeDistribution, tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    pull(store, "reg.example/app:v1", platform="linux/amd64", client=_client(registry))
    data, _ = registry.manifests[("app", "v1")]
    store.write_blob(data)
    index = {"mediaType": m.OCI_INDEX, "digest": _digest(data), "size": len(data)}
    # Only the amd64 manifest is in the store: that is what an index resolves to, whatever host.
    descriptor, _ = image_manifest(store, index, "linux/amd64")
    assert descriptor.platform is not None and descriptor.platform.architecture == "amd64"
    with pytest.raises(m.ManifestError, match="no manifest for platform linux/arm64/v8"):
        image_manifest(store, index, "linux/arm64")


def test_lying_registries(registry: FakeDistribution, tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    registry.wrong_digest_header = True
    with pytest.raises(BlobMismatch, match="the registry says its digest is sha256:0000"):
        pull(store, "reg.example/app:v1", client=_client(registry))
    registry.wrong_digest_header = False
    # Content that is not what its digest says.
    data, media_type = registry.manifests[("app", "v1")]
    wrong = "sha256:" + "f" * 64
    registry.manifests[("app", wrong)] = (data, media_type)
    with pytest.raises(BlobMismatch, match="the registry sent content with digest"):
        pull(store, f"reg.example/app@{wrong}", client=_client(registry))
    assert store.refs() == []


def test_foreign_layers_come_from_their_urls_and_are_not_pushed(tmp_path: Path) -> None:
    fake = FakeDistribution()
    config = json.dumps({"architecture": "amd64", "os": "windows"}).encode()
    foreign = b"a windows base layer"
    fake.external["https://cdn.example/base.tar.gz"] = foreign
    document = {
        "schemaVersion": 2,
        "mediaType": m.DOCKER_MANIFEST,
        "config": {"mediaType": m.DOCKER_CONFIG, **fake.add_blob("win", config)},
        "layers": [
            {
                "mediaType": m.DOCKER_FOREIGN_LAYER,
                "digest": _digest(foreign),
                "size": len(foreign),
                "urls": ["https://cdn.example/base.tar.gz"],
            },
            {"mediaType": m.DOCKER_LAYER, **fake.add_blob("win", b"own layer")},
        ],
    }
    fake.add_manifest("win", ["latest"], document)
    store = Store(str(tmp_path))
    pull(store, "reg.example/win", client=_client(fake))
    assert store.read_blob(_digest(foreign)) == foreign
    assert "GET /base.tar.gz" in fake.log

    fake.log.clear()
    push(store, "reg.example/win:latest", "reg.example/copy:latest", client=_client(fake))
    assert not [line for line in fake.log if _digest(foreign) in line]
    assert fake.manifests[("copy", "latest")][1] == m.DOCKER_MANIFEST


def test_push_monolithic_chunked_mount_and_skip(registry: FakeDistribution, tmp_path: Path) -> None:
    store = Store(str(tmp_path))
    pull(store, "reg.example/app:v1", platform="linux/amd64", client=_client(registry))
    # Mounted: the blobs came from reg.example/app.
    registry.log.clear()
    push(store, "reg.example/app:v1", "reg.example/mounted:v1", client=_client(registry))
    mounts = [line for line in registry.log if "mount=" in line]
    assert len(mounts) == 3 and all("from=app" in line for line in mounts)
    assert not [
        line for line in registry.log if line.startswith(("PATCH", "PUT /v2/mounted/blobs"))
    ]

    # A registry without the source repository: the mount opens an upload session (202), the
    # blob goes up through it, in 4-byte chunks.
    other = FakeDistribution()
    registry.log.clear()
    push(
        store,
        "reg.example/app:v1",
        "reg.example/fresh:v1",
        client=_client(other),
        monolithic_max=4,
        chunk_size=4,
    )
    assert len([line for line in other.log if "mount=" in line]) == 3
    assert not [line for line in other.log if line == "POST /v2/fresh/blobs/uploads/"]
    patches = [line for line in other.log if line.startswith("PATCH")]
    amd = store.resolve("reg.example/app:v1")
    manifest = json.loads(store.read_blob(amd["digest"]))
    sizes = [manifest["config"]["size"]] + [d["size"] for d in manifest["layers"]]
    assert len(patches) == sum(-(-size // 4) for size in sizes)
    assert other.manifests[("fresh", "v1")][0] == store.read_blob(amd["digest"])

    # Everything there: HEADs only, then the manifest.
    other.log.clear()
    push(store, "reg.example/app:v1", "reg.example/fresh:v1", client=_client(other))
    assert other.log[0] == "GET /v2/"  # learns the registry's authentication first
    assert sorted(line.split()[0] for line in other.log[1:]) == ["HEAD"] * 3 + ["PUT"]


def test_progress_lines_and_bars() -> None:
    import io

    from rich.console import Console

    from imagetools.progress import LineProgress, RichProgress, make_progress

    out = io.StringIO()
    lines = LineProgress(out)
    lines.start("aaaaaaaaaaaa", 100)
    lines.start("bbbbbbbbbbbb", 100, 40)
    lines.update("bbbbbbbbbbbb", 70)
    lines.finish("bbbbbbbbbbbb", "done")
    lines.finish("cccccccccccc", "skipped")
    assert out.getvalue() == (
        "bbbbbbbbbbbb: resumed at 40\nbbbbbbbbbbbb: done\ncccccccccccc: skipped\n"
    )
    assert type(make_progress(quiet=True)).__name__ == "NullProgress"

    screen = io.StringIO()
    bars = RichProgress(Console(file=screen, force_terminal=True, width=100))
    bars.start("aaaaaaaaaaaa", 2_000_000)
    bars.update("aaaaaaaaaaaa", 1_000_000)
    bars.finish("aaaaaaaaaaaa", "done")
    bars.finish("dddddddddddd", "skipped")
    bars.close()
    assert "aaaaaaaaaaaa" in screen.getvalue() and "2.0 MB" in screen.getvalue()
    assert "skipped" in screen.getvalue()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["pull", "busybox"], (None, None, None, False, "busybox")),
        (
            ["--root", "/r", "pull", "-q", "--tls-verify=false", "--platform", "linux/arm64", "x"],
            ("/r", "linux/arm64", False, True, "x"),
        ),
        (
            ["--root=/r", "pull", "--tls-verify", "YES", "--quiet", "x"],
            ("/r", None, True, True, "x"),
        ),
        (["pull", "--platform=linux/amd64", "x"], (None, "linux/amd64", None, False, "x")),
    ],
)
def test_the_click_free_pull_takes_plain_pulls(args: list[str], expected: tuple[Any, ...]) -> None:
    assert parse_pull(args) == expected


def parse_pull(args: list[str]) -> tuple[Any, ...] | None:
    """What the click-free path makes of ``pyrun image ARGS``; None: left to click."""
    from imagetools.quick import split
    from imagetools.registry.quick import _parse

    routed = split(args)
    if routed is None or routed[1] != "pull":
        return None
    options = _parse(routed[2])
    if options is None:
        return None
    return (routed[0], options.platform, options.tls_verify, options.quiet, options.ref)


def test_the_click_free_pull_takes_a_cert_dir() -> None:
    from imagetools.registry.quick import _parse

    for args in (["--cert-dir", "/c", "x"], ["--cert-dir=/c", "-q", "x"]):
        options = _parse(args)
        assert options is not None and (options.cert_dir, options.ref) == ("/c", "x")
    assert _parse(["--cert-dir"]) is None and _parse(["--cert-dir=", "x"]) is None


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["pull"],
        ["push", "x"],
        ["pull", "--help"],
        ["pull", "-h", "x"],
        ["--help"],
        ["pull", "a", "b"],
        ["pull", "--tls-verify=maybe", "x"],
        ["pull", "--tls-verify"],
        ["pull", "--platform", "", "x"],
        ["pull", "--all-tags", "x"],
        ["--root"],
        ["--debug", "pull", "x"],
    ],
)
def test_the_click_free_pull_leaves_everything_else_to_click(args: list[str]) -> None:
    from imagetools.quick import main

    assert parse_pull(args) is None
    assert main(args) is None
