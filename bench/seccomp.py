"""bench/seccomp: the cost of linux.seccomp with Docker's default profile.

1. compile: median time of ``compile_filter`` on the profile ``pyrun spec`` writes (libseccomp
   through ctypes, export, ENOSYS stub), in this process after a warm-up;
2. run: ``pyrun run`` vs ``runc run`` of busybox /bin/true with that profile, and the same
   bundle without it, alternating the two runtimes (pairs, so drift and noise hit both alike);
   prints each median, the ratio pyrun/runc and what the profile adds to each.

Usage: python bench/seccomp.py [--pairs N] [--compiles N] [--pyrun PATH] [--runc PATH]
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
sys.path.insert(0, str(REPO))

from bench.common import race  # noqa: E402


def compile_times(count: int) -> tuple[float, int]:
    from runtime.lifecycle.specgen import default_seccomp
    from runtime.linux.seccomp import compile_filter

    profile = default_seccomp()
    compiled = compile_filter(profile)  # warm-up: opens libseccomp
    times = []
    for _ in range(count):
        start = time.perf_counter()
        compile_filter(profile)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000, len(compiled)


def make_bundle(base: Path, name: str, seccomp: bool) -> Path:
    bundle = base / name
    bundle.mkdir()
    subprocess.run(
        [str(REPO / ".venv" / "bin" / "pyrun"), "spec", "--bundle", str(bundle)], check=True
    )
    config = json.loads((bundle / "config.json").read_text())
    config["root"]["path"] = str(base / "rootfs")
    config["process"]["args"] = ["/bin/true"]
    if not seccomp:
        del config["linux"]["seccomp"]
    (bundle / "config.json").write_text(json.dumps(config, indent=2))
    return bundle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=30)
    parser.add_argument("--compiles", type=int, default=50)
    parser.add_argument("--pyrun", default=str(REPO / ".venv" / "bin" / "pyrun"))
    parser.add_argument("--runc", default=shutil.which("runc") or "/usr/sbin/runc")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("bench/seccomp needs root (it runs containers)")
    median, instructions = compile_times(args.compiles)
    print(
        f"compile Docker's default profile ({os.uname().machine}): median {median:.2f} ms,"
        f" {instructions} BPF instructions (n={args.compiles})"
    )
    binaries = {"pyrun": args.pyrun, "runc": args.runc}
    medians: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory(prefix="pyrun-bench-") as tmp:
        base = Path(tmp)
        subprocess.run([str(REPO / "bundles" / "build-rootfs"), str(base / "rootfs")], check=True)
        for variant, seccomp in (("seccomp", True), ("none", False)):
            bundle = make_bundle(base, variant, seccomp)
            roots = {name: base / f"{name}-state-{variant}" for name in binaries}
            label = ", Docker's profile" if seccomp else ", no seccomp      "
            for name, median in race(binaries, bundle, roots, args.pairs, label).items():
                medians[(name, variant)] = median
            ratio = medians[("pyrun", variant)] / medians[("runc", variant)]
            print(f"ratio pyrun/runc ({variant}): {ratio:.2f}")
    for name in binaries:
        added = medians[(name, "seccomp")] - medians[(name, "none")]
        print(f"the profile adds to {name} run: {added:+.1f} ms")


if __name__ == "__main__":
    main()
