"""The shared pool of segment actors and one fair dispatcher for all jobs of a Renderer: a
free actor goes to the job with the fewest segments running (docs/operations.md, "Scheduling");
retries on another actor, the pool following the cluster, autoscaler requests, idle release."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import ray

from ecg_ray import metrics
from ecg_ray.config import Settings
from ecg_ray.errors import RenderError
from ecg_ray.rendering.actors import SegmentRenderer
from ecg_ray.rendering.models import SegmentResult, SegmentSpec
from ecg_ray.rendering.retries import ACTOR_GONE, SEGMENT_RETRIES, unwrap_error
from ecg_ray.rendering.segment import JobSpec

log = logging.getLogger(__name__)


TICK_S = 0.2            # the dispatcher's longest wait on Ray between two scheduling decisions
_MAINTAIN_S = 1.0        # how often the pool is compared with the cluster (nodes, slots, idle, autoscaler)
CANCEL_WAIT_S = 30.0    # a cancelled or failed job waits this long for its segments to stop
_READY_TIMEOUT_S = 120.0  # ensure_actors waits this long for new actors (and their browsers)
JOB_START_GRACE_S = 20.0  # a job that has one ready actor waits at most this long for the rest
_RETIRE_WAIT_S = 10.0    # a released actor gets this long to close its browser before it is killed



# -- the shared scheduler -------------------------------------------------------------------

class _Actor:
    """One segment actor of the pool."""

    def __init__(self, handle: Any, shape: dict[str, float]) -> None:
        self.handle = handle
        self.shape = shape
        self.ready_ref = handle.ready.remote()
        self.info: dict | None = None   # ready()'s answer: node_id, nvenc, pid
        self.state = "starting"         # starting | idle | busy | recycle | gone
        self.since = time.monotonic()   # when it was started, or last became idle
        self.recycle: tuple[Any, int] | None = None  # (its last segment's file ref, its memory in MiB)
        self.segments = 0               # segments it has rendered

    @property
    def node_id(self) -> str | None:
        return self.info["node_id"] if self.info else None


def _once(fn: Callable[[], None]) -> Callable[[], None]:
    """``fn`` run by the first call only (from any thread); later calls do nothing."""
    first = threading.Lock()

    def call() -> None:
        if first.acquire(blocking=False):
            fn()
    return call


def _take_error(ref: Any) -> None:
    """Read the error held by a failed call's other return. Ray logs an error reference that is
    dropped unread as an "Unhandled error", with a traceback: every segment of a cancelled job
    did that."""
    try:
        ray.get(ref, timeout=0)  # ready with the first: never waits in the dispatcher
    except Exception:  # noqa: BLE001 - the error the call's first return already reported
        pass


class _Run:
    """One job's segments inside the scheduler: a queue of its own, what runs, what is done."""

    def __init__(self, seq: int, job: JobSpec, job_ref: Any, segments: list[SegmentSpec], src_path: str,
                 driver_node: str, blob: list, needs_nvenc: bool) -> None:
        self.seq = seq
        self.job_id = job.job_id
        self.job_ref = job_ref
        self.src_path = src_path
        self.driver_node = driver_node
        self.blob = list(blob)          # [ObjectRef of the source bytes] once shared, else [] (set_blob)
        self.needs_nvenc = needs_nvenc  # encoded with h264_nvenc: only actors whose test encode opened it
        self.pending: deque[SegmentSpec] = deque(segments)
        self.running = 0                # segments on actors now
        self.fetching = 0               # segments rendered, their file on its way to the driver's node
        self.attempts: dict[int, int] = {}
        self.retries = 0
        self.results: dict[int, SegmentResult] = {}
        self.data: dict[int, Any] = {}
        self.error: BaseException | None = None
        self.cancelled = False
        self.stopped = False            # cancelled or failed: nothing more is dispatched
        self.need_blob = False          # an actor on another node could take a segment: share the source
        self.last_served = 0.0
        self.done = threading.Event()


