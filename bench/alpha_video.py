"""What ``options.alpha_video`` costs: a job without it, with the WebM (VP9 with alpha) and with
the MOV (ProRes 4444) captions-only file, and a bare FFmpeg transcode of the same input, in
alternated rounds on one warm Renderer; medians of wall time, the second pass's own time
(stats alpha_s) and the side file's size.

    python bench/alpha_video.py [--seconds 20] [--height 720] [--rounds 3] [--cues 6]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

from common import bare_transcode_args, commit, machine, make_input, make_scenario, save

from ecg_ray import RenderOptions
from ecg_ray.config import load_settings
from ecg_ray.media import ffmpeg

KINDS = ("bare", "none", "webm", "mov")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--cues", type=int, default=6)
    ap.add_argument("--segments", type=int, default=2)
    a = ap.parse_args()

    import ray

    from ecg_ray.rendering.renderer import Renderer

    tmp = Path(tempfile.mkdtemp(prefix="ecg-bench-alpha-"))
    src = tmp / f"in{a.height}.mp4"
    make_input(src, a.seconds, a.height, "25")
    scenario = make_scenario(a.seconds, a.cues)
    settings = load_settings()
    ray.init(address="local", include_dashboard=False, log_to_driver=False)
    r = Renderer()
    runs: dict[str, list[dict]] = {k: [] for k in KINDS}
    try:
        r.render(str(src), scenario, str(tmp / "warm.mp4"), RenderOptions(segments=a.segments))  # actors up
        for _ in range(a.rounds):
            for kind in KINDS:
                out = tmp / f"{kind}.mp4"
                t0 = time.perf_counter()
                if kind == "bare":
                    ffmpeg.run(["-loglevel", "error", *bare_transcode_args(src, out, 25.0, settings.default_quality,
                                                                          settings.x264_preset)], what="bare")
                    runs[kind].append({"wall_s": time.perf_counter() - t0})
                    continue
                res = r.render(str(src), scenario, str(out), RenderOptions(
                    segments=a.segments, alpha_video=None if kind == "none" else kind))
                wall = time.perf_counter() - t0
                side = Path(res.alpha_output).stat().st_size if res.alpha_output else 0
                runs[kind].append({"wall_s": wall, "alpha_s": res.stats.get("alpha_s", 0.0), "alpha_bytes": side,
                                   "video_bytes": res.file_size})
                print(kind, round(wall, 2), res.stats.get("alpha_s", 0.0), side, flush=True)
    finally:
        r.close()
        ray.shutdown()

    def med(kind: str, key: str) -> float:
        return round(statistics.median(x.get(key, 0.0) for x in runs[kind]), 3)

    result = {
        "bench": "alpha_video", "date": date.today().isoformat(), "commit": commit(), "machine": machine(),
        "input": {"seconds": a.seconds, "height": a.height, "fps": 25, "cues": a.cues, "segments": a.segments},
        "rounds": a.rounds, "runs": runs,
        "median": {k: {"wall_s": med(k, "wall_s"), "alpha_s": med(k, "alpha_s"), "alpha_bytes": med(k, "alpha_bytes")}
                   for k in KINDS},
    }
    path = save(result, f"alpha-video-{result['machine']['cores']}core-{a.height}p-{result['date']}.json")
    print(path)
    print(result["median"])


if __name__ == "__main__":
    main()
