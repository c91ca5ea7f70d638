"""``pyrun image load|save|ls|inspect|tag|rm|gc`` on real archives (umoci + skopeo, offline).

Images from tests/support/oci_images.py (a 1-layer busybox and a 3-layer image with a
whiteout, labels and an entrypoint) as an OCI layout directory, an oci-archive and
docker-archives written by skopeo. Each test drives the real ``pyrun`` and checks what it
printed, what the store holds, and what skopeo and umoci read back from pyrun's output.
Corrupt archives (a flipped byte in a layer, a truncated tar, a manifest naming a missing
blob, a size or digest that lies, a docker config or diff_id that does not match) must fail
with a clear message and leave the store's blobs exactly as they were, ingest/ empty.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PYRUN
from tests.e2e.images import run
from tests.support.oci_images import Archives, needs_archive_tools

IGNORED = ("Name", "RepoTags", "LayersData")  # skopeo 1.9 for oci:/docker-archive: has none

pytestmark = needs_archive_tools


def pyrun(
    root: Path, *args: str, stdin: bytes | None = None, ok: bool = True
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [PYRUN, "image", "--root", str(root), *args],
        input=stdin.decode("latin-1") if stdin is not None else None,
        capture_output=True,
        text=True,
        encoding="latin-1",
        timeout=60,
    )
    if ok:
        assert result.returncode == 0, (args, result.stdout, result.stderr)
    return result


def pyrun_bytes(root: Path, *args: str, stdin: bytes | None = None) -> bytes:
    result = subprocess.run(
        [PYRUN, "image", "--root", str(root), *args],
        input=stdin,
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def skopeo(*args: str) -> str:
    return run(["skopeo", *args])


def inspect(root: Path, ref: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(pyrun(root, "inspect", ref).stdout)
    return result


def comparable(info: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in info.items() if k not in IGNORED}


def loaded(result: subprocess.CompletedProcess[str]) -> list[str]:
    return [line.removeprefix("Loaded image: ") for line in result.stdout.splitlines()]


def blobs(root: Path) -> set[str]:
    return {f"sha256:{name}" for name in os.listdir(root / "blobs" / "sha256")}


def reachable(root: Path) -> set[str]:
    """What index.json reaches, walked here independently of pyrun's code."""
    seen: set[str] = set()
    pending = json.loads((root / "index.json").read_text())["manifests"]
    while pending:
        descriptor = pending.pop()
        digest = descriptor["digest"]
        path = root / "blobs" / "sha256" / digest.split(":", 1)[1]
        if digest in seen or not path.exists():
            continue
        seen.add(digest)
        if "manifest" in descriptor["mediaType"] or "index" in descriptor["mediaType"]:
            document = json.loads(path.read_bytes())
            pending += document.get("manifests", []) + document.get("layers", [])
            pending += [document["config"]] if "config" in document else []
    return seen


# -- load and names ------------------------------------------------------------------------------
def test_layout_dir_with_a_bare_tag_is_named_after_the_dir(
    archives: Archives, tmp_path: Path
) -> None:
    root = tmp_path / "store"
    result = pyrun(root, "load", "-i", str(archives.layout))
    assert loaded(result) == ["localhost/layout:latest", "localhost/layout:multi"]
    names = pyrun(root, "load", "-i", str(archives.layout), "--name", "example.com/app")
    assert loaded(names) == ["example.com/app:latest", "example.com/app:multi"]
    refused = pyrun(root, "load", "-i", str(archives.layout), "--name", "app:2", ok=False)
    assert refused.returncode == 1
    assert "holds 2 images: --name must be a repository without a tag" in refused.stderr
    single = pyrun(root, "load", "-i", str(archives.multi_oci), "--name", "app:2")
    assert loaded(single) == ["docker.io/library/app:2"]
    assert inspect(root, "app:2")["Digest"] == archives.manifest_digest("multi")
    assert inspect(root, "localhost/layout:multi")["Digest"] == archives.manifest_digest("multi")


