"""registryd against distribution (Debian's docker-registry 2.8): skopeo push and pull.

    .venv/bin/python bench/registry.py [--rounds 7] [--parallel 16]

The image: bench/images.py's (~100 MB uncompressed in 5 gzip layers, built with umoci from
host directories, a whiteout in the last layer); when that module is missing, an equivalent
one built here with tarfile. Each round starts both registries fresh on empty storage roots,
then runs every operation on one and right after on the other (who goes first alternates),
skopeo's blob-info cache removed before each: ``skopeo copy`` of the layout to the registry
(push), back into a fresh OCI layout on tmpfs (pull), and ``--parallel`` such pulls at once
(all must succeed). Medians over the rounds; ratios registryd/distribution (time below 1.0
and throughput above 1.0 favour registryd).
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import hashlib
import io
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
REGISTRYD = str(Path(sys.executable).parent / "registryd")
DISTRIBUTION = shutil.which("docker-registry") or "/usr/bin/docker-registry"
SKOPEO = shutil.which("skopeo") or "/usr/bin/skopeo"
BLOB_CACHES = (
    "/var/lib/containers/cache/blob-info-cache-v1.boltdb",
    "/var/lib/containers/cache/blob-info-cache-v1.sqlite",
)
LAYERS = (
    ("/usr/lib/python3.11", "usr/lib/python3.11"),
    ("/usr/share/perl", "usr/share/perl"),
    ("/usr/share/i18n", "usr/share/i18n"),
    ("/usr/share/zoneinfo", "usr/share/zoneinfo"),
)
EXCLUDE = ("__pycache__",)
TAG = "bench"


# -- the image ---------------------------------------------------------------------------------


def shared_image(work: Path) -> tuple[Path, int] | None:
    """bench/images.py's image (the same one its pull bench uses), when that module exists."""
    try:
        from bench.images import TAG as shared_tag
        from bench.images import build_image as build_shared
    except ImportError:
        return None
    layout, _figures = build_shared(work / "shared")
    if shared_tag != TAG:
        return None
    index = json.loads((layout / "index.json").read_text())
    (entry,) = [
        d
        for d in index["manifests"]
        if d.get("annotations", {}).get("org.opencontainers.image.ref.name") == TAG
    ]
    blobs = layout / "blobs" / "sha256"
    manifest = json.loads((blobs / entry["digest"].split(":")[1]).read_text())
    size = manifest["config"]["size"] + sum(d["size"] for d in manifest["layers"])
    return layout, size


def build_image(layout: Path) -> int:
    """An OCI layout with tag "bench"; returns the total compressed size of its blobs."""
    blobs = layout / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    layers, diff_ids = [], []
    for index, (source, target) in enumerate(LAYERS):
        layers.append(_layer(blobs, lambda tar, s=source, t=target: _add_tree(tar, s, t)))
        diff_ids.append(layers[-1].pop("diff_id"))
        print(f"  layer {index + 1}: {target} ({layers[-1]['size'] / 1e6:.1f} MB gzip)")
    layers.append(_layer(blobs, _last_layer))
    diff_ids.append(layers[-1].pop("diff_id"))
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    config_desc = _blob(
        blobs, json.dumps(config).encode(), "application/vnd.oci.image.config.v1+json"
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_desc,
        "layers": layers,
    }
    manifest_desc = _blob(
        blobs, json.dumps(manifest).encode(), "application/vnd.oci.image.manifest.v1+json"
    )
    manifest_desc["annotations"] = {"org.opencontainers.image.ref.name": TAG}
    index = {"schemaVersion": 2, "manifests": [manifest_desc]}
    (layout / "index.json").write_text(json.dumps(index))
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return sum(int(layer["size"]) for layer in layers) + int(config_desc["size"])


def _layer(blobs: Path, fill: object) -> dict[str, object]:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        fill(tar)  # type: ignore[operator]
    data = raw.getvalue()
    compressed = gzip.compress(data, compresslevel=6, mtime=0)
    descriptor = _blob(blobs, compressed, "application/vnd.oci.image.layer.v1.tar+gzip")
    descriptor["diff_id"] = "sha256:" + hashlib.sha256(data).hexdigest()
    return descriptor


def _blob(blobs: Path, data: bytes, media_type: str) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    (blobs / digest).write_bytes(data)
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


def _add_tree(tar: tarfile.TarFile, source: str, target: str) -> None:
    def exclude(info: tarfile.TarInfo) -> tarfile.TarInfo | None:
        if any(part in EXCLUDE for part in info.name.split("/")):
            return None
        info.uid = info.gid = 0
        info.uname = info.gname = "root"
        return info

    tar.add(source, arcname=target, filter=exclude)


def _last_layer(tar: tarfile.TarFile) -> None:
    # A whiteout: removes one zoneinfo file of the layer below.
    whiteout = tarfile.TarInfo("usr/share/zoneinfo/.wh.UTC")
    tar.addfile(whiteout, io.BytesIO(b""))
    payload = os.urandom(2 * 1024 * 1024)  # incompressible, like a binary
    info = tarfile.TarInfo("opt/bench/blob.bin")
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


