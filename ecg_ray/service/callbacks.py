"""Signed progress/completion/error callbacks to the platform's backend.

Each job with callbacks in flight gets its own daemon worker thread: that keeps one job's
callbacks in order while a slow or dead receiver delays only its own job. Nothing here blocks
the caller (the render) or raises into it: a backend that is down never fails a render.

Wire format (the backend's existing contract): compact UTF-8 JSON with snake_case fields, and
``X-ECG-Signature: t=<unix s>,v1=<hex HMAC-SHA256(secret, f"{t}." + body)>`` when a secret is set.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable
from urllib.parse import urlsplit

import tenacity

from ecg_ray.config import Settings
from ecg_ray.errors import RenderError
from ecg_ray.service.models import split_ref
from ecg_ray.sources import urls
from ecg_ray.version import __version__

log = logging.getLogger(__name__)

FINAL_STATUSES = ("completed", "failed", "cancelled")

_BACKOFF_FIRST_S = 0.5
_BACKOFF_MAX_S = 30.0
# a final's waits between attempts: 0.5 s, doubled each time, at most 30 s
_BACKOFF = tenacity.wait_exponential(multiplier=_BACKOFF_FIRST_S, max=_BACKOFF_MAX_S)
_PROGRESS_TIMEOUT_S = 5.0     # progress is cheap to lose (a newer one follows): don't wait long
_PROGRESS_TRIES = 2
_PROGRESS_RETRY_PAUSE_S = 0.2
_IDLE_FORGET_S = 600.0        # a job silent this long without a final is forgotten (actor lives hours)
_DONE_MEMORY = 4096           # finished job ids remembered, to ignore a late duplicate final
_READ_LIMIT = 64 * 1024       # the receiver's answer is not used; read a little so the socket closes cleanly


# --- signing -------------------------------------------------------------------------------


def sign(secret: str, body: bytes, t: int | None = None) -> str:
    """The ``X-ECG-Signature`` value for ``body`` at unix time ``t`` (now when None)."""
    ts = int(time.time()) if t is None else int(t)
    mac = hmac.new(secret.encode("utf-8"), f"{ts}.".encode("ascii") + body, hashlib.sha256)
    return f"t={ts},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes, tolerance_s: int = 300, now: float | None = None) -> bool:
    """True when ``header`` signs ``body`` with ``secret`` and its t is within ``tolerance_s`` of now.

    Several v1 values are accepted (a receiver rotating secrets sees one match); every one is
    compared in constant time so timing says nothing about which bytes matched.
    """
    if not secret or not header:
        return False
    ts: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            try:
                ts = int(value)
            except ValueError:
                return False
        elif key == "v1":
            candidates.append(value)
    if ts is None or not candidates:
        return False
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance_s:  # stale (or from the future): a replay
        return False
    expected = sign(secret, body, ts).split("v1=", 1)[1].encode("ascii")
    ok = False
    for candidate in candidates:
        ok |= hmac.compare_digest(expected, candidate.encode("utf-8", "replace"))
    return ok


# --- payloads ------------------------------------------------------------------------------


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _percent(frames_done: int, frames_total: int) -> int:
    if frames_total <= 0:
        return 0
    return max(0, min(100, int(frames_done * 100 // frames_total)))


def _finite(value: Any) -> Any:
    """``value`` with NaN/inf replaced by None: strict JSON parsers reject them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _encode(payload: dict[str, Any]) -> bytes:
    try:
        text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=str)
    except ValueError:
        text = json.dumps(_finite(payload), ensure_ascii=False, separators=(",", ":"), default=str)
    return text.encode("utf-8")


