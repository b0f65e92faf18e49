"""What the live preview gives and costs: the same job rendered with and without it, in
alternated pairs, on one warm Renderer (as the service keeps one).

    python bench/preview.py --duration 20 --height 720 --rounds 3

With the preview: seconds from the render's start (the job's submission, minus the queue) to
the first 10 playable seconds, and how fast the playable prefix grows against real time (its
seconds of video over the wall seconds from its first fragment to its last). Both: the job's
total time; the cost is the median of the pairs' differences over the median without. A bare
FFmpeg transcode of the same input is timed in the same run, as every benchmark here does.
The final files of a pair are compared byte for byte.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from common import bare_transcode_args, bench_workdir, make_scenario, result_header, save

from ecg_ray.media import ffmpeg
from ecg_ray.rendering.models import RenderOptions
from ecg_ray.rendering.preview import HlsPreview
from ecg_ray.rendering.renderer import Renderer
from ecg_ray.service.workarea import LocalArea


def one(r: Renderer, src: Path, sc: dict, out: Path, segments: int | None, preview: bool, work: Path) -> dict:
    area_dir = Path(tempfile.mkdtemp(prefix="preview-", dir=work))
    sink = HlsPreview(LocalArea(str(area_dir)), "bench", str(work)) if preview else None
    t0 = time.monotonic()
    res = r.render(str(src), sc, str(out), RenderOptions(segments=segments), preview=sink)
    total = time.monotonic() - t0
    row: dict = {"total_s": round(total, 2), "segments": res.segments,
                 "sha256": hashlib.sha256(out.read_bytes()).hexdigest()}
    if sink is not None and sink.timeline:
        line = [(t - t0, s) for t, s in sink.timeline]
        first10 = next((t for t, s in line if s >= min(10.0, res.duration)), None)
        (t_first, s_first), (t_last, s_last) = line[0], line[-1]
        row.update(first_fragment_s=round(t_first, 2), first_10s_playable_s=round(first10, 2) if first10 else None,
                   growth_x=round((s_last - s_first) / (t_last - t_first), 2) if t_last > t_first else None,
                   prefix_complete_s=round(t_last, 2), timeline=[(round(t, 2), round(s, 2)) for t, s in line])
    shutil.rmtree(area_dir, ignore_errors=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=20)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--fps", default="25")
    ap.add_argument("--cues", type=int, default=12)
    ap.add_argument("--segments", type=int, default=None, help="default: the planner's choice")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--name", default=None)
    a = ap.parse_args()
    work, src = bench_workdir(a.workdir, "ecg-bench-preview-", a.duration, a.height, a.fps)
    sc = make_scenario(a.duration, a.cues)
    r = Renderer()
    r.ensure_actors(r.slots())
    one(r, src, sc, work / "warm.mp4", a.segments, False, work)  # warm-up, not counted
    runs: dict[str, list[dict]] = {"off": [], "on": []}
    bare: list[float] = []
    try:
        for i in range(a.rounds):
            order = ["off", "on"] if i % 2 == 0 else ["on", "off"]
            for k in order:
                runs[k].append(one(r, src, sc, work / f"{k}.mp4", a.segments, k == "on", work))
                print(f"round {i + 1} {k}: {runs[k][-1]['total_s']} s "
                      f"{'first 10 s at ' + str(runs[k][-1].get('first_10s_playable_s')) if k == 'on' else ''}",
                      flush=True)
            t = time.monotonic()
            ffmpeg.run(bare_transcode_args(src, work / "bare.mp4", float(a.fps), 70, "veryfast"), what="bare")
            bare.append(round(time.monotonic() - t, 2))
    finally:
        r.close()
    off = statistics.median(x["total_s"] for x in runs["off"])
    on = statistics.median(x["total_s"] for x in runs["on"])
    diffs = [b["total_s"] - a_["total_s"] for a_, b in zip(runs["off"], runs["on"])]
    result = result_header("live preview: first playable seconds, prefix growth, cost against the same job without")
    result.update(
        args=vars(a), input=src.name, bare_ffmpeg_s=bare, bare_ffmpeg_median_s=statistics.median(bare),
        total_off_median_s=off, total_on_median_s=on,
        cost_median_s=round(statistics.median(diffs), 2), cost_pct=round(100 * statistics.median(diffs) / off, 1),
        first_10s_playable_median_s=statistics.median(x["first_10s_playable_s"] for x in runs["on"]
                                                     if x.get("first_10s_playable_s") is not None),
        growth_x_median=statistics.median(x["growth_x"] for x in runs["on"] if x.get("growth_x") is not None),
        same_bytes=len({x["sha256"] for x in runs["on"] + runs["off"]}) == 1, runs=runs)
    print({k: v for k, v in result.items() if k not in ("runs", "machine")})
    out = save(result, a.name or f"preview-{a.height}p-{int(a.duration)}s.json")
    print(f"saved {out}")


if __name__ == "__main__":
    main()
