"""bench/images: the image half of pyrun side by side with the tools it stands in for.

It builds its own image offline: ~100 MB in 5 layers from host directories (busybox, then
/usr/lib/python3.11, /usr/share/perl, part of /usr/share/locale, and a last layer that is a
whiteout), with umoci; then a fresh docker-registry (distribution 2.8.2) on 127.0.0.1 that
skopeo pushes the image to. Measurements, one function each:

- ``bench_pull``: `pyrun image pull` into an empty store vs `skopeo copy docker://… oci:DIR`
  into an empty layout (skopeo's blob-info cache removed before each of its runs), alternating
  which goes first, medians and the ratio pyrun/skopeo (target <= 1.0).
- ``bench_unpack``: `pyrun image unpack --snapshotter vfs` (the layout's blobs loaded into a
  store first) vs `umoci unpack` of the same layout, each into a fresh bundle under the
  workdir (ext4 under /var/tmp), `sync` before every run, alternating, medians and the ratio
  pyrun/umoci (target <= 0.8). Both trees are compared once (paths and types) first.

Usage: python bench/images.py [--pairs N] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import PYRUN, alternate, compile_pyrun, spread, timed  # noqa: E402
from imagetools.store import Store  # noqa: E402
from tests.e2e.images import build_busybox_image  # noqa: E402
from tests.support.oci_layout import load_layout, read_blob, ref_names  # noqa: E402
from tests.support.registry import clear_skopeo_cache, start_registry  # noqa: E402

TAG = "bench"
REF = f"localhost/{TAG}:latest"
WARM_UP_PAIRS = 1
# Host directories that make up the image: (source, path in the image, size cap in bytes).
LAYER_SOURCES = (
    ("/usr/lib/python3.11", "/usr/lib/python3.11", None),
    ("/usr/share/perl", "/usr/share/perl", None),
    ("/usr/share/locale", "/usr/share/locale", 25 << 20),
)
WHITEOUT = "/usr/lib/python3.11/test"


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {result.stderr.strip()}")


def _copy_capped(source: Path, target: Path, cap: int) -> None:
    """Copy files of ``source`` in sorted order until ``cap`` bytes."""
    total = 0
    for directory, dirs, files in os.walk(source):
        dirs.sort()
        for name in sorted(files):
            path = Path(directory) / name
            if path.is_symlink() or not path.is_file():
                continue
            size = path.stat().st_size
            if total + size > cap:
                return
            destination = target / path.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, destination)
            total += size


def build_image(workdir: Path) -> tuple[Path, dict[str, float]]:
    """The bench image as an OCI layout (tag ``bench``); returns it and its figures."""
    start = time.perf_counter()
    layout = build_busybox_image(workdir).layout
    _run(["umoci", "config", "--image", f"{layout}:latest", "--tag", TAG])
    for source, target, cap in LAYER_SOURCES:
        if not os.path.isdir(source):
            raise SystemExit(f"bench/images needs {source} on the host")
        staged = Path(source)
        if cap is not None:
            staged = workdir / "staged" / Path(source).name
            _copy_capped(Path(source), staged, cap)
        _run(["umoci", "insert", "--image", f"{layout}:{TAG}", str(staged), target])
    _run(["umoci", "insert", "--image", f"{layout}:{TAG}", "--whiteout", WHITEOUT])
    _run(["umoci", "gc", "--layout", str(layout)])
    manifest = json.loads(read_blob(layout, ref_names(layout)[TAG]["digest"]))
    config = json.loads(read_blob(layout, manifest["config"]["digest"]))
    unpacked = 0
    for source, _, cap in LAYER_SOURCES:
        size = sum(
            (Path(d) / f).stat().st_size
            for d, _, fs in os.walk(source)
            for f in fs
            if (Path(d) / f).is_file() and not (Path(d) / f).is_symlink()
        )
        unpacked += min(size, cap) if cap else size
    figures = {
        "layers": len(manifest["layers"]),
        "compressed_mb": sum(d["size"] for d in manifest["layers"]) / 1e6,
        "unpacked_mb": unpacked / 1e6,
        "diff_ids": len(config["rootfs"]["diff_ids"]),
        "build_s": time.perf_counter() - start,
    }
    return layout, figures


def _compare(
    kind: str,
    commands: dict[str, Callable[[Path], list[str]]],
    workdir: Path,
    prefix: str,
    pairs: int,
    goal: float,
    extra: str = "",
    before: Callable[[str], None] | None = None,
) -> dict[str, float]:
    """Each of the two ``commands`` (pyrun first) into a fresh ``workdir/<prefix><name>-<i>``,
    `sync` before every run, alternating; prints the medians and the ratio pyrun/other
    against ``goal``, returns the medians in ms. The targets are removed only at the end:
    removing ~100 MB of files leaves the filesystem work (freeing inodes and blocks) that
    `sync` does not wait for, and it landed on whichever run came next (seconds of system
    time, either tool), which is noise, not either tool's cost."""
    targets: list[Path] = []

    def run(name: str, index: int) -> float:
        target = workdir / f"{prefix}{name}-{index}"
        if before is not None:
            before(name)
        subprocess.run(["sync"], check=True)
        elapsed = timed(commands[name](target))
        targets.append(target)
        return elapsed

    try:
        times = alternate(list(commands), pairs, run, WARM_UP_PAIRS)
    finally:
        for target in targets:
            shutil.rmtree(target, ignore_errors=True)
    medians = {}
    for name, values in times.items():
        medians[name], extremes = spread(values)
        print(f"{kind} {name:6}: median {medians[name]:7.1f} ms  ({extremes}{extra})")
    pyrun, other = commands
    ratio = medians[pyrun] / medians[other]
    print(f"{kind} ratio {pyrun}/{other}: {ratio:.2f} (target <= {goal})")
    return medians


