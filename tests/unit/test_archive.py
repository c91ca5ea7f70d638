"""imagetools/archive.py on archives made here in Python (no tools, no root): the naming
rules, docker-archives with gzip layers (diff_id checked while they stream), compressed and
concatenated-gzip streams, member names that try to leave the archive, link loops, and the
caller's stream left open. The real tools' archives: tests/integration/test_image_archives.py.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from imagetools.archive import base_name, load, save
from imagetools.errors import ArchiveError, BlobMismatch
from imagetools.store import Store
from tests.support.layers import GZIP, manifest_blob

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(name: str, content: bytes) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.size = len(content)
        tar.addfile(info, io.BytesIO(content))
    return out.getvalue()


def tar_of(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return out.getvalue()


def oci_layout(annotations: list[dict[str, str]]) -> tuple[dict[str, bytes], list[str]]:
    """Files of an OCI layout with one image per annotations dict; the manifest digests."""
    files: dict[str, bytes] = {"oci-layout": b'{"imageLayoutVersion": "1.0.0"}'}
    entries, digests = [], []
    for number, names in enumerate(annotations):
        layer = gzip.compress(layer_tar(f"file{number}", b"x" * 100), mtime=0)
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "n": number,
                "rootfs": {
                    "type": "layers",
                    "diff_ids": [sha(layer_tar(f"file{number}", b"x" * 100))],
                },
            }
        ).encode()
        manifest = manifest_blob(config, [layer], GZIP)
        for blob in (layer, config, manifest):
            files[f"blobs/sha256/{sha(blob)[7:]}"] = blob
        entry: dict[str, Any] = {
            "mediaType": OCI_MANIFEST,
            "digest": sha(manifest),
            "size": len(manifest),
        }
        if names:
            entry["annotations"] = names
        entries.append(entry)
        digests.append(sha(manifest))
    files["index.json"] = json.dumps({"schemaVersion": 2, "manifests": entries}).encode()
    return files, digests


REF = "org.opencontainers.image.ref.name"
CTR = "io.containerd.image.name"


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(str(tmp_path / "store"))


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/x/busybox-oci.tar", "localhost/busybox-oci"),
        ("/x/My Image.tar.gz", "localhost/my-image"),
        ("/x/layout/", "localhost/layout"),
        ("/x/__.tar", None),
        (None, None),
    ],
)
def test_base_name(path: str | None, expected: str | None) -> None:
    assert base_name(path) == expected


@pytest.mark.parametrize(
    ("annotations", "name", "expected"),
    [
        ([{REF: "v1"}], None, ["localhost/img:v1"]),
        ([{REF: "v1"}], "example.com/app", ["example.com/app:v1"]),
        ([{REF: "v1"}], "app:2", ["docker.io/library/app:2"]),
        ([{REF: "docker.io/library/busybox:1"}], None, ["docker.io/library/busybox:1"]),
        ([{REF: "quay.io/a/b:c"}], None, ["quay.io/a/b:c"]),
        ([{REF: "1.0", CTR: "docker.io/library/x:1.0"}], None, ["docker.io/library/x:1.0"]),
        ([{}], None, ["localhost/img:latest"]),
        (
            [{REF: "a"}, {REF: "b"}],
            "repo",
            ["docker.io/library/repo:a", "docker.io/library/repo:b"],
        ),
    ],
)
def test_names(
    store: Store,
    tmp_path: Path,
    annotations: list[dict[str, str]],
    name: str | None,
    expected: list[str],
) -> None:
    files, _ = oci_layout(annotations)
    path = tmp_path / "img.tar"
    path.write_bytes(tar_of(files))
    assert [n for n, _ in load(store, str(path), name=name)] == expected
    assert sorted(n for n, _ in store.refs()) == sorted(expected)


def test_unnamed_images_get_digests(store: Store, tmp_path: Path) -> None:
    files, digests = oci_layout([{}, {}])
    path = tmp_path / "two.tar"
    path.write_bytes(tar_of(files))
    assert [n for n, _ in load(store, str(path))] == [f"localhost/two@{d}" for d in digests]


def test_a_bare_tag_from_a_stream_needs_a_name(store: Store) -> None:
    files, _ = oci_layout([{REF: "latest"}])
    with pytest.raises(ArchiveError, match="only by the tag 'latest': give --name"):
        load(store, io.BytesIO(tar_of(files)))


def test_a_callers_stream_stays_open_and_compressed_streams_load(store: Store) -> None:
    files, digests = oci_layout([{REF: "docker.io/library/a:1"}])
    data = tar_of(files)
    plain = io.BytesIO(data)
    load(store, plain)
    assert not plain.closed
    # Two concatenated gzip members, as `gzip -c part1 part2` writes, then zero padding.
    cut = len(data) // 2
    squeezed = gzip.compress(data[:cut]) + gzip.compress(data[cut:]) + b"\0" * 512
    other = Store(store.root + "2")
    stream = io.BufferedReader(io.BytesIO(squeezed))  # type: ignore[arg-type]
    assert [d["digest"] for _, d in load(other, stream)] == digests
    assert os.listdir(f"{other.root}/ingest") == []


def test_member_names_cannot_leave_the_archive(store: Store, tmp_path: Path) -> None:
    """A docker-archive whose manifest names ../ paths and symlinks that point out: the
    names are only looked up in the tar (nothing is extracted), so they find nothing."""
    secret = tmp_path / "secret.tar"
    secret.write_bytes(layer_tar("x", b"host file"))
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": [sha(secret.read_bytes())]}})
    for layer in (f"../../../../{secret}", str(secret), "escape/layer.tar"):
        archive = tar_of(
            {
                "c.json": config.encode(),
                "manifest.json": json.dumps(
                    [{"Config": "c.json", "RepoTags": ["a:1"], "Layers": [layer]}]
                ).encode(),
            },
            links={"escape": "../../../../" + str(tmp_path)},
        )
        with pytest.raises(ArchiveError, match="is missing from the archive"):
            load(store, io.BytesIO(archive))
    assert set(store.blobs()) == set()


def test_a_layout_directory_cannot_point_outside(store: Store, tmp_path: Path) -> None:
    files, digests = oci_layout([{REF: "docker.io/library/a:1"}])
    layout = tmp_path / "layout"
    for name, data in files.items():
        (layout / name).parent.mkdir(parents=True, exist_ok=True)
        (layout / name).write_bytes(data)
    outside = tmp_path / "outside"
    outside.mkdir()
    blob = layout / "blobs" / "sha256" / digests[0][7:]
    os.rename(blob, outside / "manifest")
    os.symlink(outside / "manifest", blob)
    with pytest.raises(ArchiveError, match="leads outside the layout"):
        load(store, str(layout))


def test_link_loops_are_an_error(store: Store) -> None:
    archive = tar_of(
        {"manifest.json": b'[{"Config": "a", "RepoTags": ["x:1"], "Layers": []}]'},
        links={"a": "b", "b": "a"},
    )
    with pytest.raises(ArchiveError, match="too many levels of links"):
        load(store, io.BytesIO(archive))


def docker_archive(layer: bytes, diff_id: str, name: str = "layer0/layer.tar") -> bytes:
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
    ).encode()
    manifest = [{"Config": f"{sha(config)[7:]}.json", "RepoTags": ["d:1"], "Layers": [name]}]
    return tar_of(
        {
            f"{sha(config)[7:]}.json": config,
            name: layer,
            "manifest.json": json.dumps(manifest).encode(),
        }
    )


def test_a_docker_archive_with_a_gzip_layer_keeps_it_and_checks_its_diff_id(
    store: Store, tmp_path: Path
) -> None:
    plain = layer_tar("hello", b"world")
    squeezed = gzip.compress(plain, mtime=0)
    ((name, descriptor),) = load(store, io.BytesIO(docker_archive(squeezed, sha(plain))))
    manifest = store.read_json(descriptor["digest"])
    assert manifest["layers"] == [
        {
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": sha(squeezed),
            "size": len(squeezed),
        }
    ]
    # Saved as a docker-archive, the layer comes out uncompressed under its diff_id.
    out = tmp_path / "out.tar"
    save(store, [name], str(out), format="docker-archive")
    with tarfile.open(out) as tar:
        assert tar.extractfile(f"{sha(plain)[7:]}.tar").read() == plain  # type: ignore[union-attr]

    other = Store(store.root + "2")
    with pytest.raises(BlobMismatch, match=r"uncompressed digest is .*the config's diff_id"):
        load(other, io.BytesIO(docker_archive(squeezed, sha(b"something else"))))
    assert set(other.blobs()) == set()


def test_save_refuses_unknown_formats_and_empty_lists(store: Store, tmp_path: Path) -> None:
    from imagetools.errors import ImageError

    with pytest.raises(ImageError, match="unknown archive format"):
        save(store, ["x"], str(tmp_path / "x"), format="zip")
    with pytest.raises(ImageError, match="no image given"):
        save(store, [], str(tmp_path / "x"))


def test_save_to_a_place_it_cannot_write_names_it(store: Store, tmp_path: Path) -> None:
    files, _ = oci_layout([{}])
    path = tmp_path / "one.tar"
    path.write_bytes(tar_of(files))
    ((name, _),) = load(store, str(path))
    target = tmp_path / "missing" / "out.tar"
    with pytest.raises(ArchiveError, match=f"cannot write {target}: no such file or directory"):
        save(store, [name], str(target))
    assert not (tmp_path / "missing").exists()
