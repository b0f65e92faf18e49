"""What one caption capture costs: the browser walks the benchmark's captions over a run of
frames (seeks, captures of changed overlays, as a segment does) with no video at all, and the
CPU time of every process involved is summed by kind: Chromium's browser, renderer and GPU
processes, Playwright's driver (node), and this process (PNG decode and conversion to YUVA).

Each --variant launches a fresh Chromium with its own extra flags (ECG_CHROMIUM_ARGS), so
software and GPU raster/compositing can be compared on one machine:

    python bench/capture_cost.py --height 1080 --frames 450 \\
        --variant software= \\
        --variant vulkan="--enable-gpu --use-angle=vulkan --enable-features=Vulkan --ignore-gpu-blocklist"

Captured pictures are compared with the first variant's (mean and largest absolute difference
of the RGBA values), so a faster variant that draws differently shows it.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import psutil
from common import chromium_kind, commit, machine, make_scenario, save

from ecg_ray.capture.browser import CaptionPage
from ecg_ray.capture.overlay import lane_ranges, prepare_page, walk_events
from ecg_ray.media import composite
from ecg_ray.media.models import OutputFormat
from ecg_ray.scenario.normalize import normalize


def _kind(p: psutil.Process) -> str:
    return chromium_kind(p.name(), p.cmdline()) or "other"


def cpu_by_kind() -> dict[int, tuple[str, float]]:
    seen: dict[int, tuple[str, float]] = {}
    for p in psutil.Process().children(recursive=True):
        try:
            t = p.cpu_times()
            seen[p.pid] = (_kind(p), t.user + t.system)
        except psutil.Error:
            continue
    return seen


def diff_kinds(before: dict, after: dict) -> dict[str, float]:
    out: dict[str, float] = {}
    for pid, (kind, t) in after.items():
        out[kind] = out.get(kind, 0.0) + t - before.get(pid, (kind, 0.0))[1]
    return out


async def run_variant(name: str, flags: str, out: OutputFormat, scenario, frames: int, margin: int,
                      lanes: int = 1) -> dict:
    os.environ["ECG_CHROMIUM_ARGS"] = flags
    page = CaptionPage()
    await page.start()
    ranges = lane_ranges(0, frames, lanes)
    pool = ThreadPoolExecutor(max_workers=2)
    counts: dict[str, int] = {}

    def walk(n_frames: int):
        return walk_events(page, out, lane_ranges(0, n_frames, lanes), margin, scenario, composite.to_yuva, pool,
                           256 << 20, counts)

    try:
        status = await page.gpu_status()
        starts = [a for a, _ in lane_ranges(0, min(frames, 60), lanes)]
        await prepare_page(page, scenario, out, 0, starts)
        got: dict[int, object] = {}
        # One untimed pass warms the page (fonts, plugin code), as a warm actor's would be.
        async for _ev in walk(min(frames, 60)):
            pass
        await prepare_page(page, scenario, out, 0, [a for a, _ in ranges])
        counts.clear()
        await page._eval("Object.assign(window.__ecg.timing, {seek: 0, hash: 0, box: 0, calls: 0})")
        me = psutil.Process()
        c0, m0, t0 = cpu_by_kind(), me.cpu_times(), time.perf_counter()
        png_bytes = 0
        async for ev in walk(frames):
            if ev.kind == "new":
                got[ev.n] = ev.prepared if ev.prepared is not None else (ev.png, ev.x, ev.y)
                png_bytes += len(ev.png)
        ovs = {}
        if len(ranges) > 1:  # the conversion ran in the pool, inside this process's CPU time
            ovs = {n: f.result() for n, f in got.items()}
        wall = time.perf_counter() - t0
        timing = await page._eval("window.__ecg.timing")
        c1, m1 = cpu_by_kind(), me.cpu_times()
        cpu = diff_kinds(c0, c1)
        key = "python (seek calls)" if len(ranges) == 1 else "python (seek calls, sheets, to_yuva)"
        cpu[key] = (m1.user + m1.system) - (m0.user + m0.system)
        if len(ranges) == 1:
            # The conversion a segment does for each capture (composite.to_yuva), timed on its own.
            t = time.perf_counter()
            ovs = {n: composite.to_yuva(png, x, y, out.matrix) for n, (png, x, y) in got.items()}
            cpu["python (to_yuva)"] = time.perf_counter() - t
    finally:
        pool.shutdown()
        await page.close()
    n = max(1, len(got))
    res = {
        "flags": flags, "lanes": len(ranges), "gpu": status, "captured": len(got), "frames": frames,
        "screenshots": counts.get("screenshots", len(got)),
        "page_js_ms": {k: round(v, 1) for k, v in timing.items()},
        "wall_s": round(wall, 3), "wall_ms_per_capture": round(1000 * wall / n, 2),
        "cpu_ms_per_capture": {k: round(1000 * v / n, 2) for k, v in sorted(cpu.items()) if v > 0.0005},
    }
    if png_bytes:
        res["png_kb_mean"] = round(png_bytes / n / 1024, 1)
    res["cpu_ms_per_capture_total"] = round(sum(res["cpu_ms_per_capture"].values()), 2)
    print(f"{name:<10} {len(got)} captures, {len(ranges)} lane(s), {res['wall_ms_per_capture']} ms wall and "
          f"{res['cpu_ms_per_capture_total']} ms CPU each: {res['cpu_ms_per_capture']}", flush=True)
    print(f"{'':<10} gpu: {status}", flush=True)
    res["_ovs"] = ovs
    return res


def compare(a: dict, b: dict) -> dict:
    """Differences between two variants' converted captures (yuva420p planes) of the same frames."""
    diffs, worst, same_place = [], 0, 0
    for n, p in a.items():
        if n not in b:
            continue
        q = b[n]
        if p is None or q is None:
            same_place += p is None and q is None
            continue
        if (p.x, p.y, p.w, p.h) != (q.x, q.y, q.w, q.h):
            continue
        same_place += 1
        for u, v in ((p.yp, q.yp), (p.up, q.up), (p.vp, q.vp), (p.ap, q.ap)):
            d = np.abs(u.astype(np.int16) - v.astype(np.int16))
            diffs.append(float(d.mean()))
            worst = max(worst, int(d.max()))
    return {"frames_compared": same_place, "frames_in_both": len(set(a) & set(b)),
            "mean_abs_diff": round(sum(diffs) / max(1, len(diffs)), 3), "max_abs_diff": worst}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--frames", type=int, default=450)
    ap.add_argument("--cues", type=int, default=20, help="cues over 60 s, as in run_bench.py")
    ap.add_argument("--karaoke", action="store_true")
    ap.add_argument("--margin", type=int, default=24)
    ap.add_argument("--variant", action="append", default=[],
                    help="NAME=FLAGS (extra Chromium flags); repeatable; default: one software variant")
    ap.add_argument("--lanes", type=int, action="append", default=[],
                    help="lanes captured together in one sheet (overlay.lane_events); repeatable: each variant "
                         "is run once per value")
    ap.add_argument("--name", default=None)
    a = ap.parse_args()
    variants = [v.split("=", 1) for v in (a.variant or ["software="])]
    if a.lanes:
        variants = [(f"{n}@{k}", f) for n, f in variants for k in a.lanes]
    width = a.height * 16 // 9 // 2 * 2
    out = OutputFormat(width=width, height=a.height, fps_num=a.fps, fps_den=1, frame_count=a.frames)
    scenario = normalize(make_scenario(60.0, a.cues, a.karaoke), width / a.height)
    result: dict = {"what": "caption capture cost", "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                    "commit": commit(), "machine": machine(), "size": f"{width}x{a.height}", "fps": a.fps,
                    "cues_per_minute": a.cues, "karaoke": a.karaoke, "variants": {}}
    first = None
    given = os.environ.get("ECG_CHROMIUM_ARGS")
    for name, flags in variants:
        try:
            lanes = int(name.rsplit("@", 1)[1]) if "@" in name else 1
            res = asyncio.run(run_variant(name, flags, out, scenario, a.frames, a.margin, lanes))
        except Exception as exc:  # noqa: BLE001 - a variant that cannot start is recorded, not fatal
            print(f"{name:<10} failed: {exc}", flush=True)
            result["variants"][name] = {"flags": flags, "error": str(exc)[:500]}
            continue
        pngs = res.pop("_ovs")
        if first is None:
            first = pngs
        else:
            res["vs_first"] = compare(first, pngs)
            print(f"{'':<10} vs first: {res['vs_first']}", flush=True)
        result["variants"][name] = res
    if given is None:
        os.environ.pop("ECG_CHROMIUM_ARGS", None)
    else:
        os.environ["ECG_CHROMIUM_ARGS"] = given
    name = a.name or f"capture-{a.height}p-{dt.date.today().isoformat()}.json"
    print("saved", save(result, name))


if __name__ == "__main__":
    main()
