"""Transfer progress for pull and push: rich bars on a terminal, plain lines otherwise.

Plain lines (stderr, one per event; what CI logs and the tests read)::

    3f4b2c1d9e8a: resumed at 1048576      (a partial blob from an earlier pull is continued)
    3f4b2c1d9e8a: done
    77aa01bc23de: skipped                 (already in the store: no request made)

Push uses the same shape: ``exists``, ``mounted from <repo>``, ``pushed``. Every method is
called from several download threads at once.
"""

from __future__ import annotations

import sys
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, Protocol, TextIO, TypeVar

    T = TypeVar("T")

    class Progress(Protocol):
        def start(self, key: str, total: int, offset: int = 0) -> None: ...

        def update(self, key: str, completed: int) -> None: ...

        def finish(self, key: str, status: str) -> None: ...

        def close(self) -> None: ...


class NullProgress:
    def start(self, key: str, total: int, offset: int = 0) -> None:
        pass

    def update(self, key: str, completed: int) -> None:
        pass

    def finish(self, key: str, status: str) -> None:
        pass

    def close(self) -> None:
        pass


class LineProgress:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self._lock = threading.Lock()

    def _line(self, text: str) -> None:
        with self._lock:
            self.stream.write(text + "\n")
            self.stream.flush()

    def start(self, key: str, total: int, offset: int = 0) -> None:
        if offset:
            self._line(f"{key}: resumed at {offset}")

    def update(self, key: str, completed: int) -> None:
        pass

    def finish(self, key: str, status: str) -> None:
        self._line(f"{key}: {status}")

    def close(self) -> None:
        pass


class RichProgress:
    """One bar per blob (size, speed), on stderr."""

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TransferSpeedColumn,
        )

        self._progress = Progress(
            TextColumn("{task.fields[key]}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TextColumn("{task.fields[status]}"),
            console=console or Console(stderr=True),
            transient=False,
        )
        self._tasks: dict[str, Any] = {}
        self._totals: dict[str, int] = {}
        self._lock = threading.Lock()
        self._progress.start()

    def _task(self, key: str, total: int | None = None) -> Any:
        with self._lock:
            task = self._tasks.get(key)
            if task is None:
                task = self._progress.add_task(key, total=total, key=key, status="")
                self._tasks[key] = task
            return task

    def start(self, key: str, total: int, offset: int = 0) -> None:
        task = self._task(key, total)
        self._totals[key] = total
        status = f"resumed at {offset}" if offset else ""
        self._progress.update(task, total=total, completed=offset, status=status)

    def update(self, key: str, completed: int) -> None:
        self._progress.update(self._task(key), completed=completed)

    def finish(self, key: str, status: str) -> None:
        task = self._task(key)
        total = self._totals.get(key) or 1
        self._progress.update(task, completed=total, total=total, status=status)

    def close(self) -> None:
        self._progress.stop()


def make_progress(quiet: bool = False) -> Progress:
    """Rich bars if stderr is a terminal, plain lines if not, nothing if ``quiet``."""
    if quiet:
        return NullProgress()
    if sys.stderr.isatty():
        return RichProgress()
    return LineProgress()


def with_progress(quiet: bool, work: Callable[[Progress], T]) -> T:
    """``work(progress)`` with ``make_progress(quiet)``, the bars closed however it ends."""
    progress = make_progress(quiet)
    try:
        return work(progress)
    finally:
        progress.close()
