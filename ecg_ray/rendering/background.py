"""Writes a render hands off so that a slow store never holds it up: on threads of their own,
waited for (bounded) when the job ends (resume.py keeps segments for a restart, segcache.py for
later jobs)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class BackgroundWrites:
    def __init__(self, name: str, workers: int = 2) -> None:
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._pending: list[Future[Any]] = []
        self._lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        with self._lock:
            self._pending.append(self.pool.submit(fn, *args))

    def drain(self, timeout: float) -> None:
        """Wait up to ``timeout`` for each write handed off so far (each logs its own failure;
        one that times out is left to its thread)."""
        with self._lock:
            pending, self._pending = self._pending, []
        for f in pending:
            try:
                f.result(timeout=timeout)
            except Exception:  # noqa: BLE001 - the write logged it
                pass

    def stop(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
