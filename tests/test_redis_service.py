"""Several service instances on one Redis (issue 25): each instance a process of its own with its
own local Ray cluster, all on a real redis-server on loopback. A job submitted to one is polled
and cancelled through the other; twenty jobs submitted across both are each rendered once; Redis
stopped and started again while a job renders; one instance killed mid-job, the other takes the
job over (from the segments it finished, in the shared output directory) and finishes it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import httpx
import psutil
import pytest

from ecg_ray.media.testclip import make_numbered_video

from .frames import frame_numbers
from .receiver import Receiver
from .redisutil import RedisServer
from .serveutil import free_port, serving_directory, wait_healthy

ROOT = Path(__file__).resolve().parents[1]
LONG_FRAMES = 2000
LONG = {"version": "1.3", "cues": [{"start": i / 25, "end": (i + 1) / 25, "text": f"자막 {i}"}
                                   for i in range(LONG_FRAMES)]}
SHORT = {"version": "1.3", "cues": [{"start": 0.4, "end": 1.2, "text": "짧은 자막"}]}
LEASE_S = "4"


class Instance:
    """One service instance (its own Ray cluster) in a process group of its own."""

    def __init__(self, name: str, base: Path, redis_url: str, rx: Receiver, media: str) -> None:
        self.name, self.base, self.redis_url, self.rx, self.media = name, base, redis_url, rx, media
        self.proc: subprocess.Popen[str] | None = None
        self.http: httpx.Client | None = None

    def start(self) -> Instance:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {"REDIS_URL": self.redis_url, "ECG_INSTANCE": self.name, "ECG_LEASE_S": LEASE_S,
               "ECG_STATE_DIR": str(self.base / self.name / "state"), "ECG_TMP_DIR": str(self.base / self.name / "tmp"),
               "ECG_OUTPUT_DIR": str(self.base / "out"),  # shared by both: their work areas too
               "ECG_PUBLIC_BASE_URL": self.url, "MAX_CONCURRENT_JOBS": "1", "ECG_MAX_QUEUED_JOBS": "50",
               "TEST_NUM_CPUS": "1"}
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.instance_main", str(port), json.dumps(env)],
                                     cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                     start_new_session=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip() == "ready", f"instance {self.name} did not start: {line!r}"
        self.http = httpx.Client(base_url=self.url, timeout=60)
        wait_healthy(self.http, timeout=300)
        return self

    def kill(self) -> None:
        """SIGKILL the instance and every process it started (Ray, its workers, Chromium)."""
        if self.proc is None:
            return
        try:
            procs = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            procs = []
        for p in [*procs]:
            try:
                p.send_signal(signal.SIGKILL)
            except psutil.NoSuchProcess:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(30)
        psutil.wait_procs(procs, timeout=30)
        self.proc = None
        if self.http is not None:
            self.http.close()

    def submit(self, job_id: str, scenario: dict, video: str, **options) -> httpx.Response:
        assert self.http is not None
        return self.http.post("/api/render/process", json={
            "job_id": job_id, "video_url": f"{self.media}/{video}", "scenario": scenario,
            "callback_url": self.rx.url_for("/cb"), "options": options})

    def status(self, job_id: str) -> dict:
        assert self.http is not None
        r = self.http.get(f"/api/render/{job_id}/status")
        assert r.status_code == 200, r.text
        return r.json()

    def wait(self, job_id: str, pred, timeout: float = 300) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            st = self.status(job_id)
            if pred(st):
                return st
            assert time.monotonic() < deadline, st
            time.sleep(0.2)


def ended(st: dict) -> bool:
    return st["state"] in ("completed", "failed", "cancelled")


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    base = tmp_path_factory.mktemp("redis-service")
    media = base / "media"
    media.mkdir()
    make_numbered_video(str(media / "long.mp4"), LONG_FRAMES, Fraction(25), (320, 240))
    make_numbered_video(str(media / "short.mp4"), 40, Fraction(25), (320, 240))
    rx = Receiver().start()
    with RedisServer(base / "redis") as redis_srv, serving_directory(media) as media_url:
        a = Instance("a", base, redis_srv.url, rx, media_url)
        b = Instance("b", base, redis_srv.url, rx, media_url)
        try:
            a.start()
            b.start()
            yield a, b, redis_srv, rx, base
        finally:
            a.kill()
            b.kill()
    rx.stop()


def _finals(rx: Receiver, job_id: str, timeout: float = 120) -> list:
    assert rx.wait_for(lambda reqs: any(r.job_id == job_id and r.json["status"] != "processing" for r in reqs),
                       timeout), [r.json for r in rx.events(job_id)]
    return [e.json for e in rx.events(job_id) if e.json["status"] != "processing"]


def test_submitted_to_one_polled_and_cancelled_through_the_other(two):
    a, b, _, rx, _ = two
    assert a.submit("x-1", LONG, "long.mp4").status_code == 200
    assert b.status("x-1")["state"] in ("queued", "processing")   # seen through b at once
    b.wait("x-1", lambda st: st["frames_done"] > 0)               # polled through b while a renders
    t0 = time.monotonic()
    r = b.http.post("/api/render/x-1/cancel")
    assert r.status_code == 200 and r.json()["state"] == "cancelled", r.text
    assert time.monotonic() - t0 < 5.0  # (a's lease thread looks for cancels every 0.5 s)
    assert a.status("x-1")["state"] == "cancelled"
    time.sleep(1.0)
    finals = _finals(rx, "x-1")
    assert [f["status"] for f in finals] == ["cancelled"]
    q = a.http.get("/api/render/queue/status").json()
    assert q["instance"]["job_store"]["kind"] == "redis" and q["instance"]["name"] == "a"
    assert "x-1" not in q["running"]
    # The jobs list (and the page polling it) is the same through either instance.
    for inst in (a, b):
        listed = inst.http.get("/api/render/jobs", params={"state": "cancelled"}).json()["jobs"]
        assert [j["job_id"] for j in listed if j["job_id"] == "x-1"] == ["x-1"], listed


def test_twenty_jobs_across_both_each_rendered_once(two):
    a, b, _, rx, base = two
    ids = [f"many-{i}" for i in range(20)]
    for i, job_id in enumerate(ids):
        assert (a if i % 2 else b).submit(job_id, SHORT, "short.mp4").status_code == 200
    by = {}
    for i, job_id in enumerate(ids):
        st = (b if i % 2 else a).wait(job_id, ended)   # polled through the other one
        assert st["state"] == "completed", st
        by[job_id] = st["result"]["rendered_by"]
        assert frame_numbers(st["result"]["location"]) == list(range(40))
    time.sleep(1.0)
    for job_id in ids:
        assert [f["status"] for f in _finals(rx, job_id)] == ["completed"], job_id
    assert set(by.values()) == {"a", "b"}, by   # both instances took work from the one queue
    assert a.http.get("/api/render/queue/status").json()["queued"] == []


def test_redis_away_and_back_while_a_job_renders(two):
    a, b, redis_srv, rx, _ = two
    assert b.submit("away-1", LONG, "long.mp4").status_code == 200
    b.wait("away-1", lambda st: st["frames_done"] > 0)
    redis_srv.stop()
    try:
        r = a.submit("away-2", SHORT, "short.mp4")
        assert r.status_code == 503 and r.json()["error_code"] == "store_unavailable", r.text
        assert int(r.headers["Retry-After"]) > 0 and "Redis" in r.json()["detail"]
        time.sleep(3.0)   # the render goes on meanwhile
    finally:
        redis_srv.start()
    st = b.wait("away-1", ended, timeout=300)
    assert st["state"] == "completed" and st["interruptions"] == 0, st
    assert frame_numbers(st["result"]["location"]) == list(range(LONG_FRAMES))
    assert [f["status"] for f in _finals(rx, "away-1")] == ["completed"]
    assert a.submit("away-2", SHORT, "short.mp4").status_code == 200   # back by itself
    assert a.wait("away-2", ended)["state"] == "completed"


def test_an_instance_killed_mid_job_the_other_finishes_it(two):
    a, b, _, rx, base = two
    assert a.submit("take-1", LONG, "long.mp4", segments=8).status_code == 200
    a.wait("take-1", lambda st: st["state"] == "processing")
    # whichever instance took it from the one queue is killed; the other must finish it
    here = {i.name: i.http.get("/api/render/queue/status").json()["running_here"] for i in (a, b)}
    victim, survivor = (a, b) if "take-1" in here["a"] else (b, a)
    assert "take-1" in here[victim.name], here
    leases = survivor.http.get("/api/render/queue/status").json()["leases"]
    assert leases["take-1"].startswith(victim.name + "/"), leases   # seen from the other instance
    area = base / "out" / ".work" / "take-1"
    deadline = time.monotonic() + 300
    while len([n for n in (os.listdir(area) if area.is_dir() else []) if n.startswith("seg-")]) < 1:
        assert time.monotonic() < deadline and survivor.status("take-1")["state"] == "processing"
        time.sleep(0.05)
    victim.kill()
    st = survivor.wait("take-1", ended, timeout=600)
    assert st["state"] == "completed", st
    res = st["result"]
    assert res["rendered_by"] == survivor.name and st["interruptions"] == 1 and res["resumed_segments"] >= 1, st
    assert frame_numbers(res["location"]) == list(range(LONG_FRAMES))
    assert [f["status"] for f in _finals(rx, "take-1")] == ["completed"]
    assert not area.exists()
