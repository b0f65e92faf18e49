"""What a job's captions cost by segment length: the browser walks the benchmark's captions over
the whole job cut into segments of N frames, each prepared as a segment actor prepares it
(scenario loaded, every lane pre-rolled to its start) and walked with capture lanes, no video.
Shorter segments mean more page loads and pre-rolls, fewer lanes per segment (a lane has at
least MIN_LANE_FRAMES) and so fewer captions per screenshot, and more lane starts to capture.
This is the cost ECG_BUSY_SEGMENT_SECONDS saves on a busy cluster.

    python bench/segment_length.py --height 1080 --fps 30 --lengths 112,225,450

CPU time is summed over this process and the browser's processes (capture_cost.cpu_by_kind).
Lengths are measured in alternated order over --rounds rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import psutil
from capture_cost import cpu_by_kind, diff_kinds
from common import make_scenario, result_header, save

from ecg_ray.capture.browser import CaptionPage
from ecg_ray.capture.overlay import MIN_LANE_FRAMES, lane_ranges, prepare_page, walk_events
from ecg_ray.media import composite
from ecg_ray.media.models import OutputFormat
from ecg_ray.scenario.normalize import normalize


async def walk_job(page: CaptionPage, pool: ThreadPoolExecutor, out: OutputFormat, sc, seg: int, lanes: int,
                   margin: int, hold: int) -> dict:
    """Every segment of ``seg`` frames of the job, one after another, as actors would render them."""
    me = psutil.Process()
    totals = {"segments": 0, "screenshots": 0, "captures": 0, "prepare_s": 0.0}
    c0, m0, t0 = cpu_by_kind(), me.cpu_times(), time.perf_counter()
    for start in range(0, out.frame_count, seg):
        end = min(out.frame_count, start + seg)
        ranges = lane_ranges(start, end, lanes)
        counts: dict[str, int] = {}
        tp = time.perf_counter()
        await prepare_page(page, sc, out, start, [a for a, _ in ranges])
        totals["prepare_s"] += time.perf_counter() - tp
        futures, new = [], 0
        async for ev in walk_events(page, out, ranges, margin, sc, composite.to_yuva, pool, hold, counts):
            if ev.kind == "new":
                new += 1
                futures.append(ev.prepared if ev.prepared is not None
                               else pool.submit(composite.to_yuva, ev.png, ev.x, ev.y, out.matrix))
        for f in futures:
            f.result()
        totals["segments"] += 1
        totals["captures"] += new
        totals["screenshots"] += counts.get("screenshots", new)
    wall = time.perf_counter() - t0
    cpu = diff_kinds(c0, cpu_by_kind())
    m1 = me.cpu_times()
    cpu["this process"] = (m1.user + m1.system) - (m0.user + m0.system)
    return {**totals, "prepare_s": round(totals["prepare_s"], 2), "wall_s": round(wall, 2),
            "cpu_s": round(sum(cpu.values()), 2), "cpu_s_by_kind": {k: round(v, 2) for k, v in sorted(cpu.items())}}


async def run(a) -> dict:
    width = a.height * 16 // 9 // 2 * 2
    out = OutputFormat(width=width, height=a.height, fps_num=a.fps, fps_den=1, frame_count=int(a.duration * a.fps))
    sc = normalize(make_scenario(a.duration, a.cues), width / a.height)
    lengths = [int(x) for x in a.lengths.split(",")]
    page = CaptionPage()
    await page.start()
    pool = ThreadPoolExecutor(max_workers=2)
    runs: dict[int, list[dict]] = {n: [] for n in lengths}
    try:
        await walk_job(page, pool, out, sc, out.frame_count, 1, a.margin, a.hold_mb << 20)  # warm: fonts, code
        for r in range(a.rounds):
            for n in (lengths if r % 2 == 0 else lengths[::-1]):
                got = await walk_job(page, pool, out, sc, n, a.lanes, a.margin, a.hold_mb << 20)
                runs[n].append(got)
                print(f"round {r + 1}, segments of {n} frames: {got['segments']} segments, {got['screenshots']} "
                      f"screenshots for {got['captures']} captures, {got['cpu_s']} s CPU, {got['wall_s']} s",
                      flush=True)
    finally:
        pool.shutdown()
        await page.close()
    best = {n: min(rs, key=lambda x: x["cpu_s"]) for n, rs in runs.items()}
    return {
        "input": {"frames": out.frame_count, "size": f"{width}x{a.height}", "fps": a.fps, "cues": a.cues},
        "lanes": a.lanes, "min_lane_frames": MIN_LANE_FRAMES, "rounds": a.rounds,
        "by_length": {str(n): {"runs": runs[n], "cpu_s_best": best[n]["cpu_s"],
                               "cpu_ms_per_frame_best": round(1000 * best[n]["cpu_s"] / out.frame_count, 2)}
                      for n in lengths},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--cues", type=int, default=20)
    ap.add_argument("--lengths", default="112,225,450", help="segment lengths in frames, comma separated")
    ap.add_argument("--lanes", type=int, default=8)
    ap.add_argument("--margin", type=int, default=24)
    ap.add_argument("--hold-mb", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--name", default=None)
    a = ap.parse_args()
    result = {**result_header("caption cost of a job by segment length"), **asyncio.run(run(a))}
    name = a.name or f"segment-length-{result['machine']['cores']}core-{a.height}p-{result['date'][:10]}.json"
    print("saved", save(result, name))


if __name__ == "__main__":
    main()
