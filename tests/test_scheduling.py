"""The shared scheduler on a real multi-node Ray (ray.cluster_utils.Cluster: a head with no CPU
for segment actors, and worker raylets of one CPU each, so one segment actor per worker).

Jobs share the nodes fairly (a short job is not starved by a long one), a node that leaves in
the middle of a job loses nothing, a node that joins takes segments, the autoscaler is asked for
actor-sized bundles while segments wait for capacity, and idle actors are released."""

from __future__ import annotations

import gc
import json
import logging
import threading
import time
from fractions import Fraction

import pytest
import ray
from ray.cluster_utils import Cluster

from ecg_ray import RenderOptions
from ecg_ray.config import load_settings
from ecg_ray.media.testclip import make_numbered_video
from ecg_ray.rendering.renderer import Renderer

from .conftest import leftover_processes
from .frames import frame_numbers
from .test_render import CUES

BUSY_FRAMES = 1500
# A new caption on every frame: every frame is a capture. 60 s of it, so that a job of it is
# still running seconds after its first frames are reported (the encoder's count, which lags
# the captures): 240 frames took 1.3 s on 2 cores, done before any progress report.
BUSY = {"version": "1.3", "cues": [{"start": i / 25, "end": (i + 1) / 25, "text": f"장면 {i}"}
                                   for i in range(BUSY_FRAMES)]}


@pytest.fixture(scope="module")
def cluster():
    if ray.is_initialized():
        ray.shutdown()
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    ray.init(address=c.address, log_to_driver=False)
    yield c
    ray.shutdown()
    c.shutdown()


@pytest.fixture(scope="module")
def busy(media_dir):
    p = media_dir / "sched_busy.mp4"
    make_numbered_video(str(p), BUSY_FRAMES, Fraction(25), (320, 240), audio=False)
    return p


def _workers(c: Cluster, n: int) -> list:
    """Exactly ``n`` worker nodes of one CPU, as the driver sees them."""
    while len(c.worker_nodes) < n:
        c.add_node(num_cpus=1)
    while len(c.worker_nodes) > n:
        c.remove_node(next(iter(c.worker_nodes)))
    c.wait_for_nodes()
    deadline = time.monotonic() + 30
    while sum(1 for x in ray.nodes() if x["Alive"]) != n + 1:
        assert time.monotonic() < deadline, ray.nodes()
        time.sleep(0.2)
    return list(c.worker_nodes)