def test_oci_archive_loads_as_skopeo_reads_it(archives: Archives, tmp_path: Path) -> None:
    root = tmp_path / "store"
    assert loaded(pyrun(root, "load", "-i", str(archives.multi_oci))) == [
        "localhost/multi-oci:multi"
    ]
    ours = inspect(root, "localhost/multi-oci:multi")
    theirs = json.loads(skopeo("inspect", f"oci-archive:{archives.multi_oci}:multi"))
    assert comparable(ours) == comparable(theirs)
    assert ours["Name"] == "localhost/multi-oci" and ours["RepoTags"] == ["multi"]
    assert [layer["Digest"] for layer in ours["LayersData"]] == theirs["Layers"]
    assert ours["Labels"] == {"org.example.purpose": "tests & <checks>", "version": "1"}
    config = pyrun(root, "inspect", "--config", "localhost/multi-oci:multi").stdout
    assert config == skopeo("inspect", "--config", f"oci-archive:{archives.multi_oci}:multi")
    raw = pyrun_bytes(root, "inspect", "--raw", "localhost/multi-oci:multi")
    assert raw == archives.blob(archives.manifest_digest("multi"))
    # Every blob is stored under its own digest, verified: the store holds the layout's.
    assert (
        blobs(root)
        == reachable(root)
        == {
            archives.manifest_digest("multi"),
            archives.manifest("multi")["config"]["digest"],
            *(layer["digest"] for layer in archives.manifest("multi")["layers"]),
        }
    )


