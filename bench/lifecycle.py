"""bench/lifecycle: `pyrun run` vs `runc run` on the same busybox /bin/true bundle.

Alternates the two (pairs, so drift and noise hit both alike), prints each one's median wall
time and the ratio pyrun/runc. Usage: python bench/lifecycle.py [--pairs N] [--pyrun PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.common import race  # noqa: E402


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
        binaries = {"pyrun": args.pyrun, "runc": args.runc}
        medians = race(binaries, bundle, roots, args.pairs, "")
    print(f"ratio pyrun/runc: {medians['pyrun'] / medians['runc']:.2f}")
    sys.exit(0)


if __name__ == "__main__":
    main()