def bench_pull(host: str, workdir: Path, pairs: int) -> dict[str, float]:
    """Pull ``host/bench:latest`` into an empty store (pyrun) and an empty OCI layout (skopeo),
    alternating; prints and returns the medians in ms."""
    ref = f"{host}/bench:latest"
    commands = {
        "pyrun": lambda target: [
            PYRUN, "image", "--root", str(target), "pull", "-q", "--tls-verify=false", ref
        ],
        "skopeo": lambda target: [
            "skopeo", "copy", "--quiet", "--src-tls-verify=false", f"docker://{ref}",
            f"oci:{target}:latest",
        ],
    }  # fmt: skip

    def before(name: str) -> None:
        if name == "skopeo":
            clear_skopeo_cache()

    return _compare("pull", commands, workdir, "", pairs, 1.0, before=before)


def _tree(root: Path) -> list[tuple[str, int]]:
    """(path, file type) of everything below ``root``, sorted."""
    found = []
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(directory) / name
            found.append((str(path.relative_to(root)), path.lstat().st_mode & 0o170000))
    return sorted(found)


def load_image(layout: Path, root: Path) -> Store:
    """A new store at ``root`` with the bench image (tag TAG of ``layout``) named REF."""
    store = Store(str(root))
    load_layout(store, layout, REF, TAG)
    return store


def describe(figures: dict[str, float]) -> str:
    return (
        f"image: {figures['layers']:.0f} layers, {figures['unpacked_mb']:.1f} MB of files,"
        f" {figures['compressed_mb']:.1f} MB compressed"
    )


def bench_unpack(layout: Path, workdir: Path, pairs: int) -> dict[str, float]:
    """`pyrun image unpack` (vfs) vs `umoci unpack` of the bench image into fresh bundles,
    alternating; prints and returns the medians in ms."""
    store = workdir / "unpack-store"
    load_image(layout, store)
    commands = {
        "pyrun": lambda target: [
            PYRUN, "image", "--root", str(store), "unpack", "--snapshotter", "vfs", REF,
            str(target),
        ],
        "umoci": lambda target: ["umoci", "unpack", "--image", f"{layout}:{TAG}", str(target)],
    }  # fmt: skip
    for name, command in commands.items():  # once, untimed: both make the same tree
        _run(command(workdir / f"check-{name}"))
    if _tree(workdir / "check-pyrun" / "rootfs") != _tree(workdir / "check-umoci" / "rootfs"):
        raise SystemExit("pyrun and umoci unpacked different trees")
    entries = len(_tree(workdir / "check-pyrun" / "rootfs"))
    for name in commands:
        shutil.rmtree(workdir / f"check-{name}")
    extra = f", {entries} entries"
    medians = _compare("unpack", commands, workdir, "unpack-", pairs, 0.8, extra=extra)
    shutil.rmtree(store)
    return medians


def _check_pull(host: str, workdir: Path) -> None:
    """pyrun's pull names what skopeo sees in the registry (once, outside the timings)."""
    ref = f"{host}/bench:latest"
    root = workdir / "check"
    out = subprocess.run(
        [PYRUN, "image", "--root", str(root), "pull", "-q", "--tls-verify=false", ref],
        capture_output=True,
        text=True,
    )
    inspected = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", f"docker://{ref}"],
        capture_output=True,
        text=True,
    )
    if out.returncode or inspected.returncode:
        raise SystemExit(f"check failed: {out.stderr}{inspected.stderr}")
    if out.stdout.strip() != json.loads(inspected.stdout)["Digest"]:
        raise SystemExit(f"pyrun pulled {out.stdout.strip()}, skopeo sees {inspected.stdout}")
    shutil.rmtree(root)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=7)
    parser.add_argument("--workdir", default="/var/tmp", help="where the image and pulls go")
    parser.add_argument("--only", choices=("unpack", "pull"), help="run one of the two benches")
    args = parser.parse_args()
    compile_pyrun()
    with tempfile.TemporaryDirectory(prefix="pyrun-bench-images-", dir=args.workdir) as tmp:
        base = Path(tmp)
        layout, figures = build_image(base / "image")
        print(f"{describe(figures)} (built in {figures['build_s']:.1f} s)")
        if args.only != "pull":
            bench_unpack(layout, base, args.pairs)
        if args.only == "unpack":
            return
        with start_registry(base / "registry") as registry:
            registry.copy_in(f"{layout}:{TAG}", "bench:latest")
            _check_pull(registry.host, base)
            bench_pull(registry.host, base, args.pairs)


if __name__ == "__main__":
    main()