class Scheduler:
    """The one dispatcher of a Renderer: owns the actor pool and hands each free actor to the job
    with the fewest segments running (ties: the job served longest ago, then the oldest job), so
    a large job never starves small ones. Each job's segments wait in that job's own queue.

    A dispatcher thread waits on every segment call, started actor and segment-file transfer at
    once, retries a segment whose actor died on another actor, grows the pool onto capacity that
    joins the cluster, forgets actors of nodes that left, releases actors idle for
    ECG_ACTOR_IDLE_S, and asks the autoscaler for actor-sized bundles while segments wait for
    capacity the cluster does not have. Job threads (Renderer.render) only submit, wait, cancel."""

    def __init__(self, settings: Settings, max_actors: int | None, progress: Any) -> None:
        self.settings = settings
        self.max_actors = max_actors
        self.progress = progress
        self.cv = threading.Condition()
        self.pool: list[_Actor] = []
        self.runs: dict[int, _Run] = {}
        self.tasks: dict[Any, tuple[_Actor, _Run, SegmentSpec, Any]] = {}    # meta ref -> call
        self.fetches: dict[Any, tuple[_Run, SegmentSpec, SegmentResult]] = {}  # file ref -> done segment
        self.retiring: dict[Any, tuple[Any, float]] = {}                     # close() ref -> handle, deadline
        self.start_error: BaseException | None = None
        self.requested: list[dict] = []   # bundles last asked of the autoscaler ([]: none)
        self._seq = itertools.count()
        self._nodes: tuple[float, list[dict]] = (-1e9, [])
        self._thread: threading.Thread | None = None
        self._closed = False
        self._next_maintain = 0.0
        self._ensuring = 0                # jobs starting / ensure_actors calls: no idle release meanwhile
        self._warned_recycle = False      # said once that ECG_ACTOR_RECYCLE_MB is below a fresh actor
        self.planned = 0                  # segments of jobs planned and not yet submitted

    # -- the cluster ----------------------------------------------------------------------
    def nodes(self, max_age: float = 1.0) -> list[dict]:
        """Alive Ray nodes (cached for ``max_age`` seconds)."""
        at, nodes = self._nodes
        now = time.monotonic()
        if now - at > max_age:
            nodes = [n for n in ray.nodes() if n.get("Alive")]
            self._nodes = (now, nodes)
        return nodes

    def shape(self, nodes: list[dict] | None = None) -> dict[str, float]:
        """The resources one segment actor asks for on this cluster.

        CPU: ECG_SEGMENT_NUM_CPUS. GPU: ECG_SEGMENT_NUM_GPUS, only when the cluster has GPUs.
        nvenc: ECG_SEGMENT_NVENC, only where nodes advertise the custom resource and the encoder
        may be NVENC. An NVENC actor asks for both its GPU share and its nvenc unit: the GPU share
        makes Ray pick a GPU for it and set CUDA_VISIBLE_DEVICES (Ray leaves that variable alone
        for num_gpus=0, so every encoder would open GPU 0), and bounds what shares the GPU's
        memory and NVDEC; the nvenc unit bounds encoder sessions on the node. A node holds the
        smallest of the counts each resource allows."""
        nodes = self.nodes() if nodes is None else nodes
        s = self.settings

        def anywhere(res: str) -> bool:
            return any(n.get("Resources", {}).get(res, 0) > 0 for n in nodes)

        shape: dict[str, float] = {}
        if s.segment_num_cpus > 0:
            shape["CPU"] = float(s.segment_num_cpus)
        if s.segment_num_gpus > 0 and anywhere("GPU"):
            shape["GPU"] = float(s.segment_num_gpus)
        if s.segment_nvenc > 0 and s.encoder != "libx264" and anywhere("nvenc"):
            shape["nvenc"] = float(s.segment_nvenc)
        return shape

    def capacity(self, nodes: list[dict] | None = None) -> dict[str, int]:
        """Segment actors each alive node can hold (its total resources, whoever uses them)."""
        nodes = self.nodes() if nodes is None else nodes
        shape = self.shape(nodes)
        caps: dict[str, int] = {}
        for n in nodes:
            res = n.get("Resources", {})
            if shape:
                k = min(int(res.get(r, 0.0) / amt + 1e-9) for r, amt in shape.items())
            else:
                k = int(res.get("CPU", 0.0))
            caps[n["NodeID"]] = max(0, k)
        return caps

    def slots(self, nodes: list[dict] | None = None) -> int:
        if self.max_actors:
            return self.max_actors
        return max(1, sum(self.capacity(nodes).values()))

    @staticmethod
    def actor_options(shape: dict[str, float]) -> dict:
        opts: dict[str, Any] = {"num_cpus": shape.get("CPU", 0.0), "num_gpus": shape.get("GPU", 0.0),
                                "max_concurrency": 8}
        custom = {k: v for k, v in shape.items() if k not in ("CPU", "GPU")}
        if custom:
            opts["resources"] = custom
        return opts

    # -- the pool -------------------------------------------------------------------------
    def handles(self) -> list[Any]:
        with self.cv:
            return [a.handle for a in self.pool]

    def infos(self) -> dict[int, dict]:
        with self.cv:
            return {id(a.handle): a.info for a in self.pool if a.info is not None}

    def _spawn_locked(self, shape: dict[str, float]) -> _Actor:
        a = _Actor(SegmentRenderer.options(**self.actor_options(shape)).remote(), shape)  # type: ignore[attr-defined]  # @ray.remote adds options()
        self.pool.append(a)
        return a

    def _drop_locked(self, a: _Actor, why: str) -> None:
        """Forget an actor (dead, or on a node that left) and make sure it is gone."""
        if a in self.pool:
            self.pool.remove(a)
            log.warning("segment actor dropped", extra={"node": a.node_id, "reason": why[:200]})
        a.state = "gone"
        try:
            ray.kill(a.handle)
        except Exception:  # noqa: BLE001 - already dead
            pass

    def _retire_locked(self, a: _Actor, now: float, why: str = "") -> None:
        """Release an idle actor: close its browser, then kill it (its resources go back to the node)."""
        self.pool.remove(a)
        a.state = "gone"
        if why:
            log.warning("segment actor replaced", extra={"node": a.node_id, "reason": why})
        else:
            log.info("segment actor released after idling", extra={"node": a.node_id,
                                                                     "idle_s": round(now - a.since, 1)})
        try:
            self.retiring[a.handle.close.remote()] = (a.handle, now + _RETIRE_WAIT_S)
        except Exception:  # noqa: BLE001
            try:
                ray.kill(a.handle)
            except Exception:  # noqa: BLE001
                pass

    def _settle_started(self, actors: list[_Actor]) -> None:
        """Take the ready() answers of started actors (called by whichever thread saw them)."""
        for a in actors:
            try:
                info, exc = ray.get(a.ready_ref), None
            except BaseException as e:  # noqa: BLE001 - a failed start drops the actor
                info, exc = None, e
            with self.cv:
                if a.state != "starting":
                    continue
                if exc is None:
                    a.info, a.state, a.since = info, "idle", time.monotonic()
                    self.start_error = None
                else:
                    self.start_error = unwrap_error(exc)
                    self._drop_locked(a, f"start failed: {exc}")
                self._dispatch_locked()
                self.cv.notify_all()

    def plan(self, count_for: Callable[[int], int]) -> tuple[int, int, Callable[[], None]]:
        """Plan a job's segment count from the backlog (segments of other jobs waiting for an
        actor, or planned and about to be queued; not those running): ``count_for(backlog)``.
        Counted and reserved under one lock, so jobs planned at the same moment see each other.
        Returns (count, backlog, release); ``release`` (once; later calls do nothing) drops the
        reservation when the job's segments are queued or the job ends before."""
        with self.cv:
            backlog = self.planned + sum(len(r.pending) for r in self.runs.values() if not r.stopped)
            count = count_for(backlog)
            self.planned += count

        def release() -> None:
            with self.cv:
                self.planned -= count
        return count, backlog, _once(release)

    def hold(self) -> Callable[[], None]:
        """No idle release until the returned function is called (once; later calls do nothing):
        a job holds it from its start until its segments are queued."""
        with self.cv:
            self._ensuring += 1

        def release() -> None:
            with self.cv:
                self._ensuring -= 1
        return _once(release)

    def ensure_actors(self, n: int, timeout: float = _READY_TIMEOUT_S, grace: float | None = None) -> list[Any]:
        """Make the pool at least ``n`` actors and wait until ``n`` are ready (at most ``timeout``;
        with ``grace``, at most that long once one is ready). Returns up to ``n`` ready handles."""
        self.start()
        nodes = self.nodes()
        release = self.hold()
        try:
            return self._ensure_actors(n, nodes, timeout, grace)
        finally:
            release()

    def _ensure_actors(self, n: int, nodes: list[dict], timeout: float, grace: float | None) -> list[Any]:
        with self.cv:
            shape = self.shape(nodes)
            while len(self.pool) < n:
                self._spawn_locked(shape)
            now = time.monotonic()
            for a in self.pool:
                if a.state == "idle":
                    a.since = now  # counts as used: not released right after being asked for
        deadline = now + timeout
        first_ready: float | None = None
        while True:
            with self.cv:
                ready = [a for a in self.pool if a.info is not None]
                starting = [a for a in self.pool if a.state == "starting"]
            t = time.monotonic()
            if ready and first_ready is None:
                first_ready = t
            limit = deadline if grace is None or first_ready is None else min(deadline, first_ready + grace)
            if len(ready) >= n or not starting or t >= limit:
                break
            got, _ = ray.wait([a.ready_ref for a in starting], num_returns=min(n - len(ready), len(starting)),
                              timeout=limit - t)
            done = set(got)
            self._settle_started([a for a in starting if a.ready_ref in done])
        if not ready:
            err = self.start_error
            if isinstance(err, RenderError):
                raise err
            raise RenderError("internal_error", f"no segment actor could start: {err or 'timed out'}")
        if len(ready) < n:
            log.warning("segment actors still starting; going on with the ready ones",
                        extra={"ready": len(ready), "wanted": n})
        return [a.handle for a in ready[:n]]

    # -- jobs -----------------------------------------------------------------------------
    def new_run(self, job: JobSpec, job_ref: Any, segments: list[SegmentSpec], src_path: str, driver_node: str,
                blob: list, needs_nvenc: bool) -> _Run:
        return _Run(next(self._seq), job, job_ref, segments, src_path, driver_node, blob, needs_nvenc)

    def submit(self, run: _Run) -> None:
        self.start()
        with self.cv:
            self.runs[run.seq] = run
            self._grow_locked(self.nodes())
            self._dispatch_locked()
            self._check_done_locked(run)
            self.cv.notify_all()

    def set_blob(self, run: _Run, blob: list) -> None:
        with self.cv:
            run.blob, run.need_blob = blob, False
            self._dispatch_locked()

    def cancel(self, run: _Run) -> None:
        with self.cv:
            if not run.stopped:
                run.cancelled = True
                self._stop_locked(run)
            self._check_done_locked(run)

    def finish(self, run: _Run) -> None:
        """The job thread is done with ``run`` (its segments still running free their actors later)."""
        with self.cv:
            if not run.stopped and (run.pending or run.running):
                self._stop_locked(run)
            self.runs.pop(run.seq, None)
            self.cv.notify_all()

    def _stop_locked(self, run: _Run) -> None:
        run.stopped = True
        run.pending.clear()
        for ref, (r, _seg, _res) in list(self.fetches.items()):
            if r is run:
                del self.fetches[ref]
        run.fetching = 0
        for a, r, _seg, _blob in self.tasks.values():
            if r is run:
                try:
                    a.handle.cancel.remote(run.job_id)
                except Exception:  # noqa: BLE001
                    pass

    def _fail_locked(self, run: _Run, exc: BaseException) -> None:
        if not run.stopped:
            run.error = exc
            self._stop_locked(run)

    @staticmethod
    def _check_done_locked(run: _Run) -> None:
        if run.running == 0 and run.fetching == 0 and (run.stopped or not run.pending):
            run.done.set()

    # -- decisions ------------------------------------------------------------------------
    @staticmethod
    def _order(run: _Run) -> tuple:
        """Which job gets a free actor first: the smallest key."""
        return (run.running, run.last_served, run.seq)

    def _pick_locked(self, a: _Actor) -> _Run | None:
        best, best_key = None, None
        for run in self.runs.values():
            if run.stopped or not run.pending:
                continue
            if run.needs_nvenc and not (a.info or {}).get("nvenc"):
                continue
            if not run.blob and a.node_id != run.driver_node:
                run.need_blob = True  # the job thread shares the source; then this actor can take it
                continue
            key = self._order(run)
            if best_key is None or key < best_key:
                best, best_key = run, key
        return best

    def _dispatch_locked(self) -> None:
        for a in [a for a in self.pool if a.state == "idle"]:
            run = self._pick_locked(a)
            if run is None:
                continue
            seg = run.pending.popleft()
            run.running += 1
            run.last_served = time.monotonic()
            a.state = "busy"
            meta, blob_ref = a.handle.render.options(num_returns=2).remote(
                run.job_ref, seg, run.src_path, run.driver_node, run.blob, self.progress)
            self.tasks[meta] = (a, run, seg, blob_ref)

    def _grow_locked(self, nodes: list[dict]) -> None:
        """Start actors for segments that wait, up to what the cluster holds now."""
        waiting = sum(len(r.pending) for r in self.runs.values() if not r.stopped)
        free = sum(1 for a in self.pool if a.state in ("starting", "idle"))
        room = self.slots(nodes) - len(self.pool)
        n = min(waiting - free, room)
        if n > 0:
            shape = self.shape(nodes)
            for _ in range(n):
                self._spawn_locked(shape)
            log.info("segment actors added", extra={"added": n, "pool": len(self.pool)})

    def _demand_locked(self, nodes: list[dict]) -> list[dict] | None:
        """Bundles to ask the autoscaler for, or None to leave the last request as it is.

        One actor-shaped bundle per segment that runs or waits (request_resources asks for a
        cluster that holds them all, counting what already runs), capped by max_actors. Asked
        only once segments wait for capacity the cluster lacks; kept (following the demand down)
        while jobs run; cleared when no job has segments left."""
        demand = sum(len(r.pending) + r.running for r in self.runs.values() if not r.stopped)
        if self.max_actors:
            demand = min(demand, self.max_actors)
        if demand == 0:
            return []
        if self.requested or demand > sum(self.capacity(nodes).values()):
            shape = self.shape(nodes)
            return [dict(shape) for _ in range(demand)]
        return None

    def _request(self, bundles: list[dict]) -> None:
        try:
            from ray.autoscaler.sdk import request_resources

            request_resources(bundles=bundles)
        except Exception as exc:  # noqa: BLE001 - a hint to the autoscaler never fails a render
            log.warning("request_resources failed", extra={"error": str(exc)[:300]})
            return
        self.requested = bundles
        log.info("autoscaler request", extra={"bundles": len(bundles), "shape": bundles[0] if bundles else {}})

    # -- the dispatcher thread ------------------------------------------------------------
    def start(self) -> None:
        with self.cv:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._loop, name="ecg-scheduler", daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while True:
            try:
                if not self._step():
                    return
            except Exception as exc:  # noqa: BLE001 - the dispatcher must outlive one bad step
                if not ray.is_initialized():
                    return
                log.error("scheduler step failed", extra={"error": repr(exc)[:500]})
                time.sleep(TICK_S)

    def _step(self) -> bool:
        with self.cv:
            if self._closed:
                return False
            starting = {a.ready_ref: a for a in self.pool if a.state == "starting"}
            refs = list(self.tasks) + list(self.fetches) + list(starting) + list(self.retiring)
            if not refs:
                self.cv.wait(timeout=TICK_S if self.runs else _MAINTAIN_S)
        ready: list[Any] = []
        if refs:
            # fetch_local: a finished segment's file is copied to this (the driver's) node before
            # the segment counts as done, so a worker that leaves later takes no finished work.
            ready, _ = ray.wait(refs, num_returns=1, timeout=TICK_S, fetch_local=True)
            if ready:
                ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0, fetch_local=True)
        started = []
        for ref in ready:
            if ref in self.tasks:
                self._segment_returned(ref)
            elif ref in self.fetches:
                self._segment_fetched(ref)
            elif ref in starting:
                started.append(starting[ref])
            elif ref in self.retiring:
                self._kill_retired(ref)
        if started:
            self._settle_started(started)
        if time.monotonic() >= self._next_maintain:
            self._maintain()
            self._next_maintain = time.monotonic() + _MAINTAIN_S
        return True

    def _segment_returned(self, ref: Any) -> None:
        with self.cv:
            a, run, seg, blob_ref = self.tasks.pop(ref)
        try:
            meta, exc = ray.get(ref), None
        except BaseException as e:  # noqa: BLE001 - sorted out below
            meta, exc = None, e
            _take_error(blob_ref)
        with self.cv:
            run.running -= 1
            if exc is not None and isinstance(exc, ACTOR_GONE):
                self._drop_locked(a, f"segment call failed: {exc}")
                if not run.stopped:
                    n = run.attempts[seg.index] = run.attempts.get(seg.index, 0) + 1
                    run.retries += 1
                    log.warning("segment actor died; retrying", extra={
                        "job_id": run.job_id, "segment": seg.index, "attempt": n, "error": str(exc)[:200]})
                    if n > SEGMENT_RETRIES:
                        self._fail_locked(run, RenderError(
                            "internal_error", f"segment {seg.index} failed {n} times: {str(exc)[:500]}"))
                    else:
                        run.pending.appendleft(seg)
            else:
                limit = self.settings.actor_recycle_mb
                mb = int((meta or {}).get("actor_mb", 0))
                a.segments += 1
                if a.state == "busy" and exc is None and limit > 0 and mb > limit:
                    # Out of the dispatch; replaced once this segment's file has reached this node.
                    a.state, a.recycle = "recycle", (blob_ref, mb)
                    if a.segments == 1 and not self._warned_recycle:
                        self._warned_recycle = True
                        log.warning("ECG_ACTOR_RECYCLE_MB is below what a fresh actor holds after one segment: "
                                    "actors are replaced after every segment", extra={
                                        "actor_mb": mb, "limit_mb": limit, "job_id": run.job_id})
                elif a.state == "busy":
                    a.state, a.since = "idle", time.monotonic()
                if exc is not None:
                    self._fail_locked(run, exc)
                elif not run.stopped:
                    self.fetches[blob_ref] = (run, seg, SegmentResult(**meta))
                    run.fetching += 1
            self._check_done_locked(run)
            # (after an actor died, a fresh look at the nodes: its node may have left)
            self._grow_locked(self.nodes(max_age=0 if exc is not None else 1.0))
            self._dispatch_locked()

    def _segment_fetched(self, ref: Any) -> None:
        # "Ready" also means failed: a file whose node left before the copy reached this node is
        # ready at once, holding an error (and Ray's location table may still list this node).
        # So a segment whose node is gone now is rendered again rather than trusted.
        with self.cv:
            _run, _seg, res = self.fetches[ref]
        node_gone = res.node_id not in {n["NodeID"] for n in self.nodes(max_age=0)}
        with self.cv:
            if self.fetches.pop(ref, None) is None:
                return
            run, seg = _run, _seg
            run.fetching -= 1
            if not run.stopped:
                if node_gone:
                    n = run.attempts[seg.index] = run.attempts.get(seg.index, 0) + 1
                    run.retries += 1
                    log.warning("segment file lost with its node; rendering it again", extra={
                        "job_id": run.job_id, "segment": seg.index, "attempt": n})
                    if n > SEGMENT_RETRIES:
                        self._fail_locked(run, RenderError(
                            "internal_error", f"segment {seg.index} was lost {n} times with its node"))
                    else:
                        run.pending.appendleft(seg)
                        self._grow_locked(self.nodes())
                        self._dispatch_locked()
                else:
                    run.results[seg.index] = res
                    run.data[seg.index] = ref
            self._check_done_locked(run)

    def _recycle_locked(self, slots: int, now: float) -> None:
        """Actors whose memory passed ECG_ACTOR_RECYCLE_MB after a segment: retired once that
        segment's file is fetched (their node's store holds it until then), and each replaced at
        once by a fresh actor of the same shape, so the warm pool keeps its size. A bound on
        whatever a long-lived browser and Python process accumulate over thousands of segments."""
        for a in [a for a in self.pool if a.state == "recycle"]:
            if a.recycle is None:
                continue
            ref, mb = a.recycle
            if ref in self.fetches:
                continue
            self._retire_locked(a, now, f"{mb} MiB after a segment, over ECG_ACTOR_RECYCLE_MB="
                                        f"{self.settings.actor_recycle_mb}")
            metrics.actor_recycled()
            if len(self.pool) < slots:
                self._spawn_locked(a.shape)

    def _kill_retired(self, ref: Any) -> None:
        with self.cv:
            handle, _ = self.retiring.pop(ref)
        try:
            ray.kill(handle)
        except Exception:  # noqa: BLE001
            pass

    def _maintain(self) -> None:
        nodes = self.nodes(max_age=0)
        alive = {n["NodeID"] for n in nodes}
        now = time.monotonic()
        with self.cv:
            # Actors of nodes that left: forgotten (a running segment's call fails and is retried).
            for a in list(self.pool):
                if a.info is not None and a.node_id not in alive:
                    self._drop_locked(a, "its node left the cluster")
            slots = self.slots(nodes)
            # The cluster shrank: actors that never started beyond what it holds now.
            for a in [a for a in reversed(self.pool) if a.state == "starting"][:max(0, len(self.pool) - slots)]:
                self._drop_locked(a, "more actors than the cluster holds")
            self._recycle_locked(slots, now)
            self._grow_locked(nodes)
            # Warm actors idle for ECG_ACTOR_IDLE_S go (all but ECG_MIN_WARM_ACTORS started ones), so
            # idle nodes can scale down; none while a job starts or has segments waiting.
            idle_s = self.settings.actor_idle_s
            waiting = any(r.pending for r in self.runs.values() if not r.stopped)
            if idle_s > 0 and not waiting and not self._ensuring:
                spare = sum(1 for a in self.pool if a.info is not None) - max(0, self.settings.min_warm_actors)
                for a in sorted((a for a in self.pool if a.state == "idle"), key=lambda a: a.since):
                    if spare <= 0 or now - a.since < idle_s:
                        break
                    self._retire_locked(a, now)
                    spare -= 1
            for ref, (handle, deadline) in list(self.retiring.items()):
                if now >= deadline:  # close() did not answer: kill it anyway
                    del self.retiring[ref]
                    try:
                        ray.kill(handle)
                    except Exception:  # noqa: BLE001
                        pass
            bundles = None
            if self.settings.autoscale_requests:
                bundles = self._demand_locked(nodes)
            self._dispatch_locked()
        if bundles is not None and bundles != self.requested and (bundles or self.requested):
            self._request(bundles)

    # -- shutdown -------------------------------------------------------------------------
    def close(self) -> list[Any]:
        """Stop the dispatcher; returns every actor handle it had (the caller closes them)."""
        with self.cv:
            self._closed = True
            for run in list(self.runs.values()):
                if not run.stopped:
                    run.cancelled = True
                    self._stop_locked(run)
                run.done.set()
            handles = [a.handle for a in self.pool] + [h for h, _ in self.retiring.values()]
            self.pool, self.retiring = [], {}
            self.cv.notify_all()
            thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        if self.requested:
            self._request([])
        return handles


