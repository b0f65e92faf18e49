"""Ray actors: segment renderers (one Chromium each), the finalizer, and job progress."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from typing import Any

import ray

from ecg_ray import metrics
from ecg_ray.capture.browser import CaptionPage, main_browser_processes
from ecg_ray.config import load_settings
from ecg_ray.errors import Cancelled, RenderError
from ecg_ray.files import discard
from ecg_ray.logs import setup_logging
from ecg_ray.media.concat import join
from ecg_ray.media.containers import container
from ecg_ray.media.decode import nvdec_check
from ecg_ray.media.encode import encoder_opens
from ecg_ray.media.ffmpeg import FFmpegCrashed, is_no_space, no_space_error
from ecg_ray.rendering.models import SegmentSpec
from ecg_ray.rendering.retries import JOIN_ATTEMPTS, SEGMENT_ATTEMPTS, failed_again, same_actor_retry
from ecg_ray.rendering.segment import JobSpec, render_segment
from ecg_ray.rendering.workdirs import make_workdir, sweep_stale

log = logging.getLogger(__name__)


CANCEL_GRACE_S = 2.0  # a cancelled segment still running after this has its browser killed


def tree_memory_mb() -> int:
    """PSS of this process and everything under it, in MiB. Called once a segment is done, so
    its FFmpeg has exited: what the actor itself holds (its Python, Chromium, Playwright's
    driver), which the scheduler compares with ECG_ACTOR_RECYCLE_MB. PSS divides shared pages
    among the processes that share them, so Chromium's shared libraries count once."""
    import psutil

    me = psutil.Process()
    total = 0
    for p in [me, *me.children(recursive=True)]:
        try:
            total += p.memory_full_info().pss
        except psutil.Error:  # exited meanwhile, or not ours to read
            continue
    return total >> 20


def _node_id() -> str:
    return ray.get_runtime_context().get_node_id()


