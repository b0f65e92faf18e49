"""End-to-end benchmark on one machine, three ways on the same input in one run:

1. a bare FFmpeg transcode with the renderer's encoder settings (the floor);
2. this renderer (warm actor pool, as the service runs it; cold start reported apart);
3. the original system's way: a full-page PNG screenshot per frame after a 33 ms wait,
   piped to FFmpeg.

    python bench/run_bench.py --duration 60 --height 720 --fps 25 --cues 12
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import subprocess
import time
from pathlib import Path

from common import (
    CpuSampler,
    ProcessCpu,
    bare_transcode_args,
    bench_workdir,
    commit,
    machine,
    make_scenario,
    save,
    timed,
)

from ecg_ray import RenderOptions, probe
from ecg_ray.capture.browser import CaptionPage
from ecg_ray.config import load_settings
from ecg_ray.media import ffmpeg
from ecg_ray.media.encode import quality_to_crf
from ecg_ray.rendering.renderer import Renderer
from ecg_ray.scenario.normalize import normalize


def original_way(src: Path, scenario: dict, dst: Path, fps: float, width: int, height: int,
                 frames: int, quality: int, preset: str) -> float:
    """Seek, sleep 33 ms, full-page PNG screenshot, pipe to FFmpeg: the seed's loop."""
    sc = normalize(scenario, width / height)

    async def run() -> float:
        page = CaptionPage()
        await page.start()
        gop = int(round(fps * 2))
        enc = ffmpeg.popen(["-loglevel", "error", "-f", "image2pipe", "-c:v", "png", "-framerate", str(fps),
                            "-i", "pipe:0", "-c:v", "libx264", "-preset", preset, "-crf", str(quality_to_crf(quality)),
                            "-g", str(gop), "-pix_fmt", "yuv420p", "-y", str(dst)], stdin=subprocess.PIPE)
        t0 = time.perf_counter()
        try:
            await page.load(sc.scenario, width, height, fps)
            # The original captured an opaque page with the video in it: no transparency.
            await page._cdp.send("Emulation.setDefaultBackgroundColorOverride",
                                 {"color": {"r": 20, "g": 20, "b": 20, "a": 1}})
            for n in range(frames):
                await page.seek(n / fps)
                await asyncio.sleep(0.033)
                png = await page._page.screenshot(type="png", full_page=True)
                enc.stdin.write(png)
            enc.stdin.close()
            enc.wait()
            return time.perf_counter() - t0
        finally:
            ffmpeg.terminate(enc)
            await page.close()

    return asyncio.run(run())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--fps", default="25")
    ap.add_argument("--cues", type=int, default=12)
    ap.add_argument("--karaoke", action="store_true", help="every frame animated")
    ap.add_argument("--segments", type=int, default=None)
    ap.add_argument("--quality", type=int, default=70)
    ap.add_argument("--original-frames", type=int, default=-1,
                    help="frames for the original way (-1: all; fewer are extrapolated and marked so)")
    ap.add_argument("--skip-original", action="store_true")
    ap.add_argument("--runs", type=int, default=2, help="warm renderer runs (the best counts)")
    ap.add_argument("--bare-runs", type=int, default=2, help="bare transcodes (the best counts)")
    ap.add_argument("--pairs", type=int, default=0,
                    help="then N more bare/renderer pairs, alternated: the median of their ratios "
                         "(a machine whose speed drifts from minute to minute weighs on both)")
    ap.add_argument("--name", default=None)
    ap.add_argument("--workdir", default=None)
    a = ap.parse_args()

    settings = load_settings()
    work, src = bench_workdir(a.workdir, "ecg-bench-", a.duration, a.height, a.fps)
    info = probe(str(src))
    fps = float(info.fps)
    scenario = make_scenario(a.duration, a.cues, a.karaoke)
    result: dict = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "commit": commit(),
        "machine": machine(), "input": {"duration": info.duration, "frames": info.frame_count,
                                        "size": f"{info.width}x{info.height}", "fps": fps, "cues": a.cues,
                                        "karaoke": a.karaoke, "content": "Big Buck Bunny clip looped"},
        "encoder": {"codec": "libx264", "preset": settings.x264_preset, "crf": quality_to_crf(a.quality)},
    }

    bare = work / "bare.mp4"

    def bare_run() -> float:
        return timed(ffmpeg.run, bare_transcode_args(src, bare, fps, a.quality, settings.x264_preset),
                     what="bare transcode")[0]

    t_bare1 = bare_run()

    t_cold0 = time.perf_counter()
    r = Renderer()
    slots = r.slots()
    r.ensure_actors(min(slots, a.segments or slots))
    t_startup = time.perf_counter() - t_cold0

    def ours(dst: Path):
        return r.render(str(src), scenario, str(dst), RenderOptions(quality=a.quality, segments=a.segments))

    # The first run follows the actors' start; later ones are warm (the service keeps actors and
    # browsers between jobs).
    runs, run_cpu = [], []
    for i in range(max(1, a.runs)):
        with CpuSampler() as cpu, ProcessCpu() as procs:
            runs.append(ours(work / f"ours{i or ''}.mp4"))
        run_cpu.append({**cpu.summary(), "cpu_s_by_process": procs.summary()})
    res = runs[0]
    pairs = []
    for _ in range(a.pairs):
        t_b = bare_run()
        t_r = ours(work / "ours.mp4").seconds
        pairs.append({"bare_s": round(t_b, 2), "renderer_s": round(t_r, 2), "ratio": round(t_r / t_b, 3)})
        print(f"pair: bare {t_b:.1f}s, renderer {t_r:.1f}s ({t_r / t_b:.2f}x)", flush=True)
    r.close()
    bares = [t_bare1]
    for _ in range(max(1, a.bare_runs) - 1):
        with CpuSampler() as bare_cpu, ProcessCpu() as procs:
            bares.append(bare_run())
        result["bare_cpu"] = {**bare_cpu.summary(), "cpu_s_by_process": procs.summary()}
    t_bare = min(bares)
    t_warm = min(x.seconds for x in runs)
    result["bare_transcode_s"] = {"runs": [round(t, 2) for t in bares], "best": round(t_bare, 2)}
    result["renderer"] = {
        "warm_s": round(t_warm, 2), "runs_s": [round(x.seconds, 2) for x in runs],
        "cold_actor_startup_s": round(t_startup, 2), "segments": res.segments, "stats": res.stats,
        "ratio_vs_bare": round(t_warm / t_bare, 3),
        "cpu": run_cpu[min(range(len(runs)), key=lambda i: runs[i].seconds)],
    }
    if pairs:
        ratios = sorted(p["ratio"] for p in pairs)
        median = statistics.median(ratios)
        result["pairs"] = {"runs": pairs, "ratio_median": round(median, 3), "ratio_best": ratios[0],
                           "ratio_worst": ratios[-1]}
        print(f"pairs: median ratio {median:.2f}x ({ratios[0]:.2f}-{ratios[-1]:.2f})", flush=True)
    print(f"bare transcode {t_bare:.1f}s; renderer {t_warm:.1f}s warm ({t_warm / t_bare:.2f}x), "
          f"+{t_startup:.1f}s cold start; stats {res.stats}", flush=True)

    if not a.skip_original:
        frames = info.frame_count if a.original_frames < 0 else min(a.original_frames, info.frame_count)
        t_orig = original_way(src, scenario, work / "original.mp4", fps, info.width, info.height, frames,
                              a.quality, settings.x264_preset)
        full = t_orig * info.frame_count / frames
        result["original_way"] = {"frames_run": frames, "seconds": round(t_orig, 2),
                                  "seconds_full_video": round(full, 2), "extrapolated": frames < info.frame_count,
                                  "speedup_of_renderer": round(full / t_warm, 2)}
        print(f"original way {full:.1f}s{' (extrapolated)' if frames < info.frame_count else ''}: "
              f"renderer is {full / t_warm:.1f}x faster", flush=True)

    name = a.name or f"e2e-{result['machine']['cores']}core-{a.height}p-{int(a.duration)}s" \
                      f"{'-karaoke' if a.karaoke else ''}-{dt.date.today().isoformat()}.json"
    print("saved", save(result, name))


if __name__ == "__main__":
    main()
