"""The job service: one detached, named Ray actor per service instance that takes jobs from the
job table (jobtable.py), renders them and reports them.

HTTP replicas come and go (Serve restarts and scales them); jobs live in the job table: SQLite
in ECG_STATE_DIR (one instance), or Redis when REDIS_URL is set (several instances, each its own
Ray cluster, share one queue; a job is rendered by the instance that holds its lease). A
restarted instance goes on: jobs that were running are taken again first, from the segments
they had finished (kept in the store's work area, workarea.py), then the queued ones in their
order; a job interrupted more than ECG_MAX_INTERRUPTIONS times fails with ``interrupted``. A
final callback is written with the job's end and sent again by a restarted instance until it
is delivered or given up.

Within an attempt, status only moves forward (queued -> processing -> completed | failed |
cancelled) and progress never decreases; the same job submitted again after it failed or was
cancelled is a new attempt (``_retry``).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import ray
import tenacity

from ecg_ray import metrics
from ecg_ray.config import DEFAULT_PUBLIC_BASE_URL, Settings, load_settings
from ecg_ray.errors import Cancelled, RenderError
from ecg_ray.logs import setup_logging
from ecg_ray.media.containers import check_supported, container
from ecg_ray.rendering.gpu import gpu_info
from ecg_ray.rendering.preview import HlsPreview
from ecg_ray.rendering.renderer import Renderer
from ecg_ray.rendering.resume import SegmentKeeper
from ecg_ray.rendering.workdirs import remove_job_files, sweep_stale
from ecg_ray.scenario.normalize import normalize
from ecg_ray.service.callbacks import CallbackSender
from ecg_ray.service.eta import Eta
from ecg_ray.service.jobtable import JobRecord, JobTable, StoreUnavailable
from ecg_ray.service.links import LinkSigner
from ecg_ray.service.models import (
    JobError,
    JobList,
    JobOutput,
    JobState,
    JobStatus,
    QueueStatus,
    RenderRequest,
    SubmitOutcome,
    job_ref,
    split_ref,
)
from ecg_ray.service.preview import (
    FILE_PATTERN,
    preview_area,
    preview_location,
    preview_name,
    preview_route,
    sweep_previews,
)
from ecg_ray.service.segcache import segment_cache
from ecg_ray.service.sidefiles import make_side_files, side_file_problem, store_side_files
from ecg_ray.service.storage import (
    SIDECARS,
    FileKind,
    LocalStore,
    S3Store,
    Sidecar,
    download_route,
    make_store,
    result_name,
)
from ecg_ray.service.workarea import remove_work_area, sweep_work_areas, work_area
from ecg_ray.sources.inputs import check_input
from ecg_ray.sources.urls import NetPolicy

log = logging.getLogger(__name__)

SERVICE_NAME = "ecg_job_service"
NAMESPACE = "ecg_ray"
_SAVE_EVERY_S = 1.0       # progress written to the table at most this often per job (and each whole percent)
_CANCEL_WAIT_S = 15.0     # how long a cancel call waits for a running job to stop
_CANCEL_POLL_S = 0.5      # how often an instance looks for cancels asked through another (Redis)
_T = TypeVar("_T")
_STORE_RETRY_S = 2.0      # a worker's pause while the job table cannot be reached
HEALTH_ACTOR_WAIT_S = 6.0  # /health's wait for the segment actors (api.HEALTH_TIMEOUT_S is the whole answer)
STORE_RETRY_AFTER_S = 5   # Retry-After of a 503 while the job table cannot be reached


@dataclass
class _Job:
    """A job this instance is rendering now."""

    request: RenderRequest
    status: JobStatus
    cancel: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    saved_at: float = 0.0
    saved_percent: int = 0    # whole percent of the status last written (callbacks never go below it)
    dirty: bool = False       # a change not yet written (the table could not be reached)
    lost: bool = False        # its lease went to another instance: this one stops and writes nothing
    eta: Eta = field(default_factory=Eta)


def _now() -> float:
    return time.time()


def _times(n: int) -> str:
    return "once" if n == 1 else f"{n} times"


def make_table(settings: Settings) -> JobTable:
    """The job table the settings ask for: Redis when REDIS_URL is set, else SQLite."""
    if settings.redis_url:
        from ecg_ray.service.redis_table import RedisTable

        return RedisTable(settings.redis_url, settings.redis_prefix, settings.instance or socket.gethostname(),
                          settings.lease_s, settings.redis_job_ttl_s)
    from ecg_ray.service.sqlite_table import SqliteTable

    return SqliteTable(settings.state_dir)


def _until_stored(fn: Callable[[], _T], closed: threading.Event, message: str, extra: dict[str, Any],
                  level: int = logging.WARNING) -> _T | None:
    """``fn()``, tried again every _STORE_RETRY_S while the job table cannot be reached (each
    failure logged with ``message``); None once ``closed`` is set (it also ends the wait)."""

    def logged(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        log.log(level, message, extra={**extra, "error": getattr(exc, "message", str(exc))})

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(StoreUnavailable), stop=lambda state: closed.is_set(),
        wait=tenacity.wait_fixed(_STORE_RETRY_S), sleep=tenacity.nap.sleep_using_event(closed),
        before_sleep=logged, reraise=True)
    try:
        return retrying(fn)
    except StoreUnavailable:  # the service closed meanwhile
        return None


@ray.remote
class JobService:
    """Workers, leases and callbacks of one service instance over the job table (a threaded actor)."""

    def __init__(self) -> None:
        setup_logging()
        self.settings = load_settings()
        self.name = self.settings.instance or socket.gethostname()
        self.policy = NetPolicy.from_settings(self.settings)
        self.store = make_store(self.settings)
        self.cache = segment_cache(self.store, self.settings)
        self.table = self._open_table()
        secret = self.settings.link_secret.encode() if self.settings.link_secret else self.table.secret("links")
        self.links = LinkSigner(secret, self.settings.link_expiry_s)
        self.callbacks = CallbackSender(self.settings, self.policy,
                                        on_failure=lambda job_id, reason: metrics.callback_failed(reason))
        self.local: dict[str, _Job] = {}   # jobs this instance renders now
        self.lock = threading.Lock()
        self._durations: deque[float] = deque(maxlen=20)  # recent jobs' run times (Retry-After)
        self._started_at = _now()
        self._renderer: Any = None
        self._renderer_lock = threading.Lock()
        self._warm_error = ""
        self._warmed = threading.Event()  # the first warm-up has ended (well or not)
        self._closed = threading.Event()
        sweep_stale(self.settings.tmp_dir)  # a killed predecessor's directories
        self._send_owed()
        self._workers = [threading.Thread(target=self._work, name=f"ecg-job-worker-{i}", daemon=True)
                         for i in range(max(1, self.settings.max_concurrent_jobs))]
        for t in self._workers:
            t.start()
        threading.Thread(target=self._keep_leases, name="ecg-leases", daemon=True).start()
        threading.Thread(target=self._sweep_previews, name="ecg-preview-sweep", daemon=True).start()
        # Start the segment actors (and their browsers) now, so the first job does not wait.
        threading.Thread(target=self._warm, name="ecg-warm", daemon=True).start()

    # -- start-up ------------------------------------------------------------------------
    def _open_table(self) -> JobTable:
        """The job table; Redis not answering yet is waited for (the service has nothing to do
        without it), logged every try."""
        table = _until_stored(lambda: make_table(self.settings), threading.Event(),
                              "job table not reachable; trying again", {}, logging.ERROR)
        assert table is not None  # (only a close ends the tries, and nothing closes this one)
        return table

    def _send_owed(self) -> None:
        """Final callbacks the table still owes (the service stopped before they were delivered),
        and the work areas of jobs that are not running any more."""
        try:
            owed = self.table.owed()
            running = set(self.table.running())
        except StoreUnavailable as exc:
            log.error("owed callbacks not read", extra={"error": exc.message})
            return
        for rec in owed:
            if rec.outbox is not None:
                log.info("final callback sent again after a restart", extra={"job_id": rec.status.ref})
                self._send_final(rec.status.ref, rec.outbox)
        threading.Thread(target=sweep_work_areas, args=(self.store, running), name="ecg-sweep",
                         daemon=True).start()

    def _renderer_get(self) -> Any:
        with self._renderer_lock:
            if self._renderer is None:
                self._renderer = Renderer(settings=self.settings)
            return self._renderer

    def _warm(self) -> None:
        try:
            r = self._renderer_get()
            r.ensure_actors(r.slots())
            self._warm_error = ""
        except Exception as exc:  # noqa: BLE001 - reported by health
            self._warm_error = str(exc)[:500]
            log.error("warming the segment actors failed", extra={"error": self._warm_error})
        finally:
            self._warmed.set()

    # -- submission ------------------------------------------------------------------------
    def submit(self, body: RenderRequest | dict, tenant: str = "") -> dict:
        """Queue the job ``body`` asks for as ``tenant``'s (job ids are unique per tenant): a
        request the HTTP edge validated already, or a dict (``ecg_ray.submit``) validated here."""
        return self._submit(body, tenant).model_dump(mode="json")

    def _submit(self, body: RenderRequest | dict, tenant: str) -> SubmitOutcome:
        try:
            req = body if isinstance(body, RenderRequest) else RenderRequest.model_validate(body)
        except Exception as exc:  # noqa: BLE001 - pydantic's message names the field
            return SubmitOutcome(code=422, error=JobError(code="invalid_request", message=str(exc)[:2000]))
        try:
            self._validate(req)
        except RenderError as exc:
            return SubmitOutcome(code=422, error=JobError(code=exc.code, message=exc.message))
        except Exception as exc:  # noqa: BLE001 - a validator bug: answer it, never lose the actor call
            log.exception("validation failed unexpectedly", extra={"job_id": req.job_id})
            return SubmitOutcome(code=500, error=JobError(code="internal_error", message=str(exc)[:500]))
        try:
            return self._enter(req, tenant)
        except StoreUnavailable as exc:
            return SubmitOutcome(code=503, retry_after=STORE_RETRY_AFTER_S,
                                 error=JobError(code=exc.code, message=exc.message))

    def _enter(self, req: RenderRequest, tenant: str) -> SubmitOutcome:
        fp = req.fingerprint()
        job_id = req.job_id or uuid.uuid4().hex
        ref = job_ref(tenant, job_id)
        req = req.model_copy(update={"job_id": job_id})
        with self.table.lock(ref):
            rec = self.table.get(ref)
            if rec is not None:
                if rec.fingerprint != fp:
                    return SubmitOutcome(code=409, status=self._view(rec.status), error=JobError(
                        code="conflict", message=f"job {job_id!r} exists with a different request"))
                if JobState(rec.status.state) not in (JobState.FAILED, JobState.CANCELLED):
                    return SubmitOutcome(code=200, created=False, status=self._view(rec.status))
            waiting = len(self.table.queued())
            if waiting >= self.settings.max_queued_jobs:
                return SubmitOutcome(code=429, retry_after=self._retry_after(), error=JobError(
                    code="queue_full",
                    message=f"{waiting} jobs are waiting (limit {self.settings.max_queued_jobs}); retry later"))
            if rec is not None:
                # The platform submits the same job again after an upstream failure: a new attempt.
                attempt = rec.status.attempt + 1
                status = JobStatus(job_id=job_id, tenant=tenant, state=JobState.QUEUED, created_at=_now(),
                                   attempt=attempt, message=f"Queued (attempt {attempt})")
                self.table.add(JobRecord(0, rec.request, fp, status))
                log.info("job queued again", extra={"job_id": ref, "attempt": attempt, "after": rec.status.state})
            else:
                status = JobStatus(job_id=job_id, tenant=tenant, state=JobState.QUEUED, created_at=_now(),
                                   message="Queued")
                self.table.add(JobRecord(0, req, fp, status))
                log.info("job queued", extra={"job_id": ref, "queued": waiting + 1})
                if req.options.unknown():
                    # Accepted, not refused: a newer backend may send options this service predates.
                    log.warning("unknown options ignored", extra={"job_id": ref, "options": req.options.unknown()})
        self._publish_counts()
        return SubmitOutcome(code=200, created=True, status=self._view(status))

    def _validate(self, req: RenderRequest) -> None:
        """What can be known before the job runs: a bad scenario or a refused URL is a 422 now,
        not a failed job later. The request's shape was checked once, at the HTTP edge (the
        model); these are the rules the model cannot see. The scenario is checked at 16:9: the
        frame's shape moves where simple cues' lines go, never whether a scenario is valid, and
        the render lays it out again for the video it probes."""
        normalize(req.scenario, 16 / 9)
        check_supported(req.options.format)
        problem = side_file_problem(req)
        if problem:
            raise RenderError("invalid_options", problem)
        check_input(req.video_url, self.settings, self.policy, allow_local=False, what="video_url")
        url = req.callback_url or self.settings.backend_callback_url
        if req.callback_url:
            self.policy.check(url)

    def _retry_after(self) -> int:
        """Seconds until a queue slot is likely free: recent job durations over the workers."""
        recent = list(self._durations)
        per_job = sum(recent) / len(recent) if recent else 30.0
        return max(1, int(per_job / max(1, self.settings.max_concurrent_jobs)) + 1)

    # -- the workers ---------------------------------------------------------------------------
    def _work(self) -> None:
        while not self._closed.is_set():
            try:
                got = self.table.claim()
            except StoreUnavailable as exc:
                log.warning("job table not reachable; not taking work", extra={"error": exc.message})
                self._closed.wait(_STORE_RETRY_S)
                continue
            if got is None:
                self.table.wait(1.0)
                continue
            job_id, resumed = got
            job: _Job | None = None
            release = True
            try:
                job = self._start(job_id, resumed)
                if job is not None:
                    self._run(job)
            except StoreUnavailable as exc:
                # Not started: its lease lapses and it is taken again (here or by another instance).
                log.warning("job not started: job table not reachable", extra={"job_id": job_id, "error": exc.message})
                release = False
                self._closed.wait(_STORE_RETRY_S)
            finally:
                with self.lock:
                    if job is not None and self.local.get(job_id) is job:
                        del self.local[job_id]
                if job is not None:
                    job.done.set()
                    release = release and not job.lost  # another instance has it now
                if release:
                    self._release(job_id, ended=job is None or JobState(job.status.state).terminal)
                self._publish_counts()

    def _release(self, job_id: str, ended: bool) -> None:
        _until_stored(lambda: self.table.release(job_id, ended), self._closed, "lease not released yet",
                      {"job_id": job_id})

    def _start(self, job_id: str, resumed: bool) -> _Job | None:
        """The claimed job as this instance's to render, or None when there is nothing to render
        (ended meanwhile, or interrupted too often: failed here)."""
        rec = self.table.get(job_id)
        if rec is None:
            return None
        st = rec.status
        with self.lock:
            old = self.local.get(job_id)
        if old is not None:
            # Its previous attempt is still winding down here (its temp files share the job's
            # name): this attempt starts once that one is out of the way.
            old.done.wait(_CANCEL_WAIT_S)
        if st.state not in (JobState.QUEUED, JobState.PROCESSING):  # ended meanwhile (cancelled while waiting)
            return None
        resumed = st.state == JobState.PROCESSING  # it was running when its instance stopped
        job = _Job(rec.request, st, saved_percent=int(st.progress))
        with self.lock:
            self.local[job_id] = job
        try:
            if self._begin(job, resumed):
                return job
        except BaseException:
            self._forget(job)
            raise
        self._forget(job)
        return None

    def _forget(self, job: _Job) -> None:
        with self.lock:
            if self.local.get(job.status.ref) is job:
                del self.local[job.status.ref]
        job.done.set()

    def _begin(self, job: _Job, resumed: bool) -> bool:
        """Mark the job as running here; False when it ends before it starts (cancelled meanwhile,
        interrupted too often)."""
        job_id, st = job.status.ref, job.status
        if self.table.cancel_requested([job_id]):
            self._finish(job, "cancelled", error=JobError(code="cancelled", message="cancelled"))
            return False
        if resumed:
            times = st.interruptions + 1
            if times > self.settings.max_interruptions:
                self._remove_temp(job_id)
                remove_work_area(self.store, job_id)
                self._finish(job, "failed", error=JobError(
                    code="interrupted",
                    message=f"the service restarted {_times(times)} while this job was running "
                            f"(ECG_MAX_INTERRUPTIONS={self.settings.max_interruptions}); submit it again"))
                return False
            # Still processing to its clients (its state never goes back).
            log.info("job goes on after an interruption", extra={"job_id": job_id, "interruptions": times})
            self._set(job, force=True, interruptions=times, estimated_time_remaining=None,
                      message="Going on after a restart")
        else:
            self._set(job, state="processing", started_at=_now(), message="Starting")
        return True

    def _run(self, job: _Job) -> None:
        req = job.request
        job_id = job.status.ref  # the job's key in files, the store and logs (tenant.job_id)
        url = req.callback_url
        box = container(req.options.format)
        tmp_out = os.path.join(self.settings.tmp_dir, f"ecg-out-{job_id}.{box.ext}")
        attempt = job.status.attempt
        # Going on after a restart: the receiver has heard of this much progress already.
        self.callbacks.floor(job_id, attempt, job.saved_percent)
        self.callbacks.progress(job_id, url, 0, 0, "Starting", attempt=attempt)
        keeper = SegmentKeeper(work_area(self.store, job_id), job_id)
        preview = self._preview(job)

        def on_progress(p: Any) -> None:
            messages = {"probing": "Reading the video", "joining": "Joining segments"}
            msg = messages.get(p.stage, f"Rendering frame {p.frames_done}/{p.frames_total}")
            pct = min(99.0, p.percent) if p.stage == "rendering" else (99.0 if p.stage == "done" else 0.0)
            eta = job.eta.update(time.monotonic(), p.frames_done, p.frames_total) if p.stage == "rendering" else None
            changes: dict[str, Any] = dict(progress=pct, frames_done=p.frames_done, frames_total=p.frames_total,
                                           message=msg)
            if eta is not None:
                changes["estimated_time_remaining"] = eta
            if p.segments:  # planned: how many segments, how many of them the cache had
                changes.update(segments=p.segments, reused_segments=p.reused_segments)
            self._set(job, **changes)
            if p.stage == "rendering":
                seg = job.status
                more: dict[str, Any] = {} if seg.segments is None else {"segments": seg.segments,
                                                                         "reused_segments": seg.reused_segments}
                if seg.preview_url:
                    more["preview_url"] = seg.preview_url
                self.callbacks.progress(job_id, url, p.frames_done, p.frames_total, msg, eta=eta, attempt=attempt,
                                        fields=more)

        try:
            result = self._renderer_get().render(
                req.video_url, req.scenario, tmp_out, req.options.render_options(), job_id=job_id,
                on_progress=on_progress, cancel=job.cancel, policy=self.policy,
                allow_local=False,  # the service: ECG_LOCAL_INPUT_DIRS rules
                keeper=keeper, cache=self.cache, preview=preview)
            if job.cancel.is_set():
                raise Cancelled()
            t_side = time.monotonic()
            made = make_side_files(req, result, tmp_out, os.path.splitext(tmp_out)[0])  # from the video as joined
            t_store = time.monotonic()
            self._set(job, message="Storing the result")
            stored = self.store.put(tmp_out, job_id, box, cancelled=job.cancel.is_set)
            metrics.bytes_uploaded(stored.file_size, self.store.kind)
            link = stored.download_url
            if not stored.location.startswith("s3://"):  # the download route: a signed link
                link = self._signed(link, job_id, box)
            files = store_side_files(self.store, job_id, made, job.cancel.is_set,
                                     lambda url, kind: self._signed(url, job_id, kind))
            out = JobOutput.of(result, download_url=link, location=stored.location, file_size=stored.file_size,
                               warnings=req.options.warnings(), rendered_by=self.name, files=files,
                               stages={"side_files": t_store - t_side, "store": time.monotonic() - t_store})
            self._finish(job, "completed", result=out)
        except RenderError as exc:
            state = "cancelled" if exc.code == "cancelled" else "failed"
            self._finish(job, state, error=JobError(code=exc.code, message=exc.message))
        except Exception as exc:  # noqa: BLE001 - a job failure must never stop the worker
            log.exception("job failed unexpectedly", extra={"job_id": job_id})
            self._finish(job, "failed", error=JobError(code="internal_error", message=str(exc)[:500]))
        finally:
            self._remove_temp(job_id)
            if JobState(job.status.state).terminal and not job.lost:
                remove_work_area(self.store, job_id)

    def _preview(self, job: _Job) -> HlsPreview | None:
        """The job's live preview, where its options (else ECG_PREVIEW) ask for one; its signed
        link goes into the status once its first fragment can play."""
        wanted = job.request.options.preview
        if not (self.settings.preview if wanted is None else wanted):
            return None
        ref = job.status.ref

        def ready() -> None:
            link = self.links.sign(preview_route(self._base_url(), ref), ref, preview_name(ref))
            self._set(job, preview_url=link)

        return HlsPreview(preview_area(self.store, ref), ref, self.settings.tmp_dir, on_ready=ready)

    def _base_url(self) -> str:
        if isinstance(self.store, LocalStore):
            return self.store.public_base_url
        return (self.settings.public_base_url or DEFAULT_PUBLIC_BASE_URL).rstrip("/")

    def _sweep_previews(self) -> None:
        """Remove previews ECG_PREVIEW_TTL_S after their jobs ended (checked every tenth of it,
        at most a minute apart)."""
        ttl = self.settings.preview_ttl_s
        while not self._closed.wait(min(60.0, max(1.0, ttl / 10))):
            sweep_previews(self.store, ttl, self._still_running)

    def _still_running(self, ref: str) -> bool:
        with self.lock:
            if ref in self.local:
                return True
        try:
            rec = self.table.get(ref)
        except StoreUnavailable:
            return True  # not known now: kept until a sweep can tell
        return rec is not None and not JobState(rec.status.state).terminal

    def preview_file(self, ref: str, name: str, expires: str | None, sig: str | None) -> dict[str, str] | None:
        """A file of the job's preview for its route: {"text": playlist} (the route puts the
        signature after its URIs), {"path": local file} or {"url": presigned S3 URL}; None when
        it is not there. RenderError(forbidden) without a valid signature."""
        why = self.links.check(ref, preview_name(ref), expires, sig)
        if why:
            raise RenderError("forbidden", why)
        if not FILE_PATTERN.fullmatch(name):
            return None
        if name.endswith(".m3u8"):
            data = preview_area(self.store, ref).get(name)
            return {"text": data.decode("utf-8")} if data is not None else None
        return preview_location(self.store, ref, name)

    def _remove_temp(self, job_id: str) -> None:
        remove_job_files(self.settings.tmp_dir, job_id)

    # -- leases and cancels asked elsewhere ------------------------------------------------------
    def _keep_leases(self) -> None:
        """Renew the leases of the jobs rendering here (every third of ECG_LEASE_S) and pass on
        cancels asked through another instance (every _CANCEL_POLL_S). A lease that went to
        another instance (this one was cut off from Redis longer than the lease) stops the job
        here without a word: the other instance renders it and reports it."""
        last_renew = 0.0
        while not self._closed.wait(_CANCEL_POLL_S):
            with self.lock:
                jobs = dict(self.local)
            if not jobs:
                continue
            ids = list(jobs)
            try:
                for job_id in self.table.cancel_requested(ids):
                    if not jobs[job_id].cancel.is_set():
                        log.info("cancel asked through another instance", extra={"job_id": job_id})
                        jobs[job_id].cancel.set()
                now = time.monotonic()
                if now - last_renew >= self.settings.lease_s / 3:
                    last_renew = now
                    kept = self.table.renew(ids)
                    for job_id in set(ids) - kept:
                        log.error("lease lost to another instance; stopping here", extra={"job_id": job_id})
                        jobs[job_id].lost = True
                        jobs[job_id].cancel.set()
                for job in jobs.values():  # changes the table missed while it was away
                    if job.dirty:
                        self._set(job, force=True)
            except StoreUnavailable as exc:
                # Running renders go on; the table gets their state when it is back, and the
                # leases are renewed at the first tick it answers (not a third of a lease later).
                last_renew = 0.0
                log.warning("job table not reachable; rendering on", extra={"error": exc.message})

    # -- state changes (forward only) -------------------------------------------------------------
    def _set(self, job: _Job, outbox: dict[str, Any] | None = None, force: bool = False, **changes: Any) -> bool:
        with self.lock:
            st = job.status
            if JobState(st.state).terminal:
                return False
            new_state = JobState(changes.get("state", st.state))
            if new_state.rank < JobState(st.state).rank:
                return False
            if "state" in changes:
                changes["state"] = new_state  # model_copy does not validate: the enum, not its string
            if "progress" in changes:
                changes["progress"] = max(st.progress, round(float(changes["progress"]), 2))
            if "frames_done" in changes:
                changes["frames_done"] = max(st.frames_done, changes["frames_done"])
            job.status = st.model_copy(update=changes)
            now = time.monotonic()
            # Each whole percent is written as it is reached (at most 100 writes a job): the
            # progress callbacks sent never exceed what a restarted service reads back.
            percent = int(job.status.progress)
            durable = force or outbox is not None or new_state != st.state or job.dirty \
                or now - job.saved_at >= _SAVE_EVERY_S or percent > job.saved_percent
            status = job.status
        if job.lost:
            return True
        try:
            if durable:
                self.table.save(status, outbox)
                with self.lock:
                    job.saved_at = now
                    job.saved_percent = max(job.saved_percent, percent)
                    job.dirty = False
            else:
                self.table.touch(status)
        except StoreUnavailable as exc:
            with self.lock:
                job.dirty = True
            if outbox is not None:
                raise  # a job's end is written before it is reported (_finish retries)
            log.warning("status not written yet", extra={"job_id": status.ref, "error": exc.message})
        return True

    def _finish(self, job: _Job, state: str, result: JobOutput | None = None, error: JobError | None = None) -> None:
        messages = {"completed": "Completed", "cancelled": "Cancelled"}
        changes: dict[str, Any] = {"state": state, "finished_at": _now(),
                                   "message": messages.get(state) or (error.message if error else state)}
        if result is not None:
            changes.update(result=result, progress=100.0, frames_done=result.frames, frames_total=result.frames,
                           estimated_time_remaining=0)
        if error is not None:
            changes["error"] = error
        st = job.status
        fields: dict[str, Any]
        if state == "completed" and result is not None:
            fields = dict(download_url=result.download_url, file_size=result.file_size, duration=result.duration,
                          message="Completed", progress=100, estimated_time_remaining=0,
                          result=result.model_dump(mode="json"))
        elif state == "failed":
            err = error or JobError(code="internal_error", message="the job failed")
            fields = dict(error_code=err.code, error_message=err.message, message=err.message,
                          progress=int(st.progress))
        else:
            fields = dict(message="Cancelled", progress=int(st.progress))
        outbox = {"status": state, "attempt": st.attempt, "url": job.request.callback_url, "fields": fields}
        if job.lost:
            return
        # The end is written before it is reported: a job never ends only in memory. While the
        # table is away the worker waits here (the job keeps its lease; nothing else runs it).
        if not _until_stored(lambda: self._set(job, outbox=outbox, **changes), self._closed,
                             "job's end not written yet", {"job_id": st.ref}):
            return
        if job.status.started_at:
            self._durations.append(_now() - job.status.started_at)
        metrics.job_finished(state)
        log.info("job " + state, extra={"job_id": st.ref, "error": error.code if error else None})
        self._send_final(st.ref, outbox)

    def _send_final(self, job_id: str, outbox: dict[str, Any]) -> None:
        """Queue the final callback ``outbox`` holds; the table forgets it once it is settled."""
        attempt = int(outbox["attempt"])

        def settled(delivered: bool) -> None:
            try:
                self.table.outbox_done(job_id, attempt)
            except StoreUnavailable:  # sent again at the next start: a duplicate, never a loss
                log.warning("delivered final callback not recorded", extra={"job_id": job_id})

        self.callbacks.final(job_id, outbox["url"], outbox["status"], attempt=attempt, on_done=settled,
                             **outbox["fields"])

    def _publish_counts(self) -> None:
        try:
            queued = len(self.table.queued())
        except StoreUnavailable:
            return
        with self.lock:
            running = len(self.local)
        metrics.job_state("queued", queued)
        metrics.job_state("processing", running)
        metrics.queue_depth(queued)

    # -- queries and commands ------------------------------------------------------------------
    def _view(self, st: JobStatus, queued: list[str] | None = None) -> JobStatus:
        if st.state == JobState.QUEUED:
            order = queued if queued is not None else self.table.queued()
            try:
                return st.model_copy(update={"queue_position": order.index(st.ref) + 1})
            except ValueError:
                pass
        return st

    def _current(self, job_id: str) -> JobStatus | None:
        """The job's status: this instance's own for a job it renders (newest), else the table's."""
        with self.lock:
            job = self.local.get(job_id)
            if job is not None:
                return job.status
        rec = self.table.get(job_id)
        return rec.status if rec is not None else None

    def status(self, job_id: str) -> dict | None:
        st = self._current(job_id)
        return self._view(st).model_dump(mode="json") if st is not None else None

    def changes(self, since: int, incarnation: str) -> dict:
        """What changed after change number ``since``: the feed of the replicas' status mirrors.

        One call a mirror refresh instead of one per status poll. Queued jobs are always sent
        (their queue positions move without a change of their own). A replica that knew another
        incarnation of the feed gets a full resync: unfinished jobs and the most recently changed
        finished ones; older jobs are answered by ``status`` on a miss."""
        full = incarnation != self.table.incarnation
        version, statuses = self.table.changes(since, full)
        queued = self.table.queued()
        with self.lock:
            mine = {j: job.status for j, job in self.local.items()}
        out = [self._view(mine.get(st.ref, st), queued) for st in statuses]
        return {"incarnation": self.table.incarnation, "version": version, "full": full,
                "jobs": [st.model_dump(mode="json") for st in out]}

    def jobs(self, limit: int, tenant: str | None = None, states: list[str] | None = None) -> dict:
        """The most recently submitted jobs, newest first (``JobList``): ``tenant``'s (None: every
        tenant's), in ``states`` (none given: any), at most ``limit``; ``more`` when others match."""
        wanted = {JobState(s) for s in states or ()}
        found = self.table.recent(limit + 1, tenant, wanted)
        queued = self.table.queued()
        with self.lock:
            mine = {j: job.status for j, job in self.local.items()}
        fresh = (mine.get(st.ref, st) for st in found[:limit])  # this instance's own: newest
        shown = [self._view(st, queued) for st in fresh if not wanted or st.state in wanted]
        return JobList(jobs=shown, more=len(found) > limit).model_dump(mode="json")

    def cancel(self, job_id: str) -> dict | None:
        with self.table.lock(job_id):
            rec = self.table.get(job_id)
            if rec is None:
                return None
            state = JobState(rec.status.state)
            # queued, or waiting to be taken over after its instance stopped: ended here
            taken = not state.terminal and self.table.unqueue(job_id)
            if not taken and state == JobState.PROCESSING:
                self.table.request_cancel(job_id)
        if taken:
            self._finish(_Job(rec.request, rec.status), "cancelled",
                         error=JobError(code="cancelled", message="cancelled while queued"))
        elif state == JobState.PROCESSING:
            log.info("cancelling job", extra={"job_id": job_id})
            with self.lock:
                job = self.local.get(job_id)
            if job is not None:
                job.cancel.set()
            self._wait_end(job_id, _CANCEL_WAIT_S)
        return self.status(job_id)

    def _wait_end(self, job_id: str, timeout: float | None) -> JobStatus | None:
        """The job's status once it ended, or as it is when ``timeout`` ran out."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self.lock:
                job = self.local.get(job_id)
            st = self._current(job_id)
            if st is None or JobState(st.state).terminal:
                return st
            left = 0.25 if deadline is None else min(0.25, deadline - time.monotonic())
            if left <= 0:
                return st
            if job is not None:
                job.done.wait(left)
            else:  # another instance renders it (Redis), or it waits in the queue
                time.sleep(left)

    def wait(self, job_id: str, timeout: float | None = None) -> JobOutput:
        """Block until the job ends; its output, or the RenderError it failed with."""
        st = self._wait_end(job_id, timeout)
        if st is None:
            raise RenderError("invalid_input", f"no job {job_id!r}")
        if not JobState(st.state).terminal:
            raise TimeoutError(f"job {job_id} still {st.state} after {timeout} s")
        if st.state == JobState.COMPLETED and st.result is not None:
            return st.result
        err = st.error or JobError(code="internal_error", message=st.message)
        raise RenderError(err.code, err.message)

    def wait_status(self, job_id: str, timeout: float) -> dict | None:
        if self._current(job_id) is None:
            return None
        self._wait_end(job_id, timeout)
        return self.status(job_id)

    @staticmethod
    def _kind(rec: JobRecord | None, file: str | None) -> FileKind | None:
        """What a download names: the job's video, or (``file``) a file made beside it; None for
        a file the job did not make."""
        if file is None:
            return container(rec.request.options.format if rec is not None else "mp4")
        kind = SIDECARS.get(file)
        if rec is None:  # no such job: the signature check refuses it, telling nothing of which ids exist
            return kind
        if kind is None or rec.status.result is None:
            return None
        made = rec.status.result.files.get(kind.kind)
        return kind if made is not None and made.content_type == kind.mime else None

    def _opened(self, job_id: str, expires: str | None, sig: str | None,
                file: str | None = None) -> tuple[JobRecord | None, FileKind | None]:
        """The job and file a download link opens: RenderError(forbidden) without a valid
        signature (even for an id that is not there: the answer tells nothing of which ids exist)."""
        rec = self.table.get(job_id)
        kind = self._kind(rec, file)
        name = result_name(job_id, kind) if kind is not None else f"{job_id}.{file}"
        why = self.links.check(job_id, name, expires, sig)
        if why:
            raise RenderError("forbidden", why)
        return rec, kind

    def local_path(self, job_id: str, expires: str | None = None, sig: str | None = None,
                   file: str | None = None) -> str | None:
        """The finished file of a completed job in the local store (for the download route)."""
        rec, kind = self._opened(job_id, expires, sig, file)
        if rec is None or kind is None or rec.status.state != JobState.COMPLETED:
            return None
        return self.store.local_path(job_id, kind)

    def fresh_download_url(self, job_id: str, expires: str | None = None, sig: str | None = None,
                           file: str | None = None) -> str | None:
        """A newly presigned URL for an S3-stored result (the one in the status may have expired)."""
        rec, kind = self._opened(job_id, expires, sig, file)
        if rec is None or kind is None or rec.status.state != JobState.COMPLETED or rec.status.result is None:
            return None
        location = rec.status.result.location
        if isinstance(self.store, S3Store) and location.startswith("s3://"):
            return self.store.presigned_url(self.store.key(job_id, kind))
        made = rec.status.result.files.get(kind.kind) if isinstance(kind, Sidecar) else None
        return made.download_url if made is not None else rec.status.result.download_url

    def download_link(self, job_id: str, file: str | None = None) -> str | None:
        """A new link to a completed job's video (or ``file`` beside it), for a caller whose API
        key may read the job (the route has checked that): the link in its status may have expired."""
        rec = self.table.get(job_id)
        if rec is None or rec.status.state != JobState.COMPLETED or rec.status.result is None:
            return None
        kind = self._kind(rec, file)
        if kind is None:
            return None
        if isinstance(self.store, S3Store) and rec.status.result.location.startswith("s3://"):
            return self.store.presigned_url(self.store.key(job_id, kind))
        if isinstance(self.store, LocalStore):
            return self._signed(download_route(self.store.public_base_url, job_id, kind), job_id, kind)
        return None

    def _signed(self, url: str, ref: str, kind: FileKind) -> str:
        """``url`` (the download route of the job's file ``kind``) as a signed, expiring link."""
        return self.links.sign(url, ref, result_name(ref, kind))

    def _instance(self) -> dict[str, Any]:
        return {"name": self.name, "pid": os.getpid(),
                "started_at": self._started_at, "max_interruptions": self.settings.max_interruptions,
                "job_store": self.table.describe()}

    def queue_status(self, tenant: str | None = None) -> dict:
        """The queue and the running jobs: all of them by their refs (``tenant`` None: the open
        mode and admin keys), or only ``tenant``'s, by their job ids, without the instance's
        internals."""
        with self.lock:
            here = sorted(self.local)
        running = self.table.running()
        leases = self.table.leases(running)
        queued = self.table.queued()
        instance = self._instance()
        if tenant is not None:
            def own(refs: list[str]) -> list[str]:
                return [split_ref(r)[1] for r in refs if split_ref(r)[0] == tenant]

            leases = {split_ref(r)[1]: h for r, h in leases.items() if split_ref(r)[0] == tenant}
            queued, running, here, instance = own(queued), own(running), own(here), {}
        return QueueStatus(queued=queued, running=running, leases=leases,
                           max_concurrent_jobs=self.settings.max_concurrent_jobs,
                           max_queued_jobs=self.settings.max_queued_jobs,
                           cluster=ray.cluster_resources(), available=ray.available_resources(),
                           running_here=here, instance=instance,
                           ).model_dump(mode="json")

    def health(self) -> dict:
        """Ray, GPUs, the encoder a one-frame test chose, whether the browsers and the job table answer."""

        r = self._renderer_get()
        actors = list(r.actors)
        ready: list[dict] = []
        problems: list[str] = []
        if self._warm_error:
            problems.append("segment actors failed to start: " + self._warm_error)
        try:
            # The platform's health check gives up after 10 s: answer within that, busy or not
            # (the actors are async: a segment rendering does not hold up ready()).
            ready = ray.get([a.ready.remote() for a in actors], timeout=HEALTH_ACTOR_WAIT_S)
        except Exception as exc:  # noqa: BLE001 - reported, not raised
            problems.append(f"segment actors not answering: {str(exc)[:300]}")
        if not actors and not self._warmed.is_set():
            problems.append("segment actors are still starting")
        # No actors after warming is the pool scaled to zero (ECG_MIN_WARM_ACTORS=0 and idle):
        # healthy, the next job starts them again.
        nvenc = bool(ready) and all(i.get("nvenc") for i in ready)
        wanted = self.settings.encoder
        encoder = wanted if wanted != "auto" else ("h264_nvenc" if nvenc else "libx264")
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        instance = self._instance()
        if not instance["job_store"].get("ok"):
            problems.append("job table not reachable: " + str(instance["job_store"].get("problem", "")))
        with self.lock:
            running = len(self.local)
            interrupted = sum(1 for j in self.local.values() if j.status.interruptions)
        try:
            queued = len(self.table.queued())
        except StoreUnavailable:
            queued = -1
        return {
            "ok": not problems,
            "problems": problems,
            "ray": {"nodes": len(nodes), "resources": ray.cluster_resources()},
            "gpus": gpu_info(),
            "encoder": encoder,
            # what decodes the sources (ECG_HWDEC): "cpu", or NVDEC on so many of the actors
            "decoder": ("cpu" if self.settings.hwdec == "none" else
                        f"nvdec on {sum(bool(i.get('nvdec')) for i in ready)} of {len(ready)} actors"),
            "browsers": {"ready": len(ready), "actors": len(actors)},
            "jobs": {"queued": queued, "running": running, "resumed": interrupted},
            "storage": self.store.kind,
            "instance": {**instance, "id": self.table.incarnation},
        }

    def close(self) -> None:
        """Stop taking work (tests and orderly shutdown); running jobs are cancelled."""
        self._closed.set()
        self.table.wake()
        with self.lock:
            running = list(self.local.values())
        for job in running:
            job.cancel.set()
        for job in running:
            job.done.wait(_CANCEL_WAIT_S)
        self.callbacks.close(timeout=5.0)
        if self._renderer is not None:
            self._renderer.close()
        self.table.close()


def get_service(env: dict[str, str] | None = None) -> Any:
    """The service's job actor: found by name, or started (detached, on the head node).

    ``env`` (settings as environment variables) reaches the actor and the segment actors it
    starts through the runtime environment; it only matters when the actor is started here."""
    return JobService.options(  # type: ignore[attr-defined]  # @ray.remote adds options()
        runtime_env={"env_vars": env} if env else None,
        name=SERVICE_NAME, namespace=NAMESPACE, lifetime="detached", get_if_exists=True,
        num_cpus=0, max_concurrency=1000, max_restarts=-1,
        # On the head node, next to the HTTP ingress: the local store's files are there.
        resources={"node:__internal_head__": 0.001},
    ).remote()
