"""Finished segments kept outside the render, so that a job interrupted by a restart goes on
from them instead of from its first frame.

The renderer writes the job's plan (what decides the bytes of every segment: the source as
probed, the output format, the encoder and its settings, the segment boundaries) and then each
segment file as it finishes, to a ``SegmentArea`` (the service keeps one per job in its store:
a local directory or an S3 prefix). A run of the same job that finds the same plan there renders
only the segments that are missing and joins the kept ones with them: the joined video is the
one an uninterrupted run makes. A different plan (another source behind the URL, other
settings, a node without the encoder the plan used) clears the area and starts afresh.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any, Protocol

import ray
from pydantic import BaseModel, ValidationError

from ecg_ray.rendering.background import BackgroundWrites
from ecg_ray.rendering.segment import JobSpec

log = logging.getLogger(__name__)

PLAN_NAME = "plan.json"


class SegmentArea(Protocol):
    """Where one job's kept files live. Writes are atomic: a reader sees a whole file or none."""

    def put(self, name: str, data: bytes) -> None: ...

    def get(self, name: str) -> bytes | None: ...

    def names(self) -> list[str]: ...

    def clear(self) -> None: ...


class KeptPlan(BaseModel):
    """What a kept segment was rendered under; equal plans make equal segment files."""

    segments: int
    digest: str       # of the job spec without its job id (source probe, output, encoder, scenario, ...)


def spec_digest(job: JobSpec) -> str:
    """A digest of everything in ``job`` that decides the segments' bytes (not the job's id, nor
    where this run downloaded its source to)."""
    body = json.dumps(job.model_dump(mode="json", exclude={"job_id": True, "probe": {"path"}}), sort_keys=True)
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


def segment_name(index: int, count: int) -> str:
    return f"seg-{index:05d}-of-{count:05d}.mp4"


class SegmentKeeper:
    """The renderer's side of a job's ``SegmentArea``: read the plan and the finished segments
    back, record a new plan, and keep each segment as it finishes (on a thread of its own: a
    slow store never holds up the render)."""

    def __init__(self, area: SegmentArea, job_id: str) -> None:
        self.area = area
        self.job_id = job_id
        self._writes = BackgroundWrites("ecg-keep")
        self._count = 0

    def kept_plan(self) -> KeptPlan | None:
        """The plan a previous run of this job recorded, if any (and readable)."""
        try:
            raw = self.area.get(PLAN_NAME)
            return KeptPlan.model_validate_json(raw) if raw else None
        except (ValidationError, ValueError):
            return None
        except Exception as exc:  # noqa: BLE001 - a store that cannot be read: render from the start
            log.warning("kept segments not readable; rendering from the start",
                        extra={"job_id": self.job_id, "error": str(exc)[:300]})
            return None

    def finished(self, plan: KeptPlan) -> dict[int, bytes]:
        """The kept segment files of ``plan``, by index."""
        out: dict[int, bytes] = {}
        try:
            names = set(self.area.names())
            for index in range(plan.segments):
                name = segment_name(index, plan.segments)
                if name in names:
                    data = self.area.get(name)
                    if data:
                        out[index] = data
        except Exception as exc:  # noqa: BLE001 - what could be read is used; the rest is rendered
            log.warning("kept segments partly readable", extra={"job_id": self.job_id, "error": str(exc)[:300]})
        return out

    def start(self, plan: KeptPlan) -> None:
        """A new plan: what the area held is of no use any more."""
        self._count = plan.segments
        try:
            self.area.clear()
            self.area.put(PLAN_NAME, plan.model_dump_json().encode("utf-8"))
        except Exception as exc:  # noqa: BLE001 - the render goes on; only a restart would lose more
            log.warning("segments will not be kept", extra={"job_id": self.job_id, "error": str(exc)[:300]})

    def resume(self, plan: KeptPlan) -> None:
        """Going on under a kept plan."""
        self._count = plan.segments

    def keep(self, index: int, ref: Any) -> None:
        """Keep segment ``index`` (an object ref to its file's bytes), in the background."""
        self._writes.submit(self._keep, index, ref)

    def _keep(self, index: int, ref: Any) -> None:
        try:
            self.area.put(segment_name(index, self._count), ray.get(ref, timeout=300))
        except Exception as exc:  # noqa: BLE001 - it is rendered again if the job is interrupted
            log.warning("segment not kept", extra={"job_id": self.job_id, "segment": index,
                                                   "error": str(exc)[:300]})

    def close(self, timeout: float = 60.0) -> None:
        """Wait (bounded) for the segments being kept, then stop."""
        self._writes.drain(timeout)
        self._writes.stop()