# -- registries --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def registry(kind: str, work: Path) -> Iterator[str]:
    """A fresh registry on an empty storage root; yields host:port."""
    root = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=work))
    port = free_port()
    if kind == "registryd":
        config = root / "registryd.yaml"
        config.write_text("log:\n  access: false\n  level: warning\n")
        argv = [REGISTRYD, "serve", "--listen", f"127.0.0.1:{port}", "--root", str(root / "s")]
        argv += ["--config", str(config)]
    else:
        config = root / "config.yml"
        config.write_text(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"
            f"storage:\n  filesystem:\n    rootdirectory: {root / 's'}\n"
            "  delete:\n    enabled: true\n"
            f"http:\n  addr: 127.0.0.1:{port}\n"
        )
        argv = [DISTRIBUTION, "serve", str(config)]
    with open(root / "log", "wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=log)
    try:
        _wait_ready(port, process)
        yield f"127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(root, ignore_errors=True)


def _wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"registry exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("registry did not start")


# -- operations --------------------------------------------------------------------------------


def clear_cache() -> None:
    for path in BLOB_CACHES:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def skopeo(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [SKOPEO, "--insecure-policy", "copy", "--quiet", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def finish(process: subprocess.Popen[bytes]) -> None:
    _out, err = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"skopeo failed: {err.decode()}")


def push(layout: Path, address: str) -> float:
    clear_cache()
    start = time.perf_counter()
    finish(skopeo("--dest-tls-verify=false", f"oci:{layout}:{TAG}", f"docker://{address}/bench:1"))
    return time.perf_counter() - start


def pull(address: str, target: Path) -> float:
    clear_cache()
    start = time.perf_counter()
    finish(skopeo("--src-tls-verify=false", f"docker://{address}/bench:1", f"oci:{target}:bench"))
    elapsed = time.perf_counter() - start
    shutil.rmtree(target)
    return elapsed


def parallel_pull(address: str, scratch: Path, count: int) -> float:
    clear_cache()
    targets = [scratch / f"p{i}" for i in range(count)]
    start = time.perf_counter()
    processes = [
        skopeo("--src-tls-verify=false", f"docker://{address}/bench:1", f"oci:{t}:bench")
        for t in targets
    ]
    for process in processes:
        finish(process)
    elapsed = time.perf_counter() - start
    for target in targets:
        shutil.rmtree(target)
    return elapsed


# -- main --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--parallel", type=int, default=16)
    args = parser.parse_args()
    for tool in (REGISTRYD, DISTRIBUTION, SKOPEO):
        if not os.access(tool, os.X_OK):
            raise SystemExit(f"{tool} is missing: run `make setup`")
    work = Path(tempfile.mkdtemp(prefix="bench-registry-", dir="/var/tmp"))
    # Pull targets on tmpfs: the clients' own disk writes should not dominate the figures.
    scratch = Path(tempfile.mkdtemp(prefix="bench-registry-", dir="/dev/shm"))
    try:
        print("building the image ...")
        shared = shared_image(work)
        if shared is not None:
            layout, size = shared
            print("  bench/images.py's image")
        else:
            layout = work / "layout"
            size = build_image(layout)
        print(f"  {size / 1e6:.1f} MB compressed")
        results = run_rounds(layout, work, scratch, args.rounds, args.parallel)
        summary(results, size, args.parallel)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(scratch, ignore_errors=True)


def run_rounds(
    layout: Path, work: Path, scratch: Path, rounds: int, parallel: int
) -> dict[str, dict[str, list[float]]]:
    """Each round: both registries fresh and empty, then each operation on one and right
    after on the other (who goes first alternates), so load from elsewhere hits both alike."""
    kinds = ["registryd", "distribution"]
    results: dict[str, dict[str, list[float]]] = {
        kind: {"push": [], "pull": [], "parallel": []} for kind in kinds
    }
    for index in range(rounds):
        order = kinds if index % 2 == 0 else kinds[::-1]
        with contextlib.ExitStack() as stack:
            address = {kind: stack.enter_context(registry(kind, work)) for kind in order}
            for kind in order:
                results[kind]["push"].append(push(layout, address[kind]))
            for kind in order:
                results[kind]["pull"].append(pull(address[kind], scratch / "pull"))
            for kind in order:
                results[kind]["parallel"].append(parallel_pull(address[kind], scratch, parallel))
        for kind in order:
            times = results[kind]
            print(
                f"  round {index + 1} {kind:12} push {times['push'][-1]:.3f} s"
                f"  pull {times['pull'][-1]:.3f} s"
                f"  {parallel} pulls {times['parallel'][-1]:.3f} s"
            )
    return results


def summary(results: dict[str, dict[str, list[float]]], size: int, parallel: int) -> None:
    mine, theirs = results["registryd"], results["distribution"]
    print()
    print(
        f"{'median of ' + str(len(mine['push'])) + ' rounds':28} {'registryd':>10}"
        f" {'distribution':>13} {'ratio':>7}"
    )
    for key, label in (("push", "skopeo push (s)"), ("pull", "skopeo pull (s)")):
        a, b = statistics.median(mine[key]), statistics.median(theirs[key])
        print(f"{label:28} {a:10.3f} {b:13.3f} {a / b:7.2f}")
    a, b = statistics.median(mine["parallel"]), statistics.median(theirs["parallel"])
    print(f"{str(parallel) + ' parallel pulls (s)':28} {a:10.3f} {b:13.3f} {a / b:7.2f}")
    mb = size * parallel / 1e6
    ta, tb = mb / a, mb / b
    print(f"{'  aggregate MB/s':28} {ta:10.1f} {tb:13.1f} {ta / tb:7.2f}  (higher is better)")
    print(
        "ratio = registryd / distribution: time below 1.0 and throughput above 1.0 favour registryd"
    )


if __name__ == "__main__":
    main()
