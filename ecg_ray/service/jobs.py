"""The job registry and runner: one detached, named Ray actor that owns every job of the service.

HTTP replicas come and go (Serve restarts and scales them); the jobs live here. Every state
change is written to the SQLite job table, so a restarted service still answers for old jobs:
jobs that were running go on first, from the segments they had finished (kept in the store's
work area, workarea.py), then the queued ones in their order; a job interrupted more than
ECG_MAX_INTERRUPTIONS times fails with ``interrupted``. A final callback is written with the
job's end and sent again by a restarted service until it is delivered or given up.

Within an attempt, status only moves forward (queued -> processing -> completed | failed |
cancelled) and progress never decreases, whatever order late updates arrive in; the same job
submitted again after it failed or was cancelled is a new attempt (``_retry_locked``).
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

import ray

from ecg_ray import metrics
from ecg_ray.config import load_settings
from ecg_ray.errors import Cancelled, RenderError
from ecg_ray.logs import setup_logging
from ecg_ray.media.containers import check_supported, container
from ecg_ray.rendering.gpu import gpu_info
from ecg_ray.rendering.renderer import Renderer
from ecg_ray.rendering.resume import SegmentKeeper
from ecg_ray.rendering.workdirs import remove_job_files, sweep_stale
from ecg_ray.scenario.normalize import normalize
from ecg_ray.service.callbacks import CallbackSender
from ecg_ray.service.eta import Eta
from ecg_ray.service.models import (
    JobError,
    JobOutput,
    JobState,
    JobStatus,
    QueueStatus,
    RenderRequest,
    SubmitOutcome,
)
from ecg_ray.service.state import JobStore
from ecg_ray.service.storage import S3Store, make_store
from ecg_ray.service.workarea import remove_work_area, sweep_work_areas, work_area
from ecg_ray.sources.inputs import check_input
from ecg_ray.sources.urls import NetPolicy

log = logging.getLogger(__name__)

SERVICE_NAME = "ecg_job_service"
NAMESPACE = "ecg_ray"
_SAVE_EVERY_S = 1.0       # progress writes to SQLite at most this often per job
_CANCEL_WAIT_S = 15.0     # how long a cancel call waits for a running job to stop
_RECENT_ON_RESYNC = 2000  # finished jobs sent with a full resync of a replica's status mirror
HEALTH_ACTOR_WAIT_S = 6.0  # /health's wait for the segment actors (api.HEALTH_TIMEOUT_S is the whole answer)


@dataclass
class _Job:
    seq: int
    request: RenderRequest
    fingerprint: str
    status: JobStatus
    cancel: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    saved_at: float = 0.0
    saved_percent: int = 0    # whole percent of the status last written (callbacks never go below it)
    resuming: bool = False    # running when the service stopped: waits in the queue as processing
    version: int = 0          # the service's change counter when this job last changed
    eta: Eta = field(default_factory=Eta)


def _now() -> float:
    return time.time()


def _times(n: int) -> str:
    return "once" if n == 1 else f"{n} times"


@ray.remote
class JobService:
    """Queue, workers, state and callbacks of the render service (a threaded actor)."""

    def __init__(self) -> None:
        setup_logging()
        self.settings = load_settings()
        self.policy = NetPolicy.from_settings(self.settings)
        self.store = make_store(self.settings)
        self.db = JobStore(self.settings.state_dir)
        self.callbacks = CallbackSender(self.settings, self.policy,
                                        on_failure=lambda job_id, reason: metrics.callback_failed(reason))
        self.jobs: dict[str, _Job] = {}
        self.queue: deque[str] = deque()
        self.running: set[str] = set()
        self.cond = threading.Condition()
        self._seq = 0
        # Change feed for the HTTP replicas' status mirrors (api.py): a counter bumped on every
        # change, and an id that tells a replica the counter started again after a restart.
        self._version = 0
        self._incarnation = uuid.uuid4().hex
        self._started_at = _now()
        self._changed: OrderedDict[str, None] = OrderedDict()  # job ids, least recently changed first
        self._renderer: Any = None
        self._renderer_lock = threading.Lock()
        self._warm_error = ""
        self._warmed = threading.Event()  # the first warm-up has ended (well or not)
        self._closed = False
        sweep_stale(self.settings.tmp_dir)  # a killed predecessor's directories
        self._recover()
        self._workers = [threading.Thread(target=self._work, name=f"ecg-job-worker-{i}", daemon=True)
                         for i in range(max(1, self.settings.max_concurrent_jobs))]
        for t in self._workers:
            t.start()
        # Start the segment actors (and their browsers) now, so the first job does not wait.
        threading.Thread(target=self._warm, name="ecg-warm", daemon=True).start()

    # -- start-up ------------------------------------------------------------------------
    def _recover(self) -> None:
        resume: list[str] = []
        owed: list[tuple[_Job, dict[str, Any]]] = []
        for seq, req, fp, st, outbox in self.db.load():
            job = _Job(seq, req, fp, st, saved_percent=int(st.progress))
            self.jobs[st.job_id] = job
            self._bump(job)
            self._seq = max(self._seq, seq + 1)
            if outbox is not None:
                owed.append((job, outbox))
            if st.state == "processing":
                self._remove_temp(st.job_id)
                times = st.interruptions + 1
                if times > self.settings.max_interruptions:
                    self._finish(job, "failed", error=JobError(
                        code="interrupted",
                        message=f"the service restarted {_times(times)} while this job was running "
                                f"(ECG_MAX_INTERRUPTIONS={self.settings.max_interruptions}); submit it again"))
                    continue
                # Still processing to its clients (its state never goes back); first in the queue.
                job.resuming = True
                job.status = st.model_copy(update={"interruptions": times, "estimated_time_remaining": None,
                                                   "message": "Going on after a restart"})
                self.db.update(job.status)
                resume.append(st.job_id)
            elif st.state == "queued":
                self.queue.append(st.job_id)
            else:
                job.done.set()
        self.queue.extendleft(reversed(resume))
        for job, outbox in owed:
            log.info("final callback sent again after a restart", extra={"job_id": job.status.job_id})
            self._send_final(job, outbox)
        # Work areas of jobs that ended while no service ran their cleanup (a kill mid-cleanup).
        threading.Thread(target=sweep_work_areas, args=(self.store, set(resume)), name="ecg-sweep",
                         daemon=True).start()
        if self.jobs:
            log.info("job table loaded", extra={"jobs": len(self.jobs), "queued": len(self.queue),
                                                "resuming": len(resume)})
        self._publish_counts()

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
    def submit(self, body: dict) -> dict:
        return self._submit(body).model_dump(mode="json")

    def _submit(self, body: dict) -> SubmitOutcome:
        try:
            req = RenderRequest.model_validate(body)
        except Exception as exc:  # noqa: BLE001 - pydantic's message names the field
            return SubmitOutcome(code=422, error=JobError(code="invalid_request", message=str(exc)[:2000]))
        try:
            self._validate(req)
        except RenderError as exc:
            return SubmitOutcome(code=422, error=JobError(code=exc.code, message=exc.message))
        except Exception as exc:  # noqa: BLE001 - a validator bug: answer it, never lose the actor call
            log.exception("validation failed unexpectedly", extra={"job_id": req.job_id})
            return SubmitOutcome(code=500, error=JobError(code="internal_error", message=str(exc)[:500]))
        fp = req.fingerprint()
        with self.cond:
            if req.job_id and req.job_id in self.jobs:
                job = self.jobs[req.job_id]
                if job.fingerprint == fp:
                    if JobState(job.status.state) in (JobState.FAILED, JobState.CANCELLED):
                        if len(self.queue) >= self.settings.max_queued_jobs:
                            return self._queue_full()
                        return SubmitOutcome(code=200, created=True, status=self._view(self._retry_locked(job)))
                    return SubmitOutcome(code=200, created=False, status=self._view(job))
                return SubmitOutcome(code=409, status=self._view(job), error=JobError(
                    code="conflict", message=f"job {req.job_id!r} exists with a different request"))
            if len(self.queue) >= self.settings.max_queued_jobs:
                return self._queue_full()
            job_id = req.job_id or uuid.uuid4().hex
            req = req.model_copy(update={"job_id": job_id})
            status = JobStatus(job_id=job_id, state="queued", created_at=_now(), message="Queued")
            job = _Job(self._seq, req, fp, status)
            self._seq += 1
            self.db.insert(job.seq, req, fp, status)
            self.jobs[job_id] = job
            self._bump(job)
            self.queue.append(job_id)
            self.cond.notify()
            self._publish_counts()
            log.info("job queued", extra={"job_id": job_id, "queued": len(self.queue)})
            if req.options.unknown():
                # Accepted, not refused: a newer backend may send options this service predates.
                log.warning("unknown options ignored", extra={"job_id": job_id, "options": req.options.unknown()})
            return SubmitOutcome(code=200, created=True, status=self._view(job))

    def _queue_full(self) -> SubmitOutcome:
        return SubmitOutcome(code=429, retry_after=self._retry_after(), error=JobError(
            code="queue_full",
            message=f"{len(self.queue)} jobs are waiting (limit {self.settings.max_queued_jobs}); retry later"))

    def _retry_locked(self, old: _Job) -> _Job:
        """A new attempt of a failed or cancelled job, queued at the end: the platform submits the
        same job again after an upstream failure. (Callers hold self.cond.)"""
        st = old.status
        attempt = st.attempt + 1
        status = JobStatus(job_id=st.job_id, state=JobState.QUEUED, created_at=_now(), attempt=attempt,
                           message=f"Queued (attempt {attempt})")
        job = _Job(self._seq, old.request, old.fingerprint, status)
        self._seq += 1
        self.db.requeue(job.seq, status)
        self.jobs[st.job_id] = job
        self._bump(job)
        self.queue.append(st.job_id)
        self.cond.notify()
        self._publish_counts()
        log.info("job queued again", extra={"job_id": st.job_id, "attempt": attempt, "after": st.state})
        return job

    def _validate(self, req: RenderRequest) -> None:
        """What can be known before the job runs: a bad scenario or a refused URL is a 422 now,
        not a failed job later."""
        normalize(req.scenario, 16 / 9)
        check_supported(req.options.format)
        check_input(req.video_url, self.settings, self.policy, allow_local=False, what="video_url")
        url = req.callback_url or self.settings.backend_callback_url
        if req.callback_url:
            self.policy.check(url)

    def _retry_after(self) -> int:
        """Seconds until a queue slot is likely free: recent job durations over the workers."""
        recent = [j.status.finished_at - j.status.started_at for j in self.jobs.values()
                  if j.status.finished_at and j.status.started_at][-20:]
        per_job = sum(recent) / len(recent) if recent else 30.0
        return max(1, int(per_job / max(1, self.settings.max_concurrent_jobs)) + 1)

    # -- the workers ---------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            with self.cond:
                while not self.queue and not self._closed:
                    self.cond.wait()
                if self._closed:
                    return
                job = self.jobs[self.queue.popleft()]
                if job.status.state != "queued" and not (job.resuming and job.status.state == "processing"):
                    continue  # cancelled while waiting
                if job.status.job_id in self.running:
                    # Its previous attempt is still winding down (its temp files share the job's
                    # name): this attempt starts once that one is out of the way.
                    self.queue.appendleft(job.status.job_id)
                    self.cond.wait(0.05)
                    continue
                self.running.add(job.status.job_id)
                if job.resuming:
                    self._set(job, message="Going on after a restart")
                else:
                    self._set(job, state="processing", started_at=_now(), message="Starting")
            try:
                self._run(job)
            finally:
                with self.cond:
                    self.running.discard(job.status.job_id)
                    self._publish_counts()

    def _run(self, job: _Job) -> None:
        req = job.request
        job_id = job.status.job_id
        url = req.callback_url
        box = container(req.options.format)
        tmp_out = os.path.join(self.settings.tmp_dir, f"ecg-out-{job_id}.{box.ext}")
        attempt = job.status.attempt
        # Going on after a restart: the receiver has heard of this much progress already.
        self.callbacks.floor(job_id, attempt, job.saved_percent)
        self.callbacks.progress(job_id, url, 0, 0, "Starting", attempt=attempt)
        keeper = SegmentKeeper(work_area(self.store, job_id), job_id)

        def on_progress(p: Any) -> None:
            messages = {"probing": "Reading the video", "joining": "Joining segments"}
            msg = messages.get(p.stage, f"Rendering frame {p.frames_done}/{p.frames_total}")
            pct = min(99.0, p.percent) if p.stage == "rendering" else (99.0 if p.stage == "done" else 0.0)
            eta = job.eta.update(time.monotonic(), p.frames_done, p.frames_total) if p.stage == "rendering" else None
            changes: dict[str, Any] = dict(progress=pct, frames_done=p.frames_done, frames_total=p.frames_total,
                                           message=msg)
            if eta is not None:
                changes["estimated_time_remaining"] = eta
            self._set(job, **changes)
            if p.stage == "rendering":
                self.callbacks.progress(job_id, url, p.frames_done, p.frames_total, msg, eta=eta, attempt=attempt)

        try:
            result = self._renderer_get().render(
                req.video_url, req.scenario, tmp_out, req.options.render_options(), job_id=job_id,
                on_progress=on_progress, cancel=job.cancel, policy=self.policy,
                allow_local=False,  # the service: ECG_LOCAL_INPUT_DIRS rules
                keeper=keeper)
            if job.cancel.is_set():
                raise Cancelled()
            self._set(job, message="Storing the result")
            stored = self.store.put(tmp_out, job_id, box)
            metrics.bytes_uploaded(stored.file_size, self.store.kind)
            out = JobOutput.of(result, download_url=stored.download_url, location=stored.location,
                               file_size=stored.file_size, warnings=req.options.warnings())
            self._finish(job, "completed", result=out)
        except RenderError as exc:
            state = "cancelled" if exc.code == "cancelled" else "failed"
            self._finish(job, state, error=JobError(code=exc.code, message=exc.message))
        except Exception as exc:  # noqa: BLE001 - a job failure must never stop the worker
            log.exception("job failed unexpectedly", extra={"job_id": job_id})
            self._finish(job, "failed", error=JobError(code="internal_error", message=str(exc)[:500]))
        finally:
            self._remove_temp(job_id)
            if JobState(job.status.state).terminal:
                remove_work_area(self.store, job_id)

    def _remove_temp(self, job_id: str) -> None:
        remove_job_files(self.settings.tmp_dir, job_id)

    # -- state changes (forward only) -------------------------------------------------------------
    def _bump(self, job: _Job) -> None:
        # Callers hold self.cond (or run in __init__).
        self._version += 1
        job.version = self._version
        self._changed.pop(job.status.job_id, None)
        self._changed[job.status.job_id] = None

    def _set(self, job: _Job, outbox: dict[str, Any] | None = None, **changes: Any) -> bool:
        with self.cond:
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
            self._bump(job)
            now = time.monotonic()
            # Each whole percent is written as it is reached (at most 100 writes a job): the
            # progress callbacks sent never exceed what a restarted service reads back.
            percent = int(job.status.progress)
            if new_state != st.state or now - job.saved_at >= _SAVE_EVERY_S or percent > job.saved_percent:
                job.saved_at = now
                job.saved_percent = max(job.saved_percent, percent)
                self.db.update(job.status, outbox)
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
        url = job.request.callback_url
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
        outbox = {"status": state, "attempt": st.attempt, "url": url, "fields": fields}
        if not self._set(job, outbox=outbox, **changes):
            return
        job.done.set()
        metrics.job_finished(state)
        self._publish_counts()
        log.info("job " + state, extra={"job_id": st.job_id, "error": error.code if error else None})
        self._send_final(job, outbox)

    def _send_final(self, job: _Job, outbox: dict[str, Any]) -> None:
        """Queue the final callback ``outbox`` holds; the table forgets it once it is settled."""
        job_id, attempt = job.status.job_id, int(outbox["attempt"])
        self.callbacks.final(job_id, outbox["url"], outbox["status"], attempt=attempt,
                             on_done=lambda delivered: self.db.outbox_done(job_id, attempt), **outbox["fields"])

    def _publish_counts(self) -> None:
        metrics.job_state("queued", len(self.queue))
        metrics.job_state("processing", len(self.running))
        metrics.queue_depth(len(self.queue))

    # -- queries and commands ------------------------------------------------------------------
    def _view(self, job: _Job) -> JobStatus:
        st = job.status
        if st.state == "queued":
            try:
                return st.model_copy(update={"queue_position": self.queue.index(st.job_id) + 1})
            except ValueError:
                pass
        return st

    def status(self, job_id: str) -> dict | None:
        with self.cond:
            job = self.jobs.get(job_id)
            return self._view(job).model_dump(mode="json") if job else None

    def changes(self, since: int, incarnation: str) -> dict:
        """What changed after change number ``since``: the feed of the replicas' status mirrors.

        One call a mirror refresh instead of one per status poll. Queued jobs are always sent
        (their queue positions move without a change of their own). A replica that knew another
        incarnation (the service restarted) gets a full resync: unfinished jobs and the most
        recently changed finished ones; older jobs are answered by ``status`` on a miss."""
        with self.cond:
            full = incarnation != self._incarnation
            ids: dict[str, None] = dict.fromkeys(self.queue)
            if full:
                ids.update(dict.fromkeys(self.running))
            for n, job_id in enumerate(reversed(self._changed)):  # newest first: O(changes)
                if (full and n >= _RECENT_ON_RESYNC) or (not full and self.jobs[job_id].version <= since):
                    break
                ids[job_id] = None
            return {"incarnation": self._incarnation, "version": self._version, "full": full,
                    "jobs": [self._view(self.jobs[j]).model_dump(mode="json") for j in ids if j in self.jobs]}

    def cancel(self, job_id: str) -> dict | None:
        with self.cond:
            job = self.jobs.get(job_id)
            if job is None:
                return None
            state = job.status.state
            # a job waiting to go on after a restart is cancelled as a queued one is
            waiting = job.resuming and job_id not in self.running and job_id in self.queue
            if state == "queued" or waiting:
                try:
                    self.queue.remove(job_id)
                except ValueError:
                    pass
        if state == "queued" or waiting:
            self._finish(job, "cancelled", error=JobError(code="cancelled", message="cancelled while queued"))
        elif state == "processing":
            log.info("cancelling job", extra={"job_id": job_id})
            job.cancel.set()
            job.done.wait(_CANCEL_WAIT_S)
        return self.status(job_id)

    def wait(self, job_id: str, timeout: float | None = None) -> JobOutput:
        """Block until the job ends; its output, or the RenderError it failed with."""
        with self.cond:
            job = self.jobs.get(job_id)
        if job is None:
            raise RenderError("invalid_input", f"no job {job_id!r}")
        if not job.done.wait(timeout):
            raise TimeoutError(f"job {job_id} still {job.status.state} after {timeout} s")
        st = job.status
        if st.state == "completed" and st.result is not None:
            return st.result
        err = st.error or JobError(code="internal_error", message=st.message)
        raise RenderError(err.code, err.message)

    def wait_status(self, job_id: str, timeout: float) -> dict | None:
        with self.cond:
            job = self.jobs.get(job_id)
        if job is None:
            return None
        job.done.wait(timeout)
        return self.status(job_id)

    def local_path(self, job_id: str) -> str | None:
        """The finished file of a completed job in the local store (for the download route)."""
        with self.cond:
            job = self.jobs.get(job_id)
            if job is None or job.status.state != "completed":
                return None
            box = container(job.request.options.format)
        return self.store.local_path(job_id, box)

    def fresh_download_url(self, job_id: str) -> str | None:
        """A newly presigned URL for an S3-stored result (the one in the status may have expired)."""
        with self.cond:
            job = self.jobs.get(job_id)
            if job is None or job.status.state != "completed" or job.status.result is None:
                return None
            location = job.status.result.location
            box = container(job.request.options.format)
        if isinstance(self.store, S3Store) and location.startswith("s3://"):
            return self.store.presigned_url(self.store.key(job_id, box))
        return job.status.result.download_url

    def queue_status(self) -> dict:
        with self.cond:
            queued, running = list(self.queue), sorted(self.running)
        return QueueStatus(queued=queued, running=running,
                           max_concurrent_jobs=self.settings.max_concurrent_jobs,
                           max_queued_jobs=self.settings.max_queued_jobs,
                           cluster=ray.cluster_resources(), available=ray.available_resources(),
                           ).model_dump(mode="json")

    def health(self) -> dict:
        """Ray, GPUs, the encoder a one-frame test chose, and whether the browsers answer."""

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
        with self.cond:
            queued, running = len(self.queue), len(self.running)
            resuming = sum(1 for j in self.queue if self.jobs[j].resuming)
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
            "jobs": {"queued": queued, "running": running, "resuming": resuming},
            "storage": self.store.kind,
            "instance": {"id": self._incarnation, "pid": os.getpid(), "started_at": self._started_at,
                         "job_store": "sqlite", "max_interruptions": self.settings.max_interruptions},
        }

    def close(self) -> None:
        """Stop taking work (tests and orderly shutdown); running jobs are cancelled."""
        with self.cond:
            self._closed = True
            running = [self.jobs[j] for j in self.running]
            self.cond.notify_all()
        for job in running:
            job.cancel.set()
        for job in running:
            job.done.wait(_CANCEL_WAIT_S)
        self.callbacks.close(timeout=5.0)
        if self._renderer is not None:
            self._renderer.close()
        self.db.close()


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
