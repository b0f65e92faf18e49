"""What a render reports while it runs."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Progress:
    job_id: str
    stage: str          # probing | rendering | joining | done
    frames_done: int
    frames_total: int

    @property
    def percent(self) -> float:
        return 100.0 * self.frames_done / self.frames_total if self.frames_total else 0.0
