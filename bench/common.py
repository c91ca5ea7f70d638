"""What the benchmarks share: timing one command, alternating two contenders (racing two
runtimes on one bundle is one such race), the medians they print, and pyrun's modules
compiled before anything is timed."""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYRUN = str(REPO / ".venv" / "bin" / "pyrun")
WARM_UP_PAIRS = 2  # run, not counted: the first runs fill caches


def compile_pyrun() -> None:
    """What a wheel install (or `make compile`) does: PYTHONDONTWRITEBYTECODE may be set here,
    and pyrun would otherwise compile its modules again on every start."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", "runtime", "imagetools"], cwd=REPO)


def timed(argv: list[str], cwd: Path | None = None) -> float:
    """Wall time of one command in seconds; a failure stops the benchmark with its stderr."""
    start = time.perf_counter()
    result = subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{argv[0]} failed: {result.stderr.decode()}")
    return elapsed


def alternate(
    names: Sequence[str],
    pairs: int,
    measure: Callable[[str, int], float],
    warm_up: int = WARM_UP_PAIRS,
) -> dict[str, list[float]]:
    """``measure(name, index)`` (seconds) of each of ``names`` in ``warm_up`` rounds, not
    counted, then ``pairs`` counted ones, alternating which goes first in each round (so drift
    and noise hit all alike); the counted times by name."""
    times: dict[str, list[float]] = {name: [] for name in names}
    for index in range(pairs + warm_up):
        order = list(names) if index % 2 == 0 else list(reversed(names))
        for name in order:
            elapsed = measure(name, index)
            if index >= warm_up:
                times[name].append(elapsed)
    return times


def spread(values: list[float]) -> tuple[float, str]:
    """The median of ``values`` (seconds) in ms, and "min A, max B, n=N" (ms) to print by it."""
    ordered = sorted(v * 1000 for v in values)
    extremes = f"min {ordered[0]:.1f}, max {ordered[-1]:.1f}, n={len(values)}"
    return statistics.median(ordered), extremes


def race(
    binaries: dict[str, str], bundle: Path, roots: dict[str, Path], pairs: int, label: str
) -> dict[str, float]:
    """`run` of ``bundle`` by each binary, alternating which goes first in each pair (so drift
    and noise hit both alike); prints and returns each one's median in ms."""

    def run(name: str, index: int) -> float:
        argv = [binaries[name], "--root", str(roots[name]), "run", f"b-{name}-{index}"]
        return timed(argv, bundle)

    medians = {}
    for name, values in alternate(list(binaries), pairs, run).items():
        medians[name], extremes = spread(values)
        print(f"{name:6} run /bin/true{label}: median {medians[name]:6.1f} ms  ({extremes})")
    return medians
