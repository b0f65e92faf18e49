"""A render job end to end: prepare (fetch, probe, normalize, plan) -> segments on the
shared actor pool -> join -> stats. ``Renderer`` keeps a pool of warm segment actors (each with
its Chromium); the command line makes one for a single job, the service keeps one alive."""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from ecg_ray import metrics
from ecg_ray.config import Settings, load_settings
from ecg_ray.errors import Cancelled, RenderError
from ecg_ray.logs import setup_logging
from ecg_ray.media.alpha import AlphaFormat, alpha_path
from ecg_ray.media.containers import check_supported, hdr_encoder
from ecg_ray.media.models import EncoderSettings
from ecg_ray.media.probe import probe
from ecg_ray.rendering.actors import Finalizer, JobProgress
from ecg_ray.rendering.cluster import ensure_ray
from ecg_ray.rendering.models import RenderOptions, RenderResult, SegmentResult
from ecg_ray.rendering.plan import output_format, plan_segments, segment_count
from ecg_ray.rendering.preview import PreviewSink
from ecg_ray.rendering.progress import Progress
from ecg_ray.rendering.resume import KeptPlan, SegmentKeeper, spec_digest
from ecg_ray.rendering.retries import JOIN_ATTEMPTS, actor_died, is_lost, unwrap_error
from ecg_ray.rendering.scheduler import CANCEL_WAIT_S, JOB_START_GRACE_S, TICK_S, Scheduler
from ecg_ray.rendering.segcache import CacheFeeder, SegmentCache, segment_keys, source_digest
from ecg_ray.rendering.segment import JobSpec
from ecg_ray.rendering.workdirs import make_workdir, sweep_stale
from ecg_ray.scenario.assets import fetch_assets
from ecg_ray.scenario.files import read_scenario, scenario_dir
from ecg_ray.scenario.normalize import normalize
from ecg_ray.sources.inputs import materialize

log = logging.getLogger(__name__)