def _redact(url: str) -> str:
    """The URL for logs, without query or credentials (callback URLs may carry tokens)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}{parts.path}"
    except ValueError:
        return "<unparsable url>"


def _user_agent() -> str:
    return f"ecg-ray/{__version__}"


# --- state ---------------------------------------------------------------------------------


@dataclass
class _Progress:
    frames_done: int
    frames_total: int
    percent: int
    message: str | None
    timestamp: str
    url: str
    eta: int | None = None             # estimated_time_remaining, whole seconds
    preview_url: str | None = None     # the live preview, once it plays


@dataclass
class _Final:
    event: str
    url: str
    body: bytes
    delivery_id: str
    queued_at: float  # monotonic; the retry budget counts from here
    on_done: Callable[[bool], None] | None = None  # told once the final is delivered or given up for good


@dataclass
class _Job:
    job_id: str
    cond: threading.Condition
    key: str = ""                      # the stream's key: the job id, or "<job id>#<attempt>" for a later attempt
    extra: dict[str, Any] = field(default_factory=dict)  # sent with every callback of the stream (attempt)
    percent: int = -1                  # newest accepted percent (sent or pending)
    pending: _Progress | None = None   # newest progress not yet sent (older ones are coalesced away)
    next_progress_at: float = 0.0      # monotonic; throttle
    final: _Final | None = None
    worker: threading.Thread | None = None
    last_activity: float = field(default_factory=time.monotonic)
    forbidden: set[str] = field(default_factory=set)  # URLs the policy refused (logged once)


@dataclass
class _Outcome:
    ok: bool
    retryable: bool
    reason: str = ""
    retry_after: float | None = None


class CallbackSender:
    """Delivers a job's progress and final callbacks in order, on daemon threads."""

    def __init__(
        self,
        settings: Settings,
        policy: urls.NetPolicy | None = None,
        on_failure: Callable[[str, str], None] | None = None,
    ) -> None:
        self._settings = settings
        self._policy = policy if policy is not None else urls.NetPolicy.from_settings(settings)
        self._on_failure = on_failure
        self._lock = threading.Lock()
        self._done_cond = threading.Condition(self._lock)  # flush() waits here
        self._jobs: dict[str, _Job] = {}
        self._done: OrderedDict[str, bool] = OrderedDict()  # job_id -> final delivered
        self._closing = False
        self._stop = threading.Event()  # set by close(): retries stop waiting

    # --- the caller's side (never blocks, never raises) ---

    def progress(self, job_id: str, url: str | None, frames_done: int, frames_total: int,
                 message: str | None = None, eta: int | None = None, attempt: int = 1,
                 preview_url: str | None = None) -> None:
        try:
            target = url or self._settings.backend_callback_url
            if not target:
                return
            pct = _percent(frames_done, frames_total)
            with self._lock:
                key = _key(job_id, attempt)
                if self._closing or key in self._done:
                    return
                job = self._job(job_id, attempt)
                if job.final is not None or pct < job.percent:  # never after the final, never backwards
                    return
                job.percent = pct
                job.pending = _Progress(frames_done, frames_total, pct, message, _utc_now(), target, eta, preview_url)
                job.last_activity = time.monotonic()
                self._wake(job)
        except Exception:  # a callback problem must not fail the render
            log.exception("progress callback not queued", extra={"job_id": job_id})

    def floor(self, job_id: str, attempt: int, percent: int) -> None:
        """Progress callbacks of this attempt below ``percent`` are not sent: a job going on after
        a restart has told the receiver that much already (the status it kept says so)."""
        with self._lock:
            job = self._job(job_id, attempt)
            job.percent = max(job.percent, int(percent))

    def final(self, job_id: str, url: str | None, status: str, attempt: int = 1,
              on_done: Callable[[bool], None] | None = None, **fields: Any) -> None:
        """Queue the job's final callback. ``on_done(delivered)`` is called once it is delivered or
        given up for good (retries spent, refused, no URL), not when the sender closes first: a
        service that stops owes it still."""
        try:
            self._final(job_id, url, status, fields, attempt, on_done)
        except Exception:
            log.exception("final callback not queued", extra={"job_id": job_id})

    def flush(self, job_id: str, timeout: float, attempt: int = 1) -> bool:
        """Wait until this job's final callback is delivered or given up; True if delivered."""
        deadline = time.monotonic() + timeout
        key = _key(job_id, attempt)
        with self._lock:
            while True:
                if key in self._done:
                    return self._done[key]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._done_cond.wait(remaining)

    def close(self, timeout: float = 5.0) -> None:
        """Stop accepting callbacks, give pending finals ``timeout`` to deliver, then stop the workers."""
        deadline = time.monotonic() + timeout
        with self._lock:
            self._closing = True
            workers = [j.worker for j in self._jobs.values() if j.worker is not None]
            for job in self._jobs.values():
                job.cond.notify_all()  # progress-only workers exit now
        for w in workers:
            w.join(max(0.0, deadline - time.monotonic()))
        self._stop.set()
        with self._lock:
            for job in self._jobs.values():
                job.cond.notify_all()
        grace = time.monotonic() + 0.5
        for w in workers:  # a worker inside a slow HTTP attempt can't be interrupted; it is a daemon
            w.join(max(0.0, grace - time.monotonic()))
        with self._lock:
            for job in list(self._jobs.values()):
                if job.final is None:
                    continue
                log.error("final callback given up: sender closed", extra={"job_id": job.job_id})
                if job.worker is None or not job.worker.is_alive():  # else it records its own outcome
                    self._jobs.pop(job.key, None)
                    self._remember(job.key, False)

    # --- internals ---

    def _final(self, job_id: str, url: str | None, status: str, fields: dict[str, Any], attempt: int = 1,
               on_done: Callable[[bool], None] | None = None) -> None:
        if status not in FINAL_STATUSES:
            log.error("final callback with unknown status ignored", extra={"job_id": job_id, "status": status})
            return
        target = url or self._settings.backend_callback_url
        with self._lock:
            key = _key(job_id, attempt)
            if key in self._done or (key in self._jobs and self._jobs[key].final is not None):
                log.warning("duplicate final callback ignored", extra={"job_id": job_id, "status": status})
                return
            if self._closing:
                log.warning("final callback after close ignored", extra={"job_id": job_id, "status": status})
                return
            if not target:  # nothing configured: nothing to deliver, and flush() must not wait
                _settled(on_done, False, job_id)
                self._remember(key, False)
                old = self._jobs.pop(key, None)
                if old is not None:
                    old.cond.notify_all()  # its worker sees the job is gone and exits
                return
            job = self._job(job_id, attempt)
            body = _encode(self._final_payload(job_id, status, max(job.percent, 0), {**job.extra, **fields}))
            job.final = _Final(status, target, body, str(uuid.uuid4()), time.monotonic(), on_done)
            job.pending = None  # superseded: the final carries the newest state
            job.last_activity = time.monotonic()
            self._wake(job)

    @staticmethod
    def _final_payload(job_id: str, status: str, last_percent: int, fields: dict[str, Any]) -> dict[str, Any]:
        # job_id is the job's ref (tenant.job_id); the receiver knows its job by the id it chose.
        payload: dict[str, Any] = {"job_id": split_ref(job_id)[1], "status": status}
        if status == "completed":
            payload.update(progress=100, message="Render completed", download_url=None, file_size=None,
                           duration=None)
        elif status == "failed":
            payload.update(progress=last_percent, error_message="", error_code="internal_error")
        else:
            payload.update(progress=last_percent, message="Job cancelled")
        payload.update({k: v for k, v in fields.items() if k not in ("job_id", "status")})
        if status == "failed" and not payload.get("message"):
            payload["message"] = payload.get("error_message") or "Render failed"
        if status == "completed":
            payload.setdefault("result", {})
        payload.setdefault("timestamp", _utc_now())
        return payload

    def _job(self, job_id: str, attempt: int = 1) -> _Job:
        key = _key(job_id, attempt)
        job = self._jobs.get(key)
        if job is None:
            job = self._jobs[key] = _Job(job_id, threading.Condition(self._lock), key=key,
                                         extra={"attempt": attempt} if attempt > 1 else {})
        return job

    def _wake(self, job: _Job) -> None:
        """Under the lock: make sure a worker serves ``job``."""
        if job.worker is None:
            job.worker = threading.Thread(target=self._run, args=(job,), name=f"ecg-callback-{job.job_id[:40]}",
                                          daemon=True)
            job.worker.start()
        else:
            job.cond.notify()

    def _remember(self, job_id: str, delivered: bool) -> None:
        """Under the lock: the job is finished; flush() callers learn its outcome."""
        self._done[job_id] = delivered
        while len(self._done) > _DONE_MEMORY:
            self._done.popitem(last=False)
        self._done_cond.notify_all()

    def _run(self, job: _Job) -> None:
        try:
            while True:
                with self._lock:
                    item = self._next(job)
                if item is None:
                    return
                if isinstance(item, _Final):
                    delivered = self._deliver_final(job, item)
                    if delivered or not self._stop.is_set():
                        _settled(item.on_done, delivered, job.job_id)
                    with self._lock:
                        self._jobs.pop(job.key, None)  # forget the job: only its outcome is kept
                        self._remember(job.key, delivered)
                        job.worker = None
                    return
                self._deliver_progress(job, item)
        except Exception:  # never let a worker die silently with a final undelivered
            log.exception("callback worker failed", extra={"job_id": job.job_id})
            with self._lock:
                self._jobs.pop(job.key, None)
                if job.final is not None:
                    self._remember(job.key, False)
                job.worker = None

    def _next(self, job: _Job) -> _Progress | _Final | None:
        """Under the lock: wait for the job's next delivery; None when the worker should exit."""
        while True:
            now = time.monotonic()
            if self._jobs.get(job.key) is not job:  # forgotten (finished without a URL)
                return self._exit(job)
            if job.final is not None:
                if self._stop.is_set():
                    return self._exit(job)  # close() reports it as given up
                return job.final
            if self._closing:
                return self._exit(job)
            if job.pending is not None:
                wait = job.next_progress_at - now
                if wait <= 0:
                    item, job.pending = job.pending, None
                    job.next_progress_at = now + self._settings.callback_interval_s
                    return item
                job.cond.wait(wait)
                continue
            idle = now - job.last_activity
            if idle >= _IDLE_FORGET_S:
                self._jobs.pop(job.key, None)
                return self._exit(job)
            job.cond.wait(_IDLE_FORGET_S - idle)

    @staticmethod
    def _exit(job: _Job) -> None:
        job.worker = None
        return None

    def _deliver_progress(self, job: _Job, p: _Progress) -> None:
        payload = {
            "job_id": split_ref(job.job_id)[1],
            "status": "processing",
            "progress": p.percent,
            "message": p.message or f"Rendering frame {p.frames_done}/{p.frames_total}",
            "frames_done": p.frames_done,
            "frames_total": p.frames_total,
            "timestamp": p.timestamp,
            **job.extra,
        }
        if p.eta is not None:  # absent until the job's rate is known (the backend's field is optional)
            payload["estimated_time_remaining"] = int(p.eta)
        if p.preview_url:
            payload["preview_url"] = p.preview_url
        body = _encode(payload)
        delivery_id = str(uuid.uuid4())
        timeout = min(self._settings.callback_timeout_s, _PROGRESS_TIMEOUT_S)

        def again(outcome: _Outcome) -> bool:
            if outcome.ok or not outcome.retryable:
                return False
            with self._lock:  # a newer progress (or the final) supersedes this one
                return job.pending is None and job.final is None and not self._closing

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_result(again), stop=tenacity.stop_after_attempt(_PROGRESS_TRIES),
            wait=tenacity.wait_fixed(_PROGRESS_RETRY_PAUSE_S), sleep=self._pause, retry_error_callback=_result)
        try:
            retrying(self._attempt, job, p.url, "progress", body, delivery_id, timeout)
        except _Closed:
            pass

    def _deliver_final(self, job: _Job, f: _Final) -> bool:
        event = f.event
        deadline = f.queued_at + self._settings.callback_retry_s
        attempts = 0

        def attempt() -> _Outcome:
            nonlocal attempts
            attempts += 1
            return self._attempt(job, f.url, event, f.body, f.delivery_id, self._settings.callback_timeout_s)

        def wait(state: tenacity.RetryCallState) -> float:  # the backoff, or longer if the receiver asked
            return min(max(_BACKOFF(state), _result(state).retry_after or 0.0), _BACKOFF_MAX_S)

        def given_up(state: tenacity.RetryCallState) -> _Outcome:
            outcome = _result(state)
            log.error("final callback given up after retries",
                      extra={"job_id": job.job_id, "event": event, "attempts": attempts,
                             "reason": outcome.reason, "url": _redact(f.url)})
            return outcome

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_result(lambda o: not o.ok and o.retryable), wait=wait,
            # give up when the next wait would end past the deadline (counted from the queueing)
            stop=lambda state: time.monotonic() + (state.upcoming_sleep or 0.0) > deadline,
            sleep=self._pause, retry_error_callback=given_up)
        try:
            outcome = retrying(attempt)
        except _Closed:
            log.error("final callback given up: sender closed",
                      extra={"job_id": job.job_id, "event": event, "attempts": attempts})
            return False
        if outcome.ok:
            log.info("final callback delivered", extra={"job_id": job.job_id, "event": event, "attempts": attempts})
        return bool(outcome.ok)

    def _pause(self, seconds: float) -> None:
        """tenacity's sleep between attempts: close() ends it at once, and the retries with it."""
        if self._stop.wait(seconds):
            raise _Closed()

    def _attempt(self, job: _Job, url: str, event: str, body: bytes, delivery_id: str, timeout: float) -> _Outcome:
        """One POST; signed afresh (the receiver rejects stale t)."""
        if url in job.forbidden:
            return _Outcome(False, False, "forbidden_url")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": _user_agent(),
            "X-ECG-Event": event,
            "X-ECG-Delivery": delivery_id,
        }
        if self._settings.callback_secret:
            headers["X-ECG-Signature"] = sign(self._settings.callback_secret, body)
        outcome = self._post(url, body, headers, timeout)
        if outcome.ok:
            log.debug("callback delivered", extra={"job_id": job.job_id, "event": event})
            return outcome
        if outcome.reason == "forbidden_url":
            job.forbidden.add(url)  # a policy answer doesn't change on retry: log once, stop
            log.error("callback URL refused by the network policy",
                      extra={"job_id": job.job_id, "event": event, "url": _redact(url)})
        else:
            log.warning("callback delivery failed",
                        extra={"job_id": job.job_id, "event": event, "reason": outcome.reason,
                               "retrying": outcome.retryable, "url": _redact(url)})
        if self._on_failure is not None:
            try:
                self._on_failure(job.job_id, outcome.reason)
            except Exception:
                log.exception("callback on_failure hook failed", extra={"job_id": job.job_id})
        return outcome

    def _post(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> _Outcome:
        try:
            # max_redirects=0: a callback is never redirected (a 3xx is a failed delivery), and the
            # policy check inside urls.request refuses forbidden networks for callbacks too.
            with urls.request(url, self._policy, method="POST", body=body, headers=headers,
                              timeout=timeout, max_redirects=0) as resp:
                status = int(resp.status)
                try:
                    # one read of what has arrived, not read(n): a receiver dripping its answer's
                    # body would hold the delivery (each byte restarting the timeout) for hours
                    resp.read1(_READ_LIMIT)
                except Exception:  # the answer's body is not needed
                    pass
                retry_after = _retry_after(resp.headers)
        except RenderError as exc:
            return _Outcome(False, exc.code != "forbidden_url", exc.code)
        except TimeoutError:
            return _Outcome(False, True, "timeout")
        except OSError:
            return _Outcome(False, True, "connection")
        if 200 <= status < 300:
            return _Outcome(True, False)
        # 4xx means the backend rejected this callback; sending it again won't help, except for
        # 408 (timeout) and 429 (slow down).
        retryable = not (400 <= status < 500) or status in (408, 429)
        return _Outcome(False, retryable, f"http_{status}", retry_after)


class _Closed(Exception):
    """The sender closed while a delivery waited to try again."""


def _result(state: tenacity.RetryCallState) -> _Outcome:
    """The last attempt's outcome (also what a spent retry returns, not tenacity's RetryError)."""
    assert state.outcome is not None
    outcome: _Outcome = state.outcome.result()
    return outcome


def _settled(on_done: Callable[[bool], None] | None, delivered: bool, job_id: str) -> None:
    if on_done is None:
        return
    try:
        on_done(delivered)
    except Exception:
        log.exception("final callback hook failed", extra={"job_id": job_id})


def _key(job_id: str, attempt: int) -> str:
    """One stream of callbacks per attempt of a job: a retried job's callbacks start again."""
    return job_id if attempt <= 1 else f"{job_id}#{attempt}"


def _retry_after(headers: Any) -> float | None:
    try:
        value = headers.get("Retry-After") if headers is not None else None
        return max(0.0, float(value)) if value else None
    except (TypeError, ValueError):  # an HTTP date: ignore, the backoff applies
        return None
