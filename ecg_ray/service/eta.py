"""How long a running job has left, from its own measured rate (``estimated_time_remaining``)."""

from __future__ import annotations

import math


class Eta:
    """Whole seconds left, from the frames rendered since the first ones were reported.

    The clock starts at the first report of frames done, not at the job's start: fetching,
    probing and the page loads before it say nothing about the rate. No estimate (None) until
    the rate has been measured for ``min_s`` seconds: the platform shows the figure to people,
    and a first guess from a fraction of a second swings widely."""

    def __init__(self, min_s: float = 1.0) -> None:
        self.min_s = min_s
        self._t0: float | None = None
        self._f0 = 0

    def update(self, now: float, frames_done: int, frames_total: int) -> int | None:
        if frames_total <= 0 or frames_done <= 0:
            return None
        if self._t0 is None:
            self._t0, self._f0 = now, frames_done
            return None
        elapsed, done = now - self._t0, frames_done - self._f0
        if elapsed < self.min_s or done <= 0:
            return None
        left = max(0, frames_total - frames_done)
        return math.ceil(left * elapsed / done)
