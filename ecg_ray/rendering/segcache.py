"""Segments of earlier jobs, reused where a new job would render the same frames.

A platform's users render, watch, fix one caption and render again. Segment boundaries are a
pure function of the video and the settings (plan.segment_count), so the edited job is cut at
the same frames as the first, and a segment whose frames no edited caption can reach would come
out byte for byte as before. Each segment gets a key: a digest of everything that decides its
bytes (``segment_keys``). A cache (``SegmentCache``: a local directory or an S3 prefix, service/
segcache.py) keeps finished segment files under their keys; the renderer takes what it finds
and renders the rest.

What the key holds, and why:
- the source by content (SHA-256 of the file, not its URL), the job spec as it reaches the
  actors (probe, output format, encoder and its settings, capture and decode settings) without
  the job's id and download path;
- the scenario without its cues (tracks, styles, define, stage: an edit there changes every
  segment), and the define assets' bytes;
- the cues whose time range (display time with the plugin windows that outlast it, normalize.py)
  comes within one frame of the segment, in scenario order. A segment's pre-roll starts at a cue
  that covers its first frame, so that cue is among them; a cue that never reaches the segment's
  frames cannot change them (frames outside every cue's range are not even shown to the browser);
- what draws: this package's version, a digest of the caption page's files (bootstrap, plugins,
  MotionText and GSAP), Playwright's version (which pins Chromium) and FFmpeg's.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from importlib import metadata
from typing import Any, Protocol

import ray

from ecg_ray.capture.browser import WEB_DIR, vendor_dir
from ecg_ray.config import Settings
from ecg_ray.media import ffmpeg
from ecg_ray.rendering.background import BackgroundWrites
from ecg_ray.rendering.models import SegmentSpec
from ecg_ray.rendering.segment import JobSpec
from ecg_ray.version import __version__

log = logging.getLogger(__name__)


class SegmentCache(Protocol):
    """Segment files by key. ``get`` answers only bytes it verified (a damaged entry is a miss,
    and removed); ``put`` is atomic; ``evict`` applies the size limit and the lifetime."""

    def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, data: bytes) -> None: ...

    def evict(self) -> None: ...


def source_digest(path: str) -> str:
    """SHA-256 of the source file: the same video fetched from another URL is the same input."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


@functools.lru_cache(maxsize=4)
def drawing_digest(web_vendor_dir: str) -> str:
    """What draws the captions and writes the files, as one digest (once a process)."""
    h = hashlib.sha256()
    h.update(f"ecg_ray {__version__}\n".encode())
    try:
        h.update(f"playwright {metadata.version('playwright')}\n".encode())
    except metadata.PackageNotFoundError:
        h.update(b"playwright -\n")
    h.update(f"ffmpeg {'.'.join(map(str, ffmpeg.version()))}\n".encode())
    vend = vendor_dir(Settings(web_vendor_dir=web_vendor_dir))
    for root in (WEB_DIR, vend):
        for p in sorted(root.rglob("*")):
            if p.is_file() and (root == vend or vend not in p.parents):
                h.update(p.name.encode("utf-8") + b"\0")
                h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def segment_keys(job: JobSpec, segments: list[SegmentSpec], source: str, web_vendor_dir: str = "") -> list[str]:
    """The cache key of each segment of ``job`` (``source``: ``source_digest`` of its input)."""
    sc = job.scenario
    spec = job.model_dump(mode="json", exclude={"job_id": True, "probe": {"path"}, "scenario": True})
    rest = {k: v for k, v in sc.scenario.items() if k != "cues"}
    assets = sorted((path, a.content_type, hashlib.sha256(a.body).hexdigest()) for path, a in sc.assets.items())
    base = hashlib.sha256(json.dumps(
        [source, drawing_digest(web_vendor_dir), spec, rest, assets], sort_keys=True, default=str,
    ).encode("utf-8")).hexdigest()
    cues = sc.scenario.get("cues") or []
    frame = job.out.frame_time(1)
    keys = []
    for seg in segments:
        # within a frame of [first frame, last frame]: a cue end pulled in by END_EPSILON or a
        # seek a hair after the frame time never decides a reuse
        t0, t1 = job.out.frame_time(seg.start_frame) - frame, job.out.frame_time(seg.end_frame - 1) + frame
        reach = [json.dumps(cues[i], sort_keys=True) for i, (s, e) in enumerate(sc.cue_ranges)
                 if i < len(cues) and s <= t1 and e >= t0]
        body = json.dumps([base, seg.start_frame, seg.end_frame, reach], sort_keys=False)
        keys.append(hashlib.sha256(body.encode("utf-8")).hexdigest())
    return keys


class CacheFeeder:
    """The renderer's side of a cache for one job: look its segments up (a few at once: S3 gets
    are round trips) and put each segment it renders, on threads of their own (a slow store never
    holds up the render)."""

    def __init__(self, cache: SegmentCache, job_id: str, keys: list[str]) -> None:
        self.cache = cache
        self.job_id = job_id
        self.keys = keys
        self._writes = BackgroundWrites("ecg-cache", workers=4)

    def lookup(self, indices: list[int]) -> dict[int, bytes]:
        """The cached files of the segments ``indices``, by index (misses left out)."""
        def one(i: int) -> bytes | None:
            try:
                return self.cache.get(self.keys[i])
            except Exception as exc:  # noqa: BLE001 - a cache that cannot answer: render the segment
                log.warning("segment cache not readable", extra={"job_id": self.job_id, "segment": i,
                                                                 "error": str(exc)[:300]})
                return None
        found = dict(zip(indices, self._writes.pool.map(one, indices)))
        return {i: data for i, data in found.items() if data}

    def put(self, index: int, ref: Any) -> None:
        """Cache segment ``index`` (an object ref to its file's bytes), in the background."""
        self._writes.submit(self._put, index, ref)

    def _put(self, index: int, ref: Any) -> None:
        try:
            self.cache.put(self.keys[index], ray.get(ref, timeout=300))
        except Exception as exc:  # noqa: BLE001 - the next edit renders it again
            log.warning("segment not cached", extra={"job_id": self.job_id, "segment": index,
                                                     "error": str(exc)[:300]})

    def close(self, timeout: float = 60.0) -> None:
        """Wait (bounded) for the segments being cached, apply the cache's limits, and stop."""
        self._writes.drain(timeout)
        try:
            self.cache.evict()
        except Exception as exc:  # noqa: BLE001 - the next job evicts
            log.warning("segment cache not evicted", extra={"job_id": self.job_id, "error": str(exc)[:300]})
        self._writes.stop()
