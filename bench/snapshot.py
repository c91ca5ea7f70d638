"""bench/snapshot: a new overlay bundle of an already-unpacked image (issue 4: < 50 ms).

Builds bench/images.py's image (~100 MB of files in 5 layers from host directories, a
whiteout in the last one), loads it into a fresh store under the workdir, makes the layer
snapshots once (the first unpack, timed and printed), then measures, each into a fresh bundle:

- library: ``imagetools.unpack.unpack(store, REF, BUNDLE, snapshotter="overlay")`` in this
  process (resolve, layer snapshots found, overlay mount, config.json written);
- command: ``pyrun image --root R unpack --snapshotter overlay REF BUNDLE``, the whole process.

Each bundle's snapshot is released after its run (not timed). Medians of --runs (>= 20);
for the command also its CPU time (user + sys of the child: what load on the machine does
not inflate, unlike the wall time).

Usage: python bench/snapshot.py [--runs N] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import PYRUN, compile_pyrun, spread  # noqa: E402
from bench.images import REF, build_image, describe, load_image  # noqa: E402

TARGET_MS = 50.0


def _release(store: object, bundle: Path) -> None:
    from imagetools.snapshots.bundles import of_bundle, teardown

    found = of_bundle(bundle)
    if found is not None:
        teardown(*found)


def _report(label: str, values: list[float]) -> float:
    median, extremes = spread(values)
    verdict = "ok" if median < TARGET_MS else "over"
    print(
        f"{label:8}: median {median:6.1f} ms  ({extremes}; target < {TARGET_MS:.0f} ms: {verdict})"
    )
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=25)
    parser.add_argument("--workdir", default="/var/tmp")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/snapshot needs root (overlay mounts)")
    compile_pyrun()
    from imagetools.unpack import unpack

    with tempfile.TemporaryDirectory(prefix="pyrun-bench-snapshot-", dir=args.workdir) as tmp:
        base = Path(tmp)
        layout, figures = build_image(base / "image")
        store = load_image(layout, base / "store")
        print(describe(figures))
        bundles = base / "bundles"
        bundles.mkdir()
        start = time.perf_counter()
        unpack(store, REF, bundles / "first", snapshotter="overlay")
        print(
            f"first overlay unpack (makes the layer snapshots): {time.perf_counter() - start:.2f} s"
        )
        _release(store, bundles / "first")
        library, command, cpu = [], [], []
        try:
            for index in range(args.runs + 2):  # two warm-up runs of each, not counted
                bundle = bundles / f"lib{index}"
                start = time.perf_counter()
                unpack(store, REF, bundle, snapshotter="overlay")
                elapsed = time.perf_counter() - start
                _release(store, bundle)
                if index >= 2:
                    library.append(elapsed)
                bundle = bundles / f"cli{index}"
                argv = [PYRUN, "image", "--root", store.root, "unpack", "--snapshotter"]
                argv += ["overlay", REF, str(bundle)]
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                start = time.perf_counter()
                result = subprocess.run(argv, capture_output=True, text=True)
                elapsed = time.perf_counter() - start
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                used = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
                if result.returncode != 0:
                    raise SystemExit(f"pyrun image unpack failed: {result.stderr}")
                _release(store, bundle)
                if index >= 2:
                    command.append(elapsed)
                    cpu.append(used)
        finally:
            for bundle in bundles.iterdir():
                _release(store, bundle)
        _report("library", library)
        _report("command", command)
        print(f"command CPU (user+sys): median {statistics.median(cpu) * 1000:.1f} ms")
        print(f"load average while measuring: {os.getloadavg()[0]:.2f}")
        print(f"command: {' '.join(argv[:-1])} BUNDLE")


if __name__ == "__main__":
    main()