class Renderer:
    """A pool of segment actors on a Ray cluster, rendering jobs one after another or at once."""

    def __init__(self, address: str | None = None, max_actors: int | None = None,
                 settings: Settings | None = None) -> None:
        setup_logging()
        ensure_ray(address)
        self.settings = settings or load_settings()
        self.max_actors = max_actors
        # On the driver's own node, hard: with soft affinity Ray may place it on a worker (the head
        # often has no CPU), and every job's progress would die with that worker.
        self._progress = JobProgress.options(  # type: ignore[attr-defined]  # @ray.remote adds options()
            scheduling_strategy=NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
        ).remote()
        self._sched = Scheduler(self.settings, max_actors, self._progress)
        # One join actor, kept warm: starting one per job (a Python worker importing the
        # package) cost about 1.3 s of every job's wall time, ten times the join itself.
        self._finalizer: Any = None
        self._finalizer_lock = threading.Lock()

    def _joiner(self, node: str) -> Any:
        """The warm join actor on ``node`` (the driver's), started if there is none."""
        with self._finalizer_lock:
            if self._finalizer is None:
                self._finalizer = Finalizer.options(  # type: ignore[attr-defined]  # @ray.remote adds options()
                    scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
                    # jobs rendering at once join at once (each in its own directory)
                    max_concurrency=max(1, self.settings.max_concurrent_jobs) + 1,
                ).remote()
            return self._finalizer

    def _drop_joiner(self, handle: Any) -> None:
        with self._finalizer_lock:
            if self._finalizer is handle:
                self._finalizer = None
        try:
            ray.kill(handle)
        except Exception:  # noqa: BLE001 - already gone
            pass

    # -- actors -------------------------------------------------------------------------
    @property
    def actors(self) -> list[Any]:
        """Handles of the pool's actors now (started or starting)."""
        return self._sched.handles()

    @property
    def actor_info(self) -> dict[int, dict]:
        """ready() answers of the pool's started actors, by id() of the handle."""
        return self._sched.infos()

    def slots(self) -> int:
        """How many segment actors the cluster can hold now: per alive node, the fewest that its
        CPUs, GPUs and "nvenc" units allow (see Scheduler.shape), summed."""
        self._sched.max_actors = self.max_actors
        return self._sched.slots()

    def _actor_options(self) -> dict:
        return self._sched.actor_options(self._sched.shape())

    def ensure_actors(self, n: int) -> list[Any]:
        """At least ``n`` actors in the pool, ``n`` of them ready (unless they cannot start), and
        the join actor started, so that a warm-up leaves nothing for the first job to start. The
        join actor is not waited for: it starts while the segment actors do, and a job's first
        join waits for it if need be."""
        self._joiner(ray.get_runtime_context().get_node_id())
        return self._sched.ensure_actors(n)

    def close(self) -> None:
        actors = self._sched.close()
        try:
            ray.get([a.close.remote() for a in actors], timeout=30)
        except Exception:  # noqa: BLE001 - shutting down anyway
            pass
        with self._finalizer_lock:
            fin, self._finalizer = self._finalizer, None
        for a in actors + [self._progress] + ([fin] if fin is not None else []):
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
        asset_dir: str | None = None,
        keeper: SegmentKeeper | None = None,
        cache: SegmentCache | None = None,
        preview: PreviewSink | None = None,
    ) -> RenderResult:
        """Render one job. ``policy`` (a urls.NetPolicy) and ``allow_local`` restrict where the
        input and the scenario's define assets may come from; the service passes its own, the
        command line keeps the defaults. ``asset_dir`` is where relative define asset paths are
        looked up (default: the scenario file's directory when ``scenario`` is a path; else, with
        ``allow_local``, the working directory; the service allows no relative asset paths).
        ``keeper`` keeps finished segments where a later run of the same job finds them
        (resume.py): that run renders only the segments missing. ``cache`` holds segments of
        earlier jobs by what decides their bytes (segcache.py): those found are joined as they
        are, the rest rendered and added to it. ``preview`` hears of every
        finished segment, kept ones included, in no particular order (preview.py: the live
        preview); it only reads them, so the result is the same with or without it."""
        t0 = time.monotonic()
        options = options or RenderOptions()
        job_id = job_id or uuid.uuid4().hex[:16]
        cancel = cancel or threading.Event()
        notify = on_progress or (lambda p: None)
        workdir = make_workdir(self.settings.tmp_dir, "job", job_id)
        stats: dict[str, float] = {}
        unhold = self._sched.hold()  # warm actors stay until this job's segments are queued
        unplan: Callable[[], None] = lambda: None  # noqa: E731 - the planned segments' reservation
        joiner: Any = None
        feeder: CacheFeeder | None = None
        try:
            box = check_supported(options.format)  # before any download: a format this FFmpeg cannot write
            notify(Progress(job_id, "probing", 0, 0))
            src_path = materialize(input, workdir, self.settings, policy=policy, allow_local=allow_local,
                                   cancelled=cancel.is_set)
            if cancel.is_set():
                raise Cancelled()
            src = probe(src_path)
            out = output_format(src, options, self.settings)
            if options.alpha_video is not None and out.is_hdr:
                raise RenderError("invalid_options", "options.alpha_video: the captions alone are made for SDR "
                                                     "outputs only; ask for them with dynamic_range sdr")
            sc = normalize(read_scenario(scenario), out.width / out.height)
            # Define fonts and images: fetched once here, for every segment (they travel in the
            # JobSpec), before any segment renders.
            t_assets = time.monotonic()
            sc = fetch_assets(sc, self.settings, policy=policy, allow_local=allow_local,
                              base_dir=asset_dir if asset_dir is not None else scenario_dir(scenario),
                              workdir=workdir, cancelled=cancel.is_set)
            stats["assets_s"] = time.monotonic() - t_assets
            if cancel.is_set():
                raise Cancelled()
            stats["plan_s"] = time.monotonic() - t0

            slots = self.slots()  # the cluster as it is now: nodes that joined count
            kept_plan = keeper.kept_plan() if keeper is not None else None
            # The count is a function of the video and the settings only (plan.segment_count):
            # the same video is cut at the same frames whatever the cluster does, which the
            # segment cache needs. The scheduler still counts the job's segments as planned
            # until they are queued, and the backlog it saw is kept in the stats.
            count, backlog, unplan = self._sched.plan(lambda backlog: kept_plan.segments if kept_plan else segment_count(
                out.frame_count, float(out.fps), self.settings, options.segments))
            stats["backlog_segments"] = float(backlog)
            segments = plan_segments(job_id, out.frame_count, count)
            count = len(segments)
            self._sched.ensure_actors(min(count, slots), grace=JOB_START_GRACE_S)
            infos = list(self.actor_info.values())
            codec = (hdr_encoder(options.encoder, box.name) if out.is_hdr
                     else self._pick_encoder(options.encoder, infos, box.video_codec))
            quality = options.quality if options.quality is not None else self.settings.default_quality
            job = JobSpec(
                job_id=job_id, probe=src, out=out,
                encoder=EncoderSettings(codec=codec, quality=quality, preset=self.settings.x264_preset),
                scenario=sc, hwdec=self.settings.hwdec, capture_margin=self.settings.capture_margin_px,
                burn_in_ffmpeg=self.settings.burn_in_ffmpeg,
                overlay_band=self.settings.overlay_band and sc.lower_half_only(),
                encoder_nice=self.settings.encoder_nice,
                capture_lanes=max(1, self.settings.capture_lanes),
                lane_hold_bytes=max(0, self.settings.lane_hold_mb) << 20,
                encoder_threads=self.settings.encoder_threads,
                decoder_threads=self.settings.decoder_threads,
                container=box.name,
                max_pixels=self.settings.max_pixels,
            )
            kept: dict[int, bytes] = {}
            if keeper is not None:
                plan = KeptPlan(segments=count, digest=spec_digest(job))
                if plan == kept_plan:
                    kept = keeper.finished(plan)
                    keeper.resume(plan)
                else:
                    keeper.start(plan)
            stats["resumed_segments"] = float(len(kept))
            reused: set[int] = set()
            if cache is not None:
                t_cache = time.monotonic()
                feeder = CacheFeeder(cache, job_id, segment_keys(job, segments, source_digest(src_path),
                                                                 self.settings.web_vendor_dir))
                found = feeder.lookup([s.index for s in segments if s.index not in kept])
                reused = set(found)
                kept.update(found)
                stats["cache_lookup_s"] = time.monotonic() - t_cache
            stats["reused_segments"] = float(len(reused))
            if preview is not None:
                preview.start(job, [s.frames for s in segments], src_path)
            log.info("job planned", extra={"job_id": job_id, "frames": out.frame_count, "segments": count,
                                           "resumed": len(kept) - len(reused), "reused": len(reused),
                                           "actors": len(infos), "slots": slots, "backlog": backlog, "encoder": codec,
                                           "size": f"{out.width}x{out.height}", "fps": str(out.fps)})
            stats["startup_s"] = time.monotonic() - t0
            notify(Progress(job_id, "rendering", sum(segments[i].frames for i in kept), out.frame_count,
                            segments=count, reused_segments=len(reused)))

            driver_node = ray.get_runtime_context().get_node_id()
            blob = []
            elsewhere = any(i["node_id"] != driver_node for i in infos) or any(
                k > 0 for node, k in self._sched.capacity().items() if node != driver_node)
            if elsewhere:
                with open(src_path, "rb") as fh:
                    blob = [ray.put(fh.read())]
            job_ref = ray.put(job)
            # (the join actor starts while the segments render, if it is not up)
            joiner = self._joiner(driver_node)

            def stage(index: int, ref: Any) -> None:
                # The join actor writes each file as it comes, not all of them after the last.
                try:
                    joiner.stage.remote(job_id, index, ref.hex(), ref)
                except Exception:  # noqa: BLE001 - the join fetches what was not staged
                    pass
                if keeper is not None:
                    keeper.keep(index, ref)
                if feeder is not None:
                    feeder.put(index, ref)
                if preview is not None:
                    preview.add(index, ref)

            def submitted() -> None:  # every segment is queued: the plan's reservation and the hold end
                unplan()
                unhold()

            t_render = time.monotonic()
            stats["segment_retries"] = 0.0
            todo = [s for s in segments if s.index not in kept]
            ran: list[SegmentResult | None] = [None] * len(segments)
            data_refs: list[Any] = [None] * len(segments)
            for i in kept:  # a kept segment joins as if rendered now, on this node
                ran[i] = SegmentResult(index=i, frames=segments[i].frames, captured=0, reused=0, empty=0,
                                       seconds=0.0, node_id=driver_node)
                data_refs[i] = ray.put(kept[i])
                if preview is not None:
                    preview.add(i, data_refs[i])
            kept.clear()  # the bytes are in the object store now
            if todo:
                done, done_refs = self._run_segments(
                    job, job_ref, todo, src_path, driver_node, blob, cancel, notify,
                    needs_nvenc=codec == "h264_nvenc", stats=stats, submitted=submitted, on_file=stage,
                    base_frames=out.frame_count - sum(s.frames for s in todo))
                for r, d in zip(done, done_refs):
                    ran[r.index], data_refs[r.index] = r, d
            else:
                submitted()
            results = [r for r in ran if r is not None]
            if len(results) != len(segments):
                raise RenderError("internal_error", f"job {job_id}: segments did not finish")
            stats["segments_s"] = time.monotonic() - t_render

            if cancel.is_set():
                raise Cancelled()
            notify(Progress(job_id, "joining", out.frame_count, out.frame_count))
            t_join = time.monotonic()
            dest = os.path.abspath(output)
            for attempt in range(1, JOIN_ATTEMPTS + 1):
                finalizer = self._joiner(driver_node)
                try:
                    fin = ray.get(finalizer.finalize.remote(
                        job_ref, src_path, dest, [s.frames for s in segments], list(data_refs)))
                    break
                except Exception as exc:
                    # A segment file lost with its node (before its copy reached this node):
                    # render the segments of nodes that left again, once.
                    alive = {n["NodeID"] for n in self._sched.nodes(max_age=0)}
                    lost = [r.index for r in results if r.node_id not in alive]
                    if attempt < JOIN_ATTEMPTS and not lost and actor_died(exc):
                        # The join actor itself died (killed, OOM): its FFmpeg went with it and
                        # the segment files are still in the object store; joining is cheap.
                        log.warning("join actor died; joining again", extra={"job_id": job_id, "error": str(exc)[:200]})
                        stats["join_retries"] = stats.get("join_retries", 0.0) + 1
                        self._drop_joiner(finalizer)
                        joiner = None  # the new one stages nothing and cleans up after its join
                        sweep_stale(self.settings.tmp_dir)  # its work directory (on this node)
                        continue
                    if attempt == JOIN_ATTEMPTS or not is_lost(exc) or not lost:
                        raise
                    log.warning("segment files lost with their node; rendering them again",
                                extra={"job_id": job_id, "segments": lost})
                    stats["segment_retries"] += len(lost)
                    again, again_data = self._run_segments(
                        job, job_ref, [segments[i] for i in lost], src_path, driver_node, blob, cancel,
                        notify, needs_nvenc=codec == "h264_nvenc", stats=stats)
                    for r, d in zip(again, again_data):
                        results[r.index], data_refs[r.index] = r, d
            stats["join_s"] = time.monotonic() - t_join
            # In the join actor: fetching the files not staged, then FFmpeg (the rest of join_s: the call).
            stats["join_fetch_s"] = float(fin.get("fetch_s", 0.0))
            stats["join_ffmpeg_s"] = float(fin.get("ffmpeg_s", 0.0))
            stats["join_staged"] = float(fin.get("staged", 0))
            stats["capture_frames"] = float(sum(r.captured for r in results))
            stats["screenshots"] = float(sum(r.screenshots for r in results))
            stats["reused_frames"] = float(sum(r.reused for r in results))
            stats["empty_frames"] = float(sum(r.empty for r in results))
            stats["browser_restarts"] = float(sum(r.browser_restarts for r in results))
            # actor time the job took (segments rendering, summed): against segments_s x actors,
            # how well the job's segments filled the actors
            stats["segment_busy_s"] = float(sum(r.seconds for r in results))
            stats["segment_max_s"] = float(max((r.seconds for r in results), default=0.0))
            stats["band_misses"] = float(sum(r.band_misses for r in results))
            stats["nvdec_segments"] = float(sum(r.hwdec == "cuda" for r in results))
            # the most any of its actors held once a segment was done (ECG_ACTOR_RECYCLE_MB's measure)
            stats["actor_mb_max"] = float(max((r.actor_mb for r in results), default=0))
            burned = [r for r in results if r.overlay_rows]
            if burned:  # the share of the frame the overlay pictures covered (burn path)
                stats["overlay_rows_share"] = sum(r.overlay_rows for r in burned) / len(burned) / out.height
            warnings = list(sc.warnings)
            if options.dynamic_range == "hdr" and not out.is_hdr:
                warnings.append(f"options.dynamic_range hdr: the source is SDR ({src.color_trc or 'untagged'} "
                                "transfer); the output is SDR")
            if options.fit == "contain" and options.width and options.height \
                    and (out.width, out.height) != (options.width, options.height):
                warnings.insert(0, f"options {options.width}x{options.height}: the {src.width}x{src.height} source kept its "
                                   f"shape, rendered at {out.width}x{out.height} (fit: exact would stretch it)")
            for r in results:
                for w in r.warnings:
                    if w not in warnings:
                        warnings.append(w)
            alpha_out = None
            if options.alpha_video is not None:
                alpha_out = self._alpha_pass(job, options.alpha_video, segments, src_path, driver_node, blob, cancel,
                                             dest, stats)
            metrics.job_rendered(out.frame_count, time.monotonic() - t0, codec)
            notify(Progress(job_id, "done", out.frame_count, out.frame_count))
            return RenderResult(
                job_id=job_id, output=dest, file_size=fin["file_size"],
                duration=out.frame_count * out.fps_den / out.fps_num, frames=out.frame_count,
                width=out.width, height=out.height, fps=float(out.fps), encoder=codec, segments=count,
                seconds=time.monotonic() - t0, nodes=[r.node_id for r in results], warnings=warnings,
                stats=stats, source_color=src.color_info(), output_color=out.color_info(), alpha_output=alpha_out,
            )
        except BaseException as exc:
            raise unwrap_error(exc) from None
        finally:
            unplan()
            unhold()
            if joiner is not None:
                try:
                    # Staged files of a job that ends before (or without) its join; after a
                    # join this finds nothing.
                    joiner.discard.remote(job_id)
                except Exception:  # noqa: BLE001
                    pass
            for a in self.actors:
                try:
                    a.release.remote(job_id)
                except Exception:  # noqa: BLE001
                    pass
            try:
                self._progress.forget.remote(job_id)
            except Exception:  # noqa: BLE001
                pass
            if keeper is not None:
                keeper.close()  # the segments being kept are written before the job is called ended
            if feeder is not None:
                feeder.close()
            if preview is not None:
                preview.close()  # its playlist ended (it reads the source, which goes next)
            shutil.rmtree(workdir, ignore_errors=True)

    def _alpha_pass(self, job: JobSpec, fmt: AlphaFormat, segments: list, src_path: str, driver_node: str,
                    blob: list, cancel: threading.Event, dest: str, stats: dict[str, float]) -> str:
        """The captions alone with their alpha (options.alpha_video), next to ``dest``: the job's
        segments rendered again as captions only (JobSpec.alpha: captured as before, no source
        decoded, nothing of the video's pass changed) and joined on the same frame grid.
        Returns the file's path."""
        t0 = time.monotonic()
        ajob = job.model_copy(update={"alpha": fmt, "hwdec": "none"})
        _, refs = self._run_segments(ajob, ray.put(ajob), segments, src_path, driver_node, blob, cancel,
                                     lambda p: None, stats=stats)
        if cancel.is_set():
            raise Cancelled()
        path = alpha_path(dest, fmt)
        ray.get(self._joiner(driver_node).finalize.remote(ajob, src_path, path, [s.frames for s in segments],
                                                          list(refs)))
        stats["alpha_s"] = time.monotonic() - t0
        return path

    def _pick_encoder(self, requested: str, infos: list[dict], fixed: str | None = None) -> str:
        """The video encoder: ``fixed`` where the container has its own (WebM: VP9), else H.264
        by NVENC where every actor opened it, else libx264."""
        if fixed is not None:
            if requested != "auto":
                raise RenderError("invalid_options", f"encoder {requested!r} does not write this container's "
                                                     f"video ({fixed}); leave encoder at auto")
            return fixed
        all_nvenc = bool(infos) and all(i["nvenc"] for i in infos)
        if requested == "auto":
            return "h264_nvenc" if all_nvenc else "libx264"
        if requested == "h264_nvenc" and not all_nvenc:
            raise RenderError("encoder_failed", "h264_nvenc was requested but a test encode failed on this cluster")
        return requested

    def _run_segments(self, job, job_ref, segments, src_path, driver_node, blob, cancel, notify,
                      needs_nvenc: bool = False, stats: dict | None = None,
                      submitted: Callable[[], None] | None = None,
                      on_file: Callable[[int, Any], None] | None = None, base_frames: int = 0):
        """Queue the job's segments in the shared scheduler and wait for them, reporting progress
        and passing on a cancel; ``on_file(index, ref)`` hears of each segment file as it is ready
        on this node; ``base_frames`` (the job's segments not run here) count as done in its
        progress. Returns (results, file refs) in segment order."""
        run = self._sched.new_run(job, job_ref, segments, src_path, driver_node, blob, needs_nvenc)
        self._sched.submit(run)
        if submitted is not None:
            submitted()
        last_poll = 0.0
        stop_deadline: float | None = None
        told: dict[int, Any] = {}

        def tell() -> None:
            if on_file is None or run.stopped:
                return
            for i, ref in list(run.data.items()):
                if told.get(i) is not ref:
                    told[i] = ref
                    on_file(i, ref)

        try:
            while not run.done.wait(TICK_S):
                tell()
                if cancel.is_set() and not run.stopped:
                    self._sched.cancel(run)
                if run.stopped:
                    # Cancelled or failed: wait (bounded) for its running segments to stop.
                    if stop_deadline is None:
                        stop_deadline = time.monotonic() + CANCEL_WAIT_S
                    elif time.monotonic() > stop_deadline:
                        break
                    continue
                if run.need_blob and not run.blob:
                    # An actor on another node is free for this job (a node joined): share the source.
                    with open(src_path, "rb") as fh:
                        blob[:] = [ray.put(fh.read())]  # the caller's list too: a re-run after lost files needs it
                    self._sched.set_blob(run, list(blob))
                now = time.monotonic()
                if now - last_poll >= 0.5:
                    last_poll = now
                    try:
                        done = ray.get(self._progress.done.remote(job.job_id), timeout=30)
                    except Exception as exc:  # noqa: BLE001 - progress is a report; the render goes on
                        log.warning("progress not available", extra={"job_id": job.job_id, "error": str(exc)[:200]})
                        continue
                    notify(Progress(job.job_id, "rendering", min(base_frames + done, job.out.frame_count),
                                    job.out.frame_count))
            tell()  # the segments that finished with the last tick's wait
        finally:
            self._sched.finish(run)
            if stats is not None:
                stats["segment_retries"] = stats.get("segment_retries", 0.0) + run.retries
        if cancel.is_set() or run.cancelled:
            raise Cancelled()
        if run.error is not None:
            raise run.error
        if run.stopped or len(run.results) != len(segments):
            raise RenderError("internal_error", f"job {job.job_id}: segments did not finish")
        order = [s.index for s in segments]
        return [run.results[i] for i in order], [run.data[i] for i in order]


def render(input: str, scenario: Any, output: str, options: RenderOptions | None = None,
           address: str | None = None, on_progress: Callable[[Progress], None] | None = None) -> RenderResult:
    """Render one job on a fresh actor pool (local Ray unless ``address`` is given)."""
    r = Renderer(address=address)
    try:
        return r.render(input, scenario, output, options, on_progress=on_progress)
    finally:
        r.close()
