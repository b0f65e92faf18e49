"""A running job's live preview: its finished prefix as HLS, growing as segments finish.

The renderer hands each finished segment (an object ref to its MP4's bytes) to a
``PreviewSink``, as it hands it to the join and to the ``SegmentKeeper``. ``HlsPreview`` turns
the contiguous prefix into CMAF fragments (media/hls.py) written to a ``SegmentArea`` (the
service keeps one beside the job's result), on a thread of its own: a slow FFmpeg or store
never holds up the render, and nothing it does reaches the final video (it only reads the
segments' bytes). The playlist ends (``#EXT-X-ENDLIST``) when the last segment is in it, or
when the job ends without it (failed or cancelled: what was there stays playable to its end).
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Protocol

import ray

from ecg_ray.media import hls
from ecg_ray.rendering.resume import SegmentArea
from ecg_ray.rendering.segment import JobSpec
from ecg_ray.rendering.workdirs import make_workdir

log = logging.getLogger(__name__)

MASTER = "master.m3u8"      # what a player opens (the preview_url): names the codecs
PLAYLIST = "index.m3u8"     # the EVENT media playlist, rewritten as fragments come
INIT = "init.mp4"
FRAGMENT = "seg-{:05d}.m4s"


class PreviewSink(Protocol):
    """What the renderer feeds a job's preview with."""

    def start(self, job: JobSpec, frames: list[int], source_path: str) -> None:
        """The job is planned: its segments' frame counts, its source (for the audio)."""

    def add(self, index: int, ref: Any) -> None:
        """Segment ``index`` is finished (``ref``: its file's bytes); kept ones too."""

    def close(self, timeout: float = 60.0) -> None:
        """The render ended (done, failed or cancelled): finish the playlist (bounded)."""


class HlsPreview:
    """A ``PreviewSink`` writing HLS into ``area``; ``on_ready()`` once a player can open it."""

    def __init__(self, area: SegmentArea, job_id: str, tmp_dir: str,
                 on_ready: Callable[[], None] = lambda: None) -> None:
        self.area = area
        self.job_id = job_id
        self.tmp_dir = tmp_dir
        self.on_ready = on_ready
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ecg-preview")
        self._lock = threading.Lock()
        self._pending: list[Future[None]] = []
        self._refs: dict[int, Any] = {}
        self._frames: list[int] = []
        self._fps = (1, 1)
        self._source = ""
        self._job: JobSpec | None = None
        self._audio: hls.AdtsAudio | None = None
        self._init = b""
        self._durations: list[float] = []
        self._ended = False
        self._broken = False
        self._workdir = ""
        # (monotonic time, seconds of video playable): what bench/preview.py reads
        self.timeline: list[tuple[float, float]] = []

    # -- the renderer's side (never blocks, never raises) -------------------------------------
    def start(self, job: JobSpec, frames: list[int], source_path: str) -> None:
        self._submit(self._start, job, list(frames), source_path)

    def add(self, index: int, ref: Any) -> None:
        self._submit(self._add, index, ref)

    def close(self, timeout: float = 60.0) -> None:
        self._submit(self._end)
        with self._lock:
            pending, self._pending = self._pending, []
        deadline = time.monotonic() + timeout
        for f in pending:
            try:
                f.result(timeout=max(0.0, deadline - time.monotonic()))
            except Exception:  # noqa: BLE001 - logged where it happened; a timeout leaves it to the thread
                pass
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._workdir:
            shutil.rmtree(self._workdir, ignore_errors=True)

    def _submit(self, fn: Callable[..., None], *args: Any) -> None:
        def guarded() -> None:
            if self._broken and fn != self._end:  # a stopped preview still ends its playlist
                return
            try:
                fn(*args)
            except Exception as exc:  # noqa: BLE001 - the preview stops; the render goes on
                self._broken = True
                log.warning("live preview stopped", extra={"job_id": self.job_id, "error": str(exc)[:300]})

        with self._lock:
            try:
                self._pending.append(self._pool.submit(guarded))
            except RuntimeError:  # closed already
                pass

    # -- its thread --------------------------------------------------------------------------
    def _start(self, job: JobSpec, frames: list[int], source_path: str) -> None:
        self._job, self._frames, self._source = job, frames, source_path
        self._fps = (job.out.fps_num, job.out.fps_den)
        self._workdir = make_workdir(self.tmp_dir, "preview", self.job_id)
        self.area.clear()  # a run before a restart: its fragments may be of another plan
        path = os.path.join(self._workdir, "audio.aac")
        try:
            if hls.encode_audio(job.probe, source_path, path):
                self._audio = hls.AdtsAudio.read(path)
        except Exception as exc:  # noqa: BLE001 - a preview without sound beats none
            log.warning("live preview without audio", extra={"job_id": self.job_id, "error": str(exc)[:300]})
        finally:
            try:
                os.remove(path)
            except FileNotFoundError:
                pass

    def _seconds(self, frames: int) -> float:
        return frames * self._fps[1] / self._fps[0]

    def _add(self, index: int, ref: Any) -> None:
        if self._job is None:
            return
        self._refs[index] = ref
        while len(self._durations) in self._refs:
            i = len(self._durations)
            self._fragment(i, self._refs.pop(i))

    def _fragment(self, i: int, ref: Any) -> None:
        seg = os.path.join(self._workdir, f"seg{i:05d}.mp4")
        with open(seg, "wb") as fh:
            fh.write(ray.get(ref, timeout=300))
        try:
            last = i == len(self._frames) - 1
            frag = hls.fragment(seg, self._seconds(sum(self._frames[:i])), self._seconds(self._frames[i]),
                                self._audio, last, self._workdir, f"frag{i:05d}")
        finally:
            os.remove(seg)
        if not self._init:
            self._init = frag.init
            self.area.put(INIT, frag.init)
        elif not hls.same_decoder_setup(self._init, frag.init):
            # (segments of one job are encoded alike; a node with another encoder would differ)
            raise RuntimeError(f"segment {i} is encoded unlike segment 0; the preview stops before it")
        self.area.put(FRAGMENT.format(i), frag.media)
        self._durations.append(frag.duration)
        self._ended = len(self._durations) == len(self._frames)
        self._write_playlist()
        self.timeline.append((time.monotonic(), sum(self._durations)))
        if i == 0:
            rate = int(len(frag.media) * 8 / max(frag.duration, 0.001))
            self.area.put(MASTER, hls.master(PLAYLIST, rate, hls.codecs(self._init, self._audio is not None))
                          .encode())
            self.on_ready()

    def _write_playlist(self) -> None:
        self.area.put(PLAYLIST, hls.playlist(self._durations, INIT, FRAGMENT, self._ended).encode())

    def _end(self) -> None:
        """The render ended: a playlist not ended yet (the job failed or was cancelled) ends here."""
        if self._durations and not self._ended:
            self._ended = True
            self._write_playlist()
