"""Prometheus metrics of the render service, exported through Ray's metrics agent.

Ray's agent on each node serves every process's metrics at ``http://<node>:<metrics-export-port>/metrics``
with a ``ray_`` prefix, and counters get a ``_total`` suffix: ``ecg_frames_rendered`` is scraped as
``ray_ecg_frames_rendered_total``. ``grafana/ecg_ray_dashboard.json`` charts them.

Metric objects are made lazily, once per process, and only in a process connected to Ray (a driver
after ``ray.init``, an actor, a Serve replica): elsewhere every function here does nothing.
Recording never raises: a metrics failure must not fail a render.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

# Seconds one segment takes, from a short clip on a warm actor to a long segment on a slow node.
SEGMENT_SECONDS_BOUNDARIES = [0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600]


@dataclass(frozen=True)
class Spec:
    name: str
    kind: str                  # counter | gauge | histogram
    description: str
    tags: tuple[str, ...] = ()

    @property
    def exported(self) -> str:
        """The name Prometheus sees (histograms add _bucket, _count and _sum to it)."""
        return "ray_" + self.name + ("_total" if self.kind == "counter" else "")


SPECS: dict[str, Spec] = {s.name: s for s in (
    Spec("ecg_jobs", "gauge", "Jobs by state (queued, processing)", ("state",)),
    Spec("ecg_jobs_finished", "counter", "Jobs that ended, by final state (completed, failed, cancelled)",
         ("state",)),
    Spec("ecg_queue_depth", "gauge", "Jobs waiting for a render slot"),
    Spec("ecg_frames_rendered", "counter", "Output frames rendered by segment actors", ("encoder",)),
    Spec("ecg_frames_captured", "counter", "Caption overlays captured from Chromium"),
    Spec("ecg_frames_reused", "counter", "Frames whose overlay was unchanged, so no capture was needed"),
    Spec("ecg_frames_empty", "counter", "Frames with no caption at all"),
    Spec("ecg_segment_seconds", "histogram", "Wall time of one segment render"),
    Spec("ecg_capture_fps", "gauge", "Overlays captured per second in this actor's last segment"),
    Spec("ecg_actor_memory_mb", "gauge",
         "PSS of this segment actor with its Chromium and Playwright's driver after its last segment (MiB)"),
    Spec("ecg_actors_recycled", "counter",
         "Segment actors replaced by fresh ones because their memory passed ECG_ACTOR_RECYCLE_MB"),
    Spec("ecg_render_fps", "gauge", "Frames per second of the last whole job, by encoder", ("encoder",)),
    Spec("ecg_jobs_by_encoder", "counter", "Rendered jobs, by encoder", ("encoder",)),
    Spec("ecg_callback_failures", "counter", "Backend callbacks that could not be delivered", ("event",)),
    Spec("ecg_bytes_uploaded", "counter", "Bytes of results stored, by store (s3, local)", ("store",)),
)}

_lock = threading.Lock()
_metrics: dict[str, Any] | None = None


def _build() -> dict[str, Any]:
    from ray.util.metrics import Counter, Gauge, Histogram

    made: dict[str, Any] = {}
    for s in SPECS.values():
        if s.kind == "counter":
            made[s.name] = Counter(s.name, s.description, tag_keys=s.tags)
        elif s.kind == "gauge":
            made[s.name] = Gauge(s.name, s.description, tag_keys=s.tags)
        else:
            made[s.name] = Histogram(s.name, s.description, boundaries=SEGMENT_SECONDS_BOUNDARIES,
                                     tag_keys=s.tags)
    return made


def _get() -> dict[str, Any] | None:
    global _metrics
    if _metrics is None:
        import ray

        if not ray.is_initialized():
            return None
        with _lock:
            if _metrics is None:
                _metrics = _build()
    return _metrics


def _record(what: str, fn: Callable[[dict[str, Any]], None]) -> None:
    try:
        m = _get()
        if m is not None:
            fn(m)
    except Exception as exc:  # noqa: BLE001 - metrics must never break a render
        log.debug("metric %s not recorded: %s", what, exc)


def _inc(m: dict[str, Any], name: str, value: float, tags: dict[str, str] | None = None) -> None:
    if value > 0:  # Ray refuses increments <= 0; a zero increment changes nothing anyway
        m[name].inc(value, tags=tags)


def job_state(state: str, count: int) -> None:
    """Jobs now in ``state`` (queued | processing)."""
    _record("ecg_jobs", lambda m: m["ecg_jobs"].set(count, tags={"state": str(state)}))


def job_finished(state: str) -> None:
    """One job ended as ``state`` (completed | failed | cancelled)."""
    _record("ecg_jobs_finished", lambda m: _inc(m, "ecg_jobs_finished", 1, {"state": str(state)}))


def queue_depth(n: int) -> None:
    _record("ecg_queue_depth", lambda m: m["ecg_queue_depth"].set(n))


def segment_rendered(frames: int, captured: int, reused: int, empty: int, seconds: float, encoder: str) -> None:
    """One segment done by a segment actor (called in the actor's process)."""
    def rec(m: dict[str, Any]) -> None:
        _inc(m, "ecg_frames_rendered", frames, {"encoder": str(encoder)})
        _inc(m, "ecg_frames_captured", captured)
        _inc(m, "ecg_frames_reused", reused)
        _inc(m, "ecg_frames_empty", empty)
        m["ecg_segment_seconds"].observe(seconds)
        if seconds > 0:
            m["ecg_capture_fps"].set(captured / seconds)

    _record("segment", rec)


def job_rendered(frames: int, seconds: float, encoder: str) -> None:
    """One whole job rendered (before its result is stored)."""
    def rec(m: dict[str, Any]) -> None:
        if seconds > 0:
            m["ecg_render_fps"].set(frames / seconds, tags={"encoder": str(encoder)})
        _inc(m, "ecg_jobs_by_encoder", 1, {"encoder": str(encoder)})

    _record("job", rec)


def actor_memory(mb: int) -> None:
    _record("ecg_actor_memory_mb", lambda m: m["ecg_actor_memory_mb"].set(mb))


def actor_recycled() -> None:
    _record("ecg_actors_recycled", lambda m: _inc(m, "ecg_actors_recycled", 1))


def callback_failed(event: str) -> None:
    _record("ecg_callback_failures", lambda m: _inc(m, "ecg_callback_failures", 1, {"event": str(event)}))


def bytes_uploaded(n: int, store: str) -> None:
    _record("ecg_bytes_uploaded", lambda m: _inc(m, "ecg_bytes_uploaded", n, {"store": str(store)}))
