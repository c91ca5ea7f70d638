"""What the benchmarks share: timing one command and racing two runtimes on one bundle."""

from __future__ import annotations

import statistics
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WARM_UP_PAIRS = 2  # run, not counted: the first runs fill caches


def timed(argv: list[str], cwd: Path) -> float:
    """Wall time of one command in seconds; a failure stops the benchmark with its stderr."""
    start = time.perf_counter()
    result = subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{argv[0]} failed: {result.stderr.decode()}")
    return elapsed


def race(
    binaries: dict[str, str], bundle: Path, roots: dict[str, Path], pairs: int, label: str
) -> dict[str, float]:
    """`run` of ``bundle`` by each binary, alternating which goes first in each pair (so drift
    and noise hit both alike); prints and returns each one's median in ms."""
    times: dict[str, list[float]] = {name: [] for name in binaries}
    names = list(binaries)
    for index in range(pairs + WARM_UP_PAIRS):
        order = names if index % 2 == 0 else list(reversed(names))
        for name in order:
            argv = [binaries[name], "--root", str(roots[name]), "run", f"b-{name}-{index}"]
            elapsed = timed(argv, bundle)
            if index >= WARM_UP_PAIRS:
                times[name].append(elapsed)
    medians = {}
    for name, values in times.items():
        ordered = sorted(v * 1000 for v in values)
        medians[name] = statistics.median(ordered)
        print(
            f"{name:6} run /bin/true{label}: median {medians[name]:6.1f} ms"
            f"  (min {ordered[0]:.1f}, max {ordered[-1]:.1f}, n={len(values)})"
        )
    return medians
