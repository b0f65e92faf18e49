"""What Chromium does for one sheet: the benchmark's captions walked as a segment walks them
(8 lanes, sheets of changed overlays), with Chromium's own trace recorded, then counted per
screenshot: main frames (BeginMainFrame), raster tasks, display draws (Display::DrawAndSwap),
the copy sent back (CopyOutputResultSender::SendResult) and the page's evaluates, with the time
each took in the trace (tracing slows everything: compare the counts and the shares, not the
milliseconds, with capture_cost.py).

Variants (each a fresh Chromium, alternated over --rounds):
  clip    the renderer's capture: Page.captureScreenshot clipped to the sheet. Chromium serves a
          clip by emulating a viewport of the clip's size and offset, then restoring the old one:
          two resizes per screenshot.
  noclip  the whole viewport captured (no clip: no resize) and cut in Python; the viewport (and
          so the sheets) --noclip-rows tall, since every pixel of it is drawn, copied and encoded.

    python bench/capture_trace.py --rounds 1 --name capture-trace-2core-720p.json
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import datetime as dt
import json
import statistics
from concurrent.futures import ThreadPoolExecutor

from common import make_scenario, result_header, save

from ecg_ray.capture import browser, overlay
from ecg_ray.media import composite
from ecg_ray.media.models import OutputFormat
from ecg_ray.scenario.normalize import normalize

CATEGORIES = ["devtools.timeline", "disabled-by-default-devtools.timeline", "viz", "cc", "blink"]
# Trace event name -> short name in the per-screenshot summary.
STEPS = {
    "EvaluateScript": "evaluate",
    "ProxyMain::BeginMainFrame": "main_frame",
    "RasterTask": "raster",
    "Display::DrawAndSwap": "draw",
    "viz::mojom::CopyOutputResultSender::SendResult": "copy",
}


async def _capture_whole_view(self: browser.CaptionPage, clip: tuple[int, int, int, int]) -> bytes:
    """The noclip variant's capture: the whole viewport. The sheet starts at the page origin,
    so overlay._cut_sheet's rows and columns are the same in it."""
    res = await self._call(self._cdp.send("Page.captureScreenshot", {
        "format": "png", "optimizeForSpeed": True, "fromSurface": True, "captureBeyondViewport": False,
    }), "capture view")
    return base64.b64decode(res["data"])


def per_screenshot(events: list[dict]) -> dict:
    """Counts and trace milliseconds of STEPS, split at each copy sent back (one per screenshot)."""
    steps = sorted((e for e in events if e.get("ph") == "X" and e.get("name") in STEPS), key=lambda e: e["ts"])
    cycles: list[collections.Counter] = []
    cur_n: collections.Counter = collections.Counter()
    cur_ms: collections.Counter = collections.Counter()
    totals_n: collections.Counter = collections.Counter()
    totals_ms: collections.Counter = collections.Counter()
    for e in steps:
        name = STEPS[e["name"]]
        cur_n[name] += 1
        cur_ms[name] += e.get("dur", 0) / 1000
        if name == "copy":
            cycles.append(cur_n)
            totals_n.update(cur_n)
            totals_ms.update(cur_ms)
            cur_n, cur_ms = collections.Counter(), collections.Counter()
    n = max(1, len(cycles))
    return {
        "screenshots": len(cycles),
        "per_screenshot": {k: round(totals_n[k] / n, 2) for k in STEPS.values()},
        "trace_ms_per_screenshot": {k: round(totals_ms[k] / n, 1) for k in STEPS.values()},
        "draws_per_screenshot_median": statistics.median(c["draw"] for c in cycles) if cycles else 0,
    }


async def run(variant: str, rows: int, frames: int, lanes: int) -> dict:
    out = OutputFormat(width=1280, height=720, fps_num=25, fps_den=1, frame_count=frames)
    scenario = normalize(make_scenario(frames / 25, 12 * frames // 1500 or 1), 1280 / 720)
    saved = browser.SHEET_MAX_ROWS, browser.CaptionPage.capture
    if variant == "noclip":
        browser.SHEET_MAX_ROWS = overlay.SHEET_MAX_ROWS = rows
        browser.CaptionPage.capture = _capture_whole_view
    page = browser.CaptionPage()
    pool = ThreadPoolExecutor(max_workers=2)
    try:
        await page.start()
        ranges = overlay.lane_ranges(0, frames, lanes)
        await overlay.prepare_page(page, scenario, out, 0, [a for a, _ in ranges])
        await page._browser.start_tracing(page=page._page, categories=CATEGORIES)
        captures = 0
        async for ev in overlay.walk_events(page, out, ranges, 24, scenario, composite.to_yuva, pool, 256 << 20, {}):
            captures += ev.kind == "new"
        events = json.loads(await page._browser.stop_tracing())["traceEvents"]
    finally:
        pool.shutdown()
        await page.close()
        browser.SHEET_MAX_ROWS = overlay.SHEET_MAX_ROWS = saved[0]
        browser.CaptionPage.capture = saved[1]
    res = {"variant": variant, "viewport_rows": rows if variant == "noclip" else browser.SHEET_MAX_ROWS,
           "captures": captures, **per_screenshot(events)}
    print(json.dumps(res), flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=1500)
    ap.add_argument("--lanes", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--noclip-rows", type=int, default=1152)
    ap.add_argument("--name", default=None)
    a = ap.parse_args()
    runs = []
    for r in range(a.rounds):
        for variant in (("clip", "noclip") if r % 2 == 0 else ("noclip", "clip")):
            runs.append(asyncio.run(run(variant, a.noclip_rows, a.frames, a.lanes)))
    result = {**result_header("Chromium's work per caption screenshot (trace)"), "size": "1280x720", "fps": 25,
              "frames": a.frames, "lanes": a.lanes, "runs": runs}
    name = a.name or f"capture-trace-720p-{dt.date.today().isoformat()}.json"
    print("saved", save(result, name))


if __name__ == "__main__":
    main()