def _until(cond, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


class _Job(threading.Thread):
    """Renderer.render in a thread, as the service runs its jobs."""

    def __init__(self, r: Renderer, name: str, src, scenario, out, segments: int | None, done_order: list) -> None:
        super().__init__(daemon=True)
        self.r, self.name_, self.src, self.scenario, self.out, self.segments = r, name, src, scenario, out, segments
        self.done_order = done_order
        self.rendering = threading.Event()   # segments are running (some frames done)
        self.half = threading.Event()        # half the frames are done
        self.result = None
        self.error: BaseException | None = None
        self.t0 = self.t_end = 0.0
        self.seen: list[tuple[float, str, int]] = []  # (seconds since start, stage, frames done)

    def _progress(self, p) -> None:
        self.seen.append((round(time.monotonic() - self.t0, 2), p.stage, p.frames_done))
        if p.stage == "rendering" and p.frames_done > 0:
            self.rendering.set()
            if p.frames_done * 2 >= p.frames_total:
                self.half.set()

    def run(self) -> None:
        self.t0 = time.monotonic()
        try:
            self.result = self.r.render(str(self.src), self.scenario, str(self.out),
                                        RenderOptions(segments=self.segments), on_progress=self._progress)
            self.done_order.append(self.name_)
        except BaseException as exc:  # noqa: BLE001 - asserted by the test
            self.error = exc
            self.done_order.append(self.name_ + " failed")
        finally:
            self.t_end = time.monotonic()

    def started(self, timeout: float = 120) -> None:
        """Wait until some of the job's frames are done; say what happened if that never came."""
        deadline = time.monotonic() + timeout
        while not self.rendering.wait(0.05):
            if not self.is_alive() or time.monotonic() > deadline:
                raise AssertionError(
                    f"{self.name_} never reported frames done: alive={self.is_alive()} error={self.error!r} "
                    f"took={self.t_end - self.t0 if self.t_end else None} progress={self.seen[-8:]}")

    def wait(self, timeout: float = 300):
        self.join(timeout)
        assert not self.is_alive(), f"{self.name_} did not finish"
        assert self.error is None, f"{self.name_} failed: {self.error!r}"
        return self.result


def _dead(handle) -> bool:
    try:
        ray.get(handle.__ray_ready__.remote(), timeout=30)
        return False
    except ray.exceptions.RayActorError:
        return True


def _requested_bundles() -> list[dict]:
    """What request_resources last asked the autoscaler for (stored in GCS; no autoscaler needed)."""
    from ray.autoscaler.v2.utils import is_autoscaler_v2

    if is_autoscaler_v2():
        from ray._raylet import GcsClient
        from ray.autoscaler.v2.sdk import get_cluster_resource_state

        gcs = GcsClient(ray.get_runtime_context().gcs_address)
        out: list[dict] = []
        for constraint in get_cluster_resource_state(gcs).cluster_resource_constraints:
            for rc in constraint.resource_requests:
                out += [dict(rc.request.resources_bundle)] * rc.count
        return out
    from ray._private.ray_constants import AUTOSCALER_RESOURCE_REQUEST_CHANNEL
    from ray.experimental.internal_kv import _internal_kv_get

    raw = _internal_kv_get(AUTOSCALER_RESOURCE_REQUEST_CHANNEL)
    return json.loads(raw) if raw else []


@pytest.fixture
def one_machine():
    """A head that holds one segment actor itself (a single machine), no workers yet."""
    if ray.is_initialized():
        ray.shutdown()
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    ray.init(address=c.address, log_to_driver=False)
    yield c
    ray.shutdown()
    c.shutdown()


def test_a_worker_joining_a_single_machine_gets_the_source_and_segments(one_machine, busy, tmp_path):
    """The job starts with its only actor on the driver's node (the source is not shared); a
    worker joins mid-job: the source goes to it through the object store and it takes segments."""
    r = Renderer()
    order: list[str] = []
    try:
        r.ensure_actors(1)
        head = ray.get_runtime_context().get_node_id()
        assert {i["node_id"] for i in r.actor_info.values()} == {head}
        # The warm-up also started the join actor (on the driver's node), and the job uses it.
        joiner = r._finalizer
        assert joiner is not None and ray.get(joiner.__ray_ready__.remote(), timeout=60)
        job = _Job(r, "job", busy, BUSY, tmp_path / "grown.mp4", 6, order)
        job.start()
        job.started()
        new = one_machine.add_node(num_cpus=1)
        one_machine.wait_for_nodes()
        res = job.wait()
        assert r._finalizer is joiner
    finally:
        r.close()
    assert set(res.nodes) == {head, new.node_id}, res.nodes
    assert frame_numbers(tmp_path / "grown.mp4") == list(range(BUSY_FRAMES))


def test_a_short_job_is_not_starved_by_a_long_one(cluster, busy, numbered, tmp_path):
    """A long job (8 segments on 2 actors) starts first; a short one (1 segment) right after
    gets the next free actor and finishes first, while the long job keeps both nodes busy."""
    workers = _workers(cluster, 2)
    r = Renderer()
    order: list[str] = []
    try:
        assert r.slots() == 2
        r.ensure_actors(2)
        long = _Job(r, "long", busy, BUSY, tmp_path / "long.mp4", 8, order)
        short = _Job(r, "short", numbered, CUES, tmp_path / "short.mp4", 1, order)
        long.start()
        long.started()
        short.start()
        res_short, res_long = short.wait(), long.wait()
    finally:
        r.close()
    # Completion order, not timings: a scheduler that serves the first job's queue first (or
    # lets it keep its actors) finishes the long job first.
    assert order == ["short", "long"], order
    ids = {w.node_id for w in workers}
    assert set(res_long.nodes) == ids, (res_long.nodes, ids)   # the long job used both nodes
    assert set(res_short.nodes) <= ids
    assert frame_numbers(tmp_path / "long.mp4") == list(range(BUSY_FRAMES))
    assert frame_numbers(tmp_path / "short.mp4") == list(range(100))


def test_a_job_is_cut_at_the_same_frames_whatever_the_cluster_does(cluster, busy, numbered, tmp_path):
    """A 4 s job is cut into the same segments alone and while a long job's segments wait for
    both actors (the segment cache reuses segments only where the cuts match; the backlog it saw
    is still recorded). Every job's frames are all there, in order."""
    _workers(cluster, 2)
    r = Renderer()
    order: list[str] = []
    got = {}
    try:
        r.ensure_actors(2)
        got["alone"] = r.render(str(numbered), CUES, str(tmp_path / "alone.mp4"))
        long = _Job(r, "long-waiting", busy, BUSY, tmp_path / "long-waiting.mp4", 8, order)
        long.start()
        long.started()
        shared = _Job(r, "waiting", numbered, CUES, tmp_path / "waiting.mp4", None, order)
        shared.start()
        got["waiting"], res_long = shared.wait(), long.wait()
        assert res_long.segments == 8
        assert frame_numbers(tmp_path / "long-waiting.mp4") == list(range(BUSY_FRAMES))
    finally:
        r.close()
    assert got["alone"].segments == got["waiting"].segments == 2  # 4 s: two of at least 2 s
    assert got["alone"].stats["backlog_segments"] == 0
    assert got["waiting"].stats["backlog_segments"] >= 2, got["waiting"].stats
    for name in ("alone", "waiting"):
        assert frame_numbers(tmp_path / f"{name}.mp4") == list(range(100)), name


def test_a_cancelled_job_leaves_no_unhandled_error(cluster, busy, tmp_path):
    """Cancelled mid-render, a job ends with "cancelled", and the segment calls that failed
    with it leave nothing for Ray to log as an unhandled error (a traceback per segment)."""
    from ecg_ray import RenderError

    class Records(logging.Handler):
        def __init__(self) -> None:
            super().__init__()
            self.messages: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.messages.append(record.getMessage())

    _workers(cluster, 2)
    seen = Records()
    ray_log = logging.getLogger("ray._private.worker")  # where Ray reports unread errors
    ray_log.addHandler(seen)
    r = Renderer()
    cancel = threading.Event()

    def progress(p) -> None:
        if p.stage == "rendering":  # as its segments are queued: each call fails "cancelled"
            cancel.set()
    try:
        r.ensure_actors(2)
        with pytest.raises(RenderError) as err:
            r.render(str(busy), BUSY, str(tmp_path / "cancelled.mp4"), RenderOptions(segments=2),
                     on_progress=progress, cancel=cancel)
        assert err.value.code == "cancelled"
        # (Ray reports an error reference freed unread from its own thread, about a second later)
        gc.collect()
        time.sleep(3)
    finally:
        r.close()
        ray_log.removeHandler(seen)
    assert not [m for m in seen.messages if "Unhandled error" in m], seen.messages
    assert not (tmp_path / "cancelled.mp4").exists()


def test_idle_actors_are_released_and_the_pool_grows_back(cluster, numbered, tmp_path):
    workers = _workers(cluster, 2)
    settings = load_settings().model_copy(update=dict(actor_idle_s=3.0, min_warm_actors=1))
    r = Renderer(settings=settings)
    try:
        r.ensure_actors(2)
        before = r.actors
        first = r.render(str(numbered), CUES, str(tmp_path / "a.mp4"), RenderOptions(segments=2))
        assert set(first.nodes) == {w.node_id for w in workers}
        # (actors count as idle from the end of their last segment, not of the job)
        _until(lambda: len(r.actors) == 1, 30, "an idle actor to be released")
        kept = {h._actor_id for h in r.actors}
        gone = [h for h in before if h._actor_id not in kept]
        assert len(gone) == 1
        _until(lambda: _dead(gone[0]), 30, "the released actor to exit")
        # Its CPU went back to its node (which an autoscaler could now remove).
        _until(lambda: ray.available_resources().get("CPU", 0) == 1.0, 30, "the released CPU")
        assert ray.get(r.actors[0].ready.remote(), timeout=60)["node_id"] in {w.node_id for w in workers}
        # The next job grows the pool again, onto the freed node.
        res = r.render(str(numbered), CUES, str(tmp_path / "b.mp4"), RenderOptions(segments=2))
    finally:
        r.close()
    assert set(res.nodes) == {w.node_id for w in workers}
    assert frame_numbers(tmp_path / "b.mp4") == list(range(100))


def test_actors_over_the_memory_limit_are_replaced_by_fresh_ones(cluster, numbered, tmp_path):
    """ECG_ACTOR_RECYCLE_MB: an actor that holds more than the limit once a segment is done is
    replaced (here every actor is over 1 MiB): the job is whole, the old actors and their browsers
    are gone, fresh ones take their places at once, and the next job renders on them."""
    workers = _workers(cluster, 2)
    settings = load_settings().model_copy(update=dict(actor_recycle_mb=1))
    warned: list[logging.LogRecord] = []
    catch = logging.Handler(logging.WARNING)
    catch.emit = lambda rec: warned.append(rec) if "ECG_ACTOR_RECYCLE_MB" in rec.getMessage() else None
    log = logging.getLogger("ecg_ray.rendering.scheduler")
    log.addHandler(catch)
    r = Renderer(settings=settings)
    try:
        r.ensure_actors(2)
        before = {h._actor_id: h for h in r.actors}
        first = r.render(str(numbered), CUES, str(tmp_path / "a.mp4"), RenderOptions(segments=2))
        assert set(first.nodes) == {w.node_id for w in workers}
        # An actor with its Chromium holds tens of MiB at least; the job reports the most.
        assert first.stats["actor_mb_max"] > 50
        _until(lambda: len(r.actors) == 2 and not {h._actor_id for h in r.actors} & before.keys(),
               60, "both actors to be replaced")
        for h in before.values():
            _until(lambda h=h: _dead(h), 30, "a replaced actor to exit")
        ray.get([h.ready.remote() for h in r.actors], timeout=120)
        # The old actors' browsers went with them: only the two fresh actors' are left.
        _until(lambda: leftover_processes(allowed_browsers=2) == [], 30, "the old browsers to exit")
        second = r.render(str(numbered), CUES, str(tmp_path / "b.mp4"), RenderOptions(segments=2))
    finally:
        r.close()
        log.removeHandler(catch)
    assert set(second.nodes) == {w.node_id for w in workers}
    # A limit below what a fresh actor holds is said once (every actor here is replaced after its
    # first segment, four times in all).
    assert len(warned) == 1 and warned[0].limit_mb == 1 and warned[0].actor_mb > 50
    for out in ("a.mp4", "b.mp4"):
        assert frame_numbers(tmp_path / out) == list(range(100))


def test_a_node_that_leaves_mid_job_loses_nothing(cluster, busy, tmp_path):
    workers = _workers(cluster, 2)
    r = Renderer()
    order: list[str] = []
    try:
        r.ensure_actors(2)
        job = _Job(r, "job", busy, BUSY, tmp_path / "left.mp4", 6, order)
        job.start()
        assert job.half.wait(120)
        # 6 segments on 2 actors, half the frames done: each actor has finished one segment and
        # is in its second, with two segments still waiting. One node goes.
        victim = next(w for w in workers if w.node_id in {i["node_id"] for i in r.actor_info.values()})
        cluster.remove_node(victim)
        assert not order, "the job ended before the node was removed"
        res = job.wait()
        # The pool forgot the dead node's actor and holds what the cluster holds now.
        _until(lambda: len(r.actors) == 1, 30, "the pool to shrink to one actor")
        assert {i["node_id"] for i in r.actor_info.values()} == {next(w for w in workers if w is not victim).node_id}
    finally:
        r.close()
    survivor = next(w for w in workers if w is not victim)
    assert res.stats["segment_retries"] >= 1      # the segment running on the node was rendered again
    # The segment the node had finished was kept (its file had been copied to the driver's node),
    # not rendered again.
    assert victim.node_id in res.nodes and survivor.node_id in res.nodes, res.nodes
    assert frame_numbers(tmp_path / "left.mp4") == list(range(BUSY_FRAMES))


def test_a_node_that_joins_mid_job_takes_segments(cluster, busy, tmp_path):
    workers = _workers(cluster, 1)
    r = Renderer()
    order: list[str] = []
    try:
        assert r.slots() == 1
        r.ensure_actors(1)
        assert _requested_bundles() == []
        job = _Job(r, "job", busy, BUSY, tmp_path / "joined.mp4", 6, order)
        job.start()
        job.started()
        # Segments wait for capacity the cluster lacks: the autoscaler is asked for one
        # actor-sized bundle per segment left (running or waiting).
        asked = _until(_requested_bundles, 10, "a request to the autoscaler")
        assert 2 <= len(asked) <= 6 and all(b == {"CPU": 1.0} for b in asked), asked
        # The "autoscaler" adds a node: the pool grows onto it and it takes segments.
        new = cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        res = job.wait()
        assert r.slots() == 2 and len(r.actors) == 2
        # No job left: the request is cleared.
        _until(lambda: _requested_bundles() == [], 10, "the autoscaler request to be cleared")
    finally:
        r.close()
    assert new.node_id in res.nodes and workers[0].node_id in res.nodes, (res.nodes, new.node_id)
    assert frame_numbers(tmp_path / "joined.mp4") == list(range(BUSY_FRAMES))


def test_actors_per_node_follow_cpus_gpus_and_nvenc(cluster):
    """Capacity per node is the fewest actors its CPUs, GPU share and nvenc units allow; an actor
    asks for nvenc only where the cluster has it (GPUs are declared, not real: Ray takes the count)."""
    _workers(cluster, 0)
    nv = cluster.add_node(num_cpus=8, num_gpus=1, resources={"nvenc": 2})
    plain = cluster.add_node(num_cpus=2, num_gpus=1)
    cluster.wait_for_nodes()
    try:
        _until(lambda: sum(1 for x in ray.nodes() if x["Alive"]) == 3, 30, "the GPU nodes")
        r = Renderer()
        try:
            # 8 CPUs, 4 GPU shares (0.25 each), 2 nvenc units -> 2; the node without nvenc takes no
            # NVENC-shaped actor.
            assert r.slots() == 2
            opts = r._actor_options()
            assert (opts["num_cpus"], opts["num_gpus"], opts.get("resources")) == (1.0, 0.25, {"nvenc": 1.0})
            r.ensure_actors(1)   # Ray accepts the shape and places it where nvenc is
            assert {i["node_id"] for i in r.actor_info.values()} == {nv.node_id}
        finally:
            r.close()
        x264 = Renderer(settings=load_settings().model_copy(update=dict(encoder="libx264")))
        try:
            # No NVENC wanted: no nvenc asked; 8 CPUs and 4 GPU shares -> 4, plus 2 CPUs -> 2.
            assert x264.slots() == 6
            assert "resources" not in x264._actor_options()
        finally:
            x264.close()
        half_gpu = Renderer(settings=load_settings().model_copy(update=dict(segment_num_gpus=0.5, segment_nvenc=0)))
        try:
            assert half_gpu.slots() == 2 + 2   # 1 GPU / 0.5 on each node
        finally:
            half_gpu.close()
    finally:
        cluster.remove_node(nv)
        cluster.remove_node(plain)


def test_a_local_ray_counts_only_the_cores_this_process_may_use() -> None:
    """A one-off render confined to some cores (taskset, a cpuset) starts a local Ray of that
    many CPUs, so as many segment actors (Ray itself counts every core of the machine)."""
    import os
    import subprocess
    import sys

    code = ("import ray; from ecg_ray.rendering.cluster import ensure_ray; ensure_ray(); "
            "print('CPU', ray.cluster_resources().get('CPU')); ray.shutdown()")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    got = subprocess.run(["taskset", "-c", "0", sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=180, env=env)
    assert "CPU 1.0" in got.stdout, (got.stdout[-500:], got.stderr[-1500:])