def test_docker_archive_becomes_an_oci_manifest_with_uncompressed_layers(
    archives: Archives, tmp_path: Path
) -> None:
    root = tmp_path / "store"
    first = pyrun(root, "load", "-i", str(archives.multi_docker))
    assert loaded(first) == ["localhost/multi:1"]
    ours = inspect(root, "localhost/multi:1")
    theirs = json.loads(skopeo("inspect", f"docker-archive:{archives.multi_docker}"))
    # skopeo synthesises a schema2 manifest of its own: everything but its digest agrees.
    assert comparable({**ours, "Digest": None}) == comparable({**theirs, "Digest": None})
    assert {layer["MIMEType"] for layer in ours["LayersData"]} == {
        "application/vnd.oci.image.layer.v1.tar"
    }
    raw = json.loads(pyrun_bytes(root, "inspect", "--raw", "localhost/multi:1"))
    config = json.loads(pyrun_bytes(root, "inspect", "--raw", "--config", "localhost/multi:1"))
    # The image id (config digest) is the archive's; layer digests are the diff_ids.
    assert raw["config"]["digest"] == archives.manifest("multi")["config"]["digest"]
    assert [layer["digest"] for layer in raw["layers"]] == config["rootfs"]["diff_ids"]
    assert raw["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    # Loading it again gives the same manifest: nothing new in the store.
    before = blobs(root)
    again = pyrun(tmp_path / "other", "load", "-i", str(archives.multi_docker))
    assert loaded(again) == ["localhost/multi:1"]
    assert inspect(tmp_path / "other", "localhost/multi:1")["Digest"] == ours["Digest"]
    assert blobs(tmp_path / "other") == before


def test_stdin_and_compressed_archives(archives: Archives, tmp_path: Path) -> None:
    root = tmp_path / "store"
    data = archives.multi_oci.read_bytes()
    refused = pyrun(root, "load", stdin=data, ok=False)
    assert refused.returncode == 1
    assert "names an image only by the tag 'multi': give --name" in refused.stderr
    assert loaded(pyrun(root, "load", "--name", "piped", stdin=data)) == [
        "docker.io/library/piped:multi"
    ]
    squeezed = tmp_path / "busybox.tar.gz"
    squeezed.write_bytes(gzip.compress(archives.busybox_docker.read_bytes(), 1))
    assert loaded(pyrun(root, "load", "-i", str(squeezed))) == ["docker.io/library/busybox:1"]
    assert loaded(pyrun(root, "load", stdin=squeezed.read_bytes())) == [
        "docker.io/library/busybox:1"
    ]
    assert os.listdir(root / "ingest") == []  # the spooled copies are gone


# -- ls, tag, rm, gc ------------------------------------------------------------------------------
def test_ls_tag_rm_gc(archives: Archives, tmp_path: Path) -> None:
    root = tmp_path / "store"
    pyrun(root, "load", "-i", str(archives.layout))
    pyrun(root, "load", "-i", str(archives.busybox_docker))
    pyrun(root, "tag", "localhost/layout:multi", "example.com/team/multi:v1")
    table = pyrun(root, "ls").stdout.splitlines()
    assert table[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    rows = {tuple(line.split()[:2]) for line in table[1:]}
    assert rows == {
        ("localhost/layout", "latest"),
        ("localhost/layout", "multi"),
        ("docker.io/library/busybox", "1"),
        ("example.com/team/multi", "v1"),
    }
    listed = json.loads(pyrun(root, "ls", "--format", "json").stdout)
    multi_config = archives.manifest("multi")["config"]["digest"]
    by_name = {row["Name"]: row for row in listed}
    assert by_name["example.com/team/multi:v1"]["ID"] == multi_config
    assert by_name["example.com/team/multi:v1"]["Digest"] == archives.manifest_digest("multi")
    assert by_name["example.com/team/multi:v1"]["Size"] == sum(
        d["size"]
        for d in [archives.manifest("multi")["config"], *archives.manifest("multi")["layers"]]
    )
    ids = pyrun(root, "ls", "-q").stdout.split()
    assert sorted(ids) == sorted({row["ID"][7:19] for row in listed})  # each id once
    digests = pyrun(root, "ls", "--digests").stdout
    assert archives.manifest_digest("multi") in digests

    # rm by id: two names -> refused without -f, in docker's words.
    refused = pyrun(root, "rm", multi_config[7:19], ok=False)
    assert refused.returncode == 1
    assert "unable to delete" in refused.stderr and "must be forced" in refused.stderr
    removed = pyrun(root, "rm", "localhost/layout:multi", "nosuch:image", ok=False)
    assert removed.returncode == 1
    assert removed.stdout == "Untagged: localhost/layout:multi\n"
    assert "image nosuch:image is not in the store" in removed.stderr
    before = blobs(root)
    pyrun(root, "rm", "example.com/team/multi:v1")
    assert blobs(root) == before  # names only: blobs wait for gc
    dry = pyrun(root, "gc", "--dry-run").stdout
    assert blobs(root) == before
    collected = pyrun(root, "gc")
    assert collected.stdout == dry.replace("Would delete", "Deleted")
    assert blobs(root) == reachable(root)
    assert archives.manifest_digest("multi") not in blobs(root)
    pyrun(root, "rm", "--prune", "-f", "busybox:1", "localhost/layout:latest")
    assert blobs(root) == reachable(root) == set()
    assert pyrun(root, "ls", "-q").stdout == ""


# -- save, read back by skopeo and umoci ---------------------------------------------------------
def test_save_oci_archive_and_dir_read_by_skopeo_and_umoci(
    archives: Archives, tmp_path: Path
) -> None:
    root = tmp_path / "store"
    pyrun(root, "load", "-i", str(archives.layout))
    pyrun(root, "load", "-i", str(archives.multi_docker))
    out = tmp_path / "saved.tar"
    pyrun(root, "save", "-o", str(out), "localhost/layout:multi", "localhost/multi:1")
    for name in ("localhost/layout:multi", "localhost/multi:1"):
        theirs = json.loads(skopeo("inspect", f"oci-archive:{out}:{name}"))
        assert comparable(inspect(root, name)) == comparable(theirs)
    assert (
        json.loads(skopeo("inspect", f"oci-archive:{out}:localhost/multi:1"))["Layers"]
        == (json.loads(skopeo("inspect", f"docker-archive:{archives.multi_docker}"))["Layers"])
    )
    with tarfile.open(out) as tar:
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
        assert {m.mtime for m in tar} == {0}
    assert [m["annotations"] for m in index["manifests"]] == [
        {"io.containerd.image.name": n, "org.opencontainers.image.ref.name": n}
        for n in ("localhost/layout:multi", "localhost/multi:1")
    ]
    # Deterministic: the same images give the same bytes; stdout gives them too.
    again = pyrun_bytes(root, "save", "localhost/layout:multi", "localhost/multi:1")
    assert again == out.read_bytes()

    directory = tmp_path / "saved-dir"
    pyrun(root, "save", "--format", "oci-dir", "-o", str(directory), "localhost/layout:multi")
    pyrun(root, "save", "--format", "oci-dir", "-o", str(directory), "localhost/multi:1")
    listing = run(["umoci", "ls", "--layout", str(directory)]).split()
    assert sorted(listing) == ["localhost/layout:multi", "localhost/multi:1"]
    bundle = tmp_path / "bundle"
    run(["umoci", "unpack", "--image", f"{directory}:localhost/multi:1", str(bundle)])
    rootfs = bundle / "rootfs"
    assert (rootfs / "etc" / "motd").read_text() == "built by the imagetools tests\n"
    assert not (rootfs / "bin" / "vi").exists(), "the whiteout layer was applied"
    assert (rootfs / "bin" / "busybox").is_file()

    # And back into a new store: the same digests.
    other = tmp_path / "other"
    assert loaded(pyrun(other, "load", "-i", str(out))) == [
        "localhost/layout:multi",
        "localhost/multi:1",
    ]
    for name in ("localhost/layout:multi", "localhost/multi:1"):
        assert comparable(inspect(other, name)) == comparable(inspect(root, name))


def test_save_docker_archive_gives_back_docker_save_layers(
    archives: Archives, tmp_path: Path
) -> None:
    root = tmp_path / "store"
    pyrun(root, "load", "-i", str(archives.layout))
    pyrun(root, "tag", "localhost/layout:multi", "localhost/multi:2")
    out = tmp_path / "docker.tar"
    pyrun(
        root,
        "save",
        "--format",
        "docker-archive",
        "-o",
        str(out),
        "localhost/layout:multi",
        "localhost/multi:2",
    )
    with tarfile.open(out) as tar:
        ours = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]
    with tarfile.open(archives.multi_docker) as tar:
        theirs = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]
    (entry,) = json.loads(ours.pop("manifest.json"))
    assert entry["RepoTags"] == ["localhost/layout:multi", "localhost/multi:2"]
    # gzip layers in the store come out uncompressed, byte for byte what skopeo writes.
    for member in [entry["Config"], *entry["Layers"]]:
        assert ours[member] == theirs[member], member
    theirs_info = json.loads(skopeo("inspect", f"docker-archive:{out}:localhost/multi:2"))
    skopeo_own = json.loads(skopeo("inspect", f"docker-archive:{archives.multi_docker}"))
    assert comparable(theirs_info) == comparable(skopeo_own)
    # A docker-archive pyrun wrote loads back as the same image.
    other = tmp_path / "other"
    assert loaded(pyrun(other, "load", "-i", str(out))) == [
        "localhost/layout:multi",
        "localhost/multi:2",
    ]
    assert inspect(other, "localhost/multi:2")["Layers"] == skopeo_own["Layers"]


