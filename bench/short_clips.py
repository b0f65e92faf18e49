"""Short clips through the real service (issue 29): warm service (Ray Serve on loopback, as
`python serve_app.py` runs it), one job at a time, each job's time from its submission to the
status saying completed, alternated with a bare FFmpeg transcode of the same clip with the same
encoder settings. Each job's result carries its stages (``result.stages``: prepare, plan,
segments, join, side files, store); the status's timestamps give its queueing and the time
after the render. The segment cache is off: every run renders every segment.

    python bench/short_clips.py [--clips 5:2,15:6,60:20] [--height 1080] [--fps 30] [--rounds 3]
"""

from __future__ import annotations

import argparse
import functools
import http.server
import shutil
import socket
import statistics
import tempfile
import threading
import time
from fractions import Fraction
from pathlib import Path

import httpx
from common import bare_transcode_args, make_input, make_scenario, result_header, save

from ecg_ray.config import load_settings
from ecg_ray.media import ffmpeg


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # the media server's lines
        pass


def _job(http: httpx.Client, video: str, scenario: dict, job_id: str) -> dict:
    t0 = time.perf_counter()
    r = http.post("/api/render/process", json={"job_id": job_id, "video_url": video, "scenario": scenario})
    r.raise_for_status()
    while True:
        st = http.get(f"/api/render/{job_id}/status").json()
        if st["state"] in ("completed", "failed", "cancelled"):
            break
        time.sleep(0.01)
    wall = time.perf_counter() - t0
    if st["state"] != "completed":
        raise RuntimeError(f"{job_id}: {st}")
    res = st["result"]
    return {"wall_s": round(wall, 3),
            "service_s": round(st["finished_at"] - st["created_at"], 3),
            "queued_s": round(st["started_at"] - st["created_at"], 3),
            "render_s": res["render_seconds"],
            "after_render_s": round(st["finished_at"] - st["started_at"] - res["render_seconds"], 3),
            "segments": res["segments"], "stages": res.get("stages", {})}


def main() -> None:
    import ray
    from ray import serve

    from ecg_ray.config import SERVE_LOGGING, apply_serve_env
    from ecg_ray.service.api import build_app

    ap = argparse.ArgumentParser()
    ap.add_argument("--clips", default="5:2,15:6,60:20", help="seconds:cues, comma separated")
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--fps", default="30")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--name", default=None)
    ap.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                    help="a setting for the service (repeatable), e.g. ECG_PREVIEW=0")
    args = ap.parse_args()
    clips = [(float(a), int(b)) for a, b in (c.split(":") for c in args.clips.split(","))]
    settings = load_settings()

    work = Path(tempfile.mkdtemp(prefix="ecg-short-"))
    media = None
    try:
        for dur, _ in clips:
            make_input(work / f"clip{int(dur)}.mp4", dur, args.height, args.fps)
        handler = functools.partial(_Quiet, directory=str(work))
        media = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=media.serve_forever, daemon=True).start()
        base = f"http://127.0.0.1:{media.server_address[1]}"
        port = _free_port()
        url = f"http://127.0.0.1:{port}"
        env = {"ECG_STATE_DIR": str(work / "state"), "ECG_OUTPUT_DIR": str(work / "out"),
               "ECG_TMP_DIR": str(work / "tmp"), "ECG_PUBLIC_BASE_URL": url, "MAX_CONCURRENT_JOBS": "1",
               "ECG_SEGMENT_CACHE_MB": "0", **dict(e.split("=", 1) for e in args.env)}
        apply_serve_env()
        t_start = time.perf_counter()
        ray.init(address="local", include_dashboard=False, log_to_driver=False)
        serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config=SERVE_LOGGING)
        serve.run(build_app(env), name="ecg_ray", route_prefix="/")
        client = httpx.Client(base_url=url, timeout=120)
        while True:
            try:
                if client.get("/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        ready_s = time.perf_counter() - t_start
        print(f"service ready in {ready_s:.1f} s", flush=True)
        first = _job(client, f"{base}/clip{int(clips[0][0])}.mp4", make_scenario(clips[0][0], clips[0][1]), "warmup")
        print(f"first job: {first['wall_s']} s", flush=True)
        out: dict = {}
        n = 0
        for dur, cues in clips:
            src = work / f"clip{int(dur)}.mp4"
            scenario = make_scenario(dur, cues)
            jobs, bares = [], []
            for rnd in range(args.rounds):
                t0 = time.perf_counter()
                ffmpeg.run(bare_transcode_args(src, work / "bare.mp4", float(Fraction(args.fps)),
                                               settings.default_quality, settings.x264_preset), what="bare")
                bares.append(round(time.perf_counter() - t0, 3))
                n += 1
                jobs.append(_job(client, f"{base}/{src.name}", scenario, f"short-{n:03d}"))
                print(f"{int(dur)} s, round {rnd + 1}: bare {bares[-1]} s, job {jobs[-1]['wall_s']} s "
                      f"(service {jobs[-1]['service_s']}, render {jobs[-1]['render_s']}, "
                      f"stages {jobs[-1]['stages']})", flush=True)
            ratios = [j["wall_s"] / b for j, b in zip(jobs, bares)]
            mid = sorted(range(len(jobs)), key=lambda i: jobs[i]["wall_s"])[len(jobs) // 2]
            out[f"{int(dur)}s_{cues}cues"] = {
                "bare_s": bares, "jobs": jobs, "ratio_pairs": [round(r, 3) for r in ratios],
                "ratio_median": round(statistics.median(ratios), 3),
                "job_median_s": round(statistics.median(j["wall_s"] for j in jobs), 3),
                "bare_median_s": round(statistics.median(bares), 3),
                "median_job_stages": jobs[mid]["stages"]}
            print(f"{int(dur)} s: median ratio {out[f'{int(dur)}s_{cues}cues']['ratio_median']}", flush=True)
        result = result_header("short clips through the warm service, one at a time, against a bare transcode")
        result.update(warm=True, height=args.height, fps=args.fps, service_ready_s=round(ready_s, 1), env=args.env,
                      first_job=first, clips=out)
        name = args.name or f"short-clips-{args.height}p{args.fps}.json"
        print(f"saved {save(result, name)}")
        client.close()
        serve.shutdown()
        ray.shutdown()
    finally:
        if media is not None:
            media.shutdown()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
