"""Blob transfers in a thread pool, as pull and push run them: ``run_all(task, items, ...)``
calls ``task(item, stop)`` for every item, ``parallel`` at a time.

The first failure sets ``stop`` (every task checks it between requests and gives up, leaving
what it wrote for the next attempt), waits for the others and raises the first real error:
not the ``Interrupted`` of a task stopped because of it. An interrupt of the caller (Ctrl-C)
sets ``stop`` too; the pool is always shut down before this returns or raises.
"""

from __future__ import annotations

import threading
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import TypeVar

    T = TypeVar("T")


def run_all(
    task: Callable[[T, threading.Event], None],
    items: Sequence[T],
    parallel: int,
    thread_name_prefix: str,
) -> None:
    if not items:
        return
    stop = threading.Event()
    workers = max(1, min(parallel, len(items)))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=thread_name_prefix)
    try:
        futures = [pool.submit(task, item, stop) for item in items]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        if any(f.exception() is not None for f in done):
            stop.set()
            wait(futures)
            errors = [f.exception() for f in futures if f.exception() is not None]
            # The first real failure, not the Interrupted of the ones stopped because of it
            # (imagetools.registry.client.Interrupted, by name: no import of the client here).
            errors.sort(key=lambda e: type(e).__name__ == "Interrupted")
            error = errors[0]
            assert error is not None
            raise error
    except BaseException:
        stop.set()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
