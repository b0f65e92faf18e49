"""A render job end to end: request -> plan -> segments (Ray actors) -> final file.

``Renderer`` keeps a pool of warm segment actors (each with its Chromium) and renders jobs
on them; the command line makes one for a single job, the service keeps one alive.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from . import metrics
from .actors import Finalizer, JobProgress, SegmentRenderer
from .config import Settings, load_settings
from .errors import RenderError
from .inputs import materialize
from .logs import setup_logging
from .models import EncoderSettings, RenderOptions, RenderResult, SegmentResult
from .plan import output_format, plan_segments, segment_count
from .probe import probe
from .scenario import load_scenario_text, normalize
from .segment import JobSpec
from .workdirs import make_workdir

log = logging.getLogger("ecg_ray.pipeline")

SEGMENT_RETRIES = 2


@dataclass
class Progress:
    job_id: str
    stage: str          # probing | rendering | joining | done
    frames_done: int
    frames_total: int

    @property
    def percent(self) -> float:
        return 100.0 * self.frames_done / self.frames_total if self.frames_total else 0.0


def ensure_ray(address: str | None = None, **kw: Any) -> None:
    """Connect to ``address`` (or RAY_ADDRESS), else start a local Ray."""
    if ray.is_initialized():
        return
    addr = address or os.environ.get("RAY_ADDRESS") or None
    opts: dict[str, Any] = {"ignore_reinit_error": True, "log_to_driver": False}
    if addr is None:
        opts.setdefault("include_dashboard", False)
    opts.update(kw)
    ray.init(address=addr, **opts)


def _unwrap(exc: BaseException) -> BaseException:
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


def _cluster_has_gpus() -> bool:
    return ray.cluster_resources().get("GPU", 0) > 0


def read_scenario(scenario: Any) -> Any:
    """A scenario given as a dict, JSON text, or a path to a JSON file."""
    if isinstance(scenario, (dict, list)):
        return scenario
    if isinstance(scenario, (str, os.PathLike)) and os.path.isfile(str(scenario)):
        with open(scenario, "rb") as fh:
            return load_scenario_text(fh.read(), os.path.basename(str(scenario)))
    if isinstance(scenario, (str, bytes)):
        return load_scenario_text(scenario)
    raise RenderError("invalid_scenario", "scenario must be a JSON object, JSON text or a path to a JSON file")


class Renderer:
    """A pool of segment actors on a Ray cluster, rendering jobs one after another or at once."""

    def __init__(self, address: str | None = None, max_actors: int | None = None,
                 settings: Settings | None = None) -> None:
        setup_logging()
        ensure_ray(address)
        self.settings = settings or load_settings()
        self.max_actors = max_actors
        self.actors: list[Any] = []
        self.actor_info: dict[int, dict] = {}
        self._lock = threading.Lock()
        self._progress = JobProgress.options(
            scheduling_strategy=NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=True)
        ).remote()

    # -- actors -------------------------------------------------------------------------
    def slots(self) -> int:
        """How many segment actors the cluster can hold at once."""
        if self.max_actors:
            return self.max_actors
        res = ray.cluster_resources()
        by_cpu = int(res.get("CPU", 1) // max(self.settings.segment_num_cpus, 0.01))
        n = max(1, by_cpu)
        if res.get("GPU", 0) > 0 and self.settings.segment_num_gpus > 0:
            n = min(n, int(res["GPU"] // self.settings.segment_num_gpus))
        return max(1, n)

    def _actor_options(self) -> dict:
        gpus = self.settings.segment_num_gpus if _cluster_has_gpus() else 0
        return {"num_cpus": self.settings.segment_num_cpus, "num_gpus": gpus, "max_concurrency": 8}

    def _spawn(self) -> Any:
        return SegmentRenderer.options(**self._actor_options()).remote()

    def ensure_actors(self, n: int) -> list[Any]:
        with self._lock:
            while len(self.actors) < n:
                self.actors.append(self._spawn())
            actors = self.actors[:n]
        infos = ray.get([a.ready.remote() for a in actors])
        for a, info in zip(actors, infos):
            self.actor_info[id(a)] = info
        return actors

    def _replace(self, actor: Any) -> Any:
        with self._lock:
            try:
                ray.kill(actor)
            except Exception:  # noqa: BLE001 - already dead
                pass
            new = self._spawn()
            self.actors = [new if a is actor else a for a in self.actors]
        info = ray.get(new.ready.remote())
        self.actor_info[id(new)] = info
        return new

    def close(self) -> None:
        with self._lock:
            actors, self.actors = self.actors, []
        try:
            ray.get([a.close.remote() for a in actors], timeout=30)
        except Exception:  # noqa: BLE001 - shutting down anyway
            pass
        for a in actors + [self._progress]:
            try:
                ray.kill(a)
            except Exception:  # noqa: BLE001
                pass

    # -- one job --------------------------------------------------------------------------
    def render(
        self,
        input: str,
        scenario: Any,
        output: str,
        options: RenderOptions | None = None,
        job_id: str | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        cancel: threading.Event | None = None,
        policy: Any = None,
        allow_local: bool = True,
    ) -> RenderResult:
        """Render one job. ``policy`` (a urls.NetPolicy) and ``allow_local`` restrict where the
        input may come from; the service passes its own, the command line keeps the defaults."""
        t0 = time.monotonic()
        options = options or RenderOptions()
        job_id = job_id or uuid.uuid4().hex[:16]
        cancel = cancel or threading.Event()
        notify = on_progress or (lambda p: None)
        workdir = make_workdir(self.settings.tmp_dir, "job", job_id)
        stats: dict[str, float] = {}
        try:
            notify(Progress(job_id, "probing", 0, 0))
            src_path = materialize(input, workdir, self.settings, policy=policy, allow_local=allow_local)
            if cancel.is_set():
                raise RenderError("cancelled", "job cancelled")
            src = probe(src_path)
            out = output_format(src, options, self.settings)
            sc = normalize(read_scenario(scenario), out.width / out.height)
            stats["plan_s"] = time.monotonic() - t0

            count = segment_count(out.frame_count, float(out.fps), self.slots(), self.settings, options.segments)
            segments = plan_segments(job_id, out.frame_count, count)
            actors = self.ensure_actors(min(count, self.slots()))
            infos = [self.actor_info[id(a)] for a in actors]
            codec = self._pick_encoder(options.encoder, infos)
            quality = options.quality if options.quality is not None else self.settings.default_quality
            job = JobSpec(
                job_id=job_id, probe=src, out=out,
                encoder=EncoderSettings(codec=codec, quality=quality, preset=self.settings.x264_preset),
                scenario=sc, hwdec=self.settings.hwdec, capture_margin=self.settings.capture_margin_px,
            )
            log.info("job planned", extra={"job_id": job_id, "frames": out.frame_count, "segments": count,
                                           "actors": len(actors), "encoder": codec,
                                           "size": f"{out.width}x{out.height}", "fps": str(out.fps)})
            stats["startup_s"] = time.monotonic() - t0
            notify(Progress(job_id, "rendering", 0, out.frame_count))

            driver_node = ray.get_runtime_context().get_node_id()
            blob = []
            if any(i["node_id"] != driver_node for i in infos):
                with open(src_path, "rb") as fh:
                    blob = [ray.put(fh.read())]
            job_ref = ray.put(job)
            t_render = time.monotonic()
            results, data_refs = self._run_segments(
                job, job_ref, segments, actors, src_path, driver_node, blob, cancel, notify)
            stats["segments_s"] = time.monotonic() - t_render

            if cancel.is_set():
                raise RenderError("cancelled", "job cancelled")
            notify(Progress(job_id, "joining", out.frame_count, out.frame_count))
            t_join = time.monotonic()
            finalizer = Finalizer.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(driver_node, soft=False)
            ).remote()
            try:
                dest = os.path.abspath(output)
                fin = ray.get(finalizer.finalize.remote(
                    job_ref, src_path, dest, [s.frames for s in segments], *data_refs))
            finally:
                ray.kill(finalizer)
            stats["join_s"] = time.monotonic() - t_join
            stats["capture_frames"] = float(sum(r.captured for r in results))
            stats["reused_frames"] = float(sum(r.reused for r in results))
            stats["empty_frames"] = float(sum(r.empty for r in results))
            stats["browser_restarts"] = float(sum(r.browser_restarts for r in results))
            warnings = list(sc.warnings)
            for r in results:
                for w in r.warnings:
                    if w not in warnings:
                        warnings.append(w)
            metrics.job_rendered(out.frame_count, time.monotonic() - t0, codec)
            notify(Progress(job_id, "done", out.frame_count, out.frame_count))
            return RenderResult(
                job_id=job_id, output=dest, file_size=fin["file_size"],
                duration=out.frame_count * out.fps_den / out.fps_num, frames=out.frame_count,
                width=out.width, height=out.height, fps=float(out.fps), encoder=codec, segments=count,
                seconds=time.monotonic() - t0, nodes=[r.node_id for r in results], warnings=warnings,
                stats=stats,
            )
        except BaseException as exc:
            raise _unwrap(exc) from None
        finally:
            for a in self.actors:
                try:
                    a.release.remote(job_id)
                except Exception:  # noqa: BLE001
                    pass
            try:
                self._progress.forget.remote(job_id)
            except Exception:  # noqa: BLE001
                pass
            shutil.rmtree(workdir, ignore_errors=True)

    def _pick_encoder(self, requested: str, infos: list[dict]) -> str:
        all_nvenc = bool(infos) and all(i["nvenc"] for i in infos)
        if requested == "auto":
            return "h264_nvenc" if all_nvenc else "libx264"
        if requested == "h264_nvenc" and not all_nvenc:
            raise RenderError("encoder_failed", "h264_nvenc was requested but a test encode failed on this cluster")
        return requested

    def _run_segments(self, job, job_ref, segments, actors, src_path, driver_node, blob, cancel, notify):
        """Feed segments to idle actors; retry a segment whose actor died on a fresh actor."""
        pending = list(segments)
        idle = list(actors)
        inflight: dict[Any, tuple[Any, Any, Any]] = {}
        attempts: dict[int, int] = {}
        results: dict[int, SegmentResult] = {}
        data: dict[int, Any] = {}
        last_poll = 0.0
        try:
            while pending or inflight:
                if cancel.is_set():
                    for a in actors:
                        a.cancel.remote(job.job_id)
                    raise RenderError("cancelled", "job cancelled")
                while pending and idle:
                    seg, actor = pending.pop(0), idle.pop(0)
                    meta, blob_ref = actor.render.options(num_returns=2).remote(
                        job_ref, seg, src_path, driver_node, blob, self._progress)
                    inflight[meta] = (actor, seg, blob_ref)
                ready, _ = ray.wait(list(inflight), num_returns=1, timeout=0.5)
                for ref in ready:
                    actor, seg, blob_ref = inflight.pop(ref)
                    try:
                        meta = ray.get(ref)
                    except ray.exceptions.RayActorError as exc:
                        attempts[seg.index] = attempts.get(seg.index, 0) + 1
                        log.warning("segment actor died; retrying", extra={
                            "job_id": job.job_id, "segment": seg.index, "attempt": attempts[seg.index],
                            "error": str(exc)[:200]})
                        if attempts[seg.index] > SEGMENT_RETRIES:
                            raise RenderError("internal_error",
                                              f"segment {seg.index} failed {attempts[seg.index]} times: {exc}")
                        old, actor = actor, self._replace(actor)
                        actors = [actor if a is old else a for a in actors]
                        pending.insert(0, seg)
                        idle.append(actor)
                        continue
                    results[seg.index] = SegmentResult(**meta)
                    data[seg.index] = blob_ref
                    idle.append(actor)
                now = time.monotonic()
                if now - last_poll >= 0.5:
                    last_poll = now
                    done = ray.get(self._progress.done.remote(job.job_id))
                    notify(Progress(job.job_id, "rendering", min(done, job.out.frame_count), job.out.frame_count))
        except BaseException:
            for a in actors:
                try:
                    a.cancel.remote(job.job_id)
                except Exception:  # noqa: BLE001
                    pass
            if inflight:
                ray.wait(list(inflight), num_returns=len(inflight), timeout=30)
            raise
        order = sorted(results)
        return [results[i] for i in order], [data[i] for i in order]


def render(input: str, scenario: Any, output: str, options: RenderOptions | None = None,
           address: str | None = None, on_progress: Callable[[Progress], None] | None = None) -> RenderResult:
    """Render one job on a fresh actor pool (local Ray unless ``address`` is given)."""
    r = Renderer(address=address)
    try:
        return r.render(input, scenario, output, options, on_progress=on_progress)
    finally:
        r.close()


__all__ = ["Renderer", "render", "Progress", "ensure_ray"]