# -- corrupt archives --------------------------------------------------------------------------
def rewrite_tar(source: Path, target: Path, change: Callable[[str, bytes], bytes | None]) -> None:
    """Copy a tar member by member; ``change`` returns new content, or None to drop it."""
    with tarfile.open(source) as old, tarfile.open(target, "w") as new:
        for member in old:
            data = old.extractfile(member).read() if member.isfile() else b""  # type: ignore[union-attr]
            if member.isfile():
                changed = change(member.name, data)
                if changed is None:
                    continue
                member.size = len(changed)
                new.addfile(member, io.BytesIO(changed))
            else:
                new.addfile(member)


def flip(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


def largest_member(path: Path) -> str:
    with tarfile.open(path) as tar:
        return max((m for m in tar if m.isfile()), key=lambda m: m.size).name


def corrupt_oci_layer(archives: Archives, tmp: Path) -> Path:
    layer = largest_member(archives.multi_oci)
    target = tmp / "flipped-oci.tar"
    rewrite_tar(archives.multi_oci, target, lambda n, d: flip(d, 5000) if n == layer else d)
    return target


def corrupt_docker_layer(archives: Archives, tmp: Path) -> Path:
    # Not the busybox layer: the store has that one already (verified), so a load does
    # not read it again.
    with tarfile.open(archives.multi_docker) as tar:
        layer = json.load(tar.extractfile("manifest.json"))[0]["Layers"][1]  # type: ignore[arg-type]
    target = tmp / "flipped-docker.tar"
    rewrite_tar(
        archives.multi_docker, target, lambda n, d: flip(d, len(d) // 2) if n == layer else d
    )
    return target


def truncated(archives: Archives, tmp: Path) -> Path:
    target = tmp / "truncated.tar"
    data = archives.multi_oci.read_bytes()
    target.write_bytes(data[: len(data) * 2 // 3])
    return target


def missing_blob(archives: Archives, tmp: Path) -> Path:
    target = tmp / "missing-layout"
    shutil.copytree(archives.layout, target)
    layer = archives.manifest("multi")["layers"][1]["digest"]
    (target / "blobs" / "sha256" / layer.split(":", 1)[1]).unlink()
    return target


def size_lie(archives: Archives, tmp: Path) -> Path:
    target = tmp / "lying-layout"
    shutil.copytree(archives.layout, target)
    index = json.loads((target / "index.json").read_text())
    for entry in index["manifests"]:
        entry["size"] += 1
    (target / "index.json").write_text(json.dumps(index))
    return target


def corrupt_manifest(archives: Archives, tmp: Path) -> Path:
    target = tmp / "bad-manifest-layout"
    shutil.copytree(archives.layout, target)
    blob = target / "blobs" / "sha256" / archives.manifest_digest("multi").split(":", 1)[1]
    blob.write_bytes(blob.read_bytes().replace(b'"schemaVersion":2', b'"schemaVersion":3'))
    return target


def docker_config_mismatch(archives: Archives, tmp: Path) -> Path:
    target = tmp / "bad-config.tar"

    def change(name: str, data: bytes) -> bytes:
        return data.replace(b'"os":"linux"', b'"os":"Linux"') if name.endswith(".json") else data

    rewrite_tar(archives.multi_docker, target, change)
    return target


def docker_diff_id_mismatch(archives: Archives, tmp: Path) -> Path:
    """A config whose first diff_id is wrong (renamed to its new digest, so the config itself
    is consistent) and that layer under a neutral name, as older ``docker save`` wrote."""
    target = tmp / "bad-diff-id.tar"
    with tarfile.open(archives.multi_docker) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]
    (entry,) = json.loads(files.pop("manifest.json"))
    config = json.loads(files.pop(entry["Config"]))
    config["rootfs"]["diff_ids"][0] = "sha256:" + "0" * 64
    new_config = json.dumps(config).encode()
    config_name = hashlib.sha256(new_config).hexdigest() + ".json"
    files[config_name] = new_config
    files["layer0/layer.tar"] = files.pop(entry["Layers"][0])
    layers = ["layer0/layer.tar", *entry["Layers"][1:]]
    files["manifest.json"] = json.dumps([dict(entry, Config=config_name, Layers=layers)]).encode()
    with tarfile.open(target, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return target


def not_an_archive(archives: Archives, tmp: Path) -> Path:
    target = tmp / "noise.tar"
    target.write_bytes(os.urandom(4096))
    return target


CORRUPTIONS: dict[str, tuple[Callable[[Archives, Path], Path], str]] = {
    "flipped byte in an OCI layer": (corrupt_oci_layer, "is corrupt .*the content's digest is"),
    "flipped byte in a docker layer": (corrupt_docker_layer, "is corrupt .*digest is"),
    "truncated tar": (truncated, "the archive is truncated"),
    "manifest names a missing blob": (missing_blob, "which the archive does not hold"),
    "descriptor size lies": (size_lie, r"is \d+ bytes, index.json manifests\[0\] says"),
    "manifest digest mismatch": (corrupt_manifest, "is corrupt: its digest is"),
    "docker config digest mismatch": (docker_config_mismatch, "is corrupt: its digest is"),
    "docker diff_id mismatch": (docker_diff_id_mismatch, "the content's digest is"),
    "not an archive": (not_an_archive, "not a readable tar archive"),
}


@pytest.mark.parametrize("case", list(CORRUPTIONS))
def test_a_corrupt_archive_leaves_the_store_as_it_was(
    archives: Archives, tmp_path: Path, case: str
) -> None:
    make, words = CORRUPTIONS[case]
    root = tmp_path / "store"
    pyrun(root, "load", "-i", str(archives.busybox_docker))
    before_blobs, before_index = blobs(root), (root / "index.json").read_bytes()
    source = make(archives, tmp_path)
    result = pyrun(root, "load", "-i", str(source), "--name", "x", ok=False)
    assert result.returncode == 1, result
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"pyrun: {source}"), line
    assert re.search(words, line), line
    assert blobs(root) == before_blobs
    assert (root / "index.json").read_bytes() == before_index
    assert os.listdir(root / "ingest") == []


# -- the store on disk goes bad -------------------------------------------------------------------
def test_a_truncated_layer_in_the_store_is_reported(archives: Archives, tmp_path: Path) -> None:
    root = tmp_path / "store"
    pyrun(root, "load", "-i", str(archives.multi_oci), "--name", "m")
    layer = archives.manifest("multi")["layers"][0]["digest"]
    path = root / "blobs" / "sha256" / layer.split(":", 1)[1]
    os.chmod(path, 0o644)
    os.truncate(path, 1000)
    for args in (["inspect", "m:multi"], ["save", "-o", str(tmp_path / "x.tar"), "m:multi"]):
        result = pyrun(root, *args, ok=False)
        assert result.returncode == 1
        assert f"blob {layer} in the store is corrupt ({path}: 1000 bytes on disk" in result.stderr
    assert not (tmp_path / "x.tar").exists()
    assert [p for p in os.listdir(tmp_path) if p.startswith(".x.tar")] == []
    # Loading the image again repairs the blob.
    pyrun(root, "load", "-i", str(archives.multi_oci), "--name", "m")
    assert inspect(root, "m:multi")["Layers"][0] == layer


def test_a_corrupt_index_json_is_named(tmp_path: Path) -> None:
    root = tmp_path / "store"
    pyrun(root, "ls")
    (root / "index.json").write_text('{"manifests": [')
    result = pyrun(root, "ls", ok=False)
    assert result.returncode == 1
    assert f"image store index {root}/index.json is corrupt" in result.stderr
    assert "line 1 column" in result.stderr


# -- concurrent pyrun processes -------------------------------------------------------------------
def test_concurrent_loads_and_gc(archives: Archives, tmp_path: Path) -> None:
    """Two loads of the same images and a gc loop at once: every load succeeds and the
    store ends with complete images and nothing else."""
    root = tmp_path / "store"
    pyrun(root, "ls")
    loads = [
        subprocess.Popen(
            [PYRUN, "image", "--root", str(root), "load", "-i", str(source)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for source in (archives.multi_docker, archives.multi_docker, archives.layout)
    ]
    gcs = 0
    while any(p.poll() is None for p in loads) or gcs < 2:
        pyrun(root, "gc")
        gcs += 1
    for proc in loads:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    names = {row["Name"] for row in json.loads(pyrun(root, "ls", "--format", "json").stdout)}
    assert names == {"localhost/multi:1", "localhost/layout:latest", "localhost/layout:multi"}
    pyrun(root, "gc")
    assert blobs(root) == reachable(root)
    for digest in blobs(root):
        data = (root / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()
        assert "sha256:" + hashlib.sha256(data).hexdigest() == digest
    assert os.listdir(root / "ingest") == []