@ray.remote
class SegmentRenderer:
    """Owns one long-lived Chromium; renders segments of any job, one at a time per call."""

    def __init__(self) -> None:
        setup_logging()
        self.settings = load_settings()
        self.page = CaptionPage(self.settings)
        self.node_id = _node_id()
        sweep_stale(self.settings.tmp_dir)  # left by actors that were killed on this node
        self.workdir = make_workdir(self.settings.tmp_dir, "actor")
        self.cancels: dict[str, threading.Event] = {}
        self.sources: dict[str, str] = {}
        self.band_missed: set[str] = set()  # jobs with a caption above the overlay band here
        self._lock = asyncio.Lock()
        self._running: tuple[str, int] | None = None  # (job id, segment) being rendered now
        self._runs = 0                                 # segments started: tells one run from the next

    async def ready(self) -> dict[str, Any]:
        if not self.page.alive:
            await self.page.start()
        loop = asyncio.get_running_loop()
        nvenc = await loop.run_in_executor(None, encoder_opens, "h264_nvenc")
        # NVDEC is tested only where decoding on it is asked for (ECG_HWDEC): it starts a CUDA context.
        nvdec = None if self.settings.hwdec == "none" else not await loop.run_in_executor(None, nvdec_check)
        return {"node_id": self.node_id, "nvenc": nvenc, "nvdec": nvdec, "pid": os.getpid()}

    def _source(self, job_id: str, path: str, node_id: str, blob: list) -> str:
        if node_id == self.node_id and os.path.exists(path):
            return path
        cached = self.sources.get(job_id)
        if cached:
            return cached
        if not blob:
            raise RenderError("invalid_input", "source is on another node and was not shared through the object store")
        local = os.path.join(self.workdir, f"{job_id}-source{os.path.splitext(path)[1]}")
        data = ray.get(blob[0])
        try:
            with open(local, "wb") as fh:
                fh.write(data)
        except OSError as exc:
            discard(local)
            if is_no_space(exc):
                raise no_space_error(exc, f"the source copy in {self.workdir}") from None
            raise
        self.sources[job_id] = local
        return local

    async def render(self, job: JobSpec, seg: SegmentSpec, source_path: str, source_node: str, blob: list,
                     progress: Any = None) -> tuple[dict, bytes]:
        cancel = self.cancels.setdefault(job.job_id, threading.Event())
        if cancel.is_set():
            raise Cancelled()
        async with self._lock:  # one segment at a time: one browser page
            path = self._source(job.job_id, source_path, source_node, blob)
            out_path = os.path.join(self.workdir, f"{job.job_id}-{seg.index:04d}.mp4")

            def report(frames: int) -> None:
                if progress is not None:
                    progress.report.remote(job.job_id, seg.index, frames)

            log.info("segment start", extra={"job_id": job.job_id, "segment": seg.index,
                                             "frames": f"{seg.start_frame}-{seg.end_frame}"})
            restarts = 0
            self._runs += 1
            self._running = (job.job_id, self._runs)
            try:
                for attempt in range(1, SEGMENT_ATTEMPTS + 1):
                    try:
                        # After a band miss, this job's next segments here go whole-frame at once.
                        band = job.overlay_band and job.job_id not in self.band_missed
                        result = await render_segment(self.page, job, seg, path, out_path, cancel, report, band)
                        if result.band_misses:
                            self.band_missed.add(job.job_id)
                        break
                    except Exception as exc:  # noqa: BLE001 - only crashes and hangs are retried
                        kind = same_actor_retry(exc)
                        if kind is None or cancel.is_set():
                            raise
                        if attempt == SEGMENT_ATTEMPTS:
                            raise failed_again(kind, seg, exc) from None
                        log.warning("segment failed; retrying it", extra={
                            "job_id": job.job_id, "segment": seg.index, "cause": kind, "error": str(exc)[:300]})
                        if kind == "browser":
                            # Chromium died or hung mid-segment: a new browser renders the segment again
                            # (a hung one was already killed; close() kills one that will not close).
                            await self.page.close()
                            restarts += 1
                        # An FFmpeg child was killed: the same browser, new FFmpeg processes.
                # Before the file is read into memory (a long segment's file is tens of MB). About
                # 20 ms for a dozen processes: off the event loop, which relays cancels.
                result.actor_mb = await asyncio.get_running_loop().run_in_executor(None, tree_memory_mb)
                with open(out_path, "rb") as fh:
                    data = fh.read()
            except OSError as exc:
                if is_no_space(exc):
                    raise no_space_error(exc, f"segment {seg.index} in {self.workdir}") from None
                raise
            finally:
                self._running = None
                discard(out_path)
            result.node_id = self.node_id
            result.browser_restarts = restarts
            metrics.actor_memory(result.actor_mb)
            metrics.segment_rendered(result.frames, result.captured, result.reused, result.empty, result.seconds,
                                     job.encoder.codec)
            log.info("segment done", extra={"job_id": job.job_id, "segment": seg.index,
                                            "seconds": round(result.seconds, 2), "captured": result.captured,
                                            "actor_mb": result.actor_mb})
            return result.model_dump(), data

    async def cancel(self, job_id: str) -> None:
        self.cancels.setdefault(job_id, threading.Event()).set()
        if self._running is not None and self._running[0] == job_id:
            asyncio.get_running_loop().create_task(self._stop_if_stuck(self._running))

    async def _stop_if_stuck(self, running: tuple[str, int]) -> None:
        """A segment notices a cancel between frames, at once; one stuck in a page call (a hung
        browser) would notice it only at PAGE_CALL_TIMEOUT_S. Still running after CANCEL_GRACE_S:
        its browser is killed, the page call fails and the segment ends; the next one starts a
        new browser."""
        await asyncio.sleep(CANCEL_GRACE_S)
        if self._running == running:
            log.warning("cancelled segment still running; killing its browser",
                        extra={"job_id": running[0], "grace_s": CANCEL_GRACE_S})
            await self.page.kill()

    def release(self, job_id: str) -> None:
        """Forget a finished job: its cached source copy and cancel flag."""
        self.cancels.pop(job_id, None)
        self.band_missed.discard(job_id)
        path = self.sources.pop(job_id, None)
        if path:
            discard(path)

    async def close(self) -> None:
        await self.page.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def browser_pids(self) -> list[int]:
        """Main Chromium processes under this actor (for operators and fault tests)."""
        return [p.pid for p in main_browser_processes()]


def _place(src: str, dest: str) -> None:
    """Move ``src`` to ``dest`` so that ``dest`` is whole or absent, also across filesystems
    (where shutil.move would copy straight into ``dest`` and leave half a file on a full disk)."""
    try:
        os.replace(src, dest)
        return
    except OSError as exc:
        if exc.errno != errno.EXDEV:
            raise
    fd, part = tempfile.mkstemp(prefix=".ecg-", suffix=".part", dir=os.path.dirname(dest) or ".")
    os.close(fd)
    try:
        shutil.copyfile(src, part)
        os.replace(part, dest)
    except BaseException:
        discard(part)
        raise
    os.remove(src)


