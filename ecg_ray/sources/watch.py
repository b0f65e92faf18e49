"""A watch over one download (or upload): it ends the transfer that must stop (cancelled, past its
deadline, or slower than its floor) from outside, since the read that waits cannot see the
whole: a server that drips a byte at a time keeps every read short and the download alive
forever (measured: a byte every 2 s held a job 'Reading the video' past 100 s)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from ecg_ray.config import Settings
from ecg_ray.errors import Cancelled, RenderError


class TransferWatch:
    """Looks every ``tick`` seconds; when the transfer must stop it calls ``abort`` (which wakes
    or ends the read that waits) and remembers why (``reason``); the reader counts what moves
    in ``got`` and raises ``error()``. Limits, by default a download's: ECG_FETCH_DEADLINE_S for
    the whole, and ECG_FETCH_MIN_BYTES_PER_S averaged over each ECG_FETCH_TIMEOUT_S; an upload
    of the result has ECG_STORE_DEADLINE_S and ECG_STORE_MIN_BYTES_PER_S (``upload=True``)."""

    def __init__(self, abort: Callable[[], None], settings: Settings, cancelled: Callable[[], bool],
                 tick: float = 0.2, upload: bool = False) -> None:
        self.abort, self.cancelled, self.tick = abort, cancelled, tick
        self.window_s = settings.fetch_timeout_s
        if upload:
            self.deadline_s, self.min_rate = settings.store_deadline_s, settings.store_min_bytes_per_s
            self.what, self.names = "upload", ("ECG_STORE_DEADLINE_S", "ECG_STORE_MIN_BYTES_PER_S")
        else:
            self.deadline_s, self.min_rate = settings.fetch_deadline_s, settings.fetch_min_bytes_per_s
            self.what, self.names = "download", ("ECG_FETCH_DEADLINE_S", "ECG_FETCH_MIN_BYTES_PER_S")
        self.got = 0            # bytes so far (counted by the reader)
        self.reason = ""        # why it was stopped: cancelled | deadline | slow
        self.stopped = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ecg-download-watch", daemon=True)

    def __enter__(self) -> TransferWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=2)

    def _run(self) -> None:
        t0 = time.monotonic()
        mark_t, mark_got = t0, 0
        while not self._done.wait(self.tick):
            now = time.monotonic()
            if self.cancelled():
                self.reason = "cancelled"
            elif now - t0 > self.deadline_s:
                self.reason = "deadline"
            elif now - mark_t >= self.window_s:
                if (self.got - mark_got) < self.min_rate * (now - mark_t):
                    self.reason = "slow"
                mark_t, mark_got = now, self.got
            if self.reason:
                self.stopped.set()
                self.abort()
                return

    def error(self, shown: str) -> RenderError | None:
        """The transfer's error if the watch stopped it."""
        code = "storage_failed" if self.what == "upload" else "fetch_failed"
        if self.reason == "cancelled":
            return Cancelled("job cancelled while its video was downloading" if self.what == "download"
                             else "job cancelled while its result was stored")
        if self.reason == "deadline":
            return RenderError(code, f"{self.what} of {shown!r} took longer than {self.deadline_s:g} s "
                                     f"({self.names[0]})")
        if self.reason == "slow":
            return RenderError(code, f"{self.what} of {shown!r} was slower than {self.min_rate} bytes/s over "
                                     f"{self.window_s:g} s ({self.names[1]}, ECG_FETCH_TIMEOUT_S): "
                                     f"{self.got} bytes in all")
        return None
