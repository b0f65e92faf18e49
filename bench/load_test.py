"""Load test of the service on loopback: many jobs submitted at once while status is polled
hard; every job must complete or be refused with 429, none lost or duplicated, the queue
figures must stay true, and the service's memory must stay flat.

    .venv/bin/python bench/load_test.py [--jobs 50] [--polls 200] [--max-queued 40] [--concurrent 2]

Starts its own Ray and the app under Serve (like `python serve_app.py`), a media server and a
callback receiver; writes bench/results/load-<machine>-<date>.json.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import multiprocessing
import random
import shutil
import socket
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import Any

import httpx  # noqa: E402
import psutil  # noqa: E402
from common import commit, machine, save  # sets sys.path to the repo root

from ecg_ray.media.testclip import make_numbered_video  # noqa: E402

CUES = {"version": "1.3", "cues": [{"start": 0.2, "end": 0.8, "text": "부하 시험 load test", "effect": "fadein"}]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_RANK = {"queued": 0, "processing": 1, "completed": 2, "failed": 2, "cancelled": 2}


def _poll_process(url: str, ids: list[str], rate: float, threads: int, stop: Any, out: Any) -> None:
    """One load-generating process: ``threads`` loops polling random jobs at ``rate`` in all."""
    codes: Counter = Counter()
    latencies: list[float] = []
    regressions = 0
    lock = threading.Lock()
    window = [float("inf"), 0.0]  # wall-clock time of the first and last answer

    def loop() -> None:
        nonlocal regressions
        interval = threads / rate
        # What one client saw, in the order it asked: each loop is a client that polls one
        # request at a time. (Answers to requests in flight at once on different connections
        # may arrive in either order, from any HTTP service: they are not compared.)
        last: dict[str, tuple[int, float]] = {}
        with httpx.Client(base_url=url, timeout=30) as c:
            nxt = time.monotonic()
            while not stop.is_set():
                job_id = random.choice(ids)
                t0 = time.monotonic()
                try:
                    r = c.get(f"/api/render/{job_id}/status")
                except httpx.HTTPError:
                    with lock:
                        codes["error"] += 1
                    continue
                dt = time.monotonic() - t0
                with lock:
                    now_wall = time.time()
                    window[0], window[1] = min(window[0], now_wall - dt), max(window[1], now_wall)
                    codes[r.status_code] += 1
                    latencies.append(dt)
                    if r.status_code == 200:
                        st = r.json()
                        now = (_RANK[st["state"]], st["progress"])
                        prev = last.get(job_id)
                        if prev and now < prev:
                            regressions += 1
                        last[job_id] = max(now, prev) if prev else now
                nxt += interval
                time.sleep(max(0.0, nxt - time.monotonic()))

    ts = [threading.Thread(target=loop, daemon=True) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    out.put((dict(codes), latencies, regressions, window))


class Poller:
    """Status polls at a fixed rate from separate processes (so that the load generator's own
    Python is not what limits the rate); records answers, latencies and any state seen going
    backwards."""

    def __init__(self, url: str, ids: list[str], rate: float, processes: int = 4, threads: int = 8) -> None:
        self.url, self.ids, self.rate = url, ids, rate
        self.processes, self.threads = processes, threads
        self.codes: Counter = Counter()
        self.latencies: list[float] = []
        self.regressions = 0
        self.window = [float("inf"), 0.0]  # first and last answer over all processes (wall clock)
        ctx = multiprocessing.get_context("spawn")
        self.stop = ctx.Event()
        self._out = ctx.Queue()
        self._procs = [ctx.Process(target=_poll_process, daemon=True,
                                   args=(url, ids, rate / processes, threads, self.stop, self._out))
                       for _ in range(processes)]

    def run(self) -> None:
        for p in self._procs:
            p.start()
        self.stop.wait()
        for _ in self._procs:
            codes, lat, reg, window = self._out.get(timeout=120)
            self.window = [min(self.window[0], window[0]), max(self.window[1], window[1])]
            self.codes.update(codes)
            self.latencies.extend(lat)
            self.regressions += reg
        for p in self._procs:
            p.join(10)


def _service_rss() -> dict[str, int]:
    out: dict[str, int] = {}
    for p in psutil.process_iter(["name", "cmdline", "memory_info"]):
        name = " ".join(p.info["cmdline"] or [])[:60]
        for key in ("JobService", "ServeReplica", "ProxyActor", "ServeController"):
            if key in name and p.info["memory_info"]:
                out[key] = out.get(key, 0) + p.info["memory_info"].rss
    return out


def run(jobs: int, polls: float, max_queued: int, concurrent: int, num_cpus: int | None = None) -> dict:
    """One load run on a fresh local Ray; the figures as a dict (tests assert on them)."""
    import ray
    from ray import serve

    from ecg_ray.config import SERVE_LOGGING, apply_serve_env
    from ecg_ray.service.api import build_app
    from tests.receiver import Receiver  # the repo root is on sys.path (common)

    work = Path(tempfile.mkdtemp(prefix="ecg-load-"))
    try:
        make_numbered_video(str(work / "in.mp4"), 25, Fraction(25), (160, 120), audio=True)
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(work))
        handler.log_message = lambda *a: None
        media = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=media.serve_forever, daemon=True).start()
        video = f"http://127.0.0.1:{media.server_address[1]}/in.mp4"
        rx = Receiver().start()

        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        env = {"ECG_STATE_DIR": str(work / "state"), "ECG_OUTPUT_DIR": str(work / "out"),
               "ECG_TMP_DIR": str(work / "tmp"), "ECG_PUBLIC_BASE_URL": url,
               "MAX_CONCURRENT_JOBS": str(concurrent), "ECG_MAX_QUEUED_JOBS": str(max_queued)}
        apply_serve_env()  # as serve_app.py does
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
        serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config=SERVE_LOGGING)
        serve.run(build_app(env), name="ecg_ray", route_prefix="/")
        http_c = httpx.Client(base_url=url, timeout=60)
        while http_c.get("/health").status_code != 200:
            time.sleep(1)
        rss_start = _service_rss()

        ids = [f"load-{i:03d}" for i in range(jobs)]

        def submit(job_id: str) -> tuple[str, int]:
            with httpx.Client(base_url=url, timeout=60) as c:
                r = c.post("/api/render/process", json={"job_id": job_id, "video_url": video, "scenario": CUES,
                                                        "callback_url": rx.url_for("/cb")})
                return job_id, r.status_code

        queue_samples, queue_violations, rss_samples = 0, [], []
        t0 = time.monotonic()
        with ThreadPoolExecutor(jobs) as ex:
            answers = dict(ex.map(submit, ids))
        submit_s = time.monotonic() - t0
        accepted = [j for j, code in answers.items() if code == 200]  # accepted is 200 (the platform counts nothing else)
        refused = [j for j, code in answers.items() if code == 429]
        poller = Poller(url, accepted or ids, polls)
        poll_thread = threading.Thread(target=poller.run, daemon=True)
        poll_thread.start()

        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            q = http_c.get("/api/render/queue/status").json()
            queue_samples += 1
            if len(q["running"]) > concurrent or set(q["running"]) & set(q["queued"]):
                queue_violations.append(q)
            if len(q["queued"]) > max_queued:
                queue_violations.append(q)
            rss_samples.append(sum(_service_rss().values()))
            if not q["running"] and not q["queued"]:
                break
            time.sleep(0.5)
        total_s = time.monotonic() - t0
        poller.stop.set()
        poll_thread.join(150)

        ends = {j: http_c.get(f"/api/render/{j}/status") for j in accepted}
        states = Counter(r.json()["state"] if r.status_code == 200 else f"http_{r.status_code}" for r in ends.values())
        lost = [j for j, r in ends.items()
                if r.status_code != 200 or r.json()["state"] not in ("completed", "failed", "cancelled")]
        refused_known = sum(http_c.get(f"/api/render/{j}/status").status_code != 404 for j in refused)
        rx.wait_for(lambda reqs: len({r.job_id for r in reqs if r.json.get("status") != "processing"})
                    >= len(accepted), 120)
        finals = Counter(r.job_id for r in rx.requests if r.json.get("status") != "processing")
        lat = sorted(poller.latencies)
        rss_end = _service_rss()
        result = {
            "what": "load test: jobs submitted at once, status polled hard, on loopback",
            "machine": machine(), "commit": commit(), "date": time.strftime("%Y-%m-%d"),
            "settings": {"jobs": jobs, "polls_per_s": polls, "max_queued": max_queued, "concurrent": concurrent},
            "submitted": jobs, "accepted": len(accepted), "refused_429": len(refused),
            "other_answers": {j: c for j, c in answers.items() if c not in (200, 429)},
            "final_states": dict(states),
            "lost": len(lost),
            "refused_but_known": refused_known,
            "final_callbacks": {"jobs": len(finals), "duplicated": sum(1 for n in finals.values() if n > 1),
                                "missing": len(set(accepted) - set(finals))},
            "submit_all_s": round(submit_s, 2), "drain_s": round(total_s, 1),
            "polls": {"answers": dict(poller.codes), "achieved_per_s": round(sum(poller.codes.values()) / max(1e-9, poller.window[1] - poller.window[0]), 1),
                      "polling_s": round(poller.window[1] - poller.window[0], 1),
                      "p50_ms": round(1000 * lat[len(lat) // 2], 1) if lat else None,
                      "p99_ms": round(1000 * lat[int(len(lat) * 0.99)], 1) if lat else None,
                      "state_regressions": poller.regressions},
            "queue_samples": queue_samples, "queue_violations": len(queue_violations),
            "service_rss_mb": {"start": round(sum(rss_start.values()) / 2**20, 1),
                               "peak": round(max(rss_samples) / 2**20, 1) if rss_samples else None,
                               "end": round(sum(rss_end.values()) / 2**20, 1),
                               "by_process_end": {k: round(v / 2**20, 1) for k, v in rss_end.items()}},
        }
        http_c.close()
        rx.stop()
        media.shutdown()
        serve.shutdown()
        ray.shutdown()
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=50)
    ap.add_argument("--polls", type=float, default=200.0, help="status polls per second")
    ap.add_argument("--max-queued", type=int, default=40, help="ECG_MAX_QUEUED_JOBS of the service")
    ap.add_argument("--concurrent", type=int, default=2, help="MAX_CONCURRENT_JOBS of the service")
    ap.add_argument("--name", default="")
    args = ap.parse_args()
    result = run(args.jobs, args.polls, args.max_queued, args.concurrent)
    path = save(result, (args.name or f"load-{psutil.cpu_count()}core-{args.jobs}jobs-{time.strftime('%Y-%m-%d')}") + ".json")
    print(path)
    print(json.dumps(result, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
