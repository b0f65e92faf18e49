"""Record what the caption page produces for every frame of a job (real Chromium, here), so
that the codec path can be benchmarked on a machine without a browser (the GPU machine).

    python bench/record_overlays.py --duration 60 --height 1080 --fps 30 --cues 20 -o bench/out/events.pkl
"""

from __future__ import annotations

import argparse
import asyncio
import pickle
import statistics
import sys
import time
from pathlib import Path

from common import make_scenario

from ecg_ray.capture.browser import CaptionPage
from ecg_ray.capture.overlay import overlay_events, prepare_page
from ecg_ray.media.models import OutputFormat
from ecg_ray.scenario.normalize import normalize


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=60)
    ap.add_argument("--height", type=int, default=1080)
    ap.add_argument("--fps", type=int, default=30)
    ap.add_argument("--cues", type=int, default=20)
    ap.add_argument("--karaoke", action="store_true")
    ap.add_argument("-o", "--output", required=True)
    a = ap.parse_args()
    width = a.height * 16 // 9 // 2 * 2
    frames = int(round(a.duration * a.fps))
    out = OutputFormat(width=width, height=a.height, fps_num=a.fps, fps_den=1, frame_count=frames)
    sc = normalize(make_scenario(a.duration, a.cues, a.karaoke), width / a.height)

    async def run():
        page = CaptionPage()
        await page.start()
        events, seek_ms, cap_ms = [], [], []
        try:
            await prepare_page(page, sc, out, 0)
            t_all = time.perf_counter()
            last = time.perf_counter()
            async for ev in overlay_events(page, out, 0, frames, 24, sc):
                now = time.perf_counter()
                (cap_ms if ev.kind == "new" else seek_ms).append((now - last) * 1000)
                last = now
                events.append((ev.kind, ev.x, ev.y, ev.png))
            total = time.perf_counter() - t_all
        finally:
            await page.close()
        return events, seek_ms, cap_ms, total

    events, seek_ms, cap_ms, total = asyncio.run(run())
    kinds = {k: sum(1 for e in events if e[0] == k) for k in ("new", "same", "empty")}
    meta = {"width": width, "height": a.height, "fps": a.fps, "frames": frames, "cues": a.cues,
            "karaoke": a.karaoke, "kinds": kinds, "browser_seconds": round(total, 2),
            "median_ms_seek_only": round(statistics.median(seek_ms), 2) if seek_ms else None,
            "median_ms_seek_and_capture": round(statistics.median(cap_ms), 2) if cap_ms else None,
            "png_bytes": sum(len(e[3]) for e in events)}
    Path(a.output).parent.mkdir(parents=True, exist_ok=True)
    with open(a.output, "wb") as fh:
        pickle.dump({"meta": meta, "events": events}, fh, protocol=pickle.HIGHEST_PROTOCOL)
    print(meta, file=sys.stderr)


if __name__ == "__main__":
    main()