@ray.remote(num_cpus=0)
class Finalizer:
    """Joins segment files (passed through the object store) and muxes the audio.

    A segment's file is copied to this node as soon as it is rendered (``stage``, called by the
    driver while other segments still render), so at the end only the join is left: on two
    nodes a 10-minute job's files took seconds to cross over and be written after the last
    segment."""

    def __init__(self) -> None:
        setup_logging()
        self.settings = load_settings()
        sweep_stale(self.settings.tmp_dir)  # left by a join actor that was killed mid-join
        self._lock = threading.Lock()
        self._dirs: dict[str, str] = {}
        self._staged: dict[str, dict[int, tuple[str, str]]] = {}  # job -> index -> (object id, path)
        self._ended: OrderedDict[str, None] = OrderedDict()  # joined or discarded: a late stage is dropped

    def _dir(self, job_id: str) -> str | None:
        with self._lock:
            if job_id in self._ended:
                return None
            if job_id not in self._dirs:
                self._dirs[job_id] = make_workdir(self.settings.tmp_dir, "final", job_id)
            return self._dirs[job_id]

    @staticmethod
    def _write(path: str, data: bytes) -> None:
        with open(path + ".part", "wb") as fh:
            fh.write(data)
        os.replace(path + ".part", path)

    def stage(self, job_id: str, index: int, key: str, data: bytes) -> None:
        """Keep segment ``index`` (object ``key``) on disk here until the job is joined."""
        tmp = self._dir(job_id)
        if tmp is None:
            return
        try:
            path = os.path.join(tmp, f"seg{index:04d}-{key[:16]}.mp4")
            self._write(path, data)
        except OSError as exc:  # the join fetches it again and reports a full disk itself
            log.warning("segment not staged", extra={"job_id": job_id, "segment": index, "error": str(exc)[:200]})
            return
        with self._lock:
            if job_id in self._dirs:  # not discarded meanwhile
                self._staged.setdefault(job_id, {})[index] = (key, path)

    def discard(self, job_id: str) -> None:
        """Forget a job's staged files (it failed or was cancelled before its join)."""
        with self._lock:
            tmp = self._dirs.pop(job_id, None)
            self._staged.pop(job_id, None)
            self._ended[job_id] = None
            while len(self._ended) > 10000:
                self._ended.popitem(last=False)
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)

    def finalize(self, job: JobSpec, source_path: str, dest: str, frame_counts: list[int], refs: list) -> dict:
        """Join the segments ``refs`` (object refs, in order): staged files where their object is
        the one staged, else fetched now."""
        t0 = time.monotonic()
        with self._lock:
            self._ended.pop(job.job_id, None)  # a join again (after lost segments) starts afresh
        tmp = self._dir(job.job_id)
        assert tmp is not None
        try:
            paths, staged = [], 0
            for i, ref in enumerate(refs):
                with self._lock:
                    key, path = self._staged.get(job.job_id, {}).get(i, ("", ""))
                if key == ref.hex() and os.path.exists(path):
                    staged += 1
                else:
                    path = os.path.join(tmp, f"seg{i:04d}.mp4")
                    self._write(path, ray.get(ref))
                paths.append(path)
            os.makedirs(os.path.dirname(os.path.abspath(dest)) or ".", exist_ok=True)
            t_write = time.monotonic()
            # (captions only, JobSpec.alpha: that container, no audio)
            box = container(job.alpha or job.container)
            partial = os.path.join(tmp, f"joined.{box.ext}")
            for attempt in range(1, JOIN_ATTEMPTS + 1):
                try:
                    join(paths, frame_counts, job.out, None if job.alpha else job.probe, source_path, partial, box)
                    break
                except FFmpegCrashed as exc:  # killed mid-join: joining is cheap and repeatable
                    if attempt == JOIN_ATTEMPTS:
                        raise RenderError("encoder_failed", f"joining crashed again on the retry: {exc.message}") from None
                    log.warning("join crashed; retrying", extra={"job_id": job.job_id, "error": exc.message[:200]})
            t_ff = time.monotonic()
            _place(partial, dest)  # the result appears whole or not at all
            log.info("job joined", extra={"job_id": job.job_id, "segments": len(paths), "staged": staged})
            return {"file_size": os.path.getsize(dest), "seconds": time.monotonic() - t0, "staged": staged,
                    "fetch_s": t_write - t0, "ffmpeg_s": t_ff - t_write}
        except OSError as exc:
            if is_no_space(exc):
                raise no_space_error(exc, f"the joined video ({tmp} -> {dest})") from None
            raise
        finally:
            self.discard(job.job_id)


@ray.remote(num_cpus=0)
class JobProgress:
    """Frames done per segment of each job; segment actors report, drivers poll."""

    def __init__(self) -> None:
        self.frames: dict[str, dict[int, int]] = {}

    def report(self, job_id: str, segment: int, frames: int) -> None:
        per = self.frames.setdefault(job_id, {})
        per[segment] = max(per.get(segment, 0), frames)

    def done(self, job_id: str) -> int:
        return sum(self.frames.get(job_id, {}).values())

    def forget(self, job_id: str) -> None:
        self.frames.pop(job_id, None)
