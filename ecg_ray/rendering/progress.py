"""What a render reports while it runs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Progress:
    job_id: str
    stage: str          # probing | rendering | joining | done
    frames_done: int
    frames_total: int
    segments: int = 0          # the job's segments (0: not planned yet)
    reused_segments: int = 0   # of them, taken from the segment cache (segcache.py)

    @property
    def percent(self) -> float:
        return 100.0 * self.frames_done / self.frames_total if self.frames_total else 0.0
