"""bench/lifecycle: `pyrun run` vs `runc run` on the same busybox /bin/true bundle.

Alternates the two (pairs, so drift and noise hit both alike), prints each one's median wall
time and the ratio pyrun/runc. Usage: python bench/lifecycle.py [--pairs N] [--pyrun PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def make_bundle(base: Path) -> Path:
    bundle = base / "bundle"
    bundle.mkdir()
    subprocess.run([str(REPO / "bundles" / "build-rootfs"), str(bundle / "rootfs")], check=True)
    subprocess.run(["runc", "spec", "--bundle", str(bundle)], check=True)
    config = json.loads((bundle / "config.json").read_text())
    config["process"]["args"] = ["/bin/true"]
    config["process"]["terminal"] = False
    (bundle / "config.json").write_text(json.dumps(config, indent=2))
    return bundle


def timed(argv: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    result = subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{argv[0]} failed: {result.stderr.decode()}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=30)
    parser.add_argument("--pyrun", default=str(REPO / ".venv" / "bin" / "pyrun"))
    parser.add_argument("--runc", default=shutil.which("runc") or "/usr/sbin/runc")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/lifecycle needs root (it runs containers)")
    with tempfile.TemporaryDirectory(prefix="pyrun-bench-") as tmp:
        base = Path(tmp)
        bundle = make_bundle(base)
        roots = {"pyrun": base / "pyrun-state", "runc": base / "runc-state"}
        times: dict[str, list[float]] = {"pyrun": [], "runc": []}
        binaries = {"pyrun": args.pyrun, "runc": args.runc}
        for index in range(args.pairs + 2):  # two warm-up pairs, not counted
            for name in ("pyrun", "runc") if index % 2 == 0 else ("runc", "pyrun"):
                argv = [binaries[name], "--root", str(roots[name]), "run", f"bench-{name}-{index}"]
                elapsed = timed(argv, bundle)
                if index >= 2:
                    times[name].append(elapsed)
    medians = {name: statistics.median(values) * 1000 for name, values in times.items()}
    for name in ("pyrun", "runc"):
        values = sorted(v * 1000 for v in times[name])
        print(
            f"{name:6} run /bin/true: median {medians[name]:6.1f} ms"
            f"  (min {values[0]:.1f}, max {values[-1]:.1f}, n={len(values)})"
        )
    ratio = medians["pyrun"] / medians["runc"]
    print(f"ratio pyrun/runc: {ratio:.2f}")
    sys.exit(0)


if __name__ == "__main__":
    main()
